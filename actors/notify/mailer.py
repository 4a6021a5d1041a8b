"""Sends the planned mails: through the relay (`SITEDESK_SMTP_RELAY`: `smtp://user:pass@host:587`
with STARTTLS when offered, `smtps://` for implicit TLS), or into the local sink directory when
no relay is set (the embedded default: what would have gone out, one .eml file per mail).

The relay's answer is recorded before a mail counts as sent; a crash between the two resends
the same bytes with the same Message-ID (the receiver keeps one). A 4xx, a refused connection
or a timeout is tried again after `mail_retry_seconds`, doubling up to an hour, until
`mail_max_attempts`; a 5xx fails the mail for good, and a 5xx for the recipient also marks the
address undeliverable (suppressed), as a bounce would.
"""

from __future__ import annotations

import os
import smtplib
import ssl
import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import unquote, urlsplit

from actors.mail.settings import MailSettings
from store.db import Database
from store.models import Ticket
from store.models.enums import DeliveryStatus
from store.repositories.delivery import DeliveryRepository
from store.repositories.mail import SuppressionRepository
from store.repositories.timeline import TimelineRepository

BATCH = 50
MAX_BACKOFF = timedelta(hours=1)
TIMEOUT = 30.0


@dataclass(frozen=True)
class Relay:
    host: str
    port: int
    tls: bool  # implicit TLS (smtps://); smtp:// upgrades with STARTTLS when offered
    user: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, url: str) -> Relay:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError("SITEDESK_SMTP_RELAY is smtp://[user:pass@]host[:port] or smtps://")
        tls = parts.scheme == "smtps"
        port = parts.port or (465 if tls else 587 if parts.username else 25)
        user = unquote(parts.username) if parts.username else None
        password = unquote(parts.password) if parts.password else None
        return cls(parts.hostname, port, tls, user, password)


@dataclass(frozen=True)
class Attempt:
    status: DeliveryStatus  # sent, failed, or queued (try again)
    answer: str
    permanent_for_recipient: bool = False


