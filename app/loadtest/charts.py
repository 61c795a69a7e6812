"""Small SVG charts for self-contained HTML reports, and the percentile their markers use.

Every chart is a string holding one inline `<svg role="img">` with a `<title>` and a
`<desc>`, axes with ticks and labels, and series told apart by dash pattern and
marker shape as well as colour (so they read in greyscale too). Output is
deterministic: the same input gives the same bytes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape
from typing import Callable, Sequence

import numpy as np

# Okabe-Ito: distinguishable with the common colour-vision deficiencies.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")
DASHES = ("", "7 3", "2 3", "9 3 2 3", "4 4", "12 4", "1 2", "6 2 2 2 2 2")
MARKERS = ("circle", "square", "triangle", "diamond", "cross", "circle", "square", "triangle")

WIDTH, HEIGHT = 640, 260
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 62, 16, 30, 44

Formatter = Callable[[float], str]


@dataclass(frozen=True)
class Series:
    """One named line: (x, y) points in data units, x increasing."""

    label: str
    points: Sequence[tuple[float, float]]


def fmt_number(value: float) -> str:
    """A short, stable rendering of a number for tick labels (no exponent for everyday sizes)."""
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 1e6:
        return f"{value / 1e6:g}M"
    if magnitude >= 1e4:
        return f"{value / 1e3:g}k"
    if magnitude >= 100 or float(value).is_integer():
        return f"{value:.0f}"
    if magnitude >= 1:
        return f"{value:.3g}"
    return f"{value:.2g}"


def nice_ticks(lo: float, hi: float, count: int = 5, integer: bool = False) -> list[float]:
    """About `count` round tick values (1, 2, 2.5, 5 x 10^k steps; whole steps if `integer`) covering [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return [0.0]
    if hi < lo:
        lo, hi = hi, lo
    if hi == lo:
        hi = lo + 1.0
    raw = (hi - lo) / max(1, count)
    if integer:
        raw = max(raw, 1.0)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw and not (integer and m == 2.5 and power < 10))
    first = math.floor(lo / step + 1e-9) * step
    ticks = []
    value = first
    while value <= hi + step * 1e-9:
        ticks.append(round(value, 12) + 0.0)
        value = first + step * len(ticks)
    if ticks[-1] < hi:
        ticks.append(round(first + step * len(ticks), 12))
    return ticks


