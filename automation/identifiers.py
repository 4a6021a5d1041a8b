"""The names and addresses GDCAS writes into host files: one strict check each, canonical form out.

Every validator of the automation goes through this module, because each of three mistakes once
let a hostile value reach a host file:

- ``re.match`` with a ``$`` anchor accepts a trailing newline (``$`` also matches just before
  one), so ``acme\\n`` passed as an account name. Here every pattern is used with ``fullmatch``.
- ``\\d``, ``str.isdigit``, ``int`` and case mapping accept non-ASCII look-alikes (Arabic-Indic
  digits, superscripts, U+212A KELVIN SIGN which lower-cases to ``k``), and ``str.splitlines``
  breaks lines at U+2028, U+0085 and friends. Here text must be ASCII before anything else.
- A name accepted in two spellings (``WWW`` and ``www``, ``2001:DB8::1`` and ``2001:db8::1``)
  is two different things to code that compares strings (a CNAME beside an A record). Here the
  canonical form is returned, and the models store it.

Each function raises ``ValueError`` with a message for the user, as pydantic validators do.
"""

from __future__ import annotations

import ipaddress
import posixpath
import re

_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)", re.ASCII)
_OWNER_LABEL = re.compile(r"_?(?!-)[a-z0-9-]{1,63}(?<!-)", re.ASCII)
_ACCOUNT = re.compile(r"[a-z][a-z0-9_-]{0,31}", re.ASCII)
_LOCAL_PART = re.compile(r"[a-z0-9](?:[a-z0-9._+-]{0,62}[a-z0-9])?", re.ASCII)
_PATH_SEGMENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}", re.ASCII)
_DB_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}", re.ASCII)
_FTP_USER = re.compile(r"[a-z][a-z0-9_.-]{0,31}", re.ASCII)
_CRON_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}", re.ASCII)


def fullmatch(pattern: re.Pattern[str], value: str) -> bool:
    """The whole of ``value`` is ASCII and matches ``pattern`` (no trailing-newline slack)."""
    return value.isascii() and pattern.fullmatch(value) is not None


def is_printable_ascii(value: str) -> bool:
    """Only the characters from space to '~': no control, no line or paragraph separator."""
    return all(" " <= c <= "~" for c in value)


def ascii_int(text: str) -> int | None:
    """The value of a run of ASCII digits 0-9, or None (``int`` also takes ' 5' and U+0665)."""
    if text and text.isascii() and text.isdigit():
        return int(text)
    return None


def hostname(value: str, *, what: str = "domain name", min_labels: int = 2) -> str:
    """RFC 1035/1123 host name, returned lower-case without the trailing dot.

    Letters, digits and hyphens; labels of 1-63 characters; at most 253 in all; the last label
    not all digits (so an IP address is never taken for a name).
    """
    if not value.isascii() or not value or value != value.strip():
        raise ValueError(
            f"{what} {value!r}: must be a non-empty ASCII name without surrounding spaces"
        )
    name = value.lower().removesuffix(".")
    if _is_address(name):
        raise ValueError(f"{what} {value!r}: must be a host name, not an address")
    if len(name) > 253:
        raise ValueError(f"{what} {value!r}: longer than 253 characters")
    labels = name.split(".")
    if len(labels) < min_labels:
        raise ValueError(f"{what} {value!r}: needs at least {min_labels} labels")
    for label in labels:
        if not fullmatch(_LABEL, label):
            raise ValueError(
                f"{what} {value!r}: label {label!r} must be 1-63 letters, digits or hyphens "
                "and must not start or end with a hyphen"
            )
    if labels[-1].isdigit():
        raise ValueError(f"{what} {value!r}: the top-level label cannot be all digits")
    return name


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def owner_name(value: str) -> str:
    """A record's owner relative to its zone, lower-case: '@', labels (a leading '_' allowed),
    and an optional '*' as the first label."""
    if value == "@":
        return value
    if not value.isascii() or not value or value != value.strip() or value.endswith("."):
        raise ValueError(
            f"record name {value!r}: give the ASCII name relative to the zone, '@' for the apex"
        )
    name = value.lower()
    for i, label in enumerate(name.split(".")):
        if label == "*" and i == 0:
            continue
        if not fullmatch(_OWNER_LABEL, label):
            raise ValueError(
                f"record name {value!r}: label {label!r} must be 1-63 letters, digits or hyphens "
                "(an optional leading '_'), not starting or ending with a hyphen"
            )
    return name


