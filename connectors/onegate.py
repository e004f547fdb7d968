"""Client of a one-stop system of dialect ``onegate`` (world.md §2): API-key header, keyset paging
with an opaque cursor, ``error_code`` in the body, and the pure mapping of one record into
:class:`tthc.model.Dossier`.

Reading a window
----------------

``GET /api/HoSo/DongBo?tuNgay=yyyyMMddHHmmss&cursor=<opaque>&limit=<1..500>`` answers
``{"error_code": "0", "message": "", "data": [...], "next_cursor": "..." | null}``. The API has a
lower bound only, so :meth:`OnegateClient.fetch` does the rest on the client:

1. **Frozen upper bound.** ``updated_to`` is fixed once, before the first request; a record whose
   ``NgayCapNhat`` is at or after it is dropped (it belongs to the next run, whose window starts
   exactly there). The lower bound is sent one second early (``tuNgay`` has second precision and
   the contract does not say whether it is inclusive) and applied exactly on the client, so the
   result is ``[updated_from, updated_to)`` whatever the server does with ``tuNgay``.
2. **Keyset paging.** The first request carries no cursor; every next one carries the previous
   answer's ``next_cursor``, until it is null (or empty). A cursor the server hands out twice is a
   loop: :class:`~connectors.http.ProtocolError`, rather than reading forever.
3. **Stopping early.** While every ``NgayCapNhat`` read so far has come in ascending order (a
   time-ordered keyset, which is what "stable under concurrent change" implies), a page ending at or
   after ``updated_to`` means nothing further can be in the window, and paging stops. If the order
   is ever broken, the client reads to the end (``stop_past_upper=False`` always does).
4. **Each dossier once, newest version.** A record changed while we page moves behind the cursor
   and can come again (with a newer ``NgayCapNhat`` still inside the window). The dialect has no
   record id, and two *different* records sharing one ``MaHoSo`` are a defect validation must see
   (``duplicate_code``), so a dossier is identified by ``MaHoSo`` together with the fields a new
   version does not change (``NgayTiepNhan``, ``SoGiayToChuHoSo``, ``MaTTHC``, ``MaDonVi``): two
   records equal on all five are two versions of one dossier and the newest ``NgayCapNhat`` is
   kept (in the place the first was read); anything else is kept as it is. A record with an
   unreadable ``NgayCapNhat`` cannot be placed in a window: it is returned (its mapping records
   the problem in ``raw_issues``) and counted in the stats.

Errors. ``error_code`` other than ``"0"`` is an error even with HTTP 200:

* :class:`OnegateAuthError` (an :class:`~connectors.http.AuthError`, permanent) for the codes in
  ``auth_error_codes`` (default :data:`AUTH_ERROR_CODES`: the API key was refused);
* :class:`OnegateBusyError` (a :class:`~connectors.http.TransientError`) for ``transient_error_codes``
  (default :data:`TRANSIENT_ERROR_CODES`, "try later"): the request is a read, so it is repeated
  with back-off like a 503;
* :class:`OnegateRefusedError` (permanent) for any other code.

All three derive from :class:`OnegateError`. HTTP statuses are classified by
:mod:`connectors.http` (5xx and 429 retried, ``Retry-After`` honoured; 401/403 → ``AuthError``;
other 4xx never retried). The server's ``message`` is never copied into an exception or a log: it
may echo what was asked. The API key is a constructor parameter (the caller reads it from the
Airflow connection) and travels only in the ``X-API-Key`` header.
"""

from __future__ import annotations

import json
import logging
import time
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import tenacity

from connectors.http import (
    AuthError,
    ConnectorError,
    HttpClient,
    PermanentError,
    ProtocolError,
    RetryPolicy,
    Timeouts,
    TransientError,
    json_body,
)
from connectors.mapping import Issues, parse_list, storable, storable_code, unreadable_record
from tthc import codes
from tthc.model import Attachment, Dossier, Supplement
from tthc.timeutil import to_vn_naive, vn_now

