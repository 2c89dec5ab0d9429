"""`nox -s upgrade -- OLD NEW`: re-pinned environments, the plan, and one real run.

The end-to-end test drives noxfile.upgrade with a stand-in for nox's session (commands
run with this interpreter) on a tiny environment holding only numpy, pinned at two
versions, and an ops-module plugin that gets exp wrong on the newer numpy.
"""
import functools
import importlib.util
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from conformance import envs, targets

ROOT = Path(__file__).resolve().parent.parent
KERAS3 = envs.BUILTIN_ENVS["keras3"]


# -- envs.with_requirement ------------------------------------------------------------
@pytest.mark.parametrize("requirement, name", [
    ("numpy==2.3.5", "numpy"), ("TensorFlow_CPU==2.20.0", "tensorflow-cpu"),
    ("jax[cpu]==0.10.2", "jax"), ("zope.interface>=5", "zope-interface"),
    ("  tf_keras ~= 2.21", "tf-keras"), ("numpy<2.5; python_version>'3'", "numpy"),
])
def test_project_names_are_normalised(requirement, name):
    assert envs.project_name(requirement) == name


def test_with_requirement_swaps_the_pin_and_changes_the_digest():
    older = envs.with_requirement(KERAS3, "tensorflow-cpu==2.20.0")
    assert "tensorflow-cpu==2.20.0" in older.requirements
    assert not any(r.startswith("tensorflow-cpu==2.21") for r in older.requirements)
    assert len(older.requirements) == len(KERAS3.requirements)
    assert older.digest != KERAS3.digest and older.name == KERAS3.name
    assert envs.env_dir(older) != envs.env_dir(KERAS3)


def test_with_requirement_normalises_names_and_keeps_todays_spelling():
    again = envs.with_requirement(KERAS3, "TensorFlow_CPU==2.21.0")
    assert again == KERAS3 and again.digest == KERAS3.digest  # today's env is reused


def test_with_requirement_keeps_extras_unless_new_ones_are_given():
    assert "jax[cpu]==0.10.3" in envs.with_requirement(KERAS3, "jax==0.10.3").requirements
    assert "jax[cuda12]==0.10.3" in envs.with_requirement(
        KERAS3, "jax[cuda12]==0.10.3").requirements


def test_with_requirement_reaches_no_deps_pins():
    spec = envs.with_requirement(envs.BUILTIN_ENVS["tfkeras"], "tf-keras==2.20.1")
    assert spec.no_deps == ("tf-keras==2.20.1",)
    assert spec.requirements == envs.BUILTIN_ENVS["tfkeras"].requirements


def test_with_requirement_on_a_project_the_env_lacks_says_what_it_has():
    with pytest.raises(envs.EnvError, match="(?s)no requirement on 'scipy'.*keras==3.15.1"):
        envs.with_requirement(KERAS3, "scipy==1.13")
    with pytest.raises(envs.EnvError, match="not a requirement"):
        envs.with_requirement(KERAS3, "==1.0")


def test_containing_finds_every_environment_that_pins_the_project():
    names = [s.name for s in envs.containing(envs.BUILTIN_ENVS.values(), "tensorflow-cpu==2.20")]
    assert names == ["keras3", "tfkeras"]
    assert [s.name for s in envs.containing(envs.BUILTIN_ENVS.values(), "theano==1")] == ["keras2"]


# -- the plan -------------------------------------------------------------------------
def test_plan_repins_each_environment_and_picks_their_targets():
    plan = targets.upgrade_plan({}, "tensorflow-cpu==2.20.0", "tensorflow-cpu==2.21.0")
    assert plan["project"] == "tensorflow-cpu" and list(plan["envs"]) == ["keras3", "tfkeras"]
    assert "keras2-tf-keras" in plan["targets"] and "keras3-jax" in plan["targets"]
    assert not any(t.startswith("keras2-t") and t != "keras2-tf-keras" for t in plan["targets"])
    keras3 = plan["envs"]["keras3"]
    assert keras3["after"]["digest"] == KERAS3.digest  # NEW is today's pin: same env
    assert keras3["before"]["digest"] != KERAS3.digest
    assert "tensorflow-cpu==2.20.0" in keras3["before"]["table"]["requirements"]
    only = targets.upgrade_plan({}, "tensorflow-cpu==2.20.0", "tensorflow-cpu==2.21.0",
                                only_envs=["tfkeras"])
    assert list(only["envs"]) == ["tfkeras"] and only["targets"] == ["keras2-tf-keras"]


