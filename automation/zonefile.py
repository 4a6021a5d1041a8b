"""BIND master files (RFC 1035 §5) of the zones GDCAS manages, read and written by dnspython.

dnspython's reader (``dns.zonefile.Reader`` into a ``dns.zone.Zone``) does the syntax: ``$ORIGIN``,
``$TTL``, parentheses across lines, comments, quoted strings with escapes, blank owners, ``@``,
TTL units, class and TTL in either order, and the data of each record type it knows; dnspython
writes each name's records back (``dns.node.Node.to_text``). ``$INCLUDE`` and ``$GENERATE`` are
refused (a managed zone is one self-contained file). What is left here is what dnspython does not
do: the records as the plain list the changes edit (`Record`, `Zone`), the serial bump policy, the
integrity rules GDCAS checks before the host's own ``named-checkzone``, the wording of
`ZoneError`, a record dnspython cannot read that GDCAS does not manage kept as it was written
(`_as_written`), and the lenient reading of record data as ``dig`` prints it (`txt_chunks`,
`canonical_rdata`).
"""

from __future__ import annotations

import copy
import functools
import ipaddress
import re
from collections import OrderedDict
from dataclasses import dataclass, field

import dns.exception
import dns.name
import dns.node
import dns.rdata
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.tokenizer
import dns.transaction
import dns.ttl
import dns.zone
import dns.zonefile

from automation.errors import ZoneError

# Types allowed beside a CNAME (RFC 2181 §10.1, RFC 4035 §2.5).
CNAME_COMPANIONS = {"RRSIG", "NSEC", "NSEC3"}
_DIRECTIVES = ("$ORIGIN", "$TTL")  # all dnspython's reader is allowed
_REFUSED = ("$INCLUDE", "$GENERATE")  # known, but not in a managed zone
_IN = dns.rdataclass.IN
# Types GDCAS edits or reads (the SOA's serial, the apex NS): dnspython must read their data.
_MANAGED = {"SOA", "NS", "A", "AAAA", "CNAME", "MX", "TXT", "SRV", "CAA"}


def ttl_seconds(text: str) -> int | None:
    """Seconds of a TTL token (``3600``, or numbers each with a unit: ``1h30m``), else None.

    ``dns.ttl.from_text``: a linear scan, at most 2**32 - 1, no digits after the last unit ('1h30',
    as BIND). ASCII only: older dnspython (2.6) took Unicode digits for digits. (The regex this
    once was, ``(\\d+[smhdw]?)+``, backtracked exponentially: 24 digits and an 'x' took 1.5 s.)
    """
    if not text.isascii():
        return None
    try:
        return dns.ttl.from_text(text)
    except dns.ttl.BadTTL:
        return None


def parse_ttl(text: str) -> int:
    """Seconds of a TTL token: ``3600`` or with units, ``1h30m``; ZoneError if it is not one."""
    seconds = ttl_seconds(text)
    if seconds is None:
        raise ZoneError(f"bad TTL {text!r}")
    return seconds


def _name(text: str, origin: dns.name.Name = dns.name.root) -> dns.name.Name:
    try:
        return dns.name.from_text(text, origin)
    except dns.exception.DNSException as exc:
        raise ZoneError(f"bad domain name {text!r}: {exc}") from None


def _text(name: dns.name.Name) -> str:
    return name.canonicalize().to_text()


def absolute(name: str, origin: str) -> str:
    """The absolute lower-case form of a (possibly relative) domain name."""
    return _text(_name(name, _name(origin)))


@dataclass
class Record:
    name: str  # absolute, lower case, trailing dot
    ttl: int
    rtype: str  # upper case
    rdata: str  # presentation text (names absolute, as dnspython writes them)

    def key(self) -> tuple[str, str]:
        return self.name, self.rtype


