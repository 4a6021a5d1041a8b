"""`sitedesk up`: start every piece in order and stop them in reverse on Ctrl-C or SIGTERM.

What it starts has pid files in the data dir's `run/` and a guardian that stops it when `up`
ends, even by `kill -9`; a start first stops what an earlier one left (cluster.processes).
Under systemd it says READY=1 once /readyz is ready and pets the watchdog (gateway.systemd).
"""

from __future__ import annotations

import secrets
import signal
import smtplib
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from email.message import EmailMessage
from email.utils import make_msgid
from urllib.parse import urlsplit, urlunsplit

import ray
import uvicorn
from rich.console import Console
from sqlalchemy import func, select

from actors.changes.dto import NewChange
from actors.config import ActorConfig
from actors.directory import Directory
from actors.mail.settings import MailSettings
from cluster.demo_hosts import start_demo_hosts
from cluster.deploy import deploy
from cluster.processes import run_dir, take_over
from cluster.ray_runtime import start_ray, stop_ray
from cluster.redis_server import LocalRedis, check_redis
from cluster.settings import ClusterSettings
from gateway.app import create_app, server_options
from gateway.batch import staff_principal
from gateway.demo_story import tell_demo_story
from gateway.platform import Platform
from gateway.settings import GatewaySettings
from gateway.smtp import SmtpIntake, start_smtp
from gateway.startup import (
    bind_http,
    load_settings,
    open_database,
    print_logins,
    with_mail_defaults,
)
from gateway.systemd import ServiceNotifier
from store.db import Database
from store.demo import CUSTOMERS, DemoHost, load_demo
from store.files import prepare_data_dir
from store.models import InboundMail, Ticket
from store.models.ticket import ticket_number
from store.repositories import AccountRepository, ChangeRepository
from store.settings import StoreSettings


def hide_password(url: str) -> str:
    """A Redis URL fit to print: its password replaced by ***."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


def self_url(host: str, port: int) -> str:
    """Where this process reaches its own gateway (a wildcard address on loopback)."""
    wildcard = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}  # noqa: S104
    host = wildcard.get(host, host)
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


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


DEMO_CODES = tuple(c[0] for c in CUSTOMERS)  # the demo company's accounts


def provision_demo_mailboxes(db: Database, directory: Directory) -> int:
    """Create the demo accounts' mailboxes on their hosts (once: a host keeps its files), so that
    the customers' self-service mailbox changes find them. Only the demo company's: the
    mailboxes of any other account on the desk are never touched."""
    return _provision_demo(
        db, directory, "mailbox", "mailbox_create", lambda name: {"address": name}
    )


def provision_demo_ftp_accounts(db: Database, directory: Directory) -> int:
    """Create the demo accounts' FTP accounts (``<unix user>_ftp``) on their hosts (once), so
    that the customers' FTP password changes find them: pure-ftpd logs them in as the account's
    Unix user, chrooted to its home. Only the demo company's."""
    return _provision_demo(
        db, directory, "ftp_account", "ftp_account_create", lambda name: {"username": name}
    )


def _provision_demo(
    db: Database,
    directory: Directory,
    service_kind: str,
    change_kind: str,
    params: Callable[[str], dict[str, str]],
) -> int:
    """Request `change_kind` (with a random password nobody keeps) for each hosted service of
    `service_kind` of the demo company's accounts that has no such change yet, failed ones
    aside: idempotent across starts. Requested through each account's lane like any change (as
    the demo's administrator), which hands it to the executors; returns how many."""
    admin = staff_principal(db, "admin@sitedesk.demo")
    with db.read() as s:
        accounts = AccountRepository(s)
        demo = {a.id for code in DEMO_CODES if (a := accounts.by_code(code)) is not None}
        todo = [
            (sv.id, sv.account_id, sv.name)
            for sv in accounts.services_of_kind(service_kind, hosted=True)
            if sv.account_id in demo
            and not any(
                c.kind == change_kind and c.service_id == sv.id and c.status != "failed"
                for c in ChangeRepository(s).recent_for_account(sv.account_id, limit=100)
            )
        ]
    run = secrets.token_hex(8)  # a key per start: a retried call requests nothing twice
    refs = []
    for sid, account_id, name in todo:
        password = secrets.token_urlsafe(16)
        new = NewChange(
            service_id=sid, kind=change_kind, params={**params(name), "password": password}
        )
        key = f"demo:{run}:{service_kind}:{sid}"
        lane = directory.sessions_for(account_id)
        refs.append(lane.request_change.remote(account_id, admin, new, key, key))
    ray.get(refs)
    return len(todo)


DEMO_MAILS = (
    ("Ada Baker <ada@acme-bakery.test>", "The contact form sends no mail",
     "Hello,\n\nsince yesterday the contact form on acme-bakery.test says 'sent', but no "
     "mail arrives in info@acme-bakery.test.\n\nThanks,\nAda"),
    ("Ada Baker <ada@acme-bakery.test>", "Re: [{number}] The contact form sends no mail",
     "The order form has the same problem.\n\nAda\n\nOn Wed, Sitedesk Support wrote:\n"
     "> We are looking into it."),
    ("Greta Green <greta@greenhouse-garden.test>", "Do you offer managed WordPress?",
     "Hi, we are moving our shop and would like to know your WordPress plans.\n\nGreta"),
)  # fmt: skip


