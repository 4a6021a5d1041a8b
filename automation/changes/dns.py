"""DNS record changes in a BIND zone: add, update, delete (A, AAAA, CNAME, MX, TXT, SRV, CAA)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from automation.changes.base import (
    ChangeBase,
    DomainName,
    ProbeResults,
    Workspace,
    _hostname,
    _ip,
    zone_path,
)
from automation.errors import ChangeConflict, ZoneError
from automation.zonefile import CNAME_COMPANIONS, Record, Zone, canonical_rdata, parse_zone

RecordType = Literal["A", "AAAA", "CNAME", "MX", "TXT", "SRV", "CAA"]
MIN_TTL, MAX_TTL = 60, 604800
TXT_MAX = 4000
_OWNER_LABEL = re.compile(r"^_?(?!-)[a-z0-9-]{1,63}(?<!-)$")
_CAA_VALUE = re.compile(r"^[\x21-\x7e]*$")


def _owner(name: str, rtype: str) -> str:
    """Relative owner name: '@' for the apex, optionally a leading '*' wildcard label."""
    if name == "@":
        return name
    if name != name.strip() or not name or name.endswith("."):
        raise ValueError(f"record name {name!r}: give the name relative to the zone, '@' for apex")
    labels = name.lower().split(".")
    for i, label in enumerate(labels):
        if label == "*" and i == 0:
            continue
        if not _OWNER_LABEL.match(label):
            raise ValueError(
                f"record name {name!r}: label {label!r} must be 1-63 letters, digits or hyphens "
                "(an optional leading '_'), not starting or ending with a hyphen"
            )
        if label.startswith("_") and rtype in ("A", "AAAA", "MX"):
            raise ValueError(f"record name {name!r}: '_' labels are not host names ({rtype})")
    if rtype == "SRV" and not (
        len(labels) >= 2 and labels[0].startswith("_") and labels[1] in ("_tcp", "_udp", "_tls")
    ):
        raise ValueError(f"SRV name {name!r}: must be _service._tcp|_udp|_tls[.name]")
    return name.lower()


def _txt_rdata(text: str) -> str:
    """Quoted chunks of at most 255 bytes, with '"' and '\\' escaped."""
    chunks = [text[i : i + 255] for i in range(0, len(text), 255)] or [""]
    return " ".join('"' + c.replace("\\", "\\\\").replace('"', '\\"') + '"' for c in chunks)


class DnsRecord(BaseModel):
    """One resource record, relative to its zone."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    name: str = Field(description="owner relative to the zone; '@' for the apex")
    type: RecordType
    value: str = Field(description="address, target host, text or CAA value")
    ttl: int = Field(default=3600, ge=MIN_TTL, le=MAX_TTL)
    priority: int | None = Field(default=None, ge=0, le=65535, description="MX and SRV")
    weight: int | None = Field(default=None, ge=0, le=65535, description="SRV")
    port: int | None = Field(default=None, ge=0, le=65535, description="SRV")
    flags: int | None = Field(default=None, description="CAA: 0 or 128")
    tag: Literal["issue", "issuewild", "iodef"] | None = Field(default=None, description="CAA")

    @model_validator(mode="after")
    def _check(self) -> DnsRecord:
        _owner(self.name, self.type)
        t, v = self.type, self.value
        if any(ord(c) < 32 or ord(c) == 127 for c in v):
            raise ValueError(
                f"{t} value: control characters (newline, tab, NUL ...) are not allowed"
            )
        if t == "A":
            _ip(v, 4)
        elif t == "AAAA":
            _ip(v, 6)
        elif t in ("CNAME", "MX", "SRV"):
            if t == "SRV" and v == ".":
                pass
            else:
                _hostname(v, what=f"{t} target")
        elif t == "TXT":
            if not all(32 <= ord(c) < 127 for c in v):
                raise ValueError("TXT value: only printable ASCII characters are allowed")
            if len(v) > TXT_MAX:
                raise ValueError(f"TXT value: at most {TXT_MAX} characters")
        elif t == "CAA":
            if self.tag is None:
                raise ValueError("CAA record: needs a tag (issue, issuewild or iodef)")
            if self.flags not in (None, 0, 128):
                raise ValueError("CAA flags: must be 0 or 128")
            if not _CAA_VALUE.match(v) or '"' in v or "\\" in v:
                raise ValueError("CAA value: printable ASCII without spaces, quotes or '\\'")
            if self.tag == "iodef" and not re.match(r"^(mailto:|https?://)", v):
                raise ValueError("CAA iodef value: must be a mailto: or http(s):// URL")
            if self.tag != "iodef" and v not in (";", "") and not v.startswith(";"):
                _hostname(v.split(";")[0], what="CAA issuer")
        needs_priority = t in ("MX", "SRV")
        if needs_priority and self.priority is None:
            raise ValueError(f"{t} record: needs a priority")
        if not needs_priority and self.priority is not None:
            raise ValueError(f"{t} record: priority is only for MX and SRV")
        if (t == "SRV") != (self.weight is not None and self.port is not None):
            raise ValueError("weight and port: required for SRV and only for SRV")
        if t != "CAA" and (self.tag is not None or self.flags is not None):
            raise ValueError("tag and flags: only for CAA")
        return self

    def owner(self, zone: str) -> str:
        return f"{zone}." if self.name == "@" else f"{self.name}.{zone}."

    def rdata(self) -> str:
        t, v = self.type, self.value
        if t == "AAAA":
            return _ip(v, 6)
        if t == "CNAME":
            return v.lower().rstrip(".") + "."
        if t == "MX":
            return f"{self.priority} {v.lower().rstrip('.')}."
        if t == "SRV":
            target = "." if v == "." else v.lower().rstrip(".") + "."
            return f"{self.priority} {self.weight} {self.port} {target}"
        if t == "TXT":
            return _txt_rdata(v)
        if t == "CAA":
            return f'{self.flags or 0} {self.tag} "{v}"'
        return v

    def as_record(self, zone: str) -> Record:
        return Record(self.owner(zone), self.ttl, self.type, self.rdata())


