"""Validate: run the Great Expectations suite over what this run pulled; quarantine, release.

Input is every raw record this run stored (not only the latest per code), so two different
records sharing one dossier code are both seen and both held back (``duplicate_code``). Severity
comes from the suite file: a *critical* failure quarantines the dossier (not published, reasons
kept per rule id); a *warning* is published and reported. A dossier held earlier is released as
soon as the source sends a version without critical failures.

A record is not decoded and mapped again when the extract pinned what its mapping gave (content
hash and ``updated_at``, ``raw_records.mapped_*``) and that is the stored current version: the
dossier is read from ``dossiers`` (:func:`_dossiers_of_run`; equal to mapping the record, tested).

The batch also takes every dossier of the source still ``pending`` that this run's records do
not cover (:func:`_left_pending`): a version written without a raw record of its own run (a
backfill after a mapping fix re-maps records stored by earlier runs) or by a run whose
validation never finished. Without it such a dossier would wait, unvalidated and unpublished,
until its source changed it again.
"""

from __future__ import annotations

from typing import Any

from tthc.pipeline.context import StageContext
from tthc.pipeline.sources import mapper_for


def validate(ctx: StageContext) -> dict[str, Any]:
    from tthc.quality.validate import validate_dossiers
    from tthc.warehouse import repo

    src = ctx.source
    dossiers, hashes = _dossiers_of_run(ctx)
    left, left_hashes = _left_pending(ctx, covered=hashes)
    dossiers += left
    hashes.update(left_hashes)
    batch_rows = _batch_rules(ctx)
    if not dossiers:
        with ctx.engine.begin() as conn:
            repo.save_validation(conn, ctx.run_id, src.source_id, BATCH_SUITE, batch_rows, [])
        return {
            "records_in": 0,
            "records_out": 0,
            "quarantined": 0,
            "warnings": 0,
            "left_pending": 0,
            "rules_failed": sum(r["failed"] for r in batch_rows),
        }
    outcome = validate_dossiers(dossiers, known_agencies=ctx.registry.agency_codes)
    codes = {d["dossier_code"] for d in dossiers if d["dossier_code"]}
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
        "left_pending": len(left),  # validated here though no record of this run carried them
        "rules_failed": sum(1 for r in [*outcome.rule_stats, *batch_rows] if r["failed"]),
    }


BATCH_SUITE = "source_batch"


def _left_pending(ctx: StageContext, covered: dict[str, str]) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The source's dossiers still ``pending`` whose code is not in ``covered`` (what this run's
    records gave), as stored (``Dossier.to_row()`` rows), with their content hashes. One read
    of the ``(quality_status, source_id)`` index: on a night without such leftovers it finds only
    the run's own dossiers."""
    from tthc.warehouse import repo, schema

    sid = ctx.source.source_id
    with ctx.engine.begin() as conn:
        pending = repo.codes_where(conn, schema.dossiers, sid, "quality_status", ["pending"])
        codes = sorted(pending - covered.keys())
        if not codes:
            return [], {}
        states = repo.dossier_states(conn, sid, codes)
        rows = repo.dossier_rows(conn, sid, codes)
    out = [rows[c] for c in codes if c in rows and c in states]
    return out, {r["dossier_code"]: states[r["dossier_code"]].content_hash for r in out}


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


def _dossiers_of_run(
    ctx: StageContext, *, use_pins: bool = True
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The dossiers (as ``Dossier.to_row()`` rows) of every raw record this run stored, in pull
    order, less the *stale* ones
    (the record lost to a newer stored version: its verdict would be pinned on a version it is
    not); records sharing a code are all kept (``duplicate_code``). Also returns the content hash
    per code of the kept ones.

    A record pinned by the extract (``mapped_hash``) whose code appears once in the run is not
    mapped again: its dossier is the stored current version when the hashes are equal (with the
    record's ``updated_at``; its row read as such, ``repo.dossier_rows``), and stale when they
    differ. The others are decoded and mapped as
    pulled. ``use_pins=False`` maps every record (what tests compare against).
    """
    from collections import Counter

    from tthc.warehouse import repo

    sid = ctx.source.source_id
    to_dossier, _ = mapper_for(ctx.source)
    with ctx.engine.begin() as conn:
        rows = repo.raw_of_run(conn, sid, ctx.run_id)
        unpinned = [r.id for r in rows if r.mapped_hash is None or not use_pins]
        mapped = {i: to_dossier(p) for i, p in repo.raw_payloads(conn, unpinned).items()}
        code = {r.id: mapped[r.id].dossier_code if r.id in mapped else r.dossier_code for r in rows}
        per_code = Counter(code.values())
        stored = repo.dossier_states(conn, sid, [c for c in per_code if c is not None])
        reuse: dict[str, Any] = {}  # code → record id
        again: list[int] = []
        for r in rows:
            if r.id in mapped:
                continue
            st = stored.get(r.dossier_code)  # type: ignore[arg-type]
            if st is None or per_code[r.dossier_code] > 1:
                again.append(r.id)  # kept whatever it maps to: map it
            elif st.content_hash == r.mapped_hash:
                reuse[r.dossier_code] = r  # type: ignore[index]
            # else stale: dropped without mapping
        mapped.update({i: to_dossier(p) for i, p in repo.raw_payloads(conn, again).items()})
        current = repo.dossier_rows(conn, sid, list(reuse))
    out, hashes = [], {}
    for r in rows:
        if r.id in mapped:
            d = mapped[r.id]
            h = d.content_hash()
            st = stored.get(d.dossier_code)
            if not (st is None or per_code[d.dossier_code] > 1 or st.content_hash == h):
                continue  # stale
            row = d.to_row()
        elif reuse.get(r.dossier_code) is r:
            row, h = current[r.dossier_code], r.mapped_hash  # type: ignore[index]
            row["updated_at"] = r.mapped_updated_at
        else:
            continue  # stale
        out.append(row)
        if row["dossier_code"]:
            hashes[row["dossier_code"]] = h
    return out, hashes
