"""The demo's managed hosts: real sshd + named + nginx on loopback, and the demo accounts' mail
(Dovecot, Postfix), FTP (pure-ftpd) and databases (MariaDB), started for `sitedesk up --demo`
under the data dir (the gateway imports no automation: it asks for them here).

The demo accounts' Unix users (``acme``, ``bluefern``, ``corvid``: store.demo.CUSTOMERS) are
users of this machine, as an account's user is of its host: its FTP users log in as it, cron
runs its crontab. They are made when missing (system users, no login shell; only as root) and
kept afterwards (the hosts' files under the data dir belong to them); each demo host has their
homes (``home/<user>``), owned by them.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import subprocess
from contextlib import ExitStack
from pathlib import Path

from rich.console import Console

from automation.local_hosts.host import LocalHost
from automation.local_hosts.nginx import can_reach, nginx_worker_user
from automation.local_hosts.sshd import SSHD
from store.demo import CUSTOMERS, DemoHost, demo_domains_by_host

DEMO_HOSTS = 2
DEMO_TOOLS = ("named", "named-checkzone", "rndc", "nginx", "ssh-keygen", "dig",
              "dovecot", "doveadm", "postfix", "postmap", "pure-ftpd", "pure-pw",
              "mariadbd", "mariadb", "crontab")  # fmt: skip
# The tools a demo host can run without: each is one service's (cron: no daemon of the host,
# the machine's crontab). Without one, the hosts run without that service.
SERVICE_OF_TOOL = {"dovecot": "mail", "doveadm": "mail", "postfix": "mail", "postmap": "mail",
                   "pure-ftpd": "ftp", "pure-pw": "ftp", "mariadbd": "database",
                   "mariadb": "database", "crontab": "cron"}  # fmt: skip
PACKAGES = {"mail": "dovecot-imapd dovecot-lmtpd postfix", "ftp": "pure-ftpd",
            "database": "mariadb-server", "cron": "cron"}  # fmt: skip
DEMO_SERVICES = ("mail", "ftp", "database")  # LocalHost services the demo hosts run
DEMO_UNIX_USERS = tuple(c[2] for c in CUSTOMERS)
FALLBACK_HOSTS_DIR = Path("/var/lib/sitedesk/demo-hosts")


def demo_host_of(host: LocalHost) -> DemoHost:
    """What the demo loader registers of a running local host: its address, pinned host key,
    client key and layout (the services it runs)."""
    spec = host.spec()
    return DemoHost(
        name=spec.host_id,
        address=spec.address,
        ssh_port=spec.port,
        host_key=spec.host_key,
        credentials_ref=spec.private_key_path,
        root_dir=spec.layout.root,
        services_meta=spec.layout.model_dump(mode="json", exclude={"root"}),
    )


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


def demo_unix_users(out: Console) -> list[pwd.struct_passwd] | None:
    """The demo accounts' Unix users, made when missing; None (said in one line) when this
    process is not root (it could make neither them nor their homes) or useradd fails."""
    if os.geteuid() != 0:
        out.print(
            "[yellow]demo hosts without FTP and cron[/]: not root, so the demo accounts' Unix "
            f"users ({', '.join(DEMO_UNIX_USERS)}) and their homes can not be made"
        )
        return None
    users = []
    for name in DEMO_UNIX_USERS:
        if not _exists(name):
            made = subprocess.run(
                ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            if made.returncode not in (0, 9):  # 9: it exists (made meanwhile)
                out.print(f"[yellow]demo hosts without FTP and cron[/]: useradd {name}: "
                          f"{made.stderr.strip()}")  # fmt: skip
                return None
        users.append(pwd.getpwnam(name))
    return users


def _exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def give_homes(host: LocalHost, users: list[pwd.struct_passwd]) -> None:
    """Each user's home on the host (``home/<user>``), made if missing, owned by the user."""
    for user in users:
        home = host.root / "home" / user.pw_name
        home.mkdir(parents=True, exist_ok=True)
        os.chown(home, user.pw_uid, user.pw_gid)


def start_demo_hosts(
    data_dir: Path, out: Console, stack: ExitStack, pid_dir: Path | None = None
) -> list[DemoHost]:
    """Start the demo's managed hosts (sshd + named + nginx on loopback, and mail, FTP and
    MariaDB) under the data dir, with the demo accounts' homes, their servers' pid files in
    `pid_dir` (cluster.processes); without sshd, named or nginx, say so in one line and run
    without hosts; without a service's programs (or, for FTP and cron, the accounts' Unix
    users), say so in one line and run the hosts without it."""
    missing = [t for t in DEMO_TOOLS if t not in SERVICE_OF_TOOL and shutil.which(t) is None]
    if not Path(SSHD).exists():
        missing.insert(0, "sshd")
    if missing:
        out.print(
            f"[yellow]no demo hosts[/]: {', '.join(missing)} not installed "
            "(apt-get install openssh-server bind9 bind9-dnsutils nginx-light); "
            "changes stay queued"
        )
        return []
    absent = [t for t in DEMO_TOOLS if t in SERVICE_OF_TOOL and shutil.which(t) is None]
    lacking = {SERVICE_OF_TOOL[t]: t for t in absent}  # service -> a tool it lacks
    if lacking:
        out.print(
            "[yellow]demo hosts without "
            + ", ".join(f"{service} ({tool} not installed)" for service, tool in lacking.items())
            + f"[/]: apt-get install {' '.join(PACKAGES[s] for s in lacking)}; "
            "their changes fail"
        )
    users = demo_unix_users(out)
    services = tuple(s for s in DEMO_SERVICES if s not in lacking and (s != "ftp" or users))
    hosts: list[DemoHost] = []
    base = demo_hosts_dir(data_dir)
    for i, domains in enumerate(demo_domains_by_host(DEMO_HOSTS)):
        host = LocalHost(
            base, f"demo-host-{i + 1}", zones=tuple(domains), services=services, pid_dir=pid_dir
        )
        try:
            host.start()
        except Exception as exc:
            out.print(f"[yellow]no demo hosts[/]: demo-host-{i + 1} did not start: {exc}")
            return []
        stack.callback(host.stop)
        if users:
            give_homes(host, users)
        hosts.append(demo_host_of(host))
    names = ", ".join(f"{h.name} (ssh {h.ssh_port})" for h in hosts)
    running = ", ".join(services) or "no further services"
    out.print(f"[green]ok[/] demo hosts: {names}; with {running}")
    return hosts
