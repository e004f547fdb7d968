"""Fault storm: several nights of the source DAG (``dag.test()``, in-process sandbox) while the
national portal misbehaves, then one quiet night; the portal must end up exactly right.

Portal faults every storm night: 5xx, 429 with ``Retry-After: 1``, connection resets, answers that
never come, and "committed but the answer was lost" (``commit_lost`` ≥ 0.1), in ``timeout`` mode on
odd nights and ``reset`` mode on even ones; sessions expire every 1.5 s. The agency system and the
population database have mild faults. Task retries are 0: every night must end green (items the
portal did not take stay queued), and the next night catches up.

After the last night: the portal holds exactly the publishable dossiers with the world's current
status, no progress entry was received twice, and every status change the warehouse saw is shown
exactly once. The numbers of injected faults and of ambiguous sends the client met are printed
(``pytest -s``) and asserted to be non-zero, so the storm cannot silently be a calm.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

import pendulum
import pytest
import requests
import sqlalchemy as sa

pytestmark = pytest.mark.e2e

STORM_SOURCE = "igate_tinh"
STORM_DAG_ID = f"tthc_source_{STORM_SOURCE}"
STORM_ANCHOR = datetime(2026, 11, 9, 8, 0)  # a Monday, naive Vietnam time
STORM_NIGHTS = 4  # then one quiet night
STORM_SEED = 23


def storm_profile(night: int) -> dict:
    return {
        "seed": 1000 + night,
        "error_5xx": 0.05,
        "rate_429": 0.015,
        "retry_after": 1,
        "reset": 0.04,
        "timeout": 0.03,
        "timeout_seconds": 0.5,  # held longer than the client's read time-out (0.3 s)
        "commit_lost": 0.2,
        "commit_lost_mode": "timeout" if night % 2 else "reset",
    }


class AmbiguityCounter(logging.Handler):
    """Counts the ambiguous portal requests the HTTP layer reported (its WARNING lines)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.args and record.args[0] == "portal" and "AmbiguousError" in record.getMessage():
            self.count += 1


@pytest.fixture(scope="module")
def storm_env(tmp_path_factory, airflow_home):
    from sandbox.faults import FaultProfile
    from sandbox.server import SandboxConfig, running_sandbox
    from sandbox.world import World, WorldConfig
    from tthc.demo import connection_env

    subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), "db", "migrate"],
        check=True,
        capture_output=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    tmp = tmp_path_factory.mktemp("storm")
    world = World(WorldConfig(seed=STORM_SEED, size=120, anchor=STORM_ANCHOR))
    cfg = SandboxConfig.for_tests(
        tmp,
        session_seconds=1.5,
        faults={
            "igate": FaultProfile(seed=5, error_5xx=0.03, rate_429=0.01, latency_ms=2),
            "population": FaultProfile(seed=6, error_5xx=0.03),
        },
    )
    counter = AmbiguityCounter()
    http_log = logging.getLogger("connectors.http")
    http_log.addHandler(counter)
    with running_sandbox(cfg, world=world) as sb, pytest.MonkeyPatch.context() as mp:
        for k, v in connection_env(sb.state_document()).items():
            mp.setenv(k, v)
        url = f"sqlite:///{tmp / 'warehouse.db'}"
        mp.setenv("TTHC_WAREHOUSE_URL", url)
        mp.setenv("TTHC_TASK_RETRIES", "0")
        mp.setenv("TTHC_HTTP_TIMEOUT", "5")  # agency system, population database
        mp.setenv("TTHC_PORTAL_TIMEOUT", "0.3")
        mp.setenv("TTHC_PORTAL_BATCH_SIZE", "10")
        mp.setenv("TTHC_PORTAL_RETRY_ATTEMPTS", "2")  # transient failures outlive the retries
        mp.setenv("TTHC_PORTAL_BACKOFF_MAX", "0.3")
        from airflow.dag_processing.dagbag import DagBag

        dag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"]).dags[STORM_DAG_ID]
        yield {
            "sb": sb,
            "world": world,
            "dag": dag,
            "engine": sa.create_engine(url),
            "mp": mp,
            "ambiguous": counter,
        }
    http_log.removeHandler(counter)


def storm_run(env) -> str:
    now = env["world"].now
    dr = env["dag"].test(run_after=pendulum.instance(now, tz="Asia/Ho_Chi_Minh"))
    assert str(dr.state) == "success", dr.state
    return dr.run_id


def storm_portal(env, path: str = "state", body: dict | None = None) -> dict:
    url = f"{env['sb'].urls['portal']}/_sandbox/{path}"
    if body is None:
        return requests.get(url, timeout=10).json()
    return requests.post(url, json=body, timeout=10).json()


def storm_set_faults(env, portal: dict, quiet_others: bool = False) -> None:
    storm_portal(env, "faults", portal)
    if quiet_others:
        for name in ("igate", "population"):
            requests.post(f"{env['sb'].urls[name]}/_sandbox/faults", json={}, timeout=10)


