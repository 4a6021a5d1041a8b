"""Where the shared public corpora are: SITEDESK_CORPORA, else ``shared/corpora`` beside the
repository (CI puts a copy beside the fresh clone), else this machine's /work/shared/corpora."""

from __future__ import annotations

import os
from pathlib import Path

_CANDIDATES = [
    Path(__file__).resolve().parents[2] / "shared" / "corpora",
    Path("/work/shared/corpora"),
]


def corpora_root() -> Path:
    if os.environ.get("SITEDESK_CORPORA"):
        return Path(os.environ["SITEDESK_CORPORA"]).resolve()
    return next((c for c in _CANDIDATES if c.is_dir()), _CANDIDATES[0])
