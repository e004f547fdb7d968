"""Contract of the population-database (LGSP) simulator, world.md §5, over real HTTP."""

from __future__ import annotations

import json
import time

import defusedxml.ElementTree as DET
import pytest
import requests

NS = {"dc": "http://www.mic.gov.vn/dancu/1.0", "soap": "http://schemas.xmlsoap.org/soap/envelope/"}
IDENT = {"MaDVC": "1.001193", "MaTichHop": "TTHC-SYNC", "MaCanBo": "canbo01"}
_seq = iter(range(1, 10**6))


def ident(**kw) -> dict:
    return {"MaYeuCau": f"REQ-{next(_seq):06d}", **IDENT, **kw}


def congdan_list(xml: str) -> list[dict]:
    """Parse the SOAP answer the way a client must: external entities disabled (defusedxml)."""
    root = DET.fromstring(xml.encode("utf-8"))
    coll = root.find("soap:Body/dc:CongdanCollection", NS)
    assert coll is not None
    out = []
    for cd in coll.findall("dc:CongDan", NS):
        birth = cd.find("dc:NgayThangNamSinh", NS)
        out.append(
            {
                "SoDinhDanh": cd.findtext("dc:SoDinhDanh", namespaces=NS),
                "SoCMND": cd.findtext("dc:SoCMND", namespaces=NS),
                "Ho": cd.findtext("dc:HoVaTen/dc:Ho", namespaces=NS),
                "ChuDem": cd.findtext("dc:HoVaTen/dc:ChuDem", namespaces=NS),
                "Ten": cd.findtext("dc:HoVaTen/dc:Ten", namespaces=NS),
                "GioiTinh": cd.findtext("dc:GioiTinh", namespaces=NS),
                "NgayThangNam": birth.findtext("dc:NgayThangNam", namespaces=NS),
                "Nam": birth.findtext("dc:Nam", namespaces=NS),
                "MaTinhThanh": cd.findtext("dc:NoiDangKyKhaiSinh/dc:MaTinhThanh", namespaces=NS),
            }
        )
    return out


@pytest.fixture
def pop(sandbox_factory, citizens_csv):
    return sandbox_factory(simulators=("population",), citizens_csv=citizens_csv, bulk_delay_seconds=1.0)


def lookup(sb, timeout: float = 5.0, **body) -> requests.Response:
    return requests.post(
        f"{sb.urls['population']}/lgsp/dancu/TraCuuThongTinCongDan", json=body, timeout=timeout
    )


def test_single_lookup_found(pop):
    r = lookup(
        pop, **ident(SoDinhDanh="036185000123", HoVaTen="Nguyễn Thị Thuý", NgayThangNamSinh="19850304")
    )
    assert r.status_code == 200
    body = r.json()
    assert body["error_code"] == "0"
    assert body["message"].startswith("<?xml")
    assert congdan_list(body["message"]) == [
        {
            "SoDinhDanh": "036185000123",
            "SoCMND": "",  # empty element
            "Ho": "Nguyễn",
            "ChuDem": "Thị",
            "Ten": "Thuý",
            "GioiTinh": "2",
            "NgayThangNam": "19850304",
            "Nam": None,
            "MaTinhThanh": "036",
        }
    ]


def test_year_only_birth_missing_middle_name_and_cmnd_lookup(pop):
    year_only = congdan_list(lookup(pop, **ident(SoDinhDanh="001090001234")).json()["message"])[0]
    assert (year_only["Nam"], year_only["NgayThangNam"], year_only["SoCMND"]) == ("1990", None, "012345678")
    by_cmnd = congdan_list(lookup(pop, **ident(SoDinhDanh="012345678")).json()["message"])[0]
    assert by_cmnd["SoDinhDanh"] == "001090001234"
    no_middle = congdan_list(lookup(pop, **ident(SoDinhDanh="079201004567")).json()["message"])[0]
    assert no_middle["ChuDem"] == "" and no_middle["Ten"] == "Minh"


def test_not_found_is_an_empty_collection(pop):
    body = lookup(pop, **ident(SoDinhDanh="036185999999")).json()
    assert body["error_code"] == "0"
    assert congdan_list(body["message"]) == []


@pytest.mark.parametrize("missing", ["MaYeuCau", "MaDVC", "MaTichHop", "MaCanBo", "SoDinhDanh"])
def test_required_fields(pop, missing):
    body = ident(SoDinhDanh="036185000123")
    body.pop(missing)
    r = lookup(pop, **body)
    assert r.status_code == 400
    assert r.json()["error_code"] == "400" and missing in r.json()["message"]


