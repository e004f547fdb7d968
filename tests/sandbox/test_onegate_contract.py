"""Contract of the onegate one-stop-system simulator, world.md §2, over real HTTP."""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime, timedelta

import pytest
import requests

from sandbox.onegate import decode_cursor, encode_cursor, render_onegate
from sandbox.world import SourceRecord, World, WorldConfig
from tthc.model import Attachment, Dossier, Supplement
from tthc.timeutil import parse_portal

T0 = datetime(2026, 11, 2, 8, 0)
RECORD_FIELDS = [
    "MaHoSo",
    "MaTTHC",
    "TenTTHC",
    "MaLinhVuc",
    "MaDonVi",
    "KenhThucHien",
    "ChuHoSo",
    "SoGiayToChuHoSo",
    "NgaySinhChuHoSo",
    "GioiTinh",
    "LoaiDoiTuong",
    "NgayTiepNhan",
    "NgayHenTra",
    "NgayKetThucXuLy",
    "NgayTra",
    "TrangThaiHoSo",
    "DuocThanhToanTrucTuyen",
    "LePhi",
    "DanhSachHoSoBoSung",
    "TaiLieuNop",
    "DuongDanTepTinKetQua",
    "TaiKhoanDuocXacThucVoiVNeID",
    "NgayCapNhat",
]


# ---- helpers -------------------------------------------------------------------------------------
class Onegate:
    """A tiny test client (not the product's connector)."""

    def __init__(self, sb, source: dict | None = None) -> None:
        doc = sb.state_document()["onegate"]
        self.url = doc["url"]
        self.dossiers_url = doc["dossiers_url"]
        self.source = source or doc["sources"][0]
        self.key = self.source["api_key"]

    def get(self, timeout: float = 5.0, key: str | None = None, **params) -> requests.Response:
        headers = {"X-API-Key": self.key if key is None else key}
        return requests.get(self.dossiers_url, params=params, headers=headers, timeout=timeout)

    def page(self, **params) -> dict:
        r = self.get(**params)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["error_code"] == "0", body
        return body

    def all(self, tuNgay: str = "20000101000000", limit: int = 50) -> list[dict]:
        out: list[dict] = []
        body = self.page(tuNgay=tuNgay, limit=limit)
        while True:
            out.extend(body["data"])
            if body["next_cursor"] is None:
                return out
            body = self.page(cursor=body["next_cursor"], limit=limit)

    def control(self, path: str, **body) -> dict:
        r = requests.post(f"{self.url}/_sandbox/{path}", json=body, timeout=10)
        assert r.status_code == 200, r.text
        return r.json()


def rec(code: str, updated: datetime, visible: datetime | None = None, *, source="onegate_a", rid=None, **kw):
    d = Dossier(
        source_id=source,
        dossier_code=code,
        agency_code=kw.pop("agency_code", "000.00.16.H40"),
        procedure_code="1.001307",
        received_at=kw.pop("received_at", updated - timedelta(hours=1)),
        updated_at=updated,
        status=kw.pop("status", 4),
        source_record_id=rid or str(uuid.uuid5(uuid.NAMESPACE_URL, f"{source}/{code}")),
        agency_name="Sở Y tế tỉnh Nghệ An",
        procedure_name="Cấp giấy chứng nhận cơ sở đủ điều kiện an toàn thực phẩm",
        sector_code="G10-AT03",
        sector_name="An toàn thực phẩm",
        applicant_name=kw.pop("name", "Nguyễn Thị Thuý"),
        applicant_id_number="040185000123",
        applicant_id_type=1,
        applicant_birth_date=kw.pop("birth", "1985-03-04"),
        applicant_sex=kw.pop("sex", 2),
        applicant_phone="0912345678",
        **kw,
    )
    return SourceRecord(dossier=d, visible_at=visible or updated)


def onegate_world(records, now=None) -> World:
    return World.from_records(records, now=now, dialect="onegate")


@pytest.fixture(scope="module")
def demo_world():
    return WorldConfig.demo(size=400)


@pytest.fixture
def demo_sb(sandbox_factory, demo_world):
    """The demo world (three onegate sources among twelve) behind the onegate simulator."""
    return sandbox_factory(world=World(demo_world), simulators=("onegate",))


