"""GDCAS throughput against the same-work limit and its peers, on the same local sshd hosts.

Two workloads over 4 hosts (sshd, named, Dovecot and Postfix each), every tool measured in one
run, wall time and CPU time per change (the bench process with its children, and the hosts'
daemons with all they start: see bench/_mixed.py ``CpuMeter``):

- dns: 400 TXT adds (100 a host). GDCAS (the Executor: validated, journaled, named-checkzone,
  rndc reload, verified by a zone transfer); raw paramiko (the transport alone, no check, no
  journal: one exec per change, one printf script per host); ansible-core (pipelining,
  ControlPersist) and pyinfra, one ``lineinfile`` / ``files.line`` per change.
- mixed: per host 25 each of DNS TXT adds, mailbox password changes, cron adds (the
  accounts' real crontabs) and forwarder adds. GDCAS; the same-work limit (one hand-written sh
  script per host over one persistent connection doing the same checks, installs, reloads,
  journal and real-client verification for this exact batch); ansible-core and pyinfra with
  what they offer for it, unverified. See bench/_mixed.py.

ansible-core and pyinfra come from a separate venv (default /tmp/bench-venv; ``--peers-venv``;
``python3 -m venv /tmp/bench-venv && /tmp/bench-venv/bin/pip install ansible-core pyinfra``).
Also measures a self-service DNS change from submit to the record answering at named, and with
``--profile`` where one GDCAS batch of the mix spends its time.

Run: ``.venv/bin/python bench/automation.py [--quick] [--profile] [--skip-peers]``.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid
from pathlib import Path

# Run as a script, this file's directory comes first on sys.path and its name would shadow the
# automation package.
_HERE = Path(__file__).resolve().parent
if sys.path and Path(sys.path[0]).resolve() == _HERE:
    sys.path.pop(0)

from automation.changes import parse_change
from automation.executor.executor import Executor
from automation.executor.outcome import OutcomeCollector
from automation.executor.request import ChangeRequest
from automation.local_hosts.host import LocalHost
from automation.ssh import SshConnection

# bench/_mixed.py, loaded by its path (bench/ must stay off sys.path, see above).
_spec = importlib.util.spec_from_file_location("_mixed", _HERE / "_mixed.py")
assert _spec is not None and _spec.loader is not None
mixed = importlib.util.module_from_spec(_spec)
sys.modules["_mixed"] = mixed
_spec.loader.exec_module(mixed)

ZONE = mixed.ZONE
Clock, CpuMeter, Result = mixed.Clock, mixed.CpuMeter, mixed.Result


def gdcas(hosts: list[LocalHost], meter: CpuMeter, per_host: int, tag: str) -> Result:
    col = OutcomeCollector()
    ex = Executor(col)
    for h in hosts:
        ex.add_host(h.spec())
        ex.lane(h.host_id).conn.connect()  # connections are persistent: open them before timing
    result = Result("dns", "GDCAS (Executor)", "gdcas", per_host * len(hosts))
    try:
        with Clock(meter) as clock:
            reqs = [
                ChangeRequest(
                    change_id=str(uuid.uuid4()),
                    host_id=h.host_id,
                    change=parse_change(
                        "dns_record_add",
                        {
                            "zone": ZONE,
                            "record": {"name": f"{tag}{i}", "type": "TXT", "value": f"v{i}"},
                        },
                    ),
                )
                for i in range(per_host)
                for h in hosts
            ]
            ex.submit_many(reqs)
            got = col.wait([r.change_id for r in reqs], timeout=300)
    finally:
        ex.close()
    result.clock = clock
    bad = [o for o in got.values() if o.status != "applied"]
    if bad:
        result.error = f"{len(bad)} changes not applied, e.g. {bad[0].error}"
    return result


def latency(host: LocalHost, n: int) -> tuple[float, float]:
    """Submit one DNS change at a time; time until a dig at named answers it."""
    col = OutcomeCollector()
    ex = Executor(col)
    ex.add_host(host.spec())
    ex.lane(host.host_id).conn.connect()
    assert host.named is not None
    samples = []
    for i in range(n):
        r = ChangeRequest(
            change_id=str(uuid.uuid4()),
            host_id=host.host_id,
            change=parse_change(
                "dns_record_add",
                {"zone": ZONE, "record": {"name": f"lat{i}", "type": "A", "value": "192.0.2.1"}},
            ),
        )
        t0 = time.perf_counter()
        ex.submit(r)
        col.wait([r.change_id])
        dig = ["dig", "+short", "-p", str(host.named.port), "@127.0.0.1", f"lat{i}.{ZONE}", "A"]
        while "192.0.2.1" not in subprocess.run(dig, capture_output=True, text=True).stdout:
            time.sleep(0.002)
        samples.append((time.perf_counter() - t0) * 1000)
    ex.close()
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.99))]


def raw_paramiko(
    hosts: list[LocalHost], meter: CpuMeter, per_host: int, one_script: bool
) -> Result:
    conns = [SshConnection(h.spec()) for h in hosts]
    for c in conns:
        c.connect()

    def work(h: LocalHost, c: SshConnection) -> None:
        path = str(h.root / "raw.txt")
        lines = [f"raw{i} 300 IN TXT v{i}" for i in range(per_host)]
        if one_script:
            script = "".join(
                f"printf '%s\\n' {shlex.quote(x)} >> {shlex.quote(path)}\n" for x in lines
            )
            c.run("sh -s", stdin=script.encode(), timeout=60)
        else:
            for x in lines:
                c.run(f"printf '%s\\n' {shlex.quote(x)} >> {shlex.quote(path)}", timeout=30)

    threads = [
        threading.Thread(target=work, args=(h, c)) for h, c in zip(hosts, conns, strict=True)
    ]
    name = "one script per host" if one_script else "one exec per change"
    result = Result(
        "dns",
        f"raw paramiko, {name}",
        "transport",
        len(hosts) * per_host,
        note="printf >> file only: no check, journal, reload or verification",
    )
    with Clock(meter) as clock:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    for c in conns:
        c.close()
    result.clock = clock
    return result


def ansible(
    hosts: list[LocalHost], meter: CpuMeter, per_host: int, venv: Path, work: Path
) -> Result:
    result = Result(
        "dns",
        "ansible-core",
        "peer",
        len(hosts) * per_host,
        note="one lineinfile per change, no check, reload or verification",
    )
    exe = venv / "bin" / "ansible-playbook"
    if not exe.exists():
        result.error = f"not installed ({exe} missing)"
        return result
    env = mixed.ansible_project(hosts, work, venv, host_vars="root={root}")
    (work / "play.yml").write_text(
        textwrap.dedent(
            f"""\
            - hosts: managed
              tasks:
                - name: add a record
                  ansible.builtin.lineinfile:
                    path: "{{{{ root }}}}/ansible.txt"
                    line: "ans{{{{ item }}}} 300 IN TXT v{{{{ item }}}}"
                    create: true
                  loop: "{{{{ range({per_host}) | list }}}}"
            """
        )
    )
    with Clock(meter) as clock:
        status, out = mixed.run_peer(
            [str(exe), "-i", str(work / "inventory.ini"), str(work / "play.yml")], work, env
        )
    result.clock = clock
    if status:
        result.error = f"failed: {out[-600:]}"
        return result
    count = sum(len((h.root / "ansible.txt").read_text().splitlines()) for h in hosts)
    if count != len(hosts) * per_host:
        result.error = f"failed: {count} lines written"
    return result


def pyinfra(
    hosts: list[LocalHost], meter: CpuMeter, per_host: int, venv: Path, work: Path
) -> Result:
    result = Result(
        "dns",
        "pyinfra",
        "peer",
        len(hosts) * per_host,
        note="one files.line per change, no check, reload or verification",
    )
    exe = venv / "bin" / "pyinfra"
    if not exe.exists():
        result.error = f"not installed ({exe} missing)"
        return result
    known = work / "known_hosts"
    mixed.known_hosts(hosts, known)
    (work / "inventory.py").write_text(
        "hosts = [\n"
        + "".join(
            f"    ({h.host_id!r}, {{'ssh_hostname': '127.0.0.1', 'ssh_port': {h.sshd.port}, "
            f"'ssh_user': 'root', 'ssh_key': {str(h.sshd.client_key_file)!r}, "
            f"'ssh_known_hosts_file': {str(known)!r}, 'root': {str(h.root)!r}}}),\n"
            for h in hosts
        )
        + "]\n"
    )
    (work / "deploy.py").write_text(
        textwrap.dedent(
            f"""\
            from pyinfra import host
            from pyinfra.operations import files
            for i in range({per_host}):
                files.line(
                    name=f"record {{i}}",
                    path=host.data.root + "/pyinfra.txt",
                    line=f"pyi{{i}} 300 IN TXT v{{i}}",
                )
            """
        )
    )
    with Clock(meter) as clock:
        status, out = mixed.run_peer(
            [str(exe), "-y", "--parallel", str(len(hosts)), "inventory.py", "deploy.py"],
            work, {"PATH": f"{venv}/bin:/usr/bin:/bin", "HOME": str(work)},
        )  # fmt: skip
    result.clock = clock
    if status:
        result.error = f"failed: {out[-600:]}"
        return result
    count = sum(
        len(p.read_text().splitlines()) for h in hosts if (p := h.root / "pyinfra.txt").exists()
    )
    if count != len(hosts) * per_host:
        result.error = f"failed: {count} lines written"
    return result


# --- the table -----------------------------------------------------------------------------------


def _versus(r: Result, g: Result) -> str:
    """GDCAS's rate and CPU a change divided by the row's tool's: the rate as a share of a
    limit (%) or a multiple of a peer's (x), the CPU as a multiple."""
    if r is g or r.rate is None or g.rate is None:
        return ""
    rc, gc = r.ms_per_change(), g.ms_per_change()
    cpu = f", CPU {gc[2] / rc[2]:.2f}x" if rc and gc and rc[2] > 0 else ""
    if r.role in ("limit", "transport"):
        return f"rate {100 * g.rate / r.rate:.0f} %{cpu}"
    return f"rate {g.rate / r.rate:.1f}x{cpu}"