log = logging.getLogger(__name__)

DOSSIERS_PATH = "/api/HoSo/DongBo"
API_KEY_HEADER = "X-API-Key"
MAX_LIMIT = 500
TIME_FORMAT = "%Y%m%d%H%M%S"
LOWER_OVERLAP = timedelta(seconds=1)

#: ``error_code`` values meaning the API key was refused: the vendor's ``"1"`` ("API key không hợp
#: lệ", as the sandbox implements it) and HTTP-like codes; configurable per client.
AUTH_ERROR_CODES: frozenset[str] = frozenset({"1", "401", "403"})
#: ``error_code`` values meaning "busy, try again later" (a proxy's 429/5xx echoed in the body):
#: safe to repeat, the call is a read. Other codes ("2" bad parameter, "3" bad cursor) are permanent.
TRANSIENT_ERROR_CODES: frozenset[str] = frozenset({"429", "500", "502", "503", "504"})

#: ``GioiTinh`` → portal sex code (compared after NFC + case folding).
SEX_WORDS = {"nam": 1, "nữ": 2}
CHANNELS = frozenset({1, 2, 3})


# ---- errors ----------------------------------------------------------------------------------------


class OnegateError(ConnectorError):
    """The onegate API answered with an ``error_code`` other than "0" (``exc.error_code``)."""


class OnegateRefusedError(OnegateError, PermanentError):
    """A refusal that repeating will not change (bad parameters, unknown cursor, ...)."""


class OnegateAuthError(OnegateError, AuthError):
    """The API key was refused (an auth-type ``error_code``, even with HTTP 200)."""


class OnegateBusyError(OnegateError, TransientError):
    """The server said "try later" in the body; the read is repeated with back-off."""


# ---- the client ------------------------------------------------------------------------------------


@dataclass(slots=True)
class OnegateFetchStats:
    """What one :meth:`OnegateClient.fetch` did (for logs and metrics; no personal data)."""

    requests: int = 0
    records_read: int = 0
    returned: int = 0
    before_window: int = 0  # older than updated_from (tuNgay overlap, or a server ignoring it)
    after_window: int = 0  # at or after the frozen updated_to
    unreadable_time: int = 0  # NgayCapNhat missing or not yyyyMMddHHmmss: returned anyway
    duplicates: int = 0  # versions of one dossier read twice (the newest kept)
    busy_retries: int = 0
    stopped_early: bool = False


