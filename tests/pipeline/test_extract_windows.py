"""Extract windows and watermarks, run without Airflow against the in-process sandbox."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from tthc.pipeline import run_stage

SOURCE = "igate_tinh"
ANCHOR = datetime(2026, 11, 2, 8, 0)


@pytest.fixture
def world_env(tmp_path, monkeypatch):
    from sandbox.server import SandboxConfig, running_sandbox
    from sandbox.world import World, WorldConfig
    from tthc.demo import connection_env
    from tthc.warehouse.db import get_engine, migrate

    world = World(WorldConfig(seed=5, size=150, anchor=ANCHOR))
    cfg = SandboxConfig.for_tests(tmp_path, simulators=("igate",))
    with running_sandbox(cfg, world=world) as sb:
        doc = sb.state_document()
        doc.setdefault("urls", {}).update(
            {"portal": "http://127.0.0.1:9", "population": "http://127.0.0.1:9"}
        )
        for k, v in connection_env(doc).items():
            monkeypatch.setenv(k, v)
        url = f"sqlite:///{tmp_path / 'wh.db'}"
        monkeypatch.setenv("TTHC_WAREHOUSE_URL", url)
        engine = get_engine(url)
        migrate(engine)
        yield world, engine


def _visible_updated_between(world, start, end) -> int:
    return sum(1 for r in world.records(SOURCE) if start <= r.dossier.updated_at < end)


def test_watermark_moves_forward_only_and_backfill_reads_its_day(world_env):
    from tthc.warehouse import repo

    world, engine = world_env
    first = run_stage("extract", SOURCE, run_id="r1", window_end=world.now)
    assert first["records_in"] == world.expected(SOURCE)["pulled"]
    assert repo.get_watermark(engine, SOURCE) == world.now

    # a backfill of ten days ago reads that day plus the look-back, and leaves the watermark alone
    day_end = world.now - timedelta(days=10)
    back = run_stage("extract", SOURCE, run_id="b1", window_end=day_end, backfill=True)
    start = day_end - timedelta(days=1) - timedelta(hours=72)
    assert back["window_start"] == start.isoformat()
    assert back["records_in"] == _visible_updated_between(world, start, day_end)
    assert back["inserted"] == 0 and back["updated"] == 0  # nothing new: the first run had it all
    assert repo.get_watermark(engine, SOURCE) == world.now


def test_failed_extract_leaves_watermark_and_records_error(world_env, monkeypatch):
    import sqlalchemy as sa

    from tthc.warehouse import repo

    world, engine = world_env
    run_stage("extract", SOURCE, run_id="r1", window_end=world.now)
    world.advance(days=1)
    dead = '{"conn_type": "http", "host": "127.0.0.1", "port": 9}'  # nothing listens there
    monkeypatch.setenv("AIRFLOW_CONN_TTHC_IGATE_TINH", dead)
    with pytest.raises(Exception):  # noqa: B017 - any connector error
        run_stage("extract", SOURCE, run_id="r2", window_end=world.now)
    assert repo.get_watermark(engine, SOURCE) == world.now - timedelta(days=1)
    with engine.connect() as c:
        status, text = c.execute(
            sa.text("SELECT status, error_text FROM pipeline_runs WHERE run_id = 'r2' AND stage = 'extract'")
        ).one()
    assert status == "failed" and text


def test_volume_and_freshness_rules_are_stored_per_night(world_env):
    import sqlalchemy as sa

    from tthc.warehouse import repo

    world, engine = world_env
    base = world.now - timedelta(days=10)
    for i in range(5):  # five earlier nights of about a hundred dossiers each
        rid = f"hist{i}"
        repo.start_stage(engine, rid, SOURCE, "extract", now=base + timedelta(days=i))
        repo.finish_stage(
            engine, rid, SOURCE, "extract", "success", records_in=100 + i, now=base + timedelta(days=i)
        )
    repo.set_watermark(engine, SOURCE, world.now - timedelta(hours=1), "hist4")
    run_stage("extract", SOURCE, run_id="tonight", window_end=world.now)
    run_stage("validate", SOURCE, run_id="tonight", window_end=world.now)
    with engine.connect() as c:
        rows = dict(
            c.execute(
                sa.text(
                    "SELECT rule_id, failed FROM validation_results"
                    " WHERE run_id = 'tonight' AND suite = 'source_batch'"
                )
            ).all()
        )
    assert rows == {"volume_anomaly": 1, "freshness": 0}


def test_records_stored_before_are_not_mapped_again_except_by_a_backfill(world_env, monkeypatch):
    """The look-back re-reads every unchanged record of its hours: those are stored already, so
    they are neither mapped nor stored again; a changed record is; a backfill maps all it reads."""
    import connectors.igate as igate

    world, engine = world_env
    mapped: list[str] = []
    real = igate.to_dossier

    def counting(rec, sid):
        d = real(rec, sid)
        mapped.append(d.dossier_code)
        return d

    monkeypatch.setattr(igate, "to_dossier", counting)
    first = run_stage("extract", SOURCE, run_id="r1", window_end=world.now)
    assert first["raw_known"] == 0 and len(mapped) == first["records_in"] == first["raw_new"]

    world.advance(hours=6)  # inside the 72 h look-back: the window re-reads recent records
    mapped.clear()
    second = run_stage("extract", SOURCE, run_id="r2", window_end=world.now)
    changed = second["inserted"] + second["updated"]
    assert second["records_in"] > second["raw_known"] > 0
    assert len(mapped) == second["records_in"] - second["raw_known"] == second["raw_new"]
    assert changed <= len(mapped)

    mapped.clear()
    back = run_stage("extract", SOURCE, run_id="b1", window_end=world.now, backfill=True)
    assert back["raw_known"] == 0 and len(mapped) == back["records_in"] > 0
    assert back["raw_new"] == 0 and back["inserted"] == back["updated"] == 0


def _pending(engine) -> set[str]:
    from tthc.warehouse import repo, schema

    return repo.codes_where(engine, schema.dossiers, SOURCE, "quality_status", ["pending"])


def test_a_backfill_after_a_mapping_fix_validates_the_versions_it_writes(world_env, monkeypatch):
    """A backfill re-maps records that earlier runs stored: after a mapping fix that writes new
    versions whose raw records belong to the earlier run. Its validation must still take them,
    or they would stay 'pending' (never published) until the source changed them."""
    import dataclasses

    import connectors.igate as igate

    world, engine = world_env
    run_stage("extract", SOURCE, run_id="r1", window_end=world.now)
    run_stage("validate", SOURCE, run_id="r1", window_end=world.now)
    assert _pending(engine) == set()
    from tthc.warehouse import repo

    repo.mark_published(engine, repo.publish_candidates(engine, SOURCE))  # on the portal as mapped

    real = igate.to_dossier

    def fixed(rec, sid):  # the "fix": a name the old mapping left untrimmed, say
        d = real(rec, sid)
        return dataclasses.replace(d, procedure_name=f"{d.procedure_name or ''} (đã sửa)")

    monkeypatch.setattr(igate, "to_dossier", fixed)
    back = run_stage("extract", SOURCE, run_id="b1", window_end=world.now, backfill=True)
    rewritten = _pending(engine)
    assert back["raw_new"] == 0 and back["updated"] == len(rewritten) > 0  # no raw row of its own

    out = run_stage("validate", SOURCE, run_id="b1", window_end=world.now)
    assert _pending(engine) == set()
    assert out["left_pending"] == len(rewritten) == out["records_in"]
    held = repo.held_codes(engine, SOURCE)
    assert {d.dossier_code for d in repo.publish_candidates(engine, SOURCE)} == rewritten - held


def test_dossiers_a_dead_run_left_unvalidated_are_validated_the_next_night(world_env):
    """A run whose validation never finished leaves its dossiers 'pending'; the next night's
    validation takes them with its own records (each once), not only the records it pulled."""
    world, engine = world_env
    run_stage("extract", SOURCE, run_id="dead", window_end=world.now)  # dies before validating
    left = _pending(engine)
    assert left

    world.advance(days=4)  # past the look-back: tonight's pull does not re-read them all
    tonight = run_stage("extract", SOURCE, run_id="n2", window_end=world.now)
    out = run_stage("validate", SOURCE, run_id="n2", window_end=world.now)
    assert _pending(engine) == set()
    assert 0 < out["left_pending"] < len(left)
    assert out["records_in"] <= tonight["raw_new"] + out["left_pending"]
