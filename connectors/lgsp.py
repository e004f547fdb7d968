"""Client of the population database (CSDLQG về dân cư, Đề án 06) through the provincial LGSP
(world.md §5): single lookups answered in SOAP XML, and bulk asynchronous lookups.

Identity and audit. Every request carries ``MaYeuCau`` (a fresh ``uuid4().hex`` per logical
request; transport retries of that request reuse it), ``MaDVC`` (service), ``MaTichHop``
(integration) and ``MaCanBo`` (officer); GETs send the last three as query parameters. After
every request the client calls ``on_request(kind, request_id, count, status)`` and appends an
:class:`AuditEvent` (when, who, why, how many; never a number, name or date) to
:attr:`LgspClient.audit_log`, so the caller can write the lookup audit the law asks for. Kinds:
``lookup``, ``bulk_submit``, ``bulk_status``, ``bulk_result``.

Untrusted XML. The SOAP answer is parsed with ``defusedxml`` with DTDs forbidden: external
entities, entity expansion ("billion laughs") and any DOCTYPE are refused with
:class:`UnsafeXmlError` (SOAP 1.1 forbids a DTD in a message anyway).

Bulk. Numbers are deduplicated, sent in chunks of at most 1,000 (``YeuCauDanhSach``), all chunks
first, then each job is polled (``TrangThai/{MaYeuCau}``) with exponential back-off until
``HoanThanh`` (then ``KetQua/{MaYeuCau}``) or ``Loi`` (then the chunk is resubmitted under a new
``MaYeuCau``, a bounded number of times; after that its numbers come back as ``failed``). The job id
is our ``MaYeuCau``, and the LGSP answers a re-sent ``MaYeuCau`` with the same list with the same job,
so a submit whose answer was lost is simply sent again. ``KetQua`` is the JSON list of the sandbox
(``[{"SoDinhDanh", "TimThay", "CongDan": {...}}]``); a SOAP ``CongdanCollection`` in ``message``
is accepted too.

``error_code`` other than ``"0"`` in a body is an error even with HTTP 200. HTTP 429 (per-client
rate limit) is retried by :mod:`connectors.http` after ``Retry-After``.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from xml.etree.ElementTree import Element, ParseError  # noqa: S405 - types only; parsing is defusedxml

import defusedxml
import defusedxml.ElementTree as SafeET

from connectors.http import (
    ConnectorError,
    HttpClient,
    PermanentError,
    ProtocolError,
    RetryPolicy,
    Timeouts,
    json_body,
)
from tthc.timeutil import vn_now

log = logging.getLogger(__name__)

NS_DANCU = "http://www.mic.gov.vn/dancu/1.0"
LOOKUP_PATH = "/lgsp/dancu/TraCuuThongTinCongDan"
SUBMIT_PATH = "/lgsp/dancu/YeuCauDanhSach"
STATUS_PATH = "/lgsp/dancu/TrangThai/{id}"
RESULT_PATH = "/lgsp/dancu/KetQua/{id}"
MAX_BULK = 1000

JOB_RUNNING, JOB_DONE, JOB_FAILED = "DangXuLy", "HoanThanh", "Loi"


# ---- errors and values ---------------------------------------------------------------------------


class LgspError(PermanentError):
    """The LGSP answered with an ``error_code`` other than "0" (its message is not kept: it may
    echo what was asked)."""


class UnsafeXmlError(ProtocolError):
    """XML with a DTD, entity declarations or external references: refused, not parsed."""


@dataclass(frozen=True, slots=True)
class LgspIdentity:
    """Who asks and why (world.md §5); ``purpose`` goes to the audit log only."""

    service_code: str  # MaDVC
    integration_code: str  # MaTichHop
    officer_code: str  # MaCanBo
    purpose: str = ""

    def __post_init__(self) -> None:
        if not (self.service_code and self.integration_code and self.officer_code):
            raise ValueError("MaDVC, MaTichHop and MaCanBo are required for population-database requests")

    def fields(self, request_id: str) -> dict[str, str]:
        return {
            "MaYeuCau": request_id,
            "MaDVC": self.service_code,
            "MaTichHop": self.integration_code,
            "MaCanBo": self.officer_code,
        }


@dataclass(frozen=True, slots=True)
class RegistryPerson:
    """One citizen as the population registry holds them."""

    id_number: str | None
    cmnd: str | None
    ho: str | None
    chu_dem: str | None
    ten: str | None
    sex: int | None  # 1 male, 2 female
    birth_date: str | None  # "YYYY-MM-DD", or "YYYY" when only the year is registered
    birth_province: str | None  # MaTinhThanh of the birth registration

    @property
    def full_name(self) -> str:
        return " ".join(p for p in (self.ho, self.chu_dem, self.ten) if p)


@dataclass(frozen=True, slots=True)
class LookupQuery:
    """One number to look up; name and birth date are optional (the registry does not filter on
    them: the caller compares what comes back)."""

    id_number: str
    full_name: str | None = None
    birth_date: str | None = None  # as the dossier has it ("YYYY-MM-DD" or "YYYY")

    def as_item(self) -> dict[str, str]:
        item = {"SoDinhDanh": self.id_number}
        if self.full_name:
            item["HoVaTen"] = self.full_name
        if self.birth_date:
            item["NgayThangNamSinh"] = self.birth_date
        return item


@dataclass(frozen=True, slots=True)
class LookupResult:
    """Outcome for one number of a bulk lookup: ``found`` | ``not_found`` | ``failed``."""

    id_number: str
    status: str
    person: RegistryPerson | None = None
    error: str | None = None  # error class / code for "failed" (never personal data)

    @property
    def found(self) -> bool:
        return self.status == "found"


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One request to the population database, as the audit log keeps it (no personal data)."""

    at: datetime  # Vietnam time
    kind: str  # lookup | bulk_submit | bulk_status | bulk_result
    request_id: str  # MaYeuCau
    service_code: str
    integration_code: str
    officer_code: str
    purpose: str
    count: int  # numbers asked (0 for a status poll)
    status: str  # found | not_found | accepted | DangXuLy | HoanThanh | Loi | ok | error:<class>
    found: int | None = None


