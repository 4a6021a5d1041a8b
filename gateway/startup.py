"""Start-up steps shared by the command line and the runner, each failing with one clear line."""

from __future__ import annotations

import errno
import secrets
import socket
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from pydantic import SecretStr, ValidationError
from rich.console import Console
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from actors.mail.settings import MailSettings
from store.db import Database
from store.demo import DemoLogins
from store.files import write_private
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


def with_mail_defaults(mail: MailSettings, data_dir: Path) -> MailSettings:
    """The embedded default's mail: a Message-ID key kept in the data directory (made once,
    0600) unless SITEDESK_MAIL_SECRET sets one, and the local sink under it unless a relay
    (SITEDESK_SMTP_RELAY) or a sink directory is set."""
    update: dict[str, object] = {}
    if not mail.mail_secret.get_secret_value():
        path = data_dir / "mail-secret"
        if not path.exists():
            write_private(path, secrets.token_hex(32))
        update["mail_secret"] = SecretStr(path.read_text().strip())
    if not mail.smtp_relay.get_secret_value() and not mail.mail_sink_dir:
        update["mail_sink_dir"] = str(data_dir / "sent-mail")
    return mail.model_copy(update=update) if update else mail


def print_logins(out: Console, logins: DemoLogins, path: Path) -> None:
    out.print("[bold]Demo logins[/] (also in " + str(path) + "):")
    for x in logins.logins:
        extra = f"tier {x.tier}" if x.tier else (x.account_code or "")
        out.print(f"  {x.role:<9} {x.email:<26} {x.password:<18} {x.name} {extra}".rstrip())
