"""Validation takes a record the extract pinned (``raw_records.mapped_hash``) from the stored
dossier instead of mapping it again; what it validates must be exactly what mapping every record
gives, for every dialect, on a first night and on a night with changes, duplicates and defects."""

from __future__ import annotations

import dataclasses
import os
from datetime import timedelta

import pytest
import sqlalchemy as sa

from sandbox.igate import render_igate
from sandbox.world import World, WorldConfig
from tthc.pipeline import run_stage
from tthc.pipeline.context import StageContext
from tthc.pipeline.extract import mapping_pins
from tthc.pipeline.validate import _dossiers_of_run, validate
from tthc.registry import load_registry
from tthc.warehouse import repo
from tthc.warehouse.db import get_engine, migrate

SOURCE = "igate_tinh"
PG = "postgresql+psycopg://{}@{}:{}".format(
    os.environ.get("TTHC_TEST_PG_USER", "postgres"),
    os.environ.get("TTHC_TEST_PG_HOST", "127.0.0.1"),
    os.environ.get("TTHC_TEST_PG_PORT", "5432"),
)


def _ctx(engine, source_id: str, run_id: str, window_end) -> StageContext:
    reg = load_registry()
    return StageContext(
        source=reg.get(source_id), registry=reg, run_id=run_id, window_end=window_end, engine=engine
    )


def _pg_database() -> str:
    """A fresh PostgreSQL database on the CI machine's server (dropped by the caller)."""
    import uuid

    name = f"tthc_test_pins_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(f"{PG}/postgres", isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    try:
        with admin.connect() as c:
            c.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.OperationalError as exc:  # pragma: no cover - no server here
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"PostgreSQL not reachable under CI=true: {type(exc.orig).__name__}")
        pytest.skip("PostgreSQL not reachable")
    finally:
        admin.dispose()
    return name


