"""dossiers: an index on (coalesce(received_at, updated_at), source_id)

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-24

The indicator stage (``repo.indicator_aggregates``) counts one source's dossiers whose receipt time,
or else update time, falls in the night's periods. Without an index on that expression PostgreSQL
guessed a few dozen rows where there were tens of thousands, joined the stored judgements,
publication states and matches row by row, and scanned every source's dossiers to find one
source's: 457 ms for a 45,000-dossier source of a 200,000-dossier warehouse. With it (statistics
are collected on an index's expressions) the same statement took 258 ms by hash joins (PostgreSQL
15; bench/bench_nightly.py's warehouse after a 1 % night).

Led by the expression, not by ``source_id``, for the reason of 0008: an index led by
``source_id`` competes with the primary key for the foreign-key check of every ``dossier_history``
row, and a first version led so made a night's load of a source read the whole source per row
(a 50,000-dossier extract still loading after 7 minutes instead of about 20 s).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = "ix_dossiers_reference_time_source_id"


def upgrade() -> None:
    op.create_index(
        NAME, "dossiers", [sa.text("coalesce(received_at, updated_at)"), sa.text("source_id")], unique=False
    )


def downgrade() -> None:
    op.drop_index(NAME, table_name="dossiers")
