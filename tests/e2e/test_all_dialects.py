"""Every kind of agency system through every stage (without Airflow, for speed): the 12-source
world built from the registry, compared with the generator's ground truth.

igate, onegate and the department database must match the truth exactly (pulled, quarantined,
published). The file drop carries monthly exports with half-written and malformed files; what
reaches the portal from it must be true, every file decided must be in the manifest (rejected ones
with a reason), and a second night must not read an unchanged file again.
"""

from __future__ import annotations

import pytest
import requests
import sqlalchemy as sa

from tthc.pipeline import STAGES, run_stage
from tthc.registry import load_registry

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def world12(tmp_path_factory):
    from sandbox.from_registry import world_config_from_registry
    from sandbox.server import SandboxConfig, running_sandbox
    from sandbox.world import World
    from tthc.demo import connection_env
    from tthc.warehouse.db import get_engine

    tmp = tmp_path_factory.mktemp("all")
    world = World(world_config_from_registry(load_registry(), seed=21, size=700))
    # more file-drop faults than the default, so malformed files show up in a small world
    cfg = SandboxConfig.for_tests(tmp, filedrop_options={"malformed_rate": 0.4, "empty_rate": 0.15})
    with running_sandbox(cfg, world=world) as sb, pytest.MonkeyPatch.context() as mp:
        for k, v in connection_env(sb.state_document()).items():
            mp.setenv(k, v)
        url = f"sqlite:///{tmp / 'wh.db'}"
        mp.setenv("TTHC_WAREHOUSE_URL", url)
        engine = get_engine(url)
        results = {
            s.source_id: {st: run_stage(st, s.source_id, run_id="n1", window_end=world.now) for st in STAGES}
            for s in world.sources
        }
        portal = requests.get(f"{sb.urls['portal']}/_sandbox/state", timeout=10).json()["dossiers"]
        yield {"world": world, "engine": engine, "results": results, "portal": portal, "sb": sb}


def _portal_codes(env, sid):
    codes = set(env["world"].source(sid).agency_codes)
    return {c for c, e in env["portal"].items() if e["madonvi"] in codes}


def _held(env, sid):
    with env["engine"].connect() as c:
        q = "SELECT dossier_code FROM quarantine WHERE status = 'held' AND source_id = :s"
        return {r[0] for r in c.execute(sa.text(q), {"s": sid})}


@pytest.mark.parametrize("dialect", ["igate", "onegate", "sqldb"])
def test_api_and_database_sources_match_ground_truth(world12, dialect):
    world = world12["world"]
    sources = [s.source_id for s in world.sources if s.dialect == dialect]
    assert sources
    for sid in sources:
        truth = world.expected(sid)
        r = world12["results"][sid]
        assert r["extract"]["records_in"] == truth["pulled"], sid
        assert _held(world12, sid) == set(truth["quarantined_codes"]), sid
        assert _portal_codes(world12, sid) == set(truth["publishable_codes"]), sid


def test_department_database_mojibake_is_repaired(world12):
    repaired = sum(
        world12["results"][s.source_id]["extract"].get("text_repaired", 0)
        for s in world12["world"].sources
        if s.dialect == "sqldb"
    )
    assert repaired > 0, "the sandbox stores some names as latin1 mojibake"
    with world12["engine"].connect() as c:
        names = [
            r[0]
            for r in c.execute(sa.text("SELECT applicant_name FROM dossiers WHERE source_id LIKE 'sqldb%'"))
        ]
    assert names and not any("á»" in n or "Ä" in n for n in names if n)


def test_file_drop_sources(world12):
    world, engine = world12["world"], world12["engine"]
    sources = [s.source_id for s in world.sources if s.dialect == "filedrop"]
    statuses = set()
    for sid in sources:
        truth = world.expected(sid)
        published = _portal_codes(world12, sid)
        assert published and published <= set(truth["publishable_codes"]), sid
        assert _held(world12, sid) <= set(truth["quarantined_codes"]), sid
        with engine.connect() as c:
            rows = c.execute(
                sa.text("SELECT status, reason FROM file_manifest WHERE source_id = :s"), {"s": sid}
            ).all()
        assert rows, sid
        for status, reason in rows:
            statuses.add(status)
            assert status == "loaded" or reason, (sid, status)
    assert statuses == {"loaded", "rejected"}, "the sandbox plants malformed files"


def test_second_night_reads_no_unchanged_file_and_changes_nothing(world12):
    world, engine = world12["world"], world12["engine"]
    for s in world.sources:
        if s.dialect != "filedrop":
            continue
        with engine.connect() as c:
            before = c.execute(
                sa.text("SELECT count(*) FROM file_manifest WHERE source_id = :s"), {"s": s.source_id}
            ).scalar()
        counts = run_stage("extract", s.source_id, run_id="n1-again", window_end=world.now)
        assert counts["records_in"] == 0 and counts.get("files_loaded", 0) == 0, s.source_id
        assert counts.get("files_unchanged", 0) >= 1
        with engine.connect() as c:
            after = c.execute(
                sa.text("SELECT count(*) FROM file_manifest WHERE source_id = :s"), {"s": s.source_id}
            ).scalar()
        assert after == before
