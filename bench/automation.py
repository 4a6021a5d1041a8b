"""GDCAS throughput against its practical limit and its peers, on the same local sshd hosts.

Workload: 400 small changes over 4 hosts (100 each): add one TXT record to the host's zone.

- GDCAS: the Executor, every change validated, journaled on the host, zone checked with
  named-checkzone, reloaded in named and verified by a zone transfer.
- raw paramiko (the practical limit of the transport, no checks, no journal): one persistent
  TCP_NODELAY connection per host, (a) one exec per change, (b) one script per host.
- ansible-core (pipelining on, ControlPersist) and pyinfra, if they are installed in a separate
  venv (default /tmp/bench-venv; ``--peers-venv``): one ``lineinfile`` / ``files.line`` per change.

Also measures a self-service DNS change from submit to the record answering at named.

Run: ``.venv/bin/python bench/automation.py [--changes 400] [--hosts 4]``.
"""

from __future__ import annotations

import argparse
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
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)

from automation.changes import parse_change
from automation.executor.executor import Executor
from automation.executor.outcome import OutcomeCollector
from automation.executor.request import ChangeRequest
from automation.local_hosts.host import LocalHost
from automation.ssh import SshConnection

ZONE = "bench.test"


def gdcas(hosts: list[LocalHost], per_host: int, tag: str) -> float:
    col = OutcomeCollector()
    ex = Executor(col)
    for h in hosts:
        ex.add_host(h.spec())
        ex.lane(h.host_id).conn.connect()  # connections are persistent: open them before timing
    reqs = [
        ChangeRequest(
            change_id=str(uuid.uuid4()),
            host_id=h.host_id,
            change=parse_change(
                "dns_record_add",
                {"zone": ZONE, "record": {"name": f"{tag}{i}", "type": "TXT", "value": f"v{i}"}},
            ),
        )
        for i in range(per_host)
        for h in hosts
    ]
    t0 = time.perf_counter()
    ex.submit_many(reqs)
    got = col.wait([r.change_id for r in reqs], timeout=300)
    elapsed = time.perf_counter() - t0
    ex.close()
    bad = [o for o in got.values() if o.status != "applied"]
    if bad:
        raise SystemExit(f"GDCAS: {len(bad)} changes not applied, e.g. {bad[0]}")
    return len(reqs) / elapsed


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


def raw_paramiko(hosts: list[LocalHost], per_host: int, one_script: bool) -> float:
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
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    for c in conns:
        c.close()
    return len(hosts) * per_host / elapsed


def _known_hosts(hosts: list[LocalHost], path: Path) -> None:
    path.write_text("".join(f"[127.0.0.1]:{h.sshd.port} {h.sshd.host_key_line}\n" for h in hosts))


def ansible(hosts: list[LocalHost], per_host: int, venv: Path, work: Path) -> float | str:
    exe = venv / "bin" / "ansible-playbook"
    if not exe.exists():
        return f"not installed ({exe} missing)"
    known = work / "known_hosts"
    _known_hosts(hosts, known)
    inv = "[managed]\n" + "".join(
        f"{h.host_id} ansible_host=127.0.0.1 ansible_port={h.sshd.port} ansible_user=root "
        f"ansible_ssh_private_key_file={h.sshd.client_key_file} root={h.root}\n"
        for h in hosts
    )
    (work / "inventory.ini").write_text(inv)
    (work / "ansible.cfg").write_text(
        textwrap.dedent(
            f"""\
            [defaults]
            forks = {len(hosts)}
            gathering = explicit
            interpreter_python = /usr/bin/python3
            [ssh_connection]
            pipelining = True
            ssh_args = -o ControlMaster=auto -o ControlPersist=60s -o UserKnownHostsFile={known}
            control_path_dir = {work}/cp
            """
        )
    )
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
    env = {"ANSIBLE_CONFIG": str(work / "ansible.cfg"), "PATH": f"{venv}/bin:/usr/bin:/bin"}
    t0 = time.perf_counter()
    res = subprocess.run(
        [str(exe), "-i", str(work / "inventory.ini"), str(work / "play.yml")],
        capture_output=True,
        text=True,
        env=env,
        cwd=work,
        timeout=1800,
    )
    elapsed = time.perf_counter() - t0
    if res.returncode != 0:
        return "failed: " + (res.stdout + res.stderr)[-600:]
    count = sum(len((h.root / "ansible.txt").read_text().splitlines()) for h in hosts)
    if count != len(hosts) * per_host:
        return f"failed: {count} lines written"
    return len(hosts) * per_host / elapsed


