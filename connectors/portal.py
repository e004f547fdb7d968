"""Client of the National Public Service Portal (DVCQG) sync API (world.md §6), and the pure
mapping of a canonical dossier into the portal's payload.

Session. ``POST /api/auth`` gives a session; an answer with ``error_code`` "-1" means it expired:
the client authenticates again and repeats that call once. Look-ups may run in several threads
over one client (the publish stage's read-back does): the session is opened and renewed under a
lock, once, and the HTTP session's connection pool is shared.

Publishing dossiers (``DongBoHoSoMC``, at most 100 per request). Each batch is sent as creates
(``isUpdating "False"``); records answered "-3" ("Hồ sơ đã tồn tại") are re-sent as updates
(``isUpdating "True"``); one :class:`PublishResult` per ``MaHoSo`` says what happened.

Ambiguity. ``/api/integration`` calls change state, so the HTTP layer never repeats them on a read
time-out, a connection reset after sending, or a 500/502/504: it raises
:class:`~connectors.http.AmbiguousError` (the portal may have applied the batch and lost the answer:
world.md's "committed but the answer was lost"). This client then decides what is safe:

* dossiers: a create-or-update is idempotent in effect (same content, same final record), so the
  batch is simply sent again as creates; a record the lost request did apply answers "-3" and is
  sent as an update with the same content: the "-3" *is* the read-back. With
  ``read_back_dossiers=True`` each record is instead read back with ``TraCuuHoSo`` first (held with
  the content we sent → ``verified``; other content → update; not held → create), which costs one
  request per record.
* progress entries (``CapNhatTienDoHoSoMC`` appends whatever it receives, so a blind resend would
  show an entry twice to the citizen): the dossiers' ``TienDo`` are read back with ``TraCuuHoSo``; an
  entry already present is applied, only the missing ones are resent. Identical entries count as
  one entry (exactly once per distinct content).

Both are bounded by ``max_ambiguous_rounds``; what is still unsure then is reported
``ambiguous=True`` (read back before resending it next run). ``resolve_ambiguous=False`` reports
ambiguity at once and leaves the decision to the caller.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import unicodedata
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from connectors.http import (
    AmbiguousError,
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
from tthc import codes
from tthc.model import Dossier
from tthc.privacy import scrub_digits
from tthc.timeutil import format_portal

log = logging.getLogger(__name__)

AUTH_PATH = "/api/auth"
INTEGRATION_PATH = "/api/integration"
MAX_BATCH = 100

CODE_OK = "0"
CODE_SESSION_EXPIRED = "-1"
CODE_MALFORMED = "-2"
CODE_EXISTS = "-3"
CODE_MISSING = "-4"
CODE_INVALID = "-5"
CODE_BAD_CREDENTIALS = "-6"


Items = list[tuple[int, Mapping[str, Any]]]


class PortalError(PermanentError):
    """The portal refused a whole request (``error_code`` other than "0" and "-1")."""


@dataclass(frozen=True, slots=True)
class PublishResult:
    """What happened to one record (dossier or progress entry) sent to the portal.

    ``action``: ``created`` | ``updated`` (also a create whose answer was lost and that was then
    found to exist) | ``verified`` (found already applied by a read-back) | ``appended`` (progress) |
    None when not ok. ``ambiguous``: the portal may or may not hold
    it (read back before resending). ``retryable``: a transient failure; try again next run.
    """

    ma_ho_so: str | None
    ok: bool
    action: str | None = None
    error_code: str | None = None
    message: str | None = None
    ambiguous: bool = False
    retryable: bool = False

    @property
    def created(self) -> bool:
        return self.action == "created"

    @property
    def updated(self) -> bool:
        return self.action == "updated"


# ---- payload mapping -----------------------------------------------------------------------------


def _nfc(s: str | None) -> str | None:
    if s is None:
        return None
    return unicodedata.normalize("NFC", s).strip() or None


def to_portal_payload(d: Dossier, *, fee_name: str = "Lệ phí") -> dict[str, Any]:
    """The ``DongBoHoSoMC`` record of a canonical dossier (world.md §6). Pure.

    Dates ``yyyyMMddHHmmss`` (Vietnam time, as the model keeps them); the applicant name in Unicode
    NFC (spelling otherwise kept as the source wrote it); channel null → 1 (direct), online payment
    null → 0, applicant type null → 1 (citizen).
    """
    id_type = d.applicant_id_type or codes.id_type(d.applicant_id_number)
    return {
        "MaHoSo": d.dossier_code,
        "MaTTHC": d.procedure_code,
        "TenTTHC": d.procedure_name,
        "MaLinhVuc": d.sector_code,
        "KenhThucHien": d.channel if d.channel is not None else codes.CHANNEL_DIRECT,
        "ChuHoSo": _nfc(d.applicant_name),
        "LoaiDoiTuong": d.applicant_type if d.applicant_type is not None else 1,
        "SoGiayToChuHoSo": d.applicant_id_number,
        "NgayTiepNhan": format_portal(d.received_at),
        "NgayHenTra": format_portal(d.due_at),
        "NgayKetThucXuLy": format_portal(d.finished_at),
        "NgayTra": format_portal(d.returned_at),
        "TrangThaiHoSo": d.status,
        "DonViXuLy": d.agency_code,
        "DuocThanhToanTrucTuyen": d.paid_online if d.paid_online is not None else 0,
        "TaiKhoanDuocXacThucVoiVNeID": 1 if d.vneid_verified else 0,
        "DinhDanhCHS": (
            [{"LoaiDinhDanh": id_type, "SoDinhDanh": d.applicant_id_number}] if d.applicant_id_number else []
        ),
        "DanhSachHoSoBoSung": [
            {"NgayYeuCau": format_portal(s.requested_at), "NgayBoSung": format_portal(s.completed_at)}
            for s in d.supplements
        ],
        "TaiLieuNop": [
            {
                "TenTepDinhKem": _nfc(a.name) or "",
                "DuocSoHoa": 1 if a.digitized else 0,
                "DuocTaiSuDung": 1 if a.reused else 0,
            }
            for a in d.attachments
        ],
        "DanhSachLePhi": ([{"TenPhiLePhi": fee_name, "Gia": d.fee, "LoaiPhiLePhi": 1}] if d.fee else []),
    }


def progress_identity(entry: Mapping[str, Any]) -> str:
    """Canonical JSON of a progress entry: two entries with this equal are the same entry."""
    return json.dumps(entry, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


# ---- the client ----------------------------------------------------------------------------------


class PortalClient:
    """Sessions, dossier sync, progress updates and look-ups on the national portal."""

    def __init__(
        self,
        base_url: str,
        *,
        username: str,
        password: str,
        batch_size: int = MAX_BATCH,
        resolve_ambiguous: bool = True,
        read_back_dossiers: bool = False,
        max_ambiguous_rounds: int = 3,
        timeout: float | None = None,
        timeouts: Timeouts | None = None,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        http: HttpClient | None = None,
    ) -> None:
        if not username or not password:
            raise ValueError("portal username and password are required")
        if not 1 <= batch_size <= MAX_BATCH:
            raise ValueError(f"batch_size must be in 1..{MAX_BATCH}")
        if timeouts is None and timeout is not None:
            timeouts = Timeouts(connect=min(5.0, timeout), read=timeout)
        self.http = http or HttpClient(base_url, timeouts=timeouts, retry=retry, sleep=sleep, name="portal")
        self._username = username
        self._password = password
        self._session: str | None = None
        self._session_lock = threading.Lock()  # look-ups may run in threads over one session
        self.batch_size = batch_size
        self.resolve_ambiguous = resolve_ambiguous
        self.read_back_dossiers = read_back_dossiers
        self.max_ambiguous_rounds = max_ambiguous_rounds
        self.sessions_opened = 0

    # -- session ----------------------------------------------------------------------------
    def _login(self) -> str:
        response = self.http.post(
            AUTH_PATH, json={"username": self._username, "password": self._password}, idempotent=True
        )
        body = json_body(response, what="auth answer")
        if not isinstance(body, dict):
            raise ProtocolError("auth answer is not a JSON object", target=AUTH_PATH)
        code = str(body.get("error_code", "0")).strip()
        session = body.get("session")
        if code != CODE_OK or not isinstance(session, str) or not session:
            raise AuthError("portal refused the credentials", target=AUTH_PATH, error_code=code)
        self.sessions_opened += 1
        log.info("portal session opened")
        return session

    def _session_token(self) -> str:
        with self._session_lock:  # one login, whichever thread needs the session first
            if self._session is None:
                self._session = self._login()
            return self._session

    def _session_expired(self, token: str) -> None:
        with self._session_lock:  # only once per expired session, not once per thread that met it
            if self._session == token:
                self._session = None

    def call(
        self, service: str, *, madonvi: str | None = None, idempotent: bool = False, **fields: Any
    ) -> dict:
        """One ``/api/integration`` call; re-authenticates once on "-1". Returns the answer body
        (``error_code`` "0"); any other code raises :class:`PortalError`."""
        for attempt in (1, 2):
            token = self._session_token()
            body: dict[str, Any] = {"session": token, "service": service}
            if madonvi is not None:
                body["madonvi"] = madonvi
            body.update(fields)
            response = self.http.post(INTEGRATION_PATH, json=body, idempotent=idempotent)
            answer = json_body(response, what=f"{service} answer")
            if not isinstance(answer, dict):
                raise ProtocolError(f"{service} answer is not a JSON object", target=INTEGRATION_PATH)
            code = str(answer.get("error_code", "")).strip()
            if code == CODE_SESSION_EXPIRED and attempt == 1:
                log.info("portal session expired; authenticating again and repeating %s once", service)
                self._session_expired(token)
                continue
            if code != CODE_OK:
                raise PortalError(
                    f"portal refused {service}", target=INTEGRATION_PATH, error_code=code or None
                )
            return answer
        raise AssertionError("unreachable")  # pragma: no cover

    # -- look-up ----------------------------------------------------------------------------
    def lookup(self, ma_ho_so: str) -> dict[str, Any] | None:
        """``TraCuuHoSo``: ``{"HoSo": {...}, "TienDo": [...]}`` or None when the portal does not
        hold the dossier ("-4")."""
        try:
            answer = self.call("TraCuuHoSo", mahoso=ma_ho_so, idempotent=True)
        except PortalError as exc:
            if exc.error_code == CODE_MISSING:
                return None
            raise
        data = answer.get("data")
        if not isinstance(data, dict):
            raise ProtocolError("TraCuuHoSo answer without data", target=INTEGRATION_PATH)
        return data

    # -- dossiers -----------------------------------------------------------------------------
    def publish(
        self, payloads: Sequence[Mapping[str, Any]], *, madonvi: str | None = None
    ) -> list[PublishResult]:
        """Create-or-update dossiers (payloads of :func:`to_portal_payload`); one result per payload,
        in input order. ``madonvi`` defaults to each payload's ``DonViXuLy`` (batches are per agency).

        Never raises for a failed request: after a transient failure that outlived the retries (or
        refused credentials) the remaining batches are not sent and come back ``retryable``; a
        refused request (e.g. "-2") fails its own batch only.
        """
        results: dict[int, PublishResult] = {}
        groups: dict[str, list[int]] = {}
        for i, p in enumerate(payloads):
            agency = madonvi or p.get("DonViXuLy")
            if not agency:
                results[i] = PublishResult(
                    _code(p),
                    False,
                    error_code="no_agency",
                    message="payload without DonViXuLy and no madonvi given",
                )
                continue
            groups.setdefault(str(agency), []).append(i)
        run = _Run()
        for agency, indexes in groups.items():
            for start in range(0, len(indexes), self.batch_size):
                batch = [(i, payloads[i]) for i in indexes[start : start + self.batch_size]]
                if run.stopped is not None:
                    results.update({i: _failed(p, run.stopped, note="not sent") for i, p in batch})
                    continue
                results.update(self._publish_batch(agency, batch, run))
        return [results[i] for i in range(len(payloads))]

    def _sync(self, agency: str, updating: bool, items: Items) -> dict[str, Any]:
        return self.call(
            "DongBoHoSoMC",
            madonvi=agency,
            isUpdating="True" if updating else "False",
            data=[p for _, p in items],
        )

    def _publish_batch(self, agency: str, batch: Items, run: _Run) -> dict[int, PublishResult]:
        out: dict[int, PublishResult] = {}
        creates, updates = list(batch), []
        rounds = 0
        while True:
            unsure: Items = []
            if creates:
                answer = run.guard(partial(self._sync, agency, False, creates), creates, out, unsure)
                if answer is not None:
                    for (i, p), r in zip(creates, _per_record(answer, creates), strict=True):
                        if r["error_code"] == CODE_OK:
                            out[i] = PublishResult(_code(p), True, "created")
                        elif r["error_code"] == CODE_EXISTS:
                            updates.append((i, p))  # exists: send it as an update
                        else:
                            out[i] = _rejected(p, r)
            if updates and run.stopped is None:
                answer = run.guard(partial(self._sync, agency, True, updates), updates, out, unsure)
                if answer is not None:
                    for (i, p), r in zip(updates, _per_record(answer, updates), strict=True):
                        if r["error_code"] == CODE_OK:
                            out[i] = PublishResult(_code(p), True, "updated")
                        else:
                            out[i] = _rejected(p, r)
            elif updates:
                out.update({i: _failed(p, run.stopped, note="not sent") for i, p in updates})  # type: ignore[arg-type]
            if not unsure:
                return out
            if not self.resolve_ambiguous or rounds >= self.max_ambiguous_rounds or run.stopped is not None:
                out.update({i: _ambiguous(p) for i, p in unsure})
                return out
            rounds += 1
            if not self.read_back_dossiers:
                creates, updates = unsure, []  # applied ones answer "-3" and go on as updates
                continue
            try:
                creates, updates, verified = self._read_back(unsure)
            except ConnectorError as exc:
                run.note(exc)
                out.update({i: _ambiguous(p) for i, p in unsure})
                return out
            out.update({i: PublishResult(_code(p), True, "verified") for i, p in verified})

    def _read_back(self, items: Items) -> tuple[Items, Items, Items]:
        """Sort records of an ambiguous send into (to create, to update, already applied)."""
        creates: Items = []
        updates: Items = []
        verified: Items = []
        for i, p in items:
            held = self.lookup(str(_code(p)))
            if held is None:
                creates.append((i, p))
            elif _same(held.get("HoSo"), p):
                verified.append((i, p))
            else:
                updates.append((i, p))
        log.info(
            "portal read-back after an ambiguous send: %d applied, %d to create, %d to update",
            len(verified),
            len(creates),
            len(updates),
        )
        return creates, updates, verified

    # -- progress -----------------------------------------------------------------------------
    def push_progress(
        self, entries: Sequence[Mapping[str, Any]], *, madonvi: str, check_first: bool = False
    ) -> list[PublishResult]:
        """``CapNhatTienDoHoSoMC`` in batches; one result per entry, in input order.

        After an ambiguous send the dossiers' ``TienDo`` are read back and only the entries the
        portal does not show yet are resent, so each distinct entry is applied exactly once.
        ``check_first=True`` also reads back *before* the first send (for a caller that cannot
        tell whether an earlier run's send went through). Never raises for a failed request.
        """
        results: dict[int, PublishResult] = {}
        indexed = list(enumerate(entries))
        run = _Run()
        for start in range(0, len(indexed), self.batch_size):
            batch = indexed[start : start + self.batch_size]
            if run.stopped is not None:
                results.update({i: _failed(e, run.stopped, note="not sent") for i, e in batch})
                continue
            results.update(self._progress_batch(madonvi, batch, run, check_first))
        return [results[i] for i in range(len(entries))]

    def _progress_batch(
        self, madonvi: str, batch: Items, run: _Run, check_first: bool
    ) -> dict[int, PublishResult]:
        out: dict[int, PublishResult] = {}
        pending = list(batch)
        rounds = 0
        if check_first:
            try:
                pending = self._missing_progress(pending, out)
            except ConnectorError as exc:
                run.note(exc)
                out.update({i: _failed(e, exc, note="not sent") for i, e in pending})
                return out
        while pending:
            unsure: Items = []
            answer = run.guard(
                partial(self.call, "CapNhatTienDoHoSoMC", madonvi=madonvi, data=[e for _, e in pending]),
                pending,
                out,
                unsure,
            )
            if answer is not None:
                for (i, e), r in zip(pending, _per_record(answer, pending), strict=True):
                    if r["error_code"] == CODE_OK:
                        out[i] = PublishResult(_code(e), True, "appended")
                    else:
                        out[i] = _rejected(e, r)
                return out
            if not unsure:
                return out
            if not self.resolve_ambiguous or rounds >= self.max_ambiguous_rounds or run.stopped is not None:
                out.update({i: _ambiguous(e) for i, e in unsure})
                return out
            rounds += 1
            try:
                pending = self._missing_progress(unsure, out)
            except ConnectorError as exc:
                run.note(exc)
                out.update({i: _ambiguous(e) for i, e in unsure})
                return out
        return out

    def _missing_progress(self, pending: Items, out: dict[int, PublishResult]) -> Items:
        """Entries of ``pending`` the portal does not show; the others are marked applied in ``out``."""
        held: dict[str, Counter[str]] = {}
        still: Items = []
        for i, e in pending:
            code = str(_code(e))
            if code not in held:
                data = self.lookup(code)
                held[code] = Counter(progress_identity(x) for x in (data or {}).get("TienDo") or [])
            if held[code][progress_identity(e)] > 0:
                out[i] = PublishResult(_code(e), True, "verified")
            else:
                still.append((i, e))
        log.info(
            "portal read-back of progress: %d already applied, %d to send",
            len(pending) - len(still),
            len(still),
        )
        return still

    def close(self) -> None:
        self.http.close()


# ---- helpers ---------------------------------------------------------------------------------------


def _code(p: Mapping[str, Any]) -> str | None:
    v = p.get("MaHoSo") if isinstance(p, Mapping) else None
    return str(v) if v is not None else None


def _clean_message(m: Any) -> str | None:
    if m is None:
        return None
    return scrub_digits(str(m))[:200]


def _per_record(answer: Mapping[str, Any], items: Items) -> list[dict[str, Any]]:
    """Per-record results aligned with ``items``: by position when the list matches one to one,
    else by ``MaHoSo`` (a record without a result is reported as ``no_result``)."""
    raw = answer.get("result")
    if raw is None:
        raw = answer.get("data")
    if not isinstance(raw, list):
        raise ProtocolError("batch answer without per-record results", target=INTEGRATION_PATH)
    parsed = [
        {
            "MaHoSo": r.get("MaHoSo") if isinstance(r, Mapping) else None,
            "error_code": str(r.get("error_code", "")).strip() if isinstance(r, Mapping) else "",
            "message": _clean_message(r.get("message")) if isinstance(r, Mapping) else None,
        }
        for r in raw
    ]
    codes_sent = [_code(p) for _, p in items]
    if len(parsed) == len(items) and all(
        r["MaHoSo"] in (None, c) for r, c in zip(parsed, codes_sent, strict=True)
    ):
        return parsed
    by_code: dict[str | None, list[dict[str, Any]]] = {}
    for r in parsed:
        by_code.setdefault(r["MaHoSo"], []).append(r)
    aligned = []
    for c in codes_sent:
        queue = by_code.get(c)
        if queue:
            aligned.append(queue.pop(0))
        else:
            aligned.append({"MaHoSo": c, "error_code": "no_result", "message": "no result for this record"})
    return aligned


def _same(held: Any, sent: Mapping[str, Any]) -> bool:
    if not isinstance(held, Mapping):
        return False
    return json.dumps(held, sort_keys=True, ensure_ascii=False) == json.dumps(
        dict(sent), sort_keys=True, ensure_ascii=False
    )


def _failed(p: Mapping[str, Any], exc: ConnectorError, *, note: str | None = None) -> PublishResult:
    msg = f"{type(exc).__name__}" + (f" ({note})" if note else "")
    return PublishResult(
        _code(p),
        False,
        error_code=exc.error_code or type(exc).__name__,
        message=msg,
        retryable=isinstance(exc, TransientError) or note == "not sent",
    )


def _rejected(p: Mapping[str, Any], r: Mapping[str, Any]) -> PublishResult:
    return PublishResult(_code(p), False, error_code=r["error_code"], message=r["message"])


def _ambiguous(p: Mapping[str, Any]) -> PublishResult:
    return PublishResult(
        _code(p),
        False,
        error_code="ambiguous",
        message="the portal may or may not hold this record",
        ambiguous=True,
    )


class _Run:
    """Failure bookkeeping of one publish/progress run: after a transient failure that outlived
    the retries, or refused credentials, the remaining batches are not sent."""

    def __init__(self) -> None:
        self.stopped: ConnectorError | None = None

    def note(self, exc: ConnectorError) -> None:
        if isinstance(exc, TransientError | AuthError) and self.stopped is None:
            self.stopped = exc

    def guard(
        self, send: Callable[[], dict[str, Any]], items: Items, out: dict[int, PublishResult], unsure: Items
    ) -> dict[str, Any] | None:
        """Run one send: its answer, or None after recording the failure (ambiguous → ``unsure``)."""
        try:
            return send()
        except AmbiguousError:
            unsure.extend(items)
        except ConnectorError as exc:
            self.note(exc)
            out.update({i: _failed(p, exc) for i, p in items})
        return None


__all__ = [
    "PortalClient",
    "PortalError",
    "PublishResult",
    "progress_identity",
    "to_portal_payload",
]
