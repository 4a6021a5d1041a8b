"""Changes over HTTP, applied by the executor actors to real sshd + named hosts, watched live."""

from __future__ import annotations

import hashlib
import imaplib
import json
import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import select

from actors.changes.shards import executor_name
from automation.local_hosts.host import LocalHost
from store.models import Account, ChangeRequest, TimelineEntry
from store.read.changes import CUSTOMER_ERROR
from store.repositories import (
    AccountRepository,
    ChangeRepository,
    HostRepository,
    TicketRepository,
    UserRepository,
)
from tests.automation.test_validation import make_cert
from tests.desk import PASSWORD, Desk, wait_until
from tests.hosts import (
    dig,
    edit_zone_by_hand,
    holding_the_lock,
    running_hosts,
    unix_user,
    waiting_for_the_lock,
)
from tests.sse import SseRecorder

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def hosts(hosts_base: Path) -> Iterator[list[LocalHost]]:
    """Two hosts with sshd, named, Dovecot and Postfix; the first also serves sites (nginx,
    HTTPS) and FTP (pure-ftpd)."""
    made = [
        LocalHost(hosts_base, f"dh0-{secrets.token_hex(3)}", services=("mail", "ftp")),
        LocalHost(hosts_base, f"dh1-{secrets.token_hex(3)}", with_nginx=False, services=("mail",)),
    ]
    with running_hosts(made) as started:
        yield started


def make_admin(desk: Desk) -> str:
    return desk.admin()


def imap_refusal(h: LocalHost, user: str, password: str) -> str | None:
    """None when `user` logs in to the host's Dovecot with `password` over IMAP, as a mail
    program would; otherwise what the server answered."""
    try:
        with imaplib.IMAP4("127.0.0.1", h.layout().service_port("imap"), timeout=10) as imap:
            imap.login(user, password)
            imap.logout()
    except imaplib.IMAP4.error as exc:
        return str(exc)
    return None


def imap_quota_kib(h: LocalHost, user: str, password: str) -> int:
    """The storage limit (KiB) the host's Dovecot reports to `user` over IMAP (GETQUOTAROOT)."""
    with imaplib.IMAP4("127.0.0.1", h.layout().service_port("imap"), timeout=10) as imap:
        imap.login(user, password)
        _, data = imap.getquotaroot("INBOX")
        imap.logout()
    words = b" ".join(data[1]).decode().replace("(", " ").replace(")", " ").split()
    return int(words[words.index("STORAGE") + 2])


def forwarded_to(h: LocalHost, source: str) -> set[str]:
    """Where the host's Postfix sends mail for `source` (its virtual alias map, postmap -q; a
    mailbox with forwarders keeps its own copy too)."""
    maps = h.root / "mail-maps" / "virtual"
    argv = [*h.layout().postmap, "-q", source, f"hash:{maps}"]
    out = subprocess.run(argv, capture_output=True, text=True, check=False).stdout
    return {a.strip() for a in out.split(",") if a.strip()}


def crontab_of(user: str) -> str:
    """The Unix user's crontab as cron has it (crontab -l -u); empty when there is none."""
    return subprocess.run(
        ["crontab", "-l", "-u", user], capture_output=True, text=True, check=False
    ).stdout


def host_body(h: LocalHost, name: str | None = None, **over: Any) -> dict[str, Any]:
    spec = h.spec()
    body = {
        "name": name or spec.host_id,
        "address": spec.address,
        "port": spec.port,
        "host_key": spec.host_key,
        "credentials_ref": spec.private_key_path,
        "root_dir": spec.layout.root,
        "layout": spec.layout.model_dump(mode="json", exclude={"root"}),
        "role": "shared",
    }
    body.update(over)
    return body


@pytest.fixture(scope="module")
def registered(desk_session: Desk, hosts: list[LocalHost]) -> dict[str, Any]:
    """The hosts registered by an administrator over the API: {"admin": token, name: id}."""
    admin = make_admin(desk_session)
    out: dict[str, Any] = {"admin": admin}
    with desk_session.http(admin) as c:
        for h in hosts:
            r = c.post("/api/v1/hosts", json=host_body(h))
            assert r.status_code == 201, r.text
            out[h.host_id] = r.json()["id"]
    return out


def zone_service(desk: Desk, account: Account, h: LocalHost, host_id: int) -> tuple[int, str]:
    zone = f"z{secrets.token_hex(4)}.test"
    h.add_zone(zone)
    with desk.db.write() as s:
        sv = AccountRepository(s).add_service(
            account.id, kind="dns_zone", name=zone, host_id=host_id
        )
    return sv.id, zone


def txt(service_id: int, name: str, value: str, **extra: Any) -> dict[str, Any]:
    return {
        "service_id": service_id,
        "kind": extra.pop("kind", "dns_record_add"),
        "params": {"record": {"name": name, "type": "TXT", "value": value}},
        **extra,
    }


def change(desk: Desk, token: str, change_id: str) -> dict[str, Any]:
    with desk.http(token) as c:
        r = c.get(f"/api/v1/changes/{change_id}")
    assert r.status_code == 200, r.text
    return dict(r.json())


def statuses(desk: Desk, ids: list[str]) -> set[str]:
    with desk.db.read() as s:
        return set(s.scalars(select(ChangeRequest.status).where(ChangeRequest.id.in_(ids))))


def settled(desk: Desk, token: str, change_id: str) -> dict[str, Any] | None:
    got = change(desk, token, change_id)
    return got if got["status"] not in ("queued", "applying") else None


