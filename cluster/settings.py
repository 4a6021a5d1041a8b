"""Settings for how the pieces are started and found (SITEDESK_ environment variables)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ClusterSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SITEDESK_", extra="ignore")

    data_dir: Path = Field(default=Path(".sitedesk"))
    redis_url: str | None = Field(
        default=None, description="Redis for live updates; unset: a local redis-server is started."
    )
    redis_port: int = Field(
        default=0, ge=0, le=65535, description="Port of the local Redis (0: any free port)."
    )
    ray_address: str | None = Field(
        default=None, description="Join this Ray cluster (ray://... or host:port); unset: local."
    )
    ray_token_file: Path | None = Field(
        default=None,
        description="The Ray cluster's token file (needed to join one); unset: the data "
        "dir's own `ray-token`, generated for the local Ray.",
    )
    ray_namespace: str = Field(default="sitedesk")
    ray_dashboard: bool = Field(default=True, description="Start the Ray dashboard (local Ray).")
    ray_object_store_mb: int = Field(default=200, ge=78)