class Mailer:
    """One attempt at each due mail, then its answer recorded (see the module)."""

    def __init__(self, db: Database, settings: MailSettings) -> None:
        self.db = db
        self.settings = settings
        relay = settings.smtp_relay.get_secret_value()
        self.relay = Relay.parse(relay) if relay else None
        self.sink = Path(settings.mail_sink_dir) if settings.mail_sink_dir else None
        self.ca_file = settings.smtp_relay_ca_file or None
        self.sent = 0
        self.failed = 0

    def send_due(self, now: datetime) -> int:
        """Attempt every due mail (a batch); returns how many were attempted."""
        with self.db.read() as s:
            due = [(d.id, d.recipient, d.raw, d.attempts, d.ticket_id) for d in
                   DeliveryRepository(s).due(now, limit=BATCH)]  # fmt: skip
        for delivery_id, recipient, raw, attempts, ticket_id in due:
            attempt = self.attempt(delivery_id, recipient, raw)
            self._record(delivery_id, recipient, attempts, attempt, now, ticket_id)
        return len(due)

    def next_due_at(self) -> datetime | None:
        with self.db.read() as s:
            return DeliveryRepository(s).next_due_at()

    def attempt(self, delivery_id: int, recipient: str, raw: bytes) -> Attempt:
        if self.relay is None:
            return self._to_sink(delivery_id, raw)
        try:
            return self._to_relay(self.relay, recipient, raw)
        except (OSError, smtplib.SMTPException) as e:  # down, refused, timed out, TLS
            return Attempt(DeliveryStatus.queued, f"relay unavailable: {type(e).__name__}: {e}")

    def _to_sink(self, delivery_id: int, raw: bytes) -> Attempt:
        if self.sink is None:
            return Attempt(DeliveryStatus.failed, "no relay and no sink directory configured")
        self.sink.mkdir(parents=True, exist_ok=True)
        path = self.sink / f"{delivery_id:08d}.eml"
        fd, tmp = tempfile.mkstemp(dir=self.sink, prefix=".sending-")
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # whole or not at all
        return Attempt(DeliveryStatus.sent, f"kept in the local sink: {path.name}")

    def _to_relay(self, relay: Relay, recipient: str, raw: bytes) -> Attempt:
        local_name = self.settings.mail_domain
        tls = ssl.create_default_context(cafile=self.ca_file)  # certificates and names checked
        client: smtplib.SMTP
        if relay.tls:
            client = smtplib.SMTP_SSL(
                relay.host, relay.port, local_hostname=local_name, timeout=TIMEOUT, context=tls
            )
        else:
            client = smtplib.SMTP(relay.host, relay.port, local_hostname=local_name,
                                  timeout=TIMEOUT)  # fmt: skip
        with client:
            client.ehlo()
            if not relay.tls and client.has_extn("starttls"):
                client.starttls(context=tls)
                client.ehlo()
            if relay.user:
                if not isinstance(client.sock, ssl.SSLSocket):
                    # Credentials never go in clear: a relay without STARTTLS is not used.
                    return Attempt(DeliveryStatus.queued, "the relay offers no TLS for the login")
                client.login(relay.user, relay.password or "")
            code, text = client.mail(self.settings.mail_from)
            if code != 250:
                return _answer(code, text, "MAIL FROM")
            code, text = client.rcpt(recipient)
            if code not in (250, 251):
                attempt = _answer(code, text, "RCPT TO")
                permanent = attempt.status is DeliveryStatus.failed
                return Attempt(attempt.status, attempt.answer, permanent_for_recipient=permanent)
            code, text = client.data(raw)
            return _answer(code, text, "DATA")

    def _record(
        self,
        delivery_id: int,
        recipient: str,
        attempts: int,
        attempt: Attempt,
        now: datetime,
        ticket_id: int | None = None,
    ) -> None:
        status, answer, retry_at = attempt.status, attempt.answer, None
        if status is DeliveryStatus.queued:
            if attempts + 1 >= self.settings.mail_max_attempts:
                status, answer = DeliveryStatus.failed, f"gave up after {attempts + 1}: {answer}"
            else:
                wait = timedelta(seconds=self.settings.mail_retry_seconds * 2**attempts)
                retry_at = now + min(wait, MAX_BACKOFF)
        with self.db.write() as s:
            DeliveryRepository(s).record(
                delivery_id, status=status, answer=answer, at=now, next_attempt_at=retry_at
            )
            if attempt.permanent_for_recipient:
                code = answer.split()[1] if len(answer.split()) > 1 else None
                SuppressionRepository(s).suppress(
                    recipient,
                    status_code=code if code and code[:1] == "5" and "." in code else None,
                    diagnostic=answer,
                )
                ticket = s.get(Ticket, ticket_id) if ticket_id is not None else None
                if ticket is not None:  # on the account's timeline: its view shows it at once
                    TimelineRepository(s).append(
                        ticket.account_id, kind="mail.undeliverable", ticket_id=ticket.id,
                        summary=f"Mail to {recipient} refused for good: {answer}"[:300],
                        visibility="internal", actor="mail relay", tiers=(ticket.tier,),
                        agents=(ticket.owner_agent_id,),
                    )  # fmt: skip
        if status is DeliveryStatus.sent:
            self.sent += 1
        elif status is DeliveryStatus.failed:
            self.failed += 1


def _answer(code: int, text: bytes | str, stage: str) -> Attempt:
    message = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    answer = f"{code} {message}".strip() + f" (at {stage})"
    if 200 <= code < 300:
        return Attempt(DeliveryStatus.sent, answer)
    if 400 <= code < 500 or code < 200:
        return Attempt(DeliveryStatus.queued, answer)
    return Attempt(DeliveryStatus.failed, answer)
