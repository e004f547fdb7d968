"""A Celery worker killed (SIGKILL) in the middle of publishing, then the run resumed by Airflow:
the same result as a run that was never killed (issue #7, Reliability).

On the native CeleryExecutor stack (``stack.py``: PostgreSQL, Redis, API server, scheduler, DAG
processor, one Celery worker), with task retries 1 and a short task heartbeat time-out:

1. The portal answers slowly (``latency_ms``), so publishing takes one request-latency per batch
   of 10. The test triggers the source DAG and watches the portal (``/_sandbox/state``) until the
   publish task runs, the portal holds dossiers and has received some progress entries but not all.
2. Then it SIGKILLs the worker and everything it started, at once: the worker's process group
   (Celery's main process, its pool processes, each an Airflow task supervisor) and the task
   runner's own process group (Airflow puts the forked task runner in a group of its own: killing
   the worker's group alone leaves it running, and it goes on publishing). A request to the portal
   is normally in flight at that instant: the portal applies it after the client is gone
   ("committed but the answer was lost", by a crash).
3. The portal calms down, a new worker is started, and Airflow does the rest: the scheduler learns
   that the task died (the Celery result, or at the latest ``task_instance_heartbeat_timeout``),
   puts it up for retry, and the new worker runs try 2, which resumes from the warehouse's outbox:
   progress entries are claimed and settled a window of ``CLAIM_BATCHES`` batches at a time, so
   only the window in flight is "maybe applied"; its entries are read back first and only the
   missing ones sent.

Then: the run ended ``success``, publish ran twice (try 2), and against the ground truth the portal
holds exactly the publishable dossiers with the world's status, every status change of the
warehouse's history shown as exactly one progress entry, none received twice; the outbox holds
nothing open; try 2 read back at most one window and found there the entries the dead try had
delivered (duplicates avoided). ``pytest -s`` prints what was observed at the kill.
"""

from __future__ import annotations

import dataclasses
import json
import time
from datetime import datetime

import pytest
import requests
import sqlalchemy as sa
from stack import AirflowStack, StackError, airflow_stack

pytestmark = [pytest.mark.distributed, pytest.mark.timeout(600)]

SOURCE = "igate_tinh"
DAG_ID = f"tthc_source_{SOURCE}"
WORLD_SIZE = 80
BATCH = 10
CLAIM_BATCHES = 2  # progress batches per claim: the most the dead try can leave "maybe applied"
LATENCY_MS = 700  # per portal request while publishing the killed try
HEARTBEAT_TIMEOUT = 20  # seconds without a task heartbeat before the scheduler gives up on it
BUDGET_SECONDS = 240


def _portal(stack: AirflowStack, path: str = "state", body: dict | None = None) -> dict:
    url = f"{stack.sandbox_state['urls']['portal']}/_sandbox/{path}"
    r = requests.get(url, timeout=10) if body is None else requests.post(url, json=body, timeout=10)
    r.raise_for_status()
    return r.json()


def _portal_counts(state: dict) -> dict:
    held = state["dossiers"].values()
    return {
        "dossiers": state["dossier_count"],
        "progress_received": sum(h["progress_received"] for h in held),
        "sync_requests": state["requests"].get("DongBoHoSoMC", 0),
        "progress_requests": state["requests"].get("CapNhatTienDoHoSoMC", 0),
        "lookups": state["requests"].get("TraCuuHoSo", 0),
    }


def _task(stack: AirflowStack, run_id: str, task_id: str) -> dict:
    return stack.api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{task_id}")


def _wait_mid_publish(stack: AirflowStack, run_id: str, publishable: int, timeout: float = 180.0) -> dict:
    """Until publish runs and the portal holds every dossier but only part of the progress."""
    deadline = time.monotonic() + timeout
    last: dict = {}
    while time.monotonic() < deadline:
        stack.check_alive()
        counts = _portal_counts(_portal(stack))
        last = counts
        if counts["progress_received"] >= publishable:
            raise StackError(f"publishing finished before the kill could happen: {counts}")
        if counts["progress_received"] >= 1:
            ti = _task(stack, run_id, "publish")
            if ti["state"] == "running":
                return {**counts, "publish_try": ti["try_number"]}
        if stack.run_state(DAG_ID, run_id) in ("success", "failed"):
            raise StackError(f"the run ended before the kill: {stack.task_states(DAG_ID, run_id)}")
        time.sleep(0.2)
    raise StackError(f"publish never got half-way within {timeout:.0f} s: {last}")


