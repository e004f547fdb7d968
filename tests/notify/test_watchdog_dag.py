"""The watchdog DAG through ``dag.test()`` against the SMTP sink, and its failure alert.

The DAG is loaded from the project's ``dags/`` folder like the scheduler would; the warehouse is
a throw-away SQLite file seeded with one night of ``pipeline_runs`` for the registry's active
sources. (A run under a real scheduler at 06:00 is another test's job: ``dag.test()`` proves the
task and its e-mails, not the timetable.)
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from datetime import datetime
from pathlib import Path

import pendulum
import pytest

from .helpers import ENGINEERS, read_mails, seed_stages, smtp_conn

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
NIGHT_06 = pendulum.datetime(2026, 11, 21, 6, 0, tz="Asia/Ho_Chi_Minh")
AIRFLOW_BASE = "http://airflow.example.gov.vn:8080"


@pytest.fixture(scope="module")
def airflow_db(airflow_home):
    subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), "db", "migrate"],
        check=True,
        capture_output=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    return airflow_home


@pytest.fixture
def dag_env(airflow_db, sink, monkeypatch, tmp_path):
    monkeypatch.setenv("AIRFLOW_CONN_TTHC_SMTP", smtp_conn(sink.port))
    monkeypatch.setenv("TTHC_ENGINEER_EMAILS", ",".join(ENGINEERS))
    monkeypatch.setenv("TTHC_TASK_RETRIES", "0")
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", AIRFLOW_BASE)
    monkeypatch.delenv("TTHC_REGISTRY", raising=False)
    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    monkeypatch.setenv("TTHC_WAREHOUSE_URL", url)
    return {"sink": sink, "url": url}


def _dag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert bag.import_errors == {}
    return bag.dags["tthc_nightly_watchdog"]


def test_watchdog_dag_mails_late_sources(dag_env):
    from tthc.notify.lateness import expected_sources, night_window
    from tthc.registry import load_registry
    from tthc.warehouse import db

    expected = [s.source_id for s, _ in expected_sources(load_registry(), night_window(NIGHT_06.date()))]
    assert len(expected) >= 2, "the registry should have at least two nightly sources"
    ok, failed, *missing = expected
    engine = db.migrate(dag_env["url"])
    seed_stages(engine, "scheduled__n", ok, datetime(2026, 11, 21, 1, 0), {})
    seed_stages(engine, "scheduled__n", failed, datetime(2026, 11, 21, 1, 0), {"reconcile": "failed"})
    db.dispose_engine(dag_env["url"])

    dr = _dag().test(run_after=NIGHT_06)
    assert str(dr.state) == "success", dr.state

    mails = read_mails(dag_env["sink"])
    (alert,) = [m for m in mails if "CẢNH BÁO" in m.subject]
    assert f"({1 + len(missing)}/{len(expected)} nguồn)" in alert.subject
    assert "đêm 21/11/2026" in alert.subject
    assert sorted(alert.to) == sorted(ENGINEERS)
    assert f"* {failed} (" in alert.text and "lỗi, bước Đối chiếu dân cư" in alert.text
    assert f"* {ok} (" not in alert.text and f"Hoàn tất đúng hạn: {ok}." in alert.text
    for sid in missing:
        assert f"* {sid} (" in alert.text
    assert f"{AIRFLOW_BASE}/dags/tthc_source_{failed}" in alert.text
    assert any("Tổng hợp" in m.subject for m in mails)

    # another run for the same night (re-triggered; a cleared task behaves alike) sends nothing again
    dr = _dag().test(run_after=NIGHT_06.add(minutes=7))
    assert str(dr.state) == "success"
    assert len(dag_env["sink"].files()) == len(mails)


def test_watchdog_failure_mails_the_owners(dag_env, monkeypatch):
    """A failing task (warehouse unreachable) triggers tthc.orchestration.failure_notifier()."""
    monkeypatch.setenv("TTHC_WAREHOUSE_URL", "postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2")
    dr = _dag().test(run_after=NIGHT_06.add(minutes=3))  # run ids must differ between tests
    assert str(dr.state) == "failed"
    (mail,) = read_mails(dag_env["sink"])
    assert mail.subject == (f"[tthc-sync] Lỗi tác vụ tthc_nightly_watchdog.check_nightly_chain ({dr.run_id})")
    assert sorted(mail.rcpt) == sorted(ENGINEERS)
    assert "<b>check_nightly_chain</b>" in mail.html and "<b>tthc_nightly_watchdog</b>" in mail.html
    from urllib.parse import quote

    log_url = f"{AIRFLOW_BASE}/dags/tthc_nightly_watchdog/runs/{quote(dr.run_id)}/tasks/check_nightly_chain"
    assert f'href="{log_url}?try_number=1"' in mail.html


def test_watchdog_dag_file_is_light_to_parse():
    code = textwrap.dedent(
        f"""
        import sys, runpy
        runpy.run_path({str(REPO / "dags" / "tthc_watchdog.py")!r})
        heavy = [m for m in ("great_expectations", "pandas", "tthc.warehouse", "tthc.notify.quality_mail",
                             "tthc.notify.stats", "tthc.pipeline") if m in sys.modules]
        print(",".join(heavy))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1:] in ([], [""]), out.stdout


def test_watchdog_dag_policy():
    from tthc.notify.watchdog import build_watchdog_dag

    dag = build_watchdog_dag(retries=2)
    assert dag.dag_id == "tthc_nightly_watchdog"
    assert dag.timetable.expression == "0 6 * * *"
    assert str(dag.timezone.name) == "Asia/Ho_Chi_Minh"
    assert dag.max_active_runs == 1 and not dag.catchup
    assert "When it fails" in dag.doc_md and "06:00" in dag.doc_md
    (t,) = dag.tasks
    assert t.retries == 2 and t.owner == "data-engineering" and t.on_failure_callback
