"""Linear algebra: contractions (Matmul), vector norms (Reduction) and matrix
factorizations and solvers (BackwardError).

Contractions are judged elementwise with the inner-product bound (docs/tolerance.md),
E = 4 (sqrt(2) u S2 + sqrt(k) u S1) + u |C|, where S1 and S2 are the same contraction
applied in float64 to |A|, |B| and to A*A, B*B (S2 then square-rooted), and k is the
number of products summed into one output element.

Solvers and factorizations are judged by the backward error of what they return
(signs and bases of factors are not unique; the backward error is), allowed
8 n u for an n x n problem. Their matrices are drawn well conditioned (strictly
diagonally dominant with rows permuted, so pivoting still matters; or M M^T + c I),
so the test is about the algorithm, not about an ill-posed problem.
"""
from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from conformance import strategies as S
from conformance.catalog import Call, Op, keras2, keras3
from conformance.tolerance import BackwardError, InnerFloor, Matmul, Reduction, floor

F64 = "float64"
# LAPACK, which numpy, torch (CPU), jax and TensorFlow's kernels call for
# solve/inv/det/cholesky/qr, has no half-precision routines: float16 is not defined
# for these ops there ("array type float16 is unsupported in linalg", "lu_cpu not
# implemented for 'Half'", no MatrixSolve kernel for DT_HALF).
LAPACK_FLOATX = ("float32", "float64")
# A backward error that is not finite (NaN or inf in the result) is as large as it
# gets; it is reported as this finite value so that it is compared, not skipped.
NOT_FINITE = 1e300
EINSUM_SUBSCRIPTS = ("ij,jk->ik", "bij,bjk->bik", "bij,jk->bik", "ij,kj->ik", "i,i->",
                     "ij,ij->i", "i,j->ij")


def _side(max_side=5):
    return S.side(max_side)


# -- contractions -----------------------------------------------------------------
def _contraction(name, contract, k_of, inputs, k3="default", k2=None):
    """An op computing C = contract(example, A, B) (a sum of k products per element).

    `contract(example, a, b)` is also the float64 reference; the Matmul terms apply it
    to |A|, |B| (S1) and A*A, B*B (S2).
    """
    def operands(ex):
        return ex["x1"].astype(F64), ex["x2"].astype(F64)

    def terms(ex):
        a, b = operands(ex)
        return (k_of(ex), contract(ex, np.abs(a), np.abs(b)),
                np.sqrt(contract(ex, a * a, b * b)))

    return Op(
        name=name, family="linalg",
        inputs=inputs,
        reference=lambda ex, ctx: contract(ex, *operands(ex)),
        tolerance=Matmul(terms),
        keras3=keras3(name, "x1", "x2") if k3 == "default" else k3,
        keras2=k2,
    )


def _pair(floatx, shape1, shape2):
    return st.tuples(S.arrays(floatx, shape1), S.arrays(floatx, shape2)).map(
        lambda ab: {"x1": ab[0], "x2": ab[1]})


@st.composite
def _dot_inputs(draw, floatx):
    """keras.ops.dot / K.dot: rank 2-3 operands, x1's last axis against x2's second to
    last (the N-D rule both flavors document: (2, 3) . (4, 3, 5) -> (2, 4, 5))."""
    k = draw(_side())
    lead1 = draw(st.lists(_side(4), min_size=1, max_size=2))
    lead2 = draw(st.lists(_side(4), min_size=0, max_size=1))
    m = draw(_side())
    return draw(_pair(floatx, tuple(lead1) + (k,), tuple(lead2) + (k, m)))


@st.composite
def _matmul_inputs(draw, floatx):
    """np.matmul shapes: vectors, matrices, a shared batch axis or one broadcast."""
    n, k, m, batch = draw(_side()), draw(_side()), draw(_side()), draw(_side(4))
    case = draw(st.sampled_from(["2d", "3d", "broadcast", "vector-matrix",
                                 "matrix-vector", "vector-vector"]))
    shape1, shape2 = {
        "2d": ((n, k), (k, m)),
        "3d": ((batch, n, k), (batch, k, m)),
        "broadcast": ((batch, n, k), (1, k, m)) if draw(st.booleans()) else ((batch, n, k), (k, m)),
        "vector-matrix": ((k,), (k, m)),
        "matrix-vector": ((n, k), (k,)),
        "vector-vector": ((k,), (k,)),
    }[case]
    return draw(_pair(floatx, shape1, shape2))


