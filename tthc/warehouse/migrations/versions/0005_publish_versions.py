"""publishing: last published version and payload hash; the dossier version of an outbox message

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24

``publish_state.published_version`` / ``payload_hash``: which version of the dossier the portal
holds and the hash of the exact payload sent (a new version whose portal payload is unchanged is
not sent again; progress entries of a version wait until that version is on the portal).
``publish_outbox.dossier_version``: the dossier version a message was derived from. Nullable
columns only: existing rows stay valid (NULL = unknown, treated as "not yet published").
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("publish_state", sa.Column("published_version", sa.Integer(), nullable=True))
    op.add_column("publish_state", sa.Column("payload_hash", sa.String(length=64), nullable=True))
    op.add_column("publish_outbox", sa.Column("dossier_version", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("publish_outbox") as batch:
        batch.drop_column("dossier_version")
    with op.batch_alter_table("publish_state") as batch:
        batch.drop_column("payload_hash")
        batch.drop_column("published_version")
