"""The quarterly report files: the sentence with the right numbers, charts, XLSX, no personal data."""

from __future__ import annotations

import re
import zipfile
from datetime import datetime, timedelta

import pytest

from tests.kpi.kpi_data import A1, A2, MARKERS, UNITS, dossier, dt, load, load_hand_data, registry
from tthc.model import Attachment

NOW = datetime(2026, 10, 1, 6, 0)

#: The hand-made dossiers (tests/kpi/kpi_data.py) plus 1.200 early online dossiers of A2 in August.
SENTENCE = (
    "Trong quý III/2026, tỉnh tiếp nhận 1.207 hồ sơ, đã giải quyết 1.204 hồ sơ (99,8%), "
    "trong đó trả trước hạn 1.202 hồ sơ (99,8%), đúng hạn 1 hồ sơ (0,1%), quá hạn 1 hồ sơ (0,1%); "
    "đang giải quyết 2 hồ sơ, trong đó còn trong hạn 1 hồ sơ, đã quá hạn 1 hồ sơ; công dân rút 1 hồ sơ."
)


def _bulk() -> list:
    out = []
    for i in range(1200):
        rec = dt("2026-08-03") + timedelta(hours=i % 9, days=i % 20)
        out.append(
            dossier(
                f"B{i:04d}",
                agency=A2,
                received_at=rec,
                due_at=rec + timedelta(days=10),
                finished_at=rec + timedelta(days=2),
                status=10,
                channel=2,
                fee=30_000 if i % 3 == 0 else 0,
                paid_online=1 if i % 6 == 0 else 0,
                attachments=[Attachment("Tờ khai", digitized=True)],
            )
        )
    return out


