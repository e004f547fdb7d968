"""Simulator of a provincial one-stop system of dialect ``igate`` (world.md §1).

Endpoints
---------
``POST /oauth/token`` (form, or HTTP Basic for the client credentials) ``grant_type=
client_credentials&client_id&client_secret`` → ``{"access_token", "token_type": "bearer",
"expires_in": <token_seconds>}``. Errors follow RFC 6749 §5.2: 400 ``unsupported_grant_type`` /
``invalid_request``, 401 ``invalid_client``. The client_id selects the source (tenant): only
sources of dialect ``igate`` have credentials here.

``GET /api/v1/dossiers?updatedFrom&updatedTo&page&size`` with ``Authorization: Bearer`` → Spring
page ``{"content", "totalElements", "totalPages", "number", "size"}`` (plus Spring's
``numberOfElements``, ``first``, ``last``, ``empty``). Semantics:

* only records visible *now* in the World (``visible_at <= now``), of the token's source;
* window is half-open on ``updatedDate``: ``updatedFrom <= updatedDate < updatedTo``; either bound
  may be omitted (unbounded). A late update (``updatedDate`` in the past, visible only later)
  appears in a past window only once it is visible: a connector needs a look-back;
* ordered by ``updatedDate`` ascending, ties by ``id``;
* **offset paging computed at request time**: page ``p`` is elements ``[p*size, (p+1)*size)`` of
  the ordering as it is at that request. Records that change between two page requests move
  (to the end, with a new ``updatedDate``), so the remaining ones shift forward: a naive
  page-through loses some and may repeat others;
* ``page`` >= 0 (default 0), ``size`` 1..1000 (default 20); bad values, or a date that is not
  ISO-8601, → 400 with a Spring error body ``{"timestamp", "status", "error", "message", "path"}``.
  A ``+`` in an offset must be URL-encoded (``%2B``): a raw ``+`` decodes to a space and is a
  400, as on the real (Spring) server. A date without offset is Vietnam time.
* missing/unknown token → 401 ``{"error": "invalid_token", ...}`` with ``WWW-Authenticate``;
  expired token → the same 401 with ``error_description`` "Access token expired".

Records: :func:`render_igate` (pure) renders a ``tthc.model.Dossier``. Dates are ISO-8601 with
``+07:00``; ``applyMethod.id`` = channel - 1 (``applyMethod`` null when the channel is unknown);
``status`` = ``STATUS_TO_VENDOR[status]`` or ``status_raw``; ``paidOnline`` = ``paid_online in
(1, 2)`` (the dialect cannot tell 1 from 2); a value the model could not hold (``None`` with a raw
text in ``raw_issues``) is rendered as that raw text, as the source sent it.

Fixture: instead of a generated World the simulator can serve records from a JSON file
(:func:`load_dossier_fixture`): a list of ``tthc.model.Dossier.to_dict()`` objects, each with an
optional ``"visible_at"`` (ISO, naive Vietnam time; default its ``updated_at``). Several versions of
one dossier share ``source_record_id`` (or the code); sources are named by ``source_id`` and get
``<source_id>_client`` credentials (the secret is in the state file). The clock starts at the
configured ``anchor``, else at the latest ``visible_at``.

Control (besides ``/_sandbox/state|faults|reset``): ``POST /_sandbox/clock {"days", "hours"}``
advances the shared World (``GET`` reads it); ``POST /_sandbox/touch {"source_id", "count"}``
makes the first ``count`` records (in the current ordering) of the source change now
(``updatedDate`` = World now), or ``{"source_id", "codes": [...]}`` those records;
``POST /_sandbox/expire_tokens`` expires every token.

Faults of ours (``sandbox.faults``): ``token_expire`` (a token that already served a request is
answered 401 "Access token expired") and ``page_touch`` (records of the window change right after a
page is served: offsets shift between page requests). ``/_sandbox/state`` counts them
(``tokens_expired_early``, ``records_touched_while_paging``; ``faults.injected``).
"""

from __future__ import annotations

import json
import math
import re
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from flask import Flask, jsonify, request

from sandbox.common import RowsCache, WorldHolder, add_control_routes, add_world_routes, json_app
from sandbox.faults import FaultInjector, FaultMiddleware, FaultProfile
from tthc.codes import STATUS_TO_VENDOR
from tthc.model import Dossier
from tthc.timeutil import VN_TZ, to_vn_naive

