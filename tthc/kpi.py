"""Province-wide Decision 766 indicators per agency and province, per day / month / quarter / year.

How a period is computed (:func:`compute_period`)
-------------------------------------------------
1. **Population.** Current versions of the dossiers whose ``received_at`` (for never-received
   dossiers: ``updated_at``) lies in the period up to its *as-of day*, across every source;
   quarantined dossiers are left out, as in the per-source stage (their dates and statuses are not
   trusted). The as-of day is the period's last day, or today for a running period: a running
   month is judged as of the end of today, never as of a future day.
2. **Outcome per dossier, in Python** (the working-day calendar is not SQL's business): each
   dossier is judged by :func:`tthc.ontime.evaluate` as of the end of the as-of day and stored in
   ``dossier_outcomes`` (codes only) with its agency and province. ``excluded`` marks a dossier that
   was never received (status 1 / 3 / unknown), ``unjudged`` a received one without due date or end
   time; the others are tthc.ontime's outcomes. The period's rows are replaced as a whole.
3. **Aggregation, in SQL** (``sql/indicators_aggregate.sql``, SQLite and PostgreSQL): counts per
   agency and per province, joined with the dossiers (channel, fee, payment, result, components),
   ``publish_state`` and ``citizen_matches``.
4. **Indicator rows** (:func:`indicator_rows`) go to ``indicators`` with scope ``agency`` /
   ``province``; the period's earlier rows for the same agencies and provinces are replaced.

The definitions are those of :mod:`tthc.indicators` with the "received" population and default
options (the tests check both give the same figures), plus:

* ``1.4_sync_rate``: received dossiers published to the national portal *with their current content*
  (``publish_state.status = 'published'`` and ``published_hash = content_hash``) / received;
* ``4.5b_population_db``: VNeID-verified, or reconciled with match class ``matched`` /
  ``matched_normalised`` / received;
* ``5.4_satisfaction`` = 100% − (overdue rate + complaint rate), the overdue rate being
  (resolved overdue + open overdue) / the on-time population of 2.1. **Complaints (PAKN) are not in
  the synced data: the complaint rate is 0 until a PAKN source exists**, so 5.4 currently equals
  2.1 where every judged dossier counts;
* counts ``channel_direct`` / ``channel_online`` / ``channel_postal`` (channel mix; NULL is direct).

Provinces (domain.md §8, ``config/units.yaml``)
-----------------------------------------------
An agency listed in the registry (a source's ``agency_code`` or one of its ``agencies``) belongs to
that source's ``province_code`` (registry entries name current units). Any other agency belongs to
the top level of its electronic identifier (``000.00.12.H40`` → ``H40``); when such a dossier was
received before the reorganisation (1 July 2025) and that top level is an old province that was
merged, it counts for the new province: H-code → statistics code (``h_codes``) → new code
(``legacy_provinces``, Nghị quyết 202/2025/QH15) → the registry province with that code (else
``P<code>``). Dossiers carry no commune of their own, so the agency is the only administrative unit
known; old communes split between provinces (441 of them) cannot be told apart this way.

Weights
-------
:func:`weighted_score` scores ratios with the weights of ``config/indicators.yaml``; a null weight
means "not verified", and the score lists those indicators as unscored instead of counting zero.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from tthc.registry import REPO_ROOT, Registry

log = logging.getLogger(__name__)

__all__ = [
    "COUNT_IDS",
    "PERIOD_TYPES",
    "RATIO_IDS",
    "Period",
    "ProvinceResolver",
    "UnitConfig",
    "compute_current_periods",
    "compute_period",
    "indicator_labels",
    "indicator_rows",
    "load_unit_config",
    "weighted_score",
]

PERIOD_TYPES = ("day", "month", "quarter", "year")
DEFAULT_UNITS_PATH = REPO_ROOT / "config" / "units.yaml"
ROMAN = ("I", "II", "III", "IV")
READ_CHUNK = 5000  # dossiers loaded per read transaction

#: Counts written per scope and period (``value`` = the count).
COUNT_IDS = (
    "received",
    "resolved",
    "resolved_early",
    "resolved_on_time",
    "resolved_overdue",
    "open_in_time",
    "open_overdue",
    "withdrawn",
    "unjudged",
    "excluded",
    "channel_direct",
    "channel_online",
    "channel_postal",
)
#: Ratios written per scope and period (``value`` = numerator / denominator, a fraction).
RATIO_IDS = (
    "1.4_sync_rate",
    "2.1_on_time",
    "3.3_online",
    "3.6_online_payment",
    "4.1_digitised_results",
    "4.2_digitised_components",
    "4.3_reuse",
    "4.5b_population_db",
    "5.4_satisfaction",
)
#: Labels of ids that ``config/indicators.yaml`` does not list (it is the source for the others).
_EXTRA_LABELS = {
    "5.4_satisfaction": "Mức độ hài lòng (100% − tỷ lệ quá hạn − tỷ lệ phản ánh, kiến nghị)",
    "channel_direct": "Số hồ sơ nộp trực tiếp",
    "channel_online": "Số hồ sơ nộp trực tuyến",
    "channel_postal": "Số hồ sơ nộp qua bưu chính công ích",
}
#: Complaints (PAKN) per scope: none until a PAKN source exists (module docstring).
COMPLAINTS_AVAILABLE = False


# ---- periods -------------------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class Period:
    """A calendar day, month, quarter or year: ``Period("quarter", date(2026, 7, 1))``."""

    type: str
    start: date

    def __post_init__(self) -> None:
        if self.type not in PERIOD_TYPES:
            raise ValueError(f"period type must be one of {PERIOD_TYPES}, not {self.type!r}")
        if isinstance(self.start, datetime):
            object.__setattr__(self, "start", self.start.date())
        s = self.start
        ok = {
            "day": True,
            "month": s.day == 1,
            "quarter": s.day == 1 and s.month in (1, 4, 7, 10),
            "year": s.day == 1 and s.month == 1,
        }[self.type]
        if not ok:
            raise ValueError(f"{s.isoformat()} is not the first day of a {self.type}")

    @classmethod
    def containing(cls, period_type: str, day: date | datetime) -> Period:
        d = day.date() if isinstance(day, datetime) else day
        if period_type == "day":
            return cls("day", d)
        if period_type == "month":
            return cls("month", d.replace(day=1))
        if period_type == "quarter":
            return cls("quarter", date(d.year, 3 * ((d.month - 1) // 3) + 1, 1))
        if period_type == "year":
            return cls("year", date(d.year, 1, 1))
        raise ValueError(f"period type must be one of {PERIOD_TYPES}, not {period_type!r}")

    @classmethod
    def parse(cls, text: str) -> Period:
        """``2026Q3`` (also ``2026-Q3``, ``Q3/2026``), ``2026-07``, ``2026``, ``2026-07-14``."""
        t = text.strip().upper()
        m = re.fullmatch(r"(\d{4})-?Q([1-4])", t) or re.fullmatch(r"Q([1-4])/(\d{4})", t)
        if m:
            year, q = (m.group(1), m.group(2)) if t[0].isdigit() else (m.group(2), m.group(1))
            return cls("quarter", date(int(year), 3 * (int(q) - 1) + 1, 1))
        if re.fullmatch(r"\d{4}", t):
            return cls("year", date(int(t), 1, 1))
        if re.fullmatch(r"\d{4}-\d{2}", t):
            return cls("month", date(int(t[:4]), int(t[5:]), 1))
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", t):
            return cls("day", date.fromisoformat(t))
        raise ValueError(f"not a period: {text!r} (examples: 2026Q3, 2026-07, 2026, 2026-07-14)")

    @property
    def end(self) -> date:
        """The first day after the period."""
        s = self.start
        if self.type == "day":
            return s + timedelta(days=1)
        if self.type == "year":
            return date(s.year + 1, 1, 1)
        months = 1 if self.type == "month" else 3
        m = s.month - 1 + months
        return date(s.year + m // 12, m % 12 + 1, 1)

    @property
    def last_day(self) -> date:
        return self.end - timedelta(days=1)

    def next(self) -> Period:
        return Period(self.type, self.end)

    def previous(self) -> Period:
        return Period.containing(self.type, self.start - timedelta(days=1))

    def months(self) -> list[Period]:
        """The months inside the period (one for a day)."""
        out, m = [], Period.containing("month", self.start)
        while m.start < self.end:
            out.append(m)
            m = m.next()
        return out

    @property
    def quarter(self) -> int:
        return (self.start.month - 1) // 3 + 1

    @property
    def code(self) -> str:
        """``2026Q3``, ``2026-07``, ``2026``, ``2026-07-14`` (what :meth:`parse` reads)."""
        s = self.start
        return {
            "day": s.isoformat(),
            "month": f"{s.year}-{s.month:02d}",
            "quarter": f"{s.year}Q{self.quarter}",
            "year": str(s.year),
        }[self.type]

    @property
    def label_vi(self) -> str:
        """``ngày 30/6/2025``, ``tháng 7/2026``, ``quý III/2026``, ``năm 2026``."""
        s = self.start
        return {
            "day": f"ngày {s.day}/{s.month}/{s.year}",
            "month": f"tháng {s.month}/{s.year}",
            "quarter": f"quý {ROMAN[self.quarter - 1]}/{s.year}",
            "year": f"năm {s.year}",
        }[self.type]


# ---- administrative units ------------------------------------------------------------------------


@dataclass(frozen=True)
class UnitConfig:
    """``config/units.yaml``: the reorganisation date, H-codes and the legacy province mapping."""

    reorganisation_date: date = date(2025, 7, 1)
    h_codes: Mapping[str, int] = field(default_factory=dict)
    legacy_provinces: Mapping[int, int] = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> UnitConfig:
        unknown = set(data) - {"reorganisation_date", "h_codes", "legacy_provinces"}
        if unknown:
            raise ValueError(f"unknown unit settings: {sorted(unknown)}")
        rd = data.get("reorganisation_date", date(2025, 7, 1))
        if not isinstance(rd, date):
            rd = date.fromisoformat(str(rd))
        h = {str(k).upper(): int(v) for k, v in (data.get("h_codes") or {}).items()}
        legacy = {int(k): int(v) for k, v in (data.get("legacy_provinces") or {}).items()}
        return cls(rd, h, legacy)


def load_unit_config(path: str | Path | None = None) -> UnitConfig:
    p = Path(path) if path is not None else DEFAULT_UNITS_PATH
    return _load_units(str(p), p.stat().st_mtime_ns if p.exists() else 0)


@lru_cache(maxsize=4)
def _load_units(path: str, _mtime: int) -> UnitConfig:
    p = Path(path)
    if not p.exists():
        log.warning("%s not found: provinces are the agencies' registry entries and code prefixes", p)
        return UnitConfig()
    return UnitConfig.from_mapping(yaml.safe_load(p.read_text(encoding="utf-8")) or {})


class ProvinceResolver:
    """Which province a dossier counts for (module docstring, "Provinces")."""

    def __init__(self, registry: Registry | None = None, units: UnitConfig | None = None) -> None:
        self.units = units or UnitConfig()
        self._agencies: dict[str, list[tuple[date | None, date | None, str]]] = {}
        self.registry_provinces: list[str] = []
        for src in registry.sources if registry is not None else ():
            if not src.province_code:
                continue
            if src.province_code not in self.registry_provinces:
                self.registry_provinces.append(src.province_code)
            for code in sorted(src.agency_codes):
                self._agencies.setdefault(code, []).append((src.valid_from, src.valid_to, src.province_code))

    def province_of(self, agency_code: str | None, received_at: datetime | date | None = None) -> str:
        if not agency_code:
            return "unknown"
        day = received_at.date() if isinstance(received_at, datetime) else received_at
        entries = self._agencies.get(agency_code)
        if entries:
            for vf, vt, prov in entries:
                if day is None or ((vf is None or vf <= day) and (vt is None or day <= vt)):
                    return prov
            return entries[0][2]
        top = agency_code.rsplit(".", 1)[-1].upper()
        if day is not None and day < self.units.reorganisation_date:
            return self._legacy(top)
        return top

    def _legacy(self, top: str) -> str:
        stat = self.units.h_codes.get(top)
        new = self.units.legacy_provinces.get(stat) if stat is not None else None
        if new is None or new == stat:
            return top
        for prov in self.registry_provinces:
            if self.units.h_codes.get(prov) == new:
                return prov
        return f"P{new:02d}"

    def statistics_code(self, province_code: str) -> int | None:
        if province_code in self.units.h_codes:
            return self.units.h_codes[province_code]
        m = re.fullmatch(r"P(\d{2})", province_code)
        return int(m.group(1)) if m else None

    def province_name(self, province_code: str) -> str | None:
        """The new unit's name from ``vietnam-provinces`` (``Nghệ An``, ``Thành phố Hà Nội``)."""
        stat = self.statistics_code(province_code)
        if stat is None:
            return None
        try:
            from vietnam_provinces import Province, ProvinceCode

            return Province.from_code(ProvinceCode(stat)).name
        except ValueError:
            return None

    def province_title(self, province_code: str) -> str:
        """``tỉnh Nghệ An`` / ``Thành phố Hà Nội`` / the code when the name is unknown."""
        name = self.province_name(province_code)
        if name is None:
            return f"tỉnh {province_code}"
        return name if name.lower().startswith("thành phố") else f"tỉnh {name}"


