"""Change parameters at rest: secrets stored only as hashes, rebuilt and described again."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import TypeAdapter, ValidationError

from actors.changes.dto import (
    ACCEPTED,
)
from automation.changes import (
    CHANGE_KINDS,
    Change,
)
from automation.changes.base import SECRET_MASK
from automation.errors import ChangeValidationError
from store.read.changes import KEPT_SECRETS, SECRETS_KEY

# Kinds whose secret goes to the host only as a hash; for the others (KEPT_SECRETS: a TLS
# private key) the secret itself must reach the host, so it is kept in the SCDB, the one system
# of record, until the change settles: then scrub_kept_secrets.
SCRUBBED = "(removed once applied)"


# -- secrets at rest ---------------------------------------------------------------------------
def stored_params(change: Change) -> dict[str, Any]:
    """The change's parameters as stored: secrets masked, hashed secrets kept as their hash."""
    data = change.model_dump(mode="json")  # SecretStr dumps as "**********"
    data.pop("kind", None)
    if change.kind in KEPT_SECRETS:
        for name in change.secret_fields:
            data[name] = getattr(change, name).get_secret_value()
    elif change.secret_fields:
        data[SECRETS_KEY] = {name: change.secret_hash(name) for name in change.secret_fields}
    return data


def request_secrets(kind: str, params: dict[str, Any]) -> dict[str, str]:
    """The secrets a request carries that the SCDB keeps only as hashes (a mailbox's new
    password): handed to the executor in memory for its client check, never stored."""
    cls = CHANGE_KINDS.get(kind)
    if cls is None or kind in KEPT_SECRETS:
        return {}
    found = {name: params.get(name) for name in cls.secret_fields}
    return {n: v for n, v in found.items() if isinstance(v, str) and v != SECRET_MASK}


def scrub_kept_secrets(params: dict[str, Any]) -> dict[str, Any]:
    """The parameters of a settled change without the secrets that had to reach the host
    (a TLS private key), each replaced by its SHA-256 so it can still be recognised."""
    data = dict(params)
    for name in ("private_key",):
        value = data.get(name)
        if isinstance(value, str) and value != SCRUBBED:
            data[name] = SCRUBBED
            data[f"{name}_sha256"] = hashlib.sha256(value.encode()).hexdigest()
    return data


_STORED: TypeAdapter[Change] = TypeAdapter(Change)
# Validation context of a change accepted earlier: rules that depend on the time of day (a TLS
# certificate's validity) were checked when it was requested and are not checked again, so a
# change queued while its certificate expires is still applied and recorded.


def rebuild_change(kind: str, params: dict[str, Any]) -> Change:
    """The change again from its stored parameters, with the same secret hashes as before."""
    data = dict(params)
    hashes = data.pop(SECRETS_KEY, {})
    try:
        change = _STORED.validate_json(json.dumps({**data, "kind": kind}), context=ACCEPTED)
    except ValidationError as exc:
        raise ChangeValidationError(kind, [e["msg"] for e in exc.errors()]) from None
    change._hashes.update(hashes)
    return change


def describe_stored(kind: str, params: dict[str, Any]) -> str:
    """What a stored change does, in words; never raises (a record must not fail on it)."""
    try:
        return rebuild_change(kind, params).describe()
    except Exception:
        return f"{kind.replace('_', ' ')} change"


def clean_output(text: str) -> str:
    """Host output as stored: PostgreSQL refuses NUL in text, so it is shown as U+FFFD."""
    return text.replace("\x00", "\ufffd")
