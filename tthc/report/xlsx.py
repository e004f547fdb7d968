"""The XLSX workbook: the same figures as the HTML, with native Excel charts (openpyxl).

Numbers are stored as numbers (counts as integers, rates as fractions) with the formats ``#,##0`` and
``0.0%``: Excel shows them with the reader's regional separators, i.e. ``8.700`` and ``88,6%`` on a
Vietnamese system. Text cells (the sentences) are already formatted the Vietnamese way.

Sheets: ``Tổng hợp`` (sentences, indicator table, channel mix + pie chart), ``Theo tháng`` (monthly
trend + line chart), ``Theo cơ quan`` (per-agency table + overdue and online-payment bar charts),
``Ghi chú`` (methodology).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tthc.kpi import RATIO_IDS
from tthc.report.data import Figures, ReportData
from tthc.report.html import methodology_notes
from tthc.report.text import figure_sentences, summary_sentence

__all__ = ["write_xlsx"]

INT = "#,##0"
PCT = "0.0%"


def _styles():
    from openpyxl.styles import Alignment, Border, Font, PatternFill, Side

    thin = Side(style="thin", color="C9C9C9")
    return {
        "title": Font(bold=True, size=14, color="1F5FA8"),
        "bold": Font(bold=True),
        "head_fill": PatternFill("solid", fgColor="EEF3FA"),
        "total_fill": PatternFill("solid", fgColor="F2F2F2"),
        "border": Border(left=thin, right=thin, top=thin, bottom=thin),
        "wrap": Alignment(wrap_text=True, vertical="top"),
        "center": Alignment(horizontal="center", vertical="center", wrap_text=True),
    }


def _table(ws, top: int, left: int, header: list[str], rows: list[list[Any]], formats: list[str | None]):
    st = _styles()
    for j, h in enumerate(header):
        c = ws.cell(row=top, column=left + j, value=h)
        c.font, c.fill, c.border, c.alignment = st["bold"], st["head_fill"], st["border"], st["center"]
    for i, row in enumerate(rows, start=1):
        for j, v in enumerate(row):
            c = ws.cell(row=top + i, column=left + j, value=v)
            c.border = st["border"]
            if formats[j] and isinstance(v, int | float):
                c.number_format = formats[j]
    return top + len(rows)


def _show_axes(chart) -> None:
    # openpyxl >= 3.1 writes axes with delete="1" unless told otherwise: Excel would hide them.
    for ax in (chart.x_axis, chart.y_axis):
        ax.delete = False


def _ratio(f: Figures, iid: str) -> float | None:
    v = f.ratio(iid)
    return None if v is None else round(float(v), 6)


def _summary_sheet(wb, data: ReportData) -> None:
    from openpyxl.chart import PieChart, Reference
    from openpyxl.chart.label import DataLabelList

    st = _styles()
    ws = wb.active
    ws.title = "Tổng hợp"
    f = data.province
    ws["A1"] = f"Báo cáo kết quả tiếp nhận, giải quyết TTHC {data.period.label_vi} — {f.name}"
    ws["A1"].font = st["title"]
    ws["A2"] = (
        "Số liệu tổng hợp từ hệ thống đồng bộ hồ sơ TTHC"
        + (
            f", tính đến hết ngày {data.as_of.day:02d}/{data.as_of.month:02d}/{data.as_of.year}"
            if data.as_of
            else ""
        )
        + (" (tạm tính: quý chưa kết thúc)" if data.provisional else "")
    )
    row = 4
    for text in [summary_sentence(data), *figure_sentences(data)]:
        ws.merge_cells(start_row=row, start_column=1, end_row=row, end_column=6)
        c = ws.cell(row=row, column=1, value=text)
        c.alignment = st["wrap"]
        ws.row_dimensions[row].height = 15 * max(1, len(text) // 95 + 1)
        row += 1
    row += 1
    ws.cell(row=row, column=1, value="Các chỉ số theo Quyết định 766/QĐ-TTg").font = st["bold"]
    rows = []
    for iid in RATIO_IDS:
        rows.append(
            [
                iid.split("_", 1)[0],
                data.labels.get(iid, iid),
                f.num(iid) if iid in f.rows else None,
                f.den(iid) if iid in f.rows else None,
                _ratio(f, iid),
            ]
        )
    end = _table(
        ws, row + 1, 1, ["Mã", "Chỉ số", "Tử số", "Mẫu số", "Tỷ lệ"], rows, [None, None, INT, INT, PCT]
    )
    row = end + 2
    ws.cell(row=row, column=1, value="Số hồ sơ").font = st["bold"]
    counts = [
        ["Tiếp nhận", f.received],
        ["Đã giải quyết", f.resolved],
        ["Giải quyết trước hạn", f.count("resolved_early")],
        ["Giải quyết đúng hạn", f.count("resolved_on_time")],
        ["Giải quyết quá hạn", f.count("resolved_overdue")],
        ["Đang giải quyết trong hạn", f.count("open_in_time")],
        ["Đang giải quyết quá hạn", f.count("open_overdue")],
        ["Công dân rút", f.count("withdrawn")],
    ]
    end = _table(ws, row + 1, 1, ["", "Số hồ sơ"], counts, [None, INT])
    row = end + 2
    ws.cell(row=row, column=1, value="Hình thức tiếp nhận").font = st["bold"]
    channel_top = row + 1
    channels = [
        ["Trực tiếp", f.count("channel_direct")],
        ["Trực tuyến", f.count("channel_online")],
        ["Bưu chính công ích", f.count("channel_postal")],
    ]
    end = _table(ws, channel_top, 1, ["Hình thức", "Số hồ sơ"], channels, [None, INT])
    pie = PieChart()
    pie.title = "Cơ cấu hồ sơ theo hình thức tiếp nhận"
    pie.add_data(Reference(ws, min_col=2, min_row=channel_top, max_row=end), titles_from_data=True)
    pie.set_categories(Reference(ws, min_col=1, min_row=channel_top + 1, max_row=end))
    pie.dataLabels = DataLabelList(
        showPercent=True, showVal=False, showCatName=False, showSerName=False, showLegendKey=False
    )
    pie.height, pie.width = 7.5, 12
    ws.add_chart(pie, "H4")
    ws.column_dimensions["A"].width = 26
    ws.column_dimensions["B"].width = 58
    for col in "CDEF":
        ws.column_dimensions[col].width = 13


def _months_sheet(wb, data: ReportData) -> None:
    from openpyxl.chart import LineChart, Reference

    ws = wb.create_sheet("Theo tháng")
    header = [
        "Tháng",
        "Tiếp nhận",
        "Đã giải quyết",
        "Trước hạn",
        "Đúng hạn",
        "Quá hạn",
        "Đang giải quyết quá hạn",
        "Tỷ lệ trước hạn, đúng hạn (2.1)",
        "Thanh toán trực tuyến (3.6)",
        "Trực tuyến (3.3)",
    ]
    rows = [
        [
            f"{m.start.month:02d}/{m.start.year}",
            f.received,
            f.resolved,
            f.count("resolved_early"),
            f.count("resolved_on_time"),
            f.count("resolved_overdue"),
            f.count("open_overdue"),
            _ratio(f, "2.1_on_time"),
            _ratio(f, "3.6_online_payment"),
            _ratio(f, "3.3_online"),
        ]
        for m, f in data.months
    ]
    end = _table(ws, 1, 1, header, rows, [None, INT, INT, INT, INT, INT, INT, PCT, PCT, PCT])
    ws.column_dimensions["A"].width = 11
    for col in "BCDEFGHIJ":
        ws.column_dimensions[col].width = 16
    if not rows:
        return
    chart = LineChart()
    chart.title = "Tỷ lệ giải quyết trước hạn, đúng hạn theo tháng"
    chart.y_axis.title = "Tỷ lệ"
    chart.y_axis.number_format = "0%"
    chart.y_axis.scaling.min = 0
    chart.y_axis.scaling.max = 1
    chart.add_data(Reference(ws, min_col=8, max_col=9, min_row=1, max_row=end), titles_from_data=True)
    chart.set_categories(Reference(ws, min_col=1, min_row=2, max_row=end))
    for s in chart.series:
        s.marker.symbol = "circle"
        s.smooth = False
    _show_axes(chart)
    chart.height, chart.width = 8, 18
    ws.add_chart(chart, f"A{end + 3}")


def _agencies_sheet(wb, data: ReportData) -> None:
    from openpyxl.chart import BarChart, Reference

    if not data.agencies:
        return
    ws = wb.create_sheet("Theo cơ quan")
    header = [
        "Mã cơ quan",
        "Cơ quan",
        "Tiếp nhận",
        "Đã giải quyết",
        "Trước hạn",
        "Đúng hạn",
        "Quá hạn (đã giải quyết)",
        "Đang giải quyết quá hạn",
        "Tỷ lệ trước hạn, đúng hạn (2.1)",
        "Trực tuyến (3.3)",
        "Thanh toán trực tuyến (3.6)",
        "Số hóa kết quả (4.1)",
        "Khai thác CSDLQG dân cư (4.5b)",
        "Đồng bộ DVCQG (1.4)",
    ]
    formats = [None, None, INT, INT, INT, INT, INT, INT, PCT, PCT, PCT, PCT, PCT, PCT]

    def line(f: Figures, code: str, name: str) -> list[Any]:
        return [
            code,
            name,
            f.received,
            f.resolved,
            f.count("resolved_early"),
            f.count("resolved_on_time"),
            f.count("resolved_overdue"),
            f.count("open_overdue"),
            _ratio(f, "2.1_on_time"),
            _ratio(f, "3.3_online"),
            _ratio(f, "3.6_online_payment"),
            _ratio(f, "4.1_digitised_results"),
            _ratio(f, "4.5b_population_db"),
            _ratio(f, "1.4_sync_rate"),
        ]

    rows = [line(a, a.code, a.name) for a in data.agencies]
    end = _table(ws, 1, 1, header, rows, formats)
    total = line(data.province, data.province_code, f"Toàn {data.subject}")
    _table(ws, end + 1, 1, [], [total], formats)
    st = _styles()
    for j in range(1, len(header) + 1):
        ws.cell(row=end + 1, column=j).font = st["bold"]
        ws.cell(row=end + 1, column=j).fill = st["total_fill"]
    ws.column_dimensions["A"].width = 16
    ws.column_dimensions["B"].width = 40
    for j in range(3, len(header) + 1):
        ws.column_dimensions[ws.cell(row=1, column=j).column_letter].width = 14
    ws.freeze_panes = "C2"

    overdue = BarChart()
    overdue.type = "bar"
    overdue.grouping = "stacked"
    overdue.overlap = 100
    overdue.title = "Hồ sơ quá hạn theo cơ quan"
    overdue.add_data(Reference(ws, min_col=7, max_col=8, min_row=1, max_row=end), titles_from_data=True)
    overdue.set_categories(Reference(ws, min_col=2, min_row=2, max_row=end))
    overdue.x_axis.title = None
    overdue.y_axis.title = "Số hồ sơ"
    overdue.y_axis.number_format = INT
    _show_axes(overdue)
    overdue.height, overdue.width = max(7.5, 0.7 * len(rows) + 3), 18
    ws.add_chart(overdue, f"A{end + 4}")

    pay = BarChart()
    pay.type = "bar"
    pay.title = "Tỷ lệ hồ sơ thanh toán trực tuyến theo cơ quan (3.6)"
    pay.add_data(Reference(ws, min_col=11, min_row=1, max_row=end), titles_from_data=True)
    pay.set_categories(Reference(ws, min_col=2, min_row=2, max_row=end))
    pay.y_axis.number_format = "0%"
    pay.y_axis.scaling.min = 0
    pay.y_axis.scaling.max = 1
    pay.legend = None
    _show_axes(pay)
    pay.height, pay.width = max(7.5, 0.7 * len(rows) + 3), 18
    ws.add_chart(pay, f"H{end + 4}")


def _notes_sheet(wb, data: ReportData) -> None:
    st = _styles()
    ws = wb.create_sheet("Ghi chú")
    ws["A1"] = "Ghi chú phương pháp"
    ws["A1"].font = st["bold"]
    for i, n in enumerate(methodology_notes(data), start=2):
        c = ws.cell(row=i, column=1, value=n)
        c.alignment = st["wrap"]
        ws.row_dimensions[i].height = 15 * (len(n) // 110 + 1)
    ws.column_dimensions["A"].width = 120
    ws.cell(row=len(methodology_notes(data)) + 3, column=1, value="Báo cáo chỉ chứa số liệu tổng hợp.")


def write_xlsx(data: ReportData, path: str | Path) -> Path:
    from openpyxl import Workbook

    wb = Workbook()
    wb.properties.creator = "tthc-sync"
    wb.properties.title = f"Báo cáo TTHC {data.period.label_vi} — {data.province.name}"
    _summary_sheet(wb, data)
    _months_sheet(wb, data)
    _agencies_sheet(wb, data)
    _notes_sheet(wb, data)
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    wb.save(p)
    return p
