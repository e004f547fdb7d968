"""connectors.lgsp: identity on every request, SOAP parsing (and refusal of unsafe XML), bulk
chunking and polling, audit without personal data."""

from __future__ import annotations

import itertools
import json
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses
from urllib3.exceptions import ProtocolError as Urllib3ProtocolError

from connectors.http import ProtocolError, RetryPolicy
from connectors.lgsp import (
    LgspClient,
    LgspError,
    LgspIdentity,
    LookupQuery,
    PollPolicy,
    RegistryPerson,
    UnsafeXmlError,
    parse_bulk_result,
    parse_soap_citizens,
)

BASE = "http://127.0.0.1:8702"
IDENT = LgspIdentity("DVC-TTHC-DONGBO", "TTHC-SYNC", "he-thong-dong-bo", purpose="Đối soát hồ sơ")
NS = "http://www.mic.gov.vn/dancu/1.0"

CONG_DAN = (
    "<CongDan><SoDinhDanh>036185000123</SoDinhDanh><SoCMND/>"
    "<HoVaTen><Ho>Nguyễn</Ho><ChuDem>Thị</ChuDem><Ten>Thuý</Ten></HoVaTen><GioiTinh>2</GioiTinh>"
    "<NgayThangNamSinh><NgayThangNam>19850304</NgayThangNam></NgayThangNamSinh>"
    "<NoiDangKyKhaiSinh><MaTinhThanh>036</MaTinhThanh></NoiDangKyKhaiSinh></CongDan>"
)
CONG_DAN_YEAR_ONLY = (
    "<CongDan><SoDinhDanh>001090001234</SoDinhDanh><SoCMND>012345678</SoCMND>"
    "<HoVaTen><Ho>Trần</Ho><ChuDem>Văn</ChuDem><Ten>Hoà</Ten></HoVaTen><GioiTinh>1</GioiTinh>"
    "<NgayThangNamSinh><Nam>1990</Nam></NgayThangNamSinh>"
    "<NoiDangKyKhaiSinh><MaTinhThanh>001</MaTinhThanh></NoiDangKyKhaiSinh></CongDan>"
)

THUY = RegistryPerson("036185000123", None, "Nguyễn", "Thị", "Thuý", 2, "1985-03-04", "036")
HOA = RegistryPerson("001090001234", "012345678", "Trần", "Văn", "Hoà", 1, "1990", "001")


def soap(*citizens: str) -> str:
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
        f'<CongdanCollection xmlns="{NS}">{"".join(citizens)}</CongdanCollection>'
        "</soap:Body></soap:Envelope>"
    )


XXE = (
    '<?xml version="1.0"?><!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
    f'<CongdanCollection xmlns="{NS}"><CongDan><SoDinhDanh>&xxe;</SoDinhDanh></CongDan>'
    "</CongdanCollection></soap:Body></soap:Envelope>"
)
BILLION_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
    '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
    f'<CongdanCollection xmlns="{NS}"><CongDan><SoDinhDanh>&lol3;</SoDinhDanh></CongDan></CongdanCollection>'
)
DOCTYPE_ONLY = f'<!DOCTYPE x><CongdanCollection xmlns="{NS}"/>'


def ids():
    counter = itertools.count(1)
    return lambda: f"req{next(counter):04d}"


def make(sleeps, **kw) -> LgspClient:
    kw.setdefault("retry", RetryPolicy(max_attempts=4, jitter=0))
    kw.setdefault("request_id_factory", ids())
    return LgspClient(BASE, IDENT, sleep=sleeps, **kw)


# ---- parsing -------------------------------------------------------------------------------------


def test_parse_soap_found_and_not_found():
    assert parse_soap_citizens(soap(CONG_DAN, CONG_DAN_YEAR_ONLY)) == [THUY, HOA]
    assert parse_soap_citizens(soap()) == []
    assert parse_soap_citizens(soap(CONG_DAN).encode("utf-8")) == [THUY]
    assert THUY.full_name == "Nguyễn Thị Thuý"


@pytest.mark.parametrize("doc", [XXE, BILLION_LAUGHS, DOCTYPE_ONLY], ids=["xxe", "billion_laughs", "doctype"])
def test_unsafe_xml_refused(doc):
    with pytest.raises(UnsafeXmlError) as ei:
        parse_soap_citizens(doc)
    msg = str(ei.value)
    assert "refused" in msg and "passwd" not in msg and "lol" not in msg


