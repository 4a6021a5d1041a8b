"""Cron entries in an account's crontab, each marked with its name so it can be removed.

The host crontab contract. ``cron/<account>`` under the managed root is GDCAS's file: it is
written only by GDCAS (whole, root-owned, mode 0600) and holds nothing but entries, each exactly
two lines, sorted by name::

    # gdcas:<name>
    <schedule> <command>

where ``<name>`` is a cron name (``[a-z0-9][a-z0-9_-]{0,31}``), ``<schedule>`` five crontab(5)
time fields or an ``@`` keyword, and ``<command>`` printable ASCII without '%'. Every line ends
with LF, and LF is the only line break: no value may hold CR, NUL, any other control character
or any non-ASCII character (U+2028, U+2029 and U+0085 end a line for ``str.splitlines``, and a
line break inside a command would be a second crontab line, run as the account). So one entry
is always one crontab line, and GDCAS reads the file back splitting at LF only. A file that is
not in this form (edited by hand) is refused, naming the line, rather than guessed at or
silently rewritten without the lines GDCAS did not write.

The file is the source; what cron runs is the account's real crontab. The reload step
``("crontab", <account>, cron/<account>)`` (``automation.plan.reload_command``) installs the
file whole with ``crontab -u <account>`` (the account name is the host's Unix user: a missing
user, or one with uid 0, fails the step, and root's crontab is never touched), or removes the
account's crontab when no entry is left. Then ``crontab -l -u <account>`` is read on the host
(``automation.clients.crontab``) and the change is applied only when it shows exactly the
file's entries (and no crontab when there is no file).
A crontab the account edited by hand (``crontab -e``) is replaced by GDCAS's entries at the
next cron change of the account.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, Field, field_validator

from automation import identifiers
from automation.changes.base import AccountName, ChangeBase, Workspace
from automation.clients import Endpoint
from automation.clients import crontab as crontab_client
from automation.errors import ChangeConflict
from automation.host import HostLayout

CronName = Annotated[str, AfterValidator(identifiers.cron_name)]
_MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
_DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
_FIELDS: list[tuple[str, int, int, list[str]]] = [
    ("minute", 0, 59, []),
    ("hour", 0, 23, []),
    ("day of month", 1, 31, []),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _DAYS),
]
_SPECIAL = {
    "@reboot",
    "@yearly",
    "@annually",
    "@monthly",
    "@weekly",
    "@daily",
    "@midnight",
    "@hourly",
}
MARK = "# gdcas:"


def _value(text: str, lo: int, hi: int, names: list[str], what: str) -> int:
    if text.lower() in names:
        return names.index(text.lower()) + (lo if names is _MONTHS else 0)
    number = identifiers.ascii_int(text)  # not str.isdigit: U+0665 and U+00B2 are digits to it
    if number is None or not lo <= number <= hi:
        raise ValueError(f"cron {what}: {text!r} is not in {lo}-{hi}")
    return number


def check_schedule(schedule: str) -> str:
    """crontab(5) time fields: *, n, a-b, */n, a-b/n, lists; names for month and weekday."""
    if not identifiers.is_printable_ascii(schedule):
        raise ValueError("cron schedule: only printable ASCII (digits 0-9, names, * , - /)")
    if schedule in _SPECIAL:
        return schedule
    fields = schedule.split()
    if len(fields) != 5 or " ".join(fields) != schedule:
        raise ValueError(
            "cron schedule: needs 5 fields separated by single spaces "
            "(minute hour day-of-month month day-of-week) or @hourly/@daily/..."
        )
    for text, (what, lo, hi, names) in zip(fields, _FIELDS, strict=True):
        for item in text.split(","):
            rng, _, step = item.partition("/")
            every = identifiers.ascii_int(step)
            if step and (every is None or not 1 <= every <= hi):
                raise ValueError(f"cron {what}: bad step {step!r}")
            if rng == "*":
                continue
            a, dash, b = rng.partition("-")
            first = _value(a, lo, hi, names, what)
            if dash and _value(b, lo, hi, names, what) < first:
                raise ValueError(f"cron {what}: range {rng!r} runs backwards")
            if step and not dash:
                raise ValueError(f"cron {what}: a step needs '*' or a range, got {item!r}")
    return schedule


def cron_path(account: str) -> str:
    return f"cron/{account}"


def _entries(ws: Workspace, account: str) -> dict[str, str]:
    """The entries of the account's crontab by name, read by the contract above."""
    return parse_entries(cron_path(account), ws.read(cron_path(account)) or "")


def served_entries(account: str, text: str | None) -> list[dict[str, str]]:
    """The account's crontab as the host has it: each entry's name, schedule and command."""
    out = []
    for name, line in sorted(parse_entries(cron_path(account), text or "").items()):
        fields = line.split(" ", 1 if line.startswith("@") else 5)
        out.append({"name": name, "schedule": " ".join(fields[:-1]), "command": fields[-1]})
    return out


