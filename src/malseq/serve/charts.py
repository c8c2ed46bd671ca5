"""Dashboard plots as inline SVG, drawn here: no JavaScript, no plotting library at run time.

Only numbers and labels made here go into the SVG, and every text is escaped anyway. Colours are
presentation attributes (`fill=`), not `style=`, which the Content-Security-Policy forbids.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

BAR = "#3b6ea8"
ALERT = "#b3261e"
AXIS = "#555555"
GRID = "#dddddd"


@dataclass(frozen=True)
class Bar:
    label: str  # the x tick text (shown for some bars) and the tooltip's start
    value: float
    tooltip: str = ""
    alert: bool = False  # drawn in the alert colour


def _fmt(value: float, percent: bool) -> str:
    return f"{value:.0%}" if percent else f"{value:g}"


def bar_chart(bars: Sequence[Bar], *, title: str, width: int = 760, height: int = 220,
              percent: bool = False, max_value: float | None = None, ticks_every: int | None = None) -> Markup:
    """A vertical bar chart with a y axis (0 to the maximum), grid lines and x tick labels."""
    left, right, top, bottom = 48, 12, 28, 44
    plot_w, plot_h = width - left - right, height - top - bottom
    top_value = max_value if max_value is not None else max((b.value for b in bars), default=0.0)
    top_value = top_value if top_value > 0 else 1.0
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">',
             f'<text x="{left}" y="16" font-size="13" font-weight="bold" fill="#222222">{escape(title)}</text>']
    for i in range(5):  # grid lines and y labels at 0, 25, 50, 75, 100% of the top value
        value = top_value * i / 4
        y = top + plot_h - plot_h * i / 4
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="{GRID}"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" font-size="10" text-anchor="end" '
                     f'fill="{AXIS}">{escape(_fmt(round(value, 2), percent))}</text>')
    if not bars:
        parts.append(f'<text x="{left + plot_w / 2:.1f}" y="{top + plot_h / 2:.1f}" font-size="12" '
                     f'text-anchor="middle" fill="{AXIS}">no data yet</text>')
    slot = plot_w / max(1, len(bars))
    every = ticks_every or max(1, len(bars) // 8)
    for i, bar in enumerate(bars):
        h = plot_h * min(bar.value, top_value) / top_value
        x = left + i * slot + slot * 0.1
        y = top + plot_h - h
        tip = bar.tooltip or f"{bar.label}: {_fmt(bar.value, percent)}"
        parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(1.0, slot * 0.8):.1f}" height="{h:.1f}" '
                     f'fill="{ALERT if bar.alert else BAR}"><title>{escape(tip)}</title></rect>')
        if i % every == 0:
            parts.append(f'<text x="{x + slot * 0.4:.1f}" y="{top + plot_h + 14}" font-size="10" '
                         f'text-anchor="middle" fill="{AXIS}">{escape(bar.label)}</text>')
    parts.append(f'<line x1="{left}" y1="{top + plot_h}" x2="{width - right}" y2="{top + plot_h}" stroke="{AXIS}"/>')
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704  every interpolated text went through escape()
