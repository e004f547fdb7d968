"""Contract of the igate one-stop-system simulator, world.md §1, over real HTTP."""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta

import pytest
import requests

from sandbox.igate import render_igate
from sandbox.world import SourceRecord, World
from tthc.model import Attachment, Dossier, Supplement
from tthc.timeutil import parse_iso_vn

T0 = datetime(2026, 11, 2, 8, 0)


# ---- helpers -------------------------------------------------------------------------------------
class Igate:
    """A tiny test client (not the product's connector)."""

    def __init__(self, sb, source: dict | None = None) -> None:
        self.url = sb.urls["igate"]
        self.source = source or sb.igate_sources[0]
        self.token = self.get_token()

    def get_token(self) -> str:
        r = requests.post(
            f"{self.url}/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": self.source["client_id"],
                "client_secret": self.source["client_secret"],
            },
            timeout=5,
        )
        assert r.status_code == 200, r.text
        return r.json()["access_token"]

    def get(self, timeout: float = 5.0, **params) -> requests.Response:
        return requests.get(
            f"{self.url}/api/v1/dossiers",
            params=params,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=timeout,
        )

    def page(self, **params) -> dict:
        r = self.get(**params)
        assert r.status_code == 200, r.text
        return r.json()

    def all(self, size: int = 50, **params) -> list[dict]:
        out, page = [], 0
        while True:
            body = self.page(page=page, size=size, **params)
            out.extend(body["content"])
            page += 1
            if page >= body["totalPages"]:
                return out

    def control(self, path: str, **body) -> dict:
        r = requests.post(f"{self.url}/_sandbox/{path}", json=body, timeout=5)
        assert r.status_code == 200, r.text
        return r.json()


def rec(code: str, updated: datetime, visible: datetime | None = None, *, source="igate_a", rid=None, **kw):
    d = Dossier(
        source_id=source,
        dossier_code=code,
        agency_code="000.00.12.H40",
        procedure_code="1.001193",
        received_at=kw.pop("received_at", updated - timedelta(hours=1)),
        updated_at=updated,
        status=kw.pop("status", 4),
        source_record_id=rid or str(uuid.uuid5(uuid.NAMESPACE_URL, f"{source}/{code}")),
        agency_name="UBND xã Hưng Lộc",
        procedure_name="Đăng ký khai sinh",
        sector_code="G12-LV05",
        sector_name="Hộ tịch",
        applicant_name="Nguyễn Thị Thuý",
        applicant_id_number="040185000123",
        applicant_id_type=1,
        applicant_birth_date=kw.pop("birth", "1985-03-04"),
        applicant_sex=2,
        applicant_phone="0912345678",
        **kw,
    )
    return SourceRecord(dossier=d, visible_at=visible or updated)


@pytest.fixture
def gen_sb(sandbox_factory):
    """A generated world (seed 42, 120 dossiers) behind the igate simulator."""
    return sandbox_factory(simulators=("igate",))


# ---- auth ----------------------------------------------------------------------------------------
def test_token_ok_and_errors(gen_sb):
    url, src = gen_sb.urls["igate"], gen_sb.igate_sources[0]
    good = {
        "grant_type": "client_credentials",
        "client_id": src["client_id"],
        "client_secret": src["client_secret"],
    }
    r = requests.post(f"{url}/oauth/token", data=good, timeout=5)
    assert r.status_code == 200
    body = r.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 300 and body["access_token"]
    r = requests.post(f"{url}/oauth/token", data=dict(good, client_secret="wrong"), timeout=5)
    assert (r.status_code, r.json()["error"]) == (401, "invalid_client")
    r = requests.post(f"{url}/oauth/token", data=dict(good, client_id="nobody"), timeout=5)
    assert r.status_code == 401
    r = requests.post(f"{url}/oauth/token", data=dict(good, grant_type="password"), timeout=5)
    assert (r.status_code, r.json()["error"]) == (400, "unsupported_grant_type")
    # client credentials in HTTP Basic are accepted too (RFC 6749 §2.3.1)
    r = requests.post(
        f"{url}/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(src["client_id"], src["client_secret"]),
        timeout=5,
    )
    assert r.status_code == 200


