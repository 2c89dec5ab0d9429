import pytest

from conformance import envs, targets


def test_builtin_targets_are_the_eight_backends():
    assert sorted(targets.BUILTIN_TARGETS) == sorted([
        "keras3-numpy", "keras3-jax", "keras3-torch", "keras3-tensorflow", "keras3-openvino",
        "keras2-tensorflow", "keras2-theano", "keras2-cntk"])


def test_pyproject_adds_a_dotted_module_backend_and_overrides_a_builtin(tmp_path):
    (tmp_path / "pyproject.toml").write_text('''
[tool.conformance.targets.my-backend]
flavor = "keras2"
backend = "my_package.my_module"
env = "keras2"
pythonpath = ["plugins"]

[tool.conformance.targets.keras3-jax]
epsilon = 1e-3
env_vars = {JAX_ENABLE_X64 = "1"}
''')
    config = targets.load_project_config(tmp_path)
    loaded = targets.load_targets(config, tmp_path)
    mine = loaded["my-backend"]
    assert mine.backend == "my_package.my_module" and mine.flavor == "keras2"
    assert mine.pythonpath == (str(tmp_path / "plugins"),)
    assert mine.keras_json("float64")["backend"] == "my_package.my_module"
    assert loaded["keras3-jax"].epsilon == 1e-3
    assert dict(loaded["keras3-jax"].extra_env) == {"JAX_ENABLE_X64": "1"}


@pytest.mark.parametrize("table, message", [
    ('[tool.conformance.targets.x]\nflavor = "keras2"\n', "needs `flavor` and `backend`"),
    ('[tool.conformance.targets.keras3-jax]\nfloatx = "float64"\n', "unknown keys"),
    ('[tool.conformance.targets.x]\nflavor = "keras4"\nbackend = "b"\n', "flavor must be"),
    ('[tool.conformance\n', "pyproject.toml"),
    ('[tool.conformance.targets]\nx = 3\n', r"targets.x\] must be a table"),
    ('[tool.conformance]\ntargets = 3\n', "must be a table of target tables"),
    ('[tool.conformance.targets.x]\nflavor = "keras2"\nbackend = "b"\npythonpath = "p"\n',
     "pythonpath must be a list"),
    ('[tool.conformance.targets.keras3-jax]\ntimeout_s = -3\n', "more than 0 seconds"),
    ('[tool.conformance.targets.keras3-jax]\ntimeout_s = "long"\n', "timeout_s must be a float"),
    ('[tool.conformance.targets.keras3-jax]\nenv_vars = {X = 1}\n', "values must be strings"),
    ('[tool.conformance.targets.keras3-jax]\nimage_data_format = "nchw"\n', "channels_first"),
])
def test_bad_configuration_is_a_clear_error(tmp_path, table, message):
    (tmp_path / "pyproject.toml").write_text(table)
    with pytest.raises(targets.ConfigError, match=message):
        targets.load_targets(targets.load_project_config(tmp_path), tmp_path)


def test_bad_environment_tables_are_a_clear_error():
    with pytest.raises(targets.ConfigError, match="must be tables"):
        targets.load_envs({"envs": {"x": 3}})


def test_an_unknown_environment_says_how_to_fix():
    from conformance import probe

    mine = targets.Target(id="mine", flavor="keras2", backend="b", env="nosuch")
    _, missing = probe.resolve_interpreters([mine], targets.load_envs({}))
    assert "unknown environment 'nosuch'" in missing[0].reason
    assert "[tool.conformance.envs.nosuch]" in missing[0].fix


def test_unknown_target_id_lists_the_known_ones():
    with pytest.raises(targets.ConfigError, match="known: keras3-numpy"):
        targets.select(targets.BUILTIN_TARGETS, ["keras3-mxnet"])


def test_environment_folder_is_keyed_by_the_spec_hash(tmp_path, monkeypatch):
    monkeypatch.setenv("CONFORMANCE_CACHE", str(tmp_path))
    spec = envs.BUILTIN_ENVS["keras3"]
    changed = envs.EnvSpec(spec.name, spec.python, spec.requirements + ("rich",))
    assert envs.env_dir(spec) != envs.env_dir(changed)
    assert envs.env_dir(spec).parent == tmp_path / "envs"
    assert not envs.is_provisioned(spec)


def test_missing_interpreter_says_how_to_fix(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(envs.EnvError, match="pyenv install 2.1|CONFORMANCE_PYTHON"):
        envs.base_interpreter("2.1")


def test_a_missing_environment_skips_or_under_require_envs_fails(tmp_path, monkeypatch):
    import conftest

    monkeypatch.setenv("CONFORMANCE_CACHE", str(tmp_path))  # nothing provisioned there
    monkeypatch.delenv(conftest.REQUIRE_ENVS, raising=False)
    with pytest.raises(pytest.skip.Exception, match="conformance envs sync tfkeras"):
        conftest.require_env("tfkeras")
    monkeypatch.setenv(conftest.REQUIRE_ENVS, "0")
    with pytest.raises(pytest.skip.Exception):
        conftest.require_env("keras2")
    monkeypatch.setenv(conftest.REQUIRE_ENVS, "1")
    with pytest.raises(pytest.fail.Exception, match="(?s)keras2 not provisioned.*REQUIRE_ENVS=1"):
        conftest.require_env("keras2")


def test_a_provisioned_environment_gives_its_python(tmp_path, monkeypatch):
    import conftest

    monkeypatch.setenv("CONFORMANCE_CACHE", str(tmp_path))
    monkeypatch.setenv(conftest.REQUIRE_ENVS, "1")
    spec = envs.BUILTIN_ENVS["keras3"]
    envs.env_dir(spec).mkdir(parents=True)
    (envs.env_dir(spec) / "conformance-env.json").write_text("{}")  # what sync writes last
    assert conftest.require_env("keras3") == str(envs.env_python(spec))
