"""Fault injection for the sandbox simulators: a seeded, per-request fault profile.

The profile is the JSON of docs/contracts.md::

    {"seed": 1, "error_5xx": 0.0, "rate_429": 0.0, "retry_after": 1, "latency_ms": 0,
     "reset": 0.0, "timeout": 0.0, "timeout_seconds": 30, "commit_lost": 0.0}

plus optional keys of ours:

* ``fault_auth`` (bool, default false): also fault the auth endpoints (``/oauth/token``,
  ``/api/auth``). Control endpoints (``/_sandbox/...``) are never faulted.
* ``commit_lost_mode`` (``"timeout"`` default, or ``"reset"``): what the client sees after the
  portal applied a request whose answer is lost: the answer is held for ``timeout_seconds`` (then a
  504), or the connection is reset.
* ``job_error`` (share, population only): share of bulk jobs that end in ``Loi``.
* ``token_expire`` (share; igate and portal): share of authorised requests whose credential (igate
  bearer token, portal session) has already served a request and is found expired now, earlier
  than it said (revoked, a server restart, clock drift): the client must authenticate again. A
  credential never used before is never expired this way, so the retry with a fresh one passes.
* ``page_touch`` (share, igate only) and ``page_touch_count`` (records, default 2): share of
  dossier-list pages after which ``page_touch_count`` records of the window asked for change at
  once (``updatedDate`` = the World's now, as ``/_sandbox/touch``): records change while the client
  pages, so the offsets of everything behind them shift before its next request.

Each faultable request draws one number from the profile's RNG (``random.Random(seed)``, so a
given sequence of requests meets the same faults every run) and falls into one band, in this
order: ``error_5xx`` (500/502/503, drawn from the same RNG), ``rate_429`` (with ``Retry-After``),
``reset`` (TCP RST: SO_LINGER 0 and close), ``timeout`` (the answer is held for
``timeout_seconds``, then 504), ``commit_lost`` (only where the simulator declares a committing
path: the request is applied, then the answer is dropped as above). ``latency_ms`` is added to
every faultable request. Shares must sum to at most 1.

The middleware is pure WSGI; the connection reset needs the cooperation of the request handler in
:mod:`sandbox.common` (it closes the socket with SO_LINGER 0 after werkzeug let go of it).
"""

from __future__ import annotations

import json
import random
import socket
import struct
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, fields
from typing import Any

#: environ key the request handler looks at to reset the connection instead of closing it.
RESET_FLAG = "sandbox.reset"

FAULT_KINDS = ("error_5xx", "rate_429", "reset", "timeout", "commit_lost")
#: Simulator-specific shares, drawn on their own (:meth:`FaultInjector.draw`), not in the bands.
EXTRA_SHARES = ("job_error", "token_expire", "page_touch")


