"""Well-formed records of every dialect, and the helpers the bad-input corpus builds its cases from.

Every record is built from a few canonical facts (code, receipt time, applicant) and rendered the
way its source system would send it: igate JSON (world.md §1), onegate JSON (§2), a row of the
department view (§3) or a row of the file drop's canonical CSV (§4). A case then changes a field
(``with_changes``: dotted paths, :data:`DELETE` removes a key) to plant its defect.

Personal data: the records of bad cases carry :data:`PLANTED_CCCD` and :data:`PLANTED_NAME`, so
the corpus test can prove that no error text and no log line ever repeats them.
"""

from __future__ import annotations

import copy
import csv
import io
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

#: The night every corpus source is pulled (window end, naive Vietnam time) and the world's clock.
NIGHT = datetime(2026, 11, 1, 1, 0, 0)
RECEIVED = datetime(2026, 10, 22, 8, 30, 0)
DUE = RECEIVED + timedelta(days=7, hours=8, minutes=30)
UPDATED = datetime(2026, 10, 31, 9, 15, 0)
#: When the file drop's files were exported (their mtime).
EXPORTED = datetime(2026, 10, 31, 18, 0, 0)

#: Personal data planted in every bad record: it must never reach an error text or a log line.
PLANTED_CCCD = "001185012345"  # Hà Nội, female, born 1985
PLANTED_NAME = "Trần Thị Bí Mật"
PLANTED_BIRTH = "1985-03-04"
GOOD_NAMES = ("Lê Văn Lành", "Nguyễn Thị Thuý", "Phạm Minh Khoa", "Hoàng Thị Hoà")

PROCEDURE_CODE = "1.001234"
PROCEDURE_NAME = "Cấp bản sao trích lục hộ tịch"
SECTOR_CODE = "G12-LV05"
SECTOR_NAME = "Hộ tịch"


class _Delete:
    def __repr__(self) -> str:
        return "DELETE"


#: ``with_changes`` value that removes the key.
DELETE = _Delete()


def good_cccd(n: int) -> str:
    """A well-formed CCCD of a man born in 1985 in Hà Nội (not in the sandbox's registry)."""
    return f"0010850{n:05d}"


def dossier_code(agency: str, seq: int, received: datetime = RECEIVED) -> str:
    return f"{agency}-{received:%y%m%d}-{seq:04d}"


def with_changes(record: Any, changes: Mapping[str, Any]) -> Any:
    """A deep copy of ``record`` with dotted-path changes applied (``{"applicant.fullname": 1}``)."""
    out = copy.deepcopy(record)
    for path, value in changes.items():
        keys = path.split(".")
        target = out
        for k in keys[:-1]:
            target = target.setdefault(k, {}) if isinstance(target, dict) else target
        if not isinstance(target, dict):
            raise TypeError(
                f"cannot set {path}: {keys[-2] if len(keys) > 1 else '(record)'} is not an object"
            )
        if value is DELETE:
            target.pop(keys[-1], None)
        else:
            target[keys[-1]] = value
    return out


def _person(n: int | None) -> tuple[str, str, int, str]:
    """(name, CCCD, sex, birth date): planted for a bad record (``n`` None), harmless otherwise."""
    if n is None:
        return PLANTED_NAME, PLANTED_CCCD, 2, PLANTED_BIRTH
    return GOOD_NAMES[n % len(GOOD_NAMES)], good_cccd(n), 1, "1985-07-01"


# ---- igate (world.md §1) -----------------------------------------------------------------------
def iso(value: datetime) -> str:
    return value.isoformat(timespec="seconds") + "+07:00"


def igate_record(
    code: str,
    agency: str,
    *,
    n: int | None = None,
    received: datetime = RECEIVED,
    updated: datetime = UPDATED,
) -> dict[str, Any]:
    """An igate record; ``n`` None: a bad case's record (planted applicant), else good record ``n``."""
    name, cccd, sex, birth = _person(n)
    return {
        "id": f"corpus:{code}",
        "code": code,
        "procedure": {
            "code": PROCEDURE_CODE,
            "name": PROCEDURE_NAME,
            "sector": {"code": SECTOR_CODE, "name": SECTOR_NAME},
            "fee": 8000,
            "resultType": "paper",
        },
        "agency": {"code": agency, "name": "Sở Kiểm thử dữ liệu"},
        "applicant": {
            "fullname": name,
            "identityNumber": cccd,
            "birthDate": birth,
            "gender": sex,
            "phone": None,
            "email": None,
            "type": 1,
        },
        "applyMethod": {"id": 1},
        "acceptedDate": iso(received),
        "appointmentDate": iso(received + (DUE - RECEIVED)),
        "completedDate": None,
        "returnedDate": None,
        "status": "processing",
        "paidOnline": False,
        "supplements": [],
        "attachments": [{"name": "Tờ khai", "digitized": True, "reused": False}],
        "resultFile": None,
        "vneidVerified": False,
        "updatedDate": iso(updated),
    }


