"""Client of a department's own database (world.md §3): the read-only view ``ho_so_tthc`` over
SQLAlchemy (MariaDB/MySQL through ``mysql+pymysql://`` in production and CI, SQLite for the embedded
demo), and the pure mapping of one row into :class:`tthc.model.Dossier`.

Reading
-------
* **Incremental** on ``ngay_cap_nhat`` in ``[updated_from, updated_to)``, ``updated_to`` frozen by
  the caller (the run's window end). Ordered by ``(ngay_cap_nhat, ma_ho_so)``. On SQLite the column
  is compared through ``datetime()``, so ``YYYY-MM-DD HH:MM:SS`` and ``YYYY-MM-DDTHH:MM:SS`` text
  both work (a value SQLite cannot read as a date is outside every window). Rows are checked again
  on the client after parsing (defence against type coercions).
* **Parameterised**: the statement is built with SQLAlchemy Core (``table()``/``column()``); the
  window bounds and the optional agency filter are bound parameters. The view name is an identifier
  (it cannot be a parameter): it is validated (``[A-Za-z_][A-Za-z0-9_]*``, optionally
  ``schema.view``) and quoted by SQLAlchemy.
* **Streamed**: ``stream_results`` + ``yield_per(chunk_size)`` (a server-side ``SSCursor`` on
  PyMySQL), so a large table never sits in memory on the driver side; :meth:`SqlDbClient.iter_chunks`
  hands out lists of ``chunk_size`` rows. :meth:`SqlDbClient.fetch` (the pipeline's
  ``SourceReader.fetch``) collects them.
* **The contract is checked first**: a zero-row probe reads the view's column names; a missing
  column is a :class:`~connectors.http.ProtocolError` naming it (names only, never data).
* **Read-only session**: ``SET SESSION TRANSACTION READ ONLY`` (MariaDB/MySQL) or
  ``PRAGMA query_only`` (SQLite), on top of the grants the department gives us.

Time-outs and retries
---------------------
Connect time-out (``connect_timeout``), a statement time-out (``statement_timeout``: MariaDB
``max_statement_time``, MySQL ``max_execution_time``, SQLite a progress-handler deadline) and a
socket read time-out slightly above it. Errors are classified into the classes of
:mod:`connectors.http`: cannot connect, connection lost, lock wait/deadlock, too many connections
and time-outs are :class:`~connectors.http.TransientError`; access denied is
:class:`~connectors.http.AuthError`; a missing view/column, a syntax error or anything else is
permanent. The read is repeatable (a ``SELECT`` over a window), so :meth:`SqlDbClient.fetch`
retries the *whole* window on a transient error with exponential back-off
(:class:`~connectors.http.RetryPolicy`); :meth:`iter_chunks` never retries once rows were handed out.
Exception texts carry the error class, the driver's numeric code, the host/database and the view,
never the server's message (it may quote values).

Encoding repair
---------------
Old department databases store UTF-8 bytes in ``latin1`` columns; read through a UTF-8 connection
a name arrives as mojibake ("Nguyá»…n VÄƒn"). Every non-ASCII text value is passed through
:func:`tthc.names.repair_encoding` (ftfy's detector, then the Vietnamese-syllable check) before it
leaves this module; a repair that only changes the Unicode normal form is not applied (NFD input is
the source's spelling, the pipeline normalises it later). Repaired text is correct data, so it is
not a ``raw_issue``; the repairs are counted per column in :class:`SqlFetchStats`. The connection
always uses ``utf8mb4`` so the server converts ``latin1`` columns instead of the driver guessing.

Credentials come from the caller (``url`` plus optional ``username``/``password``, e.g. from the
Airflow connection); the URL is never logged (only backend, host and database).

Mapping (:func:`to_dossier`, shared with the file drop whose canonical keys are these column names)
----------------------------------------------------------------------------------------------------
* ``so_lan_bo_sung`` + ``ngay_yc_bo_sung``/``ngay_bo_sung``: the view keeps one pair of dates, those
  of the **latest** request. ``so_lan_bo_sung`` supplements are produced (at least one when a date
  is there); the earlier ones have unknown dates (``Supplement(None, None)``): the count is kept,
  no date is invented. The file drop lists every round instead (``"d1; d2"`` in both columns,
  aligned by position, a pending round's completion empty): each becomes a dated supplement.
* ``co_so_hoa`` (0/1): one synthetic component ``Attachment(COMPONENT_NAME, digitized=...)``; null →
  no component. Reuse is not in the view (``reused=False``).
* ``co_kq_dien_tu`` (0/1): 1 → ``result_file = ELECTRONIC_RESULT_MARKER`` (the view says an
  electronic result exists, not where). ``result_type`` stays None: the view does not say whether
  the *procedure* issues paper or electronic results, and deriving it from ``co_kq_dien_tu`` would
  move every digitised paper result out of indicator 4.1's denominator.
* ``kenh_nop`` 1/2/3 (or "Trực tiếp"/"Trực tuyến"/"Bưu chính"), ``gioi_tinh`` 1/2 or "Nam"/"Nữ",
  ``trang_thai`` 1-10 (or a portal status name) else ``status=None`` + ``status_raw``,
  ``thanh_toan_truc_tuyen`` 0/1/2 (null → 0), ``le_phi`` a number ("50.000" read as 50000).
* Dates: ``datetime``/``date`` values, ISO text, or ``dd/MM/yyyy[ HH:mm[:ss]]``; MySQL's zero date
  is null. Birth date: ``YYYY-MM-DD``, ``YYYY`` (year only; also ``YYYY-00-00``, ``00/00/yyyy``).
* An ID number stored as an integer lost its leading zero; an 11-digit integer is padded to 12
  (every CCCD starts with 0: province prefixes 001-096). Text is never padded.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import re
import sqlite3
import time
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import tenacity
from sqlalchemy import DateTime, String, bindparam, column, create_engine, func, literal_column, select, table
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from connectors.http import (
    AuthError,
    ConnectorError,
    PermanentError,
    ProtocolError,
    RetryPolicy,
    TransientError,
)
from connectors.mapping import Issues, storable, storable_code, unreadable_record
from tthc import codes
from tthc.model import Attachment, Dossier, Supplement
from tthc.names import ascii_fold, repair_encoding
from tthc.timeutil import to_vn_naive

log = logging.getLogger(__name__)

DEFAULT_VIEW = "ho_so_tthc"
#: The view's columns (world.md §3), in the contract's order.
VIEW_COLUMNS: tuple[str, ...] = (
    "ma_ho_so",
    "ma_tthc",
    "ten_tthc",
    "ma_don_vi",
    "kenh_nop",
    "ho_ten_chu_ho_so",
    "so_cccd",
    "ngay_sinh",
    "gioi_tinh",
    "ngay_tiep_nhan",
    "ngay_hen_tra",
    "ngay_ket_thuc",
    "ngay_tra_kq",
    "trang_thai",
    "thanh_toan_truc_tuyen",
    "le_phi",
    "so_lan_bo_sung",
    "ngay_yc_bo_sung",
    "ngay_bo_sung",
    "co_so_hoa",
    "co_kq_dien_tu",
    "ngay_cap_nhat",
)
UPDATED_COLUMN = "ngay_cap_nhat"
#: Name of the one synthetic component standing for ``co_so_hoa``.
COMPONENT_NAME = "Thành phần hồ sơ"
#: ``result_file`` when the source says an electronic result exists but not where.
ELECTRONIC_RESULT_MARKER = "co_kq_dien_tu"

_IDENTIFIER_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_SQLITE_TEXT_FORMAT = "%Y-%m-%d %H:%M:%S"

# MariaDB/MySQL error numbers (server and client side)
_MYSQL_AUTH = frozenset({1044, 1045, 1142, 1143, 1227, 1698})
_MYSQL_TRANSIENT = frozenset(
    {1040, 1053, 1205, 1213, 1317, 1927, 1969, 2002, 2003, 2005, 2006, 2013, 2055, 3024}
)
_MYSQL_TIMEOUT = frozenset({1969, 3024})
_MYSQL_NO_VIEW = frozenset({1146, 1049, 1054})
# SQLite primary result codes
_SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_INTERRUPT, _SQLITE_AUTH = 5, 6, 9, 23


# ---- errors ------------------------------------------------------------------------------------------


def classify_db_error(exc: BaseException, *, target: str) -> ConnectorError:
    """A driver/SQLAlchemy exception as a :mod:`connectors.http` error. The server's message is
    not copied (it may quote values): only the driver's numeric code and the exception class."""
    orig = getattr(exc, "orig", None) or exc
    kind = type(orig).__name__
    code: int | None = None
    if isinstance(orig, sqlite3.Error):
        code = getattr(orig, "sqlite_errorcode", None)
        primary = code & 0xFF if isinstance(code, int) else None
        kw: dict[str, Any] = {"target": target, "error_code": f"sqlite:{code}" if code is not None else kind}
        if primary == _SQLITE_INTERRUPT:
            return TransientError("department database: statement time-out", **kw)
        if primary in (_SQLITE_BUSY, _SQLITE_LOCKED):
            return TransientError("department database is busy (locked)", **kw)
        if primary == _SQLITE_AUTH:
            return AuthError("department database refused access", **kw)
        return PermanentError(f"department database error ({kind})", **kw)
    args = getattr(orig, "args", ())
    if args and isinstance(args[0], int):
        code = args[0]
    kw = {"target": target, "error_code": f"mysql:{code}" if code is not None else kind}
    if code in _MYSQL_AUTH:
        return AuthError("department database refused the credentials or the grant", **kw)
    if code in _MYSQL_TIMEOUT:
        return TransientError("department database: statement time-out", **kw)
    if code in _MYSQL_TRANSIENT:
        return TransientError(f"department database unavailable or connection lost ({kind})", **kw)
    if code in _MYSQL_NO_VIEW:
        return ProtocolError("department database has no such database, view or column", **kw)
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return TransientError(f"department database connection lost ({kind})", **kw)
    if kind in ("InterfaceError", "OperationalError") and code is None:
        return TransientError(f"department database connection problem ({kind})", **kw)
    return PermanentError(f"department database error ({kind})", **kw)


