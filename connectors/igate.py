"""Client of a one-stop system of dialect ``igate`` (world.md §1): OAuth2 client credentials, the
paged dossier list, and the pure mapping of one record into :class:`tthc.model.Dossier`.

Reading a window that changes while we read it
----------------------------------------------

The source pages with ``page``/``size`` offsets over the records whose ``updatedDate`` lies in
``[updatedFrom, updatedTo)``, ordered by ``updatedDate``. Offsets are not stable: when a record is
updated while we page, every record behind it moves by one place, so naive paging loses one record
at the next page boundary (or reads one twice). This client never relies on offsets staying put:

1. **Frozen upper bound.** ``updated_to`` is fixed once, before the first request (the caller's
   data-interval end, or "now"). A record updated during the sync normally gets an
   ``updatedDate`` after that instant: it leaves our window and belongs to the next run, whose
   window starts exactly there. Nothing is lost between runs.

2. **Keyset by time instead of offsets.** Each request asks for the *first* page (``page=0``) of
   ``[cursor - 1 s, updated_to)``. The answer is the oldest ``size`` records of that range at the
   moment the server answered, consistently sorted. If the page is full, every record older than
   the newest ``updatedDate`` on it (``t_max``) has been seen, so the cursor moves to ``t_max``.
   Moving records cannot shift anything past us: a record's position only depends on its own
   ``updatedDate``, not on how many records precede it. The one-second overlap makes this correct
   whether the server treats ``updatedFrom`` as inclusive or exclusive (timestamps have second
   precision); records seen twice are deduplicated by ``id``, keeping the newest ``updatedDate``.

3. **Dense instants.** If one page is filled with records that all share the cursor's second (more
   than ``size`` records updated within ~1 s), the cursor cannot move. That narrow slice
   ``[cursor - 1 s, cursor + 2 s)`` is then read with offset paging, and accepted only if
   ``totalElements`` did not change between its pages and the number of distinct ids read equals
   ``totalElements`` (a shift shows up as a count change or a missing/duplicate id). Otherwise it
   is re-read from page 0 (the safe point), a bounded number of times, and then a
   :class:`~connectors.http.ProtocolError` is raised rather than returning an incomplete window.
   The cursor then jumps past the slice.

What this guarantees: every record whose ``updatedDate`` is in the window from before the sync
until its end is returned exactly once, in its newest version seen. A record changed during the
sync with an ``updatedDate`` after ``updated_to`` is returned now (old version) if already read,
and in any case by the next run. The only records this run can miss are those the source stamps
with an ``updatedDate`` *earlier than the cursor* while we read ("late updates", world.md §1):
no client can see a write behind its read position without rereading everything, so the pipeline's
look-back (re-reading ``[from - look_back, to)`` and deduplicating by id) is what catches them.

Credentials are parameters: the caller takes them from an Airflow connection or the environment.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from connectors.http import (
    AuthError,
    HttpClient,
    ProtocolError,
    RetryPolicy,
    Timeouts,
    json_body,
)
from connectors.mapping import Issues, parse_list, storable, storable_code, unreadable_record
from tthc import codes
from tthc.model import Attachment, Dossier, Supplement
from tthc.timeutil import VN_TZ, parse_iso_vn, to_vn_naive, vn_now

log = logging.getLogger(__name__)

TOKEN_PATH = "/oauth/token"  # noqa: S105 - a path, not a secret
DOSSIERS_PATH = "/api/v1/dossiers"
MAX_PAGE_SIZE = 1000
OVERLAP = timedelta(seconds=1)

#: ``applyMethod.id`` → portal channel (1 direct, 2 online, 3 postal).
APPLY_METHOD_CHANNEL = {0: codes.CHANNEL_DIRECT, 1: codes.CHANNEL_ONLINE, 2: codes.CHANNEL_POSTAL}
RESULT_TYPES = frozenset({"paper", "electronic"})


# ---- authentication ------------------------------------------------------------------------------


@dataclass(slots=True)
class _Token:
    value: str
    expires_at: float  # on the client's monotonic clock


class IgateAuth:
    """OAuth2 client-credentials token holder: fetches on first use, refreshes before expiry.

    ``skew`` seconds before ``expires_in`` runs out the token counts as expired (the request must
    still reach the server in time). ``clock`` is monotonic seconds, injectable for tests.
    """

    def __init__(
        self,
        http: HttpClient,
        client_id: str,
        client_secret: str,
        *,
        skew: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not client_id or not client_secret:
            raise ValueError("igate client_id and client_secret are required")
        self._http = http
        self._client_id = client_id
        self._client_secret = client_secret
        self._skew = skew
        self._clock = clock
        self._token: _Token | None = None
        self.fetches = 0  # how many tokens were obtained (for tests and metrics)

    def token(self) -> str:
        if self._token is None or self._clock() >= self._token.expires_at:
            self._token = self._fetch()
        return self._token.value

    def invalidate(self) -> None:
        self._token = None

    def _fetch(self) -> _Token:
        response = self._http.post(
            TOKEN_PATH,
            data={
                "grant_type": "client_credentials",
                "client_id": self._client_id,
                "client_secret": self._client_secret,
            },
            idempotent=True,  # asking for a token twice is harmless
        )
        body = json_body(response, what="token answer")
        if not isinstance(body, dict) or not body.get("access_token"):
            raise AuthError("token answer without access_token", method="POST", target=TOKEN_PATH)
        try:
            expires_in = float(body.get("expires_in") or 300)
        except (TypeError, ValueError):
            expires_in = 300.0
        skew = min(self._skew, expires_in / 10)
        self.fetches += 1
        log.info("igate token obtained (expires in %.0f s)", expires_in)
        return _Token(str(body["access_token"]), self._clock() + expires_in - skew)


# ---- the client ------------------------------------------------------------------------------------


@dataclass(slots=True)
class FetchStats:
    """What one :meth:`IgateClient.fetch` did (for logs and metrics; no personal data)."""

    requests: int = 0
    records_read: int = 0
    duplicates: int = 0
    dense_slices: int = 0
    slice_rereads: int = 0
    unique: int = 0


class IgateClient:
    """Reads dossiers from one igate source.

    >>> client = IgateClient("http://127.0.0.1:8701", client_id=..., client_secret=...)
    >>> records = client.fetch(datetime(2026, 10, 31), datetime(2026, 11, 1))
    >>> dossiers = [to_dossier(r, "src1") for r in records]
    """

    def __init__(
        self,
        base_url: str,
        *,
        client_id: str,
        client_secret: str,
        page_size: int = 500,
        timeout: float | None = None,
        timeouts: Timeouts | None = None,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        max_slice_rereads: int = 5,
        http: HttpClient | None = None,
    ) -> None:
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be in 1..{MAX_PAGE_SIZE}")
        if timeouts is None and timeout is not None:
            timeouts = Timeouts(connect=min(5.0, timeout), read=timeout)
        self.http = http or HttpClient(base_url, timeouts=timeouts, retry=retry, sleep=sleep, name="igate")
        self.auth = IgateAuth(self.http, client_id, client_secret, clock=clock)
        self.page_size = page_size
        self.max_slice_rereads = max_slice_rereads
        self.last_stats = FetchStats()

    # -- transport --------------------------------------------------------------------------
    def _get_page(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """One authorised GET of the dossier list; on a 401 re-authenticate once and repeat."""
        for attempt in (1, 2):
            headers = {"Authorization": f"Bearer {self.auth.token()}"}
            try:
                response = self.http.get(DOSSIERS_PATH, params=params, headers=headers)
            except AuthError as exc:
                if exc.status == 401 and attempt == 1:
                    log.info("igate answered 401: token expired or revoked, re-authenticating")
                    self.auth.invalidate()
                    continue
                raise
            body = json_body(response, what="dossier page")
            if not isinstance(body, dict) or not isinstance(body.get("content"), list):
                raise ProtocolError("dossier page without a content list", method="GET", target=DOSSIERS_PATH)
            self.last_stats.requests += 1
            return body
        raise AssertionError("unreachable")  # pragma: no cover

    # -- reading a window -------------------------------------------------------------------
    def fetch(self, updated_from: datetime, updated_to: datetime | None = None) -> list[dict[str, Any]]:
        """Every record updated in ``[updated_from, updated_to)``, each id once (newest version),
        ordered by ``updatedDate``. ``updated_to`` defaults to now and is frozen for the whole call.

        See the module docstring for why this is complete under concurrent change.
        """
        upper = to_vn_naive(updated_to) if updated_to is not None else vn_now()
        lower = to_vn_naive(updated_from)
        if lower > upper:
            raise ValueError("updated_from is after updated_to")
        self.last_stats = FetchStats()
        seen: dict[str, dict[str, Any]] = {}
        for record in self._iter_window(lower, upper):
            self._keep_newest(seen, record)
        self.last_stats.unique = len(seen)
        out = sorted(seen.values(), key=lambda r: (_sort_time(r), _record_key(r)))
        log.info(
            "igate fetch %s..%s: %d records (%d requests, %d read, %d overlap duplicates, %d dense slices)",
            lower.isoformat(),
            upper.isoformat(),
            len(out),
            self.last_stats.requests,
            self.last_stats.records_read,
            self.last_stats.duplicates,
            self.last_stats.dense_slices,
        )
        return out

    def iter_dossiers(
        self, source_id: str, updated_from: datetime, updated_to: datetime | None = None
    ) -> Iterator[Dossier]:
        """:meth:`fetch` mapped through :func:`to_dossier`."""
        for record in self.fetch(updated_from, updated_to):
            yield to_dossier(record, source_id)

    def _keep_newest(self, seen: dict[str, dict[str, Any]], record: dict[str, Any]) -> None:
        key = _record_key(record)
        old = seen.get(key)
        if old is None:
            seen[key] = record
            return
        self.last_stats.duplicates += 1
        if _sort_time(record) >= _sort_time(old):
            seen[key] = record

    def _iter_window(self, lower: datetime, upper: datetime) -> Iterator[dict[str, Any]]:
        cursor = lower  # everything updated before `cursor` has been seen
        while True:
            since = max(cursor - OVERLAP, lower)  # never before the caller's window
            page = self._get_page(self._params(since, upper, 0, self.page_size))
            content = page["content"]
            if not content and (_int_or_none(page.get("totalElements")) or 0) > 0:
                # the first page of a range cannot be empty when the range holds records: the server
                # (or a proxy) lost them; concluding "nothing changed" would move the watermark past them
                raise ProtocolError(
                    "igate answered an empty first page although totalElements says records match",
                    target=DOSSIERS_PATH,
                )
            self.last_stats.records_read += len(content)
            _check_filtered(content, since)
            yield from content
            if not _more_than(page, len(content), self.page_size):
                return  # the rest of the window fitted on this page
            t_max = _max_time(content)
            if t_max is None:
                raise ProtocolError("dossier page without a readable updatedDate", target=DOSSIERS_PATH)
            if t_max > cursor:
                cursor = t_max
                if cursor > upper:  # the server ignored updatedTo; nothing of ours lies beyond it
                    return
                continue
            # A full page that does not move past the cursor: > page_size records within ~1 s.
            slice_to = min(cursor + 2 * OVERLAP, upper)
            yield from self._read_slice(max(cursor - OVERLAP, lower), slice_to)
            if slice_to >= upper:
                return
            cursor = slice_to

    def _read_slice(self, since: datetime, until: datetime) -> Iterator[dict[str, Any]]:
        """Offset-page a narrow window; accept only a read during which nothing shifted."""
        self.last_stats.dense_slices += 1
        size = MAX_PAGE_SIZE
        for _ in range(self.max_slice_rereads + 1):
            records: list[dict[str, Any]] = []
            ids: set[str] = set()
            total: int | None = None
            shifted = False
            page_no = 0
            while True:
                page = self._get_page(self._params(since, until, page_no, size))
                content = page["content"]
                self.last_stats.records_read += len(content)
                _check_filtered(content, since)
                if page_no == 0:  # a server may cap the page size below what we asked
                    size = min(size, _int_or_none(page.get("size")) or size)
                page_total = _int_or_none(page.get("totalElements"))
                if total is None:
                    total = page_total
                elif page_total != total:
                    shifted = True
                    break
                for r in content:
                    k = _record_key(r)
                    if k in ids:
                        shifted = True
                    ids.add(k)
                records.extend(content)
                if len(content) < size or not content:
                    break
                page_no += 1
            size = MAX_PAGE_SIZE
            if not shifted and (total is None or len(ids) == total):
                yield from records
                return
            self.last_stats.slice_rereads += 1
            log.warning("igate: records moved while reading a dense slice; re-reading it from page 0")
        raise ProtocolError(
            "igate records kept moving while a dense slice was read (or totalElements does not match "
            "the records served); giving up rather than returning an incomplete window",
            target=DOSSIERS_PATH,
        )

    @staticmethod
    def _params(since: datetime, until: datetime, page: int, size: int) -> dict[str, Any]:
        return {"updatedFrom": _iso(since), "updatedTo": _iso(until), "page": page, "size": size}

    def close(self) -> None:
        self.http.close()


def _iso(value: datetime) -> str:
    return to_vn_naive(value).replace(tzinfo=VN_TZ).isoformat(timespec="seconds")


def _record_key(record: Any) -> str:
    if not isinstance(record, Mapping):  # not even an object: only an identical copy is the same record
        return "raw:" + json.dumps(record, sort_keys=True, ensure_ascii=False, default=str)
    rid = record.get("id")
    if rid not in (None, ""):
        return f"id:{rid}"
    return f"code:{record.get('code')}"


def _parse_updated(record: Any) -> datetime | None:
    if not isinstance(record, Mapping):
        return None
    try:
        return parse_iso_vn(record.get("updatedDate"))
    except (TypeError, ValueError):
        return None


def _sort_time(record: Mapping[str, Any]) -> datetime:
    return _parse_updated(record) or datetime.min


def _max_time(content: list[dict[str, Any]]) -> datetime | None:
    times = [t for t in (_parse_updated(r) for r in content) if t is not None]
    return max(times) if times else None


def _check_filtered(content: list[dict[str, Any]], since: datetime) -> None:
    """A record older than ``updatedFrom`` means the server ignored the filter: keyset reading
    would not terminate in reasonable time, so stop with a clear error."""
    oldest = min((t for t in (_parse_updated(r) for r in content) if t is not None), default=None)
    if oldest is not None and oldest < since - OVERLAP:
        raise ProtocolError("igate ignored updatedFrom (records older than asked)", target=DOSSIERS_PATH)


def _more_than(page: Mapping[str, Any], got: int, asked: int) -> bool:
    """Whether the range holds more records than this first page carried.

    A full page means "maybe more". A short page is the end, unless the server capped ``size`` below
    what we asked (it echoes ``size``) or says ``totalElements`` is larger than what it sent.
    """
    if got == 0:
        return False
    size = _int_or_none(page.get("size"))
    effective = min(asked, size) if size and size > 0 else asked
    if got >= effective:
        return True
    total = _int_or_none(page.get("totalElements"))
    return total is not None and total > got


def _int_or_none(v: Any) -> int | None:
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


# ---- mapping ---------------------------------------------------------------------------------------


def _get(obj: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return obj


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
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    if not isinstance(raw, str):
        issues.add(field, raw)
        return None
    try:
        return parse_iso_vn(raw)
    except ValueError:
        issues.add(field, raw)
        return None


def _birth_date(issues: Issues, raw: Any) -> str | None:
    """``YYYY-MM-DD`` or ``YYYY``; an ISO datetime is reduced to its Vietnam date."""
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
        if len(s) == 10:
            return date.fromisoformat(s).isoformat()
        return parse_iso_vn(s).date().isoformat()  # type: ignore[union-attr]
    except ValueError:
        issues.add("applicant_birth_date", raw)
        return None


def _small_int(
    issues: Issues, field: str, raw: Any, allowed: Mapping[int, int] | frozenset[int]
) -> int | None:
    if raw is None or raw == "":
        return None
    try:
        if isinstance(raw, bool):
            raise ValueError
        n = int(raw)
        if isinstance(raw, float) and n != raw:
            raise ValueError
    except (TypeError, ValueError):
        issues.add(field, raw)
        return None
    if n not in allowed:
        issues.add(field, raw)
        return None
    return allowed[n] if isinstance(allowed, Mapping) else n


def _bool(issues: Issues, field: str, raw: Any, *, default: bool = False) -> bool:
    if raw is None:
        return default
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, int | float) and raw in (0, 1):
        return bool(raw)
    if isinstance(raw, str) and raw.strip().lower() in ("true", "false", "1", "0"):
        return raw.strip().lower() in ("true", "1")
    issues.add(field, raw)
    return default


def _paid_online(issues: Issues, raw: Any) -> int | None:
    """``paidOnline``: true → 1, false/null → 0; a portal code 0/1/2 is taken as it is."""
    if raw is None or raw is False:
        return 0
    if raw is True:
        return 1
    if isinstance(raw, int | float) and raw in (0, 1, 2):
        return int(raw)
    if isinstance(raw, str):
        s = raw.strip().lower()
        if s in ("true", "false"):
            return 1 if s == "true" else 0
        if s in ("0", "1", "2"):
            return int(s)
    issues.add("paid_online", raw)
    return None


def _fee(issues: Issues, raw: Any) -> int | None:
    if raw is None or raw == "":
        return None
    try:
        if isinstance(raw, bool):
            raise ValueError
        value = float(raw)
        if value < 0 or value != int(value):
            raise ValueError
        return int(value)
    except (TypeError, ValueError, OverflowError):
        issues.add("fee", raw)
        return None


def code_of(record: Mapping[str, Any]) -> str | None:
    """The dossier code of a raw igate record (None when absent, not a string or too long)."""
    code = record.get("code") if isinstance(record, Mapping) else None
    return storable_code(code) if isinstance(code, str) else None


def to_dossier(record: Mapping[str, Any], source_id: str) -> Dossier:
    """Map one igate record into the canonical dossier. Pure; never raises for a bad record.

    A field that cannot be understood becomes None and its raw value is recorded in
    ``raw_issues[field]`` (field names of the model, ``supplements[0].requested_at`` for nested
    ones; the dossier carries personal data anyway, nothing here is logged or raised). An unknown
    ``status`` gives ``status=None`` with the string in ``status_raw``. Nulls stay None (an unknown
    channel is not guessed: consumers count it as direct), except ``paidOnline`` null → 0.
    """
    if not isinstance(record, Mapping):
        return unreadable_record(source_id, record)
    issues = Issues()

    raw_status = record.get("status")
    status = codes.vendor_status(raw_status) if isinstance(raw_status, str | int) else None
    # status_raw keeps the source's word only when it is outside the vocabulary (validation's
    # unknown_status); a known word is fully represented by the code.
    status_raw = None
    if status is None and raw_status is not None:
        status_raw = raw_status if isinstance(raw_status, str) else str(raw_status)

    # applyMethod null: unknown channel. Kept as None; consumers count it as direct (domain.md §5).
    apply_id = _get(record, "applyMethod", "id")
    channel = None if apply_id is None else _small_int(issues, "channel", apply_id, APPLY_METHOD_CHANNEL)

    id_number = _text(issues, "applicant_id_number", _get(record, "applicant", "identityNumber"))
    if id_number is not None:
        id_number = id_number.strip()

    result_type_raw = _get(record, "procedure", "resultType")
    result_type: str | None = None
    if isinstance(result_type_raw, str) and result_type_raw.strip().lower() in RESULT_TYPES:
        result_type = result_type_raw.strip().lower()
    elif result_type_raw is not None:
        issues.add("result_type", result_type_raw)

    applicant_type = _small_int(
        issues, "applicant_type", _get(record, "applicant", "type"), frozenset({1, 2})
    )

    supplements = parse_list(
        issues,
        "supplements",
        record.get("supplements"),
        lambda i, s: Supplement(
            _datetime(issues, f"supplements[{i}].requested_at", s.get("requestedDate")),
            _datetime(issues, f"supplements[{i}].completed_at", s.get("completedDate")),
        ),
    )
    attachments = parse_list(
        issues,
        "attachments",
        record.get("attachments"),
        lambda i, a: Attachment(
            name=_text(issues, f"attachments[{i}].name", a.get("name")) or "",
            digitized=_bool(issues, f"attachments[{i}].digitized", a.get("digitized")),
            reused=_bool(issues, f"attachments[{i}].reused", a.get("reused")),
        ),
    )

    return storable(
        Dossier(
            source_id=source_id,
            dossier_code=_text(issues, "dossier_code", record.get("code")),
            agency_code=_text(issues, "agency_code", _get(record, "agency", "code")),
            procedure_code=_text(issues, "procedure_code", _get(record, "procedure", "code")),
            received_at=_datetime(issues, "received_at", record.get("acceptedDate")),
            updated_at=_datetime(issues, "updated_at", record.get("updatedDate")),
            status=status,
            status_raw=status_raw,
            source_record_id=_text(issues, "source_record_id", record.get("id")),
            agency_name=_text(issues, "agency_name", _get(record, "agency", "name")),
            procedure_name=_text(issues, "procedure_name", _get(record, "procedure", "name")),
            sector_code=_text(issues, "sector_code", _get(record, "procedure", "sector", "code")),
            sector_name=_text(issues, "sector_name", _get(record, "procedure", "sector", "name")),
            channel=channel,
            applicant_name=_text(issues, "applicant_name", _get(record, "applicant", "fullname")),
            applicant_id_number=id_number,
            applicant_id_type=codes.id_type(id_number),
            applicant_birth_date=_birth_date(issues, _get(record, "applicant", "birthDate")),
            applicant_sex=_small_int(
                issues, "applicant_sex", _get(record, "applicant", "gender"), frozenset({1, 2})
            ),
            applicant_type=applicant_type,
            applicant_phone=_text(issues, "applicant_phone", _get(record, "applicant", "phone")),
            due_at=_datetime(issues, "due_at", record.get("appointmentDate")),
            finished_at=_datetime(issues, "finished_at", record.get("completedDate")),
            returned_at=_datetime(issues, "returned_at", record.get("returnedDate")),
            paid_online=_paid_online(issues, record.get("paidOnline")),
            fee=_fee(issues, _get(record, "procedure", "fee")),
            result_type=result_type,
            result_file=_text(issues, "result_file", record.get("resultFile")),
            vneid_verified=_bool(issues, "vneid_verified", record.get("vneidVerified")),
            supplements=supplements,
            attachments=attachments,
            raw_issues=issues.issues,
        )
    )


__all__ = [
    "FetchStats",
    "IgateAuth",
    "IgateClient",
    "to_dossier",
]
