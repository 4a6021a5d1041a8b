"""`sitedesk up`: start every piece in order and stop them in reverse on Ctrl-C or SIGTERM."""

from __future__ import annotations

import hashlib
import shutil
import signal
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import uvicorn
from rich.console import Console

from actors.config import ActorConfig
from automation.local_hosts import SSHD, LocalHost, can_reach, nginx_worker_user
from cluster.deploy import deploy
from cluster.ray_runtime import start_ray, stop_ray
from cluster.redis_server import LocalRedis, check_redis
from cluster.settings import ClusterSettings
from gateway.app import create_app, server_options
from gateway.platform import Platform
from gateway.settings import GatewaySettings
from gateway.startup import bind_http, open_database, print_logins
from store.db import Database
from store.demo import DemoHost, demo_domains_by_host, load_demo
from store.files import prepare_data_dir
from store.settings import StoreSettings


def hide_password(url: str) -> str:
    """A Redis URL fit to print: its password replaced by ***."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


class QuietServer(uvicorn.Server):
    """uvicorn re-raises the signal it caught after shutdown; we stop quietly instead."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        def stop(signum: int, frame: object) -> None:
            self.should_exit = True

        previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


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


def provision_demo_mailboxes(db: Database, config: ActorConfig, directory: Any) -> int:
    """Create the demo mailboxes on the demo hosts (once: a host keeps its files), so that the
    customers' self-service mailbox changes find them. Goes through the executors."""
    import secrets

    import ray

    from actors.changes.dto import NewChange
    from actors.changes.executor import executor_name
    from actors.changes.requests import ChangeService
    from gateway.batch import staff_principal
    from store.repositories import AccountRepository, ChangeRepository

    service = ChangeService(db, config)
    admin = staff_principal(db, "admin@sitedesk.demo")
    with db.read() as s:
        boxes = [
            (sv.id, sv.name)
            for sv in AccountRepository(s).services_of_kind("mailbox", hosted=True)
            if not any(
                c.kind == "mailbox_create" and c.service_id == sv.id and c.status != "failed"
                for c in ChangeRepository(s).recent_for_account(sv.account_id, limit=100)
            )
        ]
    by_shard: dict[str, list[str]] = {}
    for sid, address in boxes:
        detail = service.create(
            admin,
            NewChange(service_id=sid, kind="mailbox_create",
                      params={"address": address, "password": secrets.token_urlsafe(16)}),
        )  # fmt: skip
        if detail.host_id is not None:
            by_shard.setdefault(executor_name(detail.host_id), []).append(detail.id)
    ray.get([directory.get(name).submit.remote(ids) for name, ids in by_shard.items()])
    return len(boxes)


def run_platform(
    store: StoreSettings,
    cluster: ClusterSettings,
    gateway: GatewaySettings,
    *,
    demo: bool,
    dashboard: bool | None,
    out: Console,
) -> None:
    prepare_data_dir(store.data_dir)
    sock = bind_http(gateway.http_host, gateway.http_port)
    db = open_database(store)
    with ExitStack() as stack:
        stack.callback(sock.close)
        stack.callback(db.dispose)
        if store.database_url is None:
            db.upgrade()  # the embedded default migrates itself
        else:
            db.check_migrated()  # a configured database is migrated on purpose, by an operator
        out.print(f"[green]ok[/] database {db.dialect} at revision {db.current_revision()}")

        demo_hosts: list[DemoHost] = []
        if demo:
            demo_hosts = start_demo_hosts(store.data_dir, out, stack)
            logins_path = store.data_dir / "demo-logins.json"
            print_logins(out, load_demo(db, logins_path, hosts=demo_hosts), logins_path)

        if cluster.redis_url:
            check_redis(cluster.redis_url)
            redis_url = shown_redis = cluster.redis_url
        else:
            local = LocalRedis(store.data_dir / "redis", cluster.redis_port).start()
            stack.callback(local.stop)
            redis_url, shown_redis = local.url, local.display_url
        out.print(f"[green]ok[/] redis at {hide_password(shown_redis)}")

        info = start_ray(cluster, dashboard=dashboard)
        stack.callback(stop_ray)
        dash = f", dashboard {info['dashboard']}" if info.get("dashboard") else ""
        out.print(f"[green]ok[/] ray at {info.get('address')}{dash}")

        config = ActorConfig(
            database_url=db.url, redis_url=redis_url, namespace=cluster.ray_namespace
        )
        deployment = deploy(config, detached=bool(cluster.ray_address))
        out.print(f"[green]ok[/] actors: {', '.join(sorted(deployment.handles))}")
        if demo_hosts:
            made = provision_demo_mailboxes(db, config, deployment.directory)
            if made:
                out.print(f"[green]ok[/] demo mailboxes requested on the demo hosts: {made}")

        platform = Platform(
            db=db,
            redis_url=redis_url,
            settings=gateway,
            directory=deployment.directory,
            config=config,
        )
        server_config = uvicorn.Config(
            create_app(platform),
            log_level=gateway.log_level,
            access_log=False,
            **server_options(),
        )
        server = QuietServer(server_config)
        url = f"http://{gateway.http_host}:{gateway.http_port}"
        out.print(
            f"[bold green]Sitedesk is up[/] at {url}: portal {url}/portal, agent console "
            f"{url}/console, API docs {url}/docs (Ctrl-C stops)"
        )
        server.run(sockets=[sock])  # returns after SIGINT/SIGTERM, handled by uvicorn
        out.print("stopping ...")
