"""Airflow authentication for the dashboard: nothing is served to a caller Airflow does not know.

Airflow mounts plugin apps without any auth. Two layers close that:

* :class:`RequireAirflowUser`, an ASGI middleware on the dashboard app, checks every HTTP request
  before routing: static files, JSON, unknown paths and anything mounted later included. It uses
  Airflow's own :func:`~airflow.api_fastapi.core_api.security.get_user` (``Authorization: Bearer``
  or the UI's ``_token`` cookie: none → 401, invalid → 403, expired → 401) and then the auth
  manager's permission for plugin views (→ 403).
* :func:`route_dependencies` repeats the same check as an app-level dependency of every route
  (``FastAPI(dependencies=...)``), so a route stays protected even if the middleware were removed.

A browser that asks for a page without a session gets a short Vietnamese 401 page pointing to
the Airflow login; there is no login route here (the only way in is Airflow's).
"""

from __future__ import annotations

from typing import Any

from fastapi import Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse
from markupsafe import escape
from starlette.types import ASGIApp, Receive, Scope, Send

_NOT_LOGGED_IN = """<!doctype html>
<html lang="vi"><head><meta charset="utf-8"><title>Cần đăng nhập</title></head>
<body style="font-family: system-ui, sans-serif; margin: 3rem;">
<h1>{title}</h1>
<p>Trang này chỉ dành cho người dùng đã đăng nhập Airflow.</p>
<p><a href="{login}" target="_top">Đăng nhập Airflow</a></p>
</body></html>"""


async def require_airflow_user(request: Request) -> None:
    """Raise :class:`HTTPException` (401/403) unless the request carries a valid, allowed user.

    Airflow's own ``get_user`` decides who the caller is (bearer token first, else the UI's
    ``_token`` cookie), then the auth manager decides whether that user may see plugin views.
    Airflow is imported here, not at module level: plugin files are imported by every Airflow
    component, and only the API server needs this (it costs ~1.5 s of imports elsewhere).
    """
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import AccessView
    from airflow.api_fastapi.core_api.security import bearer_scheme, get_user

    credentials = await bearer_scheme(request)
    user = await get_user(request, None, credentials)
    if not get_auth_manager().is_authorized_view(access_view=AccessView.PLUGINS, user=user):
        raise HTTPException(status_code=403, detail="Forbidden")


def route_dependencies() -> list[Any]:
    """App-level dependencies: every route needs an authenticated Airflow user allowed plugin views."""
    return [Depends(require_airflow_user)]


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


def _login_url(request: Request) -> str:
    # The Airflow UI sits at the API server's root (``app_root_path``, set by the mount) and sends
    # a visitor without a session to its login page.
    return (request.scope.get("app_root_path") or "") + "/"


class RequireAirflowUser:
    """Pure ASGI middleware: refuses every HTTP request without a valid Airflow user."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":  # no websockets here
            await send({"type": "websocket.close", "code": 1008})
            return
        request = Request(scope, receive)
        try:
            await require_airflow_user(request)
        except HTTPException as exc:
            headers = dict(exc.headers or {})
            headers["Cache-Control"] = "no-store"
            if exc.status_code == 401:
                headers.setdefault("WWW-Authenticate", "Bearer")
            if _wants_html(request):
                title = "Chưa đăng nhập" if exc.status_code == 401 else "Không có quyền truy cập"
                body = _NOT_LOGGED_IN.format(title=escape(title), login=escape(_login_url(request)))
                response: Any = HTMLResponse(body, status_code=exc.status_code, headers=headers)
            else:
                response = JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=headers)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
