"""Received mail into tickets: the rules of the SMTP intake, run by the Intake actor.

One mail, in order (issue 9):
1. **Kept first**: its bytes are stored (`inbound_mails`, once per Message-ID, else per
   SHA-256 of the bytes), so a redelivery finds it and nothing is lost or doubled: a mail
   already settled answers as a duplicate; one stored but not settled (a crash in between)
   is settled now.
2. **What it is**: a delivery report (bounce) goes to the ticket of the mail it is about (our
   signed Message-ID names it), as an internal note; a permanent failure suppresses the
   address. A report about no mail of ours is kept and refused, never a ticket.
3. **Where it goes** (actors/mail/threading.py): a duplicate Message-ID makes no second
   message; our signed id in In-Reply-To/References, or the ticket number from the requester
   or a contact of that account, puts it on that ticket (through the account's lane, as the
   `MailReceived` step); otherwise a new ticket for the sender's account, or, for a sender on
   no account, a new contact on no account and the mail held until an agent links it.
4. **Settled once**: every step claims the stored mail in its own unit of work
   (`InboundMailRepository.claim`), so the SMTP door says 250 only once the ticket step is
   committed, and a replay claims nothing twice.

Loop rules (actors/mail/loops.py) are recorded on the stored mail (`flags`): the mail sender
reads them before acknowledging a new ticket; a machine-written mail never reopens a ticket.
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal

from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from actors.clock import Clock
from actors.config import ActorConfig
from actors.errors import ContactLinkInvalid, MailRefused
from actors.mail import bounces, loops
from actors.mail.message import ParsedMail
from actors.mail.message_id import is_own_message_id, parse_own_message_id
from actors.mail.parse import parse
from actors.mail.reply import reply_of
from actors.mail.settings import UnknownSenders
from actors.mail.threading import (
    AppendTo,
    Duplicate,
    NewTicket,
    ThreadDecision,
    canonical_address,
    decide,
    sender_address,
)
from actors.principal import Principal
from actors.tickets.commands import FilePart, MailReceived
from actors.tickets.dto import NewTicket as NewTicketRequest
from store.db import Database
from store.models import Contact
from store.models.enums import Channel, InboundStatus
from store.models.ticket import ticket_number
from store.repositories import AccountRepository, InboundMailRepository, SuppressionRepository

MAX_BODY_CHARS = 100_000  # of a ticket message; the whole text stays in the stored mail
MAX_SUBJECT_CHARS = 300
MAX_ATTACHMENTS = 50
KEPT_HEADERS = ("from", "to", "cc", "reply-to", "subject", "date", "message-id")


class InboundEnvelope(BaseModel):
    """What the SMTP door hands over: the SMTP envelope and the message's bytes."""

    mail_from: str = Field(max_length=998)  # "" for the null return path <>
    rcpt_tos: list[str] = Field(min_length=1, max_length=1000)
    data: bytes = Field(repr=False)
    peer: str | None = None


class MailReceipt(BaseModel):
    """What became of a received mail: the SMTP door's 250 carries it."""

    inbound_id: int
    status: InboundStatus
    ticket_number: str | None = None
    detail: str = ""
    duplicate: bool = False  # it was received before; nothing happened again


class Plan(BaseModel):
    """The next step for a stored mail, decided from its parts (pure data, crosses actors)."""

    kind: Literal["settled", "append", "new", "hold", "refuse"]
    inbound_id: int
    receipt: MailReceipt | None = None  # kind settled: the answer
    reject: bool = False  # kind refuse: the SMTP door answers 550 (the sender hears)
    sender_name: str | None = None  # kind hold: the new contact's name (From's display name)
    account_id: int | None = None
    ticket_id: int | None = None
    command: MailReceived | None = None  # kind append
    ticket: NewTicketRequest | None = None  # kind new
    detail: str = ""


def _clean_line(text: str, limit: int) -> str:
    line = " ".join(text.split())  # every control and line break becomes one space
    line = "".join(c for c in line if c.isprintable())
    return line[:limit]