class OnegateClient:
    """Reads dossiers from one onegate source.

    >>> client = OnegateClient("http://127.0.0.1:8704", api_key=...)
    >>> records = client.fetch(datetime(2026, 10, 31), datetime(2026, 11, 1))
    >>> dossiers = [to_dossier(r, "onegate_so_yte") for r in records]
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str,
        page_size: int = MAX_LIMIT,
        timeout: float | None = None,
        timeouts: Timeouts | None = None,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        auth_error_codes: Iterable[str] = AUTH_ERROR_CODES,
        transient_error_codes: Iterable[str] = TRANSIENT_ERROR_CODES,
        stop_past_upper: bool = True,
        max_pages: int = 100_000,
        http: HttpClient | None = None,
    ) -> None:
        if not api_key:
            raise ValueError("onegate api_key is required")
        if not 1 <= page_size <= MAX_LIMIT:
            raise ValueError(f"page_size must be in 1..{MAX_LIMIT}")
        if timeouts is None and timeout is not None:
            timeouts = Timeouts(connect=min(5.0, timeout), read=timeout)
        self.http = http or HttpClient(base_url, timeouts=timeouts, retry=retry, sleep=sleep, name="onegate")
        self._api_key = api_key
        self.page_size = page_size
        self.auth_error_codes = frozenset(str(c) for c in auth_error_codes)
        self.transient_error_codes = frozenset(str(c) for c in transient_error_codes)
        self.stop_past_upper = stop_past_upper
        self.max_pages = max_pages
        self.last_stats = OnegateFetchStats()

    def __repr__(self) -> str:  # never the key
        return f"OnegateClient({self.http.base_url!r})"

    # -- transport --------------------------------------------------------------------------
    def _get_page(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """One page; HTTP faults are retried by the HTTP layer, "busy" body codes here."""
        policy = self.http.retry

        def before_sleep(state: tenacity.RetryCallState) -> None:
            self.last_stats.busy_retries += 1
            exc = state.outcome.exception() if state.outcome else None
            log.warning(
                "onegate GET %s: error_code=%s (busy), retrying (attempt %d done)",
                DOSSIERS_PATH,
                getattr(exc, "error_code", None),
                state.attempt_number,
            )

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(max(1, policy.max_attempts)),
            wait=tenacity.wait_exponential_jitter(
                initial=policy.backoff_initial, max=policy.backoff_max, jitter=policy.jitter
            ),
            retry=tenacity.retry_if_exception_type(OnegateBusyError),
            sleep=self.http.sleep,
            before_sleep=before_sleep,
            reraise=True,
        )
        return retrying(self._get_page_once, params)

    def _get_page_once(self, params: Mapping[str, Any]) -> dict[str, Any]:
        response = self.http.get(DOSSIERS_PATH, params=params, headers={API_KEY_HEADER: self._api_key})
        self.last_stats.requests += 1
        body = json_body(response, what="onegate page")
        if not isinstance(body, dict):
            raise ProtocolError("onegate page is not a JSON object", method="GET", target=DOSSIERS_PATH)
        self._check_error_code(body, response.status_code)
        data = body.get("data")
        if data is None:
            data = []
        if not isinstance(data, list):
            raise ProtocolError("onegate page without a data list", method="GET", target=DOSSIERS_PATH)
        body["data"] = data
        return body

    def _check_error_code(self, body: Mapping[str, Any], status: int) -> None:
        raw = body.get("error_code")
        if raw is None:
            raise ProtocolError("onegate page without error_code", method="GET", target=DOSSIERS_PATH)
        code = str(raw).strip()
        if code == "0":
            return
        kw: dict[str, Any] = {"method": "GET", "target": DOSSIERS_PATH, "status": status, "error_code": code}
        if code in self.auth_error_codes:
            raise OnegateAuthError("onegate refused the API key", **kw)
        if code in self.transient_error_codes:
            raise OnegateBusyError("onegate is busy (error_code in the body)", **kw)
        raise OnegateRefusedError("onegate refused the request", **kw)

    # -- reading a window -------------------------------------------------------------------
    def fetch(self, updated_from: datetime, updated_to: datetime | None = None) -> list[dict[str, Any]]:
        """Every record with ``updated_from <= NgayCapNhat < updated_to`` (plus those whose
        ``NgayCapNhat`` is unreadable), in the server's order. ``updated_to`` defaults to now and is
        frozen for the whole call. See the module docstring."""
        upper = to_vn_naive(updated_to) if updated_to is not None else vn_now()
        lower = to_vn_naive(updated_from)
        if lower > upper:
            raise ValueError("updated_from is after updated_to")
        self.last_stats = OnegateFetchStats()
        kept: dict[str, dict[str, Any]] = {}  # insertion order = the order first read
        for record in self._iter_window(lower, upper):
            key = _identity(record)
            old = kept.get(key)
            if old is not None:
                self.last_stats.duplicates += 1
                if (_updated_at(record) or datetime.min) < (_updated_at(old) or datetime.min):
                    continue
            kept[key] = record
        out = list(kept.values())
        self.last_stats.returned = len(out)
        s = self.last_stats
        log.info(
            "onegate fetch %s..%s: %d records (%d requests, %d read, %d before / %d after the window, "
            "%d unreadable NgayCapNhat, %d duplicates, stopped early: %s)",
            lower.isoformat(),
            upper.isoformat(),
            len(out),
            s.requests,
            s.records_read,
            s.before_window,
            s.after_window,
            s.unreadable_time,
            s.duplicates,
            s.stopped_early,
        )
        return out

    def iter_dossiers(
        self, source_id: str, updated_from: datetime, updated_to: datetime | None = None
    ) -> Iterator[Dossier]:
        """:meth:`fetch` mapped through :func:`to_dossier`."""
        for record in self.fetch(updated_from, updated_to):
            yield to_dossier(record, source_id)

    def _iter_window(self, lower: datetime, upper: datetime) -> Iterator[dict[str, Any]]:
        stats = self.last_stats
        params: dict[str, Any] = {
            "tuNgay": (lower - LOWER_OVERLAP).strftime(TIME_FORMAT),
            "limit": self.page_size,
        }
        seen_cursors: set[str] = set()
        ordered = True
        last_time: datetime | None = None
        for _ in range(self.max_pages):
            page = self._get_page(params)
            data = page["data"]
            stats.records_read += len(data)
            page_last: datetime | None = None
            for record in data:
                when = _updated_at(record)
                if when is not None:
                    if last_time is not None and when < last_time:
                        ordered = False
                    last_time = when
                    page_last = when
                if when is None:
                    stats.unreadable_time += 1
                    yield record
                elif when < lower:
                    stats.before_window += 1
                elif when >= upper:
                    stats.after_window += 1
                else:
                    yield record
            cursor = page.get("next_cursor")
            if cursor is None or cursor == "":
                return
            cursor = str(cursor)
            if cursor in seen_cursors:
                raise ProtocolError("onegate handed out the same cursor twice", target=DOSSIERS_PATH)
            seen_cursors.add(cursor)
            if self.stop_past_upper and ordered and page_last is not None and page_last >= upper:
                stats.stopped_early = True
                return
            params = {**params, "cursor": cursor}
        raise ProtocolError(f"onegate paging did not end after {self.max_pages} pages", target=DOSSIERS_PATH)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> OnegateClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


#: The fields one dossier keeps from version to version (with ``MaHoSo``): see the module docstring.
IDENTITY_FIELDS = ("MaHoSo", "NgayTiepNhan", "SoGiayToChuHoSo", "MaTTHC", "MaDonVi")


def _identity(record: Any) -> str:
    if isinstance(record, Mapping) and record.get("MaHoSo") not in (None, ""):
        return json.dumps([record.get(f) for f in IDENTITY_FIELDS], ensure_ascii=False, default=str)
    return json.dumps(record, sort_keys=True, ensure_ascii=False, default=str)  # only exact copies


def _updated_at(record: Any) -> datetime | None:
    if not isinstance(record, Mapping):
        return None
    try:
        return _parse_time(record.get("NgayCapNhat"))
    except ValueError:
        return None


def _parse_time(raw: Any) -> datetime | None:
    """``yyyyMMddHHmmss`` (string, or the same digits as a JSON number) → naive Vietnam time."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    if isinstance(raw, bool) or not isinstance(raw, str | int):
        raise ValueError("not a yyyyMMddHHmmss value")
    s = str(raw).strip()
    if len(s) != 14 or not s.isascii() or not s.isdigit():
        raise ValueError("not a yyyyMMddHHmmss value")
    # slicing instead of strptime (ten times slower, and called six times per record)
    return datetime(int(s[:4]), int(s[4:6]), int(s[6:8]), int(s[8:10]), int(s[10:12]), int(s[12:]))