def test_worker_killed_mid_publish_then_resumed(tmp_path, stack_prerequisites):
    t0 = time.monotonic()
    options = dataclasses.replace(
        stack_prerequisites,
        size=WORLD_SIZE,
        task_retries=1,
        extra_env={
            **stack_prerequisites.extra_env,
            # the scheduler gives up on a task without heartbeat after 20 s (default 300), checks
            # every 2 s; the worker's supervisor heartbeats every 5 s
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT),
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "2",
            "TTHC_TASK_RETRY_DELAY_SECONDS": "2",
            "TTHC_PORTAL_BATCH_SIZE": str(BATCH),
            "TTHC_PORTAL_CLAIM_BATCHES": str(CLAIM_BATCHES),
        },
    )
    report: dict = {}
    with airflow_stack(tmp_path / "stack", options) as stack:
        with stack.phase("DAG parsed"):
            stack.wait_for_dags([DAG_ID])
        stack.unpause(DAG_ID)
        truth = stack.world.expected(SOURCE)
        publishable = truth["publishable_codes"]
        assert publishable and truth["quarantined_codes"], "world too small"

        _portal(stack, "faults", {"latency_ms": LATENCY_MS})
        with stack.phase("run until half-way through publishing"):
            run_id = stack.trigger(DAG_ID)
            at_kill = _wait_mid_publish(stack, run_id, len(publishable))
        with stack.phase("SIGKILL the worker"):
            t_kill = time.monotonic()
            killed = stack.kill_service("celery-worker")
        time.sleep(LATENCY_MS / 1000 + 0.5)  # a request in flight at the kill lands now
        after_kill = _portal_counts(_portal(stack))
        _portal(stack, "faults", {})  # the portal calms down: the resumed try is quick
        with stack.phase("new worker"):
            stack.restart_service("celery-worker")
        with stack.phase("Airflow resumes the run"):
            publish_try2_seen = None
            deadline = time.monotonic() + 240
            state = "?"
            while time.monotonic() < deadline:
                stack.check_alive()
                ti = _task(stack, run_id, "publish")
                if publish_try2_seen is None and ti["try_number"] >= 2 and ti["state"] == "running":
                    publish_try2_seen = round(time.monotonic() - t_kill, 1)
                state = stack.run_state(DAG_ID, run_id)
                if state in ("success", "failed"):
                    break
                time.sleep(1)
        tasks = stack.task_states(DAG_ID, run_id)
        assert state == "success", f"run {run_id} ended {state}: {tasks}"
        publish_ti = _task(stack, run_id, "publish")
        assert publish_ti["try_number"] == 2, f"publish was not retried by Airflow: {publish_ti}"

        with stack.phase("assertions"):
            portal = _portal(stack)
            held = portal["dossiers"]
            by_code = {r.dossier.dossier_code: r.dossier for r in stack.world.records(SOURCE)}
            engine = stack.warehouse_engine()
            try:
                with engine.connect() as c:
                    history = c.execute(
                        sa.text(
                            "SELECT dossier_code, version, updated_at, payload FROM dossier_history"
                            " WHERE source_id = :s ORDER BY dossier_code, version"
                        ),
                        {"s": SOURCE},
                    ).all()
                    open_msgs = c.execute(
                        sa.text(
                            "SELECT dossier_code, kind, status FROM publish_outbox"
                            " WHERE source_id = :s AND status <> 'confirmed'"
                        ),
                        {"s": SOURCE},
                    ).all()
                    row = (
                        c.execute(
                            sa.text(
                                "SELECT status, published, details FROM pipeline_runs"
                                " WHERE run_id = :r AND source_id = :s AND stage = 'publish'"
                            ),
                            {"r": run_id, "s": SOURCE},
                        )
                        .mappings()
                        .one()
                    )
            finally:
                engine.dispose()
            details = json.loads(row["details"]) if isinstance(row["details"], str) else dict(row["details"])

            # the portal equals the ground truth, as after a run that was never killed
            assert set(held) == publishable, {
                "missing": sorted(publishable - set(held)),
                "extra": sorted(set(held) - publishable),
            }
            wrong = sorted(
                c for c, h in held.items() if int(h["record"]["TrangThaiHoSo"]) != by_code[c].status
            )
            assert wrong == [], f"status differs from the world: {wrong}"
            twice = sorted(c for c, h in held.items() for p in h["progress"] if p["count"] != 1)
            assert twice == [], f"progress entries received more than once: {twice}"
            seen: dict[str, list[tuple[str, int]]] = {}
            last: dict[str, int | None] = {}
            for code, _v, updated_at, payload in history:
                status = (json.loads(payload) if isinstance(payload, str) else payload)["status"]
                if status is None or status == last.get(code):
                    continue
                last[code] = status
                at = (
                    updated_at
                    if isinstance(updated_at, datetime)
                    else datetime.fromisoformat(str(updated_at))
                )
                seen.setdefault(code, []).append((at.strftime("%Y%m%d%H%M%S"), status))
            shown = {
                c: sorted((p["entry"]["ThoiDiemXuLy"], p["entry"]["TrangThai"]) for p in h["progress"])
                for c, h in held.items()
            }
            differ = sorted(c for c in held if shown[c] != seen.get(c))
            assert differ == [], f"progress on the portal differs from the status history: {differ}"
            assert [m for m in open_msgs if m[0] in publishable] == [], f"outbox still open: {open_msgs}"

            # the stage's own read-back agrees, and it met what the dead try had delivered
            assert row["status"] == "success", row
            assert details["verify_in_sync"] == details["verify_publishable"] == len(publishable), details
            assert details["mismatches"] == 0 and details["progress_duplicates"] == 0, details
            assert details["progress_missing"] == 0 and details["sync_rate"] == 1.0, details
            # progress is claimed and settled a window at a time: what the dead try left "maybe
            # applied" is the window in flight, which try 2 read back (no more), and found on the portal
            final = _portal_counts(portal)
            landed_late = after_kill["progress_received"] - at_kill["progress_received"]
            read_back = final["lookups"] - details["verify_checked"]
            assert read_back <= BATCH * CLAIM_BATCHES, (read_back, details)
            window = BATCH * CLAIM_BATCHES
            assert landed_late <= details["progress_found_applied"] <= window, (landed_late, details)
            report = {
                "publishable": len(publishable),
                "batch_size": BATCH,
                "claim_batches": CLAIM_BATCHES,
                "portal_latency_ms": LATENCY_MS,
                "at_kill": at_kill,
                "landed_after_kill": {k: after_kill[k] - at_kill[k] for k in at_kill if k in after_kill},
                "killed_processes": killed,
                "publish_try2_running_after_s": publish_try2_seen,
                "try2_read_back_lookups": read_back,
                "final_portal": final,
                "progress_entries_total": sum(len(h["progress"]) for h in held.values()),
                "try2": {
                    k: details.get(k)
                    for k in (
                        "dossiers_sent",
                        "progress_sent",
                        "progress_found_applied",
                        "verify_checked",
                        "verify_in_sync",
                        "sync_rate",
                    )
                },
            }
        # the portal held only part of the work at the kill
        assert at_kill["progress_received"] < report["progress_entries_total"], report

    assert stack.leftovers == [] and stack.cleanup_errors == []
    total = time.monotonic() - t0
    report["timings"] = stack.timings
    report["test_seconds"] = round(total, 1)
    print("\nKILL MID-PUBLISH " + json.dumps(report, ensure_ascii=False, indent=1))
    assert total < BUDGET_SECONDS, f"took {total:.0f} s, budget {BUDGET_SECONDS} s"