# ---- the client ------------------------------------------------------------------------------------


@dataclass(slots=True)
class SqlFetchStats:
    """What one read did (for logs and metrics; no personal data)."""

    rows: int = 0
    chunks: int = 0
    attempts: int = 0
    outside_window: int = 0  # rows the client-side check dropped
    unreadable_time: int = 0  # ngay_cap_nhat not a date (kept: the database placed it in the window)
    repaired: Counter[str] = field(default_factory=Counter)  # column -> values whose encoding was repaired
    seconds: float = 0.0

    @property
    def repaired_total(self) -> int:
        return sum(self.repaired.values())


class SqlDbClient:
    """Reads the ``ho_so_tthc`` view of one department database.

    >>> client = SqlDbClient("mysql+pymysql://127.0.0.1:3306/motcua", username=..., password=...)
    >>> rows = client.fetch(datetime(2026, 10, 31), datetime(2026, 11, 1))
    >>> dossiers = [to_dossier(r, "sqldb_so_gddt") for r in rows]
    """

    def __init__(
        self,
        url: str | URL | None = None,
        *,
        username: str | None = None,
        password: str | None = None,
        view: str = DEFAULT_VIEW,
        chunk_size: int = 2000,
        connect_timeout: float = 10.0,
        statement_timeout: float = 300.0,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        agency_codes: Iterable[str] | None = None,
        legacy_encodings: Iterable[str] | None = None,
        engine: Engine | None = None,
    ) -> None:
        if engine is None and url is None:
            raise ValueError("a database URL (or an Engine) is required")
        if chunk_size < 1:
            raise ValueError("chunk_size must be >= 1")
        if connect_timeout <= 0 or statement_timeout <= 0:
            raise ValueError("time-outs must be positive")
        self.schema, self.view = _split_view(view)
        self.chunk_size = chunk_size
        self.connect_timeout = connect_timeout
        self.statement_timeout = statement_timeout
        self.retry = retry or RetryPolicy(max_attempts=3, backoff_initial=2.0, backoff_max=30.0)
        self.sleep = sleep
        self.agency_codes = tuple(agency_codes) if agency_codes is not None else None
        self.legacy_encodings = tuple(legacy_encodings) if legacy_encodings is not None else None
        self.engine = engine if engine is not None else self._make_engine(url, username, password)
        self._owns_engine = engine is None
        u = self.engine.url
        self.backend = u.get_backend_name()
        where = u.database.rsplit("/", 1)[-1] if self.backend == "sqlite" and u.database else u.database
        host = f"{u.host}:{u.port}" if u.port else (u.host or "")
        self.target = f"{self.backend}://{host}/{where or ''} view {view}"
        self.last_stats = SqlFetchStats()

    def __repr__(self) -> str:  # never the URL (it may carry the password)
        return f"SqlDbClient({self.target!r})"

    # -- engine and session -------------------------------------------------------------------
    def _make_engine(self, url: str | URL | None, username: str | None, password: str | None) -> Engine:
        u = make_url(url)  # type: ignore[arg-type]
        if username is not None:
            u = u.set(username=username)
        if password is not None:
            u = u.set(password=password)
        backend = u.get_backend_name()
        connect_args: dict[str, Any] = {}
        if backend in ("mysql", "mariadb"):
            connect_args = {
                "connect_timeout": max(1, math.ceil(self.connect_timeout)),
                "read_timeout": self.statement_timeout + 30,
                "write_timeout": self.statement_timeout + 30,
            }
            if "charset" not in u.query:
                connect_args["charset"] = "utf8mb4"
        elif backend == "sqlite":
            connect_args = {"timeout": self.connect_timeout}
        # NullPool: a nightly batch opens one connection per read; nothing stale is kept around.
        return create_engine(u, poolclass=NullPool, connect_args=connect_args)

    def _prepare_session(self, conn: Connection) -> Callable[[], None]:
        """Read-only session and statement deadline; returns a function that undoes what must be."""
        if self.backend in ("mysql", "mariadb"):
            conn.exec_driver_sql("SET SESSION TRANSACTION READ ONLY")
            if getattr(conn.dialect, "is_mariadb", False):
                conn.exec_driver_sql("SET SESSION max_statement_time = %s", (float(self.statement_timeout),))
            else:
                conn.exec_driver_sql(
                    "SET SESSION max_execution_time = %s", (int(self.statement_timeout * 1000),)
                )
            conn.commit()  # the next transaction is read-only
            return lambda: None
        if self.backend == "sqlite":
            conn.exec_driver_sql("PRAGMA query_only = ON")
            raw = conn.connection.driver_connection
            deadline = time.monotonic() + self.statement_timeout
            if isinstance(raw, sqlite3.Connection):
                raw.set_progress_handler(lambda: 1 if time.monotonic() > deadline else 0, 10_000)

                def undo() -> None:
                    raw.set_progress_handler(None, 0)

                return undo
        return lambda: None

    # -- statements ---------------------------------------------------------------------------
    def _view(self):  # noqa: ANN202 - a SQLAlchemy TableClause
        return table(self.view, *(column(c) for c in VIEW_COLUMNS), schema=self.schema)

    def _check_columns(self, conn: Connection) -> None:
        probe = select(literal_column("*")).select_from(table(self.view, schema=self.schema)).limit(0)
        result = conn.execute(probe)
        present = {str(k).lower() for k in result.keys()}
        result.close()
        missing = [c for c in VIEW_COLUMNS if c not in present]
        if missing:
            raise ProtocolError(
                f"view {self.view} lacks contract columns: {', '.join(missing)}", target=self.target
            )

    def _statement(self, updated_from: datetime, updated_to: datetime) -> tuple[Any, dict[str, Any]]:
        v = self._view()
        updated = v.c[UPDATED_COLUMN]
        if self.backend == "sqlite":
            # text dates: compare normalised text (datetime() reads both ' ' and 'T' separators)
            key = func.datetime(updated)
            lo = bindparam("updated_from", type_=String())
            hi = bindparam("updated_to", type_=String())
            params: dict[str, Any] = {
                "updated_from": updated_from.strftime(_SQLITE_TEXT_FORMAT),
                "updated_to": updated_to.strftime(_SQLITE_TEXT_FORMAT),
            }
        else:
            key = updated
            lo = bindparam("updated_from", type_=DateTime())
            hi = bindparam("updated_to", type_=DateTime())
            params = {"updated_from": updated_from, "updated_to": updated_to}
        stmt = select(*v.c).where(key >= lo, key < hi)
        if self.agency_codes is not None:
            stmt = stmt.where(v.c.ma_don_vi.in_(bindparam("agency_codes", expanding=True)))
            params["agency_codes"] = list(self.agency_codes)
        return stmt.order_by(updated, v.c.ma_ho_so), params

    # -- reading ------------------------------------------------------------------------------
    def iter_chunks(
        self, updated_from: datetime, updated_to: datetime, *, stats: SqlFetchStats | None = None
    ) -> Iterator[list[dict[str, Any]]]:
        """Rows with ``updated_from <= ngay_cap_nhat < updated_to`` in lists of ``chunk_size``,
        text repaired. Not retried: a failure raises a :mod:`connectors.http` error."""
        lower, upper = to_vn_naive(updated_from), to_vn_naive(updated_to)
        if lower > upper:
            raise ValueError("updated_from is after updated_to")
        stats = stats if stats is not None else SqlFetchStats()
        self.last_stats = stats
        stmt, params = self._statement(lower, upper)
        started = time.monotonic()
        try:
            with self.engine.connect() as conn:
                undo = self._prepare_session(conn)
                try:
                    self._check_columns(conn)
                    result = conn.execution_options(stream_results=True, yield_per=self.chunk_size).execute(
                        stmt, params
                    )
                    for part in result.partitions():
                        chunk = [self._clean_row(dict(r._mapping), lower, upper, stats) for r in part]
                        chunk = [r for r in chunk if r is not None]
                        stats.chunks += 1
                        stats.rows += len(chunk)
                        if chunk:
                            yield chunk
                finally:
                    undo()
        except ConnectorError:
            raise
        except (SQLAlchemyError, sqlite3.Error, OSError) as exc:
            raise classify_db_error(exc, target=self.target) from None
        finally:
            stats.seconds += time.monotonic() - started

    def iter_rows(self, updated_from: datetime, updated_to: datetime) -> Iterator[dict[str, Any]]:
        for chunk in self.iter_chunks(updated_from, updated_to):
            yield from chunk

    def fetch(self, updated_from: datetime, updated_to: datetime) -> list[dict[str, Any]]:
        """Every row of the window (see :meth:`iter_chunks`); the whole read is retried on a
        transient error (it is a repeatable ``SELECT``)."""
        stats = SqlFetchStats()
        policy = self.retry

        def attempt() -> list[dict[str, Any]]:
            stats.attempts += 1
            stats.rows = stats.chunks = stats.outside_window = stats.unreadable_time = 0
            stats.repaired.clear()
            return [r for chunk in self.iter_chunks(updated_from, updated_to, stats=stats) for r in chunk]

        def before_sleep(state: tenacity.RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            log.warning(
                "sqldb %s: %s (%s), retrying the window (attempt %d done)",
                self.target,
                type(exc).__name__,
                getattr(exc, "error_code", None),
                state.attempt_number,
            )

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(max(1, policy.max_attempts)),
            wait=tenacity.wait_exponential_jitter(
                initial=policy.backoff_initial, max=policy.backoff_max, jitter=policy.jitter
            ),
            retry=tenacity.retry_if_exception_type(TransientError),
            sleep=self.sleep,
            before_sleep=before_sleep,
            reraise=True,
        )
        rows = retrying(attempt)
        self.last_stats = stats
        log.info(
            "sqldb fetch %s %s..%s: %d rows in %d chunks, %d attempt(s), %.1f s; encoding repaired: %s",
            self.target,
            to_vn_naive(updated_from).isoformat(),
            to_vn_naive(updated_to).isoformat(),
            stats.rows,
            stats.chunks,
            stats.attempts,
            stats.seconds,
            dict(stats.repaired) or "none",
        )
        return rows

    def iter_dossiers(
        self, source_id: str, updated_from: datetime, updated_to: datetime
    ) -> Iterator[Dossier]:
        for row in self.fetch(updated_from, updated_to):
            yield to_dossier(row, source_id)

    def _clean_row(
        self, row: dict[str, Any], lower: datetime, upper: datetime, stats: SqlFetchStats
    ) -> dict[str, Any] | None:
        out: dict[str, Any] = {}
        for key, value in row.items():
            name = str(key).lower()
            if isinstance(value, bytes | bytearray | memoryview):
                value = _decode_bytes(bytes(value))
            if isinstance(value, str):
                if name in _REPEATED_TEXT_COLUMNS:  # catalogue text: its repair is remembered
                    fixed = _repair_repeated(value, self.legacy_encodings)
                else:
                    fixed = repair_text(value, self.legacy_encodings)
                if fixed != value:
                    stats.repaired[name] += 1
                    value = fixed
            out[name] = value
        try:
            when = _parse_datetime(out.get(UPDATED_COLUMN))
        except ValueError:
            when = None
        if when is None:
            stats.unreadable_time += 1
        elif not lower <= when < upper:
            stats.outside_window += 1
            return None
        return out

    def close(self) -> None:
        if self._owns_engine:
            self.engine.dispose()

    def __enter__(self) -> SqlDbClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _split_view(view: str) -> tuple[str | None, str]:
    parts = view.split(".")
    if len(parts) > 2 or not all(_IDENTIFIER_RE.match(p) for p in parts):
        raise ValueError("view must be an identifier like ho_so_tthc or schema.ho_so_tthc")
    return (parts[0], parts[1]) if len(parts) == 2 else (None, parts[0])


