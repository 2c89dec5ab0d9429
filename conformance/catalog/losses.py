"""Losses: crossentropies (keras.ops / keras.backend) and keras.losses functions.

One rule for every loss reference, at every floatx (it matters in float16):

    The reference is the documented formula evaluated in float64 on the floatx inputs,
    except where floatx changes a value outright rather than rounding it by a few u:
    (1) the formula's constants (epsilon, 1 - epsilon, the clip bounds) are taken as
        floatx holds them (`_clip_bounds`, `_floatx_epsilon`), and
    (2) an intermediate that the documented formula takes beyond floatx's largest
        finite value is infinite, as floatx arithmetic makes it (`_in_range`).
    Every other rounding to floatx is the tolerance's business, never the reference's.

Crossentropies on probabilities clip to [epsilon, 1 - epsilon], as Keras documents
(and every version's source does), after normalising categorical outputs to sum 1
along the class axis. By (1), float16's upper bound is 1, so p == 1 gives log(0)
exactly as the formula does in float16. By (2), kl_divergence's y_true / y_pred
(up to 1 / epsilon = 8.4e6 after the clip) is infinite in float16 beyond 65504,
and so is the loss. The other formulas stay within range on the drawn inputs (the
logit ranges keep exp finite). A backend that evaluates in a wider type and returns
a finite number there is reported (the `nan` verdict), as it departs from the
formula in floatx.

The additive epsilon term |f(eps) - f(0)| (docs/tolerance.md) is not used: the reference
applies epsilon exactly as documented, and at p = 0 that term is infinite; adding it
would hide the known divergence it exists to surface (tf.keras adds epsilon after clipping:
15.42 / 15.33 where the documented clip gives 16.118 / 15.942).

Probability inputs are drawn as documented: sparse_categorical_crossentropy's output
rows are probability distributions (non-negative, summing to 1, as a softmax gives
them) or logits with from_logits; categorical_crossentropy also gets raw non-negative
rows, which Keras documents it normalises.

Losses take batched tensors (batch, ..., features), so arrays have rank >= 2 except
for the elementwise binary crossentropy.
"""
from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import special

from conformance import strategies as S
from conformance.catalog import Call, Op
from conformance.tolerance import Absolute, Elementwise, Reduction

LOGIT_RANGE = {"float16": 12.0, "float32": 100.0, "float64": 800.0}  # exp overflows below


def _f(example, key):
    return example[key].astype("float64")


def _clip_bounds(ctx):
    """[epsilon, 1 - epsilon] as floatx computes them."""
    eps = np.asarray(ctx.epsilon, dtype=ctx.floatx)
    return float(eps), float(np.asarray(1, dtype=ctx.floatx) - eps)


def _floatx_epsilon(ctx):
    """epsilon as floatx holds it."""
    return float(np.asarray(ctx.epsilon, dtype=ctx.floatx))


def _in_range(values, floatx):
    """Rule (2): values beyond floatx's largest finite value (after rounding to floatx)
    become infinite, as floatx arithmetic makes them; the others keep float64."""
    with np.errstate(over="ignore"):
        rounded = np.asarray(values, dtype="float64").astype(floatx)
    return np.where(np.isinf(rounded) & np.isfinite(values), rounded.astype("float64"), values)


def _log(values):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(values)


def _times(a, b):
    """a * b with 0 * inf = nan, as floatx arithmetic gives it (no warning)."""
    with np.errstate(invalid="ignore"):
        return a * b


# -- input strategies ----------------------------------------------------------------
def _edges(floatx, lo, hi, values):
    """`values` in floatx within [lo, hi], without subnormals (see strategies.py)."""
    tiny = float(np.finfo(floatx).tiny)
    rounded = {S.representable(v, floatx) for v in values if lo <= v <= hi}
    return sorted(v for v in rounded if v == 0 or abs(v) >= tiny)


def _flush(array):
    """Subnormal results of input preprocessing become 0, as drawn inputs never are."""
    return np.where(np.abs(array) < np.finfo(array.dtype).tiny, 0, array).astype(array.dtype)