def _drop(name: str) -> None:
    admin = sa.create_engine(f"{PG}/postgres", isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with admin.connect() as c:
        c.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def nights(request, tmp_path_factory):
    """Two nights of extracts over the registry's world (every dialect, default defects), with the
    warehouse on each backend (PostgreSQL takes the bulk paths)."""
    from sandbox.from_registry import world_config_from_registry
    from sandbox.server import SandboxConfig, running_sandbox
    from tthc.demo import connection_env
    from tthc.warehouse.db import dispose_engine

    tmp = tmp_path_factory.mktemp("pins")
    world = World(world_config_from_registry(load_registry(), seed=33, size=1500))
    pg_name = _pg_database() if request.param == "postgres" else None
    url = f"{PG}/{pg_name}" if pg_name else f"sqlite:///{tmp / 'wh.db'}"
    with running_sandbox(SandboxConfig.for_tests(tmp), world=world) as sb, pytest.MonkeyPatch.context() as mp:
        for k, v in connection_env(sb.state_document()).items():
            mp.setenv(k, v)
        mp.setenv("TTHC_WAREHOUSE_URL", url)
        engine = get_engine(url)
        runs = []
        for run_id in ("n1", "n2"):
            if run_id == "n2":
                world.advance(days=2)
            for s in world.sources:
                run_stage("extract", s.source_id, run_id=run_id, window_end=world.now)
                runs.append((s.source_id, run_id, world.now))
        yield engine, runs
    if pg_name:
        dispose_engine(url)
        _drop(pg_name)


def test_pinned_records_validate_exactly_what_mapping_gives(nights, monkeypatch):
    from tthc.pipeline import sources

    engine, runs = nights
    mapped_calls = {"n": 0}
    real = sources.mapper_for

    def counting(src):
        to_dossier, rest = real(src)

        def wrapped(r):
            mapped_calls["n"] += 1
            return to_dossier(r)

        return wrapped, rest

    monkeypatch.setattr("tthc.pipeline.validate.mapper_for", counting)
    compared = pinned_used = 0
    for sid, run_id, end in runs:
        ctx = _ctx(engine, sid, run_id, end)
        mapped_calls["n"] = 0
        got, got_hashes = _dossiers_of_run(ctx)
        with_pins = mapped_calls["n"]
        mapped_calls["n"] = 0
        want, want_hashes = _dossiers_of_run(ctx, use_pins=False)
        everything = mapped_calls["n"]
        assert got == want, (sid, run_id)  # same dossiers, same order, every field
        assert got_hashes == want_hashes, (sid, run_id)
        compared += len(want)
        pinned_used += everything - with_pins
    assert compared > 1000
    # most records were not mapped again (those are the point of the pins)
    assert pinned_used > 0.8 * compared, (pinned_used, compared)


def test_both_nights_stored_pins(nights):
    engine, _ = nights
    with engine.connect() as c:
        pinned, total = c.execute(
            sa.text("SELECT COUNT(mapped_hash), COUNT(*) FROM raw_records WHERE dossier_code IS NOT NULL")
        ).one()
        runs = {r for (r,) in c.execute(sa.text("SELECT DISTINCT run_id FROM raw_records"))}
    assert runs == {"n1", "n2"}
    assert pinned > 0.9 * total, (pinned, total)


def _dossier(seed: int = 9):
    return World(WorldConfig.clean(seed=seed, size=20)).records(SOURCE)[0].dossier


def test_sub_second_times_and_other_codes_are_not_pinned():
    d = _dossier()
    h = d.content_hash()
    code = d.dossier_code
    assert mapping_pins([code], [d], [h]) == [(h, d.updated_at)]
    sub = dataclasses.replace(d, received_at=d.received_at.replace(microsecond=5))
    assert mapping_pins([code], [sub], [sub.content_hash()]) == [(None, None)]
    # a sub-second update time is kept exactly: pinned
    upd = dataclasses.replace(d, updated_at=d.updated_at.replace(microsecond=7))
    assert mapping_pins([code], [upd], [h]) == [(h, upd.updated_at)]
    other = dataclasses.replace(d, dossier_code=d.dossier_code + "X")
    assert mapping_pins([code], [other], [other.content_hash()]) == [(None, None)]
    assert mapping_pins([None], [d], [h]) == [(None, None)]  # the record's code was unreadable


def _store(engine, run_id: str, d) -> None:
    """Store the igate record of ``d`` as the extract does: with what its mapping gives."""
    raw = render_igate(d)
    code = repo.code_or_none(lambda r: r.get("code"), raw)
    [pin] = mapping_pins([code], [d], [d.content_hash()])
    assert pin[0] is not None
    repo.store_raw(engine, SOURCE, run_id, [repo.RawRow(*repo.raw_identity(raw), code, *pin)])


def test_pinned_stale_record_is_dropped_and_pinned_current_one_keeps_its_update_time(tmp_path):
    engine = get_engine(f"sqlite:///{tmp_path / 'wh.db'}")
    migrate(engine)
    good = _dossier()
    newer = dataclasses.replace(good, updated_at=good.updated_at + timedelta(days=1), status=10)
    stale_bad = dataclasses.replace(good, applicant_id_number="12345")  # older, and broken
    repo.upsert_dossiers(engine, [newer], "r0")
    _store(engine, "r1", stale_bad)
    counts = validate(_ctx(engine, SOURCE, "r1", newer.updated_at))
    # the stale record is dropped; the stored version it lost to (written by r0, never
    # validated) is validated in its place
    assert counts["quarantined"] == 0 and counts["records_in"] == counts["left_pending"] == 1
    assert repo.held_codes(engine, SOURCE) == set()
    assert repo.dossier_states(engine, SOURCE)[newer.dossier_code].quality_status in ("valid", "warning")

    # the same content re-read with an earlier update time than the stored one: validated with
    # the record's update time, as mapping it gives
    again = dataclasses.replace(newer, updated_at=newer.updated_at - timedelta(hours=1))
    _store(engine, "r2", again)
    ctx = _ctx(engine, SOURCE, "r2", newer.updated_at)
    got, _ = _dossiers_of_run(ctx)
    want, _ = _dossiers_of_run(ctx, use_pins=False)
    assert got == want and len(got) == 1
    assert got[0]["updated_at"] == again.updated_at != newer.updated_at
