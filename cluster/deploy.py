"""Deploys the actors of the desk as named Ray actors, with every ray.remote option in one place.

An actor class that takes its collaborators (database, services, directory) in its constructor,
so that it is a plain object in tests, is deployed as a subclass here that builds them in the
actor's own process (they do not pickle): `AccountSessionsActor`, `ChangeExecutorActor`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import ray

from actors import names
from actors.accounts.lane import AccountSessions
from actors.changes.executor import ChangeExecutor
from actors.changes.hosts import HostRegistry
from actors.changes.requests import ChangeService
from actors.changes.settle import ChangeSettler
from actors.changes.shards import SHARDS as CHANGE_SHARDS
from actors.clock import OffsetClock, SystemClock
from actors.config import ActorConfig
from actors.directory import Directory
from actors.notify.mail_actor import MailOut
from actors.notify.notifier import Notifier
from actors.sla.sla_clock import SlaClock
from actors.tickets.intake import Intake
from actors.tickets.service import TicketService
from actors.tickets.tier_pool import TierPool
from store.db import Database

TIERS = (1, 2, 3)
EXECUTOR_DB_POOL = 3  # an executor shard's few threads: recorder, sweeper, calls


class AccountSessionsActor(AccountSessions):
    """An account-lane shard as Ray runs it, with its collaborators."""

    def __init__(self, index: int, config: ActorConfig) -> None:
        db = Database(config.database_url, pool_size=config.db_pool_size)
        service = TicketService(db, config)
        super().__init__(
            index,
            db,
            service=service,
            changes=ChangeService(db, config),
            reads=service.projection,
            directory=Directory(config.namespace, config.session_shards),
        )


class ChangeExecutorActor(ChangeExecutor):
    """A change-executor shard as Ray runs it, with its collaborators."""

    def __init__(self, index: int, shards: int, config: ActorConfig) -> None:
        db = Database(config.database_url, pool_size=EXECUTOR_DB_POOL)
        super().__init__(
            index,
            shards,
            db,
            changes=ChangeService(db, config),
            settler=ChangeSettler(db, config),
            registry=HostRegistry(db),
            directory=Directory(config.namespace, config.session_shards),
            journal_keep_days=config.retention.host_journal_retention_days,
            journal_prune_every=config.retention.prune_every_seconds,
            lane_queue_max=config.queues.host_queue_max,
        )


def _options(name: str, namespace: str, *, detached: bool) -> dict[str, Any]:
    """Every actor: no CPU reservation (they wait on I/O; a 2-core box would fit two),
    restarted forever after a crash, calls retried on restart (every method is idempotent)."""
    opts: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "num_cpus": 0,
        "max_restarts": -1,
        "max_task_retries": -1,
        "max_concurrency": 1000,
        "get_if_exists": True,
    }
    if detached:
        opts["lifetime"] = "detached"
    return opts


@dataclass
class Deployment:
    config: ActorConfig
    directory: Directory
    handles: dict[str, Any]

    def kill(self, name: str, *, restart: bool = True) -> None:
        """Kill one actor as a crash would (tests and chaos drills); Ray restarts it."""
        ray.kill(self.handles[name], no_restart=not restart)

    def stop(self) -> None:
        for handle in self.handles.values():
            ray.kill(handle, no_restart=True)


def deploy(
    config: ActorConfig, *, detached: bool = False, manual_clock: bool = False
) -> Deployment:
    """Create (or find, when another gateway already did) every actor of the desk."""
    ns = config.namespace

    def start(name: str, cls: type, *args: Any) -> None:
        opts = _options(name, ns, detached=detached)
        handles[name] = ray.remote(cls).options(**opts).remote(*args)

    handles: dict[str, Any] = {}
    start(names.NOTIFIER, Notifier, config)
    start(names.MAILER, MailOut, config)
    for tier in TIERS:
        start(names.tier_pool(tier), TierPool, tier, config)
    for index in range(config.session_shards):
        start(names.session_shard(index), AccountSessionsActor, index, config)
    clock = OffsetClock() if manual_clock else SystemClock()
    start(names.SLA, SlaClock, config, None, clock)
    start(names.INTAKE, Intake, config)
    for index in range(CHANGE_SHARDS):
        # A threaded actor (blocking SSH lanes inside): a few threads serve its calls.
        name = names.change_executor(index)
        opts = {**_options(name, ns, detached=detached), "max_concurrency": 8}
        handles[name] = (
            ray.remote(ChangeExecutorActor).options(**opts).remote(index, CHANGE_SHARDS, config)
        )
    # Wait until every actor has built its state, so the first request finds them ready.
    ray.get([h.__ray_ready__.remote() for h in handles.values()])
    return Deployment(config, Directory(ns, config.session_shards), handles)
