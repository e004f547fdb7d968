"""The canonical dossier: the one shape every source dialect maps into.

Conventions (they hold everywhere in the project):

* Datetimes are *naive Vietnam local time* (UTC+7, no daylight saving). Every source system
  and the national portal speak Vietnam time; keeping them naive avoids silent shifts when a
  value passes through SQLite. Use :func:`tthc.timeutil.to_vn_naive` to convert anything else.
* Codes follow the national portal: ``status`` 1-10 (domain.md §5), ``channel`` 1 direct /
  2 online / 3 postal, ``paid_online`` 0 / 1 / 2, ``applicant_sex`` 1 male / 2 female.
* A value a source sent that could not be understood is kept as ``None`` with the raw text in
  :attr:`Dossier.raw_issues` (``{"field": "raw value"}``), so validation can quarantine the record
  with a reason instead of the mapper throwing and losing the whole batch.
* Personal data (applicant name, ID number, birth date, phone) lives only in the dossier and the
  warehouse tables that need it for publishing; everything derived for logs, results or UI uses
  :func:`tthc.privacy.key_hash` or :func:`tthc.privacy.mask_id`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

#: Identifier types of the portal's ``DinhDanhCHS.LoaiDinhDanh``.
ID_TYPE_CCCD = 1  # 12-digit personal identification number
ID_TYPE_CMND = 2  # legacy 9-digit identity card
ID_TYPE_OTHER = 3  # anything else a source sent (kept, flagged by validation)


@dataclass(frozen=True, slots=True)
class Supplement:
    """One request for supplementary documents: the processing clock pauses in between."""

    requested_at: datetime | None
    completed_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Attachment:
    """One submitted document component."""

    name: str
    digitized: bool = False
    reused: bool = False


@dataclass(slots=True)
class Dossier:
    """One administrative-procedure dossier (hồ sơ TTHC) as the pipeline understands it."""

    source_id: str
    dossier_code: str | None
    agency_code: str | None
    procedure_code: str | None
    received_at: datetime | None
    updated_at: datetime | None
    status: int | None
    status_raw: str | None = None
    source_record_id: str | None = None
    agency_name: str | None = None
    procedure_name: str | None = None
    sector_code: str | None = None
    sector_name: str | None = None
    channel: int | None = 1
    applicant_name: str | None = None
    applicant_id_number: str | None = None
    applicant_id_type: int | None = None
    applicant_birth_date: str | None = None  # "YYYY-MM-DD", or "YYYY" when only the year is known
    applicant_sex: int | None = None
    applicant_type: int | None = 1  # LoaiDoiTuong: 1 citizen, 2 organisation
    applicant_phone: str | None = None
    due_at: datetime | None = None
    finished_at: datetime | None = None  # NgayKetThucXuLy: resolved / stopped / withdrawn
    returned_at: datetime | None = None  # NgayTra: result handed back
    paid_online: int | None = 0
    fee: int | None = 0
    result_type: str | None = None  # "paper" | "electronic" | None (unknown)
    result_file: str | None = None
    vneid_verified: bool = False
    supplements: list[Supplement] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    raw_issues: dict[str, str] = field(default_factory=dict)

    # ---- derived -------------------------------------------------------------------------
    @property
    def key(self) -> str:
        """Warehouse key: dossier codes are unique per source, not nationally guaranteed."""
        return f"{self.source_id}:{self.dossier_code}"

    def content_hash(self) -> str:
        """Stable hash of the business content (excludes ``updated_at``): what publishing compares."""
        payload = self.to_dict()
        payload.pop("updated_at", None)
        blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, default=_json_default)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (datetimes as ISO strings); inverse of :meth:`from_dict`.

        Written out instead of ``dataclasses.asdict``: its deep copies made this the costliest
        call of a night (every load and validation hashes each dossier). The fields are plain
        values, so nothing needs copying; ``tests/unit`` checks it equals ``asdict``'s result.
        """
        d: dict[str, Any] = {}
        for f in _FIELD_NAMES:
            v = getattr(self, f)
            d[f] = v.isoformat(timespec="seconds") if isinstance(v, datetime) else v
        d["supplements"] = [
            {"requested_at": _iso(s.requested_at), "completed_at": _iso(s.completed_at)}
            for s in self.supplements
        ]
        d["attachments"] = [{f: getattr(a, f) for f in _ATTACHMENT_FIELD_NAMES} for a in self.attachments]
        d["raw_issues"] = dict(self.raw_issues)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Dossier:
        kw = dict(d)
        for k in DATETIME_FIELDS:
            if kw.get(k) is not None and not isinstance(kw[k], datetime):
                kw[k] = datetime.fromisoformat(kw[k])
        kw["supplements"] = [
            Supplement(_dt(s.get("requested_at")), _dt(s.get("completed_at")))
            for s in (d.get("supplements") or [])
        ]
        kw["attachments"] = [Attachment(**a) for a in (d.get("attachments") or [])]
        kw["raw_issues"] = dict(d.get("raw_issues") or {})
        return cls(**kw)

    def to_row(self) -> dict[str, Any]:
        """Flat row for DataFrames and validation: nested lists become counts and JSON."""
        return flat_row(
            {f: getattr(self, f) for f in SCALAR_FIELDS},
            pending=[s.completed_at is None for s in self.supplements],
            documents=[(a.digitized, a.reused) for a in self.attachments],
            raw_issue_fields=self.raw_issues,
        )


