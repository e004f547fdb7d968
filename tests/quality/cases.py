"""Crafted dossiers for the quality tests: one row per rule violation, and odd-but-valid rows."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from tthc.model import Attachment, Dossier

RECEIVED = datetime(2025, 7, 14, 8, 30)
GOOD_CCCD = "036185000123"  # Nam Định (036), female (d4=1), born 1985


def good_dossier(n: int, **overrides) -> Dossier:
    """A dossier that breaks no rule; ``n`` makes its code unique."""
    d = Dossier(
        source_id="src-a",
        dossier_code=f"000.00.12.H40-250714-{n:04d}",
        agency_code="000.00.12.H40",
        procedure_code="1.001234",
        received_at=RECEIVED,
        updated_at=RECEIVED + timedelta(minutes=5),
        status=4,
        status_raw="processing",
        channel=2,
        applicant_name="Nguyễn Thị Thuý",
        applicant_id_number=GOOD_CCCD,
        applicant_id_type=1,
        applicant_birth_date="1985-03-04",
        applicant_sex=2,
        applicant_type=1,
        due_at=RECEIVED + timedelta(days=7),
        paid_online=1,
        fee=50_000,
        result_type="paper",
    )
    return replace(d, **overrides)


# (case id, expected rule id, overrides): each crafted row breaks exactly one rule.
BAD_CASES: list[tuple[str, str, dict]] = [
    ("required_dossier_code", "required_dossier_code", {"dossier_code": None}),
    ("required_agency_code", "required_agency_code", {"agency_code": None}),
    ("required_procedure_code", "required_procedure_code", {"procedure_code": None}),
    ("required_received_at", "required_received_at", {"received_at": None}),
    ("required_applicant_name", "required_applicant_name", {"applicant_name": None}),
    ("required_status", "required_status", {"status": None, "status_raw": None}),
    ("dossier_code_format", "dossier_code_format", {"dossier_code": "HS-2025-0001"}),
    ("dossier_code_date", "dossier_code_date", {"dossier_code": "000.00.12.H40-250720-0042"}),
    ("dossier_code_date_8", "dossier_code_date", {"dossier_code": "G09.20-20250720-0092637"}),
    ("agency_code_format", "agency_code_format", {"agency_code": "UBND xa A"}),
    ("procedure_code_format", "procedure_code_format", {"procedure_code": "TTHC-01"}),
    ("unknown_status_code", "unknown_status", {"status": 11}),
    ("unknown_status_vocab", "unknown_status", {"status": None, "status_raw": "archived"}),
    (
        "unknown_status_raw",
        "unknown_status",
        {"status": None, "status_raw": "xyz", "raw_issues": {"status": "xyz"}},
    ),
    ("unknown_channel", "unknown_channel", {"channel": 7}),
    ("unknown_paid_online", "unknown_paid_online", {"paid_online": 5}),
    ("negative_fee", "negative_fee", {"fee": -1000}),
    ("due_before_receipt", "due_before_receipt", {"due_at": RECEIVED - timedelta(days=3)}),
    (
        "finished_before_receipt",
        "finished_before_receipt",
        {"status": 9, "finished_at": RECEIVED - timedelta(days=1)},
    ),
    (
        "returned_before_finished",
        "returned_before_finished",
        {
            "status": 10,
            "finished_at": RECEIVED + timedelta(days=2),
            "returned_at": RECEIVED + timedelta(days=1),
        },
    ),
    ("implausible_duration", "implausible_duration", {"due_at": RECEIVED + timedelta(days=400)}),
    (
        "implausible_processing_time",
        "implausible_processing_time",
        {"status": 9, "finished_at": RECEIVED + timedelta(days=800)},
    ),
    ("missing_finished_date", "missing_finished_date", {"status": 9, "finished_at": None}),
    ("cccd_format", "cccd_format", {"applicant_id_number": "12345", "applicant_id_type": 3}),
    ("cccd_format_letters", "cccd_format", {"applicant_id_number": "03618500012A", "applicant_id_type": 3}),
    ("cccd_prefix", "cccd_prefix", {"applicant_id_number": "999185000123"}),
    ("cccd_prefix_merged_province", "cccd_prefix", {"applicant_id_number": "003185000123"}),
    ("cccd_birth_year", "cccd_birth_year", {"applicant_birth_date": "1990-01-01"}),
    ("cccd_birth_year_only_year", "cccd_birth_year", {"applicant_birth_date": "1995"}),
    ("cccd_sex", "cccd_sex", {"applicant_sex": 1}),
    ("unknown_sex", "unknown_sex", {"applicant_sex": 3}),
    ("unknown_applicant_type", "unknown_applicant_type", {"applicant_type": 5}),
    ("birth_date_format", "birth_date_format", {"applicant_birth_date": "04/03/1985"}),
    ("unknown_result_type", "unknown_result_type", {"result_type": "scan"}),
    (
        "unparseable_received_at",
        "unparseable_received_at",
        {"received_at": None, "raw_issues": {"received_at": "32/13/2025"}},
    ),
    ("unparseable_due_at", "unparseable_due_at", {"due_at": None, "raw_issues": {"due_at": "tomorrow"}}),
    ("invalid_characters", "invalid_characters", {"applicant_name": "Nguyễn Thị\x1b Thuý"}),
    ("invalid_characters_bidi", "invalid_characters", {"procedure_name": "Cấp phép \u202exod.exe"}),
    ("text_too_long", "text_too_long", {"applicant_name": "Nguyễn " * 60}),
    (
        "implausible_applicant_name",
        "implausible_applicant_name",
        {"applicant_name": "Nguyễn Văn A'); DROP TABLE dossiers;--"},
    ),
    ("too_many_attachments", "too_many_attachments", {"attachments": [Attachment("Tờ khai")] * 1001}),
    ("received_in_future", "received_in_future", {"updated_at": RECEIVED - timedelta(days=2)}),
    (
        "birth_date_in_future",
        "birth_date_in_future",
        {"applicant_birth_date": "2030-01-01", "applicant_id_number": None, "applicant_id_type": None},
    ),
]

# Rows that look odd but break no rule.
CLEAN_CASES: list[tuple[str, dict]] = [
    ("good", {}),
    ("cmnd_legacy", {"applicant_id_number": "123456789", "applicant_id_type": 2}),
    (
        "organisation_tax_code",
        {"applicant_type": 2, "applicant_id_number": "0101234567", "applicant_id_type": 3},
    ),
    ("ministry_code", {"dossier_code": "G09.20-20250714-0092637"}),
    ("post_2025_code", {"dossier_code": "H15.50.05.13-250714-0975", "agency_code": "H15.50.05.13"}),
    (
        "born_2000s",
        {"applicant_id_number": "001301000001", "applicant_birth_date": "2001-05-06", "applicant_sex": 2},
    ),
    ("birth_year_only", {"applicant_birth_date": "1985"}),
    ("no_id_number", {"applicant_id_number": None, "applicant_id_type": None}),
    ("same_day_due", {"due_at": RECEIVED.replace(hour=0, minute=0)}),
    (
        "resolved",
        {
            "status": 10,
            "finished_at": RECEIVED + timedelta(days=3),
            "returned_at": RECEIVED + timedelta(days=3, hours=2),
        },
    ),
    ("channel_null", {"channel": None, "paid_online": None, "fee": None, "result_type": None}),
    ("status_without_raw", {"status": 2, "status_raw": None}),
    ("nfd_name", {"applicant_name": "Nguye\u0302\u0303n Va\u0306n A"}),
    ("foreign_name", {"applicant_name": "O'Brien-Smith Jr."}),
    ("organisation_name", {"applicant_type": 2, "applicant_name": "Công ty TNHH A & B (Việt Nam) số 1"}),
    ("birth_same_year_as_receipt", {"applicant_birth_date": "2025", "applicant_id_number": None}),
    ("received_same_day_as_update", {"updated_at": RECEIVED.replace(hour=7)}),
]

DUPLICATE_CODE = "000.00.12.H40-250714-0900"


def crafted_batch() -> tuple[list[Dossier], dict[str, int], dict[str, int]]:
    """(dossiers, bad case id → row, clean case id → row); the last two rows share one code."""
    rows: list[Dossier] = []
    bad_rows: dict[str, int] = {}
    clean_rows: dict[str, int] = {}
    for case, _rule, overrides in BAD_CASES:
        bad_rows[case] = len(rows)
        rows.append(good_dossier(len(rows) + 1, **overrides))
    for case, overrides in CLEAN_CASES:
        clean_rows[case] = len(rows)
        rows.append(good_dossier(len(rows) + 1, **overrides))
    clean_rows["other_source_same_code"] = len(rows)
    rows.append(good_dossier(len(rows) + 1, source_id="src-b", dossier_code=DUPLICATE_CODE))
    bad_rows["duplicate_code_1"] = len(rows)
    rows.append(good_dossier(len(rows) + 1, dossier_code=DUPLICATE_CODE))
    bad_rows["duplicate_code_2"] = len(rows)
    rows.append(good_dossier(len(rows) + 1, dossier_code=DUPLICATE_CODE, applicant_name="Trần Văn B"))
    return rows, bad_rows, clean_rows
