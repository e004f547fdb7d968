"""Fixtures shared by the connector tests: a sleep that records instead of sleeping, a fake
monotonic clock, and a complete igate record."""

from __future__ import annotations

import copy
from typing import Any

import pytest


class Sleeps(list):
    """Injectable ``sleep``: records the waits, returns at once."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


IGATE_RECORD: dict[str, Any] = {
    "id": "0b7c2a52-4c1e-4f0e-9d7a-1f2e3d4c5b6a",
    "code": "000.00.12.H40-250714-0001",
    "procedure": {
        "code": "1.001234",
        "name": "Đăng ký khai sinh",
        "sector": {"code": "G12-LV05", "name": "Hộ tịch"},
        "fee": 50000,
        "resultType": "paper",
    },
    "agency": {"code": "000.00.12.H40", "name": "UBND xã Hưng Lộc"},
    "applicant": {
        "fullname": "Nguyễn Thị Thuý",
        "identityNumber": "036185000123",
        "birthDate": "1985-03-04",
        "gender": 2,
        "phone": "0912345678",
        "email": None,
        "type": 1,
    },
    "applyMethod": {"id": 1},
    "acceptedDate": "2025-07-14T08:30:00+07:00",
    "appointmentDate": "2025-07-21T17:00:00+07:00",
    "completedDate": "2025-07-18T10:00:00+07:00",
    "returnedDate": None,
    "status": "releasing",
    "paidOnline": True,
    "supplements": [
        {"requestedDate": "2025-07-15T09:00:00+07:00", "completedDate": "2025-07-16T14:00:00+07:00"}
    ],
    "attachments": [
        {"name": "Tờ khai.pdf", "digitized": True, "reused": False},
        {"name": "CCCD.jpg", "digitized": False, "reused": True},
    ],
    "resultFile": None,
    "vneidVerified": True,
    "updatedDate": "2025-07-18T10:00:05+07:00",
}


@pytest.fixture
def igate_record() -> dict[str, Any]:
    return copy.deepcopy(IGATE_RECORD)
