"""dossier_outcomes: per-dossier on-time outcome per day / month / quarter / year (tthc.kpi)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24

The province-wide indicators judge each dossier with the working-day calendar in Python and store
the outcome here; sql/indicators_aggregate.sql aggregates it per agency and province.
Codes only, no personal data.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "dossier_outcomes",
        sa.Column("period_type", sa.String(length=16), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("source_id", sa.String(length=64), nullable=False),
        sa.Column("dossier_code", sa.String(length=128), nullable=False),
        sa.Column("period_end", sa.Date(), nullable=False),
        sa.Column("agency_code", sa.String(length=128), nullable=True),
        sa.Column("province_code", sa.String(length=128), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=True),
        sa.Column("run_id", sa.String(length=250), nullable=True),
        sa.Column("computed_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint(
            "period_type IN ('day', 'month', 'quarter', 'year')",
            name=op.f("ck_dossier_outcomes_period_type"),
        ),
        sa.CheckConstraint(
            "outcome IN ('early', 'on_time', 'overdue', 'open_in_time', 'open_overdue', 'withdrawn', "
            "'unjudged', 'excluded')",
            name=op.f("ck_dossier_outcomes_outcome"),
        ),
        sa.PrimaryKeyConstraint(
            "period_type", "period_start", "source_id", "dossier_code", name=op.f("pk_dossier_outcomes")
        ),
    )
    op.create_index(
        op.f("ix_dossier_outcomes_period_type_period_start_province_code"),
        "dossier_outcomes",
        ["period_type", "period_start", "province_code"],
    )


def downgrade() -> None:
    op.drop_index(
        op.f("ix_dossier_outcomes_period_type_period_start_province_code"), table_name="dossier_outcomes"
    )
    op.drop_table("dossier_outcomes")
