"""The report DAGs: policy, schedules, light parsing, and one run of each through ``dag.test()``."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from datetime import datetime
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DAG_FILE = REPO / "dags" / "tthc_reports.py"


@pytest.fixture(scope="module")
def dags():
    from tthc.report_dags import build_report_dags

    return build_report_dags()


def test_policy(dags):
    from tthc.orchestration import WAREHOUSE_ASSET, Tag

    assert set(dags) == {"tthc_province_indicators", "tthc_quarterly_report"}
    for dag_id, dag in dags.items():
        assert set(dag.tags) <= {t.value for t in Tag} and Tag.REPORT.value in dag.tags, dag_id
        assert "When it fails" in dag.doc_md
        assert dag.max_active_runs == 1 and not dag.catchup
        for t in dag.tasks:
            assert t.owner == "data-engineering"
            assert t.retries >= 1
            assert t.on_failure_callback
    ind = dags["tthc_province_indicators"]
    assert [a.uri for a in ind.timetable.asset_condition.objects] == [WAREHOUSE_ASSET.uri]
    rep = dags["tthc_quarterly_report"]
    assert rep.timetable.expression == "0 6 1 1,4,7,10 *"
    assert getattr(rep.timetable.timezone, "name", str(rep.timetable.timezone)) == "Asia/Ho_Chi_Minh"
    assert [t.task_id for t in rep.topological_sort()] == ["recompute", "render"]


def test_next_quarterly_run_is_0600_vietnam_time_on_the_first_day_of_a_quarter(dags):
    import pendulum
    from airflow.timetables.base import DataInterval, TimeRestriction
    from airflow.timetables.trigger import CronTriggerTimetable

    sdk = dags["tthc_quarterly_report"].timetable  # the scheduler's twin of the SDK definition
    core = CronTriggerTimetable(sdk.expression, timezone=sdk.timezone)
    last = pendulum.datetime(2026, 7, 1, 6, 0, tz="Asia/Ho_Chi_Minh")
    nxt = core.next_dagrun_info(
        last_automated_data_interval=DataInterval(last, last),
        restriction=TimeRestriction(earliest=None, latest=None, catchup=False),
    )
    assert nxt is not None
    when = pendulum.instance(nxt.run_after).in_timezone("Asia/Ho_Chi_Minh")
    assert (when.year, when.month, when.day, when.hour) == (2026, 10, 1, 6)


def test_quarter_before():
    from tthc.report_dags import quarter_before

    assert quarter_before(datetime(2026, 10, 1, 6, 0)) == "2026Q3"
    assert quarter_before(datetime(2027, 1, 1, 6, 0)) == "2026Q4"
    import pendulum

    # 1 October 06:00 in Vietnam is 30 September 23:00 UTC
    assert quarter_before(pendulum.datetime(2026, 9, 30, 23, 0, tz="UTC")) == "2026Q3"


def test_parse_is_light():
    code = textwrap.dedent(
        f"""
        import sys, runpy
        runpy.run_path({str(DAG_FILE)!r})
        heavy = [m for m in ("matplotlib", "openpyxl", "pandas", "great_expectations", "tthc.pipeline",
                             "tthc.report", "tthc.kpi") if m in sys.modules]
        print(",".join(heavy))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1:] in ([], [""]), out.stdout


@pytest.mark.e2e
def test_both_dags_run(tmp_path, airflow_home, monkeypatch):
    """Both DAGs through ``dag.test()`` on a small SQLite warehouse (the quarter just ended)."""
    import pendulum

    from tests.kpi.kpi_data import load_hand_data
    from tthc.warehouse import db

    subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), "db", "migrate"],
        check=True,
        capture_output=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    url = f"sqlite:///{tmp_path / 'wh.db'}"
    engine = db.migrate(url)
    load_hand_data(engine)
    monkeypatch.setenv("TTHC_WAREHOUSE_URL", url)
    monkeypatch.setenv("TTHC_REPORT_DIR", str(tmp_path / "reports"))
    from tthc.report_dags import build_report_dags

    dags = build_report_dags(retries=1)
    when = pendulum.datetime(2026, 10, 1, 6, 0, tz="Asia/Ho_Chi_Minh")
    for dag_id in ("tthc_province_indicators", "tthc_quarterly_report"):
        dr = dags[dag_id].test(run_after=when)
        assert str(dr.state) == "success", dag_id
    from tthc.kpi import Period, load_period_values

    q3 = load_period_values(engine, Period.parse("2026Q3"), "province", "H40")
    assert q3["received"]["numerator"] == 7
    day = load_period_values(engine, Period.parse("2026-10-01"), "province", "H40")
    assert day["received"]["numerator"] == 1  # D11, received 01/10 09:00: judged as of the run's day
    html = tmp_path / "reports" / "2026Q3" / "H40" / "bao-cao-2026Q3-H40.html"
    assert "Trong quý III/2026, tỉnh tiếp nhận 7 hồ sơ" in html.read_text(encoding="utf-8")
    db.dispose_engine(url)
