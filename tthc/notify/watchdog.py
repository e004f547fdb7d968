"""The 06:00 watchdog: alert the engineers when the nightly chain did not finish in time.

Airflow's Deadline Alerts would be the native tool, but they are experimental in 3.3 and crash
``airflow dags test``. Instead a small DAG, ``tthc_nightly_watchdog``, runs at the deadline
(06:00 Asia/Ho_Chi_Minh, ``$TTHC_NIGHT_DEADLINE``) and reads the warehouse's ``pipeline_runs``
(see :mod:`tthc.notify.lateness`): every active source must have its ``indicators`` stage recorded
``success`` since 01:00 (``$TTHC_NIGHT_START``) and no later than the deadline. Late, failed,
unfinished and missing sources are listed in one e-mail to ``$TTHC_ENGINEER_EMAILS``, sent once
per night (ledger key ``night:<date>``). The same task then sends the engineers' nightly digest
across all sources (``$TTHC_WATCHDOG_DIGEST=0`` turns it off when the source DAGs send theirs).

The warehouse is the judge, not Airflow's metadata: it records what the pipeline actually
finished, whatever happened to the DAG runs (cleared, re-triggered, backfilled). The watchdog
cannot report a scheduler that is down (it would not run either): monitor the scheduler's health
endpoint from outside for that.

``run_watchdog`` is plain Python (tests, shell); ``build_watchdog_dag`` is the Airflow side.
Tests: the check logic in ``tests/notify/test_lateness.py``, the e-mails in ``test_watchdog.py``,
the DAG through ``dag.test()`` against the SMTP sink in ``test_watchdog_dag.py``. That the
scheduler really starts it at 06:00 Asia/Ho_Chi_Minh needs a real scheduler (not ``dag.test()``)
and is tested separately.
"""

from __future__ import annotations

import logging
import os
from datetime import date, datetime, time
from textwrap import dedent
from typing import Any

log = logging.getLogger(__name__)

DAG_ID = "tthc_nightly_watchdog"
KIND_LATE = "late_alert"


def _env_time(name: str, default: str) -> time:
    from tthc.notify.lateness import parse_hhmm

    return parse_hhmm(os.environ.get(name, default))


def night_start() -> time:
    return _env_time("TTHC_NIGHT_START", "01:00")


def night_deadline() -> time:
    return _env_time("TTHC_NIGHT_DEADLINE", "06:00")


def _flag(name: str, default: bool) -> bool:
    v = os.environ.get(name)
    return default if v is None else v.strip().lower() in ("1", "true", "yes", "on")


def send_late_alert(
    engine: Any,
    states: list[Any],
    window: Any,
    *,
    mailer: Any,
    now: datetime,
    airflow_url: str | None,
    base_url: str | None,
    recipients: list[str] | None = None,
) -> dict[str, Any]:
    from tthc.notify.mailer import engineer_emails
    from tthc.notify.quality_mail import _deliver, runs_link
    from tthc.notify.render import render_pair

    late = [s for s in states if s.alert]
    if not late:
        return {"status": "nothing_to_report"}
    to = recipients if recipients is not None else engineer_emails()
    if not to:
        log.warning("TTHC_ENGINEER_EMAILS is empty: the lateness alert is not sent")
        return {"status": "no_recipients"}
    ctx = {
        "window": window,
        "late": late,
        "states": states,
        "now": now,
        "airflow_url": airflow_url.rstrip("/") if airflow_url else None,
        "runs_url": runs_link(base_url),
    }
    text, html = render_pair("late_alert", **ctx)
    subject = (
        f"[tthc-sync] CẢNH BÁO: chuỗi đồng bộ đêm {window.night:%d/%m/%Y} chưa hoàn tất trước "
        f"{window.deadline:%H:%M} ({len(late)}/{len(states)} nguồn)"
    )
    status, mid = _deliver(
        engine,
        mailer,
        (f"night:{window.night.isoformat()}", "*", "*", KIND_LATE),
        to=to,
        subject=subject,
        text=text,
        html=html,
        now=now,
    )
    return {"status": status, "message_id": mid, "sources": [s.source_id for s in late]}


