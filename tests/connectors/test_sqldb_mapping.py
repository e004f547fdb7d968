"""connectors.sqldb.to_dossier: the department view's columns (world.md §3) into the canonical
model; never raises; encoding repaired; values a person typed into an export understood."""

from __future__ import annotations

import unicodedata
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pytest

from connectors.sqldb import COMPONENT_NAME, ELECTRONIC_RESULT_MARKER, code_of, repair_text, to_dossier
from tthc.model import Attachment, Supplement

ROW: dict[str, Any] = {
    "ma_ho_so": "000.00.12.H40-250714-0001",
    "ma_tthc": "1.001234",
    "ten_tthc": "Đăng ký khai sinh",
    "ma_don_vi": "000.00.12.H40",
    "kenh_nop": 2,
    "ho_ten_chu_ho_so": "Nguyễn Thị Thuý",
    "so_cccd": "036185000123",
    "ngay_sinh": date(1985, 3, 4),
    "gioi_tinh": 2,
    "ngay_tiep_nhan": datetime(2025, 7, 14, 8, 30),
    "ngay_hen_tra": datetime(2025, 7, 21, 17, 0),
    "ngay_ket_thuc": datetime(2025, 7, 18, 10, 0),
    "ngay_tra_kq": None,
    "trang_thai": 9,
    "thanh_toan_truc_tuyen": 1,
    "le_phi": Decimal("50000"),
    "so_lan_bo_sung": 1,
    "ngay_yc_bo_sung": datetime(2025, 7, 15, 9, 0),
    "ngay_bo_sung": datetime(2025, 7, 16, 14, 0),
    "co_so_hoa": 1,
    "co_kq_dien_tu": 1,
    "ngay_cap_nhat": datetime(2025, 7, 18, 10, 0, 5),
}


def row(**kw: Any) -> dict[str, Any]:
    return {**ROW, **kw}


def test_full_row():
    d = to_dossier(row(), "sqldb_so_gddt")
    assert d.raw_issues == {}
    assert (d.dossier_code, d.agency_code, d.procedure_code, d.procedure_name) == (
        "000.00.12.H40-250714-0001",
        "000.00.12.H40",
        "1.001234",
        "Đăng ký khai sinh",
    )
    assert d.channel == 2 and d.status == 9 and d.paid_online == 1 and d.fee == 50000
    assert d.applicant_name == "Nguyễn Thị Thuý" and d.applicant_id_type == 1
    assert d.applicant_birth_date == "1985-03-04" and d.applicant_sex == 2
    assert d.received_at == datetime(2025, 7, 14, 8, 30) and d.updated_at == datetime(2025, 7, 18, 10, 0, 5)
    assert d.supplements == [Supplement(datetime(2025, 7, 15, 9), datetime(2025, 7, 16, 14))]
    assert d.attachments == [Attachment(COMPONENT_NAME, digitized=True)]
    assert d.result_file == ELECTRONIC_RESULT_MARKER and d.result_type is None
    assert code_of(row()) == "000.00.12.H40-250714-0001"


def test_json_round_trip_of_a_raw_row_maps_the_same():
    """The raw store keeps rows as JSON (datetimes → ISO text, Decimal → text): re-mapping agrees."""
    import json

    from tthc.warehouse.schema import json_dumps

    again = json.loads(json_dumps(row()))
    assert to_dossier(again, "s") == to_dossier(row(), "s")


@pytest.mark.parametrize(
    ("count", "yc", "bs", "expected"),
    [
        (0, None, None, []),
        (None, None, None, []),
        (1, datetime(2025, 7, 15), None, [Supplement(datetime(2025, 7, 15), None)]),
        (
            None,
            datetime(2025, 7, 15),
            datetime(2025, 7, 16),
            [Supplement(datetime(2025, 7, 15), datetime(2025, 7, 16))],
        ),
        (0, datetime(2025, 7, 15), None, [Supplement(datetime(2025, 7, 15), None)]),
        (
            3,
            datetime(2025, 7, 20),
            datetime(2025, 7, 21),
            [
                Supplement(None, None),
                Supplement(None, None),
                Supplement(datetime(2025, 7, 20), datetime(2025, 7, 21)),
            ],
        ),
    ],
)
def test_supplements_from_count_and_latest_dates(count, yc, bs, expected):
    d = to_dossier(row(so_lan_bo_sung=count, ngay_yc_bo_sung=yc, ngay_bo_sung=bs), "s")
    assert d.supplements == expected and d.raw_issues == {}


def test_supplement_lists_and_count():
    d = to_dossier(
        row(
            so_lan_bo_sung=3,
            ngay_yc_bo_sung="01/07/2025 08:00; 05/07/2025 09:00",
            ngay_bo_sung="02/07/2025 10:00;",
        ),
        "s",
    )
    assert d.supplements == [
        Supplement(None, None),
        Supplement(datetime(2025, 7, 1, 8), datetime(2025, 7, 2, 10)),
        Supplement(datetime(2025, 7, 5, 9), None),
    ]
    bad = to_dossier(row(ngay_yc_bo_sung="01/07/2025; hôm qua", ngay_bo_sung=None, so_lan_bo_sung=None), "s")
    assert bad.raw_issues == {"supplements[1].requested_at": "hôm qua"} and len(bad.supplements) == 2