def _batch_dot(ex, x, y):
    """Keras 2 K.batch_dot (keras/backend/numpy_backend.py, the backends' test
    reference): per batch entry, tensordot over (axes[0] - 1, axes[1] - 1); a rank-1
    result becomes (batch, 1)."""
    axes = _batch_dot_axes(ex)
    out = np.array([np.tensordot(xi, yi, (axes[0] - 1, axes[1] - 1)) for xi, yi in zip(x, y)])
    return out[:, None] if out.ndim == 1 else out


def _batch_dot_axes(ex):
    x, y, axes = ex["x1"], ex["x2"], ex["axes"]
    if axes is None:
        return [x.ndim - 1, y.ndim - 1 if y.ndim == 2 else y.ndim - 2]
    return [axes, axes] if isinstance(axes, int) else list(axes)


@st.composite
def _batch_dot_inputs(draw, floatx):
    """(batch, ...) operands of rank 2-3, one contracted axis each (never axis 0)."""
    batch, k = draw(_side(4)), draw(_side())
    rank1, rank2 = draw(st.sampled_from([2, 3])), draw(st.sampled_from([2, 3]))
    ax1, ax2 = draw(st.integers(1, rank1 - 1)), draw(st.integers(1, rank2 - 1))
    shape1 = [batch] + [draw(_side(4)) for _ in range(rank1 - 1)]
    shape2 = [batch] + [draw(_side(4)) for _ in range(rank2 - 1)]
    shape1[ax1], shape2[ax2] = k, k
    example = draw(_pair(floatx, tuple(shape1), tuple(shape2)))
    forms = [[ax1, ax2]]
    if ax1 == ax2:
        forms.append(ax1)
    if [ax1, ax2] == [rank1 - 1, rank2 - 1 if rank2 == 2 else rank2 - 2]:
        forms.append(None)  # the documented default
    example["axes"] = draw(st.sampled_from(forms))
    return example


def _tensordot_axes(ex):
    axes = ex["axes"]
    return axes if isinstance(axes, int) else (list(axes[0]), list(axes[1]))


def _tensordot_k(ex):
    axes, x1 = ex["axes"], ex["x1"]
    contracted = range(x1.ndim - axes, x1.ndim) if isinstance(axes, int) else axes[0]
    return int(np.prod([x1.shape[a] for a in contracted]))


@st.composite
def _tensordot_inputs(draw, floatx):
    """axes=N (last N of x1 against first N of x2) or a pair of axis lists."""
    rank1, rank2 = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    count = draw(st.integers(0, min(rank1, rank2, 2)))
    if draw(st.booleans()):
        shared = [draw(_side(4)) for _ in range(count)]
        shape1 = [draw(_side(4)) for _ in range(rank1 - count)] + shared
        shape2 = shared + [draw(_side(4)) for _ in range(rank2 - count)]
        axes = count
    else:
        axes1 = draw(st.permutations(range(rank1)))[:count]
        axes2 = draw(st.permutations(range(rank2)))[:count]
        shape1 = [draw(_side(4)) for _ in range(rank1)]
        shape2 = [draw(_side(4)) for _ in range(rank2)]
        for a1, a2 in zip(axes1, axes2):
            shape2[a2] = shape1[a1]
        axes = [list(axes1), list(axes2)]
    example = draw(_pair(floatx, tuple(shape1), tuple(shape2)))
    example["axes"] = axes
    return example


def _einsum_k(ex):
    inputs, output = ex["subscripts"].split("->")
    sizes = _einsum_sizes(ex)
    return int(np.prod([sizes[c] for c in set(inputs.replace(",", "")) - set(output)]))


def _einsum_sizes(ex):
    sizes = {}
    for spec, array in zip(ex["subscripts"].split("->")[0].split(","), (ex["x1"], ex["x2"])):
        sizes.update(zip(spec, array.shape))
    return sizes


@st.composite
def _einsum_inputs(draw, floatx):
    subscripts = draw(st.sampled_from(EINSUM_SUBSCRIPTS))
    spec1, spec2 = subscripts.split("->")[0].split(",")
    sizes = {c: draw(_side(4)) for c in sorted(set(spec1 + spec2))}
    example = draw(_pair(floatx, tuple(sizes[c] for c in spec1), tuple(sizes[c] for c in spec2)))
    example["subscripts"] = subscripts
    return example