def _mixed(floatx, lo, hi, edges):
    """Floats in [lo, hi] mixed with exact edge values (0 and 1 for probabilities)."""
    return st.one_of(S.floats(floatx, lo, hi), st.sampled_from(_edges(floatx, lo, hi, edges)))


def _probability_elements(floatx):
    # a third exact 0 or 1 (the clip), then values next to the clip bounds and the
    # open interval
    near = _edges(floatx, 0.0, 1.0, (1e-8, 1e-7, 1e-5, 1e-3, 0.5, 1 - 1e-7))
    return st.one_of(S.floats(floatx, 0.0, 1.0), st.sampled_from([0.0, 1.0]),
                     st.sampled_from(near))


def _label_elements(floatx, soft):
    return _mixed(floatx, 0.0, 1.0, (0.0, 1.0)) if soft else st.sampled_from(
        [np.asarray(0, floatx).item(), np.asarray(1, floatx).item()])


def _batched_shape(min_dims=2):
    return S.shapes(min_dims, 3, min_side=1)


@st.composite
def _binary_inputs(draw, floatx, from_logits):
    shape = draw(S.shapes(1, 3))
    target = draw(hnp.arrays(floatx, shape, elements=_label_elements(floatx, draw(st.booleans()))))
    if from_logits:
        hi = draw(st.sampled_from([10.0, LOGIT_RANGE[floatx]]))
        output = draw(hnp.arrays(floatx, shape, elements=_mixed(floatx, -hi, hi, (0.0, -hi, hi))))
    else:
        output = draw(hnp.arrays(floatx, shape, elements=_probability_elements(floatx)))
    return {"target": target, "output": output}


def _one_hot(labels, classes, floatx):
    return np.eye(classes, dtype=floatx)[labels]


def _nonzero_rows(p, axis):
    """Rows (along axis) that sum to 0 get a 1 in their first entry: 0 / 0 is undefined."""
    p = np.moveaxis(p.copy(), axis, -1)
    empty = p.sum(axis=-1) == 0
    p[..., 0] = np.where(empty, 1, p[..., 0])
    return np.moveaxis(p, -1, axis)


@st.composite
def _categorical_inputs(draw, floatx, from_logits, sparse=False):
    """{"target", "output", "axis"}: one-hot / soft / integer labels, probs or logits."""
    shape = draw(_batched_shape())
    # channels_last (-1) or channels_first (1) class axis; sparse targets are
    # documented with the classes last only
    axis = -1 if sparse else draw(st.sampled_from([-1, 1]))
    classes = shape[axis]
    if from_logits:
        hi = draw(st.sampled_from([10.0, LOGIT_RANGE[floatx]]))
        output = draw(hnp.arrays(floatx, shape, elements=_mixed(floatx, -hi, hi, (0.0, -hi, hi))))
    else:
        output = _nonzero_rows(draw(hnp.arrays(floatx, shape,
                                               elements=_probability_elements(floatx))), axis)
        # rows summing to 1, as a softmax gives them (the documented input; the only
        # one for sparse labels, which not every backend normalises); raw rows
        # exercise the normalisation Keras documents for categorical_crossentropy
        if sparse or draw(st.booleans()):
            total = output.astype("float64").sum(axis=axis, keepdims=True)
            output = _flush((output.astype("float64") / total).astype(floatx))
    label_shape = tuple(int(s) for s in np.delete(shape, axis % len(shape)))
    labels = draw(hnp.arrays("int32", label_shape, elements=st.integers(0, classes - 1)))
    if sparse:
        return {"target": labels, "output": output}
    if draw(st.booleans()):
        target = np.moveaxis(_one_hot(labels, classes, floatx), -1, axis)
    else:  # soft labels: any non-negative weights (label smoothing, mixup)
        target = draw(hnp.arrays(floatx, shape, elements=_label_elements(floatx, soft=True)))
    return {"target": target, "output": output, "axis": axis}


@st.composite
def _pair_inputs(draw, floatx, true_elements, pred_elements):
    """{"y_true", "y_pred"} of one batched shape (keras.losses functions)."""
    shape = draw(_batched_shape())
    return {"y_true": draw(hnp.arrays(floatx, shape, elements=true_elements(floatx, draw))),
            "y_pred": draw(hnp.arrays(floatx, shape, elements=pred_elements(floatx)))}


