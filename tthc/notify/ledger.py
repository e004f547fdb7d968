"""The ``notifications`` table: which e-mails went out, so a retried task never mails twice.

Protocol per e-mail, keyed ``(run_id, source_id, agency_code, kind)``:

1. :func:`claim` inserts the key with ``sent_at`` NULL (``INSERT ... ON CONFLICT DO NOTHING``).
   It answers ``"new"`` (send it), ``"unconfirmed"`` (claimed earlier, never confirmed: the earlier
   attempt died between claiming and confirming; send again, with the same Message-ID) or
   ``"sent"`` (already delivered: skip).
2. The caller sends; after the SMTP server accepted the message :func:`confirm` sets ``sent_at``.

Delivery is therefore at-least-once with a window of one SMTP transaction; concurrent senders of
the same key cannot happen (one active run per DAG, one notify task per run).
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import Literal

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from tthc.timeutil import vn_now
from tthc.warehouse.schema import NOTIFICATION_KINDS, notifications

Bind = Engine | Connection
ClaimState = Literal["new", "unconfirmed", "sent"]
ALL = "*"  # source_id / agency_code of mails spanning sources or agencies


def _key_where(run_id: str, source_id: str, agency_code: str, kind: str) -> sa.ColumnElement[bool]:
    t = notifications
    return sa.and_(
        t.c.run_id == run_id, t.c.source_id == source_id, t.c.agency_code == agency_code, t.c.kind == kind
    )


def _begin(bind: Bind):
    return bind.begin() if isinstance(bind, Engine) else _Joined(bind)


class _Joined:
    """Context manager joining the caller's transaction (the caller commits)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def __enter__(self) -> Connection:
        return self.conn

    def __exit__(self, *exc: object) -> None:
        return None


def claim(
    bind: Bind,
    run_id: str,
    source_id: str,
    agency_code: str,
    kind: str,
    *,
    recipients_hash: str,
    message_id: str,
) -> ClaimState:
    if kind not in NOTIFICATION_KINDS:
        raise ValueError(f"notification kind must be one of {NOTIFICATION_KINDS}, got {kind!r}")
    row = {
        "run_id": run_id,
        "source_id": source_id,
        "agency_code": agency_code,
        "kind": kind,
        "recipients_hash": recipients_hash,
        "message_id": message_id,
        "sent_at": None,
    }
    t = notifications
    with _begin(bind) as conn:
        name = conn.dialect.name
        if name == "postgresql":
            ins = postgresql.insert(t)
        elif name == "sqlite":
            if sqlite3.sqlite_version_info < (3, 35):  # pragma: no cover - old system SQLite
                raise RuntimeError("the warehouse needs SQLite >= 3.35")
            ins = sqlite.insert(t)
        else:  # pragma: no cover - the warehouse supports these two
            raise NotImplementedError(name)
        stmt = ins.on_conflict_do_nothing(index_elements=["run_id", "source_id", "agency_code", "kind"])
        inserted = conn.execute(stmt.returning(t.c.id), [row]).first()
        if inserted is not None:
            return "new"
        sent_at = conn.execute(
            sa.select(t.c.sent_at).where(_key_where(run_id, source_id, agency_code, kind))
        ).scalar_one()
        if sent_at is not None:
            return "sent"
        # The recipients may have changed since the unconfirmed attempt: record who gets it now.
        conn.execute(
            sa.update(t)
            .where(_key_where(run_id, source_id, agency_code, kind))
            .values(recipients_hash=recipients_hash, message_id=message_id)
        )
        return "unconfirmed"


def confirm(
    bind: Bind, run_id: str, source_id: str, agency_code: str, kind: str, *, now: datetime | None = None
) -> None:
    with _begin(bind) as conn:
        conn.execute(
            sa.update(notifications)
            .where(_key_where(run_id, source_id, agency_code, kind))
            .values(sent_at=now or vn_now())
        )


def sent(bind: Bind, run_id: str | None = None) -> list[dict]:
    """Recorded notifications (of one run, or all), oldest first."""
    t = notifications
    q = sa.select(t).order_by(t.c.id)
    if run_id is not None:
        q = q.where(t.c.run_id == run_id)
    with _begin(bind) as conn:
        return [dict(m) for m in conn.execute(q).mappings()]
