"""Public value types of the ground-truth world (see :mod:`sandbox.world`).

Kept in their own module so simulators can import them cheaply; :mod:`sandbox.world` re-exports
all of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from tthc.model import Dossier

#: Defect ids of the catalogue (docs/contracts.md) and their severity.
DEFECT_SEVERITY: dict[str, str] = {
    "cccd_format": "critical",
    "cccd_prefix": "critical",
    "cccd_birth_year": "warning",
    "cccd_sex": "warning",
    "due_before_receipt": "critical",
    "unknown_status": "critical",
    "duplicate_code": "critical",
    "missing_field": "critical",
    "name_nfd": "none",
    "name_old_tone": "none",
    "name_upper": "none",
    "cmnd_legacy": "none",
    "late_update": "none",
}
DEFECTS: tuple[str, ...] = tuple(DEFECT_SEVERITY)
CRITICAL_DEFECTS: frozenset[str] = frozenset(k for k, v in DEFECT_SEVERITY.items() if v == "critical")
WARNING_DEFECTS: frozenset[str] = frozenset(k for k, v in DEFECT_SEVERITY.items() if v == "warning")

#: Applicant differences between a dossier and the population registry that are *not* source
#: defects of the catalogue (world.md §5). They only shape ``expected_match``.
VARIANTS: tuple[str, ...] = (
    "missing_middle_name",  # the dossier omits the middle name          -> name_mismatch
    "name_typo",  # one letter wrong in the given name                   -> name_mismatch
    "birth_date_differs",  # day/month mistyped, same year                -> birth_date_mismatch
    "not_in_registry",  # valid-looking number the registry does not hold -> not_found
    "name_iy",  # i/y spelling (Quý/Quí, Kỳ/Kì, Lý/Lí, Mỹ/Mĩ)            -> matched_normalised
    "name_d_lookalike",  # Ð (U+00D0) instead of Đ                         -> matched_normalised
    "name_spacing",  # doubled / non-breaking spaces                       -> matched_normalised
)

#: Match classes of reconciliation (docs/contracts.md). The world never produces ``lookup_failed``
#: (that is a run-time outcome of a failing lookup service).
MATCH_CLASSES: tuple[str, ...] = (
    "matched",
    "matched_normalised",
    "name_mismatch",
    "birth_date_mismatch",
    "not_found",
    "invalid_id",
    "lookup_failed",
)

DIALECTS: tuple[str, ...] = ("igate", "onegate", "sqldb", "filedrop")


@dataclass(frozen=True, slots=True)
class AgencySpec:
    """Configuration of one agency hosted by a source.

    ``kind``: ``commune`` (UBND xã), ``ward`` (UBND phường), ``department`` (Sở ...) or ``province``.
    ``name`` / ``code`` are generated when None. ``weight`` is its share of the source's volume.
    """

    kind: str = "commune"
    name: str | None = None
    code: str | None = None
    weight: float = 1.0


@dataclass(frozen=True, slots=True)
class SourceSpec:
    """Configuration of one source system. ``agencies`` empty → ``n_agencies`` default agencies
    (communes/wards plus one department). ``weight`` is the source's share of all dossiers."""

    source_id: str
    dialect: str = "igate"
    agencies: tuple[AgencySpec, ...] = ()
    n_agencies: int = 4
    name: str | None = None
    weight: float = 1.0


@dataclass(frozen=True, slots=True)
class SourceTruth:
    """One simulated agency system."""

    source_id: str
    dialect: str  # "igate" | "onegate" | "sqldb" | "filedrop"
    name: str
    agency_codes: tuple[str, ...]
    credentials: dict[str, str] = field(default_factory=dict, hash=False)

    @property
    def client_id(self) -> str | None:
        return self.credentials.get("client_id")

    @property
    def client_secret(self) -> str | None:
        return self.credentials.get("client_secret")

    @property
    def api_key(self) -> str | None:
        return self.credentials.get("api_key")


@dataclass(frozen=True, slots=True)
class AgencyTruth:
    code: str  # electronic identifier, 4 levels lowest first: 000.00.12.H40
    name: str
    level: str  # "commune" | "department" | "province" (tthc.registry.Level)
    province_code: str  # H-code, e.g. "H40"
    source_id: str


@dataclass(frozen=True, slots=True)
class ProcedureTruth:
    code: str  # national code, e.g. "1.001193"
    name: str
    sector_code: str
    sector_name: str
    fee: int  # VND, 0 when free
    duration_days: int
    duration_unit: str  # "working" | "calendar"
    result_type: str  # "paper" | "electronic"
    level: str = "commune"  # level of the agencies that handle it


@dataclass(frozen=True, slots=True)
class CitizenTruth:
    """One person in the population registry (the truth reconciliation compares against)."""

    id_number: str  # 12-digit CCCD (số định danh cá nhân)
    ho: str
    chu_dem: str  # middle name, may be ""
    ten: str
    birth_date: str  # "YYYY-MM-DD", or "YYYY" when only the year is registered
    sex: int  # 1 male, 2 female
    birth_province: str  # 3-digit legacy birth-registration code (= CCCD prefix), e.g. "040"
    cmnd_number: str | None = None  # old 9-digit CMND (SoCMND) when the person had one

    @property
    def full_name(self) -> str:
        return " ".join(p for p in (self.ho, self.chu_dem, self.ten) if p)


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """One version of one dossier as a source system holds it at some moment.

    ``dossier`` is shared and cached by the world: treat it as read-only (copy before changing it).
    """

    dossier: Dossier
    visible_at: datetime
    defects: tuple[str, ...] = ()
    citizen_id: int | None = None
    expected_match: str = "matched"
    variants: tuple[str, ...] = ()  # registry differences that are not catalogue defects (VARIANTS)
    dossier_index: int = -1  # position of the dossier in the world (stable for a config)
    version: int = 0  # version number of this dossier (0 = first)

    @property
    def critical(self) -> bool:
        return any(d in CRITICAL_DEFECTS for d in self.defects)
