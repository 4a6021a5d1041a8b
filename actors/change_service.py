"""Change requests to customers' hosting as units of work on the SCDB.

Creating a change validates it with the GDCAS catalog, checks who may ask for it on which
service, and writes the request, its timeline entry (and outbox row), the ticket's move to
`pending_change` and the idempotency record in one transaction. Recording an outcome writes the
change's status, the attempt, the timeline entry and outbox row, the ticket's way back to `open`
and, when a customer's self-service change failed, a tier-1 ticket with the failure attached -
again in one transaction, and only once per change (a conditional UPDATE on the status).

The change id (a UUID) is also the id in the host's journal, so a change handed to an executor
twice is applied once. Secrets never rest in the SCDB in clear: passwords are stored as the
Argon2id hash that goes to the host (see ``stored_params``).
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field, TypeAdapter, ValidationError
from sqlalchemy.orm import Session

from actors.config import ActorConfig
from actors.dto import (
    CUSTOMER_ERROR,
    SYSTEM,
    NewTicket,
    Params,
    Principal,
    QueuedTicket,
    scrub,
)
from actors.errors import DeskError, InvalidTransition, NotAllowed, RateLimited
from actors.idempotency import earlier_answer, remember_answer
from actors.ticket_service import TicketService
from automation.changes import (
    CHANGE_KINDS,
    CUSTOMER_SELF_SERVICE_KINDS,
    Change,
    parse_change,
)
from automation.errors import ChangeValidationError
from automation.executor import ChangeOutcome
from automation.executor import ChangeRequest as HostChange
from automation.host import HostLayout, HostSpec
from store.db import Database
from store.models import Account, ChangeRequest, ManagedHost, Service, Ticket
from store.models.base import utcnow
from store.models.enums import Channel, Priority
from store.models.ticket import ticket_id_from_number, ticket_number
from store.repositories import (
    AccountRepository,
    AuditRepository,
    ChangeRepository,
    HostRepository,
    TicketRepository,
    TimelineRepository,
)
from store.repositories.ticket import NewAttachment

PENDING = ("queued", "applying")
SECRETS_KEY = "_secret_hashes"
# Kinds whose secret goes to the host only as a hash; for the others (a TLS private key) the
# secret itself must reach the host, so it is kept in the SCDB, the one system of record.
_KEPT_SECRETS = {"tls_install"}  # ... until the change settles: then scrub_kept_secrets
SCRUBBED = "(removed once applied)"
STATUS_OF_OUTCOME = {
    "applied": "applied",
    "already_applied": "applied",
    "failed": "failed",
    "rolled_back": "rolled_back",
    "unknown": "failed",
}
# What each staff tier may ask GDCAS for (administrators: everything). Level 1 handles the
# everyday mail and FTP work beside the self-service kinds; sites, databases and certificates
# are level 2's; suspending an account is level 3's.
_TIER1_KINDS = CUSTOMER_SELF_SERVICE_KINDS | {
    "mailbox_create", "mailbox_delete", "mail_forwarder_add", "mail_forwarder_delete",
    "ftp_account_create",
}  # fmt: skip
_TIER2_KINDS = _TIER1_KINDS | {
    "vhost_create", "vhost_delete", "database_create", "database_user_create", "tls_install",
}  # fmt: skip
KINDS_BY_TIER: dict[int, frozenset[str]] = {
    1: frozenset(_TIER1_KINDS),
    2: frozenset(_TIER2_KINDS),
    3: frozenset(CHANGE_KINDS),
}
CUSTOMER_OUTPUT = {
    "applied": "Applied.",
    "already_applied": "Applied.",
    "failed": "Not applied.",
    "rolled_back": "Undone.",
    "unknown": "Not confirmed; support will check.",
}
RECORD_TRIES = 3  # a change's outcome that fails to record this often is dead-lettered
CATEGORY_OF_KIND = {
    "dns": "dns", "mailbox": "email", "mail": "email", "ftp": "ftp", "vhost": "web", "tls": "tls",
    "database": "database", "cron": "web",
}  # fmt: skip


# -- errors ------------------------------------------------------------------------------------
class ChangeNotFound(DeskError):
    code, status = "not_found", 404


class InvalidChange(DeskError):
    """The parameters are not a valid change; ``errors`` holds one message per problem."""

    code, status = "invalid_change", 422

    def __init__(self, message: str, errors: list[str] | None = None) -> None:
        super().__init__(message)
        self.errors = list(errors or [message])
        self.args = (message, self.errors)


class HostUnavailable(DeskError):
    code, status = "host_unavailable", 503


class HostExists(DeskError):
    code, status = "conflict", 409


# -- what crosses the boundaries ----------------------------------------------------------------
def _change_kind(value: str) -> str:
    if not re.fullmatch(r"[a-z][a-z_]{0,47}", value):
        raise ValueError("a change kind is 1-48 lower-case letters or '_', e.g. dns_record_add")
    return value


class NewChange(BaseModel):
    """What a caller asks for: a change of `kind` with `params` on one of an account's services."""

    service_id: int
    kind: Annotated[str, AfterValidator(lambda v: _change_kind(v))]
    params: Params = Field(default_factory=dict)
    account_id: int | None = None
    ticket: str | None = None  # a ticket number (TT-000123): agents link their changes


