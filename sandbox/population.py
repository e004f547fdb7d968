"""Simulator of the population-database lookup through the provincial LGSP (world.md §5).

Identity
--------
Every POST carries ``MaYeuCau`` (unique request id), ``MaDVC``, ``MaTichHop`` and ``MaCanBo``.
Each is a non-empty string (an integer is taken as its text). A missing or empty one → HTTP 400
``{"error_code": "400", "message": "Thiếu trường bắt buộc: ..."}``.
Every request (GETs too) is written to the audit log: time, endpoint, the four identity fields
(GETs: the path's ``MaYeuCau``, plus ``MaTichHop``/``MaCanBo`` if sent as query parameters or
headers), the HTTP status, how many numbers were asked and found. Never a number, name or date.

Single lookup
-------------
``POST /lgsp/dancu/TraCuuThongTinCongDan`` ``{identity..., "SoDinhDanh", "HoVaTen",
"NgayThangNamSinh"}`` → ``{"error_code": "0", "message": "<SOAP XML>"}``. The registry is keyed by
number: ``SoDinhDanh`` is looked up as a CCCD or an old 9-digit CMND (``SoCMND``); ``HoVaTen`` and
``NgayThangNamSinh`` are optional and do not filter (the caller compares what comes back: that is
how name and birth-date mismatches become visible). The XML::

    <soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>
      <CongdanCollection xmlns="http://www.mic.gov.vn/dancu/1.0">
        <CongDan><SoDinhDanh/><SoCMND/><HoVaTen><Ho/><ChuDem/><Ten/></HoVaTen><GioiTinh/>
          <NgayThangNamSinh><NgayThangNam>yyyyMMdd</NgayThangNam> | <Nam>yyyy</Nam></NgayThangNamSinh>
          <NoiDangKyKhaiSinh><MaTinhThanh/></NoiDangKyKhaiSinh></CongDan>
      </CongdanCollection></soap:Body></soap:Envelope>

Not found → an empty ``CongdanCollection``. Missing ``SoDinhDanh`` → 400.

Rate limit: a token bucket per ``MaTichHop`` of ``rate_limit_per_second`` requests per second
(burst = the same number; 0 = unlimited) over both POST endpoints → HTTP 429,
``Retry-After: <seconds>``, ``{"error_code": "429", "message": ...}``.

Bulk, asynchronous
------------------
``POST /lgsp/dancu/YeuCauDanhSach`` ``{identity..., "DanhSach": [{"SoDinhDanh", "HoVaTen",
"NgayThangNamSinh"}, ...]}`` (1..1000 entries, each with ``SoDinhDanh``; else 400) →
``{"error_code": "0", "MaYeuCau": <the request's MaYeuCau>, "TrangThai": "DangXuLy"}``. The job id
is the caller's ``MaYeuCau``: re-sending the same ``MaYeuCau`` with the same list returns the same
job (a retry after a lost answer is safe); with a different list → 409 ``error_code "409"``.

``GET /lgsp/dancu/TrangThai/{MaYeuCau}`` → ``{"error_code": "0", "MaYeuCau", "TrangThai":
"DangXuLy" | "HoanThanh" | "Loi"}``; ``DangXuLy`` until ``bulk_delay_seconds`` (wall clock) has
passed since submission. ``Loi`` when the fault profile's ``job_error`` draw hit the job.
Unknown id → 404 ``error_code "404"``.

``GET /lgsp/dancu/KetQua/{MaYeuCau}`` → when ``HoanThanh``::

    {"error_code": "0", "message": "", "MaYeuCau": "...", "TrangThai": "HoanThanh",
     "KetQua": [{"SoDinhDanh": "<as asked>", "TimThay": true,
                 "CongDan": {"SoDinhDanh", "SoCMND", "HoVaTen": {"Ho", "ChuDem", "Ten"},
                             "GioiTinh": "1"|"2",
                             "NgayThangNamSinh": {"NgayThangNam": "yyyyMMdd"} | {"Nam": "yyyy"},
                             "NoiDangKyKhaiSinh": {"MaTinhThanh"}}},
                {"SoDinhDanh": "...", "TimThay": false, "CongDan": null}, ...]}

one result per requested entry, in request order (the same number asked twice gets two results).
``CongDan`` mirrors the XML element for element, values as the XML's text (strings; ``SoCMND``
``""`` when none). Still processing → 409 ``{"error_code": "409", "TrangThai": "DangXuLy"}``;
``Loi`` → 500 ``{"error_code": "500", "TrangThai": "Loi", "message": ...}``; unknown → 404.

Registry data: the World's citizens (their spelling as given: the world is the truth) or a
fixture CSV ``SoDinhDanh,Ho,ChuDem,Ten,NgaySinh,GioiTinh,MaTinhKhaiSinh`` (world.md §7;
NgaySinh ``yyyy-mm-dd`` or ``yyyy``) which replaces the world's citizens. Optional ``SoCMND``
column. ``upper_case_names`` renders names as ID cards print them.

Inspection: ``GET /_sandbox/state`` → ``audit`` (the log above), ``counts`` (per endpoint and per
MaTichHop, found / not found, rate-limited), ``jobs`` (id, status, size), ``registry_size``.
"""