def test_malformed_xml_and_fault():
    with pytest.raises(ProtocolError) as ei:
        parse_soap_citizens("<CongdanCollection><CongDan>036185000123")
    assert "036185000123" not in str(ei.value)
    fault = (
        '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><soap:Fault>'
        "<faultcode>soap:Server</faultcode><faultstring>x</faultstring></soap:Fault></soap:Body></soap:Envelope>"
    )
    with pytest.raises(ProtocolError, match="SOAP Fault"):
        parse_soap_citizens(fault)
    with pytest.raises(ProtocolError, match="without CongdanCollection"):
        parse_soap_citizens("<a/>")
    with pytest.raises(ProtocolError, match="namespace"):
        parse_soap_citizens('<CongdanCollection xmlns="urn:other"/>')


def test_parse_bulk_result_shapes():
    json_items = {
        "error_code": "0",
        "KetQua": [
            {
                "SoDinhDanh": "036185000123",
                "TimThay": True,
                "CongDan": {
                    "SoDinhDanh": "036185000123",
                    "SoCMND": "",
                    "HoVaTen": {"Ho": "Nguyễn", "ChuDem": "Thị", "Ten": "Thuý"},
                    "GioiTinh": "2",
                    "NgayThangNamSinh": {"NgayThangNam": "19850304"},
                    "NoiDangKyKhaiSinh": {"MaTinhThanh": "036"},
                },
            },
            {"SoDinhDanh": "001099999999", "TimThay": False, "CongDan": None},
        ],
    }
    assert parse_bulk_result(json_items) == [("036185000123", THUY), ("001099999999", None)]
    flat = [
        {
            "SoDinhDanh": "001090001234",
            "found": "true",
            "SoCMND": "012345678",
            "HoVaTen": {"Ho": "Trần", "ChuDem": "Văn", "Ten": "Hoà"},
            "GioiTinh": 1,
            "NgayThangNamSinh": {"Nam": "1990"},
            "NoiDangKyKhaiSinh": {"MaTinhThanh": "001"},
        }
    ]
    assert parse_bulk_result(flat) == [("001090001234", HOA)]
    assert parse_bulk_result({"error_code": "0", "message": soap(CONG_DAN)}) == [("036185000123", THUY)]
    with pytest.raises(ProtocolError):
        parse_bulk_result({"error_code": "0"})


# ---- single lookup -------------------------------------------------------------------------------


@responses.activate
def test_lookup_sends_identity_and_parses(sleeps):
    responses.add(
        responses.POST,
        f"{BASE}/lgsp/dancu/TraCuuThongTinCongDan",
        json={"error_code": "0", "message": soap(CONG_DAN)},
    )
    events = []
    c = make(sleeps, on_request=lambda *a: events.append(a))
    person = c.lookup(LookupQuery("036185000123", "Nguyễn Thị Thuý", "1985-03-04"))
    assert person == THUY
    sent = json.loads(responses.calls[0].request.body)
    assert sent == {
        "MaYeuCau": "req0001",
        "MaDVC": "DVC-TTHC-DONGBO",
        "MaTichHop": "TTHC-SYNC",
        "MaCanBo": "he-thong-dong-bo",
        "SoDinhDanh": "036185000123",
        "HoVaTen": "Nguyễn Thị Thuý",
        "NgayThangNamSinh": "1985-03-04",
    }
    assert events == [("lookup", "req0001", 1, "found")]
    [audit] = c.audit_log
    assert audit.purpose == "Đối soát hồ sơ" and audit.officer_code == "he-thong-dong-bo" and audit.found == 1


@responses.activate
def test_lookup_not_found_and_unique_request_ids(sleeps):
    responses.add(
        responses.POST,
        f"{BASE}/lgsp/dancu/TraCuuThongTinCongDan",
        json={"error_code": "0", "message": soap()},
    )
    c = LgspClient(BASE, IDENT, sleep=sleeps)
    assert c.lookup("001099999999") is None
    assert c.lookup("001099999998") is None
    rids = [json.loads(call.request.body)["MaYeuCau"] for call in responses.calls]
    assert len(set(rids)) == 2 and all(re.fullmatch(r"[0-9a-f]{32}", r) for r in rids)
    assert [e.status for e in c.audit_log] == ["not_found", "not_found"]


@responses.activate
def test_lookup_by_old_cmnd_picks_the_person(sleeps):
    responses.add(
        responses.POST,
        f"{BASE}/lgsp/dancu/TraCuuThongTinCongDan",
        json={"error_code": "0", "message": soap(CONG_DAN, CONG_DAN_YEAR_ONLY)},
    )
    assert make(sleeps).lookup("012345678") == HOA