class AttemptRead(BaseModel):
    attempt: int
    outcome: str
    finished_at: datetime | None
    output: str
    error: str | None


class ChangeDetail(BaseModel):
    id: str
    account_id: int
    service_id: int | None
    kind: str
    status: str
    source: str
    host: str | None
    host_id: int | None
    ticket_number: str | None
    params: dict[str, Any]
    error: str | None
    created_at: datetime
    updated_at: datetime
    applied_at: datetime | None
    attempts: list[AttemptRead] = Field(default_factory=list)
    replayed: bool = False


class ChangePlan(BaseModel):
    """A dry run: `summary` says in words what would change; `plan` is the exact host script,
    for staff only (it holds other tenants' lines of shared files such as a passwd file)."""

    dry_run: bool = True
    kind: str
    service_id: int
    host: str
    summary: str
    plan: str | None = None


class NewHost(BaseModel):
    name: str
    address: str
    ssh_port: int = 22
    ssh_user: str = "root"
    role: str = "shared"
    host_key: str
    credentials_ref: str
    root_dir: str
    layout: dict[str, Any] = Field(default_factory=dict)


class HostHealth(BaseModel):
    # up, down, host_key_mismatch, lock_busy (someone holds the automation lock too long),
    # stopped, unknown (no executor has it)
    state: str
    queued: int = 0
    last_error: str | None = None
    lock_busy_since: datetime | None = None


class HostRead(BaseModel):
    id: int
    name: str
    address: str
    ssh_port: int
    ssh_user: str
    role: str
    status: str
    host_key: str
    credentials_ref: str
    root_dir: str
    layout: dict[str, Any]
    pending_changes: int = 0
    health: HostHealth | None = None


@dataclass
class Prepared:
    """A change that passed validation and the access rules, ready to be recorded or planned."""

    account_id: int
    service_id: int
    host_id: int
    host_name: str
    ticket_id: int | None
    change: Change
    source: str


@dataclass
class Recorded:
    """What the actors must hear after outcomes were committed."""

    tickets: list[QueuedTicket] = field(default_factory=list)
    accounts: set[int] = field(default_factory=set)
    settled: list[str] = field(default_factory=list)


# -- secrets at rest ---------------------------------------------------------------------------
def stored_params(change: Change) -> dict[str, Any]:
    """The change's parameters as stored: secrets masked, hashed secrets kept as their hash."""
    data = change.model_dump(mode="json")  # SecretStr dumps as "**********"
    data.pop("kind", None)
    if change.kind in _KEPT_SECRETS:
        for name in change.secret_fields:
            data[name] = getattr(change, name).get_secret_value()
    elif change.secret_fields:
        data[SECRETS_KEY] = {name: change.secret_hash(name) for name in change.secret_fields}
    return data


def scrub_kept_secrets(params: dict[str, Any]) -> dict[str, Any]:
    """The parameters of a settled change without the secrets that had to reach the host
    (a TLS private key), each replaced by its SHA-256 so it can still be recognised."""
    data = dict(params)
    for name in ("private_key",):
        value = data.get(name)
        if isinstance(value, str) and value != SCRUBBED:
            data[name] = SCRUBBED
            data[f"{name}_sha256"] = hashlib.sha256(value.encode()).hexdigest()
    return data


_STORED: TypeAdapter[Change] = TypeAdapter(Change)
# Validation context of a change accepted earlier: rules that depend on the time of day (a TLS
# certificate's validity) were checked when it was requested and are not checked again, so a
# change queued while its certificate expires is still applied and recorded.
ACCEPTED = {"accepted": True}


