"""The desk's signed Message-IDs: made and read back, and every forged, altered or foreign id
refused."""

from __future__ import annotations

import pytest

from actors.mail.message_id import (
    MAX_OWN_ID_CHARS,
    OwnId,
    is_own_message_id,
    make_message_id,
    own_ids,
    parse_own_message_id,
)

SECRET = b"k" * 32
OTHER_SECRET = b"z" * 32


def our_id(ticket_id: int = 123, outbox_id: int | None = 456, domain: str = "desk.example") -> str:
    return make_message_id(SECRET, ticket_id=ticket_id, outbox_id=outbox_id, domain=domain)


def test_an_id_names_the_ticket_and_outbox_row_and_reads_back() -> None:
    value = our_id()
    assert value.startswith("<tt.123.o.456.") and value.endswith("@desk.example>")
    assert parse_own_message_id(SECRET, value) == OwnId(ticket_id=123, outbox_id=456)
    assert parse_own_message_id(SECRET, value[1:-1]) == OwnId(123, 456)  # as ParsedMail has it


def test_an_id_without_an_outbox_row() -> None:
    value = our_id(outbox_id=None)
    assert value.startswith("<tt.123.") and ".o." not in value
    assert parse_own_message_id(SECRET, value) == OwnId(ticket_id=123, outbox_id=None)


def test_the_mac_has_at_least_80_bits() -> None:
    mac = our_id()[1:-1].split("@")[0].rsplit(".", 1)[1]
    assert len(mac) * 5 >= 80


def test_the_same_row_gets_the_same_id_and_other_rows_other_ids() -> None:
    assert our_id() == our_id()
    assert (
        len({our_id(), our_id(outbox_id=457), our_id(ticket_id=124), our_id(outbox_id=None)}) == 4
    )


def test_case_changes_by_a_relay_do_not_make_it_foreign() -> None:
    assert parse_own_message_id(SECRET, our_id().upper()) == OwnId(123, 456)


def _altered() -> list[str]:
    value = our_id()[1:-1]
    local = value.split("@")[0]
    mac = local.rsplit(".", 1)[1]
    flipped = ("b" if mac[0] == "a" else "a") + mac[1:]
    return [
        value.replace("tt.123.", "tt.124."),  # another ticket, same MAC
        value.replace(".o.456.", ".o.457."),  # another outbox row
        value.replace(".o.456.", "."),  # the outbox row dropped
        value.replace(mac, flipped),  # the MAC changed
        value.replace(mac, mac[:-1]),  # the MAC cut
        value.replace("@desk.example", "@evil.example"),  # another domain
        value.replace("tt.123.", "tt.0123."),  # another spelling of the number
    ]


@pytest.mark.parametrize("value", _altered())
def test_an_altered_id_is_not_ours(value: str) -> None:
    assert parse_own_message_id(SECRET, value) is None
    assert parse_own_message_id(SECRET, f"<{value}>") is None


def test_an_id_signed_with_another_key_is_not_ours() -> None:
    forged = make_message_id(OTHER_SECRET, ticket_id=123, outbox_id=456, domain="desk.example")
    assert parse_own_message_id(SECRET, forged) is None


@pytest.mark.parametrize(
    "value",
    [
        "CAF=abc123@mail.gmail.com",
        "tt.123.o.456.aaaaaaaaaaaaaaaaaaaaaaaa@desk.example",  # the shape, a made-up MAC
        "",
        "<>",
        "tt.123.o.456.@desk.example",
        "tt.123.o.456." + "a" * 24 + "@" + "d" * MAX_OWN_ID_CHARS + ".example",
        "tt.١٢٣.o.456." + "a" * 24 + "@desk.example",  # non-ASCII digits
        "tt.123.o.456." + "a" * 24 + "@desk.example\n",
        "x" * 100_000,
    ],
)
def test_foreign_and_malformed_ids_are_not_ours(value: str) -> None:
    assert parse_own_message_id(SECRET, value) is None
    assert not is_own_message_id(SECRET, value)


def test_a_trailing_character_after_a_valid_id_is_not_ours() -> None:
    assert parse_own_message_id(SECRET, our_id()[1:-1] + "x") is None
    assert parse_own_message_id(SECRET, "x" + our_id()[1:-1]) is None


def test_bad_inputs_to_make_are_refused() -> None:
    with pytest.raises(ValueError, match="secret"):
        make_message_id(b"short", ticket_id=1, outbox_id=None, domain="desk.example")
    with pytest.raises(ValueError, match="positive"):
        make_message_id(SECRET, ticket_id=0, outbox_id=None, domain="desk.example")
    with pytest.raises(ValueError, match="domain"):
        make_message_id(SECRET, ticket_id=1, outbox_id=None, domain="desk example")


def test_own_ids_are_picked_parent_first_then_newest_reference() -> None:
    parent = our_id(ticket_id=7, outbox_id=70)[1:-1]
    older = our_id(ticket_id=5, outbox_id=50)[1:-1]
    newer = our_id(ticket_id=6, outbox_id=60)[1:-1]
    found = own_ids(SECRET, [parent], ["a@gmail.com", older, "b@x.example", newer, parent])
    assert found == [OwnId(7, 70), OwnId(6, 60), OwnId(5, 50)]
    assert own_ids(SECRET, ["a@gmail.com"], ["tt.1.o.1.bogus@desk.example"]) == []
