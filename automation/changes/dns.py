"""DNS record changes in a BIND zone: add, update, delete (A, AAAA, CNAME, MX, TXT, SRV, CAA).

Every rule a record type has is checked here, before anything is sent to a host: the record's
own rules (syntax, canonical form, which fields go with which type) in ``DnsRecord``, and the
rules between records of a zone (CNAME alone at its name and never at the apex, MX and SRV
never pointing at a CNAME) when the change is applied to the zone GDCAS read from the host.
``named-checkzone`` on the host is the second line, not the first.
"""

from __future__ import annotations

import re
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from automation import identifiers
from automation.changes.base import ChangeBase, DomainName, ProbeResults, Workspace, zone_path
from automation.errors import ChangeConflict, ZoneError
from automation.host import HostLayout
from automation.zonefile import (
    CNAME_COMPANIONS,
    Record,
    Zone,
    canonical_rdata,
    parse_zone,
    txt_chunks,
)

RecordType = Literal["A", "AAAA", "CNAME", "MX", "TXT", "SRV", "CAA"]
MIN_TTL, MAX_TTL = 60, 604800
TXT_MAX = 4000
_TARGET_TYPES = ("CNAME", "MX", "SRV")  # their value is a host name
_CAA_PARAMETER_TAG = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?", re.ASCII)


def _txt_rdata(text: str) -> str:
    """Quoted chunks of at most 255 bytes (the value is ASCII), with '"' and '\\' escaped."""
    chunks = [text[i : i + 255] for i in range(0, len(text), 255)] or [""]
    return " ".join('"' + c.replace("\\", "\\\\").replace('"', '\\"') + '"' for c in chunks)


def _check_caa(tag: str, value: str) -> None:
    """RFC 8659 §4.2-4.4 property values, without the optional spaces."""
    if " " in value or '"' in value or "\\" in value:
        raise ValueError("CAA value: printable ASCII without spaces, quotes or '\\'")
    if tag == "iodef":
        scheme, _, rest = value.partition(":")
        if scheme == "mailto" and rest.count("@") == 1 and rest.split("@")[0]:
            identifiers.hostname(rest.split("@")[1], what="CAA iodef mail domain")
        elif scheme in ("http", "https") and rest.startswith("//"):
            host = rest[2:].split("/", 1)[0].split(":", 1)[0]
            identifiers.hostname(host, what="CAA iodef host")
        else:
            raise ValueError("CAA iodef value: must be a mailto:local@domain or http(s):// URL")
        return
    issuer, _, parameters = value.partition(";")
    if issuer:
        identifiers.hostname(issuer, what="CAA issuer")
    for parameter in parameters.split(";") if parameters else ():
        key, eq, _ = parameter.partition("=")
        if not eq or not identifiers.fullmatch(_CAA_PARAMETER_TAG, key):
            raise ValueError(
                f"CAA value: parameter {parameter!r} must be tag=value "
                "(tag: letters, digits, inner hyphens), parameters separated by ';'"
            )