def rebuild_change(kind: str, params: dict[str, Any]) -> Change:
    """The change again from its stored parameters, with the same secret hashes as before."""
    data = dict(params)
    hashes = data.pop(SECRETS_KEY, {})
    try:
        change = _STORED.validate_json(json.dumps({**data, "kind": kind}), context=ACCEPTED)
    except ValidationError as exc:
        raise ChangeValidationError(kind, [e["msg"] for e in exc.errors()]) from None
    change._hashes.update(hashes)
    return change


def describe_stored(kind: str, params: dict[str, Any]) -> str:
    """What a stored change does, in words; never raises (a record must not fail on it)."""
    try:
        return rebuild_change(kind, params).describe()
    except Exception:
        return f"{kind.replace('_', ' ')} change"


def clean_output(text: str) -> str:
    """Host output as stored: PostgreSQL refuses NUL in text, so it is shown as U+FFFD."""
    return text.replace("\x00", "\ufffd")


def public_params(kind: str, params: dict[str, Any]) -> dict[str, Any]:
    data = {k: v for k, v in params.items() if k != SECRETS_KEY}
    if kind in _KEPT_SECRETS:
        for name in ("private_key",):
            if name in data:
                data[name] = "**********"
    return data


# -- hosts ---------------------------------------------------------------------------------
def host_spec(row: ManagedHost) -> HostSpec:
    """How the executor sees a managed host: services_meta holds the layout beside the root."""
    meta = json.loads(row.services_meta) if row.services_meta else {}
    layout = HostLayout(root=row.root_dir, **meta)
    return HostSpec(
        host_id=row.name,
        address=row.address,
        port=row.ssh_port,
        user=row.ssh_user,
        host_key=row.host_key,
        private_key_path=row.credentials_ref,
        layout=layout,
    )


def host_read(row: ManagedHost, pending: int = 0, health: HostHealth | None = None) -> HostRead:
    return HostRead(
        id=row.id,
        name=row.name,
        address=row.address,
        ssh_port=row.ssh_port,
        ssh_user=row.ssh_user,
        role=row.role,
        status=row.status,
        host_key=row.host_key,
        credentials_ref=row.credentials_ref,
        root_dir=row.root_dir,
        layout=json.loads(row.services_meta) if row.services_meta else {},
        pending_changes=pending,
        health=health,
    )


# -- the access rules ----------------------------------------------------------------------
CHANGE_FIELDS = {k: tuple(cls.model_fields) for k, cls in CHANGE_KINDS.items()}


def _domain_of(service: Service) -> str:
    return service.name.split("@", 1)[1] if "@" in service.name else service.name


def _within(name: str, domains: set[str]) -> bool:
    name = name.strip().lower().rstrip(".")
    return any(name == d or name.endswith("." + d) for d in domains)


def bind_to_service(
    kind: str,
    params: dict[str, Any],
    service: Service,
    account: Account,
    domains: set[str] | None = None,
) -> dict[str, Any]:
    """Fill the fields the service implies and refuse parameters that reach beyond it.

    A change may only touch the object its service names (the zone, the mailbox, the FTP user)
    and only the account's own Unix user, so a customer can never aim at someone else's data
    through one of their own services.
    """
    p = dict(params)
    problems: list[str] = []

    def same(key: str, want: str, what: str) -> None:
        p.setdefault(key, want)
        if isinstance(p[key], str) and p[key].strip().lower().rstrip(".") != want.lower():
            problems.append(f"{key}: must be {want!r}, the {what} of service {service.id}")

    def service_kind(*kinds: str) -> bool:
        if service.kind not in kinds:
            problems.append(
                f"service {service.id} is a {service.kind}; {kind} needs a {' or '.join(kinds)}"
            )
            return False
        return True

    if "account" in CHANGE_FIELDS.get(kind, ()):
        same("account", account.unix_user, "account's user")
    if kind.startswith("dns_record_"):
        if service_kind("dns_zone"):
            same("zone", service.name, "zone")
    elif kind in ("mailbox_password", "mailbox_quota", "mailbox_delete"):
        if service_kind("mailbox"):
            same("address", service.name, "address")
    elif kind == "mailbox_create" or kind.startswith("mail_forwarder_"):
        key = "address" if kind == "mailbox_create" else "source"
        if service_kind("domain", "dns_zone", "web_hosting", "mailbox"):
            value = p.get(key)
            domain = _domain_of(service).lower()
            if isinstance(value, str) and "@" in value and value.split("@", 1)[1].lower() != domain:
                problems.append(f"{key}: must be an address at {_domain_of(service)}")
    elif kind == "ftp_password":
        if service_kind("ftp_account"):
            same("username", service.name, "FTP user")
    elif kind in ("vhost_create", "vhost_delete", "tls_install"):
        if service_kind("web_hosting", "domain", "tls_certificate"):
            same("domain", _domain_of(service), "domain")
        aliases = p.get("aliases") if kind == "vhost_create" else None
        for alias in aliases if isinstance(aliases, list | tuple) else ():
            if isinstance(alias, str) and not _within(alias, domains or set()):
                problems.append(
                    f"aliases: {alias[:80]!r} is not one of the account's domains or a subdomain"
                )
    elif kind.startswith("cron_"):
        service_kind("web_hosting", "cron")
    if problems:
        raise InvalidChange(f"invalid {kind} change: " + "; ".join(problems), problems)
    return p


