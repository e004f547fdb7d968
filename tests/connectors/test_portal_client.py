"""connectors.portal: the payload mapping, sessions, create→update on "-3", per-record results,
and ambiguous sends resolved by reading back (exactly-once progress)."""

from __future__ import annotations

import json
import unicodedata
from collections import Counter
from datetime import datetime
from typing import Any

import pytest
import requests
import responses

from connectors.http import AuthError, RetryPolicy
from connectors.portal import PortalClient, PortalError, progress_identity, to_portal_payload
from tthc.model import Attachment, Dossier, Supplement

BASE = "http://127.0.0.1:8703"


def dossier(code: str = "000.00.12.H40-250714-0001", **kw: Any) -> Dossier:
    base = dict(
        source_id="src-a",
        dossier_code=code,
        agency_code="000.00.12.H40",
        procedure_code="1.001234",
        received_at=datetime(2025, 7, 14, 8, 30),
        updated_at=datetime(2025, 7, 18, 10, 0, 5),
        status=10,
        procedure_name="Đăng ký khai sinh",
        sector_code="G12-LV05",
        channel=2,
        applicant_name=unicodedata.normalize("NFD", "Nguyễn Thị Thuý"),
        applicant_id_number="036185000123",
        applicant_id_type=1,
        applicant_type=1,
        due_at=datetime(2025, 7, 21, 17, 0),
        finished_at=datetime(2025, 7, 18, 10, 0),
        returned_at=datetime(2025, 7, 19, 9, 15, 30),
        paid_online=1,
        fee=50000,
        vneid_verified=True,
        supplements=[
            Supplement(datetime(2025, 7, 15, 9, 0), datetime(2025, 7, 16, 14, 0)),
            Supplement(datetime(2025, 7, 17, 9, 0), None),
        ],
        attachments=[Attachment("Tờ khai.pdf", True, False)],
    )
    base.update(kw)
    return Dossier(**base)


# ---- payload ---------------------------------------------------------------------------------------


def test_payload_every_field():
    p = to_portal_payload(dossier())
    assert p == {
        "MaHoSo": "000.00.12.H40-250714-0001",
        "MaTTHC": "1.001234",
        "TenTTHC": "Đăng ký khai sinh",
        "MaLinhVuc": "G12-LV05",
        "KenhThucHien": 2,
        "ChuHoSo": "Nguyễn Thị Thuý",
        "LoaiDoiTuong": 1,
        "SoGiayToChuHoSo": "036185000123",
        "NgayTiepNhan": "20250714083000",
        "NgayHenTra": "20250721170000",
        "NgayKetThucXuLy": "20250718100000",
        "NgayTra": "20250719091530",
        "TrangThaiHoSo": 10,
        "DonViXuLy": "000.00.12.H40",
        "DuocThanhToanTrucTuyen": 1,
        "TaiKhoanDuocXacThucVoiVNeID": 1,
        "DinhDanhCHS": [{"LoaiDinhDanh": 1, "SoDinhDanh": "036185000123"}],
        "DanhSachHoSoBoSung": [
            {"NgayYeuCau": "20250715090000", "NgayBoSung": "20250716140000"},
            {"NgayYeuCau": "20250717090000", "NgayBoSung": None},
        ],
        "TaiLieuNop": [{"TenTepDinhKem": "Tờ khai.pdf", "DuocSoHoa": 1, "DuocTaiSuDung": 0}],
        "DanhSachLePhi": [{"TenPhiLePhi": "Lệ phí", "Gia": 50000, "LoaiPhiLePhi": 1}],
    }
    assert unicodedata.is_normalized("NFC", p["ChuHoSo"])


def test_payload_defaults_and_cmnd():
    p = to_portal_payload(
        dossier(
            channel=None,
            paid_online=None,
            applicant_type=None,
            fee=0,
            applicant_id_number="012345678",
            applicant_id_type=None,
            vneid_verified=False,
            due_at=None,
            supplements=[],
            attachments=[],
        )
    )
    assert p["KenhThucHien"] == 1 and p["DuocThanhToanTrucTuyen"] == 0 and p["LoaiDoiTuong"] == 1
    assert p["DinhDanhCHS"] == [{"LoaiDinhDanh": 2, "SoDinhDanh": "012345678"}]
    assert p["NgayHenTra"] is None and p["DanhSachLePhi"] == [] and p["TaiKhoanDuocXacThucVoiVNeID"] == 0
    assert to_portal_payload(dossier(applicant_id_number=None))["DinhDanhCHS"] == []


# ---- a fake portal -----------------------------------------------------------------------------------


