"""Neural-network ops: convolutions, pooling, normalization, bias, dropout.

Every spatial op runs in ``channels_last`` (the keras.json default), passed
explicitly. "same" padding follows the TensorFlow convention that Keras documents
and that the Keras 3 torch/jax backends reproduce: output = ceil(n / stride), total
padding max((out - 1) stride + k_eff - n, 0), the smaller half on the left; pooling
windows ignore padded positions (max over real values, average over their count).

References are direct float64 loops over the (small) kernel window. Tolerances:
convolutions and average pooling are inner products (`Matmul`, k = window size x
input channels, S1 and S2 from the same float64 convolution on |x|,|w| and x^2,w^2);
max pooling is exact; dropout is judged statistically (`DropoutTolerance`).

Window arguments (pool_size, strides, dilation_rate) are static keyword arguments, so
they reach both flavors as tuples; Keras 2's 1-D functions take plain ints.
"""
from __future__ import annotations

import itertools

import numpy as np
from hypothesis import strategies as st

from conformance import strategies as S, structure
from conformance.catalog import Call, Op
from conformance.tolerance import (Exact, Matmul, Reduction, Rounded, Tolerance,
                                   once, ulp, unit_roundoff)

DATA_FORMAT = "channels_last"
_F64 = "float64"
# Structural combinations every case covers, pairwise (conformance.structure).
# "stepping" is one dimension because Keras documents strides > 1 and dilation > 1 as
# incompatible: unit, stride 2 on every axis, unequal strides (2, 1, 3)[:rank] (stride
# 3 for 1-D ops), dilation 2. Kernel and input sides are odd or even: "same" padding
# is asymmetric (one more on the right) for an even kernel, or stride 2 with an odd
# kernel on an even side. channels_first moves x's channels to axis 1 (a row only:
# free draws stay channels_last, as before).
CHANNELS = ("channels_last", "channels_first")
_STRIDES = {"stride_2": (2, 2, 2), "stride_3": (3, 3, 3), "stride_unequal": (2, 1, 3)}
_MODES = {"unit": "unit", "stride_2": "strided", "stride_3": "strided",
          "stride_unequal": "strided", "dilation_2": "dilated"}


def _window_structure(rank, dilation=True):
    steps = ("unit", "stride_2", "stride_3" if rank == 1 else "stride_unequal")
    return {"padding": ("valid", "same"), "stepping": steps + (("dilation_2",) if dilation else ()),
            "kernel": ("odd", "even"), "side": ("odd", "even"), "data_format": CHANNELS}


