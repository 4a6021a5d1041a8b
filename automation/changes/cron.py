"""Cron entries in an account's crontab, each marked with its name so it can be removed."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from automation.changes.base import AccountName, ChangeBase, Workspace
from automation.errors import ChangeConflict

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
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
    if not text.isdigit() or not lo <= int(text) <= hi:
        raise ValueError(f"cron {what}: {text!r} is not in {lo}-{hi}")
    return int(text)


def check_schedule(schedule: str) -> str:
    """crontab(5) time fields: *, n, a-b, */n, a-b/n, lists; names for month and weekday."""
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
            if step and (not step.isdigit() or not 1 <= int(step) <= hi):
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
    text = ws.read(cron_path(account)) or ""
    lines = text.splitlines()
    out: dict[str, str] = {}
    for i, line in enumerate(lines):
        if line.startswith(MARK) and i + 1 < len(lines):
            out[line[len(MARK) :]] = lines[i + 1]
    return out


def _write(ws: Workspace, account: str, entries: dict[str, str]) -> None:
    body = "".join(f"{MARK}{name}\n{line}\n" for name, line in sorted(entries.items()))
    ws.write(cron_path(account), body or None, mode=0o600)


class CronAdd(ChangeBase):
    kind: Literal["cron_add"] = "cron_add"
    account: AccountName
    name: str = Field(description="identifies the entry for cron_remove")
    schedule: str
    command: str = Field(min_length=1, max_length=1000)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(f"cron name {value!r}: 1-32 lower-case letters, digits, '_' or '-'")
        return value

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str) -> str:
        return check_schedule(value)

    @field_validator("command")
    @classmethod
    def _command(cls, value: str) -> str:
        if "\n" in value or "\r" in value or "\x00" in value:
            raise ValueError("cron command: newlines, carriage returns and NUL are not allowed")
        if any(ord(c) < 32 and c != "\t" for c in value):
            raise ValueError("cron command: control characters are not allowed")
        if "%" in value:
            raise ValueError("cron command: '%' means newline to cron; write it as a script")
        if value != value.strip():
            raise ValueError("cron command: no leading or trailing spaces")
        return value

    def target(self) -> str:
        return f"cron:{self.account}"

    def reads(self) -> list[str]:
        return [cron_path(self.account)]

    def apply(self, ws: Workspace) -> None:
        entries = _entries(ws, self.account)
        if self.name in entries:
            raise ChangeConflict(f"cron entry {self.name} already exists for {self.account}")
        entries[self.name] = f"{self.schedule} {self.command}"
        _write(ws, self.account, entries)
        ws.dirs.add("cron")


class CronRemove(ChangeBase):
    kind: Literal["cron_remove"] = "cron_remove"
    account: AccountName
    name: str

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return CronAdd._name(value)

    def target(self) -> str:
        return f"cron:{self.account}"

    def reads(self) -> list[str]:
        return [cron_path(self.account)]

    def apply(self, ws: Workspace) -> None:
        entries = _entries(ws, self.account)
        if self.name not in entries:
            raise ChangeConflict(f"there is no cron entry {self.name} for {self.account}")
        del entries[self.name]
        _write(ws, self.account, entries)