def pyinfra(hosts: list[LocalHost], per_host: int, venv: Path, work: Path) -> float | str:
    exe = venv / "bin" / "pyinfra"
    if not exe.exists():
        return f"not installed ({exe} missing)"
    known = work / "known_hosts"
    _known_hosts(hosts, known)
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
    t0 = time.perf_counter()
    res = subprocess.run(
        [str(exe), "-y", "--parallel", str(len(hosts)), "inventory.py", "deploy.py"],
        capture_output=True,
        text=True,
        cwd=work,
        timeout=1800,
        env={"PATH": f"{venv}/bin:/usr/bin:/bin", "HOME": str(work)},
    )
    elapsed = time.perf_counter() - t0
    if res.returncode != 0:
        return "failed: " + (res.stdout + res.stderr)[-600:]
    count = sum(
        len(p.read_text().splitlines()) for h in hosts if (p := h.root / "pyinfra.txt").exists()
    )
    if count != len(hosts) * per_host:
        return f"failed: {count} lines written"
    return len(hosts) * per_host / elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--changes", type=int, default=400)
    ap.add_argument("--hosts", type=int, default=4)
    ap.add_argument("--peers-venv", type=Path, default=Path("/tmp/bench-venv"))
    ap.add_argument("--skip-peers", action="store_true")
    ap.add_argument("--latency-samples", type=int, default=50)
    args = ap.parse_args()
    per_host = args.changes // args.hosts
    base = Path(tempfile.mkdtemp(prefix="gdcas-bench-"))
    hosts = [
        LocalHost(base, f"bench{i}", zones=(ZONE,), with_nginx=False) for i in range(args.hosts)
    ]
    results: dict[str, float | str] = {}
    try:
        for h in hosts:
            h.start()
        print(f"workload: {per_host * args.hosts} DNS record adds over {args.hosts} sshd hosts")
        results["GDCAS (Executor)"] = gdcas(hosts, per_host, "g")
        results["raw paramiko, one exec per change"] = raw_paramiko(
            hosts, per_host, one_script=False
        )
        results["raw paramiko, one script per host"] = raw_paramiko(
            hosts, per_host, one_script=True
        )
        if args.skip_peers:
            results["ansible-core"] = results["pyinfra"] = "skipped (--skip-peers)"
        else:
            for name, fn in (("pyinfra", pyinfra), ("ansible-core", ansible)):
                work = base / name
                work.mkdir()
                print(f"running {name} ...", flush=True)
                results[name] = fn(hosts, per_host, args.peers_venv, work)
        p50, p99 = latency(hosts[0], args.latency_samples)
    finally:
        for h in hosts:
            h.stop()
        shutil.rmtree(base, ignore_errors=True)
    g = results["GDCAS (Executor)"]
    assert isinstance(g, float)
    print(f"\n{'tool':38} {'changes/s':>10} {'GDCAS ÷ tool':>13}")
    for name, value in results.items():
        if isinstance(value, float):
            print(f"{name:38} {value:10.1f} {g / value:13.2f}")
        else:
            print(f"{name:38} {'-':>10} {'':>13}  {value}")
    limit = max(v for k, v in results.items() if k.startswith("raw") and isinstance(v, float))
    print(f"\nGDCAS reaches {100 * g / limit:.0f}% of the raw paramiko limit ({limit:.0f}/s).")
    print(f"self-service DNS change, submit -> answer at named: p50 {p50:.0f} ms, p99 {p99:.0f} ms")


if __name__ == "__main__":
    main()
