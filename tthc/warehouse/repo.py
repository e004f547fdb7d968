"""Warehouse reads and writes used by the pipeline stages (batch-oriented, SQLite and PostgreSQL).

Every function takes ``bind``: an :class:`~sqlalchemy.engine.Engine` (the call runs in its own
transaction and commits) or a :class:`~sqlalchemy.engine.Connection` (the call joins the caller's
transaction; the caller commits). Writes go in chunks of ``executemany`` / dialect upserts
(``INSERT ... ON CONFLICT``), so 100k-row batches stay fast on both backends. Times default to
:func:`tthc.timeutil.vn_now` (naive Vietnam time); every stamping function takes ``now=`` for
reproducible tests and back-fills.

Raw records
    ``record_raw(bind, source_id, run_id, records, code_of, *, now=None) -> int``
        Store pulled records verbatim (canonical JSON); a record already stored for the source
        (same ``record_hash``) is skipped. Returns how many rows were new.
    ``store_raw(bind, source_id, run_id, rows: Iterable[RawRow], *, now=None) -> int``
        The same for records already encoded, with what their mapping gave (``mapped_*``).
    ``raw_identity(record) -> (text, record_hash)`` / ``known_raw(bind, source_id, hashes) -> set``
        How a record is stored and keyed; which of some keys are stored already.
    ``raw_of_run(bind, source_id, run_id) -> list[RawOfRun]`` / ``raw_payloads(bind, ids)``
        A run's stored records of one source, in pull order, without / with their payloads.

Dossiers (latest version + history)
    ``upsert_dossiers(bind, dossiers, run_id, *, now=None, prepared=None) -> UpsertResult``
        Latest update wins. Per ``(source_id, dossier_code)``: new → version 1; a different
        ``content_hash`` with ``updated_at`` not older than the stored one → version + 1, a history
        row, ``quality_status`` back to ``'pending'``; an older ``updated_at`` → ignored (``stale``);
        identical content → nothing written (only a newer ``updated_at`` is carried forward,
        ``touched``). Re-running the same window changes nothing. Within one batch the record with
        the greatest ``(updated_at, content_hash)`` represents its key. Records without a source or
        dossier code cannot be keyed and are counted as ``skipped``.
        Writers of one source must not run concurrently (one active DAG run per source).
    ``load_dossiers(bind, source_id, codes=None) -> list[Dossier]`` (ordered by code)
    ``dossier_rows(bind, source_id, codes) -> dict[code, row]``: their ``Dossier.to_row()``
    ``load_indicator_facts(bind, source_id, relevant_since=None) -> list[IndicatorFacts]``
        The flat columns the indicators count, of the dossiers not quarantined.
    ``changed_since(bind, source_id, run_id_or_time) -> list[Dossier]``
        A ``str``: dossiers whose current version was written by that run (new or changed);
        a ``datetime``: dossiers whose current version was loaded at or after that time.
    ``applicants(bind, source_id, *, run_id=None, codes=None) -> list[ApplicantRow]``
        Just the applicant fields and quality status of those a run wrote, or of some codes.
    ``dossier_states(bind, source_id, codes=None) -> dict[code, DossierState]``
        Version, hash, quality status and last run per dossier, without loading payloads.
    ``load_history(bind, source_id, dossier_code) -> list[dict]`` (every version, oldest first)

Watermarks and run bookkeeping
    ``get_watermark(bind, source_id) -> datetime | None``
    ``set_watermark(bind, source_id, value, run_id, *, now=None)``
    ``start_stage(bind, run_id, source_id, stage, *, now=None)`` (a retried stage starts afresh)
    ``finish_stage(bind, run_id, source_id, stage, status, *, records_in=None, records_out=None,
    quarantined=None, matched=None, published=None, errors=None, error_text=None, details=None,
    now=None)`` — ``error_text`` is scrubbed of digit runs (ID/phone shapes) and truncated.
    ``run_summary(bind, run_id) -> list[dict]`` (``sql/run_summary.sql`` + ``duration_s``)

Validation and quarantine
    ``save_validation(bind, run_id, source_id, suite, rule_rows, issue_rows, *, now=None)
    -> tuple[int, int]`` — replaces what the same (run, source, suite) saved before (retries are
    idempotent). Rule rows: ``rule_id, severity, evaluated, failed[, success]``; issue rows:
    ``dossier_code, rule_id, severity``. Other keys are ignored, so no value can slip in.
    ``set_quality_status(bind, source_id, statuses: dict[code, status]) -> int``
    ``hold(bind, source_id, code_to_reasons, content_hashes, run_id, *, now=None) -> int``
        Hold (or keep holding) records; also sets their ``quality_status`` to ``'quarantined'``.
        A record held again after a release starts a new hold (new ``first_run_id``/``held_at``).
    ``release(bind, source_id, codes, run_id, *, now=None, quality_status=None) -> int``
        Release held records; ``quality_status`` (optional) is set on the released dossiers.
    ``held_codes(bind, source_id) -> set[str]``
    ``quarantine_entries(bind, source_id, status=None) -> list[dict]``
    ``quality_by_agency(bind, source_id=None) -> list[dict]`` (``sql/quality_by_agency.sql``)
    ``issues_by_rule(bind, run_id) -> list[dict]`` (``sql/issues_by_rule.sql``)

Citizen reconciliation (keyed hashes only, never ID numbers or names)
    ``save_matches(bind, rows, *, now=None) -> int`` (upsert per dossier)
    ``load_matches(bind, source_id, codes=None) -> dict[code, dict]``
    ``cache_get(bind, id_hashes, now=None) -> dict[id_hash, result]`` (unexpired entries only)
    ``cache_put(bind, rows, ttl, *, now=None) -> int``; rows are ``{"id_hash", "result"[,
    "fetched_at"]}`` dicts or one ``{id_hash: result}`` mapping; ``CACHE_NOT_FOUND`` marks a miss.
    ``cache_purge(bind, now=None) -> int``
    ``audit_lookup(bind, row, *, now=None) -> str`` (upsert by ``request_id``; returns it)

Publishing
    ``publish_candidates(bind, source_id) -> list[Dossier]`` (``sql/publish_candidates.sql``)
    ``mark_published(bind, rows, *, now=None) -> int`` — rows: Dossier objects or dicts with
    ``source_id, dossier_code, content_hash`` (or ``published_hash``)``[, published_at]``.
    ``mark_publish_failed(bind, rows, *, now=None) -> int`` — rows: dicts with ``source_id,
    dossier_code[, error, attempted_at]``; ``attempts`` counts failures since the last success.
    ``publish_states(bind, source_id, codes=None) -> dict[code, dict]``
    ``outbox_key(source_id, dossier_code, kind, content_hash) -> str`` (deterministic)
    ``outbox_put(bind, rows, *, now=None) -> int`` (existing keys are left alone; ``dossier``
    messages carry no payload: it is derived from ``dossier_history``, see ``load_versions``);
    ``outbox_new_fields(now)``: the columns it gives a message it adds
    ``outbox_pending(bind, source_id=None, *, kinds=None, statuses=("pending", "failed"),
    max_attempts=None, limit=None) -> list[dict]``
    ``outbox_mark(bind, keys, status, *, error=None, now=None) -> int``
    Helpers of the publish stage (tthc.pipeline.publish): ``load_histories(bind, source_id,
    codes=None) -> dict[code, list[dict]]``, ``load_versions(bind, source_id, {code: version})
    -> dict[code, Dossier]`` (just those versions), ``outbox_items(bind, source_id, *, codes, kinds,
    statuses, known_payloads)``, ``outbox_settle(bind, keys, status, *, error=None, count_attempt=False)``,
    ``outbox_requeue(bind, {key: dossier_version})`` (re-arm confirmed messages),
    ``outbox_discard(bind, keys)``, ``set_published_versions(bind, source_id, {code: (version,
    payload_hash)})``, ``clear_publish_failures(bind, source_id, codes)``,
    ``reset_published(bind, source_id, codes, *, error, missing=False)``.

Indicators
    ``save_indicators(bind, rows, *, now=None) -> int`` (upsert on period, scope, indicator;
    ``value`` defaults to numerator / denominator, NULL when the denominator is 0; count rows
    have ``denominator`` None and ``value`` = numerator)
    ``load_indicators(bind, *, period_type=None, period_start=None, scope=None, scope_code=None,
    indicator_id=None) -> list[dict]``
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from tthc.codes import CHANNEL_ONLINE, STATUS_EXCLUDED, STATUS_NAMES
from tthc.model import SCALAR_FIELDS, Attachment, Dossier, Supplement, flat_row
from tthc.privacy import scrub_digits
from tthc.timeutil import vn_now
from tthc.warehouse import bulk
from tthc.warehouse import schema as s
from tthc.warehouse.schema import RawJSON, json_default, json_dumps
from tthc.warehouse.sqlfiles import load_sql

log = logging.getLogger(__name__)

Bind = Engine | Connection
T = TypeVar("T")

#: Marker stored in ``lookup_cache.result`` when the registry does not know an ID.
CACHE_NOT_FOUND: dict[str, Any] = {"found": False}

ERROR_TEXT_MAX = 2000
IN_CHUNK = 500  # values per IN (...) list
PG_ANY_CHUNK = 20_000  # values per = ANY(:array) on PostgreSQL
# Rows per executemany call; bounded so one statement never holds the whole batch in the driver.
WRITE_CHUNK = 5000

__all__ = [
    "CACHE_NOT_FOUND",
    "DossierState",
    "RawOfRun",
    "RawRow",
    "UpsertResult",
    "VersionStatus",
    "audit_lookup",
    "cache_get",
    "cache_purge",
    "cache_put",
    "changed_since",
    "dossier_rows",
    "applicants",
    "ApplicantRow",
    "clear_publish_failures",
    "code_or_none",
    "codes_where",
    "dossier_states",
    "finish_stage",
    "get_watermark",
    "held_codes",
    "hold",
    "indicator_aggregates",
    "issues_by_rule",
    "judgement_candidates",
    "known_raw",
    "load_dossiers",
    "load_histories",
    "load_history",
    "load_indicators",
    "load_matches",
    "load_status_versions",
    "load_versions",
    "mark_publish_failed",
    "mark_published",
    "outbox_discard",
    "outbox_items",
    "outbox_key",
    "outbox_keys",
    "outbox_new_fields",
    "outbox_mark",
    "outbox_pending",
    "outbox_put",
    "outbox_requeue",
    "outbox_settle",
    "prepare_dossiers",
    "publish_candidates",
    "publish_states",
    "quality_by_agency",
    "quarantine_entries",
    "raw_identity",
    "raw_of_run",
    "raw_payloads",
    "record_raw",
    "release",
    "reset_published",
    "run_summary",
    "runs_without_stage",
    "save_final_judgements",
    "save_indicators",
    "save_matches",
    "save_validation",
    "set_published_versions",
    "set_quality_status",
    "set_watermark",
    "start_stage",
    "store_raw",
    "upsert_dossiers",
]


# ---- plumbing ----------------------------------------------------------------------------------


@contextmanager
def _tx(bind: Bind) -> Iterator[Connection]:
    """Engine → own transaction (committed on success); Connection → the caller's transaction."""
    if isinstance(bind, Engine):
        with bind.begin() as conn:
            yield conn
    else:
        yield bind


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _insert(conn: Connection, table: sa.Table) -> Any:
    """Dialect-specific INSERT that knows ``ON CONFLICT``."""
    name = conn.dialect.name
    if name == "postgresql":
        return postgresql.insert(table)
    if name == "sqlite":
        if sqlite3.sqlite_version_info < (3, 35):  # pragma: no cover - old system SQLite
            raise RuntimeError("the warehouse needs SQLite >= 3.35 (UPSERT ... RETURNING)")
        return sqlite.insert(table)
    raise NotImplementedError(f"the warehouse supports sqlite and postgresql, not {name}")


