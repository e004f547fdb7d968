"""The product under Airflow's real scheduler: Airflow's own backfill, and the lateness watchdog.

One stack (``stack.py``: API server, scheduler, DAG processor, Celery worker on fresh PostgreSQL
databases, Redis, the sandbox) serves both tests, started once for the module.

1. A normal triggered run of ``tthc_source_igate_tinh`` puts the watermark at "now"; then a backfill
   created through ``POST /api/v2/backfills`` for three past days runs on the scheduler and the
   worker. In the warehouse each backfill run recorded its five stages ``success``, its extract
   window is its own day (``window_end`` = the run's ``run_after``, start one day and the look-back
   before), and the watermark did not move backwards.
2. The lateness watchdog ``tthc_nightly_watchdog``, triggered through the REST API (its cron is the
   deadline; scheduling by cron is off in the stack), with a night window of 00:00–23:59 so that
   today is "the night": one source (``igate_phuong``) has a broken connection (a closed port) and
   fails; the alert e-mail lands in the sandbox's SMTP sink, names that source as failed, does not
   name the source that finished, and carries no personal data.
"""

from __future__ import annotations

import dataclasses
import email
import email.policy
import json
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from stack import AirflowStack, StackError, airflow_stack, free_port

pytestmark = [pytest.mark.distributed, pytest.mark.timeout(600)]

STAGES = ("extract", "validate", "reconcile", "publish", "indicators")
SOURCE = "igate_tinh"
DAG_ID = f"tthc_source_{SOURCE}"
BROKEN = "igate_phuong"  # its connection points at a closed port
BROKEN_DAG_ID = f"tthc_source_{BROKEN}"
WATCHDOG_DAG_ID = "tthc_nightly_watchdog"
BACKFILL_DAYS = 3
BACKFILL_ENDS_DAYS_AGO = 5
BUDGET_SECONDS = 240


# ---- the shared stack ------------------------------------------------------------------------------
@dataclasses.dataclass
class Shared:
    stack: AirflowStack
    t0: float
    normal_run: str | None = None  # run id of the normal triggered run of DAG_ID, once done


@pytest.fixture(scope="module")
def shared(stack_prerequisites, tmp_path_factory) -> Any:
    t0 = time.monotonic()
    options = dataclasses.replace(
        stack_prerequisites,
        extra_env={
            **stack_prerequisites.extra_env,
            # the watchdog judges "today" from midnight to 23:59: a finished source is on time, a
            # failed one is alerted at once, the others are still "pending" (no alert)
            "TTHC_NIGHT_START": "00:00",
            "TTHC_NIGHT_DEADLINE": "23:59",
            "TTHC_ENGINEER_EMAILS": "data-engineering@example.gov.vn",
            # a broken connection: nothing listens on this port
            f"AIRFLOW_CONN_TTHC_{BROKEN.upper()}": json.dumps(
                {"conn_type": "http", "host": "127.0.0.1", "port": free_port()}
            ),
        },
    )
    with airflow_stack(tmp_path_factory.mktemp("real-scheduler") / "stack", options) as stack:
        with stack.phase("DAGs parsed"):
            stack.wait_for_dags([DAG_ID, BROKEN_DAG_ID, WATCHDOG_DAG_ID])
        for dag_id in (DAG_ID, BROKEN_DAG_ID, WATCHDOG_DAG_ID):
            stack.unpause(dag_id)
        yield Shared(stack, t0)
    assert stack.leftovers == [] and stack.cleanup_errors == []
    total = time.monotonic() - t0
    print(f"real-scheduler module timings (s): {json.dumps(stack.timings)}; module total {total:.1f} s")
    assert total < BUDGET_SECONDS, f"module took {total:.0f} s, budget {BUDGET_SECONDS} s"


def _normal_run(shared: Shared) -> str:
    """The normal triggered run of DAG_ID (once per module), which must succeed."""
    if shared.normal_run is None:
        stack = shared.stack
        with stack.phase(f"normal run of {DAG_ID}"):
            run_id = stack.trigger(DAG_ID)
            state = stack.wait_for_run(DAG_ID, run_id)
        assert state == "success", f"{DAG_ID} {run_id}: {stack.task_states(DAG_ID, run_id)}"
        shared.normal_run = run_id
    return shared.normal_run


# ---- helpers ---------------------------------------------------------------------------------------
def _stage_rows(engine, run_id: str, source_id: str) -> dict[str, dict[str, Any]]:
    with engine.connect() as c:
        rows = c.execute(
            sa.text("SELECT * FROM pipeline_runs WHERE run_id = :r AND source_id = :s"),
            {"r": run_id, "s": source_id},
        ).mappings()
        return {r["stage"]: dict(r) for r in rows}


