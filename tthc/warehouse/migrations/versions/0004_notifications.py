"""notifications: e-mails sent per (run, source, agency, kind), so a retried task never mails twice

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24

tthc.notify claims a row before sending (``sent_at`` NULL) and confirms it after the SMTP server
accepted the message. Recipients are stored as a hash; nothing says what the mail contained.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "notifications",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("run_id", sa.String(length=250), nullable=False),
        sa.Column("source_id", sa.String(length=64), nullable=False),
        sa.Column("agency_code", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("recipients_hash", sa.String(length=64), nullable=False),
        sa.Column("message_id", sa.String(length=255), nullable=False),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
        sa.UniqueConstraint("run_id", "source_id", "agency_code", "kind", name=op.f("uq_notifications_key")),
    )
    op.create_index(op.f("ix_notifications_sent_at"), "notifications", ["sent_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_notifications_sent_at"), table_name="notifications")
    op.drop_table("notifications")