def _decode_bytes(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp1252", errors="replace")  # then repaired like any other text


def code_of(row: Mapping[str, Any]) -> str | None:
    """The dossier code of a raw row (for the raw store)."""
    code = row.get("ma_ho_so") if isinstance(row, Mapping) else None
    return None if code is None else storable_code(str(code).strip())


# ---- text repair -----------------------------------------------------------------------------------


def repair_text(value: str, legacy: Iterable[str] | None = None) -> str:
    """``value`` with a broken encoding repaired (:func:`tthc.names.repair_encoding`), else as is.

    A repair that changes nothing but the Unicode normal form is not applied: NFD is how the source
    spelt it, not a broken encoding. Never raises.
    """
    if not value or value.isascii():
        return value
    try:
        fixed, fix = repair_encoding(value, legacy)
    except Exception:  # a repair heuristic must never break a read
        return value
    if fix is None or unicodedata.normalize("NFC", fixed) == unicodedata.normalize("NFC", value):
        return value
    if fix == "mojibake":
        # ftfy's answer is NFC; undoing the latin1 read byte for byte gives the source's exact
        # string (an NFD name stays NFD), so prefer it when both agree
        exact = _undo_latin1_read(value)
        if exact is not None and unicodedata.normalize("NFC", exact) == unicodedata.normalize("NFC", fixed):
            return exact
    return fixed


def _undo_latin1_read(text: str) -> str | None:
    """The UTF-8 text whose bytes a cp1252/latin1 reader turned into ``text``; None if not one."""
    raw = bytearray()
    for ch in text:
        try:
            raw += ch.encode("cp1252")
        except UnicodeEncodeError:
            if ord(ch) > 0xFF:
                return None
            raw.append(ord(ch))  # MariaDB's latin1 keeps cp1252's five holes as C1 controls
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


# ---- mapping (shared with connectors.filedrop) -----------------------------------------------------


def _blank(raw: Any) -> bool:
    return raw is None or (isinstance(raw, str) and not raw.strip())


def _fold(raw: str) -> str:
    """Lower-case ASCII fold with collapsed spaces: "Trực  tuyến" → "truc tuyen"."""
    return " ".join(ascii_fold(unicodedata.normalize("NFC", raw)).lower().split())


_VN_DATE_RE = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?)?$")
_ZERO_DATES = frozenset({"0000-00-00", "0000-00-00 00:00:00", "00/00/0000", "00/00/0000 00:00"})


