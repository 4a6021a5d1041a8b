"""A real SMTP server on a loopback port that keeps what it receives: where the desk's
outgoing mail lands in the tests, and the far side of a relay (aiosmtpd)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope, Session

from automation.loopback import free_port


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes

    def message(self) -> EmailMessage:
        parsed = BytesParser(policy=policy.default).parsebytes(self.data)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class SmtpSink:
    """Accepts every message (or answers `reply` to DATA while it is set, e.g. a 451)."""

    port: int = field(default_factory=free_port)
    received: list[Received] = field(default_factory=list)
    reply: str | None = None
    refuse: set[str] = field(default_factory=set)  # recipients answered 550 5.1.1 at RCPT
    attempts: int = 0  # DATA commands seen, refused ones included
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _changed: threading.Condition = field(init=False)
    _controller: Controller | None = None

    def __post_init__(self) -> None:
        self._changed = threading.Condition(self._lock)

    async def handle_RCPT(
        self, server: Any, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        if address.lower() in self.refuse:
            return "550 5.1.1 <" + address + ">: Recipient address rejected: User unknown"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        with self._changed:
            self.attempts += 1
            self._changed.notify_all()
        if self.reply is not None:
            return self.reply
        data = envelope.original_content or envelope.content or b""
        assert isinstance(data, bytes)
        with self._changed:
            self.received.append(
                Received(str(envelope.mail_from or ""), list(envelope.rcpt_tos), data)
            )
            self._changed.notify_all()
        return "250 2.0.0 Ok: kept"

    def start(self) -> SmtpSink:
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()

    def wait_for(self, count: int, timeout: float = 30.0) -> list[Received]:
        """Block until at least `count` messages arrived (a condition, never a fixed sleep)."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.received) >= count, timeout):
                raise AssertionError(
                    f"{count} messages not received within {timeout}s ({len(self.received)})"
                )
            return list(self.received)
