"""The mail tests' private Postfix (the MTA in front of the intake), and the pass rates they
measured on the public corpora, printed at the end of the run."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.mail.corpora import RATES
from tests.mta import PostfixFactory


@pytest.fixture(scope="session")
def postfix_factory() -> Iterator[PostfixFactory]:
    """Private Postfix instances relaying to a given port, started once and shared by the
    session's tests (`postfix_factory(relay_port)`); all stopped at the end."""
    factory = PostfixFactory()
    yield factory
    factory.close()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not RATES:
        return
    terminalreporter.section("mail corpora: pass rates")
    for name, check, passed, total in RATES:
        rate = 100.0 * passed / total if total else 100.0
        terminalreporter.write_line(f"{name:22} {check:34} {passed:4}/{total:<4} {rate:5.1f}%")
