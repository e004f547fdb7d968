"""One reader per dialect: fetch a window of raw records and map them to canonical dossiers.

A reader hides the dialect from the stages: they see raw dicts (stored as pulled, for audit and
re-mapping) and canonical :class:`~tthc.model.Dossier` objects. Where a source keeps state of its
own (the file drop's manifest of files already read), ``on_commit`` records it in the same
transaction as the raw records and the watermark, so a failed run leaves no half-recorded state.

Connections (Airflow connection ``conn_id`` of the registry entry):

| dialect | connection fields |
|---|---|
| igate | host/port (or ``extra.base_url``), login = client id, password = secret; ``extra.page_size`` (500) |
| onegate | host/port (or ``extra.base_url``), password = API key |
| sqldb | ``extra.url`` or host/port/schema + ``extra.driver``; login/password; ``extra.view`` |
| filedrop | ``extra.folder`` (the agency's export folder); ``extra.settle_seconds`` |
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection, Engine

from tthc.connections import ConnInfo, get_connection
from tthc.model import Dossier
from tthc.registry import SourceConfig


@dataclass
class SourceReader:
    fetch: Callable[[datetime, datetime], list[dict[str, Any]]]
    to_dossier: Callable[[dict[str, Any]], Dossier]
    code_of: Callable[[dict[str, Any]], str | None]
    #: records source-side state in the extract transaction (file manifest)
    on_commit: Callable[[Connection, str], None] | None = None
    #: counts worth reporting (files loaded / rejected, rows repaired ...)
    stats: dict[str, Any] = field(default_factory=dict)


def _module(dialect: str):
    if dialect == "igate":
        from connectors import igate as m
    elif dialect == "onegate":
        from connectors import onegate as m
    elif dialect == "sqldb":
        from connectors import sqldb as m
    elif dialect == "filedrop":
        from connectors import filedrop as m
    else:  # the registry's Literal makes this unreachable for a validated entry
        raise ValueError(f"unknown dialect {dialect!r}")
    return m


def mapper_for(src: SourceConfig) -> tuple[Callable[[dict], Dossier], Callable[[dict], str | None]]:
    m = _module(src.dialect)
    sid = src.source_id
    # the SQL reader repairs text as it fetches: its rows (and their raw copies) need no second pass
    mapper = m.to_dossier_fetched if src.dialect == "sqldb" else m.to_dossier
    return (lambda r: mapper(r, sid)), m.code_of


def open_source(
    src: SourceConfig, *, timeout: float = 30.0, engine: Engine | None = None, run_id: str | None = None
) -> SourceReader:
    to_dossier, code_of = mapper_for(src)
    conn = get_connection(src.conn_id)
    if src.dialect == "igate":
        from connectors.igate import IgateClient

        client = IgateClient(
            conn.base_url,
            client_id=conn.login or "",
            client_secret=conn.password or "",
            timeout=timeout,
            # the connection's extra can lower the page size (a server that caps it, or a test)
            page_size=int(conn.extra.get("page_size") or 500),
        )
        return SourceReader(lambda a, b: list(client.fetch(a, b)), to_dossier, code_of)
    if src.dialect == "onegate":
        from connectors.onegate import OnegateClient

        og = OnegateClient(conn.base_url, api_key=conn.password or "", timeout=timeout)
        return SourceReader(lambda a, b: og.fetch(a, b), to_dossier, code_of)
    if src.dialect == "sqldb":
        from connectors.sqldb import SqlDbClient

        db = SqlDbClient(
            _sql_url(conn),
            username=conn.login,
            password=conn.password,
            view=conn.extra.get("view", "ho_so_tthc"),
        )
        stats: dict[str, Any] = {}

        def fetch(a: datetime, b: datetime) -> list[dict[str, Any]]:
            rows = db.fetch(a, b)
            stats["text_repaired"] = db.last_stats.repaired_total
            return rows

        return SourceReader(fetch, to_dossier, code_of, stats=stats)
    if src.dialect == "filedrop":
        return _filedrop_reader(src, conn, engine, to_dossier, code_of)
    raise ValueError(f"unknown dialect {src.dialect!r}")


def _sql_url(conn: ConnInfo) -> str:
    if conn.extra.get("url"):
        return str(conn.extra["url"])
    from sqlalchemy import URL

    return URL.create(
        conn.extra.get("driver", "mysql+pymysql"),
        host=conn.host,
        port=conn.port,
        database=conn.schema,
    ).render_as_string(hide_password=False)


def _filedrop_reader(src, conn: ConnInfo, engine, to_dossier, code_of) -> SourceReader:
    """The file drop ignores the time window: what is new is what the manifest has not seen."""
    import sqlalchemy as sa

    from connectors.filedrop import scan
    from tthc.timeutil import vn_now
    from tthc.warehouse.schema import file_manifest as fm

    folder = conn.extra.get("folder") or conn.extra.get("path")
    if not folder:
        raise ValueError(f"connection {conn.conn_id}: extra.folder is required for a file-drop source")
    settle = float(conn.extra.get("settle_seconds", 300))
    state: dict[str, Any] = {}
    reader = SourceReader(lambda a, b: [], to_dossier, code_of)

    def fetch(_start: datetime, end: datetime) -> list[dict[str, Any]]:
        with engine.connect() as c:
            seen = {
                (n, h)
                for n, h in c.execute(
                    sa.select(fm.c.file_name, fm.c.sha256).where(fm.c.source_id == src.source_id)
                )
            }
        # files must have settled by the end of the run's window (a nightly run at 01:00 reads what
        # was complete by then; a file still being written is read next night)
        batch = scan(folder, seen, now=end, settle_seconds=settle)
        state["batch"] = batch
        for status in ("loaded", "rejected", "unchanged", "skipped"):
            reader.stats[f"files_{status}"] = len(batch.by_status(status))
        state["at"] = vn_now()
        return batch.records

    def on_commit(conn_: Connection, run_id: str) -> None:
        batch = state.get("batch")
        if batch is None:
            return
        rows = [
            {
                "source_id": src.source_id,
                "file_name": f.name,
                "sha256": f.sha256,
                "status": f.status,
                "reason": f.reason,
                "rows": f.rows,
                "encoding": f.encoding,
                "run_id": run_id,
                "processed_at": state["at"],
            }
            for f in batch.files
            if f.status in ("loaded", "rejected") and f.sha256
        ]
        if rows:
            conn_.execute(sa.insert(fm), rows)

    reader.fetch = fetch
    reader.on_commit = on_commit
    return reader
