"""Simulator of a one-stop system of dialect ``onegate`` (world.md §2): Vietnamese field names,
an API key per source and keyset paging.

Endpoint
--------
``GET /api/HoSo/DongBo?tuNgay=yyyyMMddHHmmss&cursor=<opaque>&limit=<1..500>`` with header
``X-API-Key`` → ``{"error_code": "0", "message": "", "data": [record, ...], "next_cursor": "..." |
null}``. Semantics:

* the key selects the source (tenant): every source of dialect ``onegate`` has one (World
  credentials ``api_key``); only records visible *now* in the World (``visible_at <= now``);
* ``tuNgay`` is an inclusive lower bound on ``NgayCapNhat`` (Vietnam local time, to the second);
  required when no ``cursor`` is given, optional with one (the cursor is already past it);
* ordered by ``(NgayCapNhat, MaHoSo, record id)`` ascending; **keyset paging**: ``next_cursor``
  encodes that triple of the last record returned and the next page holds the records strictly
  after it. Records that change while a client pages move behind the cursor (they come again
  later, with their new ``NgayCapNhat``), and no unseen record ever shifts past it: paging is
  stable under concurrent change. A late update (``NgayCapNhat`` in the past, visible only later)
  lands *before* a cursor taken earlier, so an incremental client still needs a look-back;
* ``next_cursor`` is null when nothing follows the page (the client is caught up); a cursor stays
  valid forever (it is a position, not a server-side session);
* ``limit`` 1..500, default 100.

Errors are HTTP 200 with ``error_code`` other than ``"0"`` (``data`` and ``next_cursor`` null):

======= ==========================================================================
``"0"`` success
``"1"`` ``X-API-Key`` missing or unknown ("API key không hợp lệ")
``"2"`` a parameter is invalid: ``tuNgay`` not ``yyyyMMddHHmmss`` or missing without a cursor,
        ``limit`` not an integer in 1..500 (the message names the parameter)
``"3"`` ``cursor`` cannot be decoded ("cursor không hợp lệ")
======= ==========================================================================

Injected faults (``sandbox.faults``) answer as a proxy would: 500 with this JSON shape and
``error_code`` ``"500"``, 502/503/504 HTML from "nginx", 429 with ``Retry-After`` and
``error_code`` ``"429"``, connection resets, answers that never come.

Records: :func:`render_onegate` (pure). Dates ``yyyyMMddHHmmss`` local time; ``NgaySinhChuHoSo``
``dd/MM/yyyy``, or ``yyyy`` when only the year is known; ``GioiTinh`` ``"Nam"``/``"Nữ"`` (null
when unknown); ``KenhThucHien`` 1/2/3, ``DuocThanhToanTrucTuyen`` 0/1/2,
``TaiKhoanDuocXacThucVoiVNeID``, ``DuocSoHoa``, ``DuocTaiSuDung`` 0/1, ``LePhi`` integer VND, all
JSON numbers. ``TrangThaiHoSo`` is the portal code 1-10 as a JSON number; an *unknown* vendor
status (``status`` None, ``status_raw`` kept) is rendered as the source sent it: a raw text made of
digits becomes that (out-of-range) number, e.g. ``99``; any other raw text stays a JSON string,
e.g. ``"cho_duyet"``. A value the model could not hold (``None`` with a raw text in
``raw_issues``) is rendered as that raw text.

Fixture: records can come from a JSON list of ``Dossier.to_dict()`` (+ ``visible_at``), the
format of :func:`sandbox.igate.load_dossier_fixture`; the server makes those sources of dialect
``onegate`` with an ``api_key`` (in the state file).

Control (besides ``/_sandbox/state|faults|reset``): ``POST /_sandbox/clock {"days", "hours"}``
advances the shared World (``GET`` reads it); ``POST /_sandbox/touch {"source_id", "count"}``
makes the first ``count`` records (in the current ordering) change now (``NgayCapNhat`` = World
now), or ``{"source_id", "codes": [...]}`` those records. ``on_world_change`` (given by the
server) runs after the clock moved or the world was reset, so the other simulators re-sync.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flask import Flask, jsonify, request

from sandbox.common import RowsCache, WorldHolder, add_control_routes, add_world_routes, json_app
from sandbox.faults import FaultInjector, FaultMiddleware, FaultProfile
from sandbox.igate import record_id
from tthc.model import Dossier
from tthc.timeutil import to_vn_naive

MAX_LIMIT = 500
DEFAULT_LIMIT = 100
DATA_PATH = "/api/HoSo/DongBo"
SEX_LABELS = {1: "Nam", 2: "Nữ"}

ERR_OK = "0"
ERR_KEY = "1"
ERR_PARAM = "2"
ERR_CURSOR = "3"


@dataclass
class OnegateConfig:
    faults: FaultProfile = field(default_factory=FaultProfile)


# ---- rendering ---------------------------------------------------------------------------------
def fmt_onegate(value: datetime | None) -> str | None:
    """Naive Vietnam time (or aware) → ``yyyyMMddHHmmss``."""
    if value is None:
        return None
    return to_vn_naive(value).strftime("%Y%m%d%H%M%S")


def fmt_birth(value: str | None) -> str | None:
    """Model birth date ``YYYY-MM-DD`` → ``dd/MM/yyyy``; ``YYYY`` stays ``yyyy``; anything else as is."""
    if value is None:
        return None
    v = str(value)
    if len(v) == 10 and v[4] == "-" and v[7] == "-":
        return f"{v[8:10]}/{v[5:7]}/{v[0:4]}"
    return v


def status_value(dossier: Dossier) -> int | str | None:
    """``TrangThaiHoSo``: the portal code, or the unknown raw status as the source sent it."""
    if dossier.status is not None:
        return dossier.status
    raw = dossier.status_raw
    if raw is None:
        return None
    text = str(raw).strip()
    if text.isdigit() and len(text) <= 9:
        return int(text)
    return raw


def render_onegate(dossier: Dossier, *, updated_at: datetime | None = None) -> dict[str, Any]:
    """The onegate JSON record of world.md §2 for a canonical dossier (pure).

    ``updated_at`` overrides ``dossier.updated_at`` (the simulator's /_sandbox/touch).
    """
    d = dossier
    raw = d.raw_issues or {}

    def pick(fieldname: str, rendered: Any) -> Any:
        if getattr(d, fieldname) is None and fieldname in raw:
            return raw[fieldname]
        return rendered

    sex = SEX_LABELS.get(d.applicant_sex) if d.applicant_sex is not None else pick("applicant_sex", None)
    return {
        "MaHoSo": d.dossier_code,
        "MaTTHC": d.procedure_code,
        "TenTTHC": d.procedure_name,
        "MaLinhVuc": d.sector_code,
        "MaDonVi": d.agency_code,
        "KenhThucHien": pick("channel", d.channel),
        "ChuHoSo": d.applicant_name,
        "SoGiayToChuHoSo": d.applicant_id_number,
        "NgaySinhChuHoSo": pick("applicant_birth_date", fmt_birth(d.applicant_birth_date)),
        "GioiTinh": sex,
        "LoaiDoiTuong": d.applicant_type,
        "NgayTiepNhan": pick("received_at", fmt_onegate(d.received_at)),
        "NgayHenTra": pick("due_at", fmt_onegate(d.due_at)),
        "NgayKetThucXuLy": pick("finished_at", fmt_onegate(d.finished_at)),
        "NgayTra": pick("returned_at", fmt_onegate(d.returned_at)),
        "TrangThaiHoSo": status_value(d),
        "DuocThanhToanTrucTuyen": pick("paid_online", d.paid_online),
        "LePhi": pick("fee", d.fee),
        "DanhSachHoSoBoSung": [
            {"NgayYeuCau": fmt_onegate(s.requested_at), "NgayBoSung": fmt_onegate(s.completed_at)}
            for s in d.supplements
        ],
        "TaiLieuNop": [
            {
                "TenTepDinhKem": a.name,
                "DuocSoHoa": 1 if a.digitized else 0,
                "DuocTaiSuDung": 1 if a.reused else 0,
            }
            for a in d.attachments
        ],
        "DuongDanTepTinKetQua": d.result_file,
        "TaiKhoanDuocXacThucVoiVNeID": 1 if d.vneid_verified else 0,
        "NgayCapNhat": fmt_onegate(updated_at or d.updated_at) or pick("updated_at", None),
    }


# ---- cursor ------------------------------------------------------------------------------------
def encode_cursor(updated: datetime | None, code: str | None, rid: str) -> str:
    """Opaque cursor of a position ``(NgayCapNhat, MaHoSo, record id)``."""
    blob = json.dumps([fmt_onegate(updated) or "", code or "", rid], separators=(",", ":"))
    return base64.urlsafe_b64encode(blob.encode("utf-8")).decode("ascii").rstrip("=")


def decode_cursor(text: str) -> tuple[str, str, str]:
    """The position of a cursor; ValueError when it is not one of ours."""
    try:
        pad = "=" * (-len(text) % 4)
        data = json.loads(base64.urlsafe_b64decode((text + pad).encode("ascii")).decode("utf-8"))
    except (binascii.Error, UnicodeError, ValueError) as e:
        raise ValueError("cursor không hợp lệ") from e
    if (
        not isinstance(data, list)
        or len(data) != 3
        or not all(isinstance(x, str) for x in data)
        or (data[0] and not (len(data[0]) == 14 and data[0].isdigit()))
    ):
        raise ValueError("cursor không hợp lệ")
    return data[0], data[1], data[2]


# ---- simulator ---------------------------------------------------------------------------------
class _ApiError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class _Row:
    key: tuple[str, str, str]  # (NgayCapNhat yyyyMMddHHmmss or "", MaHoSo or "", record id)
    updated: datetime | None
    record: Any  # SourceRecord


class OnegateSimulator:
    def __init__(
        self,
        holder: WorldHolder,
        config: OnegateConfig | None = None,
        *,
        on_world_change: Callable[[], None] | None = None,
    ) -> None:
        self.holder = holder
        self.config = config or OnegateConfig()
        self.injector = FaultInjector(self.config.faults)
        self.on_world_change = on_world_change
        self._lock = threading.RLock()
        self.reset_state()

    # ---- state ---------------------------------------------------------------------------
    def reset_state(self) -> None:
        with self._lock:
            self.touched: dict[tuple[str, str], datetime] = {}  # (source, record id) -> when
            self.touch_version = 0  # bumped on every write to touched: the rows cache key
            self._rows_cache = RowsCache()
            self.queries: list[dict[str, Any]] = []
            self.counts: dict[str, int] = {
                "pages_served": 0,
                "records_served": 0,
                "bad_key": 0,
                "bad_params": 0,
                "bad_cursor": 0,
            }

    def reset(self) -> None:
        """Back to the start: clock at the anchor, no touches, zero counters."""
        self.holder.reset()
        self.reset_state()
        self._changed()

    def _changed(self) -> None:
        if self.on_world_change is not None:
            self.on_world_change()

    def onegate_sources(self) -> list[Any]:
        with self.holder.lock:
            return [s for s in self.holder.world.sources if s.dialect == "onegate" and s.api_key]

    def state(self) -> dict[str, Any]:
        with self.holder.lock:
            now = self.holder.world.now
            sources = [
                {
                    "source_id": s.source_id,
                    "agency_codes": list(s.agency_codes),
                    "visible_records": len(self._rows(s.source_id)),
                }
                for s in self.onegate_sources()
            ]
        with self._lock:
            return {
                "now": now.isoformat(timespec="seconds"),
                "sources": sources,
                "counts": dict(self.counts),
                "touched": len(self.touched),
                "queries": list(self.queries[-1000:]),
            }

    def source_for_key(self, key: str | None) -> str | None:
        if not key:
            return None
        found = None
        for s in self.onegate_sources():
            if secrets.compare_digest(str(s.api_key), key):
                found = s.source_id
        return found

    # ---- data ----------------------------------------------------------------------------
    def _rows(self, source_id: str) -> list[_Row]:
        """Visible records of the source in keyset order (caller holds the world lock)."""
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
            upd = d.updated_at.replace(microsecond=0) if d.updated_at is not None else None
            t = self.touched.get((source_id, rid))
            if t is not None and (upd is None or t > upd):
                upd = t
            rows.append(_Row((fmt_onegate(upd) or "", d.dossier_code or "", rid), upd, r))
        rows.sort(key=lambda x: x.key)
        return rows

    def page(self, source_id: str, args: dict[str, str]) -> dict[str, Any]:
        cursor_text = args.get("cursor") or None
        tu_ngay = args.get("tuNgay")
        position: tuple[str, str, str] | None = None
        if cursor_text is not None:
            try:
                position = decode_cursor(cursor_text)
            except ValueError as e:
                raise _ApiError(ERR_CURSOR, str(e)) from e
        lo = _parse_tu_ngay(tu_ngay, required=position is None)
        limit = _parse_limit(args.get("limit"))
        with self.holder.lock:
            rows = self._rows(source_id)
            if lo is not None:
                rows = [r for r in rows if r.key[0] and r.key[0] >= lo]
            if position is not None:
                rows = [r for r in rows if r.key > position]
            chunk = rows[:limit]
            data = [render_onegate(r.record.dossier, updated_at=r.updated) for r in chunk]
            now = self.holder.world.now
        more = len(rows) > limit
        next_cursor = encode_cursor(chunk[-1].updated, chunk[-1].key[1], chunk[-1].key[2]) if more else None
        with self._lock:
            self.counts["pages_served"] += 1
            self.counts["records_served"] += len(data)
            self.queries.append(
                {
                    "source_id": source_id,
                    "tuNgay": tu_ngay,
                    "cursor": cursor_text is not None,
                    "limit": limit,
                    "returned": len(data),
                    "remaining": max(0, len(rows) - len(chunk)),
                    "world_now": now.isoformat(timespec="seconds"),
                }
            )
        return {"error_code": ERR_OK, "message": "", "data": data, "next_cursor": next_cursor}

    def touch(self, source_id: str, count: int | None, codes: list[str] | None) -> dict[str, Any]:
        with self.holder.lock:
            now = self.holder.world.now.replace(microsecond=0)
            rows = self._rows(source_id)
            if codes is not None:
                wanted = set(codes)
                chosen = [r for r in rows if r.record.dossier.dossier_code in wanted]
            else:
                chosen = rows[: max(0, count or 0)]
            with self._lock:
                for r in chosen:
                    self.touched[(source_id, r.key[2])] = now
                    self.touch_version += 1
        return {
            "touched": len(chosen),
            "codes": [r.record.dossier.dossier_code for r in chosen],
            "NgayCapNhat": fmt_onegate(now),
        }

    def advance(self, days: float, hours: float) -> datetime:
        now = self.holder.advance(days, hours)
        self._changed()
        return now

    # ---- WSGI ----------------------------------------------------------------------------
    def app(self) -> Any:
        app: Flask = json_app("sandbox.onegate")

        def error_body(status: int, message: str, path: str) -> dict[str, Any]:
            return {"error_code": str(status), "message": message, "data": None, "next_cursor": None}

        def api_error(code: str, message: str) -> Any:
            return jsonify({"error_code": code, "message": message, "data": None, "next_cursor": None})

        @app.get(DATA_PATH)
        def dong_bo() -> Any:
            source_id = self.source_for_key(request.headers.get("X-API-Key"))
            if source_id is None:
                with self._lock:
                    self.counts["bad_key"] += 1
                return api_error(ERR_KEY, "API key không hợp lệ")
            try:
                return jsonify(self.page(source_id, request.args.to_dict()))
            except _ApiError as e:
                with self._lock:
                    self.counts["bad_cursor" if e.code == ERR_CURSOR else "bad_params"] += 1
                return api_error(e.code, e.message)

        add_world_routes(
            app,
            dialect="onegate",
            source_ids=lambda: {s.source_id for s in self.onegate_sources()},
            advance=self.advance,
            now=lambda: self.holder.now,
            touch=self.touch,
            now_fields=lambda t: {"now_onegate": fmt_onegate(t)},
        )

        add_control_routes(app, self.injector, state=self.state, reset=self.reset)
        app.wsgi_app = FaultMiddleware(  # type: ignore[method-assign]
            app.wsgi_app, self.injector, error_body=error_body
        )
        return app


def _parse_tu_ngay(text: str | None, *, required: bool) -> str | None:
    if text is None or text == "":
        if required:
            raise _ApiError(ERR_PARAM, "Thiếu tham số tuNgay (yyyyMMddHHmmss)")
        return None
    if len(text) != 14 or not text.isdigit():
        raise _ApiError(ERR_PARAM, "Tham số tuNgay không đúng định dạng yyyyMMddHHmmss")
    try:
        datetime.strptime(text, "%Y%m%d%H%M%S")
    except ValueError as e:
        raise _ApiError(ERR_PARAM, "Tham số tuNgay không đúng định dạng yyyyMMddHHmmss") from e
    return text


def _parse_limit(text: str | None) -> int:
    if text is None or text == "":
        return DEFAULT_LIMIT
    try:
        v = int(text)
    except ValueError as e:
        raise _ApiError(ERR_PARAM, f"Tham số limit phải là số nguyên từ 1 đến {MAX_LIMIT}") from e
    if not 1 <= v <= MAX_LIMIT:
        raise _ApiError(ERR_PARAM, f"Tham số limit phải là số nguyên từ 1 đến {MAX_LIMIT}")
    return v