def _parse_datetime(raw: Any) -> datetime | None:
    """datetime/date, ISO text, or ``dd/MM/yyyy[ HH:mm[:ss]]`` → naive Vietnam time; ValueError."""
    if _blank(raw):
        return None
    if isinstance(raw, datetime):
        return to_vn_naive(raw).replace(microsecond=0)
    if isinstance(raw, date):
        return datetime(raw.year, raw.month, raw.day)
    if not isinstance(raw, str):
        raise ValueError("not a date")
    s = raw.strip()
    if s in _ZERO_DATES:
        return None
    m = _VN_DATE_RE.match(s)
    if m:
        d, mo, y, hh, mm, ss = m.groups()
        return datetime(int(y), int(mo), int(d), int(hh or 0), int(mm or 0), int(ss or 0))
    if len(s) >= 10 and s[4] == "-":
        return to_vn_naive(datetime.fromisoformat(s)).replace(microsecond=0)
    raise ValueError("not a date")


def _datetime(issues: Issues, field: str, raw: Any) -> datetime | None:
    try:
        return _parse_datetime(raw)
    except (ValueError, OverflowError):
        issues.add(field, raw)
        return None


def _birth_date(issues: Issues, raw: Any) -> str | None:
    """``YYYY-MM-DD``, or ``YYYY`` when only the year is known."""
    if _blank(raw):
        return None
    if isinstance(raw, datetime):
        return raw.date().isoformat()
    if isinstance(raw, date):
        return raw.isoformat()
    if isinstance(raw, int) and not isinstance(raw, bool) and 1800 <= raw <= 2200:
        return f"{raw:04d}"
    if not isinstance(raw, str):
        issues.add("applicant_birth_date", raw)
        return None
    s = raw.strip()
    try:
        if len(s) == 4 and s.isdigit():
            return s
        if re.fullmatch(r"\d{4}-00-00", s):
            return s[:4]
        m = re.fullmatch(r"(\d{1,2})/(\d{1,2})/(\d{4})", s)
        if m:
            d, mo, y = m.groups()
            if int(d) == 0 and int(mo) == 0:
                return y
            return date(int(y), int(mo), int(d)).isoformat()
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", s):
            return date.fromisoformat(s).isoformat()
        if len(s) > 10 and s[4] == "-":  # a datetime written where a date was expected
            return datetime.fromisoformat(s).date().isoformat()
    except ValueError:
        pass
    issues.add("applicant_birth_date", raw)
    return None