#: Namespace of the record ids (uuid5): fixed, so ids are stable across runs and machines.
ID_NAMESPACE = uuid.UUID("6f1d3c2a-8b7e-5d40-9a1c-2e3f4a5b6c7d")
MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 20


@dataclass
class IgateConfig:
    token_seconds: float = 300.0
    faults: FaultProfile = field(default_factory=FaultProfile)


# ---- rendering ---------------------------------------------------------------------------------
def iso_vn(value: datetime | None) -> str | None:
    """Naive Vietnam time (or aware) → ``2025-07-14T08:30:00+07:00``."""
    if value is None:
        return None
    return to_vn_naive(value).replace(tzinfo=VN_TZ).isoformat(timespec="seconds")


_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def record_id(dossier: Dossier, discriminator: str | None = None) -> str:
    """Stable uuid of a record: the source's own id when it is a uuid, else uuid5 of
    ``source_id:source_record_id`` or ``source_id:dossier_code`` (+ ``#discriminator`` when one
    source holds two records with one code)."""
    if dossier.source_record_id:
        if _CANONICAL_UUID.fullmatch(dossier.source_record_id):
            return dossier.source_record_id  # what str(uuid.UUID(...)) gives, without building one
        try:
            return str(uuid.UUID(dossier.source_record_id))
        except ValueError:
            return str(uuid.uuid5(ID_NAMESPACE, f"{dossier.source_id}:{dossier.source_record_id}"))
    key = f"{dossier.source_id}:{dossier.dossier_code}"
    if discriminator is not None:
        key += f"#{discriminator}"
    return str(uuid.uuid5(ID_NAMESPACE, key))


def render_igate(
    dossier: Dossier, *, record_id_: str | None = None, updated_at: datetime | None = None
) -> dict[str, Any]:
    """The igate JSON record of world.md §1 for a canonical dossier (pure).

    ``record_id_`` overrides the derived id; ``updated_at`` overrides ``dossier.updated_at``
    (the simulator's /_sandbox/touch).
    """
    d = dossier
    raw = d.raw_issues or {}

    def pick(fieldname: str, rendered: Any) -> Any:
        # A value the source sent but the model could not hold: show it as the source sent it.
        if getattr(d, fieldname) is None and fieldname in raw:
            return raw[fieldname]
        return rendered

    if d.status is not None:
        status: Any = STATUS_TO_VENDOR.get(d.status, d.status_raw)
    else:
        status = d.status_raw
    channel = d.channel
    apply_method = {"id": channel - 1} if channel in (1, 2, 3) else pick("channel", None)
    if apply_method is not None and not isinstance(apply_method, dict):
        apply_method = {"id": apply_method}
    paid = d.paid_online
    return {
        "id": record_id_ or record_id(d),
        "code": d.dossier_code,
        "procedure": {
            "code": d.procedure_code,
            "name": d.procedure_name,
            "sector": {"code": d.sector_code, "name": d.sector_name},
            "fee": pick("fee", d.fee),
            "resultType": d.result_type,
        },
        "agency": {"code": d.agency_code, "name": d.agency_name},
        "applicant": {
            "fullname": d.applicant_name,
            "identityNumber": d.applicant_id_number,
            "birthDate": pick("applicant_birth_date", d.applicant_birth_date),
            "gender": pick("applicant_sex", d.applicant_sex),
            "phone": d.applicant_phone,
            "email": None,
            "type": d.applicant_type,
        },
        "applyMethod": apply_method,
        "acceptedDate": pick("received_at", iso_vn(d.received_at)),
        "appointmentDate": pick("due_at", iso_vn(d.due_at)),
        "completedDate": pick("finished_at", iso_vn(d.finished_at)),
        "returnedDate": pick("returned_at", iso_vn(d.returned_at)),
        "status": status,
        "paidOnline": pick("paid_online", False) if paid is None else paid in (1, 2),
        "supplements": [
            {"requestedDate": iso_vn(s.requested_at), "completedDate": iso_vn(s.completed_at)}
            for s in d.supplements
        ],
        "attachments": [
            {"name": a.name, "digitized": bool(a.digitized), "reused": bool(a.reused)} for a in d.attachments
        ],
        "resultFile": d.result_file,
        "vneidVerified": bool(d.vneid_verified),
        "updatedDate": iso_vn(updated_at or d.updated_at) or pick("updated_at", None),
    }


