"""Processing-progress entries for the national portal (``CapNhatTienDoHoSoMC``, world.md §6), derived
from the status changes the warehouse has seen. Pure: no I/O, no clock.

Input: the stored versions of one dossier (``dossier_history``, oldest first). Every version whose
status differs from the last *known* status before it is one entry; the first version with a known
status is one entry too (the portal otherwise shows no step for a dossier first seen, e.g.,
"Tiếp nhận hồ sơ"). Versions without a usable status (``unknown_status``: ``status`` None) are
skipped, and a version that changed something other than the status yields nothing.

Content is deterministic: the same history gives the same entries, byte for byte, on every run, so
an entry's identity (canonical JSON, :func:`identity`) is stable and the portal, which appends
whatever it receives, can be given each entry exactly once. Who handled a step is a *role* (desk,
specialist, leader), never a person's name: the source systems do not send officers' names.

Fields (world.md §6):

============================ ==========================================================================
``MaHoSo``                   dossier code
``NguoiXuLy``                the handler's role, e.g. "Công chức Bộ phận một cửa"
``ChucDanh``                 the handler's title (a role as well)
``ThoiDiemXuLy``             when the step happened: the version's ``updated_at`` (the source's event
                             time); without one, the matching date of the dossier (receipt, end,
                             return) or, last, when the warehouse loaded the version
``PhongBanXuLy``             the unit: "Bộ phận một cửa", "Phòng chuyên môn", "Lãnh đạo cơ quan" …
``NoiDungXuLy``              what was done, in Vietnamese: "Tiếp nhận hồ sơ", "Chuyển xử lý", …
``TrangThai``                the dossier's status code after the step (1-10)
``NgayBatDau``               when the step started: the previous entry's ``ThoiDiemXuLy`` (for the
                             first entry the receipt time, else the step's own time)
``NgayKetThucTheoQuyDinh``   the due date (ngày hẹn trả) of that version
============================ ==========================================================================

Dates are ``yyyyMMddHHmmss`` (Vietnam time, as everywhere in the project).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

__all__ = [
    "PROGRESS_FIELDS",
    "ProgressEntry",
    "Step",
    "StatusVersion",
    "entry_hash",
    "identity",
    "progress_entries",
    "step_for",
]

PROGRESS_FIELDS = (
    "MaHoSo",
    "NguoiXuLy",
    "ChucDanh",
    "ThoiDiemXuLy",
    "PhongBanXuLy",
    "NoiDungXuLy",
    "TrangThai",
    "NgayBatDau",
    "NgayKetThucTheoQuyDinh",
)


@dataclass(frozen=True, slots=True)
class Step:
    """What one status change means to the citizen: what was done and by which role."""

    content: str  # NoiDungXuLy
    handler: str  # NguoiXuLy (a role)
    title: str  # ChucDanh
    department: str  # PhongBanXuLy


_DESK = ("Công chức Bộ phận một cửa", "Công chức tiếp nhận và trả kết quả", "Bộ phận một cửa")
_SPECIALIST = ("Chuyên viên xử lý hồ sơ", "Chuyên viên", "Phòng chuyên môn")
_LEADER = ("Lãnh đạo phê duyệt", "Lãnh đạo cơ quan", "Lãnh đạo cơ quan")
_SYSTEM = ("Hệ thống dịch vụ công trực tuyến", "Hệ thống", "Cổng Dịch vụ công")

#: Status code → the step that leads to it (domain.md §5).
STEPS: dict[int, Step] = {
    1: Step("Nộp hồ sơ trực tuyến", *_SYSTEM),
    2: Step("Tiếp nhận hồ sơ", *_DESK),
    3: Step("Từ chối tiếp nhận hồ sơ", *_DESK),
    4: Step("Chuyển xử lý", *_SPECIALIST),
    5: Step("Yêu cầu bổ sung hồ sơ", *_SPECIALIST),
    6: Step("Yêu cầu thực hiện nghĩa vụ tài chính", *_SPECIALIST),
    7: Step("Công dân rút hồ sơ", *_DESK),
    8: Step("Dừng xử lý hồ sơ", *_LEADER),
    9: Step("Phê duyệt kết quả giải quyết, chuyển trả kết quả", *_LEADER),
    10: Step("Trả kết quả", *_DESK),
}

#: Back to processing (4) after a pause: the content says what ended the pause.
RESUMED: dict[int, Step] = {
    5: Step("Tiếp tục xử lý sau khi bổ sung hồ sơ", *_SPECIALIST),
    6: Step("Tiếp tục xử lý sau khi hoàn thành nghĩa vụ tài chính", *_SPECIALIST),
    8: Step("Tiếp tục xử lý hồ sơ", *_SPECIALIST),
}

_UNKNOWN = Step("Cập nhật trạng thái hồ sơ", *_DESK)


def step_for(previous: int | None, status: int) -> Step:
    """The step that moved a dossier from ``previous`` (None: first seen) to ``status``."""
    if status == 4 and previous in RESUMED:
        return RESUMED[previous]  # type: ignore[index]
    return STEPS.get(status, _UNKNOWN)


@dataclass(frozen=True, slots=True)
class StatusVersion:
    """What the derivation needs of one stored version of a dossier."""

    version: int
    status: int | None
    updated_at: datetime | None = None
    loaded_at: datetime | None = None
    received_at: datetime | None = None
    due_at: datetime | None = None
    finished_at: datetime | None = None
    returned_at: datetime | None = None

    @classmethod
    def from_history(cls, row: Mapping[str, Any]) -> StatusVersion:
        """From a row of ``repo.load_history`` / ``repo.load_histories`` (``dossier`` = the version)."""
        d = row["dossier"]
        return cls(
            version=int(row["version"]),
            status=d.status,
            updated_at=row.get("updated_at", d.updated_at),
            loaded_at=row.get("loaded_at"),
            received_at=d.received_at,
            due_at=d.due_at,
            finished_at=d.finished_at,
            returned_at=d.returned_at,
        )


def identity(entry: Mapping[str, Any]) -> str:
    """Canonical JSON of an entry (equal to ``connectors.portal.progress_identity``)."""
    return json.dumps(entry, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def entry_hash(entry: Mapping[str, Any]) -> str:
    return hashlib.sha256(identity(entry).encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class ProgressEntry:
    dossier_code: str
    version: int  # the dossier version whose status change this entry reports
    status: int
    entry: dict[str, Any]  # exactly what is sent to the portal

    @property
    def content_hash(self) -> str:
        return entry_hash(self.entry)

    @property
    def event(self) -> str:
        """The status change this entry reports: dossier, version, status (stable across runs)."""
        return f"{self.dossier_code}|v{self.version}|s{self.status}"


def _fmt(v: datetime | None) -> str | None:
    return v.strftime("%Y%m%d%H%M%S") if v is not None else None


_DATE_OF_STATUS = {1: "received_at", 2: "received_at", 3: "finished_at", 7: "finished_at"}
_DATE_OF_STATUS.update({8: "finished_at", 9: "finished_at", 10: "returned_at"})


def _when(v: StatusVersion) -> datetime | None:
    if v.updated_at is not None:
        return v.updated_at
    field = _DATE_OF_STATUS.get(v.status or 0)
    fallback = getattr(v, field) if field else None
    return fallback if fallback is not None else v.loaded_at


def progress_entries(
    dossier_code: str, versions: Iterable[StatusVersion | Mapping[str, Any]]
) -> list[ProgressEntry]:
    """The progress entries of one dossier, in version order (see the module docstring)."""
    rows = [v if isinstance(v, StatusVersion) else StatusVersion.from_history(v) for v in versions]
    rows.sort(key=lambda v: v.version)
    out: list[ProgressEntry] = []
    previous: int | None = None
    previous_at: datetime | None = None
    for v in rows:
        if v.status is None or v.status == previous:
            continue
        at = _when(v)
        started = previous_at if out else (v.received_at or at)
        step = step_for(previous, v.status)
        entry = {
            "MaHoSo": dossier_code,
            "NguoiXuLy": step.handler,
            "ChucDanh": step.title,
            "ThoiDiemXuLy": _fmt(at),
            "PhongBanXuLy": step.department,
            "NoiDungXuLy": step.content,
            "TrangThai": v.status,
            "NgayBatDau": _fmt(started),
            "NgayKetThucTheoQuyDinh": _fmt(v.due_at),
        }
        out.append(ProgressEntry(dossier_code, v.version, v.status, entry))
        previous, previous_at = v.status, at
    return out