def _upsert(
    conn: Connection,
    table: sa.Table,
    rows: Sequence[dict[str, Any]],
    keys: Sequence[str],
    *,
    update: Sequence[str] | None = None,
    extra_set: Callable[[Any], dict[str, Any]] | None = None,
) -> int:
    """INSERT ... ON CONFLICT (keys) DO UPDATE SET col = excluded.col for ``update`` columns.

    ``update`` defaults to every non-key column of the rows; ``extra_set(excluded)`` may add or
    override SET expressions (they can refer to the stored row through ``table.c``).
    """
    if not rows:
        return 0
    if bulk.usable(conn, len(rows)):
        bulk.copy_upsert(conn, table, rows, keys, update=update, extra_set=extra_set)
        return len(rows)
    stmt = bulk.on_conflict_update(
        _insert(conn, table), list(rows[0]), keys, update=update, extra_set=extra_set
    )
    for chunk in _chunks(rows, WRITE_CHUNK):
        conn.execute(stmt, list(chunk))
    return len(rows)


def _check(value: str, allowed: tuple[str, ...], what: str) -> str:
    if value not in allowed:
        raise ValueError(f"{what} must be one of {allowed}, got {value!r}")
    return value


def _clean_text(text: str | None, limit: int = ERROR_TEXT_MAX) -> str | None:
    """Free text bound for the warehouse bookkeeping: no digit runs (ID/phone shapes), bounded."""
    if text is None:
        return None
    text = scrub_digits(str(text))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _members(conn: Connection, column: sa.ColumnElement, values: Iterable[str]) -> Iterator[Any]:
    """``column IN values`` as a series of conditions, one per chunk of the (deduplicated) values.

    On PostgreSQL each chunk is ``column = ANY(:array)``: one bound parameter and the same SQL text
    whatever the count, so a night's reads of 50,000 codes are a few statements the driver does not
    have to re-parse, instead of a hundred 500-parameter ``IN`` lists. Elsewhere (SQLite): ``IN``
    lists of :data:`IN_CHUNK` values.
    """
    vals = list(dict.fromkeys(values))
    if conn.dialect.name == "postgresql":
        item = sa.BigInteger() if isinstance(column.type, sa.Integer) else sa.String()
        for chunk in _chunks(vals, PG_ANY_CHUNK):
            yield column == sa.any_(sa.bindparam(None, list(chunk), type_=postgresql.ARRAY(item)))
    else:
        for chunk in _chunks(vals, IN_CHUNK):
            yield column.in_(chunk)


def _in_chunks(
    conn: Connection, stmt: sa.Select, column: sa.ColumnElement, values: Iterable[Any] | None
) -> Iterator[sa.RowMapping]:
    """Run ``stmt`` (optionally restricted to ``column IN values``, chunked) and yield mappings."""
    for row in _tuples_in_chunks(conn, stmt, column, values):
        yield row._mapping


def _tuples_in_chunks(
    conn: Connection, stmt: sa.Select, column: sa.ColumnElement, values: Iterable[Any] | None
) -> Iterator[sa.Row]:
    """:func:`_in_chunks` yielding rows (tuples), not mappings."""
    if values is None:
        yield from conn.execute(stmt)
        return
    for cond in _members(conn, column, values):
        yield from conn.execute(stmt.where(cond))


# ---- raw records ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RawRow:
    """One pulled record as :func:`store_raw` keeps it: its text (canonical JSON), record hash,
    dossier code, and what its mapping gave (content hash and ``updated_at`` of the dossier; None
    when not known exactly)."""

    payload: str
    record_hash: str
    dossier_code: str | None
    mapped_hash: str | None = None
    mapped_updated_at: datetime | None = None


def code_or_none(code_of: Callable[[Mapping[str, Any]], Any], record: Mapping[str, Any]) -> str | None:
    """``code_of(record)`` as text, or None when the record's code cannot be read (KeyError,
    TypeError, ValueError, AttributeError): such a record is still stored, with no code."""
    try:
        code = code_of(record)
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    return None if code is None else str(code)


def record_raw(
    bind: Bind,
    source_id: str,
    run_id: str,
    records: Iterable[Mapping[str, Any]],
    code_of: Callable[[Mapping[str, Any]], str | None],
    *,
    now: datetime | None = None,
) -> int:
    """Store pulled records verbatim; returns how many were new (duplicates are ignored).
    ``code_of(record)`` extracts the dossier code (see :func:`code_or_none`)."""
    rows = []
    for rec in records:
        text, digest = raw_identity(rec)
        rows.append(RawRow(text, digest, code_or_none(code_of, rec)))
    return store_raw(bind, source_id, run_id, rows, now=now)


def store_raw(
    bind: Bind, source_id: str, run_id: str, records: Iterable[RawRow], *, now: datetime | None = None
) -> int:
    """Store records already encoded (:class:`RawRow`); returns how many were new. A record
    stored before for the source (same ``record_hash``), or twice in ``records``, is kept once."""
    now = now or vn_now()
    rows: dict[str, dict[str, Any]] = {}
    for r in records:
        if r.record_hash in rows:
            continue
        rows[r.record_hash] = {
            "source_id": source_id,
            "run_id": run_id,
            "dossier_code": r.dossier_code,
            "record_hash": r.record_hash,
            "payload": r.payload,
            "pulled_at": now,
            "mapped_hash": r.mapped_hash,
            "mapped_updated_at": r.mapped_updated_at,
        }
    if not rows:
        return 0
    inserted = 0
    with _tx(bind) as conn:
        t = s.raw_records
        if bulk.usable(conn, len(rows)):
            keys = ["source_id", "record_hash"]
            return bulk.copy_upsert(conn, t, list(rows.values()), keys, do_nothing=True)
        stmt = (
            _insert(conn, t)
            .on_conflict_do_nothing(index_elements=["source_id", "record_hash"])
            .returning(t.c.id)
        )
        for chunk in _chunks(list(rows.values()), WRITE_CHUNK):
            inserted += len(conn.execute(stmt, list(chunk)).all())
    return inserted


def raw_identity(record: Mapping[str, Any]) -> tuple[str, str]:
    """A pulled record's stored text (canonical JSON) and ``record_hash`` (its SHA-256)."""
    payload = json_dumps(record)
    return payload, hashlib.sha256(payload.encode("utf-8")).hexdigest()


def known_raw(bind: Bind, source_id: str, record_hashes: Iterable[str]) -> set[str]:
    """Which of ``record_hashes`` are stored for the source already (by any run)."""
    t = s.raw_records
    q = sa.select(t.c.record_hash).where(t.c.source_id == source_id)
    with _tx(bind) as conn:
        return {m["record_hash"] for m in _in_chunks(conn, q, t.c.record_hash, list(set(record_hashes)))}


@dataclass(frozen=True, slots=True)
class RawOfRun:
    """One stored record of a run, without its payload (:func:`raw_of_run`)."""

    id: int
    dossier_code: str | None
    mapped_hash: str | None
    mapped_updated_at: datetime | None


def raw_of_run(bind: Bind, source_id: str, run_id: str) -> list[RawOfRun]:
    """The records a run stored for a source, in the order they were pulled (payloads not read)."""
    t = s.raw_records
    q = (
        sa.select(t.c.id, t.c.dossier_code, t.c.mapped_hash, t.c.mapped_updated_at)
        .where(t.c.source_id == source_id, t.c.run_id == run_id)
        .order_by(t.c.id)
    )
    with _tx(bind) as conn:
        return [RawOfRun(*r) for r in conn.execute(q)]