class FakePortal:
    """The §6 contract as sandbox/portal.py implements it, with faults on chosen calls."""

    def __init__(self) -> None:
        self.sessions: set[str] = set()
        self.issued = 0
        self.held: dict[str, dict[str, Any]] = {}
        self.progress: dict[str, list[dict[str, Any]]] = {}
        self.calls: list[dict[str, Any]] = []
        self.expire_before: set[int] = set()  # integration call numbers answered "-1" first
        self.lose_answer: set[int] = set()  # apply, then the client sees a read time-out
        self.drop_before: set[int] = set()  # the client sees a read time-out, nothing applied
        self.invalid: set[str] = set()  # MaHoSo answered -5

    def auth(self, request):
        body = json.loads(request.body)
        if body != {"username": "tthc-sync", "password": "pw"}:
            return 200, {}, json.dumps({"error_code": "-6", "message": "Sai tên đăng nhập hoặc mật khẩu"})
        self.issued += 1
        self.sessions.add(f"s{self.issued}")
        return 200, {}, json.dumps({"session": f"s{self.issued}", "error_code": 0})

    def integration(self, request):
        body = json.loads(request.body)
        n = len(self.calls)
        self.calls.append(body)
        if n in self.expire_before:
            self.expire_before.discard(n)
            self.sessions.clear()
        if body.get("session") not in self.sessions:
            return 200, {}, json.dumps({"error_code": "-1", "message": "Phiên làm việc đã hết hạn"})
        if n in self.drop_before:
            raise requests.exceptions.ReadTimeout("no answer")
        answer = self.apply(body)
        if n in self.lose_answer:
            raise requests.exceptions.ReadTimeout("answer lost")
        return 200, {}, json.dumps(answer, ensure_ascii=False)

    def apply(self, body: dict[str, Any]) -> dict[str, Any]:
        service = body["service"]
        if service == "TraCuuHoSo":
            code = body["mahoso"]
            if code not in self.held:
                return {"error_code": "-4", "message": "Hồ sơ không tồn tại"}
            return {
                "error_code": "0",
                "data": {"HoSo": self.held[code], "TienDo": self.progress.get(code, [])},
            }
        results = []
        for d in body["data"]:
            code = d["MaHoSo"]
            if code in self.invalid:
                results.append(
                    {"MaHoSo": code, "error_code": "-5", "message": f"NgayTiepNhan sai ({code} 036185000123)"}
                )
            elif service == "DongBoHoSoMC" and body["isUpdating"] == "False":
                if code in self.held:
                    results.append({"MaHoSo": code, "error_code": "-3", "message": "Hồ sơ đã tồn tại"})
                else:
                    self.held[code] = d
                    results.append({"MaHoSo": code, "error_code": "0", "message": "Thêm mới thành công"})
            elif service == "DongBoHoSoMC":
                if code not in self.held:
                    results.append({"MaHoSo": code, "error_code": "-4", "message": "Hồ sơ không tồn tại"})
                else:
                    self.held[code] = d
                    results.append({"MaHoSo": code, "error_code": "0", "message": "Cập nhật thành công"})
            else:
                if code not in self.held:
                    results.append({"MaHoSo": code, "error_code": "-4", "message": "Hồ sơ không tồn tại"})
                else:
                    self.progress.setdefault(code, []).append(d)
                    results.append({"MaHoSo": code, "error_code": "0", "message": "ok"})
        return {"error_code": "0", "message": "", "result": results}

    def register(self, rsps) -> None:
        rsps.add_callback(responses.POST, f"{BASE}/api/auth", callback=self.auth)
        rsps.add_callback(responses.POST, f"{BASE}/api/integration", callback=self.integration)

    def services(self) -> list[tuple[str, str | None, int]]:
        return [(c["service"], c.get("isUpdating"), len(c.get("data") or [])) for c in self.calls]


@pytest.fixture
def portal(sleeps):
    fake = FakePortal()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        fake.register(rsps)
        client = PortalClient(
            BASE,
            username="tthc-sync",
            password="pw",
            sleep=sleeps,
            retry=RetryPolicy(max_attempts=3, jitter=0),
        )
        yield fake, client, rsps


def payloads(n: int, agency: str = "000.00.12.H40") -> list[dict[str, Any]]:
    return [to_portal_payload(dossier(f"{agency}-250714-{i:04d}", agency_code=agency)) for i in range(n)]


# ---- publishing --------------------------------------------------------------------------------------


