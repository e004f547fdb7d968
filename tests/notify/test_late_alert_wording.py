"""The lateness alert names, as finished on time, only the sources that did finish on time."""

from __future__ import annotations

from datetime import date, datetime
from types import SimpleNamespace

from tthc.notify.lateness import SourceState
from tthc.notify.render import render_pair


def test_pending_sources_are_not_called_finished():
    window = SimpleNamespace(
        night=date(2026, 11, 24), start=datetime(2026, 11, 24, 1, 0), deadline=datetime(2026, 11, 24, 6, 0)
    )
    states = [
        SourceState("src_ok", "UBND xã A", "tthc_source_src_ok", "ok"),
        SourceState(
            "src_failed", "UBND xã B", "tthc_source_src_failed", "failed", run_id="r1", stage="extract"
        ),
        SourceState("src_pending", "UBND xã C", "tthc_source_src_pending", "pending"),
    ]
    late = [s for s in states if s.alert]
    for part in render_pair(
        "late_alert",
        window=window,
        late=late,
        states=states,
        now=window.deadline,
        airflow_url=None,
        runs_url=None,
    ):
        finished = next(line for line in part.splitlines() if "Hoàn tất đúng hạn" in line)
        assert "src_ok" in finished and "src_pending" not in finished and "src_failed" not in finished
        waiting = next(line for line in part.splitlines() if "Đang chạy, chưa đến hạn" in line)
        assert "src_pending" in waiting
