"""connectors.filedrop.scan on a corpus built in a temporary folder: every encoding met in
practice, BOM or not, XLSX, semicolon/tab, half-written and young files, re-exports, and malformed
files rejected whole (with a reason) while their siblings load."""

from __future__ import annotations

import io
import logging
import os
import time
import unicodedata
from datetime import datetime
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from connectors.filedrop import HEADER, FileRejected, decode_text, scan, to_dossier, vietnamese_plausibility
from tthc.timeutil import VN_TZ

NOW = time.time()
OLD = NOW - 3600  # settled an hour ago
LABELS = list(HEADER.values())

ROWS: list[list[str]] = [
    [
        "000.00.12.H40-261020-0001",
        "1.001234",
        "Đăng ký khai sinh",
        "000.00.12.H40",
        "2",
        "Nguyễn Thị Thuý",
        "036185000123",
        "04/03/1985",
        "Nữ",
        "20/10/2026 08:30",
        "27/10/2026 17:00",
        "24/10/2026 10:00",
        "",
        "9",
        "1",
        "50.000",
        "21/10/2026 09:00",
        "22/10/2026 14:00",
        "1",
        "1",
    ],
    [
        "000.00.12.H40-261021-0002",
        "1.000894",
        "Cấp bản sao trích lục hộ tịch",
        "000.00.12.H40",
        "1",
        "Trần Văn Đức",
        "040090001234",
        "1960",
        "Nam",
        "21/10/2026 14:05",
        "23/10/2026 17:00",
        "",
        "",
        "4",
        "0",
        "0",
        "",
        "",
        "0",
        "0",
    ],
    [
        "000.00.12.H40-261022-0003",
        "1.001234",
        "Đăng ký khai sinh",
        "000.00.12.H40",
        "1",
        "Hoàng Thị Hoà",
        "012345678",
        "15/12/1970",
        "Nữ",
        "22/10/2026",
        "29/10/2026",
        "",
        "",
        "2",
        "",
        "50000",
        "",
        "",
        "",
        "",
    ],
]


def csv_text(rows: list[list[str]] = ROWS, delimiter: str = ",", header: list[str] | None = None) -> str:
    import csv

    buf = io.StringIO()
    w = csv.writer(buf, delimiter=delimiter, lineterminator="\r\n")
    w.writerow(header or LABELS)
    w.writerows(rows)
    return buf.getvalue()


_TONES = "\u0300\u0301\u0303\u0309\u0323"


def cp1258(text: str) -> bytes:
    """Windows-1258 as Vietnamese Windows writes it: base letter (with ^ ˘ ơ ư đ) + tone byte."""
    out = bytearray()
    for ch in unicodedata.normalize("NFC", text):
        try:
            out += ch.encode("cp1258")
            continue
        except UnicodeEncodeError:
            pass
        d = unicodedata.normalize("NFD", ch)
        base = unicodedata.normalize("NFC", "".join(c for c in d if c not in _TONES))
        out += base.encode("cp1258") + "".join(c for c in d if c in _TONES).encode("cp1258")
    return bytes(out)


def put(folder: Path, name: str, data: bytes | str, mtime: float = OLD) -> Path:
    p = folder / name
    p.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    os.utime(p, (mtime, mtime))
    return p


def xlsx_bytes(rows: list[list[Any]], header: list[Any] | None = None, sheet_title: str = "Sheet1") -> bytes:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = sheet_title
    ws.append(header or LABELS)
    for r in rows:
        ws.append(r)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def outcome(batch, name):
    return next(f for f in batch.files if f.name == name)


def names_of(batch, name) -> list[str]:
    return [r["ho_ten_chu_ho_so"] for r in batch.records if r["_file"] == name]


EXPECTED_NAMES = [r[5] for r in ROWS]