from __future__ import annotations

import csv
import math
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from flask import Flask, jsonify, request

from sandbox.common import add_control_routes, json_app
from sandbox.faults import FaultInjector, FaultMiddleware, FaultProfile

NS_DANCU = "http://www.mic.gov.vn/dancu/1.0"
NS_SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
IDENTITY_FIELDS = ("MaYeuCau", "MaDVC", "MaTichHop", "MaCanBo")
MAX_BULK = 1000
CSV_HEADER = ("SoDinhDanh", "Ho", "ChuDem", "Ten", "NgaySinh", "GioiTinh", "MaTinhKhaiSinh")


@dataclass(frozen=True)
class RegistryEntry:
    """One person as the population registry holds them."""

    id_number: str
    ho: str
    chu_dem: str
    ten: str
    birth_date: str  # "YYYY-MM-DD" or "YYYY"
    sex: int
    birth_province: str
    cmnd_number: str | None = None


@dataclass
class PopulationConfig:
    registry: list[RegistryEntry] = field(default_factory=list)
    rate_limit_per_second: float = 50.0
    bulk_delay_seconds: float = 0.5
    upper_case_names: bool = False
    faults: FaultProfile = field(default_factory=FaultProfile)


def registry_from_citizens(citizens: Any) -> list[RegistryEntry]:
    """World citizens (:class:`sandbox.world_types.CitizenTruth`) → registry entries."""
    return [
        RegistryEntry(
            id_number=c.id_number,
            ho=c.ho,
            chu_dem=c.chu_dem or "",
            ten=c.ten,
            birth_date=c.birth_date,
            sex=int(c.sex),
            birth_province=c.birth_province,
            cmnd_number=getattr(c, "cmnd_number", None),
        )
        for c in citizens
    ]


def load_citizens_csv(path: str | Path) -> list[RegistryEntry]:
    """Read the world.md §7 citizens CSV (UTF-8, BOM tolerated); raise ValueError on a bad row."""
    out: list[RegistryEntry] = []
    with open(path, encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [h for h in CSV_HEADER if h not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"citizens CSV {path}: missing columns {', '.join(missing)}")
        for lineno, row in enumerate(reader, start=2):
            birth = (row["NgaySinh"] or "").strip()
            if not _valid_birth(birth):
                raise ValueError(f"citizens CSV {path}: line {lineno}: NgaySinh not yyyy-mm-dd or yyyy")
            sex = (row["GioiTinh"] or "").strip()
            if sex not in ("1", "2"):
                raise ValueError(f"citizens CSV {path}: line {lineno}: GioiTinh must be 1 or 2")
            number = (row["SoDinhDanh"] or "").strip()
            if not number:
                raise ValueError(f"citizens CSV {path}: line {lineno}: SoDinhDanh empty")
            out.append(
                RegistryEntry(
                    id_number=number,
                    ho=(row["Ho"] or "").strip(),
                    chu_dem=(row["ChuDem"] or "").strip(),
                    ten=(row["Ten"] or "").strip(),
                    birth_date=birth,
                    sex=int(sex),
                    birth_province=(row["MaTinhKhaiSinh"] or "").strip(),
                    cmnd_number=(row.get("SoCMND") or "").strip() or None,
                )
            )
    return out


def _valid_birth(s: str) -> bool:
    try:
        if len(s) == 4 and s.isdigit():
            return True
        datetime.strptime(s, "%Y-%m-%d")
        return True
    except ValueError:
        return False


def _ident_value(v: Any) -> str | None:
    """An identity field as text: a non-empty string or an integer; anything else is missing."""
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str) and v.strip():
        return v.strip()
    return None


