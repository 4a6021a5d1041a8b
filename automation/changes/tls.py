"""TLS certificate install: key matches the certificate, names cover the domain, valid now;
nginx then presents it for the domain's site on the host's HTTPS port.

What is written: ``tls/<domain>.crt`` (leaf first, then the chain), ``tls/<domain>.key`` (mode
0600 in the root-only 0700 ``tls/``: nginx's master reads it as root) and the site's TLS file
``nginx/tls/<domain>.conf`` (``listen ADDRESS:HTTPS_PORT ssl`` and the two paths), which the
domain's vhost server block includes (automation.changes.vhost). The site is the one server
block, so HTTPS serves what HTTP serves. A certificate for a domain with no vhost on the host
is refused: nothing would serve it, and the client check could only fail.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import ClassVar, Literal

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID
from pydantic import Field, SecretStr, ValidationInfo, model_validator

from automation import identifiers
from automation.changes.base import ChangeBase, DomainName, Workspace
from automation.changes.vhost import site_path, tls_include, tls_path
from automation.clients import Endpoint
from automation.clients import tls as tls_client
from automation.errors import ChangeConflict
from automation.host import HostLayout

MAX_PEM = 64 * 1024


def cert_path(domain: str) -> str:
    return f"tls/{domain}.crt"


def key_path(domain: str) -> str:
    return f"tls/{domain}.key"


def _covers(pattern: str, domain: str) -> bool:
    pattern = pattern.lower().rstrip(".")
    if pattern.startswith("*."):
        head, _, rest = domain.partition(".")
        return bool(head) and rest == pattern[2:]
    return pattern == domain


def _pem_text(text: str) -> bool:
    """PEM is printable ASCII in lines; anything else would be written to the host verbatim."""
    return identifiers.is_printable_ascii(text.replace("\r\n", "\n").replace("\n", ""))


def certificate_names(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        return list(san.value.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        return [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]


class TlsInstall(ChangeBase):
    """Install a certificate and its key for a site; nginx presents it for the domain (SNI)."""

    kind: Literal["tls_install"] = "tls_install"
    verified_by: ClassVar[str] = (
        "the web server presents the new certificate for the domain (a TLS handshake naming it)"
    )
    domain: DomainName
    certificate: str = Field(max_length=MAX_PEM, description="PEM, leaf first, then the chain")
    private_key: SecretStr = Field(description="PEM private key, unencrypted")
    secret_fields = ("private_key",)

    @model_validator(mode="after")
    def _check(self, info: ValidationInfo) -> TlsInstall:
        if not _pem_text(self.certificate):
            raise ValueError("certificate: PEM text is printable ASCII lines only")
        if not _pem_text(self.private_key.get_secret_value()):
            raise ValueError("private key: PEM text is printable ASCII lines only")
        try:
            certs = x509.load_pem_x509_certificates(self.certificate.encode())
        except ValueError as exc:
            raise ValueError("certificate: not a PEM certificate") from exc
        try:
            key = serialization.load_pem_private_key(
                self.private_key.get_secret_value().encode(), password=None
            )
        except (ValueError, TypeError) as exc:
            raise ValueError("private key: not an unencrypted PEM private key") from exc
        leaf = certs[0]
        fmt = serialization.PublicFormat.SubjectPublicKeyInfo
        enc = serialization.Encoding.DER
        if key.public_key().public_bytes(enc, fmt) != leaf.public_key().public_bytes(enc, fmt):
            raise ValueError("private key: does not match the certificate")
        names = certificate_names(leaf)
        if not any(_covers(n, self.domain) for n in names):
            raise ValueError(f"certificate: names {names} do not cover {self.domain}")
        if (info.context or {}).get("accepted"):
            return self  # accepted earlier: validity was checked then, not re-checked while queued
        now = dt.datetime.now(dt.UTC)
        if leaf.not_valid_after_utc <= now:
            raise ValueError(f"certificate: expired on {leaf.not_valid_after_utc:%Y-%m-%d}")
        if leaf.not_valid_before_utc > now:
            raise ValueError(f"certificate: not valid before {leaf.not_valid_before_utc:%Y-%m-%d}")
        return self

    def target(self) -> str:
        return f"tls:{self.domain}"

    def observes(self) -> tuple[str, ...]:
        return ("tls", self.domain)

    def reads(self) -> list[str]:
        return [
            cert_path(self.domain),
            key_path(self.domain),
            tls_path(self.domain),
            site_path(self.domain),
        ]

    def services(self, layout: HostLayout) -> set[tuple[str, ...]]:
        layout.service_port("https")  # ServiceMissing on a host without HTTPS
        return {("nginx",)}

    def leaf_sha256(self) -> str:
        """The SHA-256 fingerprint (hex) of the leaf certificate, as a TLS client sees it."""
        leaf = x509.load_pem_x509_certificates(self.certificate.encode())[0]
        return hashlib.sha256(leaf.public_bytes(serialization.Encoding.DER)).hexdigest()

    def apply(self, ws: Workspace) -> None:
        lay = ws.layout
        port = lay.service_port("https")
        site = ws.read(site_path(self.domain))
        if site is None:
            raise ChangeConflict(
                f"there is no site for {self.domain} on this host: create its vhost first "
                "(the certificate is served by the domain's site)"
            )
        if tls_include(lay, self.domain) not in site:
            raise ChangeConflict(
                f"the site for {self.domain} was made before sites served HTTPS: "
                "request its vhost again (vhost_create, same values) to upgrade it"
            )
        pem = self.certificate.strip() + "\n"
        ws.write(
            key_path(self.domain), self.private_key.get_secret_value().strip() + "\n", mode=0o600
        )
        ws.write(cert_path(self.domain), pem)
        ws.dirs.add("tls")
        ws.write(
            tls_path(self.domain),
            f"# managed by GDCAS: TLS for {self.domain}\n"
            f"listen {lay.http_address}:{port} ssl;\n"
            f"ssl_certificate {lay.path(cert_path(self.domain))};\n"
            f"ssl_certificate_key {lay.path(key_path(self.domain))};\n",
        )
        ws.checks.add(("nginx",))  # nginx -t loads the pair: a bad one is never reloaded
        ws.reloads |= self.services(lay)

    def check_by_client(self, at: Endpoint) -> str | None:
        return tls_client.presented_problem(at, self.domain, self.leaf_sha256())

    def secret_hashes(self) -> list[str]:
        return [self.private_key.get_secret_value().strip()]

    def describe(self) -> str:
        return f"install the TLS certificate and key for {self.domain}"
