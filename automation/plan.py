"""Render one round trip for a host: a POSIX sh script sent on stdin to ``sh -s``.

Every value in a command is ``shlex.quote``d; file contents travel as quoted here-documents
(``<<'DELIM'``, so the shell expands nothing in them) inside the same stdin stream. The whole
script is one function called on its last line: a script cut short in transit never runs.

On the host, under an exclusive ``flock``, the script refuses ids already in the journal, checks
that every file it edits still has the content the executor saw (optimistic guard), installs the
new files keeping backups, runs the service checks (``named-checkzone``, ``nginx -t``), reloads,
and only then writes one journal entry per change id — all in this one step. Read-only probes
follow, each output in a ``GDCAS-SECTION`` block.
"""

from __future__ import annotations

import hashlib
import posixpath
import secrets
import shlex
from dataclasses import dataclass, field

from automation.host import HostLayout

COMMAND = "sh -s"
JOURNAL_DIR = ".gdcas/journal"
LOCK_FILE = ".gdcas/lock"

EXIT_JOURNALED = 3
EXIT_STALE = 4
EXIT_CHECK = 5
EXIT_RELOAD = 6
EXIT_LOCK = 75

_PRELUDE = """\
set -u
umask 022
# A dropped connection must not stop the script half-way (files installed, ids not journaled):
# it runs to the end, and a client that lost it learns the outcome from the journal.
trap '' HUP PIPE
gdcas_hash() { if [ -e "$1" ]; then sha256sum < "$1" | cut -c1-64; else echo absent; fi; }
gdcas_backup() { if [ -e "$1" ]; then cp -p "$1" "$1.gdcas-old"; else rm -f "$1.gdcas-old"; fi; }
gdcas_restore() {
  for p in "$@"; do
    if [ -e "$p.gdcas-old" ]; then mv -f "$p.gdcas-old" "$p"; else rm -f "$p"; fi
  done
}
"""


def content_hash(content: str | None) -> str:
    return "absent" if content is None else hashlib.sha256(content.encode()).hexdigest()


def q(value: str) -> str:
    return shlex.quote(value)


def check_argv(layout: HostLayout, check: tuple[str, ...]) -> list[str]:
    if check[0] == "zone":
        path = layout.path(f"zones/{check[1]}.zone")
        return [*layout.named_checkzone, "-k", "fail", "-i", "local", check[1], path]
    if check[0] == "nginx":
        return [*layout.nginx, "-t", "-q"]
    raise ValueError(f"unknown check {check}")


def reload_argv(layout: HostLayout, reload: tuple[str, ...]) -> list[str]:
    if reload[0] == "zone":
        return [*layout.rndc, "reload", reload[1]]
    if reload[0] == "nginx":
        return [*layout.nginx, "-s", "reload"]
    raise ValueError(f"unknown reload {reload}")


@dataclass
class Script:
    """One round trip: the text for ``sh -s`` plus what the executor needs to read its output."""

    text: str
    ids: list[str]
    files: dict[str, str | None]
    dirs: list[str]
    http: dict[str, str] = field(default_factory=dict)  # domain -> expected present|absent
    zones: dict[str, int] = field(default_factory=dict)  # zone -> expected serial

    def dry_run(self, redact: list[str]) -> str:
        text = self.text
        for secret in redact:
            if secret:
                text = text.replace(secret, "<redacted>")
        return f"$ {COMMAND} <<'SCRIPT'\n{text}SCRIPT\n"


def _heredoc(path: str, content: str) -> str:
    delim = "GDCAS_EOF_" + secrets.token_hex(6)
    while delim in content:
        delim = "GDCAS_EOF_" + secrets.token_hex(6)
    if content and not content.endswith("\n"):
        raise ValueError(f"{path}: managed files end with a newline")
    return f"cat > {q(path + '.gdcas-new')} <<'{delim}'\n{content}{delim}\n"


