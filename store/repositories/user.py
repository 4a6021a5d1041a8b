"""Queries on users, agents and API tokens."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select

from store.models import Agent, ApiToken, User
from store.models.base import utcnow
from store.models.enums import TokenScope
from store.passwords import hash_password, needs_rehash, verify_password
from store.repositories.base import Repository

TOKEN_PREFIX = "sdt_"  # noqa: S105 - a public prefix, not a secret


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class LoginCandidate:
    """What a log-in needs to check a password, read in a short read: the check (argon2,
    ~0.3 s) then runs with no transaction open."""

    user_id: int
    password_hash: str | None
    active: bool


def check_password(candidate: LoginCandidate | None, password: str) -> tuple[bool, str | None]:
    """(the password is right for an active user, a new hash when the stored one's parameters
    are outdated). Costs the same whether or not the user exists."""
    ok = verify_password(candidate.password_hash if candidate else None, password)
    if not ok or candidate is None or not candidate.active or candidate.password_hash is None:
        return False, None
    return True, hash_password(password) if needs_rehash(candidate.password_hash) else None


class UserRepository(Repository):
    def create(
        self,
        *,
        email: str,
        display_name: str,
        role: str,
        password: str | None = None,
        account_id: int | None = None,
        contact_id: int | None = None,
    ) -> User:
        user = User(
            email=email.lower(),
            display_name=display_name,
            role=role,
            password_hash=hash_password(password) if password else None,
            account_id=account_id,
            contact_id=contact_id,
        )
        self.session.add(user)
        self.session.flush()
        return user

    def get(self, user_id: int) -> User:
        return self._get(User, user_id, "user")

    def find(self, user_id: int) -> User | None:
        return self.session.get(User, user_id)

    def by_email(self, email: str) -> User | None:
        return self.session.scalar(select(User).where(User.email == email.lower()))

    def authenticate(self, email: str, password: str) -> User | None:
        """The active user with this e-mail and password, or None. Same cost either way."""
        user = self.by_email(email)
        ok = verify_password(user.password_hash if user else None, password)
        if not ok or user is None or not user.is_active:
            return None
        if user.password_hash and needs_rehash(user.password_hash):
            user.password_hash = hash_password(password)
        user.last_login_at = utcnow()
        return user

    def login_candidate(self, email: str) -> LoginCandidate | None:
        row = self.session.execute(
            select(User.id, User.password_hash, User.is_active).where(User.email == email.lower())
        ).first()
        return None if row is None else LoginCandidate(row[0], row[1], bool(row[2]))

    def complete_login(
        self, candidate: LoginCandidate, *, new_hash: str | None = None
    ) -> User | None:
        """Record a log-in whose password was checked against `candidate`: the user, unless
        they were deactivated or their password changed meanwhile."""
        user = self.session.get(User, candidate.user_id)
        if user is None or not user.is_active or user.password_hash != candidate.password_hash:
            return None
        if new_hash is not None:
            user.password_hash = new_hash
        user.last_login_at = utcnow()
        return user

    def set_password(self, user: User, password: str) -> None:
        user.password_hash = hash_password(password)

    def credentials(self, user_id: int) -> tuple[str, LoginCandidate] | None:
        """A user's e-mail (what log-in limits count by) and what checking their password
        needs, read in a short read like `login_candidate`."""
        row = self.session.execute(
            select(User.email, User.password_hash, User.is_active).where(User.id == user_id)
        ).first()
        return None if row is None else (row[0], LoginCandidate(user_id, row[1], bool(row[2])))

    def replace_password(self, candidate: LoginCandidate, new_hash: str) -> User | None:
        """Store `new_hash` for a user whose current password was checked against `candidate`;
        None when they were deactivated or their password changed meanwhile."""
        user = self.session.get(User, candidate.user_id)
        if user is None or not user.is_active or user.password_hash != candidate.password_hash:
            return None
        user.password_hash = new_hash
        return user


class AgentRepository(Repository):
    def create(
        self, *, user_id: int, tier: int, skills: list[str] | None = None, capacity: int = 5
    ) -> Agent:
        agent = Agent(user_id=user_id, tier=tier, skills=skills or [], capacity=capacity)
        self.session.add(agent)
        self.session.flush()
        return agent

    def get(self, agent_id: int) -> Agent:
        return self._get(Agent, agent_id, "agent")

    def by_user(self, user_id: int) -> Agent | None:
        return self.session.scalar(select(Agent).where(Agent.user_id == user_id))

    def all(self, tier: int | None = None) -> list[Agent]:
        q = select(Agent).order_by(Agent.id)
        if tier is not None:
            q = q.where(Agent.tier == tier)
        return list(self.session.scalars(q))

    def display_name(self, agent_id: int) -> str | None:
        q = select(User.display_name).join(Agent, Agent.user_id == User.id)
        return self.session.scalar(q.where(Agent.id == agent_id))

    def set_presence(self, agent_id: int, presence: str) -> Agent | None:
        agent = self.session.get(Agent, agent_id)
        if agent is not None:
            agent.presence = presence
        return agent

    def with_users(self, tier: int | None = None) -> list[tuple[Agent, User]]:
        q = select(Agent, User).join(User, User.id == Agent.user_id).order_by(Agent.id)
        if tier is not None:
            q = q.where(Agent.tier == tier)
        return [(a, u) for a, u in self.session.execute(q)]


class TokenRepository(Repository):
    def issue(
        self,
        user_id: int,
        *,
        name: str,
        ttl: timedelta | None = None,
        scopes: Collection[TokenScope] = (TokenScope.api,),
    ) -> tuple[str, ApiToken]:
        """A new bearer token: returns the token itself (shown once) and its stored record."""
        if not scopes:
            raise ValueError("a token needs at least one scope")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        expires = utcnow() + ttl if ttl else None
        row = ApiToken(
            user_id=user_id,
            name=name,
            token_hash=token_digest(token),
            prefix=token[:12],
            expires_at=expires,
            scopes=" ".join(sorted({TokenScope(s).value for s in scopes})),
        )
        self.session.add(row)
        self.session.flush()
        return token, row

    def resolve(
        self, token: str, *, scope: TokenScope = TokenScope.api, now: datetime | None = None
    ) -> tuple[ApiToken, User] | None:
        """The live token and its active user, or None when unknown, expired, revoked or not
        issued for `scope`."""
        q = (
            select(ApiToken, User)
            .join(User, User.id == ApiToken.user_id)
            .where(ApiToken.token_hash == token_digest(token))
        )
        found = self.session.execute(q).first()
        if found is None:
            return None
        row, user = found
        now = now or utcnow()
        if row.revoked_at is not None or not user.is_active:
            return None
        if scope.value not in row.scopes.split():
            return None
        if row.expires_at is not None and row.expires_at <= now:
            return None
        return row, user

    def revoke_token(self, token: str) -> bool:
        """Revoke a token by its value; False when it is unknown."""
        row = self.session.scalar(
            select(ApiToken).where(ApiToken.token_hash == token_digest(token))
        )
        if row is None:
            return False
        row.revoked_at = row.revoked_at or utcnow()
        return True

    def revoke(self, token_id: int) -> None:
        row = self._get(ApiToken, token_id, "token")
        row.revoked_at = utcnow()

    def revoke_all_of(self, user_id: int, *, keep: str | None = None) -> list[ApiToken]:
        """Revoke every live token of a user, log-in and API tokens alike, but the one whose
        digest is `keep`; the tokens revoked (their digests are the gateways' marks)."""
        now = utcnow()
        q = select(ApiToken).where(
            ApiToken.user_id == user_id,
            ApiToken.revoked_at.is_(None),
            or_(ApiToken.expires_at.is_(None), ApiToken.expires_at > now),
        )
        if keep is not None:
            q = q.where(ApiToken.token_hash != keep)
        rows = list(self.session.scalars(q.order_by(ApiToken.id)))
        for row in rows:
            row.revoked_at = now
        return rows

    def live(self) -> list[tuple[ApiToken, User]]:
        """Every token not revoked (expired ones included, to be cleaned up), oldest first."""
        q = (
            select(ApiToken, User)
            .join(User, User.id == ApiToken.user_id)
            .where(ApiToken.revoked_at.is_(None))
            .order_by(ApiToken.id)
        )
        return [(t, u) for t, u in self.session.execute(q)]

    def revoke_prefix(self, prefix: str) -> list[str]:
        """Revoke the live tokens that start with `prefix` (as `live` shows them); their
        digests (for the gateways' revocation marks)."""
        rows = self.session.scalars(
            select(ApiToken).where(ApiToken.prefix == prefix, ApiToken.revoked_at.is_(None))
        ).all()
        for row in rows:
            row.revoked_at = utcnow()
        return [row.token_hash for row in rows]
