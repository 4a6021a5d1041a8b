"""Outbox rows carry their audience (public, tiers, agents) instead of it being guessed from
the payload's keys; an index for a customer's replay

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-08 10:00:00
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
BATCH = 1000


def _guessed(account_id: int | None, payload: dict[str, Any]) -> dict[str, Any]:
    """The audience that rows written before this revision were published to (the rule of
    that time, from the payload's keys), so that a replay across the upgrade reaches the same
    people."""
    data = payload.get("data") or {}

    def ints(*keys: str) -> list[int]:
        return sorted({v for k in keys if isinstance(v := data.get(k), int)})

    return {
        "public": account_id is not None and payload.get("visibility", "public") == "public",
        "tiers": ints("tier", "from_tier"),
        "agents": ints("owner_agent_id", "previous_owner", "from_agent_id", "agent_id"),
    }


def upgrade() -> None:
    with op.batch_alter_table("outbox_events", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("public", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.add_column(
            sa.Column("tiers", JSON, server_default=sa.text("'[]'"), nullable=False)
        )
        batch_op.add_column(
            sa.Column("agents", JSON, server_default=sa.text("'[]'"), nullable=False)
        )
        batch_op.create_index("ix_outbox_events_account", ["account_id", "id"], unique=False)

    rows = sa.table(
        "outbox_events",
        sa.column("id", sa.BigInteger()),
        sa.column("account_id", sa.Integer()),
        sa.column("payload", JSON),
        sa.column("public", sa.Boolean()),
        sa.column("tiers", JSON),
        sa.column("agents", JSON),
    )
    conn = op.get_bind()
    after = 0
    while True:
        batch = conn.execute(
            sa.select(rows.c.id, rows.c.account_id, rows.c.payload)
            .where(rows.c.id > after)
            .order_by(rows.c.id)
            .limit(BATCH)
        ).all()
        if not batch:
            break
        conn.execute(
            rows.update()
            .where(rows.c.id == sa.bindparam("row_id"))
            .values(
                public=sa.bindparam("b_public"),
                tiers=sa.bindparam("b_tiers"),
                agents=sa.bindparam("b_agents"),
            ),
            [
                {
                    "row_id": r.id,
                    **{f"b_{k}": v for k, v in _guessed(r.account_id, r.payload).items()},
                }
                for r in batch
            ],
        )
        after = batch[-1].id


def downgrade() -> None:
    with op.batch_alter_table("outbox_events", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_events_account")
        batch_op.drop_column("agents")
        batch_op.drop_column("tiers")
        batch_op.drop_column("public")