def test_rate_limit_per_client(sandbox_factory, citizens_csv):
    sb = sandbox_factory(simulators=("population",), citizens_csv=citizens_csv, rate_limit_per_second=1)
    assert lookup(sb, **ident(SoDinhDanh="036185000123")).status_code == 200
    r = lookup(sb, **ident(SoDinhDanh="036185000123"))
    assert r.status_code == 429
    assert r.headers["Retry-After"] == "1"
    assert r.json()["error_code"] == "429"
    # another client has its own budget
    assert lookup(sb, **ident(SoDinhDanh="036185000123", MaTichHop="OTHER")).status_code == 200
    time.sleep(1.05)
    assert lookup(sb, **ident(SoDinhDanh="036185000123")).status_code == 200
    assert (
        requests.get(f"{sb.urls['population']}/_sandbox/state", timeout=5).json()["counts"]["rate_limited"]
        == 1
    )


def test_bulk_job_lifecycle(pop):
    url = pop.urls["population"]
    body = ident(
        DanhSach=[
            {"SoDinhDanh": "036185000123", "HoVaTen": "Nguyễn Thị Thuý", "NgayThangNamSinh": "19850304"},
            {"SoDinhDanh": "036185999999", "HoVaTen": "Không Có", "NgayThangNamSinh": "19850304"},
            {"SoDinhDanh": "001090001234"},
        ]
    )
    r = requests.post(f"{url}/lgsp/dancu/YeuCauDanhSach", json=body, timeout=5)
    assert r.status_code == 200
    assert r.json() == {"error_code": "0", "MaYeuCau": body["MaYeuCau"], "TrangThai": "DangXuLy"}
    job = body["MaYeuCau"]

    st = requests.get(f"{url}/lgsp/dancu/TrangThai/{job}", timeout=5).json()
    assert st["TrangThai"] == "DangXuLy"
    early = requests.get(f"{url}/lgsp/dancu/KetQua/{job}", timeout=5)
    assert early.status_code == 409 and early.json()["TrangThai"] == "DangXuLy"

    # the same request again (a retry after a lost answer) is the same job
    again = requests.post(f"{url}/lgsp/dancu/YeuCauDanhSach", json=body, timeout=5)
    assert again.status_code == 200 and again.json()["MaYeuCau"] == job
    other = dict(body, DanhSach=body["DanhSach"][:1])
    assert requests.post(f"{url}/lgsp/dancu/YeuCauDanhSach", json=other, timeout=5).status_code == 409

    time.sleep(1.05)
    assert requests.get(f"{url}/lgsp/dancu/TrangThai/{job}", timeout=5).json()["TrangThai"] == "HoanThanh"
    res = requests.get(f"{url}/lgsp/dancu/KetQua/{job}", timeout=5).json()
    assert res["error_code"] == "0" and res["TrangThai"] == "HoanThanh"
    assert [(k["SoDinhDanh"], k["TimThay"]) for k in res["KetQua"]] == [
        ("036185000123", True),
        ("036185999999", False),
        ("001090001234", True),
    ]
    assert res["KetQua"][0]["CongDan"] == {
        "SoDinhDanh": "036185000123",
        "SoCMND": "",
        "HoVaTen": {"Ho": "Nguyễn", "ChuDem": "Thị", "Ten": "Thuý"},
        "GioiTinh": "2",
        "NgayThangNamSinh": {"NgayThangNam": "19850304"},
        "NoiDangKyKhaiSinh": {"MaTinhThanh": "036"},
    }
    assert res["KetQua"][1]["CongDan"] is None
    assert res["KetQua"][2]["CongDan"]["NgayThangNamSinh"] == {"Nam": "1990"}