def ip_address(value: str, version: int) -> str:
    """An IPv4 or IPv6 address in its canonical text (``2001:db8::1``), with no zone index."""
    what = f"{value!r} is not an IPv{version} address"
    if not value.isascii() or "%" in value:
        # '%eth0' (a scope id) only means something on one machine, never in DNS or a config.
        raise ValueError(f"{what} (plain ASCII, no '%' scope id)")
    try:
        addr = ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(what) from None
    if addr.version != version:
        raise ValueError(what)
    return str(addr)


def _named(pattern: re.Pattern[str], value: str, what: str, rule: str) -> str:
    """`value` if it is a whole match of `pattern`; else a ValueError naming it and the rule."""
    if not fullmatch(pattern, value):
        raise ValueError(f"{what} {value!r}: {rule}")
    return value


def account(value: str) -> str:
    """A Unix account name on the host."""
    return _named(
        _ACCOUNT,
        value,
        "account",
        "must be 1-32 lower-case letters, digits, '_' or '-', starting with a letter",
    )


def local_part(value: str) -> str:
    """The part of a mailbox address before '@' (also a directory name on the host)."""
    if not fullmatch(_LOCAL_PART, value) or ".." in value:
        raise ValueError(
            f"mailbox name {value!r}: only lower-case letters, digits and . _ + - are allowed "
            "(no '/', no '..', no spaces), starting and ending with a letter or digit"
        )
    return value


def email(value: str) -> str:
    """``local@domain`` with the domain in lower case."""
    if value.count("@") != 1:
        raise ValueError(f"address {value!r}: must be local@domain")
    local, domain = value.split("@")
    return f"{local_part(local)}@{hostname(domain)}"


def rel_path(value: str) -> str:
    """A relative path inside a home directory: plain segments, no '..', no leading '/'."""
    if value.startswith("/") or "\\" in value:
        raise ValueError(f"path {value!r}: must be relative to the account's home")
    for seg in value.split("/"):
        if seg in ("", ".", "..") or not fullmatch(_PATH_SEGMENT, seg):
            raise ValueError(
                f"path {value!r}: each segment must be letters, digits, '.', '_' or '-' "
                "(no '..', no empty segments)"
            )
    return value


_ABS_PATH = re.compile(r"(?:/[A-Za-z0-9._+-]+)+", re.ASCII)


def abs_path(value: str, *, what: str = "path") -> str:
    """A normalised absolute path on a host or this machine (a host root, a key file):
    ASCII segments of letters, digits and ``._+-``; no ``.``/``..`` segments, no ``//``."""
    if posixpath.normpath(value) != value or not fullmatch(_ABS_PATH, value):
        raise ValueError(
            f"{what} {value!r}: give a normalised absolute path of ASCII letters, digits "
            "and ._+- between slashes"
        )
    return value


def db_name(value: str) -> str:
    """A database or database user name."""
    return _named(
        _DB_NAME,
        value,
        "name",
        "must be 1-32 lower-case letters, digits or '_', starting with a letter",
    )


def ftp_user(value: str) -> str:
    return _named(
        _FTP_USER,
        value,
        "FTP user",
        "1-32 lower-case letters, digits, '.', '_' or '-', starting with a letter",
    )


def cron_name(value: str) -> str:
    """The name that marks a cron entry in the account's crontab."""
    return _named(_CRON_NAME, value, "cron name", "1-32 lower-case letters, digits, '_' or '-'")


def host_address(value: str) -> str:
    """A managed host's SSH address: an IP address (canonical text, no scope id) or a host
    name (lower-case, one label allowed, e.g. ``web-07``)."""
    if value.isascii() and _is_address(value.strip("[]")):
        addr = value.strip("[]")
        return ip_address(addr, ipaddress.ip_address(addr.split("%")[0]).version)
    return hostname(value, what="host address", min_labels=1)


def tool_argv(value: tuple[str, ...], *, what: str) -> tuple[str, ...]:
    """The argv prefix of a tool on a host (``rndc -c /etc/rndc.conf``): 1-16 printable ASCII
    words, the first a command name or absolute path. Each is quoted in the script anyway;
    this keeps a layout from smuggling line breaks or option-like programs into it."""
    if not 1 <= len(value) <= 16:
        raise ValueError(f"{what}: give 1 to 16 words")
    for word in value:
        if not word or len(word) > 255 or not is_printable_ascii(word) or " " in word:
            raise ValueError(f"{what}: {word!r} must be 1-255 printable ASCII characters")
    if not fullmatch(_TOOL, value[0]):
        raise ValueError(f"{what}: {value[0]!r} must be a command name or an absolute path")
    return value


_TOOL = re.compile(r"(?:/[A-Za-z0-9._+-]+)+|[A-Za-z0-9][A-Za-z0-9._+-]*", re.ASCII)
