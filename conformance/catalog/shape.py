"""Shape, indexing, sorting and dtype ops: copies of input values, so all exact.

Every output element here is an input element, a constant (0, 1, a pad value), an
index, or a correctly rounded conversion whose reference is NumPy's own IEEE
round-to-nearest-even cast; any difference at all is a finding (E = 0).

Keras 2 takes static arguments (shapes, axes, paddings) as Python values, never as
tensors, so they travel as kwargs; index arrays are placeholders like any array.
"""
from __future__ import annotations


import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from conformance import strategies as S, structure
from conformance.catalog import Call, Op, keras2, keras3
from conformance.tolerance import Exact

EXACT = Exact()
INDEX_DTYPES = ("int32", "int64")
# Structural combinations every case covers, pairwise (conformance.structure). Axes
# are symbolic ("first", "last", "neg_first", "neg_last", "none", "multi"), resolved
# against the rank drawn; an axis of the output (expand_dims, stack) against its rank.
AXES = ("first", "last", "neg_first", "neg_last")
AXIS_STRUCTURE = {"rank": (1, 2, 3), "axis": AXES}
RANK_STRUCTURE = {"rank": (0, 1, 2, 3)}
CAST_STRUCTURE = {"rank": (0, 1, 2)}
TRIANGLE_STRUCTURE = {"rank": (2, 3), "k": ("zero", "positive", "negative")}
TOP_K_STRUCTURE = {"rank": (1, 2), "k": ("one", "all")}


def _op(name, inputs, reference, k3=None, k2=None, result="input", **options):
    """An exact op of this family; `reference(example)` sees the arrays as drawn."""
    return Op(name=name, family="shape", inputs=inputs,
              reference=lambda ex, ctx: reference(ex), tolerance=EXACT,
              keras3=k3, keras2=k2, result=result, **options)


def _build(fn, make):
    """A Call whose (args, kwargs) come from `make(example)`."""
    return Call(fn, build=make)


# -- strategies (private to this family) ------------------------------------------

def _from_values(floatx, shape, values):
    """Arrays with elements from a small set of values (ties, zeros)."""
    return hnp.arrays(floatx, shape, elements=st.sampled_from(
        [float(np.asarray(v, floatx)) for v in values]))


def _payload(floatx, shape):
    return S.arrays(floatx, shape, -100.0, 100.0)


def _axis(n, name="axis"):
    """An int axis in [-n, n) (a covering row may pin it)."""
    return structure.pinned(name, st.integers(-n, n - 1), lambda symbol: structure.resolve_axis(
        symbol, n, allow_none=False))


def _offset(name, strategy, low, high):
    """A diagonal offset in [low, high]: "zero", "positive" (1) or "negative" (-1)
    where that lies in the range."""
    def resolve(sign):
        value = {"zero": 0, "positive": 1, "negative": -1}[sign]
        return value if low <= value <= high else structure.UNFIT
    return structure.pinned(name, strategy, resolve)


def _index_shapes(max_dims=2, max_side=4):
    """Index shapes: their rank pinned by the row's "index_rank", not by "rank"."""
    return structure.renamed(lambda: S.shapes(0, max_dims, max_side=max_side), rank="index_rank")


def _index_dtype():
    return structure.pinned("index_dtype", st.sampled_from(INDEX_DTYPES))


@st.composite
def _x_axis(draw, floatx, min_dims=1, max_dims=3, extra_axis=0):
    """{"x", "axis"}: an int axis in [-(ndim + extra), ndim + extra)."""
    shape = draw(S.shapes(min_dims, max_dims))
    n = len(shape) + extra_axis
    return {"x": draw(_payload(floatx, shape)), "axis": draw(_axis(n))}


def _prime_factors(n):
    factors, p = [], 2
    while n > 1:
        while n % p == 0:
            factors.append(p)
            n //= p
        p += 1
    return factors


@st.composite
def _reshape(draw, floatx):
    """A new shape with the same size: factors redistributed, 1s added, maybe one -1."""
    shape = draw(S.shapes(0, 4))
    factors = _prime_factors(int(np.prod(shape, dtype=int)))
    low = 1 if factors else 0
    rank = draw(structure.pinned("new_rank", st.integers(low, 4),
                                 structure.resolve_within(low, 4)))
    newshape = [1] * rank
    for f in factors:
        newshape[draw(st.integers(0, rank - 1))] *= f
    if rank and draw(structure.pinned("infer", st.booleans())):
        newshape[draw(st.integers(0, rank - 1))] = -1
    return {"x": draw(_payload(floatx, shape)), "newshape": newshape}