# -- crossentropy references ----------------------------------------------------------------
def _bce(example, ctx):
    t, p = _f(example, "target"), _f(example, "output")
    lo, hi = _clip_bounds(ctx)
    p = np.clip(p, lo, hi)
    return -(_times(t, _log(p)) + _times(1 - t, _log(1 - p)))


def _bce_logits(example, ctx):
    # -(t log sigmoid(z) + (1 - t) log sigmoid(-z)), without clipping: Keras 3 and
    # tf.keras document and implement the logits form directly.
    t, z = _f(example, "target"), _f(example, "output")
    return t * np.logaddexp(0, -z) + (1 - t) * np.logaddexp(0, z)


def _normalised_log_probs(example, ctx, axis):
    """log of clip(p / sum(p), epsilon, 1 - epsilon) along axis."""
    p = _f(example, "output")
    lo, hi = _clip_bounds(ctx)
    return _log(np.clip(p / p.sum(axis=axis, keepdims=True), lo, hi))


def _targets(example, axis):
    if example["target"].dtype.kind in "iu":  # sparse labels, classes last
        classes = example["output"].shape[-1]
        return np.eye(classes)[example["target"]]
    return _f(example, "target")


def _cce(example, ctx, from_logits, axis=None):
    axis = example.get("axis", -1) if axis is None else axis
    log_q = (special.log_softmax(_f(example, "output"), axis=axis) if from_logits
             else _normalised_log_probs(example, ctx, axis))
    return -_times(_targets(example, axis), log_q).sum(axis=axis)


# -- crossentropy tolerances -----------------------------------------------------------------
def _bce_scale(example, index):
    # log p, log(1 - p) (N_f = 4 each), the products and the sum, all relative to
    # terms of one sign; plus 1 - p rounded (an absolute u in log(1 - p), times 1 - t).
    # Magnitudes only: the default epsilon bounds p; log(0) terms (float16, p = 1)
    # count 0, their inf / nan is judged by position.
    t, p = _f(example, "target"), _f(example, "output")
    lo, hi = _clip_bounds(_Ctx(example, "output"))
    p = np.clip(p, lo, hi)
    terms = np.abs(_times(t, _log(p))) + np.abs(_times(1 - t, _log(1 - p)))
    return np.nan_to_num(terms, nan=0.0, posinf=0.0) + np.abs(1 - t) / 4


def _bce_logits_scale(example, index):
    # t softplus(-z) + (1 - t) softplus(z): each softplus to 4 ulp plus its input term
    # |z sigmoid(+-z)|, and the label's rounding term |t z| (z * t, 1 - t).
    t, z = _f(example, "target"), _f(example, "output")
    sp_neg, sp_pos = np.logaddexp(0, -z), np.logaddexp(0, z)
    return (np.abs(t) * (sp_neg + np.abs(z) * special.expit(-z))
            + np.abs(1 - t) * (sp_pos + np.abs(z) * special.expit(z)) + np.abs(t * z))


def _class_axis(example):
    return example.get("axis", -1)


def _cce_terms(from_logits):
    """(n, sum_i |t_i log q_i| + the per-class error of log q_i weighted by |t_i|).

    Probabilities: p / sum(p) carries the sum's 4 sqrt(n) u and the division's u as
    an absolute error in log q. Logits: log_softmax's shifts |z_i - m|, the weighted
    shifts and log S (as for the log_softmax activation).
    """
    def terms(example, index):
        axis = _class_axis(example)
        n = example["output"].shape[axis]
        t = np.abs(_targets(example, axis))
        # Reduction gives 4 sqrt(n) u per unit below; the per-class errors of log q
        # (4 ulp <= 8 u |log q|, and the absolute ones) are divided by sqrt(n) to match.
        root = np.sqrt(n)
        if from_logits:
            z = _f(example, "output")
            d = np.abs(z - z.max(axis=axis, keepdims=True))
            q = special.softmax(z, axis=axis)
            shifts = (d + (q * d).sum(axis=axis, keepdims=True)
                      + np.log(np.exp(-d).sum(axis=axis, keepdims=True)) + 1)
            log_q = np.abs(special.log_softmax(z, axis=axis))
            per_class = log_q * (1 + 2 / root) + shifts / root + 1
        else:  # p / sum(p): the sum's 4 sqrt(n) u and the division's u, absolute in log q
            p = _f(example, "output")
            log_q = np.abs(np.log(np.clip(p / p.sum(axis=axis, keepdims=True), 1e-8, 1)))
            per_class = log_q * (1 + 2 / root) + 1 + 1 / root
        return n, (t * per_class).sum(axis=axis)
    return terms


