"""Charts as inline SVG built on the server from the numbers (no JavaScript, nothing fetched).

Two shapes cover the pages: horizontal bars (one value per agency / rule / class) and lines over
periods or runs. Every label and value is written as SVG text through :func:`markupsafe.escape`,
so the figures are readable (and searchable) in the page and nothing from the database can
inject markup.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

from tthc.ui import fmt

PALETTE = ("#1f6fb2", "#d9822b", "#2e8b57", "#b03a48", "#7d5ba6", "#5f7c8a", "#c4a000")
FONT = "font-family='system-ui, -apple-system, Segoe UI, Roboto, sans-serif'"


@dataclass(frozen=True)
class Bar:
    label: str
    value: float | None
    display: str  # the value as the page writes it (fmt.pct / fmt.num)
    sublabel: str = ""


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float | None]


def _e(text: object) -> str:
    return str(escape(str(text)))


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def hbar_chart(
    bars: Sequence[Bar],
    *,
    title: str,
    max_value: float | None = None,
    width: int = 860,
    label_width: int = 300,
    color: str = PALETTE[0],
) -> Markup:
    """One horizontal bar per item; ``max_value`` fixes the scale (1.0 for ratios)."""
    if not bars:
        return Markup("")
    row_h, top, bottom = 26, 8, 8
    height = top + bottom + row_h * len(bars)
    plot_w = width - label_width - 90
    top_value = max_value if max_value is not None else max((b.value or 0) for b in bars)
    top_value = top_value or 1.0
    parts = [
        f"<svg class='chart' role='img' aria-label='{_e(title)}' viewBox='0 0 {width} {height}' "
        f"width='100%' preserveAspectRatio='xMinYMin meet' xmlns='http://www.w3.org/2000/svg' {FONT} "
        "font-size='13'>",
        f"<title>{_e(title)}</title>",
    ]
    for i, b in enumerate(bars):
        y = top + i * row_h
        length = 0.0 if b.value is None else max(0.0, min(1.0, b.value / top_value)) * plot_w
        label = _truncate(b.label + (f" · {b.sublabel}" if b.sublabel else ""), 46)
        parts.append(
            f"<text x='{label_width - 8}' y='{y + 17}' text-anchor='end' fill='#333'>"
            f"<title>{_e(b.label)} {_e(b.sublabel)}</title>{_e(label)}</text>"
        )
        parts.append(
            f"<rect x='{label_width}' y='{y + 4}' width='{plot_w}' height='{row_h - 8}' fill='#eef2f6'/>"
        )
        if length > 0:
            parts.append(
                f"<rect x='{label_width}' y='{y + 4}' width='{length:.1f}' height='{row_h - 8}' "
                f"fill='{color}'/>"
            )
        parts.append(
            f"<text x='{label_width + plot_w + 6}' y='{y + 17}' fill='#111' font-weight='600'>"
            f"{_e(b.display)}</text>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every text and attribute value above went through _e


def line_chart(
    x_labels: Sequence[str],
    series: Sequence[Series],
    *,
    title: str,
    y_format: Callable[[float | None], str] = fmt.num,
    y_max: float | None = None,
    width: int = 860,
    height: int = 280,
) -> Markup:
    """Lines over the x labels (periods or runs); gaps where a value is missing; a legend below."""
    if not x_labels or not series:
        return Markup("")
    left, right, top = 70, 20, 14
    legend_h = 22 * ((len(series) + 2) // 3)
    bottom = 46 + legend_h
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [v for s in series for v in s.values if v is not None]
    hi = y_max if y_max is not None else max(values, default=0.0)
    hi = hi or 1.0
    n = len(x_labels)

    def x_at(i: int) -> float:
        return left + (plot_w / 2 if n == 1 else i * plot_w / (n - 1))

    def y_at(v: float) -> float:
        return top + plot_h - max(0.0, min(1.0, v / hi)) * plot_h

    parts = [
        f"<svg class='chart' role='img' aria-label='{_e(title)}' viewBox='0 0 {width} {height}' "
        f"width='100%' preserveAspectRatio='xMinYMin meet' xmlns='http://www.w3.org/2000/svg' {FONT} "
        "font-size='12'>",
        f"<title>{_e(title)}</title>",
    ]
    for k in range(5):  # horizontal grid with its scale
        v = hi * k / 4
        y = y_at(v)
        parts.append(f"<line x1='{left}' x2='{left + plot_w}' y1='{y:.1f}' y2='{y:.1f}' stroke='#e3e7eb'/>")
        parts.append(
            f"<text x='{left - 6}' y='{y + 4:.1f}' text-anchor='end' fill='#666'>{_e(y_format(v))}</text>"
        )
    step = max(1, (n + 11) // 12)  # at most ~12 axis labels
    for i, lab in enumerate(x_labels):
        if i % step == 0 or i == n - 1:
            # the end labels grow inwards so they are not clipped at the plot's edges
            anchor = "middle" if n == 1 or 0 < i < n - 1 else ("start" if i == 0 else "end")
            parts.append(
                f"<text x='{x_at(i):.1f}' y='{top + plot_h + 18}' text-anchor='{anchor}' fill='#666'>"
                f"{_e(_truncate(lab, 16))}</text>"
            )
    for si, s in enumerate(series):
        color = PALETTE[si % len(PALETTE)]
        segment: list[str] = []
        segments: list[list[str]] = []
        for i, v in enumerate(s.values):
            if v is None:
                if segment:
                    segments.append(segment)
                segment = []
                continue
            segment.append(f"{x_at(i):.1f},{y_at(v):.1f}")
        if segment:
            segments.append(segment)
        for seg in segments:
            if len(seg) > 1:
                parts.append(
                    f"<polyline fill='none' stroke='{color}' stroke-width='2.5' points='{' '.join(seg)}'/>"
                )
        for i, v in enumerate(s.values):
            if v is not None:
                parts.append(
                    f"<circle cx='{x_at(i):.1f}' cy='{y_at(v):.1f}' r='3.5' fill='{color}'>"
                    f"<title>{_e(s.name)} – {_e(x_labels[i])}: {_e(y_format(v))}</title></circle>"
                )
        lx = left + (si % 3) * (plot_w / 3)
        ly = top + plot_h + 40 + (si // 3) * 22
        parts.append(f"<rect x='{lx:.1f}' y='{ly - 10}' width='14' height='4' fill='{color}'/>")
        parts.append(f"<text x='{lx + 20:.1f}' y='{ly - 4}' fill='#333'>{_e(_truncate(s.name, 40))}</text>")
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every text and attribute value above went through _e
