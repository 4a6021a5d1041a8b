"""What a received mail is once parsed: the typed `ParsedMail`, its addresses, attachments and
the names of the defects a broken mail is flagged with."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class Defect(StrEnum):
    """What was wrong with a mail. Broken mail is parsed as far as it goes and flagged."""

    MISSING_BOUNDARY = "missing_boundary"
    MALFORMED_HEADER = "malformed_header"
    MALFORMED_ADDRESS = "malformed_address"
    MALFORMED_DATE = "malformed_date"
    MALFORMED_BASE64 = "malformed_base64"
    MALFORMED_MULTIPART = "malformed_multipart"
    MISSING_CONTENT_TYPE = "missing_content_type"
    UNKNOWN_TRANSFER_ENCODING = "unknown_transfer_encoding"
    UNKNOWN_CHARSET = "unknown_charset"
    CHARSET_MISMATCH = "charset_mismatch"  # the bytes are not in the declared charset
    UNDECODABLE_BYTES = "undecodable_bytes"
    CONTROL_CHARACTERS = "control_characters"  # NUL and friends, replaced by U+FFFD
    TOO_LARGE = "too_large"  # the message was cut at MAX_MESSAGE_BYTES
    TOO_MANY_PARTS = "too_many_parts"
    TOO_DEEP = "too_deep"
    TOO_MANY_HEADERS = "too_many_headers"
    HEADER_TOO_LONG = "header_too_long"
    BODY_TOO_LONG = "body_too_long"
    PARSER_FALLBACK = "parser_fallback"  # the modern parser failed; the legacy one was used
    UNPARSEABLE = "unparseable"  # no parser could read it: the raw text is the body


class MailAddress(BaseModel):
    """One mailbox of an address header: the display name proves nothing, the address is
    what identifies a sender (and may be missing in broken mail)."""

    model_config = ConfigDict(frozen=True)

    name: str | None = None
    address: str | None = None


class Attachment(BaseModel):
    """A part of the mail that is not its text or HTML body: files, inline images, forwarded
    messages, delivery-status reports."""

    model_config = ConfigDict(frozen=True)

    filename: str | None
    content_type: str
    content_id: str | None = None
    inline: bool = False
    size: int
    sha256: str
    data: bytes = Field(repr=False)


class ParsedMail(BaseModel):
    """A received mail, decoded. `text` is what a person reads (text/plain preferred, else the
    HTML rendered as text); `html` is the sanitised HTML body, if there was one."""

    model_config = ConfigDict(frozen=True)

    message_id: str | None = None
    in_reply_to: list[str] = []
    references: list[str] = []
    from_address: MailAddress | None = None
    to: list[MailAddress] = []
    cc: list[MailAddress] = []
    reply_to: list[MailAddress] = []
    return_path: str | None = None  # None: no Return-Path header; "": the null path <>
    subject: str = ""
    date: datetime | None = None
    text: str = ""
    text_from_html: bool = False
    html: str | None = None
    attachments: list[Attachment] = []
    headers: list[tuple[str, str]] = []  # the top-level header fields, decoded, in order
    defects: list[str] = []

    def header(self, name: str) -> str | None:
        """The first value of a header field (case-insensitive), or None."""
        wanted = name.lower()
        return next((v for k, v in self.headers if k.lower() == wanted), None)

    def header_values(self, name: str) -> list[str]:
        wanted = name.lower()
        return [v for k, v in self.headers if k.lower() == wanted]