# ---- rendering -----------------------------------------------------------------------------------
def test_render_onegate_shape():
    d = rec(
        "000.00.16.H40-261102-0001",
        T0,
        channel=3,
        paid_online=2,
        fee=500000,
        due_at=T0 + timedelta(days=5, hours=9),
        finished_at=T0 + timedelta(days=2),
        supplements=[
            Supplement(T0 + timedelta(days=1), T0 + timedelta(days=1, hours=3)),
            Supplement(T0, None),
        ],
        attachments=[Attachment("Đơn đề nghị", digitized=True), Attachment("Bản sao", reused=True)],
        result_file="ket-qua/x.pdf",
        vneid_verified=True,
    ).dossier
    out = render_onegate(d)
    assert list(out) == RECORD_FIELDS
    assert out["MaHoSo"] == d.dossier_code and out["MaDonVi"] == "000.00.16.H40"
    assert out["MaTTHC"] == "1.001307" and out["MaLinhVuc"] == "G10-AT03"
    assert out["KenhThucHien"] == 3 and out["DuocThanhToanTrucTuyen"] == 2 and out["LePhi"] == 500000
    assert out["ChuHoSo"] == "Nguyễn Thị Thuý" and out["SoGiayToChuHoSo"] == "040185000123"
    assert out["NgaySinhChuHoSo"] == "04/03/1985" and out["GioiTinh"] == "Nữ" and out["LoaiDoiTuong"] == 1
    assert out["NgayTiepNhan"] == "20261102070000"
    assert out["NgayHenTra"] == "20261107170000"
    assert out["NgayKetThucXuLy"] == "20261104080000" and out["NgayTra"] is None
    assert out["TrangThaiHoSo"] == 4
    assert out["DanhSachHoSoBoSung"] == [
        {"NgayYeuCau": "20261103080000", "NgayBoSung": "20261103110000"},
        {"NgayYeuCau": "20261102080000", "NgayBoSung": None},
    ]
    assert out["TaiLieuNop"] == [
        {"TenTepDinhKem": "Đơn đề nghị", "DuocSoHoa": 1, "DuocTaiSuDung": 0},
        {"TenTepDinhKem": "Bản sao", "DuocSoHoa": 0, "DuocTaiSuDung": 1},
    ]
    assert out["DuongDanTepTinKetQua"] == "ket-qua/x.pdf" and out["TaiKhoanDuocXacThucVoiVNeID"] == 1
    assert out["NgayCapNhat"] == "20261102080000"
    assert render_onegate(d, updated_at=T0 + timedelta(days=3))["NgayCapNhat"] == "20261105080000"
    # year-only birth dates stay a year; men are "Nam"; unknown sex is null
    assert render_onegate(rec("X-261102-0002", T0, birth="1957", sex=1).dossier)["NgaySinhChuHoSo"] == "1957"
    assert render_onegate(rec("X-261102-0002", T0, sex=1).dossier)["GioiTinh"] == "Nam"
    assert render_onegate(rec("X-261102-0002", T0, sex=None).dossier)["GioiTinh"] is None


def test_unknown_status_renders_as_the_source_sent_it():
    numeric = rec("X-261102-0003", T0, status=None, status_raw="99").dossier
    text = rec("X-261102-0004", T0, status=None, status_raw="cho_duyet").dossier
    assert render_onegate(numeric)["TrangThaiHoSo"] == 99  # an out-of-range number
    assert render_onegate(text)["TrangThaiHoSo"] == "cho_duyet"  # a raw string
    # a value the model could not hold travels as the raw text
    bad = rec("X-261102-0005", T0, birth=None, raw_issues={"applicant_birth_date": "31/02/1985"}).dossier
    assert render_onegate(bad)["NgaySinhChuHoSo"] == "31/02/1985"


def test_cursor_is_opaque_and_round_trips():
    c = encode_cursor(T0, "A-261102-0001", "rid-1")
    assert "A-261102" not in c and decode_cursor(c) == ("20261102080000", "A-261102-0001", "rid-1")
    for bad in ("", "!!!", "e30", encode_cursor(None, None, "x")[:-3] + "***"):
        with pytest.raises(ValueError):
            decode_cursor(bad)


# ---- errors --------------------------------------------------------------------------------------
def test_bad_or_missing_key_is_error_1_with_http_200(demo_sb):
    cli = Onegate(demo_sb)
    for key in ("", "wrong-key"):
        r = cli.get(key=key, tuNgay="20260101000000")
        assert r.status_code == 200
        assert r.json() == {
            "error_code": "1",
            "message": "API key không hợp lệ",
            "data": None,
            "next_cursor": None,
        }
    r = requests.get(cli.dossiers_url, params={"tuNgay": "20260101000000"}, timeout=5)  # no header at all
    assert r.status_code == 200 and r.json()["error_code"] == "1"


