"""Accounts: the 360-degree view and the activity timeline."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Query

from actors.accounts.dto import AccountView
from cluster.calls import call
from gateway.auth import Caller, PlatformDep
from gateway.errors import NotFound
from gateway.routes.tickets import directory
from gateway.schemas import Page, TimelineEntryRead
from store.models.ticket import ticket_number
from store.repositories import AccountRepository, TimelineRepository

router = APIRouter(prefix="/api/v1/accounts", tags=["accounts"])


def check_access(caller_account: int | None, is_staff: bool, account_id: int) -> None:
    if not is_staff and caller_account != account_id:
        raise NotFound(f"account {account_id} not found")


@router.get("/{account_id}", response_model=AccountView)
async def account_view(account_id: int, caller: Caller, platform: PlatformDep) -> AccountView:
    """Everything about an account in one answer: contacts, services, open and past tickets,
    recent infrastructure changes. Customers may read only their own account."""
    check_access(caller.account_id, caller.is_staff, account_id)
    if not await asyncio.to_thread(platform.reader.account_exists, account_id):
        raise NotFound(f"account {account_id} not found")
    view: AccountView = await call(directory(platform).sessions_for(account_id).view, account_id)
    return view


@router.get("/{account_id}/timeline", response_model=Page[TimelineEntryRead])
async def timeline(
    account_id: int,
    caller: Caller,
    platform: PlatformDep,
    before: Annotated[int | None, Query(description="Continue after this entry id.")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Page[TimelineEntryRead]:
    """The account's activity feed, newest first: every message, state change and change to
    its services. Customers do not see internal entries."""
    check_access(caller.account_id, caller.is_staff, account_id)

    def query() -> Page[TimelineEntryRead]:
        with platform.db.read() as s:
            if AccountRepository(s).find(account_id) is None:
                raise NotFound(f"account {account_id} not found")
            rows = TimelineRepository(s).page(
                account_id, before_id=before, limit=limit + 1, include_internal=caller.is_staff
            )
        more = len(rows) > limit
        rows = rows[:limit]
        items = [
            TimelineEntryRead(
                id=e.id,
                kind=e.kind,
                summary=e.summary,
                ticket_number=ticket_number(e.ticket_id) if e.ticket_id else None,
                change_id=e.change_id,
                actor=e.actor,
                visibility=e.visibility,
                data=e.data,
                created_at=e.created_at,
            )
            for e in rows
        ]
        return Page[TimelineEntryRead](
            items=items, limit=limit, next_before=rows[-1].id if more and rows else None
        )

    return await asyncio.to_thread(query)