def _int(raw: Any) -> int | None:
    """An integer from int / integral float or Decimal / digit string; None if not one."""
    if isinstance(raw, bool):
        return int(raw)
    if isinstance(raw, int):
        return raw
    if isinstance(raw, float):
        return int(raw) if math.isfinite(raw) and raw.is_integer() else None
    if isinstance(raw, Decimal):
        return int(raw) if raw.is_finite() and raw == raw.to_integral_value() else None
    if isinstance(raw, str):
        s = raw.strip()
        if s.isdigit():
            return int(s)
        try:
            f = float(s)
        except ValueError:
            return None
        return int(f) if math.isfinite(f) and f.is_integer() else None
    return None


def _code(
    issues: Issues,
    field: str,
    raw: Any,
    allowed: Iterable[int],
    *,
    words: Mapping[str, int] | None = None,
    null: int | None = None,
) -> int | None:
    if _blank(raw):
        return null
    if isinstance(raw, str) and words and _fold(raw) in words:
        return words[_fold(raw)]
    n = None if isinstance(raw, bool) else _int(raw)
    if n is None or n not in set(allowed):
        issues.add(field, raw)
        return None
    return n


def _flag(issues: Issues, field: str, raw: Any) -> bool | None:
    """0/1, true/false, có/không, x → bool; blank → None (unknown)."""
    if _blank(raw):
        return None
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str):
        word = _fold(raw)
        if word in _TRUE_WORDS:
            return True
        if word in _FALSE_WORDS:
            return False
    n = _int(raw)
    if n in (0, 1):
        return bool(n)
    issues.add(field, raw)
    return None


