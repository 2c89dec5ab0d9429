"""nox sessions: `nox -s conformance` (the main job) and `nox -s tests` (the harness's tests).

Arguments after `--` pass through to `conformance run`, e.g.
`nox -s conformance -- --profile smoke --targets keras3-numpy,keras3-jax`.
"""
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


@nox.session(python="3.11")
def tests(session):
    """The harness's own tests (fast; real backends only where an environment exists)."""
    session.install("-e", ".[test]")
    # The Python 3.6 worker test needs the legacy environment; build it if 3.6 exists.
    session.run("conformance", "envs", "sync", "keras2", "keras3", success_codes=[0, 1])
    session.run("pytest", *session.posargs)
