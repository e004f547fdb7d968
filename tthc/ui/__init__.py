"""The tthc-sync dashboard inside the Airflow UI: indicators, data quality, sync, lookups, runs.

``create_app()`` builds the FastAPI app that ``plugins/tthc_ui.py`` mounts under ``/tthc``; see
:mod:`tthc.ui.app` for the routes and :mod:`tthc.ui.auth` for how Airflow's login protects them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI

URL_PREFIX = "/tthc"
NAV_NAME = "Chỉ số & Chất lượng dữ liệu"


def create_app() -> FastAPI:
    from tthc.ui.app import create_app as _create

    return _create()


__all__ = ["NAV_NAME", "URL_PREFIX", "create_app"]
