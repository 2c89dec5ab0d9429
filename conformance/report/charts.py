"""Charts as inline SVG (matplotlib, SVG backend only, no pyplot state).

SVGs are kept small: text stays text (``svg.fonttype = none``), coordinates are
rounded, metadata and namespace URLs are dropped, and ids get a per-chart prefix so
several charts can live in one HTML page. Legends are drawn in HTML by the template
(the same colour per target all over the page), not by matplotlib.

Labels are target ids: matplotlib escapes them as SVG text, after `clean_text` and with
mathtext off (a ``$`` in a label is shown, never parsed). matplotlib's ``<style>``
element goes (report.css has its one rule): the page's Content-Security-Policy allows
only the page's own style element.
"""
from __future__ import annotations

import io
import math
import re

import numpy as np

from conformance.report.fmt import clean_text, number

PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf"]
LOW = -4   # log10 of the smallest ratio with its own bin; smaller ones (and 0) go left
BINS_PER_DECADE = 2

_mpl = None
_ROUND = re.compile(r"(\d+\.\d)\d+")


def available() -> bool:
    return _matplotlib() is not None


def _matplotlib():
    global _mpl
    if _mpl is None:
        try:
            import matplotlib
            from matplotlib.backends.backend_svg import FigureCanvasSVG
            from matplotlib.figure import Figure
            from matplotlib.ticker import FixedFormatter, FixedLocator, MaxNLocator
        except ImportError:
            _mpl = False
        else:
            _mpl = {"Figure": Figure, "Canvas": FigureCanvasSVG, "FixedLocator": FixedLocator,
                    "FixedFormatter": FixedFormatter, "MaxNLocator": MaxNLocator,
                    "rc": matplotlib.rc_context}
    return _mpl or None


_RC = {"svg.fonttype": "none", "svg.hashsalt": "conformance", "font.size": 7,
       "font.family": "sans-serif", "axes.linewidth": 0.6, "xtick.major.width": 0.6,
       "ytick.major.width": 0.6, "xtick.major.size": 2.5, "ytick.major.size": 2.5,
       "path.simplify": True, "text.parse_math": False}


def _svg(fig, prefix: str) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None,
                                                "Format": None, "Type": None})
    text = buffer.getvalue()
    text = text[text.index("<svg"):]
    text = re.sub(r"<metadata>.*?</metadata>", "", text, flags=re.S)
    text = re.sub(r"<style[^>]*>.*?</style>", "", text, flags=re.S)
    text = re.sub(r'\s+xmlns(:xlink)?="[^"]*"', "", text)
    text = re.sub(r"\s*\n\s*", " ", text)
    # round coordinates in attribute values (never in text), implicit lineto in paths
    text = re.sub(r'="([^"]*)"', lambda m: '="' + _ROUND.sub(r"\1", m.group(1)) + '"', text)
    text = re.sub(r'd="M ([^"a-zA-KN-Z]*)"', lambda m: 'd="M ' + m.group(1).replace(" L ", " ") + '"', text)
    text = re.sub(r' (width|height)="([\d.]+)pt"', "", text, count=2)
    text = text.replace("<svg", '<svg role="img" class="chart"', 1)
    text = re.sub(r'id="([^"]+)"', lambda m: f'id="{prefix}{m.group(1)}"', text)
    text = re.sub(r'url\(#([^)]+)\)', lambda m: f"url(#{prefix}{m.group(1)})", text)
    text = re.sub(r'xlink:href="#([^"]+)"', lambda m: f'xlink:href="#{prefix}{m.group(1)}"', text)
    return text


def ratio_bins(high: float) -> np.ndarray:
    top = max(1, math.ceil(math.log10(high)) if high > 0 and math.isfinite(high) else 1)
    top = min(top, 20)
    return np.arange(LOW, top + 1e-9, 1.0 / BINS_PER_DECADE)


