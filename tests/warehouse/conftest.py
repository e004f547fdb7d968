"""Fixtures of the warehouse tests: one SQLite file per test, PostgreSQL databases on 127.0.0.1.

PostgreSQL tests are marked ``postgres``. When the server is unreachable they are skipped locally,
but under ``CI=true`` a skipped PostgreSQL test is turned into a failure: CI must prove both
backends.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa

from tthc.warehouse import db
from tthc.warehouse.schema import TABLES

from .helpers import BACKENDS

PG_HOST = os.environ.get("TTHC_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("TTHC_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("TTHC_TEST_PG_USER", "postgres")
PG_ADMIN_URL = f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/postgres"


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if report.skipped and _in_ci() and item.get_closest_marker("postgres") is not None:
        report.outcome = "failed"
        report.longrepr = f"PostgreSQL test skipped under CI=true: {report.longrepr}"
    return report


# ---- PostgreSQL ---------------------------------------------------------------------------------


def _admin_engine() -> sa.Engine:
    return sa.create_engine(
        PG_ADMIN_URL,
        isolation_level="AUTOCOMMIT",
        poolclass=sa.pool.NullPool,
        connect_args={"connect_timeout": 3},
    )


@pytest.fixture(scope="session")
def pg_admin() -> Iterator[sa.Engine]:
    engine = _admin_engine()
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except sa.exc.OperationalError as exc:
        engine.dispose()
        msg = f"PostgreSQL not reachable at {PG_HOST}:{PG_PORT}: {type(exc.orig).__name__}"
        if _in_ci():
            pytest.fail(msg + " (CI=true: PostgreSQL tests must run)")
        pytest.skip(msg)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def pg_database_factory(pg_admin: sa.Engine) -> Iterator[Callable[[], str]]:
    """Creates uniquely named databases; every one is dropped at the end of the session."""
    created: list[str] = []

    def create() -> str:
        name = f"tthc_test_{uuid.uuid4().hex[:12]}"
        with pg_admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        created.append(name)
        return f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"

    yield create
    for name in created:
        db.dispose_engine(f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}")
        with pg_admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_shared_url(pg_database_factory: Callable[[], str]) -> str:
    """One migrated database for the repository tests (emptied before each test)."""
    url = pg_database_factory()
    db.migrate(url)
    return url


# ---- backends -----------------------------------------------------------------------------------


@pytest.fixture
def fresh_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """An empty, not yet migrated database URL of the parametrised backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'wh.db'}"
    return request.getfixturevalue("pg_database_factory")()


@pytest.fixture(params=BACKENDS)
def engine(request: pytest.FixtureRequest, tmp_path) -> Iterator[sa.Engine]:
    """A migrated, empty warehouse on each backend."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'wh.db'}"
        eng = db.migrate(url)
        yield eng
        db.dispose_engine(url)
        return
    url = request.getfixturevalue("pg_shared_url")
    eng = db.get_engine(url)
    names = ", ".join(t.name for t in TABLES)
    with eng.begin() as conn:
        conn.exec_driver_sql(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
    yield eng
