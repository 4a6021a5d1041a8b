"""Log-in and bearer tokens; who is calling (customer, agent, admin)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.security import OAuth2PasswordBearer, OAuth2PasswordRequestForm
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from actors.errors import DeskError
from actors.principal import Principal
from gateway.errors import Forbidden, Unauthorized, Unprocessable, error_responses
from gateway.login_guard import LoginGuard
from gateway.platform import Platform
from store.models import User
from store.models.enums import Channel
from store.passwords import hash_password
from store.repositories import AgentRepository, AuditRepository, TokenRepository, UserRepository
from store.repositories.user import LoginCandidate, check_password, token_digest

router = APIRouter(prefix="/api/v1", tags=["auth"])
bearer = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)

# An e-mail address is at most 254 characters (RFC 5321); nothing longer is looked up or
# counted. argon2 pre-hashes the password, but a megabyte of it is still a megabyte to move.
MAX_USERNAME = 254
MAX_PASSWORD = 1024
MIN_NEW_PASSWORD = 12  # characters (NIST SP 800-63B asks for at least 8; we ask a little more)


class TokenOut(BaseModel):
    access_token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret
    expires_in: int
    role: str


async def platform_of(request: Request) -> Platform:
    """The process's platform (async: a plain `def` dependency costs a thread-pool hop)."""
    platform: Platform = request.app.state.platform
    return platform


PlatformDep = Annotated[Platform, Depends(platform_of)]
LOGIN_TOKEN_NAME = "login"  # noqa: S105 - the name log-in gives its tokens (others: API tokens)


def principal_of(s: Session, user: User) -> Principal:
    """Who `user` acts as: their role and account, and for an agent their agent id and tier
    (the HTTP API's log-ins and the batch API's tokens alike)."""
    agent = AgentRepository(s).by_user(user.id) if user.role == "agent" else None
    return Principal(
        user_id=user.id,
        role=user.role,
        name=user.display_name,
        account_id=user.account_id,
        agent_id=agent.id if agent else None,
        tier=agent.tier if agent else None,
    )


@router.post(
    "/auth/token",
    response_model=TokenOut,
    responses={
        401: {"description": "Wrong e-mail address or password (`unauthorized`)"},
        422: {
            "description": "`invalid_username`: empty, over 254 characters or with control "
            "characters; `invalid_password`: over 1024 characters; `invalid_request`"
        },
        429: {
            "description": "`login_locked`, `login_rate_limited`, `login_throttled`; "
            "with Retry-After"
        },
        503: {"description": "`login_busy`: too many log-ins at once; with Retry-After"},
    },
)
async def login(
    platform: PlatformDep,
    request: Request,
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
) -> TokenOut:
    """Exchange an e-mail address and password for a bearer token (OAuth2 password flow).

    Failed log-ins lock the account for a while (429 `login_locked`, doubling with each further
    failure), as do too many from one address or on the whole desk; while the gateway checks
    many passwords at once it answers 503 `login_busy`. Both carry `Retry-After`."""
    username, password = form.username.strip(), form.password
    if len(username) > MAX_USERNAME or not username:
        raise Unprocessable(
            f"the username must be an e-mail address of 1 to {MAX_USERNAME} characters",
            code="invalid_username",
            detail=[{"field": "username", "problem": f"at most {MAX_USERNAME} characters"}],
        )
    if not username.isprintable():  # PostgreSQL refuses a NUL in text: that was a 500
        raise Unprocessable(
            "the username must be an e-mail address: no control characters",
            code="invalid_username",
            detail=[{"field": "username", "problem": "control characters"}],
        )
    if len(password) > MAX_PASSWORD:
        raise Unprocessable(
            f"the password is longer than {MAX_PASSWORD} characters",
            code="invalid_password",
            detail=[{"field": "password", "problem": f"at most {MAX_PASSWORD} characters"}],
        )
    guard = platform.logins
    assert guard is not None
    client = request.client.host if request.client else "unknown"
    await guard.check(username, client)
    async with guard.hashing_slot():
        await guard.check(username, client)  # failures may have come in while this waited
        ok, candidate, new_hash = await asyncio.to_thread(verify, platform, username, password)
    ttl = timedelta(hours=platform.settings.token_ttl_hours)
    issued = None
    if ok and candidate is not None:
        issued = await asyncio.to_thread(
            issue_token, platform, candidate, new_hash, ttl=ttl, client=client
        )
    if issued is None:
        await failed_login(platform, guard, username, client)
        raise Unauthorized("wrong e-mail address or password")
    await guard.succeeded(username)
    return TokenOut(access_token=issued[0], expires_in=int(ttl.total_seconds()), role=issued[1])


