"""Received mail for staff (the list, one mail in full, its raw bytes), senders waiting to be
linked to an account, ticket attachments for whoever may see them, and the desk's outgoing mail
for admins ("sent mail": what went out, or would have, and what the relay answered)."""

from __future__ import annotations

import asyncio
import re
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field

from actors.errors import DeskError
from actors.mail.parse import parse
from actors.mail.reply import reply_of
from actors.tickets.mail_intake import MailReceipt
from cluster.calls import call
from gateway.auth import Caller, PlatformDep, require_admin, require_staff
from gateway.errors import error_responses
from gateway.platform import Platform
from gateway.routes.tickets import directory, visible_ticket
from gateway.schemas import Id, Page, Strict
from store.models.enums import DeliveryStatus, InboundStatus
from store.models.ticket import ticket_id_from_number
from store.read.mail_in import InboundMailRead, InboundMailReads, SenderRead
from store.read.mail_out import DeliveryRead, DeliveryReads

router = APIRouter(prefix="/api/v1", tags=["mail"])

STAFF = error_responses({403: "`forbidden`: staff only"})
INBOUND_NOT_FOUND = error_responses(
    {403: "`forbidden`: staff only", 404: "`mail_not_found`: no received mail with this id"}
)
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+", re.ASCII)


class MailNotFound(DeskError):
    code, status = "mail_not_found", 404


class AttachmentNotFound(DeskError):
    code, status = "attachment_not_found", 404


class BadTicketNumber(DeskError):
    code, status = "invalid_ticket_number", 422


ADMIN = error_responses({403: "`forbidden`: administrators only"})
DOWNLOAD = {"Content-Disposition": {"description": "`attachment`, with the file's name.",
                                    "schema": {"type": "string"}}}  # fmt: skip
BYTES = {"schema": {"type": "string", "format": "binary"}}
EML = {"description": "The mail's bytes (.eml).", "headers": DOWNLOAD,
       "content": {"message/rfc822": BYTES}}  # fmt: skip
OUTGOING_NOT_FOUND = error_responses(
    {403: "`forbidden`: administrators only", 404: "`mail_not_found`: no sent mail with this id"}
)


class InboundMailDetail(BaseModel):
    mail: InboundMailRead
    text: str = Field(description="The whole text, quoted history and signature included.")
    reply_text: str = Field(description="What the ticket shows: the new text only.")
    html: str | None = Field(description="The HTML body, sanitised (nh3), if there was one.")
    attachments: list[dict[str, object]]
    defects: list[str]


class LinkIn(Strict):
    account_id: Id


class LinkOut(BaseModel):
    contact_id: int
    account_id: int
    mails: list[MailReceipt] = Field(description="The held mails now filed, oldest first.")