def load_dossier_fixture(path: str | Path) -> list[Any]:
    """The igate fixture file → ``SourceRecord`` list for ``World.from_records``."""
    from sandbox.world_types import SourceRecord

    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, list):
        raise ValueError(f"igate fixture {path}: expected a JSON list of dossiers")
    out = []
    for i, item in enumerate(data):
        if not isinstance(item, dict):
            raise ValueError(f"igate fixture {path}: item {i} is not an object")
        item = dict(item)
        visible = item.pop("visible_at", None)
        try:
            d = Dossier.from_dict(item)
            when = datetime.fromisoformat(visible) if visible else d.updated_at
        except (TypeError, ValueError) as e:
            raise ValueError(f"igate fixture {path}: item {i}: {e}") from e
        if when is None:
            raise ValueError(f"igate fixture {path}: item {i}: needs updated_at or visible_at")
        out.append(SourceRecord(dossier=d, visible_at=to_vn_naive(when)))
    return out


# ---- simulator ---------------------------------------------------------------------------------
class _BadRequest(Exception):
    pass


@dataclass
class _Row:
    updated: datetime | None
    rid: str
    record: Any  # SourceRecord


class IgateSimulator:
    def __init__(self, holder: WorldHolder, config: IgateConfig | None = None) -> None:
        self.holder = holder
        self.config = config or IgateConfig()
        self.injector = FaultInjector(self.config.faults)
        self._lock = threading.RLock()
        self.reset_state()

    # ---- state ---------------------------------------------------------------------------
    def reset_state(self) -> None:
        with self._lock:
            self.tokens: dict[str, tuple[str, str, float]] = {}  # token -> client, source, expiry
            self.token_uses: dict[str, int] = {}  # token -> authorised requests it served
            self.touched: dict[tuple[str, str], datetime] = {}  # (source, record id) -> when
            self.touch_version = 0  # bumped on every write to touched: the rows cache key
            self._rows_cache = RowsCache()
            self.queries: list[dict[str, Any]] = []
            self.counts: dict[str, int] = {
                "tokens_issued": 0,
                "token_refused": 0,
                "pages_served": 0,
                "records_touched_while_paging": 0,
                "tokens_expired_early": 0,
                "unauthorized": 0,
                "bad_requests": 0,
            }

    def reset(self) -> None:
        """Back to the start: a fresh World (clock at the anchor), no tokens, no touches."""
        self.holder.reset()
        self.reset_state()

    def igate_sources(self) -> list[Any]:
        with self.holder.lock:
            return [s for s in self.holder.world.sources if s.dialect == "igate" and s.client_id]

    def state(self) -> dict[str, Any]:
        with self.holder.lock:
            now = self.holder.world.now
            sources = [
                {
                    "source_id": s.source_id,
                    "client_id": s.client_id,
                    "agency_codes": list(s.agency_codes),
                    "visible_records": len(self._rows(s.source_id)),
                }
                for s in self.igate_sources()
            ]
        with self._lock:
            return {
                "now": now.isoformat(timespec="seconds"),
                "sources": sources,
                "counts": dict(self.counts),
                "touched": len(self.touched),
                "queries": list(self.queries[-1000:]),
            }

    # ---- auth ----------------------------------------------------------------------------
    def issue_token(self, form: dict[str, str], basic: tuple[str, str] | None) -> tuple[dict, int]:
        if form.get("grant_type") != "client_credentials":
            with self._lock:
                self.counts["token_refused"] += 1
            if not form.get("grant_type"):
                return {"error": "invalid_request", "error_description": "grant_type missing"}, 400
            return {"error": "unsupported_grant_type"}, 400
        client_id, secret = form.get("client_id"), form.get("client_secret")
        if basic is not None:
            client_id, secret = basic
        source = None
        for s in self.igate_sources():
            if s.client_id == client_id:
                source = s
        if (
            source is None
            or not isinstance(secret, str)
            or not secrets.compare_digest(str(source.client_secret), secret)
        ):
            with self._lock:
                self.counts["token_refused"] += 1
            return {"error": "invalid_client", "error_description": "Bad client credentials"}, 401
        token = secrets.token_urlsafe(32)
        with self._lock:
            now = time.monotonic()
            if len(self.tokens) > 10_000:
                self.tokens = {k: v for k, v in self.tokens.items() if v[2] > now}
                self.token_uses = {k: v for k, v in self.token_uses.items() if k in self.tokens}
            self.tokens[token] = (source.client_id, source.source_id, now + self.config.token_seconds)
            self.counts["tokens_issued"] += 1
        expires_in = int(self.config.token_seconds) if self.config.token_seconds >= 1 else 0
        return {"access_token": token, "token_type": "bearer", "expires_in": expires_in}, 200

    def source_for(self, authorization: str | None) -> tuple[str | None, str | None]:
        """(source_id, None) or (None, error description)."""
        if not authorization or not authorization.lower().startswith("bearer "):
            return None, "Full authentication is required to access this resource"
        token = authorization[7:].strip()
        with self._lock:
            entry = self.tokens.get(token)
            if entry is None:
                return None, "Invalid access token"
            if entry[2] <= time.monotonic():
                return None, "Access token expired"
            used = self.token_uses.get(token, 0)
            # fault `token_expire`: a token that served before expires now, earlier than it said
            if used and self.injector.draw("token_expire"):
                self.tokens[token] = (entry[0], entry[1], 0.0)
                self.counts["tokens_expired_early"] += 1
                return None, "Access token expired"
            self.token_uses[token] = used + 1
        return entry[1], None

    def expire_tokens(self) -> None:
        with self._lock:
            self.tokens = {k: (c, s, 0.0) for k, (c, s, _e) in self.tokens.items()}

    # ---- data ----------------------------------------------------------------------------
    def _rows(self, source_id: str) -> list[_Row]:
        """The source's visible records in igate order, with ids and touch overrides applied.
        Caller holds the world lock."""
        w = self.holder.world
        key = (id(w), w.now, self.touch_version)
        return self._rows_cache.get(source_id, key, lambda: self._build_rows(source_id))

    def _build_rows(self, source_id: str) -> list[_Row]:
        w = self.holder.world
        now = w.now
        records = [r for r in w.records(source_id) if r.visible_at <= now]
        codes: dict[str | None, int] = {}
        for r in records:
            codes[r.dossier.dossier_code] = codes.get(r.dossier.dossier_code, 0) + 1
        rows = []
        for r in records:
            d = r.dossier
            disc = None
            if d.dossier_code is None or codes[d.dossier_code] > 1:
                disc = str(getattr(r, "dossier_index", id(d)))
            rid = record_id(d, disc)
            upd = d.updated_at
            t = self.touched.get((source_id, rid))
            if t is not None and (upd is None or t > upd):
                upd = t
            rows.append(_Row(upd, rid, r))
        rows.sort(key=lambda x: (x.updated or datetime.min, x.rid))
        return rows

    def page(self, source_id: str, args: dict[str, str]) -> dict[str, Any]:
        lo = _parse_bound(args.get("updatedFrom"), "updatedFrom")
        hi = _parse_bound(args.get("updatedTo"), "updatedTo")
        page = _parse_int(args.get("page"), "page", 0, 0, 10**9)
        size = _parse_int(args.get("size"), "size", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE)
        with self.holder.lock:
            rows = [
                r
                for r in self._rows(source_id)
                if (r.updated is None and lo is None and hi is None)
                or (
                    r.updated is not None
                    and (lo is None or r.updated >= lo)
                    and (hi is None or r.updated < hi)
                )
            ]
            chunk = rows[page * size : (page + 1) * size]
            content = [render_igate(r.record.dossier, record_id_=r.rid, updated_at=r.updated) for r in chunk]
            now = self.holder.world.now
            # fault `page_touch`: records of this window change right after this page was cut, so
            # the offsets of everything behind them shift before the client's next request
            touched = 0
            if rows and self.injector.draw("page_touch"):
                chosen = self.injector.sample(rows, self.injector.profile.page_touch_count)
                with self._lock:
                    for r in chosen:
                        self.touched[(source_id, r.rid)] = now
                        self.touch_version += 1
                touched = len(chosen)
                self.injector.count("records_touched", touched)
        total = len(rows)
        pages = math.ceil(total / size) if total else 0
        with self._lock:
            self.counts["pages_served"] += 1
            self.counts["records_touched_while_paging"] += touched
            self.queries.append(
                {
                    "source_id": source_id,
                    "updatedFrom": args.get("updatedFrom"),
                    "updatedTo": args.get("updatedTo"),
                    "page": page,
                    "size": size,
                    "returned": len(content),
                    "totalElements": total,
                    "world_now": now.isoformat(timespec="seconds"),
                }
            )
        return {
            "content": content,
            "totalElements": total,
            "totalPages": pages,
            "number": page,
            "size": size,
            "numberOfElements": len(content),
            "first": page == 0,
            "last": page >= pages - 1,
            "empty": not content,
        }

    def touch(self, source_id: str, count: int | None, codes: list[str] | None) -> dict[str, Any]:
        with self.holder.lock:
            now = self.holder.world.now
            rows = self._rows(source_id)
            if codes is not None:
                wanted = set(codes)
                chosen = [r for r in rows if r.record.dossier.dossier_code in wanted]
            else:
                chosen = rows[: max(0, count or 0)]
            with self._lock:
                for r in chosen:
                    self.touched[(source_id, r.rid)] = now
                    self.touch_version += 1
        return {
            "touched": len(chosen),
            "ids": [r.rid for r in chosen],
            "codes": [r.record.dossier.dossier_code for r in chosen],
            "updatedDate": iso_vn(now),
        }

    def advance(self, days: float, hours: float) -> datetime:
        return self.holder.advance(days, hours)

    # ---- WSGI ----------------------------------------------------------------------------
    def app(self) -> Any:
        app: Flask = json_app("sandbox.igate")

        def spring_error(status: int, message: str, path: str) -> dict[str, Any]:
            from werkzeug.http import HTTP_STATUS_CODES

            return {
                "timestamp": datetime.now(VN_TZ).isoformat(timespec="milliseconds"),
                "status": status,
                "error": HTTP_STATUS_CODES.get(status, "Error"),
                "message": message,
                "path": path,
            }

        @app.post("/oauth/token")
        def token() -> Any:
            basic = None
            if request.authorization and request.authorization.type == "basic":
                basic = (request.authorization.username or "", request.authorization.password or "")
            body, status = self.issue_token(dict(request.form), basic)
            headers = {"Cache-Control": "no-store", "Pragma": "no-cache"}
            return jsonify(body), status, headers

        @app.get("/api/v1/dossiers")
        def dossiers() -> Any:
            source_id, problem = self.source_for(request.headers.get("Authorization"))
            if source_id is None:
                with self._lock:
                    self.counts["unauthorized"] += 1
                body = {"error": "invalid_token", "error_description": problem}
                hdr = {"WWW-Authenticate": f'Bearer error="invalid_token", error_description="{problem}"'}
                return jsonify(body), 401, hdr
            try:
                return jsonify(self.page(source_id, request.args.to_dict()))
            except _BadRequest as e:
                with self._lock:
                    self.counts["bad_requests"] += 1
                return jsonify(spring_error(400, str(e), request.path)), 400

        add_world_routes(
            app,
            dialect="igate",
            source_ids=lambda: {s.source_id for s in self.igate_sources()},
            advance=self.advance,
            now=lambda: self.holder.now,
            touch=self.touch,
            now_fields=lambda t: {"now_vn": iso_vn(t)},
        )

        @app.post("/_sandbox/expire_tokens")
        def expire() -> Any:
            self.expire_tokens()
            return jsonify({"expired": True})

        add_control_routes(app, self.injector, state=self.state, reset=self.reset)
        app.wsgi_app = FaultMiddleware(  # type: ignore[method-assign]
            app.wsgi_app,
            self.injector,
            error_body=spring_error,
            auth_paths=("/oauth/token",),
        )
        return app


def _parse_bound(text: str | None, name: str) -> datetime | None:
    if text is None or text == "":
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError as e:
        raise _BadRequest(f"Failed to convert '{name}': not an ISO-8601 date-time: {text!r}") from e
    return to_vn_naive(value)


def _parse_int(text: str | None, name: str, default: int, lo: int, hi: int) -> int:
    if text is None or text == "":
        return default
    try:
        v = int(text)
    except ValueError as e:
        raise _BadRequest(f"Failed to convert '{name}': not an integer") from e
    if not lo <= v <= hi:
        raise _BadRequest(f"'{name}' must be between {lo} and {hi}")
    return v
