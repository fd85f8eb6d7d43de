"""Plain inline SVG scatter plots with interval bars (no JavaScript, no fonts or files to fetch).

:func:`scatter_svg` draws one point per item with a horizontal and a vertical bar (its intervals), the
item's label beside it, labelled axes with "nice" ticks and a ``<title>`` tooltip per point. Every text
comes from the caller and is escaped here, so labels from result records are never markup. Points and
the figure carry ``data-`` attributes (metric names, values) for tests and scripts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

#: Colours of the points (colour-blind safe, Okabe-Ito), cycled.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")


@dataclass(frozen=True)
class Interval:
    """A value with its interval (NaN bounds: no bar)."""

    value: float
    low: float = float("nan")
    high: float = float("nan")

    def finite(self) -> bool:
        return math.isfinite(self.value)

    def bounds(self) -> list[float]:
        return [v for v in (self.value, self.low, self.high) if math.isfinite(v)]


@dataclass(frozen=True)
class Point:
    """One item of the plot: its key (``data-key``), label, x and y with intervals, tooltip text."""

    key: str
    label: str
    x: Interval
    y: Interval
    note: str = ""


def nice_ticks(low: float, high: float, target: int = 5) -> list[float]:
    """About ``target`` round tick values (steps 1, 2, 2.5 or 5 times a power of ten) covering [low, high]."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return []
    if high <= low:
        pad = abs(low) * 0.05 or 1.0
        low, high = low - pad, high + pad
    raw = (high - low) / max(1, target)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    first = math.floor(low / step) * step
    ticks = []
    k = 0
    while first + k * step <= high + step * 1e-9:
        ticks.append(round(first + k * step, 12))
        k += 1
    if ticks[-1] < high:
        ticks.append(round(first + k * step, 12))
    return ticks


def _fmt_tick(v: float, step: float) -> str:
    """A tick value with the decimals its step needs (0.025 -> 3, 2.5 -> 1, 20 -> 0)."""
    if not step > 0:
        return f"{v:g}"
    power = math.floor(math.log10(step) + 1e-9)
    extra = 1 if abs(step / 10**power - 2.5) < 1e-9 else 0
    return f"{v:.{max(0, -power + extra)}f}"


def scatter_svg(points: Sequence[Point], x_label: str, y_label: str, *, title: str = "", width: int = 560,
                height: int = 400, css_class: str = "scatter", data: dict[str, str] | None = None) -> str:
    """An ``<svg>`` element (a string of escaped markup); empty string when no point has finite x and y."""
    shown = [p for p in points if p.x.finite() and p.y.finite()]
    if not shown:
        return ""
    left, right, top, bottom = 72, 150, 28 if title else 14, 52
    pw, ph = width - left - right, height - top - bottom
    xs = [v for p in shown for v in p.x.bounds()]
    ys = [v for p in shown for v in p.y.bounds()]
    xt, yt = nice_ticks(min(xs), max(xs)), nice_ticks(min(ys), max(ys))
    x0, x1, y0, y1 = xt[0], xt[-1], yt[0], yt[-1]

    def sx(v: float) -> float:
        return left + (v - x0) / (x1 - x0) * pw

    def sy(v: float) -> float:
        return top + ph - (v - y0) / (y1 - y0) * ph

    attrs = "".join(f' data-{escape(k, quote=True)}="{escape(v, quote=True)}"' for k, v in (data or {}).items())
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="{escape(css_class, quote=True)}" width="{width}" '
           f'height="{height}" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title or y_label, quote=True)}"'
           f'{attrs} data-points="{len(shown)}" font-family="sans-serif" font-size="11">']
    if title:
        out.append(f'<text x="{left + pw / 2:.1f}" y="16" text-anchor="middle" font-size="12" font-weight="bold">'
                   f'{escape(title)}</text>')
    out.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>')
    xstep, ystep = (xt[1] - xt[0]) if len(xt) > 1 else 1.0, (yt[1] - yt[0]) if len(yt) > 1 else 1.0
    for v in xt:
        out.append(f'<line class="grid" x1="{sx(v):.1f}" x2="{sx(v):.1f}" y1="{top}" y2="{top + ph}" stroke="#eee"/>')
        out.append(f'<text x="{sx(v):.1f}" y="{top + ph + 15}" text-anchor="middle">{_fmt_tick(v, xstep)}</text>')
    for v in yt:
        out.append(f'<line class="grid" x1="{left}" x2="{left + pw}" y1="{sy(v):.1f}" y2="{sy(v):.1f}" stroke="#eee"/>')
        out.append(f'<text x="{left - 6}" y="{sy(v) + 4:.1f}" text-anchor="end">{_fmt_tick(v, ystep)}</text>')
    out.append(f'<text class="x-label" x="{left + pw / 2:.1f}" y="{height - 12}" text-anchor="middle">'
               f'{escape(x_label)}</text>')
    out.append(f'<text class="y-label" transform="translate(16 {top + ph / 2:.1f}) rotate(-90)" '
               f'text-anchor="middle">{escape(y_label)}</text>')
    for i, p in enumerate(shown):
        colour = PALETTE[i % len(PALETTE)]
        cx, cy = sx(p.x.value), sy(p.y.value)
        out.append(f'<g class="point" data-key="{escape(p.key, quote=True)}" data-x="{p.x.value!r}" '
                   f'data-y="{p.y.value!r}" stroke="{colour}" fill="{colour}">')
        out.append(f"<title>{escape(p.note or p.label)}</title>")
        if math.isfinite(p.x.low) and math.isfinite(p.x.high):
            a, b = sx(p.x.low), sx(p.x.high)
            out.append(f'<line class="x-bar" x1="{a:.1f}" x2="{b:.1f}" y1="{cy:.1f}" y2="{cy:.1f}" stroke-width="1.5"/>')
            out += [f'<line x1="{v:.1f}" x2="{v:.1f}" y1="{cy - 4:.1f}" y2="{cy + 4:.1f}"/>' for v in (a, b)]
        if math.isfinite(p.y.low) and math.isfinite(p.y.high):
            a, b = sy(p.y.low), sy(p.y.high)
            out.append(f'<line class="y-bar" x1="{cx:.1f}" x2="{cx:.1f}" y1="{a:.1f}" y2="{b:.1f}" stroke-width="1.5"/>')
            out += [f'<line x1="{cx - 4:.1f}" x2="{cx + 4:.1f}" y1="{v:.1f}" y2="{v:.1f}"/>' for v in (a, b)]
        out.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="4"/>')
        out.append(f'<text x="{cx + 7:.1f}" y="{cy - 6:.1f}" stroke="none">{escape(_short(p.label))}</text>')
        out.append("</g>")
    out.append("</svg>")
    return "".join(out)


def _short(text: str, n: int = 24) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"