# ---- outcomes ------------------------------------------------------------------------------------


def classify(
    dossier: Any,
    as_of: datetime,
    *,
    calendar: Any = None,
    legal_durations: Mapping[str, Any] | None = None,
) -> tuple[str, str | None] | None:
    """``(outcome, reason)`` stored for one dossier judged at ``as_of``; None if not in the period."""
    from tthc.ontime import EXCLUDED, NOT_RECEIVED_REASONS, UNJUDGED_REASONS, evaluate

    ev = evaluate(
        dossier,
        as_of,
        legal_duration=(legal_durations or {}).get(dossier.procedure_code or ""),
        calendar=calendar,
    )
    if ev.outcome != EXCLUDED:
        return ev.outcome, ev.reason
    if ev.reason in NOT_RECEIVED_REASONS:
        return "excluded", ev.reason
    if ev.reason in UNJUDGED_REASONS:
        return "unjudged", ev.reason
    return None  # received after the as-of instant


def _dialect_insert(conn: Connection, table: sa.Table) -> Any:
    return (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(table)


def _period_dossiers(conn: Connection, start: datetime, end: datetime) -> dict[str, list[str]]:
    from tthc.warehouse.sqlfiles import load_sql

    stmt = load_sql("indicators_period_dossiers").bindparams(
        sa.bindparam("start", type_=sa.DateTime()), sa.bindparam("end", type_=sa.DateTime())
    )
    out: dict[str, list[str]] = {}
    for sid, code in conn.execute(stmt, {"start": start, "end": end}):
        out.setdefault(sid, []).append(code)
    return out


def aggregate(
    bind: Engine | Connection, period: Period, province_code: str | None = None
) -> list[dict[str, Any]]:
    """``sql/indicators_aggregate.sql`` for one period: one dict per (scope, scope_code)."""
    from tthc.warehouse.sqlfiles import load_sql

    stmt = load_sql("indicators_aggregate").bindparams(sa.bindparam("period_start", type_=sa.Date()))
    params = {"period_type": period.type, "period_start": period.start, "province_code": province_code}
    if isinstance(bind, Engine):
        with bind.connect() as conn:
            rows = conn.execute(stmt, params).mappings().all()
    else:
        rows = bind.execute(stmt, params).mappings().all()
    return [{k: (int(v) if k not in ("scope", "scope_code") else v) for k, v in r.items()} for r in rows]


def indicator_rows(agg: Mapping[str, Any], complaints: int = 0) -> list[dict[str, Any]]:
    """Indicator rows (``scope``, ``scope_code``, ``indicator_id``, numerator, denominator, value)."""
    c = dict(agg)
    c["resolved"] = c["resolved_early"] + c["resolved_on_time"] + c["resolved_overdue"]
    c["channel_direct"] = c["received"] - c["channel_online"] - c["channel_postal"]
    judged = c["resolved"] + c["open_in_time"] + c["open_overdue"]
    in_time = c["resolved_early"] + c["resolved_on_time"] + c["open_in_time"]
    overdue = c["resolved_overdue"] + c["open_overdue"]
    received = c["received"]
    ratios = {
        "1.4_sync_rate": (c["synced"], received),
        "2.1_on_time": (in_time, judged),
        "3.3_online": (c["channel_online"], received),
        "3.6_online_payment": (c["paid_online"], c["fee_bearing"]),
        "4.1_digitised_results": (c["digitised_results"], c["paper_results"]),
        "4.2_digitised_components": (c["digitised"], received),
        "4.3_reuse": (c["reused"], received),
        "4.5b_population_db": (c["population_db"], received),
        # 100% − (overdue rate + complaint rate), both over the judged population (docstring)
        "5.4_satisfaction": (max(judged - overdue - complaints, 0), judged),
    }
    base = {"scope": agg["scope"], "scope_code": agg["scope_code"]}
    out = [
        {**base, "indicator_id": k, "numerator": c[k], "denominator": None, "value": c[k]} for k in COUNT_IDS
    ]
    for k in RATIO_IDS:
        num, den = ratios[k]
        out.append(
            {
                **base,
                "indicator_id": k,
                "numerator": num,
                "denominator": den,
                "value": num / den if den else None,
            }
        )
    return out


def compute_period(
    engine: Engine,
    period_type: str,
    period_start: date,
    *,
    scope: str | None = None,
    as_of: datetime | date | None = None,
    registry: Registry | None = None,
    units: UnitConfig | None = None,
    calendar: Any = None,
    legal_durations: Mapping[str, Any] | None = None,
    run_id: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Compute one period's indicators (module docstring) and write them; returns a summary.

    ``scope``: a province code to recompute that province only (its agencies and its own row),
    None for every province. ``as_of``: the moment the data stands for (default: now, Vietnam
    time); a running period is judged as of the end of that day. ``registry`` defaults to the
    cached source registry, ``units`` to ``config/units.yaml``.
    """
    from tthc.timeutil import vn_now
    from tthc.warehouse import repo
    from tthc.warehouse import schema as s

    period = Period(period_type, period_start)
    now = now or vn_now()
    if as_of is None:
        as_of = now
    as_of_day = as_of.date() if isinstance(as_of, datetime) else as_of
    summary: dict[str, Any] = {"period_type": period.type, "period_start": period.start.isoformat()}
    if as_of_day < period.start:
        return {**summary, "skipped": "period has not started", "dossiers": 0, "indicators": 0}
    judge_day = min(period.last_day, as_of_day)
    judge_at = datetime.combine(judge_day, time.max)
    if registry is None:
        from tthc.registry import cached_registry

        registry = cached_registry()
    resolver = ProvinceResolver(registry, units or load_unit_config())

    outcomes: list[dict[str, Any]] = []
    t = s.dossier_outcomes
    start = datetime.combine(period.start, time.min)
    end = datetime.combine(judge_day + timedelta(days=1), time.min)
    # Reads in short transactions, judging outside any: on SQLite every transaction holds the write
    # lock (tthc.warehouse.db), and source DAGs must not wait for a year's worth of judging.
    with engine.connect() as conn:
        todo = _period_dossiers(conn, start, end)
    for sid, codes in todo.items():
        for i in range(0, len(codes), READ_CHUNK):
            with engine.connect() as conn:
                batch = repo.load_dossiers(conn, sid, codes[i : i + READ_CHUNK])
            for d in batch:
                verdict = classify(d, judge_at, calendar=calendar, legal_durations=legal_durations)
                if verdict is None:
                    continue
                prov = resolver.province_of(d.agency_code, d.received_at or d.updated_at)
                if scope is not None and prov != scope:
                    continue
                outcomes.append(
                    {
                        "period_type": period.type,
                        "period_start": period.start,
                        "source_id": d.source_id,
                        "dossier_code": d.dossier_code,
                        "period_end": judge_day,
                        "agency_code": d.agency_code,
                        "province_code": prov,
                        "received_at": d.received_at,
                        "outcome": verdict[0],
                        "reason": verdict[1],
                        "run_id": run_id,
                        "computed_at": now,
                    }
                )

    with engine.begin() as conn:
        in_period = (t.c.period_type == period.type) & (t.c.period_start == period.start)
        old = sa.select(t.c.agency_code, t.c.province_code).where(in_period).distinct()
        if scope is not None:
            old = old.where(t.c.province_code == scope)
        old_rows = conn.execute(old).all()
        stale_agencies = {a or "unknown" for a, _ in old_rows}
        stale_provinces = {p for _, p in old_rows}
        dele = t.delete().where(in_period)
        if scope is not None:
            dele = dele.where(t.c.province_code == scope)
        conn.execute(dele)
        if outcomes:
            ins = _dialect_insert(conn, t)
            ins = ins.on_conflict_do_update(
                index_elements=["period_type", "period_start", "source_id", "dossier_code"],
                set_={c: ins.excluded[c] for c in outcomes[0] if c not in t.primary_key.columns},
            )
            for i in range(0, len(outcomes), 5000):
                conn.execute(ins, outcomes[i : i + 5000])

        rows: list[dict[str, Any]] = []
        for agg in aggregate(conn, period, scope):
            rows.extend(indicator_rows(agg))
        i = s.indicators
        ind_period = (i.c.period_type == period.type) & (i.c.period_start == period.start)
        if scope is None:
            conn.execute(i.delete().where(ind_period & i.c.scope.in_(("agency", "province"))))
        else:
            stale_provinces.add(scope)
            for sc, codes in (("agency", stale_agencies), ("province", stale_provinces)):
                if codes:
                    conn.execute(i.delete().where(ind_period & (i.c.scope == sc) & i.c.scope_code.in_(codes)))
        for r in rows:
            r.update(period_type=period.type, period_start=period.start, run_id=run_id, computed_at=now)
        repo.save_indicators(conn, rows, now=now)

    by_outcome: dict[str, int] = {}
    for o in outcomes:
        by_outcome[o["outcome"]] = by_outcome.get(o["outcome"], 0) + 1
    return {
        **summary,
        "as_of": judge_day.isoformat(),
        "dossiers": len(outcomes),
        "outcomes": by_outcome,
        "indicators": len(rows),
        "provinces": sorted({r["scope_code"] for r in rows if r["scope"] == "province"}),
    }


def periods_to_compute(
    as_of: datetime | date, *, types: Sequence[str] = PERIOD_TYPES, settle_days: int = 7
) -> list[Period]:
    """The running period of each type, plus the one before while it ended ``settle_days`` ago or
    less (late updates of its last days still arrive: sources re-read a look-back window)."""
    day = as_of.date() if isinstance(as_of, datetime) else as_of
    out: list[Period] = []
    for t in types:
        cur = Period.containing(t, day)
        prev = cur.previous()
        if (day - prev.last_day).days <= settle_days:
            out.append(prev)
        out.append(cur)
    return out


def compute_current_periods(
    engine: Engine,
    as_of: datetime | None = None,
    *,
    types: Sequence[str] = PERIOD_TYPES,
    settle_days: int = 7,
    **kwargs: Any,
) -> list[dict[str, Any]]:
    """:func:`compute_period` for :func:`periods_to_compute` (what the province DAG runs)."""
    from tthc.timeutil import vn_now

    as_of = as_of or vn_now()
    return [
        compute_period(engine, p.type, p.start, as_of=as_of, **kwargs)
        for p in periods_to_compute(as_of, types=types, settle_days=settle_days)
    ]


# ---- labels and weights --------------------------------------------------------------------------


def indicator_labels(config: Mapping[str, Any] | None = None) -> dict[str, str]:
    """Vietnamese labels of every id written here (``config/indicators.yaml`` first)."""
    if config is None:
        from tthc.indicators import load_indicator_config

        config = load_indicator_config()
    labels = dict(_EXTRA_LABELS)
    labels.update({i["id"]: i["label_vi"] for i in config["indicators"]})
    return labels


def weighted_score(
    values: Mapping[str, float | None], config: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Points of the ratios that have a weight in ``config/indicators.yaml`` (value × weight).

    Returns ``{"points", "max_points", "scored": [ids], "unscored": [ids without a verified weight
    or without a value]}``; ``points`` is None when nothing could be scored.
    """
    if config is None:
        from tthc.indicators import load_indicator_config

        config = load_indicator_config()
    weights = {i["id"]: i.get("weight") for i in config["indicators"] if i.get("kind", "ratio") == "ratio"}
    points = 0.0
    max_points = 0.0
    scored, unscored = [], []
    for iid in RATIO_IDS:
        w = weights.get(iid)
        v = values.get(iid)
        if w is None or v is None:
            unscored.append(iid)
            continue
        scored.append(iid)
        points += float(v) * float(w)
        max_points += float(w)
    return {
        "points": points if scored else None,
        "max_points": max_points if scored else None,
        "scored": scored,
        "unscored": unscored,
    }


def load_period_values(
    bind: Engine | Connection, period: Period, scope: str, scope_code: str
) -> dict[str, dict[str, Any]]:
    """Stored indicator rows of one scope and period, by indicator id."""
    from tthc.warehouse import repo

    rows = repo.load_indicators(
        bind, period_type=period.type, period_start=period.start, scope=scope, scope_code=scope_code
    )
    return {r["indicator_id"]: r for r in rows}