def code_of(record: Mapping[str, Any]) -> str | None:
    """The dossier code of a raw record (for the raw store)."""
    code = record.get("MaHoSo") if isinstance(record, Mapping) else None
    return None if code is None else storable_code(str(code))


# ---- mapping ---------------------------------------------------------------------------------------


def _text(issues: Issues, field: str, raw: Any) -> str | None:
    if raw is None:
        return None
    if isinstance(raw, str):
        return raw if raw.strip() else None
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        return str(raw)
    issues.add(field, raw)
    return None


def _datetime(issues: Issues, field: str, raw: Any) -> datetime | None:
    try:
        return _parse_time(raw)
    except ValueError:
        issues.add(field, raw)
        return None


def _birth_date(issues: Issues, raw: Any) -> str | None:
    """``dd/MM/yyyy`` → ``YYYY-MM-DD``; ``yyyy`` or ``00/00/yyyy`` (year only) → ``YYYY``."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    if isinstance(raw, int) and not isinstance(raw, bool) and 1800 <= raw <= 2200:
        return f"{raw:04d}"
    if not isinstance(raw, str):
        issues.add("applicant_birth_date", raw)
        return None
    s = raw.strip()
    try:
        if len(s) == 4 and s.isdigit():
            return s
        day, month, year = s.split("/")
        if len(year) != 4 or not year.isdigit():
            raise ValueError
        if day in ("0", "00") and month in ("0", "00"):
            return year
        return date(int(year), int(month), int(day)).isoformat()
    except ValueError:
        issues.add("applicant_birth_date", raw)
        return None


def _code(
    issues: Issues, field: str, raw: Any, allowed: frozenset[int], *, null: int | None = None
) -> int | None:
    """A small integer code (int or digit string) in ``allowed``; null/empty → ``null``."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return null
    n: int | None = None
    if isinstance(raw, int) and not isinstance(raw, bool):
        n = raw
    elif isinstance(raw, float) and raw.is_integer():
        n = int(raw)
    elif isinstance(raw, str) and raw.strip().isdigit():
        n = int(raw.strip())
    if n is None or n not in allowed:
        issues.add(field, raw)
        return None
    return n


