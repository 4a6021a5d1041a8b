"""E-mail settings (SITEDESK_ variables), read once where the desk's config is made and handed
to the actors and the SMTP door with it.

- The intake: which recipient addresses it accepts and the category each one files under
  (`SITEDESK_MAIL_ADDRESSES=support@acme.test=general,billing@acme.test=billing`), the size
  and recipient limits the SMTP door enforces, and what a mail from an unknown sender does.
- Outgoing mail: the relay (`smtp://user:pass@host:587`, STARTTLS when the server offers it;
  `smtps://` for implicit TLS; empty: the local sink under the data directory), the From
  address, the domain of our Message-IDs, and the auto-reply cap per address.
- `mail_secret`: the key of our signed Message-IDs (hex, at least 16 bytes). `sitedesk up`
  keeps one in the data directory; a cluster sets the same one on every node.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from actors.mail.threading import canonical_address

_CATEGORY = re.compile(r"[a-z][a-z0-9_]{0,31}", re.ASCII)


class UnknownSenders(StrEnum):
    hold = "hold"  # a new contact on no account; the mail waits for an agent to link it
    refuse = "refuse"  # answered 550 at the SMTP door's DATA


class MailSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SITEDESK_", extra="ignore")

    smtp_host: str = Field(default="127.0.0.1", description="Where the SMTP intake listens.")
    smtp_port: int = Field(default=2525, ge=1, le=65535, description="Port of the SMTP intake.")
    mail_addresses: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=lambda: {
            "support@sitedesk.demo": "general",
            "billing@sitedesk.demo": "billing",
        },
        description="Accepted recipient addresses and the category each files under: "
        "comma-separated address=category pairs.",
    )
    mail_max_bytes: int = Field(
        default=25 * 1024 * 1024, ge=1024, description="Largest message (552 beyond)."
    )
    mail_max_recipients: int = Field(
        default=20, ge=1, description="Recipients of one message (452 beyond)."
    )
    mail_unknown_senders: UnknownSenders = UnknownSenders.hold
    mail_from: str = Field(default="support@sitedesk.demo", description="From of our mail.")
    mail_from_name: str = Field(default="Sitedesk Support")
    mail_domain: str = Field(default="sitedesk.demo", description="Domain of our Message-IDs.")
    mail_secret: SecretStr = Field(
        default=SecretStr(""), description="Hex key of our signed Message-IDs (>= 16 bytes)."
    )
    smtp_relay: SecretStr = Field(
        default=SecretStr(""), description="Relay of outgoing mail; empty: the local sink."
    )
    smtp_relay_ca_file: str = Field(
        default="",
        description="CA bundle the relay's certificate is checked against; empty: the system's.",
    )
    mail_sink_dir: str = Field(default="", description="Where the local sink writes mail.")
    mail_auto_replies_per_hour: int = Field(
        default=10, ge=0, description="Automatic answers to one address an hour."
    )
    mail_retry_seconds: float = Field(
        default=60, gt=0, description="First wait before a relay is tried again (doubling)."
    )
    mail_max_attempts: int = Field(
        default=12, ge=1, description="Attempts of one mail before it is marked failed."
    )
    mail_language: str = Field(
        default="en", pattern=r"^(en|de)$", description="Language of mail to contacts without one."
    )

    @field_validator("mail_addresses", mode="before")
    @classmethod
    def _pairs(cls, value: object) -> object:
        if isinstance(value, str):
            pairs: dict[str, str] = {}
            for part in filter(None, (p.strip() for p in value.split(","))):
                address, _, category = part.partition("=")
                pairs[address.strip()] = category.strip() or "general"
            return pairs
        return value

    @field_validator("mail_addresses")
    @classmethod
    def _canonical(cls, value: dict[str, str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for address, category in value.items():
            canon = canonical_address(address)
            if canon is None:
                raise ValueError(f"{address!r} is not an e-mail address")
            if not _CATEGORY.fullmatch(category):
                raise ValueError(f"{category!r} is not a category (a-z, 0-9, _)")
            out[canon] = category
        return out

    @field_validator("mail_secret")
    @classmethod
    def _hex(cls, value: SecretStr) -> SecretStr:
        text = value.get_secret_value()
        if text and (not re.fullmatch(r"(?:[0-9a-f]{2}){16,}", text, re.ASCII)):
            raise ValueError("mail_secret must be hex, at least 32 digits")
        return value

    def secret(self) -> bytes:
        """The Message-ID key; a missing one is a configuration error, never a weak default."""
        text = self.mail_secret.get_secret_value()
        if not text:
            raise ValueError("SITEDESK_MAIL_SECRET is not set")
        return bytes.fromhex(text)

    def category_of(self, recipients: list[str]) -> str | None:
        """The category of the first accepted recipient (the envelope's order)."""
        for rcpt in recipients:
            category = self.mail_addresses.get(canonical_address(rcpt) or "")
            if category is not None:
                return category
        return None
