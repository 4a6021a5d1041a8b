"""The public corpora the mail tests read (../shared/corpora beside the repository, or
SITEDESK_CORPORA), and the pass rates the tests measured on them."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.corpora import corpora_root

RATES: list[tuple[str, str, int, int]] = []


def corpus(name: str) -> Path:
    """The folder of one corpus; missing, it fails the test in CI and skips it elsewhere."""
    folder = corpora_root() / name
    if not (folder / "manifest.json").is_file():
        message = (
            f"corpus {name!r} not found at {folder} (set SITEDESK_CORPORA to the folder "
            "that holds the shared corpora)"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return folder


def manifest(folder: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((folder / "manifest.json").read_text())
    return data


def record_rate(corpus_name: str, check: str, passed: int, total: int) -> None:
    RATES.append((corpus_name, check, passed, total))
    print(f"{corpus_name}: {check}: {passed}/{total}")