@st.composite
def _transpose(draw, floatx):
    shape = draw(S.shapes(1, 4))
    n = len(shape)
    axes = draw(structure.pinned("axes", st.none() | st.permutations(range(n)).map(list),
                                 lambda kind: _PERMUTATIONS[kind](n)))
    return {"x": draw(_payload(floatx, shape)), "axes": axes}


_PERMUTATIONS = {"none": lambda n: None, "identity": lambda n: list(range(n)),
                 "reversed": lambda n: list(range(n))[::-1],
                 "rotate": lambda n: list(range(1, n)) + [0]}


def _k2_pattern(ex):
    """Keras 2 permute_dimensions always takes a pattern; None means reversed axes."""
    axes = ex["axes"] if ex["axes"] is not None else list(range(ex["x"].ndim))[::-1]
    return [ex["x"]], {"pattern": axes}


@st.composite
def _joined(draw, floatx, stack):
    """2-3 arrays: same shape (stack), or differing only along `axis` (concatenate)."""
    shape = list(draw(S.shapes(1, 3)))
    count = draw(structure.pinned("inputs", st.integers(2, 3), structure.resolve_within(2, 3)))
    n = len(shape) + (1 if stack else 0)
    axis = draw(_axis(n))
    example = {}
    for i in range(count):
        part = list(shape)
        if not stack:
            part[axis] = draw(S.side(4))
        example[f"x{i + 1}"] = draw(_payload(floatx, tuple(part)))
    example["axis"] = axis
    return example


def _parts(ex):
    return [ex[k] for k in sorted(ex) if k.startswith("x")]


def _joined_call(fn):
    return _build(fn, lambda ex: ([_parts(ex)], {"axis": ex["axis"]}))


@st.composite
def _squeeze(draw, floatx):
    shape = list(draw(S.shapes(1, 4)))
    axis = draw(_axis(len(shape)))
    shape[axis] = 1
    return {"x": draw(_payload(floatx, tuple(shape))), "axis": axis}


def _full_reps(ex) -> list:
    """tile's repeats as long as x's rank (leading 1s), as Keras 2 documents n."""
    reps = list(np.atleast_1d(ex["repeats"]).tolist())
    return [1] * (ex["x"].ndim - len(reps)) + reps


@st.composite
def _tile(draw, floatx):
    shape = draw(S.shapes(1, 3, max_side=4))
    # Keras 3 takes fewer repeats than axes (leading 1s, as NumPy); see _full_reps.
    length = draw(structure.pinned("reps", st.integers(1, len(shape)),
                                   lambda kind: 1 if kind == "one" else len(shape)))
    repeats = draw(st.lists(st.integers(1, 3), min_size=length, max_size=length))
    return {"x": draw(_payload(floatx, shape)), "repeats": repeats}


@st.composite
def _repeat(draw, floatx):
    example = draw(_x_axis(floatx))
    example["repeats"] = draw(structure.pinned("repeats", st.integers(1, 3)))
    return example


@st.composite
def _take(draw, floatx, axis_none=True):
    """{"x", "indices", "axis"}: valid (non-negative) indices along axis (None: flat)."""
    shape = draw(S.shapes(1, 3))
    options = list(range(-len(shape), len(shape)))
    axis = draw(structure.pinned(
        "axis", st.sampled_from(([None] if axis_none else []) + options),
        lambda symbol: structure.resolve_axis(symbol, len(shape), allow_none=axis_none)))
    size = int(np.prod(shape)) if axis is None else shape[axis]
    indices = draw(S.int_arrays(_index_shapes(), 0, size - 1, dtype=draw(_index_dtype())))
    return {"x": draw(_payload(floatx, shape)), "indices": indices, "axis": axis}


@st.composite
def _gather(draw, floatx):
    """Keras 2 K.gather: rows of `reference` along axis 0."""
    shape = draw(S.shapes(1, 3))
    indices = draw(S.int_arrays(_index_shapes(), 0, shape[0] - 1, dtype=draw(_index_dtype())))
    return {"x": draw(_payload(floatx, shape)), "indices": indices}


@st.composite
def _take_along_axis(draw, floatx):
    shape = draw(S.shapes(1, 3))
    axis = draw(_axis(len(shape)))
    index_shape = list(shape)
    index_shape[axis] = draw(S.side(4))
    indices = draw(S.int_arrays(tuple(index_shape), 0, shape[axis] - 1,
                                dtype=draw(_index_dtype())))
    return {"x": draw(_payload(floatx, shape)), "indices": indices, "axis": axis}


@st.composite
def _slice(draw, floatx):
    shape = draw(S.shapes(1, 4))
    start = [draw(st.integers(0, s - 1)) for s in shape]
    size = [draw(st.integers(1, s - b)) for s, b in zip(shape, start)]
    return {"x": draw(_payload(floatx, shape)), "start": start, "size": size}


