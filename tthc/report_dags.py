"""Airflow DAGs of the province-wide indicators and the quarterly report (imported by dags/tthc_reports.py).

* ``tthc_province_indicators`` runs whenever a source DAG has finished (asset
  ``tthc://warehouse/dossiers``) and recomputes the running day, month, quarter and year, plus the
  previous one of each while it ended a week ago or less (late updates still arrive), for every
  province (:func:`tthc.kpi.compute_current_periods`).
* ``tthc_quarterly_report`` runs at 06:00 on the first day of each quarter (Vietnam time): it
  recomputes the quarter just ended and its months, then writes the report of every province of
  the registry (:func:`tthc.report.build_quarterly_report`).

Task bodies import the computation only when they run: parsing stays light (no matplotlib,
openpyxl or pandas at parse time).
"""

from __future__ import annotations

import os
from datetime import timedelta
from textwrap import dedent

import pendulum
from airflow.sdk import DAG, CronTriggerTimetable, task

from tthc.orchestration import LOCAL_TZ, WAREHOUSE_ASSET, Tag, failure_notifier

__all__ = ["INDICATORS_DAG_ID", "QUARTERLY_CRON", "REPORT_DAG_ID", "build_report_dags", "quarter_before"]

INDICATORS_DAG_ID = "tthc_province_indicators"
REPORT_DAG_ID = "tthc_quarterly_report"
QUARTERLY_CRON = "0 6 1 1,4,7,10 *"
OWNER = "data-engineering"

_INDICATORS_DOC = """
### Chỉ số 766 toàn tỉnh (tthc_province_indicators)

**What it does.** Runs each time a source DAG finishes (asset `tthc://warehouse/dossiers`). For the
running day, month, quarter and year (and the previous one while it ended 7 days ago or less) it
judges every dossier received in the period with the working-day calendar, stores the verdicts in
`dossier_outcomes`, aggregates them per agency and per province with `sql/indicators_aggregate.sql`
and writes the `indicators` rows (scope `agency` / `province`). Idempotent: a period's rows are
replaced as a whole.

**Healthy.** One green task; its XCom lists, per period, the dossiers judged and the provinces
written; `indicators` has fresh `computed_at` values for `period_type` day/month/quarter/year.

**When it fails.**
- Warehouse unreachable or locked: check `TTHC_WAREHOUSE_URL`; the next source run triggers this
  DAG again, nothing is lost (nothing half-written: each period is one transaction).
- `config/units.yaml` or `config/sources.yaml` invalid: the error names the file and field.
- Re-run by hand: `tthc report --quarter <quý> --province <mã>` recomputes a quarter and its months;
  any period: `python -c "from tthc.kpi import compute_period; ..."`.

**Owner:** data-engineering.
"""

_REPORT_DOC = """
### Báo cáo quý (tthc_quarterly_report)

**What it does.** At 06:00 on 1 January, April, July and October (Asia/Ho_Chi_Minh) it recomputes
the quarter that has just ended and its three months, then writes for every province of the
registry an HTML report (charts inlined, PNG copies in `bieu-do/`), an XLSX workbook with native
charts and one HTML per agency, under `$TTHC_REPORT_DIR/<quý>/<tỉnh>/` (default `var/reports`).
A manual run mid-quarter reports the running quarter, marked as provisional.
Aggregates only: no personal data reaches the files.

**Healthy.** Both tasks green; the `render` XCom lists the files and the headline sentence
("Trong quý …, tỉnh tiếp nhận … hồ sơ, đã giải quyết … hồ sơ (…%) …").

**When it fails.**
- `recompute`: warehouse unreachable; clear the task once it is back (idempotent).
- `render`: disk full or `TTHC_REPORT_DIR` not writable; or matplotlib/openpyxl missing from the
  worker image. Re-run by hand with `tthc report --quarter 2026Q3 [--province H40] [--out DIR]`.

**Owner:** data-engineering.
"""