@dataclass
class Zone:
    origin: str  # absolute, trailing dot
    default_ttl: int
    records: list[Record] = field(default_factory=list)

    @property
    def soa(self) -> Record:
        for r in self.records:
            if r.rtype == "SOA" and r.name == self.origin:
                return r
        raise ZoneError(f"zone {self.origin} has no SOA record at its apex")

    @property
    def serial(self) -> int:
        return int(self.soa.rdata.split()[2])

    def bump_serial(self, today: int, floor: int = 0) -> int:
        """Raise the SOA serial: to YYYYMMDD00 if higher, else old + 1 (and above ``floor``)."""
        soa = self.soa
        parts = soa.rdata.split()
        new = max(int(parts[2]) + 1, floor + 1, today * 100) % 2**32
        parts[2] = str(new)
        soa.rdata = " ".join(parts)
        return new

    def rrset(self, name: str, rtype: str) -> list[Record]:
        return [r for r in self.records if r.name == name and r.rtype == rtype]

    def types_at(self, name: str) -> set[str]:
        return {r.rtype for r in self.records if r.name == name}

    def check(self) -> list[str]:
        """Integrity problems: no SOA, no NS at the apex, CNAME beside other data."""
        problems = []
        if not any(r.rtype == "SOA" and r.name == self.origin for r in self.records):
            problems.append(f"{self.origin}: no SOA record at the zone apex")
        if not any(r.rtype == "NS" and r.name == self.origin for r in self.records):
            problems.append(f"{self.origin}: no NS record at the zone apex")
        by_name: dict[str, set[str]] = {}
        for r in self.records:
            by_name.setdefault(r.name, set()).add(r.rtype)
        for name, types in sorted(by_name.items()):
            if "CNAME" in types and types - CNAME_COMPANIONS - {"CNAME"}:
                other = ", ".join(sorted(types - CNAME_COMPANIONS - {"CNAME"}))
                problems.append(f"{name}: CNAME and other data ({other})")
        return problems

    def render(self) -> str:
        """Canonical text: $ORIGIN, $TTL, then each name's records as dnspython writes them
        (names in DNSSEC order, the apex first and its SOA first, then by type and data; owners
        relative to the origin, names in the data absolute), the records dnspython cannot read
        last, as they were written."""
        apex = _name(self.origin)
        soa = self.soa
        rest = sorted(
            (r for r in self.records if r is not soa), key=lambda r: (r.name, r.rtype, r.rdata)
        )
        zone = dns.zone.Zone(apex, relativize=False)
        as_written = []
        with zone.writer() as txn:
            txn.check_put_rdataset(_cname_alone)
            for r in [soa, *rest]:
                rdata = _rdata(r, apex)
                if rdata is None:
                    as_written.append(f"{r.name} {r.ttl} IN {r.rtype} {r.rdata}")
                    continue
                try:
                    txn.add(_name(r.name, apex), r.ttl, rdata)
                except ZoneError:
                    raise
                except (KeyError, ValueError) as exc:  # outside the zone; an SOA not at its apex
                    raise ZoneError(f"{r.name} {r.rtype}: {exc.args[0]}") from None
        lines = [f"$ORIGIN {self.origin}", f"$TTL {self.default_ttl}"]
        lines += [zone[name].to_text(name.relativize(apex)) for name in sorted(zone.keys())]
        return "\n".join(lines + as_written) + "\n"


def _rdata(record: Record, origin: dns.name.Name) -> dns.rdata.Rdata | None:
    """dnspython's reading of a record's data; None for data kept as written (`_as_written`)."""
    return _rdata_of(record.name, record.rtype, record.rdata, origin)


@functools.lru_cache(maxsize=65536)
def _rdata_of(name: str, rtype: str, text: str, origin: dns.name.Name) -> dns.rdata.Rdata | None:
    """(Cached: a zone is rendered once per batch, and its records are mostly the same ones;
    dnspython's rdata are immutable.)"""
    record = Record(name, 0, rtype, text)
    try:
        return dns.rdata.from_text(_IN, record.rtype, record.rdata, origin, relativize=False)
    except (dns.exception.DNSException, ValueError) as exc:
        if record.rtype not in _MANAGED and _is_mnemonic(record.rtype):
            return None
        raise ZoneError(
            f"{record.name} {record.rtype}: bad record data {record.rdata!r} ({exc})"
        ) from None


def _cname_alone(
    txn: dns.transaction.Transaction, name: dns.name.Name, rdataset: dns.rdataset.Rdataset
) -> None:
    """dnspython's own rule (its reader refuses the same), with the name and the types told."""
    node = txn.get_node(name)
    if node is None:
        return
    kinds = {node.classify(), dns.node.NodeKind.classify_rdataset(rdataset)}
    if {dns.node.NodeKind.CNAME, dns.node.NodeKind.REGULAR} <= kinds:
        types = {dns.rdatatype.to_text(r.rdtype) for r in [*node, rdataset]} - {"CNAME"}
        raise ZoneError(f"{_text(name)}: CNAME and other data ({', '.join(sorted(types))})")


