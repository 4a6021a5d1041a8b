"""Contacts' phones are kept in E.164 (written so, and migrated so by revision 0005), the one
form a caller's number is compared in."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import insert, select

from actors.phone.numbers import to_e164
from store.db import Database
from store.models import Account, Contact
from store.models.base import utcnow
from store.phone import e164, stored_phone
from store.repositories import AccountRepository, CallRepository

BACKENDS = pytest.mark.parametrize("fresh_db_url", ["sqlite", "postgresql"], indirect=True)


def test_the_store_and_the_desk_agree_on_every_valid_number() -> None:
    for raw in ("030 901820", "+49 30 901820", "0049 (30) 90-18-20", "+1 202 555 0101",
                "+44 20 7946 0101", "+41 44 668 18 00"):  # fmt: skip
        assert e164(raw) == to_e164(raw)
    assert e164("+1 555 0101") is None  # too short for the NANP: no E.164 form
    assert e164("call me") is None and e164("") is None and e164(None) is None
    assert stored_phone("call me maybe") == "call me maybe"  # kept as written, never matched
    assert stored_phone("  ") is None


def test_a_contact_is_written_in_e164_and_found_by_any_spelling(db: Database) -> None:
    with db.write() as s:
        accounts = AccountRepository(s)
        account = accounts.create(code="PH-1", name="Phone One", unix_user="phone1")
        accounts.add_contact(account.id, name="Ada", email="ada@x.test", phone="030 901820")
        accounts.add_contact(account.id, name="Bo", email="bo@x.test", phone="ask reception")
    with db.read() as s:
        phones = {c.name: c.phone for c in AccountRepository(s).contacts(account.id)}
        assert phones == {"Ada": "+4930901820", "Bo": "ask reception"}
        found = CallRepository(s).contacts_by_phone(to_e164("+49 (0)30 90 18 20"))
        assert [c.name for c in found] == ["Ada"]


@BACKENDS
def test_migration_0005_normalises_the_phones_it_can_parse(fresh_db_url: str) -> None:
    db = Database(fresh_db_url)
    try:
        db.upgrade("0004")
        with db.write() as s:
            account_id = s.execute(
                insert(Account.__table__)
                .values(code="M-1", name="Migrated", status="active", plan="standard",
                        unix_user="mig1", created_at=_now())
                .returning(Account.__table__.c.id)
            ).scalar_one()  # fmt: skip
            phones = [("a", "030 901820"), ("b", "+1 202-555-0101"), ("c", "not a number"),
                      ("d", None), ("e", "+4930901821")]  # fmt: skip
            for name, phone in phones:
                s.execute(
                    insert(Contact.__table__).values(
                        account_id=account_id, name=name, email=f"{name}@m.test", phone=phone,
                        is_primary=False, created_at=_now(),
                    )
                )  # fmt: skip
        db.upgrade()
        with db.read() as s:
            rows = {name: phone for name, phone in s.execute(select(Contact.name, Contact.phone))}
        assert rows == {
            "a": "+4930901820",
            "b": "+12025550101",
            "c": "not a number",
            "d": None,
            "e": "+4930901821",
        }
    finally:
        db.dispose()


def _now() -> datetime:
    return utcnow()
