"""Validate: run the Great Expectations suite over what this run pulled; quarantine, release.

Input is every raw record this run stored (not only the latest per code), so two different
records sharing one dossier code are both seen and both held back (``duplicate_code``). Severity
comes from the suite file: a *critical* failure quarantines the dossier (not published, reasons
kept per rule id); a *warning* is published and reported. A dossier held earlier is released as
soon as the source sends a version without critical failures.
"""

from __future__ import annotations

from typing import Any

from tthc.pipeline.context import StageContext
from tthc.pipeline.sources import mapper_for


def validate(ctx: StageContext) -> dict[str, Any]:
    from tthc.quality.validate import validate_dossiers
    from tthc.warehouse import repo

    src = ctx.source
    to_dossier, _ = mapper_for(src)
    with ctx.engine.begin() as conn:
        raw = _raw_of_run(conn, src.source_id, ctx.run_id)
    dossiers = _current(ctx, [to_dossier(r) for r in raw])
    if not dossiers:
        return {"records_in": 0, "records_out": 0, "quarantined": 0, "warnings": 0}
    outcome = validate_dossiers(dossiers, known_agencies=ctx.registry.agency_codes)
    codes = {d.dossier_code for d in dossiers if d.dossier_code}
    quarantined = set(outcome.quarantined)
    warned = set(outcome.warnings) - quarantined
    statuses = {
        c: ("quarantined" if c in quarantined else "warning" if c in warned else "valid") for c in codes
    }
    hashes = {d.dossier_code: d.content_hash() for d in dossiers if d.dossier_code}
    with ctx.engine.begin() as conn:
        repo.save_validation(
            conn, ctx.run_id, src.source_id, outcome.suite_name, outcome.rule_stats, outcome.record_issues
        )
        previously_held = set(repo.held_codes(conn, src.source_id))
        repo.hold(conn, src.source_id, {c: outcome.quarantined[c] for c in quarantined}, hashes, ctx.run_id)
        released = sorted((previously_held & codes) - quarantined)
        repo.release(conn, src.source_id, released, ctx.run_id)
        repo.set_quality_status(conn, src.source_id, statuses)
    return {
        "records_in": len(dossiers),
        "records_out": len(codes) - len(quarantined),
        "quarantined": len(quarantined),
        "warnings": len(warned),
        "released": len(released),
        "rules_failed": sum(1 for r in outcome.rule_stats if r["failed"]),
    }


def _raw_of_run(conn, source_id: str, run_id: str) -> list[dict[str, Any]]:
    """Every raw record this run stored for the source (as pulled)."""
    import json

    import sqlalchemy as sa

    from tthc.warehouse.schema import raw_records as t

    q = sa.select(t.c.payload).where(t.c.source_id == source_id, t.c.run_id == run_id).order_by(t.c.id)
    return [json.loads(p) for (p,) in conn.execute(q)]


def _current(ctx: StageContext, dossiers: list) -> list:
    """Drop raw records that lost to a newer stored version (stale): their verdict would be
    pinned on a version they are not. Records sharing a code are all kept (duplicate_code)."""
    from collections import Counter

    from tthc.warehouse import repo

    per_code = Counter(d.dossier_code for d in dossiers)
    with ctx.engine.begin() as conn:
        stored = repo.dossier_states(conn, ctx.source.source_id, list(per_code))
    out = []
    for d in dossiers:
        st = stored.get(d.dossier_code)
        if st is None or per_code[d.dossier_code] > 1 or st.content_hash == d.content_hash():
            out.append(d)
    return out
