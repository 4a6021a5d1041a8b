"""The demo's managed hosts: real sshd + named + nginx on loopback, started for `sitedesk up
--demo` under the data dir (the gateway imports no automation: it asks for them here)."""

from __future__ import annotations

import hashlib
import shutil
from contextlib import ExitStack
from pathlib import Path

from rich.console import Console

from automation.local_hosts.host import LocalHost
from automation.local_hosts.nginx import can_reach, nginx_worker_user
from automation.local_hosts.sshd import SSHD
from store.demo import DemoHost, demo_domains_by_host

DEMO_HOSTS = 2
DEMO_TOOLS = ("named", "named-checkzone", "rndc", "nginx", "ssh-keygen", "dig")
FALLBACK_HOSTS_DIR = Path("/var/lib/sitedesk/demo-hosts")


def demo_hosts_dir(data_dir: Path) -> Path:
    """Where the demo hosts live: `hosts/` in the data dir, unless nginx's unprivileged workers
    can not reach it (a data dir under a private home such as /root); then a folder of its own
    under /var/lib/sitedesk, named after the data dir, so each data dir keeps its hosts."""
    preferred = (data_dir / "hosts").resolve()
    preferred.mkdir(parents=True, exist_ok=True)
    if can_reach(nginx_worker_user(), preferred):
        return preferred
    digest = hashlib.sha256(str(preferred).encode()).hexdigest()[:12]
    fallback = FALLBACK_HOSTS_DIR / digest
    for folder in (FALLBACK_HOSTS_DIR.parent, FALLBACK_HOSTS_DIR, fallback):
        folder.mkdir(mode=0o711, exist_ok=True)
        folder.chmod(0o711)  # searchable by the workers, listed by no one
    return fallback


def start_demo_hosts(data_dir: Path, out: Console, stack: ExitStack) -> list[DemoHost]:
    """Start the demo's managed hosts (sshd + named + nginx on loopback) under the data dir;
    without those programs, say so in one line and run without them."""
    missing = [t for t in DEMO_TOOLS if shutil.which(t) is None]
    if not Path(SSHD).exists():
        missing.insert(0, "sshd")
    if missing:
        out.print(
            f"[yellow]no demo hosts[/]: {', '.join(missing)} not installed "
            "(apt-get install openssh-server bind9 bind9-dnsutils nginx-light); "
            "changes stay queued"
        )
        return []
    hosts: list[DemoHost] = []
    base = demo_hosts_dir(data_dir)
    for i, domains in enumerate(demo_domains_by_host(DEMO_HOSTS)):
        host = LocalHost(base, f"demo-host-{i + 1}", zones=tuple(domains))
        try:
            host.start()
        except Exception as exc:
            out.print(f"[yellow]no demo hosts[/]: demo-host-{i + 1} did not start: {exc}")
            return []
        stack.callback(host.stop)
        spec = host.spec()
        hosts.append(
            DemoHost(
                name=spec.host_id,
                address=spec.address,
                ssh_port=spec.port,
                host_key=spec.host_key,
                credentials_ref=spec.private_key_path,
                root_dir=spec.layout.root,
                services_meta=spec.layout.model_dump(mode="json", exclude={"root"}),
            )
        )
    names = ", ".join(f"{h.name} (ssh {h.ssh_port})" for h in hosts)
    out.print(f"[green]ok[/] demo hosts: {names}")
    return hosts
