"""The real services' own clients, as a customer's program talks to them, for verifying changes.

A change is "applied" only when the service it is for answers as the change says: an IMAP
login with the new password, an FTP login and listing, a TLS handshake with SNI, a MariaDB
connection with exactly the granted privileges. These run in the executor after the host's
script answered, against the host's address and the ports in its layout (``HostLayout``).

- ``automation.clients.imap`` — Dovecot: log-ins and quotas (``imaplib``);
- ``automation.clients.ftp`` — the FTP server: log-ins and listings (``ftplib``);
- ``automation.clients.tls`` — the certificate nginx serves for a name (``ssl``, SNI);
- ``automation.clients.database`` — MariaDB: log-ins and grants (PyMySQL).
"""

from __future__ import annotations

from dataclasses import dataclass

from automation.host import HostLayout

TIMEOUT = 5.0  # seconds for one client conversation


@dataclass(frozen=True)
class Endpoint:
    """Where the clients reach a host's services: its address and its layout's ports."""

    address: str
    layout: HostLayout

    def port(self, service: str) -> int:
        return self.layout.service_port(service)
