"""Airflow DAGs generated from the source registry. Imported by the thin files in ``dags/``.

One DAG per active source, ``tthc_source_<source_id>``: extract → validate → reconcile → publish →
indicators. The stages run inside one DAG (not separate asset-triggered DAGs) because each stage
works on exactly the batch the previous one committed for the same run and source; a province-wide
asset (``tthc://warehouse/dossiers``) is emitted when a source's chain has finished, for DAGs that
aggregate across sources.

Nothing heavy happens here: the task bodies import the pipeline (pandas, Great Expectations) only
when they run, so parsing all DAG files stays fast.
"""

from __future__ import annotations

import os
from datetime import timedelta
from enum import StrEnum
from textwrap import dedent

import pendulum
from airflow.sdk import DAG, Asset, task

from tthc.registry import Registry, SourceConfig

LOCAL_TZ = pendulum.timezone("Asia/Ho_Chi_Minh")
STAGES = ("extract", "validate", "reconcile", "publish", "indicators")
WAREHOUSE_ASSET = Asset("tthc://warehouse/dossiers")


class Tag(StrEnum):
    """The only tags a DAG of this project may carry (tests enforce it)."""

    TTHC = "tthc"
    SOURCE = "nguồn-dữ-liệu"
    IGATE = "igate"
    ONEGATE = "onegate"
    SQLDB = "sqldb"
    FILEDROP = "filedrop"
    PROVINCE = "cấp-tỉnh"
    DEPARTMENT = "cấp-sở"
    DISTRICT = "cấp-huyện"
    COMMUNE = "cấp-xã"
    REPORT = "báo-cáo"


_LEVEL_TAG = {
    "province": Tag.PROVINCE,
    "department": Tag.DEPARTMENT,
    "district": Tag.DISTRICT,
    "commune": Tag.COMMUNE,
}


def failure_notifier():
    """E-mail the owners on task failure (SMTP through the ``tthc_smtp`` Airflow connection).

    A fresh notifier per failure: a notifier renders its templates in place on first use, so one
    shared instance would name the first failed task in every later alert of the same process.
    """

    def on_failure(context):
        _smtp_failure_notifier()(context)

    return on_failure


def _smtp_failure_notifier():
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    to = os.environ.get("TTHC_ENGINEER_EMAILS", "data-engineering@example.gov.vn")
    return SmtpNotifier(
        to=to,
        smtp_conn_id=os.environ.get("TTHC_SMTP_CONN_ID", "tthc_smtp"),
        subject="[tthc-sync] Lỗi tác vụ {{ ti.dag_id }}.{{ ti.task_id }} ({{ ti.run_id }})",
        html_content=(
            "<p>Tác vụ <b>{{ ti.task_id }}</b> của DAG <b>{{ ti.dag_id }}</b> thất bại "
            "(lượt chạy {{ ti.run_id }}, lần thử {{ ti.try_number }}).</p>"
            '<p><a href="{{ ti.log_url }}">Xem nhật ký</a></p>'
        ),
    )


def _doc_md(src: SourceConfig) -> str:
    return dedent(
        f"""
        ### Nguồn `{src.source_id}` — {src.agency_name}

        **What it does.** Pulls dossiers changed since the last watermark (minus a
        {src.lookback_hours} h look-back) from the `{src.dialect}` system behind connection
        `{src.conn_id}`, validates them with the suite in `expectations/`, quarantines critical
        failures with their rule ids, reconciles applicants with the population database,
        publishes changed valid dossiers to the national portal, and computes the on-time figures.

        **Healthy.** All five tasks green; `pipeline_runs` shows `success` for every stage;
        quarantined share close to previous nights; `publish` reports 0 failed.

        **When it fails.**
        - `extract`: check the connection `{src.conn_id}` and the source's availability; the
          watermark did not move, so the next run re-reads the window: nothing is lost.
        - `validate`: a suite file in `expectations/` is broken, or the warehouse is unreachable.
        - `reconcile`: population database unreachable; lookups are marked `lookup_failed` and
          retried next run.
        - `publish`: the portal refused or timed out; see `publish_state.last_error`; failed
          dossiers are retried next run.
        - `notify`: SMTP (connection `tthc_smtp`) refused; a retry sends only the e-mails not
          yet confirmed (table `notifications`), never a second copy.

        **Owner:** {src.owner}. **Data stewards:** {", ".join(src.stewards) or "—"}.
        """
    )


def build_source_dag(src: SourceConfig, *, retries: int | None = None) -> DAG:
    """The nightly DAG of one source. ``TTHC_TASK_RETRIES`` overrides retries (the demo sets 0),
    ``TTHC_TASK_RETRY_DELAY_SECONDS`` the first retry's delay (300; doubled for each later try)."""
    if retries is None:
        retries = int(os.environ.get("TTHC_TASK_RETRIES", "2"))
    retry_delay = timedelta(seconds=float(os.environ.get("TTHC_TASK_RETRY_DELAY_SECONDS", "300")))
    tags = {Tag.TTHC.value, Tag.SOURCE.value, Tag(src.dialect).value, _LEVEL_TAG[src.level].value}
    with DAG(
        dag_id=src.dag_id,
        description=f"Đồng bộ hồ sơ TTHC hằng đêm: {src.agency_name}",
        schedule=src.schedule,
        start_date=pendulum.datetime(2025, 1, 1, tz=LOCAL_TZ),
        catchup=False,
        max_active_runs=1,
        tags=sorted(tags),
        doc_md=_doc_md(src),
        default_args={
            "owner": src.owner,
            "retries": retries,
            "retry_delay": retry_delay,
            "retry_exponential_backoff": True,
            "execution_timeout": timedelta(hours=2),
            "on_failure_callback": [failure_notifier()],
        },
    ) as dag:
        previous = None
        for stage in STAGES:
            outlets = [WAREHOUSE_ASSET] if stage == STAGES[-1] else []
            t = _stage_task(stage, src.source_id, outlets)
            if previous is not None:
                previous >> t
            previous = t
        previous >> _notify_task(src.source_id)
    return dag


def _notify_task(source_id: str):
    """Data-quality e-mails to the agencies' stewards for this run (idempotent per run and agency)."""

    @task(task_id="notify")
    def notify(**context) -> dict:
        from tthc.notify import run_notifications
        from tthc.registry import cached_registry
        from tthc.warehouse.db import get_engine, migrate

        engine = get_engine()
        migrate(engine)
        # the nightly digest for engineers comes from the 06:00 watchdog, once per night
        return run_notifications(engine, context["run_id"], [source_id], cached_registry(), digest=False)

    return notify()


def _stage_task(stage: str, source_id: str, outlets: list):
    @task(task_id=stage, outlets=outlets)
    def run(**context) -> dict:
        from tthc.pipeline import run_stage  # heavy imports only when the task runs

        # run_after is the moment the run stands for: the schedule's tick, the backfill's date,
        # or the trigger time. Manual runs get a data interval of "now", so it is not used.
        end = context["dag_run"].run_after or context.get("data_interval_end")
        backfill = getattr(context["dag_run"], "run_type", None) == "backfill"  # a str Enum: by value
        return run_stage(stage, source_id, run_id=context["run_id"], window_end=end, backfill=backfill)

    return run()


def build_all(registry: Registry) -> dict[str, DAG]:
    today = pendulum.now(LOCAL_TZ).date()
    return {s.dag_id: build_source_dag(s) for s in registry.sources if s.is_current(today)}