@responses.activate
def test_error_code_with_http_200_is_an_error(sleeps):
    responses.add(
        responses.POST,
        f"{BASE}/lgsp/dancu/TraCuuThongTinCongDan",
        json={"error_code": "403", "message": "Không có quyền tra cứu 036185000123"},
    )
    events = []
    with pytest.raises(LgspError) as ei:
        make(sleeps, on_request=lambda *a: events.append(a)).lookup("036185000123")
    assert ei.value.error_code == "403" and "036185000123" not in str(ei.value)
    assert events == [("lookup", "req0001", 1, "error:LgspError")]


@responses.activate
def test_lookup_rate_limited_then_ok_same_request_id(sleeps):
    url = f"{BASE}/lgsp/dancu/TraCuuThongTinCongDan"
    responses.add(
        responses.POST,
        url,
        status=429,
        headers={"Retry-After": "2"},
        json={"error_code": "429", "message": "Vượt quá giới hạn"},
    )
    responses.add(responses.POST, url, json={"error_code": "0", "message": soap(CONG_DAN)})
    assert make(sleeps).lookup("036185000123") == THUY
    assert sleeps == [2.0]
    assert {json.loads(c.request.body)["MaYeuCau"] for c in responses.calls} == {"req0001"}


@responses.activate
def test_lookup_unsafe_xml_from_server(sleeps):
    responses.add(
        responses.POST, f"{BASE}/lgsp/dancu/TraCuuThongTinCongDan", json={"error_code": "0", "message": XXE}
    )
    events = []
    with pytest.raises(UnsafeXmlError):
        make(sleeps, on_request=lambda *a: events.append(a)).lookup("036185000123")
    assert events == [("lookup", "req0001", 1, "error:UnsafeXmlError")]


def test_identity_required():
    with pytest.raises(ValueError):
        LgspIdentity("DVC", "", "officer")


# ---- bulk ----------------------------------------------------------------------------------------


class FakeBulk:
    """YeuCauDanhSach / TrangThai / KetQua as sandbox/population.py answers them."""

    def __init__(
        self,
        registry: dict[str, dict[str, Any]],
        *,
        polls_until_done: int = 2,
        failing_jobs: set[str] | None = None,
    ):
        self.registry = registry
        self.polls_until_done = polls_until_done
        self.failing = failing_jobs or set()
        self.jobs: dict[str, list[str]] = {}
        self.polls: dict[str, int] = {}
        self.get_identity: list[dict[str, str]] = []

    def submit(self, request):
        body = json.loads(request.body)
        assert all(body.get(k) for k in ("MaYeuCau", "MaDVC", "MaTichHop", "MaCanBo"))
        items = body["DanhSach"]
        if not 1 <= len(items) <= 1000:
            return 400, {}, json.dumps({"error_code": "400", "message": "DanhSach tối đa 1000 phần tử"})
        self.jobs[body["MaYeuCau"]] = [i["SoDinhDanh"] for i in items]
        return 200, {}, json.dumps({"error_code": "0", "MaYeuCau": body["MaYeuCau"], "TrangThai": "DangXuLy"})

    def _job(self, request) -> str:
        self.get_identity.append({k: v[0] for k, v in parse_qs(urlsplit(request.url).query).items()})
        return urlsplit(request.url).path.rsplit("/", 1)[-1]

    def status(self, request):
        job = self._job(request)
        n = self.polls[job] = self.polls.get(job, 0) + 1
        st = "DangXuLy" if n < self.polls_until_done else ("Loi" if job in self.failing else "HoanThanh")
        return 200, {}, json.dumps({"error_code": "0", "MaYeuCau": job, "TrangThai": st})

    def result(self, request):
        job = self._job(request)
        out = [
            {"SoDinhDanh": n, "TimThay": n in self.registry, "CongDan": self.registry.get(n)}
            for n in self.jobs[job]
        ]
        return (
            200,
            {},
            json.dumps({"error_code": "0", "message": "", "TrangThai": "HoanThanh", "KetQua": out}),
        )

    def register(self, rsps):
        rsps.add_callback(responses.POST, f"{BASE}/lgsp/dancu/YeuCauDanhSach", callback=self.submit)
        rsps.add_callback(
            responses.GET, re.compile(rf"{BASE}/lgsp/dancu/TrangThai/\w+.*"), callback=self.status
        )
        rsps.add_callback(responses.GET, re.compile(rf"{BASE}/lgsp/dancu/KetQua/\w+.*"), callback=self.result)


