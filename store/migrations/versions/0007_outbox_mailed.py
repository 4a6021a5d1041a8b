"""The mail planner's own mark on each outbox row (issue 9): mail is planned apart from the
live stream's publishing, so a slow template or relay never delays a live update. The rows
already there count as looked at: an upgrade mails nothing about the past.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 18:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from store.models.base import UTCDateTime

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbox_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("mailed_at", UTCDateTime(timezone=True), nullable=True))
    op.execute("UPDATE outbox_events SET mailed_at = created_at")
    op.create_index("ix_outbox_events_unmailed", "outbox_events", ["mailed_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_outbox_events_unmailed", table_name="outbox_events")
    with op.batch_alter_table("outbox_events", schema=None) as batch_op:
        batch_op.drop_column("mailed_at")
