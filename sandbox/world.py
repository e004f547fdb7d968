"""The ground-truth world: the one deterministic generator every simulator renders in its dialect.

A :class:`World` is built from a :class:`WorldConfig` (seed, size, anchor time, province, sources,
defect rates). It holds the sources and their agencies, the procedure catalogue, the population
registry (``citizens``) and, for every dossier, the list of *versions* a source system holds over
time. A simulated clock (:attr:`World.now`, :meth:`World.advance`) decides which version of each
dossier is visible: :meth:`World.records` returns what a source system holds *now*, defects and all,
and :meth:`World.expected` what a correct pipeline should conclude from it.

Same config → identical output: every random draw comes from ``random.Random`` streams seeded from
``config.seed`` (string seeds, hashed with SHA-512 by the standard library, so independent of
``PYTHONHASHSEED``); nothing reads the wall clock.

Timeline of a dossier
---------------------
* Receipt in ``[anchor - history_days, anchor + future_days)``: ``size`` dossiers before the anchor
  and ``size * future_days / history_days`` after it, so advancing the clock brings new arrivals.
  Direct and postal dossiers arrive in working hours on working days; online ones any time (a share
  at night and at weekends). ``received_at`` of an online dossier is its submission time.
* Due date (ngày hẹn trả) at 17:00: working-day durations count working days (Saturdays, Sundays and
  Vietnamese holidays incl. swap days skipped, ``holidays.country_holidays("VN")``) from the receipt
  day, or from the next working day when received after 17:00 or on a day off; calendar-day
  durations move to the next working day when they end on a day off.
* Status path (portal codes): online dossiers start at 1 (registered) and are accepted (2) or, a few,
  refused (3) in the next working hours; then 4 (processing); some 5 (supplement requested) and back
  to 4 (a few twice, a few never completed: they stay at 5 or are stopped, 8); some fee-bearing ones
  6 (fees requested) and back; then 9 (resolved) and 10 (result returned); a few 7 (withdrawn) or
  8 (stopped). Most end early or on time, ``overdue_share`` after the due date. Every status change
  is one *version*; its ``updated_at`` is the event time, and it is visible from that time on except
  for a ``late_update`` (visible 1-3 days after its ``updated_at``).

Defects (catalogue in docs/contracts.md) are drawn per dossier with ``config.defect_rates``:
identity and data defects hold for every version of the dossier; ``unknown_status`` for one version
(the latest in 60% of cases: a vendor state such as ``cho_duyet`` or ``luu_tru`` that maps to
nothing); ``late_update`` for one version (visible 1-3 days after its ``updated_at``, never after
the next version); ``duplicate_code`` for both dossiers of a pair (same agency, same receipt day,
one code) from the moment both are visible. Conflicting identity defects are exclusive (priority
``cccd_format`` > ``cccd_prefix`` > ``cmnd_legacy``; ``cccd_birth_year``/``cccd_sex`` only on an
otherwise valid CCCD); a defect that cannot apply to a record (old tone placement on a name without
oa/oe/uy, ...) is dropped, so ``SourceRecord.defects`` is always what the record really carries.

Match-class policy (``SourceRecord.expected_match``)
----------------------------------------------------
What reconciliation against the population registry should conclude for the applicant, first rule
that applies wins:

1. ``invalid_id`` — the number is not a usable CCCD/CMND (``cccd_format``, ``cccd_prefix``).
2. ``not_found`` — a well-formed number the registry does not hold (variant ``not_in_registry``;
   ``citizen_id`` is None).
3. ``birth_date_mismatch`` — the person is found but the dossier's birth date differs from the
   registry's: a mistyped day/month (variant ``birth_date_differs``) or year (``cccd_birth_year``,
   which also makes the CCCD disagree with the dossier).
4. ``name_mismatch`` — found, same birth date, but the names differ beyond normalisation while
   being the same person: middle name missing (``missing_middle_name``), one-letter typo
   (``name_typo``), or the name missing altogether (``missing_field`` on the name). To be reviewed
   by a person, never silently accepted and never treated as a different person.
5. ``matched_normalised`` — equal after normalisation only: NFC/NFD (``name_nfd``), tone placement
   oa/oe/uy (``name_old_tone``), case (``name_upper``), i/y spelling (``name_iy``), Ð look-alike
   (``name_d_lookalike``), whitespace incl. NBSP/zero-width (``name_spacing``).
6. ``matched`` — identical.

``cccd_sex`` (sex field mistyped) does not change the class: the lookup compares number, name and
birth date. A ``cmnd_legacy`` record carries the person's old 9-digit CMND, which the registry holds
as ``CitizenTruth.cmnd_number`` (``SoCMND``): a lookup by it finds the person, so the class follows
the name/birth rules above. A year-only birth date ("YYYY") is registered and sent the same way, so
it matches. ``lookup_failed`` is never expected: it is a run-time outcome of a failing service.

The registry spells names NFC with the new tone placement (``Hoà``, ``Thuý``); the old placement
(``Hòa``, ``Thúy``) is the source-side variant.

Public API (docs/contracts.md)
------------------------------
``World(config)``; ``World.from_records(records, citizens=..., now=...)`` for given data;
``w.now``, ``w.advance(days=1, hours=0, minutes=0)``, ``w.set_now(dt)``, ``w.reset()``;
``w.sources``, ``w.agencies``, ``w.procedures``, ``w.citizens`` (frozen dataclasses);
``w.source(id)``, ``w.agency(code)``, ``w.procedure(code)``, ``w.citizen_index(number)``;
``w.records(source_id)`` (latest visible version per dossier), ``w.versions(source_id)`` (every
visible version), ``w.all_records()``, ``w.expected(source_id)``; ``w.calendar`` (working days).
"""

from __future__ import annotations

import bisect
import gc
import hashlib
import random
import re
import threading
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta

from sandbox import world_data as data
from sandbox import world_names as names
from sandbox.world_calendar import WorkCalendar
from sandbox.world_types import (
    CRITICAL_DEFECTS,
    DEFECT_SEVERITY,
    DEFECTS,
    DIALECTS,
    MATCH_CLASSES,
    VARIANTS,
    WARNING_DEFECTS,
    AgencySpec,
    AgencyTruth,
    CitizenTruth,
    ProcedureTruth,
    SourceRecord,
    SourceSpec,
    SourceTruth,
)
from tthc.codes import id_type as _id_type
from tthc.model import Attachment, Dossier, Supplement

__all__ = [
    "CRITICAL_DEFECTS",
    "DEFAULT_ANCHOR",
    "DEFAULT_DEFECT_RATES",
    "DEFAULT_VARIANT_RATES",
    "DEFECTS",
    "DEFECT_SEVERITY",
    "DIALECTS",
    "MATCH_CLASSES",
    "VARIANTS",
    "WARNING_DEFECTS",
    "AgencySpec",
    "AgencyTruth",
    "CitizenTruth",
    "ProcedureTruth",
    "SourceRecord",
    "SourceSpec",
    "SourceTruth",
    "WorkCalendar",
    "World",
    "WorldConfig",
]

#: Default simulated "now": a Monday morning. Fixed, so a default world is reproducible; pass
#: ``anchor=datetime.combine(date.today(), time(8))`` for a world around today.
DEFAULT_ANCHOR = datetime(2026, 11, 2, 8, 0)

DEFAULT_DEFECT_RATES: dict[str, float] = {
    "cccd_format": 0.01,
    "cccd_prefix": 0.005,
    "cccd_birth_year": 0.01,
    "cccd_sex": 0.01,
    "due_before_receipt": 0.005,
    "unknown_status": 0.01,
    "duplicate_code": 0.01,
    "missing_field": 0.01,
    "name_nfd": 0.03,
    "name_old_tone": 0.02,
    "name_upper": 0.03,
    "cmnd_legacy": 0.02,
    "late_update": 0.03,
}

