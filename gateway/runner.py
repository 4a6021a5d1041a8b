"""`sitedesk up`: start every piece in order and stop them in reverse on Ctrl-C or SIGTERM."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import uvicorn
from rich.console import Console

from actors.config import ActorConfig
from cluster.deploy import deploy
from cluster.ray_runtime import start_ray, stop_ray
from cluster.redis_server import LocalRedis, check_redis
from cluster.settings import ClusterSettings
from gateway.app import create_app
from gateway.platform import Platform
from gateway.settings import GatewaySettings
from gateway.startup import bind_http, open_database, print_logins
from store.demo import load_demo
from store.settings import StoreSettings


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


def run_platform(
    store: StoreSettings,
    cluster: ClusterSettings,
    gateway: GatewaySettings,
    *,
    demo: bool,
    dashboard: bool | None,
    out: Console,
) -> None:
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

        if demo:
            logins_path = store.data_dir / "demo-logins.json"
            print_logins(out, load_demo(db, logins_path), logins_path)

        if cluster.redis_url:
            check_redis(cluster.redis_url)
            redis_url = cluster.redis_url
        else:
            local = LocalRedis(store.data_dir / "redis", cluster.redis_port).start()
            stack.callback(local.stop)
            redis_url = local.url
        out.print(f"[green]ok[/] redis at {redis_url}")

        info = start_ray(cluster, dashboard=dashboard)
        stack.callback(stop_ray)
        dash = f", dashboard {info['dashboard']}" if info.get("dashboard") else ""
        out.print(f"[green]ok[/] ray at {info.get('address')}{dash}")

        config = ActorConfig(
            database_url=db.url, redis_url=redis_url, namespace=cluster.ray_namespace
        )
        deployment = deploy(config, detached=bool(cluster.ray_address))
        out.print(f"[green]ok[/] actors: {', '.join(sorted(deployment.handles))}")

        platform = Platform(
            db=db, redis_url=redis_url, settings=gateway, directory=deployment.directory
        )
        server_config = uvicorn.Config(
            create_app(platform),
            log_level=gateway.log_level,
            access_log=False,
        )
        server = QuietServer(server_config)
        url = f"http://{gateway.http_host}:{gateway.http_port}"
        out.print(f"[bold green]Sitedesk is up[/] at {url}  (API docs {url}/docs; Ctrl-C stops)")
        server.run(sockets=[sock])  # returns after SIGINT/SIGTERM, handled by uvicorn
        out.print("stopping ...")