def _met(r: Result, g: Result) -> str:
    if not r.target or r.rate is None or g.rate is None:
        return r.target
    want = float(r.target.strip(">= %x"))
    got = 100 * g.rate / r.rate if r.role == "limit" else g.rate / r.rate
    return f"{r.target} {'met' if got >= want else 'NOT met'}"


def table(results: list[Result]) -> str:
    head = (
        f"{'workload':8} {'tool':36} {'changes':>7} {'wall s':>7} {'changes/s':>9} "
        f"{'CPU ms/change':>22}  {'GDCAS / tool':34} target"
    )
    sub = f"{'':8} {'':36} {'':>7} {'':>7} {'':>9} {'bench':>7}{'hosts':>7}{'all':>8}"
    lines = [head, sub, "-" * len(head)]
    gdcas_of = {r.workload: r for r in results if r.role == "gdcas"}
    for r in results:
        g = gdcas_of.get(r.workload, r)
        ms = r.ms_per_change()
        if r.clock is None:
            lines.append(f"{r.workload:8} {r.tool:36} {r.changes:7}  - {r.error}")
            continue
        cpu = f"{ms[0]:7.1f}{ms[1]:7.1f}{ms[2]:8.1f}" if ms else f"{'':22}"
        rate = r.rate or math.nan
        lines.append(
            f"{r.workload:8} {r.tool:36} {r.changes:7} {r.clock.wall:7.2f} {rate:9.1f} {cpu}  "
            f"{_versus(r, g):34} {_met(r, g)}"
        )
        if r.error:
            lines.append(f"{'':8}   ! {r.error[:300]}")
    notes = [f"  {r.workload}/{r.tool}: {r.note}" for r in results if r.note]
    return "\n".join([*lines, "", "notes:", *notes])


