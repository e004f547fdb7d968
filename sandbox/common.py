"""Shared plumbing of the HTTP simulators: a quiet threaded werkzeug server in a background
thread, the request handler that can reset a connection, and the control endpoints
(``/_sandbox/state``, ``/_sandbox/faults``, ``/_sandbox/reset``) every simulator has.

Access logs: werkzeug's default request log prints full URLs to stderr. Ours logs only method,
path (never the query string) and status, at DEBUG on the ``sandbox.http`` logger, so nothing
personal can reach a log even if a client put it in a URL.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, jsonify, request
from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler

from sandbox.faults import RESET_FLAG, FaultInjector, FaultProfile

HOST = "127.0.0.1"
log = logging.getLogger("sandbox.http")


class SandboxRequestHandler(WSGIRequestHandler):
    """werkzeug's handler, quiet, and able to answer with a TCP reset (see sandbox.faults)."""

    def connection_dropped(self, error: BaseException, environ: dict | None = None) -> None:
        # The app raised ConnectionError on purpose (reset fault) or the client went away:
        # do not wait for another request on this keep-alive connection.
        self.close_connection = True

    def finish(self) -> None:
        super().finish()
        env = getattr(self, "environ", None)
        if env is not None and env.get(RESET_FLAG):
            # werkzeug's file objects are closed now, so this close releases the descriptor and,
            # with SO_LINGER 0 set by the middleware, the kernel sends RST instead of FIN.
            try:
                self.request.close()
            except OSError:
                pass

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        path = getattr(self, "path", "") or ""
        log.debug("%s %s %s", getattr(self, "command", "-"), path.split("?", 1)[0], code)

    def log_error(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.debug("http error: %s", format % args if args else format)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        log.debug("http: %s", format % args if args else format)


class SandboxWSGIServer(ThreadedWSGIServer):
    daemon_threads = True

    def log(self, type: str, message: str, *args: Any) -> None:  # noqa: A002
        # Tracebacks of simulator bugs: keep them (they carry code, not request data), at WARNING.
        log.warning("sandbox server %s: %s", type, message % args if args else message)


class HttpServerThread:
    """One simulator on a werkzeug threaded server in a daemon thread."""

    def __init__(
        self,
        name: str,
        app: Callable,
        port: int = 0,
        *,
        host: str = HOST,
        injector: FaultInjector | None = None,
    ) -> None:
        if host != HOST:
            raise ValueError("the sandbox only listens on 127.0.0.1")
        self.name = name
        self.injector = injector
        self._server = SandboxWSGIServer(host, port, app, handler=SandboxRequestHandler)
        self.port: int = self._server.port
        self.url = f"http://{host}:{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},  # shutdown() waits up to one poll interval
            name=f"sandbox-{name}",
            daemon=True,
        )

    def start(self) -> HttpServerThread:
        self._thread.start()
        return self

    def stop(self) -> None:
        if self.injector is not None:
            self.injector.stop_event.set()  # release answers held by time-out faults
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def json_app(name: str) -> Flask:
    app = Flask(name)
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    app.json.sort_keys = False  # type: ignore[attr-defined]
    return app


def add_control_routes(
    app: Flask,
    injector: FaultInjector,
    *,
    state: Callable[[], dict[str, Any]],
    reset: Callable[[], None],
    summary: Callable[[], dict[str, Any]] | None = None,
) -> None:
    """``GET /_sandbox/state``, ``GET|POST /_sandbox/faults``, ``POST /_sandbox/reset``.

    ``GET /_sandbox/state?summary=1`` answers ``summary()`` instead (counts only), where given: the
    whole state of a world of a million dossiers is too big to fetch.

    ``POST /_sandbox/faults`` replaces the whole profile (missing keys take their defaults) and
    restarts its RNG; ``POST /_sandbox/reset`` puts the simulator back as it was started:
    fixture data, configured fault profile, zero counters.
    """

    @app.get("/_sandbox/state")
    def _state() -> Response:
        out = summary() if summary is not None and request.args.get("summary") else state()
        out["faults"] = injector.state()
        return jsonify(out)

    @app.route("/_sandbox/faults", methods=["GET", "POST"])
    def _faults() -> Any:
        if request.method == "POST":
            body = request.get_json(silent=True)
            if not isinstance(body, dict):
                return jsonify({"error": "expected a JSON object (fault profile)"}), 400
            try:
                profile = FaultProfile.from_dict(body)
            except ValueError as e:
                return jsonify({"error": str(e)}), 400
            injector.set_profile(profile)
        return jsonify(injector.profile.to_dict())

    @app.post("/_sandbox/reset")
    def _reset() -> Response:
        reset()
        injector.reset()
        return jsonify({"reset": True})


