"""End to end: the source DAG through ``dag.test()`` against the in-process sandbox.

Asserts what reached the warehouse and the portal against the world generator's ground truth:
pulled, quarantined and published counts and codes, statuses on the portal, match classes; then
that a re-run changes nothing, and that a simulated day later only the changes are sent.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pendulum
import pytest
import requests
import sqlalchemy as sa

pytestmark = pytest.mark.e2e

SOURCE = "igate_tinh"
DAG_ID = f"tthc_source_{SOURCE}"
ANCHOR = datetime(2026, 11, 2, 8, 0)  # naive Vietnam time


@pytest.fixture(scope="module")
def env(tmp_path_factory, airflow_home):
    from sandbox.server import SandboxConfig, running_sandbox
    from sandbox.world import World, WorldConfig
    from tthc.demo import connection_env

    subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), "db", "migrate"],
        check=True,
        capture_output=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    tmp = tmp_path_factory.mktemp("e2e")
    world = World(WorldConfig(seed=11, size=300, anchor=ANCHOR))
    with running_sandbox(SandboxConfig.for_tests(tmp), world=world) as sb, pytest.MonkeyPatch.context() as mp:
        for k, v in connection_env(sb.state_document()).items():
            mp.setenv(k, v)
        url = f"sqlite:///{tmp / 'warehouse.db'}"
        mp.setenv("TTHC_WAREHOUSE_URL", url)
        mp.setenv("TTHC_TASK_RETRIES", "0")
        from airflow.dag_processing.dagbag import DagBag

        dag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"]).dags[DAG_ID]
        yield {"sb": sb, "world": world, "dag": dag, "engine": sa.create_engine(url)}


def run_dag(env, minutes_later: int = 0) -> str:
    """One DAG run whose window ends at the world's now (plus ``minutes_later``)."""
    now = env["world"].now + timedelta(minutes=minutes_later)
    dr = env["dag"].test(run_after=pendulum.instance(now, tz="Asia/Ho_Chi_Minh"))
    assert str(dr.state) == "success", dr.state
    return dr.run_id


def stage_rows(env, run_id) -> dict[str, dict]:
    with env["engine"].connect() as c:
        rows = c.execute(
            sa.text("SELECT * FROM pipeline_runs WHERE run_id = :r AND source_id = :s"),
            {"r": run_id, "s": SOURCE},
        ).mappings()
        return {r["stage"]: dict(r) for r in rows}


def portal_state(env) -> dict:
    return requests.get(f"{env['sb'].urls['portal']}/_sandbox/state", timeout=10).json()


def test_first_night_matches_ground_truth(env):
    truth = env["world"].expected(SOURCE)
    assert truth["quarantined_codes"] and truth["publishable_codes"], "world too small to be meaningful"
    run_id = run_dag(env)
    st = stage_rows(env, run_id)
    assert {s: r["status"] for s, r in st.items()} == dict.fromkeys(
        ("extract", "validate", "reconcile", "publish", "indicators"), "success"
    )
    assert st["extract"]["records_in"] == truth["pulled"]
    assert st["validate"]["quarantined"] == len(truth["quarantined_codes"])
    assert st["publish"]["published"] == len(truth["publishable_codes"])

    with env["engine"].connect() as c:
        held = {r[0] for r in c.execute(sa.text("SELECT dossier_code FROM quarantine WHERE status = 'held'"))}
        reasons = [json.loads(r[0]) for r in c.execute(sa.text("SELECT reasons FROM quarantine"))]
    assert held == set(truth["quarantined_codes"])
    assert all(reasons), "every quarantined dossier has its reasons"

    portal = portal_state(env)
    assert set(portal["dossiers"]) == set(truth["publishable_codes"])
    by_code = {r.dossier.dossier_code: r for r in env["world"].records(SOURCE)}
    for code, entry in portal["dossiers"].items():
        assert int(entry["record"]["TrangThaiHoSo"]) == by_code[code].dossier.status

    # the run's sync rate (1.4) is the publish stage's read-back of the portal, not overwritten later
    verified = json.loads(st["publish"]["details"])["sync_rate"]
    with env["engine"].connect() as c:
        stored = c.execute(
            sa.text(
                "SELECT value FROM indicators WHERE period_type = 'run' AND scope = 'source'"
                " AND scope_code = :s AND indicator_id = '1.4_sync_rate'"
            ),
            {"s": SOURCE},
        ).scalar_one()
    assert stored == verified == 1.0


def test_match_classes_equal_ground_truth(env):
    with env["engine"].connect() as c:
        got = dict(c.execute(sa.text("SELECT dossier_code, match_class FROM citizen_matches")).all())
        ids = [
            r[0] for r in c.execute(sa.text("SELECT id_hash FROM citizen_matches WHERE id_hash IS NOT NULL"))
        ]
    truth = env["world"].expected(SOURCE)
    want = {
        r.dossier.dossier_code: r.expected_match
        for r in env["world"].records(SOURCE)
        if r.dossier.dossier_code in truth["publishable_codes"]
    }
    assert got == want
    assert all(not i.isdigit() for i in ids), "matches keep keyed hashes, never ID numbers"


def test_rerun_of_same_window_changes_nothing(env):
    before = portal_state(env)
    run_id = run_dag(env, minutes_later=1)
    st = stage_rows(env, run_id)
    assert st["publish"]["published"] == 0
    assert st["extract"]["details"] and json.loads(st["extract"]["details"])["inserted"] == 0
    after = portal_state(env)
    assert after["dossiers"] == before["dossiers"]


def test_next_day_sends_only_changes(env):
    world = env["world"]
    codes_before = {r.dossier.dossier_code: r.dossier.content_hash() for r in world.records(SOURCE)}
    world.advance(days=1)
    truth = world.expected(SOURCE)
    changed = {
        r.dossier.dossier_code
        for r in world.records(SOURCE)
        if codes_before.get(r.dossier.dossier_code) != r.dossier.content_hash()
        and r.dossier.dossier_code in truth["publishable_codes"]
    }
    assert changed, "a simulated day should change something"
    run_id = run_dag(env)
    st = stage_rows(env, run_id)
    assert st["publish"]["published"] == len(changed)
    portal = portal_state(env)
    assert set(portal["dossiers"]) == set(truth["publishable_codes"])
    by_code = {r.dossier.dossier_code: r for r in world.records(SOURCE)}
    for code, entry in portal["dossiers"].items():
        assert int(entry["record"]["TrangThaiHoSo"]) == by_code[code].dossier.status