OnRequest = Callable[[str, str, int, str], None]


# ---- parsing -------------------------------------------------------------------------------------


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child(elem: Element | None, name: str) -> Element | None:
    if elem is None:
        return None
    for c in elem:
        if _local(c.tag) == name:
            return c
    return None


def _text(elem: Element | None) -> str | None:
    if elem is None or elem.text is None:
        return None
    t = elem.text.strip()
    return t or None


def _birth(ngay_thang_nam: str | None, nam: str | None) -> str | None:
    if ngay_thang_nam:
        s = ngay_thang_nam.strip()
        try:
            if len(s) == 8 and s.isdigit():
                return datetime.strptime(s, "%Y%m%d").date().isoformat()
            if len(s) == 10:
                return datetime.strptime(s, "%Y-%m-%d").date().isoformat()
        except ValueError:
            pass
    if nam:
        s = nam.strip()
        if len(s) == 4 and s.isdigit():
            return s
    if ngay_thang_nam and len(ngay_thang_nam.strip()) == 4 and ngay_thang_nam.strip().isdigit():
        return ngay_thang_nam.strip()
    return None


def _sex(v: Any) -> int | None:
    s = str(v).strip() if v is not None else ""
    return int(s) if s in ("1", "2") else None


def _person_from_element(cd: Element) -> RegistryPerson:
    name = _child(cd, "HoVaTen")
    birth = _child(cd, "NgayThangNamSinh")
    place = _child(cd, "NoiDangKyKhaiSinh")
    return RegistryPerson(
        id_number=_text(_child(cd, "SoDinhDanh")),
        cmnd=_text(_child(cd, "SoCMND")),
        ho=_text(_child(name, "Ho")),
        chu_dem=_text(_child(name, "ChuDem")),
        ten=_text(_child(name, "Ten")),
        sex=_sex(_text(_child(cd, "GioiTinh"))),
        birth_date=_birth(_text(_child(birth, "NgayThangNam")), _text(_child(birth, "Nam"))),
        birth_province=_text(_child(place, "MaTinhThanh")),
    )


def _str_or_none(v: Any) -> str | None:
    if v is None:
        return None
    s = str(v).strip()
    return s or None


def person_from_json(cd: Mapping[str, Any]) -> RegistryPerson:
    """The bulk result's ``CongDan`` object (the XML element as JSON) → :class:`RegistryPerson`."""
    name = cd.get("HoVaTen") if isinstance(cd.get("HoVaTen"), Mapping) else {}
    birth = cd.get("NgayThangNamSinh") if isinstance(cd.get("NgayThangNamSinh"), Mapping) else {}
    place = cd.get("NoiDangKyKhaiSinh") if isinstance(cd.get("NoiDangKyKhaiSinh"), Mapping) else {}
    return RegistryPerson(
        id_number=_str_or_none(cd.get("SoDinhDanh")),
        cmnd=_str_or_none(cd.get("SoCMND")),
        ho=_str_or_none(name.get("Ho")),
        chu_dem=_str_or_none(name.get("ChuDem")),
        ten=_str_or_none(name.get("Ten")),
        sex=_sex(cd.get("GioiTinh")),
        birth_date=_birth(_str_or_none(birth.get("NgayThangNam")), _str_or_none(birth.get("Nam"))),
        birth_province=_str_or_none(place.get("MaTinhThanh")),
    )