def _widths(draw, count):
    return [[draw(st.integers(0, 3)), draw(st.integers(0, 3))] for _ in range(count)]


@st.composite
def _pad(draw, floatx):
    shape = draw(S.shapes(1, 3, max_side=4))
    value = draw(st.none() | S.floats(floatx, -100.0, 100.0))
    example = {"x": draw(_payload(floatx, shape)), "pad_width": _widths(draw, len(shape)),
               "constant_values": value}
    # Only a covering row picks another mode (the modes every Keras 3 backend has):
    # widths then shrink to what the mode allows, and no constant value goes with it.
    mode = draw(structure.pinned("mode", st.just("constant")))
    if mode != "constant":
        most = {"reflect": -1, "symmetric": 0}[mode]  # width < side, width <= side
        example["pad_width"] = [[min(w, side + most) for w in pair]
                                for pair, side in zip(example["pad_width"], shape)]
        example["constant_values"] = None
        example["mode"] = mode
    return example


@st.composite
def _padding(draw, floatx, spatial_dims):
    """Keras 2 temporal (3-D) / spatial 2-D (4-D, channels_last) zero padding."""
    shape = draw(S.shapes(spatial_dims + 2, spatial_dims + 2, max_side=4))
    widths = _widths(draw, spatial_dims)
    # temporal_padding takes one (before, after) pair, spatial_2d_padding a pair per axis
    example = {"x": draw(_payload(floatx, shape)),
               "padding": widths[0] if spatial_dims == 1 else widths}
    if spatial_dims == 2:  # only a covering row reads the array as channels_first
        data_format = draw(structure.pinned("data_format", st.just("channels_last")))
        if data_format != "channels_last":
            example["data_format"] = data_format
    return example


def _full_pad_width(padding, data_format="channels_last"):
    """NumPy pad widths for (batch, *spatial, channels) from Keras 2's padding
    ((batch, channels, *spatial) for channels_first)."""
    pairs = [padding] if isinstance(padding[0], int) else padding
    if data_format == "channels_first":
        return [[0, 0], [0, 0]] + [list(p) for p in pairs]
    return [[0, 0]] + [list(p) for p in pairs] + [[0, 0]]


def _example_pad_width(ex):
    return _full_pad_width(ex["padding"], ex.get("data_format", "channels_last"))


@st.composite
def _flip(draw, floatx):
    shape = draw(S.shapes(1, 3))
    n = len(shape)
    axis = draw(structure.pinned(
        "axis", st.none() | st.integers(-n, n - 1)
        | st.lists(st.integers(0, n - 1), min_size=1, max_size=n, unique=True),
        lambda symbol: structure.resolve_axis(symbol, n, multi=True)))
    return {"x": draw(_payload(floatx, shape)), "axis": axis}


def _k2_axes(ex):
    axis = ex["axis"]
    return [ex["x"]], {"axes": list(range(ex["x"].ndim)) if axis is None else axis}


@st.composite
def _roll(draw, floatx):
    shape = draw(S.shapes(1, 3))
    n = len(shape)
    if draw(structure.pinned("axis", st.booleans(), lambda symbol: symbol != "multi")):
        axis = draw(structure.pinned("axis", st.none() | st.integers(-n, n - 1),
                                     lambda symbol: structure.resolve_axis(symbol, n)))
        shift = draw(st.integers(-10, 10))
    else:  # a shift per axis
        axis = draw(structure.pinned(
            "axis", st.lists(st.integers(0, n - 1), min_size=1, max_size=n, unique=True),
            lambda symbol: structure.resolve_axis(symbol, n, multi=True)))
        shift = draw(st.lists(st.integers(-10, 10), min_size=len(axis), max_size=len(axis)))
    return {"x": draw(_payload(floatx, shape)), "shift": shift, "axis": axis}


@st.composite
def _one_hot(draw, floatx):
    num_classes = draw(structure.pinned("num_classes", st.integers(1, 6)))
    dtype = draw(st.sampled_from(INDEX_DTYPES))
    return {"x": draw(S.int_arrays(S.shapes(0, 2, max_side=4), 0, num_classes - 1, dtype)),
            "num_classes": num_classes}


@st.composite
def _where(draw, floatx):
    # Keras 2 K.switch wants then/else of the same shape and does not broadcast a
    # condition the NumPy way, so all three share one shape.
    shape = draw(S.shapes(0, 3))
    return {"x1": draw(_payload(floatx, shape)), "x2": draw(_payload(floatx, shape)),
            "condition": draw(S.bool_arrays(shape))}


@st.composite
def _clip(draw, floatx):
    shape = draw(S.shapes(0, 3))
    bounds = sorted([draw(S.floats(floatx, -50.0, 50.0)), draw(S.floats(floatx, -50.0, 50.0))])
    return {"x": draw(_payload(floatx, shape)), "x_min": bounds[0], "x_max": bounds[1]}


