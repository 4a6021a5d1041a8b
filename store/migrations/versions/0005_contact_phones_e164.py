"""Contacts' phone numbers in E.164 where they are valid numbers (a caller's number finds its
contact by exact match), and an index for that lookup. A text that is not a valid number stays
as it was written.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-09 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from store.phone import e164

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 1000


def upgrade() -> None:
    conn = op.get_bind()
    contacts = sa.table("contacts", sa.column("id", sa.BigInteger), sa.column("phone", sa.String))
    last = 0
    while True:
        rows = conn.execute(
            sa.select(contacts.c.id, contacts.c.phone)
            .where(contacts.c.id > last, contacts.c.phone.is_not(None))
            .order_by(contacts.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            break
        for contact_id, phone in rows:
            canonical = e164(phone)
            if canonical is not None and canonical != phone:
                conn.execute(
                    contacts.update().where(contacts.c.id == contact_id).values(phone=canonical)
                )
        last = rows[-1][0]
    op.create_index("ix_contacts_phone", "contacts", ["phone"], unique=False)


def downgrade() -> None:
    # The spellings the numbers had before are not kept: E.164 is a valid spelling of each.
    op.drop_index("ix_contacts_phone", table_name="contacts")