def _flag(issues: Issues, field: str, raw: Any) -> bool:
    """0/1 (int, string or boolean); null → False."""
    if raw is None or raw == "":
        return False
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, int | float) and raw in (0, 1):
        return bool(raw)
    if isinstance(raw, str) and raw.strip().lower() in ("0", "1", "true", "false"):
        return raw.strip().lower() in ("1", "true")
    issues.add(field, raw)
    return False


def _sex(issues: Issues, raw: Any) -> int | None:
    """``"Nam"`` → 1, ``"Nữ"`` → 2 (any case, NFC or NFD); the portal codes 1/2 are accepted too."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    if isinstance(raw, str):
        word = unicodedata.normalize("NFC", raw).strip().casefold()
        if word in SEX_WORDS:
            return SEX_WORDS[word]
    return _code(issues, "applicant_sex", raw, frozenset({1, 2}))


def _fee(issues: Issues, raw: Any) -> int | None:
    if raw is None or raw == "":
        return None
    try:
        if isinstance(raw, bool):
            raise ValueError
        value = float(raw.strip()) if isinstance(raw, str) else float(raw)
        if value < 0 or not value.is_integer():
            raise ValueError
        return int(value)
    except (TypeError, ValueError, OverflowError):
        issues.add("fee", raw)
        return None


def _status(raw: Any) -> tuple[int | None, str | None]:
    """``TrangThaiHoSo`` 1-10 (number or digit string); anything else → (None, raw text)."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None, None
    n: int | None = None
    if isinstance(raw, int) and not isinstance(raw, bool):
        n = raw
    elif isinstance(raw, str) and raw.strip().isdigit():
        n = int(raw.strip())
    if n is not None and n in codes.STATUS_NAMES:
        return n, None
    return None, raw if isinstance(raw, str) else json.dumps(raw, ensure_ascii=False, default=str)


