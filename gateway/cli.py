"""The `sitedesk` command line: run the platform, migrate the database, load demo data."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, NoReturn

import typer
from rich.console import Console

from cluster.errors import ClusterError
from cluster.settings import ClusterSettings
from gateway.settings import GatewaySettings
from gateway.startup import UsageProblem, load_settings, open_database, print_logins
from store.demo import load_demo
from store.errors import StoreError
from store.settings import StoreSettings

err = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)
app = typer.Typer(
    help="Sitedesk: support platform for a web-hosting company.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
db_app = typer.Typer(help="The SCDB (system of record): migrations.", no_args_is_help=True)
app.add_typer(db_app, name="db")


def fail(message: str, code: int = 1) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


@contextmanager
def friendly_errors() -> Iterator[None]:
    try:
        yield
    except UsageProblem as exc:
        fail(str(exc), 2)
    except (StoreError, ClusterError) as exc:
        fail(str(exc), 1)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Bring the database schema up to date (creates it when empty)."""
    with friendly_errors():
        store = load_settings(StoreSettings)
        db = open_database(store)
        before = db.current_revision()
        db.upgrade()
        after = db.current_revision()
        out.print(f"database {db.dialect}: {before or 'empty'} -> {after}")


@db_app.command("current")
def db_current() -> None:
    """Print the schema revision of the database and the one the code needs."""
    with friendly_errors():
        db = open_database(load_settings(StoreSettings))
        out.print(f"current: {db.current_revision() or 'empty'}  head: {db.head_revision()}")


@app.command()
def demo() -> None:
    """Load the demo company (idempotent) and print the demo logins."""
    with friendly_errors():
        store = load_settings(StoreSettings)
        db = open_database(store)
        db.check_migrated()
        path = store.data_dir / "demo-logins.json"
        print_logins(out, load_demo(db, path), path)


@app.command()
def up(
    demo_data: Annotated[
        bool, typer.Option("--demo/--no-demo", help="Load the demo company first.")
    ] = False,
    dashboard: Annotated[
        bool | None,
        typer.Option("--dashboard/--no-dashboard", help="Start the Ray dashboard (local Ray)."),
    ] = None,
) -> None:
    """Run the platform: database, Redis, Ray and the HTTP gateway, until Ctrl-C."""
    from gateway.runner import run_platform

    with friendly_errors():
        store = load_settings(StoreSettings)
        cluster = load_settings(ClusterSettings)
        gateway = load_settings(GatewaySettings)
        run_platform(
            store,
            cluster,
            gateway,
            demo=demo_data,
            dashboard=dashboard,
            out=out,
        )


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