def test_publish_creates_then_updates_existing(portal):
    fake, client, _ = portal
    first = payloads(3)
    fake.held[first[1]["MaHoSo"]] = {"MaHoSo": first[1]["MaHoSo"], "TrangThaiHoSo": 4}
    results = client.publish(first)
    assert [r.action for r in results] == ["created", "updated", "created"]
    assert all(r.ok for r in results)
    assert fake.services() == [("DongBoHoSoMC", "False", 3), ("DongBoHoSoMC", "True", 1)]
    assert fake.calls[1]["data"][0]["MaHoSo"] == first[1]["MaHoSo"]
    assert fake.calls[0]["madonvi"] == "000.00.12.H40" and fake.issued == 1


def test_publish_batches_of_100_per_agency(portal):
    fake, client, _ = portal
    items = payloads(150, "000.00.12.H40") + payloads(60, "000.00.13.H40")
    results = client.publish(items)
    assert len(results) == 210 and all(r.created for r in results)
    assert [(c["madonvi"], len(c["data"])) for c in fake.calls] == [
        ("000.00.12.H40", 100),
        ("000.00.12.H40", 50),
        ("000.00.13.H40", 60),
    ]
    assert [r.ma_ho_so for r in results] == [p["MaHoSo"] for p in items]


def test_per_record_errors(portal):
    fake, client, _ = portal
    items = payloads(3)
    fake.invalid.add(items[2]["MaHoSo"])
    r = client.publish(items)
    assert [x.ok for x in r] == [True, True, False]
    assert r[2].error_code == "-5" and r[2].message and "036185000123" not in r[2].message
    assert not r[2].retryable and not r[2].ambiguous


def test_session_expired_reauthenticates_and_repeats_once(portal):
    fake, client, _ = portal
    client.publish(payloads(1))
    fake.expire_before.add(1)
    r = client.publish(payloads(2)[1:])
    assert r[0].created and fake.issued == 2
    assert [c["session"] for c in fake.calls] == ["s1", "s1", "s2"]


def test_session_expired_twice_is_an_error(portal):
    fake, client, _ = portal
    fake.expire_before.update({0, 1})
    with pytest.raises(PortalError) as ei:
        client.call("TraCuuHoSo", mahoso="X", idempotent=True)
    assert ei.value.error_code == "-1"


def test_bad_credentials(sleeps):
    fake = FakePortal()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        fake.register(rsps)
        client = PortalClient(BASE, username="tthc-sync", password="wrong", sleep=sleeps)
        with pytest.raises(AuthError) as ei:
            client.lookup("X")
        assert ei.value.error_code == "-6" and "wrong" not in str(ei.value)
        r = client.publish(payloads(2))
        assert all(not x.ok and x.error_code == "-6" and not x.retryable for x in r)
        assert fake.calls == []


def test_ambiguous_create_answer_lost_is_resent_and_updated(portal):
    """Default: a dossier upsert is idempotent in effect; the resend's "-3" tells what was applied."""
    fake, client, _ = portal
    fake.lose_answer.add(0)
    items = payloads(3)
    r = client.publish(items)
    assert [x.action for x in r] == ["updated"] * 3 and all(x.ok for x in r)
    assert fake.services() == [
        ("DongBoHoSoMC", "False", 3),
        ("DongBoHoSoMC", "False", 3),
        ("DongBoHoSoMC", "True", 3),
    ]
    assert set(fake.held) == {p["MaHoSo"] for p in items}


def test_ambiguous_create_answer_lost_is_read_back_not_duplicated(portal):
    fake, client, _ = portal
    client.read_back_dossiers = True
    fake.lose_answer.add(0)
    items = payloads(3)
    r = client.publish(items)
    assert [x.action for x in r] == ["verified"] * 3 and all(x.ok for x in r)
    assert [s for s, _, _ in fake.services()] == ["DongBoHoSoMC", "TraCuuHoSo", "TraCuuHoSo", "TraCuuHoSo"]
    assert set(fake.held) == {p["MaHoSo"] for p in items}


def test_ambiguous_create_not_applied_is_resent(portal):
    fake, client, _ = portal
    client.read_back_dossiers = True
    fake.drop_before.add(0)
    r = client.publish(payloads(2))
    assert [x.action for x in r] == ["created", "created"]
    assert fake.services() == [
        ("DongBoHoSoMC", "False", 2),
        ("TraCuuHoSo", None, 0),
        ("TraCuuHoSo", None, 0),
        ("DongBoHoSoMC", "False", 2),
    ]


