"""The desk's own Message-IDs, signed: ``<tt.123.o.456.MAC@domain>`` names the ticket (and the
outbox row that sent the mail), and the MAC, a truncated HMAC-SHA256 keyed by a server secret,
proves the desk made it. A reply that carries one in In-Reply-To/References belongs to that
ticket; a forged or altered id is not ours."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Iterable
from typing import NamedTuple

MIN_SECRET_BYTES = 16
MAX_OWN_ID_CHARS = 200  # ours are far shorter; anything longer is not ours, unread
MAX_IDS_CHECKED = 100  # of one mail's In-Reply-To and References, newest first
_MAC_BYTES = 15  # 120 bits, 24 base32 characters without padding
_MAC_CHARS = 24
_CONTEXT = b"sitedesk/message-id/1"  # domain separation: this key signs nothing else this way

_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_DOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})*", re.ASCII)
_NUMBER = r"[1-9][0-9]{0,17}"  # no leading zeros: one spelling per id
_OWN_ID = re.compile(
    rf"tt\.(?P<ticket>{_NUMBER})(?:\.o\.(?P<outbox>{_NUMBER}))?"
    rf"\.(?P<mac>[a-z2-7]{{{_MAC_CHARS}}})@(?P<domain>{_DOMAIN.pattern})",
    re.ASCII,
)


class OwnId(NamedTuple):
    """What an authentic id of ours says: the ticket, and the outbox row that sent the mail."""

    ticket_id: int
    outbox_id: int | None


def make_message_id(secret: bytes, *, ticket_id: int, outbox_id: int | None, domain: str) -> str:
    """A signed Message-ID, with angle brackets, for a mail about `ticket_id`. With an
    `outbox_id` it is unique per outgoing mail (a resent row gets the same id, so a crash
    between send and record never doubles a mail at the receiver)."""
    _check_secret(secret)
    if ticket_id < 1 or (outbox_id is not None and outbox_id < 1):
        raise ValueError("ticket and outbox ids are positive")
    host = domain.strip().lower()
    if not _DOMAIN.fullmatch(host):
        raise ValueError(f"not a domain name for a Message-ID: {domain!r}")
    outbox = f".o.{outbox_id}" if outbox_id is not None else ""
    value = f"tt.{ticket_id}{outbox}.{_mac(secret, ticket_id, outbox_id, host)}@{host}"
    if len(value) > MAX_OWN_ID_CHARS:
        raise ValueError("the domain is too long for a Message-ID of ours")
    return f"<{value}>"


def parse_own_message_id(secret: bytes, value: str) -> OwnId | None:
    """The ticket and outbox row of an authentic id of ours (with or without angle brackets);
    None for anyone else's id and for a forged or altered one."""
    _check_secret(secret)
    if len(value) > MAX_OWN_ID_CHARS + 2 or not value.isascii():
        return None
    text = value.strip()
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1]
    m = _OWN_ID.fullmatch(text.lower())  # base32 and domains are case-insensitive
    if m is None:
        return None
    ticket_id = int(m["ticket"])
    outbox_id = int(m["outbox"]) if m["outbox"] else None
    expected = _mac(secret, ticket_id, outbox_id, m["domain"])
    if not hmac.compare_digest(expected, m["mac"]):
        return None
    return OwnId(ticket_id=ticket_id, outbox_id=outbox_id)


def is_own_message_id(secret: bytes, value: str) -> bool:
    """Whether `value` is an authentic id of ours (for loop protection's hook)."""
    return parse_own_message_id(secret, value) is not None


def own_ids(secret: bytes, in_reply_to: Iterable[str], references: Iterable[str]) -> list[OwnId]:
    """Our authentic ids among a mail's In-Reply-To and References, most telling first: the
    direct parent (In-Reply-To), then References newest first; each once, bounded in count."""
    candidates = [*in_reply_to, *reversed(list(references))]
    found: list[OwnId] = []
    for value in list(dict.fromkeys(candidates))[:MAX_IDS_CHECKED]:
        own = parse_own_message_id(secret, value)
        if own is not None and own not in found:
            found.append(own)
    return found


def _mac(secret: bytes, ticket_id: int, outbox_id: int | None, domain: str) -> str:
    fields = f"{ticket_id}\n{outbox_id if outbox_id is not None else '-'}\n{domain}"
    digest = hmac.new(secret, _CONTEXT + b"\n" + fields.encode("ascii"), hashlib.sha256).digest()
    return base64.b32encode(digest[:_MAC_BYTES]).decode("ascii").lower()


def _check_secret(secret: bytes) -> None:
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError(f"the Message-ID secret needs at least {MIN_SECRET_BYTES} bytes")