@st.composite
def _broadcast_to(draw, floatx):
    target = draw(S.shapes(1, 4, max_side=4))
    rank = draw(structure.pinned("x_rank", st.integers(0, len(target)), lambda kind: {
        "scalar": 0, "fewer": len(target) - 1, "full": len(target)}[kind]))
    shape = tuple(draw(st.sampled_from([1, s])) for s in target[len(target) - rank:])
    return {"x": draw(_payload(floatx, shape)), "shape": list(target)}


@st.composite
def _with_k(draw, floatx, min_dims=2, max_dims=3):
    shape = draw(S.shapes(min_dims, max_dims))
    return {"x": draw(_payload(floatx, shape)), "k": draw(_offset("k", st.integers(-3, 3), -3, 3))}


@st.composite
def _diag(draw, floatx):
    """1-D input builds a matrix; 2-D input extracts a (non-empty) diagonal."""
    shape = draw(S.shapes(1, 2))
    if len(shape) == 1:
        k = draw(_offset("k", st.integers(-3, 3), -3, 3))
    else:
        low, high = 1 - shape[0], shape[1] - 1
        k = draw(_offset("k", st.integers(low, high), low, high))
    return {"x": draw(_payload(floatx, shape)), "k": k}


@st.composite
def _diagonal(draw, floatx):
    shape = draw(S.shapes(2, 3))
    n = len(shape)
    axis1, axis2 = draw(st.permutations(range(n)))[:2]
    low, high = 1 - shape[axis1], shape[axis2] - 1
    offset = draw(_offset("offset", st.integers(low, high), low, high))
    return {"x": draw(_payload(floatx, shape)), "offset": offset,
            "axis1": axis1 - draw(st.sampled_from([0, n])), "axis2": axis2}


@st.composite
def _two_axes(draw, floatx, names):
    shape = draw(S.shapes(1, 4))
    n = len(shape)
    return {"x": draw(_payload(floatx, shape)),
            names[0]: draw(_axis(n, names[0])), names[1]: draw(_axis(n, names[1]))}


@st.composite
def _split(draw, floatx):
    shape = draw(S.shapes(1, 3, max_side=8))
    axis = draw(_axis(len(shape)))
    size = shape[axis]
    if draw(structure.pinned("sections", st.booleans(), lambda kind: kind == "count")):
        sections = draw(st.sampled_from([d for d in range(1, size + 1) if size % d == 0]))
    else:  # sorted split points, possibly repeated or at the ends (empty pieces)
        sections = sorted(draw(st.lists(st.integers(0, size), min_size=1, max_size=3)))
    return {"x": draw(_payload(floatx, shape)), "indices_or_sections": sections, "axis": axis}


@st.composite
def _full_like(draw, floatx):
    shape = draw(S.shapes(0, 3))
    return {"x": draw(_payload(floatx, shape)), "fill_value": draw(S.floats(floatx, -100.0, 100.0))}


@st.composite
def _eye(draw, floatx, with_k):
    example = {"N": draw(st.integers(1, 5)), "M": draw(st.integers(1, 5))}
    if with_k:
        example["k"] = draw(st.integers(-3, 3))
    return example


@st.composite
def _arange(draw, floatx):
    """Integer arange with exactly `count` (>= 1) elements, steps of either sign."""
    start = draw(st.integers(-5, 5))
    step = draw(st.sampled_from([1, 2, 3, -1, -2]))
    count = draw(st.integers(1, 8))
    slack = draw(st.integers(0, abs(step) - 1))
    return {"start": start, "stop": start + count * step - int(np.sign(step)) * slack,
            "step": step}


_TINY = 2.0 ** -40  # far below half a float32 ulp: exposes float64 -> float32 -> floatx


@st.composite
def _cast_from_float64(draw, floatx):
    """float64 values, many exactly halfway between two floatx numbers or just off it.

    Exact halfway cases test round-half-even; halfway +- a relative 2**-40 catches a
    conversion through float32 (double rounding), which lands on the tie instead.
    """
    shape = draw(S.shapes(0, 2))
    base = draw(S.arrays(floatx, shape, -1000.0, 1000.0)).astype("float64")
    above = np.nextafter(base.astype(floatx), np.asarray(np.inf, floatx)).astype("float64")
    kind = draw(S.int_arrays(shape, 0, 3))
    mid = (base + above) / 2
    x = np.select([kind == 0, kind == 1, kind == 2],
                  [base, mid, mid * (1 + _TINY)], mid * (1 - _TINY))
    noise = draw(S.arrays("float64", shape, -1000.0, 1000.0))
    x = np.where(draw(S.bool_arrays(shape)), noise, x)
    return {"x": x.astype("float64"), "dtype": floatx}


