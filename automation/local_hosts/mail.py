"""A local host's mail service: a real Dovecot (IMAP, LMTP, quotas) and a real Postfix (SMTP in,
virtual mailbox domains, virtual alias maps = the forwarders), both private to the host.

The files GDCAS manages are the source of truth, as on a production host:

- ``mail/passwd`` — Dovecot's passwd-file (virtual users, Argon2id hashes, per-user quota);
- ``mail/denied`` — the users whose log-ins Dovecot refuses (a ``deny`` passdb), made by the
  mail step from the suspended accounts;
- ``mail-maps/{domains,mailboxes,virtual}`` — Postfix's maps, made by the Postfix step from
  ``mail/passwd`` and ``mail/forwarders`` and compiled with ``postmap`` (see
  ``automation.plan.reload_command``).

Dovecot reads the passwd-files on every log-in (no cache), so a password change takes effect
when the file is in place; mail is stored as the ``mail`` user under ``vmail/<domain>/<user>``,
never as root. Postfix hands each mail for a mailbox to Dovecot's LMTP, which applies the quota.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import subprocess
from pathlib import Path
from typing import Any

from automation.local_hosts.daemon import Daemon, wait_port
from automation.loopback import free_port
from automation.processes import remove_record, write_record

MAIL_USER = "mail"  # Debian's mail user owns the mailboxes (uid 8)
MAILDIRS = "vmail"  # below the host root: vmail/<domain>/<local part>
MAIL_MAPS = "mail-maps"  # Postfix's maps, readable by its unprivileged daemons


def _ids(user: str) -> tuple[int, int]:
    entry = pwd.getpwnam(user)
    return entry.pw_uid, entry.pw_gid


def dovecot_config(root: Path, directory: Path, imap_port: int, lmtp_port: int) -> str:
    uid, _ = _ids(MAIL_USER)
    group = grp.getgrgid(_ids(MAIL_USER)[1]).gr_name
    return f"""# A private Dovecot for a local managed host (automation/local_hosts/mail.py).
