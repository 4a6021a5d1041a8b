"""Loop protection: whether a received mail must never get an automatic answer from the desk,
and why (RFC 3834 section 2 and the signs real auto-responders, lists and MTAs leave), and
whether the mail itself was sent by a machine (an auto-reply is kept on its ticket but does
not reopen it). The per-address cap on auto-replies is state and lives with the sender."""

from __future__ import annotations

import re
from collections.abc import Callable
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from actors.mail.message import ParsedMail

LOOP_HEADER = "X-Sitedesk-Loop"  # set on every mail the desk sends

_BULK_PRECEDENCE = {"bulk", "list", "junk", "auto_reply"}
# Microsoft's X-Auto-Response-Suppress values that ask for no auto-reply (DR, NDR, RN and NRN
# only suppress delivery and read receipts).
_SUPPRESS_VALUES = {"all", "oof", "autoreply"}
_SYSTEM_LOCAL_PARTS = {"mailer-daemon", "postmaster", "listserv", "majordomo"}
_SYSTEM_AFFIXES = (("owner-", ""), ("", "-request"), ("", "-bounces"))
_RESPONDER_HEADERS = ("x-autoreply", "x-autorespond", "x-autoresponder")
_AUTO_SUBJECT = re.compile(
    r"^\s*(auto(matic)?[ -]?(reply|response|antwort)|out of (the )?office|"
    r"abwesenheitsnotiz|r[ée]ponse automatique|respuesta autom[áa]tica)\b",
    re.IGNORECASE,
)


class LoopReason(StrEnum):
    AUTO_SUBMITTED = "auto_submitted"  # RFC 3834 Auto-Submitted other than "no"
    AUTO_RESPONDER = "auto_responder"  # X-Autoreply, X-Autorespond (common responders)
    AUTO_REPLY_SUBJECT = "auto_reply_subject"  # "Automatic reply:", "Out of Office", ...
    BULK_PRECEDENCE = "bulk_precedence"  # Precedence: bulk, list, junk (or auto_reply)
    LIST_ID = "list_id"  # RFC 2919
    LIST_UNSUBSCRIBE = "list_unsubscribe"  # RFC 2369
    NULL_RETURN_PATH = "null_return_path"  # Return-Path: <> (bounces, many auto-replies)
    SYSTEM_SENDER = "system_sender"  # mailer-daemon@, postmaster@, list robots
    RESPONSE_SUPPRESSED = "response_suppressed"  # X-Auto-Response-Suppress: All/OOF/AutoReply
    DELIVERY_REPORT = "delivery_report"  # multipart/report (RFC 6522)
    OWN_LOOP_HEADER = "own_loop_header"  # a mail of our own came back
    OWN_MESSAGE_ID = "own_message_id"


# Reasons that say the mail itself was written by a machine, not by a person.
_AUTOMATIC = {
    LoopReason.AUTO_SUBMITTED,
    LoopReason.AUTO_RESPONDER,
    LoopReason.AUTO_REPLY_SUBJECT,
    LoopReason.DELIVERY_REPORT,
    LoopReason.SYSTEM_SENDER,
    LoopReason.OWN_LOOP_HEADER,
    LoopReason.OWN_MESSAGE_ID,
}


class LoopCheck(BaseModel):
    """Why a mail gets no automatic answer; no reasons: it may get one."""

    model_config = ConfigDict(frozen=True)

    reasons: list[LoopReason]

    @property
    def no_auto_reply(self) -> bool:
        return bool(self.reasons)

    @property
    def automatic(self) -> bool:
        """The mail was sent by a machine (an auto-reply, a bounce, our own mail)."""
        return any(r in _AUTOMATIC for r in self.reasons)


def check(
    mail: ParsedMail,
    *,
    loop_header: str = LOOP_HEADER,
    is_own_message_id: Callable[[str], bool] | None = None,
) -> LoopCheck:
    """Every rule that forbids an automatic answer to `mail`. `is_own_message_id` tells the
    desk's own (signed) Message-IDs: a mail that carries one as its own id came back to us."""
    reasons: list[LoopReason] = []

    def header(name: str) -> str:
        return (mail.header(name) or "").strip()

    auto_submitted = header("auto-submitted").split(";", 1)[0].strip().lower()
    if auto_submitted and auto_submitted != "no":
        reasons.append(LoopReason.AUTO_SUBMITTED)
    if any(mail.header(h) is not None for h in _RESPONDER_HEADERS):
        reasons.append(LoopReason.AUTO_RESPONDER)
    if _AUTO_SUBJECT.match(mail.subject):
        reasons.append(LoopReason.AUTO_REPLY_SUBJECT)
    if header("precedence").lower() in _BULK_PRECEDENCE:
        reasons.append(LoopReason.BULK_PRECEDENCE)
    if mail.header("list-id") is not None:
        reasons.append(LoopReason.LIST_ID)
    if mail.header("list-unsubscribe") is not None:
        reasons.append(LoopReason.LIST_UNSUBSCRIBE)
    if mail.return_path == "":
        reasons.append(LoopReason.NULL_RETURN_PATH)
    senders = [mail.return_path, mail.from_address.address if mail.from_address else None]
    if any(_is_system_address(a) for a in senders if a):
        reasons.append(LoopReason.SYSTEM_SENDER)
    suppress = {v.strip().lower() for v in header("x-auto-response-suppress").split(",")}
    if suppress & _SUPPRESS_VALUES:
        reasons.append(LoopReason.RESPONSE_SUPPRESSED)
    if header("content-type").lower().startswith("multipart/report"):
        reasons.append(LoopReason.DELIVERY_REPORT)
    if mail.header(loop_header) is not None:
        reasons.append(LoopReason.OWN_LOOP_HEADER)
    if is_own_message_id is not None and mail.message_id and is_own_message_id(mail.message_id):
        reasons.append(LoopReason.OWN_MESSAGE_ID)
    return LoopCheck(reasons=reasons)


def _is_system_address(address: str) -> bool:
    local = address.rsplit("@", 1)[0].strip().lower()
    if local in _SYSTEM_LOCAL_PARTS:
        return True
    return any(
        local.startswith(head) and local.endswith(tail) and len(local) > len(head + tail)
        for head, tail in _SYSTEM_AFFIXES
    )
