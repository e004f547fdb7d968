"""Airflow plugin: the tthc-sync dashboard (``tthc.ui``) mounted at ``/tthc`` with a menu entry.

Thin on purpose: the app, its pages and its authentication live in the ``tthc.ui`` package.
The pages need an Airflow login (bearer token or the UI's session cookie); see tthc/ui/auth.py.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from tthc.ui import NAV_NAME, URL_PREFIX, create_app


class TthcUiPlugin(AirflowPlugin):
    name = "tthc_ui"
    fastapi_apps = [
        {
            "app": create_app(),
            "url_prefix": URL_PREFIX,
            "name": "tthc-sync dashboard",
        }
    ]
    # Shown in the Airflow UI navigation; the page is framed at /plugin/tthc. The href is relative
    # (no leading slash, so a [api] base_url prefix is kept) and needs its trailing slash.
    external_views = [
        {
            "name": NAV_NAME,
            "href": URL_PREFIX.lstrip("/") + "/",
            "url_route": "tthc",
            "destination": "nav",
            "icon": URL_PREFIX.lstrip("/") + "/static/icon.svg",
        }
    ]
