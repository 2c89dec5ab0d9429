"""Random ops: judged by sample statistics, never by values.

Each op draws a few thousand samples (static shape, distribution parameters and an
integer seed; no array inputs except for `categorical` logits and `shuffle`'s x).
The reference is a zeros placeholder of the output's shape: compare checks the shape
and dtype exactly, and `Statistical` compares one vector of statistics per output:

- the number of non-finite samples and of samples outside the support (expected 0,
  standard error 0: any such sample fails);
- the sample mean (standard error sigma / sqrt(n)) and unbiased variance (standard
  error sigma^2 sqrt((kurtosis_excess + 2 + 2 / (n - 1)) / n));
- the fraction of samples at or below a few quantiles t of the distribution
  (expected cdf(t), standard error sqrt(p (1 - p) / n)), which checks its shape.

A statistic passes within 6 standard errors (plus 4 u |expected| for the rounding of
samples to floatx). Expected values come from `scipy.stats`, in float64.
"""
from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from scipy import stats as sps

from conformance import strategies as S
from conformance.catalog import Call, Op
from conformance.tolerance import Statistical, unit_roundoff

# a few thousand samples in shapes of several ranks
SHAPES = [(4096,), (64, 64), (16, 16, 16), (8, 512)]
_SEED = st.integers(1, 10**6)


# -- statistics ------------------------------------------------------------------------
class Sampled(Statistical):
    """`Statistical` whose statistics(example, outputs, floatx) also see floatx (support
    bounds allow the rounding of samples into floatx; outputs arrive as float64)."""

    def errors(self, example, outputs, refs, floatx, memo=None):
        inner = Statistical(lambda ex, outs: self.statistics(ex, outs, floatx), self.sigmas)
        return inner.errors(example, outputs, refs, floatx)


_DIST_FACTS: dict = {}  # (distribution, parameters, quantiles) -> _dist_facts(...)


def _dist_facts(dist, quantiles):
    """(mean, var, kurtosis, [(threshold, cdf at threshold)] per quantile) of a frozen
    scipy distribution. Memoized by its name and parameters: scipy computes some of
    them by numerical integration (truncnorm), which is slow, and a case asks for them
    once per example and target, with the same parameters."""
    key = (dist.dist.name, dist.args, tuple(sorted(dist.kwds.items())), tuple(quantiles))
    try:
        return _DIST_FACTS[key]
    except KeyError:
        pass
    except TypeError:  # an unhashable parameter (an array): computed, not kept
        key = None
    with np.errstate(divide="ignore", invalid="ignore"):
        mean, var, kurtosis = (float(v) for v in dist.stats(moments="mvk"))
    thresholds = [dist.ppf(q) for q in quantiles]
    facts = (mean, var, kurtosis, [(t, float(dist.cdf(t))) for t in thresholds])
    if key is not None:
        if len(_DIST_FACTS) > 4096:
            _DIST_FACTS.clear()
        _DIST_FACTS[key] = facts
    return facts


def _sample_stats(samples, dist, in_support, quantiles=(0.1, 0.5, 0.9)):
    """[(observed, expected, standard error)] as three aligned vectors (one output)."""
    x = np.asarray(samples, dtype="float64").ravel()
    finite = x[np.isfinite(x)]
    n = max(finite.size, 1)
    observed = [x.size - finite.size, np.count_nonzero(~in_support(finite))]
    expected = [0.0, 0.0]
    stderr = [0.0, 0.0]
    mean, var, kurtosis, points = _dist_facts(dist, quantiles)
    if var == 0:  # a point mass (p = 0 or 1): scipy's kurtosis is nan, every sample is mean
        kurtosis = -2.0
    observed.append(finite.mean() if finite.size else mean)  # no samples: counts fail
    expected.append(mean)
    stderr.append(np.sqrt(var / n))
    if kurtosis + 2 > 1e-6 and n > 1:
        # unbiased sample variance; exact Var(s^2) = var^2 (kurtosis + 2 + 2 / (n - 1)) / n.
        # Two-point distributions (kurtosis = -2) are left out: their variance is a
        # function of the mean, and its sampling error is not normal (chi-squared).
        observed.append(finite.var(ddof=1))
        expected.append(var)
        stderr.append(var * np.sqrt((kurtosis + 2 + 2 / (n - 1)) / n))
    for threshold, p in points:
        observed.append(np.count_nonzero(finite <= threshold) / n)
        expected.append(p)
        stderr.append(np.sqrt(p * (1 - p) / n))
    return [(np.array(observed, "float64"), np.array(expected), np.array(stderr))]


