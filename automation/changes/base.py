"""What every change kind shares: strict validated values, the workspace a change edits, hashing.

A change is data first. ``apply(ws)`` is a pure edit of the host's managed files as the batch sees
them (no I/O); the executor turns the resulting file edits, checks, reloads and probes into one
script for the host (see ``automation.plan``). ``verify`` judges the read-only probe results.
"""

from __future__ import annotations

import copy
import datetime as dt
import secrets
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Self

from argon2 import PasswordHasher
from pydantic import AfterValidator, BaseModel, ConfigDict, PrivateAttr, SecretStr

from automation import identifiers
from automation.clients import Endpoint
from automation.errors import ChangeConflict
from automation.host import HostLayout
from automation.zonefile import Zone, parse_zone, remember

# --- validated value types -------------------------------------------------------------------

SECRET_MASK = "**********"  # noqa: S105 - a SecretStr dumped as JSON, as the SCDB keeps it
_HASH_SECRET = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)


def _password(value: SecretStr) -> SecretStr:
    raw = value.get_secret_value()
    if not 10 <= len(raw) <= 128:
        raise ValueError("password: must be 10 to 128 characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in raw):
        raise ValueError("password: must not contain control characters")
    return value


# Every identifier is checked (and made canonical) in automation.identifiers; see why there.
DomainName = Annotated[str, AfterValidator(identifiers.hostname)]
AccountName = Annotated[str, AfterValidator(identifiers.account)]
LocalPart = Annotated[str, AfterValidator(identifiers.local_part)]
EmailAddress = Annotated[str, AfterValidator(identifiers.email)]
RelPath = Annotated[str, AfterValidator(identifiers.rel_path)]
DbName = Annotated[str, AfterValidator(identifiers.db_name)]
Password = Annotated[SecretStr, AfterValidator(_password)]


def hash_secret(secret: str) -> str:
    """Argon2id hash, as stored on hosts (never the password itself)."""
    return _HASH_SECRET.hash(secret)


# --- the workspace a change edits -------------------------------------------------------------


# The accounts suspended on the host, one per line: every service's reload step reads it (nginx
# serves the suspension page, Dovecot and the FTP server refuse the account's log-ins).
SUSPENDED_LIST = "accounts/suspended"
NGINX_PROBE_SITE = "nginx/sites/000-gdcas-probe.conf"
NGINX_PROBE_HOST = "gdcas-probe.invalid"


def zone_path(zone: str) -> str:
    return f"zones/{zone}.zone"


@dataclass
class Workspace:
    """A host's managed files as one batch sees them; changes edit it, the executor ships it.

    ``originals`` are what the host had (None = absent); paths are relative to the host root.
    """

    originals: dict[str, str | None]
    layout: HostLayout
    today: int = field(default_factory=lambda: int(dt.date.today().strftime("%Y%m%d")))
    files: dict[str, str | None] = field(default_factory=dict)
    modes: dict[str, int] = field(default_factory=dict)
    dirs: set[str] = field(default_factory=set)
    checks: set[tuple[str, ...]] = field(default_factory=set)
    reloads: set[tuple[str, ...]] = field(default_factory=set)
    http_probes: set[str] = field(default_factory=set)
    serial_floor: dict[str, int] = field(default_factory=dict)
    nginx_generation: str | None = None
    _zones: dict[str, Zone] = field(default_factory=dict)

    def read(self, path: str) -> str | None:
        if path in self.files:
            return self.files[path]
        if path not in self.originals:
            raise KeyError(f"{path} was not read from the host (missing from reads())")
        return self.originals[path]

    def write(self, path: str, content: str | None, *, mode: int = 0o644) -> None:
        if path.endswith(".zone") and path in self._zones:
            raise RuntimeError("write zones through zone()")
        self.read(path)  # must be a declared read
        self.files[path] = content
        self.modes[path] = mode

    def zone(self, name: str) -> Zone:
        """The parsed zone ``name`` (must exist on the host); edits are written at finish()."""
        if name not in self._zones:
            text = self.read(zone_path(name))
            if text is None:
                raise ChangeConflict(f"zone {name} is not served by this host")
            self._zones[name] = parse_zone(text, name)
            self.checks.add(("zone", name))
            self.reloads.add(("zone", name))
        return self._zones[name]

    def snapshot(self) -> Workspace:
        """A copy to fall back to if the next change does not apply (cheap: zones by record)."""
        snap = copy.copy(self)
        snap.files, snap.modes = dict(self.files), dict(self.modes)
        snap.dirs, snap.checks = set(self.dirs), set(self.checks)
        snap.reloads, snap.http_probes = set(self.reloads), set(self.http_probes)
        snap._zones = {
            name: Zone(z.origin, z.default_ttl, [copy.copy(r) for r in z.records])
            for name, z in self._zones.items()
        }
        return snap

    def restore(self, snap: Workspace) -> None:
        self.__dict__.update(snap.snapshot().__dict__)

    def zone_names(self) -> list[str]:
        return sorted(self._zones)

    def finish(self) -> dict[str, str | None]:
        """The changed files (zones re-rendered with their serial bumped once per batch)."""
        for name, zone in self._zones.items():
            zone.bump_serial(max(self.today, 0), floor=self.serial_floor.get(name, 0))
            self.files[zone_path(name)] = text = zone.render()
            remember(text, name, zone)  # the next batch reads this text back: no new parse
            self.modes[zone_path(name)] = 0o644
        if ("nginx",) in self.reloads:
            # A marker site whose answer proves the new configuration is live (see plan.py).
            self.nginx_generation = secrets.token_hex(8)
            lay = self.layout
            self.files[NGINX_PROBE_SITE] = (
                "# GDCAS reload marker\n"
                f"server {{ listen {lay.http_address}:{lay.http_port}; "
                f"server_name {NGINX_PROBE_HOST}; "
                f'location / {{ return 200 "{self.nginx_generation}"; }} }}\n'
            )
        return {p: c for p, c in self.files.items() if c != self.originals.get(p)}


def read_lines(ws: Workspace, path: str) -> list[str]:
    """The non-empty lines of a host file, split at LF only, as the tools reading it do.

    (``str.splitlines`` would also split at U+2028, U+0085, VT, FF ..., so a value holding one
    would read back as two lines.)
    """
    text = ws.read(path)
    return [] if not text else [line for line in text.split("\n") if line]


def write_lines(ws: Workspace, path: str, lines: list[str], *, mode: int = 0o644) -> None:
    ws.write(path, "".join(f"{line}\n" for line in sorted(lines)) if lines else "", mode=mode)


def keyed_lines(lines: list[str], sep: str = ":") -> dict[str, str]:
    return {line.split(sep, 1)[0]: line for line in lines}


# --- probes -----------------------------------------------------------------------------------


@dataclass
class ProbeResults:
    """What the read-only probes of one batch saw on the host, by probe key."""

    file_hashes: dict[str, str] = field(default_factory=dict)  # path -> sha256 | "absent"
    dirs: dict[str, bool] = field(default_factory=dict)
    dns: dict[str, str] = field(default_factory=dict)  # zone -> AXFR text
    http: dict[str, str] = field(default_factory=dict)  # domain -> "present" | "absent"
    parsed: dict[str, Any] = field(default_factory=dict)  # cache for verifiers


# --- the base model ---------------------------------------------------------------------------


class ChangeBase(BaseModel):
    """A change kind: strict parameters; target, reads, apply (pure edit), verify."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    kind: str
    secret_fields: ClassVar[tuple[str, ...]] = ()
    # What `verify` checked once it is applied, in words for the customer (the change catalog).
    verified_by: ClassVar[str] = "the files on the host were read back after the change"
    _hashes: dict[str, str] = PrivateAttr(default_factory=dict)

    def target(self) -> str:
        """The service/zone/object this change touches (ordering and coalescing key)."""
        raise NotImplementedError

    def reads(self) -> list[str]:
        """Host files (relative to the root) the change needs to see before it edits them."""
        raise NotImplementedError

    def apply(self, ws: Workspace) -> None:
        """Edit the workspace; raise ChangeConflict if the host state does not allow it."""
        raise NotImplementedError

    def verify(self, ws: Workspace, probe: ProbeResults) -> str | None:
        """None when the probes show the change took; otherwise the reason."""
        return None

    def services(self, layout: HostLayout) -> set[tuple[str, ...]]:
        """The reload steps (``plan.reload_command``) that make this change live on the host.

        ``apply`` adds them to the workspace; they are run once more when the host's journal
        says the change was applied by an earlier attempt that may have ended before them (a
        reload is idempotent). A kind whose service the layout lacks raises ServiceMissing.
        """
        return set()

    def lookups(self) -> dict[str, set[tuple[str, str]]]:
        """The names and types ``verify`` asks of the host's name server, by zone."""
        return {}

    def observes(self) -> tuple[str, ...] | None:
        """What ``check_by_client`` looks at (a mailbox, an FTP user ...). In a batch only the
        last change to each observed thing is checked: an earlier one's state (a password a
        later change replaced) is gone by then. None: always checked."""
        return None

    def check_by_client(self, at: Endpoint) -> str | None:
        """After the host applied the change: ask the real service as its clients do (an IMAP
        log-in, an FTP listing, a TLS handshake); None when it answers as the change says."""
        return None

    def describe(self) -> str:
        """One line for humans (secrets masked)."""
        return f"{self.kind} {self.target()}"

    def secret_hash(self, name: str) -> str:
        """Hash of a secret field, computed once per change object (stable across retries)."""
        if name not in self._hashes:
            value = getattr(self, name)
            assert isinstance(value, SecretStr)
            self._hashes[name] = hash_secret(value.get_secret_value())
        return self._hashes[name]

    def secret_hashes(self) -> list[str]:
        return list(self._hashes.values())

    def secret_known(self, name: str) -> bool:
        """Whether the secret itself is at hand, not only its hash: a change rebuilt from the
        SCDB carries the mask (the desk keeps no password), unless the request handed the
        secret on in memory (``with_secrets``)."""
        value = getattr(self, name)
        return isinstance(value, SecretStr) and value.get_secret_value() != SECRET_MASK

    def with_secrets(self, values: dict[str, str]) -> Self:
        """This change with its secret fields' values (given in memory, never stored), its
        hashes kept: what the host receives does not change, the client check can log in."""
        update = {n: SecretStr(v) for n, v in values.items() if n in self.secret_fields}
        if not update:
            return self
        copy = self.model_copy(update=update)
        copy._hashes = dict(self._hashes)
        return copy