# ---- encodings and delimiters -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "make", "encoding", "delimiter"),
    [
        ("utf8.csv", lambda: csv_text().encode("utf-8"), "utf-8", ","),
        ("utf8_bom.csv", lambda: b"\xef\xbb\xbf" + csv_text(delimiter=";").encode("utf-8"), "utf-8-sig", ";"),
        (
            "unicode_text.csv",  # Excel "Unicode text": UTF-16 LE with BOM, tab-separated
            lambda: csv_text(delimiter="\t").encode("utf-16"),
            "utf-16",
            "\t",
        ),
        ("utf16_nobom.csv", lambda: csv_text(delimiter="\t").encode("utf-16-le"), "utf-16-le", "\t"),
        ("win1258.csv", lambda: cp1258(csv_text(delimiter=";")), "cp1258", ";"),
        ("win1258_comma.csv", lambda: cp1258(csv_text()), "cp1258", ","),
    ],
)
def test_each_encoding_and_delimiter_loads(tmp_path, name, make, encoding, delimiter):
    put(tmp_path, name, make())
    batch = scan(tmp_path, set(), NOW)
    f = outcome(batch, name)
    assert (f.status, f.rows, f.encoding, f.delimiter, f.reason) == ("loaded", 3, encoding, delimiter, None)
    assert names_of(batch, name) == EXPECTED_NAMES
    assert [r["_row"] for r in batch.records] == [2, 3, 4]
    assert all(r["ten_tthc"] in ("Đăng ký khai sinh", "Cấp bản sao trích lục hộ tịch") for r in batch.records)
    assert batch.to_record == {(name, f.sha256)}


def test_header_matching_ignores_case_spacing_nfd_and_tone_placement(tmp_path):
    header = [f"  {h.upper()} " for h in LABELS]
    header[LABELS.index("Số hóa")] = "số  hoá"  # new tone placement
    header[LABELS.index("Mã hồ sơ")] = unicodedata.normalize("NFD", "Mã hồ sơ")
    put(tmp_path, "a.csv", csv_text(header=header))
    batch = scan(tmp_path, set(), NOW)
    assert outcome(batch, "a.csv").status == "loaded" and len(batch.records) == 3


def test_columns_in_another_order_and_unknown_columns(tmp_path):
    header = ["Ghi chú", *reversed(LABELS)]
    rows = [["ghi chú riêng", *reversed(r)] for r in ROWS]
    put(tmp_path, "a.csv", csv_text(rows, header=header))
    batch = scan(tmp_path, set(), NOW)
    f = outcome(batch, "a.csv")
    assert f.status == "loaded" and "Ghi chú" in (f.reason or "")
    assert names_of(batch, "a.csv") == EXPECTED_NAMES
    assert "Ghi chú" not in batch.records[0] and "ghi chú riêng" not in batch.records[0].values()


def test_optional_update_time_column(tmp_path):
    header = [*LABELS, "Ngày cập nhật", "Số lần bổ sung"]
    rows = [[*ROWS[0], "24/10/2026 10:05", "2"]]
    put(tmp_path, "a.csv", csv_text(rows, header=header))
    batch = scan(tmp_path, set(), NOW)
    d = to_dossier(batch.records[0], "filedrop_xa_1")
    assert d.updated_at == datetime(2026, 10, 24, 10, 5) and len(d.supplements) == 2


def test_blank_lines_are_skipped_and_row_numbers_kept(tmp_path):
    text = csv_text()
    lines = text.split("\r\n")
    lines.insert(2, ",,,,,,,,,,,,,,,,,,,")  # Excel exports formatted empty rows like this
    lines.insert(3, "")
    put(tmp_path, "a.csv", "\r\n".join(lines))
    batch = scan(tmp_path, set(), NOW)
    assert outcome(batch, "a.csv").rows == 3
    assert [r["_row"] for r in batch.records] == [2, 5, 6]


# ---- XLSX ------------------------------------------------------------------------------------------


def test_xlsx_with_typed_cells(tmp_path):
    rows = [
        [
            "000.00.12.H40-261020-0001",
            "1.001234",
            "Đăng ký khai sinh",
            "000.00.12.H40",
            2,
            "Nguyễn Thị Thuý",
            36185000123,  # a number cell: Excel dropped the leading zero
            datetime(1985, 3, 4),
            "Nữ",
            datetime(2026, 10, 20, 8, 30),
            "27/10/2026 17:00",
            None,
            None,
            9,
            1,
            50000,
            None,
            None,
            1,
            0,
        ],
        ["000.00.12.H40-261021-0002", "1.000894", "Cấp bản sao", "000.00.12.H40", 1, "Trần Văn Đức"],  # short
    ]
    put(tmp_path, "thang10.xlsx", xlsx_bytes(rows))
    batch = scan(tmp_path, set(), NOW)
    f = outcome(batch, "thang10.xlsx")
    assert (f.status, f.rows, f.encoding) == ("loaded", 2, "xlsx")
    d = to_dossier(batch.records[0], "filedrop_xa_1")
    assert d.raw_issues == {}
    assert d.applicant_id_number == "036185000123" and d.applicant_birth_date == "1985-03-04"
    assert d.received_at == datetime(2026, 10, 20, 8, 30) and d.due_at == datetime(2026, 10, 27, 17)
    assert d.status == 9 and d.fee == 50000 and d.attachments[0].digitized and d.result_file is None
    assert batch.records[1]["_row"] == 3 and batch.records[1]["ngay_tiep_nhan"] is None


