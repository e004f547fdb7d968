"""connectors.igate.to_dossier: every field, unknown values, bad values into raw_issues, never raises."""

from __future__ import annotations

import copy
import random
from datetime import datetime
from typing import Any

import pytest

from connectors.igate import to_dossier
from tthc.model import Attachment, Dossier, Supplement


def test_every_field(igate_record):
    d = to_dossier(igate_record, "src-a")
    assert d == Dossier(
        source_id="src-a",
        dossier_code="000.00.12.H40-250714-0001",
        agency_code="000.00.12.H40",
        procedure_code="1.001234",
        received_at=datetime(2025, 7, 14, 8, 30),
        updated_at=datetime(2025, 7, 18, 10, 0, 5),
        status=9,
        status_raw=None,
        source_record_id="0b7c2a52-4c1e-4f0e-9d7a-1f2e3d4c5b6a",
        agency_name="UBND xã Hưng Lộc",
        procedure_name="Đăng ký khai sinh",
        sector_code="G12-LV05",
        sector_name="Hộ tịch",
        channel=2,
        applicant_name="Nguyễn Thị Thuý",
        applicant_id_number="036185000123",
        applicant_id_type=1,
        applicant_birth_date="1985-03-04",
        applicant_sex=2,
        applicant_type=1,
        applicant_phone="0912345678",
        due_at=datetime(2025, 7, 21, 17, 0),
        finished_at=datetime(2025, 7, 18, 10, 0),
        returned_at=None,
        paid_online=1,
        fee=50000,
        result_type="paper",
        result_file=None,
        vneid_verified=True,
        supplements=[Supplement(datetime(2025, 7, 15, 9, 0), datetime(2025, 7, 16, 14, 0))],
        attachments=[Attachment("Tờ khai.pdf", True, False), Attachment("CCCD.jpg", False, True)],
        raw_issues={},
    )


@pytest.mark.parametrize(
    ("vendor", "code"),
    [
        ("receiving", 1),
        ("new", 2),
        ("denied", 3),
        ("processing", 4),
        ("waiting", 5),
        ("paying", 6),
        ("cancelled", 7),
        ("unresolved", 8),
        ("releasing", 9),
        ("done", 10),
        ("Processing", 4),
    ],
)
def test_status_vocabulary(igate_record, vendor, code):
    igate_record["status"] = vendor
    assert to_dossier(igate_record, "s").status == code


def test_unknown_status_keeps_raw(igate_record):
    igate_record["status"] = "archived"
    d = to_dossier(igate_record, "s")
    assert d.status is None and d.status_raw == "archived"
    assert "status" not in d.raw_issues  # status_raw is where it lives


@pytest.mark.parametrize(("apply_id", "channel"), [(0, 1), (1, 2), (2, 3), ("1", 2)])
def test_apply_method(igate_record, apply_id, channel):
    igate_record["applyMethod"] = {"id": apply_id}
    assert to_dossier(igate_record, "s").channel == channel


def test_apply_method_unknown_and_null(igate_record):
    igate_record["applyMethod"] = {"id": 7}
    d = to_dossier(igate_record, "s")
    assert d.channel is None and d.raw_issues["channel"] == "7"
    igate_record["applyMethod"] = None
    d = to_dossier(igate_record, "s")
    assert d.channel is None and "channel" not in d.raw_issues


@pytest.mark.parametrize(("paid", "code"), [(True, 1), (False, 0), (None, 0), ("true", 1), (2, 2)])
def test_paid_online(igate_record, paid, code):
    igate_record["paidOnline"] = paid
    assert to_dossier(igate_record, "s").paid_online == code


def test_dates_with_other_offsets_become_vietnam_time(igate_record):
    igate_record["acceptedDate"] = "2025-07-14T01:30:00Z"
    igate_record["appointmentDate"] = "2025-07-21T17:00:00"  # no offset: already Vietnam time
    d = to_dossier(igate_record, "s")
    assert d.received_at == datetime(2025, 7, 14, 8, 30)
    assert d.due_at == datetime(2025, 7, 21, 17, 0)
    assert d.received_at.tzinfo is None


