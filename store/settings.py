"""Settings of the system of record (SITEDESK_ environment variables)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class StoreSettings(BaseSettings):
    """Where the SCDB lives. The default is an SQLite file in the data directory."""

    model_config = SettingsConfigDict(env_prefix="SITEDESK_", extra="ignore")

    data_dir: Path = Field(default=Path(".sitedesk"), description="Where local state is kept.")
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; PostgreSQL in production (postgresql+psycopg://...).",
    )
    database_pool_size: int = Field(default=10, ge=1, le=200)

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'sitedesk.db').resolve()}"