def render(
    layout: HostLayout,
    *,
    journal: dict[str, str],
    refuse_journaled: bool,
    guards: dict[str, str],
    files: dict[str, str | None],
    modes: dict[str, int],
    dirs: set[str],
    checks: set[tuple[str, ...]],
    reloads: set[tuple[str, ...]],
    zones: dict[str, int],
    http: dict[str, str],
    nginx_generation: str | None = None,
) -> Script:
    """The script that moves a host from the guarded state to ``files`` and journals the ids.

    ``journal`` maps change id -> journal entry ("applied <kind>" / "rolled_back").
    """
    jdir = layout.path(JOURNAL_DIR)
    out = [_PRELUDE, "gdcas_main() {\n"]
    w = out.append
    w(f"mkdir -p {q(jdir)}\n")
    w(f"exec 9>>{q(layout.path(LOCK_FILE))}\n")
    w(f"flock -w 10 9 || {{ echo GDCAS-LOCKED; return {EXIT_LOCK}; }}\n")
    if refuse_journaled and journal:
        w("dup=0\n")
        w(f"for id in {' '.join(q(i) for i in journal)}; do\n")
        w(f'  if [ -e {q(jdir)}/"$id" ]; then\n')
        w(f'    printf "GDCAS-JOURNALED %s %s\\n" "$id" "$(head -n1 {q(jdir)}/"$id")"; dup=1\n')
        w("  fi\ndone\n")
        w(f'[ "$dup" = 0 ] || return {EXIT_JOURNALED}\n')
    for rel, expected in sorted(guards.items()):
        path = layout.path(rel)
        w(f'[ "$(gdcas_hash {q(path)})" = {q(expected)} ] || ')
        w(f"{{ echo GDCAS-STALE {q(rel)}; return {EXIT_STALE}; }}\n")
    all_dirs = set(dirs) | {posixpath.dirname(p) for p, c in files.items() if c is not None}
    if all_dirs:
        w("mkdir -p " + " ".join(q(layout.path(d)) for d in sorted(all_dirs)) + "\n")
    paths = [layout.path(p) for p in sorted(files)]
    for rel in sorted(files):
        content = files[rel]
        path = layout.path(rel)
        if content is not None:
            w(_heredoc(path, content))
            w(f"chmod {modes.get(rel, 0o644):o} {q(path + '.gdcas-new')}\n")
    for path in paths:
        w(f"gdcas_backup {q(path)}\n")
    restore = "gdcas_restore " + " ".join(q(p) for p in paths) if paths else ":"
    for rel in sorted(files):
        path = layout.path(rel)
        if files[rel] is None:
            w(f"rm -f {q(path)}\n")
        else:
            w(f"mv -f {q(path + '.gdcas-new')} {q(path)}\n")
    for check in sorted(checks):
        argv = shlex.join(check_argv(layout, check))
        w(f"if ! out=$({argv} 2>&1); then\n")
        w(f'  echo GDCAS-CHECK-FAILED {q(" ".join(check))}; printf "%s\\n" "$out"\n')
        w(f"  {restore}; return {EXIT_CHECK}\nfi\n")
    for reload in sorted(reloads):
        argv = shlex.join(reload_argv(layout, reload))
        w(f"if ! out=$({argv} 2>&1); then\n")
        w(f'  echo GDCAS-RELOAD-FAILED {q(" ".join(reload))}; printf "%s\\n" "$out"\n')
        w(f"  {restore}\n")
        for again in sorted(reloads):
            w(f"  {shlex.join(reload_argv(layout, again))} >/dev/null 2>&1\n")
        w(f"  return {EXIT_RELOAD}\nfi\n")
    # One small write per id with the shell's own printf: no process per change. The entry
    # exists only once the change is in place; its presence is what counts.
    for change_id, entry in journal.items():
        w(f"printf '%s\\n' {q(entry)} > {q(jdir + '/' + change_id)}\n")
    for path in paths:
        w(f"rm -f {q(path + '.gdcas-old')}\n")
    w("echo GDCAS-APPLIED\n")
    # Read-only probes.
    w("echo 'GDCAS-SECTION files'\n")
    for rel in sorted(files):
        w(f'printf "%s %s\\n" "$(gdcas_hash {q(layout.path(rel))})" {q(rel)}\n')
    for d in sorted(dirs):
        w(f"[ -d {q(layout.path(d))} ] && echo {q('dir ' + d)} || echo {q('nodir ' + d)}\n")
    w("echo GDCAS-END\n")
    dig = [
        "dig",
        "+norec",
        "+time=2",
        "+tries=1",
        "-p",
        str(layout.dns_port),
        f"@{layout.dns_address}",
    ]
    for zone, serial in sorted(zones.items()):
        w("i=0\nwhile :; do\n")
        w(f"  s=$({shlex.join([*dig, '+short', zone, 'SOA'])} | cut -d' ' -f3)\n")
        w(f'  [ "$s" = {serial} ] && break; i=$((i+1)); [ "$i" -ge 150 ] && break; sleep 0.02\n')
        w("done\n")
        w(f"echo {q('GDCAS-SECTION dns ' + zone)}\n")
        w(f"{shlex.join([*dig, '+noall', '+answer', zone, 'AXFR'])}\necho GDCAS-END\n")
    url = f"http://{layout.http_address}:{layout.http_port}/"
    if nginx_generation is not None:
        # nginx reloads asynchronously and old workers may answer for a moment: wait until the
        # marker site answers the new generation five times in a row.
        curl = ["curl", "-s", "-m", "2", "-H", "Host: gdcas-probe.invalid", url]
        w("i=0; ok=0\nwhile :; do\n")
        w(
            f'  if [ "$({shlex.join(curl)})" = {q(nginx_generation)} ]; '
            "then ok=$((ok+1)); else ok=0; fi\n"
        )
        w('  [ "$ok" -ge 5 ] && break; i=$((i+1)); [ "$i" -ge 250 ] && break; sleep 0.01\n')
        w("done\n")
    for domain in sorted(http):
        curl = ["curl", "-s", "-o", "/dev/null", "-D", "-", "-m", "2", "-H", f"Host: {domain}", url]
        w(f"r=absent; {shlex.join(curl)} | grep -qi '^x-gdcas-site:' && r=present\n")
        w(f'echo {q("GDCAS-SECTION http " + domain)}; echo "$r"; echo GDCAS-END\n')
    w("return 0\n}\ngdcas_main\n")
    return Script(
        "".join(out), list(journal), dict(files), sorted(dirs), http=dict(http), zones=dict(zones)
    )


