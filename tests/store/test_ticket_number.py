"""Ticket numbers as people type them: one spelling per ticket, ASCII digits only."""

from __future__ import annotations

import pytest

from store.models.ticket import ticket_id_from_number, ticket_number


@pytest.mark.parametrize("typed", ["TT-000123", "tt-000123", " TT-000123 "])
def test_a_number_finds_its_ticket(typed: str) -> None:
    assert ticket_id_from_number(typed) == 123
    assert ticket_number(123) == "TT-000123"


@pytest.mark.parametrize(
    "typed",
    [
        "TT-\u0660\u0660\u0660\u0661\u0662\u0663",  # Arabic-Indic digits: int() would read 123
        "TT-000123x",
        "TT-000123\nTT-000124",
        "xTT-000123",
        "TT-12345",
        "TT-" + "9" * 19,  # beyond a 64-bit id
    ],
)
def test_anything_else_is_no_number(typed: str) -> None:
    assert ticket_id_from_number(typed) is None
