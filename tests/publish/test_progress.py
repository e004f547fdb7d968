"""tthc.progress: progress entries from the status changes of a dossier's stored versions (pure)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from connectors.portal import progress_identity
from tthc.progress import (
    PROGRESS_FIELDS,
    StatusVersion,
    entry_hash,
    identity,
    progress_entries,
    step_for,
)

T0 = datetime(2026, 10, 5, 8, 30)
DUE = datetime(2026, 10, 20, 17, 0)
CODE = "000.00.12.H40-261005-0001"


def v(version: int, status: int | None, hours: float | None, **kw) -> StatusVersion:
    at = None if hours is None else T0 + timedelta(hours=hours)
    return StatusVersion(version, status, updated_at=at, received_at=T0, due_at=DUE, **kw)


def test_first_version_and_every_status_change_give_one_entry_each():
    hist = [v(1, 2, 0), v(2, 4, 2), v(3, 5, 26), v(4, 4, 50), v(5, 9, 80), v(6, 10, 81)]
    out = progress_entries(CODE, hist)
    assert [e.status for e in out] == [2, 4, 5, 4, 9, 10]
    assert [e.version for e in out] == [1, 2, 3, 4, 5, 6]
    assert [e.entry["NoiDungXuLy"] for e in out] == [
        "Tiếp nhận hồ sơ",
        "Chuyển xử lý",
        "Yêu cầu bổ sung hồ sơ",
        "Tiếp tục xử lý sau khi bổ sung hồ sơ",
        "Phê duyệt kết quả giải quyết, chuyển trả kết quả",
        "Trả kết quả",
    ]
    for e in out:
        assert tuple(e.entry) == PROGRESS_FIELDS
        assert e.entry["MaHoSo"] == CODE
        assert e.entry["TrangThai"] == e.status
        assert e.entry["NgayKetThucTheoQuyDinh"] == "20261020170000"


def test_times_are_the_versions_event_times_and_steps_chain():
    out = progress_entries(CODE, [v(1, 2, 0), v(2, 4, 2), v(3, 9, 30)])
    assert [e.entry["ThoiDiemXuLy"] for e in out] == ["20261005083000", "20261005103000", "20261006143000"]
    # a step starts when the previous one happened; the first one at receipt
    assert [e.entry["NgayBatDau"] for e in out] == ["20261005083000", "20261005083000", "20261005103000"]


def test_same_status_and_unknown_status_versions_give_nothing():
    hist = [v(1, 2, 0), v(2, 2, 1), v(3, None, 3), v(4, 4, 5), v(5, None, 6), v(6, 4, 7)]
    out = progress_entries(CODE, hist)
    assert [(e.version, e.status) for e in out] == [(1, 2), (4, 4)]
    # an unknown status in the middle does not hide the change around it: 4 after 2 is "Chuyển xử lý"
    assert out[1].entry["NoiDungXuLy"] == "Chuyển xử lý"
    assert progress_entries(CODE, [v(1, None, 0)]) == []
    assert progress_entries(CODE, []) == []


def test_deterministic_and_independent_of_input_order():
    hist = [v(1, 1, 0), v(2, 2, 3), v(3, 3, 4)]
    a = progress_entries(CODE, hist)
    b = progress_entries(CODE, list(reversed(hist)))
    assert a == b
    assert [identity(e.entry) for e in a] == [identity(e.entry) for e in b]
    assert len({e.content_hash for e in a}) == 3
    assert len({e.event for e in a}) == 3
    # adding a later version never changes the entries of earlier ones
    c = progress_entries(CODE, [*hist, v(4, 4, 9)])
    assert c[:3] == a


def test_identity_is_the_clients_and_hash_is_of_it():
    e = progress_entries(CODE, [v(1, 2, 0)])[0]
    assert identity(e.entry) == progress_identity(e.entry)
    assert e.content_hash == entry_hash(e.entry)


def test_roles_never_names_and_vietnamese_content():
    out = progress_entries(CODE, [v(k + 1, s, k) for k, s in enumerate([1, 2, 4, 6, 4, 8, 4, 7])])
    handlers = {e.entry["NguoiXuLy"] for e in out} | {e.entry["PhongBanXuLy"] for e in out}
    assert "Bộ phận một cửa" in handlers
    assert all(not any(ch.isdigit() for ch in h) for h in handlers)
    contents = [e.entry["NoiDungXuLy"] for e in out]
    assert contents[0] == "Nộp hồ sơ trực tuyến"
    assert "Tiếp tục xử lý sau khi hoàn thành nghĩa vụ tài chính" in contents
    assert contents[-1] == "Công dân rút hồ sơ"


@pytest.mark.parametrize(
    ("previous", "status", "content"),
    [
        (None, 2, "Tiếp nhận hồ sơ"),
        (1, 3, "Từ chối tiếp nhận hồ sơ"),
        (2, 4, "Chuyển xử lý"),
        (None, 4, "Chuyển xử lý"),
        (5, 4, "Tiếp tục xử lý sau khi bổ sung hồ sơ"),
        (4, 5, "Yêu cầu bổ sung hồ sơ"),
        (9, 10, "Trả kết quả"),
        (4, 8, "Dừng xử lý hồ sơ"),
        (4, 99, "Cập nhật trạng thái hồ sơ"),
    ],
)
def test_step_for(previous, status, content):
    assert step_for(previous, status).content == content


def test_missing_event_time_falls_back_to_the_dossiers_dates_then_load_time():
    loaded = datetime(2026, 10, 9, 1, 0)
    fin = datetime(2026, 10, 8, 16, 0)
    hist = [
        StatusVersion(1, 2, updated_at=None, loaded_at=loaded, received_at=T0, due_at=None),
        StatusVersion(2, 9, updated_at=None, loaded_at=loaded, received_at=T0, finished_at=fin),
        StatusVersion(3, 5, updated_at=None, loaded_at=loaded, received_at=T0),
    ]
    out = progress_entries(CODE, hist)
    assert [e.entry["ThoiDiemXuLy"] for e in out] == ["20261005083000", "20261008160000", "20261009010000"]
    assert out[0].entry["NgayKetThucTheoQuyDinh"] is None


def test_from_history_rows_of_the_warehouse():
    from tthc.model import Dossier

    def row(version, status, hours):
        at = T0 + timedelta(hours=hours)
        d = Dossier(
            source_id="S", dossier_code=CODE, agency_code="A", procedure_code="P",
            received_at=T0, updated_at=at, status=status, due_at=DUE,
        )  # fmt: skip
        return {"version": version, "updated_at": at, "loaded_at": at, "dossier": d}

    out = progress_entries(CODE, [row(2, 4, 3), row(1, 2, 0)])
    assert [(e.version, e.entry["TrangThai"]) for e in out] == [(1, 2), (2, 4)]