def test_bad_values_go_to_raw_issues(igate_record):
    igate_record["acceptedDate"] = "14/07/2025 08:30"
    igate_record["appointmentDate"] = 20250721
    igate_record["applicant"]["birthDate"] = "04/03/1985"
    igate_record["applicant"]["gender"] = "F"
    igate_record["procedure"]["fee"] = "năm mươi nghìn"
    igate_record["paidOnline"] = "maybe"
    igate_record["supplements"][0]["completedDate"] = "soon"
    igate_record["attachments"].append("not an object")
    d = to_dossier(igate_record, "s")
    assert d.received_at is None and d.due_at is None
    assert d.applicant_birth_date is None and d.applicant_sex is None
    assert d.fee is None and d.paid_online is None
    assert d.supplements[0].requested_at == datetime(2025, 7, 15, 9, 0)
    assert d.supplements[0].completed_at is None
    assert len(d.attachments) == 2
    assert d.raw_issues == {
        "received_at": "14/07/2025 08:30",
        "due_at": "20250721",
        "applicant_birth_date": "04/03/1985",
        "applicant_sex": "F",
        "fee": "năm mươi nghìn",
        "paid_online": "maybe",
        "supplements[0].completed_at": "soon",
        "attachments[2]": "not an object",
    }


def test_birth_date_forms(igate_record):
    for raw, expected in [
        ("1985", "1985"),
        ("1985-03-04", "1985-03-04"),
        (1985, "1985"),
        ("1985-03-03T17:00:00Z", "1985-03-04"),
        (None, None),
        ("", None),
    ]:
        igate_record["applicant"]["birthDate"] = raw
        assert to_dossier(igate_record, "s").applicant_birth_date == expected


def test_id_types(igate_record):
    for number, kind in [("036185000123", 1), ("012345678", 2), ("03618500012", 3), (None, None)]:
        igate_record["applicant"]["identityNumber"] = number
        d = to_dossier(igate_record, "s")
        assert d.applicant_id_number == number and d.applicant_id_type == kind


def test_missing_fields_are_none_not_errors():
    d = to_dossier({"id": "x", "code": "C-250101-0001"}, "s")
    assert d.dossier_code == "C-250101-0001"
    assert d.agency_code is None and d.procedure_code is None and d.received_at is None
    assert d.status is None and d.status_raw is None
    assert d.paid_online == 0 and d.supplements == [] and d.attachments == []
    assert d.raw_issues == {}


def test_wrong_shapes_never_raise(igate_record):
    igate_record["procedure"] = "1.001234"
    igate_record["applicant"] = ["Nguyễn"]
    igate_record["supplements"] = "none"
    igate_record["status"] = ["done"]
    d = to_dossier(igate_record, "s")
    assert d.procedure_code is None and d.applicant_name is None
    assert d.raw_issues["supplements"] == "none"
    assert d.status is None
    assert to_dossier("not a record", "s").raw_issues == {"record": "str"}  # type: ignore[arg-type]


def _mutate(value: Any, rng: random.Random) -> Any:
    choices = [None, "", "???", 12, -1, 3.5, True, [], {}, ["x"], {"id": "x"}, "2025-13-45T99:00:00+07:00"]
    if isinstance(value, dict):
        return {k: _mutate(v, rng) if rng.random() < 0.5 else v for k, v in value.items()}
    if isinstance(value, list):
        return [_mutate(v, rng) for v in value]
    return rng.choice(choices) if rng.random() < 0.5 else value


def test_fuzzed_records_never_raise_and_never_leak(igate_record):
    rng = random.Random(7)
    for _ in range(500):
        rec = _mutate(copy.deepcopy(igate_record), rng)
        d = to_dossier(rec, "s")
        assert isinstance(d, Dossier)
        assert all(isinstance(v, str) for v in d.raw_issues.values())