def test_mojibake_of_an_nfd_name_gives_the_nfd_name_back():
    nfd = unicodedata.normalize("NFD", "Nguyễn Thị Thuý")
    broken = nfd.encode("utf-8").decode("latin-1")
    assert repair_text(broken) == nfd


def test_procedure_names_are_repaired_once_per_name_and_applicant_names_are_not_remembered():
    """A source repeats a few hundred procedure names over its rows: their repair is remembered.
    Applicant names are personal data: repaired every time, never kept."""
    from connectors.sqldb import _repair_repeated

    broken = "Đăng ký khai sinh lần đầu".encode().decode("latin-1")
    assert repair_text(broken) == "Đăng ký khai sinh lần đầu"  # what the remembered repair must give
    before = _repair_repeated.cache_info()
    people = ["Nguyễn Thị Thuý", "Trần Văn Ánh", "Lê Hoàng Yến"]
    mapped = [
        to_dossier(
            row(ma_ho_so=f"H-{i}", ten_tthc=broken, ho_ten_chu_ho_so=p.encode().decode("latin-1")),
            "s",
        )
        for i, p in enumerate(people * 3)
    ]
    assert {d.procedure_name for d in mapped} == {"Đăng ký khai sinh lần đầu"}
    assert [d.applicant_name for d in mapped] == people * 3
    after = _repair_repeated.cache_info()
    assert after.currsize - before.currsize <= 1  # one procedure name, no applicant name
    assert after.hits - before.hits >= 8


def test_fetched_rows_are_mapped_without_a_second_repair():
    """``to_dossier_fetched`` maps rows SqlDbClient.fetch has repaired: it leaves their text as it
    is (the repair is the fetch's, with the source's legacy encodings) and otherwise maps alike."""
    from connectors.sqldb import to_dossier_fetched

    broken = "Nguyá»…n Thá»‹ Thuá»·"
    assert to_dossier_fetched(row(ho_ten_chu_ho_so=broken), "s").applicant_name == broken
    assert to_dossier_fetched(row(), "s") == to_dossier(row(), "s")


def test_bad_supplement_count_is_an_issue():
    d = to_dossier(row(so_lan_bo_sung="hai"), "s")
    assert "supplements" in d.raw_issues and len(d.supplements) == 1


@pytest.mark.parametrize(
    ("raw", "attachments"),
    [
        (1, [Attachment(COMPONENT_NAME, True)]),
        (0, [Attachment(COMPONENT_NAME, False)]),
        (None, []),
        ("Có", [Attachment(COMPONENT_NAME, True)]),
        ("không", [Attachment(COMPONENT_NAME, False)]),
        ("x", [Attachment(COMPONENT_NAME, True)]),
    ],
)
def test_digitised_flag_is_one_synthetic_component(raw, attachments):
    d = to_dossier(row(co_so_hoa=raw), "s")
    assert d.attachments == attachments and d.raw_issues == {}


@pytest.mark.parametrize(
    ("raw", "result_file"),
    [(1, ELECTRONIC_RESULT_MARKER), (0, None), (None, None), (True, ELECTRONIC_RESULT_MARKER)],
)
def test_electronic_result_flag(raw, result_file):
    d = to_dossier(row(co_kq_dien_tu=raw), "s")
    assert d.result_file == result_file and d.result_type is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (datetime(2025, 7, 14, 8, 30), datetime(2025, 7, 14, 8, 30)),
        ("2025-07-14 08:30:00", datetime(2025, 7, 14, 8, 30)),
        ("2025-07-14T08:30:00", datetime(2025, 7, 14, 8, 30)),
        ("2025-07-14T08:30:00+07:00", datetime(2025, 7, 14, 8, 30)),
        ("2025-07-14T01:30:00+00:00", datetime(2025, 7, 14, 8, 30)),
        ("14/07/2025", datetime(2025, 7, 14)),
        ("14/07/2025 08:30", datetime(2025, 7, 14, 8, 30)),
        ("4/7/2025 8:30:15", datetime(2025, 7, 4, 8, 30, 15)),
        (date(2025, 7, 14), datetime(2025, 7, 14)),
        ("0000-00-00 00:00:00", None),
        ("", None),
    ],
)
def test_dates(raw, expected):
    d = to_dossier(row(ngay_tiep_nhan=raw), "s")
    assert d.received_at == expected and d.raw_issues == {}


