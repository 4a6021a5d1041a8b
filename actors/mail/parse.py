"""Raw mail bytes into a `ParsedMail`: RFC 5322 headers, RFC 2047 encoded words, MIME multipart,
RFC 2231 filenames, any charset. The work is bounded (size, parts, depth, header length, body
length: the limits below) and broken mail never raises: it parses as far as it goes, with its
defects flagged. Python's `email` package with the modern policy does the parsing; where that
raises, the legacy compat32 policy takes over, and where both fail the raw text is the body."""

from __future__ import annotations

import codecs
import hashlib
import re
from email.message import Message
from email.parser import BytesParser
from email.policy import Compat32, EmailPolicy

from actors.mail import headers
from actors.mail.headers import Defects, scrub
from actors.mail.htmltext import MAX_HTML_CHARS, sanitize, to_text
from actors.mail.message import Attachment, Defect, ParsedMail

MAX_MESSAGE_BYTES = 40 * 1024 * 1024  # beyond this the message is cut (the intake refuses first)
MAX_PARTS = 500  # MIME parts looked at; the rest of a message with more is not
MAX_DEPTH = 16  # nesting of multiparts and attached messages
MAX_STRUCTURE_LINES = 2 * MAX_PARTS  # boundary-like lines read before the parser ever starts
MAX_TEXT_CHARS = 2_000_000  # the text body kept (the raw message keeps everything)

# Lines that open a MIME part or declare a container: counted before parsing, so that a MIME
# bomb (100,000 parts, or a deep nest) is cut to a bounded prefix instead of being parsed whole.
_STRUCTURE_LINE = re.compile(rb"^(?:--\S|content-type:[ \t]*(?:multipart|message)/)", re.M | re.I)
_TRANSFER_ENCODINGS = {
    "", "7bit", "8bit", "binary", "base64", "quoted-printable",
    "uuencode", "x-uuencode", "uue", "x-uue",
}  # fmt: skip
# Labels whose senders mean a superset (as browsers read them, WHATWG Encoding).
_SUPERSET = {
    "iso8859-1": "cp1252", "gb2312": "gb18030", "gbk": "gb18030", "euc_kr": "cp949",
    "shift_jis": "cp932",
    "iso8859-9": "cp1254", "tis-620": "cp874", "iso8859-11": "cp874",
}  # fmt: skip


class _ModernPolicy(EmailPolicy):
    """The default policy, with each header value cut at MAX_HEADER_CHARS as it is read."""

    def header_source_parse(self, sourcelines: list[str]) -> tuple[str, str]:
        name, value = super().header_source_parse(sourcelines)
        return name, value[: headers.MAX_HEADER_CHARS]


class _LegacyPolicy(Compat32):
    def header_source_parse(self, sourcelines: list[str]) -> tuple[str, str]:
        name, value = super().header_source_parse(sourcelines)
        return name, value[: headers.MAX_HEADER_CHARS]


MODERN = _ModernPolicy()
LEGACY = _LegacyPolicy()


def parse(raw: bytes) -> ParsedMail:
    """The mail in `raw`, decoded as far as it goes; never raises for what the bytes hold."""
    defects = Defects()
    data = bounded(raw, defects)
    for policy in (MODERN, LEGACY):
        try:
            return _Builder(defects).build(BytesParser(policy=policy).parsebytes(data))
        except Exception:  # a parser fault on hostile input: try the next one, then give up
            defects.add(Defect.PARSER_FALLBACK)
    defects.add(Defect.UNPARSEABLE)
    text = scrub(data.decode("utf-8", "replace")[:MAX_TEXT_CHARS], defects)
    return ParsedMail(text=text, defects=defects.codes())


def load(raw: bytes) -> Message:
    """The bounded prefix of `raw` as a legacy (compat32) message tree, for detectors that
    read the tree themselves (bounce reports)."""
    data = bounded(raw, Defects())
    try:
        return BytesParser(policy=LEGACY).parsebytes(data)
    except Exception:
        return BytesParser(policy=LEGACY).parsebytes(data, headersonly=True)


def bounded(raw: bytes, defects: Defects) -> bytes:
    """`raw` cut at MAX_MESSAGE_BYTES and before its (MAX_STRUCTURE_LINES + 1)-th MIME line."""
    if len(raw) > MAX_MESSAGE_BYTES:
        defects.add(Defect.TOO_LARGE)
        raw = raw[:MAX_MESSAGE_BYTES]
    for count, match in enumerate(_STRUCTURE_LINE.finditer(raw), start=1):
        if count > MAX_STRUCTURE_LINES:
            defects.add(Defect.TOO_MANY_PARTS)
            return raw[: match.start()]
    return raw