DEFAULT_VARIANT_RATES: dict[str, float] = {
    "missing_middle_name": 0.01,
    "name_typo": 0.01,
    "birth_date_differs": 0.01,
    "not_in_registry": 0.01,
    "name_iy": 0.005,
    "name_d_lookalike": 0.005,
    "name_spacing": 0.01,
}

_WORK_START = time(7, 30)
_WORK_END = time(17, 0)
_DUE_TIME = time(17, 0)
_NAME_DEFECTS = ("name_nfd", "name_old_tone", "name_upper")
_NAME_VARIANTS = ("missing_middle_name", "name_typo", "name_iy", "name_d_lookalike", "name_spacing")
_NORMALISING = frozenset(
    {"name_nfd", "name_old_tone", "name_upper", "name_iy", "name_d_lookalike", "name_spacing"}
)
_MISSING_FIELDS = ("procedure_code", "agency_code", "applicant_name", "received_at")
_SOURCE_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_]{1,62}$")  # as tthc.registry


# =================================================================================================
# configuration
# =================================================================================================
@dataclass
class WorldConfig:
    """Everything that shapes a world. Same config → same world.

    ``defect_rates`` / ``variant_rates`` given by the caller are merged over the defaults (pass
    ``WorldConfig.clean()`` or a rate of 0.0 to switch defects off). A rate is the share of dossiers
    that carry the defect (for ``duplicate_code``: of dossiers that are one of a pair).
    ``sources`` empty → ``n_sources`` igate sources of ``agencies_per_source`` agencies each (the
    first is ``igate_tinh``, the source id of config/sources.yaml).
    """

    seed: int = 42
    size: int = 400  # dossiers received in the history window (before the anchor)
    anchor: datetime = DEFAULT_ANCHOR  # naive Vietnam time; the world's "now" at start
    history_days: int = 60
    future_days: int = 30  # arrivals after the anchor, same daily rate
    province_code: str = "H40"  # H-code of the agency electronic identifiers (domain.md §3)
    province_name: str = "Nghệ An"
    cccd_home_prefix: str = "040"  # legacy birth-registration code most residents were born under
    home_born_share: float = 0.8
    n_sources: int = 1
    agencies_per_source: int = 4
    sources: tuple[SourceSpec, ...] = ()
    defect_rates: dict[str, float] = field(default_factory=dict)
    variant_rates: dict[str, float] = field(default_factory=dict)
    citizens_per_dossier: float = 0.75  # registry size relative to dossier count (repeat applicants)
    online_share: float = 0.5
    postal_share: float = 0.05
    online_outside_hours_share: float = 0.25  # of online submissions: nights and weekends
    refused_share: float = 0.03  # of online dossiers, refused at reception (1 → 3)
    withdrawn_share: float = 0.01
    stopped_share: float = 0.01
    supplement_share: float = 0.08
    second_supplement_share: float = 0.15  # of supplemented dossiers
    pending_supplement_share: float = 0.1  # of supplement requests never answered
    fee_request_share: float = 0.15  # of fee-bearing dossiers that go through status 6
    overdue_share: float = 0.04  # of resolved dossiers, resolved after the due date
    on_due_date_share: float = 0.25  # of resolved dossiers, resolved on the due date itself
    not_returned_share: float = 0.08  # of paper results never collected (stay at 9)
    online_paid_share: float = 0.6  # of online dossiers of fee-bearing procedures
    vneid_share_online: float = 0.75
    vneid_share_direct: float = 0.3
    digitized_share_online: float = 0.92
    digitized_share_direct: float = 0.6
    reused_share: float = 0.15
    result_digitized_share: float = 0.7  # of paper results that also have an electronic file
    year_only_birth_share: float = 0.1  # of people born before 1975
    cmnd_share: float = 0.3  # of people born up to 2000 who still have an old CMND

    def __post_init__(self) -> None:
        rates = dict(DEFAULT_DEFECT_RATES)
        for k, v in (self.defect_rates or {}).items():
            if k not in DEFECT_SEVERITY:
                raise ValueError(f"unknown defect id {k!r}; known: {', '.join(DEFECTS)}")
            rates[k] = float(v)
        self.defect_rates = rates
        vrates = dict(DEFAULT_VARIANT_RATES)
        for k, v in (self.variant_rates or {}).items():
            if k not in VARIANTS:
                raise ValueError(f"unknown variant {k!r}; known: {', '.join(VARIANTS)}")
            vrates[k] = float(v)
        self.variant_rates = vrates
        self.sources = tuple(self.sources or ())
        if self.size < 0 or self.history_days < 1 or self.future_days < 0:
            raise ValueError("size must be >= 0, history_days >= 1, future_days >= 0")
        if self.anchor.tzinfo is not None:
            raise ValueError("anchor must be naive Vietnam local time")
        for s in self.sources:
            if s.dialect not in DIALECTS:
                raise ValueError(f"source {s.source_id}: unknown dialect {s.dialect!r}")
            if not _SOURCE_ID_RE.match(s.source_id):
                raise ValueError(
                    f"source_id {s.source_id!r}: lower-case letters, digits and '_' (it names a DAG)"
                )

    @classmethod
    def clean(cls, **kw) -> WorldConfig:
        """A config without any defect or registry variant (rates 0)."""
        kw.setdefault("defect_rates", dict.fromkeys(DEFECTS, 0.0))
        kw.setdefault("variant_rates", dict.fromkeys(VARIANTS, 0.0))
        return cls(**kw)

    @classmethod
    def demo(cls, seed: int = 42, size: int = 3000, **kw) -> WorldConfig:
        """A 12-source world mixing the four dialects (igate, onegate, sqldb, filedrop)."""
        c, w, d = AgencySpec("commune"), AgencySpec("ward"), AgencySpec
        sources = (
            SourceSpec(
                "igate_tinh",
                "igate",
                (
                    d("department", "Sở Tư pháp"),
                    d("department", "Sở Tài chính"),
                    d("department", "Sở Nông nghiệp và Môi trường"),
                    c,
                    c,
                    w,
                ),
            ),
            SourceSpec("igate_phuong", "igate", (w, w, w, w)),
            SourceSpec("igate_xa_mien_nui", "igate", (c, c, c)),
            SourceSpec("onegate_so_yte", "onegate", (d("department", "Sở Y tế"),)),
            SourceSpec("onegate_so_xaydung", "onegate", (d("department", "Sở Xây dựng"),)),
            SourceSpec("onegate_xa", "onegate", (c, c, c, c)),
            SourceSpec("sqldb_so_gddt", "sqldb", (d("department", "Sở Giáo dục và Đào tạo"),)),
            SourceSpec("sqldb_so_congthuong", "sqldb", (d("department", "Sở Công Thương"),)),
            SourceSpec("filedrop_xa_1", "filedrop", (c, c)),
            SourceSpec("filedrop_xa_2", "filedrop", (c,)),
            SourceSpec("filedrop_xa_3", "filedrop", (c, w)),
            SourceSpec("filedrop_xa_4", "filedrop", (c,)),
        )
        sources = tuple(replace(s, weight=float(len(s.agencies))) for s in sources)
        return cls(seed=seed, size=size, sources=sources, **kw)