def histogram_counts(values: Sequence[float], bins: int = 20, lo: float | None = None,
                     hi: float | None = None) -> tuple[list[float], list[int]]:
    """Bin edges (bins + 1 of them) and counts. Bins are [edge_i, edge_i+1), the last one closed;
    values outside [lo, hi] are clamped into the first or last bin."""
    bins = max(1, bins)
    finite = [float(v) for v in values if v is not None and math.isfinite(v)]
    lo = min(finite, default=0.0) if lo is None else lo
    hi = max(finite, default=1.0) if hi is None else hi
    if hi <= lo:
        lo, hi = lo - 0.5, lo + 0.5
    width = (hi - lo) / bins
    edges = [lo + width * i for i in range(bins)] + [hi]
    counts = [0] * bins
    for value in finite:
        counts[min(bins - 1, max(0, int((value - lo) / width)))] += 1
    return edges, counts


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100) of the finite values, interpolated linearly between the two nearest
    ranks (numpy's default "linear" method); None for no values."""
    finite = [float(v) for v in values if v is not None and math.isfinite(v)]
    return float(np.percentile(finite, q)) if finite else None


def cdf_points(values: Sequence[float]) -> list[tuple[float, float]]:
    """(value, fraction of values <= it) for a step-free empirical CDF line."""
    ordered = sorted(float(v) for v in values if v is not None and math.isfinite(v))
    n = len(ordered)
    return [(v, (i + 1) / n) for i, v in enumerate(ordered)]


class _Frame:
    """Maps data coordinates onto the plot area and draws the axes."""

    def __init__(self, x_range: tuple[float, float], y_range: tuple[float, float], width: int, height: int,
                 top: int = MARGIN_TOP, integer_y: bool = False) -> None:
        self.width, self.height = width, height
        self.left, self.top = MARGIN_LEFT, top
        self.right, self.bottom = width - MARGIN_RIGHT, height - MARGIN_BOTTOM
        self.x_ticks = nice_ticks(*x_range)
        self.y_ticks = nice_ticks(*y_range, integer=integer_y)
        self.x0, self.x1 = self.x_ticks[0], self.x_ticks[-1]
        self.y0, self.y1 = self.y_ticks[0], self.y_ticks[-1]

    def x(self, value: float) -> float:
        return round(self.left + (value - self.x0) / (self.x1 - self.x0) * (self.right - self.left), 2)

    def y(self, value: float) -> float:
        return round(self.bottom - (value - self.y0) / (self.y1 - self.y0) * (self.bottom - self.top), 2)

    def axes(self, x_label: str, y_label: str, x_format: Formatter, y_format: Formatter) -> list[str]:
        out = ['<g class="grid">']
        for tick in self.y_ticks:
            y = self.y(tick)
            out.append(f'<line x1="{self.left}" y1="{y}" x2="{self.right}" y2="{y}"/>')
        out.append('</g><g class="axis">')
        out.append(f'<line x1="{self.left}" y1="{self.bottom}" x2="{self.right}" y2="{self.bottom}"/>')
        out.append(f'<line x1="{self.left}" y1="{self.top}" x2="{self.left}" y2="{self.bottom}"/>')
        for tick in self.x_ticks:
            x = self.x(tick)
            out.append(f'<line x1="{x}" y1="{self.bottom}" x2="{x}" y2="{self.bottom + 4}"/>'
                       f'<text x="{x}" y="{self.bottom + 16}" text-anchor="middle">{escape(x_format(tick))}</text>')
        for tick in self.y_ticks:
            y = self.y(tick)
            out.append(f'<line x1="{self.left - 4}" y1="{y}" x2="{self.left}" y2="{y}"/>'
                       f'<text x="{self.left - 7}" y="{y + 4}" text-anchor="end">{escape(y_format(tick))}</text>')
        mid_x = (self.left + self.right) / 2
        mid_y = (self.top + self.bottom) / 2
        out.append(f'<text class="label" x="{mid_x}" y="{self.height - 6}" text-anchor="middle">{escape(x_label)}</text>')
        out.append(f'<text class="label" x="14" y="{mid_y}" text-anchor="middle" '
                   f'transform="rotate(-90 14 {mid_y})">{escape(y_label)}</text>')
        out.append("</g>")
        return out


def _open_svg(chart_id: str, title: str, desc: str, width: int, height: int) -> list[str]:
    cid = escape(chart_id)
    return [
        f'<svg class="chart" id="{cid}" role="img" aria-labelledby="{cid}-title {cid}-desc" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{cid}-title">{escape(title)}</title>',
        f'<desc id="{cid}-desc">{escape(desc)}</desc>',
        f'<text class="chart-title" x="{MARGIN_LEFT}" y="18">{escape(title)}</text>',
    ]


def _marker(shape: str, x: float, y: float, color: str) -> str:
    if shape == "square":
        return f'<rect x="{x - 3}" y="{y - 3}" width="6" height="6" fill="{color}"/>'
    if shape == "triangle":
        return f'<polygon points="{x},{y - 4} {x - 4},{y + 3} {x + 4},{y + 3}" fill="{color}"/>'
    if shape == "diamond":
        return f'<polygon points="{x},{y - 4} {x + 4},{y} {x},{y + 4} {x - 4},{y}" fill="{color}"/>'
    if shape == "cross":
        return (f'<path d="M{x - 3},{y - 3}L{x + 3},{y + 3}M{x - 3},{y + 3}L{x + 3},{y - 3}" '
                f'stroke="{color}" stroke-width="2"/>')
    return f'<circle cx="{x}" cy="{y}" r="3" fill="{color}"/>'


def no_data(title: str, chart_id: str, message: str = "no data", width: int = WIDTH, height: int = 90) -> str:
    """A placeholder chart that says there is nothing to plot."""
    out = _open_svg(chart_id, title, message, width, height)
    out.append(f'<text class="no-data" x="{width / 2}" y="{height / 2 + 12}" text-anchor="middle">'
               f'{escape(message)}</text></svg>')
    return "".join(out)


def line_chart(series: Sequence[Series], *, title: str, chart_id: str, x_label: str, y_label: str,
               desc: str = "", x_format: Formatter = fmt_number, y_format: Formatter = fmt_number,
               y_min: float | None = 0.0, width: int = WIDTH, height: int = HEIGHT) -> str:
    """Lines (one per series, each with its own colour, dash pattern and marker) with a legend."""
    drawn = [s for s in series if s.points]
    if not drawn:
        return no_data(title, chart_id, width=width)
    xs = [p[0] for s in drawn for p in s.points]
    ys = [p[1] for s in drawn for p in s.points]
    low = min(ys) if y_min is None else min(y_min, min(ys))
    rows = (len(drawn) + 3) // 4 if len(drawn) > 1 else 0   # legend rows above the plot
    frame = _Frame((min(xs), max(xs)), (low, max(ys)), width, height + 18 * rows, top=MARGIN_TOP + 18 * rows)
    out = _open_svg(chart_id, title, desc or f"{y_label} against {x_label}", width, frame.height)
    out += frame.axes(x_label, y_label, x_format, y_format)
    for i, s in enumerate(drawn):
        color, dash, shape = PALETTE[i % len(PALETTE)], DASHES[i % len(DASHES)], MARKERS[i % len(MARKERS)]
        path = " ".join(f"{'M' if j == 0 else 'L'}{frame.x(x)},{frame.y(y)}" for j, (x, y) in enumerate(s.points))
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        out.append(f'<g class="series"><title>{escape(s.label)}</title>'
                   f'<path d="{path}" fill="none" stroke="{color}" stroke-width="2"{dash_attr}/>')
        step = max(1, len(s.points) // 8)   # a few markers per line, offset per series so they do not stack
        for x, y in list(s.points)[i % step::step]:
            out.append(_marker(shape, frame.x(x), frame.y(y), color))
        out.append("</g>")
        lx, ly = MARGIN_LEFT + 140 * (i % 4), 40 + 18 * (i // 4)
        if rows:
            out.append(f'<g class="legend"><line x1="{lx}" y1="{ly - 4}" x2="{lx + 24}" y2="{ly - 4}" '
                       f'stroke="{color}" stroke-width="2"{dash_attr}/>{_marker(shape, lx + 12, ly - 4, color)}'
                       f'<text x="{lx + 28}" y="{ly}">{escape(s.label)}</text></g>')
    out.append("</svg>")
    return "".join(out)


def auto_bins(n: int) -> int:
    """A bin count for n values: about sqrt(n), between 5 and 30."""
    return max(5, min(30, math.ceil(math.sqrt(max(n, 1)))))


def histogram_chart(values: Sequence[float], *, title: str, chart_id: str, x_label: str, bins: int | None = None,
                    markers: Sequence[tuple[str, float]] = (), x_format: Formatter = fmt_number,
                    width: int = WIDTH, height: int = HEIGHT) -> str:
    """Bars of counts per bin, with labelled dashed vertical markers (e.g. p50, p99)."""
    finite = [float(v) for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return no_data(title, chart_id, width=width)
    edges, counts = histogram_counts(finite, bins or auto_bins(len(finite)))
    frame = _Frame((edges[0], edges[-1]), (0.0, float(max(counts))), width, height, integer_y=True)
    desc = f"histogram of {len(finite)} values of {x_label} in {len(counts)} bins"
    out = _open_svg(chart_id, title, desc, width, height)
    out += frame.axes(x_label, "count", x_format, fmt_number)
    out.append('<g class="bars">')
    for i, count in enumerate(counts):
        if count == 0:
            continue
        x0, x1, y = frame.x(edges[i]), frame.x(edges[i + 1]), frame.y(count)
        out.append(f'<rect class="bar" x="{x0}" y="{y}" width="{round(max(0.5, x1 - x0 - 1), 2)}" '
                   f'height="{round(frame.bottom - y, 2)}" fill="{PALETTE[0]}">'
                   f'<title>{escape(x_format(edges[i]))} to {escape(x_format(edges[i + 1]))}: {count}</title></rect>')
    out.append("</g>")
    for j, (label, value) in enumerate(markers):
        if value is None or not math.isfinite(value):
            continue
        x = frame.x(min(max(value, frame.x0), frame.x1))
        text = f"{label} {x_format(value)}"
        # the label sits right of the line, or left of it in the right third of the plot
        left = x > frame.left + (frame.right - frame.left) * 2 / 3
        anchor = f'x="{x - 3}" text-anchor="end"' if left else f'x="{x + 3}"'
        out.append(f'<g class="marker"><line x1="{x}" y1="{frame.top}" x2="{x}" y2="{frame.bottom}" '
                   f'stroke="{PALETTE[1]}" stroke-width="1.5" stroke-dasharray="{DASHES[1 + j % 3]}"/>'
                   f'<text {anchor} y="{frame.top + 10 + 12 * j}">{escape(text)}</text></g>')
    out.append("</svg>")
    return "".join(out)
