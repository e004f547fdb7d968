"""Did the nightly chain finish in time? The check behind the 06:00 watchdog, without Airflow.

A source is *on time* for a night when one of its runs that started in the night's window (from
01:00, or from the source's scheduled time if earlier) has its last stage (``indicators``) recorded
``success`` in ``pipeline_runs`` with ``finished_at`` no later than the deadline (06:00). All times
are naive Vietnam time, like the warehouse. Otherwise, judged on the latest run of the night:

``late``      finished successfully, but after the deadline;
``failed``    a stage failed (and Airflow has no retry running);
``running``   a stage is still running, or the chain stopped between stages;
``missing``   no stage of the source started in the window (DAG paused, scheduler down, …);
``pending``   ``running`` or ``missing`` while the deadline has not passed yet (no alert).

Only sources that are active on that date and whose schedule fires between midnight and the
deadline are expected (a weekly source is not missed on the other nights).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from tthc.registry import Registry, SourceConfig

log = logging.getLogger(__name__)

LAST_STAGE = "indicators"
ALERT_STATUSES = ("late", "failed", "running", "missing")
STATUS_VI = {
    "ok": "hoàn tất đúng hạn",
    "late": "hoàn tất muộn",
    "failed": "lỗi",
    "running": "chưa hoàn tất",
    "missing": "không chạy",
    "pending": "đang chạy (chưa đến hạn)",
}


@dataclass(frozen=True)
class NightWindow:
    night: date
    start: datetime
    deadline: datetime


def parse_hhmm(text: str) -> time:
    h, m = text.strip().split(":")
    return time(int(h), int(m))


def night_window(night: date, start: time = time(1, 0), deadline: time = time(6, 0)) -> NightWindow:
    return NightWindow(night, datetime.combine(night, start), datetime.combine(night, deadline))


def scheduled_fire(src: SourceConfig, window: NightWindow) -> tuple[bool, datetime | None]:
    """(expected tonight?, first scheduled time from midnight) for the source's cron schedule."""
    midnight = datetime.combine(window.night, time(0, 0))
    try:
        from croniter import croniter

        fire = croniter(src.schedule, midnight - timedelta(seconds=1)).get_next(datetime)
    except Exception:  # noqa: BLE001 - an unusual schedule: expect the source, judge from 01:00
        log.warning(
            "cannot read the schedule %r of %s: expecting it every night", src.schedule, src.source_id
        )
        return True, None
    return fire < window.deadline, fire


def expected_sources(registry: Registry, window: NightWindow) -> list[tuple[SourceConfig, datetime]]:
    """Sources expected to finish by the deadline, each with the start of its own window."""
    out = []
    for src in registry.sources:
        if not src.is_current(window.night):
            continue
        expected, fire = scheduled_fire(src, window)
        if expected:
            out.append((src, min(window.start, fire) if fire else window.start))
    return out


@dataclass(frozen=True)
class SourceState:
    source_id: str
    agency_name: str
    dag_id: str
    status: str
    run_id: str | None = None
    stage: str | None = None  # the failed / running stage, or the last stage recorded
    started_at: datetime | None = None
    finished_at: datetime | None = None

    @property
    def alert(self) -> bool:
        return self.status in ALERT_STATUSES

    @property
    def label_vi(self) -> str:
        return STATUS_VI.get(self.status, self.status)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source_id": self.source_id,
            "status": self.status,
            "run_id": self.run_id,
            "stage": self.stage,
            "started_at": self.started_at.isoformat(sep=" ") if self.started_at else None,
            "finished_at": self.finished_at.isoformat(sep=" ") if self.finished_at else None,
        }


def judge(
    src: SourceConfig, lines: Sequence[Mapping[str, Any]], window: NightWindow, now: datetime
) -> SourceState:
    """The state of one source from its ``pipeline_runs`` lines that started in the window."""
    base = {"source_id": src.source_id, "agency_name": src.agency_name, "dag_id": src.dag_id}
    done = [
        r
        for r in lines
        if r["stage"] == LAST_STAGE and r["status"] == "success" and r["finished_at"] is not None
    ]
    on_time = [r for r in done if r["finished_at"] <= window.deadline]
    if on_time:
        r = min(on_time, key=lambda r: r["finished_at"])
        return SourceState(
            **base, status="ok", run_id=r["run_id"], stage=LAST_STAGE, finished_at=r["finished_at"]
        )
    if done:
        r = min(done, key=lambda r: r["finished_at"])
        return SourceState(
            **base, status="late", run_id=r["run_id"], stage=LAST_STAGE, finished_at=r["finished_at"]
        )
    before_deadline = now < window.deadline
    if not lines:
        return SourceState(**base, status="pending" if before_deadline else "missing")
    runs: dict[str, list[Mapping[str, Any]]] = {}
    for r in lines:
        runs.setdefault(r["run_id"], []).append(r)
    run_id, run = max(runs.items(), key=lambda kv: max(x["started_at"] for x in kv[1]))
    started = min(x["started_at"] for x in run)
    failed = [x for x in run if x["status"] == "failed"]
    if failed:
        x = max(failed, key=lambda x: x["started_at"])
        return SourceState(
            **base,
            status="failed",
            run_id=run_id,
            stage=x["stage"],
            started_at=started,
            finished_at=x["finished_at"],
        )
    last = max(run, key=lambda x: x["started_at"])
    return SourceState(
        **base,
        status="pending" if before_deadline else "running",
        run_id=run_id,
        stage=last["stage"],
        started_at=started,
    )


def check_night(
    bind: Any, registry: Registry, window: NightWindow, *, now: datetime | None = None
) -> list[SourceState]:
    """The state of every expected source for the night (reads ``pipeline_runs``)."""
    from tthc.notify.stats import run_statistics
    from tthc.timeutil import vn_now

    now = now or vn_now()
    expected = expected_sources(registry, window)
    if not expected:
        return []
    since = min(start for _, start in expected)
    lines = run_statistics(bind, since=since)
    by_source: dict[str, list[dict[str, Any]]] = {}
    for r in lines:
        by_source.setdefault(r["source_id"], []).append(r)
    return [
        judge(src, [r for r in by_source.get(src.source_id, []) if r["started_at"] >= start], window, now)
        for src, start in expected
    ]


def needs_alert(states: Iterable[SourceState]) -> list[SourceState]:
    return [s for s in states if s.alert]
