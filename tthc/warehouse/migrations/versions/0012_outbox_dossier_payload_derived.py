"""publish_outbox: dossier messages no longer store their payload (derived from dossier_history)

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-24

A ``dossier`` message's portal payload (``DongBoHoSoMC``, personal data included) is derived from
the dossier version the message belongs to (``publish_outbox.dossier_version``, a row of
``dossier_history``) and checked against the message's ``content_hash`` (the payload hash) before
it is sent or used to verify the portal (``tthc.pipeline.publish``). Storing a copy cost a large
row per dossier and night, rewritten by every status update, and a second copy of personal data.
``payload`` becomes nullable; the existing dossier messages' copies are dropped (their content
stays derivable; a message whose derivation no longer gives its hash, because the mapping changed
since it was queued, is not sent: the dossier is queued again with the current payload).
``progress`` messages (status-change entries: codes, roles, dates; no personal data) keep theirs.

Downgrade: a payload cannot be re-derived in SQL, and a placeholder (say ``'{}'``) would be sent
to the portal as is by the earlier release, or taken for what the portal should hold by its
read-back. So the dossier messages without a payload are *deleted* and the column is NOT NULL
again. Nothing is lost that the earlier release needs: a dossier not yet published in its current
content is still a candidate (``publish_state``), so its message is queued again with the payload;
a confirmed message only served the read-back (which then compares with the current dossier, as
for dossiers published before messages were kept) and the agency of progress calls (which then
falls back to the dossier's current agency). Progress messages are kept: their exactly-once
bookkeeping is not touched.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("publish_outbox") as batch:
        batch.alter_column("payload", existing_type=sa.Text(), nullable=True)
    op.execute("UPDATE publish_outbox SET payload = NULL WHERE kind = 'dossier' AND payload IS NOT NULL")


def downgrade() -> None:
    op.execute("DELETE FROM publish_outbox WHERE payload IS NULL")
    with op.batch_alter_table("publish_outbox") as batch:
        batch.alter_column("payload", existing_type=sa.Text(), nullable=False)
