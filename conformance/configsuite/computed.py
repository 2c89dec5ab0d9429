"""Scenarios epsilon and image_data_format: the real ops follow the configuration.

- epsilon: binary_crossentropy at p in {0, 1} and l2 normalization of a tiny vector
  follow the configured epsilon (1e-7 and 1e-3 runs, each against a float64
  reference with that epsilon)
- image_data_format: conv2d and max / average pooling give transposed-equal results
  in channels_first and channels_last, explicitly and when the format comes from
  keras.json
"""
from __future__ import annotations

import numpy as np

from conformance.configsuite.judging import within
from conformance.configsuite.processes import CallFailed, TargetRun, output
from conformance.configsuite.records import make_record
from conformance.configsuite.references import (
    BCE_OUTPUT, BCE_TARGET, TINY_VECTORS, bce_reference, conv_reference, image_data,
    normalize_reference, pool_reference)
from conformance.configsuite.setups import DISTINCT_EPSILON
from conformance.targets import Target
from conformance.tolerance import unit_roundoff

U32 = unit_roundoff("float32")  # the checks' inputs and floatx are float32


# -- how each flavor calls the ops -------------------------------------------------------
def _calls(target: Target) -> dict:
    """Function names and keyword style of the flavor."""
    if target.flavor == "keras2":
        return {"bce": "keras.backend.binary_crossentropy",
                "normalize": "keras.backend.l2_normalize", "conv": "keras.backend.conv2d",
                "max_pool": "keras.backend.pool2d", "avg_pool": "keras.backend.pool2d"}
    return {"bce": "keras.ops.binary_crossentropy", "normalize": "keras.ops.normalize",
            "conv": "keras.ops.conv", "max_pool": "keras.ops.max_pool",
            "avg_pool": "keras.ops.average_pool"}


def _pool_kwargs(target: Target, mode: str, data_format) -> dict:
    kwargs = {"pool_size": [2, 2], "strides": [2, 2], "padding": "valid"}
    if data_format is not None:
        kwargs["data_format"] = data_format
    if target.flavor == "keras2":
        kwargs["pool_mode"] = mode
    return kwargs


def _conv_kwargs(target: Target, data_format) -> dict:
    kwargs = {"strides": [1, 1] if target.flavor == "keras2" else 1, "padding": "valid"}
    if data_format is not None:
        kwargs["data_format"] = data_format
    return kwargs


def _rounded(values) -> list:
    return [float(f"{v:.8g}") for v in np.asarray(values, dtype="float64").ravel()]


# -- epsilon --------------------------------------------------------------------------------
def _epsilon_ops(target: Target) -> list[tuple]:
    """(check, fn, args, kwargs, reference(eps), bound(ref), text) per op. Bounds leave
    out the floor of 2 tiny, which the comparison adds."""
    calls = _calls(target)
    keras2 = target.flavor == "keras2"
    return [
        ("epsilon/binary_crossentropy", calls["bce"], [BCE_TARGET, BCE_OUTPUT], {},
         lambda eps: bce_reference(BCE_TARGET, BCE_OUTPUT, eps),
         lambda ref: 16 * U32 * (np.abs(ref) + 1.0),
         "binary_crossentropy(target=[1, 0, 1, 0, 1], output=[0, 0, 1, 1, 0.25]); reference "
         "-(t log p + (1 - t) log(1 - p)) in float64, p clipped to [eps, 1 - eps] with the "
         "bounds rounded to float32 (1 - 1e-7 is 1 - 2^-23 there); "
         "bound 16 u (|ref| + 1), u = 2^-24"),
        ("epsilon/l2_normalize", calls["normalize"], [TINY_VECTORS], {"axis": -1},
         lambda eps: normalize_reference(TINY_VECTORS, eps, target.flavor),
         lambda ref: 16 * U32 * np.abs(ref),
         ("normalize" if not keras2 else "l2_normalize")
         + "(x=[[1e-8, -2e-8, 3e-8], [3, 4, 0]], axis=-1); reference "
         + ("x / max(||x||, eps) (Keras 3 docs)" if not keras2 else
            "x / sqrt(max(sum x^2, eps)) (Keras 2.3.1 Theano backend)")
         + " in float64; bound 16 u |ref| + 2 tiny, u = 2^-24"),
    ]


def _combined_status(statuses: list[str]) -> str:
    if "error" in statuses:
        return "error"
    if all(s == "unsupported" for s in statuses):
        return "unsupported"
    if "fail" in statuses or "unsupported" in statuses:
        return "fail"
    return "pass"


def _epsilon_check(run: TargetRun, runs: list, spec: tuple) -> dict:
    """One op under every (setup, epsilon) run, each against its own reference; the
    runs must also differ from each other."""
    check, fn, args, kwargs, reference, bound, text = spec
    expected, observed, statuses, values = {}, {}, [], []
    for setup, eps in runs:
        key = f"epsilon {eps:g}"
        ref = reference(eps)
        expected[key] = _rounded(ref)
        try:
            out = output(run, setup, fn, args, kwargs)
        except CallFailed as exc:
            observed[key] = exc.args[0]
            statuses.append(exc.status)
            values.append(None)
            continue
        ok, max_err, ratio = within(out, ref, bound(ref))
        observed[key] = _rounded(out) if out.shape == ref.shape else f"shape {list(out.shape)}"
        statuses.append("pass" if ok else "fail")
        values.append(out)
        if not ok:
            observed[key + " error"] = f"max |error| {max_err:.3g} = {ratio:.3g} x bound"
    first, second = values if len(values) == 2 else (None, None)
    if first is not None and second is not None and first.shape == second.shape:
        observed["runs differ"] = bool(np.any(first != second))
    expected["runs differ"] = True
    return make_record(run.target.id, "epsilon", check, _combined_status(statuses), expected,
                       observed,
                       f"{text}. Runs: keras.json epsilon {runs[0][1]:g} (default worker) and "
                       f"{runs[1][1]:g} (the KERAS_HOME-keras.json-read worker)")