def test_xlsx_header_on_a_later_sheet_and_after_blank_rows(tmp_path):
    wb = openpyxl.Workbook()
    wb.active.title = "Hướng dẫn"
    wb.active.append(["Bảng kê hồ sơ tháng 10"])
    ws = wb.create_sheet("Dữ liệu")
    ws.append([])
    ws.append(LABELS)
    ws.append(ROWS[0])
    buf = io.BytesIO()
    wb.save(buf)
    put(tmp_path, "a.xlsx", buf.getvalue())
    batch = scan(tmp_path, set(), NOW)
    assert outcome(batch, "a.xlsx").status == "loaded"
    assert batch.records[0]["_row"] == 3


# ---- half-written and young files ------------------------------------------------------------------


def test_half_written_and_young_files_are_skipped(tmp_path):
    good = csv_text().encode("utf-8")
    put(tmp_path, "thang10.csv.tmp", good)
    put(tmp_path, "thang10.part", good)
    put(tmp_path, "~$thang10.xlsx", b"lock")
    put(tmp_path, ".~lock.thang10.csv#", b"lock")
    put(tmp_path, "young.csv", good, mtime=NOW - 10)
    put(tmp_path, "README.txt", "đọc tôi")
    (tmp_path / ".cache").mkdir()
    put(tmp_path / ".cache", "old.csv", good)  # hidden folders are not entered
    batch = scan(tmp_path, set(), NOW, settle_seconds=60)
    assert batch.records == []
    assert {f.name: f.status for f in batch.files} == dict.fromkeys(
        [
            "thang10.csv.tmp",
            "thang10.part",
            "~$thang10.xlsx",
            ".~lock.thang10.csv#",
            "young.csv",
            "README.txt",
        ],
        "skipped",
    )
    assert all(f.sha256 is None and f.reason for f in batch.files)
    assert batch.to_record == set()
    # once it has settled (and been renamed) it is read
    os.rename(tmp_path / "thang10.csv.tmp", tmp_path / "thang10.csv")
    later = scan(tmp_path, set(), NOW + 120, settle_seconds=60)
    assert outcome(later, "thang10.csv").status == "loaded" and outcome(later, "young.csv").status == "loaded"


def test_agency_subfolders_are_scanned_with_relative_names(tmp_path):
    for agency in ("000.00.12.H40", "000.00.13.H40"):
        (tmp_path / agency).mkdir()
        put(tmp_path / agency, "hoso_2026_10.csv", csv_text())
    put(tmp_path / "000.00.13.H40", "hoso_2026_10.csv.tmp", csv_text()[:100])
    batch = scan(tmp_path, set(), NOW, dedupe=False)
    assert [(f.name, f.status) for f in batch.files] == [
        ("000.00.12.H40/hoso_2026_10.csv", "loaded"),
        ("000.00.13.H40/hoso_2026_10.csv", "loaded"),
        ("000.00.13.H40/hoso_2026_10.csv.tmp", "skipped"),
    ]
    assert {r["_file"] for r in batch.records} == {
        "000.00.12.H40/hoso_2026_10.csv",
        "000.00.13.H40/hoso_2026_10.csv",
    }
    assert len(batch.to_record) == 2
    flat = scan(tmp_path, set(), NOW, recursive=False)
    assert {f.status for f in flat.files} == {"skipped"} and flat.records == []


def test_now_as_naive_vietnam_datetime(tmp_path):
    put(tmp_path, "a.csv", csv_text(), mtime=NOW - 30)
    now_vn = datetime.fromtimestamp(NOW, tz=VN_TZ).replace(tzinfo=None)
    assert outcome(scan(tmp_path, set(), now_vn, settle_seconds=60), "a.csv").status == "skipped"
    assert outcome(scan(tmp_path, set(), now_vn, settle_seconds=10), "a.csv").status == "loaded"


