"""Settings of the gateway (SITEDESK_ environment variables)."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SITEDESK_", extra="ignore")

    http_host: str = Field(default="127.0.0.1")
    http_port: int = Field(default=8080, ge=1, le=65535)
    token_ttl_hours: int = Field(default=12, ge=1, le=24 * 90)
    log_level: str = Field(default="warning")

    # Who may tell us the client's address. Empty: nobody, the socket's peer is the client
    # (a header from anyone else would let a caller pick the address the limits count).
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated addresses or networks of reverse proxies whose "
        "X-Forwarded-For / X-Forwarded-Proto are believed.",
    )
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, description="Largest request body.")
    # Files sent with a new ticket or a message (multipart/form-data, gateway/uploads.py).
    upload_max_bytes: int = Field(
        default=10 * 1024 * 1024,
        ge=1024,
        description="Largest multipart request with files (POST /tickets, .../messages).",
    )
    upload_max_file_bytes: int = Field(
        default=5 * 1024 * 1024, ge=1, description="Largest file in such a request."
    )
    upload_max_files: int = Field(default=10, ge=1, le=100, description="Files per request.")

    # Live streams: one Redis subscriber per gateway fans out to every stream.
    max_streams: int = Field(default=1000, ge=1, description="Open event streams per gateway.")
    max_streams_per_user: int = Field(default=8, ge=1, description="Per user, per gateway.")
    stream_queue_size: int = Field(
        default=256, ge=1, description="Events buffered for a slow stream before it is dropped."
    )

    # Log-in: argon2 costs ~0.3 s of one core, so only a few run at once and a few wait.
    login_hash_concurrency: int = Field(default=2, ge=1)
    login_hash_queue: int = Field(default=16, ge=0, description="Log-ins waiting for a hasher.")
    login_free_failures: int = Field(
        default=10, ge=1, description="Failed log-ins of one account before it is locked."
    )
    login_lock_seconds: int = Field(
        default=30, ge=1, description="First lock after the free failures; doubles each time."
    )
    login_lock_max_seconds: int = Field(default=900, ge=1)
    login_failures_per_client: int = Field(
        default=100, ge=1, description="Failed log-ins from one client address per window."
    )
    login_failures_global: int = Field(
        default=1000, ge=1, description="Failed log-ins on the whole desk per window."
    )
    login_window_seconds: int = Field(default=300, ge=1)
    searches_per_minute: int = Field(
        default=120, ge=1, description="Searches one user may run a minute (429 beyond)."
    )
    # API rate limits (gateway/ratelimit.py), in Redis for every gateway, each a fixed
    # one-minute window of one caller: a customer account (all its users and tokens share
    # it) or, for staff, one token. 0: no limit (load generators).
    requests_per_minute: int = Field(
        default=400, ge=0, description="Authenticated API requests a caller may make a minute."
    )
    tickets_per_minute: int = Field(
        default=30, ge=0, description="New tickets (POST /tickets, POST /calls) a minute."
    )
    changes_per_minute: int = Field(
        default=30, ge=0, description="Change requests (POST /changes) a minute."
    )
    dry_runs_per_minute: int = Field(
        default=30, ge=0, description="Dry runs (POST /changes, dry_run) a minute."
    )
    limits_redis_pool_size: int = Field(
        default=32, ge=1, description="Connections of the rate limiter's own Redis pool."
    )

    # Back-pressure at the doors (the actors' own bounds: actors/config.py QueueLimits).
    ticket_queue_max: int = Field(
        default=1000, ge=1, description="New tickets waiting in a gateway for its call to the "
        "intake; beyond, 503 `intake_busy` with Retry-After."
    )  # fmt: skip
    smtp_max_sessions: int = Field(
        default=50, ge=1, description="SMTP sessions the intake door serves at once; a "
        "connection beyond is answered 421 and closed (the sending server retries)."
    )  # fmt: skip
    # The free space kept on the data directory's file system (the SQLite SCDB, the mail sink):
    # mail is answered 452 and files 507 before a write could fill it.
    data_dir: Path = Field(default=Path(".sitedesk"), description="Where local state is kept.")
    min_free_disk_mb: int = Field(
        default=256, ge=0, description="Free space (MiB) the data directory's disk keeps; mail "
        "is refused (452) and files (507) that would leave less."
    )  # fmt: skip

    # The telephony webhook (POST /api/v1/calls/events): the secret the provider signs with.
    # Comma-separated to rotate (the new one first; any one matching is enough). Unset: the
    # webhook answers 503 `telephony_not_configured`.
    telephony_secret: SecretStr = Field(
        default=SecretStr(""), description="Shared secret(s) of the telephony webhook."
    )

    @property
    def telephony_secrets(self) -> list[str]:
        return [p.strip() for p in self.telephony_secret.get_secret_value().split(",") if p.strip()]

    @field_validator("telephony_secret")
    @classmethod
    def _long_enough(cls, value: SecretStr) -> SecretStr:
        for part in value.get_secret_value().split(","):
            if part.strip() and len(part.strip().encode()) < 16:
                raise ValueError("a telephony secret has at least 16 bytes")
        return value

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for item in value:
            ipaddress.ip_network(item, strict=False)  # a ValueError names the bad entry
        return value