def send_demo_mail(db: Database, host: str, port: int, to: str) -> int:
    """The demo's mail threads, sent once through the real SMTP door as a customer's mail
    server would: a new ticket, a reply threaded by its ticket number, and a mail from someone
    on no account (held until an agent links the sender)."""
    with db.read() as s:
        if s.scalar(select(func.count()).select_from(InboundMail)):
            return 0
    number = ""
    with smtplib.SMTP(host, port, timeout=60) as smtp:
        for sender, subject, body in DEMO_MAILS:
            msg = EmailMessage()
            msg["From"], msg["To"] = sender, to
            msg["Subject"] = subject.format(number=number)
            msg["Message-ID"] = make_msgid(domain=sender.rsplit("@", 1)[1].rstrip(">"))
            msg.set_content(body)
            answer = smtp.send_message(msg)
            assert not answer, answer
            number = number or _last_ticket_number(db)
    return len(DEMO_MAILS)


def _last_ticket_number(db: Database) -> str:
    with db.read() as s:
        last = s.scalar(select(func.max(Ticket.id)))
    return ticket_number(last) if last else ""


def run_platform(
    store: StoreSettings,
    cluster: ClusterSettings,
    gateway: GatewaySettings,
    *,
    demo: bool,
    dashboard: bool | None,
    out: Console,
) -> None:
    notifier = ServiceNotifier()  # before any child: none of them sees NOTIFY_SOCKET
    prepare_data_dir(store.data_dir)
    sock = bind_http(gateway.http_host, gateway.http_port)
    db = open_database(store)
    with ExitStack() as stack:
        stack.callback(sock.close)
        stack.callback(db.dispose)
        stopped, _guardian = take_over(store.data_dir)
        if stopped:
            out.print(
                f"[yellow]stopped what an earlier start left running[/]: {', '.join(stopped)}"
            )
        pids = run_dir(store.data_dir)
        if store.database_url is None:
            db.upgrade()  # the embedded default migrates itself
        else:
            db.check_migrated()  # a configured database is migrated on purpose, by an operator
        out.print(f"[green]ok[/] database {db.dialect} at revision {db.current_revision()}")

        demo_hosts: list[DemoHost] = []
        if demo:
            demo_hosts = start_demo_hosts(store.data_dir, out, stack, pid_dir=pids)
            logins_path = store.data_dir / "demo-logins.json"
            print_logins(out, load_demo(db, logins_path, hosts=demo_hosts), logins_path)

        if cluster.redis_url:
            check_redis(cluster.redis_url)
            redis_url = shown_redis = cluster.redis_url
        else:
            local = LocalRedis(
                store.data_dir / "redis", cluster.redis_port, pid_file=pids / "redis-server.json"
            ).start()
            stack.callback(local.stop)
            redis_url, shown_redis = local.url, local.display_url
        out.print(f"[green]ok[/] redis at {hide_password(shown_redis)}")

        info = start_ray(cluster, dashboard=dashboard, pid_file=pids / "ray.json")
        stack.callback(stop_ray)
        dash = f", dashboard {info['dashboard']}" if info.get("dashboard") else ""
        out.print(f"[green]ok[/] ray at {info.get('address')}{dash}")

        mail = with_mail_defaults(load_settings(MailSettings), store.data_dir)
        config = ActorConfig(
            database_url=db.url, redis_url=redis_url, namespace=cluster.ray_namespace, mail=mail
        )
        deployment = deploy(config, detached=bool(cluster.ray_address))
        out.print(f"[green]ok[/] actors: {', '.join(sorted(deployment.handles))}")
        if demo_hosts:
            provisions = (("imap_port", "mailboxes", provision_demo_mailboxes),
                          ("ftp_port", "FTP accounts", provision_demo_ftp_accounts))  # fmt: skip
            for port, what, provision in provisions:
                if not all(h.services_meta.get(port) for h in demo_hosts):
                    continue  # the hosts run no such server (said when they started)
                made = provision(db, deployment.directory)
                if made:
                    out.print(f"[green]ok[/] demo {what} requested on the demo hosts: {made}")

        smtp = start_smtp(SmtpIntake(deployment.directory, mail))
        stack.callback(smtp.stop)
        addresses = ", ".join(f"{a} ({c})" for a, c in mail.mail_addresses.items())
        out.print(f"[green]ok[/] smtp intake at {smtp.host}:{smtp.port} for {addresses}")
        if mail.mail_sink_dir:
            out.print(f"[green]ok[/] outgoing mail goes to the local sink {mail.mail_sink_dir}")
        if demo:
            support = next(iter(mail.mail_addresses))
            sent = send_demo_mail(db, smtp.host, smtp.port, support)
            if sent:
                out.print(f"[green]ok[/] demo mail sent through the SMTP intake: {sent}")
            told = tell_demo_story(
                db, deployment.directory, smtp=(smtp.host, smtp.port), mail_to=support
            )
            if told is not None:
                out.print(f"[green]ok[/] demo history told through the desk: {told.line()}")

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
        notifier.watch(self_url(gateway.http_host, gateway.http_port), lambda: server.started)
        stack.callback(notifier.stopping)
        server.run(sockets=[sock])  # returns after SIGINT/SIGTERM, handled by uvicorn
        out.print("stopping ...")
