"""Reply extraction on the talon and email-reply-parser corpora, with the expectations those
projects state, translated to what `extract_reply` gives (the new text, the signature, the
full text). talon's quotation cases strip quotes only, so there the new text and the
signature together must be what remains; its signature cases check the split itself.
Where a corpus is not fully met, the measured pass count is a floor."""

from __future__ import annotations

import re
import time
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from actors.mail.htmltext import to_text
from actors.mail.message import MailAddress
from actors.mail.reply import Reply, extract_reply
from tests.mail.corpora import corpus, manifest, record_rate

TALON_FLOOR = 28  # of 30 cases
EMAIL_REPLY_PARSER_FLOOR = 17  # of the 19 fixtures with an assertion


def _no_ws(value: str) -> str:
    return re.sub(r"\s+", "", value)


def _remaining(reply: Reply) -> str:
    return reply.text + (reply.signature or "")


def _first_plain(raw: bytes) -> str:
    msg = message_from_bytes(raw, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    part = next(p for p in msg.walk() if p.get_content_type() == "text/plain")
    assert isinstance(part, EmailMessage)
    return str(part.get_content())


def _sender(text: str) -> MailAddress | None:
    text = text.strip()
    if not text:
        return None
    return MailAddress(address=text) if "@" in text else MailAddress(name=text)


def _talon_case(folder: Path, case: dict[str, Any]) -> bool:
    path = folder / case["file"]
    case_id: str = case["id"]
    if case_id.startswith("html_replies/"):
        reply = extract_reply(to_text(path.read_text(errors="replace")))
        return _no_ws(_remaining(reply)) == _no_ws(case["expected_reply_text"])
    if case_id.startswith("signature/"):
        body = path.read_text()
        signature = (folder / case["expected_signature_file"]).read_text().strip()
        reply = extract_reply(body, sender=_sender((folder / case["sender_file"]).read_text()))
        text = body.strip().removesuffix(signature).strip()
        return _no_ws(reply.signature or "") == _no_ws(signature) and _no_ws(reply.text) == _no_ws(
            text
        )
    if case_id.startswith("standard_replies/"):
        reply = extract_reply(_first_plain(path.read_bytes()))
        return _no_ws(_remaining(reply)) == _no_ws(case["expected_reply_text"])
    if "expected_html_no_ws" in case:
        reply = extract_reply(to_text(path.read_text()))
        return _no_ws(_remaining(reply)) == _no_ws(to_text(case["expected_html_no_ws"]))
    reply = extract_reply(path.read_text())  # "non-empty and does not contain From"
    return bool(reply.text.strip()) and "From" not in reply.text


def test_talon_replies_keep_what_the_source_expects() -> None:
    folder = corpus("talon")
    cases = manifest(folder)["cases"]
    results = {c["id"]: _talon_case(folder, c) for c in cases}
    passed = sum(results.values())
    record_rate("talon", "reply text", passed, len(cases))
    assert passed >= TALON_FLOOR, [k for k, ok in results.items() if not ok]


def _fragment_checks(
    expected: dict[str, Any], text: str, reply: Reply, seconds: float
) -> list[bool]:
    """email_reply_parser's fragment assertions as assertions on the visible reply: a
    visible fragment's text is in it, a hidden fragment's is not; hidden fragments mean
    something was cut, one fragment means nothing was."""
    hidden: list[bool] | None = expected.get("hidden")
    checks: list[bool] = []
    for key, value in expected.items():
        match key:
            case "parse_reply_equals" | "reply_stripped_equals":
                checks.append(reply.text.strip() == value)
            case "reply_contains":
                checks += [part in reply.text for part in value]
            case "parse_reply_not_contains":
                checks.append(value not in reply.text)
            case "fragment_contains":
                for index, part in value.items():
                    is_hidden = hidden[int(index)] if hidden else int(index) > 0
                    checks.append((part not in reply.text) if is_hidden else (part in reply.text))
            case "fragment1_also_contains":
                checks.append(value not in reply.text)
            case "fragment_regex":
                for index, pattern in value.items():
                    if int(index) == 0:
                        checks.append(re.match(pattern, reply.text) is not None)
                    else:
                        checks.append(re.search(pattern, reply.text, re.MULTILINE) is None)
            case "fragments" if value == 1:
                checks.append(_no_ws(_remaining(reply)) == _no_ws(text))
            case "hidden":
                checks.append((_no_ws(reply.text) != _no_ws(text)) == any(value))
            case "max_parse_seconds":
                checks.append(seconds < value)
    return checks


def test_email_reply_parser_replies_as_the_source_expects() -> None:
    folder = corpus("email-reply-parser")
    passed = total = 0
    failures: list[str] = []
    for item in manifest(folder)["messages"]:
        text = (folder / item["file"]).read_text()
        started = time.perf_counter()
        reply = extract_reply(text)
        checks = _fragment_checks(item["expected"], text, reply, time.perf_counter() - started)
        if not checks:
            continue  # a fixture without an assertion upstream
        total += 1
        passed += all(checks)
        if not all(checks):
            failures.append(item["id"])
    record_rate("email-reply-parser", "reply text", passed, total)
    assert passed >= EMAIL_REPLY_PARSER_FLOOR, failures
