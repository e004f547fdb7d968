"""Contract of the national-portal (DVCQG) simulator, world.md §6, over real HTTP."""

from __future__ import annotations

import json
import time

import pytest
import requests

from sandbox.faults import FaultProfile

AGENCY = "000.00.12.H40"


def dossier(code: str, **kw) -> dict:
    d = {
        "MaHoSo": code,
        "MaTTHC": "1.001193",
        "TenTTHC": "Đăng ký khai sinh",
        "MaLinhVuc": "G12-LV05",
        "KenhThucHien": 2,
        "ChuHoSo": "Nguyễn Thị Thuý",
        "LoaiDoiTuong": 1,
        "SoGiayToChuHoSo": "036185000123",
        "NgayTiepNhan": "20261102083000",
        "NgayHenTra": "20261105170000",
        "NgayKetThucXuLy": None,
        "NgayTra": None,
        "TrangThaiHoSo": 4,
        "DonViXuLy": AGENCY,
        "DuocThanhToanTrucTuyen": 0,
        "TaiKhoanDuocXacThucVoiVNeID": 0,
        "DinhDanhCHS": [{"LoaiDinhDanh": 1, "SoDinhDanh": "036185000123"}],
        "DanhSachHoSoBoSung": [],
        "TaiLieuNop": [],
        "DanhSachLePhi": [],
    }
    d.update(kw)
    return d


def progress(code: str, when: str = "20261102090000", **kw) -> dict:
    p = {
        "MaHoSo": code,
        "NguoiXuLy": "Cán bộ A",
        "ChucDanh": "Chuyên viên",
        "ThoiDiemXuLy": when,
        "PhongBanXuLy": "Bộ phận một cửa",
        "NoiDungXuLy": "Tiếp nhận hồ sơ",
        "TrangThai": 2,
        "NgayBatDau": "20261102083000",
        "NgayKetThucTheoQuyDinh": "20261105170000",
    }
    p.update(kw)
    return p


class Portal:
    """A tiny test client (not the product's connector)."""

    def __init__(self, sb, timeout: float = 5.0) -> None:
        self.url = sb.urls["portal"]
        self.creds = sb.portal_credentials
        self.timeout = timeout
        self.session = self.auth()

    def auth(self) -> str:
        r = requests.post(f"{self.url}/api/auth", json=self.creds, timeout=self.timeout)
        assert r.status_code == 200
        body = r.json()
        assert body["error_code"] == 0
        return body["session"]

    def call(self, service: str, timeout: float | None = None, **kw) -> dict:
        payload = {"session": self.session, "madonvi": AGENCY, "service": service, **kw}
        r = requests.post(f"{self.url}/api/integration", json=payload, timeout=timeout or self.timeout)
        assert r.status_code == 200, r.text
        return r.json()

    def sync(self, records: list[dict], updating: bool, **kw) -> dict:
        return self.call("DongBoHoSoMC", isUpdating="True" if updating else "False", data=records, **kw)

    def state(self) -> dict:
        return requests.get(f"{self.url}/_sandbox/state", timeout=5).json()


@pytest.fixture
def portal_sb(sandbox_factory):
    return sandbox_factory(simulators=("portal",))


def test_auth_ok_and_wrong_password(portal_sb):
    url = portal_sb.urls["portal"]
    ok = requests.post(f"{url}/api/auth", json=portal_sb.portal_credentials, timeout=5).json()
    assert ok["error_code"] == 0 and isinstance(ok["session"], str) and ok["session"]
    bad = requests.post(
        f"{url}/api/auth",
        json={"username": portal_sb.portal_credentials["username"], "password": "x"},
        timeout=5,
    ).json()
    assert bad["error_code"] == "-6" and "session" not in bad


def test_create_conflict_update_and_missing_update(portal_sb):
    p = Portal(portal_sb)
    r = p.sync([dossier("H40-261102-0001"), dossier("H40-261102-0002")], updating=False)
    assert r["error_code"] == "0"
    assert [x["error_code"] for x in r["result"]] == ["0", "0"]

    r = p.sync([dossier("H40-261102-0001")], updating=False)
    assert r["result"] == [{"MaHoSo": "H40-261102-0001", "error_code": "-3", "message": "Hồ sơ đã tồn tại"}]

    r = p.sync([dossier("H40-261102-0001", TrangThaiHoSo=9, NgayKetThucXuLy="20261104100000")], updating=True)
    assert r["result"][0]["error_code"] == "0"

    r = p.sync([dossier("H40-261102-0009")], updating=True)
    assert r["result"][0]["error_code"] == "-4"

    st = p.state()
    one = st["dossiers"]["H40-261102-0001"]
    assert (one["created"], one["updated"], one["create_conflicts"]) == (1, 1, 1)
    assert one["record"]["TrangThaiHoSo"] == 9 and one["madonvi"] == AGENCY
    assert "H40-261102-0009" not in st["dossiers"]
    assert st["update_missing"] == {"H40-261102-0009": 1}


