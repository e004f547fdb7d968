"""indicators: count rows (no denominator), longer indicator ids

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23

``tthc.indicators`` returns count rows (received, resolved, ...) with ``denominator = None`` next
to the ratio rows, and ids such as ``4.2_digitised_components``. SQLite rebuilds the table (batch
mode copies every row); PostgreSQL alters it in place.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("indicators") as batch:
        batch.alter_column("denominator", existing_type=sa.Float(), nullable=True)
        batch.alter_column(
            "indicator_id",
            existing_type=sa.String(length=32),
            type_=sa.String(length=64),
            existing_nullable=False,
        )


def downgrade() -> None:
    # Count rows cannot be represented without a denominator: they are dropped.
    op.execute("DELETE FROM indicators WHERE denominator IS NULL")
    with op.batch_alter_table("indicators") as batch:
        batch.alter_column("denominator", existing_type=sa.Float(), nullable=False)
        batch.alter_column(
            "indicator_id",
            existing_type=sa.String(length=64),
            type_=sa.String(length=32),
            existing_nullable=False,
        )
