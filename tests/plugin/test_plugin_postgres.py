"""The dashboard's queries on PostgreSQL (production's warehouse): same figures, no personal data.

Skipped when PostgreSQL is not reachable on 127.0.0.1; under ``CI=true`` a skipped ``postgres``
test counts as a failure (tests/conftest.py).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from tthc.warehouse import db

from .seed import EXPECTED, PII_MARKERS, page_text, seed

pytestmark = pytest.mark.postgres

PG_HOST = os.environ.get("TTHC_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("TTHC_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("TTHC_TEST_PG_USER", "postgres")


@pytest.fixture(scope="module")
def pg_warehouse() -> Iterator[str]:
    admin = sa.create_engine(
        f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/postgres",
        isolation_level="AUTOCOMMIT",
        poolclass=sa.pool.NullPool,
        connect_args={"connect_timeout": 3},
    )
    name = f"tthc_ui_test_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.OperationalError as exc:
        admin.dispose()
        pytest.skip(f"PostgreSQL not reachable at {PG_HOST}:{PG_PORT}: {type(exc.orig).__name__}")
    url = f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    try:
        seed(url)
        yield url
    finally:
        db.dispose_engine(url)
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def test_pages_on_postgres(api, pg_warehouse, monkeypatch):
    client, token = api
    monkeypatch.setenv("TTHC_WAREHOUSE_URL", pg_warehouse)
    headers = {"Authorization": f"Bearer {token}"}
    for path, expected in EXPECTED.items():
        r = client.get(path, headers=headers)
        assert r.status_code == 200, path
        text = page_text(r.text)
        missing = [s for s in expected if s not in text]
        assert not missing, f"{path} on PostgreSQL lacks {missing}"
        assert not [m for m in PII_MARKERS if m in r.text]
    body = client.get("/tthc/api/overview.json", headers=headers).json()
    assert (body["held"], body["publish_failed"], body["published"]) == (4, 1, 2)
