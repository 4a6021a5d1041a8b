"""Dovecot as a mail client sees it: does a log-in succeed, and what quota does IMAP report."""

from __future__ import annotations

import imaplib
import shlex
from dataclasses import dataclass

from automation import identifiers
from automation.clients import TIMEOUT, Endpoint


@dataclass(frozen=True)
class Quota:
    """IMAP QUOTA (RFC 9208) storage of the INBOX's quota root, in KiB."""

    used_kib: int
    limit_kib: int


def login_error(at: Endpoint, user: str, password: str) -> str | None:
    """None when ``user`` logs in with ``password`` over IMAP; otherwise the server's answer."""
    try:
        with imaplib.IMAP4(at.address, at.port("imap"), timeout=TIMEOUT) as imap:
            imap.login(user, password)
            imap.logout()
    except imaplib.IMAP4.error as exc:
        return _text(exc)
    except OSError as exc:
        return f"IMAP server at {at.address}:{at.port('imap')} did not answer: {exc}"
    return None


def quota(at: Endpoint, user: str, password: str) -> Quota | None:
    """The storage quota IMAP ``GETQUOTAROOT INBOX`` reports for the user (None: no limit)."""
    with imaplib.IMAP4(at.address, at.port("imap"), timeout=TIMEOUT) as imap:
        imap.login(user, password)
        _, data = imap.getquotaroot("INBOX")
        imap.logout()
    # data: [[b'"INBOX" "User quota"'], [b'"User quota" (STORAGE 0 1048576)']]
    for part in data[1] if len(data) > 1 else []:
        words = part.decode("ascii", "replace").replace("(", " ").replace(")", " ").split()
        if "STORAGE" in words:
            i = words.index("STORAGE")
            return Quota(int(words[i + 1]), int(words[i + 2]))
    return None


def _text(exc: BaseException) -> str:
    arg = exc.args[0] if exc.args else exc
    return arg.decode("utf-8", "replace") if isinstance(arg, bytes) else str(arg)


def user_exists(at: Endpoint, user: str) -> bool:
    """Whether Dovecot's userdb knows ``user`` (``doveadm user``: exit 0 found, 67 unknown)."""
    _status, out = at.run(
        f"{shlex.join([*at.layout.doveadm, 'user', user])} >/dev/null 2>&1; echo $?"
    )
    return out.strip().splitlines()[-1:] == ["0"]


def admin_quota_kib(at: Endpoint, user: str) -> int | None:
    """The storage limit Dovecot applies to ``user``, in KiB (``doveadm quota get``)."""
    argv = [*at.layout.doveadm, "-f", "tab", "quota", "get", "-u", user]
    _status, out = at.run(shlex.join(argv) + " 2>&1")
    for line in out.splitlines():
        cells = line.split("\t")
        if len(cells) >= 4 and cells[1] == "STORAGE":
            return identifiers.ascii_int(cells[3])
    return None