# --- main ----------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--changes", type=int, help="dns workload: changes in all (400; quick 80)")
    ap.add_argument("--per-kind", type=int, help="mixed workload: each kind a host (25; quick 5)")
    ap.add_argument("--hosts", type=int, default=4)
    ap.add_argument("--peers-venv", type=Path, default=Path("/tmp/bench-venv"))
    ap.add_argument("--skip-peers", action="store_true")
    ap.add_argument("--workloads", default="dns,mixed", help="comma-separated: dns, mixed")
    ap.add_argument("--latency-samples", type=int, help="50; quick 10")
    ap.add_argument("--profile", action="store_true", help="profile one GDCAS batch of the mix")
    ap.add_argument("--quick", action="store_true", help="a small smoke run")
    args = ap.parse_args()
    for name, full, quick in (
        ("changes", 400, 80),
        ("per_kind", 25, 5),
        ("latency_samples", 50, 10),
    ):
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    workloads = set(args.workloads.split(","))
    per_host = args.changes // args.hosts
    mixed.become_subreaper()
    started = time.monotonic()
    base = Path(tempfile.mkdtemp(prefix="gdcas-bench-"))
    base.chmod(0o711)  # the hosts' unprivileged daemons (Postfix, Dovecot) reach their roots
    users = mixed.account_names(args.hosts)
    hosts = [
        LocalHost(base, f"bench{i}", zones=(ZONE,), with_nginx=False, services=("mail",))
        for i in range(args.hosts)
    ]
    meter = CpuMeter(hosts)
    results: list[Result] = []
    extra: list[str] = []

    def peers(workload: str, run: dict[str, object]) -> None:
        for name, fn in run.items():
            if args.skip_peers:
                results.append(Result(workload, name, "peer", 0, error="skipped (--skip-peers)"))
                continue
            work = base / f"{workload}-{name}"
            work.mkdir()
            print(f"  {workload}: {name} ...", flush=True)
            results.append(fn(work))  # type: ignore[operator]

    try:
        with mixed.unix_users([u for host_users in users for u in host_users]):
            for h in hosts:
                h.start()
            print(f"{args.hosts} hosts up ({time.monotonic() - started:.0f} s)", flush=True)
            if "dns" in workloads:
                print(f"dns: {per_host * args.hosts} TXT adds over {args.hosts} hosts", flush=True)
                results.append(gdcas(hosts, meter, per_host, "g"))
                results.append(raw_paramiko(hosts, meter, per_host, one_script=False))
                results.append(raw_paramiko(hosts, meter, per_host, one_script=True))
                peers(
                    "dns",
                    {
                        "pyinfra": lambda w: pyinfra(hosts, meter, per_host, args.peers_venv, w),
                        "ansible-core": lambda w: ansible(
                            hosts, meter, per_host, args.peers_venv, w
                        ),
                    },
                )
                p50, p99 = latency(hosts[0], args.latency_samples)
                extra.append(
                    f"self-service DNS change, submit -> answer at named: "
                    f"p50 {p50:.0f} ms, p99 {p99:.0f} ms"
                )
            if "mixed" in workloads:
                k = args.per_kind
                mhosts = [
                    mixed.MixHost(
                        h, users[i], f"mail{i}.{ZONE}", [f"box{j}@mail{i}.{ZONE}" for j in range(k)]
                    )
                    for i, h in enumerate(hosts)
                ]
                mixed.make_mailboxes(mhosts)
                print(
                    f"mixed: {4 * k} changes a host ({k} DNS, {k} mailbox password, {k} cron, "
                    f"{k} forwarder) over {args.hosts} hosts "
                    f"({time.monotonic() - started:.0f} s)",
                    flush=True,
                )
                results.append(mixed.gdcas(mhosts, meter, k, "g"))
                results.append(mixed.limit(mhosts, meter, k, "l"))
                hash_ms = mixed.argon2_cpu_ms()
                login_ms = mixed.imap_login_host_cpu_ms(
                    mhosts[0], meter, mhosts[0].boxes[0], "l0-new-password"
                )
                g = next(r for r in results if r.workload == "mixed" and r.role == "gdcas")
                gms = g.ms_per_change()
                if gms:
                    share = hash_ms / 4  # one password change in four changes
                    extra.append(
                        f"argon2id (hash_secret, t=2, 19 MiB): {hash_ms:.1f} ms CPU a hash here; "
                        f"one in 4 changes of the mix hashes one: {share:.1f} ms a change = "
                        f"{100 * share / gms[0]:.0f} % of GDCAS's bench-side and "
                        f"{100 * share / gms[2]:.0f} % of its total CPU a change. An IMAP log-in "
                        f"(Dovecot checks the Argon2id hash) costs {login_ms:.1f} ms host CPU: "
                        f"{login_ms / 4:.1f} ms a change of the mix, "
                        f"{100 * login_ms / 4 / gms[2]:.0f} % of GDCAS's total a change."
                    )
                peers(
                    "mixed",
                    {
                        "pyinfra": lambda w: mixed.pyinfra(mhosts, meter, k, args.peers_venv, w),
                        "ansible-core": lambda w: mixed.ansible(
                            mhosts, meter, k, args.peers_venv, w
                        ),
                    },
                )
                if args.profile:
                    print("  profiling one GDCAS batch ...", flush=True)
                    extra.append(mixed.profile(mhosts, k, "q"))
    finally:
        for h in hosts:
            h.stop()
        shutil.rmtree(base, ignore_errors=True)
    print()
    print(table(results))
    print()
    for line in extra:
        print(line)
    print(
        f"\n(run took {time.monotonic() - started:.0f} s; CPU: bench = this process and its "
        "children, hosts = the hosts' daemons and all they ran)"
    )


if __name__ == "__main__":
    main()