def test_bad_parameters_are_error_2_and_bad_cursor_error_3(demo_sb):
    cli = Onegate(demo_sb)
    for params in (
        {},  # tuNgay is required without a cursor
        {"tuNgay": "2026-01-01"},
        {"tuNgay": "20261301000000"},
        {"tuNgay": "20260101000000", "limit": 0},
        {"tuNgay": "20260101000000", "limit": 501},
        {"tuNgay": "20260101000000", "limit": "x"},
    ):
        r = cli.get(**params)
        assert r.status_code == 200, params
        body = r.json()
        assert body["error_code"] == "2" and body["data"] is None and body["message"], params
    r = cli.get(cursor="not-a-cursor")
    assert r.status_code == 200 and r.json()["error_code"] == "3"
    assert cli.page(tuNgay="20260101000000", limit=500)["error_code"] == "0"
    st = requests.get(f"{cli.url}/_sandbox/state", timeout=5).json()
    assert st["counts"]["bad_params"] == 6 and st["counts"]["bad_cursor"] == 1


# ---- paging --------------------------------------------------------------------------------------
def test_page_through_everything_in_keyset_order(demo_sb):
    cli = Onegate(demo_sb)
    sid = cli.source["source_id"]
    truth = demo_sb.world.records(sid)
    got = cli.all(limit=37)
    assert len(got) == len(truth)
    assert sorted(r["MaHoSo"] for r in got) == sorted(r.dossier.dossier_code for r in truth)
    keys = [(r["NgayCapNhat"], r["MaHoSo"]) for r in got]
    assert keys == sorted(keys)
    # the last page says there is nothing more
    first = cli.page(tuNgay="20000101000000", limit=len(truth))
    assert len(first["data"]) == len(truth) and first["next_cursor"] is None
    assert cli.page(tuNgay="20000101000000", limit=len(truth) - 1)["next_cursor"] is not None


def test_records_render_like_render_onegate(demo_sb):
    cli = Onegate(demo_sb)
    truth: dict[str, list[dict]] = {}
    for r in demo_sb.world.records(cli.source["source_id"]):
        truth.setdefault(r.dossier.dossier_code, []).append(render_onegate(r.dossier))
    for item in cli.all(limit=100):
        assert list(item) == RECORD_FIELDS
        assert item in truth[item["MaHoSo"]]


