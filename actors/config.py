"""What every actor is handed at construction: where the SCDB and Redis are, and the knobs."""

from __future__ import annotations

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from actors.mail.settings import MailSettings
from store.retention import RetentionSettings


class BusinessHours(BaseModel):
    """Weekly business hours of the support desk, in one time zone."""

    timezone: str = "UTC"
    start_hour: int = Field(default=9, ge=0, le=23)
    end_hour: int = Field(default=17, ge=1, le=24)
    weekdays: tuple[int, ...] = (0, 1, 2, 3, 4)  # Monday = 0


class QueueLimits(BaseSettings):
    """How much work may wait in the actors' memory (SITEDESK_ variables). Past a bound that
    takes new work, the work is refused for now (`QueueFull`: 503 with `Retry-After`, 451 at
    the SMTP door), never acknowledged and then dropped; what is only a window on rows already
    in the SCDB (a pool's queue, an outbox drain) holds at most the bound and reads on later."""

    model_config = SettingsConfigDict(env_prefix="SITEDESK_", extra="ignore")

    intake_queue_max: int = Field(
        default=2000, ge=1, description="New tickets and mails the intake holds, waiting for "
        "their group commit or in it; beyond, 503 `intake_full` / SMTP 451."
    )  # fmt: skip
    pool_queue_max: int = Field(
        default=10_000, ge=1, description="Waiting tickets a tier pool keeps in memory (the "
        "most urgent, then oldest); the rest wait in the SCDB and are read as these go."
    )  # fmt: skip
    host_queue_max: int = Field(
        default=500, ge=1, description="Changes queued or applying per managed host: a request "
        "beyond is 503 `host_queue_full`; a host lane holds at most this many in memory."
    )  # fmt: skip
    outbox_publish_batch: int = Field(
        default=500, ge=1, description="Outbox rows the notifier reads and publishes at once."
    )
    outbox_mail_batch: int = Field(
        default=200, ge=1, description="Outbox rows the mail planner reads at once."
    )


class ActorConfig(BaseModel):
    database_url: str
    redis_url: str
    namespace: str = "sitedesk"
    session_shards: int = Field(default=2, ge=1, le=64)
    business_hours: BusinessHours = Field(default_factory=BusinessHours)
    auto_close_after_hours: float = Field(default=72.0, gt=0)
    intake_batch_max: int = Field(default=128, ge=1, le=5000)
    intake_batch_wait_ms: float = Field(default=2.0, ge=0)
    db_pool_size: int = Field(default=5, ge=1, le=50)
    # Per customer account and rolling hour (0: no limit): tickets opened through the portal or
    # the API, and self-service changes requested.
    customer_tickets_per_hour: int = Field(default=30, ge=0)
    customer_changes_per_hour: int = Field(default=60, ge=0)
    # How long outbox rows, idempotency answers and host journal entries are kept (read from
    # SITEDESK_ variables where the config is made, once, and handed to the actors with it).
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    mail: MailSettings = Field(default_factory=MailSettings)
    queues: QueueLimits = Field(default_factory=QueueLimits)