def eml(raw: bytes, filename: str) -> Response:
    """A mail byte for byte, as an .eml download."""
    return Response(
        raw,
        media_type="message/rfc822",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _reads(platform: Platform) -> InboundMailReads:
    return InboundMailReads(platform.db)


@router.get("/mail/inbound", response_model=Page[InboundMailRead], responses=STAFF)
async def list_inbound(
    caller: Caller,
    platform: PlatformDep,
    status: InboundStatus | None = None,
    before: Annotated[Id | None, Query(description="Continue after this mail id.")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Page[InboundMailRead]:
    """Every mail the SMTP intake received, newest first, with what became of it (`status`,
    `detail`: threading's reason, a loop or bounce finding). Staff only."""
    require_staff(caller)
    items, cursor = await asyncio.to_thread(
        _reads(platform).listing, status=status.value if status else None, before=before,
        limit=limit,
    )  # fmt: skip
    return Page(items=items, limit=limit, next_before=cursor)


@router.get(
    "/mail/inbound/{inbound_id}", response_model=InboundMailDetail, responses=INBOUND_NOT_FOUND
)
async def inbound_detail(
    inbound_id: Id, caller: Caller, platform: PlatformDep
) -> InboundMailDetail:
    """One received mail parsed again: the whole text (the ticket shows the new text only),
    the sanitised HTML, its files and what was wrong with it. Staff only."""
    require_staff(caller)
    found = await asyncio.to_thread(_reads(platform).one, inbound_id)
    if found is None:
        raise MailNotFound(f"mail {inbound_id} not found")
    row, raw = found
    mail = await asyncio.to_thread(parse, raw)
    return InboundMailDetail(
        mail=row,
        text=mail.text,
        reply_text=reply_of(mail).text,
        html=mail.html,
        attachments=[
            {
                "filename": a.filename,
                "content_type": a.content_type,
                "size": a.size,
                "sha256": a.sha256,
            }
            for a in mail.attachments
        ],
        defects=list(mail.defects),
    )


@router.get(
    "/mail/inbound/{inbound_id}/raw",
    response_class=Response,
    responses={**INBOUND_NOT_FOUND, 200: EML},
)
async def inbound_raw(inbound_id: Id, caller: Caller, platform: PlatformDep) -> Response:
    """The received mail byte for byte, as an .eml download. Staff only."""
    require_staff(caller)
    found = await asyncio.to_thread(_reads(platform).one, inbound_id)
    if found is None:
        raise MailNotFound(f"mail {inbound_id} not found")
    return eml(found[1], f"mail-{inbound_id}.eml")


@router.get("/contacts/waiting", response_model=list[SenderRead], responses=STAFF)
async def waiting_senders(caller: Caller, platform: PlatformDep) -> list[SenderRead]:
    """Senders the desk does not know yet (contacts on no account) and how many of their mails
    wait. Staff only."""
    require_staff(caller)
    return await asyncio.to_thread(_reads(platform).waiting_senders)


@router.post(
    "/contacts/{contact_id}/link",
    response_model=LinkOut,
    responses=error_responses(
        {
            403: "`forbidden`: staff only",
            409: "`contact_link_invalid`: not a waiting sender, or no such account",
        }
    ),
)
async def link_contact(
    contact_id: Id, body: LinkIn, caller: Caller, platform: PlatformDep
) -> LinkOut:
    """Put a sender on no account onto an account: the mails held for it are filed as that
    account's tickets (or on a ticket they reply to), in the order they came. Staff only."""
    require_staff(caller)
    receipts = await call(directory(platform).intake().release_held, contact_id, body.account_id)
    return LinkOut(contact_id=contact_id, account_id=body.account_id, mails=receipts)


@router.get(
    "/tickets/{number}/attachments/{attachment_id}",
    response_class=Response,
    responses={
        **error_responses({404: "`ticket_not_found`, `attachment_not_found`"}),
        200: {
            "description": "The file's bytes.",
            "headers": DOWNLOAD,
            "content": {"application/octet-stream": BYTES},
        },
    },
)
async def download_attachment(
    number: str, attachment_id: Id, caller: Caller, platform: PlatformDep
) -> Response:
    """A file of a ticket's message, for whoever may see that message (customers: their own
    account's public messages)."""
    ticket_id, _ = await asyncio.to_thread(visible_ticket, platform, caller, number)
    found = await asyncio.to_thread(
        _reads(platform).attachment, ticket_id, attachment_id, include_internal=caller.is_staff
    )
    if found is None:
        raise AttachmentNotFound(f"attachment {attachment_id} not found on {number}")
    # Served as a download, never rendered in our origin (an HTML file would run as ours).
    return Response(
        found.content,
        media_type="application/octet-stream",
        headers={
            "Content-Disposition": content_disposition(found.filename),
            "X-Content-Type-Options": "nosniff",
        },
    )


def content_disposition(filename: str) -> str:
    """`attachment` with the file's name: an ASCII stand-in for old clients, and the name
    itself, UTF-8 and percent-encoded (RFC 6266, RFC 8187), which browsers prefer."""
    ascii_name = _SAFE_NAME.sub("_", filename)[:150] or "attachment"
    value = f'attachment; filename="{ascii_name}"'
    if filename and ascii_name != filename:
        value += f"; filename*=UTF-8''{quote(filename[:200], safe='')}"
    return value


# -- sent mail (admins) -------------------------------------------------------------------------
class DeliveryDetail(BaseModel):
    mail: DeliveryRead
    headers: dict[str, str] = Field(description="The mail's headers as sent.")
    text: str = Field(description="The plain-text body.")
    html: str | None = Field(description="The HTML body, as sent (show it sandboxed).")


@router.get(
    "/mail/outgoing",
    response_model=Page[DeliveryRead],
    responses=error_responses(
        {403: "`forbidden`: administrators only",
         422: "`invalid_ticket_number`: `ticket` is not a ticket number like TT-000123"}
    ),
)  # fmt: skip
async def list_outgoing(
    caller: Caller,
    platform: PlatformDep,
    status: DeliveryStatus | None = None,
    recipient: Annotated[str | None, Query(max_length=320)] = None,
    ticket: Annotated[str | None, Query(description="A ticket number, e.g. TT-000123.")] = None,
    before: Annotated[Id | None, Query(description="Continue after this mail id.")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Page[DeliveryRead]:
    """Every mail the desk sent or means to send, newest first: notifications, auto-replies,
    agents' mail, with the relay's last answer (`queued` waits for its next attempt,
    `suppressed` says why it was not sent). Without a relay these are the local sink's mail:
    what would have gone out. Administrators only."""
    require_admin(caller, "sent mail")
    ticket_id = None
    if ticket is not None:
        ticket_id = ticket_id_from_number(ticket)
        if ticket_id is None:
            raise BadTicketNumber(f"{ticket!r} is not a ticket number like TT-000123")
    items, cursor = await asyncio.to_thread(
        DeliveryReads(platform.db).listing, status=status, recipient=recipient,
        ticket_id=ticket_id, before=before, limit=limit,
    )  # fmt: skip
    return Page(items=items, limit=limit, next_before=cursor)


@router.get(
    "/mail/outgoing/{delivery_id}", response_model=DeliveryDetail, responses=OUTGOING_NOT_FOUND
)
async def outgoing_detail(delivery_id: Id, caller: Caller, platform: PlatformDep) -> DeliveryDetail:
    """One mail of the desk's, parsed: its headers, text and HTML. Administrators only."""
    require_admin(caller, "sent mail")
    found = await asyncio.to_thread(DeliveryReads(platform.db).one, delivery_id)
    if found is None:
        raise MailNotFound(f"sent mail {delivery_id} not found")
    row, raw = found
    msg = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(msg, EmailMessage)
    text = msg.get_body(preferencelist=("plain",))
    html = msg.get_body(preferencelist=("html",))
    return DeliveryDetail(
        mail=row,
        headers={k: str(v) for k, v in msg.items()},
        text=str(text.get_content()) if text is not None else "",
        html=str(html.get_content()) if html is not None else None,
    )


@router.get(
    "/mail/outgoing/{delivery_id}/raw",
    response_class=Response,
    responses={**OUTGOING_NOT_FOUND, 200: EML},
)
async def outgoing_raw(delivery_id: Id, caller: Caller, platform: PlatformDep) -> Response:
    """The mail byte for byte as the relay got it (or would have), as an .eml download."""
    require_admin(caller, "sent mail")
    found = await asyncio.to_thread(DeliveryReads(platform.db).one, delivery_id)
    if found is None:
        raise MailNotFound(f"sent mail {delivery_id} not found")
    return eml(found[1], f"sent-{delivery_id}.eml")
