"""The HTML report: a jinja2 template with autoescape on; the charts are inlined as SVG."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from markupsafe import Markup

from tthc.kpi import RATIO_IDS
from tthc.report.charts import Chart
from tthc.report.data import Figures, ReportData
from tthc.report.fmt import DASH, fmt_decimal, fmt_int, fmt_pct, share
from tthc.report.text import figure_sentences, summary_sentence

__all__ = ["context", "methodology_notes", "render_html"]

TEMPLATES = Path(__file__).resolve().parent / "templates"


def _env():
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    return Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=True,  # every value is escaped; only the generated SVG is marked safe
        undefined=StrictUndefined,
        trim_blocks=False,
        keep_trailing_newline=True,
    )


def methodology_notes(data: ReportData) -> list[str]:
    return [
        "Hồ sơ tiếp nhận: hồ sơ có ngày tiếp nhận trong kỳ và đã được tiếp nhận (không tính hồ sơ mới "
        "đăng ký chưa tiếp nhận, hồ sơ bị từ chối tiếp nhận); hồ sơ đang bị cách ly do lỗi dữ liệu "
        "chưa được tính.",
        "Trước hạn, đúng hạn, quá hạn theo quy tắc của Cổng Dịch vụ công quốc gia: so sánh theo ngày với "
        "ngày hẹn trả, không tính thời gian chờ bổ sung hồ sơ; yêu cầu bổ sung quá một lần tính là quá "
        "hạn; hồ sơ chưa giải quyết xong được đánh giá tại cuối kỳ theo lịch ngày làm việc (trừ thứ Bảy, "
        "Chủ nhật, ngày lễ, Tết và ngày nghỉ bù).",
        "Tỷ lệ đã giải quyết tính trên số hồ sơ tiếp nhận; tỷ lệ trước hạn, đúng hạn, quá hạn tính trên "
        "số hồ sơ đã giải quyết. Chỉ số 2.1 tính trên hồ sơ đã giải quyết và đang giải quyết (không tính "
        "hồ sơ công dân rút).",
        "Thanh toán trực tuyến (3.6) tính trên hồ sơ có phí, lệ phí; số hóa kết quả (4.1) tính trên hồ "
        "sơ đã giải quyết có kết quả bản giấy; đồng bộ DVCQG (1.4) là hồ sơ đã gửi lên Cổng Dịch vụ công "
        "quốc gia đúng với nội dung hiện hành.",
        "Mức độ hài lòng (5.4) = 100% − (tỷ lệ quá hạn + tỷ lệ hồ sơ có phản ánh, kiến nghị). Dữ liệu "
        "phản ánh, kiến nghị (PAKN) chưa được đồng bộ nên tỷ lệ phản ánh, kiến nghị đang tính bằng 0.",
        "Hồ sơ tiếp nhận trước ngày 01/7/2025 của đơn vị hành chính cũ được tính cho tỉnh mới theo "
        "Nghị quyết 202/2025/QH15 (bảng đối chiếu trong config/units.yaml).",
        "Trọng số điểm của Bộ chỉ số theo Quyết định 766/QĐ-TTg lấy từ config/indicators.yaml; chỉ số "
        "chưa có trọng số đã được xác minh thì không tính điểm.",
    ]


def _weights() -> dict[str, Any]:
    from tthc.indicators import load_indicator_config

    return {i["id"]: i.get("weight") for i in load_indicator_config()["indicators"]}


def _score_note(data: ReportData) -> str:
    sc = data.score
    if sc.get("points") is None:
        return (
            "Chưa tính điểm theo trọng số: trọng số các chỉ số chưa được xác minh trong cấu hình "
            "(config/indicators.yaml)."
        )
    return (
        f"Điểm theo trọng số: {fmt_decimal(sc['points'], 2)}/{fmt_decimal(sc['max_points'], 2)} điểm "
        f"({len(sc['scored'])} chỉ số đã có trọng số; {len(sc['unscored'])} chỉ số chưa tính điểm)."
    )


def agency_cells(f: Figures) -> list[str]:
    return [
        fmt_int(f.received),
        fmt_int(f.resolved),
        fmt_int(f.count("resolved_early")),
        fmt_int(f.count("resolved_on_time")),
        fmt_int(f.count("resolved_overdue")),
        fmt_int(f.count("open_overdue")),
        fmt_pct(f.ratio("2.1_on_time")),
        fmt_pct(f.ratio("3.3_online")),
        fmt_pct(f.ratio("3.6_online_payment")),
        fmt_pct(f.ratio("1.4_sync_rate")),
    ]


def context(data: ReportData, charts: list[Chart]) -> dict[str, Any]:
    f = data.province
    weights = _weights()
    heading = data.province_title
    if data.kind == "agency":
        place = data.province_title.split(" ", 1)[-1].lower()  # "nghệ an" of "tỉnh Nghệ An"
        heading = f.name if place in f.name.lower() else f"{f.name} — {data.province_title}"
    return {
        "title": f"Báo cáo TTHC {data.period.label_vi} — {f.name}",
        "heading": heading,
        "period_label": data.period.label_vi,
        "as_of": _date(data.as_of),
        "provisional": data.provisional,
        "summary": summary_sentence(data),
        "sentences": figure_sentences(data),
        "cards": [
            {"value": fmt_int(f.received), "label": "Hồ sơ tiếp nhận"},
            {
                "value": fmt_int(f.resolved),
                "label": f"Đã giải quyết ({fmt_pct(share(f.resolved, f.received))})",
            },
            {"value": fmt_pct(f.ratio("2.1_on_time")), "label": "Trước hạn, đúng hạn (2.1)"},
            {"value": fmt_pct(f.ratio("3.3_online")), "label": "Tiếp nhận trực tuyến (3.3)"},
        ],
        "ratio_rows": [
            {
                "code": iid.split("_", 1)[0],
                "label": data.labels.get(iid, iid),
                "num": fmt_int(f.num(iid)) if iid in f.rows else DASH,
                "den": fmt_int(f.den(iid)) if iid in f.rows else DASH,
                "value": fmt_pct(f.ratio(iid)),
                "weight": DASH if weights.get(iid) is None else fmt_decimal(weights[iid], 1),
            }
            for iid in RATIO_IDS
        ],
        "score_note": _score_note(data),
        "charts": [{"key": c.key, "title": c.title, "svg": Markup(c.svg)} for c in charts],  # noqa: S704
        "agencies": [{"name": a.name, "cells": agency_cells(a)} for a in data.agencies],
        "total": {"name": f"Toàn {data.subject}", "cells": agency_cells(f)},
        "notes": methodology_notes(data),
        "generated_at": data.generated_at.strftime("%H:%M ngày %d/%m/%Y"),
    }


def _date(d) -> str | None:
    return None if d is None else f"{d.day:02d}/{d.month:02d}/{d.year}"


def render_html(data: ReportData, charts: list[Chart]) -> str:
    return _env().get_template("quarterly.html.j2").render(**context(data, charts))