class _HistogramCanvas:
    """One figure reused for every histogram: only data, limits and ticks change.

    Building axes and ticks dominates matplotlib's cost; reusing them makes a
    histogram ~5x cheaper than a fresh figure.
    """

    def __init__(self, mpl):
        from matplotlib.collections import LineCollection

        self.mpl = mpl
        with mpl["rc"](_RC):
            self.fig = mpl["Figure"](figsize=(3.6, 1.6))
            mpl["Canvas"](self.fig)
            ax = self.fig.add_axes((0.11, 0.24, 0.86, 0.72))
            self.lines = LineCollection([], linewidths=1.2)
            ax.add_collection(self.lines, autolim=False)
            ax.axvspan(0.0, 100.0, color="#e8615a", alpha=0.08, linewidth=0)
            ax.axvline(0.0, color="#444", linewidth=0.8, linestyle=(0, (3, 2)))
            ax.set_xlabel("worst error / tolerance per example (log scale)", labelpad=1)
            for side in ("top", "right"):
                ax.spines[side].set_visible(False)
            self.ax = ax

    def draw(self, series, edges, prefix: str) -> str:
        mpl, ax = self.mpl, self.ax
        segments, colours, top = [], [], 0
        for values, colour in series:
            logs = np.log10(np.maximum(values, 10.0 ** LOW))
            logs = np.minimum(logs, edges[-1] - 1e-9)
            counts, _ = np.histogram(logs, edges)
            top = max(top, int(counts.max()))
            segments.append(_steps(edges, counts))
            colours.append(colour)
        with mpl["rc"](_RC):
            self.lines.set_segments(segments)
            self.lines.set_color(colours)
            ax.set_xlim(edges[0], edges[-1])
            ax.set_ylim(0, max(top, 1) * 1.1)
            decades = list(range(LOW, int(round(edges[-1])) + 1))
            step = max(1, math.ceil(len(decades) / 8))
            ticks = decades[::step]
            ax.xaxis.set_major_locator(mpl["FixedLocator"](ticks))
            ax.xaxis.set_major_formatter(mpl["FixedFormatter"](
                ["≤1e-4" if t == LOW else ("1" if t == 0 else f"1e{t}") for t in ticks]))
            ax.yaxis.set_major_locator(mpl["MaxNLocator"](3, integer=True))
            return _svg(self.fig, prefix)


def _steps(edges: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Vertices of a step outline, only where the count changes."""
    points = [(edges[0], 0.0), (edges[0], counts[0])]
    for k in range(1, len(counts)):
        if counts[k] != counts[k - 1]:
            points += [(edges[k], counts[k - 1]), (edges[k], counts[k])]
    points += [(edges[-1], counts[-1]), (edges[-1], 0.0)]
    return np.array(points, dtype="float64")


_canvas = None


def histogram(series: list[tuple[str, list, str]], prefix: str) -> str | None:
    """Step histogram of log10(error / tolerance), one line per (label, ratios, colour).

    Ratios of 0 (exact) and below 1e-4 fall in the leftmost bin (shown as "≤1e-4");
    infinite and NaN ratios are left out (the tables count them). The dashed line is
    the tolerance (ratio 1): right of it fails. Labels go in the HTML legend.
    """
    global _canvas
    mpl = _matplotlib()
    if mpl is None:
        return None
    cleaned, high = [], 1.0
    for _label, ratios, colour in series:
        values = np.array([v for v in (number(r) for r in ratios or [])
                           if v is not None and math.isfinite(v)], dtype="float64")
        if values.size:
            high = max(high, float(values.max()))
            cleaned.append((values, colour))
    if not cleaned:
        return None
    if _canvas is None:
        _canvas = _HistogramCanvas(mpl)
    return _canvas.draw(cleaned, ratio_bins(high), prefix)


def heatmap(labels: list[str], matrix: np.ndarray, counts: np.ndarray, prefix: str) -> str | None:
    """Square target x target heatmap of disagreement rates (NaN: never compared)."""
    mpl = _matplotlib()
    if mpl is None or not labels:
        return None
    n = len(labels)
    size = 1.2 + 0.42 * n
    with mpl["rc"](_RC):
        fig = mpl["Figure"](figsize=(size + 1.2, size))
        mpl["Canvas"](fig)
        left = 1.1 / (size + 1.2)
        ax = fig.add_axes((left, 0.9 / size, (0.42 * n) / (size + 1.2), (0.42 * n) / size))
        shown = np.ma.masked_invalid(matrix)
        image = ax.imshow(shown, cmap="OrRd", vmin=0.0, vmax=max(0.05, float(np.nanmax(matrix))
                                                                 if np.isfinite(matrix).any() else 1.0))
        ax.set_xticks(range(n))
        ax.set_yticks(range(n))
        shown_labels = [clean_text(label) for label in labels]
        ax.set_xticklabels(shown_labels, rotation=40, ha="right")
        ax.set_yticklabels(shown_labels)
        ax.tick_params(length=0)
        for i in range(n):
            for j in range(n):
                if i == j:
                    continue
                value = matrix[i, j]
                text = "–" if not math.isfinite(value) else (
                    "0" if counts[i, j] == 0 else f"{100 * value:.0f}%" if value >= 0.01
                    else f"{100 * value:.1f}%")
                dark = math.isfinite(value) and value > 0.55 * (image.norm.vmax or 1)
                ax.text(j, i, text, ha="center", va="center", fontsize=6.5,
                        color="white" if dark else "#222")
        from matplotlib.ticker import PercentFormatter

        bar = fig.colorbar(image, ax=ax, fraction=0.04, pad=0.02, format=PercentFormatter(1.0, decimals=0))
        bar.ax.tick_params(labelsize=6, length=2)
        bar.set_label("share of compared examples outside tolerance", fontsize=6)
        return _svg(fig, prefix)
