"""A tiny loopback HTTP server for the garbage the simulators cannot produce.

Every corpus source (or population-database stand-in) that needs raw answers gets a prefix
``/c/<name>`` on one server; its handler sees the method, path (without the prefix), query and body,
and answers any status, headers and bytes: truncated JSON, an HTML error page with 200, a lying
envelope, a SOAP answer with a DTD. The default handlers behave like the real APIs, so a case only
overrides what it breaks.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs

from sandbox.common import HttpServerThread
from tthc.timeutil import VN_TZ


@dataclass
class Request:
    method: str
    path: str  # without the /c/<name> prefix
    query: dict[str, str]
    body: bytes


@dataclass
class Response:
    status: int = 200
    body: bytes | str | Any = b""  # bytes as they are, str UTF-8, anything else as JSON
    headers: dict[str, str] = field(default_factory=dict)

    def payload(self) -> tuple[bytes, str]:
        if isinstance(self.body, bytes):
            return self.body, self.headers.get("Content-Type", "application/octet-stream")
        if isinstance(self.body, str):
            return self.body.encode("utf-8"), self.headers.get("Content-Type", "text/plain; charset=utf-8")
        text = json.dumps(self.body, ensure_ascii=False)
        return text.encode("utf-8"), self.headers.get("Content-Type", "application/json")


Handler = Callable[[Request], Response]

_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 503: "Service Unavailable"}


class FakeServer:
    """``/c/<name>/...`` → ``handlers[name](request)``; keeps every request seen (``log``)."""

    def __init__(self) -> None:
        self.handlers: dict[str, Handler] = {}
        self.log: list[tuple[str, str, str]] = []  # (name, method, path)
        self._lock = threading.Lock()
        self._server: HttpServerThread | None = None

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> list[bytes]:
        path = environ.get("PATH_INFO", "")
        parts = path.split("/", 3)  # "", "c", name, rest
        name = parts[2] if len(parts) > 2 and parts[1] == "c" else ""
        rest = "/" + (parts[3] if len(parts) > 3 else "")
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        query = {
            k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True).items()
        }
        with self._lock:
            self.log.append((name, environ["REQUEST_METHOD"], rest))
        handler = self.handlers.get(name)
        resp = (
            handler(Request(environ["REQUEST_METHOD"], rest, query, body)) if handler else Response(404, b"")
        )
        data, ctype = resp.payload()
        headers = {"Content-Type": ctype, **resp.headers, "Content-Length": str(len(data))}
        start_response(f"{resp.status} {_REASONS.get(resp.status, 'Status')}", list(headers.items()))
        return [data]

    def start(self) -> FakeServer:
        self._server = HttpServerThread("corpus-fake", self).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()

    @property
    def url(self) -> str:
        assert self._server is not None
        return self._server.url

    def base_url(self, name: str) -> str:
        return f"{self.url}/c/{name}"

    def requests_of(self, name: str) -> list[tuple[str, str]]:
        with self._lock:
            return [(m, p) for n, m, p in self.log if n == name]


# ---- igate (world.md §1) -------------------------------------------------------------------------
def _parse(value: Any) -> datetime | None:
    """An ISO time (naive = Vietnam time) as an aware datetime; None when unreadable."""
    if not isinstance(value, str):
        return None
    try:
        t = datetime.fromisoformat(value.replace(" ", "+"))
    except ValueError:
        return None
    return t if t.tzinfo is not None else t.replace(tzinfo=VN_TZ)


def igate_envelope(records: list[Any], req: Request) -> dict[str, Any]:
    """The Spring page the real server would answer: window filter, ``updatedDate`` order, offsets.
    A record whose ``updatedDate`` is unreadable is in every window (the server cannot place it)."""
    lo, hi = _parse(req.query.get("updatedFrom")), _parse(req.query.get("updatedTo"))

    def when(r: Any) -> datetime | None:
        return _parse(r.get("updatedDate")) if isinstance(r, dict) else None

    def inside_window(r: Any) -> bool:
        t = when(r)
        return t is None or ((lo is None or t >= lo) and (hi is None or t < hi))

    inside = sorted(
        (r for r in records if inside_window(r)),
        key=lambda r: (0, 0.0) if when(r) is None else (1, when(r).timestamp()),  # type: ignore[union-attr]
    )
    page, size = int(req.query.get("page", 0)), int(req.query.get("size", 20))
    content = inside[page * size : (page + 1) * size]
    return {
        "content": content,
        "totalElements": len(inside),
        "totalPages": -(-len(inside) // size),
        "number": page,
        "size": size,
    }


def igate_handler(
    records: list[Any],
    *,
    page: Callable[[dict[str, Any], Request], Response] | None = None,
    token: Callable[[Request], Response] | None = None,
) -> Handler:
    """An igate API over ``records``; ``page(envelope, request)`` / ``token(request)`` override answers."""

    def handle(req: Request) -> Response:
        if req.method == "POST" and req.path == "/oauth/token":
            if token is not None:
                return token(req)
            return Response(
                body={"access_token": uuid.uuid4().hex, "token_type": "bearer", "expires_in": 300}
            )
        if req.method == "GET" and req.path == "/api/v1/dossiers":
            env = igate_envelope(records, req)
            return page(env, req) if page is not None else Response(body=env)
        return Response(404, {"status": 404, "error": "Not Found", "path": req.path})

    return handle


# ---- onegate (world.md §2) -----------------------------------------------------------------------
def onegate_handler(
    records: list[Any], *, page: Callable[[dict[str, Any], Request], Response] | None = None
) -> Handler:
    """One page holding every record; ``page(body, request)`` overrides the answer."""

    def handle(req: Request) -> Response:
        if req.method == "GET" and req.path == "/api/HoSo/DongBo":
            body = {"error_code": "0", "message": "", "data": list(records), "next_cursor": None}
            return page(body, req) if page is not None else Response(body=body)
        return Response(404, {"error_code": "404", "message": "not found"})

    return handle


# ---- population database through the LGSP (world.md §5) ------------------------------------------
def lgsp_handler(message: Callable[[Request], str]) -> Handler:
    """Single and bulk lookups whose SOAP ``message`` is ``message(request)`` (the hostile XML)."""
    jobs: set[str] = set()

    def handle(req: Request) -> Response:
        if req.method == "POST" and req.path == "/lgsp/dancu/TraCuuThongTinCongDan":
            return Response(body={"error_code": "0", "message": message(req)})
        if req.method == "POST" and req.path == "/lgsp/dancu/YeuCauDanhSach":
            job = json.loads(req.body or b"{}").get("MaYeuCau") or uuid.uuid4().hex
            jobs.add(job)
            return Response(body={"error_code": "0", "MaYeuCau": job, "TrangThai": "DangXuLy"})
        if req.method == "GET" and req.path.startswith("/lgsp/dancu/TrangThai/"):
            return Response(body={"error_code": "0", "TrangThai": "HoanThanh"})
        if req.method == "GET" and req.path.startswith("/lgsp/dancu/KetQua/"):
            return Response(body={"error_code": "0", "message": message(req)})
        if req.path.endswith(".dtd"):  # an external DTD: a safe parser never asks for it
            return Response(
                body='<!ENTITY leak "DTD-WAS-FETCHED">', headers={"Content-Type": "application/xml-dtd"}
            )
        return Response(404, {"error_code": "404", "message": "not found"})

    return handle
