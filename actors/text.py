"""Text people type, checked at the edge: one line, free text, bounded JSON parameters."""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

from pydantic import AfterValidator

# -- text people type ---------------------------------------------------------------------------
# C0 controls, DEL, C1 controls (U+0085 among them) and the Unicode line and paragraph
# separators: NUL is refused by PostgreSQL (one in a group commit failed every ticket of the
# batch) and the others split or hide lines wherever the text is shown or parsed again.
_LINE_OK = re.compile(r"[^\x00-\x1f\x7f-\x9f\u2028\u2029]*")
_TEXT_OK = re.compile(r"[^\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]*")  # \t and \n allowed
PARAMS_MAX_BYTES = 200 * 1024  # a TLS certificate chain and its key fit (64 KiB each at most)
PARAMS_MAX_DEPTH = 6
PARAMS_MAX_NODES = 2000


def _first_bad(value: str, ok: re.Pattern[str]) -> str:
    bad = next(c for c in value if not ok.fullmatch(c))
    return f"U+{ord(bad):04X}"


def plain_line(value: str) -> str:
    """A one-line text (a subject, a reason): no control characters at all."""
    if not _LINE_OK.fullmatch(value):
        raise ValueError(f"control character {_first_bad(value, _LINE_OK)} is not allowed")
    return value


def plain_text(value: str) -> str:
    """A multi-line text (a message body): line breaks and tabs, no other control character.
    CR LF and a lone CR become LF, so every stored body has one kind of line break."""
    value = value.replace("\r\n", "\n").replace("\r", "\n")
    if not _TEXT_OK.fullmatch(value):
        raise ValueError(f"control character {_first_bad(value, _TEXT_OK)} is not allowed")
    return value


def scrub(value: str, *, lines: bool = True) -> str:
    """Text made by the system from other text (host output, a change's description) made
    fit for a ticket: every character `plain_text` (or `plain_line`) refuses becomes U+FFFD."""
    ok = _TEXT_OK if lines else _LINE_OK
    value = value.replace("\r\n", "\n")
    return "".join(c if ok.fullmatch(c) else "\ufffd" for c in value)


def bounded_params(value: dict[str, Any]) -> dict[str, Any]:
    """A change's parameters: plain JSON of bounded size and depth, keys short identifiers,
    strings without control characters other than line breaks and tabs (PEM text has them)."""
    nodes = 0

    def walk(v: Any, depth: int, where: str) -> None:
        nonlocal nodes
        nodes += 1
        if nodes > PARAMS_MAX_NODES:
            raise ValueError(f"more than {PARAMS_MAX_NODES} values")
        if depth > PARAMS_MAX_DEPTH:
            raise ValueError(f"{where}: nested deeper than {PARAMS_MAX_DEPTH} levels")
        if isinstance(v, dict):
            for k, item in v.items():
                if not isinstance(k, str) or not re.fullmatch(r"[a-z][a-z0-9_]{0,63}", k):
                    raise ValueError(f"{where}: key {str(k)[:40]!r} is not a parameter name")
                walk(item, depth + 1, f"{where}.{k}")
        elif isinstance(v, list):
            for i, item in enumerate(v):
                walk(item, depth + 1, f"{where}[{i}]")
        elif isinstance(v, str):
            text = v.replace("\r\n", "\n")
            if not _TEXT_OK.fullmatch(text):
                raise ValueError(
                    f"{where}: control character {_first_bad(text, _TEXT_OK)} is not allowed"
                )

    walk(value, 1, "params")
    size = len(json.dumps(value, ensure_ascii=False).encode())
    if size > PARAMS_MAX_BYTES:
        raise ValueError(f"params: {size} bytes, more than {PARAMS_MAX_BYTES}")
    return value


def category_name(value: str) -> str:
    if not re.fullmatch(r"[a-z_]{1,32}", value):
        raise ValueError("a category is 1-32 lower-case letters or '_'")
    return value


Line = Annotated[str, AfterValidator(plain_line)]
Category = Annotated[str, AfterValidator(category_name)]
Text = Annotated[str, AfterValidator(plain_text)]
Params = Annotated[dict[str, Any], AfterValidator(bounded_params)]