def test_batch_limits_and_request_errors(portal_sb):
    p = Portal(portal_sb)
    too_many = [dossier(f"H40-261102-{i:04d}") for i in range(101)]
    r = p.sync(too_many, updating=False)
    assert r["error_code"] == "-2" and "result" not in r
    assert p.state()["dossiers"] == {}  # nothing applied
    assert p.sync([dossier(f"H40-261102-{i:04d}") for i in range(100)], updating=False)["error_code"] == "0"

    assert p.call("DongBoHoSoMC", isUpdating="maybe", data=[dossier("X-261102-0001")])["error_code"] == "-2"
    assert p.call("DongBoHoSoMC", isUpdating="False", data=[])["error_code"] == "-2"
    assert p.call("KhongCo", data=[dossier("X-261102-0001")])["error_code"] == "-2"
    r = requests.post(
        f"{p.url}/api/integration",
        json={
            "session": p.session,
            "service": "DongBoHoSoMC",
            "isUpdating": "False",
            "data": [dossier("A-1")],
        },
        timeout=5,
    ).json()
    assert r["error_code"] == "-2"  # madonvi missing
    r = requests.post(f"{p.url}/api/integration", data="not json", timeout=5).json()
    assert r["error_code"] == "-2"


def test_per_record_validation(portal_sb):
    p = Portal(portal_sb)
    batch = [
        dossier("H40-261102-0001"),
        {k: v for k, v in dossier("x").items() if k != "MaHoSo"},
        dossier("H40-261102-0003", NgayTiepNhan="2026-11-02 08:30"),
        dossier("H40-261102-0004", NgayHenTra="20261332170000"),
        dossier("H40-261102-0005", TrangThaiHoSo=11),
        dossier("H40-261102-0006", DanhSachHoSoBoSung=[{"NgayYeuCau": "02/11/2026"}]),
        dossier("H40-261102-0007", KenhThucHien="2", NgayTra=""),
    ]
    res = p.sync(batch, updating=False)["result"]
    assert [x["error_code"] for x in res] == ["0", "-5", "-5", "-5", "-5", "-5", "0"]
    assert res[1]["MaHoSo"] is None
    assert "NgayTiepNhan" in res[2]["message"]
    assert set(p.state()["dossiers"]) == {"H40-261102-0001", "H40-261102-0007"}


def test_progress_is_appended_and_counted(portal_sb):
    p = Portal(portal_sb)
    code = "H40-261102-0001"
    p.sync([dossier(code)], updating=False)
    first, second = progress(code), progress(code, "20261103100000", NoiDungXuLy="Chuyển phòng chuyên môn")
    r = p.call("CapNhatTienDoHoSoMC", data=[first, second])
    assert [x["error_code"] for x in r["result"]] == ["0", "0"]
    p.call("CapNhatTienDoHoSoMC", data=[first])  # the same entry again: shown twice
    r = p.call("CapNhatTienDoHoSoMC", data=[progress("H40-261102-0999"), progress(code, ThoiDiemXuLy="x")])
    assert [x["error_code"] for x in r["result"]] == ["-4", "-5"]

    held = p.state()["dossiers"][code]
    assert held["progress_received"] == 3
    counts = {e["entry"]["ThoiDiemXuLy"]: e["count"] for e in held["progress"]}
    assert counts == {"20261102090000": 2, "20261103100000": 1}

    look = p.call("TraCuuHoSo", mahoso=code)
    assert look["error_code"] == "0"
    assert look["data"]["HoSo"]["MaHoSo"] == code
    assert [e["ThoiDiemXuLy"] for e in look["data"]["TienDo"]] == [
        "20261102090000",
        "20261103100000",
        "20261102090000",
    ]
    assert p.call("TraCuuHoSo", mahoso="H40-000000-0000")["error_code"] == "-4"
    assert p.call("TraCuuHoSo")["error_code"] == "-2"


def test_session_expiry(sandbox_factory):
    sb = sandbox_factory(simulators=("portal",), session_seconds=1.0)
    p = Portal(sb)
    assert p.call("TraCuuHoSo", mahoso="A")["error_code"] == "-4"  # valid session, unknown dossier
    time.sleep(1.05)
    r = p.call("TraCuuHoSo", mahoso="A")
    assert r["error_code"] == "-1" and "hết hạn" in r["message"]
    p.session = p.auth()
    assert p.call("TraCuuHoSo", mahoso="A")["error_code"] == "-4"
    p.session = "forged"
    assert p.call("TraCuuHoSo", mahoso="A")["error_code"] == "-1"


