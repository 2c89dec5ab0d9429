"""nox sessions: `nox -s conformance` (the main job), `nox -s tests` (the harness's tests)
and `nox -s upgrade` (what changes numerically when one package is upgraded).

Arguments after `--` pass through to `conformance run`, e.g.
`nox -s conformance -- --profile smoke --targets keras3-numpy,keras3-jax`.
"""
import json
import os
import re
import shutil
from pathlib import Path

import nox

nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True


@nox.session(python="3.11")
def conformance(session):
    """Provision the target environments, then run the suites on every target."""
    session.install("-e", ".")
    session.run("conformance", "envs", "sync")
    # A target that cannot run (e.g. CNTK without OpenMPI) says why; the run goes on.
    session.run("conformance", "targets", success_codes=[0, 1])
    session.run("conformance", "run", *session.posargs)


# Every target environment some test runs a worker in.
TEST_ENVS = ["keras2", "keras3", "tfkeras"]


@nox.session(python="3.11")
def tests(session):
    """The harness's own tests (fast; real backends only where an environment exists).

    With CONFORMANCE_REQUIRE_ENVS=1 (CI) an environment that cannot be built stops the
    session, and tests needing one fail instead of skipping; without it (a machine
    lacking Python 3.6, say) those tests skip."""
    session.install("-e", ".[test]")
    required = os.environ.get("CONFORMANCE_REQUIRE_ENVS", "").strip() not in ("", "0")
    session.run("conformance", "envs", "sync", *TEST_ENVS,
                success_codes=[0] if required else [0, 1])
    session.run("pytest", *session.posargs)


UPGRADE_USAGE = """usage: nox -s upgrade -- OLD NEW [--envs E1,E2] [--out DIR] [baseline save options]
  OLD, NEW   two pins of one package, e.g. tensorflow-cpu==2.20.0 tensorflow-cpu==2.21.0
  --envs     re-pin only these environments (default: every one that installs the package)
  --out      folder for the generated projects, baseline and report
             (default: reports/upgrade-OLD-to-NEW)
  other options go to `conformance baseline save`: --targets, --ops, --floatx, --examples"""


@nox.session(python="3.11")
def upgrade(session):
    """What an upgrade changes: `nox -s upgrade -- OLD NEW`, fails when something regressed.

    Builds the environments that install the package with the old and with the new pin,
    records a baseline with the old, replays it with the new and writes the report."""
    args = list(session.posargs)
    if len(args) < 2 or any(a.startswith("-") for a in args[:2]):
        session.error(UPGRADE_USAGE)
    before, after, options = args[0], args[1], args[2:]
    only_envs = _pop_option(options, "--envs")
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{before}-to-{after}")
    # absolute: workers run in their own folder and find the harness through these paths
    out = Path(_pop_option(options, "--out") or Path("reports") / f"upgrade-{slug}").resolve()
    session.install("-e", ".")

    package = re.split(r"[\s\[<>=!~;]", before, maxsplit=1)[0]
    session.log(f"[1/5] finding the environments and targets that install {package}")
    plan_args = ["upgrade-plan", before, after, "--out", str(out)]
    session.run("python", "-m", "conformance.targets", *plan_args,
                *(["--envs", only_envs] if only_envs else []))
    plan = json.loads((out / "plan.json").read_text())
    env_names = list(plan["envs"])
    old, new = (["--project", plan["projects"][side]] for side in ("before", "after"))

    session.log(f"[2/5] building {', '.join(env_names)} with {before}")
    session.run("conformance", *old, "envs", "sync", *env_names)
    session.log(f"[3/5] building {', '.join(env_names)} with {after}")
    session.run("conformance", *new, "envs", "sync", *env_names)

    session.log(f"[4/5] baseline with {before}")
    if not any(o == "--targets" or o.startswith("--targets=") for o in options):
        options += ["--targets", ",".join(plan["targets"])]
    baselines, report = out / "baselines", out / "report"
    session.run("conformance", *old, "baseline", "save", "before", "--dir", str(baselines),
                "--force", *options)
    manifest = json.loads((baselines / "before" / "manifest.json").read_text())
    broken = _broken_targets(manifest["entries"], manifest["targets"])
    ran = {e["target"] for e in manifest["entries"]} - set(broken)
    for target, reason in broken.items():
        session.warn(f"{target} did not run with {before}: {reason}")
    if not ran:
        session.error(f"no target ran with {before}: nothing to compare (reasons above)")

    session.log(f"[5/5] replaying it with {after}")
    shutil.rmtree(report, ignore_errors=True)  # results.jsonl is appended to
    session.run("conformance", *new, "compare", "before", "--dir", str(baselines),
                "--out", str(report), success_codes=[0, 1])
    comparison = json.loads((report / "comparison.json").read_text())
    today = [{"target": e["target"], **(e.get("new") or {})} for e in comparison["entries"]]
    for target, reason in _broken_targets(today).items():
        session.warn(f"{target} did not run with {after}: {reason}")
    where = f"report {report / 'index.html'}, details {report / 'comparison.json'}"
    if comparison["regressions"]:
        session.error(f"{before} -> {after}: {comparison['regressions']} regression(s); {where}")
    session.log(f"{before} -> {after}: no regression; {where}")


def _pop_option(options, name):
    """Remove `NAME VALUE` or `NAME=VALUE` from the list; return VALUE (None if absent)."""
    for i, option in enumerate(options):
        if option == name and i + 1 < len(options):
            value = options[i + 1]
            del options[i:i + 2]
            return value
        if option.startswith(name + "="):
            del options[i]
            return option.split("=", 1)[1]
    return None


def _broken_targets(entries, targets=None):
    """{target: the telling line of the reason} for targets whose every entry is
    `broken`; `targets` (a baseline manifest's) holds the reasons untruncated."""
    statuses, reasons = {}, {}
    for entry in entries:
        statuses.setdefault(entry["target"], set()).add(entry.get("status"))
        reason = "\n".join(((targets or {}).get(entry["target"]) or {}).get("broken", {}).values())
        reasons.setdefault(entry["target"], _telling_line(reason or entry.get("message") or ""))
    return {target: reasons[target] for target, seen in statuses.items() if seen == {"broken"}}


def _telling_line(text):
    """The last `SomeError: ...` line of a worker's reason, else its last line."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    errors = [line for line in lines if re.match(r"[\w.]*(Error|Exception)\b", line)]
    return (errors or lines or [""])[-1]