def to_dossier(record: Mapping[str, Any], source_id: str) -> Dossier:
    """Map one onegate record (world.md §2) into the canonical dossier. Pure; never raises.

    A field that cannot be understood becomes None and its raw value is recorded in
    ``raw_issues[field]`` (model field names; ``supplements[0].requested_at`` for nested ones). A
    ``TrangThaiHoSo`` outside 1-10 gives ``status=None`` with the value in ``status_raw``. Nulls stay
    None (``KenhThucHien`` null is not guessed: consumers count it as direct), except
    ``DuocThanhToanTrucTuyen`` null → 0 (domain.md §5). The dialect carries no record id, agency or
    sector name, phone or result type: those stay None.
    """
    if not isinstance(record, Mapping):
        return unreadable_record(source_id, record)
    issues = Issues()

    status, status_raw = _status(record.get("TrangThaiHoSo"))

    id_number = _text(issues, "applicant_id_number", record.get("SoGiayToChuHoSo"))
    if id_number is not None:
        id_number = id_number.strip()

    supplements = parse_list(
        issues,
        "supplements",
        record.get("DanhSachHoSoBoSung"),
        lambda i, s: Supplement(
            _datetime(issues, f"supplements[{i}].requested_at", s.get("NgayYeuCau")),
            _datetime(issues, f"supplements[{i}].completed_at", s.get("NgayBoSung")),
        ),
    )
    attachments = parse_list(
        issues,
        "attachments",
        record.get("TaiLieuNop"),
        lambda i, a: Attachment(
            name=_text(issues, f"attachments[{i}].name", a.get("TenTepDinhKem")) or "",
            digitized=_flag(issues, f"attachments[{i}].digitized", a.get("DuocSoHoa")),
            reused=_flag(issues, f"attachments[{i}].reused", a.get("DuocTaiSuDung")),
        ),
    )

    return storable(
        Dossier(
            source_id=source_id,
            dossier_code=_text(issues, "dossier_code", record.get("MaHoSo")),
            agency_code=_text(issues, "agency_code", record.get("MaDonVi")),
            procedure_code=_text(issues, "procedure_code", record.get("MaTTHC")),
            received_at=_datetime(issues, "received_at", record.get("NgayTiepNhan")),
            updated_at=_datetime(issues, "updated_at", record.get("NgayCapNhat")),
            status=status,
            status_raw=status_raw,
            procedure_name=_text(issues, "procedure_name", record.get("TenTTHC")),
            sector_code=_text(issues, "sector_code", record.get("MaLinhVuc")),
            channel=_code(issues, "channel", record.get("KenhThucHien"), CHANNELS),
            applicant_name=_text(issues, "applicant_name", record.get("ChuHoSo")),
            applicant_id_number=id_number,
            applicant_id_type=codes.id_type(id_number),
            applicant_birth_date=_birth_date(issues, record.get("NgaySinhChuHoSo")),
            applicant_sex=_sex(issues, record.get("GioiTinh")),
            applicant_type=_code(issues, "applicant_type", record.get("LoaiDoiTuong"), frozenset({1, 2})),
            due_at=_datetime(issues, "due_at", record.get("NgayHenTra")),
            finished_at=_datetime(issues, "finished_at", record.get("NgayKetThucXuLy")),
            returned_at=_datetime(issues, "returned_at", record.get("NgayTra")),
            paid_online=_code(
                issues, "paid_online", record.get("DuocThanhToanTrucTuyen"), frozenset({0, 1, 2}), null=0
            ),
            fee=_fee(issues, record.get("LePhi")),
            result_file=_text(issues, "result_file", record.get("DuongDanTepTinKetQua")),
            vneid_verified=_flag(issues, "vneid_verified", record.get("TaiKhoanDuocXacThucVoiVNeID")),
            supplements=supplements,
            attachments=attachments,
            raw_issues=issues.issues,
        )
    )


__all__ = [
    "AUTH_ERROR_CODES",
    "TRANSIENT_ERROR_CODES",
    "OnegateAuthError",
    "OnegateBusyError",
    "OnegateClient",
    "OnegateError",
    "OnegateFetchStats",
    "OnegateRefusedError",
    "code_of",
    "to_dossier",
]
