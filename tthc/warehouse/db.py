"""Warehouse connection and schema upgrades.

* :func:`get_engine` — one cached engine per URL. The URL comes from the argument, else the
  environment variable ``TTHC_WAREHOUSE_URL``, else an embedded SQLite file
  ``<repo>/var/warehouse.db`` (its folder is created). ``postgres://`` / ``postgresql://`` URLs are
  served by psycopg 3.
* :func:`migrate` — ``alembic upgrade head`` with the migrations shipped inside this package;
  idempotent, cheap when already at head, serialised between concurrent callers (PostgreSQL
  advisory lock; SQLite ``BEGIN IMMEDIATE``), so every task may call it before touching data.

SQLite engines run in WAL mode with foreign keys on and a busy time-out, and every transaction
starts with ``BEGIN IMMEDIATE``: with several Airflow tasks writing one file, a deferred
transaction that reads and then writes fails at once with "database is locked" when another
writer committed in between (the busy handler does not help there); taking the write lock up
front makes writers queue for up to the busy time-out instead. The price: readers queue behind a
running write too (SQLite is the embedded default; concurrent production loads belong on
PostgreSQL).

PostgreSQL sessions plan every statement with its actual parameters (``plan_cache_mode =
force_custom_plan``) and do not JIT-compile (``jit = off``): see :func:`_install_postgres_hooks`.
After ``fork()`` (Airflow task runners) the child drops the pooled connections it inherited
without closing them under the parent.
"""

from __future__ import annotations

import functools
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine, make_url

from tthc.paths import REPO_ROOT

if TYPE_CHECKING:
    from alembic.config import Config

ENV_URL = "TTHC_WAREHOUSE_URL"
DEFAULT_SQLITE_PATH = REPO_ROOT / "var" / "warehouse.db"
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 30_000
# Arbitrary constant: the key of the PostgreSQL advisory lock that serialises migrations.
_PG_MIGRATION_LOCK = 0x74746863  # "tthc"

_engines: dict[str, Engine] = {}
_lock = threading.Lock()


def resolve_url(url: str | URL | None = None) -> URL:
    """The warehouse URL actually used for ``url`` (argument → env → default SQLite file)."""
    raw = url if url is not None else os.environ.get(ENV_URL) or f"sqlite:///{DEFAULT_SQLITE_PATH}"
    u = make_url(raw)
    if u.drivername in ("postgres", "postgresql"):
        u = u.set(drivername="postgresql+psycopg")
    return u


def get_engine(url: str | URL | None = None, **engine_kwargs: Any) -> Engine:
    """Cached engine for the warehouse URL (see module docstring for the defaults).

    ``engine_kwargs`` go to :func:`sqlalchemy.create_engine` when the URL's engine is first made.
    """
    u = resolve_url(url)
    cache_key = u.render_as_string(hide_password=False)
    with _lock:
        engine = _engines.get(cache_key)
        if engine is None:
            engine = _create_engine(u, **engine_kwargs)
            _engines[cache_key] = engine
        return engine


def _after_fork_in_child() -> None:
    # Pooled connections inherited from the parent (Airflow forks task runners) must not be used
    # by the child; close=False leaves them to the parent instead of closing them under it.
    global _lock
    _lock = threading.Lock()  # the parent may have held it while forking
    for engine in list(_engines.values()):
        engine.dispose(close=False)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def dispose_engines() -> None:
    """Close every cached engine's pool (tests, forked workers, before dropping a database)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


def dispose_engine(url: str | URL | None = None) -> None:
    u = resolve_url(url)
    with _lock:
        engine = _engines.pop(u.render_as_string(hide_password=False), None)
    if engine is not None:
        engine.dispose()


def _create_engine(u: URL, **engine_kwargs: Any) -> Engine:
    if u.get_backend_name() == "sqlite":
        database = u.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(u, **engine_kwargs)
        _install_sqlite_hooks(engine, in_memory=database in ("", ":memory:"))
        return engine
    engine_kwargs.setdefault("pool_pre_ping", True)
    engine = sa.create_engine(u, **engine_kwargs)
    if u.get_backend_name() == "postgresql":
        _install_postgres_hooks(engine)
    return engine


def _install_postgres_hooks(engine: Engine) -> None:
    @event.listens_for(engine, "do_connect")
    def _on_connect(_dialect: Any, _record: Any, _cargs: Any, cparams: dict[str, Any]) -> None:
        # psycopg prepares statements it runs repeatedly, and PostgreSQL then may switch to a
        # generic plan. For "source_id = $1 AND dossier_code IN ($2..$501)" against a freshly
        # loaded (not yet analysed) table that plan scans the whole source and tests every row
        # against the 500 codes: 50x slower. Planning each execution with its values avoids it.
        #
        # JIT off: a night's statements each read one source (tens of thousands of rows), which
        # costs them above jit_above_cost at national volume, and compiling then costs more than
        # it saves. On a 1,000,000-dossier warehouse, the indicator counts and publish candidates
        # of 20 sources took 15.2 s (PostgreSQL CPU 9.6 s) with JIT and 10.5 s (6.8 s) without,
        # means of two runs; one source's indicator counts spent 252 of their 353 ms compiling.
        # Set first, so an ``options=-c jit=on`` in the warehouse URL still wins.
        given = cparams.get("options", "")
        parts = ("-c jit=off", given, "-c plan_cache_mode=force_custom_plan")
        cparams["options"] = " ".join(p for p in parts if p)


def _install_sqlite_hooks(engine: Engine, *, in_memory: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy (not the sqlite3 module) decide where transactions begin.
        dbapi_connection.isolation_level = None
        cur = dbapi_connection.cursor()
        if not in_memory:
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


# ---- migrations -------------------------------------------------------------------------------


def alembic_config(connection: Connection | None = None, url: str | URL | None = None) -> Config:
    """An Alembic ``Config`` pointing at the packaged migrations (no alembic.ini needed)."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        cfg.set_main_option(
            "sqlalchemy.url", resolve_url(url).render_as_string(hide_password=False).replace("%", "%%")
        )
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


@functools.cache
def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the package always ships migrations
        raise RuntimeError("no warehouse migrations found")
    return head


def current_revision(bind: Engine | Connection) -> str | None:
    """The revision stamped in the database (None for an empty / unmanaged database)."""
    from alembic.runtime.migration import MigrationContext

    if isinstance(bind, Engine):
        with bind.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    return MigrationContext.configure(bind).get_current_revision()


def migrate(url_or_engine: str | URL | Engine | None = None, revision: str = "head") -> Engine:
    """Upgrade the warehouse schema to ``revision`` (default head) and return the engine.

    Safe to call at the start of every task: a database already at head costs one small query;
    concurrent callers are serialised, and the later ones find nothing left to do.
    """
    engine = url_or_engine if isinstance(url_or_engine, Engine) else get_engine(url_or_engine)
    if revision == "head" and current_revision(engine) == head_revision():
        return engine

    from alembic import command

    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # Transaction-scoped: released at commit/rollback, even if this process dies.
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
        command.upgrade(alembic_config(connection=conn), revision)
    return engine
