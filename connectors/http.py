"""The shared HTTP layer of every connector: one ``requests.Session``, a time-out on every call,
retries with exponential back-off and jitter (``tenacity``), and errors that say what the caller
may do next.

Error classes (all subclasses of :class:`ConnectorError`):

* :class:`TransientError` — the request was certainly *not* applied, or it is safe to repeat
  (idempotent): 5xx, 408, 429 (:class:`RateLimitedError`), connection refused, time-outs. Retried
  here; raised only once the attempts are spent.
* :class:`PermanentError` — repeating the same request will not help: other 4xx
  (:class:`AuthError` for 401/403), an unreadable answer (:class:`ProtocolError`). Never retried.
* :class:`AmbiguousError` — a *non-idempotent* request (by default every POST) was sent and no
  answer came back (read time-out, connection reset after sending, 500/502/504): the server may or
  may not have applied it. Never retried here: the caller must read the state back (e.g. the
  portal's ``TraCuuHoSo``) before deciding to resend. 408, 429 and 503 say "not processed" and
  are retried even for POSTs; so are failures to connect (nothing was sent).

Idempotency is per request: ``GET``/``HEAD``/``PUT``/``DELETE``/``OPTIONS`` are idempotent by
default, ``POST`` is not; a client marks a read-only POST (a token request, a lookup) with
``idempotent=True``.

Personal data: request and response bodies are never logged nor put into exception messages.
Log lines carry the method, host and path, the *names* of query parameters (values only for a
small allow-list of harmless ones such as ``page``), the status, the attempt and the duration:
successes at DEBUG, failures and retries at WARNING.
"""

from __future__ import annotations

import email.utils
import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
import tenacity
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError, ReadTimeoutError

log = logging.getLogger(__name__)

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
#: Statuses that mean "the server did not process the request": retried even for a POST.
NOT_PROCESSED_STATUSES = frozenset({408, 429, 503})
#: Query parameters whose values are harmless and useful in logs.
SAFE_QUERY_PARAMS = frozenset({"page", "size", "limit", "updatedFrom", "updatedTo", "tuNgay", "grant_type"})


# ---- errors ------------------------------------------------------------------------------------