# ---- rendering ---------------------------------------------------------------------------------
def congdan_fields(e: RegistryEntry, *, upper: bool = False) -> dict[str, Any]:
    """The CongDan element as a dict of strings (the bulk result's ``CongDan``)."""

    def name(s: str) -> str:
        return s.upper() if upper else s

    if len(e.birth_date) == 4:
        birth: dict[str, str] = {"Nam": e.birth_date}
    else:
        birth = {"NgayThangNam": e.birth_date.replace("-", "")}
    return {
        "SoDinhDanh": e.id_number,
        "SoCMND": e.cmnd_number or "",
        "HoVaTen": {"Ho": name(e.ho), "ChuDem": name(e.chu_dem), "Ten": name(e.ten)},
        "GioiTinh": str(e.sex),
        "NgayThangNamSinh": birth,
        "NoiDangKyKhaiSinh": {"MaTinhThanh": e.birth_province},
    }


def _xml_elem(tag: str, value: Any) -> str:
    if isinstance(value, dict):
        inner = "".join(_xml_elem(k, v) for k, v in value.items())
        return f"<{tag}>{inner}</{tag}>"
    text = "" if value is None else escape(str(value))
    return f"<{tag}>{text}</{tag}>" if text else f"<{tag}/>"


def soap_response(entries: list[RegistryEntry], *, upper: bool = False) -> str:
    """SOAP envelope with ``CongdanCollection`` (default namespace = the dancu namespace)."""
    body = "".join(_xml_elem("CongDan", congdan_fields(e, upper=upper)) for e in entries)
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        f'<soap:Envelope xmlns:soap="{NS_SOAP}"><soap:Body>'
        f'<CongdanCollection xmlns="{NS_DANCU}">{body}</CongdanCollection>'
        "</soap:Body></soap:Envelope>"
    )


