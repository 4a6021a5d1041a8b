"""The change executors' shards: which one owns a managed host, and handing changes to it."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from actors import names
from actors.directory import Directory, fire

log = logging.getLogger(__name__)

SHARDS = 2  # executor actors; hosts are hashed to them (a 2-core box: keep processes few)
REGISTRAR = 0  # the shard that registers new hosts (any executor could: it checks the client
# key where the executors run)


def executor_name(host_id: int) -> str:
    """The executor shard that owns the managed host with this SCDB id."""
    return names.change_executor(names.shard_of(host_id, SHARDS))


def executor_names() -> list[str]:
    return [names.change_executor(i) for i in range(SHARDS)]


def hand_over(
    directory: Directory,
    changes: Iterable[tuple[int, str]],
    secrets: dict[str, dict[str, str]] | None = None,
) -> None:
    """Wake the executors that own these (host id, change id) pairs: one message per shard.
    A lost message is harmless: the change is queued in the SCDB, and every executor sweeps
    its hosts' pending changes every few seconds (and on start).

    ``secrets`` (change id -> field -> value) are the passwords of the requests, handed on in
    this message only (the SCDB keeps their hashes): the executor's client check logs in with
    them. A change picked up by a sweep instead has none, and is checked without them."""
    by_shard: dict[str, list[str]] = {}
    for host_id, change_id in changes:
        by_shard.setdefault(executor_name(host_id), []).append(change_id)
    for name, ids in by_shard.items():
        try:
            handle = directory.get(name)
        except Exception as exc:  # not started (yet): its sweep picks the changes up
            log.warning("changes %s stay queued: executor %s not found (%s)", ids, name, exc)
            continue
        mine = {i: secrets[i] for i in ids if secrets and i in secrets}
        if mine:
            fire(handle.submit, ids, mine)
        else:
            fire(handle.submit, ids)
