"""Postfix as the host's own lookup tool sees it: where does mail for an address go."""

from __future__ import annotations

import shlex

from automation.clients import Endpoint


def forwarded_to(at: Endpoint, source: str, maps: str) -> set[str]:
    """The addresses Postfix's virtual alias map ``maps`` (a path on the host) resolves
    ``source`` to (``postmap -q``); empty when it has no alias."""
    argv = [*at.layout.postmap, "-q", source, f"hash:{maps}"]
    _status, out = at.run(f"{shlex.join(argv)} 2>/dev/null; :")
    return {a.strip() for line in out.splitlines() for a in line.split(",") if a.strip()}
