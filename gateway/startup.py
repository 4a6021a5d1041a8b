"""Start-up steps shared by the command line and the runner, each failing with one clear line."""

from __future__ import annotations

import errno
import socket
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from pydantic import ValidationError
from rich.console import Console
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from store.db import Database
from store.demo import DemoLogins
from store.settings import StoreSettings

T = TypeVar("T")


class UsageProblem(Exception):
    """A mistake of configuration or environment: printed as one line, exit code 2."""


def load_settings(factory: Callable[[], T]) -> T:
    try:
        return factory()
    except ValidationError as exc:
        first = exc.errors()[0]
        name = "SITEDESK_" + "_".join(str(p) for p in first["loc"]).upper()
        raise UsageProblem(f"invalid setting {name}: {first['msg']}") from exc


def open_database(store: StoreSettings) -> Database:
    url = store.resolved_database_url()
    try:
        return Database(url, pool_size=store.database_pool_size)
    except (ArgumentError, NoSuchModuleError, ValueError) as exc:
        raise UsageProblem(f"SITEDESK_DATABASE_URL is not a usable database URL: {exc}") from exc


def bind_http(host: str, port: int) -> socket.socket:
    """Bind the HTTP port now, so that a taken port is a clear error and not a race."""
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
        sock.set_inheritable(True)
        return sock
    except socket.gaierror as exc:
        raise UsageProblem(f"SITEDESK_HTTP_HOST {host!r} is not an address here: {exc}") from exc
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise UsageProblem(
                f"port {port} on {host} is already in use; "
                "stop what runs there or set SITEDESK_HTTP_PORT to a free port"
            ) from exc
        raise UsageProblem(f"cannot listen on {host}:{port}: {exc.strerror}") from exc


def print_logins(out: Console, logins: DemoLogins, path: Path) -> None:
    out.print("[bold]Demo logins[/] (also in " + str(path) + "):")
    for x in logins.logins:
        extra = f"tier {x.tier}" if x.tier else (x.account_code or "")
        out.print(f"  {x.role:<9} {x.email:<26} {x.password:<18} {x.name} {extra}".rstrip())