def verify(
    platform: Platform, username: str, password: str
) -> tuple[bool, LoginCandidate | None, str | None]:
    """Read the stored hash in a short read, then check the password with no transaction
    open: a flood of log-ins never holds the database (on SQLite: its one write lock)."""
    with platform.db.read() as s:
        candidate = UserRepository(s).login_candidate(username)
    ok, new_hash = check_password(candidate, password)
    return ok, candidate, new_hash


def issue_token(
    platform: Platform,
    candidate: LoginCandidate,
    new_hash: str | None,
    *,
    ttl: timedelta,
    client: str,
) -> tuple[str, str] | None:
    """The short write of a successful log-in: the token and the audit entry."""
    with platform.db.write() as s:
        user = UserRepository(s).complete_login(candidate, new_hash=new_hash)
        if user is None:  # deactivated, or the password changed, since it was read
            return None
        token, row = TokenRepository(s).issue(user.id, name=LOGIN_TOKEN_NAME, ttl=ttl)
        AuditRepository(s).record(
            actor_label=f"{user.role}:{user.email}", actor_user_id=user.id, action="login",
            object_type="user", object_id=user.id, account_id=user.account_id, ip=client,
            data={"token": row.prefix},
        )  # fmt: skip
        return token, user.role


async def failed_login(platform: Platform, guard: LoginGuard, username: str, client: str) -> None:
    await guard.failed(username, client)

    def record() -> None:
        with platform.db.write() as s:
            AuditRepository(s).record(
                actor_label="anonymous", action="login_failed", object_type="user",
                object_id=username.lower()[:64], ip=client,
            )  # fmt: skip

    await asyncio.to_thread(record)


async def current_principal(
    platform: PlatformDep, token: Annotated[str | None, Depends(bearer)]
) -> Principal:
    if not token:
        raise Unauthorized("log in first: send 'Authorization: Bearer <token>'")
    digest = token_digest(token)
    cached = platform.cached_principal(digest)
    if cached is not None:
        if not await platform.revoked(digest):  # logged out on another gateway
            return cached
        platform.forget_token(digest)

    def resolve() -> Principal | None:
        with platform.db.read() as s:
            found = TokenRepository(s).resolve(token)
            if found is None:
                return None
            via = Channel.portal if found[0].name == LOGIN_TOKEN_NAME else Channel.api
            return principal_of(s, found[1]).model_copy(update={"via": via})

    principal = await asyncio.to_thread(resolve)
    if principal is None:
        raise Unauthorized("the token is unknown, expired or revoked; log in again")
    platform.cache_principal(digest, principal)
    return principal


Caller = Annotated[Principal, Depends(current_principal)]


def require_staff(caller: Principal) -> None:
    if caller.role not in ("agent", "admin"):
        raise Forbidden("this needs a support agent or an administrator")


def require_admin(caller: Principal, what: str = "this") -> None:
    if caller.role != "admin":
        raise Forbidden(f"{what} is for administrators")


@router.post("/auth/logout", status_code=204)
async def logout(
    platform: PlatformDep, caller: Caller, token: Annotated[str | None, Depends(bearer)]
) -> None:
    """Revoke the token this request carries: it stops working at once, on every gateway."""
    assert token is not None

    def revoke() -> None:
        with platform.db.write() as s:
            TokenRepository(s).revoke_token(token)
            AuditRepository(s).record(
                actor_label=caller.label, actor_user_id=caller.user_id, action="logout",
                object_type="user", object_id=caller.user_id or 0, account_id=caller.account_id,
            )  # fmt: skip

    await asyncio.to_thread(revoke)
    await platform.revoke_everywhere(token_digest(token))