_TRUE_WORDS = frozenset({"1", "true", "co", "x", "yes"})
_FALSE_WORDS = frozenset({"0", "false", "khong", "no"})
_THOUSANDS_RE = re.compile(r"^\d{1,3}([.,\u00a0 ]\d{3})+$")


def _fee(issues: Issues, raw: Any) -> int | None:
    if _blank(raw):
        return None
    value: int | None
    if isinstance(raw, str) and _THOUSANDS_RE.match(raw.strip()):
        value = int(re.sub(r"\D", "", raw))
    else:
        value = None if isinstance(raw, bool) else _int(raw)
    if value is None or value < 0:
        issues.add("fee", raw)
        return None
    return value


#: Text fields that repeat across rows and hold no personal data: their repairs are remembered.
_REPEATED_TEXT_FIELDS = frozenset({"procedure_name"})
#: The view's columns of those fields (the repair at fetch, :meth:`SqlDbClient._clean_row`).
_REPEATED_TEXT_COLUMNS = frozenset({"ten_tthc"})


@functools.lru_cache(maxsize=4096)
def _repair_repeated(value: str, legacy: tuple[str, ...] | None) -> str:
    """:func:`repair_text` of a catalogue text (a procedure name): a source has a few hundred of
    them over tens of thousands of rows, and the repair check costs ~20-35 µs a call."""
    return repair_text(value, legacy)


