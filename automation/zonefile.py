"""A BIND master-file (RFC 1035 §5) reader and a canonical writer for the zones GDCAS manages.

The reader understands what real zone files use: ``$ORIGIN``, ``$TTL``, parentheses across
lines, comments, quoted strings with escapes, blank owners, ``@``, TTL units and class/TTL in
either order. ``$INCLUDE`` and ``$GENERATE`` are refused (a managed zone is one self-contained
file). Record data of types we do not manage is kept as text and written back unchanged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from automation.errors import ZoneError

_TTL_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_TTL_LIMIT = 2**32  # as for BIND, a number this large is not a TTL at all
_CLASSES = {"IN", "CH", "HS", "CS", "ANY"}
_CLASS_RE = re.compile(r"CLASS[0-9]+", re.IGNORECASE | re.ASCII)
_TYPE_RE = re.compile(r"[A-Za-z][A-Za-z0-9-]*", re.ASCII)
# Types allowed beside a CNAME (RFC 2181 §10.1, RFC 4035 §2.5).
CNAME_COMPANIONS = {"RRSIG", "NSEC", "NSEC3"}


def ttl_seconds(text: str) -> int | None:
    """Seconds of a TTL token (``3600``, or numbers each with a unit: ``1h30m``), else None.

    A scan of the characters, linear by construction. (The regex it replaces, ``(\\d+[smhdw]?)+``,
    backtracked exponentially: 24 digits and an 'x' took 1.5 s, each digit more twice as long.
    It also took '1h30', which BIND does not, and Unicode digits.)
    """
    total, digits = 0, ""
    for c in text:
        if "0" <= c <= "9":
            digits += c
            if len(digits) > 10:  # above _TTL_LIMIT whatever follows
                return None
        elif c in "smhdwSMHDW" and digits and total < _TTL_LIMIT:
            total += int(digits) * _TTL_UNITS[c.lower()]
            digits = ""
        else:
            return None
    if digits:
        if total or digits != text:  # trailing digits after a unit: '1h30'
            return None
        total = int(digits)
    return total if text and total < _TTL_LIMIT else None


def parse_ttl(text: str) -> int:
    """Seconds of a TTL token: ``3600`` or with units, ``1h30m``; ZoneError if it is not one."""
    seconds = ttl_seconds(text)
    if seconds is None:
        raise ZoneError(f"bad TTL {text!r}")
    return seconds


@dataclass(frozen=True)
class Token:
    text: str
    quoted: bool = False

    def render(self) -> str:
        return f'"{self.text}"' if self.quoted else self.text


@dataclass
class _Line:
    tokens: list[Token]
    indented: bool
    number: int


def _push(tokens: list[Token], token: Token, start: int, glued_at: int) -> None:
    """Append a token; one written right after the previous (key="v") joins it verbatim."""
    if tokens and start == glued_at:
        tokens[-1] = Token(tokens[-1].render() + token.render())
    else:
        tokens.append(token)


def _tokenize(text: str) -> list[_Line]:
    lines: list[_Line] = []
    tokens: list[Token] = []
    depth = 0
    indented = False
    line_no = 1
    start_line = 1
    i, n = 0, len(text)
    at_line_start = True
    glued_at = -1  # where the previous token ended: a token starting there is glued to it
    while i < n:
        c = text[i]
        if at_line_start and depth == 0:
            indented = c in " \t"
            start_line = line_no
            at_line_start = False
        if c == "\n":
            line_no += 1
            if depth == 0:
                if tokens:
                    lines.append(_Line(tokens, indented, start_line))
                tokens = []
                at_line_start = True
            i += 1
        elif c in " \t\r":
            i += 1
        elif c == ";":
            while i < n and text[i] != "\n":
                i += 1
        elif c == "(":
            depth += 1
            i += 1
        elif c == ")":
            if depth == 0:
                raise ZoneError(f"line {line_no}: unbalanced ')'")
            depth -= 1
            i += 1
        elif c == '"':
            j = i + 1
            buf = []
            while j < n and text[j] != '"':
                if text[j] == "\\" and j + 1 < n:
                    buf.append(text[j : j + 2])
                    j += 2
                    continue
                if text[j] == "\n":
                    line_no += 1
                buf.append(text[j])
                j += 1
            if j >= n:
                raise ZoneError(f"line {line_no}: unterminated quoted string")
            _push(tokens, Token("".join(buf), quoted=True), i, glued_at)
            i = j + 1
            glued_at = i
        else:
            j = i
            while j < n and text[j] not in ' \t\r\n;()"':
                if text[j] == "\\" and j + 1 < n:
                    j += 2
                    continue
                j += 1
            _push(tokens, Token(text[i:j]), i, glued_at)
            i = j
            glued_at = i
    if depth:
        raise ZoneError("unbalanced '(' at end of file")
    if tokens:
        lines.append(_Line(tokens, indented, start_line))
    return lines


def absolute(name: str, origin: str) -> str:
    """The absolute lower-case form of a (possibly relative) domain name."""
    if name == "@":
        return origin
    if name.endswith(".") and not name.endswith("\\."):
        return name.lower()
    return f"{name}.{origin}".lower() if origin != "." else f"{name}.".lower()


@dataclass
class Record:
    name: str  # absolute, lower case, trailing dot
    ttl: int
    rtype: str  # upper case
    rdata: str  # presentation text

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
        """Canonical text: $ORIGIN, $TTL, SOA first, then records sorted by name and type."""
        out = [f"$ORIGIN {self.origin}", f"$TTL {self.default_ttl}"]
        soa = self.soa
        rest = sorted(
            (r for r in self.records if r is not soa),
            key=lambda r: (r.name != self.origin, r.name[::-1], r.rtype, r.rdata),
        )
        for r in [soa, *rest]:
            out.append(f"{self._rel(r.name)} {r.ttl} IN {r.rtype} {r.rdata}")
        return "\n".join(out) + "\n"

    def _rel(self, name: str) -> str:
        if name == self.origin:
            return "@"
        suffix = "." + self.origin
        if name.endswith(suffix):
            return name[: -len(suffix)]
        return name


def parse_zone(text: str, origin: str, *, check: bool = True) -> Zone:
    """Parse a master file for ``origin``; with ``check``, refuse integrity problems."""
    origin = absolute(origin.rstrip(".") + "." if origin != "." else ".", ".")
    current_origin = origin
    default_ttl: int | None = None
    last_ttl: int | None = None
    last_owner: str | None = None
    pending: list[tuple[Record, bool]] = []  # (record, ttl given explicitly)
    soa_minimum: int | None = None
    for line in _tokenize(text):
        toks = line.tokens
        head = toks[0].text
        if not line.indented and not toks[0].quoted and head.startswith("$"):
            directive = head.upper()
            if directive == "$ORIGIN" and len(toks) >= 2:
                current_origin = absolute(toks[1].text, current_origin)
            elif directive == "$TTL" and len(toks) >= 2:
                default_ttl = parse_ttl(toks[1].text)
            elif directive in ("$INCLUDE", "$GENERATE"):
                raise ZoneError(f"line {line.number}: {directive} is not supported")
            else:
                raise ZoneError(f"line {line.number}: unknown directive {head}")
            continue
        idx = 0
        if line.indented:
            if last_owner is None:
                raise ZoneError(f"line {line.number}: record without an owner name")
            owner = last_owner
        else:
            owner = absolute(head, current_origin)
            idx = 1
        ttl: int | None = None
        for _ in range(2):
            if idx >= len(toks):
                break
            word = toks[idx].text
            seconds = ttl_seconds(word) if ttl is None else None
            if seconds is not None:
                ttl = seconds
                idx += 1
            elif word.upper() in _CLASSES or _CLASS_RE.fullmatch(word):
                if word.upper() != "IN":
                    raise ZoneError(f"line {line.number}: only class IN is supported")
                idx += 1
        if idx >= len(toks) or not _TYPE_RE.fullmatch(toks[idx].text):
            raise ZoneError(f"line {line.number}: missing or bad record type")
        rtype = toks[idx].text.upper()
        rdata_tokens = toks[idx + 1 :]
        if rtype in ("CNAME", "NS", "PTR", "DNAME") and len(rdata_tokens) == 1:
            rdata = absolute(rdata_tokens[0].text, current_origin)
        elif rtype == "MX" and len(rdata_tokens) == 2:
            rdata = f"{rdata_tokens[0].text} {absolute(rdata_tokens[1].text, current_origin)}"
        elif rtype == "SRV" and len(rdata_tokens) == 4:
            nums = " ".join(t.text for t in rdata_tokens[:3])
            rdata = f"{nums} {absolute(rdata_tokens[3].text, current_origin)}"
        elif rtype == "SOA" and len(rdata_tokens) == 7:
            m, r = (absolute(t.text, current_origin) for t in rdata_tokens[:2])
            times = [str(parse_ttl(t.text)) for t in rdata_tokens[2:]]
            rdata = " ".join([m, r, *times])
            soa_minimum = int(times[4])
        else:
            rdata = " ".join(t.render() for t in rdata_tokens)
        explicit = ttl is not None
        if ttl is None:
            ttl = default_ttl if default_ttl is not None else last_ttl
        if explicit:
            last_ttl = ttl
        last_owner = owner
        pending.append((Record(owner, ttl if ttl is not None else -1, rtype, rdata), explicit))
    for record, _explicit in pending:
        if record.ttl < 0:
            if soa_minimum is None:
                raise ZoneError(f"{record.name} {record.rtype}: no TTL and no $TTL or SOA")
            record.ttl = soa_minimum
    zone = Zone(origin, default_ttl if default_ttl is not None else (soa_minimum or 3600))
    zone.records = [r for r, _ in pending]
    if check:
        problems = zone.check()
        if problems:
            raise ZoneError("; ".join(problems))
    return zone


def txt_chunks(rdata: str) -> list[str]:
    """The character-strings of TXT presentation data, unescaped."""
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
        import ipaddress

        return str(ipaddress.IPv6Address(rdata.strip()))
    return " ".join(rdata.split()).lower()