class DnsRecord(BaseModel):
    """One resource record, relative to its zone; names and addresses stored canonical."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    name: str = Field(description="owner relative to the zone; '@' for the apex")
    type: RecordType
    value: str = Field(description="address, target host, text or CAA value")
    ttl: int = Field(default=3600, ge=MIN_TTL, le=MAX_TTL, title="TTL (seconds)")
    priority: int | None = Field(default=None, ge=0, le=65535, description="MX and SRV")
    weight: int | None = Field(default=None, ge=0, le=65535, description="SRV")
    port: int | None = Field(default=None, ge=0, le=65535, description="SRV")
    flags: int | None = Field(default=None, description="CAA: 0 or 128")
    tag: Literal["issue", "issuewild", "iodef"] | None = Field(default=None, description="CAA")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return identifiers.owner_name(value)

    @field_validator("value")
    @classmethod
    def _value(cls, value: str, info: ValidationInfo) -> str:
        t = info.data.get("type", "record")  # absent when the type itself was refused
        if any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise ValueError(
                f"{t} value: control characters (newline, tab, NUL ...) are not allowed"
            )
        if not identifiers.is_printable_ascii(value):
            raise ValueError(f"{t} value: only printable ASCII characters are allowed")
        if t == "A":
            return identifiers.ip_address(value, 4)
        if t == "AAAA":
            return identifiers.ip_address(value, 6)
        if t == "SRV" and value == ".":  # RFC 2782: the service is decidedly not available
            return value
        if t in _TARGET_TYPES:
            return identifiers.hostname(value, what=f"{t} target")
        if t == "TXT" and len(value) > TXT_MAX:
            raise ValueError(f"TXT value: at most {TXT_MAX} characters")
        return value

    @model_validator(mode="after")
    def _check(self) -> DnsRecord:
        t, labels = self.type, self.name.split(".")
        if t in ("A", "AAAA", "MX") and any(label.startswith("_") for label in labels):
            raise ValueError(f"record name {self.name!r}: '_' labels are not host names ({t})")
        if t == "SRV" and not (
            len(labels) >= 2 and labels[0].startswith("_") and labels[1] in ("_tcp", "_udp", "_tls")
        ):
            raise ValueError(f"SRV name {self.name!r}: must be _service._tcp|_udp|_tls[.name]")
        if t == "CNAME" and self.name == "@":
            raise ValueError(
                "CNAME record: cannot be at the zone apex '@', which holds the SOA and NS records"
            )
        if t == "CAA":
            if self.tag is None:
                raise ValueError("CAA record: needs a tag (issue, issuewild or iodef)")
            if self.flags not in (None, 0, 128):
                raise ValueError("CAA flags: must be 0 or 128")
            _check_caa(self.tag, self.value)
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

    def target(self) -> str | None:
        """The absolute host name a CNAME, MX or SRV record points at (None for SRV '.')."""
        if self.type not in _TARGET_TYPES or self.value == ".":
            return None
        return f"{self.value}."

    def rdata(self) -> str:
        t, v = self.type, self.value
        if t == "CNAME":
            return f"{v}."
        if t == "MX":
            return f"{self.priority} {v}."
        if t == "SRV":
            return f"{self.priority} {self.weight} {self.port} {'.' if v == '.' else v + '.'}"
        if t == "TXT":
            return _txt_rdata(v)
        if t == "CAA":
            return f'{self.flags or 0} {self.tag} "{v}"'
        return v  # A and AAAA: already canonical

    def as_record(self, zone: str) -> Record:
        return Record(self.owner(zone), self.ttl, self.type, self.rdata())


def _same(a: Record, b: Record) -> bool:
    return (a.name, a.rtype) == (b.name, b.rtype) and canonical_rdata(
        a.rtype, a.rdata
    ) == canonical_rdata(b.rtype, b.rdata)


def _target_of(rec: Record) -> str | None:
    """The host name an MX or SRV record points at, as the zone holds it (absolute)."""
    if rec.rtype in ("MX", "SRV"):
        target = rec.rdata.split()[-1].lower()
        return None if target == "." else target
    return None


def _add(zone: Zone, rec: Record) -> None:
    """Add ``rec`` (or align its TTL if it is there); refuse what would break the zone's rules."""
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
        pointing = sorted({r.rtype for r in zone.records if _target_of(r) == rec.name})
        if pointing:
            raise ChangeConflict(
                f"{rec.name} is the target of {' and '.join(pointing)} records, which must not "
                "point at a CNAME (RFC 2181 §10.3)"
            )
    elif "CNAME" in types:
        raise ChangeConflict(f"{rec.name} is a CNAME; no other record can sit beside it")
    target = _target_of(rec)
    if target is not None and "CNAME" in zone.types_at(target):
        raise ChangeConflict(
            f"{rec.rtype} target {target} is a CNAME; point at the name it aliases (RFC 2181 §10.3)"
        )
    # An rrset has one TTL: align the others to the new one.
    for r in zone.rrset(rec.name, rec.rtype):
        r.ttl = rec.ttl
    zone.records.append(rec)
    problems = zone.check()  # what named-checkzone would refuse must not reach the host
    if problems:
        raise ChangeConflict("; ".join(problems))


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
    verified_by: ClassVar[str] = "the host's name server answers with the changed records"

    @model_validator(mode="after")
    def _in_zone(self) -> _DnsChange:
        """The rules that need the zone's name: the owner's length, a CNAME to itself."""
        for field in ("record", "old", "new"):
            rec = getattr(self, field, None)
            if not isinstance(rec, DnsRecord):
                continue
            if len(rec.owner(self.zone)) > 254:
                raise ValueError(f"{rec.name}.{self.zone}: a domain name is at most 253 characters")
            if rec.type == "CNAME" and rec.target() == rec.owner(self.zone):
                raise ValueError(f"CNAME {rec.owner(self.zone)}: cannot point at itself")
        return self

    def target(self) -> str:
        return f"dns:{self.zone}"

    def reads(self) -> list[str]:
        return [zone_path(self.zone)]

    def services(self, layout: HostLayout) -> set[tuple[str, ...]]:
        return {("zone", self.zone)}


