"""Fixtures of the dashboard plugin tests: a seeded warehouse and Airflow's API app in process.

The Airflow configuration (home, metadata DB, plugins folder = the repository's ``plugins/``) comes
from tests/conftest.py. The app is Airflow's own (``airflow.api_fastapi.app.create_app``), so the
plugin is discovered and mounted exactly as the API server does it; it is built once per session,
and each test points it at a warehouse through ``TTHC_WAREHOUSE_URL`` (read per request).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tthc.warehouse import db

from .seed import seed


@pytest.fixture(scope="session")
def seeded_warehouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = f"sqlite:///{tmp_path_factory.mktemp('plugin-wh') / 'warehouse.db'}"
    seed(url)
    yield url
    db.dispose_engine(url)


@pytest.fixture(scope="session")
def airflow_metadata(airflow_home: Path) -> None:
    """Airflow's metadata DB at head: token checks read its revoked-token table."""
    from airflow.utils.db import initdb

    initdb()


@pytest.fixture(scope="session")
def api_app(airflow_metadata: None) -> Iterator[tuple[object, str]]:
    """One Airflow API app for the session: (TestClient with the plugin mounted, an admin JWT)."""
    from airflow.api_fastapi.app import create_app, get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from fastapi.testclient import TestClient

    app = create_app()
    token = get_auth_manager().generate_jwt(SimpleAuthManagerUser(username="admin", role="admin"))
    with TestClient(app) as client:
        yield client, token


@pytest.fixture
def api(
    api_app: tuple[object, str], seeded_warehouse: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[object, str]]:
    """The app reading the seeded warehouse (the URL is read per request, so only this test sees it)."""
    monkeypatch.setenv("TTHC_WAREHOUSE_URL", seeded_warehouse)
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "False")
    yield api_app
