"""Render one round trip for a host: a POSIX sh script sent on stdin to ``sh -s``.

Every value in a command is ``shlex.quote``d; file contents travel as quoted here-documents
(``<<'DELIM'``, so the shell expands nothing in them) inside the same stdin stream. The whole
script is one function called on its last line: a script cut short in transit never runs.

On the host, under an exclusive ``flock``, the script refuses ids already in the journal, refuses
any path with a symbolic link in it, checks that every file it edits still has the content the
executor saw (optimistic guard), installs the new files keeping backups, runs the service checks
(``named-checkzone``, ``nginx -t``) and reloads. The journal entry of each change id is written,
and synced to disk with the files, in the step that installs them: a change in place is a
change journaled. Read-only probes follow, each output in a ``GDCAS-SECTION`` block.

Who writes: root writes only the directories root owns. Below an account's home
(``HostLayout.owner_dir``) every read and write runs as the home's owner (``setpriv``), so a link
the customer planted there can lead only where the customer may go anyway. Files are created
under ``umask 077`` and given their mode before they are moved into place: a secret is never
readable by others, not even for a moment; the directories that hold secrets are 0700.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
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
EXIT_SYMLINK = 7
EXIT_WRITE = 8
EXIT_LOCK = 75
# How long the probes wait for a reloaded named or nginx to serve the new generation: two
# waits and the lock wait stay inside the executor's 20 s round trip.
RELOAD_WAIT_SECONDS = 6

LOCK_WAIT = 10.0  # seconds a script waits for the host's lock before it reports who holds it
MAX_CUSTOMER_READ = 1024 * 1024  # bytes read of a file in an account's home (existence checks)

# Helpers that also run as an account's user (``gdcas_as`` passes them to its shell).
# The backup is a hard link: the old inode keeps its content, owner and mode untouched.
_LIB = """\
gdcas_hash() { if [ -e "$1" ]; then sha256sum < "$1" | cut -c1-64; else echo absent; fi; }
gdcas_backup() { if [ -e "$1" ]; then ln -f "$1" "$1.gdcas-old"; else rm -f "$1.gdcas-old"; fi; }
gdcas_restore() {
  for p in "$@"; do
    if [ -e "$p.gdcas-old" ]; then mv -f "$p.gdcas-old" "$p"; else rm -f "$p"; fi
  done
}
"""

# Host-side steps too long for one line (``reload_command``), as sh functions; every argument
# is a quoted path or argv from the layout. Values in the files were validated when written.
STEP_LIB = """\
# gdcas_newer FILE...: each FILE gets an mtime later than the last one it had (kept beside it
# in FILE.mtime). Dovecot re-reads a passwd-file only when its mtime (whole seconds) or size
# changed, and a new password hash has the old one's length.
gdcas_newer() {
  for f in "$@"; do
    [ -f "$f" ] || continue
    last=$(cat "$f.mtime" 2>/dev/null || echo 0); t=$(stat -c %Y "$f") || return 1
    if [ "$t" -le "$last" ]; then t=$((last + 1)); touch -m -d "@$t" "$f" || return 1; fi
    echo "$t" > "$f.mtime" || return 1
  done
}
# gdcas_maildeny SUSPENDED PASSWD DENIED: Dovecot's deny list, the mailboxes (5th field of the
# passwd-file: the account) of the suspended accounts.
gdcas_maildeny() {
  s=$1; [ -f "$s" ] || s=/dev/null
  awk -F: 'FILENAME == ARGV[1] { if ($0 != "") s[$0] = 1; next } ($5 in s) { print $1 }' \\
    "$s" "$2" > "$3.new" && mv -f "$3.new" "$3" && gdcas_newer "$2" "$3"
}
# gdcas_postfix_maps PASSWD FORWARDERS MAPS POSTMAP: Postfix's maps in MAPS, compiled with the
# POSTMAP command line: the domains and mailboxes it takes mail for, and the forwarders (one
# line per source; a source that is a mailbox too keeps its copy).
gdcas_postfix_maps() {
  f=$2; [ -f "$f" ] || f=/dev/null
  install -d -m 755 "$3" || return 1
  awk -F: '$1 != "" { print $1, "OK" }' "$1" > "$3/mailboxes.new" || return 1
  { awk -F: '$1 != "" { sub(/.*@/, "", $1); print $1, "OK" }' "$1"
    awk '$1 != "" { sub(/.*@/, "", $1); print $1, "OK" }' "$f"; } | sort -u > "$3/domains.new"
  awk -F: 'FILENAME == ARGV[1] { if ($1 != "") box[$1] = 1; next }
    { split($0, e, " "); d[e[1]] = (e[1] in d) ? d[e[1]] "," e[2] : e[2] }
    END { for (s in d) print s, ((s in box) ? d[s] "," s : d[s]) }' "$1" "$f" > "$3/virtual.new"
  for n in mailboxes domains virtual; do
    chmod 644 "$3/$n.new" && mv -f "$3/$n.new" "$3/$n" && $4 "hash:$3/$n" || return 1
  done
}
"""

_AS = f"""\
umask 077
gdcas_lib='{_LIB}'
eval "$gdcas_lib"
# gdcas_as DIR CMD [ARG...]: run CMD as the owner of DIR (an account's home), never as root.
gdcas_as() {{
  gdcas_id=$(stat -c %u:%g -- "$1") || return 1
  gdcas_cmd=$2; shift 2
  setpriv --reuid="${{gdcas_id%:*}}" --regid="${{gdcas_id#*:}}" --clear-groups -- \\
    sh -c "$gdcas_lib$gdcas_cmd" gdcas "$@"
}}
# gdcas_hash_as DIR PATH: the hash of PATH as DIR's owner sees it (absent without DIR).
gdcas_hash_as() {{
  if [ -d "$1" ]; then gdcas_as "$1" 'gdcas_hash "$1"' "$2"; else echo absent; fi
}}
"""

_PRELUDE = f"""\
set -u
{_AS}{STEP_LIB}\
# A dropped connection must not stop the script half-way (files installed, ids not journaled):
# it runs to the end, and a client that lost it learns the outcome from the journal.
trap '' HUP PIPE
gdcas_nolink() {{
  for p in "$@"; do
    if [ -L "$p" ]; then echo "GDCAS-SYMLINK $p"; return 1; fi
  done
}}
# Who holds the lock file $1 (from /proc/locks: id type advisory mode pid dev:inode ...).
gdcas_holders() {{
  i=$(stat -c %i -- "$1")
  while read -r _ _ _ _ pid dev _; do
    case $dev in *:"$i") echo "GDCAS-LOCK-HOLDER $pid $(stat -c %U /proc/"$pid" 2>/dev/null)";; esac
  done < /proc/locks
}}
"""


def content_hash(content: str | None) -> str:
    return "absent" if content is None else hashlib.sha256(content.encode()).hexdigest()


def q(value: str) -> str:
    return shlex.quote(value)


CHECKED = frozenset({"zone", "nginx"})  # the steps the host checks before it reloads them


def check_command(layout: HostLayout, check: tuple[str, ...]) -> str:
    """The host's own check of a service's new configuration (before anything reloads)."""
    match check:
        case ("zone", zone):
            argv = [*layout.named_checkzone, "-k", "fail", "-i", "local", zone,
                    layout.path(f"zones/{zone}.zone")]  # fmt: skip
        case ("nginx",):
            argv = [*layout.nginx, "-t", "-q"]
        case _:
            raise ValueError(f"unknown check {check}")
    return shlex.join(argv)


# The FTP server's users (pure-ftpd's PureDB) built from GDCAS's FTP passwd file, lines
# `user:{ARGON2ID}hash:account:home`: each user gets its account's Unix uid and gid (the account
# is the host's Unix user; none, or root, is an error) and is chrooted to its home (`/./`); the
# users of a suspended account are left out; the account's home must be its own. pure-ftpd's
# format goes to a root-only file, compiled (`pure-pw mkdb` renames the new database into place,
# read at the next log-in). A subshell, so its `exit` ends only this step (in braces: `$((` would
# be arithmetic).
_FTPDB = """{{ (
src={0}; suspended={1}; homes={2}; out={3}; pdb={4}; new="$out.gdcas-new"
[ -e "$src" ] || [ -e "$pdb" ] || exit 0
umask 077; rm -f -- "$new" && : > "$new" || exit 1
say() {{ echo "FTP user $user of account $account: $1"; rm -f -- "$new"; exit 1; }}
[ ! -e "$src" ] || while IFS=: read -r user hash account home; do
  [ -n "$user" ] || continue
  if [ -e "$suspended" ] && grep -qxF -- "$account" "$suspended"; then continue; fi
  uid=$(id -u -- "$account" 2>/dev/null) && gid=$(id -g -- "$account" 2>/dev/null) ||
    say "there is no Unix user $account on this host"
  [ "$uid" != 0 ] || say "the account's user is root"
  [ "$(stat -c %u -- "$homes/$account" 2>/dev/null)" = "$uid" ] ||
    say "the home $homes/$account is missing or does not belong to $account"
  case $home in "$homes/$account" | "$homes/$account"/*) ;; *) say "$home is not its home" ;; esac
  case $hash in
    "{{ARGON2ID}}\\$argon2id\\$"*) hash=${{hash#"{{ARGON2ID}}"}} ;;
    *) say "its password is not stored as an Argon2id hash" ;;
  esac
  printf '%s:%s:%s:%s::%s/./::::::::::::\\n' "$user" "$hash" "$uid" "$gid" "$home" >> "$new" ||
    say "could not write $new"
done < "$src" || exit 1
{mkdb} "$pdb" -f "$new" && mv -f -- "$new" "$out"
); }}"""


def reload_command(layout: HostLayout, reload: tuple[str, ...]) -> str:
    """The command that makes a service take its new files (idempotent: run again, same state).

    A step names every path it uses (relative to the root), so the plan knows no change kind.
    """
    match reload:
        case ("zone", zone):
            return shlex.join([*layout.rndc, "reload", zone])
        case ("nginx",):
            return shlex.join([*layout.nginx, "-s", "reload"])
        case ("maildeny", passwd, suspended, denied):
            return "gdcas_maildeny " + " ".join(q(layout.path(p)) for p in (suspended, passwd,
                                                                            denied))  # fmt: skip
        case ("postfix", passwd, forwarders, maps):
            paths = " ".join(q(layout.path(p)) for p in (passwd, forwarders, maps))
            return (
                f"gdcas_postfix_maps {paths} {q(shlex.join(list(layout.postmap)))} && "
                f"{shlex.join([*layout.postfix, 'reload'])}"
            )
        case ("ftpdb", passwd, suspended, homes, source, pdb):
            ftp = (passwd, suspended, homes, source, pdb)
            return _FTPDB.format(*(q(layout.path(p)) for p in ftp),
                                 mkdb=shlex.join([*layout.pure_pw, "mkdb"]))  # fmt: skip
        case ("crontab", user, rel):
            # The account's own crontab (crontab -u USER), never root's: the user must exist
            # and not be root. Installed whole from GDCAS's file; none left when it is empty.
            path, tab = q(layout.path(rel)), shlex.join([*layout.crontab, "-u", user])
            who = q(f"the crontab of {user}:")
            return (
                f"if ! u=$(id -u {q(user)} 2>/dev/null); then echo {who} no such Unix user; false; "
                f'elif [ "$u" = 0 ]; then echo {who} the user is root; false; '
                f"elif [ -s {path} ]; then {tab} {path}; "
                f"elif {tab} -l >/dev/null 2>&1; then {tab} -r; fi"
            )
        case ("sql", rel):
            # An SQL file that states its whole state (automation.changes.database), run as
            # MariaDB's administrator; it stops at its first error, which it prints without
            # the statement (that holds password hashes). None (a rollback of the first one):
            # nothing to run.
            path = q(layout.path(rel))
            client = shlex.join([*layout.mariadb, "--skip-print-query-on-error"])
            return f"if [ -f {path} ]; then {client} < {path}; fi"
        case _:
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
        """The script as staff may see it: the change's secrets, and every password hash of
        the host's files it carries (other users' too), shown as ``<redacted>``."""
        text = self.text
        for secret in redact:
            if secret:
                text = text.replace(secret, "<redacted>")
        text = _HASHES.sub("<redacted>", text)
        return f"$ {COMMAND} <<'SCRIPT'\n{text}SCRIPT\n"


# Password hashes as the hosts' files hold them: Argon2 (PHC string) and MariaDB's native one.
_HASHES = re.compile(r"\$argon2(?:id|i|d)\$[A-Za-z0-9$=,+/.]{1,200}|\*[0-9A-F]{40}\b", re.ASCII)


def _heredoc(path: str, content: str) -> tuple[str, str]:
    """The here-document (opening ``<<'DELIM'``, then body) carrying ``content``."""
    delim = "GDCAS_EOF_" + secrets.token_hex(6)
    while delim in content:
        delim = "GDCAS_EOF_" + secrets.token_hex(6)
    if content and not content.endswith("\n"):
        raise ValueError(f"{path}: managed files end with a newline")
    return f"<<'{delim}'", f"{content}{delim}\n"


def _prefixes(rel: str) -> list[str]:
    parts = rel.split("/")
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


class _Shell:
    """Command lines for paths under a host root, run as whoever may touch the path."""

    def __init__(self, layout: HostLayout) -> None:
        self.layout = layout

    def path(self, rel: str) -> str:
        return q(self.layout.path(rel))

    def run(self, rel: str, cmd: str) -> str:
        """``cmd`` as root for a root-managed path, as the account's user below its home."""
        owner = self.layout.owner_dir(rel)
        if owner is None:
            return cmd
        return f"gdcas_as {q(self.layout.path(owner))} {q(cmd)}"

    def hash(self, rel: str) -> str:
        """A command printing the hash of ``rel`` (``absent`` if it is not there)."""
        owner = self.layout.owner_dir(rel)
        if owner is None:
            return f"gdcas_hash {self.path(rel)}"
        return f"gdcas_hash_as {self.path(owner)} {self.path(rel)}"

    def run_all(self, rels: list[str], command: str) -> list[str]:
        """``command p...`` for many paths: one line for the root-managed ones, one per other."""
        mine = [r for r in rels if self.layout.owner_dir(r) is None]
        out = [f"{command} " + " ".join(self.path(r) for r in mine)] if mine else []
        out += [self.run(r, f"{command} {self.path(r)}") for r in rels if r not in mine]
        return out


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
    lock_wait: float = LOCK_WAIT,
) -> Script:
    """The script that moves a host from the guarded state to ``files`` and journals the ids.

    ``journal`` maps change id -> journal entry ("applied <kind>" / "rolled_back").
    """
    sh = _Shell(layout)
    gdcas, jdir, lock = (layout.path(p) for p in (".gdcas", JOURNAL_DIR, LOCK_FILE))
    out = [_PRELUDE, "gdcas_main() {\n"]
    w = out.append
    # The lock and the journal are root's alone: a local user who could open the lock file
    # could hold it (flock -s) and freeze every change on the host. A lock file from before
    # (0644, perhaps held open by someone) is replaced, so an old holder holds nothing.
    w(f"install -d -m 700 {q(gdcas)} {q(jdir)}\n")
    w(f'[ "$(stat -c %a {q(lock)} 2>/dev/null)" = 600 ] || rm -f {q(lock)}\n')
    w(f"exec 9>>{q(lock)}\n")
    w(f"flock -w {lock_wait:g} 9 || ")
    w(f"{{ echo GDCAS-LOCKED; gdcas_holders {q(lock)}; return {EXIT_LOCK}; }}\n")
    if refuse_journaled and journal:
        w("dup=0\n")
        w(f"for id in {' '.join(q(i) for i in journal)}; do\n")
        w(f'  if [ -e {q(jdir)}/"$id" ]; then\n')
        w(f'    printf "GDCAS-JOURNALED %s %s\\n" "$id" "$(head -n1 {q(jdir)}/"$id")"; dup=1\n')
        w("  fi\ndone\n")
        w(f'[ "$dup" = 0 ] || return {EXIT_JOURNALED}\n')
    written = sorted(p for p, c in files.items() if c is not None)
    all_dirs = set(dirs) | {posixpath.dirname(p) for p in written}
    # Directories that hold a secret (a file no one else may read) are 0700.
    private = {posixpath.dirname(p) for p in written if not modes.get(p, 0o644) & 0o077}
    made = sorted({d for rel in all_dirs for d in _prefixes(rel)})
    # No path component may be a link: refused before anything is read or written.
    links = set(made)
    for rel in files:
        links.update([*_prefixes(rel), f"{rel}.gdcas-new", f"{rel}.gdcas-old"])
    if links:
        w("gdcas_nolink " + " ".join(sh.path(p) for p in sorted(links)))
        w(f" || return {EXIT_SYMLINK}\n")
    for rel, expected in sorted(guards.items()):
        w(f'[ "$({sh.hash(rel)})" = {q(expected)} ] || ')
        w(f"{{ echo GDCAS-STALE {q(rel)}; return {EXIT_STALE}; }}\n")
    for d in made:
        mode = "700" if d in private else "755"
        w(f"[ -d {sh.path(d)} ] || {sh.run(d, f'mkdir -m {mode} {sh.path(d)}')}\n")
    mine = sorted(d for d in private if layout.owner_dir(d) is None)
    if mine:
        w("chmod 700 " + " ".join(sh.path(d) for d in mine) + "\n")  # made 0755 by older versions
    paths = sorted(files)
    for rel in written:
        content = files[rel]
        assert content is not None
        new = sh.path(rel + ".gdcas-new")
        # A new file under umask 077 is 0600 from its first byte; a stale one is removed first
        # (truncating it would keep its old mode), and the mode is set before it is installed.
        create = (
            f"[ ! -e {new} ] || rm -f {new}; cat > {new} && chmod {modes.get(rel, 0o644):o} {new}"
        )
        opener, body = _heredoc(rel, content)
        line = sh.run(rel, create)
        line = line if line != create else f"{{ {create}; }}"
        w(f"{line} {opener} || {{ echo GDCAS-WRITE-FAILED {q(rel)}; return {EXIT_WRITE}; }}\n")
        w(body)
    for rel in paths:
        w(sh.run(rel, f"gdcas_backup {sh.path(rel)}") + "\n")
    restore = "; ".join(sh.run_all(paths, "gdcas_restore")) if paths else ":"
    for rel in paths:
        if files[rel] is None:
            w(sh.run(rel, f"rm -f {sh.path(rel)}") + "\n")
        else:
            w(sh.run(rel, f"mv -f {sh.path(rel + '.gdcas-new')} {sh.path(rel)}") + "\n")
    # The journal is written in the step that puts the files in place, and both are on disk
    # (fsync'd by `sync FILE...`) before anything reloads or the host answers: a change whose
    # files are in place is journaled. One small write per id with the shell's own printf. A
    # check or reload that fails takes the entries back with the files; a script killed after
    # this step leaves a journaled change that a later attempt makes live (reloads are
    # idempotent: see BatchApplier.converge).
    # An entry it replaces (a rollback's over an apply's) is kept aside until the step holds.
    # A batch that refused journaled ids writes only new entries: nothing to keep aside.
    entries = [f"{jdir}/{change_id}" for change_id in journal]
    for change_id, entry in journal.items():
        path = q(f"{jdir}/{change_id}")
        keep = "" if refuse_journaled else f"gdcas_backup {path}; "
        w(f"{keep}printf '%s\\n' {q(entry)} > {path}\n")
    synced = [layout.path(p) for p in written if layout.owner_dir(p) is None] + entries
    if synced:
        w("sync -- " + " ".join(q(p) for p in synced) + f" {q(jdir)} 2>/dev/null || sync\n")
    undo = "rm -f --" if refuse_journaled else "gdcas_restore"
    unjournal = f"{undo} " + " ".join(q(e) for e in entries) if entries else ":"
    for check in sorted(checks):
        w(f"if ! out=$({check_command(layout, check)} 2>&1); then\n")
        w(f'  echo GDCAS-CHECK-FAILED {q(" ".join(check))}; printf "%s\\n" "$out"\n')
        w(f"  {restore}; {unjournal}; return {EXIT_CHECK}\nfi\n")
    for reload in sorted(reloads):
        w(f"if ! out=$({reload_command(layout, reload)} 2>&1); then\n")
        w(f'  echo GDCAS-RELOAD-FAILED {q(" ".join(reload))}; printf "%s\\n" "$out"\n')
        w(f"  {restore}; {unjournal}\n")
        for again in sorted(reloads):
            w(f"  {{ {reload_command(layout, again)}; }} >/dev/null 2>&1\n")
        w(f"  return {EXIT_RELOAD}\nfi\n")
    if paths:
        olds = [f"{p}.gdcas-old" for p in paths]
        for line in sh.run_all(olds, "rm -f"):
            w(line + "\n")
    if entries and not refuse_journaled:
        w("rm -f -- " + " ".join(q(f"{e}.gdcas-old") for e in entries) + "\n")
    w("echo GDCAS-APPLIED\n")
    # Read-only probes.
    w("echo 'GDCAS-SECTION files'\n")
    for rel in sorted(files):
        w(f'printf "%s %s\\n" "$({sh.hash(rel)})" {q(rel)}\n')
    for d in sorted(dirs):
        w(f"[ -d {q(layout.path(d))} ] && echo {q('dir ' + d)} || echo {q('nodir ' + d)}\n")
    w("echo GDCAS-END\n")
    # The zones are asked of the name server by the executor itself (automation.clients.dns):
    # a packet per query instead of a dig process each here.
    url = f"http://{layout.http_address}:{layout.http_port}/"
    if nginx_generation is not None:
        # nginx reloads asynchronously and old workers may answer for a moment: wait until the
        # marker site answers the new generation five times in a row.
        curl = ["curl", "-s", "-m", "2", "-H", "Host: gdcas-probe.invalid", url]
        w(f"end=$(($(date +%s) + {RELOAD_WAIT_SECONDS})); ok=0\nwhile :; do\n")
        w(
            f'  if [ "$({shlex.join(curl)})" = {q(nginx_generation)} ]; '
            "then ok=$((ok+1)); else ok=0; fi\n"
        )
        w('  [ "$ok" -ge 5 ] && break; [ "$(date +%s)" -ge "$end" ] && break; sleep 0.01\n')
        w("done\n")
    for domain in sorted(http):
        curl = ["curl", "-s", "-o", "/dev/null", "-D", "-", "-m", "2", "-H", f"Host: {domain}", url]
        w(f"r=absent; {shlex.join(curl)} | grep -qi '^x-gdcas-site:' && r=present\n")
        w(f'echo {q("GDCAS-SECTION http " + domain)}; echo "$r"; echo GDCAS-END\n')
    w("return 0\n}\ngdcas_main\n")
    return Script(
        "".join(out), list(journal), dict(files), sorted(dirs), http=dict(http), zones=dict(zones)
    )


def _dig(layout: HostLayout) -> list[str]:
    """``dig`` asking the host's own name server, without recursion, once."""
    return ["dig", "+norec", "+time=2", "+tries=1", "-p", str(layout.dns_port),
            f"@{layout.dns_address}"]  # fmt: skip


ZONE_BEGIN, ZONE_END = "GDCAS-ZONE-BEGIN", "GDCAS-ZONE-END"


def zone_transfer_script(layout: HostLayout, zone: str) -> str:
    """A read-only script printing the zone as the host's name server serves it (AXFR) between
    two markers; ``zone`` is a validated domain name (`identifiers.hostname`)."""
    axfr = shlex.join([*_dig(layout), "+noall", "+answer", zone, "AXFR"])
    return f"echo {ZONE_BEGIN}\n{axfr}\necho {ZONE_END}\n"


def parse_zone_transfer(out: str) -> str:
    """The AXFR text between the markers of `zone_transfer_script`'s output."""
    begin, end = out.find(ZONE_BEGIN + "\n"), out.rfind(ZONE_END)
    if begin < 0 or end < begin:
        raise ValueError("the zone transfer printed no answer")
    return out[begin + len(ZONE_BEGIN) + 1 : end]


def read_files_script(layout: HostLayout, paths: list[str]) -> str:
    """A read-only script printing each file as ``GDCAS-FILE <n> <bytes|absent>`` then content.

    A file in an account's home is read as the account's user (a link there shows only what
    the customer may read), at most ``MAX_CUSTOMER_READ`` bytes, into a root-owned copy first:
    the size printed is the size sent, however the customer changes the file meanwhile.
    """
    sh = _Shell(layout)
    out = []
    if any(layout.owner_dir(rel) for rel in paths):
        out += [_AS, "t=$(mktemp)\n", "trap 'rm -f \"$t\"' EXIT\n"]
    for i, rel in enumerate(paths):
        path = sh.path(rel)
        owner = layout.owner_dir(rel)
        if owner is None:
            out.append(
                f'if [ -f {path} ]; then printf "GDCAS-FILE {i} %s\\n" "$(wc -c < {path})"; '
                f"cat {path}; else echo 'GDCAS-FILE {i} absent'; fi\n"
            )
        else:
            copy = sh.run(rel, f"[ -f {path} ] && head -c {MAX_CUSTOMER_READ} {path}")
            out.append(
                f'if [ -d {sh.path(owner)} ] && {copy} > "$t"; then '
                f'printf "GDCAS-FILE {i} %s\\n" "$(wc -c < "$t")"; cat "$t"; '
                f"else echo 'GDCAS-FILE {i} absent'; fi\n"
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
