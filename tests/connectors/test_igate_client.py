"""connectors.igate.IgateClient: OAuth2 tokens, 401 re-auth, and complete reads of a window
whose records move while it is paged (a stateful fake of the igate server)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import responses

from connectors.http import AuthError, ProtocolError, RetryPolicy
from connectors.igate import IgateClient
from tthc.timeutil import parse_iso_vn

BASE = "http://127.0.0.1:8701"
T0 = datetime(2026, 11, 1, 8, 0, 0)


def iso(t: datetime) -> str:
    return t.isoformat(timespec="seconds") + "+07:00"


def rec(i: int, t: datetime) -> dict[str, Any]:
    return {
        "id": f"id-{i:04d}",
        "code": f"000.00.12.H40-261101-{i:04d}",
        "status": "new",
        "updatedDate": iso(t),
    }


class FakeIgate:
    """The igate contract of world.md §1 as the sandbox implements it: half-open window on
    ``updatedDate``, ordered by (updatedDate, id), offset paging computed at request time."""

    def __init__(self, records: list[dict[str, Any]], *, max_size: int = 1000, token_seconds: int = 300):
        self.records = {r["id"]: dict(r) for r in records}
        self.max_size = max_size
        self.token_seconds = token_seconds
        self.tokens: set[str] = set()
        self.issued = 0
        self.page_requests: list[dict[str, Any]] = []
        self.before_page: dict[int, Callable[[FakeIgate], None]] = {}  # request number -> mutation
        self.reject_next_with_401 = 0

    def touch(self, ids: list[str], when: datetime) -> None:
        for i in ids:
            self.records[i]["updatedDate"] = iso(when)
            self.records[i]["status"] = "processing"

    def ordered(self) -> list[dict[str, Any]]:
        return sorted(self.records.values(), key=lambda r: (parse_iso_vn(r["updatedDate"]), r["id"]))

    # -- callbacks --------------------------------------------------------------------------
    def token(self, request):
        form = parse_qs(request.body)
        if form.get("client_secret") != ["s3cret"] or form.get("grant_type") != ["client_credentials"]:
            return 401, {}, json.dumps({"error": "invalid_client"})
        self.issued += 1
        tok = f"tok-{self.issued}"
        self.tokens.add(tok)
        return (
            200,
            {},
            json.dumps({"access_token": tok, "token_type": "bearer", "expires_in": self.token_seconds}),
        )

    def page(self, request):
        auth = request.headers.get("Authorization", "")
        if self.reject_next_with_401 > 0 or auth.removeprefix("Bearer ") not in self.tokens:
            self.reject_next_with_401 = max(0, self.reject_next_with_401 - 1)
            return 401, {}, json.dumps({"error": "invalid_token"})
        q = {k: v[0] for k, v in parse_qs(urlsplit(request.url).query).items()}
        n = len(self.page_requests)
        self.page_requests.append(q)
        if n in self.before_page:
            self.before_page[n](self)
        lo, hi = parse_iso_vn(q.get("updatedFrom")), parse_iso_vn(q.get("updatedTo"))
        page, size = int(q.get("page", 0)), min(int(q.get("size", 20)), self.max_size)
        rows = [
            r
            for r in self.ordered()
            if (lo is None or parse_iso_vn(r["updatedDate"]) >= lo)
            and (hi is None or parse_iso_vn(r["updatedDate"]) < hi)
        ]
        body = {
            "content": [dict(r) for r in rows[page * size : (page + 1) * size]],
            "totalElements": len(rows),
            "totalPages": -(-len(rows) // size),
            "number": page,
            "size": size,
        }
        return 200, {}, json.dumps(body)

    def register(self, rsps: responses.RequestsMock) -> None:
        rsps.add_callback(responses.POST, f"{BASE}/oauth/token", callback=self.token)
        rsps.add_callback(
            responses.GET, re.compile(re.escape(f"{BASE}/api/v1/dossiers") + r".*"), callback=self.page
        )


@pytest.fixture
def rsps():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as r:
        yield r


def make_client(sleeps, clock=None, **kw) -> IgateClient:
    kw.setdefault("page_size", 10)
    extra = {"clock": clock} if clock is not None else {}
    return IgateClient(
        BASE,
        client_id="src-a",
        client_secret="s3cret",
        sleep=sleeps,
        retry=RetryPolicy(max_attempts=3, jitter=0),
        **extra,
        **kw,
    )


def naive_offset_read(fake: FakeIgate, lo: datetime, hi: datetime, size: int) -> list[str]:
    """What a connector paging by offsets sees (to prove the scenario really shifts records)."""
    ids, page = [], 0
    fake.tokens.add("naive")
    while True:
        req = type("R", (), {})()
        req.headers = {"Authorization": "Bearer naive"}
        req.url = (
            f"{BASE}/api/v1/dossiers?updatedFrom={iso(lo).replace('+', '%2B')}&updatedTo="
            f"{iso(hi).replace('+', '%2B')}&page={page}&size={size}"
        )
        _, _, body = fake.page(req)
        content = json.loads(body)["content"]
        ids += [r["id"] for r in content]
        if len(content) < size:
            return ids
        page += 1


# ---- paging --------------------------------------------------------------------------------------


def test_reads_every_page(rsps, sleeps):
    fake = FakeIgate([rec(i, T0 + timedelta(minutes=i)) for i in range(25)])
    fake.register(rsps)
    out = make_client(sleeps).fetch(T0, T0 + timedelta(days=1))
    assert [r["id"] for r in out] == [f"id-{i:04d}" for i in range(25)]
    assert len(fake.page_requests) == 3
    q = fake.page_requests[0]
    assert q["updatedFrom"] == "2026-11-01T08:00:00+07:00" and q["updatedTo"] == "2026-11-02T08:00:00+07:00"
    assert q["page"] == "0" and q["size"] == "10"


def test_offset_in_url_is_percent_encoded(rsps, sleeps):
    fake = FakeIgate([rec(0, T0)])
    fake.register(rsps)
    make_client(sleeps).fetch(T0, T0 + timedelta(hours=1))
    url = [c.request.url for c in rsps.calls if "/api/v1/dossiers" in c.request.url][0]
    assert "%2B07%3A00" in url and "+07" not in url


def test_window_upper_bound_is_frozen_and_excluded(rsps, sleeps):
    fake = FakeIgate([rec(0, T0), rec(1, T0 + timedelta(hours=1))])
    fake.register(rsps)
    out = make_client(sleeps).fetch(T0, T0 + timedelta(hours=1))
    assert [r["id"] for r in out] == ["id-0000"]
    assert {q["updatedTo"] for q in fake.page_requests} == {"2026-11-01T09:00:00+07:00"}


def scenario_records_leave_the_window() -> tuple[FakeIgate, datetime, datetime]:
    """30 records; after the first page, 3 already-read records are updated 'now' (after the
    frozen upper bound): every unread record shifts 3 places towards the start."""
    fake = FakeIgate([rec(i, T0 + timedelta(minutes=i)) for i in range(30)])
    hi = T0 + timedelta(hours=2)
    fake.before_page[1] = lambda f: f.touch(["id-0001", "id-0004", "id-0007"], hi + timedelta(minutes=5))
    return fake, T0, hi


def test_shift_proof_naive_paging_loses_records():
    fake, lo, hi = scenario_records_leave_the_window()
    ids = naive_offset_read(fake, lo, hi, 10)
    assert len(ids) == 27 and len(set(ids)) == 27  # 3 records lost: the scenario really shifts


def test_shift_records_leaving_the_window_nothing_lost_or_duplicated(rsps, sleeps):
    fake, lo, hi = scenario_records_leave_the_window()
    fake.register(rsps)
    client = make_client(sleeps)
    out = client.fetch(lo, hi)
    ids = [r["id"] for r in out]
    assert len(ids) == len(set(ids)) == 30
    assert set(ids) == {f"id-{i:04d}" for i in range(30)}
    # the touched ones were read before they changed: old version now, the new one next run
    assert {r["status"] for r in out if r["id"] in ("id-0001", "id-0004", "id-0007")} == {"new"}


def test_shift_records_moving_inside_the_window_newest_version_once(rsps, sleeps):
    """Records already read are updated to a time still inside the window: offsets move the other
    way (naive paging repeats records); we return each id once, in its newest version."""
    fake = FakeIgate([rec(i, T0 + timedelta(minutes=i)) for i in range(30)])
    hi = T0 + timedelta(days=1)
    moved = ["id-0000", "id-0002", "id-0003", "id-0012"]
    fake.before_page[1] = lambda f: f.touch(moved, T0 + timedelta(hours=3))
    fake.register(rsps)
    out = make_client(sleeps).fetch(T0, hi)
    ids = [r["id"] for r in out]
    assert len(ids) == len(set(ids)) == 30
    by_id = {r["id"]: r for r in out}
    assert all(by_id[i]["status"] == "processing" for i in moved)
    assert ids[-4:] == sorted(moved)  # ordered by updatedDate, ties by id


def test_shift_on_every_page(rsps, sleeps):
    """A source under constant change: before every page request another unread-or-read record
    moves out of the window; still complete for everything that stayed in it."""
    fake = FakeIgate([rec(i, T0 + timedelta(seconds=10 * i)) for i in range(100)])
    hi = T0 + timedelta(hours=1)
    victims = iter(f"id-{i:04d}" for i in range(0, 100, 7))
    touched: list[str] = []

    def move(f: FakeIgate) -> None:
        v = next(victims)
        touched.append(v)
        f.touch([v], hi + timedelta(minutes=1))

    for n in range(1, 30):
        fake.before_page[n] = move
    fake.register(rsps)
    out = make_client(sleeps).fetch(T0, hi)
    ids = [r["id"] for r in out]
    assert len(ids) == len(set(ids))
    stayed = {f"id-{i:04d}" for i in range(100)} - set(touched)
    assert stayed <= set(ids)  # nothing that stayed in the window was lost


def test_dense_instant_more_records_than_a_page(rsps, sleeps):
    """25 records updated in the same second with page size 10: the cursor cannot move, the
    slice is read by offset with a consistency check."""
    same = T0 + timedelta(minutes=5)
    records = [rec(i, same) for i in range(25)] + [
        rec(100 + i, T0 + timedelta(minutes=10 + i)) for i in range(5)
    ]
    fake = FakeIgate(records)
    fake.register(rsps)
    client = make_client(sleeps)
    out = client.fetch(T0, T0 + timedelta(hours=1))
    assert len(out) == len({r["id"] for r in out}) == 30
    assert client.last_stats.dense_slices == 1


def test_dense_slice_reread_when_records_move_during_it(rsps, sleeps):
    same = T0 + timedelta(minutes=5)
    fake = FakeIgate([rec(i, same) for i in range(1500)], max_size=1000)
    hi = T0 + timedelta(hours=1)
    fake.register(rsps)
    client = make_client(sleeps, page_size=1000)
    # request 0: first page (cursor moves to `same`); 1: full page that cannot move the cursor;
    # 2: slice page 0; 3: slice page 1, after a record left the window -> the slice is re-read
    fake.before_page[3] = lambda f: f.touch(["id-0003"], hi + timedelta(minutes=1))
    out = client.fetch(T0, hi)
    ids = {r["id"] for r in out}
    assert len(out) == len(ids) == 1500  # id-0003 read in its old version before it left
    assert client.last_stats.slice_rereads == 1


def test_server_capping_page_size(rsps, sleeps):
    fake = FakeIgate([rec(i, T0 + timedelta(minutes=i)) for i in range(23)], max_size=5)
    fake.register(rsps)
    out = make_client(sleeps, page_size=10).fetch(T0, T0 + timedelta(hours=1))
    assert len(out) == 23


def test_empty_window(rsps, sleeps):
    fake = FakeIgate([])
    fake.register(rsps)
    assert make_client(sleeps).fetch(T0, T0 + timedelta(hours=1)) == []


def test_inverted_window_refused(sleeps):
    with pytest.raises(ValueError):
        make_client(sleeps).fetch(T0, T0 - timedelta(seconds=1))


# ---- tokens --------------------------------------------------------------------------------------


def test_token_reused_then_refreshed_on_expiry(rsps, sleeps, clock):
    fake = FakeIgate([rec(i, T0 + timedelta(minutes=i)) for i in range(25)], token_seconds=300)
    fake.register(rsps)
    client = make_client(sleeps, clock)
    client.fetch(T0, T0 + timedelta(hours=1))
    assert fake.issued == 1  # one token for three pages
    clock.advance(200)
    client.fetch(T0, T0 + timedelta(hours=1))
    assert fake.issued == 1
    clock.advance(80)  # 280 s: within the safety margin before expiry (300 s)
    client.fetch(T0, T0 + timedelta(hours=1))
    assert fake.issued == 2


def test_401_reauthenticates_once_and_repeats(rsps, sleeps):
    fake = FakeIgate([rec(i, T0 + timedelta(minutes=i)) for i in range(5)])
    fake.register(rsps)
    client = make_client(sleeps)
    client.fetch(T0, T0 + timedelta(hours=1))
    fake.tokens.clear()  # the server forgot / revoked every token
    out = client.fetch(T0, T0 + timedelta(hours=1))
    assert len(out) == 5 and fake.issued == 2


def test_401_twice_is_an_auth_error(rsps, sleeps):
    fake = FakeIgate([rec(0, T0)])
    fake.reject_next_with_401 = 2
    fake.register(rsps)
    with pytest.raises(AuthError) as ei:
        make_client(sleeps).fetch(T0, T0 + timedelta(hours=1))
    assert ei.value.status == 401 and fake.issued == 2


def test_bad_credentials_not_retried(rsps, sleeps):
    fake = FakeIgate([rec(0, T0)])
    fake.register(rsps)
    client = IgateClient(BASE, client_id="src-a", client_secret="wrong", sleep=sleeps)
    with pytest.raises(AuthError) as ei:
        client.fetch(T0, T0 + timedelta(hours=1))
    assert "wrong" not in str(ei.value)
    assert len(rsps.calls) == 1 and sleeps == []


def test_credentials_required():
    with pytest.raises(ValueError):
        IgateClient(BASE, client_id="", client_secret="x")


def test_timeout_parameter(rsps, sleeps):
    fake = FakeIgate([rec(0, T0)])
    fake.register(rsps)
    make_client(sleeps, timeout=12).fetch(T0, T0 + timedelta(hours=1))
    assert {c.request.req_kwargs["timeout"] for c in rsps.calls} == {(5.0, 12)}


def test_transient_page_errors_are_retried(rsps, sleeps):
    fake = FakeIgate([rec(i, T0 + timedelta(minutes=i)) for i in range(5)])
    rsps.add(responses.GET, re.compile(re.escape(f"{BASE}/api/v1/dossiers") + r".*"), status=502)
    rsps.add(
        responses.GET,
        re.compile(re.escape(f"{BASE}/api/v1/dossiers") + r".*"),
        status=429,
        headers={"Retry-After": "2"},
    )
    fake.register(rsps)
    out = make_client(sleeps).fetch(T0, T0 + timedelta(hours=1))
    assert len(out) == 5 and sleeps == [0.5, 2.0]


def test_iter_dossiers_maps(rsps, sleeps):
    fake = FakeIgate([rec(0, T0)])
    fake.register(rsps)
    [d] = list(make_client(sleeps).iter_dossiers("src-a", T0, T0 + timedelta(hours=1)))
    assert d.source_id == "src-a" and d.status == 2 and d.updated_at == T0


def test_dense_slice_with_server_capped_page_size(rsps, sleeps):
    same = T0 + timedelta(minutes=5)
    fake = FakeIgate([rec(i, same) for i in range(12)], max_size=5)
    fake.register(rsps)
    client = make_client(sleeps, page_size=10)
    out = client.fetch(T0, T0 + timedelta(hours=1))
    assert len(out) == len({r["id"] for r in out}) == 12
    assert client.last_stats.dense_slices == 1


def test_dense_instant_at_the_lower_bound_stays_inside_the_window(rsps, sleeps):
    before = [rec(900 + i, T0 - timedelta(seconds=1)) for i in range(3)]
    fake = FakeIgate(before + [rec(i, T0) for i in range(15)])
    fake.register(rsps)
    out = make_client(sleeps).fetch(T0, T0 + timedelta(hours=1))
    assert {r["id"] for r in out} == {f"id-{i:04d}" for i in range(15)}
    assert all(q["updatedFrom"] >= "2026-11-01T08:00:00+07:00" for q in fake.page_requests)


def test_server_ignoring_updated_from_is_detected(rsps, sleeps):
    fake = FakeIgate([rec(i, T0 + timedelta(minutes=i)) for i in range(25)])
    fake.register(rsps)
    original = fake.page

    def ignore_filter(request):
        request.url = re.sub(r"updatedFrom=[^&]*&?", "", request.url)
        return original(request)

    pattern = re.compile(re.escape(f"{BASE}/api/v1/dossiers") + r".*")
    rsps.remove(responses.GET, pattern)
    rsps.add_callback(responses.GET, pattern, ignore_filter)
    with pytest.raises(ProtocolError, match="ignored updatedFrom"):
        make_client(sleeps).fetch(T0 + timedelta(minutes=3), T0 + timedelta(hours=1))
