"""cron as the host's admin tool shows it: an account's crontab, ``crontab -l -u USER`` (read
over the executor's shell on the host: no network client sees a crontab)."""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from automation.clients import Endpoint

_SOURCE, _INSTALLED, _NONE = "GDCAS-SOURCE", "GDCAS-INSTALLED", "GDCAS-NONE"


@dataclass(frozen=True)
class Crontab:
    """An account's crontab as cron has it, and the file it was installed from (lines; None:
    the user has no crontab, or there is no such file)."""

    installed: list[str] | None
    source: list[str] | None


def read(at: Endpoint, user: str, source: str) -> Crontab:
    """``crontab -l -u user`` and the file ``source`` (relative to the host root), in one
    read-only script. Every line printed is prefixed with ``|``: no line of a crontab the
    account edited by hand can pass for one of the markers. RuntimeError when crontab fails
    for another reason than "no crontab"."""
    path = shlex.quote(at.layout.path(source))
    tab = shlex.join([*at.layout.crontab, "-u", user, "-l"])
    script = (
        f"if [ -f {path} ]; then echo {_SOURCE}; sed 's/^/|/' {path}; fi\n"
        f"if out=$({tab} 2>&1); then echo {_INSTALLED}; printf '%s\\n' \"$out\" | sed 's/^/|/'\n"
        f'else echo {_NONE}; printf "%s\\n" "$out" | sed "s/^/|/"; fi\n'
    )
    status, text = at.run(script)
    if status != 0:
        raise RuntimeError(f"reading the crontab of {user} failed: {text[-300:]}")
    blocks: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.split("\n"):
        if line in (_SOURCE, _INSTALLED, _NONE):
            current = blocks.setdefault(line, [])
        elif line.startswith("|") and current is not None:
            current.append(line[1:])
    if _NONE in blocks and not any("no crontab for" in line for line in blocks[_NONE]):
        raise RuntimeError(f"crontab -l -u {user}: {' '.join(blocks[_NONE])[:300]}")
    return Crontab(blocks.get(_INSTALLED), blocks.get(_SOURCE))
