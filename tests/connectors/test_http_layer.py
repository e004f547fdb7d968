"""connectors.http: time-outs, retry policy, error classes, logging without personal data."""

from __future__ import annotations

import logging

import pytest
import requests
import responses
from urllib3.exceptions import MaxRetryError, NewConnectionError
from urllib3.exceptions import ProtocolError as Urllib3ProtocolError

from connectors.http import (
    AmbiguousError,
    AuthError,
    HttpClient,
    PermanentError,
    ProtocolError,
    RateLimitedError,
    RetryPolicy,
    Timeouts,
    TransientError,
    json_body,
    parse_retry_after,
    redact_target,
)

BASE = "http://127.0.0.1:9999"


def client(sleeps, **kw) -> HttpClient:
    kw.setdefault("retry", RetryPolicy(max_attempts=4, backoff_initial=0.5, backoff_max=8, jitter=0))
    return HttpClient(BASE, sleep=sleeps, **kw)


def refused() -> requests.exceptions.ConnectionError:
    """What requests raises when nothing listens: the request never left."""
    reason = NewConnectionError(None, "Failed to establish a new connection: [Errno 111] refused")
    return requests.exceptions.ConnectionError(MaxRetryError(None, "/x", reason))


def reset_after_send() -> requests.exceptions.ConnectionError:
    return requests.exceptions.ConnectionError(
        Urllib3ProtocolError("Connection aborted.", ConnectionResetError(104, "Connection reset by peer"))
    )


@responses.activate
def test_timeouts_are_set_on_every_call(sleeps):
    responses.add(responses.GET, f"{BASE}/a", json={})
    responses.add(responses.POST, f"{BASE}/b", json={})
    c = client(sleeps, timeouts=Timeouts(connect=2.5, read=7))
    c.get("/a")
    c.post("/b", json={"x": 1})
    assert [call.request.req_kwargs["timeout"] for call in responses.calls] == [(2.5, 7), (2.5, 7)]


@responses.activate
def test_default_timeouts_exist(sleeps):
    responses.add(responses.GET, f"{BASE}/a", json={})
    HttpClient(BASE, sleep=sleeps).get("/a")
    connect, read = responses.calls[0].request.req_kwargs["timeout"]
    assert 0 < connect <= 10 and 0 < read <= 60


@responses.activate
def test_retries_5xx_with_exponential_backoff(sleeps):
    for status in (500, 502, 503):
        responses.add(responses.GET, f"{BASE}/a", status=status, body="<html>nginx</html>")
    responses.add(responses.GET, f"{BASE}/a", json={"ok": True})
    r = client(sleeps).get("/a")
    assert r.json() == {"ok": True}
    assert len(responses.calls) == 4
    assert sleeps == [0.5, 1.0, 2.0]


@responses.activate
def test_jitter_stays_within_bounds(sleeps):
    for _ in range(3):
        responses.add(responses.GET, f"{BASE}/a", status=503)
    responses.add(responses.GET, f"{BASE}/a", json={})
    client(sleeps, retry=RetryPolicy(max_attempts=4, backoff_initial=1, backoff_max=3, jitter=0.5)).get("/a")
    assert 1 <= sleeps[0] <= 1.5 and 2 <= sleeps[1] <= 2.5 and sleeps[2] == 3  # capped at backoff_max


@responses.activate
def test_429_honours_retry_after_capped(sleeps):
    responses.add(responses.GET, f"{BASE}/a", status=429, headers={"Retry-After": "3"})
    responses.add(responses.GET, f"{BASE}/a", status=429, headers={"Retry-After": "120"})
    responses.add(responses.GET, f"{BASE}/a", status=503, headers={"Retry-After": "2"})
    responses.add(responses.GET, f"{BASE}/a", json={})
    c = client(sleeps, retry=RetryPolicy(max_attempts=5, jitter=0, retry_after_cap=10))
    c.get("/a")
    assert sleeps == [3.0, 10.0, 2.0]


@responses.activate
def test_429_without_retry_after_uses_backoff_and_gives_up(sleeps):
    for _ in range(4):
        responses.add(responses.GET, f"{BASE}/a", status=429)
    with pytest.raises(RateLimitedError) as ei:
        client(sleeps).get("/a")
    assert ei.value.attempts == 4 and ei.value.status == 429
    assert sleeps == [0.5, 1.0, 2.0]


@pytest.mark.parametrize("status", [400, 404, 409, 422])
@responses.activate
def test_no_retry_on_other_4xx(sleeps, status):
    responses.add(responses.GET, f"{BASE}/a", status=status, json={"message": "Nguyễn 036185000123"})
    with pytest.raises(PermanentError) as ei:
        client(sleeps).get("/a")
    assert len(responses.calls) == 1 and sleeps == []
    assert ei.value.status == status
    assert "036185000123" not in str(ei.value) and "Nguyễn" not in str(ei.value)


@responses.activate
def test_401_is_auth_error(sleeps):
    responses.add(responses.GET, f"{BASE}/a", status=401)
    with pytest.raises(AuthError):
        client(sleeps).get("/a")
    assert len(responses.calls) == 1