def raw_payloads(bind: Bind, ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    """Stored records by id, decoded (as pulled)."""
    t = s.raw_records
    with _tx(bind) as conn:
        return {
            m["id"]: json.loads(m["payload"])
            for m in _in_chunks(conn, sa.select(t.c.id, t.c.payload), t.c.id, list(ids))
        }


# ---- dossiers --------------------------------------------------------------------------------------


@dataclass
class UpsertResult:
    """Outcome of :func:`upsert_dossiers`.

    Every input record lands in exactly one count: the record that represents its key in
    ``inserted`` / ``updated`` / ``unchanged`` / ``stale``, same-key extras of the batch in
    ``unchanged`` (same content) or ``stale`` (superseded), unkeyable ones in ``skipped``.
    """

    inserted: int = 0
    updated: int = 0  # a new version was written
    unchanged: int = 0  # same content as stored (includes ``touched``)
    changed_keys: list[str] = field(default_factory=list)  # Dossier.key of inserted + updated
    stale: int = 0  # ignored: a newer version is stored, or came later in the same batch
    touched: int = 0  # same content, newer updated_at carried forward
    skipped: int = 0  # no source_id / dossier_code: cannot be keyed

    @property
    def changed(self) -> int:
        return self.inserted + self.updated


@dataclass(frozen=True)
class DossierState:
    content_hash: str
    version: int
    updated_at: datetime | None
    quality_status: str
    last_run_id: str


_MIN_DT = datetime.min


def _hashed(payload: dict[str, Any]) -> tuple[RawJSON, str]:
    """The text ``Dossier.content_hash()`` digests (``to_dict()`` minus ``updated_at``) and its hash."""
    body = {k: v for k, v in payload.items() if k != "updated_at"}
    blob = json.dumps(body, sort_keys=True, ensure_ascii=False, default=json_default)
    return RawJSON(blob), hashlib.sha256(blob.encode("utf-8")).hexdigest()


def prepare_dossiers(dossiers: Sequence[Dossier]) -> list[tuple[dict[str, Any], RawJSON, str]]:
    """``(to_dict(), hashed text, content_hash())`` per dossier, serialising each only once: what
    :func:`upsert_dossiers` takes as ``prepared`` when the caller needs the hashes too."""
    out = []
    for d in dossiers:
        payload = d.to_dict()
        blob, h = _hashed(payload)
        out.append((payload, blob, h))
    return out


def _order_key(d: Dossier, content_hash: str) -> tuple[datetime, str]:
    return (d.updated_at or _MIN_DT, content_hash)


def _is_older(new: datetime | None, stored: datetime | None) -> bool:
    """An incoming version without ``updated_at`` never replaces a dated one."""
    if stored is None:
        return False
    if new is None:
        return True
    return new < stored


def _dossier_row(d: Dossier, content_hash: str, as_dict: dict[str, Any]) -> dict[str, Any]:
    row = d.to_row()
    row["supplements_json"] = as_dict["supplements"]
    row["attachments_json"] = as_dict["attachments"]
    row["raw_issues_json"] = as_dict["raw_issues"]
    row["content_hash"] = content_hash
    return row


def upsert_dossiers(
    bind: Bind,
    dossiers: Iterable[Dossier],
    run_id: str,
    *,
    now: datetime | None = None,
    prepared: Sequence[tuple[dict[str, Any], RawJSON, str]] | None = None,
) -> UpsertResult:
    """Merge a batch of canonical dossiers into ``dossiers`` / ``dossier_history`` (see module doc).
    ``prepared``: :func:`prepare_dossiers` of ``dossiers`` (same order), if the caller has it."""
    now = now or vn_now()
    result = UpsertResult()
    dossiers = list(dossiers)
    if prepared is not None and len(prepared) != len(dossiers):
        raise ValueError("prepared must have one entry per dossier")
    keyed: list[tuple[Dossier, tuple[dict[str, Any], RawJSON, str] | None]] = []
    for i, d in enumerate(dossiers):
        if d.source_id and d.dossier_code:
            keyed.append((d, prepared[i] if prepared is not None else None))
        else:
            result.skipped += 1
    if prepared is None:
        done = prepare_dossiers([d for d, _ in keyed])
        keyed = [(d, p) for (d, _), p in zip(keyed, done, strict=True)]
    best: dict[tuple[str, str], tuple[Dossier, str, dict[str, Any], RawJSON]] = {}
    for d, (payload, blob, h) in keyed:  # type: ignore[misc]  # all prepared by now
        k = (d.source_id, d.dossier_code)
        cur = best.get(k)
        if cur is None:
            best[k] = (d, h, payload, blob)
            continue
        if cur[1] == h:
            result.unchanged += 1  # the same content twice in one batch (overlapping pages)
        else:
            result.stale += 1
        if _order_key(d, h) > _order_key(cur[0], cur[1]):
            best[k] = (d, h, payload, blob)
    if not best:
        return result

    by_source: dict[str, list[str]] = {}
    for src, code in best:
        by_source.setdefault(src, []).append(code)

    t = s.dossiers
    writes: list[dict[str, Any]] = []
    history: list[dict[str, Any]] = []
    touches: list[dict[str, Any]] = []
    with _tx(bind) as conn:
        stored: dict[tuple[str, str], sa.RowMapping] = {}
        for src, codes in by_source.items():
            q = sa.select(
                t.c.source_id, t.c.dossier_code, t.c.content_hash, t.c.updated_at, t.c.version
            ).where(t.c.source_id == src)
            for m in _in_chunks(conn, q, t.c.dossier_code, codes):
                stored[(m["source_id"], m["dossier_code"])] = m

        for k, (d, h, as_dict, blob) in best.items():
            old = stored.get(k)
            if old is not None and old["content_hash"] == h:
                result.unchanged += 1
                stored_at = old["updated_at"]
                if d.updated_at is not None and (stored_at is None or d.updated_at > stored_at):
                    result.touched += 1
                    touches.append({"k_src": k[0], "k_code": k[1], "k_upd": d.updated_at})
                continue
            if old is not None and _is_older(d.updated_at, old["updated_at"]):
                result.stale += 1
                continue
            version = 1 if old is None else old["version"] + 1
            row = _dossier_row(d, h, as_dict)
            row.update(
                version=version,
                first_seen_run=run_id,
                last_run_id=run_id,
                loaded_at=now,
                quality_status="pending",
            )
            writes.append(row)
            history.append(
                {
                    "source_id": k[0],
                    "dossier_code": k[1],
                    "version": version,
                    "content_hash": h,
                    "payload": blob,
                    "updated_at": d.updated_at,
                    "run_id": run_id,
                    "loaded_at": now,
                }
            )
            if old is None:
                result.inserted += 1
            else:
                result.updated += 1
            result.changed_keys.append(d.key)

        if writes:
            keys = ("source_id", "dossier_code")
            update_cols = [c for c in writes[0] if c not in keys and c != "first_seen_run"]
            # keys not stored (read above, in this transaction; one writer per source): plain COPY
            new = [w for w in writes if w["version"] == 1]
            if bulk.usable(conn, len(new)):
                bulk.copy_insert(conn, t, new)
                writes = [w for w in writes if w["version"] != 1]
            _upsert(conn, t, writes, keys, update=update_cols)
            hist_keys = ["source_id", "dossier_code", "version"]
            if bulk.usable(conn, len(history)):
                # the first versions of the dossiers just COPYed: their history rows cannot exist
                # either (dossier_history references dossiers), so they are COPYed straight too
                first = [h for h in history if h["version"] == 1]
                if len(first) == len(new) and bulk.usable(conn, len(first)):
                    bulk.copy_insert(conn, s.dossier_history, first)
                    history = [h for h in history if h["version"] != 1]
                bulk.copy_upsert(conn, s.dossier_history, history, hist_keys, do_nothing=True)
            else:
                hist_stmt = _insert(conn, s.dossier_history).on_conflict_do_nothing(index_elements=hist_keys)
                for chunk in _chunks(history, WRITE_CHUNK):
                    conn.execute(hist_stmt, list(chunk))
        if touches:
            touch = (
                sa.update(t)
                .where(
                    t.c.source_id == sa.bindparam("k_src"),
                    t.c.dossier_code == sa.bindparam("k_code"),
                )
                .values(updated_at=sa.bindparam("k_upd"))
            )
            for chunk in _chunks(touches, WRITE_CHUNK):
                conn.execute(touch, list(chunk))
    result.changed_keys.sort()
    return result


def _to_dossier(m: Mapping[str, Any]) -> Dossier:
    kw = {f: m[f] for f in SCALAR_FIELDS}
    kw["supplements"] = _supplements(m["supplements_json"])
    kw["attachments"] = [Attachment(**a) for a in m["attachments_json"]]
    kw["raw_issues"] = dict(m["raw_issues_json"])
    return Dossier(**kw)


def _supplements(stored: Iterable[Mapping[str, Any]]) -> list[Supplement]:
    """``supplements_json`` as :class:`Supplement` objects."""
    return [Supplement(_dt(x.get("requested_at")), _dt(x.get("completed_at"))) for x in stored]


def _dt(v: str | datetime | None) -> datetime | None:
    if v is None or isinstance(v, datetime):
        return v
    return datetime.fromisoformat(v)


def load_dossiers(
    bind: Bind,
    source_id: str,
    codes: Iterable[str] | None = None,
    *,
    relevant_since: datetime | None = None,
) -> list[Dossier]:
    """Current versions of one source's dossiers (all, or the given codes), ordered by code.

    ``relevant_since``: only dossiers that can count in a period starting then — received or
    changed since, still without an end (``finished_at``), or undated. Everything else ended and
    last changed before the period: it is neither received in it nor active at its start. Keeps a
    night's indicator work bounded by the period, not by the years the warehouse holds.
    """
    t = s.dossiers
    q = sa.select(t).where(t.c.source_id == source_id)
    if relevant_since is not None:
        q = q.where(_relevant_since(relevant_since))
    with _tx(bind) as conn:
        out = [_to_dossier(m) for m in _in_chunks(conn, q, t.c.dossier_code, codes)]
    out.sort(key=lambda d: d.dossier_code or "")
    return out


def _relevant_since(since: datetime) -> sa.ColumnElement[bool]:
    """Dossiers that can count in a period starting at ``since`` (see :func:`load_dossiers`)."""
    t = s.dossiers
    return sa.or_(
        t.c.received_at.is_(None),
        t.c.received_at >= since,
        t.c.updated_at.is_(None),
        t.c.updated_at >= since,
        t.c.finished_at.is_(None),
    )


#: Columns of ``dossiers`` the indicators read (``IndicatorFacts``): no applicant data.
_FACT_COLUMNS = (
    "source_id",
    "dossier_code",
    "agency_code",
    "procedure_code",
    "status",
    "received_at",
    "updated_at",
    "due_at",
    "finished_at",
    "returned_at",
    "channel",
    "fee",
    "paid_online",
    "result_type",
    "result_file",
    "vneid_verified",
    "attachment_count",
    "digitized_count",
    "reused_count",
)


def load_indicator_facts(bind: Bind, source_id: str, *, relevant_since: datetime | None = None) -> list[Any]:
    """What the indicators count of one source: ``tthc.indicators.IndicatorFacts`` of the
    dossiers that are not quarantined (their dates and statuses are not trusted), in no order.

    Reads the flat columns only: attachments come as the stored counts, supplements as stored
    (an empty list is not decoded), and no applicant column is read. ``relevant_since`` as in
    :func:`load_dossiers`. Equal to ``IndicatorFacts.of`` of :func:`load_dossiers`' result less the
    quarantined ones (tested): a night's indicator stage reads a fraction of the bytes.
    """
    t = s.dossiers
    q = sa.select(*(t.c[c] for c in _FACT_COLUMNS), t.c.supplements_json).where(
        t.c.source_id == source_id, t.c.quality_status != "quarantined"
    )
    if relevant_since is not None:
        q = q.where(_relevant_since(relevant_since))
    with _tx(bind) as conn:
        return [f for f, _ in _facts(conn.execute(q))]


def _facts(rows: Iterable[Sequence[Any]]) -> Iterator[tuple[Any, tuple[Any, ...]]]:
    """``IndicatorFacts`` of rows holding :data:`_FACT_COLUMNS` then ``supplements_json`` (then
    anything else, returned as the tuple's second item), built by position: a night reads every
    dossier of the period."""
    from tthc.indicators import IndicatorFacts

    names = tuple(f.name for f in dataclasses.fields(IndicatorFacts))
    if names != (*_FACT_COLUMNS, "supplements"):  # pragma: no cover - a programming error
        raise AssertionError("_FACT_COLUMNS must list IndicatorFacts' fields in order")
    verified = _FACT_COLUMNS.index("vneid_verified")
    n = len(_FACT_COLUMNS)
    for r in rows:
        yield (
            IndicatorFacts(
                *r[:verified],
                bool(r[verified]),
                *r[verified + 1 : n],
                tuple(_supplements(r[n])),  # "[]" is not decoded (the column type)
            ),
            tuple(r[n + 1 :]),
        )


#: Statuses of a received dossier (every known status but 1 and 3, which are never received).
RECEIVED_STATUSES = tuple(sorted(set(STATUS_NAMES) - STATUS_EXCLUDED))


def _final_join(basis: str) -> Any:
    """``dossiers`` LEFT JOIN the stored final judgement of each one's current version (``basis``)."""
    d, j = s.dossiers, s.final_judgements
    return d.outerjoin(
        j,
        sa.and_(
            j.c.source_id == d.c.source_id,
            j.c.dossier_code == d.c.dossier_code,
            j.c.version == d.c.version,
            j.c.basis == basis,
        ),
    )


def judgement_candidates(
    bind: Bind, source_id: str, *, since: datetime, until: datetime, basis: str
) -> list[tuple[Any, int]]:
    """The received dossiers the indicators must judge in Python, with their versions: not
    quarantined, received in ``[since, until]``, and without a stored final judgement (of their
    current version, made with ``basis``) that holds at ``until`` (ended by then).
    """
    d, j = s.dossiers, s.final_judgements
    q = (
        sa.select(*(d.c[c] for c in _FACT_COLUMNS), d.c.supplements_json, d.c.version)
        .select_from(_final_join(basis))
        .where(
            d.c.source_id == source_id,
            d.c.quality_status != "quarantined",
            d.c.status.in_(RECEIVED_STATUSES),
            d.c.received_at >= since,
            d.c.received_at <= until,
            sa.or_(j.c.outcome.is_(None), j.c.ended_at > until),
        )
    )
    with _tx(bind) as conn:
        return [(f, extra[0]) for f, extra in _facts(conn.execute(q))]


def save_final_judgements(
    bind: Bind, rows: Sequence[Mapping[str, Any]], *, now: datetime | None = None
) -> int:
    """Store final judgements (``source_id, dossier_code, version, basis, outcome, ended_at``),
    replacing a dossier's earlier one; returns how many were written."""
    if not rows:
        return 0
    at = now or vn_now()
    stamped = [{**r, "judged_at": at} for r in rows]
    with _tx(bind) as conn:
        _upsert(conn, s.final_judgements, stamped, ("source_id", "dossier_code"))
    return len(stamped)


def indicator_aggregates(
    bind: Bind,
    source_id: str,
    periods: Mapping[Any, tuple[datetime, datetime]],
    *,
    basis: str,
    same_person: Sequence[str],
) -> dict[Any, dict[str | None, dict[str, int]]]:
    """Per period and agency, ``tthc.indicators.AGGREGATE_FIELDS`` of one source's dossiers that
    are not quarantined: the received population's counts (received in the period; never-received
    ones, by receipt or else update time, as ``excluded``; synced = published; population database
    = VNeID-verified or reconciled as ``same_person``) and the stored final outcomes (``basis``)
    that hold at the period's end. One statement for all periods (both bounds inclusive).
    """
    from tthc.indicators import AGGREGATE_FIELDS

    d, j, p, m = s.dossiers, s.final_judgements, s.publish_state, s.citizen_matches
    ref = sa.func.coalesce(d.c.received_at, d.c.updated_at)
    received = sa.and_(d.c.status.in_(RECEIVED_STATUSES), d.c.received_at.is_not(None))
    never_received = sa.or_(
        d.c.status.is_(None), d.c.status.not_in(RECEIVED_STATUSES), d.c.received_at.is_(None)
    )
    fee_bearing = sa.func.coalesce(d.c.fee, 0) > 0
    has_file = sa.and_(d.c.result_file.is_not(None), d.c.result_file != "")
    resolved = j.c.outcome.in_(("early", "on_time", "overdue"))
    paper = sa.and_(resolved, d.c.status.in_((9, 10)), d.c.result_type == "paper")

    def n(*conds: Any) -> Any:
        return sa.func.sum(sa.case((sa.and_(*conds), 1), else_=0))

    cols: list[Any] = []
    names = list(periods)
    for i, name in enumerate(names):
        start, end = periods[name]
        rin = sa.and_(received, d.c.received_at >= start, d.c.received_at <= end)
        final = sa.and_(rin, j.c.outcome.is_not(None), sa.or_(j.c.ended_at.is_(None), j.c.ended_at <= end))
        same = sa.or_(d.c.vneid_verified == sa.true(), m.c.match_class.in_(list(same_person)))
        exprs = {
            "excluded": n(never_received, ref >= start, ref <= end),
            "received": n(rin),
            "synced": n(rin, p.c.status == "published"),
            "online": n(rin, d.c.channel == CHANNEL_ONLINE),
            "fee_bearing": n(rin, fee_bearing),
            "paid_online": n(rin, fee_bearing, d.c.paid_online.in_((1, 2))),
            "digitised": n(rin, d.c.digitized_count > 0),
            "reused": n(rin, d.c.reused_count > 0),
            "population_db": n(rin, same),
            "final_early": n(final, j.c.outcome == "early"),
            "final_on_time": n(final, j.c.outcome == "on_time"),
            "final_overdue": n(final, j.c.outcome == "overdue"),
            "final_withdrawn": n(final, j.c.outcome == "withdrawn"),
            "final_unjudged": n(final, j.c.outcome == "unjudged"),
            "final_paper": n(final, paper),
            "final_paper_file": n(final, paper, has_file),
        }
        if tuple(exprs) != AGGREGATE_FIELDS:  # pragma: no cover - a programming error
            raise AssertionError("indicator_aggregates must compute AGGREGATE_FIELDS")
        cols += [e.label(f"p{i}_{k}") for k, e in exprs.items()]
    earliest = min(start for start, _ in periods.values())
    latest = max(end for _, end in periods.values())
    joined = (
        _final_join(basis)
        .outerjoin(p, sa.and_(p.c.source_id == d.c.source_id, p.c.dossier_code == d.c.dossier_code))
        .outerjoin(m, sa.and_(m.c.source_id == d.c.source_id, m.c.dossier_code == d.c.dossier_code))
    )
    q = (
        sa.select(d.c.agency_code, *cols)
        .select_from(joined)
        .where(
            d.c.source_id == source_id, d.c.quality_status != "quarantined", ref >= earliest, ref <= latest
        )
        .group_by(d.c.agency_code)
    )
    out: dict[Any, dict[str | None, dict[str, int]]] = {name: {} for name in names}
    with _tx(bind) as conn:
        for row in conn.execute(q).mappings():
            for i, name in enumerate(names):
                out[name][row["agency_code"]] = {k: int(row[f"p{i}_{k}"] or 0) for k in AGGREGATE_FIELDS}
    return out


def agency_codes(bind: Bind, source_id: str) -> list[str | None]:
    """Distinct agency codes of one source's dossiers (None for dossiers without one)."""
    t = s.dossiers
    with _tx(bind) as conn:
        return list(
            conn.execute(sa.select(t.c.agency_code).where(t.c.source_id == source_id).distinct()).scalars()
        )


def dossier_rows(bind: Bind, source_id: str, codes: Iterable[str]) -> dict[str, dict[str, Any]]:
    """``Dossier.to_row()`` of the current version of some dossiers (``{code: row}``), built from
    the stored columns: what validation reads of a night's unchanged mappings, without building
    each dossier (its supplements' dates parsed, its documents as objects) only to flatten it."""
    t = s.dossiers
    extra = (t.c.supplements_json, t.c.attachments_json, t.c.raw_issues_json)
    q = sa.select(*(t.c[f] for f in SCALAR_FIELDS), *extra).where(t.c.source_id == source_id)
    n = len(SCALAR_FIELDS)
    out: dict[str, dict[str, Any]] = {}
    with _tx(bind) as conn:
        for r in _tuples_in_chunks(conn, q, t.c.dossier_code, codes):
            supplements, attachments, raw_issues = r[n:]
            row = flat_row(
                dict(zip(SCALAR_FIELDS, r[:n], strict=True)),
                pending=[x.get("completed_at") is None for x in supplements],
                documents=[(bool(a.get("digitized")), bool(a.get("reused"))) for a in attachments],
                raw_issue_fields=raw_issues,
            )
            out[row["dossier_code"]] = row
    return out


def changed_since(bind: Bind, source_id: str, run_id_or_time: str | datetime) -> list[Dossier]:
    """Dossiers whose current version a run wrote (``str`` run id) or loaded since a time."""
    t = s.dossiers
    q = sa.select(t).where(t.c.source_id == source_id)
    if isinstance(run_id_or_time, datetime):
        q = q.where(t.c.loaded_at >= run_id_or_time)
    else:
        q = q.where(t.c.last_run_id == run_id_or_time)
    with _tx(bind) as conn:
        return [_to_dossier(m) for m in conn.execute(q.order_by(t.c.dossier_code)).mappings()]


@dataclass(frozen=True, slots=True)
class ApplicantRow:
    """What reconciliation reads of a dossier: the applicant's fields (the ``applicant_*``
    attributes of :class:`Dossier`, so ``tthc.matching`` takes it as it takes a dossier) and the
    dossier's quality status."""

    dossier_code: str
    applicant_id_number: str | None
    applicant_name: str | None
    applicant_birth_date: str | None
    applicant_sex: int | None
    quality_status: str


def applicants(
    bind: Bind,
    source_id: str,
    *,
    run_id: str | None = None,
    codes: Iterable[str] | None = None,
    unmatched: bool = False,
) -> list[ApplicantRow]:
    """The applicants of the dossiers whose current version ``run_id`` wrote, or of ``codes``
    (ordered by code): five columns, where :func:`changed_since` / :func:`load_dossiers` build
    whole dossiers (their documents and supplement lists decoded) for a night's every change.
    ``unmatched``: only those with no match checked since their current version was stored."""
    t = s.dossiers
    q = sa.select(
        t.c.dossier_code,
        t.c.applicant_id_number,
        t.c.applicant_name,
        t.c.applicant_birth_date,
        t.c.applicant_sex,
        t.c.quality_status,
    ).where(t.c.source_id == source_id)
    if run_id is not None:
        q = q.where(t.c.last_run_id == run_id)
    if unmatched:
        m = s.citizen_matches
        same = sa.and_(m.c.source_id == t.c.source_id, m.c.dossier_code == t.c.dossier_code)
        q = q.outerjoin(m, same).where(sa.or_(m.c.checked_at.is_(None), m.c.checked_at < t.c.loaded_at))
    with _tx(bind) as conn:
        out = [ApplicantRow(*row) for row in _tuples_in_chunks(conn, q, t.c.dossier_code, codes)]
    out.sort(key=lambda a: a.dossier_code)
    return out


def dossier_states(bind: Bind, source_id: str, codes: Iterable[str] | None = None) -> dict[str, DossierState]:
    t = s.dossiers
    q = sa.select(
        t.c.dossier_code,
        t.c.content_hash,
        t.c.version,
        t.c.updated_at,
        t.c.quality_status,
        t.c.last_run_id,
    ).where(t.c.source_id == source_id)
    with _tx(bind) as conn:  # tuples, not mappings: read for every dossier of a source, several times a night
        return {
            code: DossierState(content_hash, version, updated_at, quality_status, last_run_id)
            for code, content_hash, version, updated_at, quality_status, last_run_id in _tuples_in_chunks(
                conn, q, t.c.dossier_code, codes
            )
        }


def _history_dossier(m: Mapping[str, Any]) -> Dossier:
    """The :class:`Dossier` of a ``dossier_history`` row: its ``payload`` (the hashed body,
    without ``updated_at``) with the row's own ``updated_at`` column."""
    payload = dict(m["payload"])
    payload["updated_at"] = m["updated_at"]
    return Dossier.from_dict(payload)


def load_history(bind: Bind, source_id: str, dossier_code: str) -> list[dict[str, Any]]:
    """Every stored version of one dossier, oldest first: version, content_hash, updated_at,
    run_id, loaded_at and ``dossier`` (the :class:`Dossier` of that version)."""
    h = s.dossier_history
    q = sa.select(h).where(h.c.source_id == source_id, h.c.dossier_code == dossier_code).order_by(h.c.version)
    out = []
    with _tx(bind) as conn:
        for m in conn.execute(q).mappings():
            row = {k: m[k] for k in ("version", "content_hash", "updated_at", "run_id", "loaded_at")}
            row["dossier"] = _history_dossier(m)
            out.append(row)
    return out


# ---- watermarks and run bookkeeping ------------------------------------------------------------


def get_watermark(bind: Bind, source_id: str) -> datetime | None:
    t = s.watermarks
    with _tx(bind) as conn:
        return conn.execute(sa.select(t.c.watermark).where(t.c.source_id == source_id)).scalar()


def set_watermark(
    bind: Bind, source_id: str, value: datetime | None, run_id: str | None, *, now: datetime | None = None
) -> None:
    row = {"source_id": source_id, "watermark": value, "run_id": run_id, "updated_at": now or vn_now()}
    with _tx(bind) as conn:
        _upsert(conn, s.watermarks, [row], ["source_id"])


def start_stage(
    bind: Bind, run_id: str, source_id: str, stage: str, *, now: datetime | None = None
) -> datetime:
    """Mark a stage running (a retried stage starts afresh); returns its start time."""
    now = now or vn_now()
    row: dict[str, Any] = {
        "run_id": run_id,
        "source_id": source_id,
        "stage": stage,
        "started_at": now,
        "finished_at": None,
        "status": "running",
        "records_in": None,
        "records_out": None,
        "quarantined": None,
        "matched": None,
        "published": None,
        "errors": None,
        "error_text": None,
        "details": None,
    }
    with _tx(bind) as conn:
        _upsert(conn, s.pipeline_runs, [row], ["run_id", "source_id", "stage"])
    return now


def finish_stage(
    bind: Bind,
    run_id: str,
    source_id: str,
    stage: str,
    status: str,
    *,
    records_in: int | None = None,
    records_out: int | None = None,
    quarantined: int | None = None,
    matched: int | None = None,
    published: int | None = None,
    errors: int | None = None,
    error_text: str | None = None,
    details: Mapping[str, Any] | None = None,
    now: datetime | None = None,
) -> None:
    """Close a stage with its status and counts (counts left ``None`` keep their stored value)."""
    _check(status, s.RUN_STATUSES, "stage status")
    now = now or vn_now()
    counts = {
        "records_in": records_in,
        "records_out": records_out,
        "quarantined": quarantined,
        "matched": matched,
        "published": published,
        "errors": errors,
    }
    row: dict[str, Any] = {
        "run_id": run_id,
        "source_id": source_id,
        "stage": stage,
        "started_at": now,  # only used when start_stage was never called
        "finished_at": now,
        "status": status,
        "error_text": _clean_text(error_text),
        "details": dict(details) if details is not None else None,
        **counts,
    }
    update = ["finished_at", "status", "error_text"]
    update += [k for k, v in counts.items() if v is not None]
    if details is not None:
        update.append("details")
    with _tx(bind) as conn:
        _upsert(conn, s.pipeline_runs, [row], ["run_id", "source_id", "stage"], update=update)


def runs_without_stage(bind: Bind, source_id: str, *, after: str, missing: str, besides: str) -> list[str]:
    """The runs of a source whose stage ``after`` succeeded but whose stage ``missing`` never did
    (it failed, or the run died before it), other than ``besides`` (ordered by run id): what a
    later run must take over. Usually none."""
    t = s.pipeline_runs
    ok = t.c.status == "success"
    done = sa.select(t.c.run_id).where(t.c.source_id == source_id, t.c.stage == missing, ok)
    q = (
        sa.select(t.c.run_id)
        .where(
            t.c.source_id == source_id,
            t.c.stage == after,
            ok,
            t.c.run_id != besides,
            t.c.run_id.not_in(done),
        )
        .order_by(t.c.run_id)
    )
    with _tx(bind) as conn:
        return list(conn.execute(q).scalars())


def run_summary(bind: Bind, run_id: str) -> list[dict[str, Any]]:
    """Stages of one run per source (``sql/run_summary.sql``), with ``duration_s``."""
    t = s.pipeline_runs
    stmt = load_sql("run_summary").columns(
        t.c.source_id,
        t.c.stage,
        t.c.status,
        t.c.started_at,
        t.c.finished_at,
        t.c.records_in,
        t.c.records_out,
        t.c.quarantined,
        t.c.matched,
        t.c.published,
        t.c.errors,
        t.c.error_text,
    )
    with _tx(bind) as conn:
        rows = [dict(m) for m in conn.execute(stmt, {"run_id": run_id}).mappings()]
    for r in rows:
        fin, st = r["finished_at"], r["started_at"]
        r["duration_s"] = (fin - st).total_seconds() if fin and st else None
    return rows


# ---- validation and quarantine -----------------------------------------------------------------


def save_validation(
    bind: Bind,
    run_id: str,
    source_id: str,
    suite: str,
    rule_rows: Iterable[Mapping[str, Any]],
    issue_rows: Iterable[Mapping[str, Any]],
    *,
    now: datetime | None = None,
) -> tuple[int, int]:
    """Replace the results of (run, source, suite): per-rule counts and per-record rule hits."""
    now = now or vn_now()
    rules: dict[str, dict[str, Any]] = {}
    for r in rule_rows:
        evaluated, failed = int(r["evaluated"]), int(r["failed"])
        success = r.get("success")
        rules[str(r["rule_id"])] = {
            "run_id": run_id,
            "source_id": source_id,
            "suite": suite,
            "rule_id": str(r["rule_id"]),
            "severity": str(r["severity"]),
            "evaluated": evaluated,
            "failed": failed,
            "success": bool(failed == 0 if success is None else success),
            "created_at": now,
        }
    issues: dict[tuple[str, str], dict[str, Any]] = {}
    for i in issue_rows:
        code, rule = str(i["dossier_code"]), str(i["rule_id"])
        issues[(code, rule)] = {
            "run_id": run_id,
            "source_id": source_id,
            "suite": suite,
            "dossier_code": code,
            "rule_id": rule,
            "severity": str(i["severity"]),
            "created_at": now,
        }
    vr, di = s.validation_results, s.dossier_issues
    with _tx(bind) as conn:
        for t in (vr, di):
            conn.execute(
                sa.delete(t).where(t.c.run_id == run_id, t.c.source_id == source_id, t.c.suite == suite)
            )
        for t, rows in ((vr, list(rules.values())), (di, list(issues.values()))):
            if bulk.usable(conn, len(rows)):
                bulk.copy_upsert(conn, t, rows, [], do_nothing=True)
                continue
            for chunk in _chunks(rows, WRITE_CHUNK):
                conn.execute(sa.insert(t), list(chunk))
    return len(rules), len(issues)


def set_quality_status(bind: Bind, source_id: str, statuses: Mapping[str, str]) -> int:
    """Set ``dossiers.quality_status`` per code; returns the number of rows updated."""
    by_status: dict[str, list[str]] = {}
    for code, st in statuses.items():
        by_status.setdefault(_check(st, s.QUALITY_STATUSES, "quality_status"), []).append(code)
    t = s.dossiers
    n = 0
    with _tx(bind) as conn:
        for st, codes in by_status.items():
            for member in _members(conn, t.c.dossier_code, codes):
                n += conn.execute(
                    sa.update(t).where(t.c.source_id == source_id, member).values(quality_status=st)
                ).rowcount
    # a first night moves every dossier from 'pending': without fresh statistics PostgreSQL takes
    # the publish stage's "validated and not yet published" for a handful of rows (nested loops)
    bulk.note_changed(t.name, n)
    return n


def hold(
    bind: Bind,
    source_id: str,
    code_to_reasons: Mapping[str, Iterable[str]],
    content_hashes: Mapping[str, str | None] | None,
    run_id: str,
    *,
    now: datetime | None = None,
) -> int:
    """Hold records in quarantine with their rule ids; returns how many were held."""
    now = now or vn_now()
    hashes = content_hashes or {}
    rows = [
        {
            "source_id": source_id,
            "dossier_code": code,
            "content_hash": hashes.get(code),
            "reasons": sorted(set(reasons)),
            "status": "held",
            "first_run_id": run_id,
            "last_run_id": run_id,
            "held_at": now,
            "released_at": None,
            "released_run_id": None,
        }
        for code, reasons in code_to_reasons.items()
    ]
    if not rows:
        return 0
    q = s.quarantine
    was_released = q.c.status == "released"

    def restart_if_released(excluded: Any) -> dict[str, Any]:
        return {
            "first_run_id": sa.case((was_released, excluded.first_run_id), else_=q.c.first_run_id),
            "held_at": sa.case((was_released, excluded.held_at), else_=q.c.held_at),
        }

    with _tx(bind) as conn:
        _upsert(
            conn,
            q,
            rows,
            ["source_id", "dossier_code"],
            update=["content_hash", "reasons", "status", "last_run_id", "released_at", "released_run_id"],
            extra_set=restart_if_released,
        )
        set_quality_status(conn, source_id, {r["dossier_code"]: "quarantined" for r in rows})
    bulk.note_changed(q.name, len(rows))
    return len(rows)


def release(
    bind: Bind,
    source_id: str,
    codes: Iterable[str],
    run_id: str,
    *,
    now: datetime | None = None,
    quality_status: str | None = None,
) -> int:
    """Release held records; returns how many were held and are now released."""
    now = now or vn_now()
    codes = list(dict.fromkeys(codes))
    q = s.quarantine
    n = 0
    with _tx(bind) as conn:
        for member in _members(conn, q.c.dossier_code, codes):
            n += conn.execute(
                sa.update(q)
                .where(q.c.source_id == source_id, member, q.c.status == "held")
                .values(status="released", released_at=now, released_run_id=run_id)
            ).rowcount
        if quality_status is not None:
            set_quality_status(conn, source_id, dict.fromkeys(codes, quality_status))
    return n


def codes_where(bind: Bind, table: sa.Table, source_id: str, column: str, values: Iterable[str]) -> set[str]:
    """Dossier codes of a source whose ``column`` (of ``dossiers``, ``publish_state``,
    ``citizen_matches``…) is one of ``values``: a code list where a whole-source read of every
    column is not needed (the indicators stage, every night)."""
    q = sa.select(table.c.dossier_code).where(
        table.c.source_id == source_id, table.c[column].in_(list(values))
    )
    with _tx(bind) as conn:
        return set(conn.execute(q).scalars())


def agencies_where(
    bind: Bind,
    source_id: str,
    *,
    codes: Iterable[str] | None = None,
    quality_statuses: Iterable[str] | None = None,
) -> dict[str, str | None]:
    """Agency code per dossier code of a source's dossiers (optionally only the given codes, or
    those in the given quality statuses): one narrow read, no dossier payloads (the publish
    stage's read-back takes the publishable set with its agencies, its progress calls the
    agencies of some codes)."""
    t = s.dossiers
    q = sa.select(t.c.dossier_code, t.c.agency_code).where(t.c.source_id == source_id)
    if quality_statuses is not None:
        q = q.where(t.c.quality_status.in_(list(quality_statuses)))
    with _tx(bind) as conn:
        return dict(_tuples_in_chunks(conn, q, t.c.dossier_code, codes))  # type: ignore[arg-type]


def held_codes(bind: Bind, source_id: str) -> set[str]:
    q = s.quarantine
    with _tx(bind) as conn:
        return set(
            conn.execute(
                sa.select(q.c.dossier_code).where(q.c.source_id == source_id, q.c.status == "held")
            ).scalars()
        )


def quarantine_entries(bind: Bind, source_id: str, status: str | None = None) -> list[dict[str, Any]]:
    q = s.quarantine
    stmt = sa.select(q).where(q.c.source_id == source_id).order_by(q.c.dossier_code)
    if status is not None:
        stmt = stmt.where(q.c.status == _check(status, s.QUARANTINE_STATUSES, "quarantine status"))
    with _tx(bind) as conn:
        return [dict(m) for m in conn.execute(stmt).mappings()]


def quality_by_agency(bind: Bind, source_id: str | None = None) -> list[dict[str, Any]]:
    """Quality and publishing counts per source and agency (``sql/quality_by_agency.sql``)."""
    counts = ("dossiers", "valid", "warning", "quarantined", "pending", "published_current", "publish_failed")
    stmt = load_sql("quality_by_agency").columns(
        sa.column("source_id", sa.String),
        sa.column("agency_code", sa.String),
        *(sa.column(c, sa.Integer) for c in counts),
    )
    with _tx(bind) as conn:
        rows = [dict(m) for m in conn.execute(stmt, {"source_id": source_id}).mappings()]
    for r in rows:  # SUM over no rows is NULL; PostgreSQL's bigint sums arrive as int already
        for c in counts:
            r[c] = int(r[c] or 0)
    return rows


def issues_by_rule(bind: Bind, run_id: str) -> list[dict[str, Any]]:
    """Per source, suite and rule: evaluated / failed counts of one run (``sql/issues_by_rule.sql``)."""
    v = s.validation_results
    stmt = load_sql("issues_by_rule").columns(
        v.c.source_id, v.c.suite, v.c.rule_id, v.c.severity, v.c.evaluated, v.c.failed, v.c.success
    )
    with _tx(bind) as conn:
        return [dict(m) for m in conn.execute(stmt, {"run_id": run_id}).mappings()]


# ---- citizen reconciliation ------------------------------------------------------------------------


def _assert_hashed(id_hash: str | None) -> None:
    # A bare 9/12-digit value is an ID number, not tthc.privacy.key_hash output: refuse it.
    if id_hash is not None and id_hash.isdigit() and len(id_hash) in (9, 12):
        raise ValueError("id_hash looks like a raw ID number; store tthc.privacy.key_hash(...) instead")


_MATCH_COLS = (
    "source_id",
    "dossier_code",
    "id_hash",
    "match_class",
    "name_score",
    "birth_date_ok",
    "checked_at",
    "run_id",
    "request_id",
)


def save_matches(bind: Bind, rows: Iterable[Mapping[str, Any]], *, now: datetime | None = None) -> int:
    """Upsert reconciliation outcomes per dossier (only the known columns are kept)."""
    now = now or vn_now()
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for r in rows:
        _assert_hashed(r.get("id_hash"))
        row = {c: r.get(c) for c in _MATCH_COLS}
        row["checked_at"] = row["checked_at"] or now
        if row["birth_date_ok"] is not None:
            row["birth_date_ok"] = bool(row["birth_date_ok"])
        out[(row["source_id"], row["dossier_code"])] = row
    with _tx(bind) as conn:
        return _upsert(conn, s.citizen_matches, list(out.values()), ["source_id", "dossier_code"])


def load_matches(bind: Bind, source_id: str, codes: Iterable[str] | None = None) -> dict[str, dict[str, Any]]:
    t = s.citizen_matches
    q = sa.select(t).where(t.c.source_id == source_id)
    with _tx(bind) as conn:
        return {m["dossier_code"]: dict(m) for m in _in_chunks(conn, q, t.c.dossier_code, codes)}


def cache_get(bind: Bind, id_hashes: Iterable[str], now: datetime | None = None) -> dict[str, Any]:
    """Unexpired cached registry answers by id_hash (``CACHE_NOT_FOUND`` for a known miss)."""
    now = now or vn_now()
    t = s.lookup_cache
    q = sa.select(t.c.id_hash, t.c.result).where(t.c.expires_at > now)
    with _tx(bind) as conn:
        return {m["id_hash"]: m["result"] for m in _in_chunks(conn, q, t.c.id_hash, id_hashes)}


def cache_put(
    bind: Bind,
    rows: Iterable[Mapping[str, Any]] | Mapping[str, Any],
    ttl: timedelta,
    *,
    now: datetime | None = None,
) -> int:
    """Store registry answers for ``ttl`` (from each row's ``fetched_at``, default now)."""
    now = now or vn_now()
    if isinstance(rows, Mapping):
        items: Iterable[Mapping[str, Any]] = [{"id_hash": k, "result": v} for k, v in rows.items()]
    else:
        items = rows
    out: dict[str, dict[str, Any]] = {}
    for r in items:
        _assert_hashed(r["id_hash"])
        fetched = r.get("fetched_at") or now
        result = r["result"]
        out[r["id_hash"]] = {
            "id_hash": r["id_hash"],
            "result": CACHE_NOT_FOUND if result is None else result,
            "fetched_at": fetched,
            "expires_at": fetched + ttl,
        }
    with _tx(bind) as conn:
        return _upsert(conn, s.lookup_cache, list(out.values()), ["id_hash"])


def cache_purge(bind: Bind, now: datetime | None = None) -> int:
    t = s.lookup_cache
    with _tx(bind) as conn:
        return conn.execute(sa.delete(t).where(t.c.expires_at <= (now or vn_now()))).rowcount


_AUDIT_COLS = (
    "request_id",
    "kind",
    "requested_at",
    "officer",
    "service_code",
    "integration_code",
    "purpose",
    "run_id",
    "source_id",
    "count",
    "status",
)


def audit_lookup(bind: Bind, row: Mapping[str, Any], *, now: datetime | None = None) -> str:
    """Record (or update the status of) one population-database request: who, when, why, how many.

    Free-text fields are scrubbed of digit runs; numbers and names of citizens never belong here.
    """
    rec = {c: row.get(c) for c in _AUDIT_COLS}
    if not rec["request_id"]:
        raise ValueError("audit_lookup needs a request_id")
    _check(rec["kind"], s.LOOKUP_KINDS, "lookup kind")
    if not rec["status"]:
        raise ValueError("audit_lookup needs a status")
    rec["requested_at"] = rec["requested_at"] or now or vn_now()
    rec["count"] = int(rec["count"] if rec["count"] is not None else 1)
    rec["officer"] = _clean_text(rec["officer"], 128)
    rec["purpose"] = _clean_text(rec["purpose"])
    with _tx(bind) as conn:
        # A later call for the same request only moves status / count forward.
        _upsert(conn, s.lookup_audit, [rec], ["request_id"], update=["status", "count"])
    return rec["request_id"]


# ---- publishing ----------------------------------------------------------------------------------------


def publish_candidates(bind: Bind, source_id: str) -> list[Dossier]:
    """Validated, not held, and not yet published in their current content (ordered by code):
    the rows of ``sql/publish_candidates.sql``, one read of the source.

    Joining the candidates' codes back to ``dossiers`` read every row of the source twice, the
    wide ones included, however few were candidates; loading them by primary key instead costs
    an index probe per dossier on a first night, when every dossier is a candidate. On a
    200,000-dossier warehouse (4 sources): after a quiet night, 1.0-1.2 s for the join, 0.6-0.9 s
    for either other way; a source's first night (48,000 candidates), 2.4-2.5 s for the join,
    2.3-2.6 s by primary key, 2.0-2.1 s in one read.
    """
    stmt = load_sql("publish_candidates").columns(**{c.name: c.type for c in s.dossiers.c})
    with _tx(bind) as conn:
        out = [_to_dossier(m) for m in conn.execute(stmt, {"source_id": source_id}).mappings()]
    out.sort(key=lambda d: d.dossier_code or "")
    return out


def _publish_key(r: Dossier | Mapping[str, Any]) -> tuple[str, str]:
    if isinstance(r, Dossier):
        return r.source_id, r.dossier_code  # type: ignore[return-value]
    return r["source_id"], r["dossier_code"]


def mark_published(
    bind: Bind, rows: Iterable[Dossier | Mapping[str, Any]], *, now: datetime | None = None
) -> int:
    """Record successful publications (resets the failure counter). Mapping rows may also carry
    ``published_version`` and ``payload_hash`` (all of them or none): what
    :func:`set_published_versions` records, written by the same statement."""
    now = now or vn_now()
    rows = list(rows)
    carrying = sum(1 for r in rows if not isinstance(r, Dossier) and "published_version" in r)
    if carrying not in (0, len(rows)):  # one statement: every row sets the same columns
        raise ValueError("mark_published: published_version and payload_hash on all rows or none")
    with_versions = carrying > 0
    objs = [r for r in rows if isinstance(r, Dossier)]
    hashes = {id(d): h for d, (_, _, h) in zip(objs, prepare_dossiers(objs), strict=True)}
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for r in rows:
        src, code = _publish_key(r)
        if isinstance(r, Dossier):
            h, at = hashes[id(r)], now
        else:
            h = r.get("published_hash") or r["content_hash"]
            at = r.get("published_at") or now
        out[(src, code)] = {
            "source_id": src,
            "dossier_code": code,
            "published_hash": h,
            "published_at": at,
            "attempts": 0,
            "last_error": None,
            "last_attempt_at": at,
            "status": "published",
        }
        if with_versions and not isinstance(r, Dossier):  # what the portal now holds, same write
            out[(src, code)]["published_version"] = r["published_version"]
            out[(src, code)]["payload_hash"] = r["payload_hash"]
    with _tx(bind) as conn:
        return _upsert(conn, s.publish_state, list(out.values()), ["source_id", "dossier_code"])


def mark_publish_failed(
    bind: Bind, rows: Iterable[Dossier | Mapping[str, Any]], *, now: datetime | None = None
) -> int:
    """Record failed publications: ``attempts`` + 1, error kept (scrubbed), published hash kept."""
    now = now or vn_now()
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for r in rows:
        src, code = _publish_key(r)
        err = None if isinstance(r, Dossier) else r.get("error") or r.get("last_error")
        at = now if isinstance(r, Dossier) else r.get("attempted_at") or now
        out[(src, code)] = {
            "source_id": src,
            "dossier_code": code,
            "published_hash": None,
            "published_at": None,
            "attempts": 1,
            "last_error": _clean_text(err),
            "last_attempt_at": at,
            "status": "failed",
        }
    p = s.publish_state
    with _tx(bind) as conn:
        return _upsert(
            conn,
            p,
            list(out.values()),
            ["source_id", "dossier_code"],
            update=["last_error", "last_attempt_at", "status"],
            extra_set=lambda excluded: {"attempts": p.c.attempts + 1},
        )


def publish_states(
    bind: Bind,
    source_id: str,
    codes: Iterable[str] | None = None,
    *,
    failing_since: int | None = None,
) -> dict[str, dict[str, Any]]:
    """Publish state per dossier code; ``failing_since=n``: only dossiers whose last ``n`` or more
    attempts failed."""
    p = s.publish_state
    q = sa.select(p).where(p.c.source_id == source_id)
    if failing_since is not None:
        q = q.where(p.c.status == "failed", p.c.attempts >= failing_since)
    with _tx(bind) as conn:
        return {m["dossier_code"]: dict(m) for m in _in_chunks(conn, q, p.c.dossier_code, codes)}


def outbox_key(source_id: str, dossier_code: str, kind: str, content_hash: str) -> str:
    """Deterministic key: the same content of the same dossier is queued once per kind."""
    raw = "\x1f".join((source_id, dossier_code, kind, content_hash))
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def outbox_new_fields(now: datetime) -> dict[str, Any]:
    """The columns :func:`outbox_put` gives a message it adds: pending, never tried, created and
    updated at ``now`` (what a caller holding the rows it queued needs to know them as stored)."""
    return {"status": "pending", "attempts": 0, "last_error": None, "created_at": now, "updated_at": now}


def outbox_put(bind: Bind, rows: Iterable[Mapping[str, Any]], *, now: datetime | None = None) -> int:
    """Queue messages (``source_id, dossier_code, kind, content_hash[, payload, dossier_version,
    outbox_key]``); returns new ones.

    A ``dossier`` message must come without a payload (None): the outbox keeps no copy of the
    portal record and its personal data; the payload is derived from the dossier's version in
    ``dossier_history`` (:func:`load_versions`) and checked against ``content_hash``. A
    ``progress`` message carries its entry."""
    new = outbox_new_fields(now or vn_now())
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        kind = _check(r["kind"], s.OUTBOX_KINDS, "outbox kind")
        payload = r.get("payload")
        if kind == "dossier" and payload is not None:
            raise ValueError("outbox_put: dossier messages are stored without a payload")
        if kind != "dossier" and payload is None:
            raise ValueError(f"outbox_put: a {kind} message needs its payload")
        key = r.get("outbox_key") or outbox_key(r["source_id"], r["dossier_code"], kind, r["content_hash"])
        out[key] = {
            "outbox_key": key,
            "source_id": r["source_id"],
            "dossier_code": r["dossier_code"],
            "kind": kind,
            "content_hash": r["content_hash"],
            "payload": payload,
            **new,
            "dossier_version": r.get("dossier_version"),
        }
    if not out:
        return 0
    o = s.publish_outbox
    n = 0
    with _tx(bind) as conn:
        if bulk.usable(conn, len(out)):
            # the publish stage queues keys it has just read as not stored: COPYed straight, merged
            # only if one is stored after all
            return bulk.copy_insert_expected_new(conn, o, list(out.values()), ["outbox_key"])
        stmt = (
            _insert(conn, o).on_conflict_do_nothing(index_elements=["outbox_key"]).returning(o.c.outbox_key)
        )
        for chunk in _chunks(list(out.values()), WRITE_CHUNK):
            n += len(conn.execute(stmt, list(chunk)).all())
    return n


def outbox_pending(
    bind: Bind,
    source_id: str | None = None,
    *,
    kinds: Iterable[str] | None = None,
    statuses: Iterable[str] = ("pending", "failed"),
    max_attempts: int | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Messages still to send, oldest first."""
    o = s.publish_outbox
    q = sa.select(o).where(o.c.status.in_(list(statuses)))
    if source_id is not None:
        q = q.where(o.c.source_id == source_id)
    if kinds is not None:
        q = q.where(o.c.kind.in_(list(kinds)))
    if max_attempts is not None:
        q = q.where(o.c.attempts < max_attempts)
    q = q.order_by(o.c.created_at, o.c.outbox_key)
    if limit is not None:
        q = q.limit(limit)
    with _tx(bind) as conn:
        return [dict(m) for m in conn.execute(q).mappings()]


def outbox_mark(
    bind: Bind,
    keys: Iterable[str],
    status: str,
    *,
    error: str | None = None,
    now: datetime | None = None,
) -> int:
    """Move messages to ``status``; 'sent' and 'failed' count as a delivery attempt."""
    _check(status, s.OUTBOX_STATUSES, "outbox status")
    now = now or vn_now()
    o = s.publish_outbox
    values: dict[str, Any] = {"status": status, "updated_at": now}
    if status in ("sent", "failed"):
        values["attempts"] = o.c.attempts + 1
    if status == "failed":
        values["last_error"] = _clean_text(error)
    return _outbox_set(bind, keys, values)


def _outbox_set(bind: Bind, keys: Iterable[str], values: Mapping[str, Any]) -> int:
    """``UPDATE publish_outbox SET values`` for ``keys`` (chunked); the rows count towards the
    table's next ANALYZE (statuses move in bulk: see :func:`set_quality_status`)."""
    o = s.publish_outbox
    n = 0
    with _tx(bind) as conn:
        for member in _members(conn, o.c.outbox_key, keys):
            n += conn.execute(sa.update(o).where(member).values(**values)).rowcount
    bulk.note_changed(o.name, n)
    return n


# ---- publishing: outbox and publish-state helpers of tthc.pipeline.publish ---------------------------


def load_histories(
    bind: Bind, source_id: str, codes: Iterable[str] | None = None
) -> dict[str, list[dict[str, Any]]]:
    """:func:`load_history` for many dossiers at once: ``{code: [version rows, oldest first]}``."""
    h = s.dossier_history
    q = sa.select(h).where(h.c.source_id == source_id)
    out: dict[str, list[dict[str, Any]]] = {}
    with _tx(bind) as conn:
        for m in _in_chunks(conn, q, h.c.dossier_code, codes):
            row = {k: m[k] for k in ("version", "content_hash", "updated_at", "run_id", "loaded_at")}
            row["dossier"] = _history_dossier(m)
            out.setdefault(m["dossier_code"], []).append(row)
    for rows in out.values():
        rows.sort(key=lambda r: r["version"])
    return out


@dataclass(frozen=True, slots=True)
class VersionStatus:
    """One stored version as the progress entries see it (:func:`load_status_versions`)."""

    status: Any  # tthc.progress.StatusVersion
    content_hash: str


def load_status_versions(
    bind: Bind, source_id: str, codes: Iterable[str] | None = None
) -> dict[str, list[VersionStatus]]:
    """Per dossier, every stored version's ``tthc.progress.StatusVersion`` (status and dates) and
    content hash, oldest first: what :func:`tthc.progress.progress_entries` derives entries from.
    Equal to ``StatusVersion.from_history`` of :func:`load_histories`' rows (tested), without
    building each version's whole dossier (a night's first publish reads every version)."""
    from tthc.progress import StatusVersion

    h = s.dossier_history
    q = sa.select(
        h.c.dossier_code, h.c.version, h.c.content_hash, h.c.updated_at, h.c.loaded_at, h.c.payload
    ).where(h.c.source_id == source_id)
    out: dict[str, list[VersionStatus]] = {}
    with _tx(bind) as conn:
        for code, version, content_hash, updated_at, loaded_at, p in _tuples_in_chunks(
            conn, q, h.c.dossier_code, codes
        ):
            sv = StatusVersion(
                version=int(version),
                status=p.get("status"),
                updated_at=updated_at,
                loaded_at=loaded_at,
                received_at=_dt(p.get("received_at")),
                due_at=_dt(p.get("due_at")),
                finished_at=_dt(p.get("finished_at")),
                returned_at=_dt(p.get("returned_at")),
            )
            out.setdefault(code, []).append(VersionStatus(sv, content_hash))
    for rows in out.values():
        rows.sort(key=lambda r: r.status.version)
    return out


def load_versions(bind: Bind, source_id: str, versions: Mapping[str, int]) -> dict[str, Dossier]:
    """Given versions of some dossiers (``{code: version}``, from ``dossier_history``) as
    :class:`Dossier` objects: ``{code: dossier}``; a version not stored is left out.

    Reads just those rows (one query per distinct version and chunk of codes, on the unique key
    ``(source_id, dossier_code, version)``), not the dossiers' whole histories: what the publish
    stage derives the payload of an outbox message, or of the published version, from."""
    h = s.dossier_history
    by_version: dict[int, list[str]] = {}
    for code, version in versions.items():
        by_version.setdefault(int(version), []).append(code)
    out: dict[str, Dossier] = {}
    with _tx(bind) as conn:
        for version, codes in sorted(by_version.items()):
            q = sa.select(h.c.dossier_code, h.c.payload, h.c.updated_at).where(
                h.c.source_id == source_id, h.c.version == version
            )
            for m in _in_chunks(conn, q, h.c.dossier_code, codes):
                out[m["dossier_code"]] = _history_dossier(m)
    return out


def outbox_items(
    bind: Bind,
    source_id: str,
    *,
    codes: Iterable[str] | None = None,
    kinds: Iterable[str] | None = None,
    statuses: Iterable[str] | None = None,
    known_payloads: Mapping[str, Any] | None = None,
    known_rows: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Outbox messages of a source (optionally of some dossiers, kinds, statuses), oldest first.

    A ``dossier`` message's ``payload`` is None (the outbox stores none: the caller derives it
    from the message's ``dossier_version``, see :func:`load_versions`) unless ``known_payloads``
    has it. ``known_payloads`` (``{outbox_key: payload}``, e.g. what the caller has just queued,
    which :func:`outbox_put` never overwrites) saves reading and decoding those payloads again:
    only the other progress messages' payloads are read.

    ``known_rows`` (``{outbox_key: row}``: whole rows as stored, payload as an object, e.g. the
    messages the caller has just queued) go further: of the messages matching, only the key,
    status and ``updated_at`` are read, and a known row whose status and ``updated_at`` are still
    the stored ones is taken as it is (a copy); any other message is read in full."""
    o = s.publish_outbox

    def matching(*cols: Any) -> sa.Select:
        q = sa.select(*cols).where(o.c.source_id == source_id)
        if kinds is not None:
            q = q.where(o.c.kind.in_(list(kinds)))
        if statuses is not None:
            q = q.where(o.c.status.in_(list(statuses)))
        return q

    cols = [c for c in o.c if known_payloads is None or c.name != "payload"]
    with _tx(bind) as conn:
        if known_rows:
            rows, other = [], []
            for key, status, updated_at in _tuples_in_chunks(
                conn, matching(o.c.outbox_key, o.c.status, o.c.updated_at), o.c.dossier_code, codes
            ):
                k = known_rows.get(key)
                if k is not None and k["status"] == status and k["updated_at"] == updated_at:
                    rows.append(dict(k))
                else:
                    other.append(key)
            rows += [dict(m) for m in _in_chunks(conn, sa.select(*cols), o.c.outbox_key, other)]
        else:
            rows = [dict(m) for m in _in_chunks(conn, matching(*cols), o.c.dossier_code, codes)]
        if known_payloads is not None:
            missing = [
                r["outbox_key"]
                for r in rows
                if r["kind"] != "dossier" and r["outbox_key"] not in known_payloads
            ]
            pq = sa.select(o.c.outbox_key, o.c.payload)
            read = {m["outbox_key"]: m["payload"] for m in _in_chunks(conn, pq, o.c.outbox_key, missing)}
            for r in rows:
                key = r["outbox_key"]
                r["payload"] = known_payloads[key] if key in known_payloads else read.get(key)
            # a progress message deleted between the two reads
            rows = [r for r in rows if r["kind"] == "dossier" or r["payload"] is not None]
    rows.sort(key=lambda r: (r["created_at"], r["outbox_key"]))
    return rows


def outbox_keys(bind: Bind, source_id: str, codes: Iterable[str] | None = None) -> set[str]:
    """The keys of a source's outbox messages (optionally of some dossiers): what is queued
    already, without reading the payloads."""
    o = s.publish_outbox
    q = sa.select(o.c.outbox_key).where(o.c.source_id == source_id)
    with _tx(bind) as conn:
        return {m["outbox_key"] for m in _in_chunks(conn, q, o.c.dossier_code, codes)}


def outbox_settle(
    bind: Bind,
    keys: Iterable[str],
    status: str,
    *,
    error: str | None = None,
    now: datetime | None = None,
    count_attempt: bool = False,
) -> int:
    """Set the status of messages *without* counting a delivery attempt (the attempt was counted
    when they were claimed with ``outbox_mark(..., "sent")``; ``count_attempt=True`` for messages
    sent without a claim); ``error`` (scrubbed) is kept for 'failed' and 'sent', cleared for
    'confirmed'."""
    _check(status, s.OUTBOX_STATUSES, "outbox status")
    now = now or vn_now()
    o = s.publish_outbox
    values: dict[str, Any] = {"status": status, "updated_at": now}
    if count_attempt:
        values["attempts"] = o.c.attempts + 1
    if status == "confirmed":
        values["last_error"] = None
    elif error is not None:
        values["last_error"] = _clean_text(error)
    return _outbox_set(bind, keys, values)


def outbox_requeue(bind: Bind, versions: Mapping[str, int | None], *, now: datetime | None = None) -> int:
    """For existing messages (``{outbox_key: dossier_version}``): record the dossier version they now
    stand for, and put a 'confirmed' one back to 'pending' (the same content must be sent again:
    the portal was found to differ, or the dossier came back to content published earlier).
    Returns how many confirmed messages were re-armed."""
    now = now or vn_now()
    o = s.publish_outbox
    if not versions:
        return 0
    with _tx(bind) as conn:
        q = sa.select(o.c.outbox_key).where(o.c.status == "confirmed")
        confirmed = {m["outbox_key"] for m in _in_chunks(conn, q, o.c.outbox_key, list(versions))}
        rearm = [{"k": k, "v": v, "t": now} for k, v in versions.items() if k in confirmed]
        others = [{"k": k, "v": v} for k, v in versions.items() if k not in confirmed]
        by_key = o.c.outbox_key == sa.bindparam("k")
        # two statements run over all keys (executemany), not two round trips per key
        for chunk in _chunks(rearm, WRITE_CHUNK):
            conn.execute(
                sa.update(o)
                .where(by_key)
                .values(status="pending", dossier_version=sa.bindparam("v"), updated_at=sa.bindparam("t")),
                list(chunk),
            )
        for chunk in _chunks(others, WRITE_CHUNK):
            conn.execute(sa.update(o).where(by_key).values(dossier_version=sa.bindparam("v")), list(chunk))
    bulk.note_changed(o.name, len(versions))
    return len(rearm)


def outbox_discard(bind: Bind, keys: Iterable[str]) -> int:
    """Delete messages that must not be sent any more (superseded by a newer version of the same
    dossier, or the dossier is no longer publishable)."""
    o = s.publish_outbox
    n = 0
    with _tx(bind) as conn:
        for member in _members(conn, o.c.outbox_key, keys):
            n += conn.execute(sa.delete(o).where(member)).rowcount
    return n


def set_published_versions(
    bind: Bind, source_id: str, versions: Mapping[str, tuple[int | None, str | None]]
) -> int:
    """Record which version (and payload hash) of each dossier the portal holds:
    ``{code: (published_version, payload_hash)}``. The rows must exist (``mark_published``)."""
    p = s.publish_state
    stmt = (
        sa.update(p)
        .where(p.c.source_id == source_id, p.c.dossier_code == sa.bindparam("k_code"))
        .values(published_version=sa.bindparam("k_version"), payload_hash=sa.bindparam("k_payload"))
    )
    rows = [{"k_code": c, "k_version": v, "k_payload": h} for c, (v, h) in versions.items()]
    if not rows:
        return 0
    with _tx(bind) as conn:
        for chunk in _chunks(rows, WRITE_CHUNK):
            conn.execute(stmt, list(chunk))
    return len(rows)


def clear_publish_failures(
    bind: Bind, source_id: str, codes: Iterable[str], *, now: datetime | None = None
) -> int:
    """Dossiers whose failing part (e.g. a progress entry) went through: 'failed' → 'published'
    with the failure counter reset, for dossiers the portal holds (``published_hash`` kept)."""
    now = now or vn_now()
    p = s.publish_state
    n = 0
    with _tx(bind) as conn:
        for member in _members(conn, p.c.dossier_code, codes):
            n += conn.execute(
                sa.update(p)
                .where(
                    p.c.source_id == source_id,
                    member,
                    p.c.status == "failed",
                    p.c.published_hash.is_not(None),
                )
                .values(status="published", attempts=0, last_error=None, last_attempt_at=now)
            ).rowcount
    return n


def reset_published(
    bind: Bind,
    source_id: str,
    codes: Iterable[str],
    *,
    error: str,
    missing: bool = False,
    now: datetime | None = None,
) -> int:
    """The portal does not hold what we last published (read-back): forget the published hash so
    the dossier is sent again (status 'pending', ``error`` kept). ``missing``: the portal does not
    hold the dossier at all, so the published version is forgotten too."""
    now = now or vn_now()
    p = s.publish_state
    values: dict[str, Any] = {
        "published_hash": None,
        "payload_hash": None,
        "status": "pending",
        "last_error": _clean_text(error),
        "last_attempt_at": now,
    }
    if missing:
        values["published_version"] = None
    n = 0
    with _tx(bind) as conn:
        for member in _members(conn, p.c.dossier_code, codes):
            n += conn.execute(
                sa.update(p).where(p.c.source_id == source_id, member).values(**values)
            ).rowcount
    return n


# ---- indicators ------------------------------------------------------------------------------------------

_INDICATOR_KEY = ("period_type", "period_start", "scope", "scope_code", "indicator_id")


def save_indicators(bind: Bind, rows: Iterable[Mapping[str, Any]], *, now: datetime | None = None) -> int:
    """Upsert indicator values on (period_type, period_start, scope, scope_code, indicator_id)."""
    now = now or vn_now()
    out: dict[tuple[Any, ...], dict[str, Any]] = {}
    for r in rows:
        _check(r["period_type"], s.PERIOD_TYPES, "period_type")
        _check(r["scope"], s.SCOPES, "scope")
        start = r["period_start"]
        if isinstance(start, datetime):
            start = start.date()
        elif isinstance(start, str):
            start = date.fromisoformat(start)
        num = float(r["numerator"])
        den = None if r.get("denominator") is None else float(r["denominator"])
        if "value" in r:
            value = r["value"]
        elif den is None:
            value = num  # a count row
        else:
            value = num / den if den else None
        row = {
            "period_type": r["period_type"],
            "period_start": start,
            "scope": r["scope"],
            "scope_code": str(r["scope_code"]),
            "indicator_id": str(r["indicator_id"]),
            "numerator": num,
            "denominator": den,
            "value": None if value is None else float(value),
            "run_id": r.get("run_id"),
            "computed_at": r.get("computed_at") or now,
        }
        out[tuple(row[k] for k in _INDICATOR_KEY)] = row
    with _tx(bind) as conn:
        return _upsert(conn, s.indicators, list(out.values()), _INDICATOR_KEY)


def load_indicators(
    bind: Bind,
    *,
    period_type: str | None = None,
    period_start: date | None = None,
    scope: str | None = None,
    scope_code: str | None = None,
    indicator_id: str | None = None,
) -> list[dict[str, Any]]:
    t = s.indicators
    q = sa.select(t)
    for col, val in (
        (t.c.period_type, period_type),
        (t.c.period_start, period_start),
        (t.c.scope, scope),
        (t.c.scope_code, scope_code),
        (t.c.indicator_id, indicator_id),
    ):
        if val is not None:
            q = q.where(col == val)
    q = q.order_by(t.c.period_type, t.c.period_start, t.c.scope, t.c.scope_code, t.c.indicator_id)
    with _tx(bind) as conn:
        return [{k: v for k, v in m.items() if k != "id"} for m in conn.execute(q).mappings()]