# =================================================================================================
# helpers
# =================================================================================================
class _Picker:
    """Weighted choice by bisecting cumulative weights (cheaper than ``Random.choices``)."""

    __slots__ = ("items", "cum", "total")

    def __init__(self, pairs: Iterable[tuple]) -> None:
        self.items: list = []
        self.cum: list[float] = []
        t = 0.0
        for item, w in pairs:
            if w <= 0:
                continue
            t += w
            self.items.append(item)
            self.cum.append(t)
        self.total = t

    def pick(self, rng: random.Random):
        return self.pick_r(rng.random)

    def pick_r(self, rnd):
        """Same, given ``Random.random`` itself."""
        i = bisect.bisect_right(self.cum, rnd() * self.total)
        return self.items[i] if i < len(self.items) else self.items[-1]


def _digest(*parts: object) -> str:
    return hashlib.sha256(":".join(str(p) for p in parts).encode()).hexdigest()


def _credentials(seed: int, source_id: str, dialect: str) -> dict[str, str]:
    if dialect == "igate":
        return {"client_id": f"{source_id}_client", "client_secret": _digest(seed, source_id, "secret")[:32]}
    if dialect == "onegate":
        return {"api_key": _digest(seed, source_id, "api_key")[:40]}
    if dialect == "sqldb":
        return {
            "username": f"{source_id}_ro",
            "password": _digest(seed, source_id, "db")[:24],
            "database": "motcua",
            "view": "ho_so_tthc",
        }
    return {"folder": source_id}


class _Person:
    """Mutable scratch record while generating an applicant."""

    __slots__ = ("ho", "chu_dem", "ten", "birth", "sex", "prefix", "id_number", "cmnd")


# =================================================================================================
# per-dossier storage
# =================================================================================================
class _Unit:
    """One dossier in one source: its versions over time. Subclasses know how to build them."""

    __slots__ = ("index", "source_id", "vis", "twin", "_last")

    def record(self, k: int, dup: bool) -> SourceRecord:  # pragma: no cover - interface
        raise NotImplementedError


class _FixedUnit(_Unit):
    """A dossier whose versions were given (fixtures)."""

    __slots__ = ("versions",)

    def record(self, k: int, dup: bool) -> SourceRecord:
        return self.versions[k]


class _GenUnit(_Unit):
    """A generated dossier; versions are materialised lazily from the plan."""

    __slots__ = (
        "world",
        "agency",
        "proc",
        "code",
        "rec_id",
        "t0",
        "due",
        "channel",
        "events",
        "supp",
        "finish_t",
        "ret_t",
        "paid",
        "paid_t",
        "result_file",
        "atts",
        "vneid",
        "app",
        "citizen",
        "static_defects",
        "variants",
        "match",
        "unk_k",
        "unk_raw",
        "late_k",
        "missing",
    )

    def record(self, k: int, dup: bool) -> SourceRecord:
        last = self._last
        if last is not None and last[0] == k and last[1] == dup:
            return last[2]
        t, status = self.events[k]
        status_raw = None
        defects = self.static_defects
        if k == self.unk_k or k == self.late_k or dup:
            extra = list(defects)
            if k == self.unk_k:
                status, status_raw = None, self.unk_raw
                extra.append("unknown_status")
            if k == self.late_k:
                extra.append("late_update")
            if dup:
                extra.append("duplicate_code")
            defects = tuple(sorted(extra, key=_DEFECT_ORDER.__getitem__))
        rid = self.rec_id
        if rid.__class__ is int:
            rid = self.rec_id = str(uuid.UUID(int=rid, version=4))
        w = self.world
        ag: AgencyTruth = w.agencies[self.agency]
        pr: ProcedureTruth = w.procedures[self.proc]
        missing = self.missing
        name, id_number, id_kind, birth, sex, phone = self.app
        fin = self.finish_t if self.finish_t is not None and self.finish_t <= t else None
        ret = self.ret_t if self.ret_t is not None and self.ret_t <= t else None
        dossier = Dossier(
            source_id=self.source_id,
            dossier_code=self.code,
            agency_code=None if missing == "agency_code" else ag.code,
            procedure_code=None if missing == "procedure_code" else pr.code,
            received_at=None if missing == "received_at" else self.t0,
            updated_at=t,
            status=status,
            status_raw=status_raw,
            source_record_id=rid,
            agency_name=ag.name,
            procedure_name=pr.name,
            sector_code=pr.sector_code,
            sector_name=pr.sector_name,
            channel=self.channel,
            applicant_name=None if missing == "applicant_name" else name,
            applicant_id_number=id_number,
            applicant_id_type=id_kind,
            applicant_birth_date=birth,
            applicant_sex=sex,
            applicant_type=1,
            applicant_phone=phone,
            due_at=self.due,
            finished_at=fin,
            returned_at=ret,
            paid_online=self.paid if self.paid and self.paid_t <= t else 0,
            fee=pr.fee,
            result_type=pr.result_type,
            result_file=self.result_file if fin is not None and self.result_file and status != 8 else None,
            vneid_verified=self.vneid,
            supplements=[
                Supplement(rq, cp if cp is not None and cp <= t else None) for rq, cp in self.supp if rq <= t
            ]
            if self.supp
            else [],
            attachments=list(self.atts),
        )
        rec = SourceRecord(
            dossier=dossier,
            visible_at=self.vis[k],
            defects=defects,
            citizen_id=self.citizen,
            expected_match=self.match,
            variants=self.variants,
            dossier_index=self.index,
            version=k,
        )
        self._last = (k, dup, rec)
        return rec


_DEFECT_ORDER = {d: i for i, d in enumerate(DEFECTS)}


