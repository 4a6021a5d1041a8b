"""A real Postfix (Debian's package) in front of a test SMTP server: the company's MTA that
relays the customers' mail to our intake, with its queue, retries and 4xx handling.

Each `Postfix` is a private instance run with `postfix -c DIR`: its configuration, queue, data
and log all live under its own directory, it listens on its own loopback port and relays every
accepted mail to `[127.0.0.1]:relay_port`, so several run side by side and none touches
/etc/postfix, /var/spool/postfix or the system's Postfix (which the tests never start).
Postfix starts and stops its daemons as root and drops to its `postfix` user (created by the
package with the `postdrop` group); the tests run as root.

    mta = Postfix(base_dir, relay_port=intake_port, domains=("sitedesk.test",)).start()
    mta.send("ann@customer.example", ["help@sitedesk.test"], message)   # or smtplib to mta.port
    mta.wait_deferred()          # the intake answered 4xx: the mail waits in the queue
    mta.flush()                  # redeliver now instead of at the next retry
    mta.wait_queue_empty()       # delivered (the intake answered 250)
    mta.stop()                   # also on failure; mta.log() is Postfix's own log
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from pathlib import Path
from types import TracebackType

from automation.local_hosts.mail import POSTFIX_SERVICES
from automation.loopback import free_port

_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_DOMAIN = re.compile(rf"(?=.{{1,253}}\Z)(?:{_LABEL}\.)+[a-z](?:[a-z0-9-]{{0,61}}[a-z0-9])?")
_POLL = 0.05  # between looks at the queue or the process table while waiting on a condition

# Every service Postfix needs to accept, queue and relay mail over SMTP (the smtpd line is added
# per port): the same as a local host's Postfix has.
_MASTER_CF = POSTFIX_SERVICES


class PostfixError(RuntimeError):
    """Postfix could not be set up, started or asked (the message carries its log's tail)."""


@dataclass(frozen=True)
class QueuedRecipient:
    address: str
    delay_reason: str | None  # why the last attempt failed, e.g. "... said: 451 4.3.0 ..."


@dataclass(frozen=True)
class QueuedMail:
    """One mail in Postfix's queue, from `postqueue -j`."""

    queue_id: str
    queue_name: str  # incoming, active, deferred, hold, maildrop
    sender: str
    recipients: tuple[QueuedRecipient, ...]

    @property
    def deferred(self) -> bool:
        """Waiting for its next attempt after a failed one (its reason is recorded)."""
        return self.queue_name == "deferred" and any(r.delay_reason for r in self.recipients)


@dataclass
class Postfix:
    """A private Postfix accepting mail for `domains` on 127.0.0.1:`port` and relaying all of it
    to [127.0.0.1]:`relay_port`; retries after `minimal_backoff`..`maximal_backoff` seconds
    (checked every `queue_run_delay` seconds), short by default so a test's deferral ends soon.
    `base_dir` is the instance's own directory (created; it must not hold another instance)."""

    base_dir: Path
    relay_port: int
    domains: Sequence[str] = ("sitedesk.test",)
    port: int = field(default_factory=free_port)
    hostname: str = "mx.sitedesk.test"
    queue_run_delay: int = 2
    minimal_backoff: int = 2
    maximal_backoff: int = 4
    _master_pid: int | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.base_dir = Path(self.base_dir).resolve()
        self.domains = tuple(self.domains)
        for name in (*self.domains, self.hostname):
            if not _DOMAIN.fullmatch(name):
                raise ValueError(f"not a lower-case domain name: {name!r}")
        if not (self.queue_run_delay > 0 and 0 < self.minimal_backoff <= self.maximal_backoff):
            raise ValueError("retry timings must be positive, minimal_backoff <= maximal_backoff")

    # -- paths ---------------------------------------------------------------------------

    @property
    def config_dir(self) -> Path:
        return self.base_dir / "etc"

    @property
    def queue_dir(self) -> Path:
        return self.base_dir / "queue"

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    @property
    def log_file(self) -> Path:
        return self.base_dir / "maillog"

    # -- life cycle ----------------------------------------------------------------------

    def start(self) -> Postfix:
        """Write the configuration, create the private queue and start the master; returns
        once smtpd accepts connections on `port`."""
        _require_postfix()
        if (self.queue_dir / "pid" / "master.pid").exists():
            raise PostfixError(f"{self.base_dir} already holds a Postfix instance")
        # Postfix wants its directories owned by root and not group/world writable; the
        # postfix user works inside the queue (see check-warn in postfix-script).
        for d in (self.base_dir, self.config_dir, self.queue_dir):
            d.mkdir(mode=0o755, parents=True, exist_ok=True)
            d.chmod(0o755)
        (self.config_dir / "main.cf").write_text(self._main_cf())
        (self.config_dir / "master.cf").write_text(
            f"127.0.0.1:{self.port} inet n - n - - smtpd\n" + _MASTER_CF
        )
        # `start` runs postfix-script check-fatal first, which creates the missing queue
        # directories with Postfix's owners and modes (post-install create-missing).
        self._postfix("start")
        self._master_pid = self._read_master_pid()
        self._wait(self._accepts, 30.0, f"smtpd listening on 127.0.0.1:{self.port}")
        return self

    def stop(self) -> None:
        """Stop the master and every process it started (killed if they outlive a normal stop)."""
        pid = self._master_pid or self._read_master_pid(missing_ok=True)
        if pid is None:
            return
        if _alive(pid):
            # Waits up to 5 s for an orderly stop, then kills the master's process group.
            subprocess.run(
                ["postfix", "-c", str(self.config_dir), "stop"],
                capture_output=True,
                timeout=60,
                check=False,
            )
        if _group_alive(pid):
            os.killpg(pid, signal.SIGKILL)
        self._wait(lambda: not _group_alive(pid), 30.0, f"Postfix processes (group {pid}) gone")
        self._master_pid = None

    def __enter__(self) -> Postfix:
        return self.start()

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- mail and queue ------------------------------------------------------------------

    def send(
        self, mail_from: str, rcpt_tos: Sequence[str], message: bytes | str | EmailMessage
    ) -> dict[str, tuple[int, bytes]]:
        """Hand a mail to this Postfix over SMTP, as a sending server would; returns the refused
        recipients (smtplib raises when all are refused). Bytes go as given: CRLF line ends."""
        data = (
            message.as_bytes(policy=policy.SMTP) if isinstance(message, EmailMessage) else message
        )
        with smtplib.SMTP("127.0.0.1", self.port, timeout=30) as smtp:
            return smtp.sendmail(mail_from, list(rcpt_tos), data)

    def queue(self) -> list[QueuedMail]:
        """What is in the queue now (`postqueue -j`)."""
        out = self._command(["postqueue", "-c", str(self.config_dir), "-j"])
        mails = []
        for line in out.splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            mails.append(
                QueuedMail(
                    queue_id=str(item["queue_id"]),
                    queue_name=str(item["queue_name"]),
                    sender=str(item["sender"]),
                    recipients=tuple(
                        QueuedRecipient(str(r["address"]), r.get("delay_reason"))
                        for r in item["recipients"]
                    ),
                )
            )
        return mails

    def flush(self) -> None:
        """Attempt delivery of every queued mail now (`postqueue -f`), not at the next retry."""
        self._command(["postqueue", "-c", str(self.config_dir), "-f"])

    def wait_queue(
        self, condition: Callable[[list[QueuedMail]], bool], timeout: float = 30.0, what: str = ""
    ) -> list[QueuedMail]:
        """The queue once `condition` holds for it; AssertionError (with the queue and the log)
        at the deadline."""
        seen: list[list[QueuedMail]] = []

        def holds() -> bool:
            seen[:] = [self.queue()]
            return condition(seen[0])

        self._wait(holds, timeout, what or "the queue's condition", lambda: f"queue: {seen}")
        return seen[0]

    def wait_queue_empty(self, timeout: float = 30.0) -> None:
        """Until every mail has left the queue (delivered, or bounced)."""
        self.wait_queue(lambda q: not q, timeout, "an empty queue")

    def wait_deferred(self, count: int = 1, timeout: float = 30.0) -> list[QueuedMail]:
        """Until `count` mails wait in the deferred queue with the reason of their last failure."""
        queue = self.wait_queue(
            lambda q: sum(m.deferred for m in q) >= count, timeout, f"{count} deferred mails"
        )
        return [m for m in queue if m.deferred]

    def log(self) -> str:
        """Postfix's own log (its maillog_file): every connection, attempt and status."""
        try:
            return self.log_file.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    # -- internals -----------------------------------------------------------------------

    def _main_cf(self) -> str:
        settings = {
            "compatibility_level": "3.6",
            "config_directory": self.config_dir,
            "queue_directory": self.queue_dir,
            "data_directory": self.data_dir,
            "maillog_file": self.log_file,
            "maillog_file_prefixes": self.base_dir,
            "syslog_name": f"postfix-test-{self.port}",
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            "myhostname": self.hostname,
            "myorigin": "$myhostname",
            "mydestination": "",
            "mynetworks": "127.0.0.0/8",
            "local_recipient_maps": "",
            "alias_maps": "",
            "alias_database": "",
            # The company's MTA: mail for our domains from anyone, relayed to the intake;
            # nothing else accepted, nothing else sent anywhere.
            "relay_domains": ", ".join(self.domains),
            "smtpd_relay_restrictions": "reject_unauth_destination",
            "relayhost": f"[127.0.0.1]:{self.relay_port}",
            "default_transport": "error:5.7.1 this test MTA relays only to the intake",
            "notify_classes": "",
            "biff": "no",
            "append_dot_mydomain": "no",
            # A client on loopback is a stranger too: pass headers through as they came.
            "local_header_rewrite_clients": "",
            "smtp_dns_support_level": "disabled",
            "smtp_host_lookup": "native",
            "smtp_tls_security_level": "none",
            "smtpd_tls_security_level": "none",
            "smtpd_error_sleep_time": "0s",
            "queue_run_delay": f"{self.queue_run_delay}s",
            "minimal_backoff_time": f"{self.minimal_backoff}s",
            "maximal_backoff_time": f"{self.maximal_backoff}s",
        }
        return "".join(f"{k} = {v}\n" for k, v in settings.items())

    def _postfix(self, action: str) -> None:
        self._command(["postfix", "-c", str(self.config_dir), action])

    def _command(self, argv: list[str]) -> str:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
        if done.returncode != 0:
            raise PostfixError(
                f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()}\n"
                f"{self._log_tail()}"
            )
        return done.stdout

    def _read_master_pid(self, missing_ok: bool = False) -> int | None:
        try:
            return int((self.queue_dir / "pid" / "master.pid").read_text().split()[0])
        except (FileNotFoundError, IndexError, ValueError) as e:
            if missing_ok:
                return None
            pid_dir = self.queue_dir / "pid"
            raise PostfixError(f"no master pid in {pid_dir}\n{self._log_tail()}") from e

    def _accepts(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False

    def _wait(
        self,
        condition: Callable[[], bool],
        timeout: float,
        what: str,
        details: Callable[[], str] = lambda: "",
    ) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"Postfix {self.base_dir}: no {what} within {timeout}s. {details()}\n"
                    f"{self._log_tail()}"
                )
            time.sleep(_POLL)

    def _log_tail(self, lines: int = 40) -> str:
        tail = self.log().splitlines()[-lines:]
        return "Postfix log (tail):\n" + "\n".join(tail) if tail else "Postfix log is empty"


