"""TLS certificate install: key matches the certificate, names cover the domain, valid now."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID
from pydantic import Field, SecretStr, ValidationInfo, model_validator

from automation import identifiers
from automation.changes.base import ChangeBase, DomainName, Workspace

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
    kind: Literal["tls_install"] = "tls_install"
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

    def reads(self) -> list[str]:
        return [cert_path(self.domain), key_path(self.domain)]

    def apply(self, ws: Workspace) -> None:
        pem = self.certificate.strip() + "\n"
        ws.write(
            key_path(self.domain), self.private_key.get_secret_value().strip() + "\n", mode=0o600
        )
        ws.write(cert_path(self.domain), pem)
        ws.dirs.add("tls")

    def secret_hashes(self) -> list[str]:
        return [self.private_key.get_secret_value().strip()]

    def describe(self) -> str:
        return f"install the TLS certificate and key for {self.domain}"