@st.composite
def _cast_to_int32(draw, floatx):
    shape = draw(S.shapes(0, 2))
    return {"x": draw(S.arrays(floatx, shape, -1000.0, 1000.0))}


@st.composite
def _cast_from_int32(draw, floatx):
    shape = draw(S.shapes(0, 2))
    # beyond 2048 float16 rounds to even; 65504 is its largest finite value
    bound = draw(st.sampled_from([100, 65504, 2 ** 24 + 10]))
    bound = min(bound, 65504) if floatx == "float16" else bound
    return {"x": draw(S.int_arrays(shape, -bound, bound)), "dtype": floatx}


@st.composite
def _cast_to_bool(draw, floatx):
    shape = draw(S.shapes(0, 2))
    return {"x": draw(_from_values(floatx, shape, [0.0, -0.0, 1.0, -2.5, 0.5]))}


_TIES = [-2.0, -1.0, 0.0, 0.5, 1.0, 3.0]


@st.composite
def _sortable(draw, floatx, ties, max_dims=3):
    """{"x", "axis"}: distinct values (a well-defined order) or many ties."""
    shape = draw(S.shapes(1, max_dims))
    if ties:
        x = draw(_from_values(floatx, shape, _TIES))
    else:
        x = draw(hnp.arrays(floatx, shape, unique=True,
                              elements=S.floats(floatx, -100.0, 100.0)))
    return {"x": x, "axis": draw(_axis(len(shape)))}


@st.composite
def _top_k(draw, floatx, ties):
    example = draw(_sortable(floatx, ties, max_dims=2))
    del example["axis"]  # top_k works on the last axis
    last = example["x"].shape[-1]
    example["k"] = draw(structure.pinned("k", st.integers(1, last),
                                         lambda kind: 1 if kind == "one" else last))
    return example


@st.composite
def _in_top_k(draw, floatx):
    batch, classes = draw(S.side(5)), draw(S.side(8))
    predictions = draw(st.one_of(_from_values(floatx, (batch, classes), _TIES),
                                 S.arrays(floatx, (batch, classes), 0.0, 1.0)))
    return {"predictions": predictions,
            "targets": draw(S.int_arrays((batch,), 0, classes - 1)),
            "k": draw(structure.pinned("k", st.integers(1, classes),
                                       lambda kind: 1 if kind == "one" else classes))}


# -- references ---------------------------------------------------------------------

def _take_ref(ex):
    return np.take(ex["x"], ex["indices"], axis=ex["axis"])


def _top_k_ref(ex):
    """k largest along the last axis, descending; ties: lower index first.

    Keras does not document tie order; lower-index-first is what tf.math.top_k and
    jax.lax.top_k document, so a different order is reported, not assumed away.
    """
    x, k = ex["x"], ex["k"]
    order = np.argsort(-x.astype("float64"), axis=-1, kind="stable")[..., :k]
    return [np.take_along_axis(x, order, axis=-1), order]


def _in_top_k_ref(ex):
    """Target in top k iff fewer than k classes score strictly higher (TF's rule:
    classes tied across the k-th place all count as in the top k)."""
    p, t = ex["predictions"], ex["targets"]
    target_score = p[np.arange(len(t)), t][:, None]
    return (p > target_score).sum(axis=-1) < ex["k"]


def _split_ref(ex):
    return np.split(ex["x"], ex["indices_or_sections"], axis=ex["axis"])


def _pad_ref(ex):
    mode = ex.get("mode", "constant")
    if mode != "constant":
        return np.pad(ex["x"], ex["pad_width"], mode=mode)
    value = ex["constant_values"]
    return np.pad(ex["x"], ex["pad_width"], constant_values=0 if value is None else value)


