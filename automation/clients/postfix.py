"""Postfix as the host's own lookup tool sees it: where does mail for an address go."""

from __future__ import annotations

import shlex

from automation.clients import Endpoint


def aliases_error(at: Endpoint, forwarders: str, maps: str, also: str) -> str | None:
    """None when Postfix's virtual alias map ``maps`` resolves every source of the host's
    forwarders file ``forwarders`` (paths on the host) to exactly its destinations (a source
    that is a mailbox also to itself), and ``also`` (a source just removed) likewise; else the
    first difference. One ``postmap -q -`` for all sources: one round trip however many."""
    query = shlex.join([*at.layout.postmap, "-q", "-", f"hash:{maps}"])
    f = shlex.quote(forwarders)
    script = (
        f"[ -f {f} ] && cat {f}; echo GDCAS-MAP\n"
        f"{{ [ -f {f} ] && cut -d' ' -f1 {f}; echo {shlex.quote(also)}; }} | sort -u | "
        f"{query} 2>/dev/null; :\n"
    )
    _status, out = at.run(script)
    edges, _, resolved = out.partition("GDCAS-MAP\n")
    want: dict[str, set[str]] = {also: set()}
    for line in edges.splitlines():
        src, _, dst = line.partition(" ")
        if dst:
            want.setdefault(src, set()).add(dst)
    got: dict[str, set[str]] = {}
    for line in resolved.splitlines():
        src, _, listed = line.partition("\t")
        got[src] = {a.strip() for a in listed.split(",") if a.strip()} - {src}
    for src, dsts in sorted(want.items()):
        if got.get(src, set()) != dsts:
            return (
                f"Postfix forwards {src} to {sorted(got.get(src, set())) or 'nobody'}, "
                f"not {sorted(dsts) or 'nobody'}"
            )
    return None