def _details(row: dict[str, Any]) -> dict[str, Any]:
    d = row.get("details") or {}
    return json.loads(d) if isinstance(d, str) else dict(d)


def _watermark(engine, source_id: str) -> datetime | None:
    with engine.connect() as c:
        return c.execute(
            sa.text("SELECT watermark FROM watermarks WHERE source_id = :s"), {"s": source_id}
        ).scalar()


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _wait_for_backfill(stack: AirflowStack, backfill_id: int, timeout: float = 150.0) -> dict:
    deadline = time.monotonic() + timeout
    bf: dict = {}
    while time.monotonic() < deadline:
        stack.check_alive()
        bf = stack.api("GET", f"/api/v2/backfills/{backfill_id}")
        if bf.get("completed_at"):
            return bf
        time.sleep(1)
    runs = stack.api("GET", f"/api/v2/dags/{bf.get('dag_id')}/dagRuns", params={"limit": 50})
    states = [(r["dag_run_id"], r["run_type"], r["state"]) for r in runs["dag_runs"]]
    raise StackError(f"backfill {backfill_id} not completed after {timeout:.0f} s: {bf}; runs {states}")


def _personal_values(world, source_ids: list[str]) -> set[str]:
    """ID numbers, phone numbers and full names of the applicants the sources hold."""
    out: set[str] = set()
    for source_id in source_ids:
        for rec in world.records(source_id):
            d = rec.dossier
            for v in (d.applicant_id_number, d.applicant_phone):
                if v and len(v) >= 9:
                    out.add(v)
            if d.applicant_name and " " in d.applicant_name.strip():
                out.add(d.applicant_name.strip())
    return out


def _mails(folder: Path) -> list[tuple[Path, email.message.EmailMessage]]:
    out = []
    for path in sorted(folder.rglob("*.eml")):
        msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        out.append((path, msg))
    return out


def _text_of(msg: email.message.EmailMessage) -> str:
    """Subject and every text part, decoded."""
    parts = [str(msg["subject"] or "")]
    for part in msg.walk():
        if part.get_content_maintype() == "text":
            parts.append(part.get_content())
    return "\n".join(parts)


# ---- 1. Airflow's own backfill -----------------------------------------------------------------------
def test_backfill_through_rest_api(shared):
    from tthc.orchestration import LOCAL_TZ
    from tthc.registry import cached_registry
    from tthc.timeutil import to_vn_naive, vn_now

    stack = shared.stack
    t0 = time.monotonic()
    _normal_run(shared)
    engine = stack.warehouse_engine()
    try:
        before = _watermark(engine, SOURCE)
        assert before is not None, "the normal run set no watermark"
        assert before > vn_now() - timedelta(hours=1), f"watermark {before} is not 'now'"

        # three days ending five days ago, 00:00 of the first to 23:00 of the last (Vietnam time)
        last = vn_now().date() - timedelta(days=BACKFILL_ENDS_DAYS_AGO)
        first = last - timedelta(days=BACKFILL_DAYS - 1)
        body = {
            "dag_id": DAG_ID,
            "from_date": datetime(first.year, first.month, first.day, tzinfo=LOCAL_TZ).isoformat(),
            "to_date": datetime(last.year, last.month, last.day, 23, tzinfo=LOCAL_TZ).isoformat(),
            # no run exists on those days; the DAG has catchup=False and max_active_runs=1, which a
            # backfill does not use: it has its own max_active_runs (1: the runs of one source touch
            # the same rows, so one at a time, like the nightly schedule)
            "reprocess_behavior": "none",
            "max_active_runs": 1,
            "run_backwards": False,
        }
        dry = stack.api("POST", "/api/v2/backfills/dry_run", json_body=body)
        planned = sorted(_utc(b["logical_date"]) for b in dry["backfills"])
        src = cached_registry().get(SOURCE)
        assert src.schedule == "0 1 * * *", f"schedule changed: {src.schedule}"
        expected_ends = [
            datetime.combine(first + timedelta(days=i), datetime.min.time()).replace(hour=1)
            for i in range(BACKFILL_DAYS)
        ]
        assert [to_vn_naive(p) for p in planned] == expected_ends, f"dry run plans {dry}"

        with stack.phase("backfill (3 runs)"):
            bf = stack.api("POST", "/api/v2/backfills", json_body=body)
            assert bf["max_active_runs"] == 1 and bf["reprocess_behavior"] == "none", bf
            _wait_for_backfill(stack, bf["id"])

        runs = stack.api(
            "GET", f"/api/v2/dags/{DAG_ID}/dagRuns", params={"run_type": "backfill", "limit": 50}
        )["dag_runs"]
        runs = [r for r in runs if r["run_type"] == "backfill"]
        assert len(runs) == BACKFILL_DAYS, [(r["dag_run_id"], r["run_type"]) for r in runs]
        bad = {
            r["dag_run_id"]: stack.task_states(DAG_ID, r["dag_run_id"])
            for r in runs
            if r["state"] != "success"
        }
        assert not bad, f"backfill runs not successful: {bad}"

        lookback = timedelta(hours=src.lookback_hours)
        ends = []
        for r in runs:
            st = _stage_rows(engine, r["dag_run_id"], SOURCE)
            assert set(STAGES) <= set(st), f"{r['dag_run_id']}: stages recorded {sorted(st)}"
            assert {s: row["status"] for s, row in st.items()} == dict.fromkeys(st, "success")
            d = _details(st["extract"])
            end = to_vn_naive(_utc(r["run_after"]))
            assert datetime.fromisoformat(d["window_end"]) == end, (r["dag_run_id"], d)
            assert datetime.fromisoformat(d["window_start"]) == end - timedelta(days=1) - lookback, d
            ends.append(end)
        assert sorted(ends) == expected_ends

        after = _watermark(engine, SOURCE)
        assert after is not None and after >= before, f"watermark moved back: {before} → {after}"
        assert after == before, f"a backfill moved the watermark: {before} → {after}"
    finally:
        engine.dispose()
    print(
        f"backfill test: {time.monotonic() - t0:.1f} s; windows "
        + ", ".join(
            f"[{e - timedelta(days=1) - lookback:%m-%d %H:%M}, {e:%m-%d %H:%M})" for e in sorted(ends)
        )
    )