def flat_row(
    scalars: dict[str, Any],
    *,
    pending: Sequence[bool],
    documents: Sequence[tuple[bool, bool]],
    raw_issue_fields: Iterable[str],
) -> dict[str, Any]:
    """``Dossier.to_row()`` from its scalar fields, whether each supplement request is still
    pending, each document's ``(digitized, reused)`` and the names of its unparseable fields:
    shared with the warehouse, which builds the row from stored columns without a ``Dossier``.
    Adds the derived columns to ``scalars`` and returns it."""
    row = scalars
    row["dossier_key"] = f"{row['source_id']}:{row['dossier_code']}"  # Dossier.key
    row["supplement_count"] = len(pending)
    row["supplement_pending"] = any(pending)
    row["attachment_count"] = len(documents)
    row["digitized_count"] = sum(1 for digitized, _ in documents if digitized)
    row["reused_count"] = sum(1 for _, reused in documents if reused)
    row["raw_issue_fields"] = ",".join(sorted(raw_issue_fields)) or None
    return row


_FIELD_NAMES = tuple(f.name for f in fields(Dossier))
_ATTACHMENT_FIELD_NAMES = tuple(f.name for f in fields(Attachment))

DATETIME_FIELDS = ("received_at", "updated_at", "due_at", "finished_at", "returned_at")

SCALAR_FIELDS = (
    "source_id",
    "dossier_code",
    "agency_code",
    "procedure_code",
    "received_at",
    "updated_at",
    "status",
    "status_raw",
    "source_record_id",
    "agency_name",
    "procedure_name",
    "sector_code",
    "sector_name",
    "channel",
    "applicant_name",
    "applicant_id_number",
    "applicant_id_type",
    "applicant_birth_date",
    "applicant_sex",
    "applicant_type",
    "applicant_phone",
    "due_at",
    "finished_at",
    "returned_at",
    "paid_online",
    "fee",
    "result_type",
    "result_file",
    "vneid_verified",
)


def _iso(v: datetime | None) -> str | None:
    return v.isoformat(timespec="seconds") if v is not None else None


def _dt(v: str | datetime | None) -> datetime | None:
    if v is None or isinstance(v, datetime):
        return v
    return datetime.fromisoformat(v)


def _json_default(v: Any) -> Any:
    if isinstance(v, datetime):
        return v.isoformat(timespec="seconds")
    raise TypeError(f"not JSON serialisable: {type(v).__name__}")
