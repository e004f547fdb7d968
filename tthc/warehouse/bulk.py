"""PostgreSQL bulk path: ``COPY`` into a staging table, then one ``INSERT … SELECT … ON CONFLICT``.

``executemany`` of an ``INSERT … ON CONFLICT`` costs a round of parsing, planning and index work
per row; a night of a million dossiers writes several million rows (raw records, canonical rows,
history, validation results, outbox). ``COPY`` streams the rows in the text protocol and the single
set-based ``INSERT … SELECT`` lets PostgreSQL merge them in one statement.

Semantics match the row-at-a-time path the callers use on SQLite and for small batches:

- rows with the same key: ``DO UPDATE`` keeps the last one (as sequential upserts would leave it),
  ``DO NOTHING`` the first one;
- values go through the column types' bind processing (``JSONText``), so what lands is byte for byte
  what ``executemany`` would have written;
- the staging table lives in the caller's transaction and is dropped at its end.
"""

from __future__ import annotations

import itertools
import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection
from sqlalchemy.types import TypeDecorator

#: below this many rows the statement-per-batch path is as fast and simpler to read in logs
COPY_MIN_ROWS = 200

#: a table that took at least this many rows through this path in one stage is analysed after the
#: stage: see :func:`analyze_loaded`
ANALYZE_MIN_ROWS = 10_000
#: ... or at least this many plus this share of the rows it held (PostgreSQL's own rule for
#: autovacuum's analyse: ``autovacuum_analyze_threshold`` and ``_scale_factor``), when fewer
ANALYZE_BASE_ROWS = 50
ANALYZE_SHARE = 0.1

_serial = itertools.count(1)
_loaded: Counter[str] = Counter()  # table name → rows bulk-loaded since the last analyze_loaded()
log = logging.getLogger(__name__)


def usable(conn: Connection, n_rows: int) -> bool:
    return conn.dialect.name == "postgresql" and n_rows >= COPY_MIN_ROWS


def _converters(
    table: sa.Table, cols: Sequence[str], dialect: sa.Dialect
) -> list[Callable[[Any], Any] | None]:
    out: list[Callable[[Any], Any] | None] = []
    for c in cols:
        typ = table.c[c].type
        if isinstance(typ, TypeDecorator):
            out.append(lambda v, _t=typ: _t.process_bind_param(v, dialect))
        else:
            out.append(None)
    return out


def _dedupe(rows: Sequence[Mapping[str, Any]], keys: Sequence[str], keep: str) -> list[Mapping[str, Any]]:
    if not keys:
        return list(rows)
    seen: dict[tuple[Any, ...], Mapping[str, Any]] = {}
    for r in rows:
        k = tuple(r[c] for c in keys)
        if keep == "last" or k not in seen:
            seen[k] = r
    return list(seen.values())


def _stage(
    conn: Connection, table: sa.Table, cols: Sequence[str], rows: Sequence[Mapping[str, Any]]
) -> sa.TableClause:
    """COPY ``rows`` into a fresh temporary table with ``cols`` typed as in ``table``."""
    name = f"_bulk_{table.name}_{next(_serial)}"
    col_list = ", ".join(f'"{c}"' for c in cols)
    conn.exec_driver_sql(
        f'CREATE TEMP TABLE "{name}" ON COMMIT DROP AS SELECT {col_list} FROM "{table.name}" WITH NO DATA'
    )
    _copy_rows(conn, name, table, cols, rows)
    return sa.table(name, *(sa.column(c) for c in cols))


def _copy_rows(
    conn: Connection, target: str, table: sa.Table, cols: Sequence[str], rows: Sequence[Mapping[str, Any]]
) -> None:
    """``COPY target (cols) FROM STDIN`` of ``rows``, values bound as ``table``'s column types."""
    conv = _converters(table, cols, conn.dialect)
    col_list = ", ".join(f'"{c}"' for c in cols)
    raw = conn.connection.driver_connection
    with raw.cursor() as cur, cur.copy(f'COPY "{target}" ({col_list}) FROM STDIN') as copy:
        for r in rows:
            copy.write_row(
                [v if f is None else f(v) for f, v in zip(conv, (r.get(c) for c in cols), strict=True)]
            )


