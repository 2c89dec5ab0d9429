"""conformance.kerasfacts: one home for Keras facts, importable by the worker."""
import json
import subprocess
from pathlib import Path


from conformance import checkconfig, configsuite, kerasfacts, targets
from conftest import python36, skip_or_fail

ROOT = Path(__file__).resolve().parent.parent


def test_keras_json_defaults_are_what_keras_writes():
    assert kerasfacts.keras_json_defaults() == {
        "floatx": "float32", "epsilon": 1e-07, "backend": "tensorflow",
        "image_data_format": "channels_last"}
    mine = kerasfacts.keras_json_defaults()
    mine["floatx"] = "float64"
    assert kerasfacts.keras_json_defaults()["floatx"] == "float32"  # a fresh dict each call


def test_defaults_are_valid_values():
    assert kerasfacts.DEFAULT_FLOATX in kerasfacts.FLOATX_VALUES
    assert kerasfacts.DEFAULT_IMAGE_DATA_FORMAT in kerasfacts.IMAGE_DATA_FORMATS
    assert kerasfacts.DEFAULT_BACKEND in kerasfacts.KERAS2_BACKENDS
    assert kerasfacts.DEFAULT_BACKEND in kerasfacts.KERAS3_BACKENDS
    assert set(kerasfacts.KNOWN_BACKENDS) == (set(kerasfacts.KERAS2_BACKENDS)
                                              | set(kerasfacts.KERAS3_BACKENDS))


def test_invalid_values_are_invalid_and_each_flavor_says_what_it_raises():
    bad = dict(kerasfacts.INVALID_VALUES)
    assert bad["set_floatx"] not in kerasfacts.FLOATX_VALUES
    assert bad["set_image_data_format"] not in kerasfacts.IMAGE_DATA_FORMATS
    for flavor, rules in kerasfacts.INVALID_ERRORS.items():
        assert set(rules) == set(bad) and flavor in kerasfacts.INVALID_SOURCES


def test_keras2_using_lines():
    assert kerasfacts.keras2_using_line("cntk") == "Using CNTK backend"  # no period
    assert kerasfacts.keras2_using_line("my.module") == "Using my.module backend."


def test_every_module_reads_the_same_facts():
    """The parent's checks and the worker's probes agree because they share one source."""
    assert targets.FLOATX == kerasfacts.FLOATX_VALUES
    assert targets.Target("t", "keras3", "numpy").keras_json("float32") == dict(
        kerasfacts.keras_json_defaults(), backend="numpy")
    assert checkconfig.DEFAULTS == kerasfacts.keras_json_defaults()
    assert checkconfig.FLOATX_VALUES == kerasfacts.FLOATX_VALUES
    assert configsuite.DEFAULT_KERAS_JSON == kerasfacts.keras_json_defaults()


def test_imports_under_python36_with_the_worker_side_modules():
    """The worker imports kerasfacts inside Python 3.6 targets."""
    python = python36()
    if python is None:
        skip_or_fail("no Python 3.6 interpreter (pyenv install 3.6.15)")
    done = subprocess.run(
        [python, "-c", "import json, sys; sys.path.insert(0, sys.argv[1]); "
                       "from conformance import kerasfacts; "
                       "print(json.dumps(kerasfacts.keras_json_defaults()))", str(ROOT)],
        capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == kerasfacts.keras_json_defaults()
