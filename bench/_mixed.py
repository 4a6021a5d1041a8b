"""The mixed workload of bench/automation.py, and what every measurement there shares.

Mixed workload: over the bench's hosts (sshd, named, Dovecot and Postfix each), per host
``per_kind`` of each of: a DNS TXT add, a mailbox password change (the mailboxes are made in
the setup, not timed), a cron add (in the crontab of one of the host's accounts, each a real
Unix user, made here if missing and removed at the end) and a mail forwarder add. Run by:

- GDCAS: the Executor, every change validated, journaled, checked, reloaded and verified by the
  real client (IMAP log-in, ``crontab -l -u``, ``postmap -q``, named's AXFR);
- the same-work limit: one hand-written sh script per host over one persistent connection that
  does the same work for this exact batch (``limit_script``), then the same real clients;
- ansible-core and pyinfra, with what they offer for it (``lineinfile``/``files.line``,
  their cron modules, a shell handler for the zone serial, check and reload, and for postmap
  and the Postfix reload); they verify nothing.

CPU is counted for everything a run makes this machine do (``CpuMeter``): the bench process
and its children ("bench": the executor, the peers' controllers), and the hosts' daemons with
everything they start ("hosts": sshd and the scripts it runs, named, Dovecot, Postfix, crontab).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import itertools
import json
import os
import pwd
import re
import resource
import shlex
import subprocess
import textwrap
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from automation.changes import parse_change
from automation.changes.base import hash_secret, zone_path
from automation.changes.cron import MARK, cron_path
from automation.changes.mailbox import FORWARDERS, MAIL_MAPS, MAIL_PASSWD
from automation.clients import Endpoint, eventually, imap
from automation.executor.executor import Executor
from automation.executor.outcome import OutcomeCollector
from automation.executor.request import ChangeRequest
from automation.host import HostLayout
from automation.local_hosts.daemon import Daemon
from automation.local_hosts.host import LocalHost
from automation.ssh import SshConnection

ZONE = "bench.test"
ACCOUNTS_PER_HOST = 5
CRON_SCHEDULE = "17 3 * * *"
QUOTA_MB = 1024  # MailboxCreate's default: the passwd-file line the peers write carries it
_CLK = os.sysconf("SC_CLK_TCK")


# --- CPU and wall clock ------------------------------------------------------------------------


def become_subreaper() -> None:
    """Orphans of our children (ssh ControlPersist masters, say) are re-parented to this process
    instead of init, so their CPU is still counted (PR_SET_CHILD_SUBREAPER)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)


