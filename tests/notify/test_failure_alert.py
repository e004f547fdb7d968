"""A failing task's ``on_failure_callback`` (``tthc.orchestration.failure_notifier()``) really sends
an e-mail through SMTP: tiny DAGs whose tasks raise are run with ``dag.test()`` in a child process
(its own Airflow home and DAG folder), the SMTP sink runs here, and the .eml files are parsed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from urllib.parse import quote

import pytest

from .helpers import ENGINEERS, read_mails, smtp_conn

pytestmark = pytest.mark.e2e

AIRFLOW_BASE = "http://airflow.example.gov.vn:8080"

DAG_FILE = textwrap.dedent(
    '''
    """Test DAGs: tasks that fail, with the project's failure notifier."""
    import pendulum
    from airflow.sdk import DAG, task

    from tthc.orchestration import failure_notifier

    ARGS = {"owner": "data-engineering", "retries": 0}

    with DAG(
        "tthc_test_failure_alert",
        schedule=None,
        start_date=pendulum.datetime(2025, 1, 1, tz="Asia/Ho_Chi_Minh"),
        default_args={**ARGS, "on_failure_callback": [failure_notifier()]},
    ):

        @task
        def load_dossiers():
            raise RuntimeError("the agency system answered 503")

        load_dossiers()

    with DAG(
        "tthc_test_two_failures",
        schedule=None,
        start_date=pendulum.datetime(2025, 1, 1, tz="Asia/Ho_Chi_Minh"),
        default_args={**ARGS, "on_failure_callback": [failure_notifier()]},
    ):

        @task
        def first():
            raise RuntimeError("first")

        @task
        def second():
            raise RuntimeError("second")

        first()
        second()
    '''
)

RUNNER = textwrap.dedent(
    """
    import json, os, sys
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    assert not bag.import_errors, bag.import_errors
    out = {}
    for dag_id in sys.argv[2:]:
        dr = bag.dags[dag_id].test()
        out[dag_id] = {"state": str(dr.state), "run_id": dr.run_id}
    with open(sys.argv[1], "w") as f:
        json.dump(out, f)
    """
)


@pytest.fixture(scope="module")
def failed_runs(tmp_path_factory):
    """Run both test DAGs once (one child process: Airflow's start-up is the slow part)."""
    from sandbox.smtp_sink import SmtpSink

    tmp = tmp_path_factory.mktemp("failure-alert")
    home, dags = tmp / "airflow", tmp / "dags"
    dags.mkdir()
    (dags / "failing.py").write_text(DAG_FILE, encoding="utf-8")
    (tmp / "runner.py").write_text(RUNNER, encoding="utf-8")
    with SmtpSink(tmp / "mail", port=0) as sink:
        env = {
            **os.environ,
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__API__BASE_URL": AIRFLOW_BASE,
            "AIRFLOW_CONN_TTHC_SMTP": smtp_conn(sink.port),
            "TTHC_ENGINEER_EMAILS": ",".join(ENGINEERS),
            "PYTHONWARNINGS": "ignore",
        }
        env.pop("TTHC_SMTP_CONN_ID", None)
        airflow = str(Path(sys.executable).parent / "airflow")
        subprocess.run([airflow, "db", "migrate"], env=env, check=True, capture_output=True)
        result = tmp / "runs.json"
        proc = subprocess.run(
            [
                sys.executable,
                str(tmp / "runner.py"),
                str(result),
                "tthc_test_failure_alert",
                "tthc_test_two_failures",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert result.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
        runs = json.loads(result.read_text())
        mails = read_mails(sink)
    return runs, mails


def _mails_of(mails, dag_id):
    return [m for m in mails if f" {dag_id}." in m.subject]


def test_failing_task_mails_dag_task_run_and_log_link(failed_runs):
    runs, mails = failed_runs
    run = runs["tthc_test_failure_alert"]
    assert run["state"] == "failed"
    (m,) = _mails_of(mails, "tthc_test_failure_alert")
    assert m.subject == f"[tthc-sync] Lỗi tác vụ tthc_test_failure_alert.load_dossiers ({run['run_id']})"
    assert sorted(m.rcpt) == sorted(ENGINEERS)
    assert m.msg["From"] == "tthc-sync@example.gov.vn"
    assert "Tác vụ <b>load_dossiers</b> của DAG <b>tthc_test_failure_alert</b> thất bại" in m.html
    assert f"lượt chạy {run['run_id']}, lần thử 1" in m.html
    log_url = f"{AIRFLOW_BASE}/dags/tthc_test_failure_alert/runs/{quote(run['run_id'])}/tasks/load_dossiers"
    assert f'<a href="{log_url}?try_number=1">Xem nhật ký</a>' in m.html
    assert "503" not in m.html  # the exception text (which may quote data) is not mailed


def test_every_failing_task_gets_its_own_mail(failed_runs):
    runs, mails = failed_runs
    assert runs["tthc_test_two_failures"]["state"] == "failed"
    assert len(_mails_of(mails, "tthc_test_two_failures")) == 2


def test_second_failure_in_one_process_names_its_own_task(failed_runs):
    _, mails = failed_runs
    subjects = sorted(m.subject.split(" (")[0] for m in _mails_of(mails, "tthc_test_two_failures"))
    assert subjects == [
        "[tthc-sync] Lỗi tác vụ tthc_test_two_failures.first",
        "[tthc-sync] Lỗi tác vụ tthc_test_two_failures.second",
    ]