def on_conflict_update(
    ins: Any,
    cols: Sequence[str],
    keys: Sequence[str],
    *,
    update: Sequence[str] | None = None,
    extra_set: Callable[[Any], dict[str, Any]] | None = None,
) -> Any:
    """``ins`` (a PostgreSQL or SQLite INSERT) with ``ON CONFLICT (keys) DO UPDATE SET c =
    excluded.c`` for ``update`` (default: every non-key column of ``cols``), plus ``extra_set(excluded)``."""
    upd = list(update) if update is not None else [c for c in cols if c not in keys]
    set_: dict[str, Any] = {c: ins.excluded[c] for c in upd}
    if extra_set is not None:
        set_.update(extra_set(ins.excluded))
    return ins.on_conflict_do_update(index_elements=list(keys), set_=set_)


def copy_upsert(
    conn: Connection,
    table: sa.Table,
    rows: Sequence[Mapping[str, Any]],
    keys: Sequence[str],
    *,
    update: Sequence[str] | None = None,
    extra_set: Callable[[Any], dict[str, Any]] | None = None,
    do_nothing: bool = False,
) -> int:
    """``INSERT … ON CONFLICT (keys) DO UPDATE SET …`` (or ``DO NOTHING``) of ``rows`` via COPY.

    Returns the number of rows the statement inserted or updated (for ``DO NOTHING``: inserted).
    ``update``/``extra_set`` as in ``repo._upsert``.
    """
    if not rows:
        return 0
    cols = list(rows[0].keys())
    rows = _dedupe(rows, keys, "first" if do_nothing else "last")
    staged = _stage(conn, table, cols, rows)
    ins = postgresql.insert(table).from_select(cols, sa.select(*(staged.c[c] for c in cols)))
    if do_nothing:
        stmt = ins.on_conflict_do_nothing(index_elements=list(keys)) if keys else ins
    else:
        stmt = on_conflict_update(ins, cols, keys, update=update, extra_set=extra_set)
    # the driver's rowcount is not passed on for INSERT … SELECT: count what the statement returns
    done = stmt.returning(sa.literal(1)).cte("done")
    n = conn.execute(sa.select(sa.func.count()).select_from(done)).scalar_one()
    conn.exec_driver_sql(f'DROP TABLE "{staged.name}"')
    _loaded[table.name] += int(n)
    return int(n)


def copy_insert(conn: Connection, table: sa.Table, rows: Sequence[Mapping[str, Any]]) -> int:
    """``COPY`` ``rows`` straight into ``table``, for rows the caller knows are new (checked in the
    same transaction, and no other writer of those keys runs concurrently). A third of the time
    of :func:`copy_upsert` on 50,000 dossiers (no staging table, no conflict arbitration); a key
    that exists after all fails the statement (a unique violation) instead of being merged."""
    if not rows:
        return 0
    _copy_rows(conn, table.name, table, list(rows[0].keys()), rows)
    _loaded[table.name] += len(rows)
    return len(rows)


def copy_insert_expected_new(
    conn: Connection, table: sa.Table, rows: Sequence[Mapping[str, Any]], keys: Sequence[str]
) -> int:
    """:func:`copy_insert` of rows the caller expects to be new (it read their keys in this
    transaction), keeping :func:`copy_upsert`'s ``DO NOTHING`` semantics when the expectation
    fails: a key stored after all (a concurrent writer) rolls the COPY back to a savepoint and the
    rows go through :func:`copy_upsert` instead. Rows must not repeat a key."""
    import psycopg

    if not rows:
        return 0
    try:
        with conn.begin_nested():
            return copy_insert(conn, table, rows)
    except (psycopg.errors.UniqueViolation, sa.exc.IntegrityError):  # COPY runs on the driver's cursor
        _loaded[table.name] -= len(rows)
        log.info("%s: %d rows expected new met stored keys; merged instead", table.name, len(rows))
        return copy_upsert(conn, table, rows, keys, do_nothing=True)