def test_symlinks_are_not_followed(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    put(outside, "secret.csv", csv_text())
    drop = tmp_path / "drop"
    drop.mkdir()
    os.symlink(outside / "secret.csv", drop / "link.csv")
    batch = scan(drop, set(), NOW)
    assert outcome(batch, "link.csv").status == "skipped" and batch.records == []


# ---- re-exports ------------------------------------------------------------------------------------


def test_reexport_same_content_unchanged_new_content_loaded(tmp_path):
    put(tmp_path, "thang10.csv", csv_text(ROWS[:2]))
    put(tmp_path, "thang09.csv", csv_text(ROWS[2:]))
    first = scan(tmp_path, set(), NOW)
    assert [f.status for f in first.files] == ["loaded", "loaded"]
    manifest = set(first.to_record)

    put(tmp_path, "thang10.csv", csv_text(ROWS[:2]), mtime=OLD + 60)  # re-exported, same bytes
    again = scan(tmp_path, manifest, NOW)
    assert [f.status for f in again.files] == ["unchanged", "unchanged"] and again.records == []
    assert again.to_record == set()

    put(tmp_path, "thang10.csv", csv_text(ROWS), mtime=OLD + 120)  # re-exported with a new row
    third = scan(tmp_path, manifest, NOW)
    assert {f.name: f.status for f in third.files} == {"thang09.csv": "unchanged", "thang10.csv": "loaded"}
    assert len(third.records) == 3  # the whole re-export: the warehouse upserts by dossier key
    new_sha = outcome(third, "thang10.csv").sha256
    assert third.to_record == {("thang10.csv", new_sha)}


def test_a_dossier_in_several_files_is_returned_once_newest_export(tmp_path):
    old_rows = [list(r) for r in ROWS[:2]]
    new_rows = [list(r) for r in ROWS]
    new_rows[0][13] = "10"  # returned since the older export
    twin = list(ROWS[1])
    twin[6], twin[9] = "001190009999", "21/10/2026 15:00"  # same code, another dossier: kept
    put(tmp_path, "hoso_2026_10.csv", csv_text(old_rows), mtime=OLD - 600)
    put(tmp_path, "hoso_20261016_20261115.xlsx", xlsx_bytes([*new_rows, twin]), mtime=OLD)
    batch = scan(tmp_path, set(), NOW)
    assert {f.name: f.rows for f in batch.files} == {"hoso_2026_10.csv": 2, "hoso_20261016_20261115.xlsx": 4}
    assert batch.superseded == 2
    assert len(batch.records) == 4
    assert {r["_file"] for r in batch.records} == {"hoso_20261016_20261115.xlsx"}
    first = next(r for r in batch.records if r["ma_ho_so"] == ROWS[0][0])
    assert to_dossier(first, "s").status == 10
    assert len([r for r in batch.records if r["ma_ho_so"] == ROWS[1][0]]) == 2  # duplicate_code stays
    assert len(scan(tmp_path, set(), NOW, dedupe=False).records) == 6


def test_a_rejected_file_is_recorded_once_and_a_fix_is_read(tmp_path):
    put(tmp_path, "bad.csv", csv_text(header=LABELS[:-1]))
    first = scan(tmp_path, set(), NOW)
    assert outcome(first, "bad.csv").status == "rejected" and first.to_record
    assert outcome(scan(tmp_path, first.to_record, NOW), "bad.csv").status == "unchanged"
    put(tmp_path, "bad.csv", csv_text())
    assert outcome(scan(tmp_path, first.to_record, NOW), "bad.csv").status == "loaded"


# ---- malformed files -----------------------------------------------------------------------------------


def _truncated_xlsx() -> bytes:
    data = xlsx_bytes([ROWS[0]])
    return data[: len(data) // 2]


MALFORMED: dict[str, tuple[Any, str]] = {
    "empty.csv": (b"", "empty"),
    "blank.csv": (b"\r\n  \r\n", "empty"),
    "header_only.csv": (csv_text([]), "no data rows"),
    "wrong_header.csv": (csv_text(header=["Ma", "Ten", "Ngay"] + ["x"] * 17), "wrong header"),
    "missing_column.csv": (
        csv_text([r[:-1] for r in ROWS], header=LABELS[:-1]),
        "missing columns: Kết quả điện tử",
    ),
    "repeated_column.csv": (
        csv_text([[*r, "1"] for r in ROWS], header=[*LABELS, "Số hoá"]),
        "repeated columns",
    ),
    "truncated.csv": (csv_text()[:-60], "truncated"),
    "ragged.csv": (csv_text([ROWS[0], [*ROWS[1], "thừa"]]), "ragged"),
    "short_row.csv": (csv_text([ROWS[0], ROWS[1][:12]]), "row 3 has 12 of 20 fields"),
    "unclosed_quote.csv": (csv_text() + '"000.00.12.H40-261022-0009,1.0', "unclosed quote"),
    "binary.csv": (bytes(range(256)) * 4, "NUL"),
    "garbage_8bit.csv": (
        "Mã hồ sơ,".encode() + bytes([0x81, 0x8D, 0x8F, 0x90, 0x9D, 0xFF]) * 80,
        "cannot decode",
    ),
    "odd_utf16.csv": (csv_text().encode("utf-16")[:-1], "invalid utf-16"),
    "corrupt.xlsx": (_truncated_xlsx(), "unreadable workbook"),
    "not_a_zip.xlsx": (csv_text(), "unreadable workbook"),
    "wrong_header.xlsx": (xlsx_bytes([ROWS[0]], header=["Mã", "Tên"]), "wrong header"),
    "header_only.xlsx": (xlsx_bytes([]), "no data rows"),
    "old_format.xls": (b"\xd0\xcf\x11\xe0" + b"\x00" * 100, ".xls"),
}


def test_malformed_files_rejected_whole_while_siblings_load(tmp_path, caplog):
    caplog.set_level(logging.DEBUG, logger="connectors")
    for name, (data, _) in MALFORMED.items():
        put(tmp_path, name, data)
    put(tmp_path, "good.csv", csv_text())
    put(tmp_path, "good.xlsx", xlsx_bytes(ROWS))
    batch = scan(tmp_path, set(), NOW, dedupe=False)  # good.csv and good.xlsx hold the same rows
    status = {f.name: f.status for f in batch.files}
    assert status.pop("good.csv") == "loaded" and status.pop("good.xlsx") == "loaded"
    assert status == dict.fromkeys(MALFORMED, "rejected")
    for name, (_, expected) in MALFORMED.items():
        f = outcome(batch, name)
        assert expected in f.reason, (name, f.reason)
        vi, _, en = f.reason.partition(" / ")
        assert vi and en, f.reason  # Vietnamese / English
        assert f.sha256 and f.rows == 0
    assert {r["_file"] for r in batch.records} == {"good.csv", "good.xlsx"}
    assert len(batch.records) == 6
    assert len(batch.to_record) == len(MALFORMED) + 2
    # reasons and logs carry no value from the files
    everything = caplog.text + " ".join(f.reason or "" for f in batch.files)
    for name in EXPECTED_NAMES:
        assert name not in everything
    assert "036185000123" not in everything and "thừa" not in everything


def test_too_large_file_rejected(tmp_path):
    put(tmp_path, "big.csv", csv_text())
    batch = scan(tmp_path, set(), NOW, max_file_bytes=100)
    f = outcome(batch, "big.csv")
    assert f.status == "rejected" and "too large" in f.reason and f.sha256


def test_missing_folder():
    with pytest.raises(FileNotFoundError):
        scan("/nonexistent/tthc-drop", set(), NOW)


# ---- detection helpers --------------------------------------------------------------------------------


def test_plausibility_prefers_cp1258_over_other_code_pages():
    raw = cp1258("Họ tên người nộp: Nguyễn Thị Thuý, Phạm Đức Thắng")
    assert vietnamese_plausibility(unicodedata.normalize("NFC", raw.decode("cp1258"))) == 1.0
    assert vietnamese_plausibility(raw.decode("cp1252", errors="replace")) < 0.5
    text, enc = decode_text(raw)
    assert enc == "cp1258" and text == "Họ tên người nộp: Nguyễn Thị Thuý, Phạm Đức Thắng"


def test_ascii_only_file_is_utf8():
    assert decode_text(b"a,b\r\n1,2\r\n") == ("a,b\r\n1,2\r\n", "utf-8")


def test_file_rejected_reason_is_bilingual():
    assert FileRejected("Tệp rỗng", "empty file").reason == "Tệp rỗng / empty file"