def _within(lo, hi):
    return lambda x: (x >= lo) & (x <= hi)


def _integers_within(lo, hi):
    return lambda x: (x == np.round(x)) & (x >= lo) & (x <= hi)


def _placeholder(example, ctx, dtype="float64"):
    """Zeros of the output shape: random ops are judged by statistics, not values."""
    return np.zeros(tuple(example["shape"]), dtype)


def _shape_kwargs(*names):
    return {name: name for name in ("shape",) + names + ("seed",)}


# -- normal / uniform / truncated normal ---------------------------------------------------
@st.composite
def _location_scale(draw, floatx, lo_name, hi_name):
    """A shape, a location in [-5, 5] and a scale in [0.1, 5], representable in floatx."""
    loc = draw(S.floats(floatx, -5.0, 5.0))
    scale = draw(S.floats(floatx, 0.1, 5.0))
    return {"shape": list(draw(st.sampled_from(SHAPES))), lo_name: loc, hi_name: scale,
            "seed": draw(_SEED)}


@st.composite
def _uniform_inputs(draw, floatx):
    lo = draw(S.floats(floatx, -5.0, 5.0))
    width = draw(st.sampled_from([0.5, 1.0, 3.0, 10.0]))
    hi = S.representable(lo + width, floatx)
    return {"shape": list(draw(st.sampled_from(SHAPES))), "minval": lo, "maxval": hi,
            "seed": draw(_SEED)}


def _normal_stats(example, outputs, floatx):
    dist = sps.norm(example["mean"], example["stddev"])
    # quantiles at mean - sigma, mean, mean + sigma
    return _sample_stats(outputs[0], dist, lambda x: np.ones(x.shape, bool),
                         quantiles=(0.15865525393145707, 0.5, 0.8413447460685429))


def _uniform_stats(example, outputs, floatx):
    """Support [minval, maxval] up to 2 u (|minval| + |maxval|).

    Keras documents maxval as exclusive, but every backend computes
    minval + (maxval - minval) U in floatx, and that rounding reaches maxval (and,
    when maxval - minval rounds up, one ulp beyond); exclusivity is not judged.
    """
    lo, hi = example["minval"], example["maxval"]
    slack = 2 * unit_roundoff(floatx) * (abs(lo) + abs(hi))
    return _sample_stats(outputs[0], sps.uniform(lo, hi - lo),
                         _within(lo - slack, hi + slack), quantiles=(0.25, 0.5, 0.75))


def _truncated_stats(example, outputs, floatx):
    """Keras: values more than 2 stddev from the mean are re-drawn.

    The support check allows the rounding of mean + z stddev into floatx:
    4 u (|mean| + 4 stddev) beyond the exact bounds.
    """
    mean, sd = example["mean"], example["stddev"]
    slack = 4 * unit_roundoff(floatx) * (abs(mean) + 4 * sd)
    dist = sps.truncnorm(-2.0, 2.0, loc=mean, scale=sd)
    return _sample_stats(outputs[0], dist,
                         _within(mean - 2 * sd - slack, mean + 2 * sd + slack),
                         quantiles=(0.1, 0.5, 0.9))




# -- Bernoulli / binomial / randint / gamma / beta -----------------------------------------
@st.composite
def _bernoulli_inputs(draw, floatx):
    # 0 and 1 are the edge probabilities users hit (masks that keep or drop all)
    p = draw(st.sampled_from([0.0, 0.1, 0.5, 0.9, 1.0]))
    return {"shape": list(draw(st.sampled_from(SHAPES))), "p": p, "seed": draw(_SEED)}


def _bernoulli_stats(example, outputs, floatx):
    p = example["p"]
    return _sample_stats(outputs[0], sps.bernoulli(p), _integers_within(0, 1), quantiles=())


@st.composite
def _binomial_inputs(draw, floatx):
    return {"shape": list(draw(st.sampled_from(SHAPES))),
            "counts": draw(st.sampled_from([1, 5, 20])),
            "probabilities": draw(st.sampled_from([0.0, 0.2, 0.5, 0.8, 1.0])),
            "seed": draw(_SEED)}


def _binomial_stats(example, outputs, floatx):
    n, p = example["counts"], example["probabilities"]
    return _sample_stats(outputs[0], sps.binom(n, p), _integers_within(0, n),
                         quantiles=(0.1, 0.25, 0.5, 0.75, 0.9))


