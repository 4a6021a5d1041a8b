"""How a caller describes a managed host: address, pinned key, client key, file layout."""

from __future__ import annotations

import posixpath
import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from automation.errors import ChangeConflict
from automation.identifiers import abs_path, host_address, ip_address, tool_argv

HOMES = "home"
_SERVICE_NAMES = {"https": "HTTPS", "imap": "IMAP (Dovecot)", "smtp": "SMTP (Postfix)",
                  "ftp": "FTP", "database": "database (MariaDB)"}  # fmt: skip


class ServiceMissing(ChangeConflict):
    """A change needs a service the host's layout says it does not run."""

    def __init__(self, service: str) -> None:
        self.service = service
        super().__init__(
            f"this host runs no {_SERVICE_NAMES.get(service, service)} server "
            f"(its layout has no {service}_port)"
        )
        self.args = (
            service,
        )  # pickles back into the same error  # home/<account>/...: the account's own files


# What an admin types about a host, checked the same way wherever it is taken in.
HostAddress = Annotated[str, AfterValidator(host_address)]
AbsolutePath = Annotated[str, AfterValidator(abs_path)]

_HOST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class HostLayout(BaseModel):
    """Where the managed files live on a host and how its services are checked and reloaded.

    Every path the automation writes is under ``root``; the argv prefixes name the tools on the
    host (production: plain ``rndc`` / ``nginx``; the local test hosts point them at their own
    configs).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    root: str
    dns_address: str = "127.0.0.1"
    dns_port: int = Field(default=53, ge=1, le=65535)
    rndc: tuple[str, ...] = ("rndc",)
    named_checkzone: tuple[str, ...] = ("named-checkzone",)
    nginx: tuple[str, ...] = ("nginx",)
    http_address: str = "127.0.0.1"
    http_port: int = Field(default=80, ge=1, le=65535)
    # The services beyond DNS and the web, where the host runs them (None: it does not, and a
    # change of their kinds is refused before anything is sent). Their clients (IMAP, SMTP,
    # FTP, TLS, MariaDB) reach them at the host's address and these ports to verify a change.
    https_port: int | None = Field(default=None, ge=1, le=65535)
    imap_port: int | None = Field(default=None, ge=1, le=65535)
    smtp_port: int | None = Field(default=None, ge=1, le=65535)
    ftp_port: int | None = Field(default=None, ge=1, le=65535)
    database_port: int | None = Field(default=None, ge=1, le=65535)
    postfix: tuple[str, ...] = ("postfix",)
    postmap: tuple[str, ...] = ("postmap",)
    doveadm: tuple[str, ...] = ("doveadm",)
    pure_pw: tuple[str, ...] = ("pure-pw",)
    crontab: tuple[str, ...] = ("crontab",)
    mariadb: tuple[str, ...] = ("mariadb",)

    @field_validator("root")
    @classmethod
    def _absolute_root(cls, value: str) -> str:
        if value == "/":
            raise ValueError("root must be a directory other than /")
        return abs_path(value, what="root")

    @field_validator("dns_address")
    @classmethod
    def _dns_address(cls, value: str) -> str:
        version = 6 if ":" in value else 4
        return ip_address(value, version)

    @field_validator("http_address")
    @classmethod
    def _http_address(cls, value: str) -> str:
        return ip_address(value, 4)  # written into nginx's `listen ADDRESS:PORT`

    @field_validator(
        "rndc",
        "named_checkzone",
        "nginx",
        "postfix",
        "postmap",
        "doveadm",
        "pure_pw",
        "crontab",
        "mariadb",
    )
    @classmethod
    def _tool(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        return tool_argv(value, what=str(info.field_name))

    def service_port(self, service: str) -> int:
        """The port of one of the optional services; ServiceMissing when the host has none."""
        port = getattr(self, f"{service}_port")
        if port is None:
            raise ServiceMissing(service)
        return int(port)

    def owner_dir(self, relative: str) -> str | None:
        """The account home (``home/<account>``) a path lies below, or None if root manages it.

        Everything below a home belongs to its account: the automation reads and writes there
        only as the home's owner, so a link the customer planted leads only where they may go.
        """
        parts = relative.split("/")
        return "/".join(parts[:2]) if len(parts) > 2 and parts[0] == HOMES else None

    def path(self, relative: str) -> str:
        """The absolute path of a managed file (relative paths come from validated values)."""
        joined = posixpath.normpath(posixpath.join(self.root, relative))
        if not joined.startswith(self.root + "/"):
            raise ValueError(f"path {relative!r} escapes the host root")
        return joined


class HostSpec(BaseModel):
    """A managed host: SSH address, user, pinned host key and client key, and its file layout."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host_id: str
    address: HostAddress
    port: int = Field(default=22, ge=1, le=65535)
    user: str = "root"
    host_key: str = Field(description="expected host key as an OpenSSH public-key line")
    private_key_path: AbsolutePath
    layout: HostLayout

    @field_validator("host_id")
    @classmethod
    def _host_id(cls, value: str) -> str:
        if not _HOST_ID.fullmatch(value):
            raise ValueError("host_id must be 1-64 characters of letters, digits, '.', '_', '-'")
        return value
