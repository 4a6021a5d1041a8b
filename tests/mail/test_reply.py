"""Reply extraction on replies written for one rule each: the new text stays, quoted history
and signatures go to their own fields, the full text is kept, nothing is ever lost."""

from __future__ import annotations

from actors.mail.message import MailAddress
from actors.mail.parse import parse
from actors.mail.reply import extract_reply, reply_of


def test_a_top_posted_reply_drops_the_quote_and_keeps_the_full_text() -> None:
    body = (
        "It works again, thanks!\n\nOn Mon, 1 Dec 2026 at 10:00, Support <s@desk.example>"
        " wrote:\n> We restarted the server.\n> Best, Support\n"
    )
    reply = extract_reply(body)
    assert reply.text == "It works again, thanks!"
    assert reply.quoted
    assert reply.full == body


def test_a_quote_header_wrapped_over_three_lines_goes_with_its_quote() -> None:
    body = "Done.\n\nOn Dec 16, 2011, at 12:47 PM, Corey\n<reply@example.com>\nwrote:\n\n> old\n"
    assert extract_reply(body).text == "Done."


def test_a_bottom_posted_reply_keeps_the_text_below_the_quote() -> None:
    body = "On 04/02/2012 06:26 PM, Megan wrote:\n> Is it down?\n\nYes, since noon.\n"
    assert extract_reply(body).text == "Yes, since noon."


def test_an_interleaved_reply_keeps_both_parts() -> None:
    body = "Hi,\nOn Tue, Bob wrote:\n> Which host?\n\nweb-3, the one in Frankfurt.\n"
    text = extract_reply(body).text
    assert "Hi," in text and "web-3, the one in Frankfurt." in text and "Which host" not in text


def test_a_dash_dash_signature_goes_to_the_signature() -> None:
    reply = extract_reply("Please renew my domain.\n\n-- \nAnn Example\nExample GmbH\n")
    assert reply.text == "Please renew my domain."
    assert reply.signature is not None and "Ann Example" in reply.signature


def test_a_signature_starting_with_the_senders_name_is_cut() -> None:
    body = "The backup failed again tonight.\n\nThank you,\nAnn Example\n+49 30 1234567\n"
    reply = extract_reply(body, sender=MailAddress(name="Ann Example", address="ann@example.com"))
    assert reply.text == "The backup failed again tonight."
    assert reply.signature == "Thank you,\nAnn Example\n+49 30 1234567"


def test_outlook_header_blocks_in_other_languages_are_cut() -> None:
    body = (
        "Danke, erledigt.\n\nVon: Support <s@desk.example>\nGesendet: Montag, 1. Dezember 2026"
        "\nAn: Ann\nBetreff: Ihr Ticket\n\nWir haben den Server neu gestartet.\n"
    )
    assert extract_reply(body).text == "Danke, erledigt."
    russian = "Спасибо!\n\nОт: Support\nОтправлено: 1 декабря\nКому: Ann\n\nСервер перезапущен.\n"  # noqa: RUF001
    assert extract_reply(russian).text == "Спасибо!"


def test_a_mail_that_is_all_quote_shows_as_it_came() -> None:
    body = "> just a quote\n> nothing else\n"
    reply = extract_reply(body)
    assert reply.text == body.strip()
    assert not reply.quoted


def test_the_reply_of_an_html_mail_drops_its_blockquote() -> None:
    raw = (
        b"From: Ann <ann@example.com>\r\nSubject: Re: down\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/html\r\n\r\n<div>Fixed, thanks.</div><div>On Monday Support wrote:"
        b"</div><blockquote>We are on it.</blockquote>"
    )
    reply = reply_of(parse(raw))
    assert reply.text == "Fixed, thanks."
    assert "We are on it." in reply.full
