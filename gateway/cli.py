"""The `sitedesk` command line: run the platform, migrate the database, load demo data."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console

from cluster.errors import ClusterError
from cluster.settings import ClusterSettings
from gateway.settings import GatewaySettings
from gateway.startup import UsageProblem, load_settings, open_database, print_logins
from store.db import redact
from store.demo import load_demo
from store.errors import StoreError
from store.models.enums import TokenScope
from store.settings import StoreSettings

err = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)
app = typer.Typer(
    help="Sitedesk: support platform for a web-hosting company.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
db_app = typer.Typer(help="The SCDB (system of record): migrations, backups.", no_args_is_help=True)
app.add_typer(db_app, name="db")
token_app = typer.Typer(
    help="API tokens for integrations and batch jobs (shown once; only a hash is kept).",
    no_args_is_help=True,
)
app.add_typer(token_app, name="token")


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


@db_app.command("backup")
def db_backup(
    path: Annotated[
        Path | None,
        typer.Argument(help="The file to write (default: backups/ in the data directory)."),
    ] = None,
) -> None:
    """Back up the database while the platform runs: pg_dump -Fc on PostgreSQL, SQLite's
    online backup API; the file is written 0600 and never over an existing one."""
    from store.backup import BackupRefused, backup, default_backup_path

    with friendly_errors():
        store = load_settings(StoreSettings)
        db = open_database(store)
        try:
            target = path or default_backup_path(store.data_dir, db.dialect)
            made = backup(db, target)
        except BackupRefused as exc:
            fail(str(exc), 2)
        finally:
            db.dispose()
        out.print(f"backed up {redact(db.url)} (schema {made.revision}) to {made.path} "
                  f"({made.size / 1e6:.1f} MB, {made.tool})", markup=False)  # fmt: skip


@db_app.command("restore")
def db_restore(
    path: Annotated[Path, typer.Argument(help="A file `sitedesk db backup` wrote.")],
    force: Annotated[
        bool,
        typer.Option(
            help="Replace everything in a database that is not empty (stop the platform first)."
        ),
    ] = False,
) -> None:
    """Restore a backup into the configured database, which must be empty unless --force;
    a backup of an older schema is then upgraded with `sitedesk db upgrade`."""
    from store.backup import BackupRefused, restore

    with friendly_errors():
        db = open_database(load_settings(StoreSettings))
        try:
            done = restore(db, path, force=force)
        except BackupRefused as exc:
            fail(str(exc), 2)
        finally:
            db.dispose()
        how = "replaced everything in" if done.replaced else "into"
        out.print(f"restored {done.path} (schema {done.revision}) {how} {redact(db.url)}",
                  markup=False)  # fmt: skip
        if done.needs_upgrade:
            out.print(f"[yellow]the backup's schema is {done.revision}, this code needs "
                      f"{done.head}:[/] run `sitedesk db upgrade`, then `sitedesk up`")  # fmt: skip


@token_app.command("create")
def token_create(
    user: Annotated[str, typer.Option(help="E-mail of the user the token acts as.")],
    name: Annotated[str, typer.Option(help="What the token is for (shown in `token list`).")],
    scope: Annotated[
        list[TokenScope],
        typer.Option(help="api (the HTTP API) and/or batch (the Python batch API)."),
    ],
    days: Annotated[int, typer.Option(min=1, max=366, help="Lifetime in days.")] = 90,
    quiet: Annotated[bool, typer.Option(help="Print the token alone (for scripts).")] = False,
) -> None:
    """Issue an API token; it is printed once and cannot be shown again."""
    from datetime import timedelta

    from store.repositories import AuditRepository, TokenRepository, UserRepository

    with friendly_errors():
        db = open_database(load_settings(StoreSettings))
        db.check_migrated()
        with db.write() as s:
            found = UserRepository(s).by_email(user)
            if found is None or not found.is_active:
                raise UsageProblem(f"no active user {user}")
            if TokenScope.batch in scope and found.role == "customer":
                raise UsageProblem("the batch scope is for agents and admins, not customers")
            token, row = TokenRepository(s).issue(
                found.id, name=name[:100], ttl=timedelta(days=days), scopes=scope
            )
            AuditRepository(s).record(
                actor_label="cli", action="token.create", object_type="api_token",
                object_id=row.id, actor_user_id=None,
                data={"user_id": found.id, "scopes": row.scopes, "prefix": row.prefix},
            )  # fmt: skip
            expires = row.expires_at
    if quiet:
        print(token)
    else:
        out.print(f"token for {user} ({' '.join(sorted(scope))}, until {expires:%Y-%m-%d}):")
        out.print(token, markup=False)
        out.print("[dim]shown once: keep it in a secret store[/]")


@token_app.command("list")
def token_list() -> None:
    """Show the tokens not revoked: prefix, user, scopes, expiry, last use."""
    from store.repositories import TokenRepository

    with friendly_errors():
        db = open_database(load_settings(StoreSettings))
        db.check_migrated()
        with db.read() as s:
            for t, u in TokenRepository(s).live():
                used = f"{t.last_used_at:%Y-%m-%d %H:%M}" if t.last_used_at else "never"
                until = f"{t.expires_at:%Y-%m-%d}" if t.expires_at else "-"
                out.print(f"{t.prefix}  {u.email:<30} {t.scopes:<10} until {until}  "
                          f"used {used}  {t.name}", markup=False)  # fmt: skip


@token_app.command("revoke")
def token_revoke(
    prefix: Annotated[str, typer.Argument(help="The token's prefix, as `token list` shows.")],
) -> None:
    """Revoke a token at once: running gateways are told through Redis and drop it."""
    import redis

    from cluster.redis_server import running_local_url
    from gateway.platform import TOKEN_CACHE_SECONDS, mark_revoked
    from store.repositories import AuditRepository, TokenRepository

    with friendly_errors():
        store = load_settings(StoreSettings)
        db = open_database(store)
        db.check_migrated()
        with db.write() as s:
            digests = TokenRepository(s).revoke_prefix(prefix)
            if not digests:
                raise UsageProblem(f"no live token starts with {prefix}")
            AuditRepository(s).record(
                actor_label="cli", action="token.revoke", object_type="api_token",
                object_id=prefix, data={"count": len(digests)},
            )  # fmt: skip
        out.print(f"revoked {len(digests)} token(s) starting with {prefix}")
        url = load_settings(ClusterSettings).redis_url or running_local_url(store.data_dir)
        try:
            if url is None:
                raise redis.ConnectionError("no Redis configured or running")
            mark_revoked(url, digests)
        except redis.RedisError as exc:
            out.print(f"[yellow]gateways not told[/] ({exc}): a running one refuses the token "
                      f"within {TOKEN_CACHE_SECONDS:.0f} s, when its cache expires")  # fmt: skip


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