def parse_soap_citizens(xml: str | bytes) -> list[RegistryPerson]:
    """Every ``CongDan`` of a SOAP answer (empty list: not found).

    Raises :class:`UnsafeXmlError` for a DTD / entity declaration / external reference (XXE,
    billion laughs), :class:`ProtocolError` for malformed XML, a SOAP Fault or a missing
    ``CongdanCollection``. Messages never quote the document.
    """
    try:
        root = SafeET.fromstring(xml, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except defusedxml.DefusedXmlException as exc:
        raise UnsafeXmlError(
            f"refused population-database XML: {type(exc).__name__} (DTD, entity declarations and "
            "external references are not allowed)"
        ) from None
    except ParseError as exc:
        raise ProtocolError(f"population-database XML is malformed (line/column {exc.position})") from None
    fault = next((e for e in root.iter() if _local(e.tag) == "Fault"), None)
    if fault is not None:
        code = _text(_child(fault, "faultcode")) or "?"
        raise ProtocolError(f"population database answered a SOAP Fault ({code[:40]})")
    collection = next((e for e in root.iter() if _local(e.tag) == "CongdanCollection"), None)
    if collection is None:
        raise ProtocolError("population-database XML without CongdanCollection")
    if collection.tag.startswith("{") and not collection.tag.startswith("{" + NS_DANCU + "}"):
        raise ProtocolError("population-database XML: CongdanCollection in an unexpected namespace")
    return [_person_from_element(cd) for cd in collection if _local(cd.tag) == "CongDan"]


def parse_bulk_result(body: Any) -> list[tuple[str, RegistryPerson | None]]:
    """``KetQua`` → ``[(SoDinhDanh as asked, person or None), ...]`` in answer order.

    Accepts the JSON list (top level, or under ``KetQua`` / ``DanhSach`` / ``data``), items
    ``{"SoDinhDanh", "TimThay"|"found", "CongDan": {...} | null}`` or with the CongDan fields inline,
    and a SOAP ``CongdanCollection`` in ``message`` (then only found people are listed).
    """
    items: Any = None
    if isinstance(body, list):
        items = body
    elif isinstance(body, Mapping):
        for key in ("KetQua", "DanhSach", "data"):
            if isinstance(body.get(key), list):
                items = body[key]
                break
        if items is None:
            message = body.get("message")
            if isinstance(message, str) and message.lstrip().startswith("<"):
                return [(p.id_number or "", p) for p in parse_soap_citizens(message)]
    if items is None:
        raise ProtocolError("bulk result without a result list")
    out: list[tuple[str, RegistryPerson | None]] = []
    for item in items:
        if not isinstance(item, Mapping):
            raise ProtocolError("bulk result item is not an object")
        number = _str_or_none(item.get("SoDinhDanh")) or ""
        found = item.get("TimThay", item.get("found"))
        cd = item.get("CongDan")
        if isinstance(found, str):
            found = found.strip().lower() in ("true", "1")
        if found is None:
            found = isinstance(cd, Mapping) or bool(item.get("HoVaTen"))
        if not found:
            out.append((number, None))
            continue
        person = person_from_json(cd if isinstance(cd, Mapping) else item)
        out.append((number, person))
    return out


# ---- the client ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PollPolicy:
    """Back-off of the job polling: ``initial`` * ``factor``**n, at most ``max_interval``, giving
    up after ``max_polls`` polls of one job.

    The defaults poll soon after the submit (a small job is often done within a fraction of a
    second, and every source's reconcile waits for its jobs) and back off fast: 0.1, 0.2, 0.4 …
    10 s, giving up after about 9.5 minutes, as the earlier 0.5 s start with 60 polls did.
    """

    initial: float = 0.1
    factor: float = 2.0
    max_interval: float = 10.0
    max_polls: int = 62


@dataclass
class _Job:
    request_id: str
    queries: list[LookupQuery]
    resubmits: int = 0
    done: bool = False
    results: dict[str, LookupResult] = field(default_factory=dict)


class LgspClient:
    """Population-database lookups through the LGSP."""

    def __init__(
        self,
        base_url: str,
        identity: LgspIdentity,
        *,
        on_request: OnRequest | None = None,
        timeouts: Timeouts | None = None,
        retry: RetryPolicy | None = None,
        poll: PollPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        request_id_factory: Callable[[], str] = lambda: uuid.uuid4().hex,
        max_job_resubmits: int = 2,
        headers: Mapping[str, str] | None = None,
        http: HttpClient | None = None,
    ) -> None:
        self.http = http or HttpClient(
            base_url, timeouts=timeouts, retry=retry, sleep=sleep, headers=headers, name="lgsp"
        )
        self.identity = identity
        self.on_request = on_request
        self.poll = poll or PollPolicy()
        self.sleep = sleep
        self.new_request_id = request_id_factory
        self.max_job_resubmits = max_job_resubmits
        self.audit_log: list[AuditEvent] = []

    # -- audit ------------------------------------------------------------------------------
    def _audit(self, kind: str, request_id: str, count: int, status: str, found: int | None = None) -> None:
        ident = self.identity
        self.audit_log.append(
            AuditEvent(
                vn_now(),
                kind,
                request_id,
                ident.service_code,
                ident.integration_code,
                ident.officer_code,
                ident.purpose,
                count,
                status,
                found,
            )
        )
        if self.on_request is not None:
            self.on_request(kind, request_id, count, status)

    def _get_params(self, request_id: str) -> dict[str, str]:
        # Query parameters rather than headers: header values must be Latin-1, codes may not be.
        return {k: v for k, v in self.identity.fields(request_id).items() if k != "MaYeuCau"}

    @staticmethod
    def _check_body(body: Any, target: str) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise ProtocolError("population-database answer is not a JSON object", target=target)
        code = body.get("error_code")
        if code is not None and str(code).strip() != "0":
            raise LgspError("population database refused the request", target=target, error_code=str(code))
        return body

    # -- single lookup ------------------------------------------------------------------------
    def lookup(self, query: LookupQuery | str) -> RegistryPerson | None:
        """``TraCuuThongTinCongDan``: the registry's record of one number, or None if not found."""
        q = LookupQuery(query) if isinstance(query, str) else query
        request_id = self.new_request_id()
        payload = {**self.identity.fields(request_id), **_lookup_fields(q)}
        try:
            response = self.http.post(LOOKUP_PATH, json=payload, idempotent=True)  # read-only
            body = self._check_body(json_body(response, what="lookup answer"), LOOKUP_PATH)
            message = body.get("message")
            if not isinstance(message, str | bytes) or not message:
                raise ProtocolError("lookup answer without the SOAP message", target=LOOKUP_PATH)
            people = parse_soap_citizens(message)
        except ConnectorError as exc:
            self._audit("lookup", request_id, 1, f"error:{type(exc).__name__}")
            raise
        person = _pick(people, q.id_number)
        self._audit("lookup", request_id, 1, "found" if person else "not_found", 1 if person else 0)
        return person

    # -- bulk ---------------------------------------------------------------------------------
    def lookup_many(
        self, queries: Iterable[LookupQuery | str], *, chunk_size: int = MAX_BULK
    ) -> dict[str, LookupResult]:
        """Bulk lookup of many numbers; one :class:`LookupResult` per distinct number.

        A chunk whose job fails (``Loi``) is resubmitted; if it keeps failing, or polling gives up,
        its numbers are ``failed`` (reconciliation's ``lookup_failed``) and the other chunks still
        count. Transport errors that outlive the retries propagate.
        """
        if not 1 <= chunk_size <= MAX_BULK:
            raise ValueError(f"chunk_size must be in 1..{MAX_BULK}")
        unique: dict[str, LookupQuery] = {}
        for q in queries:
            qq = LookupQuery(q) if isinstance(q, str) else q
            number = qq.id_number.strip()
            if number and number not in unique:
                unique[number] = (
                    qq if qq.id_number == number else LookupQuery(number, qq.full_name, qq.birth_date)
                )
        items = list(unique.values())
        jobs = [
            _Job(self.new_request_id(), items[i : i + chunk_size]) for i in range(0, len(items), chunk_size)
        ]
        for job in jobs:
            self._submit(job)
        results: dict[str, LookupResult] = {}
        for job in jobs:
            self._complete(job)
            results.update(job.results)
        return results

    def _submit(self, job: _Job) -> None:
        payload = {
            **self.identity.fields(job.request_id),
            "DanhSach": [_lookup_fields(q) for q in job.queries],
        }
        try:
            # The job id is our MaYeuCau and the LGSP answers a re-sent identical request with the
            # same job, so a submit whose answer was lost may be repeated.
            response = self.http.post(SUBMIT_PATH, json=payload, idempotent=True)
            body = self._check_body(json_body(response, what="bulk submit answer"), SUBMIT_PATH)
        except ConnectorError as exc:
            self._audit("bulk_submit", job.request_id, len(job.queries), f"error:{type(exc).__name__}")
            raise
        server_id = body.get("MaYeuCau")
        if isinstance(server_id, str) and server_id and server_id != job.request_id:
            job.request_id = server_id  # a server that assigns its own job ids
        self._audit("bulk_submit", job.request_id, len(job.queries), "accepted")

    def _complete(self, job: _Job) -> None:
        while not job.done:
            status = self._wait(job)
            if status == JOB_DONE:
                self._fetch_result(job)
                return
            # Loi, or polling gave up: resubmit under a new id (the LGSP asks to "send again").
            if job.resubmits >= self.max_job_resubmits:
                log.warning(
                    "lgsp bulk job %s ended %s; %d numbers marked failed",
                    job.request_id,
                    status,
                    len(job.queries),
                )
                for q in job.queries:
                    job.results[q.id_number] = LookupResult(q.id_number, "failed", error=f"job:{status}")
                job.done = True
                return
            job.resubmits += 1
            job.request_id = self.new_request_id()
            self._submit(job)

    def _wait(self, job: _Job) -> str:
        interval = self.poll.initial
        for _ in range(self.poll.max_polls):
            status = self._status(job.request_id)
            if status != JOB_RUNNING:
                return status
            self.sleep(interval)
            interval = min(interval * self.poll.factor, self.poll.max_interval)
        return "timeout"

    def _status(self, request_id: str) -> str:
        target = STATUS_PATH.format(id=request_id)
        try:
            response = self.http.get(target, params=self._get_params(request_id))
            body = self._check_body(json_body(response, what="job status"), target)
        except ConnectorError as exc:
            self._audit("bulk_status", request_id, 0, f"error:{type(exc).__name__}")
            raise
        status = body.get("TrangThai")
        if status not in (JOB_RUNNING, JOB_DONE, JOB_FAILED):
            self._audit("bulk_status", request_id, 0, "error:ProtocolError")
            raise ProtocolError("unknown bulk job status", target=target)
        self._audit("bulk_status", request_id, 0, status)
        return status

    def _fetch_result(self, job: _Job) -> None:
        target = RESULT_PATH.format(id=job.request_id)
        try:
            response = self.http.get(target, params=self._get_params(job.request_id))
            body = self._check_body(json_body(response, what="bulk result"), target)
            pairs = parse_bulk_result(body)
        except ConnectorError as exc:
            self._audit("bulk_result", job.request_id, len(job.queries), f"error:{type(exc).__name__}")
            raise
        answered: dict[str, RegistryPerson | None] = {}
        for number, person in pairs:
            key = number or (person.id_number if person else "") or ""
            if key and (key not in answered or answered[key] is None):
                answered[key] = person
        # A person found by the old CMND carries both numbers.
        by_cmnd = {p.cmnd: p for p in answered.values() if p is not None and p.cmnd}
        found = 0
        for q in job.queries:
            if q.id_number in answered:
                person = answered[q.id_number]
            else:
                person = by_cmnd.get(q.id_number)
                if person is None:
                    job.results[q.id_number] = LookupResult(q.id_number, "failed", error="missing_in_result")
                    continue
            if person is None:
                job.results[q.id_number] = LookupResult(q.id_number, "not_found")
            else:
                found += 1
                job.results[q.id_number] = LookupResult(q.id_number, "found", person)
        job.done = True
        self._audit("bulk_result", job.request_id, len(job.queries), "ok", found)

    def close(self) -> None:
        self.http.close()


def _lookup_fields(q: LookupQuery) -> dict[str, str]:
    return q.as_item()


def _pick(people: Sequence[RegistryPerson], number: str) -> RegistryPerson | None:
    """The person whose number (CCCD or old CMND) is the one asked; else the first, if any."""
    for p in people:
        if number and number in (p.id_number, p.cmnd):
            return p
    return people[0] if people else None


__all__ = [
    "AuditEvent",
    "LgspClient",
    "LgspError",
    "LgspIdentity",
    "LookupQuery",
    "LookupResult",
    "PollPolicy",
    "RegistryPerson",
    "UnsafeXmlError",
    "parse_bulk_result",
    "parse_soap_citizens",
    "person_from_json",
]