# =================================================================================================
# the world
# =================================================================================================
class World:
    """The ground truth. See the module docstring for the model and the match-class policy.

    Thread-safe for concurrent :meth:`records` / :meth:`advance` (one lock); the returned
    ``SourceRecord``/``Dossier`` objects are shared and must be treated as read-only.
    """

    def __init__(self, config: WorldConfig | None = None) -> None:
        cfg = config if config is not None else WorldConfig()
        self.config = cfg
        self._lock = threading.RLock()
        self._now = cfg.anchor
        self.anchor = cfg.anchor
        start = cfg.anchor.date() - timedelta(days=cfg.history_days + 40)
        self.calendar = WorkCalendar(start, cfg.anchor.date() + timedelta(days=cfg.future_days + 800))
        gc_was_enabled = gc.isenabled()
        gc.disable()  # millions of long-lived small objects: generational GC would rescan them all
        try:
            self._build_structure(random.Random(f"{cfg.seed}/structure"))
            self._build_citizens(random.Random(f"{cfg.seed}/citizens"))
            self._units: list[_Unit] = []
            self._build_dossiers(random.Random(f"{cfg.seed}/dossiers"))
            self._index_units()
        finally:
            if gc_was_enabled:
                gc.enable()

    # ---- public API ---------------------------------------------------------------------------
    @property
    def now(self) -> datetime:
        return self._now

    def advance(self, days: float | None = None, hours: float = 0, minutes: float = 0) -> datetime:
        """Move the simulated clock forward (one day when nothing is given); returns the new :attr:`now`."""
        if days is None:
            days = 0 if (hours or minutes) else 1
        delta = timedelta(days=days, hours=hours, minutes=minutes)
        if delta < timedelta(0):
            raise ValueError("the world's clock only moves forward (use set_now or reset)")
        with self._lock:
            self._now = self._now + delta
            return self._now

    def set_now(self, when: datetime) -> datetime:
        """Put the clock at ``when`` (forwards or backwards)."""
        if when.tzinfo is not None:
            raise ValueError("naive Vietnam local time expected")
        with self._lock:
            self._now = when
            return self._now

    def reset(self) -> datetime:
        """Clock back to the anchor."""
        return self.set_now(self.anchor)

    def source(self, source_id: str) -> SourceTruth:
        try:
            return self._source_by_id[source_id]
        except KeyError:
            raise KeyError(f"no source {source_id!r} in this world") from None

    def agency(self, code: str) -> AgencyTruth:
        return self._agency_by_code[code]

    def procedure(self, code: str) -> ProcedureTruth:
        return self._procedure_by_code[code]

    def citizen_index(self, number: str | None) -> int | None:
        """Index into :attr:`citizens` of the person with this CCCD or old CMND, else None."""
        if not number:
            return None
        return self._citizen_by_number.get(number)

    def records(self, source_id: str) -> list[SourceRecord]:
        """What the source system holds now: the latest visible version of each of its dossiers,
        ordered by first visibility (receipt)."""
        with self._lock:
            now = self._now
            cached = self._records_cache.get(source_id)
            if cached is not None and cached[0] == now:
                return list(cached[1])
            if source_id not in self._units_by_source:
                raise KeyError(f"no source {source_id!r} in this world")
            units = self._units_by_source[source_id]
            n = bisect.bisect_right(self._firsts_by_source[source_id], now)
            all_units = self._units
            out: list[SourceRecord] = []
            gc_was_enabled = gc.isenabled()
            gc.disable()
            try:
                for u in units[:n]:
                    vis = u.vis
                    k = len(vis) - 1 if vis[-1] <= now else bisect.bisect_right(vis, now) - 1
                    twin = u.twin
                    out.append(u.record(k, twin >= 0 and all_units[twin].vis[0] <= now))
            finally:
                if gc_was_enabled:
                    gc.enable()
            self._records_cache[source_id] = (now, out)
            return list(out)

    def all_records(self) -> dict[str, list[SourceRecord]]:
        return {s.source_id: self.records(s.source_id) for s in self.sources}

    def versions(self, source_id: str) -> list[SourceRecord]:
        """Every version of every dossier of the source that has become visible so far (history),
        ordered by ``visible_at``."""
        with self._lock:
            now = self._now
            all_units = self._units
            out: list[SourceRecord] = []
            for u in self._units_by_source[source_id]:
                if u.vis[0] > now:
                    continue
                twin = u.twin
                for k, v in enumerate(u.vis):
                    if v > now:
                        break
                    dup = twin >= 0 and all_units[twin].vis[0] <= v
                    out.append(u.record(k, dup))
            out.sort(key=lambda r: (r.visible_at, r.dossier_index, r.version))
            return out

    def expected(self, source_id: str) -> dict:
        """What a correct pipeline concludes from :meth:`records` now (ground truth for tests)."""
        recs = self.records(source_id)
        codes: set[str] = set()
        quarantined: set[str] = set()
        warned: set[str] = set()
        counts = Counter()
        matches = Counter()
        for r in recs:
            code = r.dossier.dossier_code
            if code is not None:
                codes.add(code)
            counts.update(r.defects)
            matches[r.expected_match] += 1
            if any(d in CRITICAL_DEFECTS for d in r.defects):
                quarantined.add(code)
            elif any(d in WARNING_DEFECTS for d in r.defects):
                warned.add(code)
        return {
            "pulled": len(recs),
            "codes": codes,
            "quarantined_codes": quarantined,
            "publishable_codes": codes - quarantined,
            "warning_codes": warned - quarantined,
            "defect_counts": {d: counts.get(d, 0) for d in DEFECTS},
            "match_counts": {m: matches.get(m, 0) for m in MATCH_CLASSES},
        }

    # ---- construction from given data (fixtures) ---------------------------------------------
    @classmethod
    def from_records(
        cls,
        records: Iterable[SourceRecord],
        *,
        citizens: Iterable[CitizenTruth] = (),
        now: datetime | None = None,
        sources: Iterable[SourceTruth] | None = None,
        agencies: Iterable[AgencyTruth] | None = None,
        procedures: Iterable[ProcedureTruth] = (),
        dialect: str = "igate",
        seed: int = 0,
    ) -> World:
        """A world whose registry and dossier versions are given instead of generated.

        Versions of one dossier are grouped by ``(source_id, source_record_id or dossier_code)``
        (give distinct ``source_record_id`` to two different dossiers sharing a code); each is
        visible from its ``visible_at``. ``now`` defaults to the latest ``visible_at``. Sources and
        agencies default to those named by the records (sources in ``dialect``).
        """
        recs = list(records)
        self = cls.__new__(cls)
        self._lock = threading.RLock()
        self.citizens = list(citizens)
        self.procedures = list(procedures)
        if agencies is None:
            seen: dict[str, AgencyTruth] = {}
            for r in recs:
                d = r.dossier
                if d.agency_code and d.agency_code not in seen:
                    seen[d.agency_code] = AgencyTruth(
                        d.agency_code,
                        d.agency_name or d.agency_code,
                        "commune",
                        d.agency_code.rsplit(".", 1)[-1],
                        d.source_id,
                    )
            agencies = seen.values()
        self.agencies = list(agencies)
        if sources is None:
            ids = sorted({r.dossier.source_id for r in recs})
            sources = [
                SourceTruth(
                    sid,
                    dialect,
                    sid,
                    tuple(a.code for a in self.agencies if a.source_id == sid),
                    _credentials(seed, sid, dialect),
                )
                for sid in ids
            ]
        self.sources = list(sources)
        groups: dict[tuple[str, str], list[SourceRecord]] = {}
        for r in recs:
            d = r.dossier
            groups.setdefault((d.source_id, d.source_record_id or d.dossier_code or ""), []).append(r)
        self._units = []
        for versions in groups.values():
            u = _FixedUnit()
            u.index = len(self._units)
            u.source_id = versions[0].dossier.source_id
            u.versions = sorted(versions, key=lambda r: r.visible_at)
            u.vis = [r.visible_at for r in u.versions]
            u.twin = -1
            u._last = None
            self._units.append(u)
        self._now = now if now is not None else max((r.visible_at for r in recs), default=DEFAULT_ANCHOR)
        self.anchor = self._now
        self.config = None
        self.calendar = None
        self._index_units()
        self._citizen_by_number = {}
        for i, c in enumerate(self.citizens):
            self._citizen_by_number[c.id_number] = i
            if c.cmnd_number:
                self._citizen_by_number.setdefault(c.cmnd_number, i)
        return self

    # ---- generation ------------------------------------------------------------------------------
    def _build_structure(self, rng: random.Random) -> None:
        cfg = self.config
        specs = list(cfg.sources)
        if not specs:
            specs = [
                SourceSpec(
                    "igate_tinh" if i == 0 else f"igate_{i + 1:02d}",
                    "igate",
                    n_agencies=cfg.agencies_per_source,
                )
                for i in range(cfg.n_sources)
            ]
        seen_ids: set[str] = set()
        for s in specs:
            if s.source_id in seen_ids:
                raise ValueError(f"duplicate source_id {s.source_id!r}")
            seen_ids.add(s.source_id)
        communes = list(data.COMMUNE_NAMES)
        wards = list(data.WARD_NAMES)
        rng.shuffle(communes)
        rng.shuffle(wards)
        used_codes: set[str] = set()
        used_names: set[str] = set()
        H = cfg.province_code
        self.sources: list[SourceTruth] = []
        self.agencies: list[AgencyTruth] = []
        self._agency_weight: list[float] = []
        self._agency_source_weight: list[float] = []
        dept_cycle = 0
        for s in specs:
            agency_specs = list(s.agencies)
            if not agency_specs:
                n = max(1, s.n_agencies)
                kinds = ["commune", "commune", "ward"]
                agency_specs = [AgencySpec(kinds[i % 3]) for i in range(n - 1 if n > 1 else 1)]
                if n > 1:
                    dname = data.DEPARTMENTS[dept_cycle % len(data.DEPARTMENTS)][0]
                    dept_cycle += 1
                    agency_specs.append(AgencySpec("department", dname))
            codes: list[str] = []
            for a in agency_specs:
                kind = a.kind
                if kind == "department":
                    base = a.name or data.DEPARTMENTS[dept_cycle % len(data.DEPARTMENTS)][0]
                    if a.name is None:
                        dept_cycle += 1
                    num = next((n for nm, n, _ in data.DEPARTMENTS if nm == base), 20 + rng.randrange(30))
                    name = (
                        base if "tỉnh" in base or "thành phố" in base else f"{base} tỉnh {cfg.province_name}"
                    )
                    code = a.code or f"000.00.{num:02d}.{H}"
                    j = 0
                    while code in used_codes:
                        j += 1
                        code = f"000.{j:02d}.{num:02d}.{H}"
                    level = "department"
                    weight = 1.5
                elif kind == "province":
                    name = a.name or f"UBND tỉnh {cfg.province_name}"
                    code = a.code or f"000.00.00.{H}"
                    level = "province"
                    weight = 1.0
                else:
                    pool = wards if kind == "ward" else communes
                    prefix = "UBND phường" if kind == "ward" else "UBND xã"
                    if a.name:
                        name = a.name
                    else:
                        stem = pool.pop() if pool else f"Số {len(used_names) + 1}"
                        name = f"{prefix} {stem}"
                    code = a.code
                    while code is None or code in used_codes:
                        code = f"000.{rng.randint(1, 40):02d}.{rng.randint(30, 60):02d}.{H}"
                    level = "commune"
                    weight = 1.0
                if code in used_codes:
                    raise ValueError(f"agency code {code} used twice")
                if name in used_names:
                    name = f"{name} ({code})"
                used_codes.add(code)
                used_names.add(name)
                self.agencies.append(AgencyTruth(code, name, level, H, s.source_id))
                self._agency_weight.append(weight * a.weight)
                codes.append(code)
            sname = s.name or f"Hệ thống thông tin giải quyết TTHC ({s.source_id})"
            self.sources.append(
                SourceTruth(
                    s.source_id,
                    s.dialect,
                    sname,
                    tuple(codes),
                    _credentials(cfg.seed, s.source_id, s.dialect),
                )
            )
            self._agency_source_weight.extend([s.weight] * len(codes))
        # dossier volume per agency: source weight split over its agencies by agency weight
        by_src: dict[str, float] = {}
        for a, w in zip(self.agencies, self._agency_weight, strict=True):
            by_src[a.source_id] = by_src.get(a.source_id, 0.0) + w
        vol = [
            sw * w / by_src[a.source_id]
            for a, w, sw in zip(self.agencies, self._agency_weight, self._agency_source_weight, strict=True)
        ]
        self._agency_picker = _Picker((i, v) for i, v in enumerate(vol))
        # procedures
        self.procedures: list[ProcedureTruth] = []
        families: list[str] = []
        pweights: list[float] = []
        self._attachment_names: list[tuple[str, ...]] = []
        for code, pname, sc, sn, fee, dur, unit, rtype, level, fam, w, atts in data.PROCEDURES:
            self.procedures.append(ProcedureTruth(code, pname, sc, sn, fee, dur, unit, rtype, level))
            families.append(fam)
            pweights.append(w)
            self._attachment_names.append(atts)
        dept_family = {nm: fam for nm, _, fam in data.DEPARTMENTS}
        self._proc_picker: list[_Picker] = []
        for a, spec_name in zip(self.agencies, self._agency_base_names(), strict=True):
            if a.level == "department":
                fam = dept_family.get(spec_name)
                idx = [
                    i
                    for i, p in enumerate(self.procedures)
                    if p.level == "department" and (fam is None or families[i] == fam)
                ]
                if not idx:
                    idx = [i for i, p in enumerate(self.procedures) if p.level == "department"]
            else:
                idx = [i for i, p in enumerate(self.procedures) if p.level == "commune"]
            self._proc_picker.append(_Picker((i, pweights[i]) for i in idx))
        self._source_by_id = {s.source_id: s for s in self.sources}
        self._agency_by_code = {a.code: a for a in self.agencies}
        self._procedure_by_code = {p.code: p for p in self.procedures}

    def _agency_base_names(self) -> list[str]:
        out = []
        for a in self.agencies:
            base = a.name.split(" tỉnh ")[0]
            out.append(base)
        return out

    def _new_person(self, rnd, taken: set[str]) -> _Person:
        cfg = self.config
        p = _Person()
        p.sex = sex = 1 if rnd() < 0.48 else 2
        p.ho = self._p_surname.pick_r(rnd)
        if sex == 1:
            p.chu_dem, p.ten = self._p_mid_m.pick_r(rnd), self._p_given_m.pick_r(rnd)
        else:
            p.chu_dem, p.ten = self._p_mid_f.pick_r(rnd), self._p_given_f.pick_r(rnd)
        if p.chu_dem == p.ten:  # "Hoàng Phương Phương" is possible but odd; keep names plausible
            p.chu_dem = "Văn" if sex == 1 else "Thị"
        year = self._year_lo + int(rnd() * (self._year_hi - self._year_lo + 1))
        if year < 1975 and rnd() < cfg.year_only_birth_share:
            p.birth = f"{year:04d}"
        else:
            p.birth = (date(year, 1, 1) + timedelta(days=int(rnd() * 365))).isoformat()
        p.prefix = cfg.cccd_home_prefix if rnd() < cfg.home_born_share else self._p_prefix.pick_r(rnd)
        head = f"{p.prefix}{2 * ((year - 1900) // 100) + sex - 1}{year % 100:02d}"
        num = f"{head}{int(rnd() * 1_000_000):06d}"
        while num in taken:
            num = f"{head}{int(rnd() * 1_000_000):06d}"
        taken.add(num)
        p.id_number = num
        p.cmnd = None
        if year <= 2000 and rnd() < cfg.cmnd_share:
            c = f"{1 + int(rnd() * 38):02d}{int(rnd() * 10_000_000):07d}"
            while c in taken:
                c = f"{1 + int(rnd() * 38):02d}{int(rnd() * 10_000_000):07d}"
            taken.add(c)
            p.cmnd = c
        return p

    def _build_citizens(self, rng: random.Random) -> None:
        cfg = self.config
        self._p_surname = _Picker(data.SURNAMES)
        self._p_mid_m = _Picker(data.MIDDLE_MALE)
        self._p_mid_f = _Picker(data.MIDDLE_FEMALE)
        self._p_given_m = _Picker(data.GIVEN_MALE)
        self._p_given_f = _Picker(data.GIVEN_FEMALE)
        self._p_prefix = _Picker(data.OTHER_BIRTH_PREFIXES)
        self._year_lo = cfg.anchor.year - 85
        self._year_hi = cfg.anchor.year - 16
        n = max(20, int(self._n_total() * cfg.citizens_per_dossier))
        self._taken_numbers: set[str] = set()
        self.citizens: list[CitizenTruth] = []
        by_number: dict[str, int] = {}
        rnd = rng.random
        for i in range(n):
            p = self._new_person(rnd, self._taken_numbers)
            self.citizens.append(
                CitizenTruth(p.id_number, p.ho, p.chu_dem, p.ten, p.birth, p.sex, p.prefix, p.cmnd)
            )
            by_number[p.id_number] = i
            if p.cmnd:
                by_number[p.cmnd] = i
        self._citizen_by_number = by_number
        self._pools: dict[str, list[int]] = {}

    def _n_total(self) -> int:
        cfg = self.config
        return cfg.size + round(cfg.size * cfg.future_days / cfg.history_days)

    # Requirements an applicant must meet for a defect/variant to be applicable. Rare ones are
    # served from a pool (registry indices whose name has a qualifying word), common ones by retry.
    _REQUIREMENTS = {
        "name_old_tone": lambda c, full: names.has_old_tone_variant(full),
        "name_nfd": lambda c, full: names.nfd(full) != full,
        "name_iy": lambda c, full: names.has_iy_variant(full),
        "name_d_lookalike": lambda c, full: names.has_d(full),
        "missing_middle_name": lambda c, full: bool(c.chu_dem),
        "birth_date_differs": lambda c, full: len(c.birth_date) == 10,
        "cmnd_legacy": lambda c, full: c.cmnd_number is not None,
    }
    _POOLED = ("name_old_tone", "name_iy", "name_d_lookalike", "cmnd_legacy")

    def _pool(self, req: str) -> list[int]:
        pool = self._pools.get(req)
        if pool is None:
            if req == "cmnd_legacy":
                pool = [i for i, c in enumerate(self.citizens) if c.cmnd_number is not None]
            else:
                test = self._REQUIREMENTS[req]
                words = {w for table in _NAME_TABLES for w, _ in table for w in w.split()}
                good = {w for w in words if test(None, w)}
                pool = [
                    i
                    for i, c in enumerate(self.citizens)
                    if c.ho in good or c.ten in good or any(w in good for w in c.chu_dem.split())
                ]
            self._pools[req] = pool
        return pool

    def _pick_citizen(self, rnd, reqs: list[str]) -> tuple[int, list[str]]:
        """A registry index meeting the requirements; returns also the requirements it failed."""
        n = len(self.citizens)
        if not reqs:
            return int(rnd() * n), []
        pooled = next((r for r in reqs if r in self._POOLED), None)
        pool = self._pool(pooled) if pooled else None
        tests = [(r, self._REQUIREMENTS[r]) for r in reqs]
        best, best_failed = -1, reqs
        for _ in range(60):
            i = pool[int(rnd() * len(pool))] if pool else int(rnd() * n)
            c = self.citizens[i]
            full = c.full_name
            failed = [r for r, t in tests if not t(c, full)]
            if not failed:
                return i, []
            if len(failed) < len(best_failed):
                best, best_failed = i, failed
        return (best if best >= 0 else int(rnd() * n)), best_failed

    def _ghost(self, rnd, reqs: list[str]) -> tuple[CitizenTruth, list[str]]:
        """A person absent from the registry (``not_in_registry``)."""
        failed = reqs
        c = None
        for _ in range(60):
            p = self._new_person(rnd, self._taken_numbers)
            cand = CitizenTruth(p.id_number, p.ho, p.chu_dem, p.ten, p.birth, p.sex, p.prefix, None)
            full = cand.full_name
            f = [r for r in reqs if r != "cmnd_legacy" and not self._REQUIREMENTS[r](cand, full)]
            if c is None or len(f) < len(failed):
                c, failed = cand, f
            if not f:
                break
        return c, failed

    # ---- time helpers (rnd = Random.random of the dossier stream) -----------------------------
    def _work_time(self, rnd, idx: int) -> datetime:
        """A random moment in working hours (07:30-11:30, 13:30-17:00) on working day ``idx``."""
        m = int(rnd() * 450)
        s = (450 + m) * 60 if m < 240 else (570 + m) * 60
        return self._midnights[idx] + timedelta(seconds=s + int(rnd() * 60))

    def _at(self, rnd, idx: int, after: datetime) -> datetime:
        """A random working-hours moment on working day ``idx``, strictly after ``after``."""
        t = self._work_time(rnd, idx)
        if t <= after:
            t = after + timedelta(seconds=60 + int(rnd() * 2400))
        return t

    def _work_after(self, rnd, t: datetime, lo: int, hi: int) -> datetime:
        """``t`` plus lo..hi minutes, pushed into the next working hours when it falls outside."""
        t2 = t + timedelta(seconds=lo * 60 + int(rnd() * (hi - lo + 1) * 60))
        off = t2.toordinal() - self._first_ord
        if self._working_by_off[off]:
            mins = t2.hour * 60 + t2.minute
            if 450 <= mins < 1020:
                return t2
            idx = self._next_idx[off] if mins < 450 else self._next_idx[off + 1]
        else:
            idx = self._next_idx[off]
        return self._midnights[idx] + timedelta(seconds=450 * 60 + int(rnd() * 9000))

    def _day_index(self, t: datetime) -> int:
        """Working-day index of ``t``'s date, or of the next working day."""
        return self._next_idx[t.toordinal() - self._first_ord]

    # ---- dossiers ------------------------------------------------------------------------------
    def _build_dossiers(self, rng: random.Random) -> None:
        cfg = self.config
        cal = self.calendar
        self._midnights = cal.midnights
        self._first_ord = cal.first_ordinal
        self._working_by_off = cal.working_by_offset
        self._next_idx = cal.next_index
        rnd = rng.random
        anchor = cfg.anchor
        n_hist = cfg.size
        n_total = self._n_total()
        h_start = anchor.date() - timedelta(days=cfg.history_days)
        f_end = anchor.date() + timedelta(days=cfg.future_days)
        windows = []
        for lo, hi in ((h_start, anchor.date()), (anchor.date(), f_end)):
            windows.append((lo, (hi - lo).days, cal.index_on_or_after(lo), cal.index_on_or_after(hi)))
        # ---- 1. receipt: agency, procedure, channel, time ------------------------------------
        online, postal = cfg.online_share, cfg.online_share + cfg.postal_share
        outside = cfg.online_outside_hours_share
        agency_pick = self._agency_picker.pick_r
        proc_pick = [p.pick_r for p in self._proc_picker]
        working_by_off, first_ord = self._working_by_off, self._first_ord
        raw: list[tuple[datetime, int, int, int]] = []
        for i in range(n_total):
            lo, ndays, wi0, wi1 = windows[0] if i < n_hist else windows[1]
            ag = agency_pick(rnd)
            proc = proc_pick[ag](rnd)
            r = rnd()
            channel = 2 if r < online else (3 if r < postal else 1)
            if (channel == 2 and rnd() < outside) or wi1 <= wi0:
                d = lo + timedelta(days=int(rnd() * max(1, ndays)))
                if working_by_off[d.toordinal() - first_ord]:
                    # evening 17:05-23:59 or early morning 00:00-07:20
                    mins = 1025 + int(rnd() * 415) if rnd() < 0.7 else int(rnd() * 441)
                else:
                    mins = 360 + int(rnd() * 1020)
                t0 = datetime(d.year, d.month, d.day) + timedelta(seconds=mins * 60 + int(rnd() * 60))
            else:
                t0 = self._work_time(rnd, wi0 + int(rnd() * (wi1 - wi0)))
            if i >= n_hist and t0 <= anchor:
                t0 = anchor + timedelta(seconds=60 + int(rnd() * 32_400))
            raw.append((t0, ag, proc, channel))
        raw.sort()
        # ---- 2. codes: <agency>-<YYMMDD>-<daily sequence>, duplicates share a code -----------
        seq: dict[tuple[int, date], int] = {}
        codes: list[str] = []
        groups: dict[tuple[int, date], list[int]] = {}
        agency_codes = [a.code for a in self.agencies]
        ymd: dict[date, str] = {}
        for i, (t0, ag, _, _) in enumerate(raw):
            d0 = t0.date()
            key = (ag, d0)
            s = seq.get(key, 0) + 1
            seq[key] = s
            part = ymd.get(d0)
            if part is None:
                part = ymd[d0] = f"{d0:%y%m%d}"
            codes.append(f"{agency_codes[ag]}-{part}-{s:04d}")
            groups.setdefault(key, []).append(i)
        twin = [-1] * n_total
        rate = cfg.defect_rates.get("duplicate_code", 0.0)
        if rate > 0:
            pairs = []
            for members in groups.values():
                for j in range(0, len(members) - 1, 2):
                    pairs.append((members[j], members[j + 1]))
            rng.shuffle(pairs)
            want = rate * n_total / 2
            n_pairs = int(want) + (1 if rnd() < want - int(want) else 0)
            for a, b in pairs[: min(len(pairs), n_pairs)]:
                twin[a], twin[b] = b, a
                codes[b] = codes[a]
        # ---- 3. everything else, dossier by dossier ------------------------------------------
        rates = [(d, r) for d, r in cfg.defect_rates.items() if r > 0 and d != "duplicate_code"]
        vpicker = _Picker((v, r) for v, r in cfg.variant_rates.items())
        vtotal = min(1.0, vpicker.total)
        att_cache: dict[tuple[str, bool, bool], Attachment] = {}
        dig_on, dig_off, reused = cfg.digitized_share_online, cfg.digitized_share_direct, cfg.reused_share
        units = self._units
        for i, (t0, ag, proc, channel) in enumerate(raw):
            u = _GenUnit()
            u.world = self
            u.index = i
            u.agency = ag
            u.proc = proc
            u.source_id = self.agencies[ag].source_id
            u.code = codes[i]
            u.twin = twin[i]
            u._last = None
            u.rec_id = rng.getrandbits(128)
            u.t0 = t0
            u.channel = channel
            pr = self.procedures[proc]
            flags = {d for d, r in rates if rnd() < r}
            variant = vpicker.pick_r(rnd) if vtotal > 0 and rnd() < vtotal else None
            self._timeline(rnd, u, pr, flags)
            self._applicant(rnd, u, flags, variant)
            dig_p = dig_on if channel == 2 else dig_off
            atts = []
            for name in self._attachment_names[proc]:
                key = (name, rnd() < dig_p, rnd() < reused)
                a = att_cache.get(key)
                if a is None:
                    a = att_cache[key] = Attachment(*key)
                atts.append(a)
            u.atts = tuple(atts)
            units.append(u)

    def _timeline(self, rnd, u: _GenUnit, pr: ProcedureTruth, flags: set[str]) -> None:
        cfg = self.config
        days = self.calendar.days
        t0 = u.t0
        i0 = self._day_index(t0)
        if days[i0] == t0.date() and (t0.hour >= 17):
            i0 += 1
        if pr.duration_unit == "working":
            due_idx = i0 + pr.duration_days
        else:
            due_idx = self._day_index(self._midnights[i0] + timedelta(days=pr.duration_days))
        due = self._midnights[due_idx] + _DUE_DELTA
        if "due_before_receipt" in flags:
            due = t0 - timedelta(days=1 + int(rnd() * 5), hours=int(rnd() * 9))
        u.due = due
        ev: list[tuple[datetime, int]] = []
        u.supp = ()
        u.finish_t = None
        u.ret_t = None
        u.result_file = None
        u.paid, u.paid_t = 0, None
        if pr.fee > 0 and u.channel == 2 and rnd() < cfg.online_paid_share:
            u.paid, u.paid_t = (1 if rnd() < 0.4 else 2), t0
        # reception
        if u.channel == 2:
            ev.append((t0, 1))
            t_acc = self._work_after(rnd, t0, 10, 240)
            if rnd() < cfg.refused_share:
                ev.append((t_acc, 3))
                u.finish_t = t_acc
                u.paid, u.paid_t = 0, None
                self._finish_versions(rnd, u, ev, flags)
                return
            ev.append((t_acc, 2))
        else:
            ev.append((t0, 2))
            t_acc = t0
        t_proc = self._work_after(rnd, t_acc, 5, 180)
        ev.append((t_proc, 4))
        ip = self._day_index(t_proc)
        r = rnd()
        end_status = (
            7 if r < cfg.withdrawn_share else (8 if r < cfg.withdrawn_share + cfg.stopped_share else 9)
        )
        if end_status != 9:
            fidx = ip + int(rnd() * (max(ip, due_idx) - ip + 1))
        else:
            v = rnd()
            if v < cfg.overdue_share:
                fidx = due_idx + 1 + int(rnd() * 5)
            elif v < cfg.overdue_share + cfg.on_due_date_share:
                fidx = due_idx
            else:
                fidx = ip + int(rnd() * (max(ip, due_idx - 1) - ip + 1))
            fidx = max(fidx, ip)
        last_t, last_idx = t_proc, ip
        # supplements: the clock pauses, the result moves by the same number of working days
        if rnd() < cfg.supplement_share:
            rounds = 2 if rnd() < cfg.second_supplement_share else 1
            supp = []
            for _ in range(rounds):
                ridx = last_idx + int(rnd() * (max(last_idx, fidx) - last_idx + 1))
                t_req = self._at(rnd, ridx, last_t)
                ev.append((t_req, 5))
                if rnd() < cfg.pending_supplement_share:
                    supp.append((t_req, None))
                    u.supp = tuple(supp)
                    if rnd() < 0.5:  # never answered; stopped after a while
                        t_stop = self._at(rnd, ridx + 10 + int(rnd() * 11), t_req)
                        ev.append((t_stop, 8))
                        u.finish_t = t_stop
                    self._finish_versions(rnd, u, ev, flags)
                    return
                k = 1 + int(rnd() * 5)
                t_comp = self._at(rnd, ridx + k, t_req)
                ev.append((t_comp, 4))
                supp.append((t_req, t_comp))
                fidx += k
                last_t, last_idx = t_comp, ridx + k
            u.supp = tuple(supp)
        # financial obligation (status 6) before the result
        if end_status == 9 and pr.fee > 0 and rnd() < cfg.fee_request_share:
            i6 = last_idx + int(rnd() * (max(last_idx, fidx) - last_idx + 1))
            t6 = self._at(rnd, i6, last_t)
            ev.append((t6, 6))
            k = int(rnd() * 3)
            t6b = self._at(rnd, i6 + k, t6)
            ev.append((t6b, 4))
            if not u.paid and rnd() < 0.5:
                u.paid, u.paid_t = 2, t6b
            fidx = max(fidx, i6 + k)
            last_t, last_idx = t6b, i6 + k
        fidx = max(fidx, last_idx)
        t_fin = self._at(rnd, fidx, last_t)
        ev.append((t_fin, end_status))
        u.finish_t = t_fin
        if end_status == 9:
            electronic = pr.result_type == "electronic"
            if electronic or rnd() < cfg.result_digitized_share:
                u.result_file = f"ket-qua/{u.code}.pdf"
            if electronic or (u.channel == 2 and u.result_file and rnd() < 0.7):
                t_ret = t_fin + timedelta(seconds=60 + int(rnd() * 1800))
            elif rnd() >= cfg.not_returned_share:
                t_ret = self._at(rnd, fidx + int(rnd() * 4), t_fin)
            else:
                t_ret = None
            if t_ret is not None:
                ev.append((t_ret, 10))
                u.ret_t = t_ret
        self._finish_versions(rnd, u, ev, flags)

    def _finish_versions(self, rnd, u: _GenUnit, ev: list, flags: set[str]) -> None:
        u.events = ev
        vis = [t for t, _ in ev]
        u.late_k = -1
        u.unk_k = -1
        u.unk_raw = None
        if "late_update" in flags:
            delay = timedelta(seconds=86_400 + int(rnd() * 2 * 86_400))
            n = len(ev)
            cands = [k for k in range(n) if k == n - 1 or vis[k + 1] - vis[k] > delay]
            k = cands[int(rnd() * len(cands))]
            vis[k] = vis[k] + delay
            u.late_k = k
        if "unknown_status" in flags:
            # mostly the latest version (a vendor state the dossier stays in), else any earlier one
            n = len(ev)
            k = n - 1 if n == 1 or rnd() < 0.6 else int(rnd() * (n - 1))
            u.unk_k = k
            raws = data.UNKNOWN_STATUS_RAW.get(ev[k][1]) or data.UNKNOWN_STATUS_RAW[0]
            u.unk_raw = raws[int(rnd() * len(raws))]
        u.vis = vis

    def _applicant(self, rnd, u: _GenUnit, flags: set[str], variant: str | None) -> None:
        cfg = self.config
        if not flags and variant is None:  # the common case: a clean applicant
            cid = int(rnd() * len(self.citizens))
            c = self.citizens[cid]
            phone = (
                data.PHONE_PREFIXES[int(rnd() * len(data.PHONE_PREFIXES))] + f"{int(rnd() * 10_000_000):07d}"
            )
            u.app = (c.full_name, c.id_number, 1, c.birth_date, c.sex, phone)
            u.missing = None
            u.citizen = cid
            u.vneid = rnd() < (cfg.vneid_share_online if u.channel == 2 else cfg.vneid_share_direct)
            u.static_defects = ()
            u.variants = ()
            u.match = "matched"
            return
        # which field goes missing (receipt date not together with due_before_receipt)
        missing = None
        if "missing_field" in flags:
            missing = _MISSING_FIELDS[int(rnd() * 4)]
            if missing == "received_at" and "due_before_receipt" in flags:
                missing = "procedure_code"
        if missing == "applicant_name":
            flags.difference_update(_NAME_DEFECTS)
            if variant in _NAME_VARIANTS:
                variant = None
        # identity defects are exclusive
        id_defect = None
        if flags:
            id_defect = next((d for d in _ID_DEFECTS if d in flags), None)
            if id_defect is not None:
                flags.difference_update(d for d in _ID_DEFECTS if d != id_defect)
                flags.discard("cccd_birth_year")
                flags.discard("cccd_sex")
            if variant == "not_in_registry" and id_defect == "cmnd_legacy":
                flags.discard("cmnd_legacy")
                id_defect = None
        reqs = [r for r in ("name_old_tone", "name_nfd", "cmnd_legacy") if r in flags] if flags else []
        if variant in self._REQUIREMENTS:
            reqs.append(variant)
        if variant == "not_in_registry":
            person, failed = self._ghost(rnd, reqs)
            cid = None
        else:
            cid, failed = self._pick_citizen(rnd, reqs)
            person = self.citizens[cid]
        for f in failed:
            if f == variant:
                variant = None
            else:
                flags.discard(f)
        if id_defect is not None and id_defect not in flags:
            id_defect = None
        # name as the source spells it
        if variant is None and not flags:
            name = person.full_name
        else:
            ho, cd, ten = person.ho, person.chu_dem, person.ten
            if variant == "missing_middle_name":
                cd = ""
            elif variant == "name_typo":
                ten = names.typo(ten, random.Random(int(rnd() * 2**32)))
            name = names.join_name(ho, cd, ten)
            if variant == "name_iy":
                name = names.iy_variant(name)
            if "name_old_tone" in flags:
                changed = names.old_tone(name)
                if changed == name:
                    flags.discard("name_old_tone")
                name = changed
            if variant == "name_d_lookalike":
                name = names.d_lookalike(name)
            if "name_upper" in flags:
                name = name.upper()
            if variant == "name_spacing":
                name = names.spacing(name, random.Random(int(rnd() * 2**32)))
            if "name_nfd" in flags:
                changed = names.nfd(name)
                if changed == name:
                    flags.discard("name_nfd")
                name = changed
        # identity number, birth date, sex
        number = person.id_number
        birth = person.birth_date
        sex = person.sex
        if id_defect == "cccd_format":
            k = int(rnd() * 4)
            if k == 0:  # the leading zero lost in a spreadsheet (or the first digit dropped)
                number = number[1:]
            elif k == 1:
                number = number + str(int(rnd() * 10))
            elif k == 2:
                number = number[:10]
            else:
                number = "O" + number[1:] if number[0] == "0" else number[:-1] + "O"
        elif id_defect == "cccd_prefix":
            number = data.INVALID_PREFIXES[int(rnd() * len(data.INVALID_PREFIXES))] + number[3:]
        elif id_defect == "cmnd_legacy":
            number = person.cmnd_number
        if "cccd_birth_year" in flags:
            year = int(birth[:4]) + (-3, -2, -1, 1, 2, 3)[int(rnd() * 6)]
            birth = f"{year:04d}{birth[4:]}"
            if birth.endswith("-02-29"):
                birth = birth[:-2] + "28"
        if variant == "birth_date_differs":
            old = date.fromisoformat(birth)
            new = old
            while new == old:
                new = date(old.year, 1, 1) + timedelta(days=int(rnd() * 365))
            birth = new.isoformat()
        if "cccd_sex" in flags:
            sex = 3 - sex
        phone = data.PHONE_PREFIXES[int(rnd() * len(data.PHONE_PREFIXES))] + f"{int(rnd() * 10_000_000):07d}"
        u.app = (name, number, _id_type(number), birth, sex, phone)
        u.missing = missing
        u.citizen = cid
        # VNeID verification: only a person the registry knows, with a usable number
        vp = cfg.vneid_share_online if u.channel == 2 else cfg.vneid_share_direct
        u.vneid = cid is not None and id_defect not in ("cccd_format", "cccd_prefix") and rnd() < vp
        u.static_defects = tuple(d for d in DEFECTS if d in flags and d not in _DYNAMIC) if flags else ()
        u.variants = (variant,) if variant else ()
        # expected match class (policy in the module docstring)
        if id_defect in ("cccd_format", "cccd_prefix"):
            match = "invalid_id"
        elif variant == "not_in_registry":
            match = "not_found"
        elif "cccd_birth_year" in flags or variant == "birth_date_differs":
            match = "birth_date_mismatch"
        elif missing == "applicant_name" or variant in ("missing_middle_name", "name_typo"):
            match = "name_mismatch"
        elif variant in _NORMALISING or any(d in flags for d in _NAME_DEFECTS):
            match = "matched_normalised"
        else:
            match = "matched"
        u.match = match

    def _index_units(self) -> None:
        by_src: dict[str, list[_Unit]] = {s.source_id: [] for s in self.sources}
        for u in self._units:
            by_src.setdefault(u.source_id, []).append(u)
        self._units_by_source = {}
        self._firsts_by_source = {}
        for sid, units in by_src.items():
            units.sort(key=lambda u: (u.vis[0], u.index))
            self._units_by_source[sid] = units
            self._firsts_by_source[sid] = [u.vis[0] for u in units]
        self._records_cache: dict[str, tuple[datetime, list[SourceRecord]]] = {}


_DYNAMIC = frozenset({"unknown_status", "late_update", "duplicate_code"})
_ID_DEFECTS = ("cccd_format", "cccd_prefix", "cmnd_legacy")
_DUE_DELTA = timedelta(hours=17)
_NAME_TABLES = (data.SURNAMES, data.MIDDLE_MALE, data.MIDDLE_FEMALE, data.GIVEN_MALE, data.GIVEN_FEMALE)
