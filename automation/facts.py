"""What a managed host has, read back through the same SSH layer the changes go through: each
kind of fact, the host files it is read from, and how they are read. Read-only.

The service pages show these (what the host has, not what the SCDB remembers), and the drift
report compares them with the SCDB. The zone is read from the name server itself instead
(``changes.dns.served_records``, a zone transfer). A fact's key is validated here, before any
path is made of it: an account's user, or a domain.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from automation import identifiers
from automation.changes.cron import cron_path, served_entries
from automation.changes.database import DATABASES, DB_USERS, databases_of, users_of
from automation.changes.ftp import FTP_PASSWD
from automation.changes.mailbox import (
    FORWARDERS,
    MAIL_PASSWD,
    read_mailboxes,
    served_forwarders,
)
from automation.changes.tls import cert_path

Files = dict[str, str | None]


def _lines(text: str | None) -> list[str]:
    return [line for line in (text or "").split("\n") if line]


def mailboxes(domain: str, files: Files) -> list[dict[str, Any]]:
    """The mailboxes at `domain` in the host's Dovecot passwd-file, with their quotas."""
    out = [
        {"address": box.address, "quota_mb": box.quota_mb}
        for box in read_mailboxes(files[MAIL_PASSWD]).values()
        if box.address.rsplit("@", 1)[-1].lower() == domain
    ]
    return sorted(out, key=lambda m: str(m["address"]))


def ftp_accounts(account: str, files: Files) -> list[dict[str, Any]]:
    """The FTP users of the account (by the account field of the host's FTP passwd file)."""
    out = []
    for line in _lines(files[FTP_PASSWD]):
        fields = line.split(":")
        if len(fields) >= 4 and fields[2] == account:
            out.append({"username": fields[0], "home": ":".join(fields[3:])})
    return sorted(out, key=lambda f: str(f["username"]))


def certificate(domain: str, files: Files) -> list[dict[str, Any]]:
    """The certificate installed for the domain: subject, issuer, validity and SHA-256
    fingerprint (empty when there is none, or when it is not a PEM certificate)."""
    pem = files[cert_path(domain)]
    if not pem:
        return []
    try:
        cert = x509.load_pem_x509_certificate(pem.encode())
    except ValueError:
        return [{"domain": domain, "problem": "not a PEM certificate"}]
    return [
        {
            "domain": domain,
            "subject": cert.subject.rfc4514_string(),
            "issuer": cert.issuer.rfc4514_string(),
            "not_after": cert.not_valid_after_utc.astimezone(UTC).isoformat(),
            "sha256": hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest(),
        }
    ]


def databases(account: str, files: Files) -> list[dict[str, Any]]:
    """The account's databases in the host's files (``db/databases``, ``db/users``: what its
    MariaDB is made to hold by each change), each with its users and their privileges."""
    owners = databases_of(_lines(files[DATABASES]))
    users = users_of(_lines(files[DB_USERS]))
    return [
        {
            "database": db,
            "users": [
                {"username": u.name, "privileges": list(u.privileges)}
                for u in sorted(users.values(), key=lambda u: u.name)
                if u.database == db
            ],
        }
        for db in sorted(d for d, a in owners.items() if a == account)
    ]


@dataclass(frozen=True)
class FactReader:
    check_key: Callable[[str], str]  # the key's canonical form, ValueError when it is not one
    paths: Callable[[str], list[str]]
    read: Callable[[str, Files], list[dict[str, Any]]]


def _domain(value: str) -> str:
    return identifiers.hostname(value).lower()


READERS: dict[str, FactReader] = {
    "cron": FactReader(identifiers.account, lambda a: [cron_path(a)],
                       lambda a, f: served_entries(a, f[cron_path(a)])),
    "forwarders": FactReader(_domain, lambda d: [FORWARDERS],
                             lambda d, f: served_forwarders(d, f[FORWARDERS])),
    "mailboxes": FactReader(_domain, lambda d: [MAIL_PASSWD], mailboxes),
    "ftp_accounts": FactReader(identifiers.account, lambda a: [FTP_PASSWD], ftp_accounts),
    "certificate": FactReader(_domain, lambda d: [cert_path(d)], certificate),
    "databases": FactReader(identifiers.account, lambda a: [DATABASES, DB_USERS], databases),
}  # fmt: skip


def fact_paths(kind: str, key: str) -> tuple[str, list[str]]:
    """The canonical key and the host files a fact of `kind` is read from."""
    reader = READERS[kind]
    canonical = reader.check_key(key)
    return canonical, reader.paths(canonical)


def read_fact(kind: str, key: str, files: Files) -> list[dict[str, Any]]:
    return READERS[kind].read(key, files)
