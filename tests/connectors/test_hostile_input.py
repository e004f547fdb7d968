"""Unit checks of the fixes the bad-input corpus (tests/e2e/test_bad_input_corpus.py) led to."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import pytest

from connectors import filedrop, igate, onegate, sqldb
from connectors.mapping import MAX_CODE_LENGTH, storable, storable_code
from tthc.codes import vendor_status
from tthc.model import Dossier


def _dossier(**kw) -> Dossier:
    base = {
        "source_id": "src",
        "dossier_code": "000.00.12.H40-261022-0001",
        "agency_code": "000.00.12.H40",
        "procedure_code": "1.001234",
        "received_at": datetime(2026, 10, 22, 8, 30),
        "updated_at": datetime(2026, 10, 23),
        "status": 4,
    }
    return Dossier(**{**base, **kw})


def test_storable_replaces_nul_and_refuses_codes_longer_than_a_code_column():
    d = storable(
        _dossier(applicant_name="A\x00B", status_raw="x\x00", dossier_code="9" * (MAX_CODE_LENGTH + 1))
    )
    assert d.applicant_name == "A\ufffdB" and d.status_raw == "x\ufffd"
    assert d.dossier_code is None and d.raw_issues["dossier_code"] == "9" * (MAX_CODE_LENGTH + 1)
    ok = storable(_dossier())
    assert ok.dossier_code == "000.00.12.H40-261022-0001" and ok.raw_issues == {}
    assert storable_code("A\x00") == "A\ufffd"
    assert storable_code("9" * (MAX_CODE_LENGTH + 1)) is None and storable_code("") is None


@pytest.mark.parametrize(
    ("module", "record"),
    [
        (igate, {"code": "X\x00", "applicant": {"fullname": "A\x00"}}),
        (onegate, {"MaHoSo": "X\x00", "ChuHoSo": "A\x00"}),
        (sqldb, {"ma_ho_so": "X\x00", "ho_ten_chu_ho_so": "A\x00"}),
    ],
)
def test_every_mapper_returns_storable_dossiers(module, record):
    d = module.to_dossier(record, "src")
    assert d.dossier_code == "X\ufffd" and d.applicant_name == "A\ufffd"
    assert module.code_of(record) == "X\ufffd"


def test_a_boolean_is_not_a_status():
    assert vendor_status(True) is None and vendor_status(1) == 1
    d = igate.to_dossier({"code": "X", "status": True}, "src")
    assert d.status is None and d.status_raw == "True"


def test_igate_items_that_are_not_objects_do_not_break_the_read():
    assert igate._record_key(42) == "raw:42" and igate._parse_updated(None) is None
    d = igate.to_dossier(42, "src")  # type: ignore[arg-type]
    assert d.dossier_code is None and "record" in d.raw_issues


def test_igate_empty_first_page_with_records_counted_is_an_error():
    from connectors.http import ProtocolError

    client = igate.IgateClient("http://127.0.0.1:9", client_id="a", client_secret="b")
    client._get_page = lambda params: {"content": [], "totalElements": 3, "size": 500}  # type: ignore[method-assign]
    with pytest.raises(ProtocolError, match="empty first page"):
        client.fetch(datetime(2026, 10, 1), datetime(2026, 11, 1))
    client._get_page = lambda params: {"content": [], "totalElements": 0, "size": 500}  # type: ignore[method-assign]
    assert client.fetch(datetime(2026, 10, 1), datetime(2026, 11, 1)) == []


def test_file_drop_keeps_two_contents_of_one_dossier_in_one_file():
    row = {
        "ma_ho_so": "C-1",
        "ngay_tiep_nhan": "22/10/2026 08:30",
        "so_cccd": "1",
        "ma_tthc": "P",
        "ma_don_vi": "A",
    }
    a = {**row, "ho_ten_chu_ho_so": "X", "_file": "f.csv", "_row": 2, "_exported_at": "2026-10-31T18:00:00"}
    b = {**a, "ho_ten_chu_ho_so": "Y", "_row": 3}
    same = {**a, "_row": 4}
    later = {**a, "ho_ten_chu_ho_so": "Z", "_file": "g.csv", "_exported_at": "2026-11-01T18:00:00"}
    assert filedrop._newest_per_dossier([a, b]) == [a, b]  # a conflict: validation sees both
    assert filedrop._newest_per_dossier([a, same]) == [same]  # an exact copy is one row
    assert filedrop._newest_per_dossier([a, b, later]) == [later]  # a newer export settles it


def test_file_drop_names_an_oversized_cell():
    header = ",".join(filedrop.HEADER.values())
    data = (header + "\r\n" + "x" * 200_000 + "," * (len(filedrop.HEADER) - 1) + "\r\n").encode("utf-8")
    with pytest.raises(filedrop.FileRejected, match="dài hơn"):
        filedrop.read_csv(data)


def test_birth_date_in_future_compares_iso_texts_as_dates():
    from tthc.quality.validate import birth_date_in_future

    frame = pd.DataFrame(
        {
            "applicant_birth_date": [
                "2090",
                "2026",
                "2026-10-23",
                "1985-03-04",
                None,
                "04/03/2090",
                "2090-01-01",
            ],
            "received_at": pd.to_datetime(["2026-10-22"] * 6 + [None]),
        }
    )
    judged, failed = birth_date_in_future(frame)
    assert failed.tolist() == [True, False, True, False, False, False, False]
    assert judged.tolist() == [True, True, True, True, False, False, False]
