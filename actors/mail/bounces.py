"""Whether a mail is a delivery report, and about whom: RFC 3464 delivery status notifications
inside RFC 6522 multipart/report (read here, field by field), RFC 5965 feedback (abuse)
reports, and the common non-standard bounces of Exim, qmail, Postfix, Exchange and others
(detected by flufl.bounce, with the status code and original Message-ID read from the text).
A status 5.x.x is a permanent failure, 4.x.x a transient one (RFC 3463)."""

from __future__ import annotations

import re
from email.message import Message
from email.parser import Parser
from email.policy import compat32
from email.utils import getaddresses
from enum import StrEnum

from flufl.bounce import all_failures
from pydantic import BaseModel, ConfigDict

from actors.mail import parse

MAX_REPORT_CHARS = 256 * 1024  # of a delivery-status part, and of the text searched by rules
MAX_RECIPIENTS = 1000  # recipients kept of one report
MAX_HEURISTIC_BYTES = 128 * 1024  # of a mail, read by the non-standard bounce detectors

_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_ADDRESS = re.compile(r"[^\s@<>\"'{}(),;:\[\]]+@[^\s@<>\"'{}(),;:\[\]]+")
_SMTP_REPLY = re.compile(r"\b([45]\d\d)[ -]")
_MESSAGE_ID_LINE = re.compile(r"^\s*Message-ID:\s*<([^<>\s]+)>", re.IGNORECASE | re.MULTILINE)
_DSN_TYPES = {"message/delivery-status", "message/global-delivery-status"}
_ORIGINAL_TYPES = {
    "message/rfc822", "message/global", "text/rfc822-headers", "message/global-headers",
}  # fmt: skip
_NOT_FAILED = {"delivered", "relayed", "expanded", "deliverable"}  # success is no bounce


class ReportKind(StrEnum):
    FAILED = "failed"  # at least one recipient could not be reached
    DELAYED = "delayed"  # only delays so far: the MTA keeps trying
    FEEDBACK = "feedback"  # an abuse or feedback report about a message we sent (RFC 5965)


class Recipient(BaseModel):
    """One recipient a report is about."""

    model_config = ConfigDict(frozen=True)

    address: str | None
    status: str | None = None  # the RFC 3463 code, e.g. "5.1.1"
    permanent: bool
    action: str | None = None  # failed, delayed (RFC 3464)
    diagnostic: str | None = None  # e.g. "smtp; 550 5.1.1 user unknown"
    remote_mta: str | None = None


class DeliveryReport(BaseModel):
    """What a delivery or feedback report says; `standard` is False for a bounce recognised
    from its wording rather than from RFC 3464 fields."""

    model_config = ConfigDict(frozen=True)

    kind: ReportKind
    standard: bool
    recipients: list[Recipient]
    original_message_id: str | None = None
    reporting_mta: str | None = None
    feedback_type: str | None = None


def detect(raw: bytes) -> DeliveryReport | None:
    """The report in `raw`, or None for any other mail (vacation auto-replies included: they
    are answers, see `loops`). Never raises for what the bytes hold."""
    try:
        msg = parse.load(raw)
        parts = _parts(msg)
        found = _feedback(parts) or _standard(parts)
        if found is None and len(raw) > MAX_HEURISTIC_BYTES:
            # the heuristics scan every line: they read the head of a big mail only, where
            # an MTA writes its report
            msg = parse.load(raw[:MAX_HEURISTIC_BYTES])
            parts = _parts(msg)
        return found or _non_standard(msg, parts)
    except Exception:  # a detector's fault on hostile input: not recognised as a report
        return None


def _parts(msg: Message) -> list[Message]:
    out: list[Message] = []
    for part in msg.walk():
        out.append(part)
        if len(out) >= parse.MAX_PARTS:
            break
    return out