def _load_all(engine) -> None:
    load_hand_data(engine)
    load(engine, _bulk(), published_current=[f"B{i:04d}" for i in range(0, 1200, 2)])
    # an agency name that would be markup if it were not escaped
    load(
        engine,
        [
            dossier(
                "X1",
                agency="000.00.66.H40",
                agency_name="<b>Phòng & Ban</b>",
                received_at=dt("2026-07-09"),
                due_at=dt("2026-07-20"),
            )
        ],
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One SQLite warehouse and one report for the module's read-only checks."""
    from tthc.report import build_quarterly_report
    from tthc.warehouse import db

    tmp = tmp_path_factory.mktemp("report")
    url = f"sqlite:///{tmp / 'wh.db'}"
    engine = db.migrate(url)
    _load_all(engine)
    files = build_quarterly_report(
        engine, "2026Q3", "H40", tmp / "out", registry=registry(tmp), units=UNITS, now=NOW
    )
    yield engine, files
    db.dispose_engine(url)


@pytest.fixture
def report(built):
    return built[1]


def test_html_states_the_figures_like_the_seed_articles(report):
    html = report.html.read_text(encoding="utf-8")
    # X1 (agency 000.00.66.H40, due 20/07, still open) is one more open overdue dossier
    assert "tỉnh tiếp nhận 1.208 hồ sơ, đã giải quyết 1.204 hồ sơ (99,7%)" in html
    assert "trả trước hạn 1.202 hồ sơ (99,8%), đúng hạn 1 hồ sơ (0,1%), quá hạn 1 hồ sơ (0,1%)" in html
    assert "đang giải quyết 3 hồ sơ, trong đó còn trong hạn 1 hồ sơ, đã quá hạn 2 hồ sơ" in html
    assert report.summary in html
    assert '<html lang="vi">' in html and 'charset="utf-8"' in html
    assert "quý III/2026" in html and "tỉnh Nghệ An" in html
    assert html.count("<svg") == 4
    for chart in (
        "xu-huong-dung-han",
        "hinh-thuc-tiep-nhan",
        "qua-han-theo-co-quan",
        "thanh-toan-truc-tuyen",
    ):
        assert f'id="chart-{chart}"' in html
    # the per-agency table and the province total, Vietnamese number formats
    assert "Sở Tư pháp" in html and "UBND xã Hưng Nguyên" in html
    assert ">1.208<" in html
    assert "tỷ lệ phản ánh, kiến nghị đang tính bằng 0" in html
    # autoescape: an agency name is text, never markup
    assert "<b>Phòng & Ban</b>" not in html
    assert "&lt;b&gt;Phòng &amp; Ban&lt;/b&gt;" in html


def test_sentence_on_both_backends(engine, tmp_path):
    """Without the extra agency: the headline sentence, computed on SQLite and PostgreSQL."""
    from tthc.report import build_quarterly_report

    load_hand_data(engine)
    load(engine, _bulk())
    files = build_quarterly_report(
        engine,
        "2026Q3",
        "H40",
        tmp_path / "o",
        registry=registry(tmp_path),
        units=UNITS,
        now=NOW,
        agencies=False,
    )
    assert files.summary == SENTENCE
    assert SENTENCE in files.html.read_text(encoding="utf-8")
    assert files.agencies == []


def test_chart_pngs_and_agency_reports(report):
    assert [p.name for p in report.charts] == [
        "xu-huong-dung-han.png",
        "hinh-thuc-tiep-nhan.png",
        "qua-han-theo-co-quan.png",
        "thanh-toan-truc-tuyen.png",
    ]
    for p in report.charts:
        data = p.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    names = sorted(p.name for p in report.agencies)
    assert names == sorted(["000.00.12.H40.html", "000.05.21.H40.html", "000.00.66.H40.html"])
    a2 = (report.folder / "co-quan" / f"{A2}.html").read_text(encoding="utf-8")
    assert (
        "Trong quý III/2026, UBND xã Hưng Nguyên tiếp nhận 1.201 hồ sơ, đã giải quyết 1.201 hồ sơ (100,0%)"
        in a2
    )
    assert "UBND xã Hưng Nguyên — tỉnh Nghệ An" in a2
    assert A1 not in a2


def test_xlsx_opens_with_charts_and_numbers(report):
    from openpyxl import load_workbook

    wb = load_workbook(report.xlsx)
    assert wb.sheetnames == ["Tổng hợp", "Theo tháng", "Theo cơ quan", "Ghi chú"]
    charts = {ws.title: len(ws._charts) for ws in wb}
    assert charts == {"Tổng hợp": 1, "Theo tháng": 1, "Theo cơ quan": 2, "Ghi chú": 0}
    ws = wb["Tổng hợp"]
    texts = [c.value for row in ws.iter_rows() for c in row if isinstance(c.value, str)]
    assert any(t.startswith("Trong quý III/2026, tỉnh tiếp nhận 1.208 hồ sơ") for t in texts)
    ag = wb["Theo cơ quan"]
    header = [c.value for c in ag[1]]
    assert header[:3] == ["Mã cơ quan", "Cơ quan", "Tiếp nhận"]
    rows = {r[0]: r for r in ag.iter_rows(min_row=2, values_only=True)}
    assert rows[A2][2] == 1201 and rows["H40"][2] == 1208
    assert ag.cell(row=2, column=3).number_format == "#,##0"
    assert ag.cell(row=2, column=9).number_format == "0.0%"
    months = wb["Theo tháng"]
    assert [r[0] for r in months.iter_rows(min_row=2, values_only=True)] == ["07/2026", "08/2026", "09/2026"]
    with zipfile.ZipFile(report.xlsx) as z:
        kinds = sorted(
            tag
            for n in z.namelist()
            if n.startswith("xl/charts/chart")
            for tag in ("pieChart", "lineChart", "barChart")
            if re.search(f"<(c:)?{tag}>", z.read(n).decode("utf-8"))
        )
    assert kinds == ["barChart", "barChart", "lineChart", "pieChart"]


def test_no_personal_data_in_any_output(built):
    """Marker names, ID numbers, phones and birth dates are in the warehouse, never in the files."""
    import sqlalchemy as sa

    engine, report = built
    with engine.connect() as c:
        stored = c.execute(sa.text("SELECT applicant_name, applicant_id_number FROM dossiers")).all()
    assert stored and all(r[0] == MARKERS[0] for r in stored)  # the markers are really there
    files = [report.html, *report.agencies]
    texts = [p.read_text(encoding="utf-8") for p in files]
    with zipfile.ZipFile(report.xlsx) as z:
        texts += [z.read(n).decode("utf-8", "replace") for n in z.namelist()]
    texts += [p.read_bytes().decode("latin-1") for p in report.charts]
    for text in texts:
        for m in MARKERS:
            assert m not in text
    with engine.connect() as c:
        for table in ("dossier_outcomes", "indicators"):
            rows = c.execute(sa.text(f"SELECT * FROM {table}")).all()
            assert rows
            blob = " ".join(str(v) for r in rows for v in r)
            for m in MARKERS:
                assert m not in blob, table


def test_cli_report(sqlite_engine, tmp_path, monkeypatch):
    from tthc import cli

    load_hand_data(sqlite_engine)
    monkeypatch.setenv("TTHC_WAREHOUSE_URL", str(sqlite_engine.url))
    rc = cli.main(["report", "--quarter", "2026Q3", "--province", "H40", "--out", str(tmp_path / "cli")])
    assert rc == 0
    folder = tmp_path / "cli" / "2026Q3" / "H40"
    assert (folder / "bao-cao-2026Q3-H40.html").exists()
    assert (folder / "bao-cao-2026Q3-H40.xlsx").exists()
    assert len(list((folder / "bieu-do").glob("*.png"))) == 4
    assert cli.main(["report", "--quarter", "2026-07"]) == 2
    assert cli.main(["report", "--quarter", "nonsense"]) == 2


def test_empty_warehouse_still_renders(sqlite_engine, tmp_path):
    from tthc.report import build_quarterly_report

    files = build_quarterly_report(
        sqlite_engine, "2026Q3", "H40", tmp_path / "e", registry=registry(tmp_path), now=NOW
    )
    html = files.html.read_text(encoding="utf-8")
    assert "Trong quý III/2026, tỉnh chưa tiếp nhận hồ sơ nào" in html
    assert files.xlsx.exists() and files.agencies == []
