"""The real services' own clients, as a customer's program talks to them, for verifying changes.

A change is "applied" only when the service it is for answers as the change says: an IMAP
login with the new password, an FTP login and listing, a TLS handshake with SNI, a MariaDB
connection with exactly the granted privileges. These run in the executor after the host's
script answered, against the host's address and the ports in its layout (``HostLayout``).

- ``automation.clients.imap`` — Dovecot: log-ins and quotas (``imaplib``, ``doveadm``);
- ``automation.clients.ftp`` — the FTP server: log-ins and listings (``ftplib``);
- ``automation.clients.tls`` — the certificate nginx serves for a name (``ssl``, SNI);
- ``automation.clients.database`` — MariaDB: log-ins and grants (PyMySQL).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from automation.host import HostLayout

T = TypeVar("T")
Shell = Callable[[str], tuple[int, str]]  # a read-only sh script on the host -> (status, output)

TIMEOUT = 5.0  # seconds for one client conversation
# How long a client keeps asking until the service shows a change: Dovecot looks at its
# passwd-file at most once a second, so a new password may be refused for a moment (longer on
# a loaded machine: a CI run saw one refused past 3 s).
SETTLE = 8.0


def eventually(ask: Callable[[], T], done: Callable[[T], bool], within: float = SETTLE) -> T:
    """Ask until ``done(answer)`` or ``within`` seconds passed; the last answer either way."""
    deadline = time.monotonic() + within
    while True:
        answer = ask()
        if done(answer) or time.monotonic() >= deadline:
            return answer
        time.sleep(0.05)


@dataclass(frozen=True)
class Endpoint:
    """Where the clients reach a host's services: its address and its layout's ports, and
    (``shell``) the host's own admin tools over the same SSH connection, for what no network
    client may see (``doveadm quota get``, ``crontab -l -u``): read-only scripts only."""

    address: str
    layout: HostLayout
    shell: Shell | None = None

    def run(self, script: str) -> tuple[int, str]:
        if self.shell is None:
            raise RuntimeError("this endpoint has no shell on the host")
        return self.shell(script)

    def port(self, service: str) -> int:
        return self.layout.service_port(service)