def storm_publish_counts(env, run_id: str) -> dict:
    with env["engine"].connect() as c:
        row = (
            c.execute(
                sa.text(
                    "SELECT status, published, errors, details FROM pipeline_runs"
                    " WHERE run_id = :r AND source_id = :s AND stage = 'publish'"
                ),
                {"r": run_id, "s": STORM_SOURCE},
            )
            .mappings()
            .one()
        )
    assert row["status"] == "success"
    return {**json.loads(row["details"]), "published": row["published"], "errors": row["errors"]}


def test_fault_storm_ends_exactly_once_and_in_sync(storm_env):
    env = storm_env
    world = env["world"]
    t0 = time.monotonic()
    injected: Counter[str] = Counter()
    injected_by_mode: Counter[str] = Counter()
    nights: list[dict] = []
    for night in range(1, STORM_NIGHTS + 2):
        storm = night <= STORM_NIGHTS
        if night > 1:
            world.advance(days=1)
        if storm:
            storm_set_faults(env, storm_profile(night))
            env["mp"].setenv("TTHC_VERIFY_SAMPLE", "10")  # a rotating sample while it storms
        else:
            storm_set_faults(env, {}, quiet_others=True)
            env["mp"].setenv("TTHC_VERIFY_SAMPLE", "2000")  # the quiet night verifies everything
        run_id = storm_run(env)
        faults = storm_portal(env)["faults"]
        injected.update(faults["injected"])
        if storm:
            injected_by_mode[storm_profile(night)["commit_lost_mode"]] += faults["injected"].get(
                "commit_lost", 0
            )
        counts = storm_publish_counts(env, run_id)
        nights.append(
            {
                "night": night,
                "storm": storm,
                "injected": faults["injected"],
                **{
                    k: counts.get(k)
                    for k in (
                        "published",
                        "errors",
                        "dossiers_unsure",
                        "dossiers_retryable",
                        "progress_sent",
                        "progress_found_applied",
                        "progress_unsure",
                        "progress_retryable",
                        "progress_waiting",
                        "verify_checked",
                        "mismatches",
                        "sync_rate",
                    )
                },
            }
        )
    elapsed = time.monotonic() - t0
    summary = {
        "nights": len(nights),
        "seconds": round(elapsed, 1),
        "injected_portal_faults": dict(injected),
        "commit_lost_by_mode": dict(injected_by_mode),
        "ambiguous_sends_seen_by_client": env["ambiguous"].count,
        "per_night": nights,
    }
    print("\nFAULT STORM SUMMARY " + json.dumps(summary, ensure_ascii=False, indent=1))

    # the storm was real: committed-then-lost in both modes, and the client met ambiguity
    assert injected_by_mode["timeout"] >= 1 and injected_by_mode["reset"] >= 1, summary
    assert injected["error_5xx"] >= 1 and injected["rate_429"] >= 1, summary
    assert env["ambiguous"].count >= 5, summary
    state = storm_portal(env)
    assert state["sessions_issued"] > len(nights), "sessions expired and were renewed during the nights"

    # the portal holds exactly the publishable dossiers, with the world's current status
    truth = world.expected(STORM_SOURCE)
    by_code = {r.dossier.dossier_code: r.dossier for r in world.records(STORM_SOURCE)}
    portal = state["dossiers"]
    assert set(portal) == set(truth["publishable_codes"])
    for code, held in portal.items():
        assert int(held["record"]["TrangThaiHoSo"]) == by_code[code].status, code

    # no progress entry was received twice
    twice = {code: p["entry"] for code, held in portal.items() for p in held["progress"] if p["count"] != 1}
    assert twice == {}

    # every status change the warehouse saw is shown once (time and status of each change)
    with env["engine"].connect() as c:
        rows = c.execute(
            sa.text(
                "SELECT dossier_code, version, updated_at, payload FROM dossier_history"
                " WHERE source_id = :s ORDER BY dossier_code, version"
            ),
            {"s": STORM_SOURCE},
        ).all()
    seen: dict[str, list[tuple[str, int]]] = {}
    last: dict[str, int | None] = {}
    for code, _version, updated_at, payload in rows:
        status = json.loads(payload)["status"]
        if status is None or status == last.get(code):
            continue
        last[code] = status
        at = updated_at if isinstance(updated_at, datetime) else datetime.fromisoformat(str(updated_at))
        seen.setdefault(code, []).append((at.strftime("%Y%m%d%H%M%S"), status))
    changes = 0
    for code, held in portal.items():
        shown = sorted((p["entry"]["ThoiDiemXuLy"], p["entry"]["TrangThai"]) for p in held["progress"])
        assert shown == seen[code], code
        changes += len(shown)
    assert changes > len(portal), "the nights moved dossiers on"

    # the warehouse agrees: nothing left to send, the read-back found everything in sync
    final = storm_publish_counts(env, run_id)
    assert final["mismatches"] == 0 and final["progress_missing"] == 0 and final["progress_duplicates"] == 0
    assert final["verify_in_sync"] == final["verify_publishable"] == len(truth["publishable_codes"])
    assert final["sync_rate"] == 1.0 and final["failing_repeatedly"] == 0
    with env["engine"].connect() as c:
        open_msgs = c.execute(
            sa.text("SELECT dossier_code, kind, status FROM publish_outbox WHERE status <> 'confirmed'")
        ).all()
    assert [m for m in open_msgs if m[0] in truth["publishable_codes"]] == []