class ConnectorError(Exception):
    """Base of every connector failure. The message never contains a request or response body."""

    def __init__(
        self,
        message: str,
        *,
        method: str | None = None,
        target: str | None = None,
        status: int | None = None,
        error_code: str | None = None,
        attempts: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.method = method
        self.target = target  # host + path, no query values
        self.status = status
        self.error_code = error_code
        self.attempts = attempts

    def __str__(self) -> str:
        parts = [self.message]
        where = " ".join(p for p in (self.method, self.target) if p)
        if where:
            parts.append(f"[{where}]")
        if self.status is not None:
            parts.append(f"status={self.status}")
        if self.error_code is not None:
            parts.append(f"error_code={self.error_code}")
        if self.attempts is not None:
            parts.append(f"attempts={self.attempts}")
        return " ".join(parts)


class TransientError(ConnectorError):
    """Temporary failure; the request was not applied or is safe to repeat."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class RateLimitedError(TransientError):
    """429 Too Many Requests (``retry_after`` from the ``Retry-After`` header, seconds)."""


class PermanentError(ConnectorError):
    """Repeating the same request will not help."""


class AuthError(PermanentError):
    """Authentication refused (401/403, bad credentials, no token in the answer)."""


class ProtocolError(PermanentError):
    """The answer does not follow the contract (not JSON, missing fields, unsafe XML...)."""


class AmbiguousError(ConnectorError):
    """A non-idempotent request may or may not have been applied: read back before resending."""


# ---- configuration -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds to establish a connection and to wait for (each chunk of) the answer."""

    connect: float = 5.0
    read: float = 30.0

    def as_tuple(self) -> tuple[float, float]:
        return (self.connect, self.read)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How :class:`HttpClient` retries a :class:`TransientError`.

    Wait before attempt *n+1*: ``Retry-After`` (capped at ``retry_after_cap``) when the server sent
    one, else ``min(backoff_initial * 2**(n-1) + uniform(0, jitter), backoff_max)``.
    """

    max_attempts: int = 5
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    jitter: float = 0.5
    retry_after_cap: float = 60.0
    max_elapsed: float | None = None  # give up once this many seconds were spent (None: no limit)


NO_RETRY = RetryPolicy(max_attempts=1)


# ---- helpers -----------------------------------------------------------------------------------


def redact_target(url: str, params: Mapping[str, Any] | None = None) -> str:
    """``host/path?name=…`` for logs and errors: query values are dropped except harmless ones."""
    parts = urlsplit(url)
    names: list[tuple[str, str]] = []
    if parts.query:
        for pair in parts.query.split("&"):
            k, _, v = pair.partition("=")
            names.append((k, v))
    for k, v in (params or {}).items():
        names.append((str(k), str(v)))
    target = f"{parts.netloc}{parts.path}"
    if names:
        target += "?" + "&".join(f"{k}={v if k in SAFE_QUERY_PARAMS else '…'}" for k, v in names)
    return target


def parse_retry_after(value: str | None, *, now: Callable[[], datetime] | None = None) -> float | None:
    """``Retry-After`` as seconds (delta-seconds or an HTTP date); None when absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = now() if now is not None else datetime.now(UTC)
    return max(0.0, (when - current).total_seconds())


def _exception_chain(exc: BaseException) -> Iterable[BaseException]:
    """The exception, its args that are exceptions, causes, contexts and urllib3 ``reason``s."""
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack:
        e = stack.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        for nxt in (*getattr(e, "args", ()), e.__cause__, e.__context__, getattr(e, "reason", None)):
            if isinstance(nxt, BaseException):
                stack.append(nxt)


def _nothing_sent(exc: BaseException) -> bool:
    """True when a transport failure happened before any byte of the request left."""
    chain = list(_exception_chain(exc))
    if any(isinstance(e, ReadTimeoutError) for e in chain):
        return False
    return any(
        isinstance(e, NewConnectionError | ConnectTimeoutError | ConnectionRefusedError) for e in chain
    )


def json_body(response: requests.Response, *, what: str = "answer") -> Any:
    """The decoded JSON of an answer; :class:`ProtocolError` (without the body) if it is not JSON.

    Decoded from the bytes (JSON is UTF-8, RFC 8259) rather than through requests' charset guess,
    which reads a ``text/plain`` answer without charset as Latin-1 and garbles Vietnamese text.
    """
    try:
        try:
            return json.loads(response.content)
        except UnicodeDecodeError:
            return json.loads(response.text)  # a legacy server declaring another charset
    except ValueError:
        raise ProtocolError(
            f"{what} is not JSON",
            method=response.request.method if response.request is not None else None,
            target=redact_target(response.url),
            status=response.status_code,
        ) from None


# ---- the client --------------------------------------------------------------------------------


class HttpClient:
    """A base URL, a session and the retry/time-out policy; every connector owns one.

    ``sleep`` is injectable so tests can run retries instantly and assert the waits.
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeouts: Timeouts | None = None,
        retry: RetryPolicy | None = None,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        headers: Mapping[str, str] | None = None,
        name: str = "http",
    ) -> None:
        self.base_url = base_url.rstrip("/") + "/"
        self.timeouts = timeouts or Timeouts()
        self.retry = retry or RetryPolicy()
        if session is None:
            session = requests.Session()
            # requests re-reads the proxy and CA environment on every request (about 1 ms each,
            # a third of a portal look-up); one client talks to one base URL, so read it once here
            session.proxies.update(requests.utils.get_environ_proxies(self.base_url))
            session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
            session.trust_env = False
        self.session = session
        self.session.headers.setdefault("User-Agent", "tthc-sync/0.1")
        if headers:
            self.session.headers.update(headers)
        self.sleep = sleep
        self.name = name

    # -- public -----------------------------------------------------------------------------
    def url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        return urljoin(self.base_url, path.lstrip("/"))

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        data: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
        retry: bool = True,
        timeouts: Timeouts | None = None,
    ) -> requests.Response:
        """Send a request; return the 2xx response or raise a :class:`ConnectorError`.

        ``retry=False`` makes exactly one attempt (the error classes stay the same).
        """
        method = method.upper()
        if idempotent is None:
            idempotent = method in IDEMPOTENT_METHODS
        url = self.url(path)
        target = redact_target(url, params)
        policy = self.retry if retry else NO_RETRY
        timeout = (timeouts or self.timeouts).as_tuple()

        def attempt_once(state_attempt: list[int]) -> requests.Response:
            state_attempt[0] += 1
            n = state_attempt[0]
            started = time.monotonic()
            try:
                response = self.session.request(
                    method, url, params=params, json=json, data=data, headers=headers, timeout=timeout
                )
            except requests.RequestException as exc:
                err = self._transport_error(exc, method, target, idempotent)
                err.attempts = n
                log.warning(
                    "%s %s %s -> %s (attempt %d, %.0f ms)",
                    self.name,
                    method,
                    target,
                    type(err).__name__,
                    n,
                    (time.monotonic() - started) * 1000,
                )
                raise err from None
            elapsed_ms = (time.monotonic() - started) * 1000
            err = self._status_error(response, method, target, idempotent)
            if err is None:
                log.debug(
                    "%s %s %s -> %d (attempt %d, %.0f ms)",
                    self.name,
                    method,
                    target,
                    response.status_code,
                    n,
                    elapsed_ms,
                )
                return response
            err.attempts = n
            log.warning(
                "%s %s %s -> %d %s (attempt %d, %.0f ms)",
                self.name,
                method,
                target,
                response.status_code,
                type(err).__name__,
                n,
                elapsed_ms,
            )
            raise err

        counter = [0]
        stop = tenacity.stop_after_attempt(max(1, policy.max_attempts))
        if policy.max_elapsed is not None:
            stop = stop | tenacity.stop_after_delay(policy.max_elapsed)
        retrying = tenacity.Retrying(
            stop=stop,
            wait=_WaitPolicy(policy),
            retry=tenacity.retry_if_exception_type(TransientError),
            sleep=self.sleep,
            before_sleep=self._before_sleep(method, target),
            reraise=True,
        )
        return retrying(attempt_once, counter)

    def get(self, path: str, **kw: Any) -> requests.Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> requests.Response:
        return self.request("POST", path, **kw)

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- classification ---------------------------------------------------------------------
    @staticmethod
    def _transport_error(
        exc: requests.RequestException, method: str, target: str, idempotent: bool
    ) -> ConnectorError:
        kw: dict[str, Any] = {"method": method, "target": target}
        if isinstance(exc, requests.exceptions.ConnectTimeout):
            return TransientError("connect time-out (request not sent)", **kw)
        if isinstance(exc, requests.exceptions.SSLError):
            return PermanentError("TLS failure", **kw)
        if isinstance(exc, requests.exceptions.ReadTimeout):
            if idempotent:
                return TransientError("read time-out", **kw)
            return AmbiguousError("read time-out after the request was sent; it may have been applied", **kw)
        if isinstance(exc, requests.exceptions.ConnectionError | requests.exceptions.ChunkedEncodingError):
            if isinstance(exc, requests.exceptions.ConnectionError) and _nothing_sent(exc):
                return TransientError("connection failed (request not sent)", **kw)
            if idempotent:
                return TransientError("connection lost", **kw)
            return AmbiguousError(
                "connection lost after the request was sent; it may have been applied", **kw
            )
        if isinstance(exc, requests.exceptions.ContentDecodingError):
            if idempotent:
                return TransientError("answer could not be decoded", **kw)
            return AmbiguousError("answer could not be decoded; the request may have been applied", **kw)
        return PermanentError(f"request failed: {type(exc).__name__}", **kw)

    @staticmethod
    def _status_error(
        response: requests.Response, method: str, target: str, idempotent: bool
    ) -> ConnectorError | None:
        status = response.status_code
        if 200 <= status < 300:
            return None
        kw: dict[str, Any] = {"method": method, "target": target, "status": status}
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        if status == 429:
            return RateLimitedError("rate limited", retry_after=retry_after, **kw)
        if status in NOT_PROCESSED_STATUSES:
            return TransientError("service unavailable", retry_after=retry_after, **kw)
        if status >= 500:
            if idempotent:
                return TransientError("server error", retry_after=retry_after, **kw)
            return AmbiguousError("server error after the request was sent; it may have been applied", **kw)
        if status in (401, 403):
            return AuthError("not authorised", **kw)
        return PermanentError("request refused", **kw)

    def _before_sleep(self, method: str, target: str) -> Callable[[tenacity.RetryCallState], None]:
        def before_sleep(state: tenacity.RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            wait = state.next_action.sleep if state.next_action else 0.0
            log.warning(
                "%s %s %s: %s, retrying in %.2f s (attempt %d done)",
                self.name,
                method,
                target,
                type(exc).__name__,
                wait,
                state.attempt_number,
            )

        return before_sleep


class _WaitPolicy(tenacity.wait.wait_base):
    """``Retry-After`` when the server sent one (capped), else exponential back-off with jitter."""

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        self.exponential = tenacity.wait_exponential_jitter(
            initial=policy.backoff_initial, max=policy.backoff_max, jitter=policy.jitter
        )

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            return min(float(retry_after), self.policy.retry_after_cap)
        return float(self.exponential(retry_state))