def scenario_epsilon(run: TargetRun) -> list[dict]:
    target = run.target
    if target.flavor == "ops-module":
        return [make_record(target.id, "epsilon", "epsilon", "unsupported",
                            detail="an ops-module plugin has no configurable epsilon")]
    runs = [("default", float(target.epsilon)), ("json-read", DISTINCT_EPSILON)]
    return [_epsilon_check(run, runs, spec) for spec in _epsilon_ops(target)]


# -- image_data_format ------------------------------------------------------------------------
def _nchw(x):
    return np.ascontiguousarray(np.transpose(x, (0, 3, 1, 2)))


def _nhwc(x):
    return np.transpose(x, (0, 2, 3, 1))


def _image_checks(target: Target) -> list[tuple]:
    """(check, fn, args_last, args_first, kwargs(fmt), ref, bound, setup_last,
    setup_first, text) per check. Bounds leave out the floor of 2 tiny, which the
    comparison adds."""
    calls = _calls(target)
    x_conv, kernel, x_pool = image_data()
    conv_ref, conv_mag = conv_reference(x_conv, kernel)
    k = kernel.shape[0] * kernel.shape[1] * kernel.shape[2]
    conv_bound = 2 * k * U32 * conv_mag
    conv_text = (f"|channels_first result, transposed - channels_last result| <= 2 k u sum|x||w| "
                 f"(k = kh kw C_in = {k}, u = 2^-24: two summation orders, Higham's gamma_k); "
                 "the distance to a float64 cross-correlation is shown for information")
    checks = [("image_data_format/conv2d", calls["conv"], [x_conv, kernel],
               [_nchw(x_conv), kernel], lambda fmt: _conv_kwargs(target, fmt),
               conv_ref, conv_bound, "default", "default", conv_text)]
    for mode, name, fn in (("max", "max_pool", calls["max_pool"]),
                           ("avg", "avg_pool", calls["avg_pool"])):
        ref, mag = pool_reference(x_pool, mode)
        p = 4
        bound = 2 * (p + 1) * U32 * mag if mode == "avg" else np.zeros_like(ref)
        text = ("exact: max pooling picks elements, E = 0" if mode == "max" else
                f"|difference| <= 2 (p + 1) u mean|x| over each window (p = {p}, u = 2^-24)")
        checks.append((f"image_data_format/{name}", fn, [x_pool], [_nchw(x_pool)],
                       (lambda fmt, mode=mode: _pool_kwargs(target, mode, fmt)),
                       ref, bound, "default", "default", text))
    # the format from keras.json: no data_format argument; the default worker has
    # channels_last in keras.json, the json-read worker channels_first
    checks.append(("image_data_format/conv2d-format-from-keras.json", calls["conv"],
                   [x_conv, kernel], [_nchw(x_conv), kernel],
                   lambda fmt: _conv_kwargs(target, None), conv_ref, conv_bound,
                   "default", "json-read",
                   conv_text + "; data_format not passed: channels_last from the default "
                   "worker's keras.json, channels_first from the json-read worker's"))
    return checks


def _image_check(run: TargetRun, spec: tuple) -> dict:
    (check, fn, args_last, args_first, kwargs, ref, bound, setup_last, setup_first,
     text) = spec
    rec = lambda *a, **kw: make_record(run.target.id, "image_data_format", check, *a, **kw)
    try:
        params = [1] if len(args_last) == 2 else []  # the conv kernel
        last = output(run, setup_last, fn, args_last, kwargs("channels_last"), params)
        first = output(run, setup_first, fn, args_first, kwargs("channels_first"), params)
    except CallFailed as exc:
        return rec(exc.status, "transposed-equal results", exc.args[0], text)
    expected = {"channels_last shape": list(ref.shape),
                "channels_first shape": list(_nchw(ref).shape),
                "max |first^T - last|": f"<= {float(bound.max()):.3g}"}
    observed = {"channels_last shape": list(last.shape),
                "channels_first shape": list(first.shape)}
    if list(first.shape) != list(_nchw(ref).shape) or list(last.shape) != list(ref.shape):
        return rec("fail", expected, observed, text)
    first_t = _nhwc(first).astype("float64")
    ok_pair, pair_err, pair_ratio = within(first_t, last.astype("float64"), bound)
    last_err = within(last, ref, bound)[1]
    first_err = within(first_t, ref, bound)[1]
    observed["max |first^T - last|"] = f"{pair_err:.3g} ({pair_ratio:.3g} x bound)"
    # For information only: the op's own correctness is the nn suite's business
    # (Keras 2 on Theano convolves with a flipped kernel, by design).
    observed["max |error| vs float64 reference (information)"] = {
        "channels_last": f"{last_err:.3g}", "channels_first": f"{first_err:.3g}"}
    return rec("pass" if ok_pair else "fail", expected, observed, text)


def scenario_image_data_format(run: TargetRun) -> list[dict]:
    return [_image_check(run, spec) for spec in _image_checks(run.target)]
