"""Warehouse fixtures of the kpi tests: SQLite per test, PostgreSQL on 127.0.0.1 (marked ``postgres``).

PostgreSQL tests skip locally when the server is unreachable; under CI=true the root conftest turns
those skips into failures.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from tthc.warehouse import db
from tthc.warehouse.schema import TABLES

PG_HOST = os.environ.get("TTHC_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("TTHC_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("TTHC_TEST_PG_USER", "postgres")
PG_BASE = f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}"

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(scope="session")
def kpi_pg_url() -> Iterator[str]:
    admin = sa.create_engine(
        f"{PG_BASE}/postgres",
        isolation_level="AUTOCOMMIT",
        poolclass=sa.pool.NullPool,
        connect_args={"connect_timeout": 3},
    )
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except sa.exc.OperationalError as exc:
        admin.dispose()
        pytest.skip(f"PostgreSQL not reachable at {PG_HOST}:{PG_PORT}: {type(exc.orig).__name__}")
    name = f"tthc_kpi_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = f"{PG_BASE}/{name}"
    db.migrate(url)
    yield url
    db.dispose_engine(url)
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


@pytest.fixture(params=BACKENDS)
def engine(request: pytest.FixtureRequest, tmp_path) -> Iterator[sa.Engine]:
    """A migrated, empty warehouse on each backend."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'wh.db'}"
        eng = db.migrate(url)
        yield eng
        db.dispose_engine(url)
        return
    url = request.getfixturevalue("kpi_pg_url")
    eng = db.get_engine(url)
    names = ", ".join(t.name for t in TABLES)
    with eng.begin() as conn:
        conn.exec_driver_sql(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
    yield eng


@pytest.fixture
def sqlite_engine(tmp_path) -> Iterator[sa.Engine]:
    url = f"sqlite:///{tmp_path / 'wh-sqlite.db'}"
    eng = db.migrate(url)
    yield eng
    db.dispose_engine(url)
