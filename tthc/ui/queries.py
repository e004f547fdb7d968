"""Read-only warehouse queries behind the UI pages: aggregates, dossier codes and rule ids only.

Every query names the columns it reads; none reads a column that may hold personal data
(``dossiers.applicant_*``, payloads, ``raw_records``, ``lookup_cache``, ``citizen_matches.id_hash``).
``dossiers`` is joined only for ``agency_code``. Error texts (``publish_state.last_error``) were
scrubbed when written and are scrubbed again here before they reach a page.

All functions take an :class:`~sqlalchemy.engine.Engine` and run on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tthc.privacy import scrub_digits
from tthc.warehouse import schema as s
from tthc.warehouse.sqlfiles import load_sql

ERROR_PREVIEW = 300  # characters of an error text shown on a page
LIST_LIMIT = 200  # rows of a dossier-code list shown on a page


def _rows(bind: Engine, stmt: Any, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    with bind.connect() as conn:
        return [dict(m) for m in conn.execute(stmt, params or {}).mappings()]


def clean_error(text: str | None) -> str | None:
    """An error text as a page may show it: digit runs masked, one paragraph, bounded."""
    if not text:
        return text
    one = " ".join(scrub_digits(text).split())
    return one if len(one) <= ERROR_PREVIEW else one[: ERROR_PREVIEW - 1] + "…"


def _as_date(v: Any) -> date | None:
    if v is None or isinstance(v, date) and not isinstance(v, datetime):
        return v
    if isinstance(v, datetime):
        return v.date()
    return date.fromisoformat(str(v)[:10])


# ---- indicators ---------------------------------------------------------------------------------


def indicator_periods(bind: Engine) -> dict[str, dict[str, list[date]]]:
    """period_type → scope → period starts present, newest first."""
    t = s.indicators
    stmt = sa.select(t.c.period_type, t.c.scope, t.c.period_start).distinct()
    out: dict[str, dict[str, list[date]]] = defaultdict(lambda: defaultdict(list))
    for r in _rows(bind, stmt):
        out[r["period_type"]][r["scope"]].append(_as_date(r["period_start"]))  # type: ignore[arg-type]
    for by_scope in out.values():
        for starts in by_scope.values():
            starts.sort(reverse=True)
    return {k: dict(v) for k, v in out.items()}


def indicator_values(bind: Engine, period_type: str, scope: str, period_start: date) -> list[dict[str, Any]]:
    t = s.indicators
    stmt = (
        sa.select(
            t.c.scope_code, t.c.indicator_id, t.c.numerator, t.c.denominator, t.c.value, t.c.computed_at
        )
        .where(t.c.period_type == period_type, t.c.scope == scope, t.c.period_start == period_start)
        .order_by(t.c.scope_code, t.c.indicator_id)
    )
    return _rows(bind, stmt)


def indicator_trend(
    bind: Engine,
    period_type: str,
    scope: str,
    indicator_id: str,
    scope_code: str | None = None,
    limit: int = 24,
) -> list[dict[str, Any]]:
    """Per period (oldest first): summed numerator and denominator of the scope's codes.

    With ``scope_code`` it is that code's own figure; without, the total over every code of the
    scope (a ratio of sums, which is the right total when the codes partition the dossiers).
    """
    t = s.indicators
    stmt = (
        sa.select(
            t.c.period_start,
            sa.func.sum(t.c.numerator).label("numerator"),
            sa.func.sum(t.c.denominator).label("denominator"),
        )
        .where(t.c.period_type == period_type, t.c.scope == scope, t.c.indicator_id == indicator_id)
        .group_by(t.c.period_start)
        .order_by(t.c.period_start.desc())
        .limit(limit)
    )
    if scope_code is not None:
        stmt = stmt.where(t.c.scope_code == scope_code)
    rows = _rows(bind, stmt)
    for r in rows:
        r["period_start"] = _as_date(r["period_start"])
        den = r["denominator"]
        r["value"] = r["numerator"] if den is None else (r["numerator"] / den if den else None)
    rows.reverse()
    return rows


# ---- data quality -------------------------------------------------------------------------------


@dataclass
class ValidationRun:
    source_id: str
    run_id: str
    at: datetime


def validation_runs(bind: Engine, source_id: str | None = None, limit: int = 60) -> list[ValidationRun]:
    """(source, run) pairs that saved validation results, newest first."""
    v = s.validation_results
    stmt = (
        sa.select(v.c.source_id, v.c.run_id, sa.func.max(v.c.created_at).label("at"))
        .group_by(v.c.source_id, v.c.run_id)
        .order_by(sa.func.max(v.c.created_at).desc(), v.c.source_id)
        .limit(limit)
    )
    if source_id is not None:
        stmt = stmt.where(v.c.source_id == source_id)
    return [ValidationRun(r["source_id"], r["run_id"], r["at"]) for r in _rows(bind, stmt)]


def latest_validation_runs(bind: Engine, source_id: str | None = None) -> list[ValidationRun]:
    """The newest validated run of each source (of ``source_id`` only when given)."""
    v = s.validation_results
    latest = (
        sa.select(v.c.source_id, sa.func.max(v.c.created_at).label("at"))
        .group_by(v.c.source_id)
        .subquery("latest")
    )
    stmt = (
        sa.select(v.c.source_id, v.c.run_id, v.c.created_at)
        .join(latest, sa.and_(latest.c.source_id == v.c.source_id, latest.c.at == v.c.created_at))
        .distinct()
        .order_by(v.c.source_id)
    )
    if source_id is not None:
        stmt = stmt.where(v.c.source_id == source_id)
    seen: dict[str, ValidationRun] = {}
    for r in _rows(bind, stmt):
        seen.setdefault(r["source_id"], ValidationRun(r["source_id"], r["run_id"], r["created_at"]))
    return list(seen.values())


def _run_filter(table: sa.Table, runs: list[ValidationRun]) -> Any:
    return sa.or_(*(sa.and_(table.c.source_id == r.source_id, table.c.run_id == r.run_id) for r in runs))


def failing_rules(bind: Engine, runs: list[ValidationRun]) -> list[dict[str, Any]]:
    """Rules with failures in the given runs: counts per source, suite and rule."""
    if not runs:
        return []
    v = s.validation_results
    stmt = (
        sa.select(v.c.source_id, v.c.run_id, v.c.suite, v.c.rule_id, v.c.severity, v.c.evaluated, v.c.failed)
        .where(_run_filter(v, runs), v.c.failed > 0)
        .order_by(v.c.failed.desc(), v.c.source_id, v.c.rule_id)
    )
    return _rows(bind, stmt)


def issues_by_agency(bind: Engine, runs: list[ValidationRun]) -> list[dict[str, Any]]:
    """Dossiers hit per agency and rule in the given runs (agency from the current dossier row)."""
    if not runs:
        return []
    i, d = s.dossier_issues, s.dossiers
    n = sa.func.count(sa.distinct(i.c.dossier_code)).label("dossiers")
    stmt = (
        sa.select(i.c.source_id, d.c.agency_code, i.c.rule_id, i.c.severity, n)
        .select_from(
            i.outerjoin(d, sa.and_(d.c.source_id == i.c.source_id, d.c.dossier_code == i.c.dossier_code))
        )
        .where(_run_filter(i, runs))
        .group_by(i.c.source_id, d.c.agency_code, i.c.rule_id, i.c.severity)
        .order_by(i.c.source_id, d.c.agency_code, n.desc(), i.c.rule_id)
    )
    return _rows(bind, stmt)


def quality_by_agency(bind: Engine, source_id: str | None = None) -> list[dict[str, Any]]:
    """Latest dossier versions per agency by quality status (``sql/quality_by_agency.sql``)."""
    from tthc.warehouse import repo

    return repo.quality_by_agency(bind, source_id)


@dataclass
class Held:
    total: int = 0
    by_agency: list[dict[str, Any]] = field(default_factory=list)
    by_rule: Counter[str] = field(default_factory=Counter)
    rows: list[dict[str, Any]] = field(default_factory=list)  # the newest LIST_LIMIT holds


def held(bind: Engine, source_id: str | None = None) -> Held:
    """Dossiers held in quarantine now: per agency, per rule, and the newest codes."""
    q, d = s.quarantine, s.dossiers
    joined = q.outerjoin(d, sa.and_(d.c.source_id == q.c.source_id, d.c.dossier_code == q.c.dossier_code))
    where = [q.c.status == "held"]
    if source_id is not None:
        where.append(q.c.source_id == source_id)
    out = Held()
    per_agency = (
        sa.select(q.c.source_id, d.c.agency_code, sa.func.count().label("held"))
        .select_from(joined)
        .where(*where)
        .group_by(q.c.source_id, d.c.agency_code)
        .order_by(q.c.source_id, d.c.agency_code)
    )
    out.by_agency = _rows(bind, per_agency)
    out.total = sum(r["held"] for r in out.by_agency)
    with bind.connect() as conn:  # reasons are a JSON list per row: counted here, streamed
        for (reasons,) in conn.execute(sa.select(q.c.reasons).where(*where)):
            out.by_rule.update(reasons or [])
    newest = (
        sa.select(q.c.source_id, q.c.dossier_code, d.c.agency_code, q.c.reasons, q.c.held_at, q.c.last_run_id)
        .select_from(joined)
        .where(*where)
        .order_by(q.c.held_at.desc(), q.c.source_id, q.c.dossier_code)
        .limit(LIST_LIMIT)
    )
    out.rows = _rows(bind, newest)
    return out


def quality_trend(bind: Engine, source_id: str | None = None, limit: int = 30) -> list[dict[str, Any]]:
    """Per run (oldest first): dossiers validated, dossiers with critical / warning issues, held.

    Runs of several sources that share an Airflow run id (the same scheduled night) are summed.
    """
    runs = validation_runs(bind, source_id, limit=limit * 8)
    by_run: dict[str, dict[str, Any]] = {}
    for r in runs:
        e = by_run.setdefault(
            r.run_id,
            {"run_id": r.run_id, "at": r.at, "pairs": [], "evaluated": 0, "critical": 0, "warning": 0},
        )
        e["at"] = min(e["at"], r.at)
        e["pairs"].append(r)
    chosen = sorted(by_run.values(), key=lambda e: e["at"], reverse=True)[:limit]
    pairs = [p for e in chosen for p in e["pairs"]]
    if not pairs:
        return []
    v, i, pr = s.validation_results, s.dossier_issues, s.pipeline_runs
    # rows evaluated: the largest per-rule count of a (run, source, suite) is the batch size
    evaluated = (
        sa.select(v.c.run_id, v.c.source_id, v.c.suite, sa.func.max(v.c.evaluated).label("n"))
        .where(_run_filter(v, pairs))
        .group_by(v.c.run_id, v.c.source_id, v.c.suite)
    )
    hits = (
        sa.select(i.c.run_id, i.c.severity, sa.func.count(sa.distinct(i.c.dossier_code)).label("n"))
        .where(_run_filter(i, pairs))
        .group_by(i.c.run_id, i.c.source_id, i.c.severity)
    )
    quarantined = (
        sa.select(pr.c.run_id, sa.func.sum(pr.c.quarantined).label("n"))
        .where(_run_filter(pr, pairs), pr.c.stage == "validate")
        .group_by(pr.c.run_id)
    )
    for r in _rows(bind, evaluated):
        by_run[r["run_id"]]["evaluated"] += int(r["n"] or 0)
    for r in _rows(bind, hits):
        if r["severity"] in ("critical", "warning"):
            by_run[r["run_id"]][r["severity"]] += int(r["n"] or 0)
    held_n = {r["run_id"]: r["n"] for r in _rows(bind, quarantined)}
    out = []
    for e in reversed(chosen):
        e = {k: val for k, val in e.items() if k != "pairs"}
        e["quarantined"] = held_n.get(e["run_id"])
        e["sources"] = len(by_run[e["run_id"]]["pairs"])
        out.append(e)
    return out


def quality_sources(bind: Engine) -> list[str]:
    v = s.validation_results
    d = s.dossiers
    stmt = sa.union(sa.select(v.c.source_id), sa.select(d.c.source_id))
    return sorted({r["source_id"] for r in _rows(bind, stmt)})


# ---- portal sync --------------------------------------------------------------------------------


def publish_by_agency(bind: Engine) -> list[dict[str, Any]]:
    """Publish states per source and agency: published / pending / failed and attempts."""
    p, d = s.publish_state, s.dossiers

    def count_of(status: str) -> Any:
        return sa.func.sum(sa.case((p.c.status == status, 1), else_=0)).label(status)

    stmt = (
        sa.select(
            p.c.source_id,
            d.c.agency_code,
            count_of("published"),
            count_of("pending"),
            count_of("failed"),
            sa.func.sum(sa.case((p.c.status == "failed", p.c.attempts), else_=0)).label("failed_attempts"),
        )
        .select_from(
            p.outerjoin(d, sa.and_(d.c.source_id == p.c.source_id, d.c.dossier_code == p.c.dossier_code))
        )
        .group_by(p.c.source_id, d.c.agency_code)
        .order_by(p.c.source_id, d.c.agency_code)
    )
    rows = _rows(bind, stmt)
    for r in rows:
        for k in ("published", "pending", "failed", "failed_attempts"):
            r[k] = int(r[k] or 0)
    return rows


def publish_waiting(bind: Engine) -> dict[str, int]:
    """Per source: dossiers that should go to the portal now (``sql/publish_candidates.sql``)."""
    d = s.dossiers
    sources = [r["source_id"] for r in _rows(bind, sa.select(d.c.source_id).distinct())]
    cand = (
        load_sql("publish_candidates")
        .columns(sa.column("source_id", sa.String), sa.column("dossier_code", sa.String))
        .subquery("cand")
    )
    stmt = sa.select(sa.func.count()).select_from(cand)
    out: dict[str, int] = {}
    with bind.connect() as conn:
        for sid in sorted(sources):
            out[sid] = int(conn.execute(stmt, {"source_id": sid}).scalar() or 0)
    return out


def publish_failures(bind: Engine, source_id: str | None = None) -> tuple[int, list[dict[str, Any]]]:
    """(how many dossiers failed to publish, the most recent ones with their scrubbed last error)."""
    p, d = s.publish_state, s.dossiers
    where = [p.c.status == "failed"]
    if source_id is not None:
        where.append(p.c.source_id == source_id)
    with bind.connect() as conn:
        total = int(conn.execute(sa.select(sa.func.count()).select_from(p).where(*where)).scalar() or 0)
    stmt = (
        sa.select(
            p.c.source_id,
            p.c.dossier_code,
            d.c.agency_code,
            p.c.attempts,
            p.c.last_attempt_at,
            p.c.last_error,
        )
        .select_from(
            p.outerjoin(d, sa.and_(d.c.source_id == p.c.source_id, d.c.dossier_code == p.c.dossier_code))
        )
        .where(*where)
        .order_by(p.c.last_attempt_at.desc(), p.c.source_id, p.c.dossier_code)
        .limit(LIST_LIMIT)
    )
    rows = _rows(bind, stmt)
    for r in rows:
        r["last_error"] = clean_error(r["last_error"])
    return total, rows


def outbox_counts(bind: Engine) -> list[dict[str, Any]]:
    o = s.publish_outbox
    stmt = (
        sa.select(o.c.source_id, o.c.kind, o.c.status, sa.func.count().label("n"))
        .group_by(o.c.source_id, o.c.kind, o.c.status)
        .order_by(o.c.source_id, o.c.kind, o.c.status)
    )
    return _rows(bind, stmt)


# ---- citizen lookups ----------------------------------------------------------------------------


def match_classes(bind: Engine) -> list[dict[str, Any]]:
    """Reconciliation outcomes per source, agency and class (counts only)."""
    m, d = s.citizen_matches, s.dossiers
    stmt = (
        sa.select(m.c.source_id, d.c.agency_code, m.c.match_class, sa.func.count().label("n"))
        .select_from(
            m.outerjoin(d, sa.and_(d.c.source_id == m.c.source_id, d.c.dossier_code == m.c.dossier_code))
        )
        .group_by(m.c.source_id, d.c.agency_code, m.c.match_class)
        .order_by(m.c.source_id, d.c.agency_code, m.c.match_class)
    )
    return _rows(bind, stmt)


def lookup_requests(bind: Engine, since: datetime) -> list[dict[str, Any]]:
    """Population-database requests since ``since`` per kind and status (requests, records)."""
    a = s.lookup_audit
    stmt = (
        sa.select(
            a.c.kind, a.c.status, sa.func.count().label("requests"), sa.func.sum(a.c.count).label("records")
        )
        .where(a.c.requested_at >= since)
        .group_by(a.c.kind, a.c.status)
        .order_by(a.c.kind, a.c.status)
    )
    return _rows(bind, stmt)


# ---- pipeline runs ------------------------------------------------------------------------------


def recent_runs(bind: Engine, limit: int = 30) -> list[dict[str, Any]]:
    """One row per run id (newest first): span, sources, failed stages and the key counts."""
    r = s.pipeline_runs

    def stage_sum(col: sa.Column[Any], stage: str) -> Any:
        return sa.func.sum(sa.case((r.c.stage == stage, col), else_=None))

    stmt = (
        sa.select(
            r.c.run_id,
            sa.func.min(r.c.started_at).label("started_at"),
            sa.func.max(r.c.finished_at).label("finished_at"),
            sa.func.count(sa.distinct(r.c.source_id)).label("sources"),
            sa.func.count().label("stages"),
            sa.func.sum(sa.case((r.c.status == "failed", 1), else_=0)).label("failed_stages"),
            sa.func.sum(sa.case((r.c.status == "running", 1), else_=0)).label("running_stages"),
            stage_sum(r.c.records_in, "extract").label("extracted"),
            stage_sum(r.c.quarantined, "validate").label("quarantined"),
            stage_sum(r.c.matched, "reconcile").label("matched"),
            stage_sum(r.c.published, "publish").label("published"),
            sa.func.sum(r.c.errors).label("errors"),
        )
        .group_by(r.c.run_id)
        .order_by(sa.func.min(r.c.started_at).desc())
        .limit(limit)
    )
    rows = _rows(bind, stmt)
    for row in rows:
        fin, st = row["finished_at"], row["started_at"]
        row["duration_s"] = (fin - st).total_seconds() if fin and st else None
        row["failed_stages"] = int(row["failed_stages"] or 0)
        row["running_stages"] = int(row["running_stages"] or 0)
    return rows


def run_stages(bind: Engine, run_id: str) -> list[dict[str, Any]]:
    """Stages of one run per source (``sql/run_summary.sql``); error texts are left out."""
    from tthc.warehouse import repo

    rows = repo.run_summary(bind, run_id)
    for row in rows:
        row["has_error_text"] = bool(row.pop("error_text", None))
    return rows


# ---- overview -----------------------------------------------------------------------------------


def overview(bind: Engine, now: datetime) -> dict[str, Any]:
    """The home page's figures (also served as JSON)."""
    q, p, r = s.quarantine, s.publish_state, s.pipeline_runs
    with bind.connect() as conn:
        held_n = conn.execute(sa.select(sa.func.count()).select_from(q).where(q.c.status == "held")).scalar()
        failed_n = conn.execute(
            sa.select(sa.func.count()).select_from(p).where(p.c.status == "failed")
        ).scalar()
        published_n = conn.execute(
            sa.select(sa.func.count()).select_from(p).where(p.c.status == "published")
        ).scalar()
        failed_stages = conn.execute(
            sa.select(sa.func.count())
            .select_from(r)
            .where(r.c.status == "failed", r.c.started_at >= now - timedelta(days=1))
        ).scalar()
    runs = recent_runs(bind, limit=1)
    return {
        "held": int(held_n or 0),
        "publish_failed": int(failed_n or 0),
        "published": int(published_n or 0),
        "failed_stages_24h": int(failed_stages or 0),
        "last_run": runs[0] if runs else None,
    }


def decode_reasons(value: Any) -> list[str]:
    """``quarantine.reasons`` as a list (JSONText decodes it; raw text is tolerated)."""
    if value is None:
        return []
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return [value]
    return [str(v) for v in value]
