"""The nightly pipeline's stages, callable with or without Airflow.

``run_stage(stage, source_id, run_id=..., window_end=...)`` is what each Airflow task calls; a data
engineer can call the same function from a shell (``tthc run-source``) to reproduce one source's
night. Each stage records itself in ``pipeline_runs`` (counts, duration, error text without personal
data) and returns its counts, which is all that goes to XCom.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from tthc.pipeline.context import StageContext

log = logging.getLogger(__name__)

STAGES = ("extract", "validate", "reconcile", "publish", "indicators")


def _stage_func(stage: str) -> Callable[[StageContext], dict[str, Any]]:
    # imported lazily: each stage pulls in what it needs (GX, pandas, HTTP clients) only when run
    if stage == "extract":
        from tthc.pipeline.extract import extract

        return extract
    if stage == "validate":
        from tthc.pipeline.validate import validate

        return validate
    if stage == "reconcile":
        from tthc.pipeline.reconcile import reconcile

        return reconcile
    if stage == "publish":
        from tthc.pipeline.publish import publish

        return publish
    if stage == "indicators":
        from tthc.pipeline.indicators import indicators

        return indicators
    raise ValueError(f"unknown stage {stage!r}; stages are {', '.join(STAGES)}")


def run_stage(
    stage: str,
    source_id: str,
    *,
    run_id: str,
    window_end: datetime,
    ctx: StageContext | None = None,
    backfill: bool = False,
) -> dict[str, Any]:
    """Run one stage for one source and record it; re-raises the stage's error after recording."""
    from tthc.warehouse import repo

    fn = _stage_func(stage)
    ctx = ctx or StageContext.create(source_id, run_id=run_id, window_end=window_end, backfill=backfill)
    with ctx.engine.begin() as conn:
        repo.start_stage(conn, run_id, source_id, stage)
    t0 = time.monotonic()
    try:
        counts = fn(ctx)
    except Exception as e:
        text = f"{type(e).__name__}: {ctx.safe_error(e)}"
        with ctx.engine.begin() as conn:
            repo.finish_stage(conn, run_id, source_id, stage, status="failed", error_text=text[:2000])
        log.error("stage %s of %s failed: %s", stage, source_id, text)
        raise
    counts["duration_s"] = round(time.monotonic() - t0, 3)
    with ctx.engine.begin() as conn:
        repo.finish_stage(conn, run_id, source_id, stage, status="success", **_stage_counts(counts))
    from tthc.warehouse.bulk import analyze_loaded

    analyze_loaded(ctx.engine)  # planner statistics for the rows this stage bulk-loaded
    log.info("stage %s of %s: %s", stage, source_id, counts)
    return counts


_COUNT_COLUMNS = ("records_in", "records_out", "quarantined", "matched", "published", "errors")


def _stage_counts(counts: dict[str, Any]) -> dict[str, Any]:
    out = {k: int(counts[k]) for k in _COUNT_COLUMNS if k in counts}
    out["details"] = {k: v for k, v in counts.items() if k not in _COUNT_COLUMNS}
    return out
