"""Run statistics (sql/run_statistics.sql + tthc.notify.stats) on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta

from tthc.notify import run_statistics, summarise_runs
from tthc.warehouse import repo

from .helpers import SRC, seed_stages

NIGHT = datetime(2026, 11, 21, 1, 0)


def test_durations_counts_and_order(any_engine):
    seed_stages(any_engine, "r2", SRC, NIGHT, {}, pulled=10, held=2)
    seed_stages(any_engine, "r2", "other", NIGHT + timedelta(minutes=1), {"publish": "failed"}, pulled=5)
    seed_stages(any_engine, "r1", SRC, NIGHT - timedelta(days=1), {}, pulled=7)

    rows = run_statistics(any_engine, run_id="r2", source_id=SRC)
    assert [r["stage"] for r in rows] == ["extract", "validate", "reconcile", "publish", "indicators"]
    assert all(r["duration_s"] == 180.0 for r in rows)
    v = rows[1]
    assert (v["records_in"], v["records_out"], v["quarantined"], v["status"]) == (10, 8, 2, "success")
    assert rows[0]["started_at"] == NIGHT and rows[-1]["finished_at"] == NIGHT + timedelta(minutes=15)

    everything = run_statistics(any_engine)
    assert [(r["run_id"], r["source_id"]) for r in everything][:5] == [("r1", SRC)] * 5
    assert len(everything) == 5 + 5 + 4
    assert {r["run_id"] for r in run_statistics(any_engine, since=NIGHT)} == {"r2"}
    assert {r["run_id"] for r in run_statistics(any_engine, until=NIGHT)} == {"r1"}
    assert run_statistics(any_engine, source_id="nobody") == []


def test_summary_per_run_and_source(any_engine):
    seed_stages(any_engine, "r2", SRC, NIGHT, {}, pulled=10, held=2)
    seed_stages(any_engine, "r2", "other", NIGHT, {"publish": "failed"}, pulled=5)
    seed_stages(any_engine, "r2", "slow", NIGHT, {"reconcile": "running"}, pulled=5)
    seed_stages(any_engine, "r2", "stuck", NIGHT, {"publish": "absent"}, pulled=5)
    repo.finish_stage(
        any_engine, "r2", SRC, "publish", "success", errors=3, now=NIGHT + timedelta(minutes=12)
    )
    by = {s["source_id"]: s for s in summarise_runs(run_statistics(any_engine, run_id="r2"))}
    ok = by[SRC]
    assert ok["status"] == "success" and ok["duration_s"] == 15 * 60
    assert (ok["pulled"], ok["valid"], ok["quarantined"], ok["matched"], ok["published"]) == (10, 8, 2, 8, 8)
    assert ok["errors"] == 3 and ok["failed_stages"] == 0
    assert by["other"]["status"] == "failed" and by["other"]["failed_stage"] == "publish"
    assert by["other"]["published"] is None and by["other"]["duration_s"] == 12 * 60
    assert by["slow"]["status"] == "running" and by["slow"]["running_stage"] == "reconcile"
    assert by["slow"]["finished_at"] is None and by["slow"]["duration_s"] is None
    assert by["stuck"]["status"] == "incomplete"


def test_a_retried_stage_measures_its_last_attempt(any_engine):
    repo.start_stage(any_engine, "r", SRC, "extract", now=NIGHT)
    repo.finish_stage(
        any_engine, "r", SRC, "extract", "failed", error_text="Timeout", now=NIGHT + timedelta(minutes=1)
    )
    repo.start_stage(any_engine, "r", SRC, "extract", now=NIGHT + timedelta(minutes=6))
    repo.finish_stage(
        any_engine, "r", SRC, "extract", "success", records_in=4, now=NIGHT + timedelta(minutes=8)
    )
    (row,) = run_statistics(any_engine, run_id="r")
    assert (row["status"], row["duration_s"], row["error_text"]) == ("success", 120.0, None)


def test_run_stage_stores_start_and_finish(engine, registry, monkeypatch):
    """The pipeline's own bookkeeping (tthc.pipeline.run_stage) leaves both times for every stage."""
    import pytest

    import tthc.pipeline as pipeline
    from tthc.pipeline.context import StageContext

    def fake(stage):
        def run(ctx):
            if stage == "publish":
                raise RuntimeError("portal down for 079188012345")
            return {"records_in": 3, "records_out": 2, "quarantined": 1}

        return run

    monkeypatch.setattr(pipeline, "_stage_func", fake)
    ctx = StageContext(
        source=registry.get(SRC), registry=registry, run_id="r", window_end=NIGHT, engine=engine
    )
    for stage in ("extract", "validate"):
        pipeline.run_stage(stage, SRC, run_id="r", window_end=NIGHT, ctx=ctx)
    with pytest.raises(RuntimeError):
        pipeline.run_stage("publish", SRC, run_id="r", window_end=NIGHT, ctx=ctx)
    rows = {r["stage"]: r for r in run_statistics(engine, run_id="r")}
    assert set(rows) == {"extract", "validate", "publish"}
    for r in rows.values():
        assert r["started_at"] and r["finished_at"] and r["finished_at"] >= r["started_at"]
        assert r["duration_s"] is not None
    assert rows["validate"]["quarantined"] == 1
    assert rows["publish"]["status"] == "failed" and "079188012345" not in rows["publish"]["error_text"]