@st.composite
def _randint_inputs(draw, floatx):
    lo = draw(st.integers(-50, 50))
    return {"shape": list(draw(st.sampled_from(SHAPES))), "minval": lo,
            "maxval": lo + draw(st.sampled_from([1, 2, 7, 100])), "seed": draw(_SEED)}


def _randint_stats(example, outputs, floatx):
    lo, hi = example["minval"], example["maxval"]  # maxval exclusive
    return _sample_stats(outputs[0], sps.randint(lo, hi), _integers_within(lo, hi - 1),
                         quantiles=(0.1, 0.25, 0.5, 0.75, 0.9))


@st.composite
def _gamma_inputs(draw, floatx):
    return {"shape": list(draw(st.sampled_from(SHAPES))),
            "alpha": draw(st.sampled_from([0.5, 1.0, 2.5, 9.0])), "seed": draw(_SEED)}


def _gamma_stats(example, outputs, floatx):
    # >= 0: for small alpha, samples below floatx's smallest normal may flush to 0
    return _sample_stats(outputs[0], sps.gamma(example["alpha"]), _within(0.0, np.inf))


@st.composite
def _beta_inputs(draw, floatx):
    return {"shape": list(draw(st.sampled_from(SHAPES))),
            "alpha": draw(st.sampled_from([0.5, 1.0, 2.0, 5.0])),
            "beta": draw(st.sampled_from([0.5, 1.0, 3.0])), "seed": draw(_SEED)}


def _beta_stats(example, outputs, floatx):
    return _sample_stats(outputs[0], sps.beta(example["alpha"], example["beta"]),
                         _within(0.0, 1.0))


# -- categorical ----------------------------------------------------------------------------
NUM_SAMPLES = 2048


@st.composite
def _categorical_inputs(draw, floatx):
    batch = draw(st.integers(1, 3))
    classes = draw(st.integers(2, 5))
    # logits down to -20: classes with (nearly) zero probability must (nearly) never occur
    return {"logits": draw(S.arrays(floatx, (batch, classes), -20.0, 5.0)),
            "num_samples": NUM_SAMPLES, "seed": draw(_SEED)}


def _softmax64(logits):
    z = logits.astype("float64")
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _categorical_stats(example, outputs, floatx):
    """Per (row, class): the observed frequency against softmax(logits), plus the count
    of samples that are not a class index.

    Rare classes (n p ~ 1) have a Poisson, not normal, upper tail: the standard error
    gets 5 / (6 n) added, so 6 standard errors allow 5 extra samples (a Poisson(1)
    count reaches 1 + 6 + 5 = 12 with probability 1e-9).
    """
    probs = _softmax64(example["logits"])
    samples = np.asarray(outputs[0], dtype="float64")
    classes = probs.shape[-1]
    n = max(samples.shape[-1], 1)
    bad = np.count_nonzero(~_integers_within(0, classes - 1)(samples))
    freq = np.stack([(samples == c).sum(axis=-1) / n for c in range(classes)], axis=-1)
    observed = np.concatenate([[bad], freq.ravel()])
    expected = np.concatenate([[0.0], probs.ravel()])
    stderr = np.concatenate([[0.0], (np.sqrt(probs * (1 - probs) / n) + 5 / (6 * n)).ravel()])
    return [(observed, expected, stderr)]


# -- shuffle --------------------------------------------------------------------------------
SHUFFLE_ROWS = 1024  # integers up to 2048 are exact in float16


