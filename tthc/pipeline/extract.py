"""Extract: pull the source's changes since the watermark, store them raw and canonical.

The window is ``[watermark - look-back, window_end)``, with ``window_end`` frozen for the whole run
so records changing while we page fall into the next run's window, never between two pages. The
raw records, the canonical upsert and the new watermark are committed in ONE transaction: if
anything fails, the watermark has not moved and the next run reads the same window again.

A record stored already, byte for byte (the look-back re-reads every unchanged record of its
hours), is not mapped again: it maps to what it mapped to when it was stored, and the raw store
keeps one copy per record anyway. A backfill maps everything it reads (it may follow a mapping fix).
Each raw record is stored with what its mapping gave (content hash and ``updated_at`` of the
dossier), so validation can take a record that maps to the stored current version from
``dossiers`` instead of mapping it again (:func:`mapping_pins`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from tthc.model import DATETIME_FIELDS, Dossier
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
    pulled = reader.fetch(start, ctx.window_end)
    identities = [repo.raw_identity(r) for r in pulled]
    known: set[str] = set()
    if not ctx.backfill:
        with ctx.engine.begin() as conn:
            known = repo.known_raw(conn, src.source_id, [h for _, h in identities])
    new = _first_unseen([h for _, h in identities], known)
    n_pulled = len(pulled)
    dossiers = [reader.to_dossier(pulled[i]) for i in new]
    codes = [repo.code_or_none(reader.code_of, pulled[i]) for i in new]
    del pulled  # the records live on as their stored text (identities): a night's dicts can go
    prepared = repo.prepare_dossiers(dossiers)  # each dossier serialised and hashed once
    pins = mapping_pins(codes, dossiers, [h for _, _, h in prepared])
    raw_rows = [repo.RawRow(*identities[i], codes[k], *pins[k]) for k, i in enumerate(new)]
    del identities
    latest = _latest_per_key(dossiers)
    with ctx.engine.begin() as conn:
        stored = repo.store_raw(conn, src.source_id, ctx.run_id, raw_rows)
        del raw_rows
        res = repo.upsert_dossiers(
            conn, [dossiers[i] for i in latest], ctx.run_id, prepared=[prepared[i] for i in latest]
        )
        if reader.on_commit is not None:
            reader.on_commit(conn, ctx.run_id)
        if watermark is None or ctx.window_end > watermark:  # never moves backwards (backfills)
            repo.set_watermark(conn, src.source_id, ctx.window_end, ctx.run_id)
    return {
        "records_in": n_pulled,
        "records_out": res.inserted + res.updated,
        "raw_new": stored,
        "raw_known": n_pulled - len(new),  # stored before (or twice in the pull): not mapped
        "inserted": res.inserted,
        "updated": res.updated,
        "unchanged": res.unchanged,
        "window_start": start.isoformat(),
        "window_end": ctx.window_end.isoformat(),
        **reader.stats,
    }


def _first_unseen(record_hashes: Sequence[str], known: set[str]) -> list[int]:
    """Positions of the records to map: the first of each record hash not in ``known``."""
    seen = set(known)
    out = []
    for i, h in enumerate(record_hashes):
        if h not in seen:
            seen.add(h)
            out.append(i)
    return out


def _latest_per_key(dossiers: list) -> list[int]:
    """Positions of one dossier per key for the canonical table (validation still sees every raw
    record)."""
    best: dict[str, int] = {}
    for i, d in enumerate(dossiers):
        j = best.get(d.key)
        cur = None if j is None else dossiers[j]
        if cur is None or (d.updated_at or d.received_at or _MIN) >= (
            cur.updated_at or cur.received_at or _MIN
        ):
            best[d.key] = i
    return list(best.values())


def mapping_pins(
    codes: Sequence[str | None], dossiers: Sequence[Dossier], hashes: Sequence[str]
) -> list[tuple[str | None, datetime | None]]:
    """Per raw record (stored under ``codes``), ``(content hash, updated_at)`` of the dossier it
    maps to when that pins the dossier exactly, else ``(None, None)`` (validation then maps the
    record again).

    A stored dossier with the same content hash equals the mapping except, possibly, in what the
    hash does not see: ``updated_at`` (kept here) and sub-second parts of timestamps (the hash
    text has whole seconds), so a dossier with a sub-second timestamp is not pinned. Nor is one
    whose code differs from the code the raw record is stored under (validation finds the stored
    dossier by that code).
    """
    out: list[tuple[str | None, datetime | None]] = []
    for code, d, h in zip(codes, dossiers, hashes, strict=True):
        exact = code is not None and code == d.dossier_code and _whole_seconds(d)
        out.append((h, d.updated_at) if exact else (None, None))
    return out


_HASHED_TIMES = tuple(f for f in DATETIME_FIELDS if f != "updated_at")


def _whole_seconds(d: Dossier) -> bool:
    times = [getattr(d, f) for f in _HASHED_TIMES]
    for s in d.supplements:
        times += (s.requested_at, s.completed_at)
    return all(t is None or t.microsecond == 0 for t in times)