@dataclass(frozen=True)
class FaultProfile:
    """Shares (0..1) of faultable requests that get each fault; see the module docstring."""

    seed: int = 1
    error_5xx: float = 0.0
    rate_429: float = 0.0
    retry_after: int = 1
    latency_ms: int = 0
    reset: float = 0.0
    timeout: float = 0.0
    timeout_seconds: float = 30.0
    commit_lost: float = 0.0
    commit_lost_mode: str = "timeout"
    job_error: float = 0.0
    token_expire: float = 0.0
    page_touch: float = 0.0
    page_touch_count: int = 2
    fault_auth: bool = False

    def __post_init__(self) -> None:
        for k in (*FAULT_KINDS, *EXTRA_SHARES):
            v = getattr(self, k)
            if not isinstance(v, int | float) or isinstance(v, bool) or not 0.0 <= v <= 1.0:
                raise ValueError(f"fault share {k!r} must be a number in 0..1, got {v!r}")
        total = sum(getattr(self, k) for k in FAULT_KINDS)
        if total > 1.0 + 1e-9:
            raise ValueError(f"fault shares sum to {total:.3f} > 1")
        if not isinstance(self.retry_after, int) or self.retry_after < 0:
            raise ValueError("retry_after must be a non-negative integer (seconds)")
        if self.latency_ms < 0 or self.timeout_seconds < 0:
            raise ValueError("latency_ms and timeout_seconds must be >= 0")
        if (
            not isinstance(self.page_touch_count, int)
            or isinstance(self.page_touch_count, bool)
            or self.page_touch_count < 0
        ):
            raise ValueError("page_touch_count must be a non-negative integer (records)")
        if self.commit_lost_mode not in ("timeout", "reset"):
            raise ValueError("commit_lost_mode must be 'timeout' or 'reset'")

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> FaultProfile:
        """Build from JSON; unknown keys are an error (a typo would silently mean 'no fault')."""
        d = dict(d or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown fault profile keys: {', '.join(unknown)}")
        try:
            return cls(**d)
        except TypeError as e:  # pragma: no cover - guarded by the key check
            raise ValueError(str(e)) from e

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def is_quiet(self) -> bool:
        return self.latency_ms == 0 and all(getattr(self, k) == 0 for k in (*FAULT_KINDS, *EXTRA_SHARES))


@dataclass(frozen=True)
class FaultDecision:
    kind: str | None  # one of FAULT_KINDS or None
    status: int | None = None  # for error_5xx
    latency_s: float = 0.0


class FaultInjector:
    """Thread-safe holder of the current profile, its RNG and counters of what was injected."""

    def __init__(self, profile: FaultProfile | None = None) -> None:
        self._lock = threading.Lock()
        self._initial = profile or FaultProfile()
        self.stop_event = threading.Event()  # set on server shutdown: releases held answers
        self.set_profile(self._initial)

    def set_profile(self, profile: FaultProfile) -> None:
        with self._lock:
            self.profile = profile
            self._rng = random.Random(profile.seed)
            self.injected: Counter[str] = Counter()
            self.faultable_requests = 0

    def reset(self) -> None:
        """Back to the profile the simulator was started with (fresh RNG, zero counters)."""
        self.set_profile(self._initial)

    def decide(self, *, can_commit_lose: bool) -> FaultDecision:
        with self._lock:
            p = self.profile
            self.faultable_requests += 1
            latency = p.latency_ms / 1000.0
            if all(getattr(p, k) == 0 for k in FAULT_KINDS):
                return FaultDecision(None, latency_s=latency)
            u = self._rng.random()
            edge = 0.0
            for kind in FAULT_KINDS:
                edge += getattr(p, kind)
                if u < edge:
                    if kind == "commit_lost" and not can_commit_lose:
                        return FaultDecision(None, latency_s=latency)
                    status = self._rng.choice((500, 502, 503)) if kind == "error_5xx" else None
                    self.injected[kind] += 1
                    return FaultDecision(kind, status, latency)
            return FaultDecision(None, latency_s=latency)

    def draw(self, share_name: str) -> bool:
        """One seeded Bernoulli draw for simulator-specific faults (e.g. ``job_error``)."""
        with self._lock:
            share = getattr(self.profile, share_name)
            if share <= 0:
                return False
            hit = self._rng.random() < share
            if hit:
                self.injected[share_name] += 1
            return hit

    def sample(self, population: list[Any], k: int) -> list[Any]:
        """``k`` items of ``population`` chosen by the profile's RNG (all when fewer)."""
        with self._lock:
            if k >= len(population):
                return list(population)
            return self._rng.sample(population, k)

    def count(self, kind: str, n: int = 1) -> None:
        """Add to the injected counter of ``kind`` (for effects a simulator applies itself)."""
        with self._lock:
            self.injected[kind] += n

    def hold(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; False when the server is stopping (then reset instead)."""
        return not self.stop_event.wait(seconds)

    def state(self) -> dict[str, Any]:
        with self._lock:
            return {
                "profile": self.profile.to_dict(),
                "faultable_requests": self.faultable_requests,
                "injected": dict(self.injected),
            }


_HTML_5XX = {
    502: "Bad Gateway",
    503: "Service Temporarily Unavailable",
    504: "Gateway Time-out",
}


def _html_error(status: int) -> bytes:
    # What a reverse proxy (nginx) in front of the real systems answers: not JSON.
    title = f"{status} {_HTML_5XX[status]}"
    return (
        f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
        f"<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
    ).encode()


def mark_reset(environ: dict[str, Any]) -> None:
    """Ask for a TCP reset of this request's connection; raise ConnectionResetError after this."""
    sock = environ.get("werkzeug.socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    environ[RESET_FLAG] = True


ErrorBody = Callable[[int, str, str], dict[str, Any]]


class FaultMiddleware:
    """WSGI middleware applying a :class:`FaultInjector` to a simulator's app.

    ``auth_paths`` are exempt unless ``fault_auth``; paths under ``/_sandbox/`` are always exempt;
    ``commit_paths`` (exact paths) are where ``commit_lost`` applies. ``error_body(status,
    message, path)`` renders the simulator's own JSON error for 500 and 429.
    """

    def __init__(
        self,
        app: Callable,
        injector: FaultInjector,
        *,
        error_body: ErrorBody,
        auth_paths: Iterable[str] = (),
        commit_paths: Iterable[str] = (),
    ) -> None:
        self.app = app
        self.injector = injector
        self.error_body = error_body
        self.auth_paths = frozenset(auth_paths)
        self.commit_paths = frozenset(commit_paths)

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith("/_sandbox/"):
            return self.app(environ, start_response)
        if path in self.auth_paths and not self.injector.profile.fault_auth:
            return self.app(environ, start_response)

        d = self.injector.decide(can_commit_lose=path in self.commit_paths)
        if d.latency_s > 0:
            self.injector.hold(d.latency_s)
        if d.kind is None:
            return self.app(environ, start_response)
        if d.kind == "error_5xx":
            assert d.status is not None
            if d.status in _HTML_5XX:
                return _respond(start_response, d.status, _html_error(d.status), "text/html")
            body = self.error_body(d.status, "Internal Server Error (sandbox fault)", path)
            return _respond_json(start_response, d.status, body)
        if d.kind == "rate_429":
            body = self.error_body(429, "Too Many Requests (sandbox fault)", path)
            return _respond_json(
                start_response, 429, body, [("Retry-After", str(self.injector.profile.retry_after))]
            )
        if d.kind == "reset":
            # Read the request body first, as a server that fails while processing would have:
            # the client has then finished sending and meets the RST in its read, which every
            # client library reports as a reset (mid-send, some report a clean close instead).
            _read_body(environ)
            return self._reset(environ)
        if d.kind == "timeout":
            return self._hold_then_504(environ, start_response)
        # commit_lost: apply the request, throw the answer away.
        _drain(self.app, environ)
        if self.injector.profile.commit_lost_mode == "reset":
            return self._reset(environ)
        return self._hold_then_504(environ, start_response)

    def _reset(self, environ: dict[str, Any]) -> Iterable[bytes]:
        mark_reset(environ)
        raise ConnectionResetError("sandbox fault: connection reset")

    def _hold_then_504(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        if not self.injector.hold(self.injector.profile.timeout_seconds):
            return self._reset(environ)
        return _respond(start_response, 504, _html_error(504), "text/html")


def _read_body(environ: dict[str, Any], limit: int = 16 * 1024 * 1024) -> None:
    try:
        n = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return
    stream = environ.get("wsgi.input")
    remaining = min(n, limit)
    while stream is not None and remaining > 0:
        try:
            chunk = stream.read(min(remaining, 65536))
        except OSError:
            return
        if not chunk:
            return
        remaining -= len(chunk)


def _drain(app: Callable, environ: dict[str, Any]) -> None:
    def _sr(status: str, headers: list, exc_info: Any = None) -> Callable:
        return lambda _data: None

    it = app(environ, _sr)
    try:
        for _ in it:
            pass
    finally:
        close = getattr(it, "close", None)
        if close is not None:
            close()


def _respond(
    start_response: Callable,
    status: int,
    body: bytes,
    content_type: str,
    extra: list[tuple[str, str]] | None = None,
) -> list[bytes]:
    from werkzeug.http import HTTP_STATUS_CODES

    headers = [("Content-Type", content_type), ("Content-Length", str(len(body)))]
    headers.extend(extra or [])
    start_response(f"{status} {HTTP_STATUS_CODES.get(status, 'Error')}", headers)
    return [body]


def _respond_json(
    start_response: Callable, status: int, body: dict[str, Any], extra: list[tuple[str, str]] | None = None
) -> list[bytes]:
    data = json.dumps(body, ensure_ascii=False).encode("utf-8")
    return _respond(start_response, status, data, "application/json; charset=utf-8", extra)