# -- keras.losses references and tolerances ----------------------------------------------------
def _hinge_labels(t):
    """Binary 0/1 labels (all of them) become -1/1, as both versions document."""
    return 2 * t - 1 if np.isin(t, (0, 1)).all() else t


def _mean_terms(summands):
    """Reduction over the last axis of the formula's summands (n, sum |summand|)."""
    def terms(example, index):
        values = summands(example)
        return values.shape[-1], np.abs(values).sum(axis=-1)
    return terms


def _hinge_margin(example):
    return 1 - _hinge_labels(_f(example, "y_true")) * _f(example, "y_pred")


def _poisson_log(example, ctx):
    return _log(_f(example, "y_pred") + _floatx_epsilon(ctx))


def _kl_clipped(example, ctx):
    eps = _floatx_epsilon(ctx)
    return (np.clip(_f(example, "y_true"), eps, 1), np.clip(_f(example, "y_pred"), eps, 1))


def _kl(example, ctx):
    """sum(t log(t / p)) over the clipped t, p; t / p overflows float16 (rule 2)."""
    t, p = _kl_clipped(example, ctx)
    return (t * np.log(_in_range(t / p, ctx.floatx))).sum(axis=-1)


def _kl_terms(example, index):
    # t / p rounded (u), log (4 ulp), the product: per class |t log(t/p)| + |t|
    t, p = _kl_clipped(example, _Ctx(example, "y_pred"))
    return t.shape[-1], (np.abs(t * np.log(t / p)) + t).sum(axis=-1)


class _Ctx:
    """For tolerance magnitudes only (tolerances get no context): the default epsilon."""

    def __init__(self, example, key):
        self.floatx = str(example[key].dtype)
        self.epsilon = 1e-7


def _categorical_hinge(example):
    t, p = _f(example, "y_true"), _f(example, "y_pred")
    pos = (t * p).sum(axis=-1)
    neg = ((1 - t) * p).max(axis=-1)
    return np.maximum(neg - pos + 1, 0)


def _categorical_hinge_terms(example, index):
    t, p = _f(example, "y_true"), _f(example, "y_pred")
    pos = np.abs(t * p).sum(axis=-1)
    neg = np.abs((1 - t) * p).max(axis=-1)
    return t.shape[-1], pos + neg + 1


def _log_cosh(example):
    x = _f(example, "y_pred") - _f(example, "y_true")
    # log(cosh(x)) = log1p(cosh(x) - 1) = log1p(2 sinh(x/2)^2): no cancellation near 0
    return np.log1p(2 * np.sinh(x / 2) ** 2).mean(axis=-1)


def _log_cosh_summands(example):
    # Keras evaluates x + softplus(-2 x) - log 2 (both versions): its summands' sizes
    x = _f(example, "y_pred") - _f(example, "y_true")
    return np.abs(x) + np.logaddexp(0, -2 * x) + np.log(2)


def _squared_hinge_summands(example):
    # (max(1 - t p, 0))^2: the square of a margin that carries u (1 + |t p|)
    margin = np.maximum(_hinge_margin(example), 0)
    tp = np.abs(_hinge_labels(_f(example, "y_true")) * _f(example, "y_pred"))
    return margin ** 2 + 2 * margin * (1 + tp)


def _hinge_summands(example):
    tp = np.abs(_hinge_labels(_f(example, "y_true")) * _f(example, "y_pred"))
    return 1 + tp