@responses.activate
def test_get_read_timeout_and_reset_are_retried(sleeps):
    responses.add(responses.GET, f"{BASE}/a", body=requests.exceptions.ReadTimeout("slow"))
    responses.add(responses.GET, f"{BASE}/a", body=reset_after_send())
    responses.add(responses.GET, f"{BASE}/a", body=requests.exceptions.ConnectTimeout("no route"))
    responses.add(responses.GET, f"{BASE}/a", json={})
    client(sleeps).get("/a")
    assert len(responses.calls) == 4


@responses.activate
def test_post_read_timeout_is_ambiguous_and_not_retried(sleeps):
    responses.add(responses.POST, f"{BASE}/api/integration", body=requests.exceptions.ReadTimeout("slow"))
    with pytest.raises(AmbiguousError) as ei:
        client(sleeps).post("/api/integration", json={"data": [{"ChuHoSo": "Nguyễn Văn A"}]})
    assert len(responses.calls) == 1 and sleeps == []
    assert "Nguyễn" not in str(ei.value)


@responses.activate
def test_post_reset_after_send_is_ambiguous(sleeps):
    responses.add(responses.POST, f"{BASE}/api/integration", body=reset_after_send())
    with pytest.raises(AmbiguousError):
        client(sleeps).post("/api/integration", json={})
    assert len(responses.calls) == 1


@pytest.mark.parametrize("status", [500, 502, 504])
@responses.activate
def test_post_5xx_is_ambiguous(sleeps, status):
    responses.add(responses.POST, f"{BASE}/api/integration", status=status)
    with pytest.raises(AmbiguousError) as ei:
        client(sleeps).post("/api/integration", json={})
    assert ei.value.status == status and len(responses.calls) == 1


@responses.activate
def test_post_not_processed_answers_are_retried(sleeps):
    """503, 429 and a refused connection say the request was not applied: safe to repeat."""
    responses.add(responses.POST, f"{BASE}/api/integration", status=503)
    responses.add(responses.POST, f"{BASE}/api/integration", status=429, headers={"Retry-After": "1"})
    responses.add(responses.POST, f"{BASE}/api/integration", body=refused())
    responses.add(responses.POST, f"{BASE}/api/integration", body=requests.exceptions.ConnectTimeout())
    responses.add(responses.POST, f"{BASE}/api/integration", json={"error_code": "0"})
    c = client(sleeps, retry=RetryPolicy(max_attempts=5, backoff_initial=0.5, jitter=0))
    assert c.post("/api/integration", json={}).json() == {"error_code": "0"}
    assert len(responses.calls) == 5
    assert sleeps == [0.5, 1.0, 2.0, 4.0]  # Retry-After 1 s at attempt 2; back-off counts attempts


@responses.activate
def test_idempotent_post_is_retried_on_timeout(sleeps):
    responses.add(responses.POST, f"{BASE}/oauth/token", body=requests.exceptions.ReadTimeout())
    responses.add(responses.POST, f"{BASE}/oauth/token", status=500)
    responses.add(responses.POST, f"{BASE}/oauth/token", json={"access_token": "t"})
    client(sleeps).post("/oauth/token", data={"grant_type": "client_credentials"}, idempotent=True)
    assert len(responses.calls) == 3


@responses.activate
def test_retry_false_makes_one_attempt(sleeps):
    responses.add(responses.GET, f"{BASE}/a", status=503)
    with pytest.raises(TransientError) as ei:
        client(sleeps).get("/a", retry=False)
    assert ei.value.attempts == 1 and sleeps == []


@responses.activate
def test_transient_error_after_attempts_exhausted(sleeps):
    for _ in range(4):
        responses.add(responses.GET, f"{BASE}/a", body=refused())
    with pytest.raises(TransientError) as ei:
        client(sleeps).get("/a")
    assert ei.value.attempts == 4 and "not sent" in str(ei.value)


@responses.activate
def test_logs_carry_no_bodies_and_no_query_values(sleeps, caplog):
    responses.add(responses.GET, f"{BASE}/search", status=503)
    responses.add(responses.GET, f"{BASE}/search", json={"name": "Trần Văn Hoà"})
    responses.add(responses.POST, f"{BASE}/lookup", json={"x": "036185000123"})
    c = client(sleeps)
    with caplog.at_level(logging.DEBUG, logger="connectors"):
        c.get("/search", params={"SoDinhDanh": "036185000123", "page": 2})
        c.post("/lookup", json={"SoDinhDanh": "036185000123", "HoVaTen": "Trần Văn Hoà"})
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "036185000123" not in text and "Hoà" not in text
    assert "SoDinhDanh=…" in text and "page=2" in text
    assert "503" in text and "attempt 1" in text and "/lookup" in text


def test_redact_target_and_retry_after_parsing():
    assert redact_target("http://h:1/p?SoDinhDanh=1&size=5") == "h:1/p?SoDinhDanh=…&size=5"
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("  ") is None and parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
    assert parse_retry_after("-3") == 0.0


@responses.activate
def test_json_body_protocol_error_without_body(sleeps):
    responses.add(responses.GET, f"{BASE}/a", body="<html>036185000123</html>", status=200)
    r = client(sleeps).get("/a")
    with pytest.raises(ProtocolError) as ei:
        json_body(r)
    assert "036185000123" not in str(ei.value)