OPS = [
    # -- layout: reshape and permute ----------------------------------------------
    _op("reshape", _reshape, lambda ex: np.reshape(ex["x"], ex["newshape"]),
        keras3("reshape", "x", newshape="newshape"), keras2("reshape", "x", shape="newshape"),
        structure={"rank": (0, 1, 2, 4), "new_rank": (1, 2, 4), "infer": (False, True)}),
    _op("transpose", _transpose, lambda ex: np.transpose(ex["x"], ex["axes"]),
        keras3("transpose", "x", axes="axes"), _build("keras.backend.permute_dimensions", _k2_pattern),
        structure={"rank": (1, 2, 3, 4), "axes": ("none", "identity", "rotate")}),
    _op("swapaxes", lambda fx: _two_axes(fx, ("axis1", "axis2")),
        lambda ex: np.swapaxes(ex["x"], ex["axis1"], ex["axis2"]),
        keras3("swapaxes", "x", axis1="axis1", axis2="axis2"),
        structure={"rank": (1, 2, 4), "axis1": AXES, "axis2": ("first", "neg_first", "neg_last")}),
    _op("moveaxis", lambda fx: _two_axes(fx, ("source", "destination")),
        lambda ex: np.moveaxis(ex["x"], ex["source"], ex["destination"]),
        keras3("moveaxis", "x", source="source", destination="destination"),
        structure={"rank": (1, 2, 4), "source": AXES,
                   "destination": ("first", "neg_first", "neg_last")}),
    _op("ravel", lambda fx: S.unary(fx, -100.0, 100.0, min_dims=0, max_dims=4),
        lambda ex: np.ravel(ex["x"]), keras3("ravel", "x"), keras2("flatten", "x"),
        structure={"rank": (0, 1, 2, 3, 4)}),
    # Keras 2 K.batch_flatten has no keras.ops name; Keras 3 spells it as a reshape.
    _op("batch_flatten", lambda fx: S.unary(fx, -100.0, 100.0, min_dims=2, max_dims=4),
        lambda ex: ex["x"].reshape(ex["x"].shape[0], -1),
        _build("keras.ops.reshape", lambda ex: ([ex["x"]], {"newshape": [ex["x"].shape[0], -1]})),
        keras2("batch_flatten", "x"), structure={"rank": (2, 3, 4)}),
    _op("expand_dims", lambda fx: _x_axis(fx, 0, 3, extra_axis=1),
        lambda ex: np.expand_dims(ex["x"], ex["axis"]),
        keras3("expand_dims", "x", axis="axis"), keras2("expand_dims", "x", axis="axis"),
        structure={"rank": (0, 1, 3), "axis": AXES}),
    _op("squeeze", _squeeze, lambda ex: np.squeeze(ex["x"], ex["axis"]),
        keras3("squeeze", "x", axis="axis"), keras2("squeeze", "x", axis="axis"),
        structure={"rank": (1, 2, 4), "axis": AXES}),
    _op("broadcast_to", _broadcast_to, lambda ex: np.broadcast_to(ex["x"], ex["shape"]),
        keras3("broadcast_to", "x", shape="shape"),
        structure={"rank": (1, 2, 4), "x_rank": ("scalar", "fewer", "full")}),
    # -- joining, splitting, repeating ----------------------------------------------
    _op("concatenate", lambda fx: _joined(fx, stack=False),
        lambda ex: np.concatenate(_parts(ex), axis=ex["axis"]),
        _joined_call("keras.ops.concatenate"), _joined_call("keras.backend.concatenate"),
        structure={**AXIS_STRUCTURE, "inputs": (2, 3)}),
    _op("stack", lambda fx: _joined(fx, stack=True),
        lambda ex: np.stack(_parts(ex), axis=ex["axis"]),
        _joined_call("keras.ops.stack"), _joined_call("keras.backend.stack"),
        structure={**AXIS_STRUCTURE, "inputs": (2, 3)}),
    _op("split", _split, _split_ref,
        keras3("split", "x", indices_or_sections="indices_or_sections", axis="axis"),
        structure={**AXIS_STRUCTURE, "sections": ("count", "points")}),
    _op("tile", _tile, lambda ex: np.tile(ex["x"], ex["repeats"]),
        keras3("tile", "x", repeats="repeats"),
        # Keras 2 documents n as long as x's rank (2.3.1 pads a shorter one, tf_keras
        # does not): users pass it that long, leading 1s where numpy would add them
        Call("keras.backend.tile", build=lambda ex: ([ex["x"]], {"n": _full_reps(ex)})),
        structure={"rank": (1, 2, 3), "reps": ("one", "full")}),
    _op("repeat", _repeat, lambda ex: np.repeat(ex["x"], ex["repeats"], axis=ex["axis"]),
        keras3("repeat", "x", repeats="repeats", axis="axis"),
        keras2("repeat_elements", "x", rep="repeats", axis="axis"),
        structure={**AXIS_STRUCTURE, "repeats": (1, 2, 3)}),
    # -- indexing ---------------------------------------------------------------------
    _op("take", _take, _take_ref, keras3("take", "x", "indices", axis="axis"),
        structure={"rank": (1, 2, 3), "axis": ("none",) + AXES, "index_rank": (0, 1, 2)}),
    # K.gather(reference, indices) takes along axis 0.
    _op("gather", _gather, lambda ex: np.take(ex["x"], ex["indices"], axis=0),
        Call("keras.ops.take", args=("x", "indices"), static={"axis": 0}),
        Call("keras.backend.gather", args=("x", "indices"), params=("x",)),
        structure={"rank": (1, 2, 3), "index_rank": (0, 1, 2), "index_dtype": INDEX_DTYPES}),
    _op("take_along_axis", _take_along_axis,
        lambda ex: np.take_along_axis(ex["x"], ex["indices"], axis=ex["axis"]),
        keras3("take_along_axis", "x", "indices", axis="axis"),
        structure={**AXIS_STRUCTURE, "index_dtype": INDEX_DTYPES}),
    _op("slice", _slice,
        lambda ex: ex["x"][tuple(slice(b, b + s) for b, s in zip(ex["start"], ex["size"]))],
        keras3("slice", "x", start_indices="start", shape="size"),
        keras2("slice", "x", start="start", size="size"), structure={"rank": (1, 2, 3, 4)}),
    _op("diag", _diag, lambda ex: np.diag(ex["x"], ex["k"]), keras3("diag", "x", k="k"),
        structure={"rank": (1, 2), "k": ("zero", "positive", "negative")}),
    _op("diagonal", _diagonal,
        lambda ex: np.diagonal(ex["x"], ex["offset"], ex["axis1"], ex["axis2"]),
        keras3("diagonal", "x", offset="offset", axis1="axis1", axis2="axis2"),
        structure={"rank": (2, 3), "offset": ("zero", "positive", "negative")}),
    _op("tril", _with_k, lambda ex: np.tril(ex["x"], ex["k"]), keras3("tril", "x", k="k"),
        structure=TRIANGLE_STRUCTURE),
    _op("triu", _with_k, lambda ex: np.triu(ex["x"], ex["k"]), keras3("triu", "x", k="k"),
        structure=TRIANGLE_STRUCTURE),
    _op("where", _where, lambda ex: np.where(ex["condition"], ex["x1"], ex["x2"]),
        keras3("where", "condition", "x1", "x2"), keras2("switch", "condition", "x1", "x2"),
        structure=RANK_STRUCTURE),
    _op("one_hot", _one_hot,
        lambda ex: np.eye(ex["num_classes"])[ex["x"]],
        keras3("one_hot", "x", num_classes="num_classes"),
        keras2("one_hot", "x", num_classes="num_classes"), result="floatx",
        structure={"rank": (0, 1, 2), "num_classes": (1, 6)},
        notes="Keras 3 documents floatx as the default dtype; Keras 2 documents none"),
    # -- padding, flipping, rolling ------------------------------------------------------
    _op("pad", _pad, _pad_ref,
        keras3("pad", "x", pad_width="pad_width", constant_values="constant_values", mode="mode"),
        structure={"rank": (1, 2, 3), "mode": ("constant", "reflect", "symmetric")}),
    _op("temporal_padding", lambda fx: _padding(fx, 1),
        lambda ex: np.pad(ex["x"], _full_pad_width(ex["padding"])),
        _build("keras.ops.pad", lambda ex: ([ex["x"]], {"pad_width": _full_pad_width(ex["padding"])})),
        keras2("temporal_padding", "x", padding="padding")),
    _op("spatial_2d_padding", lambda fx: _padding(fx, 2),
        lambda ex: np.pad(ex["x"], _example_pad_width(ex)),
        _build("keras.ops.pad", lambda ex: ([ex["x"]], {"pad_width": _example_pad_width(ex)})),
        _build("keras.backend.spatial_2d_padding", lambda ex: ([ex["x"]], {
            "padding": ex["padding"], "data_format": ex.get("data_format", "channels_last")})),
        structure={"data_format": ("channels_last", "channels_first")}),
    _op("flip", _flip, lambda ex: np.flip(ex["x"], ex["axis"]),
        keras3("flip", "x", axis="axis"), _build("keras.backend.reverse", _k2_axes),
        structure={"rank": (1, 2, 3), "axis": ("none", "first", "neg_first", "neg_last", "multi")}),
    _op("roll", _roll, lambda ex: np.roll(ex["x"], ex["shift"], ex["axis"]),
        keras3("roll", "x", shift="shift", axis="axis"),
        structure={"rank": (1, 2, 3), "axis": ("none", "first", "neg_first", "neg_last", "multi")}),
    # -- values from bounds or constants --------------------------------------------------
    _op("clip", _clip, lambda ex: np.clip(ex["x"], ex["x_min"], ex["x_max"]),
        keras3("clip", "x", x_min="x_min", x_max="x_max"),
        keras2("clip", "x", min_value="x_min", max_value="x_max"), structure=RANK_STRUCTURE),
    _op("zeros_like", lambda fx: S.unary(fx), lambda ex: np.zeros_like(ex["x"]),
        keras3("zeros_like", "x"), keras2("zeros_like", "x"), structure=RANK_STRUCTURE),
    _op("ones_like", lambda fx: S.unary(fx), lambda ex: np.ones_like(ex["x"]),
        keras3("ones_like", "x"), keras2("ones_like", "x"), structure=RANK_STRUCTURE),
    _op("full_like", _full_like, lambda ex: np.full_like(ex["x"], ex["fill_value"]),
        keras3("full_like", "x", fill_value="fill_value"), structure=RANK_STRUCTURE),
    # K.eye(size) has no diagonal offset: k stays 0 here, `tri` covers offsets.
    _op("eye", lambda fx: _eye(fx, with_k=False), lambda ex: np.eye(ex["N"], ex["M"]),
        keras3("eye", N="N", M="M"),
        _build("keras.backend.eye", lambda ex: ([], {"size": [ex["N"], ex["M"]]})),
        result="floatx"),
    # keras.ops.tri documents "The default is float32" (not floatx).
    _op("tri", lambda fx: _eye(fx, with_k=True), lambda ex: np.tri(ex["N"], ex["M"], ex["k"]),
        keras3("tri", N="N", M="M", k="k"), result="float32"),
    # Integer kind only: Keras 2 documents int32, Keras 3 infers the dtype from the
    # arguments, and resolves Python ints by floatx's width (int16 under float16).
    _op("arange", _arange, lambda ex: np.arange(ex["start"], ex["stop"], ex["step"]),
        keras3("arange", start="start", stop="stop", step="step"),
        keras2("arange", start="start", stop="stop", step="step"), result="int"),
    # -- casts: the reference is NumPy's correctly rounded (round-half-even) cast ----
    _op("cast", _cast_from_float64, lambda ex: ex["x"].astype(ex["dtype"]),
        keras3("cast", "x", dtype="dtype"), keras2("cast", "x", dtype="dtype"), result="floatx",
        structure=CAST_STRUCTURE),
    _op("cast_to_int32", _cast_to_int32, lambda ex: ex["x"].astype("int32"),  # truncates
        Call("keras.ops.cast", args=("x",), static={"dtype": "int32"}),
        Call("keras.backend.cast", args=("x",), static={"dtype": "int32"}), result="int32",
        structure=CAST_STRUCTURE),
    _op("cast_from_int32", _cast_from_int32, lambda ex: ex["x"].astype(ex["dtype"]),
        keras3("cast", "x", dtype="dtype"), keras2("cast", "x", dtype="dtype"), result="floatx",
        structure=CAST_STRUCTURE),
    _op("cast_to_bool", _cast_to_bool, lambda ex: ex["x"].astype("bool"),
        Call("keras.ops.cast", args=("x",), static={"dtype": "bool"}),
        Call("keras.backend.cast", args=("x",), static={"dtype": "bool"}), result="bool",
        structure=CAST_STRUCTURE),
    # -- sorting and ranking ----------------------------------------------------------------
    _op("sort", lambda fx: st.one_of(_sortable(fx, False), _sortable(fx, True)),
        lambda ex: np.sort(ex["x"], axis=ex["axis"]), keras3("sort", "x", axis="axis"),
        structure=AXIS_STRUCTURE),
    _op("argsort", lambda fx: _sortable(fx, ties=False),
        lambda ex: np.argsort(ex["x"], axis=ex["axis"], kind="stable"),
        keras3("argsort", "x", axis="axis"), result="int", structure=AXIS_STRUCTURE),
    # Keras does not document argsort's tie order; NumPy's default sort is not stable
    # either. The stable order is the reference so that differences are visible.
    _op("argsort_ties", lambda fx: _sortable(fx, ties=True),
        lambda ex: np.argsort(ex["x"], axis=ex["axis"], kind="stable"),
        keras3("argsort", "x", axis="axis"), result="int", structure=AXIS_STRUCTURE,
        notes="tie order undocumented in Keras; reference is the stable order"),
    Op(name="top_k", family="shape", inputs=lambda fx: _top_k(fx, ties=False),
       reference=lambda ex, ctx: _top_k_ref(ex), tolerance=EXACT,
       keras3=keras3("top_k", "x", k="k"), result=("input", "int"), structure=TOP_K_STRUCTURE),
    Op(name="top_k_ties", family="shape", inputs=lambda fx: _top_k(fx, ties=True),
       reference=lambda ex, ctx: _top_k_ref(ex), tolerance=EXACT,
       keras3=keras3("top_k", "x", k="k"), result=("input", "int"), structure=TOP_K_STRUCTURE,
       notes="tie order undocumented in Keras; reference: lower index first "
                         "(tf.math.top_k, jax.lax.top_k)"),
    _op("in_top_k", _in_top_k, _in_top_k_ref,
        keras3("in_top_k", "targets", "predictions", k="k"),
        keras2("in_top_k", "predictions", "targets", k="k"), result="bool",
        structure={"k": ("one", "all")}),
]