def test_expire_sessions_control(portal_sb):
    p = Portal(portal_sb)
    assert requests.post(f"{p.url}/_sandbox/expire_sessions", timeout=5).status_code == 200
    assert p.call("TraCuuHoSo", mahoso="A")["error_code"] == "-1"


def test_fixture_load_and_reset(sandbox_factory, tmp_path):
    fixture = tmp_path / "portal.json"
    fixture.write_text(json.dumps([dossier("H40-261001-0001")], ensure_ascii=False), encoding="utf-8")
    sb = sandbox_factory(simulators=("portal",), portal_dossiers_json=fixture)
    p = Portal(sb)
    assert p.call("TraCuuHoSo", mahoso="H40-261001-0001")["data"]["HoSo"]["ChuHoSo"] == "Nguyễn Thị Thuý"
    assert p.sync([dossier("H40-261001-0001")], updating=False)["result"][0]["error_code"] == "-3"
    p.sync([dossier("H40-261001-0002")], updating=False)
    st = p.state()["dossiers"]
    assert st["H40-261001-0001"]["preloaded"] is True and st["H40-261001-0001"]["created"] == 0
    requests.post(f"{p.url}/_sandbox/reset", timeout=5)
    assert set(p.state()["dossiers"]) == {"H40-261001-0001"}


def test_bad_fixture_is_refused(tmp_path):
    from sandbox.portal import load_fixture

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"MaHoSo": "A", "NgayTiepNhan": "02/11/2026"}]), encoding="utf-8")
    with pytest.raises(ValueError, match="record 0"):
        load_fixture(bad)


# ---- faults --------------------------------------------------------------------------------------
def set_faults(sb, **profile) -> None:
    r = requests.post(f"{sb.urls['portal']}/_sandbox/faults", json=profile, timeout=5)
    assert r.status_code == 200, r.text


def test_commit_lost_timeout_applies_the_batch(portal_sb):
    p = Portal(portal_sb)
    set_faults(portal_sb, commit_lost=1.0, timeout_seconds=2)
    with pytest.raises(requests.Timeout):
        p.sync([dossier("H40-261102-0001")], updating=False, timeout=0.5)
    set_faults(portal_sb)  # quiet again
    st = p.state()
    assert st["dossiers"]["H40-261102-0001"]["created"] == 1  # applied although the client saw an error
    assert st["faults"]["injected"] == {}  # set_faults restarted the counters
    # the naive retry is refused as a duplicate create: the client must switch to an update
    assert p.sync([dossier("H40-261102-0001")], updating=False)["result"][0]["error_code"] == "-3"


def test_commit_lost_reset_applies_progress(portal_sb):
    p = Portal(portal_sb)
    p.sync([dossier("H40-261102-0001")], updating=False)
    set_faults(portal_sb, commit_lost=1.0, commit_lost_mode="reset")
    with pytest.raises(requests.ConnectionError):
        p.call("CapNhatTienDoHoSoMC", data=[progress("H40-261102-0001")])
    st = p.state()
    assert st["faults"]["injected"] == {"commit_lost": 1}
    assert st["dossiers"]["H40-261102-0001"]["progress"][0]["count"] == 1
    # a blind retry duplicates the entry on the portal: what a connector must avoid
    set_faults(portal_sb)
    p.call("CapNhatTienDoHoSoMC", data=[progress("H40-261102-0001")])
    assert p.state()["dossiers"]["H40-261102-0001"]["progress"][0]["count"] == 2


def test_auth_not_faulted_unless_fault_auth(portal_sb):
    url = portal_sb.urls["portal"]
    set_faults(portal_sb, error_5xx=1.0)
    assert requests.post(f"{url}/api/auth", json=portal_sb.portal_credentials, timeout=5).status_code == 200
    assert requests.get(f"{url}/_sandbox/state", timeout=5).status_code == 200
    set_faults(portal_sb, error_5xx=1.0, fault_auth=True)
    assert requests.post(f"{url}/api/auth", json=portal_sb.portal_credentials, timeout=5).status_code >= 500
    assert requests.get(f"{url}/_sandbox/state", timeout=5).status_code == 200  # never faulted


def test_faults_endpoint_rejects_bad_profiles(portal_sb):
    url = portal_sb.urls["portal"]
    assert requests.post(f"{url}/_sandbox/faults", json={"eror_5xx": 0.5}, timeout=5).status_code == 400
    assert (
        requests.post(f"{url}/_sandbox/faults", json={"error_5xx": 0.7, "reset": 0.7}, timeout=5).status_code
        == 400
    )
    got = requests.get(f"{url}/_sandbox/faults", timeout=5).json()
    assert got == FaultProfile().to_dict()