class _Builder:
    """Walks one parsed tree and collects the body parts and attachments (the body selection
    of RFC 8621 section 4.1.4, simplified: in multipart/alternative the plain and the HTML
    alternative; in multipart/related only the first part; elsewhere inline text parts)."""

    def __init__(self, defects: Defects) -> None:
        self.defects = defects
        self.parts = 0
        self.text_parts: list[str] = []
        self.html_parts: list[str] = []
        self.attachments: list[Attachment] = []

    def build(self, msg: Message) -> ParsedMail:
        d = self.defects
        fields = headers.raw_fields(msg, d)
        self._walk(msg, depth=0, parent=None, index=0)
        decoded = [(name, headers.decoded(name, value, d)) for name, value in fields]

        def one(name: str) -> str | None:
            return headers.first(fields, name)

        text_from_html = False
        if _has_text(self.text_parts) or (self.text_parts and not _has_text(self.html_parts)):
            text = "\n--\n".join(self.text_parts)
        elif self.html_parts:
            text, text_from_html = to_text("\n".join(self.html_parts)), True
        else:
            text = ""
        if len(text) > MAX_TEXT_CHARS or sum(map(len, self.html_parts)) > MAX_HTML_CHARS:
            d.add(Defect.BODY_TOO_LONG)
            text = text[:MAX_TEXT_CHARS]
        senders = headers.addresses("from", one("from"), d)
        subject = one("subject")
        ids = headers.message_ids(one("message-id"))
        return ParsedMail(
            message_id=ids[0] if ids else None,
            in_reply_to=headers.message_ids(one("in-reply-to")),
            references=headers.message_ids(one("references")),
            from_address=senders[0] if senders else None,
            to=headers.addresses("to", one("to"), d),
            cc=headers.addresses("cc", one("cc"), d),
            reply_to=headers.addresses("reply-to", one("reply-to"), d),
            return_path=headers.return_path(one("return-path")),
            subject=headers.decoded("subject", subject, d) if subject is not None else "",
            date=headers.date(one("date"), d),
            text=scrub(text, d),
            text_from_html=text_from_html,
            html=sanitize("\n".join(self.html_parts)) if self.html_parts else None,
            attachments=self.attachments,
            headers=decoded,
            defects=d.codes(),
        )

    # -- the tree -----------------------------------------------------------------------------
    def _walk(self, part: Message, *, depth: int, parent: str | None, index: int) -> None:
        self.parts += 1
        if self.parts > MAX_PARTS:
            self.defects.add(Defect.TOO_MANY_PARTS)
            return
        self.defects.add_python(list(part.defects))
        if parent is not None and not any(k.lower() == "content-type" for k in part):
            self.defects.add(Defect.MISSING_CONTENT_TYPE)
        ctype = part.get_content_type()
        maintype = ctype.split("/", 1)[0]
        payload = part.get_payload()
        if maintype == "multipart" and isinstance(payload, list):
            if depth >= MAX_DEPTH:
                self.defects.add(Defect.TOO_DEEP)
                return
            subtype = ctype.split("/", 1)[1]
            children = [c for c in payload if isinstance(c, Message)]
            if subtype == "alternative":
                self._alternative(children, depth=depth + 1)
            else:
                for i, child in enumerate(children):
                    self._walk(child, depth=depth + 1, parent=subtype, index=i)
            return
        if maintype == "multipart":  # no boundary: what it holds is shown as text
            ctype = "text/plain"
        filename = self._filename(part)
        disposition = _disposition(part)
        is_body = (
            disposition != "attachment"
            and ctype in ("text/plain", "text/html")
            and (index == 0 or (parent != "related" and not filename))
        )
        if is_body:
            text = self._text(part)
            (self.text_parts if ctype == "text/plain" else self.html_parts).append(text)
        elif maintype == "message" and isinstance(payload, list) and depth >= MAX_DEPTH:
            self.defects.add(Defect.TOO_DEEP)
        else:
            self._attach(part, ctype, filename, disposition, parent)

    def _alternative(self, children: list[Message], *, depth: int) -> None:
        """The plain and the HTML alternatives that have any text (several of one kind are
        joined, as RFC 8621 does); attachments of every alternative are kept."""
        texts: list[str] = []
        htmls: list[str] = []
        for i, child in enumerate(children):
            sub = _Builder(self.defects)
            sub.parts = self.parts
            sub._walk(child, depth=depth, parent="alternative", index=i)
            self.parts = sub.parts
            texts += sub.text_parts if _has_text(sub.text_parts) else []
            htmls += sub.html_parts if _has_text(sub.html_parts) else []
            self.attachments.extend(sub.attachments)
        self.text_parts.extend(texts)
        self.html_parts.extend(htmls)

    # -- one part -----------------------------------------------------------------------------
    def _body_bytes(self, part: Message) -> bytes:
        cte = str(part.get("content-transfer-encoding", "")).strip().lower()
        if cte not in _TRANSFER_ENCODINGS:
            self.defects.add(Defect.UNKNOWN_TRANSFER_ENCODING)
        payload = part.get_payload(decode=True)
        self.defects.add_python(list(part.defects))
        return payload if isinstance(payload, bytes) else b""

    def _text(self, part: Message) -> str:
        data = self._body_bytes(part)
        charset = part.get_param("charset")
        label = charset if isinstance(charset, str) else None
        return decode_text(data, label, self.defects)[: max(MAX_TEXT_CHARS, MAX_HTML_CHARS) + 1]

    def _attach(
        self,
        part: Message,
        ctype: str,
        filename: str | None,
        disposition: str | None,
        parent: str | None,
    ) -> None:
        payload = part.get_payload()
        if ctype.startswith("message/") and isinstance(payload, list):
            data = b"".join(_serialized(m) for m in payload if isinstance(m, Message))
        else:
            data = self._body_bytes(part)
        cid = part.get("content-id")
        content_id = str(cid).strip().strip("<>").strip() if cid is not None else None
        self.attachments.append(
            Attachment(
                filename=filename,
                content_type=ctype,
                content_id=scrub(content_id, self.defects, lines=False) if content_id else None,
                inline=disposition == "inline"
                or (disposition is None and (parent == "related" or content_id is not None)),
                size=len(data),
                sha256=hashlib.sha256(data).hexdigest(),
                data=data,
            )
        )

    def _filename(self, part: Message) -> str | None:
        try:
            name = part.get_filename()
        except Exception:
            self.defects.add(Defect.MALFORMED_HEADER)
            return None
        if not name:
            legacy = part.get_param("file")  # an old non-standard spelling of name=
            name = legacy if isinstance(legacy, str) else None
        if not name:
            return None
        text = str(name)
        if "=?" in text:  # RFC 2047 inside a quoted parameter: wrong, and common
            text = headers.decoded("subject", text, self.defects)
        text = scrub(_undo_surrogates(text), self.defects, lines=False).strip()
        return text or None