def test_ambiguous_update_with_other_content_is_resent_as_update(portal):
    fake, client, _ = portal
    client.read_back_dossiers = True
    items = payloads(1)
    fake.held[items[0]["MaHoSo"]] = {"MaHoSo": items[0]["MaHoSo"], "TrangThaiHoSo": 4}
    fake.drop_before.add(1)  # the update (call 1) times out before being applied
    r = client.publish(items)
    assert r[0].action == "updated"
    assert fake.services() == [
        ("DongBoHoSoMC", "False", 1),
        ("DongBoHoSoMC", "True", 1),
        ("TraCuuHoSo", None, 0),
        ("DongBoHoSoMC", "True", 1),
    ]
    assert fake.held[items[0]["MaHoSo"]] == items[0]


def test_ambiguous_unresolved_when_read_back_disabled(sleeps):
    fake = FakePortal()
    fake.lose_answer.add(0)
    with responses.RequestsMock() as rsps:
        fake.register(rsps)
        client = PortalClient(
            BASE, username="tthc-sync", password="pw", sleep=sleeps, resolve_ambiguous=False
        )
        r = client.publish(payloads(2))
    assert all(x.ambiguous and not x.ok and x.error_code == "ambiguous" for x in r)
    assert len(fake.calls) == 1


def test_ambiguous_keeps_failing_gives_up_after_rounds(portal):
    fake, client, _ = portal
    fake.drop_before.update(range(10))  # every send times out unapplied
    r = client.publish(payloads(1))
    assert r[0].ambiguous and not r[0].ok
    assert [s for s, _, _ in fake.services()].count("DongBoHoSoMC") == 4  # first + 3 rounds


def test_transient_failure_stops_remaining_batches(portal):
    fake, client, rsps = portal
    rsps.replace(responses.POST, f"{BASE}/api/integration", status=503)
    client._session = "s0"
    r = client.publish(payloads(150))
    assert all(not x.ok and x.retryable for x in r)
    assert (
        len([c for c in rsps.calls if c.request.url.endswith("/api/integration")]) == 3
    )  # one batch x 3 attempts


# ---- progress ------------------------------------------------------------------------------------------


def progress(code: str, step: int) -> dict[str, Any]:
    return {
        "MaHoSo": code,
        "NguoiXuLy": "Cán bộ một cửa",
        "ChucDanh": "Chuyên viên",
        "ThoiDiemXuLy": f"2025071{step}090000",
        "PhongBanXuLy": "Bộ phận một cửa",
        "NoiDungXuLy": f"Bước {step}",
        "TrangThai": 4,
        "NgayBatDau": "20250714083000",
        "NgayKetThucTheoQuyDinh": "20250721170000",
    }


def test_progress_answer_lost_is_not_duplicated(portal):
    fake, client, _ = portal
    items = payloads(2)
    client.publish(items)
    codes = [p["MaHoSo"] for p in items]
    entries = [progress(codes[0], 1), progress(codes[0], 2), progress(codes[1], 1)]
    fake.lose_answer.add(len(fake.calls))
    r = client.push_progress(entries, madonvi="000.00.12.H40")
    assert all(x.ok and x.action == "verified" for x in r)
    counts = Counter(progress_identity(e) for lst in fake.progress.values() for e in lst)
    assert set(counts.values()) == {1} and len(counts) == 3


def test_progress_partly_applied_sends_only_the_missing(portal):
    fake, client, _ = portal
    items = payloads(1)
    client.publish(items)
    code = items[0]["MaHoSo"]
    entries = [progress(code, 1), progress(code, 2)]
    fake.progress[code] = [entries[0]]  # applied by an earlier, ambiguous run
    fake.drop_before.add(len(fake.calls))
    r = client.push_progress(entries, madonvi="000.00.12.H40")
    assert [x.action for x in r] == ["verified", "appended"]
    assert fake.calls[-1]["data"] == [entries[1]]
    assert fake.progress[code] == entries


def test_progress_check_first(portal):
    fake, client, _ = portal
    items = payloads(1)
    client.publish(items)
    code = items[0]["MaHoSo"]
    entries = [progress(code, 1), progress(code, 2)]
    fake.progress[code] = [entries[0]]
    r = client.push_progress(entries, madonvi="000.00.12.H40", check_first=True)
    assert [x.action for x in r] == ["verified", "appended"] and fake.progress[code] == entries


def test_progress_for_unknown_dossier(portal):
    fake, client, _ = portal
    r = client.push_progress([progress("X-250714-0001", 1)], madonvi="000.00.12.H40")
    assert not r[0].ok and r[0].error_code == "-4"


def test_lookup(portal):
    fake, client, _ = portal
    assert client.lookup("nope") is None
    items = payloads(1)
    client.publish(items)
    assert client.lookup(items[0]["MaHoSo"]) == {"HoSo": items[0], "TienDo": []}
