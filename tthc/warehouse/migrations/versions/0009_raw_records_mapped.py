"""raw_records: the content hash and update time of the dossier each record maps to

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-24

The extract stage maps every record it pulls; it now stores what the mapping gave next to the
record: ``mapped_hash`` (``Dossier.content_hash()``) and ``mapped_updated_at``. The validate stage
then takes a record whose mapping equals the stored current version from ``dossiers`` instead of
decoding and mapping the record again (``tthc.pipeline.validate``). NULL (rows written before this
revision, or a record the extract could not pin exactly): the record is mapped again, as before.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("raw_records") as batch:
        batch.add_column(sa.Column("mapped_hash", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("mapped_updated_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("raw_records") as batch:
        batch.drop_column("mapped_updated_at")
        batch.drop_column("mapped_hash")
