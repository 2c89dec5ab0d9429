"""An op written on top of keras.ops that reads its input's values in Python: it can
run eagerly on OpenVINO but not be built over Parameters (test_openvino_compiled)."""
import keras
import numpy as np


def double_via_numpy(x):
    return keras.ops.convert_to_tensor(np.asarray(keras.ops.convert_to_numpy(x)) * 2)
