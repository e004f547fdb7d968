"""final_judgements: the on-time judgement of dossiers whose outcome can no longer change

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-24

The nightly indicators stage judged every dossier of its period in Python every night, though an
ended dossier's verdict does not change with the clock. It now stores that verdict per dossier
version and judging settings, and counts stored verdicts in SQL (``repo.indicator_aggregates``);
only open or changed dossiers are judged again. Codes only, no personal data.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "final_judgements",
        sa.Column("source_id", sa.String(length=64), nullable=False),
        sa.Column("dossier_code", sa.String(length=128), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("basis", sa.String(length=16), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("ended_at", sa.DateTime(), nullable=True),
        sa.Column("judged_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint(
            "outcome IN ('early', 'on_time', 'overdue', 'withdrawn', 'unjudged')",
            name=op.f("ck_final_judgements_outcome"),
        ),
        sa.PrimaryKeyConstraint("source_id", "dossier_code", name=op.f("pk_final_judgements")),
    )


def downgrade() -> None:
    op.drop_table("final_judgements")