# -- RFC 3464 ---------------------------------------------------------------------------------
def _standard(parts: list[Message]) -> DeliveryReport | None:
    status_parts = [p for p in parts if p.get_content_type() in _DSN_TYPES]
    if not status_parts:
        return None
    reporting_mta: str | None = None
    recipients: list[Recipient] = []
    for part in status_parts:
        blocks = _field_blocks(_body_text(part))
        if blocks and not _has_recipient(blocks[0]):
            reporting_mta = reporting_mta or blocks[0].get("reporting-mta")
            blocks = blocks[1:]
        recipients += [r for b in blocks if (r := _recipient(b)) is not None]
    if not recipients:
        return None
    return DeliveryReport(
        kind=_kind(recipients),
        standard=True,
        recipients=recipients[:MAX_RECIPIENTS],
        original_message_id=_original_message_id(parts),
        reporting_mta=reporting_mta,
    )


def _has_recipient(block: dict[str, str]) -> bool:
    return "final-recipient" in block or "original-recipient" in block


def _recipient(block: dict[str, str]) -> Recipient | None:
    if not _has_recipient(block):
        return None
    action = (block.get("action") or "").strip().lower() or None
    if action in _NOT_FAILED:
        return None
    status = _status_code(block.get("status"))
    detail = _status_code(block.get("diagnostic-code"))
    if detail and (not status or (status.endswith(".0.0") and detail[0] == status[0])):
        status = detail  # the remote server's own code, more precise than a generic x.0.0
    if status and status.startswith("2"):
        return None
    permanent = status.startswith("5") if status else action == "failed"
    address = _address(block.get("final-recipient") or block.get("original-recipient"))
    return Recipient(
        address=address,
        status=status,
        permanent=permanent and action != "delayed",
        action=action,
        diagnostic=block.get("diagnostic-code"),
        remote_mta=block.get("remote-mta"),
    )


def _kind(recipients: list[Recipient]) -> ReportKind:
    if any(r.permanent or r.action == "failed" for r in recipients):
        return ReportKind.FAILED
    return ReportKind.DELAYED


def _field_blocks(text: str) -> list[dict[str, str]]:
    """The field groups of a delivery-status body (separated by blank lines), names lower."""
    blocks = [{k.lower(): " ".join(v.split()) for k, v in b} for b in _raw_blocks(text)]
    return [b for b in blocks if b]


def _status_code(value: str | None) -> str | None:
    match = _STATUS.search(value or "")
    return match.group(0) if match else None


def _address(value: str | None) -> str | None:
    if not value:
        return None
    address = value.split(";", 1)[1] if ";" in value else value
    address = address.strip().strip("<>").strip()
    return address or None


# -- RFC 5965 feedback ------------------------------------------------------------------------
def _feedback(parts: list[Message]) -> DeliveryReport | None:
    report = next((p for p in parts if p.get_content_type() == "message/feedback-report"), None)
    if report is None:
        return None
    fields: dict[str, list[str]] = {}
    for block in _raw_blocks(_body_text(report)):
        for name, value in block:
            fields.setdefault(name.lower(), []).append(" ".join(value.split()))
    addresses = fields.get("original-rcpt-to") or fields.get("removal-recipient") or []
    if not addresses:
        original = _original(parts)
        to = original.get_all("to", []) if original is not None else []
        addresses = [a for _, a in _getaddresses(to) if a]
    recipients = [Recipient(address=_address(a), permanent=False) for a in addresses]
    return DeliveryReport(
        kind=ReportKind.FEEDBACK,
        standard=True,
        recipients=(recipients or [Recipient(address=None, permanent=False)])[:MAX_RECIPIENTS],
        original_message_id=_original_message_id(parts),
        reporting_mta=(fields.get("reporting-mta") or [""])[0] or None,
        feedback_type=((fields.get("feedback-type") or [""])[0].lower() or None),
    )


