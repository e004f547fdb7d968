"""Fixtures of the notification tests: the sandbox's SMTP sink in process on a free loopback port,
the ``tthc_smtp`` connection pointing at it, a migrated SQLite warehouse, a small registry."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from tthc.registry import Registry, load_registry
from tthc.warehouse import db

from .helpers import ENGINEERS, REGISTRY_YAML, UI_BASE, smtp_conn


@pytest.fixture
def sink(tmp_path) -> Iterator:
    from sandbox.smtp_sink import SmtpSink

    with SmtpSink(tmp_path / "mail", port=0) as s:
        yield s


@pytest.fixture
def smtp_env(sink, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_TTHC_SMTP", smtp_conn(sink.port))
    monkeypatch.setenv("TTHC_ENGINEER_EMAILS", ", ".join(ENGINEERS))
    monkeypatch.setenv("TTHC_UI_BASE_URL", UI_BASE)
    monkeypatch.delenv("TTHC_SMTP_CONN_ID", raising=False)
    return sink


@pytest.fixture
def engine(tmp_path) -> Iterator[sa.Engine]:
    url = f"sqlite:///{tmp_path / 'wh.db'}"
    eng = db.migrate(url)
    yield eng
    db.dispose_engine(url)


@pytest.fixture
def registry(tmp_path) -> Registry:
    p = tmp_path / "sources.yaml"
    p.write_text(REGISTRY_YAML, encoding="utf-8")
    return load_registry(p)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_engine(request, tmp_path) -> Iterator[sa.Engine]:
    """A migrated warehouse on SQLite and on PostgreSQL (127.0.0.1, skipped when unreachable)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'wh-any.db'}"
        yield db.migrate(url)
        db.dispose_engine(url)
        return
    import os
    import uuid

    host = os.environ.get("TTHC_TEST_PG_HOST", "127.0.0.1")
    port = os.environ.get("TTHC_TEST_PG_PORT", "5432")
    user = os.environ.get("TTHC_TEST_PG_USER", "postgres")
    admin = sa.create_engine(
        f"postgresql+psycopg://{user}@{host}:{port}/postgres",
        isolation_level="AUTOCOMMIT",
        poolclass=sa.pool.NullPool,
        connect_args={"connect_timeout": 3},
    )
    try:
        with admin.connect() as c:
            c.exec_driver_sql("SELECT 1")
    except sa.exc.OperationalError:
        admin.dispose()
        pytest.skip(f"PostgreSQL not reachable at {host}:{port}")
    name = f"tthc_notify_{uuid.uuid4().hex[:12]}"
    with admin.connect() as c:
        c.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = f"postgresql+psycopg://{user}@{host}:{port}/{name}"
    try:
        yield db.migrate(url)
    finally:
        db.dispose_engine(url)
        with admin.connect() as c:
            c.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()
