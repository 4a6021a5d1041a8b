"""The SMTP door: the intake server the company's mail server relays support mail to (aiosmtpd).

It takes mail only for the configured support addresses (`SITEDESK_MAIL_ADDRESSES`) and
answers `250` only once the Intake actor has kept the message and committed its ticket step
(actors/tickets/mail_intake.py). Any failure on the way (the database, an actor restarting)
answers `451`, so the sending server keeps the message and retries: a mail is never lost, and
the retry is settled exactly once. A refusal for good (an unknown sender the desk is set to
refuse) is a `550`, which the sending server bounces. Limits answer cleanly: a message over
`SITEDESK_MAIL_MAX_BYTES` is a `552` (aiosmtpd's size check), a recipient beyond
`SITEDESK_MAIL_MAX_RECIPIENTS` a `452`, an address we do not take a `550 5.1.1`.

Back-pressure: at most `SITEDESK_SMTP_MAX_SESSIONS` sessions are served at once, a connection
beyond is greeted `421` and closed; a full intake actor answers `451` (its `QueueFull`); and
while the data directory's disk has less than `SITEDESK_MIN_FREE_DISK_MB` free beside the
message, the door answers `452` at RCPT and at DATA, before anything of the mail is kept. In
each case the sending server keeps the message and retries: nothing answered so was taken.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from actors import names
from actors.directory import Directory
from actors.errors import DeskError, MailRefused, as_raised
from actors.mail.settings import MailSettings
from actors.mail.threading import canonical_address
from actors.tickets.mail_intake import InboundEnvelope, MailReceipt
from gateway.settings import GatewaySettings
from gateway.startup import UsageProblem
from store.files import short_of_space

log = logging.getLogger(__name__)

RECEIVE_TIMEOUT_SECONDS = 120.0  # well inside an MTA's DATA timeout (Postfix: 600 s)
TRANSIENT_STATUSES = {429, 503, 504}  # DeskErrors that are for now only
# A mail is kept whole and its files again as attachments, each written twice by SQLite (into
# the write-ahead log, then the database): what it may take on disk, to its size.
MAIL_STORAGE_FACTOR = 4
NO_STORAGE = "452 4.3.1 Insufficient system storage; try again later"
TOO_MANY_SESSIONS = "421 4.3.2 Too many connections to the support desk; try again later"


class SmtpDoor:
    """The aiosmtpd handler: recipient checks at RCPT, the hand-over to the Intake at DATA."""

    def __init__(
        self,
        directory: Directory,
        settings: MailSettings,
        limits: GatewaySettings | None = None,
    ) -> None:
        self.directory = directory
        self.settings = settings
        self.limits = limits or GatewaySettings()
        self.accepted = 0
        self.deferred = 0
        self.refused = 0
        self.no_storage = 0  # answered 452 for want of disk space
        self.sessions = 0  # served now
        self.turned_away = 0  # connections answered 421

    def short_of_disk(self, size: int = 0) -> bool:
        """Whether keeping `size` more bytes of mail would eat into the disk reserve."""
        reserve = self.limits.min_free_disk_mb * 1024 * 1024
        if short_of_space(self.limits.data_dir, reserve, MAIL_STORAGE_FACTOR * size):
            self.no_storage += 1
            return True
        return False

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        canon = canonical_address(address)
        if canon is None or canon not in self.settings.mail_addresses:
            return f"550 5.1.1 <{address[:320]}>: no such support address here"
        if len(envelope.rcpt_tos) >= self.settings.mail_max_recipients:
            return "452 4.5.3 Too many recipients"
        if self.short_of_disk():
            return NO_STORAGE
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        data = envelope.original_content or b""
        assert isinstance(data, bytes)
        if self.short_of_disk(len(data)):
            self.deferred += 1
            return NO_STORAGE
        peer = session.peer[0] if isinstance(session.peer, tuple) else None
        item = InboundEnvelope(
            mail_from=str(envelope.mail_from or ""),
            rcpt_tos=list(envelope.rcpt_tos),
            data=data,
            peer=peer,
        )
        try:
            receipt = await asyncio.wait_for(self._receive(item), RECEIVE_TIMEOUT_SECONDS)
        except DeskError as exc:
            err = as_raised(exc)
            if isinstance(err, MailRefused) or err.status not in TRANSIENT_STATUSES:
                self.refused += 1
                return f"550 5.7.1 {_one_line(err.message)}"
            self.deferred += 1
            return f"451 4.3.0 {_one_line(err.message)}; try again later"
        except Exception as exc:  # the database, Ray, an actor restarting: the sender retries
            self.deferred += 1
            self.directory.forget(names.INTAKE)  # find it again: it may have been re-created
            log.warning("mail deferred (451): %s", _one_line(str(exc)))
            return "451 4.3.0 The support desk can not take this message now; try again later"
        self.accepted += 1
        where = f" {receipt.ticket_number}" if receipt.ticket_number else ""
        again = " (received before)" if receipt.duplicate else ""
        return f"250 2.0.0 Ok: {receipt.status.value}{where}{again}"

    async def _receive(self, item: InboundEnvelope) -> MailReceipt:
        receipt: MailReceipt = await self.directory.intake().receive_mail.remote(item)
        return receipt


def _one_line(text: str) -> str:
    return " ".join(text.split())[:400] or "refused"


class BoundedSMTP(SMTP):
    """aiosmtpd's session, counted: beyond the door's `smtp_max_sessions` a connection is
    greeted 421 and closed before it may say anything."""

    def __init__(self, handler: SmtpDoor, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.door = handler

    async def _handle_client(self) -> None:
        door = self.door
        if door.sessions >= door.limits.smtp_max_sessions:
            door.turned_away += 1
            await self.push(TOO_MANY_SESSIONS)
            if self.transport is not None:
                self.transport.close()
            return
        door.sessions += 1
        try:
            await super()._handle_client()
        finally:
            door.sessions -= 1


class BoundedController(Controller):
    def factory(self) -> SMTP:
        assert isinstance(self.handler, SmtpDoor)
        return BoundedSMTP(self.handler, **self.SMTP_kwargs)


class SmtpIntake:
    """The door served on its own event-loop thread (aiosmtpd's Controller)."""

    def __init__(
        self,
        directory: Directory,
        settings: MailSettings,
        port: int | None = None,
        *,
        limits: GatewaySettings | None = None,
    ):
        self.door = SmtpDoor(directory, settings, limits)
        self.host = settings.smtp_host
        self.port = settings.smtp_port if port is None else port
        self.controller: Controller | None = None

    def start(self) -> SmtpIntake:
        kwargs: dict[str, Any] = {
            "data_size_limit": self.settings_limit,
            "enable_SMTPUTF8": True,
            "decode_data": False,
            "timeout": 300,
        }
        self.controller = BoundedController(
            self.door, hostname=self.host, port=self.port, ready_timeout=10, **kwargs
        )
        self.controller.start()
        return self

    @property
    def settings_limit(self) -> int:
        return self.door.settings.mail_max_bytes

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


class SmtpPortProblem(UsageProblem):
    """The SMTP port can not be listened on: one clear line for the operator."""


def start_smtp(intake: SmtpIntake) -> SmtpIntake:
    """Start the door, a taken port or a bad address being a clear error."""
    try:
        return intake.start()
    except (OSError, RuntimeError) as exc:
        raise SmtpPortProblem(
            f"cannot listen for mail on {intake.host}:{intake.port} ({exc}); stop what runs "
            "there or set SITEDESK_SMTP_PORT / SITEDESK_SMTP_HOST"
        ) from exc
