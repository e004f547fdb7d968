"""Extract: pull the source's changes since the watermark, store them raw and canonical.

The window is ``[watermark - look-back, window_end)``, with ``window_end`` frozen for the whole run
so records changing while we page fall into the next run's window, never between two pages. The
raw records, the canonical upsert and the new watermark are committed in ONE transaction: if
anything fails, the watermark has not moved and the next run reads the same window again.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from tthc.pipeline.context import StageContext
from tthc.pipeline.sources import open_source

_MIN = datetime.min


def extract(ctx: StageContext) -> dict[str, Any]:
    from tthc.warehouse import repo

    src = ctx.source
    with ctx.engine.begin() as conn:
        watermark = repo.get_watermark(conn, src.source_id)
    lookback = timedelta(hours=src.lookback_hours)
    if ctx.backfill:
        # a backfill run re-reads its own day (plus the look-back), whatever the watermark says
        start = ctx.window_end - timedelta(days=1) - lookback
    elif watermark is None:
        start = ctx.window_end - timedelta(days=src.initial_days)
    else:
        start = watermark - lookback
    reader = open_source(src, timeout=ctx.settings.http_timeout_seconds, engine=ctx.engine, run_id=ctx.run_id)
    raw = reader.fetch(start, ctx.window_end)
    dossiers = [reader.to_dossier(r) for r in raw]
    latest = _latest_per_key(dossiers)
    with ctx.engine.begin() as conn:
        stored = repo.record_raw(conn, src.source_id, ctx.run_id, raw, code_of=reader.code_of)
        res = repo.upsert_dossiers(conn, latest, ctx.run_id)
        if reader.on_commit is not None:
            reader.on_commit(conn, ctx.run_id)
        if watermark is None or ctx.window_end > watermark:  # never moves backwards (backfills)
            repo.set_watermark(conn, src.source_id, ctx.window_end, ctx.run_id)
    return {
        "records_in": len(raw),
        "records_out": res.inserted + res.updated,
        "raw_new": stored,
        "inserted": res.inserted,
        "updated": res.updated,
        "unchanged": res.unchanged,
        "window_start": start.isoformat(),
        "window_end": ctx.window_end.isoformat(),
        **reader.stats,
    }


def _latest_per_key(dossiers: list) -> list:
    """One dossier per key for the canonical table (validation still sees every raw record)."""
    best: dict[str, Any] = {}
    for d in dossiers:
        cur = best.get(d.key)
        if cur is None or (d.updated_at or d.received_at or _MIN) >= (
            cur.updated_at or cur.received_at or _MIN
        ):
            best[d.key] = d
    return list(best.values())