@st.composite
def _outer_inputs(draw, floatx):
    # keras.ops.outer flattens its inputs (np.outer): rank 1 or 2 each.
    shape1 = tuple(draw(st.lists(_side(4), min_size=1, max_size=2)))
    shape2 = tuple(draw(st.lists(_side(4), min_size=1, max_size=2)))
    return draw(_pair(floatx, shape1, shape2))


@st.composite
def _inner_inputs(draw, floatx):
    # np.inner: sum over the last axes of both.
    k = draw(_side())
    lead1 = tuple(draw(st.lists(_side(4), min_size=0, max_size=1)))
    lead2 = tuple(draw(st.lists(_side(4), min_size=0, max_size=1)))
    return draw(_pair(floatx, lead1 + (k,), lead2 + (k,)))


@st.composite
def _vdot_inputs(draw, floatx):
    # np.vdot flattens both operands: same number of elements.
    shape = tuple(draw(st.lists(_side(4), min_size=1, max_size=2)))
    return draw(_pair(floatx, shape, shape))


# -- norm ---------------------------------------------------------------------------
def _norm_args(ex):
    return dict(ord=ex["ord"], axis=ex["axis"], keepdims=ex["keepdims"])


def _norm_terms(ex, index):
    """ord=1: a sum of |x_i|. ord=2/None: sqrt(sum x_i^2), where the sum of squares
    carries (4 sqrt(n) + 2) u of itself (sum, squares, output) and sqrt halves that and
    adds u: (2 sqrt(n) + 2) u |y|, written as Reduction terms (n, |y| (1/2 + 1/(4 sqrt n)))
    plus the class's own u |y|."""
    x = ex["x"].astype(F64)
    n = x.size if ex["axis"] is None else x.shape[ex["axis"]]
    if ex["ord"] == 1:
        return n, np.sum(np.abs(x), axis=ex["axis"], keepdims=ex["keepdims"])
    y = np.linalg.norm(x, **_norm_args(ex))
    return n, y * (0.5 + 0.25 / np.sqrt(max(n, 1)))


@st.composite
def _norm_inputs(draw, floatx):
    """Vector norms only: ord None (2-norm of the flattened array when axis is None),
    1 or 2 along one axis (axis None with ord 1/2 only for rank 1: on a matrix it would
    mean a matrix norm)."""
    shape = draw(S.shapes(1, 3))
    order = draw(st.sampled_from([None, 1, 2]))
    axis = draw(S.axis_for(len(shape), allow_none=order is None or len(shape) == 1))
    return {"x": draw(S.arrays(floatx, shape)), "ord": order, "axis": axis,
            "keepdims": draw(st.booleans())}


# -- solvers and factorizations -----------------------------------------------------
def _finite_outputs(residual):
    """A residual function that reports NOT_FINITE when any output has NaN/inf."""
    def checked(ex, outputs):
        if not all(np.all(np.isfinite(o)) for o in outputs):
            return [np.array(NOT_FINITE)] * len(outputs)
        return residual(ex, outputs)
    return checked


def _ratio(num, den):
    return np.where(den > 0, num / np.where(den > 0, den, 1.0), num)


def _norm2(m):
    """Spectral norm of the last two axes (vectors: their 2-norm)."""
    return np.linalg.norm(m, 2, axis=(-2, -1)) if m.ndim >= 2 else np.linalg.norm(m)


@st.composite
def _well_conditioned(draw, floatx, n, batch=()):
    """Strictly diagonally dominant by a margin in [1, 4] (so ||A^-1||_inf <= 1 and
    cond_inf(A) <= 2 (n - 1) + 4), diagonal signs random, rows permuted."""
    a = draw(S.arrays(floatx, batch + (n, n), -1.0, 1.0)).astype(F64)
    margin = draw(S.arrays(floatx, batch + (n,), 1.0, 4.0)).astype(F64)
    signs = np.where(draw(st.lists(st.booleans(), min_size=n, max_size=n)), 1.0, -1.0)
    idx = np.arange(n)
    off = np.abs(a).sum(axis=-1) - np.abs(a[..., idx, idx])
    a[..., idx, idx] = signs * (off + margin)
    perm = draw(st.permutations(range(n)))
    return a[..., perm, :].astype(floatx)


