"""connectors.onegate.to_dossier: world.md §2 fields into the canonical model; never raises."""

from __future__ import annotations

import copy
import unicodedata
from datetime import datetime
from typing import Any

import pytest

from connectors.onegate import code_of, to_dossier
from tthc.model import Attachment, Supplement

RECORD: dict[str, Any] = {
    "MaHoSo": "000.00.12.H40-250714-0001",
    "MaTTHC": "1.001234",
    "TenTTHC": "Đăng ký khai sinh",
    "MaLinhVuc": "G12-LV05",
    "MaDonVi": "000.00.12.H40",
    "KenhThucHien": 2,
    "ChuHoSo": "Nguyễn Thị Thuý",
    "SoGiayToChuHoSo": "036185000123",
    "NgaySinhChuHoSo": "04/03/1985",
    "GioiTinh": "Nữ",
    "LoaiDoiTuong": 1,
    "NgayTiepNhan": "20250714083000",
    "NgayHenTra": "20250721170000",
    "NgayKetThucXuLy": "20250718100000",
    "NgayTra": None,
    "TrangThaiHoSo": 9,
    "DuocThanhToanTrucTuyen": 2,
    "LePhi": 50000,
    "DanhSachHoSoBoSung": [{"NgayYeuCau": "20250715090000", "NgayBoSung": "20250716140000"}],
    "TaiLieuNop": [
        {"TenTepDinhKem": "Tờ khai.pdf", "DuocSoHoa": 1, "DuocTaiSuDung": 0},
        {"TenTepDinhKem": "CCCD.jpg", "DuocSoHoa": 0, "DuocTaiSuDung": 1},
    ],
    "DuongDanTepTinKetQua": "ket-qua/000.00.12.H40-250714-0001.pdf",
    "TaiKhoanDuocXacThucVoiVNeID": 1,
    "NgayCapNhat": "20250718100005",
}


@pytest.fixture
def record() -> dict[str, Any]:
    return copy.deepcopy(RECORD)


def test_full_record(record):
    d = to_dossier(record, "onegate_so_yte")
    assert d.raw_issues == {}
    assert (d.source_id, d.dossier_code, d.agency_code, d.procedure_code) == (
        "onegate_so_yte",
        "000.00.12.H40-250714-0001",
        "000.00.12.H40",
        "1.001234",
    )
    assert d.procedure_name == "Đăng ký khai sinh" and d.sector_code == "G12-LV05"
    assert d.channel == 2 and d.status == 9 and d.status_raw is None
    assert d.applicant_name == "Nguyễn Thị Thuý"
    assert (d.applicant_id_number, d.applicant_id_type) == ("036185000123", 1)
    assert d.applicant_birth_date == "1985-03-04" and d.applicant_sex == 2 and d.applicant_type == 1
    assert d.received_at == datetime(2025, 7, 14, 8, 30)
    assert d.due_at == datetime(2025, 7, 21, 17, 0)
    assert d.finished_at == datetime(2025, 7, 18, 10, 0) and d.returned_at is None
    assert d.updated_at == datetime(2025, 7, 18, 10, 0, 5)
    assert d.paid_online == 2 and d.fee == 50000
    assert d.supplements == [Supplement(datetime(2025, 7, 15, 9), datetime(2025, 7, 16, 14))]
    assert d.attachments == [Attachment("Tờ khai.pdf", True, False), Attachment("CCCD.jpg", False, True)]
    assert d.result_file == "ket-qua/000.00.12.H40-250714-0001.pdf" and d.result_type is None
    assert d.vneid_verified is True
    assert code_of(record) == "000.00.12.H40-250714-0001"


@pytest.mark.parametrize(
    ("raw", "sex"),
    [("Nam", 1), ("NAM", 1), ("Nữ", 2), (unicodedata.normalize("NFD", "Nữ"), 2), ("nữ ", 2), (1, 1)],
)
def test_sex_words(record, raw, sex):
    record["GioiTinh"] = raw
    d = to_dossier(record, "s")
    assert d.applicant_sex == sex and d.raw_issues == {}