# -- op builders ---------------------------------------------------------------------------
def _crossentropy(name, k3_fn, k2_fn, inputs, reference, tolerance, from_logits, axis_key,
                  notes=""):
    static = {"from_logits": from_logits}
    kwargs = {"axis": "axis"} if axis_key else {}
    return Op(
        name=name, family="losses", inputs=inputs, reference=reference, tolerance=tolerance,
        keras3=Call(f"keras.ops.{k3_fn}", args=("target", "output"), kwargs=kwargs,
                    static=static),
        keras2=Call(f"keras.backend.{k2_fn}", args=("target", "output"), kwargs=kwargs,
                    static=static),
        notes=notes,
    )


def _loss(name, reference, tolerance, inputs, k3, k2, notes=""):
    """A keras.losses function of (y_true, y_pred), reduced over the last axis."""
    return Op(
        name=name, family="losses", inputs=inputs, reference=reference, tolerance=tolerance,
        keras3=Call(f"keras.losses.{k3}", args=("y_true", "y_pred")),
        keras2=Call(f"keras.losses.{k2}", args=("y_true", "y_pred")) if k2 else None,
        notes=notes,
    )


def _reals(lo, hi):
    return lambda floatx, draw=None: _mixed(floatx, lo, hi, (0.0, lo, hi))


def _probabilities(floatx, draw=None):
    return _probability_elements(floatx)


def _hinge_true(floatx, draw):
    # per example: binary 0/1 labels (converted to -1/1) or -1/1 labels
    values = draw(st.sampled_from([(0.0, 1.0), (-1.0, 1.0)]))
    return st.sampled_from(values)


def _binary_true(floatx, draw):
    return st.sampled_from([0.0, 1.0])


def _counts(floatx, draw):
    return st.one_of(st.sampled_from([0.0, 1.0, 2.0, 3.0, 5.0]), S.floats(floatx, 0.0, 10.0))


def _rates(floatx):
    return _mixed(floatx, 0.0, 10.0, (0.0, 1e-3, 1.0))


