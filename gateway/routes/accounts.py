"""Accounts: the 360-degree view and the activity timeline."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Query

from actors.accounts.dto import AccountView
from actors.errors import AccountNotFound
from cluster.calls import call
from gateway.auth import Caller, PlatformDep
from gateway.deps import AccountReadsDep
from gateway.errors import error_responses
from gateway.routes.tickets import directory
from gateway.schemas import Id, Page
from store.read.accounts import TimelineEntryRead

router = APIRouter(prefix="/api/v1/accounts", tags=["accounts"])

NOT_FOUND = error_responses({404: "`account_not_found` (also another account's, to customers)"})


def check_access(caller_account: int | None, is_staff: bool, account_id: int) -> None:
    if not is_staff and caller_account != account_id:
        raise AccountNotFound(f"account {account_id} not found")


@router.get("/{account_id}", response_model=AccountView, responses=NOT_FOUND)
async def account_view(
    account_id: Id, caller: Caller, platform: PlatformDep, accounts: AccountReadsDep
) -> AccountView:
    """Everything about an account in one answer: contacts, services, open and past tickets,
    recent infrastructure changes. Customers may read only their own account."""
    check_access(caller.account_id, caller.is_staff, account_id)
    if not await asyncio.to_thread(accounts.exists, account_id):
        raise AccountNotFound(f"account {account_id} not found")
    view: AccountView = await call(directory(platform).sessions_for(account_id).view, account_id)
    return view


@router.get("/{account_id}/timeline", response_model=Page[TimelineEntryRead], responses=NOT_FOUND)
async def timeline(
    account_id: Id,
    caller: Caller,
    accounts: AccountReadsDep,
    before: Annotated[Id | None, Query(description="Continue after this entry id.")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Page[TimelineEntryRead]:
    """The account's activity feed, newest first: every message, state change and change to
    its services. Customers do not see internal entries."""
    check_access(caller.account_id, caller.is_staff, account_id)
    page = await asyncio.to_thread(
        accounts.timeline,
        account_id,
        before=before,
        limit=limit,
        include_internal=caller.is_staff,
    )
    if page is None:
        raise AccountNotFound(f"account {account_id} not found")
    return Page[TimelineEntryRead](items=page.items, limit=limit, next_before=page.next_before)
