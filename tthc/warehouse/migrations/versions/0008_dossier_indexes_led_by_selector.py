"""dossiers: secondary indexes led by run id and quality status, not by source id

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24

``(source_id, last_run_id)`` and ``(source_id, quality_status)`` competed with the primary key
``(source_id, dossier_code)`` for lookups of one dossier. Once the planner's statistics know some
sources but not the one being loaded (autovacuum analysed the table after the first sources of a
night, or ``run_stage`` did), it estimates one row for the new source and may take either index:
the foreign-key check of every ``dossier_history`` row inserted then read the whole source through
``(source_id, last_run_id)``. Seen as slow extracts in bench/bench_nightly.py; reproduced with
``repo.upsert_dossiers`` on PostgreSQL 15: 25,000 dossiers of a second source loaded in 43 s
instead of 3 s. Led by the other column, the two indexes
serve the same queries (both columns are compared for equality) and leave the primary key as the
only index for a (source, code) lookup.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_dossiers_source_id_last_run_id", table_name="dossiers")
    op.drop_index("ix_dossiers_source_id_quality_status", table_name="dossiers")
    op.create_index("ix_dossiers_last_run_id_source_id", "dossiers", ["last_run_id", "source_id"])
    op.create_index("ix_dossiers_quality_status_source_id", "dossiers", ["quality_status", "source_id"])


def downgrade() -> None:
    op.drop_index("ix_dossiers_quality_status_source_id", table_name="dossiers")
    op.drop_index("ix_dossiers_last_run_id_source_id", table_name="dossiers")
    op.create_index("ix_dossiers_source_id_quality_status", "dossiers", ["source_id", "quality_status"])
    op.create_index("ix_dossiers_source_id_last_run_id", "dossiers", ["source_id", "last_run_id"])
