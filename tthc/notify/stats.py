"""Run statistics: per run, source and stage, what went in and out, how long it took, how it ended.

``pipeline_runs`` is written by :func:`tthc.pipeline.run_stage` through ``repo.start_stage``
(``started_at``; a retried stage starts afresh, so the duration is the last attempt's) and
``repo.finish_stage`` (``finished_at``, status and counts). The query is ``sql/run_statistics.sql``;
the duration is computed here because date arithmetic differs between SQLite and PostgreSQL.

Used by the engineers' digest e-mail and the dashboard (``tthc.ui``)::

    run_statistics(engine, run_id="scheduled__…")        # every stage of one run
    run_statistics(engine, source_id="igate_tinh", since=datetime(2026, 11, 23, 1))
    summarise_runs(rows)                                  # one line per (run, source)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from tthc.warehouse.schema import pipeline_runs as t
from tthc.warehouse.sqlfiles import load_sql

Bind = Engine | Connection

#: The nightly chain's stages, in order (tthc.pipeline.STAGES); others sort after them.
STAGE_ORDER = ("extract", "validate", "reconcile", "publish", "indicators")
COUNT_COLUMNS = ("records_in", "records_out", "quarantined", "matched", "published", "errors")


def _stage_rank(stage: str) -> int:
    return STAGE_ORDER.index(stage) if stage in STAGE_ORDER else len(STAGE_ORDER)


def _duration(started: datetime | None, finished: datetime | None) -> float | None:
    return (finished - started).total_seconds() if started and finished else None


def run_statistics(
    bind: Bind,
    *,
    run_id: str | None = None,
    source_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[dict[str, Any]]:
    """Stage lines of ``pipeline_runs`` (optionally one run / one source / started in a window).

    Each line: ``run_id, source_id, stage, status, started_at, finished_at, duration_s,
    records_in, records_out, quarantined, matched, published, errors, error_text``; ordered by
    run start, source and stage order. ``since`` / ``until`` bound ``started_at`` (naive Vietnam
    time, ``since`` inclusive, ``until`` exclusive).
    """
    sub = (
        load_sql("run_statistics")
        .columns(
            t.c.run_id,
            t.c.source_id,
            t.c.stage,
            t.c.status,
            t.c.started_at,
            t.c.finished_at,
            *(t.c[c] for c in COUNT_COLUMNS),
            t.c.error_text,
        )
        .subquery("stats")
    )
    q = sa.select(sub)
    if since is not None:
        q = q.where(sub.c.started_at >= since)
    if until is not None:
        q = q.where(sub.c.started_at < until)
    params = {"run_id": run_id, "source_id": source_id}
    if isinstance(bind, Engine):
        with bind.connect() as conn:
            rows = [dict(m) for m in conn.execute(q, params).mappings()]
    else:
        rows = [dict(m) for m in bind.execute(q, params).mappings()]
    for r in rows:
        r["duration_s"] = _duration(r["started_at"], r["finished_at"])
    # a run starts when its first stage starts: order runs by that, then stages by pipeline order
    run_start: dict[tuple[str, str], datetime] = {}
    for r in rows:
        k = (r["run_id"], r["source_id"])
        if r["started_at"] is not None and (k not in run_start or r["started_at"] < run_start[k]):
            run_start[k] = r["started_at"]
    rows.sort(
        key=lambda r: (
            run_start.get((r["run_id"], r["source_id"])) or datetime.min,
            r["run_id"],
            r["source_id"],
            _stage_rank(r["stage"]),
            r["stage"],
        )
    )
    return rows


def summarise_runs(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One line per (run, source) from :func:`run_statistics` lines.

    ``status``: ``failed`` if a stage failed, ``running`` if one is still running, ``success`` when
    every recorded stage succeeded and the last stage (indicators) is among them, else
    ``incomplete``. Counts: pulled = extract.records_in, valid = validate.records_out,
    quarantined = validate.quarantined, matched = reconcile.matched, published = publish.published,
    errors = sum of the stages' error counts, failed_stages = how many stages failed.
    ``duration_s`` spans first start to last finish.
    """
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["run_id"], r["source_id"]), []).append(r)
    out: list[dict[str, Any]] = []
    for (run_id, source_id), lines in groups.items():
        by_stage = {r["stage"]: r for r in lines}
        statuses = {r["status"] for r in lines}
        failed = sorted((r for r in lines if r["status"] == "failed"), key=lambda r: _stage_rank(r["stage"]))
        running = [r for r in lines if r["status"] == "running"]
        if failed:
            status = "failed"
        elif running:
            status = "running"
        elif statuses == {"success"} and STAGE_ORDER[-1] in by_stage:
            status = "success"
        else:
            status = "incomplete"
        starts = [r["started_at"] for r in lines if r["started_at"] is not None]
        ends = [r["finished_at"] for r in lines if r["finished_at"] is not None]
        started = min(starts) if starts else None
        finished = max(ends) if ends and status in ("success", "failed", "incomplete") else None

        def count(stage: str, col: str, by_stage: dict[str, Mapping[str, Any]] = by_stage) -> int | None:
            r = by_stage.get(stage)
            return None if r is None else r.get(col)

        errors = [r["errors"] for r in lines if r.get("errors") is not None]
        out.append(
            {
                "run_id": run_id,
                "source_id": source_id,
                "status": status,
                "failed_stage": failed[0]["stage"] if failed else None,
                "running_stage": running[0]["stage"] if running else None,
                "stages": len(lines),
                "started_at": started,
                "finished_at": finished,
                "duration_s": _duration(started, finished),
                "pulled": count("extract", "records_in"),
                "valid": count("validate", "records_out"),
                "quarantined": count("validate", "quarantined"),
                "matched": count("reconcile", "matched"),
                "published": count("publish", "published"),
                "errors": sum(errors) if errors else None,
                "failed_stages": len(failed),
            }
        )
    return out
