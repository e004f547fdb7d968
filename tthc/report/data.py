"""What a quarterly report shows, read from the ``indicators`` table (aggregates only).

:func:`load_report_data` optionally recomputes the quarter and its months first
(:func:`tthc.kpi.compute_period`), then reads the province's rows, its agencies' rows and the
monthly trend (up to twelve months ending with the quarter). Nothing here reads a dossier's
applicant fields: agency names come from the registry, else from the dossiers' ``agency_name``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tthc.kpi import Period, ProvinceResolver, indicator_labels, load_period_values, weighted_score
from tthc.registry import Registry

__all__ = ["Figures", "ReportData", "load_report_data"]


@dataclass
class Figures:
    """The indicator rows of one scope (province or agency) and period."""

    code: str
    name: str
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)

    def count(self, iid: str) -> int:
        r = self.rows.get(iid)
        return int(r["numerator"]) if r else 0

    def num(self, iid: str) -> int:
        return self.count(iid)

    def den(self, iid: str) -> int:
        r = self.rows.get(iid)
        return int(r["denominator"]) if r and r["denominator"] is not None else 0

    def ratio(self, iid: str) -> float | None:
        r = self.rows.get(iid)
        return None if r is None else r["value"]

    @property
    def received(self) -> int:
        return self.count("received")

    @property
    def resolved(self) -> int:
        return self.count("resolved")

    @property
    def open(self) -> int:
        return self.count("open_in_time") + self.count("open_overdue")

    @property
    def overdue_all(self) -> int:
        return self.count("resolved_overdue") + self.count("open_overdue")

    @property
    def empty(self) -> bool:
        return not self.rows


@dataclass
class ReportData:
    period: Period
    province_code: str
    province_title: str  # "tỉnh Nghệ An"
    subject: str  # how the sentence names the province: "tỉnh" / "thành phố"
    province: Figures
    agencies: list[Figures]
    months: list[tuple[Period, Figures]]
    labels: dict[str, str]
    score: dict[str, Any]
    as_of: date | None
    generated_at: datetime
    kind: str = "province"  # or "agency": the same report narrowed to one agency

    @property
    def provisional(self) -> bool:
        """The data stop before the quarter's last day (the quarter is still running)."""
        return self.as_of is not None and self.as_of < self.period.last_day

    def for_agency(self, agency: Figures, months: list[tuple[Period, Figures]]) -> ReportData:
        """The same report narrowed to one agency (no per-agency table)."""
        return ReportData(
            period=self.period,
            province_code=self.province_code,
            province_title=self.province_title,
            subject=agency.name,
            province=agency,
            agencies=[],
            months=months,
            labels=self.labels,
            score=weighted_score({k: agency.ratio(k) for k in agency.rows}),
            as_of=self.as_of,
            generated_at=self.generated_at,
            kind="agency",
        )


def agency_names(engine: Engine, registry: Registry | None) -> dict[str, str]:
    """Agency code → name: the registry first, else the most recent name the dossiers carry."""
    from tthc.warehouse import schema as s

    t = s.dossiers
    with engine.connect() as conn:
        names = {
            code: name
            for code, name in conn.execute(
                sa.select(t.c.agency_code, sa.func.max(t.c.agency_name))
                .where(t.c.agency_code.is_not(None))
                .group_by(t.c.agency_code)
            )
            if name
        }
    for src in registry.sources if registry is not None else ():
        names[src.agency_code] = src.agency_name
        for a in src.agencies:
            names[a.code] = a.name
    return names


def _as_of(engine: Engine, period: Period, province_code: str) -> date | None:
    from tthc.warehouse import schema as s

    t = s.dossier_outcomes
    with engine.connect() as conn:
        v = conn.execute(
            sa.select(sa.func.max(t.c.period_end)).where(
                (t.c.period_type == period.type)
                & (t.c.period_start == period.start)
                & (t.c.province_code == province_code)
            )
        ).scalar()
    if isinstance(v, str):
        v = date.fromisoformat(v)
    return v


def _agencies_of(engine: Engine, period: Period, province_code: str) -> list[str]:
    from tthc.warehouse import schema as s

    t = s.dossier_outcomes
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(sa.func.coalesce(t.c.agency_code, "unknown"))
            .where(
                (t.c.period_type == period.type)
                & (t.c.period_start == period.start)
                & (t.c.province_code == province_code)
            )
            .distinct()
        ).all()
    return sorted(r[0] for r in rows)


def trend_months(period: Period, count: int = 12) -> list[Period]:
    """``count`` months ending with the period's last month, oldest first."""
    months = [Period.containing("month", period.last_day)]
    while len(months) < count:
        months.insert(0, months[0].previous())
    return months


def load_report_data(
    engine: Engine,
    period: Period,
    province_code: str,
    *,
    registry: Registry | None = None,
    resolver: ProvinceResolver | None = None,
    recompute: bool = True,
    as_of: datetime | None = None,
    now: datetime | None = None,
) -> ReportData:
    """Everything the report shows for ``period`` (a quarter, usually) and one province."""
    from tthc.kpi import compute_period, load_unit_config
    from tthc.timeutil import vn_now

    now = now or vn_now()
    if registry is None:
        from tthc.registry import cached_registry

        registry = cached_registry()
    resolver = resolver or ProvinceResolver(registry, load_unit_config())
    if recompute:
        for p in [period, *period.months()]:
            compute_period(
                engine,
                p.type,
                p.start,
                scope=province_code,
                as_of=as_of or now,
                registry=registry,
                units=resolver.units,
                now=now,
            )
    names = agency_names(engine, registry)
    title = resolver.province_title(province_code)
    subject = "thành phố" if title.lower().startswith("thành phố") else "tỉnh"
    prov = Figures(province_code, title, load_period_values(engine, period, "province", province_code))
    agencies = [
        Figures(code, names.get(code, code), load_period_values(engine, period, "agency", code))
        for code in _agencies_of(engine, period, province_code)
    ]
    agencies.sort(key=lambda f: (-f.received, f.name))
    months: list[tuple[Period, Figures]] = []
    for m in trend_months(period):
        rows = load_period_values(engine, m, "province", province_code)
        if rows:
            months.append((m, Figures(province_code, title, rows)))
    return ReportData(
        period=period,
        province_code=province_code,
        province_title=title,
        subject=subject,
        province=prov,
        agencies=agencies,
        months=months,
        labels=indicator_labels(),
        score=weighted_score({k: prov.ratio(k) for k in prov.rows}),
        as_of=_as_of(engine, period, province_code),
        generated_at=now,
    )


def agency_months(
    engine: Engine, period: Period, agency_code: str, name: str
) -> list[tuple[Period, Figures]]:
    out = []
    for m in trend_months(period):
        rows = load_period_values(engine, m, "agency", agency_code)
        if rows:
            out.append((m, Figures(agency_code, name, rows)))
    return out
