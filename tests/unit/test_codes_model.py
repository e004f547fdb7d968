from datetime import datetime

import pytest

from tthc import codes
from tthc.connections import get_connection
from tthc.model import Attachment, Dossier, Supplement
from tthc.privacy import key_hash, mask_id, scrub_digits


@pytest.mark.parametrize(
    ("number", "birth", "sex", "problems"),
    [
        ("036185000123", "1985-03-04", 2, []),
        ("036185000123", "1986-03-04", 2, ["cccd_birth_year"]),
        ("036185000123", "1985", 1, ["cccd_sex"]),
        ("001203001234", "2003-01-01", 1, []),  # 2000s male: digit 2
        ("003185000123", "1985-01-01", 2, ["cccd_prefix"]),  # 003 is not a province code
        ("03618500012", None, None, ["cccd_format"]),
        ("03618500012X", None, None, ["cccd_format"]),
        ("123456789", "1970", 1, []),  # old CMND: its own identifier type
    ],
)
def test_cccd_rules(number, birth, sex, problems):
    assert codes.cccd_problems(number, birth, sex) == problems


def test_id_type():
    assert codes.id_type("036185000123") == 1
    assert codes.id_type("123456789") == 2
    assert codes.id_type("AB123") == 3
    assert codes.id_type(None) is None


@pytest.mark.parametrize(
    ("code", "date"),
    [
        ("000.00.12.H40-250714-0001", "2025-07-14"),
        ("G09.20-20260609-0092637", "2026-06-09"),
        ("H15.50.05.13-261008-0975", "2026-10-08"),
        ("bad-code", None),
        ("000.00.12.H40-2507-0001", None),
    ],
)
def test_dossier_code_date(code, date):
    assert codes.dossier_code_date(code) == date


def test_vendor_status():
    assert codes.vendor_status("done") == 10
    assert codes.vendor_status("Processing") == 4
    assert codes.vendor_status("7") == 7
    assert codes.vendor_status("cho_duyet") is None
    assert codes.vendor_status(11) is None


def _dossier(**kw):
    base = dict(
        source_id="s",
        dossier_code="000.00.12.H40-250714-0001",
        agency_code="000.00.12.H40",
        procedure_code="1.001234",
        received_at=datetime(2025, 7, 14, 8, 30),
        updated_at=datetime(2025, 7, 14, 8, 31),
        status=4,
        supplements=[Supplement(datetime(2025, 7, 15, 9), None)],
        attachments=[Attachment("Tờ khai", digitized=True)],
    )
    base.update(kw)
    return Dossier(**base)


def test_dossier_roundtrip_and_hash():
    d = _dossier()
    again = Dossier.from_dict(d.to_dict())
    assert again == d
    # updated_at does not change the business content
    assert _dossier(updated_at=datetime(2026, 1, 1)).content_hash() == d.content_hash()
    assert _dossier(status=9).content_hash() != d.content_hash()
    row = d.to_row()
    assert row["supplement_pending"] is True and row["digitized_count"] == 1
    assert row["dossier_key"] == "s:000.00.12.H40-250714-0001"


def test_privacy_helpers(monkeypatch):
    assert mask_id("036185000123") == "036*******23"
    assert "036185000123" not in scrub_digits("bad id 036185000123 here")
    monkeypatch.setenv("TTHC_PII_HASH_KEY", "k1")
    h1 = key_hash("036185000123")
    monkeypatch.setenv("TTHC_PII_HASH_KEY", "k2")
    assert key_hash("036185000123") != h1 and len(h1) == 16


def test_connection_from_env_json_and_uri(monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_X_JSON",
        '{"conn_type": "http", "host": "127.0.0.1", "port": 8701, "login": "id", "password": "s3"}',
    )
    c = get_connection("x_json")
    assert c.base_url == "http://127.0.0.1:8701" and c.login == "id" and c.password == "s3"
    assert "s3" not in repr(c)
    monkeypatch.setenv("AIRFLOW_CONN_X_URI", "http://user:p%40ss@127.0.0.1:8702/api?timeout=5")
    c = get_connection("x_uri")
    assert c.password == "p@ss" and c.base_url == "http://127.0.0.1:8702/api" and c.extra == {"timeout": "5"}


def test_to_dict_equals_the_dataclass_view():
    """``to_dict`` is written out for speed; it must stay what ``dataclasses.asdict`` gives (with
    datetimes as ISO text), field for field, so hashes and stored payloads never drift."""
    from dataclasses import asdict

    d = _dossier()
    ref = asdict(d)
    for k, v in list(ref.items()):
        if isinstance(v, datetime):
            ref[k] = v.isoformat(timespec="seconds")
    ref["supplements"] = [
        {k: (v.isoformat(timespec="seconds") if v else None) for k, v in s.items()}
        for s in ref["supplements"]
    ]
    assert d.to_dict() == ref
    assert list(d.to_dict()) == list(ref)  # same key order: stored JSON is sorted anyway, dicts are not
    assert d.to_dict()["attachments"] is not d.attachments