ACCOUNT_DOMAIN_KINDS = ("domain", "dns_zone", "web_hosting", "tls_certificate")


def account_domains(s: Session, account_id: int) -> set[str]:
    """The domains an account holds: its domain, zone, site and certificate services."""
    return {
        _domain_of(sv).lower().rstrip(".")
        for sv in AccountRepository(s).services(account_id)
        if sv.kind in ACCOUNT_DOMAIN_KINDS
    }


def for_customer(detail: ChangeDetail) -> ChangeDetail:
    """A change as its customer sees it: plain words instead of host output and paths."""
    return detail.model_copy(
        update={
            "error": CUSTOMER_ERROR.get(detail.status, "The change could not be applied.")
            if detail.error
            else None,
            "attempts": [
                a.model_copy(
                    update={
                        "output": CUSTOMER_OUTPUT.get(a.outcome, ""),
                        "error": CUSTOMER_ERROR.get(a.outcome, "Not applied.") if a.error else None,
                    }
                )
                for a in detail.attempts
            ],
        }
    )


def _category(kind: str) -> str:
    return CATEGORY_OF_KIND.get(kind.split("_", 1)[0], "general")


# -- the service -------------------------------------------------------------------------------
class ChangeService:
    def __init__(self, db: Database, config: ActorConfig, now: Any = utcnow) -> None:
        self.db = db
        self.config = config
        self.now = now
        self.tickets = TicketService(db, config, now)

    # -- validating and authorising -----------------------------------------------------
    def prepare(self, s: Session, by: Principal, req: NewChange) -> Prepared:
        """Validate `req` for `by`; raise a DeskError (404 for what `by` may not see)."""
        if by.role not in ("customer", "agent", "admin"):
            raise NotAllowed("only customers, agents and administrators request changes")
        service = AccountRepository(s).service(req.service_id)
        missing = ChangeNotFound(f"service {req.service_id} not found")
        if service is None:
            raise missing
        if by.role == "customer":
            if service.account_id != by.account_id or (
                req.account_id is not None and req.account_id != by.account_id
            ):
                raise missing
            if req.ticket is not None:
                raise NotAllowed("customers do not link changes to tickets")
            if req.kind not in CUSTOMER_SELF_SERVICE_KINDS:
                allowed = ", ".join(sorted(CUSTOMER_SELF_SERVICE_KINDS))
                raise NotAllowed(
                    f"{req.kind!r} is not a self-service change; open a ticket, or use: {allowed}"
                )
        elif req.account_id is not None and service.account_id != req.account_id:
            raise missing
        tier_kinds = KINDS_BY_TIER.get(by.tier or 0, frozenset())
        if by.role == "agent" and req.kind in CHANGE_KINDS and req.kind not in tier_kinds:
            needed = min(t for t, kinds in KINDS_BY_TIER.items() if req.kind in kinds)
            raise NotAllowed(
                f"level {by.tier} agents do not request {req.kind} changes; "
                f"escalate the ticket to level {needed}"
            )
        ticket_id: int | None = None
        if by.role == "agent" and req.ticket is None:
            raise InvalidChange(
                "agents link every change to a ticket: give its number in `ticket`",
                ["ticket: required for agents"],
            )
        if req.ticket is not None:
            ticket = TicketRepository(s).by_number(req.ticket)
            if ticket is None:
                raise ChangeNotFound(f"ticket {req.ticket} not found")
            if ticket.account_id != service.account_id:
                raise InvalidChange(
                    f"ticket {req.ticket} belongs to another account than service {service.id}",
                    ["ticket: not a ticket of the service's account"],
                )
            if ticket.status in ("resolved", "closed"):
                raise InvalidTransition(f"{ticket.number} is {ticket.status}; reopen it first")
            ticket_id = ticket.id
        if service.status not in ("active", "suspended", "pending"):
            raise InvalidTransition(f"service {service.id} is {service.status}")
        if service.host_id is None:
            raise InvalidTransition(f"service {service.id} is not on a managed host")
        host = HostRepository(s).get(service.host_id)
        if host.status == "retired":
            raise InvalidTransition(f"service {service.id} is on a retired host")
        account = AccountRepository(s).get(service.account_id)
        domains = account_domains(s, account.id) if req.kind == "vhost_create" else set()
        params = bind_to_service(req.kind, req.params, service, account, domains)
        try:
            change = parse_change(req.kind, params)
        except ChangeValidationError as exc:
            raise InvalidChange(str(exc), exc.errors) from None
        source = {"customer": "portal", "agent": "agent"}.get(by.role, "api")
        return Prepared(
            account_id=service.account_id,
            service_id=service.id,
            host_id=host.id,
            host_name=host.name,
            ticket_id=ticket_id,
            change=change,
            source=source,
        )

    def plan_target(self, by: Principal, req: NewChange) -> Prepared:
        """`prepare` in a read-only session: what a dry run needs."""
        with self.db.read() as s:
            return self.prepare(s, by, req)

    # -- creating -----------------------------------------------------------------------
    def create(
        self, by: Principal, req: NewChange, *, key: str | None = None, request_hash: str = ""
    ) -> ChangeDetail:
        """Record a change request (queued for its host's executor); a retried key replays."""
        with self.db.write() as s:
            earlier = earlier_answer(s, by, key, request_hash)
            if earlier is not None:
                return ChangeDetail.model_validate({**earlier, "replayed": True})
            p = self.prepare(s, by, req)
            if by.role == "customer":
                self._check_rate(s, p.account_id)
            row = ChangeRepository(s).create(
                change_id=str(uuid.uuid4()),
                account_id=p.account_id,
                kind=p.change.kind,
                params=stored_params(p.change),
                source=p.source,
                service_id=p.service_id,
                ticket_id=p.ticket_id,
                host_id=p.host_id,
                requested_by_user_id=by.user_id,
            )
            row.created_at = row.updated_at = self.now()
            ticket = TicketRepository(s).lock(p.ticket_id) if p.ticket_id else None
            self._timeline(s, row, "requested", f"Change requested: {p.change.describe()}", by,
                           ticket=ticket)  # fmt: skip
            if ticket is not None:
                moved = ticket.status == "open"
                if moved:
                    ticket.status = "pending_change"
                ticket.updated_at = self.now()
                s.flush()
                TicketRepository(s).add_event(
                    ticket,
                    "pending_change" if moved else "change_requested",
                    summary=f"{ticket.number} waits for a change: {p.change.describe()}",
                    actor_user_id=by.user_id,
                    actor_label=by.name,
                    data={"owner_agent_id": ticket.owner_agent_id, "change_id": row.id,
                          "change_kind": row.kind},
                )  # fmt: skip
            detail = self._detail(s, row)
            AuditRepository(s).record(
                actor_label=by.label, actor_user_id=by.user_id, action="change_requested",
                object_type="change", object_id=row.id, account_id=row.account_id,
                data={"kind": row.kind, "service_id": row.service_id, "ticket_id": row.ticket_id},
            )  # fmt: skip
            remember_answer(s, by, key, request_hash, 202, detail.model_dump(mode="json"))
            return detail

    def _check_rate(self, s: Session, account_id: int) -> None:
        """At most `customer_changes_per_hour` self-service changes per account and hour."""
        limit = self.config.customer_changes_per_hour
        if not limit:
            return
        now = self.now()
        count, oldest = ChangeRepository(s).requested_since(
            account_id, now - timedelta(hours=1), source="portal"
        )
        if count >= limit and oldest is not None:
            wait = (oldest + timedelta(hours=1) - now).total_seconds()
            raise RateLimited(
                f"at most {limit} self-service changes an hour; try again later, or open a "
                "ticket", retry_after=int(wait) + 1,
            )  # fmt: skip

    # -- reading ------------------------------------------------------------------------
    def get(self, change_id: str, by: Principal) -> ChangeDetail:
        """One change; a customer sees only their account's (404 otherwise)."""
        with self.db.read() as s:
            row = ChangeRepository(s).find(change_id) if _is_uuid(change_id) else None
            if row is None or (by.role == "customer" and row.account_id != by.account_id):
                raise ChangeNotFound(f"change {change_id} not found")
            detail = self._detail(s, row)
            return for_customer(detail) if by.role == "customer" else detail

    def _detail(self, s: Session, row: ChangeRequest) -> ChangeDetail:
        host = HostRepository(s).get(row.host_id).name if row.host_id else None
        return ChangeDetail(
            id=row.id,
            account_id=row.account_id,
            service_id=row.service_id,
            kind=row.kind,
            status=row.status,
            source=row.source,
            host=host,
            host_id=row.host_id,
            ticket_number=ticket_number(row.ticket_id) if row.ticket_id else None,
            params=public_params(row.kind, row.params),
            error=row.error,
            created_at=row.created_at,
            updated_at=row.updated_at,
            applied_at=row.applied_at,
            attempts=[
                AttemptRead(
                    attempt=a.attempt,
                    outcome=a.outcome,
                    finished_at=a.finished_at,
                    output=a.output,
                    error=a.error,
                )
                for a in ChangeRepository(s).attempts(row.id)
            ],
        )

    # -- the executor's side ------------------------------------------------------------
    def pending_for(self, host_ids: list[int], *, older_than: float = 0.0) -> list[tuple[str, int]]:
        """(change id, host id) of every change still queued or applying on these hosts."""
        out: list[tuple[str, int]] = []
        now = utcnow()
        with self.db.read() as s:
            repo = ChangeRepository(s)
            for host_id in host_ids:
                for row in repo.pending(host_id=host_id):
                    if (now - row.updated_at).total_seconds() >= older_than:
                        out.append((row.id, host_id))
        return out

    def start(self, change_ids: list[str]) -> list[tuple[int, HostChange]]:
        """Mark these changes `applying` and return (host id, host change) for those still
        pending; a change already settled is left alone. A change that can not be rebuilt
        from what is stored (a rule tightened since it was accepted) fails on its own, with
        the reason: it never holds the others back."""
        out: list[tuple[int, HostChange]] = []
        broken: list[tuple[str, str]] = []
        with self.db.write() as s:
            repo = ChangeRepository(s)
            hosts = HostRepository(s)
            for change_id in change_ids:
                row = repo.find(change_id) if _is_uuid(change_id) else None
                if row is None or row.status not in PENDING or row.host_id is None:
                    continue
                try:
                    change = rebuild_change(row.kind, row.params)
                    request = HostChange.model_validate(  # re-validates `change`: in context
                        {"change_id": row.id, "host_id": hosts.get(row.host_id).name,
                         "change": change},
                        context=ACCEPTED,
                    )  # fmt: skip
                except Exception as exc:
                    broken.append((row.id, f"its stored parameters are no longer valid: {exc}"))
                    continue
                if row.status == "queued":
                    row.status = "applying"
                    row.updated_at = self.now()
                out.append((row.host_id, request))
        for change_id, reason in broken:
            self.dead_letter(change_id, reason)
        return out

    def dead_letter(self, change_id: str, reason: str) -> bool:
        """Settle a change as failed with `reason`, writing as little as possible (status,
        attempt, timeline entry): for a change whose outcome could not be recorded the usual
        way. False when it was settled already."""
        with self.db.write() as s:
            repo = ChangeRepository(s)
            reason = clean_output(reason)[:2000]
            if not repo.settle(change_id, PENDING, status="failed", error=reason,
                               updated_at=self.now()):  # fmt: skip
                return False
            row = repo.get(change_id)
            s.refresh(row)
            repo.add_attempt(row.id, outcome="failed", error=reason)
            summary = f"Change failed: {describe_stored(row.kind, row.params)}"
            self._timeline(s, row, "failed", summary, SYSTEM, error=CUSTOMER_ERROR["failed"])
            return True

    def record(self, outcomes: list[ChangeOutcome]) -> Recorded:
        """Record outcomes reported by an executor, in one transaction; each change settles
        once (a later report of a settled change only adds nothing)."""
        result = Recorded()
        with self.db.write() as s:
            for outcome in outcomes:
                self._record_one(s, outcome, result)
        return result

    def _record_one(self, s: Session, outcome: ChangeOutcome, result: Recorded) -> None:
        status = STATUS_OF_OUTCOME[outcome.status]
        now = self.now()
        error = clean_output(outcome.error) if outcome.error is not None else None
        if outcome.status == "unknown":
            error = f"outcome unknown, an agent must check the host: {error or ''}".strip()
        values: dict[str, Any] = {"status": status, "error": error, "updated_at": now}
        if status == "applied":
            values["applied_at"] = now
        if not ChangeRepository(s).settle(outcome.change_id, PENDING, **values):
            return  # unknown or already settled: recorded once, never twice
        row = ChangeRepository(s).get(outcome.change_id)
        s.refresh(row)
        tries = f" (after {outcome.attempts} tries)" if outcome.attempts > 1 else ""
        ChangeRepository(s).add_attempt(
            row.id, outcome=outcome.status, output=clean_output(outcome.output) + tries, error=error
        )
        result.settled.append(row.id)
        result.accounts.add(row.account_id)
        describe = describe_stored(row.kind, row.params)
        if row.kind in _KEPT_SECRETS:  # settled: the host has the secret, we need it no more
            row.params = scrub_kept_secrets(row.params)
        ticket = TicketRepository(s).lock(row.ticket_id) if row.ticket_id else None
        opened: Ticket | None = None
        if status != "applied" and row.source == "portal" and ticket is None:
            opened = self._failure_ticket(s, row, describe, outcome, result)
            row.ticket_id = opened.id
        word = {"applied": "applied", "failed": "failed", "rolled_back": "rolled back"}[status]
        summary = f"Change {word}: {describe}"
        if opened is not None:
            summary += f"; support will follow up in {opened.number}"
        # The timeline is the customer's: the plain words, not the host's output.
        self._timeline(s, row, status, summary, SYSTEM, ticket=ticket or opened,
                       error=CUSTOMER_ERROR.get(status))  # fmt: skip
        if ticket is not None:
            self._settle_ticket(s, ticket, row, status, describe)

    def _settle_ticket(
        self, s: Session, ticket: Ticket, row: ChangeRequest, status: str, describe: str
    ) -> None:
        others = ChangeRepository(s).pending_count(PENDING, ticket_id=ticket.id, excluding=row.id)
        if ticket.status == "pending_change" and not others:
            ticket.status = "open" if ticket.owner_agent_id else "new"
        ticket.updated_at = self.now()
        s.flush()
        word = "applied" if status == "applied" else "failed"
        TicketRepository(s).add_event(
            ticket,
            f"change_{word}",
            summary=f"{ticket.number}: change {word.replace('_', ' ')}: {describe}",
            actor_label=SYSTEM.name,
            data={"owner_agent_id": ticket.owner_agent_id, "change_id": row.id,
                  "change_kind": row.kind, "change_status": status,
                  "error": CUSTOMER_ERROR.get(status)},
        )  # fmt: skip

    def _failure_ticket(
        self,
        s: Session,
        row: ChangeRequest,
        describe: str,
        outcome: ChangeOutcome,
        result: Recorded,
    ) -> Ticket:
        """A tier-1 ticket for a failed self-service change, in the same transaction as the
        failure itself: a failure is never recorded without its ticket, nor ticketed twice.
        While a ticket for an earlier failure of the same service is still open, the failure
        is added to that ticket instead: repeated failures make one ticket, not a flood."""
        # The ticket's first message is the customer's to read too: plain words; the host's
        # error and output go into the internal note's attachment.
        body = (
            f"A self-service change failed and needs a look.\n\n"
            f"Change: {describe}\nChange id: {row.id}\nKind: {row.kind}\n"
            f"Outcome: {outcome.status}\n"
        )
        earlier = (
            ChangeRepository(s).open_failure_ticket(row.service_id, excluding=row.id)
            if row.service_id is not None
            else None
        )
        if earlier is not None:
            ticket = TicketRepository(s).lock(earlier)
            self._attach_output(s, ticket, row, body, outcome, note="Another self-service "
                                f"change of this service failed: {describe}.")  # fmt: skip
            ticket.updated_at = self.now()
            s.flush()
            TicketRepository(s).add_event(
                ticket, "change_failed",
                summary=f"{ticket.number}: another change failed: {describe}",
                actor_label=SYSTEM.name, visibility="internal",
                data={"owner_agent_id": ticket.owner_agent_id, "change_id": row.id,
                      "change_kind": row.kind},
            )  # fmt: skip
            return ticket
        item = NewTicket(
            account_id=row.account_id,
            subject=scrub(f"Self-service change failed: {describe}", lines=False)[:300],
            body=scrub(body)[:100_000],
            channel=Channel.portal,
            priority=Priority.high,
            category=_category(row.kind),
            requester=Principal(role="system", name="GDCAS automation"),
        )
        read = self.tickets._create_one(s, item)
        if isinstance(read, DeskError):
            raise read
        ticket_id = ticket_id_from_number(read.number)
        assert ticket_id is not None
        ticket = TicketRepository(s).get(ticket_id)
        self._attach_output(s, ticket, row, body, outcome, note="")
        result.tickets.append(
            QueuedTicket(
                id=ticket.id,
                tier=read.tier,
                priority=read.priority.value,
                category=read.category,
                created_at=read.created_at,
            )
        )
        return ticket

    def _attach_output(
        self,
        s: Session,
        ticket: Ticket,
        row: ChangeRequest,
        body: str,
        outcome: ChangeOutcome,
        *,
        note: str,
    ) -> None:
        """An internal note on the ticket with the host's output of the change attached."""
        TicketRepository(s).add_message(
            ticket,
            direction="internal",
            channel="portal",
            visibility="internal",
            body=f"{note} GDCAS output of change {row.id} attached.".strip(),
            author_name="GDCAS automation",
            attachments=[
                NewAttachment(
                    filename=f"change-{row.id}.log",
                    content_type="text/plain",
                    content=(
                        f"{body}Error: {outcome.error or '-'}\n\n--- parameters ---\n"
                        f"{json.dumps(public_params(row.kind, row.params), indent=2)}\n"
                        f"--- host output ---\n{outcome.output}\n"
                    ).encode(),
                )
            ],
        )
        s.expire(ticket, ["message_count"])

    def _timeline(
        self,
        s: Session,
        row: ChangeRequest,
        what: str,
        summary: str,
        by: Principal,
        *,
        ticket: Ticket | None = None,
        **extra: Any,
    ) -> None:
        data: dict[str, Any] = {
            "change_id": row.id,
            "kind": row.kind,
            "status": row.status,
            "service_id": row.service_id,
            "source": row.source,
            **{k: v for k, v in extra.items() if v is not None},
        }
        if ticket is not None:
            data.update(number=ticket.number, owner_agent_id=ticket.owner_agent_id)
        TimelineRepository(s).append(
            row.account_id,
            kind=f"change.{what}",
            summary=summary,
            ticket_id=ticket.id if ticket is not None else None,
            change_id=row.id,
            actor=by.name,
            data=data,
        )

    # -- hosts --------------------------------------------------------------------------
    def register_host(self, host: NewHost, by: Principal | None = None) -> HostRead:
        """Register a managed host (its key pinned as given); 409 when the name is taken."""
        layout = HostLayout(root=host.root_dir, **host.layout)
        spec = HostSpec(
            host_id=host.name,
            address=host.address,
            port=host.ssh_port,
            user=host.ssh_user,
            host_key=host.host_key,
            private_key_path=host.credentials_ref,
            layout=layout,
        )
        meta = layout.model_dump(mode="json", exclude={"root"})
        with self.db.write() as s:
            repo = HostRepository(s)
            if repo.by_name(host.name) is not None:
                raise HostExists(f"a managed host named {host.name!r} is already registered")
            row = repo.create(
                name=spec.host_id,
                address=spec.address,
                ssh_port=spec.port,
                ssh_user=spec.user,
                role=host.role,
                host_key=spec.host_key,
                credentials_ref=spec.private_key_path,
                root_dir=layout.root,
                services_meta=json.dumps(meta),
            )
            if by is not None:
                AuditRepository(s).record(
                    actor_label=by.label, actor_user_id=by.user_id, action="host_registered",
                    object_type="managed_host", object_id=row.id,
                    data={"name": row.name, "address": row.address, "port": row.ssh_port,
                          "host_key": row.host_key},
                )  # fmt: skip
            return host_read(row)

    def hosts(self, name: str | None = None) -> list[HostRead]:
        with self.db.read() as s:
            rows = HostRepository(s).all()
            if name is not None:
                rows = [r for r in rows if r.name == name]
            counts = ChangeRepository(s).pending_by_host(PENDING)
            return [host_read(r, counts.get(r.id, 0)) for r in rows]

    def host_specs(self) -> dict[int, HostSpec]:
        """Every active managed host, by SCDB id, as the executor connects to it."""
        with self.db.read() as s:
            return {r.id: host_spec(r) for r in HostRepository(s).all() if r.status != "retired"}


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
