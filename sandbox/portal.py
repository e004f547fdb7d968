"""Simulator of the National Public Service Portal (DVCQG) sync API (world.md §6).

Endpoints
---------
``POST /api/auth`` ``{"username", "password"}`` → ``{"session": "...", "error_code": 0}``.
Wrong credentials → ``{"error_code": "-6", "message": ...}``. Sessions live ``session_seconds``
(wall clock, configurable).

``POST /api/integration`` ``{"session", "madonvi", "service", ...}``:

* ``DongBoHoSoMC`` ``{"isUpdating": "True"|"False", "data": [dossier, ...]}`` (1..100 records).
* ``CapNhatTienDoHoSoMC`` ``{"data": [progress, ...]}`` (1..100 entries): appends every entry,
  duplicates included (the portal shows a progress entry sent twice twice).
* ``TraCuuHoSo`` ``{"mahoso"}`` → ``{"error_code": "0", "message": "", "data": {"HoSo": {...},
  "TienDo": [progress, ...]}}`` (progress in receive order, duplicates repeated).

Answers are HTTP 200 with a string ``error_code`` (the portal's style; only ``/api/auth`` success
carries the number ``0``, as world.md shows). Codes (``-1`` and ``-3`` are world.md's, the rest ours):

====== =====================================================================================
``0``  success (for batch services: the request was processed; see the per-record results)
``-1`` session expired or unknown: authenticate again
``-2`` malformed request: not JSON, missing ``madonvi``/``service``/``data``, unknown service,
       ``isUpdating`` not "True"/"False", empty batch or more than 100 records (nothing applied)
``-3`` per record: create of a dossier that exists, "Hồ sơ đã tồn tại" (send it as an update)
``-4`` per record: update of (or progress for, or lookup of) a dossier the portal does not hold,
       "Hồ sơ không tồn tại" (send it as a create)
``-5`` per record: invalid record: ``MaHoSo`` missing, a date not ``yyyyMMddHHmmss``, a code out of
       its vocabulary (TrangThaiHoSo 1-10, KenhThucHien 1-3, DuocThanhToanTrucTuyen 0-2)
``-6`` wrong username or password
====== =====================================================================================

Batch answers: ``{"error_code": "0", "message": "...", "result": [{"MaHoSo", "error_code",
"message"}, ...]}``, one result per record in request order; records are applied one by one
(a bad record does not stop the others).

Fault ``commit_lost`` applies on ``/api/integration`` (the batch is applied, the answer dropped).

Inspection (``GET /_sandbox/state``): ``dossier_count``; per dossier the current record, ``madonvi``, counts
``created`` / ``updated`` / ``create_conflicts`` / ``update_missing``, whether it came from the
fixture, and ``progress``: every distinct progress entry (canonical JSON identity) with
``count`` = how many times it was received. A test proves exactly-once with ``count == 1``.
``sessions_issued`` and ``session_refusals`` (answers "-1": expired or unknown session).
Control: ``POST /_sandbox/expire_sessions`` ends every session now. Fault ``token_expire``
(``sandbox.faults``): a session that was already accepted once is answered "-1" (expired early).

Fixture: a JSON file holding a list of dossier payloads (world.md §7), loaded at start and on
``/_sandbox/reset``.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from flask import Flask, jsonify, request

from sandbox.common import add_control_routes, json_app
from sandbox.faults import FaultInjector, FaultMiddleware, FaultProfile

MAX_BATCH = 100

DOSSIER_DATE_FIELDS = ("NgayTiepNhan", "NgayHenTra", "NgayKetThucXuLy", "NgayTra")
PROGRESS_DATE_FIELDS = ("ThoiDiemXuLy", "NgayBatDau", "NgayKetThucTheoQuyDinh")
CODE_RANGES = {
    "TrangThaiHoSo": range(1, 11),
    "KenhThucHien": range(1, 4),
    "DuocThanhToanTrucTuyen": range(0, 3),
}
_PORTAL_DATE_RE = re.compile(r"^\d{14}$")

MSG_EXISTS = "Hồ sơ đã tồn tại"
MSG_MISSING = "Hồ sơ không tồn tại"
MSG_SESSION_EXPIRED = "Phiên làm việc đã hết hạn, vui lòng đăng nhập lại"
MSG_SESSION_UNKNOWN = "Phiên làm việc không hợp lệ, vui lòng đăng nhập lại"


@dataclass
class PortalConfig:
    users: dict[str, str] = field(default_factory=lambda: {"tthc-sync": "sandbox-portal-secret"})
    session_seconds: float = 1800.0
    fixture: list[dict[str, Any]] = field(default_factory=list)
    faults: FaultProfile = field(default_factory=FaultProfile)


def load_fixture(path: str | Path) -> list[dict[str, Any]]:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, list) or not all(isinstance(d, dict) for d in data):
        raise ValueError(f"portal fixture {path}: expected a JSON list of dossier objects")
    for i, d in enumerate(data):
        problem = validate_dossier(d)
        if problem:
            raise ValueError(f"portal fixture {path}: record {i}: {problem}")
    return data


def _valid_date(v: Any) -> bool:
    if v is None or v == "":
        return True
    if not isinstance(v, str) or not _PORTAL_DATE_RE.match(v):
        return False
    try:
        datetime.strptime(v, "%Y%m%d%H%M%S")
    except ValueError:
        return False
    return True


def _code_ok(v: Any, allowed: range) -> bool:
    if v is None or v == "":
        return True
    if isinstance(v, bool):
        return False
    if isinstance(v, str) and v.strip().lstrip("-").isdigit():
        v = int(v)
    return isinstance(v, int) and v in allowed


def _ma_ho_so(d: Any) -> str | None:
    if not isinstance(d, dict):
        return None
    v = d.get("MaHoSo")
    return v.strip() if isinstance(v, str) and v.strip() else None


def validate_dossier(d: Any) -> str | None:
    """Why a dossier payload is rejected (``-5``), or None."""
    if not isinstance(d, dict):
        return "bản ghi không phải đối tượng JSON"
    if _ma_ho_so(d) is None:
        return "thiếu MaHoSo"
    for f in DOSSIER_DATE_FIELDS:
        if not _valid_date(d.get(f)):
            return f"{f} không đúng định dạng yyyyMMddHHmmss"
    for f, allowed in CODE_RANGES.items():
        if not _code_ok(d.get(f), allowed):
            return f"{f} không hợp lệ"
    supplements = d.get("DanhSachHoSoBoSung")
    if supplements is not None:
        if not isinstance(supplements, list):
            return "DanhSachHoSoBoSung phải là danh sách"
        for s in supplements:
            if not isinstance(s, dict):
                return "DanhSachHoSoBoSung: phần tử không hợp lệ"
            for k, v in s.items():
                if k.startswith("Ngay") and not _valid_date(v):
                    return f"DanhSachHoSoBoSung.{k} không đúng định dạng yyyyMMddHHmmss"
    ids = d.get("DinhDanhCHS")
    if ids is not None and not isinstance(ids, list):
        return "DinhDanhCHS phải là danh sách"
    return None


def validate_progress(p: Any) -> str | None:
    if not isinstance(p, dict):
        return "bản ghi không phải đối tượng JSON"
    if _ma_ho_so(p) is None:
        return "thiếu MaHoSo"
    for f in PROGRESS_DATE_FIELDS:
        if not _valid_date(p.get(f)):
            return f"{f} không đúng định dạng yyyyMMddHHmmss"
    return None


def _identity(entry: dict[str, Any]) -> str:
    return json.dumps(entry, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


@dataclass
class _Held:
    record: dict[str, Any]
    madonvi: str | None
    preloaded: bool = False
    created: int = 0
    updated: int = 0
    create_conflicts: int = 0
    progress_order: list[str] = field(default_factory=list)  # identities in receive order
    progress_entries: dict[str, dict[str, Any]] = field(default_factory=dict)
    progress_counts: dict[str, int] = field(default_factory=dict)


class PortalSimulator:
    """State and behaviour of the portal; :meth:`app` builds the WSGI app."""

    def __init__(self, config: PortalConfig | None = None) -> None:
        self.config = config or PortalConfig()
        self.injector = FaultInjector(self.config.faults)
        self._lock = threading.RLock()
        self.reset()

    # ---- state ---------------------------------------------------------------------------
    def reset(self) -> None:
        with self._lock:
            self.sessions: dict[str, float] = {}  # session -> expiry (monotonic)
            self.session_uses: dict[str, int] = {}  # session -> requests it was accepted for
            self.session_refusals = 0  # "-1" answers (expired or unknown session)
            self.dossiers: dict[str, _Held] = {}
            self.update_missing: dict[str, int] = {}
            self.requests: dict[str, int] = {}
            self.sessions_issued = 0
            for d in self.config.fixture:
                code = _ma_ho_so(d)
                assert code is not None
                self.dossiers[code] = _Held(dict(d), d.get("DonViXuLy"), preloaded=True)

    def expire_sessions(self) -> None:
        with self._lock:
            # keep them, expired, so the answer is "expired" rather than "unknown"
            self.sessions = dict.fromkeys(self.sessions, 0.0)

    def summary(self) -> dict[str, Any]:
        """Counts only: dossiers held, progress entries received, entries received more than once."""
        with self._lock:
            received = sum(len(h.progress_order) for h in self.dossiers.values())
            repeated = sum(1 for h in self.dossiers.values() for c in h.progress_counts.values() if c > 1)
            return {
                "dossier_count": len(self.dossiers),
                "progress_received": received,
                "progress_repeated": repeated,
                "requests": dict(self.requests),
                "sessions_issued": self.sessions_issued,
                "session_refusals": self.session_refusals,
            }

    def state(self) -> dict[str, Any]:
        with self._lock:
            out: dict[str, Any] = {}
            for code, h in self.dossiers.items():
                out[code] = {
                    "record": h.record,
                    "madonvi": h.madonvi,
                    "preloaded": h.preloaded,
                    "created": h.created,
                    "updated": h.updated,
                    "create_conflicts": h.create_conflicts,
                    "progress": [
                        {"entry": h.progress_entries[i], "count": h.progress_counts[i]}
                        for i in dict.fromkeys(h.progress_order)
                    ],
                    "progress_received": len(h.progress_order),
                }
            return {
                "dossier_count": len(out),
                "dossiers": out,
                "update_missing": dict(self.update_missing),
                "requests": dict(self.requests),
                "sessions_issued": self.sessions_issued,
                "session_refusals": self.session_refusals,
                "sessions_active": sum(1 for e in self.sessions.values() if e > time.monotonic()),
            }

    # ---- behaviour -----------------------------------------------------------------------
    def authenticate(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            return {"error_code": "-2", "message": "Yêu cầu không hợp lệ"}
        user, pw = body.get("username"), body.get("password")
        expected = self.config.users.get(user) if isinstance(user, str) else None
        if expected is None or not isinstance(pw, str) or not secrets.compare_digest(expected, pw):
            return {"error_code": "-6", "message": "Sai tên đăng nhập hoặc mật khẩu"}
        token = secrets.token_urlsafe(24)
        with self._lock:
            now = time.monotonic()
            if len(self.sessions) > 10_000:  # keep the table bounded under a client that loops
                self.sessions = {k: v for k, v in self.sessions.items() if v > now}
                self.session_uses = {k: v for k, v in self.session_uses.items() if k in self.sessions}
            self.sessions[token] = now + self.config.session_seconds
            self.sessions_issued += 1
        return {"session": token, "error_code": 0}

    def _check_session(self, token: Any) -> dict[str, Any] | None:
        with self._lock:
            exp = self.sessions.get(token) if isinstance(token, str) else None
            if exp is None:
                self.session_refusals += 1
                return {"error_code": "-1", "message": MSG_SESSION_UNKNOWN}
            if exp <= time.monotonic():
                self.session_refusals += 1
                return {"error_code": "-1", "message": MSG_SESSION_EXPIRED}
            used = self.session_uses.get(token, 0)
            # fault `token_expire`: a session that served before expires now, earlier than it said
            if used and self.injector.draw("token_expire"):
                self.sessions[token] = 0.0
                self.session_refusals += 1
                return {"error_code": "-1", "message": MSG_SESSION_EXPIRED}
            self.session_uses[token] = used + 1
        return None

    def integrate(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            return {"error_code": "-2", "message": "Yêu cầu không phải JSON hợp lệ"}
        err = self._check_session(body.get("session"))
        if err:
            return err
        service = body.get("service")
        with self._lock:
            self.requests[str(service)] = self.requests.get(str(service), 0) + 1
        if service == "TraCuuHoSo":
            return self._lookup(body.get("mahoso"))
        madonvi = body.get("madonvi")
        if not isinstance(madonvi, str) or not madonvi.strip():
            return {"error_code": "-2", "message": "Thiếu madonvi"}
        if service not in ("DongBoHoSoMC", "CapNhatTienDoHoSoMC"):
            return {"error_code": "-2", "message": f"Dịch vụ không được hỗ trợ: {service}"}
        data = body.get("data")
        if not isinstance(data, list) or not data:
            return {"error_code": "-2", "message": "Thiếu data (danh sách bản ghi)"}
        if len(data) > MAX_BATCH:
            return {"error_code": "-2", "message": f"Tối đa {MAX_BATCH} bản ghi mỗi lần gửi"}
        if service == "DongBoHoSoMC":
            updating = _parse_bool(body.get("isUpdating"))
            if updating is None:
                return {"error_code": "-2", "message": 'isUpdating phải là "True" hoặc "False"'}
            results = [self._sync_one(d, madonvi, updating) for d in data]
        else:
            results = [self._progress_one(p) for p in data]
        ok = sum(1 for r in results if r["error_code"] == "0")
        return {
            "error_code": "0",
            "message": f"Xử lý thành công {ok}/{len(results)} bản ghi",
            "result": results,
        }

    def _sync_one(self, d: Any, madonvi: str, updating: bool) -> dict[str, Any]:
        code = _ma_ho_so(d)
        problem = validate_dossier(d)
        if problem:
            return {"MaHoSo": code, "error_code": "-5", "message": problem}
        assert code is not None
        with self._lock:
            held = self.dossiers.get(code)
            if not updating:
                if held is not None:
                    held.create_conflicts += 1
                    return {"MaHoSo": code, "error_code": "-3", "message": MSG_EXISTS}
                self.dossiers[code] = _Held(dict(d), madonvi, created=1)
                return {"MaHoSo": code, "error_code": "0", "message": "Thêm mới thành công"}
            if held is None:
                self.update_missing[code] = self.update_missing.get(code, 0) + 1
                return {"MaHoSo": code, "error_code": "-4", "message": MSG_MISSING}
            held.record = dict(d)
            held.madonvi = madonvi
            held.updated += 1
            return {"MaHoSo": code, "error_code": "0", "message": "Cập nhật thành công"}

    def _progress_one(self, p: Any) -> dict[str, Any]:
        code = _ma_ho_so(p)
        problem = validate_progress(p)
        if problem:
            return {"MaHoSo": code, "error_code": "-5", "message": problem}
        assert code is not None
        with self._lock:
            held = self.dossiers.get(code)
            if held is None:
                return {"MaHoSo": code, "error_code": "-4", "message": MSG_MISSING}
            ident = _identity(p)
            held.progress_order.append(ident)
            held.progress_entries.setdefault(ident, dict(p))
            held.progress_counts[ident] = held.progress_counts.get(ident, 0) + 1
        return {"MaHoSo": code, "error_code": "0", "message": "Cập nhật tiến độ thành công"}

    def _lookup(self, code: Any) -> dict[str, Any]:
        if not isinstance(code, str) or not code.strip():
            return {"error_code": "-2", "message": "Thiếu mahoso"}
        with self._lock:
            held = self.dossiers.get(code.strip())
            if held is None:
                return {"error_code": "-4", "message": MSG_MISSING}
            return {
                "error_code": "0",
                "message": "",
                "data": {
                    "HoSo": dict(held.record),
                    "TienDo": [dict(held.progress_entries[i]) for i in held.progress_order],
                },
            }

    # ---- WSGI ----------------------------------------------------------------------------
    def app(self) -> Any:
        app: Flask = json_app("sandbox.portal")

        @app.post("/api/auth")
        def auth() -> Any:
            return jsonify(self.authenticate(request.get_json(silent=True)))

        @app.post("/api/integration")
        def integration() -> Any:
            return jsonify(self.integrate(request.get_json(silent=True)))

        @app.post("/_sandbox/expire_sessions")
        def expire() -> Any:
            self.expire_sessions()
            return jsonify({"expired": True})

        add_control_routes(app, self.injector, state=self.state, reset=self.reset, summary=self.summary)
        app.wsgi_app = FaultMiddleware(  # type: ignore[method-assign]
            app.wsgi_app,
            self.injector,
            error_body=lambda status, msg, path: {"error_code": str(status), "message": msg},
            auth_paths=("/api/auth",),
            commit_paths=("/api/integration",),
        )
        return app


def _parse_bool(v: Any) -> bool | None:
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.strip().lower() in ("true", "false"):
        return v.strip().lower() == "true"
    return None
