"""The new text of a reply, for the ticket view: quoted history and the signature cut off, the
full text kept. mail-parser-reply (maintained, many languages) does the work; a few rules of
our own run first for what it misses (a quote header over a ``>`` block, a bottom-posted
reply, header blocks in languages it lacks) and after it (a signature that starts with the
sender's name, a trailing separator line)."""

from __future__ import annotations

import re

from mailparser_reply import EmailReplyParser  # type: ignore[import-untyped]
from pydantic import BaseModel, ConfigDict

from actors.mail.message import MailAddress, ParsedMail

MAX_REPLY_INPUT_CHARS = 100_000  # the part of a long body searched for the reply
SIGNATURE_WINDOW_LINES = 12  # the last lines where a signature by the sender's name may start
LANGUAGES = ["en", "de", "fr", "es", "it", "nl", "pl", "sv", "da", "cs", "ja", "ko", "zh"]

_PARSER = EmailReplyParser(languages=LANGUAGES)
# "Key: value" lines of a forwarded or quoted header block, in languages the library lacks too.
_HEADER_LINE = re.compile(r"^\s*\*?([^\W\d_][\w .-]{0,20}?)\*?\s*:\s*\S", re.UNICODE)
_FROM_KEYS = {
    "from", "von", "de", "da", "van", "od", "от", "від", "från", "fra", "lähettäjä", "feladó",
}  # fmt: skip
_OTHER_KEYS = {
    "sent", "date", "to", "cc", "subject", "gesendet", "datum", "an", "betreff", "envoyé",
    "à", "objet", "enviado", "para", "asunto", "assunto", "inviato", "a", "oggetto",
    "отправлено", "дата", "кому", "тема", "копия", "надіслано", "wysłano", "temat",
}  # fmt: skip
_SEPARATOR = re.compile(r"^[\s\-_=*~]{4,}$")
_CLOSING = re.compile(
    r"^(thanks|thank you|many thanks|regards|best|best regards|kind regards|cheers|"
    r"sincerely|yours|gruß|grüße|viele grüße|mit freundlichen grüßen|merci|cordialement)\b",
    re.IGNORECASE,
)


class Reply(BaseModel):
    """A reply split for the ticket view: `text` is what the sender wrote now."""

    model_config = ConfigDict(frozen=True)

    text: str
    signature: str | None = None
    full: str
    quoted: bool = False  # quoted history was cut off


def reply_of(mail: ParsedMail) -> Reply:
    """The reply in a parsed mail (its text body, HTML rendered with ``>`` for quotes)."""
    return extract_reply(mail.text, sender=mail.from_address)


def extract_reply(body: str, *, sender: MailAddress | None = None) -> Reply:
    full = body.replace("\r\n", "\n").replace("\r", "\n")
    lines = full[:MAX_REPLY_INPUT_CHARS].split("\n")
    lines, cut = _cut_quote_block(lines)
    cut_at = _header_block(lines)
    if cut_at is not None:
        lines, cut = lines[:cut_at], True
    text = "\n".join(lines).strip()
    found = _PARSER.read(text).replies if text else []
    signature: str | None = None
    if found and found[0].body.strip():
        first = found[0]
        cut = cut or len(found) > 1 or bool(first.headers)
        text = first.body.strip()
        signature = first.signatures.strip() or None
    text, own_signature = _sender_signature(text, sender)
    if own_signature:
        signature = f"{own_signature}\n{signature}" if signature else own_signature
    text = _strip_trailing_separators(text)
    if not text:  # never lose all the sender wrote: an all-quote mail shows as it came
        text, signature, cut = full.strip(), None, False
    return Reply(text=text, signature=signature, full=full, quoted=cut)


def _is_quoted(line: str) -> bool:
    return line.lstrip().startswith(">")


def _cut_quote_block(lines: list[str]) -> tuple[list[str], bool]:
    """Each quote header ("On ... wrote:", "<date>, <name> <addr>:", wrapped over up to three
    lines) standing over a block of ``>`` lines is dropped with its block; what the sender
    wrote above and below (a bottom-posted or interleaved reply) stays."""
    out: list[str] = []
    cut = False
    i = 0
    while i < len(lines):
        line = lines[i]
        after = _quoted_block_after(lines, i)
        if after is None:
            out.append(line)
            i += 1
            continue
        start = len(out)
        first = line.strip()
        while start > 0 and len(out) - start < 2 and out[start - 1].strip():
            above = out[start - 1]
            wrapped = first[:1].islower() or first[:1] == "<" or above.rstrip().endswith("<")
            if _is_quoted(above) or not wrapped:
                break
            start -= 1
            first = above.strip()
        del out[start:]
        i = after
        while i < len(lines) and (_is_quoted(lines[i]) or not lines[i].strip()):
            i += 1
        cut = True
    return out, cut


def _quoted_block_after(lines: list[str], i: int) -> int | None:
    """The index of the first ``>`` line right under line `i`, if `i` is a quote header."""
    line = lines[i]
    if not line.strip().endswith(":") or _is_quoted(line):
        return None
    after = next((j for j in range(i + 1, min(i + 3, len(lines))) if lines[j].strip()), None)
    return after if after is not None and _is_quoted(lines[after]) else None


def _header_block(lines: list[str]) -> int | None:
    """Where a quoted header block starts: a From-like "Key: value" line with another header
    line (Sent, Date, To, Subject, in several languages) right around it."""
    keys = [_key(line) for line in lines]
    for i, key in enumerate(keys):
        if key not in _FROM_KEYS and key not in _OTHER_KEYS:
            continue
        block = [k for k in keys[i : i + 4] if k is not None]
        has_from = any(k in _FROM_KEYS for k in block)
        if len(block) >= 2 and has_from and any(line.strip() for line in lines[:i]):
            return i
    return None


def _key(line: str) -> str | None:
    match = _HEADER_LINE.match(line)
    if not match:
        return None
    key = match.group(1).strip().lower()
    return key if key in _FROM_KEYS or key in _OTHER_KEYS else None


def _sender_signature(text: str, sender: MailAddress | None) -> tuple[str, str | None]:
    """A signature that opens with the sender's name (or address) in the last lines, with the
    closing ("Thanks,") or separator line just above it."""
    marks = _sender_marks(sender)
    if not marks or not text:
        return text, None
    lines = text.split("\n")
    filled = [i for i, line in enumerate(lines) if line.strip()]
    for i in filled[-SIGNATURE_WINDOW_LINES:]:
        line = lines[i].strip().lower()
        if len(line) > 60 or not any(m in line for m in marks):
            continue
        start = i
        earlier = [j for j in filled if j < i][-4:]
        for j in reversed(earlier):
            above = lines[j].strip()
            if _SEPARATOR.match(above):
                start = j
                break
            if j == earlier[-1] and _CLOSING.match(above) and len(above) < 40:
                start = j
        body = "\n".join(lines[:start]).strip()
        if body:
            return body, "\n".join(lines[start:]).strip()
        return text, None
    return text, None


def _sender_marks(sender: MailAddress | None) -> list[str]:
    if sender is None:
        return []
    marks: list[str] = []
    if sender.name and len(sender.name.strip()) >= 3:
        marks.append(sender.name.strip().lower())
    if sender.address and "@" in sender.address:
        marks.append(sender.address.lower())
    return marks


def _strip_trailing_separators(text: str) -> str:
    lines = text.rstrip().split("\n")
    while lines and (_SEPARATOR.match(lines[-1]) or not lines[-1].strip()):
        lines.pop()
    return "\n".join(lines).strip()
