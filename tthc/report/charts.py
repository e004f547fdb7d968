"""The report's charts with matplotlib: SVG for the HTML (text kept as text), PNG for people and files.

Every chart is drawn from aggregates only. Tick labels and value labels use Vietnamese number
formatting (``88,6%``, ``1.234``). Figures are built without pyplot (no global state, no display).
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass

from tthc.report.data import Figures, ReportData
from tthc.report.fmt import fmt_int, fmt_pct

__all__ = ["Chart", "build_charts"]

BLUE, GREEN, ORANGE, RED, GREY = "#1f5fa8", "#2e8b57", "#e08a1e", "#c0392b", "#8c8c8c"
MAX_AGENCIES = 15


@dataclass
class Chart:
    key: str
    title: str
    svg: str
    png: bytes


def _figure(width: float, height: float):
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110)
    fig.set_layout_engine("constrained")
    return fig


def _render(key: str, title: str, fig) -> Chart:
    import matplotlib

    with matplotlib.rc_context(
        {"svg.fonttype": "none", "svg.hashsalt": "tthc-report", "font.family": "DejaVu Sans"}
    ):
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": "tthc-sync"})
        svg = buf.getvalue()
        png = io.BytesIO()
        fig.savefig(png, format="png", metadata={"Software": "tthc-sync"})
    svg = svg[svg.index("<svg") :]  # drop the XML prolog and doctype: the SVG is inlined in HTML
    svg = re.sub(r'(<svg[^>]*?) width="[^"]*" height="[^"]*"', r"\1", svg, count=1)
    return Chart(key, title, svg, png.getvalue())


def _pct_axis(ax, axis: str = "y") -> None:
    from matplotlib.ticker import FuncFormatter

    fmt = FuncFormatter(lambda v, _pos: fmt_pct(v, 0))
    (ax.yaxis if axis == "y" else ax.xaxis).set_major_formatter(fmt)


def _int_axis(ax, axis: str = "y") -> None:
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    a = ax.yaxis if axis == "y" else ax.xaxis
    a.set_major_locator(MaxNLocator(integer=True))
    a.set_major_formatter(FuncFormatter(lambda v, _pos: fmt_int(v)))


def _style(ax) -> None:
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.grid(axis="both", color="#e5e5e5", linewidth=0.8)
    ax.set_axisbelow(True)


def _empty(ax, text: str = "Chưa có số liệu") -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color=GREY, fontsize=12)
    ax.set_xticks([])
    ax.set_yticks([])
    for s in ax.spines.values():
        s.set_visible(False)


def _short(name: str, limit: int = 34) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "…"


def on_time_trend(data: ReportData) -> Chart:
    title = "Tỷ lệ giải quyết trước hạn, đúng hạn theo tháng (chỉ số 2.1)"
    fig = _figure(7.2, 3.6)
    ax = fig.add_subplot()
    months = [(m, f) for m, f in data.months if f.den("2.1_on_time")]
    if not months:
        _empty(ax)
        return _render("xu-huong-dung-han", title, fig)
    labels = [f"T{m.start.month}/{m.start.year % 100:02d}" for m, _ in months]
    received = [f.received for _, f in months]
    rates = [f.ratio("2.1_on_time") or 0.0 for _, f in months]
    x = list(range(len(months)))
    ax2 = ax.twinx()
    ax2.bar(x, received, color="#d6e4f5", width=0.6, label="Hồ sơ tiếp nhận", zorder=1)
    _int_axis(ax2)
    ax2.set_ylabel("Hồ sơ tiếp nhận", color=GREY)
    ax2.tick_params(axis="y", colors=GREY)
    ax.set_zorder(ax2.get_zorder() + 1)
    ax.patch.set_visible(False)
    ax.plot(x, rates, color=GREEN, marker="o", linewidth=2.2, label="Tỷ lệ đúng hạn (2.1)")
    for xi, r in zip(x, rates, strict=True):
        ax.annotate(fmt_pct(r), (xi, r), textcoords="offset points", xytext=(0, 7), ha="center", fontsize=8)
    lo = max(0.0, min(min(rates) - 0.1, 0.8))
    lo = int(lo * 20) / 20  # a multiple of 5%
    step = 0.05 if 1 - lo <= 0.3 else (0.1 if 1 - lo <= 0.6 else 0.2)
    ticks = [round(1 - i * step, 4) for i in range(int(round((1 - lo) / step)) + 1)]
    ax.set_ylim(lo, 1.04)  # headroom for the value labels; no tick above 100%
    ax.set_yticks(sorted(t for t in ticks if t >= lo - 1e-9))
    _pct_axis(ax)
    _style(ax)
    ax2.spines["top"].set_visible(False)
    ax.set_xticks(x, labels)
    ax.set_ylabel("Tỷ lệ trước hạn, đúng hạn")
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, loc="lower left", fontsize=8, frameon=False)
    return _render("xu-huong-dung-han", title, fig)


def channel_mix(data: ReportData) -> Chart:
    title = "Cơ cấu hồ sơ theo hình thức tiếp nhận"
    f = data.province
    fig = _figure(7.2, 3.4)
    ax, side = fig.subplots(1, 2, width_ratios=[1, 1.25])
    side.axis("off")
    parts = [
        ("Trực tiếp", f.count("channel_direct"), GREY),
        ("Trực tuyến", f.count("channel_online"), BLUE),
        ("Bưu chính công ích", f.count("channel_postal"), ORANGE),
    ]
    parts = [p for p in parts if p[1] > 0]
    total = sum(p[1] for p in parts)
    if not total:
        _empty(ax)
        return _render("hinh-thuc-tiep-nhan", title, fig)
    wedges, _ = ax.pie(
        [p[1] for p in parts],
        colors=[p[2] for p in parts],
        startangle=90,
        counterclock=False,
        wedgeprops={"width": 0.42, "edgecolor": "white"},
    )
    ax.text(0, 0, f"{fmt_int(total)}\nhồ sơ", ha="center", va="center", fontsize=11, fontweight="bold")
    ax.set_aspect("equal")
    side.legend(
        wedges,
        [f"{name}: {fmt_int(n)} ({fmt_pct(n / total)})" for name, n, _ in parts],
        loc="center left",
        frameon=False,
        fontsize=10,
        handlelength=1.2,
    )
    return _render("hinh-thuc-tiep-nhan", title, fig)


def overdue_by_agency(data: ReportData) -> Chart:
    title = "Hồ sơ quá hạn theo cơ quan"
    rows = sorted(
        (a for a in data.agencies if a.overdue_all),
        key=lambda a: (a.overdue_all, a.name),
        reverse=True,
    )[:MAX_AGENCIES]
    fig = _figure(7.2, max(2.4, 0.42 * len(rows) + 1.2))
    ax = fig.add_subplot()
    if not rows:
        _empty(ax, "Không có hồ sơ quá hạn")
        return _render("qua-han-theo-co-quan", title, fig)
    rows.reverse()  # largest at the top
    y = list(range(len(rows)))
    done = [a.count("resolved_overdue") for a in rows]
    still = [a.count("open_overdue") for a in rows]
    ax.barh(y, done, color=RED, label="Đã giải quyết quá hạn")
    ax.barh(y, still, left=done, color="#f1a9a0", label="Đang giải quyết, đã quá hạn")
    for yi, d, s in zip(y, done, still, strict=True):
        ax.text(d + s, yi, f" {fmt_int(d + s)}", va="center", fontsize=8)
    ax.set_yticks(y, [_short(a.name) for a in rows], fontsize=8)
    _int_axis(ax, "x")
    _style(ax)
    ax.set_xlabel("Số hồ sơ")
    ax.legend(loc="lower right", fontsize=8, frameon=False)
    return _render("qua-han-theo-co-quan", title, fig)


def online_payment(data: ReportData) -> Chart:
    title = "Tỷ lệ hồ sơ thanh toán trực tuyến (chỉ số 3.6)"
    if data.agencies:
        rows: list[Figures] = [a for a in data.agencies if a.den("3.6_online_payment")]
        rows = sorted(rows, key=lambda a: (a.ratio("3.6_online_payment") or 0.0, a.name))[-MAX_AGENCIES:]
        labels = [_short(a.name) for a in rows]
    else:  # an agency's own report: by month
        rows = [f for _, f in data.months if f.den("3.6_online_payment")]
        labels = [
            f"T{m.start.month}/{m.start.year % 100:02d}"
            for m, f in data.months
            if f.den("3.6_online_payment")
        ]
    fig = _figure(7.2, max(2.4, 0.42 * len(rows) + 1.2))
    ax = fig.add_subplot()
    if not rows:
        _empty(ax, "Không có hồ sơ có phí, lệ phí")
        return _render("thanh-toan-truc-tuyen", title, fig)
    vals = [a.ratio("3.6_online_payment") or 0.0 for a in rows]
    y = list(range(len(rows)))
    ax.barh(y, vals, color=BLUE)
    for yi, v, a in zip(y, vals, rows, strict=True):
        ax.text(
            v,
            yi,
            f" {fmt_pct(v)} ({fmt_int(a.num('3.6_online_payment'))}/{fmt_int(a.den('3.6_online_payment'))})",
            va="center",
            fontsize=8,
            bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.6, "alpha": 0.85},
            zorder=4,
        )
    avg = data.province.ratio("3.6_online_payment")
    if avg is not None and data.agencies:
        ax.axvline(avg, color=ORANGE, linestyle="--", linewidth=1.5, label=f"Toàn tỉnh: {fmt_pct(avg)}")
        ax.legend(loc="lower right", fontsize=8, frameon=False)
    ax.set_xlim(0, 1.25)
    ax.set_xticks([0, 0.25, 0.5, 0.75, 1.0])
    _pct_axis(ax, "x")
    ax.set_yticks(y, labels, fontsize=8)
    _style(ax)
    ax.set_xlabel("Tỷ lệ trên số hồ sơ có phí, lệ phí")
    return _render("thanh-toan-truc-tuyen", title, fig)


def build_charts(data: ReportData) -> list[Chart]:
    """The four charts; by-agency ones only for a province report."""
    charts = [on_time_trend(data), channel_mix(data)]
    if data.agencies:
        charts.append(overdue_by_agency(data))
    charts.append(online_payment(data))
    return charts