class PostfixFactory:
    """Running Postfix instances for a test session, each in its own directory under `base`;
    asking twice with the same arguments gives the same running instance, since tests relaying
    to one server can share it."""

    def __init__(self, base: Path | None = None) -> None:
        self.base = Path(base) if base is not None else Path(tempfile.mkdtemp(prefix="postfix-"))
        self.base.chmod(0o755)
        self._instances: dict[tuple[object, ...], Postfix] = {}

    def __call__(
        self,
        relay_port: int,
        domains: Iterable[str] = ("sitedesk.test",),
        *,
        queue_run_delay: int = 2,
        minimal_backoff: int = 2,
        maximal_backoff: int = 4,
    ) -> Postfix:
        key = (relay_port, tuple(domains), queue_run_delay, minimal_backoff, maximal_backoff)
        if key not in self._instances:
            instance = Postfix(
                Path(tempfile.mkdtemp(prefix="mta-", dir=self.base)),
                relay_port,
                tuple(domains),
                queue_run_delay=queue_run_delay,
                minimal_backoff=minimal_backoff,
                maximal_backoff=maximal_backoff,
            )
            self._instances[key] = instance.start()
        return self._instances[key]

    def close(self) -> None:
        """Stop every instance and remove their directories."""
        errors = []
        for instance in self._instances.values():
            try:
                instance.stop()
            except Exception as e:  # stop the others all the same
                errors.append(e)
        self._instances.clear()
        if not errors:
            shutil.rmtree(self.base, ignore_errors=True)
        if errors:
            raise errors[0]


def _require_postfix() -> None:
    if shutil.which("postfix") is None or shutil.which("postqueue") is None:
        raise PostfixError("Postfix is not installed (scripts/test installs the postfix package)")
    if os.geteuid() != 0:
        raise PostfixError("a private Postfix is started as root (its daemons drop privileges)")
    try:
        pwd.getpwnam("postfix")
        grp.getgrnam("postdrop")
    except KeyError as e:
        raise PostfixError(f"Postfix's user or group is missing ({e}); reinstall postfix") from e


def _members(pgid: int) -> list[int]:
    """The live (not zombie) processes of process group `pgid`, from /proc."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # pid (comm) state ppid pgrp ...: comm may hold spaces, so split after its ")".
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            pids.append(int(stat.parent.name))
    return pids


def _alive(pid: int) -> bool:
    return pid in _members(pid)


def _group_alive(pgid: int) -> bool:
    return bool(_members(pgid))
