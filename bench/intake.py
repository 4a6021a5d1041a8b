"""Ticket intake over HTTP: the actor path against a bare baseline, in the same run.

- actor path: ``POST /api/v1/tickets`` of the real gateway -> Intake actor (group commit) ->
  TicketService.create_many -> TierPool(1) -> assign_many.
- bare baseline: the same gateway process, app and auth, plus a route defined here only,
  ``POST /bench/bare-tickets``, that inserts the ticket row with ``TicketRepository.create`` in
  one transaction per request, no actors. It writes into a second throw-away database seeded
  with the same accounts and users, so the tier pools never see (or assign) its rows and the
  actor path's background work can not slow it down.

Set-up: a throw-away PostgreSQL database (or SQLite file), a local Ray (no dashboard, 128 MB
object store), every actor of the desk deployed, SLA policies, 20 tier-1 agents online with
capacity 1000 and every skill (agents are never the limit), 8 customer accounts with a token
each. The gateway runs under uvicorn (uvloop + httptools) in its own process that joins this
Ray by its GCS address: a separate process so that the load generator never shares the
gateway's interpreter lock (as in production), and the explicit address (not "auto") so that
another Ray on the same machine, e.g. a test session, is never joined by mistake.

Load generator (this process): a minimal asyncio HTTP/1.1 client over keep-alive loopback
connections, so that the client costs as little CPU as possible on this 2-core box.

1. closed loop, ``--concurrency`` requests in flight, ``--seconds`` each: actor path, then bare.
2. open loop at ``--rate`` tickets/s for ``--open-seconds``: each request starts at its
   scheduled time (a late start counts against us: latency is measured from the scheduled
   time), and create->assigned latency is the 'assigned' ticket_event's created_at (written
   in the assigning transaction, a few ms before its commit, by the tier-pool process) minus
   the client's scheduled send time, both wall clock of this machine.
3. checks: an Idempotency-Key replay returns the first ticket; no ticket has two 'assigned'
   events; every ticket filed through the actors got assigned.

Run: ``.venv/bin/python bench/intake.py [--seconds 10] [--database postgresql|sqlite]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

# Run as a script, this file's directory comes first on sys.path; make the project importable.
ROOT = Path(__file__).resolve().parent.parent
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from fastapi import Request
from pydantic import BaseModel
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from actors.directory import Directory
from automation.loopback import free_port
from gateway.app import create_app
from gateway.auth import Caller
from gateway.errors import NotFound
from gateway.platform import Platform
from gateway.schemas import TicketCreate
from gateway.settings import GatewaySettings
from store.db import Database
from store.repositories import TicketRepository

POSTGRES_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
REDIS_URL = "redis://127.0.0.1:6379/14"
AGENT_CAPACITY = 1000  # the schema's maximum
CUSTOMERS = 8
SKILLS = ["general", "dns", "web", "email", "database", "ftp", "tls"]
SUBJECTS = [
    ("Website down", "My site shows a 500 error since this morning."),
    ("Mailbox full", "I can not receive email, the mailbox seems full."),
    ("DNS record", "Please add a TXT record for domain verification."),
    ("FTP login", "My FTP password does not work any more."),
    ("Certificate", "The TLS certificate of my shop expired."),
    ("Database", "MySQL database import fails with a timeout."),
]
ACTOR_PATH = "/api/v1/tickets"
BARE_PATH = "/bench/bare-tickets"


class BareTicket(BaseModel):
    number: str
    status: str


# -- the gateway process ----------------------------------------------------------------------
def serve_gateway(cfg: dict[str, Any]) -> None:
    """Child process: join the Ray, build the real gateway app, add the bare route, serve."""
    import ray
    import uvicorn

    ray.init(  # the token comes with the environment start_ray set in the parent
        address=cfg["ray_address"],
        namespace=cfg["namespace"],
        logging_level="WARNING",
        log_to_driver=False,
    )
    platform = Platform(
        db=Database(cfg["database_url"]),
        redis_url=cfg["redis_url"],
        directory=Directory(cfg["namespace"], cfg["shards"]),
        # A load generator: a few accounts at hundreds of tickets a second; no API rate limits.
        settings=GatewaySettings(requests_per_minute=0, tickets_per_minute=0),
    )
    if os.environ.get("BENCH_INTAKE_CALLS"):  # experiments only
        platform.intake_calls_in_flight = int(os.environ["BENCH_INTAKE_CALLS"])
    bare_db = Database(cfg["bare_url"])
    app = create_app(platform)

    @app.post(BARE_PATH, status_code=201, response_model=BareTicket)
    async def bare_ticket(body: TicketCreate, request: Request, caller: Caller) -> BareTicket:
        """The practical limit: auth, validation, one INSERT in one transaction, no actors."""
        account_id = caller.account_id if caller.role == "customer" else body.account_id
        if account_id is None:
            raise NotFound("no account")

        def insert() -> BareTicket:
            with bare_db.write() as s:
                t = TicketRepository(s).create(
                    account_id=account_id,
                    subject=body.subject,
                    channel=(body.channel.value if body.channel else "portal"),
                    category=body.category or "general",
                    priority=body.priority.value if body.priority else "normal",
                    requester_user_id=caller.user_id,
                )
                return BareTicket(number=t.number, status=t.status)

        return await asyncio.to_thread(insert)

    uvicorn.run(
        app,
        host="127.0.0.1",
        port=cfg["port"],
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
        timeout_keep_alive=120,  # the open loop's pool keeps some connections idle a while
    )


# -- a small keep-alive HTTP/1.1 client --------------------------------------------------------
class Conn:
    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
            sock = self.writer.get_extra_info("socket")
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        assert self.reader is not None
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        body = await self.reader.readexactly(length) if length else b""
        return status, body

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def post(port: int, path: str, token: str, payload: dict[str, Any], key: str) -> bytes:
    body = json.dumps(payload).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nIdempotency-Key: {key}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


@dataclass
class Load:
    port: int
    tokens: list[str]
    n: int = 0

    def next_request(self, path: str) -> bytes:
        self.n += 1
        subject, body = SUBJECTS[self.n % len(SUBJECTS)]
        payload = {"subject": f"{subject} #{self.n}", "body": body}
        token = self.tokens[self.n % len(self.tokens)]
        return post(self.port, path, token, payload, f"bench-{uuid.uuid4()}")


@dataclass
class Result:
    ok: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0
    numbers: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    def error(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1


async def closed_loop(load: Load, path: str, concurrency: int, seconds: float) -> Result:
    """`concurrency` clients, each sending its next request as soon as the last one answered."""
    res = Result()
    conns = [Conn(load.port) for _ in range(concurrency)]
    start = time.perf_counter()
    deadline = start + seconds

    async def worker(conn: Conn) -> None:
        while time.perf_counter() < deadline:
            raw = load.next_request(path)
            t0 = time.perf_counter()
            try:
                status, body = await conn.request(raw)
            except (OSError, asyncio.IncompleteReadError) as exc:
                res.error(type(exc).__name__)
                conn.close()
                continue
            if status == 201:
                res.ok += 1
                res.latencies.append(time.perf_counter() - t0)
                res.numbers.append(json.loads(body)["number"])
            else:
                res.error(f"HTTP {status}")

    await asyncio.gather(*(worker(c) for c in conns))
    res.seconds = time.perf_counter() - start
    for c in conns:
        c.close()
    return res


async def open_loop(
    load: Load, rate: float, seconds: float, max_conns: int = 256
) -> tuple[Result, dict[str, float]]:
    """Requests start on a fixed schedule whatever the answers do; returns the result and the
    scheduled wall-clock send time of every ticket filed."""
    res = Result()
    sent_at: dict[str, float] = {}
    idle: list[Conn] = []
    opened = 0
    tasks: list[asyncio.Task[None]] = []
    total = int(rate * seconds)
    t0 = time.perf_counter()
    wall0 = time.time()

    async def one(i: int) -> None:
        nonlocal opened
        scheduled_wall = wall0 + i / rate
        raw = load.next_request(ACTOR_PATH)
        if idle:
            conn = idle.pop(0)
        elif opened < max_conns:
            opened += 1
            conn = Conn(load.port)
        else:
            res.error("no free connection")
            return
        try:
            status, body = await conn.request(raw)
        except (OSError, asyncio.IncompleteReadError) as exc:
            res.error(type(exc).__name__)
            conn.close()
            return
        idle.append(conn)
        if status == 201:
            res.ok += 1
            res.latencies.append(time.time() - scheduled_wall)
            number = json.loads(body)["number"]
            sent_at[number] = scheduled_wall
            res.numbers.append(number)
        else:
            res.error(f"HTTP {status}")

    for i in range(total):
        delay = t0 + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i)))
    await asyncio.gather(*tasks)
    res.seconds = time.perf_counter() - t0
    for c in idle:
        c.close()
    return res, sent_at


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


# -- set-up -------------------------------------------------------------------------------------
def new_database(kind: str, workdir: Path) -> tuple[str, Any]:
    """A throw-away database URL and a function that drops it."""
    if kind == "sqlite":
        path = workdir / f"{secrets.token_hex(4)}.db"
        return f"sqlite:///{path}", lambda: None
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"sitedesk_bench_{secrets.token_hex(4)}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    url = make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    return url, drop


def seed_customers(db: Database, tag: str, *, with_tokens: bool) -> list[tuple[int, str]]:
    """CUSTOMERS accounts with one customer user each: [(user id, token)]."""
    from store.repositories import AccountRepository, TokenRepository, UserRepository

    out: list[tuple[int, str]] = []
    with db.write() as s:
        for i in range(CUSTOMERS):
            accounts = AccountRepository(s)
            account = accounts.create(
                code=f"B-{tag}-{i}", name=f"Bench {i}", unix_user=f"b{i}{tag}"
            )
            email = f"bench.{i}.{tag}@example.test"
            contact = accounts.add_contact(account.id, name=f"Bench {i}", email=email)
            user = UserRepository(s).create(
                email=email, display_name=f"Bench customer {i}", role="customer",
                account_id=account.id, contact_id=contact.id,
            )  # fmt: skip
            token = TokenRepository(s).issue(user.id, name="bench")[0] if with_tokens else ""
            out.append((user.id, token))
    return out


def seed_agents(db: Database, tag: str, count: int) -> list[int]:
    from store.repositories import AgentRepository, UserRepository

    ids = []
    with db.write() as s:
        for i in range(count):
            user = UserRepository(s).create(
                email=f"agent.{i}.{tag}@sitedesk.test", display_name=f"L1 agent {i}", role="agent"
            )
            agent = AgentRepository(s).create(
                user_id=user.id, tier=1, capacity=AGENT_CAPACITY, skills=SKILLS
            )
            ids.append(agent.id)
    return ids


def wait_http(port: int, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the gateway process exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.1)
    raise SystemExit("the gateway did not start")


def unassigned(db: Database) -> int:
    from store.models import Ticket

    with db.read() as s:
        q = select(func.count()).select_from(Ticket).where(Ticket.status == "new")
        return int(s.scalar(q) or 0)


def wait_assigned(db: Database, timeout: float = 60.0) -> float:
    """Seconds until no ticket waits; raises when they still wait after `timeout`."""
    t0 = time.monotonic()
    while unassigned(db):
        if time.monotonic() - t0 > timeout:
            raise SystemExit(f"{unassigned(db)} tickets still unassigned after {timeout}s")
        time.sleep(0.05)
    return time.monotonic() - t0


def assigned_at(db: Database, numbers: list[str]) -> dict[str, datetime]:
    from store.models import TicketEvent
    from store.models.ticket import ticket_id_from_number, ticket_number

    ids = [ticket_id_from_number(n) for n in numbers]
    out: dict[str, datetime] = {}
    with db.read() as s:
        for i in range(0, len(ids), 1000):
            rows = s.execute(
                select(TicketEvent.ticket_id, TicketEvent.created_at).where(
                    TicketEvent.ticket_id.in_(ids[i : i + 1000]), TicketEvent.kind == "assigned"
                )
            )
            for tid, at in rows:
                out[ticket_number(tid)] = at
    return out


def cpu_by_process(root: int) -> dict[str, float]:
    """CPU seconds used so far by this process tree (the client, the gateway, each Ray actor
    and Ray's own daemons) and by every PostgreSQL process, from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    info: dict[int, tuple[str, float]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        pid = int(entry)
        parents[pid] = int(fields[1])
        info[pid] = (cmd, (int(fields[11]) + int(fields[12])) / tick)
    out: dict[str, float] = {}
    for pid, (cmd, cpu) in info.items():
        p, ours = pid, False
        while p > 1:
            if p == root:
                ours = True
                break
            p = parents.get(p, 0)
        if cmd.startswith("postgres"):
            name = "postgresql (all)"
        elif not ours:
            continue
        elif pid == root:
            name = "client"
        elif "--serve-gateway" in cmd:
            name = "gateway"
        elif "--serve-door" in cmd:  # bench/email.py's SMTP door
            name = "smtp door"
        elif cmd.startswith("ray::"):
            name = cmd.split()[0].split(".")[0].split(":")[-1]
        else:
            name = "ray daemons"
        out[name] = out.get(name, 0.0) + cpu
    return out


def cpu_per_ticket(before: dict[str, float], after: dict[str, float], tickets: int) -> str:
    used = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after}
    top = sorted(used.items(), key=lambda kv: -kv[1])
    total = sum(used.values())
    parts = [f"{k} {1000 * v / max(tickets, 1):.2f}" for k, v in top if v > 0.05]
    return f"CPU ms/ticket: total {1000 * total / max(tickets, 1):.2f} = " + ", ".join(parts)


