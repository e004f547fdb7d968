"""connectors.onegate.OnegateClient against a stateful fake of the onegate API (``responses``):
keyset paging, the frozen upper bound, ``error_code`` in the body, auth errors, 5xx/429 retries."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import responses

from connectors.http import AuthError, PermanentError, ProtocolError, RetryPolicy, TransientError
from connectors.onegate import (
    DOSSIERS_PATH,
    OnegateAuthError,
    OnegateBusyError,
    OnegateClient,
    OnegateError,
    OnegateRefusedError,
)

BASE = "http://127.0.0.1:8704"
URL = BASE + DOSSIERS_PATH
KEY = "k-3f9a1c0e"
T0 = datetime(2026, 11, 1, 8, 0, 0)
FAST = RetryPolicy(max_attempts=4, backoff_initial=0.01, backoff_max=0.05, jitter=0.0)


def ts(t: datetime) -> str:
    return t.strftime("%Y%m%d%H%M%S")


def rec(i: int, t: datetime, **kw: Any) -> dict[str, Any]:
    r = {
        "MaHoSo": f"000.00.12.H40-261101-{i:04d}",
        "ChuHoSo": "Nguyễn Thị Thuý",
        "SoGiayToChuHoSo": "036185000123",
        "TrangThaiHoSo": 2,
        "NgayCapNhat": ts(t),
    }
    r.update(kw)
    return r


class FakeOnegate:
    """world.md §2: ``tuNgay`` inclusive, ordered by (NgayCapNhat, MaHoSo), keyset cursor = the
    last (NgayCapNhat, MaHoSo) seen, encoded; stable when records change between pages."""

    def __init__(self, records: list[dict[str, Any]], *, ordered: bool = True, max_limit: int = 500):
        self.records = list(records)
        self.ordered = ordered
        self.max_limit = max_limit
        self.requests: list[dict[str, str]] = []
        self.headers: list[dict[str, str]] = []

    def _sorted(self) -> list[dict[str, Any]]:
        rs = sorted(self.records, key=lambda r: (r["NgayCapNhat"], r["MaHoSo"]))
        if not self.ordered:  # a keyset on the code only: times not monotonic
            rs = sorted(self.records, key=lambda r: r["MaHoSo"], reverse=True)
        return rs

    def _key(self, r: dict[str, Any]) -> list[str]:
        return [r["MaHoSo"]] if not self.ordered else [r["NgayCapNhat"], r["MaHoSo"]]

    def _after(self, key: list[str], cursor: list[str]) -> bool:
        return key < cursor if not self.ordered else key > cursor

    def __call__(self, request):
        q = {k: v[0] for k, v in parse_qs(urlsplit(request.url).query, keep_blank_values=True).items()}
        self.requests.append(q)
        self.headers.append(dict(request.headers))
        if request.headers.get("X-API-Key") != KEY:
            return 200, {}, json.dumps({"error_code": "1", "message": "API key không hợp lệ", "data": None})
        limit = min(int(q.get("limit", 100)), self.max_limit)
        rows = [r for r in self._sorted() if r["NgayCapNhat"] >= q["tuNgay"]]
        if q.get("cursor"):  # true keyset: strictly after the last key handed out
            after = q["cursor"].split("|")
            keys = [self._key(r) for r in rows]
            rows = [r for r, k in zip(rows, keys, strict=True) if self._after(k, after)]
        page = rows[:limit]
        nxt = "|".join(self._key(page[-1])) if len(rows) > limit else None
        body = {"error_code": "0", "message": "", "data": page, "next_cursor": nxt}
        return 200, {}, json.dumps(body, ensure_ascii=False)


def client(**kw: Any) -> OnegateClient:
    kw.setdefault("retry", FAST)
    kw.setdefault("sleep", lambda s: None)
    return OnegateClient(BASE, api_key=kw.pop("api_key", KEY), **kw)


@responses.activate
def test_pages_through_keyset_until_next_cursor_is_null():
    recs = [rec(i, T0 + timedelta(minutes=i)) for i in range(23)]
    fake = FakeOnegate(recs)
    responses.add_callback(responses.GET, URL, callback=fake)
    c = client(page_size=5)
    out = c.fetch(T0, T0 + timedelta(days=1))
    assert [r["MaHoSo"] for r in out] == [r["MaHoSo"] for r in recs]
    assert len(fake.requests) == 5
    assert "cursor" not in fake.requests[0]
    assert [q.get("cursor") for q in fake.requests[1:]] == [
        f"{recs[i]['NgayCapNhat']}|{recs[i]['MaHoSo']}" for i in (4, 9, 14, 19)
    ]
    assert all(q["limit"] == "5" for q in fake.requests)
    assert all(h["X-API-Key"] == KEY for h in fake.headers)
    # tuNgay one second early (inclusive or not, the record at T0 is read), then filtered exactly
    assert fake.requests[0]["tuNgay"] == ts(T0 - timedelta(seconds=1))
    assert c.last_stats.requests == 5 and c.last_stats.returned == 23


@responses.activate
def test_window_is_half_open_and_upper_bound_frozen():
    recs = [
        rec(1, T0 - timedelta(seconds=1)),  # before the window (read because of the overlap)
        rec(2, T0),  # at the lower bound: in
        rec(3, T0 + timedelta(hours=1)),
        rec(4, T0 + timedelta(hours=2) - timedelta(seconds=1)),  # last second: in
        rec(5, T0 + timedelta(hours=2)),  # at the upper bound: out
        rec(6, T0 + timedelta(hours=3)),
    ]
    fake = FakeOnegate(recs)
    responses.add_callback(responses.GET, URL, callback=fake)
    c = client(page_size=500)
    out = c.fetch(T0, T0 + timedelta(hours=2))
    assert [r["MaHoSo"][-4:] for r in out] == ["0002", "0003", "0004"]
    assert c.last_stats.before_window == 1 and c.last_stats.after_window == 2


@responses.activate
def test_stops_paging_past_the_upper_bound_when_ordered():
    recs = [rec(i, T0 + timedelta(hours=i)) for i in range(40)]
    fake = FakeOnegate(recs)
    responses.add_callback(responses.GET, URL, callback=fake)
    c = client(page_size=5)
    out = c.fetch(T0, T0 + timedelta(hours=7))
    assert len(out) == 7
    assert len(fake.requests) == 2 and c.last_stats.stopped_early


@responses.activate
def test_reads_to_the_end_when_the_server_order_is_not_by_time():
    recs = [rec(i, T0 + timedelta(hours=i)) for i in range(20)]
    fake = FakeOnegate(recs, ordered=False)
    responses.add_callback(responses.GET, URL, callback=fake)
    c = client(page_size=5)
    out = c.fetch(T0, T0 + timedelta(hours=7))
    assert sorted(r["MaHoSo"] for r in out) == sorted(r["MaHoSo"] for r in recs[:7])
    assert len(fake.requests) == 4 and not c.last_stats.stopped_early


@responses.activate
def test_records_changing_while_paging_are_not_lost():
    """Keyset: a record updated between two pages moves past the frozen bound, nothing shifts."""
    recs = [rec(i, T0 + timedelta(minutes=i)) for i in range(12)]
    fake = FakeOnegate(recs)
    upper = T0 + timedelta(hours=1)
    calls = {"n": 0}

    def mutate_then_answer(request):
        calls["n"] += 1
        if calls["n"] == 2:  # after the first page, two records already read are updated now
            for r in fake.records[:2]:
                r["NgayCapNhat"] = ts(upper + timedelta(minutes=5))
        return fake(request)

    responses.add_callback(responses.GET, URL, callback=mutate_then_answer)
    out = client(page_size=4).fetch(T0, upper)
    assert {r["MaHoSo"] for r in out} == {r["MaHoSo"] for r in recs}


@responses.activate
def test_two_versions_of_one_dossier_keep_the_newest_but_a_shared_code_is_kept():
    v1 = rec(1, T0, NgayTiepNhan="20261101070000", TrangThaiHoSo=2)
    v2 = rec(1, T0 + timedelta(minutes=5), NgayTiepNhan="20261101070000", TrangThaiHoSo=4)
    twin = rec(1, T0 + timedelta(minutes=1), NgayTiepNhan="20261101073000", SoGiayToChuHoSo="040190000001")
    # duplicate_code defect: another dossier with the same code is a different record
    page = {"error_code": "0", "data": [v1, twin, v1, v2], "next_cursor": None}
    responses.add(responses.GET, URL, json=page)
    c = client()
    out = c.fetch(T0, T0 + timedelta(hours=1))
    assert out == [v2, twin] and c.last_stats.duplicates == 2


@responses.activate
def test_unreadable_update_time_is_returned_and_counted():
    page = {
        "error_code": "0",
        "data": [rec(1, T0), rec(2, T0, NgayCapNhat="01/11/2026")],
        "next_cursor": None,
    }
    responses.add(responses.GET, URL, json=page)
    c = client()
    assert len(c.fetch(T0, T0 + timedelta(hours=1))) == 2
    assert c.last_stats.unreadable_time == 1


# ---- errors ---------------------------------------------------------------------------------------------


@responses.activate
def test_error_code_with_http_200_is_an_error_and_not_retried():
    responses.add(responses.GET, URL, json={"error_code": "2", "message": "Tham số tuNgay sai: 036185000123"})
    with pytest.raises(OnegateRefusedError) as ei:
        client().fetch(T0, T0 + timedelta(hours=1))
    assert isinstance(ei.value, PermanentError) and isinstance(ei.value, OnegateError)
    assert ei.value.error_code == "2" and ei.value.status == 200
    assert "036185000123" not in str(ei.value)  # the server's message is never copied
    assert len(responses.calls) == 1


@responses.activate
def test_auth_error_code_is_permanent_auth_error():
    fake = FakeOnegate([rec(1, T0)])
    responses.add_callback(responses.GET, URL, callback=fake)
    with pytest.raises(OnegateAuthError) as ei:
        client(api_key="wrong-key").fetch(T0, T0 + timedelta(hours=1))
    assert isinstance(ei.value, AuthError) and isinstance(ei.value, PermanentError)
    assert "wrong-key" not in str(ei.value)
    assert len(fake.requests) == 1


@responses.activate
def test_http_401_is_auth_error_without_retry():
    responses.add(responses.GET, URL, status=401, json={"error_code": "401", "message": "Unauthorized"})
    with pytest.raises(AuthError):
        client().fetch(T0, T0 + timedelta(hours=1))
    assert len(responses.calls) == 1


@responses.activate
def test_other_4xx_is_not_retried():
    responses.add(responses.GET, URL, status=400, json={"error_code": "400", "message": "bad"})
    with pytest.raises(PermanentError):
        client().fetch(T0, T0 + timedelta(hours=1))
    assert len(responses.calls) == 1


@responses.activate
def test_5xx_and_429_are_retried_honouring_retry_after():
    sleeps: list[float] = []
    responses.add(responses.GET, URL, status=503)
    responses.add(responses.GET, URL, status=429, headers={"Retry-After": "0.03"})
    responses.add(responses.GET, URL, status=502)
    responses.add(responses.GET, URL, json={"error_code": "0", "data": [rec(1, T0)], "next_cursor": None})
    out = client(sleep=sleeps.append).fetch(T0, T0 + timedelta(hours=1))
    assert len(out) == 1 and len(responses.calls) == 4
    assert 0.03 in sleeps


@responses.activate
def test_5xx_gives_up_after_the_attempts_with_a_transient_error():
    responses.add(responses.GET, URL, status=500)
    with pytest.raises(TransientError):
        client().fetch(T0, T0 + timedelta(hours=1))
    assert len(responses.calls) == FAST.max_attempts


@responses.activate
def test_busy_error_code_in_the_body_is_retried():
    sleeps: list[float] = []
    responses.add(responses.GET, URL, json={"error_code": "503", "message": "Hệ thống bận"})
    responses.add(responses.GET, URL, json={"error_code": "0", "data": [rec(1, T0)], "next_cursor": None})
    c = client(sleep=sleeps.append)
    assert len(c.fetch(T0, T0 + timedelta(hours=1))) == 1
    assert len(responses.calls) == 2 and len(sleeps) == 1 and c.last_stats.busy_retries == 1


@responses.activate
def test_busy_error_code_gives_up_as_transient():
    responses.add(responses.GET, URL, json={"error_code": "503", "message": "Hệ thống bận"})
    with pytest.raises(OnegateBusyError) as ei:
        client().fetch(T0, T0 + timedelta(hours=1))
    assert isinstance(ei.value, TransientError)
    assert len(responses.calls) == FAST.max_attempts


@responses.activate
def test_error_codes_are_configurable():
    responses.add(responses.GET, URL, json={"error_code": "E_KEY", "message": "sai khoá"})
    with pytest.raises(OnegateAuthError):
        client(auth_error_codes={"E_KEY"}).fetch(T0, T0 + timedelta(hours=1))


@responses.activate
def test_missing_error_code_or_data_is_a_protocol_error():
    responses.add(responses.GET, URL, json={"data": []})
    with pytest.raises(ProtocolError):
        client().fetch(T0, T0 + timedelta(hours=1))
    responses.replace(responses.GET, URL, json={"error_code": "0", "data": {"x": 1}})
    with pytest.raises(ProtocolError):
        client().fetch(T0, T0 + timedelta(hours=1))
    responses.replace(responses.GET, URL, body="<html>maintenance</html>")
    with pytest.raises(ProtocolError):
        client().fetch(T0, T0 + timedelta(hours=1))


@responses.activate
def test_a_repeated_cursor_is_a_protocol_error_not_an_endless_loop():
    responses.add(responses.GET, URL, json={"error_code": "0", "data": [rec(1, T0)], "next_cursor": "same"})
    with pytest.raises(ProtocolError):
        client(stop_past_upper=False).fetch(T0, T0 + timedelta(hours=1))
    assert len(responses.calls) == 2


@responses.activate
def test_every_request_has_a_timeout():
    seen: list[Any] = []
    import requests

    real = requests.Session.request

    def spy(self, method, url, **kw):
        seen.append(kw.get("timeout"))
        return real(self, method, url, **kw)

    responses.add(responses.GET, URL, json={"error_code": "0", "data": [], "next_cursor": None})
    c = client(timeout=7.0)
    c.http.session.request = spy.__get__(c.http.session)  # type: ignore[method-assign]
    c.fetch(T0, T0 + timedelta(hours=1))
    assert seen == [(5.0, 7.0)]


@responses.activate
def test_no_personal_data_or_key_in_logs(caplog):
    caplog.set_level(logging.DEBUG)
    responses.add(responses.GET, URL, status=503)
    responses.add(responses.GET, URL, json={"error_code": "0", "data": [rec(1, T0)], "next_cursor": None})
    client().fetch(T0, T0 + timedelta(hours=1))
    text = caplog.text
    assert "Nguyễn" not in text and "036185000123" not in text and KEY not in text
    assert "onegate fetch" in text


def test_constructor_checks():
    with pytest.raises(ValueError):
        OnegateClient(BASE, api_key="")
    with pytest.raises(ValueError):
        OnegateClient(BASE, api_key=KEY, page_size=501)
    assert KEY not in repr(OnegateClient(BASE, api_key=KEY))
    with pytest.raises(ValueError):
        client().fetch(T0 + timedelta(days=1), T0)
