"""Prints the pass rates the mail tests measured on the public corpora at the end of the run."""

from __future__ import annotations

from typing import Any

from tests.mail.corpora import RATES


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not RATES:
        return
    terminalreporter.section("mail corpora: pass rates")
    for name, check, passed, total in RATES:
        rate = 100.0 * passed / total if total else 100.0
        terminalreporter.write_line(f"{name:22} {check:34} {passed:4}/{total:<4} {rate:5.1f}%")
