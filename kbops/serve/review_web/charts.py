"""Small server-side SVG charts for the health page: a time series and horizontal bars.

Hand-written on purpose: two chart kinds do not justify a plotting library,
and the page stays free of scripts fetched from a network (its CSP allows
none). Every label is HTML-escaped here and colours are presentation
attributes (the CSP refuses inline ``style``), so the markup is returned as
:class:`markupsafe.Markup` for the template to place as is.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from markupsafe import Markup

PALETTE = ("#3c7be0", "#d9822b", "#5aa469", "#c25b5b", "#8e6bc8", "#6b7c93")


def _num(value: float) -> str:
    return f"{value:.1f}"


def time_series(
    title: str, labels: Sequence[str], series: dict[str, Sequence[float | None]], *, width: int = 520, height: int = 180, percent: bool = False
) -> Markup:
    """A line chart of each named series over ``labels`` (days); a None value leaves a gap in its line."""
    left, right, top, bottom = 44, 10, 22, 34
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [v for vs in series.values() for v in vs if v is not None]
    peak = 1.0 if percent else max(values, default=0.0) or 1.0
    n = max(len(labels), 1)

    def x(i: int) -> float:
        return left + (plot_w * i / (n - 1) if n > 1 else plot_w / 2)

    def y(v: float) -> float:
        return top + plot_h - plot_h * v / peak

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" width="{width}" height="{height}" viewBox="0 0 {width} {height}">',
        f"<title>{escape(title)}</title>",
        f'<text x="{left}" y="14" font-size="12" font-weight="600" fill="#1d2330">{escape(title)}</text>',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#9aa4b5"/>',
    ]
    for frac in (0.0, 0.5, 1.0):
        tick = peak * frac
        shown = f"{tick:.0%}" if percent else (f"{tick:.0f}" if peak >= 10 or tick == int(tick) else f"{tick:.1f}")
        parts.append(f'<text x="{left - 4}" y="{_num(y(tick) + 4)}" font-size="10" text-anchor="end" fill="#667085">{escape(shown)}</text>')
        parts.append(f'<line x1="{left}" y1="{_num(y(tick))}" x2="{left + plot_w}" y2="{_num(y(tick))}" stroke="#eceff4"/>')
    step = max(1, n // 7)
    for i, label in enumerate(labels):
        if i % step == 0 or i == n - 1:
            parts.append(f'<text x="{_num(x(i))}" y="{top + plot_h + 14}" font-size="10" text-anchor="middle" fill="#667085">{escape(label[-5:])}</text>')
    for k, (name, vs) in enumerate(series.items()):
        colour = PALETTE[k % len(PALETTE)]
        runs: list[list[str]] = [[]]
        for i, v in enumerate(vs):
            if v is None:
                runs.append([])
                continue
            runs[-1].append(f"{_num(x(i))},{_num(y(v))}")
            tip = f"{name} {labels[i]}: {v:.0%}" if percent else f"{name} {labels[i]}: {v:g}"
            parts.append(f'<circle cx="{_num(x(i))}" cy="{_num(y(v))}" r="2.5" fill="{colour}"><title>{escape(tip)}</title></circle>')
        for run in runs:
            if len(run) > 1:
                parts.append(f'<polyline points="{" ".join(run)}" fill="none" stroke="{colour}" stroke-width="2"/>')
        parts.append(f'<rect x="{left + 8 + k * 110}" y="{height - 12}" width="10" height="10" fill="{colour}"/>')
        parts.append(f'<text x="{left + 22 + k * 110}" y="{height - 3}" font-size="10" fill="#1d2330">{escape(name)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def bars(title: str, rows: Sequence[tuple[str, float]], *, width: int = 520, percent: bool = False, unit: str = "") -> Markup:
    """Horizontal bars, one per (label, value), in the order given."""
    bar_h, gap, top, left = 16, 6, 22, 150
    height = top + max(len(rows), 1) * (bar_h + gap) + 6
    peak = 1.0 if percent else max((v for _, v in rows), default=0.0) or 1.0
    plot_w = width - left - 60
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" width="{width}" height="{height}" viewBox="0 0 {width} {height}">',
        f"<title>{escape(title)}</title>",
        f'<text x="4" y="14" font-size="12" font-weight="600" fill="#1d2330">{escape(title)}</text>',
    ]
    if not rows:
        parts.append(f'<text x="4" y="{top + 12}" font-size="11" fill="#667085">no data yet</text>')
    for i, (label, value) in enumerate(rows):
        y0 = top + i * (bar_h + gap)
        w = max(plot_w * value / peak, 1.0 if value else 0.0)
        shown = f"{value:.0%}" if percent else f"{value:g}{unit}"
        short = label if len(label) <= 24 else label[:23] + "…"
        parts.append(f'<text x="{left - 6}" y="{y0 + 12}" font-size="11" text-anchor="end" fill="#1d2330">{escape(short)}<title>{escape(label)}</title></text>')
        parts.append(f'<rect x="{left}" y="{y0}" width="{_num(w)}" height="{bar_h}" fill="{PALETTE[0]}"><title>{escape(f"{label}: {shown}")}</title></rect>')
        parts.append(f'<text x="{_num(left + w + 4)}" y="{y0 + 12}" font-size="11" fill="#1d2330">{escape(shown)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