def mark(ok: bool) -> str:
    return "PASS" if ok else "MISS"


# -- the run ------------------------------------------------------------------------------------
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10.0, help="each closed-loop phase")
    ap.add_argument("--database", choices=["postgresql", "sqlite"], default="postgresql")
    ap.add_argument(
        "--concurrency",
        default="64,256",
        help="closed-loop requests in flight; each path's max over these levels is reported",
    )
    ap.add_argument("--rate", type=float, default=200.0, help="open-loop tickets/s")
    ap.add_argument("--open-seconds", type=float, default=10.0)
    ap.add_argument("--redis-url", default=REDIS_URL)
    ap.add_argument("--actor-niceness", type=int, default=0, help="Ray's default is 15")
    ap.add_argument(
        "--no-mail", action="store_true",
        help="without outgoing mail (sitedesk up always has it: the notices go to a sink)",
    )  # fmt: skip
    ap.add_argument("--serve-gateway", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_gateway:
        serve_gateway(json.loads(args.serve_gateway))
        return 0

    import ray

    from actors.config import ActorConfig
    from actors.mail.settings import MailSettings
    from cluster.deploy import deploy
    from cluster.ray_runtime import ray_env_defaults, start_ray, stop_ray
    from cluster.settings import ClusterSettings
    from tests.desk import seed_sla

    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="intake-bench-")))
        os.environ.setdefault("RAY_TMPDIR", str(workdir))
        url, drop = new_database(args.database, workdir)
        stack.callback(drop)
        bare_url, drop_bare = new_database(args.database, workdir)
        stack.callback(drop_bare)
        db, bare_db = Database(url), Database(bare_url)
        stack.callback(db.dispose)
        stack.callback(bare_db.dispose)
        db.upgrade()
        bare_db.upgrade()
        seed_sla(db)
        tag = secrets.token_hex(3)
        customers = seed_customers(db, tag, with_tokens=True)
        mirrored = seed_customers(bare_db, tag, with_tokens=False)
        assert [u for u, _ in customers] == [u for u, _ in mirrored], "bare seed ids differ"
        # enough capacity for 1,500 tickets/s in every closed-loop actor second, and the open loop
        levels = len(str(args.concurrency).split(","))
        need = (args.seconds * levels + 2) * 1500 + args.rate * args.open_seconds
        agent_ids = seed_agents(db, tag, max(20, math.ceil(need / AGENT_CAPACITY)))

        ray_env_defaults()
        # Ray starts its workers at niceness 15; on this shared 2-core box that lets the gateway,
        # PostgreSQL and the load generator (niceness 0) starve the actors. Production runs Ray
        # as its own service; here every piece competes on equal terms.
        os.environ.setdefault("RAY_worker_niceness", str(args.actor_niceness))
        namespace = f"sitedesk-bench-{tag}"
        start_ray(  # as `sitedesk up` does: private, loopback, token auth
            ClusterSettings(data_dir=workdir / "data", ray_address=None, ray_token_file=None,
                            ray_namespace=namespace, ray_dashboard=False,
                            ray_object_store_mb=128)
        )  # fmt: skip
        stack.callback(stop_ray)
        # A load generator is a few accounts opening thousands of tickets: the per-account
        # hourly limits a real customer meets are off here.
        # Outgoing mail as `sitedesk up` has it: each ticket's opening notice to the customer and
        # assignment notice to the agent, planned by the notifier and written to a local sink.
        mail = MailSettings(mail_secret=secrets.token_hex(32), mail_sink_dir=str(workdir / "sent"))
        if args.no_mail:
            mail = MailSettings()  # no Message-ID key: the notifier sends no mail
        config = ActorConfig(database_url=url, redis_url=args.redis_url, namespace=namespace,
                             customer_tickets_per_hour=0, customer_changes_per_hour=0,
                             mail=mail)  # fmt: skip
        deployment = deploy(config)
        pool = deployment.directory.pool(1)
        ray.get([pool.set_presence.remote(a, "online") for a in agent_ids])

        port = free_port()
        child_cfg = {
            "ray_address": ray.get_runtime_context().gcs_address,
            "namespace": namespace,
            "shards": config.session_shards,
            "database_url": url,
            "bare_url": bare_url,
            "redis_url": args.redis_url,
            "port": port,
        }
        proc = subprocess.Popen(
            [
                sys.executable,
                str(Path(__file__).resolve()),
                "--serve-gateway",
                json.dumps(child_cfg),
            ]
        )

        def stop_gateway() -> None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()

        stack.callback(stop_gateway)
        wait_http(port, proc)
        load = Load(port, [t for _, t in customers])
        import uvloop  # the client's loop too: less CPU per request on this 2-core box

        return uvloop.run(run(args, load, db, bare_db))
    return 0