def test_unauthorised_and_expired_tokens(sandbox_factory):
    sb = sandbox_factory(simulators=("igate",), token_seconds=1.0)
    cli = Igate(sb)
    assert cli.get(size=1).status_code == 200
    r = requests.get(f"{cli.url}/api/v1/dossiers", timeout=5)
    assert r.status_code == 401 and r.json()["error"] == "invalid_token"
    assert "Bearer" in r.headers["WWW-Authenticate"]
    r = requests.get(f"{cli.url}/api/v1/dossiers", headers={"Authorization": "Bearer forged"}, timeout=5)
    assert r.status_code == 401
    time.sleep(1.05)
    r = cli.get(size=1)
    assert r.status_code == 401 and "expired" in r.json()["error_description"]
    cli.token = cli.get_token()
    assert cli.get(size=1).status_code == 200
    cli.control("expire_tokens")
    assert cli.get(size=1).status_code == 401


# ---- paging --------------------------------------------------------------------------------------
def test_page_through_everything_in_order(gen_sb):
    cli = Igate(gen_sb)
    world = gen_sb.world
    expected_ids = {r.dossier.source_record_id for r in world.records(cli.source["source_id"])}
    first = cli.page(page=0, size=50)
    assert set(first) >= {"content", "totalElements", "totalPages", "number", "size"}
    assert (first["number"], first["size"], first["totalElements"]) == (0, 50, len(expected_ids))
    assert first["totalPages"] == -(-len(expected_ids) // 50)
    got = cli.all(size=50)
    ids = [r["id"] for r in got]
    assert len(ids) == len(set(ids)) == len(expected_ids) and set(ids) == expected_ids
    stamps = [parse_iso_vn(r["updatedDate"]) for r in got]
    assert stamps == sorted(stamps)
    beyond = cli.page(page=first["totalPages"], size=50)
    assert beyond["content"] == [] and beyond["number"] == first["totalPages"]


def test_bad_parameters_are_400(gen_sb):
    cli = Igate(gen_sb)
    for params in ({"size": 0}, {"size": 1001}, {"page": -1}, {"page": "x"}, {"updatedFrom": "yesterday"}):
        r = cli.get(**params)
        assert r.status_code == 400, params
        assert set(r.json()) >= {"timestamp", "status", "error", "message", "path"}
    assert cli.get(size=1000).status_code == 200
    # a raw "+" in the query decodes to a space, as on the real server: the client must encode it
    r = requests.get(
        f"{cli.url}/api/v1/dossiers?updatedFrom=2026-11-01T00:00:00+07:00",
        headers={"Authorization": f"Bearer {cli.token}"},
        timeout=5,
    )
    assert r.status_code == 400
    assert cli.get(updatedFrom="2026-11-01T00:00:00+07:00").status_code == 200  # requests encodes it


def test_window_is_half_open_and_offsets_convert(gen_sb):
    cli = Igate(gen_sb)
    everything = cli.all(size=200)
    pivot = everything[len(everything) // 2]
    t = pivot["updatedDate"]
    upto = cli.all(size=200, updatedTo=t)
    since = cli.all(size=200, updatedFrom=t)
    assert pivot["id"] not in {r["id"] for r in upto}
    assert pivot["id"] in {r["id"] for r in since}
    assert len(upto) + len(since) == len(everything)
    # the same instant written in UTC selects the same records
    utc = (parse_iso_vn(t) - timedelta(hours=7)).isoformat() + "+00:00"
    assert [r["id"] for r in cli.all(size=200, updatedFrom=utc)] == [r["id"] for r in since]


def test_records_render_like_render_igate(gen_sb):
    cli = Igate(gen_sb)
    by_id = {r.dossier.source_record_id: r.dossier for r in gen_sb.world.records(cli.source["source_id"])}
    for item in cli.all(size=200):
        assert item == render_igate(by_id[item["id"]])


def test_render_igate_shape():
    d = rec(
        "000.00.12.H40-261102-0001",
        T0,
        channel=3,
        paid_online=2,
        fee=50000,
        result_type="paper",
        due_at=T0 + timedelta(days=5),
        supplements=[Supplement(T0 + timedelta(days=1), None)],
        attachments=[Attachment("Tờ khai", digitized=True)],
        birth="1985",
    ).dossier
    out = render_igate(d)
    assert out["id"] == d.source_record_id and out["code"] == d.dossier_code
    assert out["applyMethod"] == {"id": 2}
    assert out["status"] == "processing"
    assert out["paidOnline"] is True
    assert out["acceptedDate"] == "2026-11-02T07:00:00+07:00"
    assert out["appointmentDate"] == "2026-11-07T08:00:00+07:00"
    assert out["completedDate"] is None and out["returnedDate"] is None
    assert out["applicant"] == {
        "fullname": "Nguyễn Thị Thuý",
        "identityNumber": "040185000123",
        "birthDate": "1985",
        "gender": 2,
        "phone": "0912345678",
        "email": None,
        "type": 1,
    }
    assert out["procedure"] == {
        "code": "1.001193",
        "name": "Đăng ký khai sinh",
        "sector": {"code": "G12-LV05", "name": "Hộ tịch"},
        "fee": 50000,
        "resultType": "paper",
    }
    assert out["supplements"] == [{"requestedDate": "2026-11-03T08:00:00+07:00", "completedDate": None}]
    assert out["attachments"] == [{"name": "Tờ khai", "digitized": True, "reused": False}]
    assert out["vneidVerified"] is False and out["updatedDate"] == "2026-11-02T08:00:00+07:00"
    # unknown vendor status travels as the raw string; direct channel is id 0
    raw = rec("X-261102-0002", T0, status=None, status_raw="archived", channel=1).dossier
    assert render_igate(raw)["status"] == "archived" and render_igate(raw)["applyMethod"] == {"id": 0}
    # without a source id: a stable uuid from source + code
    anon = rec("X-261102-0003", T0, rid=None).dossier
    anon.source_record_id = None
    assert render_igate(anon)["id"] == render_igate(anon)["id"] == str(uuid.UUID(render_igate(anon)["id"]))


# ---- world, clock, tenants -----------------------------------------------------------------------
def test_late_update_becomes_visible_with_a_past_update_time(sandbox_factory):
    rid = str(uuid.uuid4())
    v0 = rec("L-261102-0001", T0, rid=rid, status=2)
    v1 = rec("L-261102-0001", T0 + timedelta(hours=5), T0 + timedelta(days=2), rid=rid, status=4)  # late
    other = rec("L-261102-0002", T0 + timedelta(hours=1))
    world = World.from_records([v0, v1, other], now=T0 + timedelta(days=1))
    sb = sandbox_factory(simulators=("igate",), world=world)
    cli = Igate(sb)
    window = {
        "updatedFrom": (T0 + timedelta(hours=2)).isoformat(),
        "updatedTo": (T0 + timedelta(days=1)).isoformat(),
    }
    assert cli.page(**window)["content"] == []  # the change happened at T0+5h but nobody sees it yet
    assert [r["status"] for r in cli.all()] == ["new", "processing"]
    now = cli.control("clock", days=1, hours=1)["now"]
    assert now == (T0 + timedelta(days=2, hours=1)).isoformat()
    late = cli.page(**window)["content"]
    assert [(r["id"], r["status"], r["updatedDate"]) for r in late] == [
        (rid, "processing", "2026-11-02T13:00:00+07:00")
    ]
    assert requests.get(f"{cli.url}/_sandbox/clock", timeout=5).json()["now"] == now


def test_clock_brings_new_arrivals(gen_sb):
    cli = Igate(gen_sb)
    before = cli.page(size=1)["totalElements"]
    cli.control("clock", days=10)
    assert cli.page(size=1)["totalElements"] > before
    assert requests.post(f"{cli.url}/_sandbox/clock", json={"days": -1}, timeout=5).status_code == 400
    requests.post(f"{cli.url}/_sandbox/reset", timeout=5)  # clock back to the anchor, tokens dropped
    assert cli.get(size=1).status_code == 401
    cli.token = cli.get_token()
    assert cli.page(size=1)["totalElements"] == before


def test_client_id_selects_the_tenant(sandbox_factory):
    world = World.from_records(
        [
            rec("A-261102-0001", T0, source="igate_a"),
            rec("B-261102-0001", T0, source="igate_b"),
            rec("B-261102-0002", T0, source="igate_b"),
        ]
    )
    sb = sandbox_factory(simulators=("igate",), world=world)
    sources = {s["source_id"]: s for s in sb.igate_sources}
    assert set(sources) == {"igate_a", "igate_b"}
    a = Igate(sb, sources["igate_a"])
    b = Igate(sb, sources["igate_b"])
    assert [r["code"] for r in a.all()] == ["A-261102-0001"]
    assert sorted(r["code"] for r in b.all()) == ["B-261102-0001", "B-261102-0002"]


# ---- offset paging under change: the trap ---------------------------------------------------------
def test_naive_offset_paging_under_change_loses_and_repeats_records(gen_sb):
    cli = Igate(gen_sb)
    src = cli.source["source_id"]
    truth = {r.dossier.source_record_id for r in gen_sb.world.records(src)}
    size = 20
    seen: list[str] = []
    page, total_pages = 0, None
    while total_pages is None or page < total_pages:
        body = cli.page(page=page, size=size)
        total_pages = body["totalPages"]
        seen.extend(r["id"] for r in body["content"])
        if page == 0:
            # records the client already has change now: they move to the end of the ordering
            touched = cli.control("touch", source_id=src, count=5)
            assert touched["touched"] == 5 and set(touched["ids"]) <= set(seen)
        page += 1
    lost = truth - set(seen)
    repeated = {i for i in seen if seen.count(i) > 1}
    assert len(lost) == 5  # the five that slid from page 1 onto page 0 were never seen
    assert repeated == set(touched["ids"])  # and the touched ones came twice
    # re-reading from the start (what a correct connector does) sees everything once
    again = [r["id"] for r in cli.all(size=size)]
    assert set(again) == truth and len(again) == len(truth)
    assert [r["id"] for r in cli.all(size=size)][-5:] == sorted(touched["ids"])


def test_touch_validation(gen_sb):
    url = gen_sb.urls["igate"]
    assert (
        requests.post(f"{url}/_sandbox/touch", json={"source_id": "nope", "count": 1}, timeout=5).status_code
        == 400
    )
    src = gen_sb.igate_sources[0]["source_id"]
    assert requests.post(f"{url}/_sandbox/touch", json={"source_id": src}, timeout=5).status_code == 400
    code = gen_sb.world.records(src)[0].dossier.dossier_code
    r = requests.post(f"{url}/_sandbox/touch", json={"source_id": src, "codes": [code]}, timeout=5).json()
    assert r["codes"] == [code]


# ---- faults --------------------------------------------------------------------------------------
def test_faults_429_latency_timeout(gen_sb):
    cli = Igate(gen_sb)
    cli.control("faults", rate_429=1.0, retry_after=7)
    r = cli.get(size=1)
    assert r.status_code == 429 and r.headers["Retry-After"] == "7"
    assert r.json()["status"] == 429
    assert cli.get_token()  # auth is not faulted by default

    cli.control("faults", latency_ms=300)
    t = time.monotonic()
    assert cli.get(size=1).status_code == 200
    assert time.monotonic() - t >= 0.3

    cli.control("faults", timeout=1.0, timeout_seconds=2)
    with pytest.raises(requests.Timeout):
        cli.get(size=1, timeout=0.3)

    cli.control("faults", error_5xx=1.0, seed=11)
    statuses = [cli.get(size=1).status_code for _ in range(6)]
    assert set(statuses) <= {500, 502, 503}
    cli.control("faults", error_5xx=1.0, seed=11)  # same seed, same sequence
    assert [cli.get(size=1).status_code for _ in range(6)] == statuses
    state = requests.get(f"{cli.url}/_sandbox/state", timeout=5).json()
    assert state["faults"]["injected"] == {"error_5xx": 6}


def test_reset_fault_is_a_connection_error(gen_sb):
    cli = Igate(gen_sb)
    cli.control("faults", reset=1.0)
    with pytest.raises(requests.ConnectionError):
        cli.get(size=1)
    cli.control("faults")
    assert cli.get(size=1).status_code == 200


def test_state_reports_queries(gen_sb):
    cli = Igate(gen_sb)
    cli.page(page=0, size=10, updatedFrom="2026-10-01T00:00:00+07:00")
    st = requests.get(f"{cli.url}/_sandbox/state", timeout=5).json()
    assert st["counts"]["tokens_issued"] == 1 and st["counts"]["pages_served"] == 1
    q = st["queries"][-1]
    assert (q["page"], q["size"], q["updatedFrom"], q["returned"]) == (0, 10, "2026-10-01T00:00:00+07:00", 10)
    assert st["sources"][0]["source_id"] == cli.source["source_id"]


def test_dossier_fixture_file(sandbox_factory, tmp_path):
    import json

    first = rec("F-261102-0001", T0).dossier.to_dict()
    late = rec("F-261102-0002", T0 + timedelta(hours=1)).dossier.to_dict()
    late["visible_at"] = (T0 + timedelta(days=1)).isoformat()
    path = tmp_path / "igate.json"
    path.write_text(json.dumps([first, late], ensure_ascii=False), encoding="utf-8")
    sb = sandbox_factory(simulators=("igate",), igate_dossiers_json=path, anchor=T0 + timedelta(hours=2))
    cli = Igate(sb)
    assert cli.source["client_id"] == "igate_a_client"
    assert [r["code"] for r in cli.all()] == ["F-261102-0001"]
    cli.control("clock", days=1)
    assert [r["code"] for r in cli.all()] == ["F-261102-0001", "F-261102-0002"]

    path.write_text(json.dumps([{"dossier_code": "x"}]), encoding="utf-8")
    from sandbox.igate import load_dossier_fixture

    with pytest.raises(ValueError, match="item 0"):
        load_dossier_fixture(path)