def _same(a: Record, b: Record) -> bool:
    return (a.name, a.rtype) == (b.name, b.rtype) and canonical_rdata(
        a.rtype, a.rdata
    ) == canonical_rdata(b.rtype, b.rdata)


def _add(zone: Zone, rec: Record) -> None:
    if any(_same(r, rec) for r in zone.records):
        for r in zone.records:
            if _same(r, rec):
                r.ttl = rec.ttl
        return
    types = zone.types_at(rec.name)
    if rec.rtype == "CNAME":
        if rec.name == zone.origin:
            raise ChangeConflict("a CNAME cannot be at the zone apex")
        if types - CNAME_COMPANIONS:
            raise ChangeConflict(
                f"{rec.name} already has other records ({', '.join(sorted(types))}); "
                "a CNAME cannot sit beside other data"
            )
    elif "CNAME" in types:
        raise ChangeConflict(f"{rec.name} is a CNAME; no other record can sit beside it")
    # An rrset has one TTL: align the others to the new one.
    for r in zone.rrset(rec.name, rec.rtype):
        r.ttl = rec.ttl
    zone.records.append(rec)


def _delete(zone: Zone, rec: Record) -> None:
    matches = [r for r in zone.records if _same(r, rec)]
    if not matches:
        raise ChangeConflict(f"no {rec.rtype} record {rec.rdata} at {rec.name}")
    zone.records = [r for r in zone.records if not _same(r, rec)]


def _verify(
    ws: Workspace, zone_name: str, keys: set[tuple[str, str]], probe: ProbeResults
) -> str | None:
    served_text = probe.dns.get(zone_name)
    if served_text is None:
        return f"zone {zone_name}: no answer from the name server"
    served = probe.parsed.get(zone_name)
    if served is None:
        try:
            served = parse_zone(served_text, zone_name, check=False)
        except ZoneError as exc:
            return f"zone {zone_name}: unreadable transfer ({exc})"
        probe.parsed[zone_name] = served  # one parse per batch, not per change
    intended = ws.zone(zone_name)
    if served.records and served.serial != intended.serial:
        return f"zone {zone_name}: name server serves serial {served.serial}, not {intended.serial}"
    for name, rtype in sorted(keys):
        want = sorted(canonical_rdata(rtype, r.rdata) for r in intended.rrset(name, rtype))
        got = sorted(canonical_rdata(rtype, r.rdata) for r in served.rrset(name, rtype))
        if want != got:
            return (
                f"{name} {rtype}: name server answers {got or 'nothing'}, "
                f"expected {want or 'nothing'}"
            )
    return None


class _DnsChange(ChangeBase):
    zone: DomainName

    @model_validator(mode="after")
    def _name_length(self) -> _DnsChange:
        for field in ("record", "old", "new"):
            rec = getattr(self, field, None)
            if isinstance(rec, DnsRecord) and len(rec.owner(self.zone)) > 254:
                raise ValueError(f"{rec.name}.{self.zone}: a domain name is at most 253 characters")
        return self

    def target(self) -> str:
        return f"dns:{self.zone}"

    def reads(self) -> list[str]:
        return [zone_path(self.zone)]


class DnsRecordAdd(_DnsChange):
    kind: Literal["dns_record_add"] = "dns_record_add"
    record: DnsRecord

    def apply(self, ws: Workspace) -> None:
        _add(ws.zone(self.zone), self.record.as_record(self.zone))

    def verify(self, ws: Workspace, probe: ProbeResults) -> str | None:
        r = self.record
        return _verify(ws, self.zone, {(r.owner(self.zone), r.type)}, probe)

    def describe(self) -> str:
        r = self.record
        return f"add {r.name} {r.ttl} {r.type} {r.rdata()} in zone {self.zone}"


class DnsRecordDelete(_DnsChange):
    kind: Literal["dns_record_delete"] = "dns_record_delete"
    record: DnsRecord

    def apply(self, ws: Workspace) -> None:
        _delete(ws.zone(self.zone), self.record.as_record(self.zone))

    def verify(self, ws: Workspace, probe: ProbeResults) -> str | None:
        r = self.record
        return _verify(ws, self.zone, {(r.owner(self.zone), r.type)}, probe)

    def describe(self) -> str:
        r = self.record
        return f"delete {r.name} {r.type} {r.rdata()} from zone {self.zone}"


class DnsRecordUpdate(_DnsChange):
    kind: Literal["dns_record_update"] = "dns_record_update"
    old: DnsRecord
    new: DnsRecord

    def apply(self, ws: Workspace) -> None:
        zone = ws.zone(self.zone)
        _delete(zone, self.old.as_record(self.zone))
        _add(zone, self.new.as_record(self.zone))

    def verify(self, ws: Workspace, probe: ProbeResults) -> str | None:
        keys: set[tuple[str, str]] = {
            (r.owner(self.zone), str(r.type)) for r in (self.old, self.new)
        }
        return _verify(ws, self.zone, keys, probe)

    def describe(self) -> str:
        return (
            f"update {self.old.name} {self.old.type} {self.old.rdata()} -> "
            f"{self.new.name} {self.new.type} {self.new.rdata()} in zone {self.zone}"
        )
