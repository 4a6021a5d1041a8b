"""What a route is handed besides its request: the read models (queries returning DTOs, from
store/read/) as FastAPI `Annotated` dependencies. Routes read through these and write by
calling actors; none of them builds a domain service. The providers are `async def`: FastAPI
runs a plain `def` dependency in its thread pool, a thread hop per request for a lookup."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from gateway.auth import PlatformDep
from store.read.accounts import AccountReads
from store.read.changes import ChangeReads
from store.read.hosts import HostReads
from store.read.queues import QueueReads
from store.read.search import SearchReads
from store.read.tickets import TicketProjection


async def ticket_reads(platform: PlatformDep) -> TicketProjection:
    return platform.reads.tickets


async def account_reads(platform: PlatformDep) -> AccountReads:
    return platform.reads.accounts


async def change_reads(platform: PlatformDep) -> ChangeReads:
    return platform.reads.changes


async def host_reads(platform: PlatformDep) -> HostReads:
    return platform.reads.hosts


async def queue_reads(platform: PlatformDep) -> QueueReads:
    return platform.reads.queues


async def search_reads(platform: PlatformDep) -> SearchReads:
    return platform.reads.search


TicketReadsDep = Annotated[TicketProjection, Depends(ticket_reads)]
AccountReadsDep = Annotated[AccountReads, Depends(account_reads)]
ChangeReadsDep = Annotated[ChangeReads, Depends(change_reads)]
HostReadsDep = Annotated[HostReads, Depends(host_reads)]
QueueReadsDep = Annotated[QueueReads, Depends(queue_reads)]
SearchReadsDep = Annotated[SearchReads, Depends(search_reads)]