OPS = [
    _crossentropy(
        "binary_crossentropy", "binary_crossentropy", "binary_crossentropy",
        lambda fx: _binary_inputs(fx, from_logits=False), _bce,
        Elementwise(4) + Absolute(_bce_scale, 4, "4 u (|t log p| + |(1-t) log(1-p)| + |1-t|/4)"),
        from_logits=False, axis_key=False,
        notes="Probabilities clipped to [epsilon, 1 - epsilon] (bounds in floatx). Known: "
              "Keras 2 TensorFlow adds epsilon after clipping (15.42 / 15.33 at p = 0 / 1)."),
    _crossentropy(
        "binary_crossentropy_from_logits", "binary_crossentropy", "binary_crossentropy",
        lambda fx: _binary_inputs(fx, from_logits=True), lambda ex, ctx: _bce_logits(ex, ctx),
        Elementwise(4) + Absolute(_bce_logits_scale, 4, "4 u (t sp(-z) + (1-t) sp(z) + |z| terms)"),
        from_logits=True, axis_key=False,
        notes="Logits form, no clip (Keras 3, tf.keras). Keras 2 Theano and CNTK take "
              "sigmoid(z) and then clip it to [epsilon, 1 - epsilon]."),
    _crossentropy(
        "categorical_crossentropy", "categorical_crossentropy", "categorical_crossentropy",
        lambda fx: _categorical_inputs(fx, from_logits=False),
        lambda ex, ctx: _cce(ex, ctx, from_logits=False),
        Reduction(_cce_terms(from_logits=False)), from_logits=False, axis_key=True,
        notes="Output normalised to sum 1 along the axis, then clipped to [epsilon, "
              "1 - epsilon] (both versions)."),
    _crossentropy(
        "categorical_crossentropy_from_logits", "categorical_crossentropy",
        "categorical_crossentropy",
        lambda fx: _categorical_inputs(fx, from_logits=True),
        lambda ex, ctx: _cce(ex, ctx, from_logits=True),
        Reduction(_cce_terms(from_logits=True)), from_logits=True, axis_key=True),
    _crossentropy(
        "sparse_categorical_crossentropy", "sparse_categorical_crossentropy",
        "sparse_categorical_crossentropy",
        lambda fx: _categorical_inputs(fx, from_logits=False, sparse=True),
        lambda ex, ctx: _cce(ex, ctx, from_logits=False, axis=-1),
        Reduction(_cce_terms(from_logits=False)), from_logits=False, axis_key=False,
        notes="int32 labels, classes last; normalise then clip as categorical_crossentropy."),
    _crossentropy(
        "sparse_categorical_crossentropy_from_logits", "sparse_categorical_crossentropy",
        "sparse_categorical_crossentropy",
        lambda fx: _categorical_inputs(fx, from_logits=True, sparse=True),
        lambda ex, ctx: _cce(ex, ctx, from_logits=True, axis=-1),
        Reduction(_cce_terms(from_logits=True)), from_logits=True, axis_key=False),
    # -- keras.losses functions (mean or sum over the last axis) ---------------------------------
    _loss("mean_squared_error",
          lambda ex, ctx: ((_f(ex, "y_true") - _f(ex, "y_pred")) ** 2).mean(axis=-1),
          Reduction(_mean_terms(lambda ex: (_f(ex, "y_true") - _f(ex, "y_pred")) ** 2)),
          lambda fx: _pair_inputs(fx, _reals(-10.0, 10.0), _reals(-10.0, 10.0)),
          "mean_squared_error", "mean_squared_error"),
    _loss("mean_absolute_error",
          lambda ex, ctx: np.abs(_f(ex, "y_true") - _f(ex, "y_pred")).mean(axis=-1),
          Reduction(_mean_terms(lambda ex: _f(ex, "y_true") - _f(ex, "y_pred"))),
          lambda fx: _pair_inputs(fx, _reals(-10.0, 10.0), _reals(-10.0, 10.0)),
          "mean_absolute_error", "mean_absolute_error"),
    _loss("log_cosh", lambda ex, ctx: _log_cosh(ex), Reduction(_mean_terms(_log_cosh_summands)),
          lambda fx: _pair_inputs(fx, _reals(-10.0, 10.0), _reals(-10.0, 10.0)),
          "log_cosh", "logcosh", notes="Keras 2 name: keras.losses.logcosh."),
    _loss("hinge", lambda ex, ctx: np.maximum(_hinge_margin(ex), 0).mean(axis=-1),
          Reduction(_mean_terms(_hinge_summands)),
          lambda fx: _pair_inputs(fx, _hinge_true, _reals(-3.0, 3.0)),
          "hinge", "hinge", notes="0/1 labels (all of them) are converted to -1/1."),
    _loss("squared_hinge", lambda ex, ctx: (np.maximum(_hinge_margin(ex), 0) ** 2).mean(axis=-1),
          Reduction(_mean_terms(_squared_hinge_summands)),
          lambda fx: _pair_inputs(fx, _hinge_true, _reals(-3.0, 3.0)),
          "squared_hinge", "squared_hinge"),
    _loss("categorical_hinge", lambda ex, ctx: _categorical_hinge(ex),
          Reduction(_categorical_hinge_terms),
          lambda fx: _pair_inputs(fx, _binary_true, _reals(-3.0, 3.0)),
          "categorical_hinge", "categorical_hinge"),
    _loss("kl_divergence", _kl, Reduction(_kl_terms),
          lambda fx: _pair_inputs(fx, lambda f, draw: _probabilities(f), _probabilities),
          "kl_divergence", "kullback_leibler_divergence",
          notes="y_true and y_pred clipped to [epsilon, 1] (epsilon in floatx). Keras 2 "
                "name: kullback_leibler_divergence."),
    _loss("poisson",
          lambda ex, ctx: (_f(ex, "y_pred") - _f(ex, "y_true") * _poisson_log(ex, ctx)).mean(axis=-1),
          Reduction(_mean_terms(lambda ex: np.abs(_f(ex, "y_pred")) + np.abs(_f(ex, "y_true")) * (
              np.abs(_poisson_log(ex, _Ctx(ex, "y_pred"))) + 1))),
          lambda fx: _pair_inputs(fx, _counts, _rates),
          "poisson", "poisson",
          notes="mean(y_pred - y_true log(y_pred + epsilon)), epsilon in floatx."),
]