def quarter_before(moment) -> str:
    """The quarter of the day before ``moment`` (Vietnam time), as ``2026Q3``: on the scheduled
    runs (the 1st of a quarter) the quarter just ended; a manual run mid-quarter gets the running
    quarter, reported as provisional."""
    from tthc.kpi import Period
    from tthc.timeutil import to_vn_naive

    day = to_vn_naive(moment).date() - timedelta(days=1)
    return Period.containing("quarter", day).code


def _default_args(retries: int | None) -> dict:
    if retries is None:
        retries = int(os.environ.get("TTHC_TASK_RETRIES", "2"))
    return {
        "owner": OWNER,
        "retries": retries,
        "retry_delay": timedelta(minutes=5),
        "retry_exponential_backoff": True,
        "execution_timeout": timedelta(hours=2),
        "on_failure_callback": [failure_notifier()],
    }


def _run_moment(context):
    from tthc.timeutil import to_vn_naive, vn_now

    moment = context["dag_run"].run_after or context.get("data_interval_end")
    return to_vn_naive(moment) if moment is not None else vn_now()


def build_indicators_dag(*, retries: int | None = None) -> DAG:
    with DAG(
        dag_id=INDICATORS_DAG_ID,
        description="Chỉ số 766 theo cơ quan và toàn tỉnh: ngày, tháng, quý, năm",
        schedule=[WAREHOUSE_ASSET],
        start_date=pendulum.datetime(2025, 1, 1, tz=LOCAL_TZ),
        catchup=False,
        max_active_runs=1,
        tags=sorted({Tag.TTHC.value, Tag.REPORT.value, Tag.PROVINCE.value}),
        doc_md=dedent(_INDICATORS_DOC),
        default_args=_default_args(retries),
    ) as dag:

        @task(task_id="compute")
        def compute(**context) -> list[dict]:
            from tthc.kpi import compute_current_periods
            from tthc.warehouse.db import get_engine, migrate

            engine = migrate(get_engine())
            return compute_current_periods(engine, _run_moment(context), run_id=context["run_id"])

        compute()
    return dag


def build_quarterly_report_dag(*, retries: int | None = None) -> DAG:
    with DAG(
        dag_id=REPORT_DAG_ID,
        description="Báo cáo quý về tiếp nhận, giải quyết TTHC (HTML, XLSX) cho từng tỉnh",
        schedule=CronTriggerTimetable(QUARTERLY_CRON, timezone=LOCAL_TZ),
        start_date=pendulum.datetime(2025, 1, 1, tz=LOCAL_TZ),
        catchup=False,
        max_active_runs=1,
        tags=sorted({Tag.TTHC.value, Tag.REPORT.value, Tag.PROVINCE.value}),
        doc_md=dedent(_REPORT_DOC),
        default_args=_default_args(retries),
    ) as dag:

        @task(task_id="recompute")
        def recompute(**context) -> dict:
            from tthc.kpi import Period, compute_period
            from tthc.warehouse.db import get_engine, migrate

            engine = migrate(get_engine())
            moment = _run_moment(context)
            quarter = Period.parse(quarter_before(moment))
            results = [
                compute_period(engine, p.type, p.start, as_of=moment, run_id=context["run_id"])
                for p in [quarter, *quarter.months()]
            ]
            return {"quarter": quarter.code, "periods": results}

        @task(task_id="render")
        def render(info: dict) -> list[dict]:
            from tthc.registry import cached_registry
            from tthc.report import build_quarterly_report
            from tthc.warehouse.db import get_engine, migrate

            engine = migrate(get_engine())
            registry = cached_registry()
            provinces = sorted({s.province_code for s in registry.sources if s.province_code})
            out = []
            for prov in provinces:
                files = build_quarterly_report(
                    engine, info["quarter"], prov, registry=registry, recompute=False
                )
                out.append({"province": prov, "summary": files.summary, **files.as_dict()})
            return out

        render(recompute())
    return dag


def build_report_dags(*, retries: int | None = None) -> dict[str, DAG]:
    """Both DAGs by id (``globals().update(...)`` in the DAG file)."""
    return {
        INDICATORS_DAG_ID: build_indicators_dag(retries=retries),
        REPORT_DAG_ID: build_quarterly_report_dag(retries=retries),
    }