def test_bulk_limits_and_unknown_jobs(pop):
    url = pop.urls["population"]
    big = ident(DanhSach=[{"SoDinhDanh": f"0361850{i:05d}"} for i in range(1001)])
    r = requests.post(f"{url}/lgsp/dancu/YeuCauDanhSach", json=big, timeout=5)
    assert r.status_code == 400 and r.json()["error_code"] == "400"
    ok = ident(DanhSach=[{"SoDinhDanh": f"0361850{i:05d}"} for i in range(1000)])
    assert requests.post(f"{url}/lgsp/dancu/YeuCauDanhSach", json=ok, timeout=5).status_code == 200
    for bad in ([], [{"HoVaTen": "x"}], "036185000123"):
        assert (
            requests.post(f"{url}/lgsp/dancu/YeuCauDanhSach", json=ident(DanhSach=bad), timeout=5).status_code
            == 400
        )
    no_ident = {"DanhSach": [{"SoDinhDanh": "036185000123"}]}
    assert requests.post(f"{url}/lgsp/dancu/YeuCauDanhSach", json=no_ident, timeout=5).status_code == 400
    assert requests.get(f"{url}/lgsp/dancu/TrangThai/NOPE", timeout=5).status_code == 404
    assert requests.get(f"{url}/lgsp/dancu/KetQua/NOPE", timeout=5).json()["error_code"] == "404"


def test_bulk_job_error_under_fault(pop):
    url = pop.urls["population"]
    requests.post(f"{url}/_sandbox/faults", json={"job_error": 1.0}, timeout=5)
    body = ident(DanhSach=[{"SoDinhDanh": "036185000123"}])
    assert (
        requests.post(f"{url}/lgsp/dancu/YeuCauDanhSach", json=body, timeout=5).json()["TrangThai"]
        == "DangXuLy"
    )
    time.sleep(1.05)
    assert (
        requests.get(f"{url}/lgsp/dancu/TrangThai/{body['MaYeuCau']}", timeout=5).json()["TrangThai"] == "Loi"
    )
    r = requests.get(f"{url}/lgsp/dancu/KetQua/{body['MaYeuCau']}", timeout=5)
    assert r.status_code == 500 and r.json()["TrangThai"] == "Loi"


def test_audit_log_has_identity_but_no_personal_data(pop, citizens, capfd):
    url = pop.urls["population"]
    body = ident(SoDinhDanh="036185000123", HoVaTen="Nguyễn Thị Thuý", NgayThangNamSinh="19850304")
    lookup(pop, **body)
    lookup(pop, **ident(SoDinhDanh="036185999999"))
    requests.get(f"{url}/lgsp/dancu/TrangThai/NOPE", params={"MaTichHop": "TTHC-SYNC"}, timeout=5)
    st = requests.get(f"{url}/_sandbox/state", timeout=5).json()
    first = st["audit"][0]
    assert {k: first[k] for k in ("MaYeuCau", "MaDVC", "MaTichHop", "MaCanBo")} == {
        k: body[k] for k in ("MaYeuCau", "MaDVC", "MaTichHop", "MaCanBo")
    }
    assert (first["endpoint"], first["http_status"], first["asked"], first["found"]) == (
        "TraCuuThongTinCongDan",
        200,
        1,
        1,
    )
    assert st["audit"][2]["endpoint"] == "TrangThai" and st["audit"][2]["MaTichHop"] == "TTHC-SYNC"
    assert st["counts"]["found"] == 1 and st["counts"]["not_found"] == 1
    assert st["registry_size"] == len(citizens)
    text = json.dumps(st, ensure_ascii=False)
    out, err = capfd.readouterr()
    for row in citizens:
        for value in (row[0], row[3], "19850304", "1985-03-04"):
            assert value not in text
            assert value not in out + err  # nothing personal printed by the server either


def test_faults_5xx_and_reset(pop):
    url = pop.urls["population"]
    requests.post(f"{url}/_sandbox/faults", json={"seed": 3, "error_5xx": 1.0}, timeout=5)
    statuses = {lookup(pop, **ident(SoDinhDanh="036185000123")).status_code for _ in range(12)}
    assert statuses <= {500, 502, 503} and len(statuses) >= 2
    requests.post(f"{url}/_sandbox/faults", json={"reset": 1.0}, timeout=5)
    with pytest.raises(requests.ConnectionError):
        lookup(pop, **ident(SoDinhDanh="036185000123"))
    requests.post(f"{url}/_sandbox/reset", timeout=5)  # back to the configured (quiet) profile
    assert lookup(pop, **ident(SoDinhDanh="036185000123")).status_code == 200


def test_registry_from_csv_is_validated(tmp_path):
    from sandbox.population import load_citizens_csv

    bad = tmp_path / "bad.csv"
    bad.write_text(
        "SoDinhDanh,Ho,ChuDem,Ten,NgaySinh,GioiTinh,MaTinhKhaiSinh\n036185000123,A,,B,04/03/1985,2,036\n",
        encoding="utf-8",
    )
    with pytest.raises(ValueError, match="NgaySinh"):
        load_citizens_csv(bad)
