"""The lateness check behind the 06:00 watchdog (pure logic, then against a warehouse)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import pytest

from tthc.notify.lateness import (
    check_night,
    expected_sources,
    judge,
    needs_alert,
    night_window,
    parse_hhmm,
)

from .helpers import SRC, seed_stages

SATURDAY = date(2026, 11, 21)
SUNDAY = date(2026, 11, 22)
W = night_window(SATURDAY)
AFTER = datetime(2026, 11, 21, 6, 0, 30)
BEFORE = datetime(2026, 11, 21, 5, 0)


def line(run_id, stage, status, start_min, end_min=None):
    start = W.start + timedelta(minutes=start_min)
    return {
        "run_id": run_id,
        "stage": stage,
        "status": status,
        "started_at": start,
        "finished_at": None if end_min is None else W.start + timedelta(minutes=end_min),
    }


def chain(run_id, start_min=0, minutes=10, fail_at=None, stop_at=None):
    out = []
    t = start_min
    for st in ("extract", "validate", "reconcile", "publish", "indicators"):
        if st == stop_at:
            out.append(line(run_id, st, "running", t))
            return out
        if st == fail_at:
            out.append(line(run_id, st, "failed", t, t + 1))
            return out
        out.append(line(run_id, st, "success", t, t + minutes))
        t += minutes
    return out


@pytest.fixture
def src(registry):
    return registry.get(SRC)


def test_window_and_times():
    assert (W.start, W.deadline) == (datetime(2026, 11, 21, 1, 0), datetime(2026, 11, 21, 6, 0))
    assert parse_hhmm("05:30") == time(5, 30)
    w = night_window(SATURDAY, time(0, 30), time(7, 15))
    assert (w.start.hour, w.start.minute, w.deadline.hour, w.deadline.minute) == (0, 30, 7, 15)


def test_expected_sources_follow_activity_and_schedule(registry):
    sat = {s.source_id: start for s, start in expected_sources(registry, night_window(SATURDAY))}
    sun = {s.source_id for s, _ in expected_sources(registry, night_window(SUNDAY))}
    assert set(sat) == {SRC, "igate_other"}  # weekly source runs on Sundays; retired never
    assert sun == {SRC, "igate_other", "igate_weekly"}
    assert sat[SRC] == W.start


def test_a_source_scheduled_before_01_00_is_judged_from_its_schedule(registry):
    import dataclasses

    early = registry.get(SRC).model_copy(update={"schedule": "30 0 * * *"})
    reg = dataclasses.replace(registry, sources=(early,))
    ((_, start),) = expected_sources(reg, W)
    assert start == datetime(2026, 11, 21, 0, 30)


def test_unreadable_schedule_is_expected_every_night(registry):
    import dataclasses

    odd = registry.get(SRC).model_copy(update={"schedule": "not a cron"})
    reg = dataclasses.replace(registry, sources=(odd,))
    assert [(s.source_id, start) for s, start in expected_sources(reg, W)] == [(SRC, W.start)]


def test_on_time(src):
    st = judge(src, chain("r1"), W, AFTER)
    assert (st.status, st.run_id, st.alert) == ("ok", "r1", False)
    assert st.finished_at == W.start + timedelta(minutes=50)
    assert st.label_vi == "hoàn tất đúng hạn"


def test_finished_after_the_deadline_is_late(src):
    st = judge(src, chain("r1", start_min=4 * 60 + 30, minutes=10), W, AFTER)  # 05:30 → 06:20
    assert (st.status, st.alert, st.finished_at) == ("late", True, datetime(2026, 11, 21, 6, 20))


def test_failed_stage(src):
    st = judge(src, chain("r1", fail_at="publish"), W, AFTER)
    assert (st.status, st.stage, st.run_id, st.alert) == ("failed", "publish", "r1", True)
    # failing before the deadline is reported too: nothing will fix it by itself
    assert judge(src, chain("r1", fail_at="publish"), W, BEFORE).status == "failed"


def test_still_running_is_late_after_the_deadline_only(src):
    lines = chain("r1", stop_at="reconcile")
    assert judge(src, lines, W, AFTER).status == "running"
    st = judge(src, lines, W, BEFORE)
    assert (st.status, st.alert, st.stage) == ("pending", False, "reconcile")


def test_stopped_between_stages_counts_as_running(src):
    st = judge(src, chain("r1")[:3], W, AFTER)
    assert (st.status, st.stage) == ("running", "reconcile")


def test_missing_run(src):
    assert judge(src, [], W, AFTER).status == "missing"
    assert judge(src, [], W, BEFORE).status == "pending"


def test_a_successful_run_wins_over_a_failed_rerun(src):
    lines = chain("r1") + chain("r2", start_min=120, fail_at="extract")
    assert judge(src, lines, W, AFTER).status == "ok"


def test_the_latest_run_decides_between_failures(src):
    lines = chain("r1", fail_at="extract") + chain("r2", start_min=60, stop_at="publish")
    st = judge(src, lines, W, AFTER)
    assert (st.status, st.run_id, st.stage) == ("running", "r2", "publish")


def test_check_night_reads_the_warehouse(engine, registry):
    seed_stages(engine, "yesterday", "igate_other", W.start - timedelta(days=1), {})  # another night
    seed_stages(engine, "sched", SRC, W.start, {"validate": "failed"})
    seed_stages(engine, "manual", SRC, W.start + timedelta(minutes=30), {})  # rerun, on time
    states = {s.source_id: s for s in check_night(engine, registry, W, now=AFTER)}
    assert set(states) == {SRC, "igate_other"}
    assert (states[SRC].status, states[SRC].run_id) == ("ok", "manual")
    assert states["igate_other"].status == "missing"
    assert [s.source_id for s in needs_alert(states.values())] == ["igate_other"]
    assert states["igate_other"].to_dict() == {
        "source_id": "igate_other",
        "status": "missing",
        "run_id": None,
        "stage": None,
        "started_at": None,
        "finished_at": None,
    }
