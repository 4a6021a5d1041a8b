"""The web server as a TLS client sees it: which certificate it presents for a name (SNI)."""

from __future__ import annotations

import hashlib
import socket
import ssl

from automation.clients import TIMEOUT, Endpoint, eventually


def presented_sha256(at: Endpoint, name: str) -> str:
    """The SHA-256 fingerprint (hex) of the leaf certificate the host's HTTPS port presents in
    a handshake naming ``name`` (SNI). ssl.SSLError when the server refuses the handshake.

    The chain is not validated: the check pins the exact certificate installed, which is
    stronger than trust in a CA (and lets a customer's own or a private CA's certificate pass).
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection((at.address, at.port("https")), timeout=TIMEOUT) as raw,
        context.wrap_socket(raw, server_hostname=name) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    if der is None:
        raise ssl.SSLError(f"the server presented no certificate for {name}")
    return hashlib.sha256(der).hexdigest()


def presented_problem(at: Endpoint, name: str, sha256: str) -> str | None:
    """None once the server presents the certificate with fingerprint ``sha256`` for ``name``
    (asked again for a moment: nginx reloads asynchronously); otherwise what it presented, or
    why the handshake failed."""

    def ask() -> str:
        try:
            got = presented_sha256(at, name)
        except (ssl.SSLError, OSError) as exc:
            return f"the TLS handshake failed: {exc}"
        return "" if got == sha256 else f"it presents {got[:16]}..., not {sha256[:16]}..."

    problem = eventually(ask, lambda p: p == "")
    if not problem:
        return None
    return f"for {name}, the web server at {at.address}:{at.port('https')}: {problem}"