@st.composite
def _shuffle_inputs(draw, floatx):
    """Rows i * (+-1, ...) with i a permutation of 0..N-1: every row is distinct."""
    columns = draw(st.sampled_from([1, 3]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    signs = np.array([1.0, -1.0, 1.0][:columns])
    x = rng.permutation(SHUFFLE_ROWS)[:, None] * signs[None, :]
    if columns == 1 and draw(st.booleans()):
        x = x[:, 0]
    return {"x": x.astype(floatx), "seed": draw(_SEED)}


def _shuffle_stats(example, outputs, floatx):
    """Rows must be a permutation of x's rows (exact), and a random one: the correlation
    between each row's old and new position is ~ N(0, 1 / (N - 1))."""
    x = example["x"].astype("float64").reshape(SHUFFLE_ROWS, -1)
    y = np.asarray(outputs[0], dtype="float64").reshape(SHUFFLE_ROWS, -1)
    old_position = {row: i for i, row in enumerate(map(tuple, x))}
    sources = np.array([old_position.get(tuple(row), -1) for row in y])
    mismatched = np.count_nonzero(sources < 0) + (SHUFFLE_ROWS - len(set(sources) - {-1}))
    if mismatched:
        correlation = 1.0  # not a permutation: the correlation says nothing
    else:
        correlation = float(np.corrcoef(sources, np.arange(SHUFFLE_ROWS))[0, 1])
    return [(np.array([mismatched, correlation], "float64"), np.array([0.0, 0.0]),
             np.array([0.0, 1 / np.sqrt(SHUFFLE_ROWS - 1)]))]


# -- ops --------------------------------------------------------------------------------------
def _k3_random(name, *params):
    return Call(f"keras.random.{name}", kwargs=_shape_kwargs(*params))


OPS = [
    Op(
        name="random_normal", family="random",
        inputs=lambda fx: _location_scale(fx, "mean", "stddev"),
        reference=_placeholder,
        tolerance=Sampled(_normal_stats),
        keras3=_k3_random("normal", "mean", "stddev"),
        keras2=Call("keras.backend.random_normal", kwargs=_shape_kwargs("mean", "stddev")),
    ),
    Op(
        name="random_uniform", family="random",
        inputs=_uniform_inputs,
        reference=_placeholder,
        tolerance=Sampled(_uniform_stats),
        keras3=_k3_random("uniform", "minval", "maxval"),
        keras2=Call("keras.backend.random_uniform", kwargs=_shape_kwargs("minval", "maxval")),
    ),
    Op(
        name="truncated_normal", family="random",
        inputs=lambda fx: _location_scale(fx, "mean", "stddev"),
        reference=_placeholder,
        tolerance=Sampled(_truncated_stats),
        keras3=_k3_random("truncated_normal", "mean", "stddev"),
        keras2=Call("keras.backend.truncated_normal", kwargs=_shape_kwargs("mean", "stddev")),
    ),
    Op(
        name="random_bernoulli", family="random",
        inputs=_bernoulli_inputs,
        reference=_placeholder,
        tolerance=Sampled(_bernoulli_stats),
        # Keras 3 has no Bernoulli op: binomial with one trial is the same distribution
        keras3=Call("keras.random.binomial",
                    kwargs={"shape": "shape", "probabilities": "p", "seed": "seed"},
                    static={"counts": 1}),
        keras2=Call("keras.backend.random_binomial", kwargs=_shape_kwargs("p")),
    ),
    Op(
        name="random_binomial", family="random",
        inputs=_binomial_inputs,
        reference=_placeholder,
        tolerance=Sampled(_binomial_stats),
        keras3=_k3_random("binomial", "counts", "probabilities"),
        keras2=None,  # Keras 2's random_binomial is a Bernoulli draw (random_bernoulli)
    ),
    Op(
        name="random_randint", family="random",
        inputs=_randint_inputs,
        reference=lambda ex, ctx: _placeholder(ex, ctx, "int32"),
        tolerance=Sampled(_randint_stats),
        keras3=_k3_random("randint", "minval", "maxval"),
        result="int",
    ),
    Op(
        name="random_gamma", family="random",
        inputs=_gamma_inputs,
        reference=_placeholder,
        tolerance=Sampled(_gamma_stats),
        keras3=_k3_random("gamma", "alpha"),
    ),
    Op(
        name="random_beta", family="random",
        inputs=_beta_inputs,
        reference=_placeholder,
        tolerance=Sampled(_beta_stats),
        keras3=_k3_random("beta", "alpha", "beta"),
    ),
    Op(
        name="random_categorical", family="random",
        inputs=_categorical_inputs,
        reference=lambda ex, ctx: np.zeros((ex["logits"].shape[0], ex["num_samples"]),
                                           "int32"),
        tolerance=Sampled(_categorical_stats),
        keras3=Call("keras.random.categorical", args=("logits",),
                    kwargs={"num_samples": "num_samples", "seed": "seed"}),
        result="int",
    ),
    Op(
        name="random_shuffle", family="random",
        inputs=_shuffle_inputs,
        reference=lambda ex, ctx: np.zeros(ex["x"].shape),
        tolerance=Sampled(_shuffle_stats),
        keras3=Call("keras.random.shuffle", args=("x",), kwargs={"seed": "seed"},
                    static={"axis": 0}),
        result="input",
    ),
]
