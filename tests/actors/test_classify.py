"""Classification of new requests into a category and a priority."""

from __future__ import annotations

import pytest

from actors.tickets.classify import classify


@pytest.mark.parametrize(
    ("subject", "body", "expected"),
    [
        ("MX record wrong", "mail to info@ bounces since the DNS change", ("dns", "normal")),
        ("Website down!", "502 from nginx", ("web", "urgent")),
        ("Cannot log in to webmail", "password rejected", ("email", "high")),
        ("Invoice question", "I was charged twice", ("billing", "normal")),
        ("Hello", "a general question about my plan", ("general", "normal")),
        ("Certificate expired", "browser warns about https", ("tls", "normal")),
    ],
)
def test_classify(subject: str, body: str, expected: tuple[str, str]) -> None:
    assert classify(subject, body) == expected
