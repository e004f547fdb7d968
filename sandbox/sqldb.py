"""Simulator of a department's own database (world.md §3): the read-only view ``ho_so_tthc``.

Not an HTTP service: for every source of dialect ``sqldb`` the simulator materialises a database
whose view ``ho_so_tthc`` holds, one row per dossier, what the source system holds *now* in the
World, and keeps it in step with the World's clock (:meth:`SqldbSimulator.sync`, called by the
server whenever ``/_sandbox/clock`` or ``/_sandbox/reset`` moved the World).

Backends
--------
* ``sqlite`` (default, the embedded demo): one file per source,
  ``<folder>/<source_id>.sqlite`` (the server uses ``<state_dir>/sqldb``), WAL journal so readers
  never wait for a sync. URL ``sqlite:////abs/path/<source_id>.sqlite``.
* ``mariadb`` (production-like, CI): one database per source, ``<database_prefix><source_id>``
  (default prefix ``tthc_src_``) on the server of ``mariadb_url`` (root on 127.0.0.1:3306 by
  default). URL ``mysql+pymysql://<user>[:<pw>]@127.0.0.1:3306/<db>?charset=utf8mb4``. With
  ``create_users`` the simulator also creates the source's read-only account of the World
  credentials (``<source_id>_ro``, SELECT on the view only) and the URL uses it; otherwise the
  URL carries the admin account of ``mariadb_url``.

The state document reports each source's URL (``sources[i]["url"]``), so a connector needs
nothing else.

The view (columns exactly as world.md §3, in this order)
--------------------------------------------------------
==================== ===================== ==================================================
column               type                  value
==================== ===================== ==================================================
ma_ho_so             VARCHAR(64)           dossier code (not unique: ``duplicate_code``)
ma_tthc              VARCHAR(32)           procedure code
ten_tthc             VARCHAR(500)          procedure name
ma_don_vi            VARCHAR(32)           agency code
kenh_nop             SMALLINT              1 direct, 2 online, 3 postal (NULL unknown)
ho_ten_chu_ho_so     VARCHAR(200)          applicant name (a share as latin1 mojibake, below)
so_cccd              VARCHAR(20)           identity number as the source holds it
ngay_sinh            VARCHAR(20)           ``YYYY-MM-DD``, or ``YYYY`` when only the year is known
gioi_tinh            SMALLINT              1 male, 2 female
ngay_tiep_nhan       DATETIME              receipt (naive Vietnam local time, as every date)
ngay_hen_tra         DATETIME              due date
ngay_ket_thuc        DATETIME              end of processing (NgayKetThucXuLy)
ngay_tra_kq          DATETIME              result returned
trang_thai           INTEGER               portal status 1-10; an unknown vendor status is
                                           its raw number when it has one (e.g. 99), else 0
thanh_toan_truc_tuyen SMALLINT             0 / 1 / 2
le_phi               BIGINT                fee, VND
so_lan_bo_sung       SMALLINT              number of supplement requests
ngay_yc_bo_sung      DATETIME              the *latest* supplement request
ngay_bo_sung         DATETIME              its completion (NULL while pending)
co_so_hoa            SMALLINT              1 when a submitted component is digitised, else 0
co_kq_dien_tu        SMALLINT              1 when the result has an electronic file, else 0
ngay_cap_nhat        DATETIME (indexed)    last change of the row: the incremental column
==================== ===================== ==================================================

``ngay_cap_nhat`` is the source's own update time of the version now held: a sync that finds a
dossier changed rewrites its row with the new time; a *late update* (world.md §0) gets an update
time in the past, so an incremental reader needs a look-back. Rows are never deleted while the clock
moves forward (only a reset of the World rebuilds the tables).

The view reads a base table ``ho_so_tthc_data`` (primary key ``id``, the record id). In SQLite,
DATETIME values are text in SQLAlchemy's format ``YYYY-MM-DD HH:MM:SS.ffffff``: compare them with
SQLAlchemy ``DateTime``-typed binds (a reflected view does that) or strings of that very format. A
raw string without the fraction (``'2026-11-02 08:00:00'``, also what ``sqlite3`` makes of a bare
``datetime``) sorts *before* the stored value of the same second, so ``>`` then re-reads the rows
of the watermark second: harmless duplicates, never a miss.

Mojibake (world.md §3)
----------------------
A deterministic share (``mojibake_share``, default 0.2; by seed, source and record id) of the rows
were written by the old desk application, which sent UTF-8 bytes through a latin1 connection:

* MariaDB: those rows keep the name in a legacy column ``ho_ten_cu VARCHAR(200) CHARACTER SET
  latin1`` that holds the name's UTF-8 *bytes*; the view returns ``COALESCE(CONVERT(ho_ten_cu USING
  utf8mb4), ho_ten_chu_ho_so)``, so a utf8mb4 client reads ``Nguyá»…n VÄƒn`` exactly as from a real
  legacy database (MariaDB's latin1 is cp1252, with 0x81 0x8D 0x8F 0x90 0x9D as C1 controls).
* SQLite (no character sets): the name column stores that very string (:func:`latin1_mojibake`).

Only the applicant name is affected. A repair (``ftfy.fix_text`` or ``s.encode("cp1252") ...``
with the C1 fallback) gives the original back.

Fixture: records can come from a JSON list of ``Dossier.to_dict()`` (+ ``visible_at``), the
format of :func:`sandbox.igate.load_dossier_fixture`; the server makes those sources of dialect
``sqldb``.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url

from sandbox.common import WorldHolder
from sandbox.igate import record_id
from tthc.model import Dossier

log = logging.getLogger("sandbox.sqldb")

VIEW = "ho_so_tthc"
BASE_TABLE = "ho_so_tthc_data"
COLUMNS: tuple[str, ...] = (
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
BACKENDS = ("sqlite", "mariadb")
DEFAULT_MARIADB_URL = "mysql+pymysql://root@127.0.0.1:3306"
_LOCAL_HOSTS = {"127.0.0.1", "localhost"}
_BATCH = 500


@dataclass
class SqldbConfig:
    backend: str = "sqlite"
    folder: Path = Path(".sandbox/sqldb")  # sqlite files
    mariadb_url: str = DEFAULT_MARIADB_URL  # server URL (database part ignored)
    database_prefix: str = "tthc_src_"
    create_users: bool = False
    mojibake_share: float = 0.2
    drop_on_stop: bool = False  # drop the MariaDB databases / delete the SQLite files at stop
    seed: int = 42

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"sqldb backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        if not 0.0 <= float(self.mojibake_share) <= 1.0:
            raise ValueError("sqldb mojibake_share must be in 0..1")
        if self.backend == "mariadb":
            url = make_url(self.mariadb_url)
            if not url.drivername.startswith("mysql") and not url.drivername.startswith("mariadb"):
                raise ValueError(f"sqldb mariadb_url must be a MySQL/MariaDB URL, got {url.drivername}")
            if (url.host or "127.0.0.1") not in _LOCAL_HOSTS:
                raise ValueError("sqldb mariadb_url: the sandbox only talks to 127.0.0.1")
        if not all(c.isalnum() or c == "_" for c in self.database_prefix):
            raise ValueError("sqldb database_prefix: letters, digits and '_' only")


# ---- rendering ---------------------------------------------------------------------------------
def _cp1252_table() -> dict[int, str]:
    out = {}
    for b in range(0x80, 0xA0):
        try:
            out[b] = bytes([b]).decode("cp1252")
        except UnicodeDecodeError:
            out[b] = chr(b)  # MariaDB's latin1 maps the five holes of cp1252 to C1 controls
    return out


_LATIN1_TO_UNICODE = _cp1252_table()


def latin1_mojibake(text: str | None) -> str | None:
    """What a utf8mb4 client reads from a MariaDB latin1 column holding ``text``'s UTF-8 bytes."""
    if text is None:
        return None
    return "".join(_LATIN1_TO_UNICODE.get(b, chr(b)) for b in text.encode("utf-8"))


