"""Settings of the gateway (SITEDESK_ environment variables)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SITEDESK_", extra="ignore")

    http_host: str = Field(default="127.0.0.1")
    http_port: int = Field(default=8080, ge=1, le=65535)
    smtp_port: int = Field(default=2525, ge=0, le=65535, description="SMTP intake; 0 disables.")
    token_ttl_hours: int = Field(default=12, ge=1, le=24 * 90)
    log_level: str = Field(default="warning")