def _text(
    issues: Issues, field: str, raw: Any, *, strip: bool = True, legacy: Any = None, repair: bool = True
) -> str | None:
    if _blank(raw):
        return None
    if isinstance(raw, str):
        if not repair:  # repaired already (SqlDbClient.fetch)
            value = raw
        elif field in _REPEATED_TEXT_FIELDS:  # never personal data: nothing of a person is kept
            value = _repair_repeated(raw, None if legacy is None else tuple(legacy))
        else:
            value = repair_text(raw, legacy)
        return value.strip() if strip else value
    if isinstance(raw, int | Decimal) and not isinstance(raw, bool):
        return str(raw)
    if isinstance(raw, float) and math.isfinite(raw) and raw.is_integer():
        return str(int(raw))
    issues.add(field, raw)
    return None


def _id_number(issues: Issues, raw: Any) -> str | None:
    if isinstance(raw, int | float | Decimal) and not isinstance(raw, bool):
        n = _int(raw)
        if n is None or n < 0:
            issues.add("applicant_id_number", raw)
            return None
        digits = str(n)
        # an integer column or spreadsheet cell dropped the leading zero every CCCD has
        return "0" + digits if len(digits) == 11 else digits
    return _text(issues, "applicant_id_number", raw)


_CHANNEL_WORDS = {
    "truc tiep": codes.CHANNEL_DIRECT,
    "truc tuyen": codes.CHANNEL_ONLINE,
    "buu chinh": codes.CHANNEL_POSTAL,
    "buu chinh cong ich": codes.CHANNEL_POSTAL,
    "dich vu buu chinh cong ich": codes.CHANNEL_POSTAL,
}
_SEX_WORDS = {"nam": 1, "nu": 2}
_STATUS_WORDS = {_fold(name): n for n, name in codes.STATUS_NAMES.items()}


def _status(raw: Any) -> tuple[int | None, str | None]:
    if _blank(raw):
        return None, None
    if isinstance(raw, str) and _fold(raw) in _STATUS_WORDS:
        return _STATUS_WORDS[_fold(raw)], None
    n = None if isinstance(raw, bool) else _int(raw)
    if n is not None and n in codes.STATUS_NAMES:
        return n, None
    return None, (raw.strip() if isinstance(raw, str) else json.dumps(raw, ensure_ascii=False, default=str))


def _date_list(raw: Any) -> list[Any]:
    """``"d1; d2"`` → ``["d1", "d2"]`` (the file drop lists every round); anything else → ``[raw]``."""
    if isinstance(raw, str) and ";" in raw:
        return [part.strip() for part in raw.split(";")]
    return [raw]


def _supplements(issues: Issues, row: Mapping[str, Any]) -> list[Supplement]:
    """Dated rounds from ``ngay_yc_bo_sung``/``ngay_bo_sung`` (one pair, or ``;``-separated lists
    aligned by position, oldest first), preceded by undated ones up to ``so_lan_bo_sung``."""
    requested = _date_list(row.get("ngay_yc_bo_sung"))
    completed = _date_list(row.get("ngay_bo_sung"))
    n = max(len(requested), len(completed))
    requested += [None] * (n - len(requested))
    completed += [None] * (n - len(completed))
    listed = n > 1
    dated: list[Supplement] = []
    for i, (rq, cp) in enumerate(zip(requested, completed, strict=True)):
        if _blank(rq) and _blank(cp):
            continue
        where = f"supplements[{i}]" if listed else "supplements"
        dated.append(
            Supplement(
                _datetime(issues, f"{where}.requested_at", rq),
                _datetime(issues, f"{where}.completed_at", cp),
            )
        )
    raw_count = row.get("so_lan_bo_sung")
    count = None if _blank(raw_count) or isinstance(raw_count, bool) else _int(raw_count)
    if not _blank(raw_count) and (count is None or count < 0):
        issues.add("supplements", raw_count)
        count = None
    # the dates prove the requests were made, whatever the count says
    count = len(dated) if count is None else max(count, len(dated))
    return [Supplement(None, None) for _ in range(count - len(dated))] + dated


