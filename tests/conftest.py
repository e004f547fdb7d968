"""Test-wide setup. Airflow reads its configuration at first import, so its home, metadata DB
and DAG folder are pointed at a throw-away directory here, before any test module imports it.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="tthc-airflow-"))
os.environ["AIRFLOW_HOME"] = str(_AIRFLOW_HOME)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO / "dags")
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(REPO / "plugins")
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{_AIRFLOW_HOME / 'airflow.db'}"
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "False"
os.environ.setdefault("TTHC_PII_HASH_KEY", "test-key-not-secret")
# never let a test talk to a warehouse it did not create
os.environ["TTHC_WAREHOUSE_URL"] = f"sqlite:///{_AIRFLOW_HOME / 'warehouse-default.db'}"


def pytest_collection_modifyitems(config, items):
    """Under CI a test that needs a server we run (PostgreSQL, MariaDB) must not be skipped."""
    if os.environ.get("CI") != "true":
        return
    config._tthc_ci = True


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if (
        getattr(item.config, "_tthc_ci", False)
        and rep.skipped
        and (item.get_closest_marker("postgres") or item.get_closest_marker("mariadb"))
    ):
        rep.outcome = "failed"
        rep.longrepr = f"skipped under CI=true, which counts as a failure: {rep.longrepr}"


@pytest.fixture(scope="session")
def airflow_home() -> Path:
    return _AIRFLOW_HOME
