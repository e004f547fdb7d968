"""docker/postgres/init-databases.sh, run for real against the local PostgreSQL (as the postgres
image runs it on a first start): both databases exist, each owned by its role, the passwords are
set (passed as psql variables, so quotes and dollars in them are harmless), and only the owner may
connect to the warehouse. Unique names; everything is dropped afterwards.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.postgres

SCRIPT = Path(__file__).resolve().parents[2] / "docker" / "postgres" / "init-databases.sh"
DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


@pytest.fixture
def admin():
    psycopg = pytest.importorskip("psycopg")
    if shutil.which("psql") is None:
        pytest.skip("psql not installed")
    try:
        conn = psycopg.connect(DSN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as e:
        pytest.skip(f"PostgreSQL not reachable: {e}")
    yield conn
    conn.close()


def test_init_script_creates_both_databases(admin):
    uid = uuid.uuid4().hex[:8]
    names = {
        "AIRFLOW_DB_NAME": f"tthc_init_{uid}_af",
        "AIRFLOW_DB_USER": f"tthc_init_{uid}_afu",
        "TTHC_WAREHOUSE_DB_NAME": f"tthc_init_{uid}_wh",
        "TTHC_WAREHOUSE_DB_USER": f"tthc_init_{uid}_whu",
    }
    env = {
        **os.environ,
        **names,
        "AIRFLOW_DB_PASSWORD": "a'b\"c$d",
        "TTHC_WAREHOUSE_DB_PASSWORD": "w; DROP ROLE x; --",
        "POSTGRES_USER": "postgres",
        "PGHOST": "127.0.0.1",
    }
    try:
        r = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        rows = admin.execute(
            "SELECT datname, pg_get_userbyid(datdba), has_database_privilege('public', datname, 'CONNECT') "
            "FROM pg_database WHERE datname = ANY(%s)",
            ([names["AIRFLOW_DB_NAME"], names["TTHC_WAREHOUSE_DB_NAME"]],),
        ).fetchall()
        got = {r[0]: (r[1], r[2]) for r in rows}
        assert got == {
            names["AIRFLOW_DB_NAME"]: (names["AIRFLOW_DB_USER"], True),
            names["TTHC_WAREHOUSE_DB_NAME"]: (names["TTHC_WAREHOUSE_DB_USER"], False),
        }
        roles = admin.execute(
            "SELECT rolname, rolcanlogin, rolpassword IS NOT NULL, rolsuper "
            "FROM pg_authid WHERE rolname = ANY(%s)",
            ([names["AIRFLOW_DB_USER"], names["TTHC_WAREHOUSE_DB_USER"]],),
        ).fetchall()
        assert sorted(roles) == sorted(
            [
                (names["AIRFLOW_DB_USER"], True, True, False),
                (names["TTHC_WAREHOUSE_DB_USER"], True, True, False),
            ]
        )
        # a second run fails loudly instead of half-applying (the image runs it on an empty volume only)
        again = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60)
        assert again.returncode != 0
    finally:
        for key in ("AIRFLOW_DB_NAME", "TTHC_WAREHOUSE_DB_NAME"):
            admin.execute(f'DROP DATABASE IF EXISTS "{names[key]}" WITH (FORCE)')
        for key in ("AIRFLOW_DB_USER", "TTHC_WAREHOUSE_DB_USER"):
            admin.execute(f'DROP ROLE IF EXISTS "{names[key]}"')


def test_init_script_refuses_without_passwords():
    env = {
        k: v for k, v in os.environ.items() if k not in ("AIRFLOW_DB_PASSWORD", "TTHC_WAREHOUSE_DB_PASSWORD")
    }
    r = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and "AIRFLOW_DB_PASSWORD" in r.stderr
