"""Every query of the SCDB lives in a repository. Repositories never commit."""

from store.repositories.account import AccountRepository
from store.repositories.audit import AuditRepository
from store.repositories.call import CallRepository
from store.repositories.change import ChangeRepository
from store.repositories.host import HostRepository
from store.repositories.idempotency import IdempotencyRepository
from store.repositories.mail import InboundMailRepository, SuppressionRepository
from store.repositories.message import MessageRepository
from store.repositories.outbox import OutboxRepository
from store.repositories.search import SearchRepository
from store.repositories.sla import SlaRepository
from store.repositories.ticket import TicketRepository
from store.repositories.ticket_event import TicketEventRepository
from store.repositories.timeline import TimelineRepository
from store.repositories.user import AgentRepository, TokenRepository, UserRepository

__all__ = [
    "AccountRepository",
    "AgentRepository",
    "AuditRepository",
    "CallRepository",
    "ChangeRepository",
    "HostRepository",
    "IdempotencyRepository",
    "InboundMailRepository",
    "MessageRepository",
    "OutboxRepository",
    "SearchRepository",
    "SlaRepository",
    "SuppressionRepository",
    "TicketEventRepository",
    "TicketRepository",
    "TimelineRepository",
    "TokenRepository",
    "UserRepository",
]
