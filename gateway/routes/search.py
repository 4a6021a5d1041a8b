"""The one search box: tickets by number, subject, messages and contact, and (for staff)
accounts by code, name, contacts and services. Read straight from the search read model."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Query

from gateway.auth import Caller, PlatformDep
from gateway.deps import SearchReadsDep
from gateway.errors import Forbidden, Unprocessable, error_responses
from store.read.search import MAX_LIMIT, InvalidCursor, SearchResults
from store.search import MAX_QUERY_LENGTH

router = APIRouter(prefix="/api/v1", tags=["search"])

SEARCH_ERRORS = error_responses(
    {
        401: "`unauthorized`: not logged in",
        403: "`forbidden`: a customer log-in that is on no account",
        422: f"`invalid_request`: `q` missing, empty or over {MAX_QUERY_LENGTH} characters, "
        f"`limit` not 1 to {MAX_LIMIT}; `invalid_cursor`: a cursor this search did not hand out",
        429: "`rate_limited`: over `SITEDESK_SEARCHES_PER_MINUTE` searches this minute; with "
        "Retry-After",
    }
)


@router.get("/search", response_model=SearchResults, responses=SEARCH_ERRORS)
async def search(
    caller: Caller,
    platform: PlatformDep,
    reads: SearchReadsDep,
    q: Annotated[
        str,
        Query(
            min_length=1,
            max_length=MAX_QUERY_LENGTH,
            description="What the user typed: a ticket number (`TT-000123`, `123`), words of "
            "a subject or message, an account code or name, a contact's name, e-mail or phone "
            "(any spelling), a domain or mailbox. Every word must match (a word's beginning "
            "is enough); quotes and operators are plain characters.",
        ),
    ],
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Results per list.")] = 20,
    cursor: Annotated[
        str | None, Query(max_length=16, description="`next_cursor` of the page before.")
    ] = None,
) -> SearchResults:
    """Search tickets and accounts, best match first: a ticket named by its number, then
    tickets with every word in their subject, then in one message, then those opened by a
    contact that matches; accounts whose code, name, contacts or services hold every word,
    one equal to the query first. Each ticket comes with what matched and a snippet of it.

    Customers search their own account's tickets only, and never internal notes; the
    `accounts` list is for agents and administrators, who search everything."""
    staff = caller.role in ("agent", "admin")
    if not staff and caller.account_id is None:
        raise Forbidden("this log-in is on no account: there is nothing to search")
    if caller.user_id is not None:
        await platform.count_search(caller.user_id)
    try:
        return await asyncio.to_thread(
            reads.search,
            q,
            account_id=None if staff else caller.account_id,
            staff=staff,
            limit=limit,
            cursor=cursor,
        )
    except InvalidCursor as exc:
        raise Unprocessable(str(exc), code="invalid_cursor") from None