class SignedOut(BaseModel):
    sessions: int = Field(description="Log-in tokens revoked (the portal, the console, ...).")
    api_tokens: int = Field(description="API tokens revoked (`sitedesk token create`).")


def revoke_tokens_of(
    s: Session, caller: Principal, *, keep: str | None, action: str, client: str
) -> tuple[list[str], SignedOut]:
    """In the caller's unit of work `s`: every live token of the caller but `keep` revoked,
    and the audit entry; the digests (for the gateways' marks) and how many of each kind."""
    assert caller.user_id is not None
    rows = TokenRepository(s).revoke_all_of(caller.user_id, keep=keep)
    sessions = sum(1 for r in rows if r.name == LOGIN_TOKEN_NAME)
    AuditRepository(s).record(
        actor_label=caller.label, actor_user_id=caller.user_id, action=action,
        object_type="user", object_id=caller.user_id, account_id=caller.account_id, ip=client,
        data={"revoked": [r.prefix for r in rows]},
    )  # fmt: skip
    return [r.token_hash for r in rows], SignedOut(
        sessions=sessions, api_tokens=len(rows) - sessions
    )


@router.post(
    "/auth/logout-all",
    response_model=SignedOut,
    responses=error_responses({401: "`unauthorized`: no valid token"}),
)
async def logout_all(
    platform: PlatformDep,
    caller: Caller,
    request: Request,
    token: Annotated[str | None, Depends(bearer)],
) -> SignedOut:
    """Sign out everywhere: every token of the caller is revoked at once, on every gateway,
    the one this request carries included, and their open live streams end. That is every
    log-in (each browser and device) and the caller's API tokens as well: an API token acts
    with all of its user's rights, so "everywhere" leaves none of them working (issue a new
    one with `sitedesk token create`). Answers how many of each were revoked."""
    assert token is not None and caller.user_id is not None  # a token is a user's
    client = request.client.host if request.client else "unknown"

    def revoke() -> tuple[list[str], SignedOut]:
        with platform.db.write() as s:
            return revoke_tokens_of(s, caller, keep=None, action="logout_all", client=client)

    digests, out = await asyncio.to_thread(revoke)
    await platform.revoke_everywhere(*dict.fromkeys([token_digest(token), *digests]))
    return out


class PasswordChange(BaseModel):
    # Not stripped, not normalised: a password is checked exactly as typed, as log-in does.
    model_config = ConfigDict(extra="forbid")

    current_password: str = Field(min_length=1, max_length=MAX_PASSWORD)
    new_password: str = Field(
        min_length=1,
        max_length=MAX_PASSWORD,
        description=f"At least {MIN_NEW_PASSWORD} characters, not the e-mail address, not the "
        "current password.",
    )


class PasswordChanged(BaseModel):
    signed_out: SignedOut = Field(description="The caller's other tokens, now revoked.")


class WrongPassword(DeskError):
    code, status = "wrong_password", 403


class WeakPassword(DeskError):
    code, status = "weak_password", 422


class PasswordChangedMeanwhile(DeskError):
    code, status = "password_changed_meanwhile", 409


def weak_password_problem(new: str, *, email: str) -> str | None:
    """Why `new` is refused as a password, or None. Length and the e-mail address only: rules
    of composition make passwords weaker, not stronger (NIST SP 800-63B)."""
    if len(new) < MIN_NEW_PASSWORD:
        return f"at least {MIN_NEW_PASSWORD} characters"
    if new.strip().casefold() == email.strip().casefold():
        return "must not be the e-mail address"
    return None


def _weak(problem: str) -> WeakPassword:
    return WeakPassword(
        f"the new password is too weak: {problem}",
        detail=[{"field": "new_password", "problem": problem}],
    )