def decode_text(data: bytes, charset: str | None, defects: Defects) -> str:
    """Bytes of a text part as text: the declared charset (read as browsers read it), else
    UTF-8, else Windows-1252 with replacement characters; an unknown charset, or bytes the
    declared one cannot hold, are flagged, never raised."""
    label = (charset or "").strip().strip("\"'").lower()
    codec: str | None = None
    if label:
        try:
            codec = codecs.lookup(label).name
        except LookupError:
            defects.add(Defect.UNKNOWN_CHARSET)
    if codec is not None:
        try:
            return data.decode(_SUPERSET.get(codec, codec))
        except UnicodeDecodeError:
            defects.add(Defect.CHARSET_MISMATCH)
        except LookupError:  # a codec that is no text encoding ("hex", "rot13")
            defects.add(Defect.UNKNOWN_CHARSET)
            codec = None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    if codec is None or codec == "ascii":
        return data.decode("cp1252", "replace")
    return data.decode(_SUPERSET.get(codec, codec), "replace")


def _has_text(parts: list[str]) -> bool:
    return any(p.strip() for p in parts)


def _disposition(part: Message) -> str | None:
    try:
        value = part.get_content_disposition()
    except Exception:
        return None
    return value if isinstance(value, str) else None


def _serialized(msg: Message) -> bytes:
    try:
        return msg.as_bytes()
    except Exception:
        try:
            return msg.as_string().encode("utf-8", "surrogateescape")
        except Exception:
            return b""


def _undo_surrogates(text: str) -> str:
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeError:
        return text
