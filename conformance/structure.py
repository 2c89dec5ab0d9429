"""Structural arguments covered systematically, values still drawn by hypothesis.

Random draws rarely hit the combinations where backends break: `axis=None` with
`keepdims=True`, `axis=-ndim`, several axes at once, asymmetric 'same' padding.
An op declares its structural dimensions and their values (`Op.structure`, e.g.
``{"rank": (1, 2, 3), "axis": ("none", "first", "neg_first", "multi"),
"keepdims": (False, True)}``); `rows` turns them into a pairwise covering set (every
two values of every two dimensions appear together in some row, with as few rows as
allpairspy finds). The engine draws one example per row besides the random ones:
while a row is `fixed`, the strategies' structural draws (`pinned`) return the row's
value instead of drawing it, and everything else (shapes' sides, array values) is
drawn as usual. A row value that does not fit the rest of the example (several axes
of a rank-1 array, say) falls back to a draw.

Symbolic axes, resolved against the rank drawn: "none", "first" (0), "last" (ndim-1),
"neg_first" (-ndim), "neg_last" (-1), "multi" (the first and the last axis).
"""
from __future__ import annotations

import threading
from contextlib import contextmanager

from allpairspy import AllPairs
from hypothesis import strategies as st

UNFIT = object()  # a pinned value that does not fit this example: draw instead
_state = threading.local()


def rows(structure: dict | None) -> list[dict]:
    """A pairwise covering set of the structure's values ([] for no structure)."""
    if not structure:
        return []
    names = list(structure)
    values = [list(structure[name]) for name in names]
    if len(names) == 1:
        return [{names[0]: v} for v in values[0]]
    return [dict(zip(names, row)) for row in AllPairs(values)]


def current() -> dict:
    """The row pinned now ({} outside `fixed`)."""
    return getattr(_state, "fixed", None) or {}


@contextmanager
def fixed(row: dict | None):
    """Pin one row for every draw made inside (one hypothesis search per row: within
    one search a strategy must draw the same way for the same choices)."""
    saved = getattr(_state, "fixed", None)
    _state.fixed = row or None
    try:
        yield
    finally:
        _state.fixed = saved


def pinned(name: str, strategy, resolve=None):
    """`strategy` itself, unless the active row pins `name`: then just the row's value,
    passed through `resolve` (which returns UNFIT when it does not fit this example).
    Decided when called, which is while drawing when called inside a composite
    strategy: outside a row the draws are exactly those of `strategy`."""
    def just(value):
        value = resolve(value) if resolve is not None else value
        return UNFIT if value is UNFIT else st.just(value)
    return narrowed(name, strategy, just)


def resolve_axis(symbol, ndim: int, allow_none: bool = True, negative: bool = True,
                 multi: bool = False):
    """A symbolic axis as a concrete one for rank `ndim` (UNFIT where it cannot be)."""
    if symbol == "none":
        return None if allow_none else UNFIT
    if ndim < 1:
        return UNFIT
    concrete = {"first": 0, "last": ndim - 1, "neg_first": -ndim, "neg_last": -1}
    if symbol in concrete:
        axis = concrete[symbol]
        return axis if negative or axis >= 0 else UNFIT
    if symbol == "multi":
        return [0, ndim - 1] if multi and ndim >= 2 else UNFIT
    return symbol if isinstance(symbol, int) and -ndim <= symbol < ndim else UNFIT


def resolve_within(low: int, high: int):
    """For ranks and sizes: the pinned number where it lies in [low, high]."""
    return lambda value: value if low <= value <= high else UNFIT


def narrowed(name: str, strategy, narrow):
    """`strategy` itself, unless the active row pins `name`: then the strategy
    `narrow(value)` returns (UNFIT: `strategy`), for a structural property that several
    values share (an even kernel, odd sides), the value still drawn. Decided when
    called (see `pinned`)."""
    row = current()
    if name in row:
        chosen = narrow(row[name])
        if chosen is not UNFIT:
            return chosen
    return strategy


def among(options, fits):
    """For `narrowed`: the row's value -> a draw from the options that fit it
    (`fits(value, option)`), UNFIT where none does."""
    def narrow(value):
        chosen = [option for option in options if fits(value, option)]
        return st.sampled_from(chosen) if chosen else UNFIT
    return narrow


def renamed(build, **names):
    """The strategy `build()` makes, built and drawn with the row's dimensions renamed
    for it, for a strategy that draws a second shape: ``renamed(lambda: S.shapes(0, 2),
    rank="index_rank")`` pins that shape's rank by the row's "index_rank", never by its
    "rank". Outside a row: `build()` itself."""
    row = current()
    if not row:
        return build()
    inner = {k: v for k, v in row.items() if k not in names}
    inner.update({k: row[outer] for k, outer in names.items() if outer in row})
    with fixed(inner):
        return build()