def parse_entries(path: str, text: str) -> dict[str, str]:
    """The entries of a crontab file GDCAS wrote, by name (ChangeConflict if it was edited
    against the contract above)."""
    lines = text.split("\n")
    if lines[-1] != "":
        raise ChangeConflict(f"{path} on the host does not end with a line break; fix it by hand")
    lines.pop()
    if len(lines) % 2:
        raise ChangeConflict(f"{path} on the host: line {len(lines)} is not part of an entry")
    out: dict[str, str] = {}
    for i in range(0, len(lines), 2):
        mark, line = lines[i], lines[i + 1]
        name = mark.removeprefix(MARK)
        problem = _entry_problem(mark, name, line)
        if problem or name in out:
            raise ChangeConflict(
                f"{path} on the host, line {i + 1}: {problem or 'a second entry ' + name!r} "
                "(GDCAS writes this file whole; fix it by hand)"
            )
        out[name] = line
    return out


def _entry_problem(mark: str, name: str, line: str) -> str | None:
    """Why two lines of a host crontab are not one GDCAS entry, or None."""
    if not mark.startswith(MARK):
        return f"expected '{MARK}<name>', found {mark[:40]!r}"
    try:
        identifiers.cron_name(name)
    except ValueError as exc:
        return str(exc)
    if not identifiers.is_printable_ascii(line) or line.startswith(MARK):
        return f"the entry {name!r} is not one printable ASCII crontab line"
    return None


def _write(ws: Workspace, account: str, entries: dict[str, str]) -> None:
    body = "".join(f"{MARK}{name}\n{line}\n" for name, line in sorted(entries.items()))
    ws.write(cron_path(account), body or None, mode=0o600)
    ws.reloads.add(crontab_step(account))


def crontab_step(account: str) -> tuple[str, ...]:
    """The reload step installing ``cron/<account>`` as the account's crontab."""
    return ("crontab", account, cron_path(account))


def _not_root(account: str) -> str:
    if account == "root":
        raise ValueError("cron entries go into the account's own crontab, never root's")
    return account


CronAccount = Annotated[AccountName, AfterValidator(_not_root)]


class _CronChange(ChangeBase):
    """What both cron kinds share: the account's crontab is installed and read back."""

    verified_by: ClassVar[str] = "the account's crontab lists exactly these entries"
    account: CronAccount

    def target(self) -> str:
        return f"cron:{self.account}"

    def reads(self) -> list[str]:
        return [cron_path(self.account)]

    def services(self, layout: HostLayout) -> set[tuple[str, ...]]:
        return {crontab_step(self.account)}

    def observes(self) -> tuple[str, ...]:
        return ("crontab", self.account)  # the check compares the account's whole crontab

    def check_by_client(self, at: Endpoint) -> str | None:
        tab = crontab_client.read(at, self.account, cron_path(self.account))
        if tab.installed == tab.source:
            return None
        shown = repr(" | ".join(tab.installed)[:300]) if tab.installed is not None else "none"
        want = f"the entries GDCAS wrote ({len(tab.source) // 2})" if tab.source else "none"
        return f"crontab -l -u {self.account} shows {shown}, not {want}"


class CronAdd(_CronChange):
    kind: Literal["cron_add"] = "cron_add"
    name: CronName = Field(description="identifies the entry for cron_remove")
    schedule: str
    command: str = Field(min_length=1, max_length=1000)

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str) -> str:
        return check_schedule(value)

    @field_validator("command")
    @classmethod
    def _command(cls, value: str) -> str:
        if any(c in value for c in "\n\r\x00\x85\u2028\u2029"):
            raise ValueError(
                "cron command: newlines (LF, CR, U+0085, U+2028, U+2029) and NUL are not allowed"
            )
        if not identifiers.is_printable_ascii(value):
            raise ValueError(
                "cron command: only printable ASCII is allowed (no tabs or control characters)"
            )
        if "%" in value:
            raise ValueError("cron command: '%' means newline to cron; write it as a script")
        if value != value.strip():
            raise ValueError("cron command: no leading or trailing spaces")
        return value

    def apply(self, ws: Workspace) -> None:
        entries = _entries(ws, self.account)
        if self.name in entries:
            raise ChangeConflict(f"cron entry {self.name} already exists for {self.account}")
        entries[self.name] = f"{self.schedule} {self.command}"
        _write(ws, self.account, entries)
        ws.dirs.add("cron")


class CronRemove(_CronChange):
    kind: Literal["cron_remove"] = "cron_remove"
    name: CronName

    def apply(self, ws: Workspace) -> None:
        entries = _entries(ws, self.account)
        if self.name not in entries:
            raise ChangeConflict(f"there is no cron entry {self.name} for {self.account}")
        del entries[self.name]
        _write(ws, self.account, entries)