def _raw_blocks(text: str) -> list[list[tuple[str, str]]]:
    """Groups of "Name: value" fields separated by blank lines (RFC 3464, RFC 5965)."""
    blocks = []
    for chunk in re.split(r"\n[ \t]*\n", text.replace("\r\n", "\n").strip()):
        if chunk.strip():
            fields = Parser(policy=compat32).parsestr(chunk.strip() + "\n", headersonly=True)
            blocks.append([(str(k), str(v)) for k, v in fields.items()])
    return blocks


def _getaddresses(values: list[str]) -> list[tuple[str, str]]:
    return getaddresses([str(v) for v in values])


# -- non-standard bounces ---------------------------------------------------------------------
def _non_standard(msg: Message, parts: list[Message]) -> DeliveryReport | None:
    """A bounce in an MTA's own words. flufl.bounce finds the recipients and whether their
    failure is permanent; the status code next to each address, if any, is read here."""
    permanent, transient = all_failures(msg)
    text = _plain_text(parts)
    recipients: list[Recipient] = []
    for raw_address, is_permanent in [(a, True) for a in sorted(permanent)] + [
        (a, False) for a in sorted(transient - permanent)
    ]:
        address = (
            raw_address.decode("utf-8", "replace")
            if isinstance(raw_address, bytes)
            else str(raw_address)
        )
        if not _ADDRESS.fullmatch(address):
            continue  # a heuristic's false find (a JSON fragment, a phrase)
        status, reply = _status_near(text, address)
        if status:
            is_permanent = status.startswith("5")
        elif reply:
            is_permanent = reply.startswith("5")
        recipients.append(
            Recipient(
                address=address,
                status=status,
                permanent=is_permanent,
                action="failed" if is_permanent else "delayed",
            )
        )
    if not recipients:
        return None
    return DeliveryReport(
        kind=_kind(recipients),
        standard=False,
        recipients=recipients[:MAX_RECIPIENTS],
        original_message_id=_original_message_id(parts) or _message_id_in(text),
    )


def _status_near(text: str, address: str) -> tuple[str | None, str | None]:
    """The RFC 3463 status and SMTP reply code in the lines after the address's mention."""
    at = text.lower().find(address.lower())
    window = text[at : at + 600] if at >= 0 else text[:2000]
    status = _STATUS.search(window)
    reply = _SMTP_REPLY.search(window)
    return (status.group(0) if status else None), (reply.group(1) if reply else None)


# -- the original message ---------------------------------------------------------------------
def _original(parts: list[Message]) -> Message | None:
    for part in parts:
        ctype = part.get_content_type()
        if ctype not in _ORIGINAL_TYPES:
            continue
        payload = part.get_payload()
        if isinstance(payload, list) and payload and isinstance(payload[0], Message):
            return payload[0]
        return Parser(policy=compat32).parsestr(_body_text(part), headersonly=True)
    return None


def _original_message_id(parts: list[Message]) -> str | None:
    original = _original(parts)
    if original is None:
        return None
    found = re.search(r"<([^<>\s]+)>", str(original.get("message-id", "")))
    return found.group(1) if found else None


def _message_id_in(text: str) -> str | None:
    found = _MESSAGE_ID_LINE.search(text)
    return found.group(1) if found else None


def _body_text(part: Message) -> str:
    payload = part.get_payload()
    if isinstance(payload, list):
        text = "\n".join(m.as_string() if isinstance(m, Message) else str(m) for m in payload)
    else:
        data = part.get_payload(decode=True)
        raw = data if isinstance(data, bytes) else str(payload).encode("utf-8", "replace")
        text = raw.decode("utf-8", "replace")
    return text[:MAX_REPORT_CHARS]


def _plain_text(parts: list[Message]) -> str:
    texts = []
    for part in parts:
        if part.get_content_maintype() == "text" and not part.is_multipart():
            texts.append(_body_text(part))
        if sum(len(t) for t in texts) > MAX_REPORT_CHARS:
            break
    return "\n".join(texts)[:MAX_REPORT_CHARS]
