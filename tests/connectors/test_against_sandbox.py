"""The connectors against the in-process sandbox simulators, with faults on: what the unit tests
prove with mocks, end to end over real sockets (5xx, 429, resets, time-outs, lost commits)."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import fields
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from connectors.http import RetryPolicy, Timeouts
from connectors.igate import IgateClient, to_dossier
from connectors.lgsp import LgspClient, LgspIdentity, LookupQuery, PollPolicy
from connectors.portal import PortalClient, progress_identity, to_portal_payload

sandbox_server = pytest.importorskip("sandbox.server")
pytest.importorskip("sandbox.world")

from sandbox.faults import FaultProfile  # noqa: E402
from sandbox.server import SandboxConfig, running_sandbox  # noqa: E402

FAST_RETRY = RetryPolicy(
    max_attempts=8, backoff_initial=0.01, backoff_max=0.05, jitter=0.01, retry_after_cap=0.05
)
SHORT = Timeouts(connect=2.0, read=0.4)


def noop_sleep(_: float) -> None:
    pass


# ---- igate -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def igate_sandbox(tmp_path_factory) -> Iterator[Any]:
    faults = FaultProfile(seed=3, error_5xx=0.15, rate_429=0.1, reset=0.08, timeout=0.04, timeout_seconds=1.0)
    cfg = SandboxConfig.for_tests(
        tmp_path_factory.mktemp("igate"), simulators=("igate",), faults={"igate": faults}
    )
    with running_sandbox(cfg) as sb:
        yield sb


def igate_client(sb: Any, **kw: Any) -> tuple[IgateClient, dict[str, Any]]:
    src = sb.igate_sources[0]
    client = IgateClient(
        sb.urls["igate"],
        client_id=src["client_id"],
        client_secret=src["client_secret"],
        timeouts=SHORT,
        retry=FAST_RETRY,
        sleep=noop_sleep,
        **kw,
    )
    return client, src


def visible(sb: Any, source_id: str) -> list[Any]:
    with sb.holder.lock:
        w = sb.world
        return [r for r in w.records(source_id) if r.visible_at <= w.now]


def test_igate_full_window_under_faults_maps_exactly(igate_sandbox):
    sb = igate_sandbox
    client, src = igate_client(sb, page_size=50)
    with sb.holder.lock:
        now = sb.world.now
    raw = client.fetch(datetime(2000, 1, 1), now)
    truth = visible(sb, src["source_id"])
    assert len(raw) == len({r["id"] for r in raw}) == len(truth)
    got = {(d.dossier_code, d.updated_at): d for d in (to_dossier(r, src["source_id"]) for r in raw)}
    for rec in truth:
        d = rec.dossier
        back = got[(d.dossier_code, d.updated_at)]
        for f in fields(d):
            if f.name in ("source_record_id", "paid_online"):
                continue  # igate ids are uuids of their own; the dialect cannot tell paid 1 from 2
            assert getattr(back, f.name) == getattr(d, f.name), f.name
        assert back.paid_online == (1 if d.paid_online in (1, 2) else 0)
    injected = requests.get(f"{sb.urls['igate']}/_sandbox/state", timeout=5).json()["faults"]["injected"]
    assert sum(injected.values()) > 0  # the faults really happened


def test_igate_records_changing_while_paging(igate_sandbox):
    """After the second page the sandbox updates the 7 oldest records (they move to the end, out of
    the frozen window): offset paging would skip 7 records; the connector loses none."""
    sb = igate_sandbox
    requests.post(f"{sb.urls['igate']}/_sandbox/reset", timeout=5)
    client, src = igate_client(sb, page_size=40)
    with sb.holder.lock:
        now = sb.world.now
    pages = {"n": 0}

    def touch_after_second_page(response, *args, **kwargs):
        if "/api/v1/dossiers" in response.url and response.status_code == 200:
            pages["n"] += 1
            if pages["n"] == 2:
                r = requests.post(
                    f"{sb.urls['igate']}/_sandbox/touch",
                    json={"source_id": src["source_id"], "count": 7},
                    timeout=5,
                )
                assert r.json()["touched"] == 7

    before = {r.dossier.dossier_code for r in visible(sb, src["source_id"])}
    client.http.session.hooks["response"].append(touch_after_second_page)
    raw = client.fetch(datetime(2000, 1, 1), now)
    codes = [r["code"] for r in raw]
    ids = [r["id"] for r in raw]
    assert len(ids) == len(set(ids))
    assert set(codes) == before  # nothing lost (duplicate_code pairs share a code, not an id)
    assert pages["n"] >= 3


# ---- population (LGSP) ---------------------------------------------------------------------------------

CITIZENS = [
    ("036185000123", "Nguyễn", "Thị", "Thuý", "1985-03-04", "2", "036", ""),
    ("001090001234", "Trần", "Văn", "Hoà", "1990", "1", "001", "012345678"),
] + [(f"079201{i:06d}", "Lê", "", "Minh", "2001-12-31", "1", "079", "") for i in range(1200)]


@pytest.fixture(scope="module")
def population_sandbox(tmp_path_factory) -> Iterator[Any]:
    tmp = tmp_path_factory.mktemp("population")
    path = Path(tmp) / "citizens.csv"
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["SoDinhDanh", "Ho", "ChuDem", "Ten", "NgaySinh", "GioiTinh", "MaTinhKhaiSinh", "SoCMND"])
        w.writerows(CITIZENS)
    faults = FaultProfile(seed=5, error_5xx=0.1, rate_429=0.1, reset=0.05, job_error=0.3, timeout_seconds=1.0)
    cfg = SandboxConfig.for_tests(
        tmp,
        simulators=("population",),
        citizens_csv=path,
        faults={"population": faults},
        bulk_delay_seconds=0.05,
        rate_limit_per_second=200,
    )
    with running_sandbox(cfg) as sb:
        yield sb


def lgsp_client(sb: Any, events: list) -> LgspClient:
    return LgspClient(
        sb.urls["population"],
        LgspIdentity("DVC-TTHC-DONGBO", "TTHC-SYNC", "he-thong-dong-bo", purpose="kiểm thử"),
        on_request=lambda *a: events.append(a),
        timeouts=SHORT,
        retry=FAST_RETRY,
        poll=PollPolicy(initial=0.02, max_interval=0.1, max_polls=100),
        max_job_resubmits=5,
    )


def test_population_lookups_under_faults(population_sandbox):
    events: list = []
    c = lgsp_client(population_sandbox, events)
    thuy = c.lookup(LookupQuery("036185000123", "Nguyễn Thị Thuý", "1985-03-04"))
    assert thuy is not None and (thuy.ho, thuy.chu_dem, thuy.ten, thuy.birth_date, thuy.sex) == (
        "Nguyễn",
        "Thị",
        "Thuý",
        "1985-03-04",
        2,
    )
    hoa = c.lookup("012345678")  # the old CMND finds the person
    assert hoa is not None and hoa.id_number == "001090001234" and hoa.birth_date == "1990"
    assert c.lookup("001099999999") is None
    assert [e[3] for e in events] == ["found", "found", "not_found"]


def test_population_bulk_more_than_1000_with_failing_jobs(population_sandbox):
    sb = population_sandbox
    events: list = []
    c = lgsp_client(sb, events)
    numbers = [row[0] for row in CITIZENS] + ["001099999999", "036185000123"]
    out = c.lookup_many(numbers)
    assert len(out) == len(CITIZENS) + 1
    assert out["001099999999"].status == "not_found"
    assert all(out[n].found for n, *_ in CITIZENS)
    assert out["001090001234"].person.cmnd == "012345678"
    state = requests.get(f"{sb.urls['population']}/_sandbox/state", timeout=5).json()
    sizes = sorted(j["size"] for j in state["jobs"])
    assert max(sizes) <= 1000
    # every request id we audited is in the LGSP's audit log; nothing personal in ours
    logged = {a["MaYeuCau"] for a in state["audit"]}
    assert {e.request_id for e in c.audit_log} <= logged
    assert all(
        a["MaCanBo"] == "he-thong-dong-bo" for a in state["audit"] if a["endpoint"] == "YeuCauDanhSach"
    )
    assert "036185000123" not in repr(c.audit_log) + repr(events)


# ---- portal ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def world_dossiers(tmp_path_factory) -> list[Any]:
    from sandbox.world import World, WorldConfig

    w = World(WorldConfig(seed=42, size=150))
    latest: dict[str, Any] = {}
    for s in w.sources:
        for r in w.records(s.source_id):
            d = r.dossier
            if d.dossier_code and d.status is not None and "duplicate_code" not in r.defects:
                latest[d.dossier_code] = d
    return list(latest.values())


@pytest.fixture
def portal_sandbox(tmp_path) -> Iterator[Any]:
    faults = FaultProfile(
        seed=11, commit_lost=0.2, error_5xx=0.1, rate_429=0.05, reset=0.05, timeout_seconds=1.0
    )
    cfg = SandboxConfig.for_tests(tmp_path, simulators=("portal",), faults={"portal": faults})
    with running_sandbox(cfg) as sb:
        yield sb


def portal_client(sb: Any) -> PortalClient:
    cred = sb.portal_credentials
    return PortalClient(
        sb.urls["portal"],
        username=cred["username"],
        password=cred["password"],
        timeouts=SHORT,
        retry=FAST_RETRY,
        sleep=noop_sleep,
        max_ambiguous_rounds=6,
    )


def test_portal_publish_and_progress_exactly_once_under_lost_commits(portal_sandbox, world_dossiers):
    sb = portal_sandbox
    client = portal_client(sb)
    payloads = [to_portal_payload(d) for d in world_dossiers]
    assert len(payloads) > 100
    results = client.publish(payloads)
    assert [r.ma_ho_so for r in results] == [p["MaHoSo"] for p in payloads]
    rejected = [r for r in results if not r.ok and not r.ambiguous and not r.retryable]
    assert rejected == []  # the simulator accepts every payload we build
    assert all(r.ok for r in results), [r for r in results if not r.ok][:3]

    # publish again: everything exists now ("-3" → update)
    again = client.publish(payloads[:30])
    assert all(r.ok and r.action in ("updated", "verified") for r in again)

    # the session expires in the middle: the client logs in again
    requests.post(f"{sb.urls['portal']}/_sandbox/expire_sessions", timeout=5)
    entries = [
        {
            "MaHoSo": p["MaHoSo"],
            "NguoiXuLy": "Cán bộ một cửa",
            "ChucDanh": "Chuyên viên",
            "ThoiDiemXuLy": p["NgayTiepNhan"],
            "PhongBanXuLy": "Một cửa",
            "NoiDungXuLy": f"Tiếp nhận {i}",
            "TrangThai": 2,
            "NgayBatDau": p["NgayTiepNhan"],
            "NgayKetThucTheoQuyDinh": p["NgayHenTra"],
        }
        for p in payloads[:12]
        for i in range(3)
    ]
    pr = client.push_progress(entries, madonvi=payloads[0]["DonViXuLy"])
    assert all(r.ok for r in pr), [r for r in pr if not r.ok][:3]
    assert client.sessions_opened >= 2

    state = requests.get(f"{sb.urls['portal']}/_sandbox/state", timeout=5).json()
    held = state["dossiers"]
    assert set(held) == {p["MaHoSo"] for p in payloads}
    for p in payloads:
        assert held[p["MaHoSo"]]["record"] == p
    counts = {progress_identity(x["entry"]): x["count"] for h in held.values() for x in h["progress"]}
    assert {progress_identity(e) for e in entries} == set(counts)
    assert set(counts.values()) == {1}  # exactly once, although answers were lost
    injected = state["faults"]["injected"]
    assert injected.get("commit_lost", 0) > 0
    # dossiers are resent after a lost answer; progress is read back first (TraCuuHoSo)
    assert state["requests"].get("TraCuuHoSo", 0) > 0
    assert sum(h["progress_received"] for h in held.values()) == len(entries)


def test_portal_lookups_from_threads_share_one_session_and_renew_it_once(tmp_path, world_dossiers):
    """The read-back runs look-ups in threads over one client: one login for all of them, and
    when the portal ends the session, one new login (not one per thread that met the "-1")."""
    from concurrent.futures import ThreadPoolExecutor

    cfg = SandboxConfig.for_tests(tmp_path, simulators=("portal",))
    with running_sandbox(cfg) as sb:
        client = portal_client(sb)
        payloads = [to_portal_payload(d) for d in world_dossiers[:60]]
        assert all(r.ok for r in client.publish(payloads))
        codes = [p["MaHoSo"] for p in payloads]
        with ThreadPoolExecutor(8) as pool:
            found = list(pool.map(client.lookup, codes))
        assert [f["HoSo"] for f in found] == payloads
        requests.post(f"{sb.urls['portal']}/_sandbox/expire_sessions", timeout=5)
        with ThreadPoolExecutor(8) as pool:
            again = list(pool.map(client.lookup, codes))
        assert again == found
        state = requests.get(f"{sb.urls['portal']}/_sandbox/state", timeout=5).json()
    assert client.sessions_opened == 2 == state["sessions_issued"]