def test_tu_ngay_is_an_inclusive_lower_bound(demo_sb):
    cli = Onegate(demo_sb)
    everything = cli.all(limit=200)
    pivot = everything[len(everything) // 2]["NgayCapNhat"]
    since = cli.all(tuNgay=pivot, limit=200)
    assert since and all(r["NgayCapNhat"] >= pivot for r in since)
    assert since[0]["NgayCapNhat"] == pivot
    assert len(since) == sum(1 for r in everything if r["NgayCapNhat"] >= pivot)


def test_api_key_selects_the_tenant(demo_sb):
    doc = demo_sb.state_document()
    entries = [s for s in doc["sources"] if s["dialect"] == "onegate"]
    assert {s["source_id"] for s in entries} == {"onegate_so_yte", "onegate_so_xaydung", "onegate_xa"}
    for s in entries:
        assert s["base_url"] == doc["urls"]["onegate"] and s["port"] == doc["ports"]["onegate"]
        assert s["dossiers_url"].endswith("/api/HoSo/DongBo") and s["api_key"]
        cli = Onegate(demo_sb, s)
        got = cli.all(limit=500)
        assert {r["MaDonVi"] for r in got} <= set(s["agency_codes"]) | {None}
        assert len(got) == len(demo_sb.world.records(s["source_id"]))
    # igate sources of the same world are not served here
    assert not {"igate_tinh", "igate_phuong"} & {s["source_id"] for s in doc["onegate"]["sources"]}


def test_keyset_paging_is_stable_under_concurrent_change(demo_sb):
    cli = Onegate(demo_sb)
    sid = cli.source["source_id"]
    limit = 10
    body = cli.page(tuNgay="20000101000000", limit=limit)
    seen = [r["MaHoSo"] for r in body["data"]]
    # while the client pages: records it has already seen change, and the clock moves on
    touched = cli.control("touch", source_id=sid, count=5)
    assert touched["touched"] == 5 and set(touched["codes"]) <= set(seen)
    cli.control("clock", days=2)
    while body["next_cursor"] is not None:
        body = cli.page(cursor=body["next_cursor"], limit=limit)
        seen.extend(r["MaHoSo"] for r in body["data"])
    truth = {r.dossier.dossier_code for r in demo_sb.world.records(sid)}
    assert truth <= set(seen)  # nothing lost (offset paging would lose five here)
    repeated = {c for c in seen if seen.count(c) > 1}
    dups = {c for c in truth if sum(1 for r in demo_sb.world.records(sid) if r.dossier.dossier_code == c) > 1}
    assert set(touched["codes"]) <= repeated  # the changed ones come again, with their new time
    assert repeated - dups <= set(touched["codes"]) | _changed_codes(demo_sb, sid)


def _changed_codes(sb, sid):
    """Codes of dossiers with a version that became visible in the last two days."""
    now = sb.world.now
    return {r.dossier.dossier_code for r in sb.world.versions(sid) if r.visible_at > now - timedelta(days=2)}


def test_touch_moves_records_to_the_end_with_now(demo_sb):
    cli = Onegate(demo_sb)
    sid = cli.source["source_id"]
    code = demo_sb.world.records(sid)[0].dossier.dossier_code
    r = cli.control("touch", source_id=sid, codes=[code])
    assert r["codes"] == [code] and r["NgayCapNhat"] == "20261102080000"
    assert cli.all(limit=500)[-1]["MaHoSo"] == code
    assert (
        requests.post(
            f"{cli.url}/_sandbox/touch", json={"source_id": "nope", "count": 1}, timeout=5
        ).status_code
        == 400
    )
    assert requests.post(f"{cli.url}/_sandbox/touch", json={"source_id": sid}, timeout=5).status_code == 400


def test_late_update_needs_a_look_back(sandbox_factory):
    rid = str(uuid.uuid4())
    v0 = rec("L-261102-0001", T0, rid=rid, status=2)
    v1 = rec("L-261102-0001", T0 + timedelta(hours=5), T0 + timedelta(days=2), rid=rid, status=4)  # late
    other = rec("L-261102-0002", T0 + timedelta(hours=1))
    sb = sandbox_factory(
        world=onegate_world([v0, v1, other], now=T0 + timedelta(days=1)), simulators=("onegate",)
    )
    cli = Onegate(sb)
    body = cli.page(tuNgay="20261102000000", limit=10)
    assert [(r["MaHoSo"], r["TrangThaiHoSo"]) for r in body["data"]] == [
        ("L-261102-0001", 2),
        ("L-261102-0002", 4),
    ]
    assert body["next_cursor"] is None
    mark = body["data"][-1]["NgayCapNhat"]  # the client's high-water mark: 09:00
    cli.control("clock", days=1, hours=1)
    # the change became visible with an update time (13:00) after the mark: found from the mark on
    late = cli.page(tuNgay=mark, limit=10)["data"]
    assert [(r["MaHoSo"], r["TrangThaiHoSo"], r["NgayCapNhat"]) for r in late] == [
        ("L-261102-0002", 4, "20261102090000"),
        ("L-261102-0001", 4, "20261102130000"),
    ]


def test_clock_brings_new_arrivals_and_reset_goes_back(demo_sb):
    cli = Onegate(demo_sb)
    before = len(cli.all(limit=500))
    now = cli.control("clock", days=10)["now"]
    assert now == "2026-11-12T08:00:00"
    assert len(cli.all(limit=500)) > before
    assert requests.post(f"{cli.url}/_sandbox/clock", json={"days": -1}, timeout=5).status_code == 400
    assert requests.get(f"{cli.url}/_sandbox/clock", timeout=5).json()["now_onegate"] == "20261112080000"
    cli.control("reset")
    assert len(cli.all(limit=500)) == before


# ---- faults --------------------------------------------------------------------------------------
def test_fault_5xx_is_seeded_and_500_keeps_the_json_shape(demo_sb):
    cli = Onegate(demo_sb)
    cli.control("faults", error_5xx=1.0, seed=3)
    rs = [cli.get(tuNgay="20260101000000") for _ in range(8)]
    statuses = [r.status_code for r in rs]
    assert set(statuses) <= {500, 502, 503} and 500 in statuses
    r500 = next(r for r in rs if r.status_code == 500)
    assert r500.json()["error_code"] == "500" and r500.json()["data"] is None
    assert any("nginx" in r.text for r in rs if r.status_code in (502, 503))
    cli.control("faults", error_5xx=1.0, seed=3)
    assert [cli.get(tuNgay="20260101000000").status_code for _ in range(8)] == statuses
    st = requests.get(f"{cli.url}/_sandbox/state", timeout=5).json()
    assert st["faults"]["injected"] == {"error_5xx": 8}


def test_fault_429_with_retry_after(demo_sb):
    cli = Onegate(demo_sb)
    cli.control("faults", rate_429=1.0, retry_after=4)
    r = cli.get(tuNgay="20260101000000")
    assert r.status_code == 429 and r.headers["Retry-After"] == "4" and r.json()["error_code"] == "429"
    # control endpoints are never faulted
    assert requests.get(f"{cli.url}/_sandbox/state", timeout=5).status_code == 200


def test_fault_latency_and_timeout(demo_sb):
    cli = Onegate(demo_sb)
    cli.control("faults", latency_ms=300)
    t = time.monotonic()
    assert cli.page(tuNgay="20260101000000", limit=1)["error_code"] == "0"
    assert time.monotonic() - t >= 0.3
    cli.control("faults", timeout=1.0, timeout_seconds=2)
    with pytest.raises(requests.Timeout):
        cli.get(tuNgay="20260101000000", timeout=0.3)


def test_fault_connection_reset(demo_sb):
    cli = Onegate(demo_sb)
    cli.control("faults", reset=1.0)
    with pytest.raises(requests.ConnectionError):
        cli.get(tuNgay="20260101000000")
    cli.control("faults")
    assert cli.page(tuNgay="20260101000000", limit=1)["error_code"] == "0"


# ---- inspection, fixtures, configuration ----------------------------------------------------------
def test_state_reports_queries(demo_sb):
    cli = Onegate(demo_sb)
    body = cli.page(tuNgay="20261001000000", limit=5)
    cli.page(cursor=body["next_cursor"], limit=5)
    st = requests.get(f"{cli.url}/_sandbox/state", timeout=5).json()
    assert st["counts"]["pages_served"] == 2 and st["counts"]["records_served"] == 10
    q = st["queries"][-2]
    assert (q["source_id"], q["tuNgay"], q["limit"], q["returned"], q["cursor"]) == (
        cli.source["source_id"],
        "20261001000000",
        5,
        5,
        False,
    )
    assert st["queries"][-1]["cursor"] is True
    assert {s["source_id"] for s in st["sources"]} == {"onegate_so_yte", "onegate_so_xaydung", "onegate_xa"}


def test_dossier_fixture_file_makes_onegate_sources(sandbox_factory, tmp_path):
    first = rec("F-261102-0001", T0, source="onegate_fx").dossier.to_dict()
    late = rec("F-261102-0002", T0 + timedelta(hours=1), source="onegate_fx").dossier.to_dict()
    late["visible_at"] = (T0 + timedelta(days=1)).isoformat()
    path = tmp_path / "onegate.json"
    path.write_text(json.dumps([first, late], ensure_ascii=False), encoding="utf-8")
    sb = sandbox_factory(simulators=("onegate",), onegate_dossiers_json=path, anchor=T0 + timedelta(hours=2))
    doc = sb.state_document()
    assert [(s["source_id"], s["dialect"]) for s in doc["sources"]] == [("onegate_fx", "onegate")]
    cli = Onegate(sb)
    assert [r["MaHoSo"] for r in cli.all()] == ["F-261102-0001"]
    cli.control("clock", days=1)
    assert [r["MaHoSo"] for r in cli.all()] == ["F-261102-0001", "F-261102-0002"]
    assert parse_portal(cli.all()[-1]["NgayCapNhat"]) == T0 + timedelta(hours=1)


def test_demo_preset_serves_every_dialect(sandbox_factory):
    sb = sandbox_factory(preset="demo", size=300, simulators=("igate", "onegate", "sqldb", "filedrop"))
    doc = sb.state_document()
    by_dialect: dict[str, set[str]] = {}
    for s in doc["sources"]:
        by_dialect.setdefault(s["dialect"], set()).add(s["source_id"])
    assert {d: len(v) for d, v in by_dialect.items()} == {"igate": 3, "onegate": 3, "sqldb": 2, "filedrop": 4}
    assert {s.source_id for s in sb.world.sources} == set().union(*by_dialect.values())