def map_row(
    row: Mapping[str, Any],
    source_id: str,
    *,
    updated_default: datetime | None = None,
    legacy: Iterable[str] | None = None,
    repaired: bool = False,
) -> Dossier:
    """Map one row keyed by the view's column names into the canonical dossier. Pure; never raises.

    ``updated_default`` is used when the row has no ``ngay_cap_nhat`` (the file drop's export time).
    ``repaired=True``: the row's text was repaired already (:meth:`SqlDbClient.fetch` does it with
    the source's legacy encodings), so it is not checked again. See the module docstring for the
    choices; unreadable values become None with the raw value in ``raw_issues`` (model field names).
    """
    if not isinstance(row, Mapping):
        return unreadable_record(source_id, row, updated_at=updated_default)
    issues = Issues()
    status, status_raw = _status(row.get("trang_thai"))
    id_number = _id_number(issues, row.get("so_cccd"))
    digitised = _flag(issues, "attachments[0].digitized", row.get("co_so_hoa"))
    electronic = _flag(issues, "result_file", row.get("co_kq_dien_tu"))
    updated = _datetime(issues, "updated_at", row.get(UPDATED_COLUMN))
    if updated is None and "updated_at" not in issues.issues:
        updated = updated_default
    return storable(
        Dossier(
            source_id=source_id,
            dossier_code=_text(issues, "dossier_code", row.get("ma_ho_so")),
            agency_code=_text(issues, "agency_code", row.get("ma_don_vi")),
            procedure_code=_text(issues, "procedure_code", row.get("ma_tthc")),
            received_at=_datetime(issues, "received_at", row.get("ngay_tiep_nhan")),
            updated_at=updated,
            status=status,
            status_raw=status_raw,
            procedure_name=_text(
                issues, "procedure_name", row.get("ten_tthc"), legacy=legacy, repair=not repaired
            ),
            channel=_code(issues, "channel", row.get("kenh_nop"), (1, 2, 3), words=_CHANNEL_WORDS),
            # names keep their spaces: spacing defects are the matcher's business, not ours
            applicant_name=_text(
                issues,
                "applicant_name",
                row.get("ho_ten_chu_ho_so"),
                strip=False,
                legacy=legacy,
                repair=not repaired,
            ),
            applicant_id_number=id_number,
            applicant_id_type=codes.id_type(id_number),
            applicant_birth_date=_birth_date(issues, row.get("ngay_sinh")),
            applicant_sex=_code(issues, "applicant_sex", row.get("gioi_tinh"), (1, 2), words=_SEX_WORDS),
            due_at=_datetime(issues, "due_at", row.get("ngay_hen_tra")),
            finished_at=_datetime(issues, "finished_at", row.get("ngay_ket_thuc")),
            returned_at=_datetime(issues, "returned_at", row.get("ngay_tra_kq")),
            paid_online=_code(issues, "paid_online", row.get("thanh_toan_truc_tuyen"), (0, 1, 2), null=0),
            fee=_fee(issues, row.get("le_phi")),
            result_type=None,
            result_file=ELECTRONIC_RESULT_MARKER if electronic else None,
            supplements=_supplements(issues, row),
            attachments=[] if digitised is None else [Attachment(COMPONENT_NAME, digitized=digitised)],
            raw_issues=issues.issues,
        )
    )


def to_dossier(row: Mapping[str, Any], source_id: str) -> Dossier:
    """Map one row of ``ho_so_tthc`` (world.md §3) into the canonical dossier. Pure; never raises."""
    return map_row(row, source_id)


def to_dossier_fetched(row: Mapping[str, Any], source_id: str) -> Dossier:
    """:func:`to_dossier` of a row as :meth:`SqlDbClient.fetch` returns (and the raw store keeps)
    it: its text is repaired already, with the source's legacy encodings, and is not checked a
    second time (the check costs tens of µs per name; the pipeline maps each row twice)."""
    return map_row(row, source_id, repaired=True)


__all__ = [
    "COMPONENT_NAME",
    "DEFAULT_VIEW",
    "ELECTRONIC_RESULT_MARKER",
    "VIEW_COLUMNS",
    "SqlDbClient",
    "SqlFetchStats",
    "classify_db_error",
    "code_of",
    "map_row",
    "repair_text",
    "to_dossier",
    "to_dossier_fetched",
]