base_dir = {directory}/run
state_dir = {directory}/state
log_path = {directory}/dovecot.log
instance_name = dovecot-{imap_port}
protocols = imap lmtp
listen = 127.0.0.1
ssl = no
# Loopback only; a production host offers IMAP with STARTTLS/IMAPS and refuses plain log-ins.
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_cache_size = 0
# The executor checks a change by logging in, from this network: no failure penalty for it (a
# production host lists the executors' addresses here).
login_trusted_networks = 127.0.0.0/8
auth_failure_delay = 0
default_internal_user = dovecot
default_login_user = dovenull
first_valid_uid = {uid}
mail_uid = {MAIL_USER}
mail_gid = {group}
mail_location = maildir:{root}/{MAILDIRS}/%d/%n
mail_plugins = $mail_plugins quota
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap_port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {lmtp_port}
  }}
}}
# The passwd-files are root's alone (0600 in a 0700 directory), as GDCAS writes them.
service auth {{
  user = root
  unix_listener auth-userdb {{
    mode = 0600
  }}
}}
# A suspended account's users: refused whatever password they give.
passdb {{
  driver = passwd-file
  args = username_format=%Lu {root}/mail/denied
  deny = yes
}}
passdb {{
  driver = passwd-file
  args = scheme=ARGON2ID username_format=%Lu {root}/mail/passwd
}}
userdb {{
  driver = passwd-file
  args = username_format=%Lu {root}/mail/passwd
  default_fields = uid={MAIL_USER} gid={group} home={root}/{MAILDIRS}/%Ld/%Ln
}}
protocol imap {{
  mail_plugins = $mail_plugins imap_quota
}}
protocol lmtp {{
  postmaster_address = postmaster@localhost.invalid
}}
plugin {{
  quota = maildir:User quota
}}
"""


# Postfix's services for a private instance, none chrooted (the private queue has no copy of
# /etc and /lib for a chroot); the smtpd line is added per port. (tests/mta.py uses them too.)
POSTFIX_SERVICES = """\
pickup     unix  n  -  n  60    1  pickup
cleanup    unix  n  -  n  -     0  cleanup
qmgr       unix  n  -  n  300   1  qmgr
rewrite    unix  -  -  n  -     -  trivial-rewrite
bounce     unix  -  -  n  -     0  bounce
defer      unix  -  -  n  -     0  bounce
trace      unix  -  -  n  -     0  bounce
verify     unix  -  -  n  -     1  verify
flush      unix  n  -  n  1000? 0  flush
proxymap   unix  -  -  n  -     -  proxymap
proxywrite unix  -  -  n  -     1  proxymap
smtp       unix  -  -  n  -     -  smtp
relay      unix  -  -  n  -     -  smtp
showq      unix  n  -  n  -     -  showq
error      unix  -  -  n  -     -  error
retry      unix  -  -  n  -     -  error
discard    unix  -  -  n  -     -  discard
anvil      unix  -  -  n  -     1  anvil
scache     unix  -  -  n  -     1  scache
postlog    unix-dgram n  -  n  -  1  postlogd
"""
_MASTER_CF = POSTFIX_SERVICES + "lmtp       unix  -  -  n  -     -  lmtp\n"


def postfix_main_cf(root: Path, directory: Path, smtp_port: int, lmtp_port: int) -> str:
    maps = root / MAIL_MAPS
    settings: dict[str, object] = {
        "compatibility_level": "3.6",
        "config_directory": directory / "etc",
        "queue_directory": directory / "queue",
        "data_directory": directory / "data",
        "maillog_file": directory / "maillog",
        "maillog_file_prefixes": directory,
        "syslog_name": f"postfix-host-{smtp_port}",
        "inet_interfaces": "127.0.0.1",
        "inet_protocols": "ipv4",
        "myhostname": "mail.host.invalid",
        "mydestination": "",
        "mynetworks": "127.0.0.0/8",
        "local_recipient_maps": "",
        "alias_maps": "",
        "alias_database": "",
        # The customers' domains and mailboxes, and the forwarders, from GDCAS's files.
        "virtual_mailbox_domains": f"hash:{maps}/domains",
        "virtual_mailbox_maps": f"hash:{maps}/mailboxes",
        "virtual_alias_maps": f"hash:{maps}/virtual",
        "virtual_transport": f"lmtp:inet:127.0.0.1:{lmtp_port}",
        "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
        # No DNS and no internet here: mail for anywhere else is refused, not queued forever.
        "default_transport": "error:5.7.1 this host delivers only to its own mailboxes",
        "relay_transport": "error:5.7.1 this host delivers only to its own mailboxes",
        "notify_classes": "",
        "biff": "no",
        "append_dot_mydomain": "no",
        "smtputf8_enable": "no",
        "smtp_dns_support_level": "disabled",
        "lmtp_host_lookup": "native",
        "smtpd_tls_security_level": "none",
        "queue_run_delay": "2s",
        "minimal_backoff_time": "2s",
        "maximal_backoff_time": "4s",
    }
    return "".join(f"{k} = {v}\n" for k, v in settings.items())


class LocalDovecot(Daemon):
    name = "dovecot"

    def __init__(self, root: Path, directory: Path) -> None:
        super().__init__()
        self.root, self.dir = root.resolve(), directory.resolve()
        self.imap_port, self.lmtp_port = free_port(), free_port()
        self.conf = self.dir / "dovecot.conf"

    def _argv(self) -> list[str]:
        return ["dovecot", "-F", "-c", str(self.conf)]

    def _ready(self, proc: subprocess.Popen[bytes]) -> None:
        wait_port(self.imap_port, 20, proc)
        wait_port(self.lmtp_port, 20, proc)

    def start(self) -> None:
        for sub in ("run", "state"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        self.conf.write_text(dovecot_config(self.root, self.dir, self.imap_port, self.lmtp_port))
        self._spawn(self.dir / "dovecot.out")


class LocalPostfix(Daemon):
    name = "postfix"

    def __init__(self, root: Path, directory: Path, lmtp_port: int) -> None:
        super().__init__()
        self.root, self.dir = root.resolve(), directory.resolve()
        self.smtp_port, self.lmtp_port = free_port(), lmtp_port
        self.etc = self.dir / "etc"

    def postfix_argv(self) -> list[str]:
        return ["postfix", "-c", str(self.etc)]

    def postmap_argv(self) -> list[str]:
        return ["postmap", "-c", str(self.etc)]

    def _argv(self) -> list[str]:
        return [*self.postfix_argv(), "start-fg"]

    @property
    def master_pid_file(self) -> Path:
        """The pid file of Postfix's master: ``postfix start-fg`` runs it as a child of its
        own session (out of reach of the parent-death signal)."""
        return self.pid_file.with_name(f"{self.pid_file.stem}-master{self.pid_file.suffix}")

    def _ready(self, proc: subprocess.Popen[bytes]) -> None:
        wait_port(self.smtp_port, 30, proc)
        master = self.dir / "queue" / "pid" / "master.pid"
        with contextlib.suppress(OSError, ValueError):
            pid = int(master.read_text().split()[0])
            write_record(self.master_pid_file, f"{self.label} master", pid, "postfix")

    def start(self) -> None:
        # Postfix wants its directories root's and not group/world writable.
        for d in (self.dir, self.etc, self.dir / "queue"):
            d.mkdir(mode=0o755, parents=True, exist_ok=True)
            d.chmod(0o755)
        (self.etc / "main.cf").write_text(
            postfix_main_cf(self.root, self.dir, self.smtp_port, self.lmtp_port)
        )
        (self.etc / "master.cf").write_text(
            f"127.0.0.1:{self.smtp_port} inet n - n - - smtpd\n" + _MASTER_CF
        )
        maps = self.root / MAIL_MAPS
        for name in ("domains", "mailboxes", "virtual"):
            if not (maps / f"{name}.db").exists():
                (maps / name).touch()
                subprocess.run([*self.postmap_argv(), f"hash:{maps / name}"], check=True)
        self._spawn(self.dir / "postfix.out")

    def stop(self) -> None:
        if self.running:
            subprocess.run(
                [*self.postfix_argv(), "stop"], capture_output=True, timeout=30, check=False
            )
        super().stop()
        remove_record(self.master_pid_file)


class LocalMail:
    """Dovecot and Postfix for one local host (a ``HostService``, see ``LocalHost``)."""

    def __init__(self, root: Path, directory: Path) -> None:
        self.root = root.resolve()
        self.dir = directory.resolve()
        self.dovecot = LocalDovecot(self.root, self.dir / "dovecot")
        self.postfix = LocalPostfix(self.root, self.dir / "postfix", self.dovecot.lmtp_port)

    def _prepare_root(self) -> None:
        """What a mail host has before GDCAS's first change: the files Dovecot and Postfix
        read (empty), and the mail user's storage."""
        mail = self.root / "mail"
        mail.mkdir(parents=True, exist_ok=True)
        mail.chmod(0o700)  # the passwd-file holds hashes
        for name in ("passwd", "denied"):
            path = mail / name
            if not path.exists():
                path.touch(mode=0o600)
        (self.root / MAIL_MAPS).mkdir(mode=0o755, exist_ok=True)
        store = self.root / MAILDIRS
        store.mkdir(exist_ok=True)
        uid, gid = _ids(MAIL_USER)
        os.chown(store, uid, gid)
        store.chmod(0o750)

    def start(self) -> None:
        self._prepare_root()
        self.dovecot.start()
        try:
            self.postfix.start()
        except Exception:
            self.dovecot.stop()
            raise

    def stop(self) -> None:
        self.postfix.stop()
        self.dovecot.stop()

    def daemons(self) -> list[Daemon]:
        return [self.dovecot, self.postfix]

    def layout(self) -> dict[str, Any]:
        return {
            "imap_port": self.dovecot.imap_port,
            "smtp_port": self.postfix.smtp_port,
            "postfix": tuple(self.postfix.postfix_argv()),
            "postmap": tuple(self.postfix.postmap_argv()),
            "doveadm": ("doveadm", "-c", str(self.dovecot.conf)),
        }
