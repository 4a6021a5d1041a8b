"""Log-in and bearer tokens; who is calling (customer, agent, admin)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.security import OAuth2PasswordBearer, OAuth2PasswordRequestForm
from pydantic import BaseModel

from actors.dto import Principal
from gateway.errors import ApiError, Forbidden, Unauthorized
from gateway.platform import Platform
from store.models import User
from store.repositories import AgentRepository, AuditRepository, TokenRepository, UserRepository
from store.repositories.user import token_digest

router = APIRouter(prefix="/api/v1", tags=["auth"])
bearer = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)

LOGIN_ATTEMPTS_PER_WINDOW = 10
LOGIN_WINDOW_SECONDS = 300


class TokenOut(BaseModel):
    access_token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret
    expires_in: int
    role: str


class TooManyAttempts(ApiError):
    status_code = 429
    code = "rate_limited"


def platform_of(request: Request) -> Platform:
    platform: Platform = request.app.state.platform
    return platform


PlatformDep = Annotated[Platform, Depends(platform_of)]


def principal_of(platform: Platform, user: User) -> Principal:
    agent_id = tier = None
    if user.role == "agent":
        with platform.db.read() as s:
            agent = AgentRepository(s).by_user(user.id)
        if agent is not None:
            agent_id, tier = agent.id, agent.tier
    return Principal(
        user_id=user.id,
        role=user.role,
        name=user.display_name,
        account_id=user.account_id,
        agent_id=agent_id,
        tier=tier,
    )


@router.post("/auth/token", response_model=TokenOut)
async def login(
    platform: PlatformDep,
    request: Request,
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
) -> TokenOut:
    """Exchange an e-mail address and password for a bearer token (OAuth2 password flow)."""
    assert platform.redis is not None
    client = request.client.host if request.client else "unknown"
    key = f"sitedesk:login:{form.username.lower()}:{client}"
    attempts = await platform.redis.incr(key)
    if attempts == 1:
        await platform.redis.expire(key, LOGIN_WINDOW_SECONDS)
    if attempts > LOGIN_ATTEMPTS_PER_WINDOW:
        raise TooManyAttempts("too many log-in attempts; wait a few minutes and try again")
    ttl = timedelta(hours=platform.settings.token_ttl_hours)

    def check() -> tuple[str, str] | None:
        with platform.db.write() as s:
            audit = AuditRepository(s)
            user = UserRepository(s).authenticate(form.username, form.password)
            if user is None:
                audit.record(
                    actor_label="anonymous", action="login_failed", object_type="user",
                    object_id=form.username.lower()[:64], ip=client,
                )  # fmt: skip
                return None
            token, row = TokenRepository(s).issue(user.id, name="login", ttl=ttl)
            audit.record(
                actor_label=f"{user.role}:{user.email}", actor_user_id=user.id, action="login",
                object_type="user", object_id=user.id, account_id=user.account_id, ip=client,
                data={"token": row.prefix},
            )  # fmt: skip
            return token, user.role

    issued = await asyncio.to_thread(check)
    if issued is None:
        raise Unauthorized("wrong e-mail address or password")
    await platform.redis.delete(key)
    return TokenOut(access_token=issued[0], expires_in=int(ttl.total_seconds()), role=issued[1])


async def current_principal(
    platform: PlatformDep, token: Annotated[str | None, Depends(bearer)]
) -> Principal:
    if not token:
        raise Unauthorized("log in first: send 'Authorization: Bearer <token>'")
    digest = token_digest(token)
    cached = platform.cached_principal(digest)
    if cached is not None:
        return cached

    def resolve() -> Principal | None:
        with platform.db.read() as s:
            found = TokenRepository(s).resolve(token)
            if found is None:
                return None
            return principal_of(platform, found[1])

    principal = await asyncio.to_thread(resolve)
    if principal is None:
        raise Unauthorized("the token is unknown, expired or revoked; log in again")
    platform.cache_principal(digest, principal)
    return principal


Caller = Annotated[Principal, Depends(current_principal)]


def require_staff(caller: Principal) -> None:
    if caller.role not in ("agent", "admin"):
        raise Forbidden("this needs a support agent or an administrator")


@router.post("/auth/logout", status_code=204)
async def logout(
    platform: PlatformDep, caller: Caller, token: Annotated[str | None, Depends(bearer)]
) -> None:
    """Revoke the token this request carries: it stops working at once, on every gateway
    within the token cache's few seconds."""
    assert token is not None

    def revoke() -> None:
        with platform.db.write() as s:
            TokenRepository(s).revoke_token(token)
            AuditRepository(s).record(
                actor_label=caller.label, actor_user_id=caller.user_id, action="logout",
                object_type="user", object_id=caller.user_id or 0, account_id=caller.account_id,
            )  # fmt: skip

    await asyncio.to_thread(revoke)
    platform.forget_token(token_digest(token))


@router.get("/me", response_model=Principal)
async def me(caller: Caller) -> Principal:
    """Who the token belongs to: role, account (customers), agent id and tier (agents)."""
    return caller
