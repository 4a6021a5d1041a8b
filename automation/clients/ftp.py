"""The FTP server as an FTP client sees it: does a log-in succeed, and what does the home list.

Plain FTP (``ftplib``) in passive mode, as the customers' programs use it; the server chroots
each user to their home, so the listing of ``/`` is the listing of the home.

A refused log-in is answered late: pure-ftpd waits 3 to 6 seconds before its 530 (against
password guessing), so the log-in is given ``LOGIN_WAIT`` instead of the clients' ``TIMEOUT``
(a refusal must not read as a server that does not answer).
"""

from __future__ import annotations

import ftplib

from automation.clients import TIMEOUT, Endpoint

LOGIN_WAIT = 15.0  # seconds for the answer to a log-in (a refusal comes after 3-6 s)


class LoginRefused(Exception):
    """The server answered the log-in with a refusal (530): the server's words."""


def _session(at: Endpoint, user: str, password: str) -> ftplib.FTP:
    """A logged-in session (LoginRefused when the server refuses the user or password)."""
    ftp = ftplib.FTP(timeout=LOGIN_WAIT)  # noqa: S321 - the server speaks FTP; so must we
    try:
        ftp.connect(at.address, at.port("ftp"))
        ftp.login(user, password)
    except ftplib.error_perm as exc:
        ftp.close()
        raise LoginRefused(str(exc)) from None
    except BaseException:
        ftp.close()
        raise
    if ftp.sock is not None:
        ftp.sock.settimeout(TIMEOUT)
    ftp.timeout = TIMEOUT  # the data connections' too
    return ftp


def listing(at: Endpoint, user: str, password: str) -> list[str]:
    """The ``LIST`` lines of the user's home (LoginRefused, OSError or ftplib errors if not)."""
    ftp = _session(at, user, password)
    try:
        lines: list[str] = []
        ftp.retrlines("LIST", lines.append)
        ftp.quit()
    finally:
        ftp.close()
    return lines


def names(at: Endpoint, user: str, password: str) -> list[str]:
    """The names ``NLST`` gives in the user's home, without ``.`` and ``..``."""
    ftp = _session(at, user, password)
    try:
        got = [n for n in ftp.nlst() if n not in (".", "..")]
        ftp.quit()
    finally:
        ftp.close()
    return got


def login_error(at: Endpoint, user: str, password: str) -> str | None:
    """None when ``user`` logs in with ``password`` and the home lists; otherwise why not."""
    where = f"FTP server at {at.address}:{at.port('ftp')}"
    try:
        listing(at, user, password)
    except LoginRefused as exc:
        return f"the {where} refused the log-in of {user}: {exc}"
    except ftplib.Error as exc:
        return f"the {where} let {user} in but did not list the home: {exc}"
    except OSError as exc:
        return f"the {where} did not answer: {exc}"
    return None


def refusal_error(at: Endpoint, user: str, password: str) -> str | None:
    """None when the server refuses ``user``'s log-in with ``password`` (a 530 answer); the
    problem otherwise (it let the user in, or did not answer at all)."""
    where = f"FTP server at {at.address}:{at.port('ftp')}"
    try:
        ftp = _session(at, user, password)
    except LoginRefused:
        return None
    except (ftplib.Error, OSError) as exc:
        return f"the {where} did not answer the log-in of {user}: {exc}"
    try:
        ftp.quit()
    except (ftplib.Error, OSError):
        pass
    finally:
        ftp.close()
    return f"the {where} let {user} log in"