# ---- onegate (world.md §2) ---------------------------------------------------------------------
def og_time(value: datetime) -> str:
    return value.strftime("%Y%m%d%H%M%S")


def onegate_record(
    code: str,
    agency: str,
    *,
    n: int | None = None,
    received: datetime = RECEIVED,
    updated: datetime = UPDATED,
) -> dict[str, Any]:
    name, cccd, sex, birth = _person(n)
    y, m, d = birth.split("-")
    return {
        "MaHoSo": code,
        "MaTTHC": PROCEDURE_CODE,
        "TenTTHC": PROCEDURE_NAME,
        "MaLinhVuc": SECTOR_CODE,
        "MaDonVi": agency,
        "KenhThucHien": 2,
        "ChuHoSo": name,
        "SoGiayToChuHoSo": cccd,
        "NgaySinhChuHoSo": f"{d}/{m}/{y}",
        "GioiTinh": "Nam" if sex == 1 else "Nữ",
        "LoaiDoiTuong": 1,
        "NgayTiepNhan": og_time(received),
        "NgayHenTra": og_time(received + (DUE - RECEIVED)),
        "NgayKetThucXuLy": None,
        "NgayTra": None,
        "TrangThaiHoSo": 4,
        "DuocThanhToanTrucTuyen": 0,
        "LePhi": 8000,
        "DanhSachHoSoBoSung": [],
        "TaiLieuNop": [{"TenTepDinhKem": "Tờ khai", "DuocSoHoa": 1, "DuocTaiSuDung": 0}],
        "DuongDanTepTinKetQua": None,
        "TaiKhoanDuocXacThucVoiVNeID": 0,
        "NgayCapNhat": og_time(updated),
    }


# ---- department database (world.md §3) ---------------------------------------------------------
def sql_time(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S")


def sqldb_row(
    code: str,
    agency: str,
    *,
    n: int | None = None,
    received: datetime = RECEIVED,
    updated: datetime = UPDATED,
) -> dict[str, Any]:
    name, cccd, sex, birth = _person(n)
    return {
        "ma_ho_so": code,
        "ma_tthc": PROCEDURE_CODE,
        "ten_tthc": PROCEDURE_NAME,
        "ma_don_vi": agency,
        "kenh_nop": 1,
        "ho_ten_chu_ho_so": name,
        "so_cccd": cccd,
        "ngay_sinh": birth,
        "gioi_tinh": sex,
        "ngay_tiep_nhan": sql_time(received),
        "ngay_hen_tra": sql_time(received + (DUE - RECEIVED)),
        "ngay_ket_thuc": None,
        "ngay_tra_kq": None,
        "trang_thai": 4,
        "thanh_toan_truc_tuyen": 0,
        "le_phi": 8000,
        "so_lan_bo_sung": 0,
        "ngay_yc_bo_sung": None,
        "ngay_bo_sung": None,
        "co_so_hoa": 1,
        "co_kq_dien_tu": 0,
        "ngay_cap_nhat": sql_time(updated),
    }


# ---- file drop (world.md §4) -------------------------------------------------------------------
def fd_time(value: datetime) -> str:
    return value.strftime("%d/%m/%Y %H:%M")


def filedrop_row(
    code: str, agency: str, *, n: int | None = None, received: datetime = RECEIVED
) -> dict[str, str]:
    """One row of the canonical CSV, keyed by the Vietnamese header names."""
    from connectors.filedrop import HEADER

    name, cccd, sex, birth = _person(n)
    y, m, d = birth.split("-")
    values = {
        "ma_ho_so": code,
        "ma_tthc": PROCEDURE_CODE,
        "ten_tthc": PROCEDURE_NAME,
        "ma_don_vi": agency,
        "kenh_nop": "1",
        "ho_ten_chu_ho_so": name,
        "so_cccd": cccd,
        "ngay_sinh": f"{d}/{m}/{y}",
        "gioi_tinh": "Nam" if sex == 1 else "Nữ",
        "ngay_tiep_nhan": fd_time(received),
        "ngay_hen_tra": fd_time(received + (DUE - RECEIVED)),
        "ngay_ket_thuc": "",
        "ngay_tra_kq": "",
        "trang_thai": "4",
        "thanh_toan_truc_tuyen": "0",
        "le_phi": "8000",
        "ngay_yc_bo_sung": "",
        "ngay_bo_sung": "",
        "co_so_hoa": "1",
        "co_kq_dien_tu": "0",
    }
    return {HEADER[k]: v for k, v in values.items()}


def csv_text(rows: list[Mapping[str, str]], *, header: list[str] | None = None, delimiter: str = ",") -> str:
    """The CSV text (CRLF lines) of ``rows`` under the canonical header (or ``header``)."""
    from connectors.filedrop import HEADER

    names = header or list(HEADER.values())
    buf = io.StringIO()
    w = csv.writer(buf, delimiter=delimiter, lineterminator="\r\n")
    w.writerow(names)
    for r in rows:
        w.writerow([r.get(h, "") for h in names])
    return buf.getvalue()
