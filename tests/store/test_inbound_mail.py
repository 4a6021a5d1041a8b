"""A received mail is kept once by its dedupe key, and says whether this delivery was the first."""

from __future__ import annotations

import hashlib

from sqlalchemy import func, select

from store.db import Database
from store.models import InboundMail
from store.models.base import utcnow
from store.repositories.mail import InboundMailRepository


def row(raw: bytes, key: str) -> dict[str, object]:
    return {
        "dedupe_key": key,
        "message_id": key,
        "envelope_from": "ann@customer.example",
        "envelope_to": ["support@sitedesk.test"],
        "from_address": "ann@customer.example",
        "subject": "Site down",
        "size": len(raw),
        "sha256": hashlib.sha256(raw).hexdigest(),
        "raw": raw,
        "created_at": utcnow(),
    }


def test_the_same_dedupe_key_is_kept_once_and_the_second_is_not_new(db: Database) -> None:
    raw = b"Subject: Site down\r\n\r\nIt answers 502.\r\n"
    with db.write() as s:
        first, created = InboundMailRepository(s).store(row(raw, "a1@customer.example"))
        first_id = first.id
    assert created
    with db.write() as s:
        again, created = InboundMailRepository(s).store(row(raw + b"x", "a1@customer.example"))
        assert not created and again.id == first_id and again.raw == raw
        other, created = InboundMailRepository(s).store(row(raw, "a2@customer.example"))
        assert created and other.id != first_id
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(InboundMail)) == 2