class DnsRecordAdd(_DnsChange):
    kind: Literal["dns_record_add"] = "dns_record_add"
    record: DnsRecord

    def apply(self, ws: Workspace) -> None:
        _add(ws.zone(self.zone), self.record.as_record(self.zone))

    def lookups(self) -> dict[str, set[tuple[str, str]]]:
        r = self.record
        return {self.zone: {(r.owner(self.zone), r.type)}}

    def verify(self, ws: Workspace, probe: ProbeResults) -> str | None:
        return _verify(ws, self.zone, self.lookups()[self.zone], probe)

    def describe(self) -> str:
        r = self.record
        return f"add {r.name} {r.ttl} {r.type} {r.rdata()} in zone {self.zone}"


class DnsRecordDelete(_DnsChange):
    kind: Literal["dns_record_delete"] = "dns_record_delete"
    record: DnsRecord

    def apply(self, ws: Workspace) -> None:
        _delete(ws.zone(self.zone), self.record.as_record(self.zone))

    def lookups(self) -> dict[str, set[tuple[str, str]]]:
        r = self.record
        return {self.zone: {(r.owner(self.zone), r.type)}}

    def verify(self, ws: Workspace, probe: ProbeResults) -> str | None:
        return _verify(ws, self.zone, self.lookups()[self.zone], probe)

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

    def lookups(self) -> dict[str, set[tuple[str, str]]]:
        return {self.zone: {(r.owner(self.zone), str(r.type)) for r in (self.old, self.new)}}

    def verify(self, ws: Workspace, probe: ProbeResults) -> str | None:
        return _verify(ws, self.zone, self.lookups()[self.zone], probe)

    def describe(self) -> str:
        return (
            f"update {self.old.name} {self.old.type} {self.old.rdata()} -> "
            f"{self.new.name} {self.new.type} {self.new.rdata()} in zone {self.zone}"
        )


# -- the zone as the name server serves it, in the shape of DnsRecord ----------------------------
def served_records(zone_name: str, axfr: str) -> list[dict[str, object]]:
    """The records of an AXFR answer, each as the fields a `DnsRecord` of it would have (its
    name relative to the zone, the value without priority or quotes) and ``editable``: whether a
    dns_record_* change can name it (SOA and NS are the host's, and so is anything unusual).
    The SOA's duplicate at the end of a transfer is dropped."""
    zone = parse_zone(axfr, zone_name, check=False)
    origin = zone.origin
    out: list[dict[str, object]] = []
    seen: set[tuple[str, str, str]] = set()
    for rec in zone.records:
        key = (rec.name, rec.rtype, canonical_rdata(rec.rtype, rec.rdata))
        if key in seen:
            continue
        seen.add(key)
        name = "@" if rec.name == origin else rec.name.removesuffix("." + origin)
        fields = _fields_of(rec.rtype, rec.rdata)
        out.append(
            {"name": name, "type": rec.rtype, "ttl": rec.ttl,
             **(fields or {"value": rec.rdata}), "editable": fields is not None}
        )  # fmt: skip
    first = {"SOA": 0, "NS": 1}  # the host's records first, then by name from the apex down
    out.sort(key=lambda r: (first.get(str(r["type"]), 2), str(r["name"]).split(".")[::-1],
                            str(r["type"])))  # fmt: skip
    return out


def _fields_of(rtype: str, rdata: str) -> dict[str, object] | None:
    """The DnsRecord fields of one record's data, or None if no change kind can name it."""
    parts = rdata.split()
    try:
        if rtype in ("A", "AAAA"):
            return {"value": canonical_rdata(rtype, rdata)}
        if rtype == "CNAME":
            return {"value": rdata.strip().lower().rstrip(".")}
        if rtype == "MX" and len(parts) == 2:
            return {"value": parts[1].lower().rstrip("."), "priority": int(parts[0])}
        if rtype == "SRV" and len(parts) == 4:
            target = parts[3].lower()
            value = target if target == "." else target.rstrip(".")
            weight, port = int(parts[1]), int(parts[2])
            return {"value": value, "priority": int(parts[0]), "weight": weight, "port": port}
        if rtype == "TXT":
            return {"value": canonical_rdata(rtype, rdata)}
        if rtype == "CAA" and len(parts) >= 3:
            value = "".join(txt_chunks(" ".join(parts[2:])))
            return {"value": value, "flags": int(parts[0]), "tag": parts[1].lower()}
    except ValueError:
        return None
    return None
