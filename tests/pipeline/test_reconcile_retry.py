"""Reconcile asks the population database again, next night, for the applicants it could not look
up (``lookup_failed``), whether or not their dossiers changed; the others are not asked again.
Stages run without Airflow against the sandbox."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from tthc.pipeline import STAGES, run_stage

SOURCE = "igate_tinh"


@pytest.fixture
def world_and_engine(tmp_path, monkeypatch):
    from sandbox.server import SandboxConfig, running_sandbox
    from sandbox.world import World, WorldConfig
    from tthc.demo import connection_env
    from tthc.warehouse.db import get_engine

    world = World(WorldConfig.clean(seed=5, size=40))
    with running_sandbox(SandboxConfig.for_tests(tmp_path), world=world) as sb:
        for k, v in connection_env(sb.state_document()).items():
            monkeypatch.setenv(k, v)
        url = f"sqlite:///{tmp_path / 'wh.db'}"
        monkeypatch.setenv("TTHC_WAREHOUSE_URL", url)
        yield world, get_engine(url)


def _classes(engine) -> dict[str, str]:
    with engine.connect() as c:
        return dict(c.execute(sa.text("SELECT dossier_code, match_class FROM citizen_matches")).all())


def test_failed_lookups_are_asked_again_next_night(world_and_engine, monkeypatch):
    from connectors.http import TransientError
    from connectors.lgsp import LgspClient

    world, engine = world_and_engine
    real = LgspClient.lookup_many

    def half_answered(self, numbers, *a, **k):  # the bulk job answers every other number
        return real(self, list(numbers)[::2], *a, **k)

    def down(*_a, **_k):
        raise TransientError("LGSP unreachable", target="lgsp")

    with monkeypatch.context() as m:  # night 1: half the look-ups fail, single look-ups too
        m.setattr(LgspClient, "lookup_many", half_answered)
        m.setattr(LgspClient, "lookup", down)
        for stage in STAGES:
            run_stage(stage, SOURCE, run_id="n1", window_end=world.now)
    first = _classes(engine)
    failed = sorted(c for c, cls in first.items() if cls == "lookup_failed")
    assert 0 < len(failed) < len(first), first

    asked: list[str] = []

    def recording(self, numbers, *a, **k):
        numbers = list(numbers)
        asked.extend(numbers)
        return real(self, numbers, *a, **k)

    monkeypatch.setattr(LgspClient, "lookup_many", recording)
    counts = run_stage("extract", SOURCE, run_id="n2", window_end=world.now)  # nothing new
    assert counts["records_out"] == 0
    counts = run_stage("reconcile", SOURCE, run_id="n2", window_end=world.now)
    # the failed dossiers only (their distinct numbers asked once), none of the others
    assert counts["records_in"] == len(failed)
    assert 0 < len(asked) == len(set(asked)) == counts["looked_up"] <= len(failed)
    second = _classes(engine)
    assert all(second[c] != "lookup_failed" for c in failed), second
    assert {c: v for c, v in second.items() if c not in failed} == {
        c: v for c, v in first.items() if c not in failed
    }


def test_dossiers_of_a_run_that_died_before_reconciling_are_matched_the_next_night(world_and_engine):
    """A run that extracted and validated but died before reconciling leaves its dossiers without a
    match; the next night takes them (each once) with its own changes, and only once: the night
    after asks for nothing more."""
    world, engine = world_and_engine
    for stage in ("extract", "validate"):  # the worker dies here
        run_stage(stage, SOURCE, run_id="dead", window_end=world.now)
    assert _classes(engine) == {}
    from tthc.warehouse import repo, schema

    not_held = [st for st in schema.QUALITY_STATUSES if st != "quarantined"]
    open_ = len(repo.codes_where(engine, schema.dossiers, SOURCE, "quality_status", not_held))
    assert open_ > 0

    run_stage("extract", SOURCE, run_id="n2", window_end=world.now)  # nothing new
    run_stage("validate", SOURCE, run_id="n2", window_end=world.now)
    counts = run_stage("reconcile", SOURCE, run_id="n2", window_end=world.now)
    assert counts["records_in"] == open_ == len(_classes(engine))

    run_stage("extract", SOURCE, run_id="n3", window_end=world.now)
    assert run_stage("reconcile", SOURCE, run_id="n3", window_end=world.now)["records_in"] == 0
