"""All SCDB tables. Importing this module registers every model on `Base.metadata`."""

from store.models.account import Account, Contact, Service
from store.models.audit import AuditLog
from store.models.base import Base
from store.models.call import Call
from store.models.change import ChangeAttempt, ChangeRequest
from store.models.host import ManagedHost
from store.models.idempotency import IdempotencyRecord
from store.models.mail import InboundMail, MailDelivery, MailSuppression
from store.models.outbox import OutboxEvent
from store.models.sla import Holiday, SlaPolicy
from store.models.ticket import Attachment, Message, Ticket, TicketEvent, ticket_number
from store.models.timeline import TimelineEntry
from store.models.user import Agent, ApiToken, User

__all__ = [
    "Account",
    "Agent",
    "ApiToken",
    "Attachment",
    "AuditLog",
    "Base",
    "Call",
    "ChangeAttempt",
    "ChangeRequest",
    "Contact",
    "Holiday",
    "IdempotencyRecord",
    "InboundMail",
    "MailDelivery",
    "MailSuppression",
    "ManagedHost",
    "Message",
    "OutboxEvent",
    "Service",
    "SlaPolicy",
    "Ticket",
    "TicketEvent",
    "TimelineEntry",
    "User",
    "ticket_number",
]
