"""Indicators: the Decision 766 figures of this source, for the run and the month to date.

Quarantined dossiers are left out (their dates or statuses are not trusted); the sync rate uses
the publish state, population-database use the reconciliation result or a VNeID-verified account.

An ended dossier's on-time verdict does not change with the clock, so it is judged once: the
stage stores it (``final_judgements``, per dossier version and judging settings) and counts stored
verdicts and the received population's ratios in SQL (``repo.indicator_aggregates``). Only the
dossiers still open, changed, or not judged yet are read and judged in Python
(``repo.judgement_candidates``, :func:`tthc.ontime.evaluate`), once for both periods, which share
their end. The rows equal :func:`tthc.indicators.compute_indicators_for_periods` over every
dossier (tested). Rows go to ``indicators`` with scope ``agency`` (each agency) and ``source``
(the whole source).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from tthc.pipeline.context import StageContext

SAME_PERSON = ("matched", "matched_normalised")
SYNC_RATE = "1.4_sync_rate"


def indicators(ctx: StageContext) -> dict[str, Any]:
    from tthc.warehouse import repo

    sid = ctx.source.source_id
    end = ctx.window_end
    periods = {
        "run": (end - timedelta(days=ctx.source.initial_days), end),
        "month": (datetime(end.year, end.month, 1), end),
    }
    with ctx.engine.begin() as conn:
        computed, counts = compute_source_indicators(conn, sid, periods)
    out: list[dict[str, Any]] = []
    on_time: dict[str, float | None] = {}
    for ptype, (start, _stop) in periods.items():
        for r in computed[ptype]:
            if ptype == "run" and r["indicator_id"] == SYNC_RATE:
                continue  # the run's sync rate is the publish stage's read-back of the portal (verify)
            scope, code = ("source", sid) if r["scope"] == "total" else (r["scope"], r["scope_code"])
            out.append(
                {
                    **r,
                    "scope": scope,
                    "scope_code": code,
                    "period_type": ptype,
                    "period_start": (start if ptype != "run" else end).date(),
                    "run_id": ctx.run_id,
                }
            )
            if ptype == "run" and scope == "source":
                on_time[r["indicator_id"]] = r["value"]
    with ctx.engine.begin() as conn:
        repo.save_indicators(conn, out)
    return {
        **counts,
        "records_out": len(out),
        "on_time_rate": on_time.get("2.1_on_time"),
        "received": on_time.get("received"),
    }


def compute_source_indicators(
    conn: Any, source_id: str, periods: dict[str, tuple[datetime, datetime]]
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, int]]:
    """The rows of :func:`tthc.indicators.compute_indicators_for_periods` (default options, synced
    = published, verified = reconciled as the same person) for one source's dossiers that are not
    quarantined, over ``periods`` sharing one end; and the stage's counts. Judges in Python only
    what has no stored final judgement, and stores the final ones it makes (in ``conn``'s
    transaction)."""
    from tthc.indicators import combine_indicator_aggregates, final_outcome, judgement_basis
    from tthc.ontime import evaluate
    from tthc.warehouse import repo

    ends = {e for _, e in periods.values()}
    if len(ends) != 1:
        raise ValueError("the periods must share their end")
    end = ends.pop()
    basis = judgement_basis()
    earliest = min(start for start, _ in periods.values())
    candidates = repo.judgement_candidates(conn, source_id, since=earliest, until=end, basis=basis)
    open_ones, finals = [], []
    for facts, version in candidates:
        ev = evaluate(facts, end)  # type: ignore[arg-type]  # reads the attributes both types share
        outcome = final_outcome(facts, ev)
        if outcome is None:
            open_ones.append((facts, ev))
        else:
            finals.append(
                {
                    "source_id": source_id,
                    "dossier_code": facts.dossier_code,
                    "version": version,
                    "basis": basis,
                    "outcome": outcome,
                    "ended_at": ev.end,
                }
            )
    repo.save_final_judgements(conn, finals)
    aggregates = repo.indicator_aggregates(conn, source_id, periods, basis=basis, same_person=SAME_PERSON)
    agencies = repo.agency_codes(conn, source_id)
    rows = combine_indicator_aggregates(aggregates, open_ones, periods, with_sync=True, agencies=agencies)
    counted = max(
        (sum(c["received"] + c["excluded"] for c in agg.values()) for agg in aggregates.values()), default=0
    )
    return rows, {"records_in": counted, "judged": len(candidates), "judgements_stored": len(finals)}
