"""Names of the named Ray actors, built in one place (cluster/ deploys them, actors find them)."""

from __future__ import annotations

NAMESPACE = "sitedesk"
INTAKE = "intake"
SLA = "sla-clock"
NOTIFIER = "notifier"
MAILER = "mailer"


def tier_pool(tier: int) -> str:
    return f"tier-pool-{tier}"


def session_shard(index: int) -> str:
    return f"account-sessions-{index}"


def shard_of(account_id: int, shards: int) -> int:
    """The shard that hosts an account's session: stable for a given shard count."""
    return account_id % shards


def change_executor(index: int) -> str:
    return f"change-executor-{index}"
