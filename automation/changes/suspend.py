"""Account suspension: every vhost of the account answers 403, and the account is listed."""

from __future__ import annotations

from typing import Literal

from automation.changes.base import (
    AccountName,
    ChangeBase,
    Workspace,
    read_lines,
    write_lines,
)
from automation.changes.vhost import suspended_path
from automation.errors import ChangeConflict

SUSPENDED_LIST = "accounts/suspended"


class AccountSuspend(ChangeBase):
    kind: Literal["account_suspend"] = "account_suspend"
    account: AccountName

    def target(self) -> str:
        return f"account:{self.account}"

    def reads(self) -> list[str]:
        return [SUSPENDED_LIST, suspended_path(self.account)]

    def apply(self, ws: Workspace) -> None:
        listed = read_lines(ws, SUSPENDED_LIST)
        if self.account in listed:
            raise ChangeConflict(f"account {self.account} is already suspended")
        write_lines(ws, SUSPENDED_LIST, [*listed, self.account])
        ws.write(suspended_path(self.account), "# account suspended by GDCAS\nreturn 403;\n")
        ws.dirs.add("nginx/suspended")
        ws.checks.add(("nginx",))
        ws.reloads.add(("nginx",))


class AccountUnsuspend(ChangeBase):
    kind: Literal["account_unsuspend"] = "account_unsuspend"
    account: AccountName

    def target(self) -> str:
        return f"account:{self.account}"

    def reads(self) -> list[str]:
        return [SUSPENDED_LIST, suspended_path(self.account)]

    def apply(self, ws: Workspace) -> None:
        listed = read_lines(ws, SUSPENDED_LIST)
        if self.account not in listed:
            raise ChangeConflict(f"account {self.account} is not suspended")
        write_lines(ws, SUSPENDED_LIST, [a for a in listed if a != self.account])
        ws.write(suspended_path(self.account), None)
        ws.checks.add(("nginx",))
        ws.reloads.add(("nginx",))
