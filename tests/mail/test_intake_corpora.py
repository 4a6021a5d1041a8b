"""Every message of the public mail corpora through the real SMTP door into the running desk:
each one answered and kept (never a crash, never a 5xx for a message an MTA would send), the
delivery reports recognised and kept off the queues (a bounce about no mail of ours is never a
ticket), the others held as mail from senders on no account."""

from __future__ import annotations

import hashlib
import smtplib
from pathlib import Path

import pytest
from sqlalchemy import select

from actors.mail.bounces import detect
from store.models import InboundMail
from tests.desk import Desk
from tests.mail.corpora import corpus, manifest, record_rate

pytestmark = pytest.mark.ray

MAX_LINE = 998  # RFC 5322; an MTA folds longer lines before it relays (Postfix does)


def on_the_wire(raw: bytes) -> bytes:
    """The message as an MTA relays it: CRLF line ends, no line over 998 octets."""
    lines = raw.replace(b"\r\n", b"\n").split(b"\n")
    out: list[bytes] = []
    for line in lines:
        while len(line) > MAX_LINE:
            out.append(line[:MAX_LINE])
            line = b" " + line[MAX_LINE:]
        out.append(line)
    return b"\r\n".join(out)


def messages() -> list[tuple[str, Path, dict[str, object]]]:
    found = []
    for name in ("stalwart-mail-parser", "enmime", "sisimai-bounces"):
        folder = corpus(name)
        for item in manifest(folder)["messages"]:
            found.append((name, folder / item["file"], item))
    return found


def test_every_corpus_message_is_answered_and_kept(desk: Desk) -> None:
    items = messages()
    answers: dict[str, str] = {}
    with smtplib.SMTP("127.0.0.1", desk.smtp_port, timeout=120) as c:
        c.ehlo("relay.tests.sitedesk.test")
        for _, path, _ in items:
            raw = on_the_wire(path.read_bytes())
            c.mail("")
            code, text = c.rcpt("support@sitedesk.test")
            assert code == 250, text
            code, text = c.data(raw)
            assert code == 250, f"{path}: {code} {text!r}"
            answers[str(path)] = text.decode()
    with desk.db.read() as s:
        kept = {r.sha256: r for r in s.scalars(select(InboundMail))}
        for path_text, answer in answers.items():
            sent = on_the_wire(Path(path_text).read_bytes())
            sent += b"" if sent.endswith(b"\r\n") else b"\r\n"  # smtplib ends the data so
            digest = hashlib.sha256(sent).hexdigest()
            if "received before" in answer:
                continue  # the same Message-ID as an earlier file: one message, as it must be
            assert digest in kept, f"{path_text} was answered {answer!r} but not kept"
        reports = 0
        bounces_total = 0
        for name, path, _ in items:
            if name != "sisimai-bounces":
                continue
            if detect(path.read_bytes()) is None:
                continue
            bounces_total += 1
            answer = answers[str(path)]
            assert "ticketed" not in answer and "appended" not in answer, (path, answer)
            if answer.startswith("2.0.0 Ok: refused") or "received before" in answer:
                reports += 1
    record_rate("sisimai-bounces", "kept as reports through SMTP", reports, bounces_total)
    # Every report the detector recognises in a file is recognised through the door too (the
    # detector's own rate on the corpus is measured in test_bounce_corpora.py).
    assert reports == bounces_total