def applied(desk: Desk, token: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST the change and wait until it settles; it must have been applied."""
    with desk.http(token) as c:
        r = c.post("/api/v1/changes", json=body)
    assert r.status_code == 202, r.text
    change_id = r.json()["id"]
    got = wait_until(lambda: settled(desk, token, change_id), what=body["kind"])
    assert got["status"] == "applied", got
    return got


def test_self_service_dns_change_answers_at_named_and_streams_live(
    desk: Desk, hosts: list[LocalHost], registered: dict[str, Any]
) -> None:
    h = hosts[0]
    account, customer = desk.customer("Dora Dns")
    service_id, zone = zone_service(desk, account, h, registered[h.host_id])
    stream = SseRecorder(f"{desk.base_url}/api/v1/events", customer).start()
    label = f"www{secrets.token_hex(3)}"
    body = txt(service_id, label, "v=spf1 -all")
    with desk.http(customer) as c:
        r = c.post("/api/v1/changes", json=body, headers={"Idempotency-Key": "dns-1"})
    assert r.status_code == 202, r.text
    first = r.json()
    assert first["status"] in ("queued", "applying") and first["params"]["zone"] == zone
    wait_until(lambda: dig(h, f"{label}.{zone}") == ['"v=spf1 -all"'], 10, "the record at named")
    event = stream.wait_for(
        lambda e: e["topic"] == "change.applied" and e["change_id"] == first["id"]
    )
    assert event["visibility"] == "public" and event["data"]["kind"] == "dns_record_add"
    got = wait_until(lambda: settled(desk, customer, first["id"]), what="applied")
    assert got["status"] == "applied" and [a["outcome"] for a in got["attempts"]] == ["applied"]

    # The same POST with the same key: the first change, applied once.
    with desk.http(customer) as c:
        again = c.post("/api/v1/changes", json=body, headers={"Idempotency-Key": "dns-1"})
    assert again.status_code == 202 and again.json()["id"] == first["id"]
    time.sleep(0.5)
    with desk.db.read() as s:
        rows = s.query(ChangeRequest).filter_by(account_id=account.id).all()
        applied = s.query(TimelineEntry).filter_by(account_id=account.id, kind="change.applied")
        assert len(rows) == 1 and applied.count() == 1
    assert change(desk, customer, first["id"])["attempts"] == got["attempts"]
    assert dig(h, f"{label}.{zone}") == ['"v=spf1 -all"']
    stream.stop()


def test_tenants_and_policy(desk: Desk, hosts: list[LocalHost], registered: dict[str, Any]) -> None:
    h = hosts[1]
    a, a_token = desk.customer("Alma")
    _, b_token = desk.customer("Boris")
    service_id, zone = zone_service(desk, a, h, registered[h.host_id])
    with desk.http(a_token) as c:
        mine = c.post("/api/v1/changes", json=txt(service_id, "ok", "fine")).json()
        # a kind outside self-service
        r = c.post("/api/v1/changes", json={"service_id": service_id, "kind": "account_suspend",
                                            "params": {}})  # fmt: skip
        assert r.status_code == 403 and r.json()["error"] == "not_allowed"
        # hostile values: refused with the reason
        r = c.post("/api/v1/changes", json=txt(service_id, "x", "line1\nline2"))
        assert r.status_code == 422 and r.json()["error"] == "invalid_change"
        assert "control characters" in r.json()["message"]
        r = c.post("/api/v1/changes", json=txt(service_id, "a;rm -rf", "x"))
        assert r.status_code == 422 and "label" in r.json()["message"]
        body = txt(service_id, "x", "y")
        body["params"]["zone"] = "../../etc"
        r = c.post("/api/v1/changes", json=body)
        assert r.status_code == 422 and f"must be '{zone}'" in r.json()["message"]
        r = c.post("/api/v1/changes", json={"service_id": service_id, "kind": "dns_record_add",
                                            "params": {"record": "$(id)"}})  # fmt: skip
        assert r.status_code == 422 and r.json()["detail"]
    with desk.http(b_token) as c:
        r = c.post("/api/v1/changes", json=txt(service_id, "evil", "x"))
        assert r.status_code == 404 and r.json()["error"] == "service_not_found"
        assert c.get(f"/api/v1/changes/{mine['id']}").status_code == 404
        assert c.get("/api/v1/hosts").status_code == 403
    wait_until(lambda: settled(desk, a_token, mine["id"]), what="settled")
    assert dig(h, f"evil.{zone}") == []


def test_dry_run_returns_the_plan_and_applies_nothing(
    desk: Desk, hosts: list[LocalHost], registered: dict[str, Any]
) -> None:
    h = hosts[0]
    account, customer = desk.customer("Dry")
    service_id, zone = zone_service(desk, account, h, registered[h.host_id])
    with desk.http(customer) as c:
        r = c.post("/api/v1/changes", json={**txt(service_id, "plan", "only"), "dry_run": True})
    assert r.status_code == 200, r.text
    plan = r.json()
    assert plan["dry_run"] and plan["host"] == h.host_id and plan["plan"] is None
    assert plan["summary"].startswith("add plan ") and plan["summary"].endswith(
        f'"only" in zone {zone}'
    )
    with desk.db.read() as s:
        assert s.query(ChangeRequest).filter_by(account_id=account.id).count() == 0
    assert dig(h, f"plan.{zone}") == []


def test_a_customers_password_dry_run_shows_nothing_of_other_tenants(
    desk: Desk, hosts: list[LocalHost], registered: dict[str, Any]
) -> None:
    h = hosts[1]
    admin = registered["admin"]
    ada_account, ada = desk.customer("Ada")
    bob_account, _ = desk.customer("Bob")
    boxes: dict[str, int] = {}
    with desk.db.write() as s:
        for account in (ada_account, bob_account):
            address = f"box{secrets.token_hex(3)}@{account.code.lower()}.example.test"
            boxes[address] = (
                AccountRepository(s)
                .add_service(
                    account.id, kind="mailbox", name=address, host_id=registered[h.host_id]
                )
                .id
            )
    ada_box, bob_box = boxes
    with desk.http(admin) as c:  # both mailboxes exist on the shared host's passwd file
        ids = [
            c.post("/api/v1/changes", json={"service_id": sid, "kind": "mailbox_create",
                   "params": {"address": address, "password": "a long enough secret"}}).json()["id"]
            for address, sid in boxes.items()
        ]  # fmt: skip
    for cid in ids:
        assert wait_until(lambda cid=cid: settled(desk, admin, cid))["status"] == "applied"
    assert imap_refusal(h, bob_box, "a long enough secret") is None  # Dovecot has Bob's too
    dry = {"service_id": boxes[ada_box], "kind": "mailbox_password", "dry_run": True,
           "params": {"password": "another long secret"}}  # fmt: skip
    with desk.http(ada) as c:
        r = c.post("/api/v1/changes", json=dry)
    assert r.status_code == 200, r.text
    assert r.json()["summary"] == f"set the password of mailbox {ada_box}"
    assert r.json()["plan"] is None
    assert bob_box not in r.text and "argon2" not in r.text and str(h.root) not in r.text
    _, agent = desk.agent(1, online=False)
    with desk.http(ada) as c:
        number = c.post("/api/v1/tickets", json={"subject": "Password", "body": "reset"}).json()[
            "number"
        ]
    with desk.http(agent) as c:
        r = c.post("/api/v1/changes", json={**dry, "ticket": number})
    assert r.status_code == 200, r.text
    assert bob_box in r.json()["plan"]  # staff see the whole script


def test_change_input_is_bounded(
    desk: Desk, hosts: list[LocalHost], registered: dict[str, Any]
) -> None:
    h = hosts[0]
    account, customer = desk.customer("Bounds")
    service_id, _ = zone_service(desk, account, h, registered[h.host_id])
    deep: dict[str, Any] = {"v": 1}
    for _ in range(8):
        deep = {"n": deep}
    cases = [
        ({**txt(service_id, "a", "b"), "kind": "dns_record_add;id"}, "kind"),
        (txt(service_id, "a", "nul\x00here"), "params"),
        ({"service_id": service_id, "kind": "dns_record_add", "params": deep}, "params"),
        (txt(service_id, "a", "x" * 300_000), "params"),
        ({**txt(service_id, "a", "b"), "ticket": "TT-1; drop"}, "ticket"),
    ]
    with desk.http(customer) as c:
        for body, field in cases:
            r = c.post("/api/v1/changes", json=body)
            assert r.status_code == 422, r.text
            assert r.json()["error"] == "invalid_request"
            assert [d["field"] for d in r.json()["detail"]] == [field]


def test_agent_change_moves_the_ticket_to_pending_change_and_back(
    desk: Desk, hosts: list[LocalHost], registered: dict[str, Any]
) -> None:
    h = hosts[1]
    account, _ = desk.customer("Tick")
    _, agent_token = desk.agent(1, online=False)
    service_id, zone = zone_service(desk, account, h, registered[h.host_id])
    with desk.http(agent_token) as c:
        number = c.post("/api/v1/tickets", json={
            "account_id": account.id, "subject": "Please add a TXT record", "body": "for Google",
        }).json()["number"]  # fmt: skip
        assert c.post(f"/api/v1/tickets/{number}/take").status_code == 200
    stream = SseRecorder(f"{desk.base_url}/api/v1/events", agent_token).start()
    label = f"g{secrets.token_hex(3)}"
    with desk.http(agent_token) as c:
        r = c.post("/api/v1/changes", json=txt(service_id, label, "google-site=1"))
        assert r.status_code == 422 and "ticket" in r.json()["message"]
        body = {**txt(service_id, label, "google-site=1"), "ticket": number,
                "account_id": account.id}  # fmt: skip
        r = c.post("/api/v1/changes", json=body)
        assert r.status_code == 202, r.text
        cid = r.json()["id"]
        assert r.json()["ticket_number"] == number
    wait_until(lambda: settled(desk, agent_token, cid), what="settled")
    stream.wait_for(lambda e: e["topic"] == "change.applied" and e["change_id"] == cid)
    with desk.http(agent_token) as c:
        t = c.get(f"/api/v1/tickets/{number}").json()
    assert t["status"] == "open"
    kinds = [e["kind"] for e in t["events"]]
    assert "pending_change" in kinds and kinds[-1] == "change_applied"
    assert dig(h, f"{label}.{zone}") == ['"google-site=1"']
    stream.stop()


def test_failed_self_service_change_opens_a_tier1_ticket(
    desk: Desk, hosts: list[LocalHost], registered: dict[str, Any]
) -> None:
    h = hosts[0]
    account, customer = desk.customer("Fay")
    _, l1_token = desk.agent(1, online=False)
    service_id, _ = zone_service(desk, account, h, registered[h.host_id])
    with desk.http(customer) as c:
        r = c.post("/api/v1/changes",
                   json=txt(service_id, "missing", "x", kind="dns_record_delete"))  # fmt: skip
    assert r.status_code == 202
    got = wait_until(lambda: settled(desk, customer, r.json()["id"]), what="settled")
    assert got["status"] == "failed" and got["error"] and got["ticket_number"]
    with desk.http(l1_token) as c:
        t = c.get(f"/api/v1/tickets/{got['ticket_number']}").json()
    assert t["tier"] == 1 and t["account_id"] == account.id
    assert "Self-service change failed" in t["subject"]
    files = [a["filename"] for m in t["messages"] for a in m["attachments"]]
    assert files == [f"change-{got['id']}.log"]
    with desk.http(customer) as c:  # the customer sees the ticket, not the internal log
        mine = c.get(f"/api/v1/tickets/{got['ticket_number']}").json()
        view = c.get(f"/api/v1/accounts/{account.id}").json()
        timeline = c.get(f"/api/v1/accounts/{account.id}/timeline").text
    assert all(not m["attachments"] for m in mine["messages"])
    # The customer reads plain words; staff read what the host said.
    with desk.http(l1_token) as c:
        host_error = c.get(f"/api/v1/changes/{got['id']}").json()["error"]
    plain = CUSTOMER_ERROR["failed"]
    assert host_error != plain and "missing" in host_error
    assert got["error"] == plain and host_error not in json.dumps(got)
    assert [a["output"] for a in got["attempts"]] == ["Not applied."]
    assert host_error not in json.dumps(mine) and host_error not in timeline
    assert [c["error"] for c in view["recent_changes"]] == [plain]


def test_executor_killed_mid_batch_loses_nothing_and_applies_nothing_twice(
    desk: Desk, hosts: list[LocalHost], registered: dict[str, Any]
) -> None:
    h = hosts[1]
    admin = registered["admin"]
    account, _ = desk.customer("Kill")
    service_id, zone = zone_service(desk, account, h, registered[h.host_id])
    labels = [f"k{i:03d}" for i in range(60)]
    ids: list[str] = []
    with desk.http(admin) as c:

        def post(labels: list[str]) -> list[str]:
            for label in labels:
                r = c.post("/api/v1/changes", json=txt(service_id, label, label))
                assert r.status_code == 202, r.text
                ids.append(r.json()["id"])
            return ids[-len(labels) :]

        first = post(labels[:20])
        wait_until(lambda: statuses(desk, first) == {"applied"}, what="the first changes applied")
        with holding_the_lock(h):  # the next batch is sent, and waits on the host
            post(labels[20:30])
            wait_until(lambda: waiting_for_the_lock(h), what="a batch running on the host")
            desk.deployment.kill(executor_name(registered[h.host_id]))  # mid-batch
        post(labels[30:])
    wait_until(lambda: not statuses(desk, ids) & {"queued", "applying"}, timeout=60,
               what="every change settled")  # fmt: skip
    with desk.db.read() as s:
        rows = s.query(ChangeRequest).filter(ChangeRequest.id.in_(ids)).all()
        assert {r.status for r in rows} == {"applied"}, [
            (r.status, r.error) for r in rows if r.status != "applied"
        ][:3]
        applied = s.query(TimelineEntry).filter_by(account_id=account.id, kind="change.applied")
        assert sorted(e.change_id for e in applied) == sorted(ids)  # each settled once
        # The batch the kill cut ran to its end on the host; the new executor found it in the
        # journal instead of applying it again.
        cut = {a.outcome for i in ids[20:30] for a in ChangeRepository(s).attempts(i)}
        assert "already_applied" in cut, cut
    text = (h.root / "zones" / f"{zone}.zone").read_text()
    for label in labels:
        assert sum(1 for line in text.splitlines() if line.split()[:1] == [label]) == 1
    journal = Path(h.root) / ".gdcas" / "journal"
    assert all((journal / i).read_text().startswith("applied") for i in ids)
    assert dig(h, f"k059.{zone}") == ['"k059"']


def test_hosts_registration_health_and_a_tampered_key(
    desk: Desk, hosts: list[LocalHost], registered: dict[str, Any]
) -> None:
    admin = registered["admin"]
    h0, h1 = hosts
    with desk.http(admin) as c:
        listed = c.get("/api/v1/hosts").json()["items"]
        mine = {x["name"]: x for x in listed}
        assert mine[h0.host_id]["health"]["state"] in ("up", "down")
        assert mine[h0.host_id]["layout"]["dns_port"] == h0.named.port  # type: ignore[union-attr]
        one = c.get(f"/api/v1/hosts/{h1.host_id}").json()
        assert one["health"]["queued"] == 0 and one["ssh_port"] == h1.sshd.port
        r = c.get("/api/v1/hosts/nope")
        assert r.status_code == 404 and r.json()["error"] == "host_not_found"
        r = c.post("/api/v1/hosts", json=host_body(h0))
        assert r.status_code == 409 and r.json()["error"] == "host_exists"
        r = c.post("/api/v1/hosts", json=host_body(h0, name="bad-key", host_key="ssh-rsa !!"))
        assert r.status_code == 422
        r = c.post("/api/v1/hosts", json=host_body(h0, name="bad-root", root_dir="relative"))
        assert r.status_code == 422
        # h0's address and port, but the key pinned is h1's: the connection must be refused.
        name = f"tampered-{secrets.token_hex(3)}"
        r = c.post("/api/v1/hosts", json=host_body(h0, name=name, host_key=h1.spec().host_key))
        assert r.status_code == 201, r.text
        tampered_id = r.json()["id"]
    account, _ = desk.customer("Tampered")
    zone = f"t{secrets.token_hex(4)}.test"
    h0.add_zone(zone)
    with desk.db.write() as s:
        sid = (
            AccountRepository(s)
            .add_service(account.id, kind="dns_zone", name=zone, host_id=tampered_id)
            .id
        )
    with desk.http(admin) as c:
        r = c.post("/api/v1/changes", json=txt(sid, "x", "never"))
        assert r.status_code == 202, r.text
    got = wait_until(lambda: settled(desk, admin, r.json()["id"]), 20, "settled")
    assert got["status"] == "failed" and "host key" in got["error"].lower()
    assert dig(h0, f"x.{zone}") == []
    with desk.http(admin) as c:
        health = c.get(f"/api/v1/hosts/{name}").json()["health"]
    assert health["state"] == "host_key_mismatch" and health["last_error"]
    with desk.db.read() as s:  # an admin's change fails without opening a ticket
        assert TicketRepository(s).for_account(account.id) == []


def test_batch_api_applies_one_change_to_many_services(
    desk: Desk, hosts: list[LocalHost], registered: dict[str, Any]
) -> None:
    from actors.principal import Principal
    from gateway.batch import Sitedesk
    from gateway.batch_changes import apply_to_services

    h = hosts[0]
    account, _ = desk.customer("Batchy")
    dns_id, zone = zone_service(desk, account, h, registered[h.host_id])
    with desk.db.write() as s:
        repo = AccountRepository(s)
        boxes = [
            repo.add_service(account.id, kind="mailbox", name=f"m{i}@{zone}",
                             host_id=registered[h.host_id]).id
            for i in range(6)
        ]  # fmt: skip
        admin = UserRepository(s).create(
            email=f"batch.{secrets.token_hex(3)}@sitedesk.test", display_name="Batch admin",
            role="admin", password=PASSWORD,
        )  # fmt: skip
        principal = Principal(user_id=admin.id, role="admin", name="Batch admin")
    job = Sitedesk(desk.db, desk.deployment.directory, principal)
    created = apply_to_services(
        job, "mailbox_create", boxes,
        lambda sv: {"address": sv.name, "password": "a long enough secret"},
        job="boxes", progress=False,
    )  # fmt: skip
    assert len(created.applied) == 6, created.summary()
    report = apply_to_services(
        job, "mailbox_quota", [*boxes, dns_id], {"quota_mb": 4096}, job="quota", progress=False
    )
    assert [i.status for i in report.items] == ["applied"] * 6 + ["invalid"]
    assert "mailbox" in (report.items[-1].error or "")
    for i in range(6):  # each mailbox's own quota, as its mail program reads it
        assert imap_quota_kib(h, f"m{i}@{zone}", "a long enough secret") == 4096 * 1024
    assert "a long enough secret" not in (h.root / "mail" / "passwd").read_text()
    # The same job again requests nothing new.
    again = apply_to_services(
        job, "mailbox_quota", boxes, {"quota_mb": 4096}, job="quota", progress=False
    )
    assert [i.change_id for i in again.items] == [i.change_id for i in report.items[:6]]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("address", "127.0.0.1\n.evil"),
        ("address", "fe80::1%eth0"),
        ("address", "host name"),
        ("credentials_ref", "relative/key"),
        ("credentials_ref", "/keys/../etc/shadow"),
        ("credentials_ref", "/keys/id\nx"),
        ("layout.http_address", "127.0.0.1:80; include /etc/passwd"),
        ("layout.http_address", "0.0.0.0 ssl"),
        ("layout.dns_address", "127.0.0.1\n"),
        ("layout.rndc", ["rndc\n", "reload"]),
        ("layout.nginx", ["-c/etc/evil.conf"]),
        ("root_dir", "/srv/h\u00f6sts"),
        ("root_dir", "/"),
    ],
)
def test_host_fields_an_admin_types_are_checked(
    desk: Desk, hosts: list[LocalHost], registered: dict[str, Any], field: str, value: Any
) -> None:
    """What an admin types about a host ends up in nginx configs, scripts and key loading."""
    body = host_body(hosts[0], name=f"checked-{secrets.token_hex(3)}")
    if field.startswith("layout."):
        body["layout"] = {**body["layout"], field.split(".", 1)[1]: value}
    else:
        body[field] = value
    with desk.http(registered["admin"]) as c:
        r = c.post("/api/v1/hosts", json=body)
    assert r.status_code == 422, r.text
    assert field.split(".")[-1].removesuffix("_dir") in r.text
    with desk.db.read() as s:
        assert HostRepository(s).by_name(body["name"]) is None


def test_a_host_address_is_stored_canonical(
    desk: Desk, hosts: list[LocalHost], registered: dict[str, Any]
) -> None:
    name = f"canon-{secrets.token_hex(3)}"
    with desk.http(registered["admin"]) as c:
        r = c.post("/api/v1/hosts", json=host_body(hosts[0], name=name, address="LocalHost"))
    assert r.status_code == 201, r.text
    assert r.json()["address"] == "localhost"
    body = host_body(hosts[0], name=f"noroot-{secrets.token_hex(3)}")
    del body["root_dir"]  # there is no default (it was '/', always refused further down)
    with desk.http(registered["admin"]) as c:
        r = c.post("/api/v1/hosts", json=body)
    assert r.status_code == 422 and "root_dir" in r.text


# -- issue 8: a host's client key where the executors run (defect 1), retried registrations (11)
def test_a_host_whose_client_key_the_executors_can_not_use_is_refused(
    desk: Desk, hosts: list[LocalHost], registered: dict[str, Any], tmp_path: Path
) -> None:
    """It used to be registered (201), and broke its executor shard for good."""
    name = f"nokey-{secrets.token_hex(3)}"
    missing = str(tmp_path / "no-such-key")
    with desk.http(registered["admin"]) as c:
        r = c.post("/api/v1/hosts", json=host_body(hosts[0], name=name, credentials_ref=missing))
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["error"] == "invalid_host" and "credentials_ref" in body["message"]
    assert [d["field"] for d in body["detail"]] == ["credentials_ref"]
    assert missing in body["detail"][0]["problem"]
    with desk.db.read() as s:
        assert HostRepository(s).by_name(name) is None


def test_a_client_key_that_disappears_marks_only_its_host_unhealthy(
    desk: Desk, hosts: list[LocalHost], registered: dict[str, Any], tmp_path: Path
) -> None:
    h = hosts[0]
    key = tmp_path / "client-key"
    key.write_bytes(Path(h.spec().private_key_path).read_bytes())
    key.chmod(0o600)
    name = f"fading-{secrets.token_hex(3)}"
    with desk.http(registered["admin"]) as c:
        r = c.post("/api/v1/hosts", json=host_body(h, name=name, credentials_ref=str(key)))
        assert r.status_code == 201, r.text
        host_id = r.json()["id"]

        def unhealthy() -> dict[str, Any]:
            ready = c.get("/readyz").json()
            return dict(ready["hosts"]["unhealthy"]) if "hosts" in ready else {}

        try:
            assert name not in unhealthy()
            key.unlink()
            gone = wait_until(lambda: unhealthy().get(name), 20, "the host reported unhealthy")
            assert gone["state"] == "down" and str(key) in gone["detail"]
            assert h.host_id not in unhealthy()  # the same machine, with its own key: up
            ready = c.get("/readyz")
            assert ready.status_code == 200 and ready.json()["status"] == "ready"
            health = c.get(f"/api/v1/hosts/{name}").json()["health"]
            assert health["state"] == "down" and str(key) in health["last_error"]
            assert c.get(f"/api/v1/hosts/{h.host_id}").json()["health"]["state"] == "up"
            # Reading the host is refused for what it is, not as a passing outage (no 503).
            drift = c.get(f"/api/v1/hosts/{name}/drift")
            assert drift.status_code == 409, drift.text
            assert drift.json()["error"] == "host_down" and str(key) in drift.json()["message"]
            with desk.db.write() as s:
                HostRepository(s).get(host_id).status = "retired"
            drift = c.get(f"/api/v1/hosts/{name}/drift")
            assert drift.status_code == 409 and drift.json()["error"] == "host_retired"
        finally:
            with desk.db.write() as s:  # put away: the session's other tests list the hosts
                HostRepository(s).get(host_id).status = "retired"


def test_a_retried_host_registration_answers_with_the_first(
    desk: Desk, hosts: list[LocalHost], registered: dict[str, Any]
) -> None:
    """POST /hosts ignored Idempotency-Key: a retry was answered 409."""
    name = f"retried-{secrets.token_hex(3)}"
    body = host_body(hosts[1], name=name)
    key = {"Idempotency-Key": f"register-{name}"}
    with desk.http(registered["admin"]) as c:
        first = c.post("/api/v1/hosts", json=body, headers=key)
        again = c.post("/api/v1/hosts", json=body, headers=key)
        other = c.post("/api/v1/hosts", json={**body, "role": "dns"}, headers=key)
        plain = c.post("/api/v1/hosts", json=body)
    assert first.status_code == 201, first.text
    assert again.status_code == 201 and again.json() == first.json()
    assert other.status_code == 422 and other.json()["error"] == "idempotency_key_reused"
    assert plain.status_code == 409 and plain.json()["error"] == "host_exists"
    with desk.db.read() as s:
        assert HostRepository(s).by_name(name) is not None


# -- what the self-service pages read: the catalog, the zone and the cron jobs as served -----
def test_the_catalog_offers_each_role_its_kinds_with_the_forms_schema(desk: Desk) -> None:
    _, customer = desk.customer("Cora Catalog")
    _, agent = desk.agent(1)
    with desk.http(customer) as c:
        kinds = {k["kind"]: k for k in c.get("/api/v1/changes/catalog").json()["kinds"]}
    assert set(kinds) == {
        "dns_record_add", "dns_record_update", "dns_record_delete", "mailbox_password",
        "mailbox_quota", "mail_forwarder_add", "mail_forwarder_delete", "ftp_password",
        "cron_add", "cron_remove",
    }  # fmt: skip
    add = kinds["dns_record_add"]
    assert add["service_kinds"] == ["dns_zone"] and add["implied"] == ["zone"]
    schema = add["params_schema"]
    assert set(schema["properties"]) == {"record"} and schema["required"] == ["record"]
    record = schema["$defs"]["DnsRecord"]["properties"]
    assert record["type"]["enum"] == ["A", "AAAA", "CNAME", "MX", "TXT", "SRV", "CAA"]
    assert record["ttl"]["minimum"] == 60
    assert kinds["cron_add"]["implied"] == ["account"]
    assert "account" not in kinds["cron_add"]["params_schema"]["properties"]
    with desk.http(agent) as c:
        tier1 = {k["kind"] for k in c.get("/api/v1/changes/catalog").json()["kinds"]}
    assert {"mailbox_create", "dns_record_add"} <= tier1 and "vhost_create" not in tier1
    with desk.http() as c:
        assert c.get("/api/v1/changes/catalog").status_code == 401


def test_the_zone_page_reads_the_name_server_not_the_scdb(
    desk: Desk, hosts: list[LocalHost], registered: dict[str, Any]
) -> None:
    h = hosts[0]
    account, customer = desk.customer("Zed Zone")
    service_id, zone = zone_service(desk, account, h, registered[h.host_id])
    label = f"srv{secrets.token_hex(3)}"
    with desk.http(customer) as c:
        r = c.post("/api/v1/changes", json=txt(service_id, label, "served by named"))
        assert r.status_code == 202, r.text
        wait_until(lambda: settled(desk, customer, r.json()["id"]), what="applied")
        served = c.get(f"/api/v1/services/{service_id}/zone")
    assert served.status_code == 200, served.text
    body = served.json()
    assert body["zone"] == zone and body["serial"] == int(dig(h, zone, "SOA")[0].split()[2])
    mine = [x for x in body["records"] if x["name"] == label]
    assert mine == [{"name": label, "type": "TXT", "ttl": 3600, "value": "served by named",
                     "priority": None, "weight": None, "port": None, "flags": None,
                     "tag": None, "editable": True}]  # fmt: skip
    assert {x["type"] for x in body["records"] if not x["editable"]} >= {"SOA", "NS"}

    # A record put on the host behind GDCAS's back is shown too: the page shows what is served.
    edit_zone_by_hand(h, zone, f"manual{label}", "192.0.2.77")
    with desk.http(customer) as c:
        records = c.get(f"/api/v1/services/{service_id}/zone").json()["records"]
    assert {"name": f"manual{label}", "value": "192.0.2.77"} in [
        {"name": x["name"], "value": x["value"]} for x in records
    ]
    # What the page shows is what a delete names: posted back, it deletes the record.
    record = {k: v for k, v in mine[0].items() if k != "editable" and v is not None}
    with desk.http(customer) as c:
        r = c.post("/api/v1/changes", json={"service_id": service_id,
                                            "kind": "dns_record_delete",
                                            "params": {"record": record}})  # fmt: skip
        assert r.status_code == 202, r.text
        got = wait_until(lambda: settled(desk, customer, r.json()["id"]), what="deleted")
    assert got["status"] == "applied" and dig(h, f"{label}.{zone}", "TXT") == []

    _, stranger = desk.customer("Not Zed")
    with desk.http(stranger) as c:
        nope = c.get(f"/api/v1/services/{service_id}/zone")
        assert nope.status_code == 404 and nope.json()["error"] == "service_not_found"
        assert c.get("/api/v1/services/999999999/zone").status_code == 404


def test_the_cron_page_reads_the_accounts_entries_from_the_host(
    desk: Desk, hosts: list[LocalHost], registered: dict[str, Any]
) -> None:
    h = hosts[1]
    account, customer = desk.customer("Cy Cron")
    unix_user(account.unix_user)  # cron runs the account's jobs as its Unix user
    with desk.db.write() as s:
        site = AccountRepository(s).add_service(
            account.id, kind="web_hosting", name=f"cy{secrets.token_hex(3)}.test",
            host_id=registered[h.host_id],
        )  # fmt: skip
    with desk.http(customer) as c:
        assert c.get(f"/api/v1/services/{site.id}/cron").json()["entries"] == []
        r = c.post("/api/v1/changes", json={
            "service_id": site.id, "kind": "cron_add",
            "params": {"name": "nightly", "schedule": "15 3 * * *", "command": "php cron.php"},
        })  # fmt: skip
        assert r.status_code == 202, r.text
        got = wait_until(lambda: settled(desk, customer, r.json()["id"]), what="cron applied")
        assert got["status"] == "applied", got
        cron = c.get(f"/api/v1/services/{site.id}/cron")
        assert cron.status_code == 200, cron.text
        assert cron.json()["entries"] == [
            {"name": "nightly", "schedule": "15 3 * * *", "command": "php cron.php"}
        ]
        assert "15 3 * * * php cron.php" in crontab_of(account.unix_user)  # what cron runs
        zone = c.get(f"/api/v1/services/{site.id}/zone")
        assert zone.status_code == 409 and zone.json()["error"] == "invalid_transition"


def test_the_forwarders_page_shows_only_the_domains_own_lines_of_the_shared_file(
    desk: Desk, hosts: list[LocalHost], registered: dict[str, Any]
) -> None:
    h = hosts[1]
    made: dict[str, tuple[str, int, str]] = {}
    for who in ("one", "two"):  # two tenants on one host: one forwarders file for both
        account, customer = desk.customer(f"Fwd {who}")
        domain = f"{who}{secrets.token_hex(3)}.test"
        with desk.db.write() as s:
            box = AccountRepository(s).add_service(
                account.id, kind="mailbox", name=f"info@{domain}", host_id=registered[h.host_id]
            )
        with desk.http(customer) as c:
            r = c.post("/api/v1/changes", json={
                "service_id": box.id, "kind": "mail_forwarder_add",
                "params": {"source": f"info@{domain}", "destination": f"{who}@example.org"},
            })  # fmt: skip
            assert r.status_code == 202, r.text
            change_id, token = r.json()["id"], customer
            got = wait_until(lambda: settled(desk, token, change_id), what="forwarder")  # noqa: B023
            assert got["status"] == "applied", got
            # ...and none from another domain, not even through one's own mailbox service.
            bad = c.post("/api/v1/changes", json={
                "service_id": box.id, "kind": "mail_forwarder_add",
                "params": {"source": "ceo@elsewhere.test", "destination": f"{who}@example.org"},
            })  # fmt: skip
            assert bad.status_code == 422 and bad.json()["error"] == "invalid_change"
        made[who] = (customer, box.id, domain)
    for who, (_, _, domain) in made.items():  # the host's one alias map sends each its way
        assert forwarded_to(h, f"info@{domain}") == {f"{who}@example.org"}
    customer, box_id, _ = made["one"]
    with desk.http(customer) as c:
        listed = c.get(f"/api/v1/services/{box_id}/forwarders")
        assert listed.status_code == 200, listed.text
        assert [f["destination"] for f in listed.json()["forwarders"]] == ["one@example.org"]
        assert c.get(f"/api/v1/services/{made['two'][1]}/forwarders").status_code == 404


# -- facts read back from the host, and the drift between them and the SCDB ----------------
def test_mailboxes_ftp_accounts_and_certificates_are_read_from_the_host(
    desk: Desk, hosts: list[LocalHost], registered: dict[str, Any]
) -> None:
    h = hosts[0]
    account, customer = desk.customer("Facts Reader")
    unix_user(account.unix_user, h)  # its FTP users are it, chrooted to its home
    domain = f"facts{secrets.token_hex(3)}.test"
    admin = registered["admin"]
    with desk.db.write() as s:
        repo = AccountRepository(s)
        box = repo.add_service(account.id, kind="mailbox", name=f"info@{domain}",
                               host_id=registered[h.host_id])  # fmt: skip
        site = repo.add_service(account.id, kind="web_hosting", name=domain,
                                host_id=registered[h.host_id])  # fmt: skip
        ftp = repo.add_service(account.id, kind="ftp_account", name=f"f{secrets.token_hex(3)}",
                               host_id=registered[h.host_id])  # fmt: skip
    applied(desk, admin, {"service_id": box.id, "kind": "mailbox_create",
                          "params": {"address": f"info@{domain}", "password": "pw-Facts-12345",
                                     "quota_mb": 2048}})  # fmt: skip
    applied(desk, customer, {"service_id": box.id, "kind": "mailbox_quota",
                             "params": {"quota_mb": 512}})  # fmt: skip
    ftp_params = {"username": ftp.name, "password": "pw-Facts-ftp-123"}
    applied(desk, admin, {"service_id": ftp.id, "kind": "ftp_account_create",
                          "params": ftp_params})  # fmt: skip
    cert, key = make_cert([domain])
    applied(desk, admin, {"service_id": site.id, "kind": "vhost_create", "params": {}})
    applied(desk, admin, {"service_id": site.id, "kind": "tls_install",
                          "params": {"certificate": cert, "private_key": key}})  # fmt: skip
    with desk.http(customer) as c:
        boxes = c.get(f"/api/v1/services/{box.id}/mailboxes").json()["mailboxes"]
        assert boxes == [{"address": f"info@{domain}", "quota_mb": 512}]  # the quota as changed
        ftps = c.get(f"/api/v1/services/{ftp.id}/ftp").json()["accounts"]
        assert ftps == [{"username": ftp.name}]
        served = c.get(f"/api/v1/services/{site.id}/certificate").json()["certificate"]
    der = x509.load_pem_x509_certificate(cert.encode()).public_bytes(Encoding.DER)
    assert served["sha256"] == hashlib.sha256(der).hexdigest() and domain in served["subject"]
    _, stranger = desk.customer("Not Facts")
    with desk.http(stranger) as c:
        for path in ("mailboxes", "ftp", "certificate"):
            assert c.get(f"/api/v1/services/{box.id}/{path}").status_code in (404, 409)


def test_drift_between_the_scdb_and_a_host_is_reported_to_admins(
    desk: Desk, hosts: list[LocalHost], registered: dict[str, Any]
) -> None:
    h = hosts[0]
    admin = registered["admin"]
    account, customer = desk.customer("Drifting")
    domain = f"drift{secrets.token_hex(3)}.test"
    with desk.db.write() as s:
        repo = AccountRepository(s)
        kept = repo.add_service(account.id, kind="mailbox", name=f"kept@{domain}",
                                host_id=registered[h.host_id])  # fmt: skip
        ghost = repo.add_service(account.id, kind="mailbox", name=f"ghost@{domain}",
                                 host_id=registered[h.host_id])  # fmt: skip
    for address in (f"kept@{domain}", f"stray@{domain}"):  # stray: made, never recorded
        params = {"address": address, "password": "pw-Drift-12345"}
        applied(desk, admin, {"service_id": kept.id, "kind": "mailbox_create", "params": params})
    with desk.http(admin) as c:
        r = c.get(f"/api/v1/hosts/{h.host_id}/drift")
    assert r.status_code == 200, r.text
    drift = r.json()
    missing = {m["name"] for m in drift["missing_on_host"]}
    unknown = {(u["name"], u["account"]) for u in drift["unknown_to_scdb"]}
    assert f"ghost@{domain}" in missing and f"kept@{domain}" not in missing
    assert (f"stray@{domain}", account.code) in unknown
    assert not any(name == f"kept@{domain}" for name, _ in unknown)
    assert ghost.id in {m["service_id"] for m in drift["missing_on_host"]}
    with desk.http(customer) as c:
        assert c.get(f"/api/v1/hosts/{h.host_id}/drift").status_code == 403