@pytest.mark.parametrize("raw", ["14/13/2025", "2025/07/14", "hôm nay", 20250714, "31/02/2025"])
def test_bad_dates_are_issues(raw):
    d = to_dossier(row(ngay_tiep_nhan=raw), "s")
    assert d.received_at is None and d.raw_issues == {"received_at": str(raw)}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (date(1985, 3, 4), "1985-03-04"),
        ("1985-03-04", "1985-03-04"),
        ("04/03/1985", "1985-03-04"),
        ("1960", "1960"),
        ("1960-00-00", "1960"),
        ("00/00/1960", "1960"),
        (1960, "1960"),
        (datetime(1985, 3, 4), "1985-03-04"),
    ],
)
def test_birth_dates(raw, expected):
    d = to_dossier(row(ngay_sinh=raw), "s")
    assert d.applicant_birth_date == expected and d.raw_issues == {}


@pytest.mark.parametrize(
    ("column", "raw", "field", "expected"),
    [
        ("kenh_nop", "Trực tuyến", "channel", 2),
        ("kenh_nop", "trực tiếp", "channel", 1),
        ("kenh_nop", "Bưu chính công ích", "channel", 3),
        ("kenh_nop", "3", "channel", 3),
        ("kenh_nop", None, "channel", None),
        ("gioi_tinh", "Nam", "applicant_sex", 1),
        ("gioi_tinh", unicodedata.normalize("NFD", "Nữ"), "applicant_sex", 2),
        ("gioi_tinh", "2", "applicant_sex", 2),
        ("trang_thai", "10", "status", 10),
        ("trang_thai", "Đã trả kết quả", "status", 10),
        ("trang_thai", "Đang xử lý", "status", 4),
        ("thanh_toan_truc_tuyen", None, "paid_online", 0),
        ("thanh_toan_truc_tuyen", "2", "paid_online", 2),
        ("le_phi", "50.000", "fee", 50000),
        ("le_phi", "1,500,000", "fee", 1500000),
        ("le_phi", 50000.0, "fee", 50000),
        ("le_phi", "0", "fee", 0),
        ("le_phi", None, "fee", None),
    ],
)
def test_codes_and_words(column, raw, field, expected):
    d = to_dossier(row(**{column: raw}), "s")
    assert getattr(d, field) == expected and d.raw_issues == {}


def test_unknown_status_keeps_the_raw_value():
    d = to_dossier(row(trang_thai="cho_duyet"), "s")
    assert (d.status, d.status_raw) == (None, "cho_duyet")
    d = to_dossier(row(trang_thai=12), "s")
    assert (d.status, d.status_raw) == (None, "12")


@pytest.mark.parametrize(
    ("column", "raw", "issue"),
    [
        ("kenh_nop", 5, "channel"),
        ("gioi_tinh", "Khác", "applicant_sex"),
        ("thanh_toan_truc_tuyen", 3, "paid_online"),
        ("le_phi", "miễn phí", "fee"),
        ("le_phi", -5, "fee"),
        ("co_so_hoa", "một phần", "attachments[0].digitized"),
        ("co_kq_dien_tu", 7, "result_file"),
        ("ngay_cap_nhat", "???", "updated_at"),
        ("ngay_sinh", "32/01/1985", "applicant_birth_date"),
        ("ma_ho_so", ["a"], "dossier_code"),
    ],
)
def test_bad_values_are_issues(column, raw, issue):
    d = to_dossier(row(**{column: raw}), "s")
    assert issue in d.raw_issues


def test_id_numbers():
    assert to_dossier(row(so_cccd=36185000123), "s").applicant_id_number == "036185000123"  # int lost its 0
    assert to_dossier(row(so_cccd="36185000123"), "s").applicant_id_number == "36185000123"  # text: as sent
    d = to_dossier(row(so_cccd=" 012345678 "), "s")
    assert (d.applicant_id_number, d.applicant_id_type) == ("012345678", 2)


def test_names_repaired_or_kept():
    broken = "Nguyá»…n Thá»‹ Thuá»·"
    assert to_dossier(row(ho_ten_chu_ho_so=broken), "s").applicant_name == "Nguyễn Thị Thuỷ"
    nfd = unicodedata.normalize("NFD", "Nguyễn Thị Thuý")
    assert to_dossier(row(ho_ten_chu_ho_so=nfd), "s").applicant_name == nfd  # the source's spelling
    spaced = "Nguyễn  Thị Thuý\u00a0"
    assert to_dossier(row(ho_ten_chu_ho_so=spaced), "s").applicant_name == spaced  # matcher's job


def test_repair_text_never_raises_and_ignores_ascii():
    assert repair_text("") == "" and repair_text("ABC") == "ABC"
    assert repair_text("TrÆ°á»\x9dng") == "Trường"


def test_missing_update_time_uses_the_default_only_when_absent():
    from connectors.sqldb import map_row

    default = datetime(2026, 1, 1)
    assert map_row(row(ngay_cap_nhat=None), "s", updated_default=default).updated_at == default
    bad = map_row(row(ngay_cap_nhat="??"), "s", updated_default=default)
    assert bad.updated_at is None and "updated_at" in bad.raw_issues


def test_not_a_mapping_never_raises():
    d = to_dossier("x", "s")  # type: ignore[arg-type]
    assert d.raw_issues == {"record": "str"}
