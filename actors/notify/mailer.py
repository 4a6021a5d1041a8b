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

import contextlib
import os
import smtplib
import ssl
import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import unquote, urlsplit

from sqlalchemy.orm import Session

from actors.mail.settings import MailSettings
from store.db import Database
from store.models import Ticket
from store.models.enums import DeliveryStatus
from store.repositories.delivery import Answer, DeliveryRepository
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
    relay_down: bool = False  # no connection: the batch's other mails wait untried


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
        self._client: smtplib.SMTP | None = None  # open during one batch
        # After a refused connection no mail is tried before this (one wait for all of them).
        self.relay_down_until: datetime | None = None

    def send_due(self, now: datetime) -> int:
        """Attempt every due mail of a batch over one relay connection, then record every
        answer in one unit of work; returns how many were attempted. When the relay cannot
        be reached the batch stops at that mail: the others stay due, their attempts unspent."""
        if self.relay_down_until is not None and now < self.relay_down_until:
            return 0
        with self.db.read() as s:
            due = [(d.id, d.recipient, d.raw, d.attempts, d.ticket_id) for d in
                   DeliveryRepository(s).due(now, limit=BATCH)]  # fmt: skip
        done: list[tuple[int, str, int, Attempt, int | None]] = []
        try:
            for delivery_id, recipient, raw, attempts, ticket_id in due:
                attempt = self.attempt(delivery_id, recipient, raw)
                done.append((delivery_id, recipient, attempts, attempt, ticket_id))
                if attempt.relay_down:  # one refused connection is enough: the rest wait,
                    # untried, for the relay's retry instead of each reconnecting in vain
                    wait = timedelta(seconds=self.settings.mail_retry_seconds)
                    self.relay_down_until = now + wait
                    break
        finally:
            self._close()
            if done:
                self._record(done, now)
        if self.relay_down_until is not None and done and not done[-1][3].relay_down:
            self.relay_down_until = None  # the relay took a connection again
        return 0 if self.relay_down_until is not None else len(done)

    def next_due_at(self) -> datetime | None:
        with self.db.read() as s:
            due = DeliveryRepository(s).next_due_at()
        if due is not None and self.relay_down_until is not None:
            return max(due, self.relay_down_until)
        return due

    def attempt(self, delivery_id: int, recipient: str, raw: bytes) -> Attempt:
        """One attempt at one mail (the relay connection stays open for the next)."""
        if self.relay is None:
            return self._to_sink(delivery_id, raw)
        try:
            if self._client is None:
                self._client = self._connect(self.relay)
            attempt = self._deliver(self._client, recipient, raw)
            if attempt.status is not DeliveryStatus.sent:
                self._client.rset()  # the transaction ends; the connection serves the next
            return attempt
        except (OSError, smtplib.SMTPException) as e:  # down, refused, timed out, TLS
            self._close()
            down = f"relay unavailable: {type(e).__name__}: {e}"
            return Attempt(DeliveryStatus.queued, down, relay_down=True)

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

    def _connect(self, relay: Relay) -> smtplib.SMTP:
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
        try:
            client.ehlo()
            if not relay.tls and client.has_extn("starttls"):
                client.starttls(context=tls)
                client.ehlo()
            if relay.user:
                if not isinstance(client.sock, ssl.SSLSocket):
                    # Credentials never go in clear: a relay without STARTTLS is not used.
                    raise smtplib.SMTPException("the relay offers no TLS for the login")
                client.login(relay.user, relay.password or "")
        except BaseException:
            with contextlib.suppress(Exception):
                client.close()
            raise
        return client

    def _deliver(self, client: smtplib.SMTP, recipient: str, raw: bytes) -> Attempt:
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

    def _close(self) -> None:
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.quit()
            with contextlib.suppress(Exception):
                self._client.close()
            self._client = None

    def _record(self, done: list[tuple[int, str, int, Attempt, int | None]], now: datetime) -> None:
        """The answers of a batch, in one unit of work (a crash before it resends the batch's
        mails with their own Message-IDs: the receiver keeps each once)."""
        answers = []
        for delivery_id, _, attempts, attempt, _ in done:
            status, answer, retry_at = attempt.status, attempt.answer, None
            if status is DeliveryStatus.queued:
                if attempts + 1 >= self.settings.mail_max_attempts:
                    status = DeliveryStatus.failed
                    answer = f"gave up after {attempts + 1}: {answer}"
                else:
                    wait = timedelta(seconds=self.settings.mail_retry_seconds * 2**attempts)
                    retry_at = now + min(wait, MAX_BACKOFF)
            answers.append(Answer(delivery_id, status, answer, attempts + 1, now, retry_at))
        with self.db.write() as s:
            DeliveryRepository(s).record(answers)
            for _, recipient, _, attempt, ticket_id in done:
                if attempt.permanent_for_recipient:
                    self._undeliverable(s, recipient, attempt.answer, ticket_id)
        self.sent += sum(a.status is DeliveryStatus.sent for a in answers)
        self.failed += sum(a.status is DeliveryStatus.failed for a in answers)

    @staticmethod
    def _undeliverable(s: Session, recipient: str, answer: str, ticket_id: int | None) -> None:
        words = answer.split()
        code = words[1] if len(words) > 1 and words[1][:1] == "5" and "." in words[1] else None
        SuppressionRepository(s).suppress(recipient, status_code=code, diagnostic=answer)
        ticket = s.get(Ticket, ticket_id) if ticket_id is not None else None
        if ticket is not None:  # on the account's timeline: its view shows it at once
            TimelineRepository(s).append(
                ticket.account_id, kind="mail.undeliverable", ticket_id=ticket.id,
                summary=f"Mail to {recipient} refused for good: {answer}"[:300],
                visibility="internal", actor="mail relay", tiers=(ticket.tier,),
                agents=(ticket.owner_agent_id,),
            )  # fmt: skip


def _answer(code: int, text: bytes | str, stage: str) -> Attempt:
    message = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    answer = f"{code} {message}".strip() + f" (at {stage})"
    if 200 <= code < 300:
        return Attempt(DeliveryStatus.sent, answer)
    if 400 <= code < 500 or code < 200:
        return Attempt(DeliveryStatus.queued, answer)
    return Attempt(DeliveryStatus.failed, answer)
