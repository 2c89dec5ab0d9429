"""Target status: start each target's worker once and ask the backend about itself."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from conformance import envs, shims, targets as targets_mod
from conformance.pool import Pool
from conformance.targets import Target


@dataclass
class TargetStatus:
    id: str
    flavor: str
    backend: str
    status: str  # ready | not provisioned | damaged | broken
    reason: str = ""
    fix: str = ""
    python: str | None = None
    info: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


def fix_for(target: Target, reason: str) -> str:
    if "OpenMPI" in reason or "libmpi" in reason:
        return shims.OPENMPI_FIX
    if "unknown environment" in reason:
        return (f"set env of [tool.conformance.targets.{target.id}] to a known environment "
                "(`conformance envs list` shows them) or define [tool.conformance.envs."
                f"{target.env}]")
    if target.env:
        return f"conformance envs sync {target.env}"
    return "check the target's `python` in [tool.conformance.targets]"


# What a target whose environment cannot be used is, by the environment's state.
ENV_STATUS = {"missing": "not provisioned", "busy": "not provisioned",
              "interrupted": "damaged", "damaged": "damaged"}


def environment_status(target: Target, specs: dict) -> TargetStatus | None:
    """The status of a target whose environment cannot be used now (missing, being
    built by another process, interrupted, damaged), else None. A usable one is held
    shared by this process from here on, so that another process does not rebuild or
    remove it under the workers (envs.hold)."""
    spec = specs.get(target.env or "")
    if target.python or spec is None:
        return None
    current = envs.state(spec)
    if current.ready:
        envs.hold(spec)
        current = envs.state(spec)  # again, held: a removal may have begun meanwhile
        if not current.ready:
            envs.release(spec)  # a rebuild must not wait for this process
    if current.ready:
        return None
    fix = fix_for(target, current.reason)
    if current.status == "busy":
        fix = f"wait for it to finish (`conformance envs sync {spec.name}` waits for it)"
    return TargetStatus(target.id, target.flavor, target.backend, ENV_STATUS[current.status],
                        reason=current.reason, fix=fix)


def resolve_interpreters(selected: list[Target], specs: dict) -> tuple[dict, list[TargetStatus]]:
    """Interpreters of targets whose environment exists whole, and statuses of the
    others."""
    pythons, missing = {}, []
    for target in selected:
        unusable = environment_status(target, specs)
        if unusable is not None:
            missing.append(unusable)
            continue
        python, reason = targets_mod.interpreter(target, specs)
        if python:
            pythons[target.id] = python
            continue
        status = "not provisioned" if reason == "environment not provisioned" else "broken"
        missing.append(TargetStatus(target.id, target.flavor, target.backend, status,
                                    reason=reason, fix=fix_for(target, reason)))
    return pythons, missing


def pool_statuses(pool: Pool, infos: dict[str, dict]) -> list[TargetStatus]:
    """Status of every target of a started pool: ready with what the backend reports,
    or broken with the reason its worker gave and the fix."""
    statuses = []
    for target in pool.targets.values():
        python = pool.pythons.get(target.id)
        if target.id in infos:
            statuses.append(TargetStatus(target.id, target.flavor, target.backend, "ready",
                                         python=python, info=infos[target.id]))
        else:
            reason = pool.broken.get(target.id, "")
            statuses.append(TargetStatus(target.id, target.flavor, target.backend, "broken",
                                         reason=reason, fix=fix_for(target, reason),
                                         python=python))
    return statuses


def probe(selected: list[Target], specs: dict, floatx: str = "float32") -> list[TargetStatus]:
    """Start every runnable target in parallel and report what each backend says."""
    pythons, statuses = resolve_interpreters(selected, specs)
    runnable = [t for t in selected if t.id in pythons]
    with Pool(runnable, pythons) as pool:
        statuses += pool_statuses(pool, pool.use_floatx(floatx))
    order = [t.id for t in selected]
    return sorted(statuses, key=lambda s: order.index(s.id))