# ---- 2. the lateness watchdog under the real scheduler ------------------------------------------------
def test_watchdog_alerts_failed_source(shared):
    stack = shared.stack
    t0 = time.monotonic()
    normal = _normal_run(shared)  # igate_tinh finished tonight (a no-op when test 1 ran)
    with stack.phase(f"failing run of {BROKEN_DAG_ID}"):
        broken_run = stack.trigger(BROKEN_DAG_ID)
        state = stack.wait_for_run(BROKEN_DAG_ID, broken_run)
    assert state == "failed", f"{BROKEN_DAG_ID} should fail on its closed port: {state}"
    engine = stack.warehouse_engine()
    try:
        st = _stage_rows(engine, broken_run, BROKEN)
        assert st.get("extract", {}).get("status") == "failed", f"{BROKEN}: {st}"
    finally:
        engine.dispose()

    with stack.phase("watchdog run"):
        wd_run = stack.trigger(WATCHDOG_DAG_ID)
        wd_state = stack.wait_for_run(WATCHDOG_DAG_ID, wd_run, timeout=120)
    assert wd_state == "success", f"watchdog: {stack.task_states(WATCHDOG_DAG_ID, wd_run)}"

    folder = Path(stack.sandbox_state["smtp"]["folder"])
    mails = _mails(folder)
    alerts = [(p, m) for p, m in mails if "CẢNH BÁO" in str(m["subject"] or "")]
    assert len(alerts) == 1, f"alert e-mails: {[str(m['subject']) for _, m in mails]}"
    path, alert = alerts[0]
    subject = str(alert["subject"])
    assert subject.startswith("[tthc-sync] CẢNH BÁO: chuỗi đồng bộ đêm "), subject
    assert "chưa hoàn tất trước 23:59" in subject and "(1/" in subject, subject
    assert "data-engineering@example.gov.vn" in str(alert["to"])
    body = alert.get_body(("plain",)).get_content()
    bullets = [line for line in body.splitlines() if line.startswith("* ")]
    assert len(bullets) == 1 and bullets[0].startswith(f"* {BROKEN} ("), bullets
    assert "lỗi" in bullets[0] and broken_run in bullets[0], bullets[0]
    assert f"/dags/{BROKEN_DAG_ID}" in body
    assert not any(SOURCE in b for b in bullets), f"{SOURCE} finished ({normal}) but is alerted"

    # no personal data in any e-mail the stack sent (alert, digest, task-failure notice)
    served = [d.removeprefix("tthc_source_") for d in stack.source_dag_ids()]
    personal = _personal_values(stack.world, served)
    assert personal, "the world holds no personal data to look for"
    leaks = {p.name: sorted(v for v in personal if v in _text_of(m)) for p, m in mails}
    leaks = {k: len(v) for k, v in leaks.items() if v}
    assert not leaks, f"personal data in e-mails (file → number of values): {leaks}"
    print(
        f"watchdog test: {time.monotonic() - t0:.1f} s; {len(mails)} e-mails in the sink; "
        f"alert {path.name}: {subject}"
    )