@st.composite
def _spd(draw, floatx, n, batch=()):
    """M M^T + c I with M in [-1, 1] and c in [0.5, 2]: eigenvalues in [c, n + c]."""
    m = draw(S.arrays(floatx, batch + (n, n), -1.0, 1.0)).astype(F64)
    c = draw(S.floats(floatx, 0.5, 2.0))
    return (m @ np.swapaxes(m, -1, -2) + c * np.eye(n)).astype(floatx)


def _batch():
    return st.one_of(st.just(()), st.tuples(_side(3)))


@st.composite
def _solve_inputs(draw, floatx):
    n, batch = draw(_side(8)), draw(_batch())
    a = draw(_well_conditioned(floatx, n, batch))
    # numpy 2 rule: b is a vector only when it is 1-D (then a is a single matrix).
    rhs = (n,) if not batch and draw(st.booleans()) else (n, draw(_side(4)))
    return {"a": a, "b": draw(S.arrays(floatx, batch + rhs))}


@st.composite
def _square_inputs(draw, floatx, spd=False):
    n, batch = draw(_side(8)), draw(_batch())
    return {"x": draw((_spd if spd else _well_conditioned)(floatx, n, batch))}


def _size(ex):
    return (ex["a"] if "a" in ex else ex["x"]).shape[-1]


def _solve_residual(ex, outputs):
    """Rigal-Gaches normwise backward error per right-hand side:
    ||A x - b|| / (||A|| ||x|| + ||b||)."""
    a, b, x = ex["a"].astype(F64), ex["b"].astype(F64), outputs[0]
    vector = b.ndim == 1
    b_, x_ = (b[:, None], x[:, None]) if vector else (b, x)
    r = np.linalg.norm(a @ x_ - b_, axis=-2)
    den = _norm2(a)[..., None] * np.linalg.norm(x_, axis=-2) + np.linalg.norm(b_, axis=-2)
    return [_ratio(r, den)]


def _inv_residual(ex, outputs):
    """min(||A X - I||, ||X A - I||) / (||A|| ||X||): LU-based inversion bounds one side
    or the other (solving A X = I: the right residual; LAPACK getri: the left one,
    Higham ch. 14.3); for a well-conditioned A they differ by at most cond(A)."""
    a, x = ex["x"].astype(F64), outputs[0]
    eye = np.eye(a.shape[-1])
    r = np.minimum(_norm2(a @ x - eye), _norm2(x @ a - eye))
    return [_ratio(r, _norm2(a) * _norm2(x))]


def _det_residual(ex, outputs):
    """det(A + dA) = det(A) (1 + tr(A^-1 dA) + ...), and |tr(A^-1 dA)| <= ||dA||_2
    ||A^-1||_* (the nuclear norm: sum of 1/sigma_i): a computed determinant d' is the
    exact one of a matrix within relative distance
        |d' - d| / (|d| ||A||_2 sum_i 1/sigma_i(A))
    to first order. That is the backward error reported (LU with partial pivoting
    keeps it near n u; the n multiplications of U's diagonal add u each, which the
    denominator, >= n |d|, covers)."""
    a, d_out = ex["x"].astype(F64), outputs[0]
    sigma = np.linalg.svd(a, compute_uv=False)
    d = np.linalg.det(a)
    den = np.abs(d) * sigma[..., 0] * np.sum(1.0 / sigma, axis=-1)
    return [_ratio(np.abs(d_out - d), den)]


def _cholesky_residual(ex, outputs):
    """||A - L L^T|| / ||A||, plus the size of anything above L's diagonal and of any
    negative diagonal entry (relative to ||L||): the Cholesky factor is the lower-
    triangular one with a positive diagonal (-L reproduces A as well)."""
    a, low = ex["x"].astype(F64), outputs[0]
    r = _norm2(a - low @ np.swapaxes(low, -1, -2)) / _norm2(a)
    negative = np.maximum(-np.diagonal(low, axis1=-2, axis2=-1), 0.0)
    off = np.maximum(np.max(np.abs(np.triu(low, 1)), axis=(-2, -1), initial=0.0),
                     np.max(negative, axis=-1, initial=0.0))
    return [r + off / np.maximum(_norm2(low), 1e-300)]


def _qr_residual(ex, outputs):
    """[||A - Q R|| / ||A|| (+ anything below R's diagonal), ||Q^T Q - I||]: Householder QR
    is backward stable and its Q orthogonal to working precision (Higham ch. 19)."""
    a, q, r = ex["x"].astype(F64), outputs[0], outputs[1]
    scale = np.maximum(_norm2(a), 1e-300)
    factor = (_norm2(a - q @ r) + np.max(np.abs(np.tril(r, -1)), initial=0.0)) / scale
    orthogonal = _norm2(q.T @ q - np.eye(q.shape[1]))
    return [factor, orthogonal]


