"""Indicators: the Decision 766 figures of this source, for the run and the month to date.

Quarantined dossiers are left out (their dates or statuses are not trusted); the sync rate uses
the publish state, population-database use the reconciliation result or a VNeID-verified account.
The stage reads only the flat columns it counts (``repo.load_indicator_facts``: no applicant data,
attachments as counts) and judges each dossier once for both periods, which share their end.
Rows go to ``indicators`` with scope ``agency`` (each agency) and ``source`` (the whole source).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from tthc.pipeline.context import StageContext

SAME_PERSON = ("matched", "matched_normalised")
SYNC_RATE = "1.4_sync_rate"


def indicators(ctx: StageContext) -> dict[str, Any]:
    from tthc.indicators import compute_indicators_for_periods
    from tthc.warehouse import repo, schema

    sid = ctx.source.source_id
    end = ctx.window_end
    periods = {
        "run": (end - timedelta(days=ctx.source.initial_days), end),
        "month": (datetime(end.year, end.month, 1), end),
    }
    earliest = min(start for start, _ in periods.values())
    with ctx.engine.begin() as conn:
        usable = repo.load_indicator_facts(conn, sid, relevant_since=earliest)
        agencies = repo.agency_codes(conn, sid)
        published = repo.codes_where(conn, schema.publish_state, sid, "status", ["published"])
        matched = repo.codes_where(conn, schema.citizen_matches, sid, "match_class", SAME_PERSON)
    synced = {f"{sid}:{c}" for c in published}
    verified = {f"{sid}:{c}" for c in matched}
    computed = compute_indicators_for_periods(
        usable, periods, synced_keys=synced, verified_keys=verified, agencies=agencies
    )
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
        "records_in": len(usable),
        "records_out": len(out),
        "on_time_rate": on_time.get("2.1_on_time"),
        "received": on_time.get("received"),
    }