def repair_mojibake(text: str | None) -> str | None:
    """Inverse of :func:`latin1_mojibake` (for tests and for people reading the data)."""
    if text is None:
        return None
    back = {v: k for k, v in _LATIN1_TO_UNICODE.items()}
    try:
        return bytes(back.get(ch, ord(ch)) for ch in text).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return text


def is_legacy_row(seed: int, source_id: str, rid: str, share: float) -> bool:
    """Deterministic choice of the rows the old desk application wrote (mojibake names)."""
    if share <= 0:
        return False
    h = hashlib.sha256(f"{seed}:sqldb:{source_id}:{rid}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64 < share


def _trang_thai(d: Dossier) -> int | None:
    if d.status is not None:
        return d.status
    raw = (d.status_raw or "").strip()
    if raw.isdigit() and len(raw) <= 9:
        return int(raw)
    return 0 if d.status_raw is not None else None


def _int_or_none(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def render_row(dossier: Dossier, *, updated_at: datetime | None = None) -> dict[str, Any]:
    """The ``ho_so_tthc`` row of a canonical dossier (pure), with the name spelt correctly."""
    d = dossier
    last = d.supplements[-1] if d.supplements else None
    birth = d.applicant_birth_date
    if birth is None and "applicant_birth_date" in (d.raw_issues or {}):
        birth = str(d.raw_issues["applicant_birth_date"])[:20]
    upd = updated_at or d.updated_at
    return {
        "ma_ho_so": d.dossier_code,
        "ma_tthc": d.procedure_code,
        "ten_tthc": d.procedure_name,
        "ma_don_vi": d.agency_code,
        "kenh_nop": _int_or_none(d.channel),
        "ho_ten_chu_ho_so": d.applicant_name,
        "so_cccd": d.applicant_id_number,
        "ngay_sinh": birth,
        "gioi_tinh": _int_or_none(d.applicant_sex),
        "ngay_tiep_nhan": _sec(d.received_at),
        "ngay_hen_tra": _sec(d.due_at),
        "ngay_ket_thuc": _sec(d.finished_at),
        "ngay_tra_kq": _sec(d.returned_at),
        "trang_thai": _trang_thai(d),
        "thanh_toan_truc_tuyen": _int_or_none(d.paid_online),
        "le_phi": _int_or_none(d.fee),
        "so_lan_bo_sung": len(d.supplements),
        "ngay_yc_bo_sung": _sec(last.requested_at) if last else None,
        "ngay_bo_sung": _sec(last.completed_at) if last else None,
        "co_so_hoa": 1 if any(a.digitized for a in d.attachments) else 0,
        "co_kq_dien_tu": 1 if d.result_file else 0,
        "ngay_cap_nhat": _sec(upd),
    }


def _sec(v: datetime | None) -> datetime | None:
    return v.replace(microsecond=0, tzinfo=None) if v is not None else None


# ---- schema ------------------------------------------------------------------------------------
def _base_table(metadata: sa.MetaData, backend: str) -> sa.Table:
    cols: list[sa.Column] = [
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("ma_ho_so", sa.String(64)),
        sa.Column("ma_tthc", sa.String(32)),
        sa.Column("ten_tthc", sa.String(500)),
        sa.Column("ma_don_vi", sa.String(32)),
        sa.Column("kenh_nop", sa.SmallInteger),
        sa.Column("ho_ten_chu_ho_so", sa.String(200)),
        sa.Column("so_cccd", sa.String(20)),
        sa.Column("ngay_sinh", sa.String(20)),
        sa.Column("gioi_tinh", sa.SmallInteger),
        sa.Column("ngay_tiep_nhan", sa.DateTime),
        sa.Column("ngay_hen_tra", sa.DateTime),
        sa.Column("ngay_ket_thuc", sa.DateTime),
        sa.Column("ngay_tra_kq", sa.DateTime),
        sa.Column("trang_thai", sa.Integer),
        sa.Column("thanh_toan_truc_tuyen", sa.SmallInteger),
        sa.Column("le_phi", sa.BigInteger),
        sa.Column("so_lan_bo_sung", sa.SmallInteger),
        sa.Column("ngay_yc_bo_sung", sa.DateTime),
        sa.Column("ngay_bo_sung", sa.DateTime),
        sa.Column("co_so_hoa", sa.SmallInteger),
        sa.Column("co_kq_dien_tu", sa.SmallInteger),
        sa.Column("ngay_cap_nhat", sa.DateTime, index=True),
    ]
    kw: dict[str, Any] = {}
    if backend == "mariadb":
        from sqlalchemy.dialects import mysql

        cols.append(sa.Column("ho_ten_cu", mysql.VARCHAR(200, charset="latin1")))
        kw = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"}
    return sa.Table(BASE_TABLE, metadata, *cols, **kw)


def _view_sql(backend: str) -> str:
    if backend == "mariadb":
        exprs = [
            "COALESCE(CONVERT(ho_ten_cu USING utf8mb4), ho_ten_chu_ho_so) AS ho_ten_chu_ho_so"
            if c == "ho_ten_chu_ho_so"
            else c
            for c in COLUMNS
        ]
    else:
        exprs = list(COLUMNS)
    return f"CREATE VIEW {VIEW} AS SELECT {', '.join(exprs)} FROM {BASE_TABLE}"


# ---- simulator ---------------------------------------------------------------------------------
@dataclass
class _Target:
    source_id: str
    agency_codes: tuple[str, ...]
    credentials: dict[str, str]
    engine: Engine
    url: str  # what a reader uses (secrets included: the state file is private)
    database: str
    path: Path | None = None  # sqlite file
    username: str | None = None
    password: str | None = None


class SqldbSimulator:
    """Materialises ``ho_so_tthc`` for every ``sqldb`` source of the World."""

    def __init__(self, holder: WorldHolder, config: SqldbConfig | None = None) -> None:
        self.holder = holder
        self.config = config or SqldbConfig()
        self._lock = threading.RLock()
        self._targets: dict[str, _Target] = {}
        self._tables: dict[str, sa.Table] = {}
        self._stored: dict[str, dict[str, tuple]] = {}  # source -> record id -> row values
        self._legacy: dict[str, set[str]] = {}  # source -> record ids stored as mojibake
        self._synced_now: datetime | None = None
        self._admin: Engine | None = None
        self.counts: dict[str, int] = {"syncs": 0, "inserted": 0, "updated": 0, "deleted": 0, "rebuilds": 0}
        self.last_sync: dict[str, Any] = {}

    # ---- lifecycle -------------------------------------------------------------------------
    def sqldb_sources(self) -> list[Any]:
        with self.holder.lock:
            return [s for s in self.holder.world.sources if s.dialect == "sqldb"]

    def start(self) -> SqldbSimulator:
        with self._lock:
            for s in self.sqldb_sources():
                self._targets[s.source_id] = self._create(s)
            self.sync()
        return self

    def stop(self) -> None:
        with self._lock:
            for t in self._targets.values():
                t.engine.dispose()
            if self.config.drop_on_stop:
                for t in self._targets.values():
                    if t.path is not None:
                        for suffix in ("", "-wal", "-shm"):
                            with contextlib.suppress(FileNotFoundError):
                                Path(str(t.path) + suffix).unlink()
                    elif self._admin is not None:
                        with contextlib.suppress(Exception), self._admin.begin() as c:
                            c.exec_driver_sql(f"DROP DATABASE IF EXISTS `{t.database}`")
                        if self.config.create_users and t.username:
                            with contextlib.suppress(Exception), self._admin.begin() as c:
                                for host in ("127.0.0.1", "localhost"):
                                    c.exec_driver_sql(
                                        f"DROP USER IF EXISTS '{_sql_str(t.username)}'@'{host}'"
                                    )
            if self._admin is not None:
                self._admin.dispose()
                self._admin = None
            self._targets.clear()

    def _create(self, source: Any) -> _Target:
        cfg = self.config
        sid = source.source_id
        creds = dict(source.credentials or {})
        md = sa.MetaData()
        table = _base_table(md, cfg.backend)
        self._tables[sid] = table
        if cfg.backend == "sqlite":
            folder = Path(cfg.folder).resolve()
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{sid}.sqlite"
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    Path(str(path) + suffix).unlink()
            url = f"sqlite:///{path}"
            engine = sa.create_engine(url)
            with engine.begin() as c:
                c.exec_driver_sql("PRAGMA journal_mode=WAL")
                md.create_all(c)
                c.exec_driver_sql(_view_sql("sqlite"))
            return _Target(sid, tuple(source.agency_codes), creds, engine, url, "main", path=path)
        # MariaDB: a database per source
        database = f"{cfg.database_prefix}{sid}"[:64]
        admin = self._admin_engine()
        with admin.begin() as c:
            c.exec_driver_sql(f"DROP DATABASE IF EXISTS `{database}`")
            c.exec_driver_sql(
                f"CREATE DATABASE `{database}` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci"
            )
        server = make_url(cfg.mariadb_url)
        db_url = server.set(database=database, query={"charset": "utf8mb4"})
        engine = sa.create_engine(db_url, pool_pre_ping=True)
        with engine.begin() as c:
            md.create_all(c)
            c.exec_driver_sql(_view_sql("mariadb"))
        user = password = None
        reader_url: URL = db_url
        if cfg.create_users and creds.get("username") and creds.get("password"):
            user, password = creds["username"], creds["password"]
            with admin.begin() as c:
                for host in ("127.0.0.1", "localhost"):
                    acct = f"'{_sql_str(user)}'@'{host}'"
                    c.exec_driver_sql(
                        f"CREATE USER IF NOT EXISTS {acct} IDENTIFIED BY '{_sql_str(password)}'"
                    )
                    c.exec_driver_sql(f"ALTER USER {acct} IDENTIFIED BY '{_sql_str(password)}'")
                    c.exec_driver_sql(f"GRANT SELECT, SHOW VIEW ON `{database}`.`{VIEW}` TO {acct}")
            reader_url = db_url.set(username=user, password=password)
        return _Target(
            sid,
            tuple(source.agency_codes),
            creds,
            engine,
            reader_url.render_as_string(hide_password=False),
            database,
            username=user or reader_url.username,
            password=password if user else reader_url.password,
        )

    def _admin_engine(self) -> Engine:
        if self._admin is None:
            server = make_url(self.config.mariadb_url).set(database=None, query={"charset": "utf8mb4"})
            self._admin = sa.create_engine(server, pool_pre_ping=True)
        return self._admin

    # ---- data ----------------------------------------------------------------------------
    def _desired(self, source_id: str) -> tuple[dict[str, dict[str, Any]], set[str]]:
        """record id -> base-table row, and the ids stored as mojibake (caller holds the world lock)."""
        cfg = self.config
        w = self.holder.world
        now = w.now
        records = [r for r in w.records(source_id) if r.visible_at <= now]
        counts: dict[str | None, int] = {}
        for r in records:
            counts[r.dossier.dossier_code] = counts.get(r.dossier.dossier_code, 0) + 1
        rows: dict[str, dict[str, Any]] = {}
        legacy: set[str] = set()
        for r in records:
            d = r.dossier
            disc = None
            if d.dossier_code is None or counts[d.dossier_code] > 1:
                disc = str(getattr(r, "dossier_index", id(d)))
            rid = record_id(d, disc)
            row = render_row(d)
            row["id"] = rid
            name = row["ho_ten_chu_ho_so"]
            old = name is not None and is_legacy_row(cfg.seed, source_id, rid, cfg.mojibake_share)
            if cfg.backend == "mariadb":
                row["ho_ten_cu"] = name.encode("utf-8") if old else None
                if old:
                    row["ho_ten_chu_ho_so"] = None
            elif old:
                row["ho_ten_chu_ho_so"] = latin1_mojibake(name)
            if old:
                legacy.add(rid)
            rows[rid] = row
        return rows, legacy

    def sync(self) -> dict[str, Any]:
        """Bring every view in step with the World now: upsert changed rows (a reset of the clock
        rebuilds from scratch). Returns what changed per source."""
        with self._lock:
            with self.holder.lock:
                now = self.holder.world.now
                desired = {sid: self._desired(sid) for sid in self._targets}
            rebuild = self._synced_now is not None and now < self._synced_now
            if rebuild:
                self.counts["rebuilds"] += 1
            out: dict[str, Any] = {}
            for sid, (rows, legacy) in desired.items():
                out[sid] = self._apply(sid, rows, legacy, rebuild)
            self._synced_now = now
            self.counts["syncs"] += 1
            self.last_sync = {"now": now.isoformat(timespec="seconds"), "sources": out}
            return out

    def _apply(self, sid: str, rows: dict[str, dict[str, Any]], legacy: set[str], rebuild: bool) -> dict:
        table = self._tables[sid]
        target = self._targets[sid]
        stored = {} if rebuild else self._stored.get(sid, {})
        names = [c.name for c in table.columns]
        values = {rid: tuple(row.get(n) for n in names) for rid, row in rows.items()}
        changed = [rid for rid, v in values.items() if rid in stored and stored[rid] != v]
        new = [rid for rid in values if rid not in stored]
        gone = [rid for rid in stored if rid not in values]
        with target.engine.begin() as c:
            if rebuild:
                c.execute(table.delete())
            for chunk in _chunks(changed + gone, _BATCH):
                c.execute(table.delete().where(table.c.id.in_(chunk)))
            for chunk in _chunks(changed + new, _BATCH):
                c.execute(table.insert(), [rows[rid] for rid in chunk])
        self._stored[sid] = values
        self._legacy[sid] = legacy
        self.counts["inserted"] += len(new)
        self.counts["updated"] += len(changed)
        self.counts["deleted"] += len(gone)
        return {"inserted": len(new), "updated": len(changed), "deleted": len(gone), "rows": len(values)}

    def expected_rows(self, source_id: str) -> list[dict[str, Any]]:
        """The view's rows as they should read, names repaired (ground truth for tests)."""
        with self.holder.lock:
            rows, legacy = self._desired(source_id)
        out = []
        for row in rows.values():
            r = dict(row)
            if "ho_ten_cu" in r:
                cu = r.pop("ho_ten_cu")
                if cu is not None:
                    r["ho_ten_chu_ho_so"] = cu.decode("utf-8")
            elif row["id"] in legacy:
                r["ho_ten_chu_ho_so"] = repair_mojibake(r["ho_ten_chu_ho_so"])
            r.pop("id")
            out.append(r)
        return out

    def legacy_codes(self, source_id: str) -> set[str | None]:
        """Dossier codes whose name is stored as mojibake (the last sync)."""
        with self._lock:
            ids = self._legacy.get(source_id, set())
            table = self._tables[source_id]
            idx = [c.name for c in table.columns].index("ma_ho_so")
            return {v[idx] for rid, v in self._stored.get(source_id, {}).items() if rid in ids}

    # ---- what clients need -----------------------------------------------------------------
    def sources_info(self) -> list[dict[str, Any]]:
        """One entry per source for the state document (credentials included)."""
        out = []
        with self._lock:
            for t in self._targets.values():
                info: dict[str, Any] = {
                    "source_id": t.source_id,
                    "dialect": "sqldb",
                    "backend": self.config.backend,
                    "url": t.url,
                    "view": VIEW,
                    "incremental_column": "ngay_cap_nhat",
                    "database": t.database,
                    "agency_codes": list(t.agency_codes),
                    "host": "127.0.0.1",
                    "port": None,
                    "extra": {"url": t.url, "view": VIEW},
                }
                if t.path is not None:
                    info["path"] = str(t.path)
                else:
                    u = make_url(t.url)
                    info.update(port=u.port or 3306, username=u.username, password=u.password)
                out.append(info)
        return out

    def state(self) -> dict[str, Any]:
        with self._lock:
            return {
                "backend": self.config.backend,
                "mojibake_share": self.config.mojibake_share,
                "synced_now": self._synced_now.isoformat(timespec="seconds") if self._synced_now else None,
                "counts": dict(self.counts),
                "last_sync": dict(self.last_sync),
                "sources": [
                    {
                        "source_id": sid,
                        "rows": len(self._stored.get(sid, {})),
                        "mojibake_rows": len(self._legacy.get(sid, set())),
                    }
                    for sid in self._targets
                ],
            }


def _chunks(items: list[str], n: int) -> Iterable[list[str]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


def _sql_str(s: str) -> str:
    return s.replace("\\", "\\\\").replace("'", "''")