@st.composite
def _qr_inputs(draw, floatx):
    shape = (draw(_side()), draw(_side()))
    return {"x": draw(S.arrays(floatx, shape))}


def _lapack_op(name, reference, residual, inputs, size=_size, args=("x",)):
    return Op(
        name=name, family="linalg",
        inputs=inputs,
        reference=reference,
        tolerance=BackwardError(_finite_outputs(residual), size),
        keras3=keras3(name, *args),
        keras2=None,  # Keras 2's keras.backend has no solvers or factorizations
        floatx=LAPACK_FLOATX,
    )


def _x(ex):
    return ex["x"].astype(F64)


OPS = [
    # -- contractions -----------------------------------------------------------------
    _contraction("dot", lambda ex, a, b: np.dot(a, b), lambda ex: ex["x1"].shape[-1],
                 _dot_inputs, k2=Call("keras.backend.dot", args=("x1", "x2"), params=("x2",))),
    # Keras 2 has no matmul: K.dot (2-D) and K.batch_dot (batches) are tested as such.
    _contraction("matmul", lambda ex, a, b: np.matmul(a, b), lambda ex: ex["x1"].shape[-1],
                 _matmul_inputs),
    # keras.ops has no batch_dot: Keras 2 only.
    _contraction("batch_dot", _batch_dot, lambda ex: ex["x1"].shape[_batch_dot_axes(ex)[0]],
                 _batch_dot_inputs, k3=None,
                 k2=keras2("batch_dot", "x1", "x2", axes="axes")),
    _contraction("tensordot", lambda ex, a, b: np.tensordot(a, b, _tensordot_axes(ex)),
                 _tensordot_k, _tensordot_inputs,
                 k3=keras3("tensordot", "x1", "x2", axes="axes")),
    _contraction("einsum", lambda ex, a, b: np.einsum(ex["subscripts"], a, b), _einsum_k,
                 _einsum_inputs, k3=keras3("einsum", "subscripts", "x1", "x2")),
    _contraction("outer", lambda ex, a, b: np.outer(a, b), lambda ex: 1, _outer_inputs),
    _contraction("inner", lambda ex, a, b: np.inner(a, b), lambda ex: ex["x1"].shape[-1],
                 _inner_inputs),
    _contraction("vdot", lambda ex, a, b: np.vdot(a, b), lambda ex: ex["x1"].size,
                 _vdot_inputs),
    # -- vector norms (Keras 3 only; K.l2_normalize is a different op) ---------------
    Op(name="norm", family="linalg", inputs=_norm_inputs,
       reference=lambda ex, ctx: np.linalg.norm(_x(ex), **_norm_args(ex)),
       # + squares below floatx's smallest normal flush to zero before the sum
       # (numpy's float32 sqrt(dot(x, x)) does): sqrt(n * 2 tiny) of absolute error
       tolerance=Reduction(_norm_terms) + InnerFloor(
           lambda ex: np.sqrt(_norm_terms(ex, 0)[0] / floor(str(ex["x"].dtype))),
           "sqrt(n 2 tiny)"),
       keras3=keras3("norm", "x", ord="ord", axis="axis", keepdims="keepdims"), keras2=None),
    # -- solvers and factorizations: backward error <= 8 n u --------------------------
    _lapack_op("solve", lambda ex, ctx: np.linalg.solve(ex["a"].astype(F64), ex["b"].astype(F64)),
               _solve_residual, _solve_inputs, args=("a", "b")),
    _lapack_op("inv", lambda ex, ctx: np.linalg.inv(_x(ex)), _inv_residual,
               lambda fx: _square_inputs(fx)),
    _lapack_op("det", lambda ex, ctx: np.linalg.det(_x(ex)), _det_residual,
               lambda fx: _square_inputs(fx)),
    _lapack_op("cholesky", lambda ex, ctx: np.linalg.cholesky(_x(ex)), _cholesky_residual,
               lambda fx: _square_inputs(fx, spd=True)),
    _lapack_op("qr", lambda ex, ctx: list(np.linalg.qr(_x(ex))), _qr_residual, _qr_inputs,
               size=lambda ex: max(ex["x"].shape)),
]