def test_unknown_sex_is_an_issue(record):
    record["GioiTinh"] = "Khác"
    d = to_dossier(record, "s")
    assert d.applicant_sex is None and d.raw_issues == {"applicant_sex": "Khác"}


@pytest.mark.parametrize(
    ("raw", "status", "status_raw"),
    [(4, 4, None), ("10", 10, None), ("cho_duyet", None, "cho_duyet"), (11, None, "11"), (0, None, "0")],
)
def test_status(record, raw, status, status_raw):
    record["TrangThaiHoSo"] = raw
    d = to_dossier(record, "s")
    assert (d.status, d.status_raw) == (status, status_raw)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("04/03/1985", "1985-03-04"),
        ("4/3/1985", "1985-03-04"),
        ("1960", "1960"),
        ("00/00/1960", "1960"),
        (None, None),
    ],
)
def test_birth_dates(record, raw, expected):
    record["NgaySinhChuHoSo"] = raw
    d = to_dossier(record, "s")
    assert d.applicant_birth_date == expected and "applicant_birth_date" not in d.raw_issues


@pytest.mark.parametrize("raw", ["1985-03-04", "31/02/1985", "04-03-1985", 19850304])
def test_bad_birth_date_is_an_issue(record, raw):
    record["NgaySinhChuHoSo"] = raw
    d = to_dossier(record, "s")
    assert d.applicant_birth_date is None and "applicant_birth_date" in d.raw_issues


def test_unparseable_dates_are_issues_not_exceptions(record):
    record["NgayTiepNhan"] = "2025-07-14T08:30:00+07:00"
    record["NgayHenTra"] = "20251332170000"
    record["DanhSachHoSoBoSung"] = [{"NgayYeuCau": "hôm qua", "NgayBoSung": None}, "x"]
    d = to_dossier(record, "s")
    assert d.received_at is None and d.due_at is None
    assert set(d.raw_issues) == {"received_at", "due_at", "supplements[0].requested_at", "supplements[1]"}
    assert d.supplements == [Supplement(None, None)]


def test_dates_as_json_numbers(record):
    record["NgayTiepNhan"] = 20250714083000
    assert to_dossier(record, "s").received_at == datetime(2025, 7, 14, 8, 30)


def test_nulls_and_defaults(record):
    for k in ("KenhThucHien", "DuocThanhToanTrucTuyen", "LePhi", "DanhSachHoSoBoSung", "TaiLieuNop"):
        record[k] = None
    record["TaiKhoanDuocXacThucVoiVNeID"] = None
    d = to_dossier(record, "s")
    assert d.channel is None  # unknown channel not guessed (counted as direct downstream)
    assert d.paid_online == 0  # null: not paid online (domain.md §5)
    assert d.fee is None and d.supplements == [] and d.attachments == []
    assert d.vneid_verified is False and d.raw_issues == {}


@pytest.mark.parametrize(
    ("field", "value", "issue"),
    [
        ("KenhThucHien", 4, "channel"),
        ("DuocThanhToanTrucTuyen", 3, "paid_online"),
        ("LePhi", "năm mươi nghìn", "fee"),
        ("LePhi", -1, "fee"),
        ("LoaiDoiTuong", 3, "applicant_type"),
        ("TaiKhoanDuocXacThucVoiVNeID", "có", "vneid_verified"),
        ("TaiLieuNop", "Tờ khai.pdf", "attachments"),
        ("MaHoSo", {"x": 1}, "dossier_code"),
    ],
)
def test_bad_values_are_recorded(record, field, value, issue):
    record[field] = value
    d = to_dossier(record, "s")
    assert issue in d.raw_issues


def test_id_number_types(record):
    record["SoGiayToChuHoSo"] = " 012345678 "
    d = to_dossier(record, "s")
    assert (d.applicant_id_number, d.applicant_id_type) == ("012345678", 2)
    record["SoGiayToChuHoSo"] = "03618500012"
    assert to_dossier(record, "s").applicant_id_type == 3


def test_not_a_mapping_never_raises():
    d = to_dossier(["not", "a", "record"], "s")  # type: ignore[arg-type]
    assert d.dossier_code is None and d.raw_issues == {"record": "list"}