_last_router: dict[str, float] = {}


def router_stats() -> str:
    """The router's group commits since the last call: how many, how big, how long."""
    import ray

    from actors.names import INTAKE

    stats = ray.get(ray.get_actor(INTAKE).stats.remote())
    batches = stats.get("batches", 0) - _last_router.get("batches", 0)
    tickets = stats.get("mean_batch", 0) * stats.get("batches", 0) - _last_router.get("n", 0)
    spent = stats.get("mean_commit_ms", 0) * stats.get("batches", 0) - _last_router.get("ms", 0)
    _last_router.update(
        batches=stats.get("batches", 0),
        n=stats.get("mean_batch", 0) * stats.get("batches", 0),
        ms=stats.get("mean_commit_ms", 0) * stats.get("batches", 0),
    )
    if not batches:
        return "router: no group commit"
    return (f"router: {batches} group commits, mean {tickets / batches:.1f} tickets, "
            f"mean {spent / batches:.1f} ms")  # fmt: skip


async def run(args: argparse.Namespace, load: Load, db: Database, bare_db: Database) -> int:
    print(f"intake bench: {args.database}, {os.cpu_count()} cores, "
          f"closed loop {args.concurrency} in flight x {args.seconds:.0f}s each, "
          f"open loop {args.rate:.0f}/s x {args.open_seconds:.0f}s", flush=True)  # fmt: skip
    # warm-up: token cache, connection pools, actor handles, code paths
    await closed_loop(load, ACTOR_PATH, 64, 2.0)
    await closed_loop(load, BARE_PATH, 64, 1.0)
    await asyncio.to_thread(wait_assigned, db)
    await asyncio.to_thread(router_stats)  # the warm-up's commits are not counted

    levels = [int(c) for c in str(args.concurrency).split(",")]
    actors: list[tuple[int, Result]] = []
    bares: list[tuple[int, Result]] = []
    drains: dict[int, float] = {}
    for level in levels:
        cpu0 = cpu_by_process(os.getpid())
        res = await closed_loop(load, ACTOR_PATH, level, args.seconds)
        wait = await asyncio.to_thread(wait_assigned, db)
        drains[level] = wait
        print(f"  actor  {level:4d} in flight: {res.rate:5.0f}/s ({res.ok} in {res.seconds:.1f}s, "
              f"all assigned {wait:.2f}s after the last answer), errors {res.errors or 0}; "
              + cpu_per_ticket(cpu0, cpu_by_process(os.getpid()), res.ok), flush=True)  # fmt: skip
        print("         " + await asyncio.to_thread(router_stats), flush=True)
        actors.append((level, res))
    for level in levels:
        cpu0 = cpu_by_process(os.getpid())
        res = await closed_loop(load, BARE_PATH, level, args.seconds)
        print(f"  bare   {level:4d} in flight: {res.rate:5.0f}/s ({res.ok} in {res.seconds:.1f}s), "
              f"errors {res.errors or 0}; "
              + cpu_per_ticket(cpu0, cpu_by_process(os.getpid()), res.ok), flush=True)  # fmt: skip
        bares.append((level, res))
    actor_level, actor = max(actors, key=lambda lr: lr[1].rate)
    bare_level, bare = max(bares, key=lambda lr: lr[1].rate)
    assigned_rate = actor.ok / (actor.seconds + drains[actor_level])
    await asyncio.sleep(1.0)
    cpu0 = cpu_by_process(os.getpid())
    opened, sent_at = await open_loop(load, args.rate, args.open_seconds)
    print("  open   " + cpu_per_ticket(cpu0, cpu_by_process(os.getpid()), opened.ok), flush=True)
    print("  " + await asyncio.to_thread(router_stats), flush=True)
    await asyncio.to_thread(wait_assigned, db)
    at = await asyncio.to_thread(assigned_at, db, opened.numbers)
    lat = [(at[n].timestamp() - sent_at[n]) * 1000 for n in opened.numbers if n in at]
    print(f"  open loop: {opened.ok} tickets in {opened.seconds:.1f}s "
          f"({opened.rate:.0f}/s achieved), errors {opened.errors or 0}", flush=True)  # fmt: skip

    # -- checks ---------------------------------------------------------------------------
    filed = [n for _, r in actors for n in r.numbers]
    checks = await asyncio.to_thread(run_checks, load, db, filed + opened.numbers)

    ratio = actor.rate / bare.rate if bare.rate else 0.0
    p50, p99 = pct(lat, 50), pct(lat, 99)
    http50 = pct([x * 1000 for x in actor.latencies], 50)
    http99 = pct([x * 1000 for x in actor.latencies], 99)
    bare50 = pct([x * 1000 for x in bare.latencies], 50)
    bare99 = pct([x * 1000 for x in bare.latencies], 99)
    post50 = pct([x * 1000 for x in opened.latencies], 50)
    post99 = pct([x * 1000 for x in opened.latencies], 99)
    pg = args.database == "postgresql"
    rows = [
        (f"(a) actor path, max tickets/s ({actor_level} in flight)", f"{actor.rate:8.0f}",
         "(e) >= 500" if pg else "(e) >= 500 (PostgreSQL)", mark(actor.rate >= 500)),
        ("    same, created and assigned, tickets/s", f"{assigned_rate:8.0f}", "", ""),
        ("    POST latency p50 / p99 ms", f"{http50:4.0f}/{http99:<4.0f}", "", ""),
        (f"(b) bare baseline, max tickets/s ({bare_level} in flight)", f"{bare.rate:8.0f}",
         "", ""),
        ("    POST latency p50 / p99 ms", f"{bare50:4.0f}/{bare99:<4.0f}", "", ""),
        ("(c) ratio actor / bare", f"{ratio:8.2f}", ">= 0.60", mark(ratio >= 0.60)),
        (f"(d) at {args.rate:.0f}/s: create->assigned p50 ms", f"{p50:8.1f}", "", ""),
        (f"    at {args.rate:.0f}/s: create->assigned p99 ms", f"{p99:8.1f}", "<= 50",
         mark(p99 <= 50 and len(lat) == opened.ok and not opened.errors)),
        (f"    at {args.rate:.0f}/s: POST answered p50 / p99 ms", f"{post50:4.0f}/{post99:<4.0f}",
         "", ""),
        ("(e) tickets/s with " + args.database, f"{actor.rate:8.0f}", ">= 500",
         mark(actor.rate >= 500) if pg else "n/a (target is for PostgreSQL)"),
    ]  # fmt: skip
    print()
    print(f"{'figure':<48} {'value':>9}  {'target':<12} result")
    for name, value, target, result in rows:
        print(f"{name:<48} {value:>9}  {target:<12} {result}")
    print()
    print("  " + await asyncio.to_thread(mail_stats), flush=True)
    for name, ok in checks:
        print(f"check: {name}: {mark(ok)}")
    return 0