# -- float64 reference helpers -----------------------------------------------------
def _out_and_pads(size, k, stride, dilation, padding):
    """Output length and (left, right) padding of one spatial axis (TF convention)."""
    k_eff = (k - 1) * dilation + 1
    if padding == "valid":
        return (size - k_eff) // stride + 1, (0, 0)
    out = -(-size // stride)
    total = max((out - 1) * stride + k_eff - size, 0)
    return out, (total // 2, total - total // 2)


def _windows(x, kernel, strides, dilation, padding, fill=0.0):
    """Yield (offset, view) per kernel offset; view[b, o.., c] = x_pad[b, o*s + off*d, c]."""
    geometry = [_out_and_pads(x.shape[1 + i], k, s, d, padding)
                for i, (k, s, d) in enumerate(zip(kernel, strides, dilation))]
    padded = np.pad(x, [(0, 0)] + [pads for _, pads in geometry] + [(0, 0)],
                    constant_values=fill)
    for offset in itertools.product(*[range(k) for k in kernel]):
        index = tuple(slice(o * d, o * d + (out - 1) * s + 1, s)
                      for o, d, s, (out, _) in zip(offset, dilation, strides, geometry))
        yield offset, padded[(slice(None),) + index + (slice(None),)]


def conv_ref(x, w, strides, padding, dilation):
    """keras.ops.conv: x (B, *spatial, Cin), w (*kernel, Cin, Cout), cross-correlation."""
    rank = x.ndim - 2
    out = 0.0
    for offset, patch in _windows(x, w.shape[:rank], strides, dilation, padding):
        out = out + np.einsum("...c,cf->...f", patch, w[offset])
    return out


def depthwise_ref(x, w, strides, padding, dilation):
    """w (*kernel, Cin, M) -> output channel c * M + m (Keras / TF ordering)."""
    rank = x.ndim - 2
    out = 0.0
    for offset, patch in _windows(x, w.shape[:rank], strides, dilation, padding):
        out = out + patch[..., :, None] * w[offset]
    return out.reshape(out.shape[:-2] + (-1,))


def separable_ref(x, dw, pw, strides, padding, dilation):
    """Depthwise, then a 1x1 convolution with pw (1.., Cin * M, Cout)."""
    rank = x.ndim - 2
    inner = depthwise_ref(x, dw, strides, padding, dilation)
    return np.einsum("...c,cf->...f", inner, pw.reshape(pw.shape[rank:]))


def transpose_length(size, k, stride, padding):
    """Keras' conv_transpose output length (output_padding=None, dilation 1)."""
    return size * stride if padding == "same" else (size - 1) * stride + max(k, stride)


def conv_transpose_ref(x, w, strides, padding):
    """keras.ops.conv_transpose: w (*kernel, Cout, Cin); the gradient of `conv`.

    y[o] = sum x[i] w[k] over o = i*s + k - left, where `left` is the left padding
    of the forward "same" convolution from the output length back to the input's.
    """
    rank = x.ndim - 2
    kernel, cout = w.shape[:rank], w.shape[rank]
    sizes = x.shape[1:-1]
    outs = [transpose_length(n, k, s, padding) for n, k, s in zip(sizes, kernel, strides)]
    lefts = [0 if padding == "valid" else max((n - 1) * s + k - o, 0) // 2
             for n, k, s, o in zip(sizes, kernel, strides, outs)]
    full = [max((n - 1) * s + k, left + o)
            for n, k, s, left, o in zip(sizes, kernel, strides, lefts, outs)]
    y = np.zeros((x.shape[0], *full, cout))
    for offset in itertools.product(*[range(k) for k in kernel]):
        index = tuple(slice(k, k + (n - 1) * s + 1, s)
                      for k, n, s in zip(offset, sizes, strides))
        y[(slice(None),) + index] += np.einsum("...c,fc->...f", x, w[offset])
    crop = tuple(slice(left, left + o) for left, o in zip(lefts, outs))
    return y[(slice(None),) + crop]


def pool_ref(x, pool, strides, padding, mode):
    """Max over real (unpadded) values, or their sum divided by their count."""
    ones = [1] * len(pool)
    if mode == "max":
        return np.max(np.stack([p for _, p in _windows(x, pool, strides, ones, padding,
                                                        fill=-np.inf)]), axis=0)
    total = sum(p for _, p in _windows(x, pool, strides, ones, padding))
    count = sum(p for _, p in _windows(np.ones((1,) + x.shape[1:-1] + (1,)), pool, strides,
                                       ones, padding))
    return total / count


# -- example strategies ---------------------------------------------------------------
def _f64(example, key):
    return example[key].astype(_F64)


@st.composite
def _geometry(draw, rank, max_side=8, dilation=True, max_kernel=3):
    """kernel, strides, dilation_rate, padding and spatial sizes (valid fits the window).

    Strides and dilation are never both > 1: Keras documents them as incompatible.
    """
    kernel = [draw(structure.narrowed("kernel", st.integers(1, max_kernel),
                                      _parity(range(2, max_kernel + 1))))
              for _ in range(rank)]
    padding = draw(structure.pinned("padding", st.sampled_from(["valid", "same"])))
    modes = ["unit", "strided", "dilated"] if dilation else ["unit", "strided"]
    mode = draw(structure.pinned("stepping", st.sampled_from(modes), lambda stepping: (
        _MODES[stepping] if _MODES[stepping] in modes else structure.UNFIT)))
    strides = [draw(structure.pinned("stepping", st.integers(1, 3), _stride(i)))
               if mode == "strided" else 1 for i in range(rank)]
    rates = [draw(structure.pinned("stepping", st.integers(1, 2), _rate))
             if mode == "dilated" else 1 for _ in range(rank)]
    spatial = []
    for k, d in zip(kernel, rates):
        least = (k - 1) * d + 1 if padding == "valid" else 1
        sides = [n for n in (1, 2, 3, 4, 5, 8) if least <= n <= max_side]
        spatial.append(draw(structure.narrowed("side", st.sampled_from(sides), _parity(sides))))
    return {"kernel_size": kernel, "strides": strides, "dilation_rate": rates,
            "padding": padding, "spatial": spatial}


def _parity(options):
    """For structure.narrowed: "odd" / "even" -> a draw among the options of that parity."""
    return structure.among(list(options), lambda parity, n: n % 2 == (parity == "odd"))


def _stride(axis):
    return lambda stepping: _STRIDES[stepping][axis] if stepping in _STRIDES else structure.UNFIT


def _rate(stepping):
    return 2 if stepping == "dilation_2" else structure.UNFIT


def _in_format(draw, example):
    """x in the data_format a covering row pins: channels_first moves its channels to
    axis 1 (and says so in the example); free draws stay channels_last."""
    data_format = draw(structure.pinned("data_format", st.just(DATA_FORMAT)))
    if data_format != DATA_FORMAT:
        example["x"] = np.ascontiguousarray(np.moveaxis(example["x"], -1, 1))
        example["data_format"] = data_format
    return example


def _data_format(example):
    return example.get("data_format", DATA_FORMAT)


def _last(example, key="x"):
    """`key` in float64, x in channels_last layout (what the references compute on)."""
    value = _f64(example, key)
    if key == "x" and _data_format(example) == "channels_first":
        return np.moveaxis(value, 1, -1)
    return value


def _as_format(example, y):
    """A channels_last result in the example's data_format."""
    return np.moveaxis(y, -1, 1) if _data_format(example) == "channels_first" else y


def _channels(example):
    x = example["x"]
    return x.shape[1] if _data_format(example) == "channels_first" else x.shape[-1]


@st.composite
def _conv_inputs(draw, floatx, rank, kind="conv", max_side=8):
    """x and kernel(s) for conv / depthwise / separable / transpose of `rank`."""
    geo = draw(_geometry(rank, max_side, dilation=kind != "transpose"))
    batch = draw(st.integers(1, 2))
    cin = draw(st.integers(1, 3))
    cout = draw(st.integers(1, 3))
    kernel = tuple(geo.pop("kernel_size"))
    example = {"x": draw(S.arrays(floatx, (batch, *geo.pop("spatial"), cin), -10.0, 10.0))}
    if kind == "conv":
        example["kernel"] = draw(S.arrays(floatx, kernel + (cin, cout), -2.0, 2.0))
    elif kind == "transpose":
        example["kernel"] = draw(S.arrays(floatx, kernel + (cout, cin), -2.0, 2.0))
        del geo["dilation_rate"]
    else:  # depthwise / separable: channel multiplier 1..2
        multiplier = draw(st.integers(1, 2))
        example["depthwise_kernel"] = draw(S.arrays(floatx, kernel + (cin, multiplier),
                                                    -2.0, 2.0))
        if kind == "separable":
            example["pointwise_kernel"] = draw(S.arrays(
                floatx, (1,) * rank + (cin * multiplier, cout), -2.0, 2.0))
    example.update(geo)
    return _in_format(draw, example)


@st.composite
def _pool_inputs(draw, floatx, rank, max_side=8):
    geo = draw(_geometry(rank, max_side, dilation=False))
    batch = draw(st.integers(1, 2))
    channels = draw(st.integers(1, 3))
    # a coarse value grid makes ties (equal maxima) common
    lo_hi = draw(st.sampled_from([(-10.0, 10.0), (-2.0, 2.0)]))
    x = draw(S.arrays(floatx, (batch, *geo["spatial"], channels), *lo_hi))
    if draw(st.booleans()):
        x = np.round(x).astype(floatx)
    return _in_format(draw, {"x": x, "pool_size": geo["kernel_size"],
                             "strides": geo["strides"], "padding": geo["padding"]})


def _generated(floatx, shape, lo, hi, nonzero=False):
    """A large array from a drawn seed (hypothesis draws one integer, not n floats)."""
    def make(seed):
        rng = np.random.default_rng(seed)
        values = rng.uniform(lo, hi, size=shape)
        if nonzero:
            values = values * rng.choice([-1.0, 1.0], size=shape)
        return values.astype(floatx)
    return st.integers(0, 2**32 - 1).map(make)


# -- Keras 2 / Keras 3 argument translation ---------------------------------------------
def _k2_spatial(example, arrays, one_d=False):
    """Keras 2 call: positional arrays, then padding / data_format / strides / dilation
    (plain ints for Keras 2's 1-D functions)."""
    kwargs = {"padding": example["padding"], "data_format": _data_format(example)}
    for key in ("strides", "dilation_rate"):
        if key in example:
            kwargs[key] = example[key][0] if one_d else example[key]
    return [example[a] for a in arrays], kwargs


def _k3_spatial(fn, arrays, keys=("strides", "padding", "dilation_rate")):
    def build(example):
        kwargs = {key: example[key] for key in keys if key in example}
        kwargs["data_format"] = _data_format(example)
        return [example[a] for a in arrays], kwargs
    return Call(f"keras.ops.{fn}", build=build)


# -- tolerances ----------------------------------------------------------------------
def _conv_tolerance(forward, arrays, k_of):
    """Matmul model: S1 = f(|a|, |b|..), S2 = sqrt(f(a^2, b^2..)), k from `k_of`."""
    def terms(example):
        values = [_last(example, a) for a in arrays]
        s1 = forward(example, *[np.abs(v) for v in values])
        s2 = np.sqrt(forward(example, *[v * v for v in values]))
        return k_of(example), _as_format(example, s1), _as_format(example, s2)
    return Matmul(terms)


def _window(example, key="kernel", rank_from="x"):
    rank = example[rank_from].ndim - 2
    return int(np.prod(example[key].shape[:rank]))


def _conv_forward(example, x, w):
    return conv_ref(x, w, example["strides"], example["padding"], example["dilation_rate"])


def _depthwise_forward(example, x, w):
    return depthwise_ref(x, w, example["strides"], example["padding"],
                         example["dilation_rate"])


def _separable_forward(example, x, dw, pw):
    return separable_ref(x, dw, pw, example["strides"], example["padding"],
                         example["dilation_rate"])


def _transpose_forward(example, x, w):
    return conv_transpose_ref(x, w, example["strides"], example["padding"])


def _avg_forward(example, x):
    return pool_ref(x, example["pool_size"], example["strides"], example["padding"], "avg")


def _avg_tolerance():
    """Average = inner product of the window with weights 1/count: S1 = avg|x|,
    S2 = sqrt(avg(x^2) / count) (count = real values in the window), k = window size."""
    def terms(example):
        x = _last(example)
        count = _count(example, np.ones((1,) + x.shape[1:-1] + (1,)))
        s1 = _avg_forward(example, np.abs(x))
        s2 = np.sqrt(_avg_forward(example, x * x) / count)
        return (int(np.prod(example["pool_size"])), _as_format(example, s1),
                _as_format(example, s2))
    return Matmul(terms)


def _count(example, ones):
    """Real (unpadded) values in each pooling window."""
    return sum(p for _, p in _windows(ones, example["pool_size"], example["strides"],
                                      [1] * len(example["pool_size"]), example["padding"]))


class DropoutTolerance(Tolerance):
    """Dropout: a statistical test of the drop rate plus an exact test of kept values.

    One vector per output: entry 0 is |fraction of zeros - rate|, allowed `sigmas`
    standard errors sqrt(rate (1 - rate) / n); entries 1.. are, per element, 0 for a
    dropped (zero) element, else |y - x / (1 - rate)|, allowed (3 + rate / (1 - rate)) u
    |x / (1 - rate)|: three rounded operations (1 - rate, reciprocal or division,
    product) plus the rounding of `rate` itself into floatx, amplified by
    rate / (1 - rate). Inputs are nonzero, so a zero output means "dropped".
    """

    formula = ("|zeros/n - rate| <= 6 sqrt(rate (1 - rate) / n); kept y: "
               "|y - x/(1-rate)| <= (3 + rate/(1-rate)) u |x/(1-rate)|")

    def __init__(self, sigmas: float = 6.0):
        self.sigmas = sigmas

    def errors(self, example, outputs, refs, floatx, memo=None):
        rate = float(example["rate"])
        out, ref = outputs[0], refs[0]
        dropped = out == 0
        n = max(out.size, 1)
        zero_error = abs(float(dropped.sum()) / n - rate)
        zero_allowed = self.sigmas * np.sqrt(rate * (1 - rate) / n)
        with np.errstate(invalid="ignore", over="ignore"):
            kept = np.where(dropped, 0.0, np.abs(out - ref))
        # non-finite outputs must fail, and compare skips non-finite errors
        kept = np.where(np.isfinite(kept), kept, np.finfo(_F64).max)
        kept_allowed = (3 + rate / (1 - rate)) * unit_roundoff(floatx) * np.abs(ref)
        return [(np.concatenate([[zero_error], kept.ravel()]),
                 np.concatenate([[zero_allowed], kept_allowed.ravel()]))]


class _L2Interval(Tolerance):
    """L2 normalization judged against the interval of results its definitions allow.

    Every reading of y = x / N, N = sqrt(max(S', c)), differs only in N: the clamp c
    (where epsilon goes, and how floatx holds it) and S', the sum of squares as
    floatx computes it (squares below tiny round to the subnormal grid or flush to
    zero). N ranges over [N_lo, N_hi], so y lies between x / N_hi and x / N_lo, on
    x's side of zero. The error is the distance from that interval; the allowance is
    r = (4 sqrt(n) + 4) u times the nearer end (the sum's and four roundings, as
    relative errors of the result). Zeros, a flipped sign or a multiple of the result
    beyond the interval therefore fail whenever x is not zero.

    clamp="norm" (Keras 3 normalize: x / max(||x||, eps); eps also as floatx holds it):
        c in [eps - h(eps), eps + h(eps)] on the norm, h = half a floatx spacing.
    clamp="squares" (Keras 2 l2_normalize: Theano sqrt(max(S, eps)), TensorFlow
        tf.nn.l2_normalize's 1e-12, CNTK and the documented NumPy form none):
        c in [0, eps + h(eps)] on the sum of squares.
    Tolerances get no context, so eps is read back from the reference: at the largest
    |x_k| of a vector, N_ref = |x_k| / |y_k| is max(||x||, eps) (resp. its square root
    form), and eps is that value when it exceeds ||x||. When it does not, eps <= ||x||
    and floatx's rounding of it is at most ||x|| + h(||x||) (rounding is monotone).
    """

    def __init__(self, clamp: str):
        self.clamp = clamp
        where = "max(||x||, eps)" if clamp == "norm" else "sqrt(max(S, c)), c in [0, eps]"
        self.formula = (f"y between x / N_hi and x / N_lo over N = {where} and the sum of "
                        "squares with underflow; E = (4 sqrt(n) + 4) u |nearer end|")

    def bounds(self, x, ref, axis, floatx):
        """(sign, lo, hi, r): the result lies in sign * [lo, hi], up to r * |end|."""
        finfo = np.finfo(floatx)
        u, tiny = unit_roundoff(floatx), float(finfo.tiny)
        smallest = tiny * float(finfo.eps)  # the smallest positive (subnormal) value
        n = x.shape[axis]
        m, s = _scaled_squares(x, axis)  # S = m^2 s; m = s = 1 for a zero vector
        q = m * np.sqrt(s)
        ax = np.abs(x)
        k = np.expand_dims(np.argmax(ax, axis=axis), axis)
        x_k = np.take_along_axis(ax, k, axis=axis)
        y_k = np.take_along_axis(np.abs(ref), k, axis=axis)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            n_ref = np.where((x_k > 0) & (y_k > 0), x_k / y_k, q)
            # in units of m^2 (m^2 itself may underflow float64): S' with squares on
            # the subnormal grid (each off by <= tiny u; a positive S' is at least the
            # smallest subnormal) ...
            slack = n * u * (tiny / m) / m
            s_hi = s + slack
            s_lo = np.minimum(s, np.maximum(s - slack, (smallest / m) / m))
            # ... or with the squares below tiny flushed (FTZ): S' = 0 when all are,
            # which gives no finite result (judged by the NaN/inf pattern)
            normal = ax >= np.sqrt(tiny)
            kept = np.any(normal, axis=axis, keepdims=True)
            s_flushed = np.sum(np.where(normal, (x / m) ** 2, 0.0), axis=axis, keepdims=True)
            s_lo = np.where(kept, np.minimum(s_lo, s_flushed), s_lo)
            if self.clamp == "norm":
                clamped = n_ref > q * (1 + 1e-12)
                c_hi = n_ref + ulp(n_ref, floatx) / 2
                c_lo = np.where(clamped, n_ref - ulp(n_ref, floatx) / 2, 0.0)
            else:
                s_ref = n_ref**2
                c_hi = np.sqrt(s_ref + ulp(s_ref, floatx) / 2)
                c_lo = 0.0
            n_lo = np.maximum(m * np.sqrt(s_lo), c_lo)
            n_hi = np.maximum(m * np.sqrt(s_hi), c_hi)
            lo, hi = ax / n_hi, ax / n_lo
        sign = np.where(x < 0, -1.0, 1.0)
        return sign, lo, hi, (4 * np.sqrt(n) + 4) * u

    def errors(self, example, outputs, refs, floatx, memo=None):
        x, axis, ref = _f64(example, "x"), example["axis"], refs[0]
        sign, lo, hi, r = once(memo, ("l2-interval", id(ref)),
                               lambda: self.bounds(x, ref, axis, floatx))
        with np.errstate(invalid="ignore", over="ignore"):
            v = sign * outputs[0]
            below, above = lo - v, v - hi
            error = np.maximum(np.maximum(below, above), 0.0)
            end = np.where(below > 0, lo, np.where(above > 0, hi, np.abs(ref)))
        return [(np.where(np.isnan(v), np.nan, error), r * end)]


def _scaled_squares(x, axis):
    """(m, sum (x/m)^2) with m = max|x| along axis (1 for a zero vector): ||x|| = m sqrt(.)
    without underflow, even for float64 inputs near the bottom of the range."""
    m = np.max(np.abs(x), axis=axis, keepdims=True)
    m = np.where(m > 0, m, 1.0)
    squares = np.sum((x / m) ** 2, axis=axis, keepdims=True)
    return m, np.where(squares > 0, squares, 1.0)


def _norm(x, axis):
    m, squares = _scaled_squares(x, axis)
    return np.where(np.any(x != 0, axis=axis, keepdims=True), m * np.sqrt(squares), 0.0)


def _unit(x, axis):
    """x / ||x||_2 along axis, without any epsilon (0 for a zero vector)."""
    m, squares = _scaled_squares(x, axis)
    return (x / m) / np.sqrt(squares)


# -- ops ---------------------------------------------------------------------------------
def _conv_op(rank, max_side):
    one_d = rank == 1

    def k2(example):
        return _k2_spatial(example, ["x", "kernel"], one_d)

    return Op(
        name=f"conv{rank}d", family="nn",
        inputs=lambda fx: _conv_inputs(fx, rank, "conv", max_side),
        reference=lambda ex, ctx: _as_format(ex, _conv_forward(ex, _last(ex), _f64(ex, "kernel"))),
        tolerance=_conv_tolerance(_conv_forward, ["x", "kernel"],
                                  lambda ex: _window(ex) * _channels(ex)),
        keras3=_k3_spatial("conv", ("x", "kernel")),
        keras2=Call(f"keras.backend.conv{rank}d", build=k2, params=("kernel",)),
        structure=_window_structure(rank),
    )


def _depthwise_op(rank):
    k2 = None
    if rank == 2:  # Keras 2 has depthwise_conv2d only
        k2 = Call("keras.backend.depthwise_conv2d",
                  build=lambda ex: _k2_spatial(ex, ["x", "depthwise_kernel"]),
                  params=("depthwise_kernel",))
    return Op(
        name=f"depthwise_conv{rank}d", family="nn",
        inputs=lambda fx: _conv_inputs(fx, rank, "depthwise"),
        reference=lambda ex, ctx: _as_format(ex, _depthwise_forward(
            ex, _last(ex), _f64(ex, "depthwise_kernel"))),
        tolerance=_conv_tolerance(_depthwise_forward, ["x", "depthwise_kernel"],
                                  lambda ex: _window(ex, "depthwise_kernel")),
        keras3=_k3_spatial("depthwise_conv", ("x", "depthwise_kernel")),
        keras2=k2,
        structure=_window_structure(rank),
    )


def _separable_op(rank):
    arrays = ["x", "depthwise_kernel", "pointwise_kernel"]
    return Op(
        name=f"separable_conv{rank}d", family="nn",
        inputs=lambda fx: _conv_inputs(fx, rank, "separable"),
        reference=lambda ex, ctx: _as_format(ex, _separable_forward(
            ex, *[_last(ex, a) for a in arrays])),
        # two chained inner products: the window, then the Cin * M pointwise channels
        tolerance=_conv_tolerance(_separable_forward, arrays,
                                  lambda ex: _window(ex, "depthwise_kernel")
                                  + ex["pointwise_kernel"].shape[-2]),
        keras3=_k3_spatial("separable_conv", tuple(arrays)),
        keras2=Call(f"keras.backend.separable_conv{rank}d",
                    build=lambda ex: _k2_spatial(ex, arrays, rank == 1),
                    params=("depthwise_kernel", "pointwise_kernel")),
        structure=_window_structure(rank),
    )


def _transpose_output_shape(example):
    """In the example's data_format, as Keras 2 takes it."""
    x, w = _last(example), example["kernel"]
    rank = x.ndim - 2
    spatial = [transpose_length(n, k, s, example["padding"])
               for n, k, s in zip(x.shape[1:-1], w.shape[:rank], example["strides"])]
    if _data_format(example) == "channels_first":
        return [x.shape[0], w.shape[rank], *spatial]
    return [x.shape[0], *spatial, w.shape[rank]]


def _k2_transpose(example):
    args, kwargs = _k2_spatial(example, ["x", "kernel"])
    kwargs["output_shape"] = _transpose_output_shape(example)
    return args, kwargs


def _transpose_op(rank):
    k2 = (Call("keras.backend.conv2d_transpose", build=_k2_transpose, params=("kernel",))
          if rank == 2 else None)
    return Op(
        name=f"conv_transpose{rank}d", family="nn",
        inputs=lambda fx: _conv_inputs(fx, rank, "transpose"),
        reference=lambda ex, ctx: _as_format(ex, _transpose_forward(ex, _last(ex),
                                                                     _f64(ex, "kernel"))),
        # each output sums at most window x Cin products
        tolerance=_conv_tolerance(_transpose_forward, ["x", "kernel"],
                                  lambda ex: _window(ex) * _channels(ex)),
        keras3=_k3_spatial("conv_transpose", ("x", "kernel"), ("strides", "padding")),
        keras2=k2,
        structure=_window_structure(rank, dilation=False),
    )


def _pool_op(mode, rank, max_side=8):
    k3_name = "max_pool" if mode == "max" else "average_pool"
    k2 = None
    if rank in (2, 3):  # Keras 2 has pool2d / pool3d, no 1-D pooling function
        k2 = Call(f"keras.backend.pool{rank}d", build=lambda ex: ([ex["x"]], {
            "pool_size": ex["pool_size"], "strides": ex["strides"], "padding": ex["padding"],
            "data_format": _data_format(ex), "pool_mode": mode}))
    return Op(
        name=f"{k3_name}{rank}d", family="nn",
        inputs=lambda fx: _pool_inputs(fx, rank, max_side),
        reference=lambda ex, ctx: _as_format(ex, pool_ref(
            _last(ex), ex["pool_size"], ex["strides"], ex["padding"], mode)),
        tolerance=Exact() if mode == "max" else _avg_tolerance(),
        keras3=_k3_spatial(k3_name, ("x",), ("pool_size", "strides", "padding")),
        keras2=k2,
        result="input",
        structure=_window_structure(rank, dilation=False),
    )


# batch normalization --------------------------------------------------------------------
@st.composite
def _bn_inputs(draw, floatx, any_axis=False):
    shape = draw(S.shapes(2, 4, max_side=4))
    n = len(shape)
    axis = draw(structure.pinned("axis", st.integers(0, n - 1), lambda symbol: (
        structure.resolve_axis(symbol, n, allow_none=False, negative=False)))) \
        if any_axis else n - 1
    channels = (shape[axis],)
    return {
        "x": draw(S.arrays(floatx, shape, -10.0, 10.0)),
        "mean": draw(S.arrays(floatx, channels, -5.0, 5.0)),
        "variance": draw(S.arrays(floatx, channels, 0.0, 10.0)),  # 0 included: eps matters
        "offset": draw(S.arrays(floatx, channels, -5.0, 5.0)),
        "scale": draw(S.arrays(floatx, channels, -2.0, 2.0)),
        "axis": axis,
        "epsilon": draw(st.sampled_from([1e-3, 1e-5])),
    }


def _bn_params(example):
    """mean, variance, offset, scale in float64, shaped to broadcast along `axis`."""
    shape = [1] * example["x"].ndim
    shape[example["axis"]] = -1
    return [_f64(example, k).reshape(shape) for k in ("mean", "variance", "offset", "scale")]


def _bn_ref(example, ctx):
    mean, var, offset, scale = _bn_params(example)
    return (_f64(example, "x") - mean) / np.sqrt(var + example["epsilon"]) * scale + offset


def _bn_scale(example, index):
    """(|x| + |mean|) |scale| / sqrt(var + eps) + |offset|: the largest intermediates."""
    mean, var, offset, scale = _bn_params(example)
    x = _f64(example, "x")
    return (np.abs(x) + np.abs(mean)) * np.abs(scale) / np.sqrt(var + example["epsilon"]) \
        + np.abs(offset)


class _ChainedRounding(Tolerance):
    """m rounded operations, each relative to the largest intermediate magnitude."""

    def __init__(self, scale, operations):
        self.scale = scale
        self.operations = operations
        self.formula = (f"E = {operations} u ((|x| + |mean|) |scale| / sqrt(var + eps) "
                        "+ |offset|)")

    def allowed(self, example, ref, floatx, index):
        return self.operations * unit_roundoff(floatx) * self.scale(example, index)


# var + eps, sqrt, reciprocal or division, the products by x / mean / scale, the
# subtraction and the offset: 6 rounded operations on the way to y.
_BN_TOLERANCE = _ChainedRounding(_bn_scale, 6)


def _bn_op(any_axis):
    k2 = None
    if not any_axis:
        # Keras 2: 1-D parameters mean "the last axis" (Theano derives the reduction
        # axes from the parameters' rank, CNTK broadcasts from the right).
        k2 = Call("keras.backend.batch_normalization",
                  args=("x", "mean", "variance", "offset", "scale"),
                  kwargs={"epsilon": "epsilon"}, static={"axis": -1},
                  params=("mean", "variance", "offset", "scale"))
    return Op(
        name="batch_normalization_axis" if any_axis else "batch_normalization", family="nn",
        inputs=lambda fx: _bn_inputs(fx, any_axis),
        reference=_bn_ref,
        tolerance=_BN_TOLERANCE,
        keras3=Call("keras.ops.batch_normalization",
                    args=("x", "mean", "variance", "axis", "offset", "scale"),
                    kwargs={"epsilon": "epsilon"}),
        keras2=k2,
        structure={"rank": (2, 3, 4), "axis": ("first", 1, "last")} if any_axis else
        {"rank": (2, 3, 4)},
    )


# moments ------------------------------------------------------------------------------
@st.composite
def _moments_inputs(draw, floatx):
    shape = draw(S.shapes(1, 4, max_side=5))
    n = len(shape)
    axes = sorted(draw(structure.pinned("axes", st.sets(st.integers(0, n - 1), min_size=1),
                                        lambda kind: _MOMENT_AXES[kind](n))))
    return {"x": draw(S.arrays(floatx, shape, -10.0, 10.0)), "axes": axes,
            "keepdims": draw(structure.pinned("keepdims", st.booleans()))}


_MOMENT_AXES = {"first": lambda n: [0], "last": lambda n: [n - 1],
                "all": lambda n: list(range(n))}


def _moments_ref(example, ctx):
    x, axes = _f64(example, "x"), tuple(example["axes"])
    return [np.mean(x, axis=axes, keepdims=example["keepdims"]),
            np.var(x, axis=axes, keepdims=example["keepdims"])]


def _moments_terms(example, index):
    """mean: sum |x_i / n|; variance: the terms of E[x^2] - E[x]^2 that backends use,
    mean(x^2) + 2 |m| mean|x| + m^2 (the error of m propagates through m^2)."""
    x, axes, keep = _f64(example, "x"), tuple(example["axes"]), example["keepdims"]
    n = int(np.prod([x.shape[a] for a in axes]))
    mean_abs = np.mean(np.abs(x), axis=axes, keepdims=keep)
    if index == 0:
        return n, mean_abs
    m = np.mean(x, axis=axes, keepdims=keep)
    return n, np.mean(x * x, axis=axes, keepdims=keep) + 2 * np.abs(m) * mean_abs + m * m


# normalize ----------------------------------------------------------------------------
@st.composite
def _normalize_inputs(draw, floatx):
    shape = draw(S.shapes(1, 3, min_side=1, max_side=5))
    axis = draw(st.sampled_from(list(range(-len(shape), len(shape)))))
    # tiny vectors: ||x||^2 below epsilon, where the epsilon clamp decides the result
    lo, hi = draw(st.sampled_from([(-10.0, 10.0), (-1e-3, 1e-3)]))
    x = draw(S.arrays(floatx, shape, lo, hi))
    if draw(st.booleans()):  # an all-zero vector along the axis (padding rows)
        first = [0] * len(shape)
        first[axis] = slice(None)
        x = x.copy()
        x[tuple(first)] = 0
    return {"x": x, "axis": axis}


def _normalize_ref(example, ctx):
    """Keras 3 docs: x / max(||x||_2, epsilon), epsilon = keras.config.epsilon()."""
    x = _f64(example, "x")
    return x / np.maximum(_norm(x, example["axis"]), ctx.epsilon)


def _l2_normalize_ref(example, ctx):
    """Keras 2: x / sqrt(max(sum x^2, epsilon)) (theano_backend, the one Keras 2 backend
    that uses K.epsilon(); TF uses 1e-12, CNTK and the docstring's NumPy form nothing:
    `_L2Interval(clamp="squares")` accepts every clamp in [0, epsilon])."""
    x = _f64(example, "x")
    return x / np.maximum(_norm(x, example["axis"]), np.sqrt(ctx.epsilon))


def _normalize_op(name, reference, call, flavor, clamp):
    return Op(
        name=name, family="nn",
        inputs=_normalize_inputs,
        reference=reference,
        # the interval of results the definitions allow (epsilon's placement, squares
        # that underflow), plus the sum's and four roundings (square, sqrt, reciprocal, product)
        tolerance=_L2Interval(clamp),
        keras3=call if flavor == "keras3" else None,
        keras2=call if flavor == "keras2" else None,
    )


# bias_add -----------------------------------------------------------------------------
@st.composite
def _bias_inputs(draw, floatx):
    shape = draw(S.shapes(2, 5, max_side=4))
    full = draw(structure.pinned("bias", st.booleans(), lambda kind: kind == "full")) \
        and len(shape) > 2  # bias of x.shape[1:] is also allowed
    bias_shape = tuple(shape[1:]) if full else (shape[-1],)
    return {"x": draw(S.arrays(floatx, shape, -100.0, 100.0)),
            "bias": draw(S.arrays(floatx, bias_shape, -100.0, 100.0))}


# dropout ------------------------------------------------------------------------------
@st.composite
def _dropout_inputs(draw, floatx):
    shape = draw(st.sampled_from([(4096,), (64, 64), (8, 16, 32)]))
    return {"x": draw(_generated(floatx, shape, 0.5, 10.0, nonzero=True)),
            "rate": draw(st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.7])),
            "seed": draw(st.integers(1, 10**6))}


