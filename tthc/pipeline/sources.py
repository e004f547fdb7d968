"""One reader per dialect: fetch a window of raw records and map them to canonical dossiers.

A reader hides the dialect from the stages: they see raw dicts (stored as pulled, for audit and
re-mapping) and canonical :class:`~tthc.model.Dossier` objects.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tthc.connections import get_connection
from tthc.model import Dossier
from tthc.registry import SourceConfig


@dataclass
class SourceReader:
    fetch: Callable[[datetime, datetime], list[dict[str, Any]]]
    to_dossier: Callable[[dict[str, Any]], Dossier]
    code_of: Callable[[dict[str, Any]], str | None]


def mapper_for(src: SourceConfig) -> tuple[Callable[[dict], Dossier], Callable[[dict], str | None]]:
    if src.dialect == "igate":
        from connectors.igate import to_dossier

        return (lambda r: to_dossier(r, src.source_id)), (lambda r: r.get("code"))
    raise NotImplementedError(f"dialect {src.dialect!r} has no connector yet")


def open_source(src: SourceConfig, *, timeout: float = 30.0) -> SourceReader:
    to_dossier, code_of = mapper_for(src)
    conn = get_connection(src.conn_id)
    if src.dialect == "igate":
        from connectors.igate import IgateClient

        client = IgateClient(
            conn.base_url, client_id=conn.login or "", client_secret=conn.password or "", timeout=timeout
        )
        return SourceReader(lambda a, b: list(client.fetch(a, b)), to_dossier, code_of)
    raise NotImplementedError(f"dialect {src.dialect!r} has no connector yet")
