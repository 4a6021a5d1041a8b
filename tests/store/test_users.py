"""Passwords are argon2 hashes; API tokens are unguessable and stored only as digests."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from store.db import Database
from store.models import ApiToken, User
from store.models.base import utcnow
from store.repositories import TokenRepository, UserRepository
from tests.factories import make_account, make_customer


def test_password_is_stored_as_argon2id_and_checked(db: Database) -> None:
    with db.write() as s:
        user = make_customer(s, make_account(s), email="Ada@Example.test", password="s3cret pw")
    with db.read() as s:
        stored = s.scalar(select(User.password_hash).where(User.id == user.id))
    assert stored is not None and stored.startswith("$argon2id$") and "s3cret" not in stored
    with db.write() as s:
        users = UserRepository(s)
        assert users.authenticate("ada@example.test", "s3cret pw") is not None
        assert users.authenticate("ada@example.test", "wrong") is None
        assert users.authenticate("nobody@example.test", "s3cret pw") is None


def test_tokens_resolve_until_revoked_or_expired(db: Database) -> None:
    with db.write() as s:
        user = make_customer(s, make_account(s))
        token, row = TokenRepository(s).issue(user.id, name="cli", ttl=timedelta(hours=1))
        other, _ = TokenRepository(s).issue(user.id, name="other")
    assert token != other and len(token) > 40
    with db.read() as s:
        stored = list(s.scalars(select(ApiToken.token_hash)))
        assert token not in stored
        found = TokenRepository(s).resolve(token)
        assert found is not None and found[1].id == user.id
        assert TokenRepository(s).resolve(token, now=utcnow() + timedelta(hours=2)) is None
        assert TokenRepository(s).resolve(token + "x") is None
    with db.write() as s:
        TokenRepository(s).revoke(row.id)
    with db.read() as s:
        assert TokenRepository(s).resolve(token) is None
        assert TokenRepository(s).resolve(other) is not None
