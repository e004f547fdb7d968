"""file_manifest: file-drop files already decided (loaded or rejected), by content hash

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23

A re-exported file (same name, new content) gets a new row; a file whose content was seen is not
read again. Rejected files keep their reason for the stewards.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "file_manifest",
        sa.Column("source_id", sa.String(length=64), nullable=False),
        sa.Column("file_name", sa.String(length=512), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("rows", sa.Integer(), nullable=True),
        sa.Column("encoding", sa.String(length=32), nullable=True),
        sa.Column("run_id", sa.String(length=250), nullable=True),
        sa.Column("processed_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("status IN ('loaded', 'rejected')", name=op.f("ck_file_manifest_status")),
        sa.PrimaryKeyConstraint("source_id", "file_name", "sha256", name=op.f("pk_file_manifest")),
    )


def downgrade() -> None:
    op.drop_table("file_manifest")
