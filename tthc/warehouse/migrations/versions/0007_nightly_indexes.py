"""raw_records (source_id, run_id, id): the validate stage's read of one source's night

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23

``SELECT payload FROM raw_records WHERE source_id = ? AND run_id = ? ORDER BY id`` ran on the
``run_id`` index and filtered by source: with N sources each validation visited the whole night's
records. Found with the national-volume benchmark (bench/bench_nightly.py).
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        op.f("ix_raw_records_source_id_run_id_id"), "raw_records", ["source_id", "run_id", "id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_raw_records_source_id_run_id_id"), table_name="raw_records")
