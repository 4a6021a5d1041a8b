"""Header fields of a received mail decoded safely: RFC 2047 encoded words, raw UTF-8, address
lists, message ids, dates; every parse bounded and never raising (defects are returned)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email import policy, utils
from email.header import decode_header, make_header
from email.message import Message

from actors.mail.message import Defect, MailAddress

MAX_HEADER_CHARS = 32 * 1024  # one field's value; longer ones are cut (References fit easily)
MAX_HEADERS = 1000  # fields kept of one header block
# The modern address parser takes time quadratic in the length: longer address fields (some
# hundred recipients) are read by the legacy one, which is linear.
MAX_STRICT_ADDRESS_CHARS = 4 * 1024

# A C0 or C1 control character, DEL, or a Unicode line separator: refused by the desk's text
# types (PostgreSQL refuses NUL outright), so mail text replaces them with U+FFFD.
# Lone surrogates (undecodable bytes the email package kept) are replaced too.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_CONTROL_LINE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_MSG_ID = re.compile(r"<([^<>\s]+)>")

# The email package's defect classes, by name, as our defect codes (ObsoleteHeaderDefect is
# legal old syntax, not a fault).
_PY_DEFECTS = {
    "CloseBoundaryNotFoundDefect": Defect.MISSING_BOUNDARY,
    "StartBoundaryNotFoundDefect": Defect.MISSING_BOUNDARY,
    "NoBoundaryInMultipartDefect": Defect.MISSING_BOUNDARY,
    "MissingHeaderBodySeparatorDefect": Defect.MALFORMED_HEADER,
    "MisplacedEnvelopeHeaderDefect": Defect.MALFORMED_HEADER,
    "FirstHeaderLineIsContinuationDefect": Defect.MALFORMED_HEADER,
    "InvalidHeaderDefect": Defect.MALFORMED_HEADER,
    "HeaderMissingRequiredValue": Defect.MALFORMED_HEADER,
    "NonPrintableDefect": Defect.MALFORMED_HEADER,
    "InvalidBase64PaddingDefect": Defect.MALFORMED_BASE64,
    "InvalidBase64CharactersDefect": Defect.MALFORMED_BASE64,
    "InvalidBase64LengthDefect": Defect.MALFORMED_BASE64,
    "MultipartInvariantViolationDefect": Defect.MALFORMED_MULTIPART,
    "InvalidMultipartContentTransferEncodingDefect": Defect.MALFORMED_MULTIPART,
    "UndecodableBytesDefect": Defect.UNDECODABLE_BYTES,
    "NonASCIILocalPartDefect": Defect.MALFORMED_ADDRESS,
    "InvalidDateDefect": Defect.MALFORMED_DATE,
}


class Defects:
    """The defects of one mail, each once, in the order found."""

    def __init__(self) -> None:
        self._seen: dict[str, None] = {}

    def add(self, defect: str) -> None:
        self._seen.setdefault(str(defect), None)

    def add_python(self, found: list[object]) -> None:
        for d in found:
            name = type(d).__name__
            if name != "ObsoleteHeaderDefect":
                self.add(_PY_DEFECTS.get(name, _snake(name.removesuffix("Defect"))))

    def __contains__(self, defect: str) -> bool:
        return str(defect) in self._seen

    def codes(self) -> list[str]:
        return list(self._seen)


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def scrub(value: str, defects: Defects, *, lines: bool = True) -> str:
    """Text fit for the desk: CR LF and lone CR become LF, other controls U+FFFD (flagged)."""
    if lines:
        value = value.replace("\r\n", "\n").replace("\r", "\n")
    pattern = _CONTROL if lines else _CONTROL_LINE
    if pattern.search(value):
        defects.add(Defect.CONTROL_CHARACTERS)
        value = pattern.sub("\ufffd", value)
    return value


def raw_fields(msg: Message, defects: Defects) -> list[tuple[str, str]]:
    """The header fields of one part as (name, raw value), bounded in count and length; raw
    8-bit values that are valid UTF-8 are taken as UTF-8 (RFC 6532)."""
    out: list[tuple[str, str]] = []
    for i, (name, value) in enumerate(msg.raw_items()):
        if i >= MAX_HEADERS:
            defects.add(Defect.TOO_MANY_HEADERS)
            break
        text = str(value).replace("\r", "").replace("\n", "")  # unfolded, as the policy does
        if len(text) >= MAX_HEADER_CHARS:
            defects.add(Defect.HEADER_TOO_LONG)
            text = text[:MAX_HEADER_CHARS]
        out.append((str(name), _utf8_raw(text)))
    return out


def _utf8_raw(value: str) -> str:
    try:
        return value.encode("ascii", "surrogateescape").decode("utf-8")
    except UnicodeError:
        return value  # left to the header parser, which replaces what it cannot decode


def first(fields: list[tuple[str, str]], name: str) -> str | None:
    wanted = name.lower()
    return next((v for k, v in fields if k.lower() == wanted), None)


def decoded(name: str, raw: str, defects: Defects) -> str:
    """A header value as text: encoded words decoded, folding removed, controls replaced."""
    if "=?" not in raw:
        return scrub(" ".join(raw.split()), defects, lines=False)
    try:  # every field read as unstructured text: address fields are parsed by addresses()
        header = policy.default.header_factory("x-unstructured", raw)
        defects.add_python(list(header.defects))
        text = str(header)
    except Exception:  # the modern header parser has known crashes on hostile input
        defects.add(Defect.MALFORMED_HEADER)
        try:
            text = str(make_header(decode_header(raw)))
        except Exception:
            text = raw
    if any(c in text for c in "\r\n\t"):
        text = " ".join(text.split())
    return scrub(text, defects, lines=False)


def addresses(name: str, raw: str | None, defects: Defects) -> list[MailAddress]:
    """The mailboxes of an address field (groups flattened); a field that does not parse as
    addresses keeps what can be read, flagged."""
    if raw is None:
        return []
    out: list[MailAddress] = []
    try:
        if len(raw) > MAX_STRICT_ADDRESS_CHARS:
            raise ValueError("too long for the strict parser")
        header = policy.default.header_factory(name, raw)
        found = [(a.display_name, a.addr_spec) for a in getattr(header, "addresses", ())]
        if any(type(d).__name__ != "ObsoleteHeaderDefect" for d in header.defects):
            defects.add(Defect.MALFORMED_ADDRESS)
    except Exception:
        if len(raw) <= MAX_STRICT_ADDRESS_CHARS:
            defects.add(Defect.MALFORMED_ADDRESS)
        found = utils.getaddresses([raw])
    for display, spec in found:
        if display and "=?" in display:  # encoded words in a quoted name: wrong, and common
            display = decoded("subject", display, defects)
        display = " ".join(scrub(display, defects, lines=False).split()) if display else ""
        spec = scrub(spec, defects, lines=False).strip() if spec else ""
        if spec in ("<>", '""'):
            spec = ""
        if spec and "@" not in spec and not display:  # "From: Whomever": a name, no address
            display, spec = spec, ""
        if display or spec:
            out.append(MailAddress(name=display or None, address=spec or None))
    return out


def message_ids(raw: str | None) -> list[str]:
    """The ids of a Message-ID, In-Reply-To or References field, without angle brackets."""
    if not raw:
        return []
    found = _MSG_ID.findall(raw)
    if not found:  # broken mailers send bare ids
        found = [t for t in raw.replace(",", " ").split() if "@" in t]
    return [i for i in dict.fromkeys(found) if not _CONTROL_LINE.search(i)]


def return_path(raw: str | None) -> str | None:
    """None without a Return-Path field, "" for the null path ``<>``, else the address."""
    if raw is None:
        return None
    value = raw.strip()
    if value.startswith("<"):
        value = value[1 : value.find(">")] if ">" in value else value[1:]
    return value.strip()


def date(raw: str | None, defects: Defects) -> datetime | None:
    if not raw or not raw.strip():
        return None
    try:
        when = utils.parsedate_to_datetime(raw.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        defects.add(Defect.MALFORMED_DATE)
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)