def run_watchdog(
    engine: Any,
    registry: Any,
    night: date,
    *,
    now: datetime | None = None,
    mailer: Any = None,
    digest: bool | None = None,
    airflow_url: str | None = None,
    base_url: str | None = None,
) -> dict[str, Any]:
    """Check the night, alert on late/failed sources, send the nightly digest. XCom-friendly result.

    Raises :class:`tthc.notify.quality_mail.NotificationError` if an e-mail could not be sent
    (after trying both): the task fails, retries, and the ledger keeps it from mailing twice.
    """
    from tthc.notify import quality_mail as qm
    from tthc.notify.lateness import check_night, night_window
    from tthc.notify.mailer import Mailer, MailError
    from tthc.timeutil import vn_now

    now = now or vn_now()
    mailer = mailer or Mailer()
    base_url = base_url if base_url is not None else qm.ui_base_url()
    digest = _flag("TTHC_WATCHDOG_DIGEST", True) if digest is None else digest
    window = night_window(night, night_start(), night_deadline())
    states = check_night(engine, registry, window, now=now)
    result: dict[str, Any] = {
        "night": night.isoformat(),
        "deadline": window.deadline.isoformat(sep=" "),
        "sources": [s.to_dict() for s in states],
        "late": [s.source_id for s in states if s.alert],
    }
    errors: list[str] = []
    try:
        result["alert"] = send_late_alert(
            engine, states, window, mailer=mailer, now=now, airflow_url=airflow_url, base_url=base_url
        )
    except MailError as e:
        errors.append(f"lateness alert: {e}")
        result["alert"] = {"status": "error"}
    if digest:
        reports = []
        for st in states:
            src = registry.get(st.source_id)
            if st.run_id:
                reports.append(qm.collect_source_report(engine, st.run_id, src))
            else:
                reports.append(qm.SourceReport(src, "", None, None, [], [], validated=False))
        try:
            result["digest"] = qm.send_digest(
                engine,
                reports,
                key=(f"night:{night.isoformat()}", "*"),
                mailer=mailer,
                now=now,
                base_url=base_url,
                title_date=window.deadline,
                lateness={s.source_id: {"status": s.status, "label_vi": s.label_vi} for s in states},
            )
        except MailError as e:
            errors.append(f"digest: {e}")
            result["digest"] = {"status": "error"}
    else:
        result["digest"] = {"status": "disabled"}
    if errors:
        raise qm.NotificationError("; ".join(errors))
    return result


def _watchdog_task(**context: Any) -> dict[str, Any]:
    """Task body: the night is the Vietnam date of the run's ``run_after`` (06:00 of that day)."""
    from tthc.registry import cached_registry
    from tthc.timeutil import to_vn_naive
    from tthc.warehouse.db import get_engine, migrate

    run_after = context["dag_run"].run_after or context.get("data_interval_end")
    night = to_vn_naive(run_after).date()
    try:
        from airflow.configuration import conf

        airflow_url = conf.get("api", "base_url", fallback=None)
    except Exception:  # noqa: BLE001 - only a link in the e-mail
        airflow_url = None
    engine = migrate(get_engine())
    return run_watchdog(engine, cached_registry(), night, airflow_url=airflow_url)


DOC_MD = dedent(
    """
    ### Giám sát chuỗi đồng bộ đêm (`tthc_nightly_watchdog`)

    **What it does.** Runs at the nightly deadline ({deadline} Asia/Ho_Chi_Minh) and checks in the
    warehouse (`pipeline_runs`) that every active source recorded its `indicators` stage as
    `success` between {start} and {deadline}. Late, failed, unfinished or missing sources are
    e-mailed to the data engineers (`TTHC_ENGINEER_EMAILS`) once per night; then the engineers'
    nightly digest (run statistics, data quality per agency) goes out. Stand-in for Deadline
    Alerts, which are experimental in Airflow 3.3.

    **Healthy.** One green task per morning; an alert e-mail only on bad nights.

    **When it fails.**
    - The warehouse is unreachable (`TTHC_WAREHOUSE_URL`): nothing was checked; fix and clear the task.
    - The SMTP connection `tthc_smtp` refused the mail: the task retries; e-mails already sent
      are recorded in `notifications` and are not sent twice.
    - This DAG cannot report a scheduler that is down: watch the scheduler's health from outside.

    **Owner:** data-engineering.
    """
)


def build_watchdog_dag(*, retries: int | None = None, schedule: str | None = None):
    """The watchdog DAG; ``TTHC_TASK_RETRIES`` overrides retries (tests set 0)."""
    from datetime import timedelta

    import pendulum
    from airflow.sdk import DAG, task

    from tthc.orchestration import LOCAL_TZ, Tag, failure_notifier

    if retries is None:
        retries = int(os.environ.get("TTHC_TASK_RETRIES", "2"))
    start, deadline = night_start(), night_deadline()
    with DAG(
        dag_id=DAG_ID,
        description="Cảnh báo khi chuỗi đồng bộ đêm chưa hoàn tất đúng hạn; thư tổng hợp cho kỹ sư dữ liệu",
        schedule=schedule or f"{deadline.minute} {deadline.hour} * * *",
        start_date=pendulum.datetime(2025, 1, 1, tz=LOCAL_TZ),
        catchup=False,
        max_active_runs=1,
        tags=sorted({Tag.TTHC.value, Tag.REPORT.value}),
        doc_md=DOC_MD.format(start=start.strftime("%H:%M"), deadline=deadline.strftime("%H:%M")),
        default_args={
            "owner": "data-engineering",
            "retries": retries,
            "retry_delay": timedelta(minutes=2),
            "execution_timeout": timedelta(minutes=15),
            "on_failure_callback": [failure_notifier()],
        },
    ) as dag:
        task(task_id="check_nightly_chain")(_watchdog_task)()
    return dag