@router.post(
    "/me/password",
    response_model=PasswordChanged,
    responses=error_responses(
        {
            401: "`unauthorized`: no valid token",
            403: "`wrong_password`: the current password is wrong (it counts as a failed "
            "log-in of the account)",
            409: "`password_changed_meanwhile`: another request changed it first",
            422: "`weak_password` (too short, the e-mail address, the current one; `detail` "
            "names `new_password`), `invalid_request`",
            429: "`login_locked`, `login_rate_limited`, `login_throttled`: too many failed "
            "log-ins; with Retry-After",
            503: "`login_busy`: too many passwords being checked; with Retry-After",
        }
    ),
)
async def change_password(
    body: PasswordChange,
    platform: PlatformDep,
    caller: Caller,
    request: Request,
    token: Annotated[str | None, Depends(bearer)],
) -> PasswordChanged:
    """Change your own password. The current password is checked as log-in checks it (a
    wrong one counts toward the account's log-in lock); the new one needs at least 12
    characters and may be neither the e-mail address nor the current password. Every other
    token of yours (your other log-ins, and your API tokens) is revoked at once on every
    gateway; the one this request carries keeps working."""
    assert token is not None and caller.user_id is not None  # a token is a user's
    found = await asyncio.to_thread(_credentials, platform, caller.user_id)
    if found is None:
        raise Unauthorized("the token is unknown, expired or revoked; log in again")
    email, candidate = found
    problem = weak_password_problem(body.new_password, email=email)
    if problem is not None:
        raise _weak(problem)
    guard = platform.logins
    assert guard is not None
    client = request.client.host if request.client else "unknown"
    await guard.check(email, client)  # a locked account is not unlocked by guessing here

    def check_and_hash() -> tuple[bool, str | None]:
        ok, _ = check_password(candidate, body.current_password)
        if not ok or body.new_password == body.current_password:
            return ok, None
        return ok, hash_password(body.new_password)

    async with guard.hashing_slot():
        await guard.check(email, client)
        ok, new_hash = await asyncio.to_thread(check_and_hash)
    if not ok:
        await guard.failed(email, client)
        await asyncio.to_thread(_record_failed_change, platform, caller, client)
        raise WrongPassword(
            "the current password is wrong",
            detail=[{"field": "current_password", "problem": "wrong password"}],
        )
    await guard.succeeded(email)
    if new_hash is None:
        raise _weak("must not be the current password")
    stored = await asyncio.to_thread(
        _store_password, platform, caller, candidate, new_hash, token_digest(token), client
    )
    if stored is None:
        raise PasswordChangedMeanwhile(
            "the password was changed by another request meanwhile; log in again if needed"
        )
    revoked, signed_out = stored
    await platform.revoke_everywhere(*revoked)
    return PasswordChanged(signed_out=signed_out)


def _credentials(platform: Platform, user_id: int) -> tuple[str, LoginCandidate] | None:
    with platform.db.read() as s:
        return UserRepository(s).credentials(user_id)


def _store_password(
    platform: Platform,
    caller: Principal,
    candidate: LoginCandidate,
    new_hash: str,
    keep: str,
    client: str,
) -> tuple[list[str], SignedOut] | None:
    """One unit of work: the new hash (unless the password changed since it was checked),
    the caller's other tokens revoked, the audit entry."""
    with platform.db.write() as s:
        if UserRepository(s).replace_password(candidate, new_hash) is None:
            return None
        return revoke_tokens_of(s, caller, keep=keep, action="password_changed", client=client)


def _record_failed_change(platform: Platform, caller: Principal, client: str) -> None:
    with platform.db.write() as s:
        AuditRepository(s).record(
            actor_label=caller.label, actor_user_id=caller.user_id,
            action="password_change_failed", object_type="user", object_id=caller.user_id,
            account_id=caller.account_id, ip=client,
        )  # fmt: skip


@router.get("/me", response_model=Principal)
async def me(caller: Caller) -> Principal:
    """Who the token belongs to: role, account (customers), agent id and tier (agents)."""
    return caller
