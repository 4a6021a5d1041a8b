"""Read models: the queries the gateway (and the actors' answers) read through, each returning
the DTOs its module defines. Nothing here writes; every write goes through an actor.

``tickets`` (a ticket's public view and detail), ``accounts`` (existence, the timeline),
``changes`` (a change as staff and as its customer see it), ``hosts`` (the managed hosts),
``queues`` (a tier's waiting tickets and its agents), ``search`` (one search box over tickets
and accounts).
"""

from __future__ import annotations

from store.db import Database
from store.read.accounts import AccountReads
from store.read.changes import ChangeReads
from store.read.hosts import HostReads
from store.read.queues import QueueReads
from store.read.search import SearchReads
from store.read.tickets import TicketProjection


class ReadModels:
    """The read models of one process, over one database (the owner-name cache is shared)."""

    def __init__(self, db: Database) -> None:
        self.tickets = TicketProjection(db)
        self.accounts = AccountReads(db)
        self.changes = ChangeReads(db)
        self.hosts = HostReads(db)
        self.queues = QueueReads(db, self.tickets)
        self.search = SearchReads(db)