def mail_stats(timeout: float = 120.0) -> str:
    """The desk's outgoing mail: how many it planned, and how long after the last answer
    the sink had them all."""
    import ray

    from actors.names import MAILER

    start = time.monotonic()
    while True:
        stats = ray.get(ray.get_actor(MAILER).stats.remote())
        planned, sent = stats.get("mail_planned", 0), stats.get("mail_sent", 0)
        if not planned:
            return "mail: off (--no-mail)"
        waited = time.monotonic() - start
        if sent >= planned or waited > timeout:
            return (f"mail: {planned} planned, {sent} in the sink "
                    f"{waited:.1f}s after the checks began waiting")  # fmt: skip
        time.sleep(0.2)


def run_checks(load: Load, db: Database, numbers: list[str]) -> list[tuple[str, bool]]:
    import httpx

    from store.models import Ticket, TicketEvent
    from store.models.ticket import ticket_id_from_number

    out = []
    headers = {"Authorization": f"Bearer {load.tokens[0]}", "Idempotency-Key": "bench-replay"}
    payload = {"subject": "Replay me", "body": "The same request twice."}
    with httpx.Client(base_url=f"http://127.0.0.1:{load.port}", timeout=30) as c:
        first = c.post(ACTOR_PATH, json=payload, headers=headers)
        again = c.post(ACTOR_PATH, json=payload, headers=headers)
    out.append((
        "Idempotency-Key replay returns the first ticket",
        first.status_code == 201 and again.status_code in (200, 201)
        and first.json()["number"] == again.json()["number"],
    ))  # fmt: skip
    with db.read() as s:
        twice = s.scalar(
            select(func.count()).select_from(
                select(TicketEvent.ticket_id)
                .where(TicketEvent.kind == "assigned")
                .group_by(TicketEvent.ticket_id)
                .having(func.count() > 1)
                .subquery()
            )
        )
        ids = {ticket_id_from_number(n) for n in numbers}
        owned = s.scalar(
            select(func.count()).select_from(Ticket).where(
                Ticket.id.in_(list(ids)), Ticket.owner_agent_id.is_not(None)
            )
        )  # fmt: skip
        # every filed ticket has its created event, timeline entry and outbox row
        created = s.scalar(text("SELECT count(*) FROM ticket_events WHERE kind = 'created'"))
        timeline = s.scalar(
            text("SELECT count(*) FROM timeline_entries WHERE kind = 'ticket.created'")
        )
        outbox = s.scalar(text("SELECT count(*) FROM outbox_events WHERE topic = 'ticket.created'"))
        tickets = s.scalar(text("SELECT count(*) FROM tickets"))
    out.append(("no ticket assigned twice", twice == 0))
    out.append((f"every measured ticket assigned ({owned}/{len(ids)})", owned == len(ids)))
    out.append((
        f"created event + timeline + outbox per ticket ({tickets}/{created}/{timeline}/{outbox})",
        tickets == created == timeline == outbox,
    ))  # fmt: skip
    return out


if __name__ == "__main__":
    sys.exit(main())
