"""E-mail out (issue 9): a contact's language (the templates of the mails it is sent), and one
Message-ID for the several recipients of one mail (an escalation to a tier's agents): the
delivery's `source` stays what makes each row unique.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 17:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("language", sa.String(length=8), nullable=True))
    with op.batch_alter_table("mail_deliveries", schema=None) as batch_op:
        batch_op.drop_constraint("uq_mail_deliveries_message_id", type_="unique")
        batch_op.create_index("ix_mail_deliveries_message_id", ["message_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("mail_deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_mail_deliveries_message_id")
        batch_op.create_unique_constraint("uq_mail_deliveries_message_id", ["message_id"])
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.drop_column("language")