class WorldHolder:
    """The World shared by the simulators of one sandbox, with the lock that guards it.

    Simulators take ``with holder.lock`` around every use of the World, so that one request sees
    one consistent "now" even while another request moves the clock. ``reset()`` puts the clock
    back to the anchor (``World.reset``), or rebuilds the World when it has no ``reset``.
    """

    def __init__(self, factory: Callable[[], Any]) -> None:
        self._factory = factory
        self.lock = threading.RLock()
        self.world = factory()

    def reset(self) -> None:
        with self.lock:
            if callable(getattr(self.world, "reset", None)):
                self.world.reset()
            else:
                self.world = self._factory()

    def advance(self, days: float, hours: float) -> Any:
        """Move the shared clock forward; returns the new "now"."""
        with self.lock:
            try:
                self.world.advance(days=days, hours=hours)
            except TypeError:  # a World whose advance() only knows days
                self.world.advance(days=days + hours / 24.0)
            return self.world.now

    @property
    def now(self) -> Any:
        with self.lock:
            return self.world.now


def add_world_routes(
    app: Flask,
    *,
    dialect: str,
    source_ids: Callable[[], set[str]],
    advance: Callable[[float, float], Any],
    now: Callable[[], Any],
    touch: Callable[[str, int | None, list[str] | None], dict[str, Any]],
    now_fields: Callable[[Any], dict[str, Any]],
) -> None:
    """``GET|POST /_sandbox/clock`` ({"days", "hours"}: forward only) and ``POST /_sandbox/touch``
    ({"source_id", "count" | "codes"}: make records change now), shared by the API simulators."""

    @app.route("/_sandbox/clock", methods=["GET", "POST"])
    def _clock() -> Any:
        if request.method == "POST":
            body = request.get_json(silent=True) or {}
            try:
                days = float(body.get("days", 0) or 0)
                hours = float(body.get("hours", 0) or 0)
            except (TypeError, ValueError):
                return jsonify({"error": "days and hours must be numbers"}), 400
            if days < 0 or hours < 0:
                return jsonify({"error": "the clock only moves forward"}), 400
            t = advance(days, hours)
        else:
            t = now()
        return jsonify({"now": t.isoformat(timespec="seconds"), **now_fields(t)})

    @app.post("/_sandbox/touch")
    def _touch() -> Any:
        body = request.get_json(silent=True) or {}
        source_id = body.get("source_id")
        if source_id not in source_ids():
            return jsonify({"error": f"unknown {dialect} source: {source_id!r}"}), 400
        codes = body.get("codes")
        count = body.get("count")
        if codes is None and (not isinstance(count, int) or count < 0):
            return jsonify({"error": "give count (int >= 0) or codes (list)"}), 400
        if codes is not None and not isinstance(codes, list):
            return jsonify({"error": "codes must be a list"}), 400
        return jsonify(touch(source_id, count, codes))


class RowsCache:
    """A simulator's ordered rows per source, kept while the world, its clock and the simulator's
    touches are unchanged: paging a 50,000-record source otherwise rebuilds and sorts it for
    every page. Callers treat the returned list as read-only."""

    def __init__(self) -> None:
        self._rows: dict[str, tuple[Any, list[Any]]] = {}

    def get(self, source_id: str, key: Any, build: Callable[[], list[Any]]) -> list[Any]:
        cached = self._rows.get(source_id)
        if cached is not None and cached[0] == key:
            return cached[1]
        rows = build()
        self._rows[source_id] = (key, rows)
        return rows


class AfterWorldChange:
    """WSGI middleware: after a successful ``POST`` to one of ``paths`` (by default the clock and
    reset control endpoints), call ``callback`` before the answer leaves, so a client that moved
    the World sees every other simulator (the SQL view, the file drop) already in step with it.

    A failing callback turns the answer into a 500 ``{"error": ...}`` (logged at WARNING).
    """

    def __init__(
        self,
        app: Callable,
        callback: Callable[[], Any],
        paths: tuple[str, ...] = ("/_sandbox/clock", "/_sandbox/reset"),
    ) -> None:
        self.app = app
        self.callback = callback
        self.paths = frozenset(paths)

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Any:
        if environ.get("REQUEST_METHOD") != "POST" or environ.get("PATH_INFO") not in self.paths:
            return self.app(environ, start_response)
        captured: list[tuple[str, list, Any]] = []

        def _capture(status: str, headers: list, exc_info: Any = None) -> Callable[[bytes], None]:
            captured.append((status, headers, exc_info))
            return lambda _data: None

        it = self.app(environ, _capture)
        try:
            body = b"".join(it)
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()
        status, headers, _exc = captured[-1]
        if status.startswith("200"):
            try:
                self.callback()
            except Exception as e:  # noqa: BLE001 - report, do not kill the server thread
                log.warning("re-sync after a world change failed: %s", type(e).__name__)
                data = json.dumps({"error": f"re-sync after the world change failed: {type(e).__name__}"})
                start_response("500 INTERNAL SERVER ERROR", [("Content-Type", "application/json")])
                return [data.encode()]
        start_response(status, headers)
        return [body]