OPS = [
    # -- convolutions (Matmul model, k = window x Cin) --------------------------------
    _conv_op(1, 8),
    _conv_op(2, 8),
    _conv_op(3, 5),
    _depthwise_op(1),
    _depthwise_op(2),
    _separable_op(1),
    _separable_op(2),
    _transpose_op(1),
    _transpose_op(2),
    # -- pooling ------------------------------------------------------------------------
    _pool_op("max", 1),
    _pool_op("max", 2),
    _pool_op("max", 3, max_side=5),
    _pool_op("avg", 1),
    _pool_op("avg", 2),
    _pool_op("avg", 3, max_side=5),
    # -- normalization --------------------------------------------------------------------
    _bn_op(any_axis=False),
    _bn_op(any_axis=True),
    Op(
        name="moments", family="nn",
        inputs=_moments_inputs,
        reference=_moments_ref,
        tolerance=Reduction(_moments_terms),
        keras3=Call("keras.ops.moments", args=("x",),
                    kwargs={"axes": "axes", "keepdims": "keepdims"}),
        keras2=None,  # Keras 2's backend has mean and var, but no moments function
        structure={"rank": (1, 2, 3, 4), "axes": ("first", "last", "all"),
                   "keepdims": (False, True)},
    ),
    # Two formulas, so two ops: Keras 3 clamps the norm at epsilon, Keras 2 the squared
    # norm (a 3000x wider clamp at epsilon = 1e-7).
    _normalize_op("normalize", _normalize_ref, flavor="keras3",
                  call=Call("keras.ops.normalize", args=("x",), kwargs={"axis": "axis"},
                            static={"order": 2}), clamp="norm"),
    _normalize_op("l2_normalize", _l2_normalize_ref, flavor="keras2",
                  call=Call("keras.backend.l2_normalize", args=("x",),
                            kwargs={"axis": "axis"}), clamp="squares"),
    # -- bias and dropout -----------------------------------------------------------------
    Op(
        name="bias_add", family="nn",
        inputs=_bias_inputs,
        reference=lambda ex, ctx: _f64(ex, "x") + _f64(ex, "bias"),
        tolerance=Rounded(1),
        keras3=None,  # Keras 3 has no bias_add op (layers use keras.ops.add)
        keras2=Call("keras.backend.bias_add", args=("x", "bias"),
                    static={"data_format": DATA_FORMAT}, params=("bias",)),
        structure={"rank": (2, 3, 4, 5), "bias": ("channels", "full")},
    ),
    Op(
        name="dropout", family="nn",
        inputs=_dropout_inputs,
        # every element kept and scaled; the tolerance accepts zeros at the drop rate
        reference=lambda ex, ctx: _f64(ex, "x") / (1 - ex["rate"]),
        tolerance=DropoutTolerance(),
        keras3=Call("keras.random.dropout", args=("x",),
                    kwargs={"rate": "rate", "seed": "seed"}),
        keras2=Call("keras.backend.dropout", args=("x",),
                    kwargs={"level": "rate", "seed": "seed"}),
    ),
]
