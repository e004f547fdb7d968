"""Shared helpers of the warehouse tests (plain module: conftest fixtures live next door)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from tthc.model import Attachment, Dossier, Supplement

BASE = datetime(2026, 10, 1, 8, 0, 0)

#: Parametrisation of every backend test; PostgreSQL ones carry the ``postgres`` marker.
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def make_dossier(code: str = "H12.0001", source_id: str = "SRC1", **kw) -> Dossier:
    """A plausible dossier; keyword arguments override fields."""
    base = {
        "source_id": source_id,
        "dossier_code": code,
        "agency_code": "000.00.12.H12",
        "procedure_code": "1.001234",
        "received_at": BASE,
        "updated_at": BASE + timedelta(hours=1),
        "status": 4,
        "status_raw": "processing",
        "agency_name": "UBND xã Tân Hòa",
        "procedure_name": "Đăng ký khai sinh",
        "applicant_name": "Nguyễn Thị Thuý",
        "applicant_id_number": "036185000123",
        "applicant_id_type": 1,
        "applicant_birth_date": "1985-03-02",
        "applicant_sex": 2,
        "due_at": BASE + timedelta(days=3),
        "fee": 50_000,
        "supplements": [Supplement(BASE + timedelta(days=1), BASE + timedelta(days=2))],
        "attachments": [Attachment("Tờ khai", digitized=True), Attachment("CCCD", reused=True)],
    }
    base.update(kw)
    return Dossier(**base)