def read_files_script(layout: HostLayout, paths: list[str]) -> str:
    """A read-only script printing each file as ``GDCAS-FILE <n> <bytes|absent>`` then content."""
    out = []
    for i, rel in enumerate(paths):
        path = q(layout.path(rel))
        out.append(
            f'if [ -f {path} ]; then printf "GDCAS-FILE {i} %s\\n" "$(wc -c < {path})"; '
            f"cat {path}; else echo 'GDCAS-FILE {i} absent'; fi\n"
        )
    return "".join(out)


def parse_files(out: bytes, paths: list[str]) -> dict[str, str | None]:
    result: dict[str, str | None] = {}
    pos = 0
    for _ in paths:
        nl = out.index(b"\n", pos)
        header = out[pos:nl].decode().split()
        pos = nl + 1
        rel = paths[int(header[1])]
        if header[2] == "absent":
            result[rel] = None
        else:
            size = int(header[2])
            result[rel] = out[pos : pos + size].decode("utf-8", "replace")
            pos += size
    return result


def journal_script(layout: HostLayout, ids: list[str]) -> str:
    jdir = layout.path(JOURNAL_DIR)
    return (
        f"for id in {' '.join(q(i) for i in ids)}; do\n"
        f'  if [ -e {q(jdir)}/"$id" ]; then\n'
        f'    printf "%s %s\\n" "$id" "$(head -n1 {q(jdir)}/"$id")"\n'
        "  fi\n"
        "done\n"
    )


def sections(stdout: str) -> dict[str, str]:
    """The ``GDCAS-SECTION name`` ... ``GDCAS-END`` blocks of a script's output."""
    result: dict[str, str] = {}
    current: str | None = None
    buf: list[str] = []
    for line in stdout.splitlines():
        if line.startswith("GDCAS-SECTION "):
            current, buf = line[len("GDCAS-SECTION ") :], []
        elif line == "GDCAS-END" and current is not None:
            result[current] = "\n".join(buf) + ("\n" if buf else "")
            current = None
        elif current is not None:
            buf.append(line)
    return result