def _zone_error(exc: dns.exception.DNSException, tok: _Tokenizer) -> ZoneError:
    """Our wording of what dnspython's reader refused, with the line it was at."""
    filename, at = tok.where()
    detail = str(exc).removeprefix(f"{filename}:{at}: ")
    line = tok.start  # where the record began (dnspython tells where it stopped reading)
    cause: BaseException | None = exc
    while cause is not None and not isinstance(cause, dns.ttl.BadTTL):
        cause = cause.__context__
    if cause is not None:
        return ZoneError(f"line {line}: bad TTL ({detail})")
    if detail.startswith("unknown rdatatype"):
        return ZoneError(f"line {line}: bad record type ({detail})")
    if detail.startswith("zone file directive '"):
        directive = detail.split("'")[1]
        if directive in _REFUSED:
            return ZoneError(f"line {line}: {directive} is not supported")
        return ZoneError(f"line {line}: unknown directive {directive}")
    return ZoneError(f"line {line}: {detail}")


class _Tokenizer(dns.tokenizer.Tokenizer):
    """dnspython's tokenizer, keeping the tokens of the line it is in: for a record dnspython
    cannot read, so that it is kept as written (`_as_written`)."""

    def __init__(self, text: str) -> None:
        super().__init__(text, "zone")
        self.line: list[dns.tokenizer.Token] = []
        self.ended = False  # the line's end was read: the next token starts another line
        self.start = 1  # the line number where the line began

    def get(self, want_leading: bool = False, want_comment: bool = False) -> dns.tokenizer.Token:
        token = super().get(want_leading, want_comment)
        if token.is_eol_or_eof():
            self.ended = True
        else:
            if self.ended:
                self.line, self.ended = [], False
            if not self.line:  # (a token ended by a newline has the newline read, and ungot)
                self.start = self.line_number - (self.ungotten_char == "\n")
            self.line.append(token)
        return token

    def unget(self, token: dns.tokenizer.Token) -> None:
        super().unget(token)
        if token.is_eol_or_eof():
            self.ended = False
        elif self.line and self.line[-1] is token:
            self.line.pop()


def _as_written(tok: _Tokenizer, reader: dns.zonefile.Reader, apex: dns.name.Name) -> Record | None:
    """The record dnspython's reader just refused, kept as its text, if it is one of a type GDCAS
    does not manage (as the old reader kept all of those): a mnemonic dnspython has no parser for
    (MD, A6, EID ...) or data dnspython refuses (2.9 refuses SVCB ``ech`` values BIND takes), in
    class IN, where the origin is the zone's (so that the text means the same written back).
    Else None: the error stands. named-checkzone on the host still checks it."""
    line = tok.line
    if tok.ended or reader.current_origin != apex or not line or line[0].value.startswith("$"):
        return None
    at, ttl = 1, None  # after the owner, or the blank that stands for the last one
    while at < len(line) and not line[at].is_quoted_string():
        if ttl is None and (seconds := ttl_seconds(line[at].value)) is not None:
            ttl = seconds
        elif line[at].value.upper() != "IN":
            break
        at += 1
    rtype = line[at].value.upper() if at < len(line) else ""
    if not _is_mnemonic(rtype) or rtype in _MANAGED or _is_class(rtype):
        return None
    if ttl is None and not (reader.default_ttl_known or reader.last_ttl_known):
        return None
    if ttl is None:
        ttl = reader.default_ttl if reader.default_ttl_known else reader.last_ttl
    while not tok.get().is_eol_or_eof():  # the rest of the record's data
        pass
    words: list[str] = []
    for t in line[at + 1 :]:
        if t.is_quoted_string() and words and words[-1].endswith("="):
            words[-1] += f'"{t.value}"'  # key="value", one word as it was written
        else:
            words.append(f'"{t.value}"' if t.is_quoted_string() else t.value)
    assert reader.last_name is not None
    return Record(_text(reader.last_name), ttl, rtype, " ".join(words))


def _is_mnemonic(word: str) -> bool:
    return word.isascii() and word[:1].isalpha() and word.replace("-", "").isalnum()


def _is_class(word: str) -> bool:
    try:
        dns.rdataclass.from_text(word)
    except dns.exception.DNSException:
        return False
    return True