def note_changed(table: str, n_rows: int) -> None:
    """Count rows a stage changed in bulk by other means than :func:`copy_upsert` (an ``UPDATE``
    of many rows' status) towards the table's next :func:`analyze_loaded`: the planner's idea of
    a status column's values is as stale after such an update as its row count after a load."""
    if n_rows > 0:
        _loaded[table] += int(n_rows)


def analyze_loaded(engine: sa.Engine, *, lock_timeout_ms: int = 5000) -> list[str]:
    """``ANALYZE`` the tables that took at least :data:`ANALYZE_MIN_ROWS` rows through this
    module since the last call (one stage: ``run_stage`` calls it after each); returns their names.
    The counts start again at every call, whatever was due.

    A night's load grows a table by tens of thousands of rows within minutes, faster than
    autovacuum's analyse follows (and a server may run without it). With row counts from before
    the load, the planner picks nested loops and on-disk sorts for the next stage's reads of the
    same rows. Called by ``run_stage`` after each stage, outside its transaction (autocommit), so
    the lock ``ANALYZE`` takes is held for its own few hundred milliseconds only; a table locked
    by someone else for longer than ``lock_timeout_ms`` is left for the next stage (its count is
    kept).

    Counted per stage, not per process: a quiet night's stages each change a few hundred rows of
    one source, which the statistics of a table of millions already describe well enough; summed
    over the sources a worker process runs they used to reach the threshold and analyse tables of
    a million rows in the middle of a quiet night (3.6 s of a 1,000,000-dossier next night's
    115 worker-seconds, in PostgreSQL's statement log). Autovacuum's own threshold, a share of
    the table, covers the slow drift.

    A smaller table is due after a stage that changed 50 rows plus a tenth of what it held, the
    rule autovacuum would apply, if sooner. Without it a table that only ever takes a few
    thousand rows a stage was never analysed on a server without autovacuum: ``quarantine``
    (2,000 held dossiers a source) was estimated at one row, and the publish candidates of a
    source's first night compared every dossier with every held one (one 48,000-dossier source
    with 2,000 held: 10.7 s; after an ``ANALYZE`` of ``quarantine``, the candidates of all four
    sources of that 200,000-dossier warehouse, that source's 48,000 included, took 2.0-2.1 s).
    """
    counts = {t: n for t, n in _loaded.items() if n >= ANALYZE_BASE_ROWS}
    _loaded.clear()
    if not counts or engine.dialect.name != "postgresql":
        return []
    done: list[str] = []
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        held = dict(
            conn.exec_driver_sql(
                "SELECT relname, reltuples FROM pg_class WHERE oid = ANY(%(oids)s::regclass[])",
                {"oids": [f'"{name}"' for name in counts]},
            ).all()
        )
        # reltuples is -1 for a table never analysed: any change of 50 rows is due there
        due = sorted(
            t
            for t, n in counts.items()
            if n >= min(ANALYZE_MIN_ROWS, ANALYZE_BASE_ROWS + ANALYZE_SHARE * max(held.get(t, 0.0), 0.0))
        )
        if not due:
            return []
        conn.exec_driver_sql(f"SET lock_timeout = {int(lock_timeout_ms)}")
        for name in due:
            try:
                conn.exec_driver_sql(f'ANALYZE "{name}"')
            except sa.exc.OperationalError as exc:  # lock_timeout: busy, try after the next stage
                log.info("ANALYZE %s skipped: %s", name, type(exc.orig).__name__)
                _loaded[name] += ANALYZE_MIN_ROWS
                continue
            done.append(name)
        conn.exec_driver_sql("RESET lock_timeout")
    return done