def _proc_table() -> dict[int, tuple[int, float]]:
    """pid -> (ppid, CPU seconds of the process and of its children it has reaped)."""
    out: dict[int, tuple[int, float]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks = sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
        out[int(entry)] = (int(fields[1]), ticks / _CLK)
    return out


class CpuMeter:
    """CPU seconds used so far by the bench process with its children, and by the hosts."""

    def __init__(self, hosts: list[LocalHost]) -> None:
        self.hosts = hosts

    def _host_roots(self) -> set[int]:
        roots: set[int] = set()
        for h in self.hosts:
            daemons: list[object] = [h.sshd, h.named, h.nginx]
            for service in h.services.values():
                daemons.extend(vars(service).values())
            roots |= {d.pid for d in daemons if isinstance(d, Daemon) and d.pid is not None}
        return roots

    def sample(self) -> tuple[float, float]:
        table = _proc_table()
        children: dict[int, list[int]] = defaultdict(list)
        for pid, (ppid, _) in table.items():
            children[ppid].append(pid)
        roots = self._host_roots()

        def tree(start: list[int], stop: set[int]) -> float:
            total, todo = 0.0, list(start)
            while todo:
                pid = todo.pop()
                total += table.get(pid, (0, 0.0))[1]
                todo.extend(c for c in children.get(pid, []) if c not in stop)
            return total

        me = os.getpid()
        own = resource.getrusage(resource.RUSAGE_SELF)
        reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
        bench = own.ru_utime + own.ru_stime + reaped.ru_utime + reaped.ru_stime
        bench += tree([c for c in children.get(me, []) if c not in roots], roots)
        return bench, tree(sorted(roots), set())


@dataclass
class Clock:
    """Wall and CPU time of one timed region (``with clock:``)."""

    meter: CpuMeter
    wall: float = 0.0
    bench_cpu: float = 0.0
    host_cpu: float = 0.0

    def __enter__(self) -> Clock:
        self._cpu0 = self.meter.sample()
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self._t0
        bench, hosts = self.meter.sample()
        self.bench_cpu, self.host_cpu = bench - self._cpu0[0], hosts - self._cpu0[1]


@dataclass
class Result:
    """One row of the table."""

    workload: str
    tool: str
    role: str  # "gdcas" | "limit" | "transport" | "peer"
    changes: int
    clock: Clock | None = None
    error: str | None = None
    note: str = ""
    target: str = ""

    @property
    def rate(self) -> float | None:
        return self.changes / self.clock.wall if self.clock and self.clock.wall else None

    def ms_per_change(self) -> tuple[float, float, float] | None:
        if self.clock is None or not self.changes:
            return None
        b, h = self.clock.bench_cpu * 1000 / self.changes, self.clock.host_cpu * 1000 / self.changes
        return b, h, b + h


def known_hosts(hosts: list[LocalHost], path: Path) -> None:
    path.write_text("".join(f"[127.0.0.1]:{h.sshd.port} {h.sshd.host_key_line}\n" for h in hosts))


# --- the hosts' accounts and the batch ---------------------------------------------------------


@dataclass
class MixHost:
    """A bench host with what the mixed workload needs on it: its accounts (Unix users, for
    their crontabs), its mail domain and mailboxes."""

    host: LocalHost
    accounts: list[str]
    domain: str
    boxes: list[str]

    @functools.cached_property
    def layout(self) -> HostLayout:
        return self.host.layout()


@dataclass
class Batch:
    """The changes of one tool for one host, as plain values (``tag`` keeps the tools apart)."""

    records: list[tuple[str, str]]  # (name, TXT value)
    passwords: list[tuple[str, str]]  # (mailbox, new password)
    crons: list[tuple[str, str, str]]  # (account, entry name, command)
    forwarders: list[tuple[str, str]]  # (source, destination)

    @property
    def size(self) -> int:
        return len(self.records) + len(self.passwords) + len(self.crons) + len(self.forwarders)


def batch(mh: MixHost, per_kind: int, tag: str) -> Batch:
    return Batch(
        records=[(f"{tag}m{j}", f"v{j}") for j in range(per_kind)],
        passwords=[(mh.boxes[j], f"{tag}{j}-new-password") for j in range(per_kind)],
        crons=[
            (mh.accounts[j % len(mh.accounts)], f"{tag}{j}", f"/bin/true {tag}{j}")
            for j in range(per_kind)
        ],
        forwarders=[(f"{tag}fw{j}@{mh.domain}", mh.boxes[j]) for j in range(per_kind)],
    )


def account_names(n_hosts: int) -> list[list[str]]:
    return [[f"gdbench{i}-{a}" for a in range(ACCOUNTS_PER_HOST)] for i in range(n_hosts)]


@contextlib.contextmanager
def unix_users(names: list[str]) -> Iterator[None]:
    """The accounts' Unix users (made if missing); their crontabs and the users made here are
    removed at the end."""
    made = []
    try:
        for name in names:
            try:
                pwd.getpwnam(name)
            except KeyError:
                subprocess.run(
                    [
                        "useradd",
                        "--system",
                        "--no-create-home",
                        "--shell",
                        "/usr/sbin/nologin",
                        name,
                    ],
                    check=True,
                )
                made.append(name)
            subprocess.run(["crontab", "-u", name, "-r"], capture_output=True, check=False)
        yield
    finally:
        for name in names:
            subprocess.run(["crontab", "-u", name, "-r"], capture_output=True, check=False)
        for name in made:
            subprocess.run(["userdel", name], capture_output=True, check=False)


def make_mailboxes(mhosts: list[MixHost]) -> None:
    """The mailboxes whose passwords the tools change, made by GDCAS (not timed)."""
    col = OutcomeCollector()
    ex = Executor(col, exec_timeout=120)
    try:
        reqs = []
        for mh in mhosts:
            ex.add_host(mh.host.spec())
            reqs += [
                ChangeRequest(
                    change_id=str(uuid.uuid4()),
                    host_id=mh.host.host_id,
                    change=parse_change(
                        "mailbox_create", {"address": box, "password": "initial-password"}
                    ),
                )
                for box in mh.boxes
            ]
        ex.submit_many(reqs)
        got = col.wait([r.change_id for r in reqs], timeout=600)
    finally:
        ex.close()
    bad = [o for o in got.values() if o.status != "applied"]
    if bad:
        raise SystemExit(f"setup: {len(bad)} mailboxes not created, e.g. {bad[0]}")


# --- GDCAS ---------------------------------------------------------------------------------------


def _requests_params(mhosts: list[MixHost], batches: list[Batch]) -> list[tuple[str, str, dict]]:
    """(host, kind, parameters) of every change, the kinds and the hosts interleaved."""
    out: list[tuple[str, str, dict[str, Any]]] = []
    per_kind = len(batches[0].records)
    for j in range(per_kind):
        for mh, b in zip(mhosts, batches, strict=True):
            hid = mh.host.host_id
            name, value = b.records[j]
            out.append(
                (
                    hid,
                    "dns_record_add",
                    {
                        "zone": ZONE,
                        "record": {"name": name, "type": "TXT", "value": value, "ttl": 300},
                    },
                )
            )
            box, password = b.passwords[j]
            out.append((hid, "mailbox_password", {"address": box, "password": password}))
            account, entry, command = b.crons[j]
            out.append(
                (
                    hid,
                    "cron_add",
                    {
                        "account": account,
                        "name": entry,
                        "schedule": CRON_SCHEDULE,
                        "command": command,
                    },
                )
            )
            src, dst = b.forwarders[j]
            out.append((hid, "mail_forwarder_add", {"source": src, "destination": dst}))
    return out


def gdcas(mhosts: list[MixHost], meter: CpuMeter, per_kind: int, tag: str) -> Result:
    """The Executor applies the whole mix; validation (parse_change) is timed too."""
    batches = [batch(mh, per_kind, tag) for mh in mhosts]
    params = _requests_params(mhosts, batches)
    col = OutcomeCollector()
    ex = Executor(col, exec_timeout=60)
    for mh in mhosts:
        ex.add_host(mh.host.spec())
        ex.lane(mh.host.host_id).conn.connect()  # persistent connections, opened before timing
    result = Result("mixed", "GDCAS (Executor)", "gdcas", len(params))
    try:
        with Clock(meter) as clock:
            reqs = [
                ChangeRequest(change_id=str(uuid.uuid4()), host_id=h, change=parse_change(kind, p))
                for h, kind, p in params
            ]
            ex.submit_many(reqs)
            got = col.wait([r.change_id for r in reqs], timeout=600)
    finally:
        ex.close()
    result.clock = clock
    bad = [o for o in got.values() if o.status != "applied"]
    if bad:
        result.error = f"{len(bad)} changes not applied, e.g. {bad[0].kind}: {bad[0].error}"
    seen: dict[tuple[str, int], int] = defaultdict(int)
    for o in got.values():
        if m := re.search(r"\(batch of (\d+)\)", o.output):
            seen[(o.host_id, int(m.group(1)))] += 1
    per_host: dict[str, list[int]] = defaultdict(list)
    for (host_id, n), count in seen.items():
        per_host[host_id] += [n] * (count // n)
    result.note = "batches per host: " + ", ".join(
        "+".join(str(n) for n in sorted(v, reverse=True)) for _, v in sorted(per_host.items())
    )
    return result


def login_error(at: Endpoint, box: str, password: str) -> str | None:
    """An IMAP log-in, asked again for a moment as GDCAS's check does (Dovecot looks at its
    passwd-file at most once a second): None once it succeeds."""
    return eventually(lambda: imap.login_error(at, box, password), lambda e: e is None)


# --- the same-work limit -------------------------------------------------------------------------


def _heredoc(text: str) -> tuple[str, str]:
    delim = "LIMIT_EOF_" + uuid.uuid4().hex[:12]
    assert delim not in text
    return f"<<'{delim}'", f"{text}{delim}\n"


def limit_script(
    layout: HostLayout,
    b: Batch,
    hashes: dict[str, str],
    journal: dict[str, str],
    today: int,
) -> str:
    """The hand-written script for this exact batch on one host: under a lock, with backups,
    edit the zone (serial bumped), the passwd-file (new hashes), the forwarders and the
    accounts' cron files in place; journal every change id and sync; named-checkzone (restore
    and stop if it fails), rndc reload, crontab -u per account, Dovecot's mtime ledger, the
    virtual map rebuilt and postmapped, postfix reload; then the checks by the real clients
    that run on the host: named's serial and AXFR, crontab -l -u per account, postmap -q."""
    q = shlex.quote
    zone_file = layout.path(zone_path(ZONE))
    passwd, fwd = layout.path(MAIL_PASSWD), layout.path(FORWARDERS)
    virtual = layout.path(f"{MAIL_MAPS}/virtual")
    accounts = sorted({a for a, _, _ in b.crons})
    crons = {a: layout.path(cron_path(a)) for a in accounts}
    base, jdir = layout.path(".limit"), layout.path(".limit/journal")
    files = [zone_file, passwd, fwd, virtual, *crons.values()]
    entries = [f"{jdir}/{i}" for i in journal]
    qfiles = " ".join(q(f) for f in files)
    rndc, checkzone = shlex.join(layout.rndc), shlex.join(layout.named_checkzone)
    postmap, postfix = shlex.join(layout.postmap), shlex.join(layout.postfix)
    crontab = list(layout.crontab)
    dig = f"dig +norec +time=2 +tries=1 -p {layout.dns_port} @{layout.dns_address}"
    out: list[str] = []
    w = out.append
    w("set -u\numask 077\n")
    w(f"install -d -m 700 {q(base)} {q(jdir)} {q(layout.path('cron'))}\n")
    w(f"exec 9>>{q(base + '/lock')}\nflock -w 10 9 || {{ echo LIMIT-LOCKED; exit 75; }}\n")
    w(
        f'for f in {qfiles}; do if [ -e "$f" ]; then ln -f "$f" "$f.old"; '
        'else rm -f "$f.old"; fi; done\n'
    )
    w(
        f'restore() {{ for f in {qfiles}; do if [ -e "$f.old" ]; then mv -f "$f.old" "$f"; '
        f'else rm -f "$f"; fi; done; rm -f {" ".join(q(e) for e in entries)}; }}\n'
    )
    # The zone: the serial bumped as GDCAS does (YYYYMMDD00 or the old one + 1), records appended.
    w(f"z={q(zone_file)}\n")
    w('s=$(awk \'$4 == "SOA" { print $7; exit }\' "$z") || exit 1\n')
    w(f'n=$((s + 1)); [ "$n" -ge {today * 100} ] || n={today * 100}\n')
    records = "".join(f'{name} 300 IN TXT "{value}"\n' for name, value in b.records)
    opener, body = _heredoc(records)
    w(
        '{ awk -v n="$n" \'$4 == "SOA" && !d { $7 = n; d = 1 } { print }\' "$z"; '
        f'cat {opener}\n{body}}} > "$z.new" || exit 8\n'
    )
    # The passwd-file: the new Argon2id hashes (made by the caller) replace the old ones.
    w(f"p={q(passwd)}\n")
    opener, body = _heredoc("".join(f"{a}:{{ARGON2ID}}{h}\n" for a, h in hashes.items()))
    w(
        "awk -F: -v OFS=: 'FNR == NR { h[$1] = $2; next } ($1 in h) { $2 = h[$1] } { print }' "
        f'- "$p" > "$p.new" {opener} || exit 8\n{body}'
    )
    # The forwarders, and Postfix's virtual map made from them (one line per source).
    w(f"f={q(fwd)}; v={q(virtual)}\n")
    opener, body = _heredoc("".join(f"{s} {d}\n" for s, d in b.forwarders))
    w(f'{{ cat "$f" 2>/dev/null; cat {opener}\n{body}}} | sort -u > "$f.new" || exit 8\n')
    w(
        'awk \'$1 != "" { d[$1] = ($1 in d) ? d[$1] "," $2 : $2 } '
        'END { for (s in d) print s, d[s] }\' "$f.new" > "$v.new" || exit 8\n'
    )
    w('chmod 644 "$z.new" "$f.new" "$v.new"\n')
    # The accounts' cron files, in GDCAS's format (the same files GDCAS installs from).
    for account, path in crons.items():
        lines = "".join(
            f"{MARK}{name}\n{CRON_SCHEDULE} {command}\n"
            for a, name, command in b.crons
            if a == account
        )
        opener, body = _heredoc(lines)
        w(f'c={q(path)}; {{ cat "$c" 2>/dev/null; cat {opener}\n{body}}} > "$c.new" || exit 8\n')
    w(f'for f in {qfiles}; do mv -f "$f.new" "$f"; done\n')
    # One journal entry per change, on disk with the files before anything reloads.
    for path, entry in zip(entries, journal.values(), strict=True):
        w(f"printf '%s\\n' {q(entry)} > {q(path)}\n")
    w(f"sync -- {qfiles} {' '.join(q(e) for e in entries)} {q(jdir)}\n")
    w(
        f'if ! out=$({checkzone} -k fail -i local {ZONE} "$z" 2>&1); then\n'
        '  echo LIMIT-CHECK-FAILED; printf "%s\\n" "$out"; restore; exit 5\nfi\n'
    )
    w('fail() { echo "LIMIT-RELOAD-FAILED $1"; restore; exit 6; }\n')
    w(f"{rndc} reload {ZONE} >/dev/null || fail zone\n")
    for account, path in crons.items():
        w(f"{shlex.join([*crontab, '-u', account, path])} || fail crontab\n")
    # Dovecot re-reads its passwd-file when the mtime (whole seconds) or the size changed: the
    # mtime always moves on past the last one it had (the same ledger GDCAS keeps).
    w(
        'last=$(cat "$p.mtime" 2>/dev/null || echo 0); t=$(stat -c %Y "$p")\n'
        'if [ "$t" -le "$last" ]; then t=$((last + 1)); touch -m -d "@$t" "$p"; fi\n'
        'echo "$t" > "$p.mtime"\n'
    )
    w(f'{postmap} "hash:$v" && {postfix} reload >/dev/null 2>&1 || fail postfix\n')
    w(f"rm -f {' '.join(q(f + '.old') for f in files)}\necho LIMIT-APPLIED\n")
    # The checks on the host by the real clients.
    w(
        f"end=$(($(date +%s) + 6))\nwhile :; do\n"
        f"  s=$({dig} +short {ZONE} SOA | cut -d' ' -f3)\n"
        '  [ "$s" = "$n" ] && break; [ "$(date +%s)" -ge "$end" ] && break; sleep 0.02\n'
        f'done\necho "LIMIT-SERIAL $n"\necho LIMIT-AXFR\n{dig} +noall +answer {ZONE} AXFR\n'
        "echo LIMIT-END\n"
    )
    for account, path in crons.items():
        tab = shlex.join([*crontab, "-u", account, "-l"])
        w(
            f"if {tab} 2>/dev/null | cmp -s - {q(path)}; then echo CRON-OK {account}; "
            f"else echo CRON-BAD {account}; fi\n"
        )
    opener, body = _heredoc("".join(f"{s}\n" for s, _ in b.forwarders))
    w(f'echo LIMIT-FWD\n{postmap} -q - "hash:$v" {opener}\n{body}echo LIMIT-END\n')
    return "".join(out)


def _block(text: str, start: str) -> list[str]:
    lines = text.split("\n")
    i = lines.index(start)
    return lines[i + 1 : lines.index("LIMIT-END", i)]


def judge_limit(text: str, b: Batch) -> str | None:
    """What the limit script's own checks printed: None when everything took."""
    if "LIMIT-APPLIED" not in text.split("\n"):
        return f"not applied: {text[-400:]}"
    serial = re.search(r"^LIMIT-SERIAL (\d+)$", text, re.M)
    axfr = _block(text, "LIMIT-AXFR")
    soa = [f for line in axfr if len(f := line.split()) > 6 and f[3] == "SOA"]
    if not serial or not soa or soa[0][6] != serial.group(1):
        return f"named does not serve serial {serial and serial.group(1)}"
    served = {(f[0], f[4]) for line in axfr if len(f := line.split(None, 4)) == 5}
    for name, value in b.records:
        if (f"{name}.{ZONE}.", f'"{value}"') not in served:
            return f"named does not serve {name} TXT"
    bad = re.findall(r"^CRON-BAD (\S+)$", text, re.M)
    if bad:
        return f"crontab -l -u {bad[0]} differs from the file"
    got = dict(f for line in _block(text, "LIMIT-FWD") if len(f := line.split(None, 1)) == 2)
    for src, dst in b.forwarders:
        if got.get(src) != dst:
            return f"postmap -q {src} gives {got.get(src)!r}, not {dst}"
    return None


def limit(mhosts: list[MixHost], meter: CpuMeter, per_kind: int, tag: str) -> Result:
    """Per host, on its own thread: hash the new passwords, send the script, read its checks,
    log each changed mailbox in over IMAP."""
    batches = [batch(mh, per_kind, tag) for mh in mhosts]
    conns = [SshConnection(mh.host.spec()) for mh in mhosts]
    for c in conns:
        c.connect()
    today = int(time.strftime("%Y%m%d"))
    errors: list[str] = []
    phases: dict[str, float] = defaultdict(float)  # seconds, summed over the hosts

    def work(mh: MixHost, b: Batch, conn: SshConnection) -> None:
        try:
            t0 = time.perf_counter()
            hashes = {box: hash_secret(pw) for box, pw in b.passwords}
            t1 = time.perf_counter()
            kinds = (
                ["dns_record_add"] * len(b.records)
                + ["mailbox_password"] * len(b.passwords)
                + ["cron_add"] * len(b.crons)
                + ["mail_forwarder_add"] * len(b.forwarders)
            )
            journal = {str(uuid.uuid4()): f"applied {k}" for k in kinds}
            script = limit_script(mh.layout, b, hashes, journal, today)
            res = conn.run("sh -s", stdin=script.encode(), timeout=120)
            problem = judge_limit(res.stdout, b) if res.exit_status == 0 else res.stdout[-400:]
            t2 = time.perf_counter()
            at = Endpoint(mh.host.spec().address, mh.layout)
            for box, pw in b.passwords:
                if problem:
                    break
                error = login_error(at, box, pw)
                problem = error and f"IMAP log-in of {box} refused: {error}"
            t3 = time.perf_counter()
            phases["hash the passwords"] += t1 - t0
            phases["the script (one round trip)"] += t2 - t1
            phases["IMAP log-ins"] += t3 - t2
            if problem:
                errors.append(f"{mh.host.host_id}: {problem}")
        except Exception as exc:
            errors.append(f"{mh.host.host_id}: {exc!r}")

    threads = [
        threading.Thread(target=work, args=args)
        for args in zip(mhosts, batches, conns, strict=True)
    ]
    result = Result(
        "mixed",
        "same-work limit (1 sh script/host)",
        "limit",
        sum(b.size for b in batches),
        target=">= 70 %",
    )
    with Clock(meter) as clock:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    for c in conns:
        c.close()
    result.clock = clock
    result.error = "; ".join(errors) or None
    result.note = "per host (mean): " + ", ".join(
        f"{k} {v * 1000 / len(mhosts):.0f} ms" for k, v in phases.items()
    )
    return result


# --- the peers -----------------------------------------------------------------------------------


def _bre(text: str) -> str:
    """``text`` as a POSIX basic regular expression matching it literally."""
    return re.sub(r"([.\[\]*^$\\])", r"\\\1", text)


def _passwd_line(box: str, password: str) -> str:
    """The mailbox's line of Dovecot's passwd-file with a new hash (the format GDCAS writes)."""
    return f"{box}:{{ARGON2ID}}{hash_secret(password)}::::::userdb_quota_rule=*:storage={QUOTA_MB}M"


def _zone_reload(layout: HostLayout) -> str:
    """The shell line a peer's handler runs for the zone: bump the serial, check, reload."""
    z = shlex.quote(layout.path(zone_path(ZONE)))
    return (
        f"s=$(awk '$4 == \"SOA\" {{ print $7; exit }}' {z}) && n=$((s + 1)) && "
        f'awk -v n="$n" \'$4 == "SOA" && !d {{ $7 = n; d = 1 }} {{ print }}\' {z} > {z}.new && '
        f"mv -f {z}.new {z} && {shlex.join(layout.named_checkzone)} -k fail -i local {ZONE} {z}"
        f" && {shlex.join(layout.rndc)} reload {ZONE}"
    )


def _postfix_reload(layout: HostLayout) -> str:
    virtual = shlex.quote(layout.path(f"{MAIL_MAPS}/virtual"))
    return f"{shlex.join(layout.postmap)} hash:{virtual} && {shlex.join(layout.postfix)} reload"


def peer_check(mhosts: list[MixHost], batches: list[Batch]) -> str | None:
    """After a peer's run (not timed): did its work take? named serves its records, the
    crontabs list its entries, Postfix resolves its forwarders, a changed mailbox logs in."""
    for mh, b in zip(mhosts, batches, strict=True):
        lay = mh.layout
        dig = [
            "dig",
            "+norec",
            "-p",
            str(lay.dns_port),
            "@127.0.0.1",
            "+noall",
            "+answer",
            ZONE,
            "AXFR",
        ]
        axfr = subprocess.run(dig, capture_output=True, text=True, timeout=30).stdout
        for name, _ in b.records:
            if f"{name}.{ZONE}." not in axfr:
                return f"{mh.host.host_id}: named does not serve {name}"
        for account in {a for a, _, _ in b.crons}:
            tab = subprocess.run(
                [*lay.crontab, "-u", account, "-l"], capture_output=True, text=True, timeout=30
            ).stdout
            for a, _, command in b.crons:
                if a == account and command not in tab:
                    return f"{mh.host.host_id}: crontab of {account} lacks {command!r}"
        sources = "".join(f"{s}\n" for s, _ in b.forwarders)
        got = subprocess.run(
            [*lay.postmap, "-q", "-", f"hash:{lay.path(MAIL_MAPS + '/virtual')}"],
            input=sources,
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout
        found = dict(f for line in got.splitlines() if len(f := line.split(None, 1)) == 2)
        for src, dst in b.forwarders:
            if found.get(src) != dst:
                return f"{mh.host.host_id}: Postfix does not forward {src} to {dst}"
        at = Endpoint("127.0.0.1", lay)
        for box, pw in (b.passwords[0], b.passwords[-1]):
            error = login_error(at, box, pw)
            if error:
                return f"{mh.host.host_id}: IMAP log-in of {box} refused: {error}"
    return None


_PEER_NOTE = (
    "lineinfile for zone, passwd and virtual-map lines; its cron module; a shell "
    "handler for serial + named-checkzone + rndc reload and for postmap + postfix "
    "reload; no verification"
)


def ansible_project(
    hosts: list[LocalHost], work: Path, venv: Path, host_vars: str = ""
) -> dict[str, str]:
    """An ansible-core project for the hosts in `work` (inventory with `host_vars` per host,
    an ansible.cfg with pipelining and ControlPersist, the hosts' keys pinned); its env."""
    known = work / "known_hosts"
    known_hosts(hosts, known)
    (work / "inventory.ini").write_text(
        "[managed]\n"
        + "".join(
            f"{h.host_id} ansible_host=127.0.0.1 ansible_port={h.sshd.port} ansible_user=root "
            f"ansible_ssh_private_key_file={h.sshd.client_key_file}"
            + (f" {host_vars.format(root=h.root)}" if host_vars else "")
            + "\n"
            for h in hosts
        )
    )
    (work / "ansible.cfg").write_text(
        textwrap.dedent(f"""\
        [defaults]
        forks = {len(hosts)}
        gathering = explicit
        interpreter_python = /usr/bin/python3
        [ssh_connection]
        pipelining = True
        ssh_args = -o ControlMaster=auto -o ControlPersist=60s -o UserKnownHostsFile={known}
        control_path_dir = {work}/cp
        """)
    )
    return {
        "ANSIBLE_CONFIG": str(work / "ansible.cfg"),
        "PATH": f"{venv}/bin:/usr/bin:/bin",
        "HOME": str(work),
    }


def run_peer(argv: list[str], work: Path, env: dict[str, str]) -> tuple[int, str]:
    """Run a peer tool in `work` (the caller's Clock around it); its exit status and output."""
    res = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=work, timeout=1800)
    return res.returncode, res.stdout + res.stderr


def ansible(
    mhosts: list[MixHost], meter: CpuMeter, per_kind: int, venv: Path, work: Path
) -> Result:
    hosts = [mh.host for mh in mhosts]
    batches = [batch(mh, per_kind, "a") for mh in mhosts]
    result = Result(
        "mixed",
        "ansible-core",
        "peer",
        sum(b.size for b in batches),
        note=_PEER_NOTE.replace("its cron module", "ansible.builtin.cron"),
        target=">= 150x",
    )
    exe = venv / "bin" / "ansible-playbook"
    if not exe.exists():
        result.error = f"not installed ({exe} missing)"
        return result
    env = ansible_project(hosts, work, venv)
    (work / "host_vars").mkdir()
    (work / "play.yml").write_text(
        textwrap.dedent("""\
        - hosts: managed
          tasks:
            - name: TXT records in the zone
              ansible.builtin.lineinfile: {path: "{{ zone_file }}", line: "{{ item }}"}
              loop: "{{ records }}"
              notify: reload zone
            - name: mailbox passwords (Argon2id hashes made by the bench)
              ansible.builtin.lineinfile:
                {path: "{{ passwd }}", regexp: "{{ item.regexp }}", line: "{{ item.line }}"}
              loop: "{{ passwords }}"
            - name: forwarders in Postfix's virtual map
              ansible.builtin.lineinfile: {path: "{{ virtual }}", line: "{{ item }}"}
              loop: "{{ forwarders }}"
              notify: reload postfix
            - name: cron entries
              ansible.builtin.cron:
                name: "{{ item.name }}"
                user: "{{ item.user }}"
                minute: "17"
                hour: "3"
                job: "{{ item.job }}"
              loop: "{{ crons }}"
          handlers:
            - name: reload zone
              ansible.builtin.shell: "{{ zone_reload }}"
            - name: reload postfix
              ansible.builtin.shell: "{{ postfix_reload }}"
        """)
    )
    with Clock(meter) as clock:
        for mh, b in zip(mhosts, batches, strict=True):
            lay = mh.layout
            data = {
                "zone_file": lay.path(zone_path(ZONE)),
                "passwd": lay.path(MAIL_PASSWD),
                "virtual": lay.path(f"{MAIL_MAPS}/virtual"),
                "records": [f'{n} 300 IN TXT "{v}"' for n, v in b.records],
                "passwords": [
                    {"regexp": f"^{re.escape(box)}:", "line": _passwd_line(box, pw)}
                    for box, pw in b.passwords
                ],
                "forwarders": [f"{s} {d}" for s, d in b.forwarders],
                "crons": [{"name": n, "user": a, "job": c} for a, n, c in b.crons],
                "zone_reload": _zone_reload(lay),
                "postfix_reload": _postfix_reload(lay),
            }
            (work / "host_vars" / f"{mh.host.host_id}.json").write_text(json.dumps(data))
        status, out = run_peer(
            [str(exe), "-i", str(work / "inventory.ini"), str(work / "play.yml")], work, env
        )
    result.clock = clock
    result.error = f"failed: {out[-600:]}" if status else peer_check(mhosts, batches)
    return result


def pyinfra(
    mhosts: list[MixHost], meter: CpuMeter, per_kind: int, venv: Path, work: Path
) -> Result:
    hosts = [mh.host for mh in mhosts]
    batches = [batch(mh, per_kind, "p") for mh in mhosts]
    result = Result(
        "mixed",
        "pyinfra",
        "peer",
        sum(b.size for b in batches),
        note=_PEER_NOTE.replace("lineinfile", "files.line")
        .replace("its cron module", "crontab.crontab")
        .replace("a shell handler", "server.shell at the end"),
        target=">= 20x",
    )
    exe = venv / "bin" / "pyinfra"
    if not exe.exists():
        result.error = f"not installed ({exe} missing)"
        return result
    known = work / "known_hosts"
    known_hosts(hosts, known)
    (work / "deploy.py").write_text(
        textwrap.dedent("""\
        from pyinfra import host
        from pyinfra.operations import crontab, files, server

        d = host.data
        for line, match in d.records:
            files.line(name="TXT record", path=d.zone_file, line=match, replace=line)
        for line, match in d.passwords:
            files.line(name="mailbox password", path=d.passwd, line=match, replace=line)
        for line, match in d.forwarders:
            files.line(name="forwarder", path=d.virtual, line=match, replace=line)
        for user, name, job in d.crons:
            crontab.crontab(name="cron entry", command=job, user=user, cron_name=name,
                            minute="17", hour="3")
        server.shell(name="reload zone", commands=[d.zone_reload])
        server.shell(name="reload postfix", commands=[d.postfix_reload])
        """)
    )
    with Clock(meter) as clock:
        entries = []
        for mh, b in zip(mhosts, batches, strict=True):
            h, lay = mh.host, mh.layout
            records = [f'{n} 300 IN TXT "{v}"' for n, v in b.records]
            forwarders = [f"{s} {d}" for s, d in b.forwarders]
            data = {
                "ssh_hostname": "127.0.0.1",
                "ssh_port": h.sshd.port,
                "ssh_user": "root",
                "ssh_key": str(h.sshd.client_key_file),
                "ssh_known_hosts_file": str(known),
                "zone_file": lay.path(zone_path(ZONE)),
                "passwd": lay.path(MAIL_PASSWD),
                "virtual": lay.path(f"{MAIL_MAPS}/virtual"),
                "records": [(x, f"^{_bre(x)}$") for x in records],
                "passwords": [
                    (_passwd_line(box, pw), f"^{_bre(box)}:.*$") for box, pw in b.passwords
                ],
                "forwarders": [(x, f"^{_bre(x)}$") for x in forwarders],
                "crons": [(a, n, c) for a, n, c in b.crons],
                "zone_reload": _zone_reload(lay),
                "postfix_reload": _postfix_reload(lay),
            }
            entries.append(f"    ({h.host_id!r}, {data!r}),\n")
        (work / "inventory.py").write_text("hosts = [\n" + "".join(entries) + "]\n")
        status, out = run_peer(
            [str(exe), "-y", "--parallel", str(len(hosts)), "inventory.py", "deploy.py"],
            work, {"PATH": f"{venv}/bin:/usr/bin:/bin", "HOME": str(work)},
        )  # fmt: skip
    result.clock = clock
    result.error = f"failed: {out[-600:]}" if status else peer_check(mhosts, batches)
    return result


# --- argon2id's share, and a profile of one GDCAS batch ------------------------------------------


def argon2_cpu_ms(n: int = 8) -> float:
    """CPU milliseconds of one ``hash_secret`` (Argon2id, time_cost 2, 19 MiB) here."""
    t0 = time.process_time()
    for i in range(n):
        hash_secret(f"bench-password-{i}")
    return (time.process_time() - t0) * 1000 / n


def imap_login_host_cpu_ms(mh: MixHost, meter: CpuMeter, box: str, pw: str, n: int = 8) -> float:
    """Host CPU milliseconds (Dovecot: the Argon2id check, the imap process) of one log-in."""
    at = Endpoint("127.0.0.1", mh.layout)
    with Clock(meter) as clock:
        for _ in range(n):
            if imap.login_error(at, box, pw):
                return float("nan")
    return clock.host_cpu * 1000 / n


# Host-side step labels of an apply script (automation/plan.py render), by the line that opens
# each step at the top level of gdcas_main; markers are printed to stderr with a timestamp.
_STEPS: list[tuple[str, str]] = [
    (r"^install -d -m 700 ", "lock (install -d, flock)"),
    (r"^dup=0$", "refuse journaled ids"),
    (r"^gdcas_nolink ", "refuse links"),
    (r'^\[ "\$\(gdcas_hash', "guards (sha256 of each file)"),
    (r"^\[ -d ", "make dirs"),
    (r"^chmod 700 ", "make dirs"),
    (r"^\{ \[ ! -e .*cat > ", "write new files (here-documents)"),
    (r"^gdcas_backup \S*/\.gdcas/journal/", "journal entries (one file per id)"),
    (r"^gdcas_backup ", "backups + install files"),
    (r"^sync -- ", "sync (fsync files + journal)"),
    (r"^if ! out=\$\(.*named-checkzone", "check: named-checkzone"),
    (r"^if ! out=\$\(.*rndc", "reload: rndc reload"),
    (r"^if ! out=\$\(gdcas_maildeny", "reload: Dovecot deny list + mtime"),
    (r"^if ! out=\$\(gdcas_postfix_maps", "reload: Postfix maps (3 postmap) + postfix reload"),
    (r"^if ! out=\$\(if ! u=\$\(id -u", "reload: crontab -u (one per account)"),
    (r"^rm -f ", "remove backups"),
    (r"^echo GDCAS-APPLIED$", "probe: file hashes"),
    (r"^end=\$\(\(", "probe: wait for named's serial"),
    (r"^echo 'GDCAS-SECTION dns ", "probe: AXFR"),
    (r"^return 0$", "end"),
]


def instrument(script: str) -> str:
    """The apply script with a timestamp marker before each step (never inside a here-doc)."""
    out, heredoc, in_main, last = [], None, False, None
    for line in script.splitlines(keepends=True):
        if heredoc is not None:
            out.append(line)
            if line.rstrip("\n") == heredoc:
                heredoc = None
            continue
        if line.startswith("gdcas_main() {"):
            in_main = True
        elif in_main and not line[:1].isspace():
            label = next((lab for pat, lab in _STEPS if re.match(pat, line)), None)
            if label is not None and label != last:
                if label == "make dirs" and last is not None and last.startswith("probe"):
                    label = last  # the probes' own `[ -d` lines
                else:
                    out.append(
                        f'printf "GDCAS-T %s %s\\n" "$(date +%s%N)" {shlex.quote(label)} >&2\n'
                    )
                    last = label
        out.append(line)
        m = re.search(r"<<'(GDCAS_EOF_[0-9a-f]+)'", line)
        if m:
            heredoc = m.group(1)
    return "".join(out)


@dataclass
class Profile:
    """Seconds per step, summed over the hosts' lanes."""

    executor: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    count: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    host: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, key: str, seconds: float) -> None:
        with self.lock:
            self.executor[key] += seconds
            self.count[key] += 1


def _timed(prof: Profile, key: Callable[..., str], fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            prof.add(key(*args, **kwargs), time.perf_counter() - t0)

    return wrapper


def _script_kind(script: str) -> str:
    if "gdcas_main" in script:
        return "round trip: the apply script (host steps below)"
    if "GDCAS-FILE" in script:
        return "round trip: read the files"
    if "GDCAS-SOURCE" in script:
        return "round trip: crontab -l -u (client check)"
    if " -q " in script:
        return "round trip: postmap -q (client check)"
    return "round trip: other"


def profile(mhosts: list[MixHost], per_kind: int, tag: str) -> str:
    """Apply one batch per host with timers around the executor's steps and timestamps between
    the apply script's host steps; the report. Each lane's queue is filled before the lane may
    take from it, so each host gets exactly one batch."""
    from automation.changes import base as changes_base
    from automation.changes.dns import DnsRecordAdd
    from automation.executor import batch as batch_mod
    from automation.executor.lane import HostLane

    prof = Profile()
    applier = batch_mod.BatchApplier
    originals: dict[tuple[Any, str], Any] = {}

    def patch(owner: Any, name: str, new: Any) -> None:
        originals[(owner, name)] = getattr(owner, name)
        setattr(owner, name, new)

    def run(self: Any, script: str) -> tuple[int, str, bytes]:
        kind = _script_kind(script)
        if "gdcas_main" in script:
            script = instrument(script)
        t0 = time.perf_counter()
        status, text, raw = originals[(applier, "run")](self, script)
        prof.add(kind, time.perf_counter() - t0)
        marks = [
            (int(m.group(1)), m.group(2)) for m in re.finditer(r"^GDCAS-T (\d+) (.+)$", text, re.M)
        ]
        with prof.lock:
            for (t, label), (t_next, _) in itertools.pairwise(marks):
                prof.host[label] += (t_next - t) / 1e9
        return status, text, raw

    patch(applier, "run", run)
    for name, label in (
        ("_edit", "edit the workspace: apply() of each change"),
        ("_workspace", "the workspace (cache, read missing files)"),
        ("_script", "render the script (zone render, plan.render)"),
        ("_probe", "the probes: parse, named serial + AXFR (if asked here)"),
    ):
        patch(applier, name, _timed(prof, lambda *a, _l=label, **k: _l, getattr(applier, name)))
    patch(
        applier,
        "_client_check",
        _timed(prof, lambda self, change: f"client check: {change.kind}", applier._client_check),
    )
    patch(
        DnsRecordAdd,
        "verify",
        _timed(prof, lambda *a, **k: "verify: dns_record_add (AXFR probe)", DnsRecordAdd.verify),
    )
    patch(
        changes_base,
        "hash_secret",
        _timed(prof, lambda *a, **k: "  of which argon2id hash_secret", changes_base.hash_secret),
    )
    patch(
        HostLane,
        "_process",
        _timed(prof, lambda *a, **k: "lane: one batch, all of it", HostLane._process),
    )
    batches = [batch(mh, per_kind, tag) for mh in mhosts]
    params = _requests_params(mhosts, batches)
    col = OutcomeCollector()
    ex = Executor(col, exec_timeout=60)
    try:
        for mh in mhosts:
            ex.add_host(mh.host.spec())
            ex.lane(mh.host.host_id).conn.connect()
        t0 = time.perf_counter()
        reqs = [
            ChangeRequest(change_id=str(uuid.uuid4()), host_id=h, change=parse_change(kind, p))
            for h, kind, p in params
        ]
        validate = time.perf_counter() - t0
        lanes = [ex.lane(mh.host.host_id) for mh in mhosts]
        with contextlib.ExitStack() as held:
            for lane in lanes:
                held.enter_context(lane._cond)  # the lanes take their batches once all are queued
            ex.submit_many(reqs)
        got = col.wait([r.change_id for r in reqs], timeout=600)
        wall = time.perf_counter() - t0
    finally:
        ex.close()
        for (owner, name), value in originals.items():
            setattr(owner, name, value)
    bad = [o for o in got.values() if o.status != "applied"]
    n_hosts = len(mhosts)
    lines = [
        f"GDCAS profile: one batch of {len(params) // n_hosts} changes on each of {n_hosts} "
        f"hosts, {wall:.2f} s wall" + (f" ({len(bad)} NOT applied)" if bad else ""),
        "  executor steps (mean per host lane)                        ms   % of lane",
    ]
    lane_s = prof.executor.get("lane: one batch, all of it", 0.0) / n_hosts or float("nan")
    for key, seconds in sorted(prof.executor.items(), key=lambda kv: -kv[1]):
        ms = seconds * 1000 / n_hosts
        calls = prof.count[key] / n_hosts
        lines.append(
            f"    {key:54} {ms:7.0f} {100 * seconds / n_hosts / lane_s:5.0f} %"
            f"   ({calls:.0f} calls)"
        )
    lines.append(
        f"    (validation, parse_change of all {len(params)} changes, main thread: "
        f"{validate * 1000:.0f} ms)"
    )
    total_host = sum(prof.host.values()) / n_hosts
    lines.append(
        f"  host steps of the apply script (mean per host; {total_host * 1000:.0f} ms "
        "between the first and last marker, each marker costs a `date` fork)"
    )
    for label, seconds in sorted(prof.host.items(), key=lambda kv: -kv[1]):
        lines.append(f"    {label:54} {seconds * 1000 / n_hosts:7.0f}")
    return "\n".join(lines)
