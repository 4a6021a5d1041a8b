"""Account suspension: the account's sites answer a suspension page, its mail and FTP log-ins
are refused, and the account is listed in ``accounts/suspended``.

The list is the one record every service's step reads: Dovecot's deny list
(``mailbox.deny_step``) and the FTP server's users (``ftp.db_step``) leave the account out while
it is listed. For the web, ``nginx/suspended/<account>.conf`` is included by every vhost of the
account (automation.changes.vhost) while it exists: it answers every request, over HTTP and
HTTPS alike, with ``SUSPENDED_STATUS`` and the short page ``SUSPENDED_PAGE``.

Why 403 and not 503: a suspension is the host refusing to serve the site by policy until
someone acts (a bill paid, abuse dealt with), not an outage with a known end; a 503 would
need an honest ``Retry-After``, which nobody can give, and it tells monitors and crawlers that
the server is failing. 403 says "refused", and the page says why.

The verification asks the sites themselves, with an HTTP client, as a visitor would: every
site whose vhost file names the account (its first line) must answer the page (suspend) or no
longer answer it (unsuspend). The account's domains are read from those files on the host
(``sites_of``, over the executor's shell) rather than passed in: the vhost files are what
nginx serves, so none is missed, and the change keeps the one parameter a caller knows.
"""

from __future__ import annotations

import shlex
from typing import ClassVar, Literal

import httpx

from automation import identifiers
from automation.changes.base import (
    SUSPENDED_LIST,
    AccountName,
    ChangeBase,
    Workspace,
    read_lines,
    write_lines,
)
from automation.changes.ftp import db_step
from automation.changes.mailbox import deny_step
from automation.changes.vhost import suspended_path
from automation.clients import Endpoint, eventually, http
from automation.errors import ChangeConflict
from automation.host import HostLayout

SUSPENDED_STATUS = 403
# Static text (no nginx variables, no single quote: it is one single-quoted nginx string).
SUSPENDED_PAGE = (
    '<!doctype html>\n<html lang="en">\n<meta charset="utf-8">\n'
    '<meta name="robots" content="noindex">\n<title>Site suspended</title>\n'
    "<h1>This site is suspended</h1>\n"
    "<p>This website is not available at the moment. If it is yours, please contact support.\n"
)
SITES_DIR = "nginx/sites"


def suspension_config(account: str) -> str:
    """The lines a suspended account's vhosts include in their server block: every request,
    whatever its path, is answered with the page (as HTML, not by the path's file type)."""
    return (
        f"# managed by GDCAS: account {account} is suspended\n"
        "types { }\n"
        'default_type "text/html; charset=utf-8";\n'
        'add_header Cache-Control "no-store" always;\n'
        f"return {SUSPENDED_STATUS} '{SUSPENDED_PAGE}';\n"
    )


def _services(layout: HostLayout) -> set[tuple[str, ...]]:
    """nginx, and the mail and FTP servers where the host runs them: each reads the list."""
    steps: set[tuple[str, ...]] = {("nginx",)}
    if layout.imap_port is not None:
        steps.add(deny_step())
    if layout.ftp_port is not None:
        steps.add(db_step())
    return steps


def sites_of(at: Endpoint, account: str) -> list[str]:
    """The domains of the account's vhosts on the host: the files in ``nginx/sites`` whose
    first line (automation.changes.vhost) names the account. Read-only."""
    named = shlex.quote(f" of account {account}")
    status, out = at.run(
        f"for f in {shlex.quote(at.layout.path(SITES_DIR))}/*.conf; do\n"
        '  [ -f "$f" ] || continue\n'
        f'  case $(head -n1 "$f") in *{named}) ;; *) continue;; esac\n'
        '  f=${f##*/}; echo "GDCAS-SITE ${f%.conf}"\n'
        "done\n"
    )
    if status != 0:
        raise RuntimeError(f"listing the sites of {account} failed: {out[-300:]}")
    domains = []
    for line in out.split("\n"):
        if line.startswith("GDCAS-SITE "):
            try:
                domains.append(identifiers.hostname(line.removeprefix("GDCAS-SITE ")))
            except ValueError:
                continue  # not a file GDCAS wrote
    return sorted(domains)


def _answers(at: Endpoint, domains: list[str]) -> dict[str, http.Answer | str]:
    """What each site answers now (or why it did not answer)."""
    out: dict[str, http.Answer | str] = {}
    for domain in domains:
        try:
            out[domain] = http.get(at, domain)
        except httpx.HTTPError as exc:
            out[domain] = f"no answer ({exc})"
    return out


def is_suspension_page(answer: http.Answer | str) -> bool:
    return (
        isinstance(answer, http.Answer)
        and answer.status == SUSPENDED_STATUS
        and answer.body == SUSPENDED_PAGE
        and answer.content_type.startswith("text/html")
    )


class _AccountStanding(ChangeBase):
    account: AccountName

    def target(self) -> str:
        return f"account:{self.account}"

    def observes(self) -> tuple[str, ...]:
        return ("standing", self.account)

    def reads(self) -> list[str]:
        return [SUSPENDED_LIST, suspended_path(self.account)]

    def services(self, layout: HostLayout) -> set[tuple[str, ...]]:
        return _services(layout)

    def _live(self, ws: Workspace) -> None:
        ws.checks.add(("nginx",))
        ws.reloads |= self.services(ws.layout)

    def _sites_problem(self, at: Endpoint, *, suspended: bool) -> str | None:
        """None once every site of the account answers the page (``suspended``) or something
        else (asked again for a moment: nginx reloads asynchronously); else the first that
        does not."""
        domains = sites_of(at, self.account)

        def wrong(answers: dict[str, http.Answer | str]) -> list[str]:
            return [d for d, a in answers.items() if is_suspension_page(a) != suspended]

        answers = eventually(lambda: _answers(at, domains), lambda a: not wrong(a))
        for domain in wrong(answers):
            got = answers[domain]
            said = got if isinstance(got, str) else f"HTTP {got.status}"
            if suspended:
                return f"http://{domain}/ answers {said}, not the suspension page"
            return f"http://{domain}/ still answers the suspension page"
        return None


class AccountSuspend(_AccountStanding):
    """Suspend an account: its sites answer the suspension page, mail and FTP refuse it."""

    kind: Literal["account_suspend"] = "account_suspend"
    verified_by: ClassVar[str] = "every site of the account answers the suspension page"

    def apply(self, ws: Workspace) -> None:
        listed = read_lines(ws, SUSPENDED_LIST)
        if self.account in listed:
            raise ChangeConflict(f"account {self.account} is already suspended")
        write_lines(ws, SUSPENDED_LIST, [*listed, self.account])
        ws.write(suspended_path(self.account), suspension_config(self.account))
        ws.dirs.add("nginx/suspended")
        self._live(ws)

    def check_by_client(self, at: Endpoint) -> str | None:
        return self._sites_problem(at, suspended=True)


class AccountUnsuspend(_AccountStanding):
    """Lift a suspension: the sites, mail and FTP log-ins are as they were."""

    kind: Literal["account_unsuspend"] = "account_unsuspend"
    verified_by: ClassVar[str] = "no site of the account answers the suspension page any more"

    def apply(self, ws: Workspace) -> None:
        listed = read_lines(ws, SUSPENDED_LIST)
        if self.account not in listed:
            raise ChangeConflict(f"account {self.account} is not suspended")
        write_lines(ws, SUSPENDED_LIST, [a for a in listed if a != self.account])
        ws.write(suspended_path(self.account), None)
        self._live(ws)

    def check_by_client(self, at: Endpoint) -> str | None:
        return self._sites_problem(at, suspended=False)