# ---- behaviour ---------------------------------------------------------------------------------
class _Bucket:
    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.tokens = max(1.0, rate)
        self.stamp = time.monotonic()

    def take(self) -> float:
        """0 when allowed, else seconds until the next token."""
        now = time.monotonic()
        self.tokens = min(max(1.0, self.rate), self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


@dataclass
class _Job:
    job_id: str
    numbers: list[str]
    submitted: float
    fails: bool
    fingerprint: tuple[str, ...]


class PopulationSimulator:
    def __init__(self, config: PopulationConfig | None = None) -> None:
        self.config = config or PopulationConfig()
        self.injector = FaultInjector(self.config.faults)
        self._lock = threading.RLock()
        self.set_registry(self.config.registry)
        self.reset()

    def set_registry(self, entries: list[RegistryEntry]) -> None:
        with self._lock:
            self.registry = list(entries)
            index: dict[str, RegistryEntry] = {}
            for e in self.registry:
                index.setdefault(e.id_number, e)
            for e in self.registry:
                if e.cmnd_number:
                    index.setdefault(e.cmnd_number, e)
            self._index = index

    def reset(self) -> None:
        with self._lock:
            self.audit: list[dict[str, Any]] = []
            self.jobs: dict[str, _Job] = {}
            self.buckets: dict[str, _Bucket] = {}
            self.counts: dict[str, Any] = {
                "by_endpoint": {},
                "by_client": {},
                "found": 0,
                "not_found": 0,
                "rate_limited": 0,
                "rejected": 0,
            }

    def find(self, number: Any) -> RegistryEntry | None:
        if not isinstance(number, str):
            return None
        return self._index.get(number.strip())

    # ---- audit -----------------------------------------------------------------------------
    def _audit(self, endpoint: str, ident: dict[str, Any], status: int, asked: int, found: int) -> None:
        rec = {
            "time": datetime.now().isoformat(timespec="milliseconds"),
            "endpoint": endpoint,
            **{k: _ident_value(ident.get(k)) for k in IDENTITY_FIELDS},
            "http_status": status,
            "asked": asked,
            "found": found,
        }
        with self._lock:
            self.audit.append(rec)
            c = self.counts
            c["by_endpoint"][endpoint] = c["by_endpoint"].get(endpoint, 0) + 1
            client = rec["MaTichHop"] or "-"
            c["by_client"][client] = c["by_client"].get(client, 0) + 1
            c["found"] += found
            c["not_found"] += asked - found
            if status == 429:
                c["rate_limited"] += 1
            elif status >= 400:
                c["rejected"] += 1

    def state(self) -> dict[str, Any]:
        with self._lock:
            now = time.monotonic()
            return {
                "registry_size": len(self.registry),
                "audit": list(self.audit),
                "counts": {k: (dict(v) if isinstance(v, dict) else v) for k, v in self.counts.items()},
                "jobs": [
                    {"MaYeuCau": j.job_id, "TrangThai": self._status(j, now), "size": len(j.numbers)}
                    for j in self.jobs.values()
                ],
            }

    # ---- checks ----------------------------------------------------------------------------
    @staticmethod
    def _missing_identity(body: dict[str, Any]) -> list[str]:
        return [k for k in IDENTITY_FIELDS if _ident_value(body.get(k)) is None]

    def _rate_wait(self, client: str) -> float:
        rate = self.config.rate_limit_per_second
        if rate <= 0:
            return 0.0
        with self._lock:
            bucket = self.buckets.setdefault(client, _Bucket(rate))
            return bucket.take()

    def _status(self, job: _Job, now: float) -> str:
        if now - job.submitted < self.config.bulk_delay_seconds:
            return "DangXuLy"
        return "Loi" if job.fails else "HoanThanh"

    # ---- endpoints -------------------------------------------------------------------------
    def _pre(self, endpoint: str, body: Any) -> tuple[dict[str, Any], tuple[Any, int, dict] | None]:
        """Identity and rate limit checks common to both POSTs."""
        if not isinstance(body, dict):
            self._audit(endpoint, {}, 400, 0, 0)
            return {}, ({"error_code": "400", "message": "Yêu cầu không phải JSON hợp lệ"}, 400, {})
        missing = self._missing_identity(body)
        if missing:
            self._audit(endpoint, body, 400, 0, 0)
            msg = "Thiếu trường bắt buộc: " + ", ".join(missing)
            return body, ({"error_code": "400", "message": msg}, 400, {})
        wait = self._rate_wait(str(_ident_value(body["MaTichHop"])))
        if wait > 0:
            self._audit(endpoint, body, 429, 0, 0)
            headers = {"Retry-After": str(max(1, math.ceil(wait)))}
            msg = "Vượt quá giới hạn tần suất truy vấn"
            return body, ({"error_code": "429", "message": msg}, 429, headers)
        return body, None

    def lookup(self, body: Any) -> tuple[dict[str, Any], int, dict[str, str]]:
        ep = "TraCuuThongTinCongDan"
        body, err = self._pre(ep, body)
        if err:
            return err
        number = body.get("SoDinhDanh")
        if not isinstance(number, str) or not number.strip():
            self._audit(ep, body, 400, 0, 0)
            return {"error_code": "400", "message": "Thiếu trường bắt buộc: SoDinhDanh"}, 400, {}
        entry = self.find(number)
        self._audit(ep, body, 200, 1, 1 if entry else 0)
        xml = soap_response([entry] if entry else [], upper=self.config.upper_case_names)
        return {"error_code": "0", "message": xml}, 200, {}

    def submit(self, body: Any) -> tuple[dict[str, Any], int, dict[str, str]]:
        ep = "YeuCauDanhSach"
        body, err = self._pre(ep, body)
        if err:
            return err
        items = body.get("DanhSach")
        problem = None
        if not isinstance(items, list) or not items:
            problem = "DanhSach phải là danh sách không rỗng"
        elif len(items) > MAX_BULK:
            problem = f"DanhSach tối đa {MAX_BULK} phần tử"
        elif not all(
            isinstance(i, dict) and isinstance(i.get("SoDinhDanh"), str) and i["SoDinhDanh"].strip()
            for i in items
        ):
            problem = "Mỗi phần tử của DanhSach cần SoDinhDanh"
        if problem:
            self._audit(ep, body, 400, 0, 0)
            return {"error_code": "400", "message": problem}, 400, {}
        numbers = [i["SoDinhDanh"].strip() for i in items]
        job_id = str(_ident_value(body["MaYeuCau"]))
        with self._lock:
            existing = self.jobs.get(job_id)
            if existing is not None:
                if existing.fingerprint != tuple(numbers):
                    self._audit(ep, body, 409, len(numbers), 0)
                    msg = "MaYeuCau đã được dùng cho một danh sách khác"
                    return {"error_code": "409", "message": msg}, 409, {}
                self._audit(ep, body, 200, len(numbers), 0)
                status = self._status(existing, time.monotonic())
                return {"error_code": "0", "MaYeuCau": job_id, "TrangThai": status}, 200, {}
            fails = self.injector.draw("job_error")
            self.jobs[job_id] = _Job(job_id, numbers, time.monotonic(), fails, tuple(numbers))
        self._audit(ep, body, 200, len(numbers), 0)
        return {"error_code": "0", "MaYeuCau": job_id, "TrangThai": "DangXuLy"}, 200, {}

    def _get_ident(self, job_id: str) -> dict[str, Any]:
        ident: dict[str, Any] = {"MaYeuCau": job_id}
        for k in ("MaDVC", "MaTichHop", "MaCanBo"):
            v = request.args.get(k) or request.headers.get(k)
            if v:
                ident[k] = v
        return ident

    def status(self, job_id: str) -> tuple[dict[str, Any], int]:
        with self._lock:
            job = self.jobs.get(job_id)
        if job is None:
            self._audit("TrangThai", self._get_ident(job_id), 404, 0, 0)
            return {"error_code": "404", "message": "Không tìm thấy yêu cầu"}, 404
        self._audit("TrangThai", self._get_ident(job_id), 200, 0, 0)
        return {"error_code": "0", "MaYeuCau": job_id, "TrangThai": self._status(job, time.monotonic())}, 200

    def result(self, job_id: str) -> tuple[dict[str, Any], int]:
        ep = "KetQua"
        with self._lock:
            job = self.jobs.get(job_id)
        ident = self._get_ident(job_id)
        if job is None:
            self._audit(ep, ident, 404, 0, 0)
            return {"error_code": "404", "message": "Không tìm thấy yêu cầu"}, 404
        st = self._status(job, time.monotonic())
        if st == "DangXuLy":
            self._audit(ep, ident, 409, 0, 0)
            msg = "Yêu cầu đang được xử lý"
            return {"error_code": "409", "message": msg, "MaYeuCau": job_id, "TrangThai": st}, 409
        if st == "Loi":
            self._audit(ep, ident, 500, 0, 0)
            msg = "Xử lý yêu cầu bị lỗi, vui lòng gửi lại"
            return {"error_code": "500", "message": msg, "MaYeuCau": job_id, "TrangThai": st}, 500
        results = []
        found = 0
        for n in job.numbers:
            e = self.find(n)
            if e is not None:
                found += 1
            results.append(
                {
                    "SoDinhDanh": n,
                    "TimThay": e is not None,
                    "CongDan": congdan_fields(e, upper=self.config.upper_case_names) if e else None,
                }
            )
        self._audit(ep, ident, 200, len(job.numbers), found)
        return {"error_code": "0", "message": "", "MaYeuCau": job_id, "TrangThai": st, "KetQua": results}, 200

    # ---- WSGI ------------------------------------------------------------------------------
    def app(self) -> Any:
        app: Flask = json_app("sandbox.population")

        def reply(out: tuple[dict[str, Any], int, dict[str, str]]) -> Any:
            body, status, headers = out
            return jsonify(body), status, headers

        @app.post("/lgsp/dancu/TraCuuThongTinCongDan")
        def lookup() -> Any:
            return reply(self.lookup(request.get_json(silent=True)))

        @app.post("/lgsp/dancu/YeuCauDanhSach")
        def submit() -> Any:
            return reply(self.submit(request.get_json(silent=True)))

        @app.get("/lgsp/dancu/TrangThai/<job_id>")
        def status(job_id: str) -> Any:
            body, code = self.status(job_id)
            return jsonify(body), code

        @app.get("/lgsp/dancu/KetQua/<job_id>")
        def result(job_id: str) -> Any:
            body, code = self.result(job_id)
            return jsonify(body), code

        add_control_routes(app, self.injector, state=self.state, reset=self.reset)
        app.wsgi_app = FaultMiddleware(  # type: ignore[method-assign]
            app.wsgi_app,
            self.injector,
            error_body=lambda status, msg, path: {"error_code": str(status), "message": msg},
        )
        return app