def records_of(zone: dns.zone.Zone) -> list[Record]:
    """The records of a dnspython zone (one read from a file, or transferred), as ours."""
    return [
        Record(_text(name), rdataset.ttl, dns.rdatatype.to_text(rdataset.rdtype), rd.to_text())
        for name, rdataset in zone.iterate_rdatasets()
        for rd in rdataset
    ]


_PARSED: OrderedDict[tuple[str, str, bool], Zone] = OrderedDict()
_PARSED_MAX = 32  # zones: the ones the executor's hosts are being changed in


def _copy(zone: Zone) -> Zone:
    return Zone(zone.origin, zone.default_ttl, [copy.copy(r) for r in zone.records])


def remember(text: str, origin: str, zone: Zone) -> None:
    """``zone`` is what ``text`` (its rendering) parses to: the next batch's read of that text
    from the host takes it instead of parsing again (a copy: zones are edited in place)."""
    _PARSED[(text, origin, True)] = _copy(zone)
    _PARSED.move_to_end((text, origin, True))
    while len(_PARSED) > _PARSED_MAX:
        _PARSED.popitem(last=False)


def parse_zone(text: str, origin: str, *, check: bool = True) -> Zone:
    """Parse a master file for ``origin``; with ``check``, refuse integrity problems (the
    result of a text parsed or rendered lately is a copy of the one kept, see ``remember``)."""
    known = _PARSED.get((text, origin, check)) or (_PARSED.get((text, origin, True)))
    if known is not None:
        return _copy(known)
    zone = _parse_zone(text, origin, check=check)
    if check:
        remember(text, origin, zone)
    return zone


def _parse_zone(text: str, origin: str, *, check: bool = True) -> Zone:
    """Parse a master file for ``origin``; with ``check``, refuse integrity problems.

    A name outside ``origin`` is left out (as dnspython does); the records come by name, in the
    order of each name's first record, and by type within a name (records dnspython could not
    read last); an rrset has one TTL (the lowest of its records', as dnspython keeps it).
    """
    apex = _name(origin)
    zone = dns.zone.Zone(apex, relativize=False)
    tok = _Tokenizer(text)
    kept: list[Record] = []
    try:
        with zone.writer(replacement=True) as txn:
            txn.check_put_rdataset(_cname_alone)
            reader = dns.zonefile.Reader(tok, _IN, txn, allow_directives=_DIRECTIVES)
            while True:
                try:
                    reader.read()
                    break
                except dns.exception.SyntaxError:
                    record = _as_written(tok, reader, apex)
                    if record is None:
                        raise
                    kept.append(record)  # and read on from the next line
    except dns.exception.DNSException as exc:
        raise _zone_error(exc, tok) from None
    except ValueError as exc:  # a CNAME beside other data; dnspython: "add() has non-origin SOA"
        raise ZoneError(f"line {tok.start}: {exc}") from None
    default_ttl = reader.default_ttl if reader.default_ttl_known else 3600
    parsed = Zone(_text(apex), default_ttl, records_of(zone) + kept)
    if check:
        problems = parsed.check()
        if problems:
            raise ZoneError("; ".join(problems))
    return parsed


def txt_chunks(rdata: str) -> list[str]:
    """The character-strings of TXT presentation data, unescaped (leniently: '\\5' is '5')."""
    chunks = []
    for tok in re.finditer(r'"((?:[^"\\]|\\.)*)"|(\S+)', rdata):
        raw = tok.group(1) if tok.group(1) is not None else tok.group(2)
        chunks.append(_ESCAPE.sub(_unescape, raw))
    return chunks


_ESCAPE = re.compile(r"\\([0-9]{3}|.)", re.ASCII)  # RFC 1035 5.1: \DDD is a byte, \X is X


def _unescape(m: re.Match[str]) -> str:
    g = m.group(1)
    return chr(int(g)) if len(g) == 3 else g  # '\5' is the digit 5, not chr(5)


def canonical_rdata(rtype: str, rdata: str) -> str:
    """A comparable form of record data (as we write it or as ``dig`` prints it)."""
    if rtype in ("TXT", "SPF"):
        return "".join(txt_chunks(rdata))
    if rtype == "AAAA":
        return str(ipaddress.IPv6Address(rdata.strip()))
    return " ".join(rdata.split()).lower()
