"""The parser on the stalwart-mail-parser and enmime corpora, with the expectations those
projects state: from, to, subject, body, attachments; enmime's warnings as our defects.
Where a corpus is not fully met, the measured pass count is a floor: fewer fails the test."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from actors.mail.bounces import detect
from actors.mail.htmltext import to_text
from actors.mail.loops import check
from actors.mail.message import Defect, ParsedMail
from actors.mail.parse import parse
from actors.mail.reply import reply_of
from tests.mail.corpora import corpus, manifest, record_rate

# Measured floors (stalwart: 107 messages; enmime: 53 checks on its 32 non-DSN messages).
STALWART_FLOOR = {"from": 107, "to": 106, "subject": 106, "text": 104, "attachments": 106}
ENMIME_FLOOR = 50

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# enmime's warning kinds, as the defects our parser flags for the same faults.
_ENMIME_WARNINGS = {
    "Missing Boundary": Defect.MISSING_BOUNDARY,
    "Malformed Header": Defect.MALFORMED_HEADER,
    "Missing Content-Type": Defect.MISSING_CONTENT_TYPE,
    "Content Encoding": Defect.UNKNOWN_TRANSFER_ENCODING,
    "Character Set Conversion": Defect.UNKNOWN_CHARSET,
    "Malformed Base64": Defect.MALFORMED_BASE64,
    "Character Set Declaration Mismatch": Defect.CHARSET_MISMATCH,
}


def _desk_text(value: str) -> str:
    """Text as the desk keeps it (line breaks LF, controls U+FFFD), whitespace collapsed."""
    value = _CONTROL.sub("\ufffd", value.replace("\r\n", "\n").replace("\r", "\n"))
    return " ".join(value.split())


def _matches(expected: str, got: str) -> bool:
    """`got` starts with `expected`, where the source's U+FFFD (bytes it could not decode)
    may stand for any one character (our Windows-1252 fallback decodes them)."""
    if len(got) < len(expected):
        return False
    return all(e == g or e == "\ufffd" for e, g in zip(expected, got, strict=False))


def _stalwart_checks(item: dict[str, Any], mail: ParsedMail) -> dict[str, bool]:
    sender = item["from"][0] if item["from"] else None
    got_sender = mail.from_address
    subject = item["subject"] or ""
    kind, snippet = item["text_body_part_kind"], item["text_body_snippet"]
    if kind == "Html":  # the snippet is the HTML part itself, cut at 200 characters
        snippet = " ".join(to_text(snippet).split()[:-1])
    expected_named = sorted(
        (a["filename"], a["content_type"]) for a in item["attachments"] if a["filename"]
    )
    got_named = sorted((a.filename, a.content_type) for a in mail.attachments if a.filename)
    return {
        "from": (sender is None and got_sender is None)
        or (
            sender is not None
            and got_sender is not None
            and (sender["name"], sender["address"]) == (got_sender.name, got_sender.address)
        ),
        "to": [(a["name"], a["address"]) for a in item["to"] or []]
        == [(a.name, a.address) for a in mail.to],
        "subject": len(subject) == len(mail.subject) and _matches(subject, mail.subject),
        "text": snippet is None or _matches(_desk_text(snippet)[:150], _desk_text(mail.text)),
        "attachments": expected_named == got_named,
    }


def test_stalwart_messages_parse_as_the_source_expects() -> None:
    folder = corpus("stalwart-mail-parser")
    items = manifest(folder)["messages"]
    passed = dict.fromkeys(STALWART_FLOOR, 0)
    failures: dict[str, list[str]] = {k: [] for k in STALWART_FLOOR}
    for item in items:
        mail = parse((folder / item["file"]).read_bytes())
        for name, ok in _stalwart_checks(item, mail).items():
            passed[name] += ok
            if not ok:
                failures[name].append(item["id"])
    for name, floor in STALWART_FLOOR.items():
        record_rate("stalwart-mail-parser", name, passed[name], len(items))
        assert passed[name] >= floor, f"{name}: {failures[name]}"


def _enmime_check(check: str, value: Any, mail: ParsedMail) -> bool | None:
    attached = [a for a in mail.attachments if not a.inline]
    inline = [a for a in mail.attachments if a.inline]
    match check:
        case "text_equals":
            return mail.text == value
        case "text_contains":
            return bool(value in mail.text)
        case "html_contains":
            return mail.html is not None and value in mail.html
        case "html_equals":
            return (mail.html or "") == value
        case "warning" if value == "Plain Text from HTML":
            return mail.text_from_html
        case "warning":
            return _ENMIME_WARNINGS[value] in mail.defects
        case "inlines":
            return len(inline) == value
        case "attachment_filenames":
            return [a.filename for a in attached] == value
        case "attachment0_contains":
            return bool(attached) and value.encode() in attached[0].data
        case "inline_filenames" | "other_part_filenames":
            return sorted(a.filename or "" for a in inline) == sorted(value)
        case "inline0_content_id":
            return bool(inline) and inline[0].content_id == value.strip("<>")
        case "other_part_content_ids":
            return sorted(a.content_id or "" for a in inline) == sorted(value)
        case "subject_equals":
            return mail.subject == value
        case "header_keys":  # enmime canonicalises the case of names (Message-Id)
            return sorted({k.lower() for k, _ in mail.headers}) == sorted(k.lower() for k in value)
        case "from_contains":
            return value in (mail.header("from") or "")
    return None  # a note, or the DSN expectations (tests/mail/test_bounce_corpora.py)


def test_enmime_messages_parse_as_the_source_expects() -> None:
    folder = corpus("enmime")
    passed = total = 0
    failures: list[str] = []
    for item in manifest(folder)["messages"]:
        mail = parse((folder / item["file"]).read_bytes())
        for name, value in item["expected"].items():
            ok = _enmime_check(name, value, mail)
            if ok is None:
                continue
            total += 1
            passed += ok
            if not ok:
                failures.append(f"{item['id']}:{name}")
    record_rate("enmime", "parse checks", passed, total)
    assert passed >= ENMIME_FLOOR, failures


def _all_corpus_files() -> list[Path]:
    files: list[Path] = []
    for name in ("stalwart-mail-parser", "enmime", "sisimai-bounces", "talon"):
        folder = corpus(name)
        entries = manifest(folder)
        files += [folder / e["file"] for e in entries.get("messages") or entries["cases"]]
    folder = corpus("email-reply-parser")
    files += [folder / e["file"] for e in manifest(folder)["messages"]]
    return files


def test_every_corpus_message_parses_without_an_exception() -> None:
    files = _all_corpus_files()
    for path in files:
        raw = path.read_bytes()
        mail = parse(raw)  # no try: an exception fails the test, naming the file
        reply_of(mail)
        check(mail)
        detect(raw)
        assert "\x00" not in mail.text and "\x00" not in mail.subject, path
    record_rate("all corpora", "parsed without exception", len(files), len(files))
