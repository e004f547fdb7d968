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
    dossiers, hashes = _current(ctx, [to_dossier(r) for r in raw])
    batch_rows = _batch_rules(ctx)
    if not dossiers:
        with ctx.engine.begin() as conn:
            repo.save_validation(conn, ctx.run_id, src.source_id, BATCH_SUITE, batch_rows, [])
        return {
            "records_in": 0,
            "records_out": 0,
            "quarantined": 0,
            "warnings": 0,
            "rules_failed": sum(r["failed"] for r in batch_rows),
        }
    outcome = validate_dossiers(dossiers, known_agencies=ctx.registry.agency_codes)
    codes = {d.dossier_code for d in dossiers if d.dossier_code}
    quarantined = set(outcome.quarantined)
    warned = set(outcome.warnings) - quarantined
    statuses = {
        c: ("quarantined" if c in quarantined else "warning" if c in warned else "valid") for c in codes
    }
    with ctx.engine.begin() as conn:
        repo.save_validation(
            conn, ctx.run_id, src.source_id, outcome.suite_name, outcome.rule_stats, outcome.record_issues
        )
        repo.save_validation(conn, ctx.run_id, src.source_id, BATCH_SUITE, batch_rows, [])
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
        "rules_failed": sum(1 for r in [*outcome.rule_stats, *batch_rows] if r["failed"]),
    }


BATCH_SUITE = "source_batch"


def _batch_rules(ctx: StageContext) -> list[dict[str, Any]]:
    """Volume anomaly (tonight's pull against previous nights) and freshness of the source."""
    import sqlalchemy as sa

    from tthc.quality.batch_rules import freshness, volume_anomaly
    from tthc.warehouse.schema import dossiers, pipeline_runs

    sid = ctx.source.source_id
    pr = pipeline_runs.c
    with ctx.engine.begin() as conn:
        counts = [
            n
            for run_id, n in conn.execute(
                sa.select(pr.run_id, pr.records_in)
                .where(pr.source_id == sid, pr.stage == "extract", pr.status == "success")
                .order_by(pr.started_at)
            )
            if n is not None
        ]
        tonight = conn.execute(
            sa.select(pr.records_in).where(
                pr.source_id == sid, pr.stage == "extract", pr.run_id == ctx.run_id
            )
        ).scalar()
        newest = conn.execute(
            sa.select(sa.func.max(dossiers.c.updated_at)).where(dossiers.c.source_id == sid)
        ).scalar()
    previous = counts[:-1] if tonight is not None and counts else counts
    return [volume_anomaly(tonight or 0, previous), freshness(newest, ctx.window_end)]


def _raw_of_run(conn, source_id: str, run_id: str) -> list[dict[str, Any]]:
    """Every raw record this run stored for the source (as pulled)."""
    import json

    import sqlalchemy as sa

    from tthc.warehouse.schema import raw_records as t

    q = sa.select(t.c.payload).where(t.c.source_id == source_id, t.c.run_id == run_id).order_by(t.c.id)
    return [json.loads(p) for (p,) in conn.execute(q)]


def _current(ctx: StageContext, dossiers: list) -> tuple[list, dict[str, str]]:
    """Drop raw records that lost to a newer stored version (stale): their verdict would be
    pinned on a version they are not. Records sharing a code are all kept (duplicate_code).
    Also returns the content hash per code of the kept ones (each dossier hashed once)."""
    from collections import Counter

    from tthc.warehouse import repo

    per_code = Counter(d.dossier_code for d in dossiers)
    with ctx.engine.begin() as conn:
        stored = repo.dossier_states(conn, ctx.source.source_id, list(per_code))
    out, hashes = [], {}
    for d in dossiers:
        h = d.content_hash()
        st = stored.get(d.dossier_code)
        if st is None or per_code[d.dossier_code] > 1 or st.content_hash == h:
            out.append(d)
            if d.dossier_code:
                hashes[d.dossier_code] = h
    return out, hashes