def congdan_json(number: str) -> dict[str, Any]:
    return {
        "SoDinhDanh": number,
        "SoCMND": "",
        "HoVaTen": {"Ho": "Lê", "ChuDem": "", "Ten": "Minh"},
        "GioiTinh": "1",
        "NgayThangNamSinh": {"NgayThangNam": "20011231"},
        "NoiDangKyKhaiSinh": {"MaTinhThanh": "079"},
    }


@responses.activate
def test_bulk_chunks_of_at_most_1000_and_polls_with_backoff(sleeps):
    numbers = [f"079201{i:06d}" for i in range(2500)]
    registry = {n: congdan_json(n) for n in numbers[::2]}
    fake = FakeBulk(registry, polls_until_done=4)
    fake.register(responses)
    events = []
    c = make(
        sleeps,
        on_request=lambda *a: events.append(a),
        poll=PollPolicy(initial=0.5, factor=2, max_interval=1.5),
    )
    out = c.lookup_many(numbers + numbers[:10])  # duplicates are asked once
    assert sorted(len(v) for v in fake.jobs.values()) == [500, 1000, 1000]
    assert len(out) == 2500
    assert sum(r.found for r in out.values()) == 1250
    assert out[numbers[0]].person.ten == "Minh" and out[numbers[1]].status == "not_found"
    # per job: DangXuLy x3 (sleep 0.5, 1.0, 1.5 capped), then HoanThanh
    assert sleeps == [0.5, 1.0, 1.5] * 3
    kinds = [(k, c_) for k, _, c_, _ in events]
    assert kinds.count(("bulk_submit", 1000)) == 2 and kinds.count(("bulk_result", 500)) == 1
    assert all(k == "bulk_status" for k, _, c_, s in events if c_ == 0)
    assert fake.get_identity[0] == {
        "MaDVC": "DVC-TTHC-DONGBO",
        "MaTichHop": "TTHC-SYNC",
        "MaCanBo": "he-thong-dong-bo",
    }
    # the audit never carries a number or a name
    blob = json.dumps([list(e) for e in events]) + repr(c.audit_log)
    assert not re.search(r"\d{9,}", blob) and "Minh" not in blob


@responses.activate
def test_bulk_failed_job_is_resubmitted_then_marked_failed(sleeps):
    numbers = [f"079201{i:06d}" for i in range(3)]
    fake = FakeBulk({}, polls_until_done=1, failing_jobs={"req0001", "req0002", "req0003"})
    fake.register(responses)
    out = make(sleeps, max_job_resubmits=2).lookup_many(numbers)
    assert set(fake.jobs) == {"req0001", "req0002", "req0003"}
    assert {r.status for r in out.values()} == {"failed"} and out[numbers[0]].error == "job:Loi"


@responses.activate
def test_bulk_failed_job_recovers_on_resubmit(sleeps):
    numbers = [f"079201{i:06d}" for i in range(3)]
    fake = FakeBulk({numbers[0]: congdan_json(numbers[0])}, polls_until_done=1, failing_jobs={"req0001"})
    fake.register(responses)
    out = make(sleeps).lookup_many(numbers)
    assert out[numbers[0]].found and out[numbers[2]].status == "not_found"


@responses.activate
def test_bulk_polling_gives_up(sleeps):
    fake = FakeBulk({}, polls_until_done=10**6)
    fake.register(responses)
    out = make(sleeps, poll=PollPolicy(initial=1, max_polls=3), max_job_resubmits=0).lookup_many(
        ["079201000001"]
    )
    assert out["079201000001"].status == "failed" and out["079201000001"].error == "job:timeout"
    assert sleeps == [1, 2, 4]


@responses.activate
def test_bulk_submit_answer_lost_is_resent_with_same_request_id(sleeps):
    fake = FakeBulk({}, polls_until_done=1)
    lost = requests.exceptions.ConnectionError(
        Urllib3ProtocolError("Connection aborted.", ConnectionResetError(104, "reset"))
    )
    responses.add(responses.POST, f"{BASE}/lgsp/dancu/YeuCauDanhSach", body=lost)
    fake.register(responses)
    make(sleeps).lookup_many(["079201000001"])
    bodies = [
        json.loads(c.request.body) for c in responses.calls if c.request.method == "POST" and c.request.body
    ]
    assert list(fake.jobs) == ["req0001"] and all(b["MaYeuCau"] == "req0001" for b in bodies)


def test_bulk_chunk_size_validated(sleeps):
    with pytest.raises(ValueError):
        make(sleeps).lookup_many(["1"], chunk_size=1001)