def _clean_text(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return "".join(c for c in text if c.isprintable() or c in "\n\t")


def _body(mail: ParsedMail) -> tuple[str, bool]:
    """The text for the ticket view (quoted history and signature cut) and whether it was cut."""
    reply = reply_of(mail)
    text = _clean_text(reply.text).strip() or _clean_text(mail.text).strip()
    cut = reply.quoted or reply.signature is not None
    if not text:
        names = ", ".join(a.filename or a.content_type for a in mail.attachments[:5])
        text = f"(no text; attachments: {names})" if names else "(empty message)"
    if len(text) > MAX_BODY_CHARS:
        text = text[:MAX_BODY_CHARS] + "\n[cut: the whole message is in the stored mail]"
    return text, cut


def _headers(mail: ParsedMail, inbound_id: int, quoted_cut: bool) -> dict[str, str]:
    kept = {k.lower(): v[:998] for k, v in mail.headers if k.lower() in KEPT_HEADERS}
    kept["inbound_mail_id"] = str(inbound_id)
    if quoted_cut:
        kept["quoted_history_cut"] = "yes"
    if mail.defects:
        kept["defects"] = ", ".join(mail.defects[:20])
    return kept


def _parts(mail: ParsedMail) -> list[FilePart]:
    parts = []
    for i, a in enumerate(mail.attachments[:MAX_ATTACHMENTS]):
        name = _clean_line(a.filename or "", 255) or f"part-{i + 1}"
        ctype = _clean_line(a.content_type, 255) or "application/octet-stream"
        parts.append(FilePart(filename=name, content_type=ctype, data=a.data))
    return parts


def _author(mail: ParsedMail, sender: str | None) -> str:
    name = mail.from_address.name if mail.from_address else None
    label = _clean_line(name or "", 150)
    if label and sender:
        return f"{label} <{sender}>"[:200]
    return (sender or label or "unknown sender")[:200]


class MailIntake:
    def __init__(self, db: Database, config: ActorConfig, now: Clock) -> None:
        self.db = db
        self.config = config
        self.settings = config.mail
        self.now = now

    # -- 1: keep -------------------------------------------------------------------------
    def parsed_row(self, env: InboundEnvelope) -> tuple[dict[str, Any], ParsedMail]:
        """The mail parsed, and the row that keeps it (its dedupe key: the Message-ID, else
        the SHA-256 of the bytes)."""
        mail = parse(env.data)
        sha = hashlib.sha256(env.data).hexdigest()
        dedupe = f"id:{mail.message_id}"[:1000] if mail.message_id else f"sha256:{sha}"
        secret = self.settings.secret()
        check = loops.check(mail, is_own_message_id=lambda v: is_own_message_id(secret, v))
        flags: dict[str, Any] = {
            "no_auto_reply": check.no_auto_reply,
            "automatic": check.automatic,
            "loop_reasons": [r.value for r in check.reasons],
            "defects": mail.defects[:50],
        }
        row = {
            "dedupe_key": dedupe,
            "message_id": (mail.message_id or "")[:998] or None,
            "envelope_from": env.mail_from[:320],
            "envelope_to": [r[:320] for r in env.rcpt_tos[:100]],
            "from_address": (sender_address(mail) or "")[:320] or None,
            "subject": _clean_line(mail.subject, MAX_SUBJECT_CHARS),
            "size": len(env.data),
            "sha256": sha,
            "raw": env.data,
            "status": InboundStatus.received.value,
            "detail": "",
            "flags": flags,
            "category": self.settings.category_of(env.rcpt_tos),
            "created_at": self.now(),
        }
        return row, mail

    # -- 2, 3: decide ----------------------------------------------------------------------
    def plan(self, env: InboundEnvelope) -> Plan:
        """Keep the mail and decide its next step (nothing of the ticket done yet), in one
        unit of work: the mail is committed kept before any ticket step is tried."""
        row, mail = self.parsed_row(env)
        with self.db.write() as s:
            kept, _ = InboundMailRepository(s).store(row)
            inbound_id = kept.id
            if kept.status == InboundStatus.received:
                return self._plan_in(s, inbound_id, mail, kept.flags, kept.category, env.data)
            return Plan(
                kind="settled",
                inbound_id=inbound_id,
                receipt=MailReceipt(
                    inbound_id=inbound_id,
                    status=InboundStatus(kept.status),
                    ticket_number=ticket_number(kept.ticket_id) if kept.ticket_id else None,
                    detail=kept.detail or "received before",
                    duplicate=True,
                ),
            )

    def plan_stored(
        self, inbound_id: int, mail: ParsedMail, flags: dict[str, Any], category: str | None
    ) -> Plan:
        """The next step of a mail kept before (a held one released)."""
        with self.db.write() as s:
            return self._plan_in(s, inbound_id, mail, flags, category, None)

    def _plan_in(
        self,
        s: Session,
        inbound_id: int,
        mail: ParsedMail,
        flags: dict[str, Any],
        category: str | None,
        raw: bytes | None,
    ) -> Plan:
        if self._maybe_report(mail, flags):
            report = bounces.detect(raw if raw is not None else self._raw(s, inbound_id))
            if report is not None:
                return self._plan_bounce(s, inbound_id, mail, report)
        secret = self.settings.secret()
        lookup = InboundMailRepository(s)
        decision: ThreadDecision = decide(mail, lookup, secret=secret)
        match decision:
            case Duplicate(detail=detail):
                return Plan(kind="refuse", inbound_id=inbound_id, detail=detail)
            case AppendTo(ticket_id=ticket_id, detail=detail):
                account = lookup.ticket_account(ticket_id)
                sender = sender_address(mail)
                user_id = self._user_id(lookup, sender, account)
                return Plan(
                    kind="append",
                    inbound_id=inbound_id,
                    account_id=account,
                    ticket_id=ticket_id,
                    detail=detail,
                    command=self._command(inbound_id, mail, flags, detail, user_id),
                )
            case NewTicket(detail=detail):
                return self._plan_new(lookup, inbound_id, mail, flags, category, detail)
        raise AssertionError("unreachable")  # pragma: no cover

    def _maybe_report(self, mail: ParsedMail, flags: dict[str, Any]) -> bool:
        """Whether to run the bounce detector: mail from a machine (the common case of a
        person's mail skips its line scans)."""
        return (
            bool(flags.get("automatic"))
            or mail.return_path == ""
            or any(a.content_type.startswith(("message/", "text/rfc822")) for a in mail.attachments)
        )

    @staticmethod
    def _raw(s: Session, inbound_id: int) -> bytes:
        row = InboundMailRepository(s).get(inbound_id)
        assert row is not None
        return bytes(row.raw)

    def _command(
        self,
        inbound_id: int,
        mail: ParsedMail,
        flags: dict[str, Any],
        detail: str,
        user_id: int | None,
        *,
        bounce: bool = False,
        body: str | None = None,
    ) -> MailReceived:
        text, cut = _body(mail)
        return MailReceived(
            inbound_mail_id=inbound_id,
            body=body or text,
            author_name=_author(mail, sender_address(mail)),
            author_user_id=user_id,
            email_message_id=(mail.message_id or "")[:998] or None,
            email_headers=_headers(mail, inbound_id, cut),
            auto_submitted=bool(flags.get("automatic")),
            bounce=bounce,
            detail=detail[:2000],
            attachments=_parts(mail),
        )

    @staticmethod
    def _user_id(
        lookup: InboundMailRepository, sender: str | None, account: int | None
    ) -> int | None:
        if sender is None or account is None:
            return None
        for contact in lookup.contacts_by_email(sender):
            if contact.account_id == account:
                user = lookup.user_of_contact(contact)
                return user.id if user else None
        return None

    def _plan_new(
        self,
        lookup: InboundMailRepository,
        inbound_id: int,
        mail: ParsedMail,
        flags: dict[str, Any],
        category: str | None,
        detail: str,
    ) -> Plan:
        sender = sender_address(mail)
        contacts = lookup.contacts_by_email(sender) if sender else []
        known = next((c for c in contacts if c.account_id is not None), None)
        if known is None:
            kind: Literal["hold", "refuse"] = (
                "refuse" if self.settings.mail_unknown_senders is UnknownSenders.refuse else "hold"
            )
            why = "the sender is on no account" if sender else "the mail names no sender"
            name = _clean_line(mail.from_address.name or "", 200) if mail.from_address else ""
            return Plan(kind=kind, inbound_id=inbound_id, detail=f"{detail}; {why}",
                        reject=kind == "refuse", sender_name=name or None)  # fmt: skip
        assert known.account_id is not None
        user = lookup.user_of_contact(known)
        text, cut = _body(mail)
        requester = Principal(
            user_id=user.id if user else None,
            role="customer",
            name=_author(mail, sender),
            account_id=known.account_id,
            via=Channel.email,
        )
        subject = _clean_line(mail.subject, MAX_SUBJECT_CHARS) or "(no subject)"
        ticket = NewTicketRequest(
            account_id=known.account_id,
            subject=subject,
            body=text,
            channel=Channel.email,
            category=category,
            contact_id=known.id,
            requester=requester,
            email_message_id=(mail.message_id or "")[:998] or None,
            email_headers=_headers(mail, inbound_id, cut),
            inbound_mail_id=inbound_id,
            attachments=_parts(mail),
        )
        return Plan(
            kind="new",
            inbound_id=inbound_id,
            account_id=known.account_id,
            ticket=ticket,
            detail=detail,
        )

    def _plan_bounce(
        self, s: Session, inbound_id: int, mail: ParsedMail, report: bounces.DeliveryReport
    ) -> Plan:
        secret = self.settings.secret()
        own = parse_own_message_id(secret, report.original_message_id or "")
        failed = [r for r in report.recipients if r.address]
        lines = [
            f"{r.address}: {r.status or '?'} {'permanent' if r.permanent else 'transient'}"
            f"{' (' + r.diagnostic + ')' if r.diagnostic else ''}"
            for r in failed[:20]
        ]
        summary = f"Delivery report ({report.kind.value}): " + ("; ".join(lines) or "no recipient")
        # A permanent failure stops mail to that address at once (idempotent: a redelivered
        # report suppresses nothing twice).
        for r in failed:
            address = canonical_address(r.address)
            if address and r.permanent and report.kind is bounces.ReportKind.FAILED:
                SuppressionRepository(s).suppress(
                    address,
                    status_code=r.status,
                    diagnostic=r.diagnostic or "",
                    inbound_mail_id=inbound_id,
                )
        account = InboundMailRepository(s).ticket_account(own.ticket_id) if own else None
        if own is None or account is None:
            return Plan(
                kind="refuse",
                inbound_id=inbound_id,
                detail=f"{summary}; about no mail of ours: kept, no ticket",
            )
        command = self._command(
            inbound_id, mail, {"automatic": True}, summary, None, bounce=True, body=summary
        )
        return Plan(
            kind="append",
            inbound_id=inbound_id,
            account_id=account,
            ticket_id=own.ticket_id,
            command=command,
            detail=summary,
        )

    def plan_follow_up(self, plan: Plan, why: str) -> Plan:
        """A mail for a ticket that is closed: a new ticket on that ticket's account that
        names it (a delivery report about it is only kept)."""
        assert plan.command is not None and plan.ticket_id is not None
        number = ticket_number(plan.ticket_id)
        if plan.command.bounce:
            kept = f"{plan.detail}; {number} is closed: the report is kept"
            return Plan(kind="refuse", inbound_id=plan.inbound_id, detail=kept)
        mail, _, category = self.parsed(plan.inbound_id)
        sender = sender_address(mail)
        with self.db.read() as s:
            lookup = InboundMailRepository(s)
            contact = next(
                (
                    c
                    for c in lookup.contacts_by_email(sender or "")
                    if c.account_id == plan.account_id
                ),
                None,
            )
            user = lookup.user_of_contact(contact) if contact else None
        assert plan.account_id is not None
        text, cut = _body(mail)
        subject = _clean_line(f"Follow-up to {number}: {mail.subject}", MAX_SUBJECT_CHARS)
        ticket = NewTicketRequest(
            account_id=plan.account_id,
            subject=subject,
            body=text,
            channel=Channel.email,
            category=category,
            contact_id=contact.id if contact else None,
            requester=Principal(
                user_id=user.id if user else None,
                role="customer",
                name=_author(mail, sender),
                account_id=plan.account_id,
                via=Channel.email,
            ),
            email_message_id=(mail.message_id or "")[:998] or None,
            email_headers=_headers(mail, plan.inbound_id, cut),
            inbound_mail_id=plan.inbound_id,
            attachments=_parts(mail),
        )
        return Plan(kind="new", inbound_id=plan.inbound_id, account_id=plan.account_id,
                    ticket=ticket, detail=f"{plan.detail}; {why}")  # fmt: skip

    def receipt_of(self, inbound_id: int) -> MailReceipt:
        """What became of a stored mail (a twin settled it first)."""
        with self.db.read() as s:
            row = InboundMailRepository(s).get(inbound_id)
            assert row is not None
            return MailReceipt(
                inbound_id=inbound_id,
                status=InboundStatus(row.status),
                ticket_number=ticket_number(row.ticket_id) if row.ticket_id else None,
                detail=row.detail,
                duplicate=True,
            )

    # -- settling without a ticket step ----------------------------------------------------
    def settle(self, plan: Plan) -> MailReceipt:
        """A plan that makes no ticket step: hold (a new contact on no account) or refuse."""
        with self.db.write() as s:
            mails = InboundMailRepository(s)
            row = mails.get(plan.inbound_id)
            assert row is not None
            if plan.kind == "hold" and row.from_address:
                contact = mails.unknown_contact(
                    row.from_address, plan.sender_name or row.from_address
                )
                mails.claim(plan.inbound_id, InboundStatus.held, at=self.now(),
                            contact_id=contact.id, detail=plan.detail)  # fmt: skip
                status = InboundStatus.held
            else:
                mails.claim(plan.inbound_id, InboundStatus.refused, at=self.now(),
                            detail=plan.detail)  # fmt: skip
                status = InboundStatus.refused
        if plan.reject:
            raise MailRefused(f"not accepted: {plan.detail}")
        return MailReceipt(inbound_id=plan.inbound_id, status=status, detail=plan.detail)

    def parsed(self, inbound_id: int) -> tuple[ParsedMail, dict[str, Any], str | None]:
        """A stored mail parsed again (a held mail released, a follow-up of a closed ticket)."""
        with self.db.read() as s:
            row = InboundMailRepository(s).get(inbound_id)
            assert row is not None
            return parse(bytes(row.raw)), dict(row.flags), row.category

    # -- an agent links a sender ------------------------------------------------------------
    def link_contact(self, contact_id: int, account_id: int) -> list[int]:
        """Put a contact on no account onto an account (another contact of that account with
        the address is used instead when there is one); its held mails go back to be filed.
        Returns the ids of the released mails, oldest first."""
        with self.db.write() as s:
            contact = s.get(Contact, contact_id)
            if contact is None or contact.account_id is not None:
                raise ContactLinkInvalid(
                    f"contact {contact_id} is not a sender waiting for an account"
                )
            if AccountRepository(s).find(account_id) is None:
                raise ContactLinkInvalid(f"account {account_id} not found")
            mails = InboundMailRepository(s)
            held = mails.held_for(contact_id)
            twin = next(
                (c for c in mails.contacts_by_email(contact.email) if c.account_id == account_id),
                None,
            )
            if twin is None:
                contact.account_id = account_id
            released = [m.id for m in held if mails.release(m.id)]
            return released