@pytest.mark.parametrize("before, after, message", [
    ("nosuchpackage==1", "nosuchpackage==2",
     r"(?s)no environment installs 'nosuchpackage'.*keras3 \(python 3.11\): keras==3.15.1"),
    ("tensorflow-cpu==2.20.0", "tensorflow==2.21.0", "different projects"),
])
def test_plan_errors_name_the_environments(before, after, message):
    with pytest.raises(targets.ConfigError, match=message) as info:
        targets.upgrade_plan({}, before, after)
    if "nosuch" in before:
        assert "keras2 (python 3.6)" in str(info.value) and "tf-keras==2.21.0" in str(info.value)


def test_plan_command_reports_an_unknown_package(tmp_path, capsys):
    assert targets.main(["upgrade-plan", "nosuch==1", "nosuch==2", "--out", str(tmp_path),
                         "--project", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no environment installs 'nosuch'" in err and "tfkeras (python 3.11)" in err


def test_dump_toml_reads_back():
    table = {"envs": {"a.b": {"python": "3.11", "requirements": ["x==1", 'q"uote'],
                              "bootstrap": []}},
             "targets": {"t": {"flavor": "keras2", "epsilon": 1e-3, "needs_openmpi_shim": True,
                               "timeout_s": 20, "env_vars": {"A_B": "1"},
                               "pythonpath": ["/p"]}}}
    text = targets.dump_toml(table, ("tool", "conformance"))
    assert tomllib.loads(text)["tool"]["conformance"] == table


def test_generated_projects_carry_the_users_config(tmp_path):
    root = tmp_path / "project"
    root.mkdir()
    (root / "pyproject.toml").write_text(
        '[tool.conformance.envs.tiny]\npython = "3.11"\nrequirements = ["numpy==2.3.5", "rich"]\n'
        '[tool.conformance.targets.np]\nflavor = "ops-module"\nbackend = "numpy"\nenv = "tiny"\n'
        'pythonpath = ["plugins"]\nenv_vars = {X = "1"}\n')
    (root / "known_divergences.toml").write_text("# none\n")
    config = targets.load_project_config(root)
    plan = targets.upgrade_plan(config, "numpy==2.3.5", "numpy==2.4.6", root, ["tiny"])
    assert plan["targets"] == ["np"]
    folders = targets.write_upgrade_projects(config, plan, tmp_path / "out", root)
    for side, pin in (("before", "numpy==2.3.5"), ("after", "numpy==2.4.6")):
        project = Path(folders[side])
        loaded = targets.load_project_config(project)
        spec = targets.load_envs(loaded)["tiny"]
        assert spec.requirements == (pin, "rich")
        np_target = targets.load_targets(loaded, project)["np"]
        assert np_target.pythonpath == (str(root / "plugins"),)
        assert dict(np_target.extra_env) == {"X": "1"}
        assert (project / "known_divergences.toml").read_text() == "# none\n"
        assert targets.load_envs(loaded)["keras3"] == KERAS3  # untouched environments
    assert json.loads((tmp_path / "out" / "plan.json").read_text())["projects"] == folders


# -- the nox session ----------------------------------------------------------------------
@functools.cache  # nox registers sessions globally: load the file once
def load_noxfile():
    spec = importlib.util.spec_from_file_location("noxfile_under_test", ROOT / "noxfile.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class SessionFailed(Exception):
    pass


class FakeSession:
    """What noxfile.upgrade uses of nox's Session; commands run with this interpreter."""

    def __init__(self, posargs, env=None):
        self.posargs = list(posargs)
        self.env = env or dict(os.environ)
        self.logs, self.commands = [], []

    def install(self, *args):
        self.commands.append(("install", *args))

    def log(self, message):
        self.logs.append(message)

    def warn(self, message):
        self.logs.append(f"warning: {message}")

    def error(self, message):
        raise SessionFailed(message)

    def run(self, program, *args, success_codes=(0,)):
        prefix = {"python": [sys.executable],
                  "conformance": [sys.executable, "-m", "conformance.cli"]}[program]
        self.commands.append((program, *args))
        done = subprocess.run(prefix + [str(a) for a in args], env=self.env,
                              capture_output=True, text=True, timeout=600)
        self.logs.append(done.stdout + done.stderr)
        if done.returncode not in success_codes:
            raise SessionFailed(f"{program} {' '.join(args)} exited {done.returncode}:\n"
                                f"{done.stderr[-3000:]}")


@pytest.mark.parametrize("posargs", [[], ["numpy==2"], ["--ops", "exp", "numpy==2"]])
def test_upgrade_session_explains_its_arguments(posargs):
    with pytest.raises(SessionFailed, match="usage: nox -s upgrade -- OLD NEW"):
        load_noxfile().upgrade(FakeSession(posargs))


PLUGIN = '''"""exp is 1% off on numpy 2.4: a stand-in for a backend upgrade that regresses."""
import numpy

__version__ = numpy.__version__
sin = numpy.sin
if numpy.__version__.startswith("2.3."):
    exp = numpy.exp
else:
    def exp(x):
        return (numpy.exp(x) * 1.01).astype(x.dtype)
'''
BROKEN_BEFORE = '''import numpy
if numpy.__version__.startswith("2.3."):
    raise ImportError("this plugin needs numpy 2.4")
exp = numpy.exp
'''


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One cache for the module: the two tiny environments are built once."""
    return tmp_path_factory.mktemp("cache")


def upgrade_project(folder: Path, plugin: str, cache: Path):
    (folder / "plugins").mkdir(parents=True)
    (folder / "plugins" / "verplug.py").write_text(plugin)
    (folder / "pyproject.toml").write_text(
        '[tool.conformance.envs.tiny]\npython = "3.11"\nrequirements = ["numpy==2.3.5"]\n'
        '[tool.conformance.targets.np]\nflavor = "ops-module"\nbackend = "verplug"\n'
        'env = "tiny"\npythonpath = ["plugins"]\ntimeout_s = 60.0\n')
    return dict(os.environ, CONFORMANCE_CACHE=str(cache),
                PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))


def test_upgrade_session_end_to_end_finds_the_regression(tmp_path, monkeypatch, cache):
    """Two real environments (numpy 2.3.5 and 2.4.6), a baseline on the first, a compare
    on the second: exp regressed beyond tolerance, sin is unchanged, the session fails."""
    project = tmp_path / "project"
    env = upgrade_project(project, PLUGIN, cache)
    monkeypatch.chdir(project)
    out = "out"  # relative, as a user types it
    session = FakeSession(["numpy==2.3.5", "numpy==2.4.6", "--envs", "tiny", "--out", out,
                           "--ops", "exp,sin", "--floatx", "float32", "--examples", "3"], env)
    with pytest.raises(SessionFailed, match=r"numpy==2.3.5 -> numpy==2.4.6: 1 regression"):
        load_noxfile().upgrade(session)

    out = project / out
    plan = json.loads((out / "plan.json").read_text())
    assert list(plan["envs"]) == ["tiny"] and plan["targets"] == ["np"]
    built = sorted(p.name for p in (cache / "envs").iterdir() if p.is_dir())  # not locks
    assert len(built) == 2 and all(name.startswith("tiny-") for name in built)
    comparison = json.loads((out / "report" / "comparison.json").read_text())
    changes = {e["op"]: e["change"] for e in comparison["entries"]}
    assert changes == {"exp": "beyond", "sin": "unchanged"}
    numpy_change = [p for p in comparison["versions"]["np"]["packages"]["changed"]
                    if p["name"] == "numpy"]
    assert numpy_change and (numpy_change[0]["old"], numpy_change[0]["new"]) == ("2.3.5", "2.4.6")
    manifest = json.loads((out / "baselines" / "before" / "manifest.json").read_text())
    assert manifest["targets"]["np"]["environment"]["requirements"] == ["numpy==2.3.5"]
    steps = [line for line in session.logs if line.startswith("[")]
    assert [s[:5] for s in steps] == ["[1/5]", "[2/5]", "[3/5]", "[4/5]", "[5/5]"]
    assert not any(line.startswith("warning:") for line in session.logs)


def test_upgrade_session_refuses_a_baseline_where_nothing_ran(tmp_path, monkeypatch, cache):
    """A target that cannot start on the old pin is reported, and with no target left
    the session fails instead of comparing broken with broken as 'unchanged'."""
    project = tmp_path / "project"
    env = upgrade_project(project, BROKEN_BEFORE, cache)
    monkeypatch.chdir(project)
    session = FakeSession(["numpy==2.3.5", "numpy==2.4.6", "--envs", "tiny", "--out", "out",
                           "--ops", "exp", "--floatx", "float32", "--examples", "2"], env)
    with pytest.raises(SessionFailed, match="no target ran with numpy==2.3.5"):
        load_noxfile().upgrade(session)
    warnings = [line for line in session.logs if line.startswith("warning:")]
    assert warnings and "np did not run with numpy==2.3.5" in warnings[0]
    assert "needs numpy 2.4" in warnings[0]
