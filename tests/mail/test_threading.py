"""Threading, rule by rule: our signed Message-ID first, then the ticket number in the subject
only from the ticket's requester or a contact of its account, else a new ticket; the same
Message-ID twice is one message."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from actors.mail.message import MailAddress, ParsedMail
from actors.mail.message_id import make_message_id
from actors.mail.parse import parse
from actors.mail.threading import (
    AppendTo,
    Duplicate,
    NewTicket,
    NewTicketReason,
    ThreadReason,
    canonical_address,
    decide,
    subject_ticket_ids,
)

SECRET = b"s" * 32
ANN_ACCOUNT = 10
BOB_ACCOUNT = 20
ANN_TICKET = 123  # Ann's, on account 10
BOB_TICKET = 456  # Bob's, on account 20


@dataclass
class Desk:
    """The desk's tickets and contacts as the lookup sees them: a stand-in for the store,
    which keeps addresses as customers typed them."""

    tickets: dict[int, tuple[int, str | None]] = field(
        default_factory=lambda: {
            ANN_TICKET: (ANN_ACCOUNT, "Ann.Customer@Example.com"),
            BOB_TICKET: (BOB_ACCOUNT, "bob@other.example"),
        }
    )
    contacts: dict[str, set[int]] = field(
        default_factory=lambda: {
            "ann.customer@example.com": {ANN_ACCOUNT},
            "carol@example.com": {ANN_ACCOUNT},  # Ann's colleague, not the requester
            "bob@other.example": {BOB_ACCOUNT},
        }
    )
    seen: set[str] = field(default_factory=set)

    def message_seen(self, message_id: str) -> bool:
        return message_id in self.seen

    def ticket_account(self, ticket_id: int) -> int | None:
        found = self.tickets.get(ticket_id)
        return found[0] if found else None

    def ticket_requester_email(self, ticket_id: int) -> str | None:
        found = self.tickets.get(ticket_id)
        return found[1] if found else None

    def contact_accounts(self, email: str) -> set[int]:
        return set(self.contacts.get(email.lower(), set()))


def mail(
    *fields: str,
    sender: str = "Ann Customer <ann.customer@example.com>",
    subject: str = "Re: [TT-000123] My site is down",
    message_id: str = "<new-1@mail.example.com>",
) -> ParsedMail:
    lines = [
        f"From: {sender}",
        "To: support@desk.example",
        f"Subject: {subject}",
        f"Message-ID: {message_id}",
        *fields,
    ]
    return parse(("\r\n".join(lines) + "\r\n\r\nStill down.\r\n").encode())


def ours(ticket_id: int, outbox_id: int | None = 9) -> str:
    return make_message_id(SECRET, ticket_id=ticket_id, outbox_id=outbox_id, domain="desk.example")


def test_a_reply_to_our_mail_is_threaded_by_in_reply_to() -> None:
    decision = decide(
        mail(f"In-Reply-To: {ours(ANN_TICKET)}", subject="Re: hi"), Desk(), secret=SECRET
    )
    assert decision == AppendTo(
        ticket_id=ANN_TICKET,
        reason=ThreadReason.REPLY_TO_OUR_MAIL,
        detail="a reply to the desk's mail on TT-000123",
    )


def test_a_reply_by_references_only_is_threaded() -> None:
    refs = f"References: <first@mail.example.com> {ours(ANN_TICKET)} <other@mail.example.com>"
    decision = decide(mail(refs, subject="no number here"), Desk(), secret=SECRET)
    assert isinstance(decision, AppendTo)
    assert (decision.ticket_id, decision.reason) == (ANN_TICKET, ThreadReason.REPLY_TO_OUR_MAIL)


def test_our_id_wins_over_the_subject_and_holds_for_any_sender() -> None:
    # A colleague's forward of our mail, with another ticket's number in the subject.
    decision = decide(
        mail(f"In-Reply-To: {ours(BOB_TICKET)}", sender="someone@elsewhere.example"),
        Desk(),
        secret=SECRET,
    )
    assert isinstance(decision, AppendTo)
    assert (decision.ticket_id, decision.reason) == (BOB_TICKET, ThreadReason.REPLY_TO_OUR_MAIL)


def _forged_ids() -> list[str]:
    good = ours(ANN_TICKET)[1:-1]
    local = good.split("@")[0]
    mac = local.rsplit(".", 1)[1]
    return [
        good.replace("tt.123.", "tt.456."),  # altered: Bob's ticket with Ann's MAC
        good.replace(mac, "a" * len(mac)),  # forged MAC
        make_message_id(b"x" * 32, ticket_id=BOB_TICKET, outbox_id=9, domain="desk.example")[1:-1],
    ]


@pytest.mark.parametrize("forged", _forged_ids())
def test_a_forged_or_altered_id_does_not_thread(forged: str) -> None:
    decision = decide(
        mail(f"In-Reply-To: <{forged}>", sender="mallory@evil.example", subject="Re: invoice"),
        Desk(),
        secret=SECRET,
    )
    assert decision.kind == "new"
    assert isinstance(decision, NewTicket) and decision.reason == NewTicketReason.NO_THREAD


def test_our_id_for_a_ticket_that_is_gone_falls_back_to_the_subject() -> None:
    decision = decide(mail(f"In-Reply-To: {ours(999)}"), Desk(), secret=SECRET)
    assert isinstance(decision, AppendTo)
    assert (decision.ticket_id, decision.reason) == (ANN_TICKET, ThreadReason.NUMBER_FROM_REQUESTER)


@pytest.mark.parametrize(
    "subject", ["Re: [TT-000123] My site is down", "TT-000123", "Re: tt-000123: still down"]
)
def test_the_ticket_number_from_the_requester_threads(subject: str) -> None:
    decision = decide(mail(subject=subject), Desk(), secret=SECRET)
    assert decision == AppendTo(
        ticket_id=ANN_TICKET,
        reason=ThreadReason.NUMBER_FROM_REQUESTER,
        detail="TT-000123 in the subject, sent by its requester",
    )


@pytest.mark.parametrize(
    "sender",
    ["ANN.CUSTOMER@EXAMPLE.COM", "<Ann.Customer@example.COM>", '"ann.customer"@example.com'],
)
def test_addresses_are_compared_without_case(sender: str) -> None:
    decision = decide(mail(sender=sender), Desk(), secret=SECRET)
    assert isinstance(decision, AppendTo)
    assert decision.reason == ThreadReason.NUMBER_FROM_REQUESTER


def test_a_contact_of_the_account_other_than_the_requester_threads() -> None:
    decision = decide(mail(sender="Carol <Carol@Example.com>"), Desk(), secret=SECRET)
    assert isinstance(decision, AppendTo)
    assert decision.ticket_id == ANN_TICKET
    assert decision.reason == ThreadReason.NUMBER_FROM_ACCOUNT_CONTACT


def test_a_stranger_with_a_valid_ticket_number_opens_a_new_ticket() -> None:
    decision = decide(mail(sender="Mallory <mallory@evil.example>"), Desk(), secret=SECRET)
    assert decision == NewTicket(
        reason=NewTicketReason.NUMBER_FROM_STRANGER,
        named_ticket_id=ANN_TICKET,
        detail="the subject names TT-000123, but the sender is neither its requester nor a "
        "contact of its account: a new ticket",
    )


def test_another_customer_with_a_valid_ticket_number_opens_a_new_ticket() -> None:
    # Bob is a known contact, but not of Ann's account (Zammad #5064).
    decision = decide(mail(sender="bob@other.example"), Desk(), secret=SECRET)
    assert isinstance(decision, NewTicket)
    assert decision.reason == NewTicketReason.NUMBER_FROM_STRANGER


@pytest.mark.parametrize(
    "sender",
    [
        '"Ann Customer" <mallory@evil.example>',
        '"ann.customer@example.com" <mallory@evil.example>',  # the address as display name
    ],
)
def test_a_spoofed_display_name_proves_nothing(sender: str) -> None:
    decision = decide(mail(sender=sender), Desk(), secret=SECRET)
    assert isinstance(decision, NewTicket)
    assert decision.reason == NewTicketReason.NUMBER_FROM_STRANGER


def test_a_sender_without_an_address_is_a_stranger() -> None:
    no_address = ParsedMail(
        message_id="x@mail.example.com",
        from_address=MailAddress(name="Ann Customer", address=None),
        subject="[TT-000123] help",
    )
    decision = decide(no_address, Desk(), secret=SECRET)
    assert isinstance(decision, NewTicket)
    assert decision.reason == NewTicketReason.NUMBER_FROM_STRANGER


def test_the_first_number_the_sender_may_write_to_wins() -> None:
    decision = decide(mail(subject="Fwd: [TT-000456] about [TT-000123]"), Desk(), secret=SECRET)
    assert isinstance(decision, AppendTo)
    assert decision.ticket_id == ANN_TICKET


def test_an_unknown_ticket_number_opens_a_new_ticket() -> None:
    decision = decide(mail(subject="Re: [TT-000999] hello"), Desk(), secret=SECRET)
    assert isinstance(decision, NewTicket)
    assert decision.reason == NewTicketReason.UNKNOWN_TICKET_NUMBER


def test_a_mail_with_nothing_to_thread_by_opens_a_new_ticket() -> None:
    decision = decide(mail(subject="My site is down"), Desk(), secret=SECRET)
    assert decision == NewTicket(reason=NewTicketReason.NO_THREAD, detail="not a reply to a ticket")


def test_the_same_message_id_twice_is_a_duplicate() -> None:
    desk = Desk()
    first = decide(mail(), desk, secret=SECRET)
    assert isinstance(first, AppendTo)
    desk.seen.add("new-1@mail.example.com")  # the caller stored the first one
    again = decide(mail(f"In-Reply-To: {ours(ANN_TICKET)}"), desk, secret=SECRET)
    assert isinstance(again, Duplicate)
    assert again.message_id == "new-1@mail.example.com"
    other = decide(mail(message_id="<new-2@mail.example.com>"), desk, secret=SECRET)
    assert isinstance(other, AppendTo)


@pytest.mark.parametrize(
    ("subject", "ids"),
    [
        ("[TT-000123]", [123]),
        ("Re: TT-000123 and tt-000456, again TT-000123", [123, 456]),
        ("TT-123", []),  # not a ticket number: six digits at least
        ("XTT-000123", []),
        ("TT-000123X", []),
        ("TT-000123-2", []),
        ("TT-٠٠٠١٢٣", []),  # non-ASCII digits
        ("TT-0000001234567890123", []),  # too long
    ],
)
def test_ticket_numbers_in_a_subject(subject: str, ids: list[int]) -> None:
    assert subject_ticket_ids(subject) == ids


@pytest.mark.parametrize(
    ("value", "canonical"),
    [
        (" Ann@Example.COM ", "ann@example.com"),
        ("<ann@example.com>", "ann@example.com"),
        ('"ann"@example.com', "ann@example.com"),
        ("ann@example.com.", "ann@example.com"),
        ("ann@bücher.example", "ann@xn--bcher-kva.example"),
        ("ann", None),
        ("@example.com", None),
        ("ann @example.com", None),
        (None, None),
    ],
)
def test_canonical_addresses(value: str | None, canonical: str | None) -> None:
    assert canonical_address(value) == canonical
