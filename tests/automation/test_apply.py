"""Every change kind applied to a real host (sshd, named, nginx), checked as a user would."""

from __future__ import annotations

import subprocess
import uuid

from automation.executor.executor import Executor
from automation.executor.outcome import OutcomeCollector
from automation.executor.request import ChangeRequest
from automation.local_hosts.host import LocalHost
from tests.automation.conftest import (
    CUSTOMER,
    ZONE,
    change,
    dns_add,
    http_get,
    journal,
    request,
)
from tests.automation.test_validation import make_cert
from tests.hosts import dig


def apply(
    ex: Executor, col: OutcomeCollector, reqs: list[ChangeRequest], timeout: float = 30
) -> list[str]:
    ex.submit_many(reqs)
    got = col.wait([r.change_id for r in reqs], timeout)
    for r in reqs:  # shown by pytest when the test fails: why a change was not applied
        if got[r.change_id].status != "applied":
            print(f"{r.change.kind}: {got[r.change_id].status}: {got[r.change_id].error}")
    return [got[r.change_id].status for r in reqs]


def test_dns_records_answer_at_named(
    hosts: list[LocalHost], executor: Executor, collector: OutcomeCollector
) -> None:
    h = hosts[0]
    reqs = [
        request(h, dns_add("www", "A", "192.0.2.10")),
        request(h, dns_add("www", "AAAA", "2001:db8::10")),
        request(h, dns_add("alias", "CNAME", "www.example.com")),
        request(h, dns_add("@", "MX", "mail.example.com", priority=10)),
        request(h, dns_add("_dmarc", "TXT", "v=DMARC1; p=reject; " + "x" * 300)),
        request(
            h, dns_add("_sip._tcp", "SRV", "sip.example.com", priority=10, weight=5, port=5060)
        ),
        request(h, dns_add("@", "CAA", "letsencrypt.org", tag="issue", flags=0)),
    ]
    assert apply(executor, collector, reqs) == ["applied"] * len(reqs)
    assert dig(h, "www.example.com", "A") == ["192.0.2.10"]
    assert dig(h, "www.example.com", "AAAA") == ["2001:db8::10"]
    assert dig(h, "alias.example.com", "CNAME") == ["www.example.com."]
    assert dig(h, "example.com", "MX") == ["10 mail.example.com."]
    txt = dig(h, "_dmarc.example.com", "TXT")[0]
    assert txt.startswith('"v=DMARC1; p=reject; ') and '" "' in txt  # split into <=255-byte chunks
    assert dig(h, "_sip._tcp.example.com", "SRV") == ["10 5 5060 sip.example.com."]
    assert dig(h, "example.com", "CAA") == ['0 issue "letsencrypt.org"']
    serial = int(dig(h, "example.com", "SOA")[0].split()[2])

    upd = change(
        "dns_record_update",
        zone=ZONE,
        old={"name": "www", "type": "A", "value": "192.0.2.10"},
        new={"name": "www", "type": "A", "value": "192.0.2.11", "ttl": 300},
    )
    dele = change(
        "dns_record_delete",
        zone=ZONE,
        record={"name": "www", "type": "AAAA", "value": "2001:db8::10"},
    )
    assert apply(executor, collector, [request(h, upd), request(h, dele)]) == ["applied", "applied"]
    assert dig(h, "www.example.com", "A") == ["192.0.2.11"]
    assert dig(h, "www.example.com", "AAAA") == []
    assert int(dig(h, "example.com", "SOA")[0].split()[2]) > serial


def test_conflicts_fail_without_touching_the_host(
    hosts: list[LocalHost], executor: Executor, collector: OutcomeCollector
) -> None:
    h = hosts[1]
    assert apply(executor, collector, [request(h, dns_add("cn", "CNAME", "www.example.com"))]) == [
        "applied"
    ]
    before = (h.root / "zones" / f"{ZONE}.zone").read_text()
    beside = request(h, dns_add("cn", "A", "192.0.2.1"))
    missing = request(
        h,
        change(
            "dns_record_delete",
            zone=ZONE,
            record={"name": "nope", "type": "A", "value": "192.0.2.1"},
        ),
    )
    assert apply(executor, collector, [beside, missing]) == ["failed", "failed"]
    assert "CNAME" in (collector.last(beside.change_id).error or "")  # type: ignore[union-attr]
    assert (h.root / "zones" / f"{ZONE}.zone").read_text() == before


def test_vhost_create_serves_and_delete_removes(
    hosts: list[LocalHost], executor: Executor, collector: OutcomeCollector
) -> None:
    h = hosts[0]
    create = change(
        "vhost_create", account="alice", domain="alice.example.com", document_root="www/site"
    )
    assert apply(executor, collector, [request(h, create)]) == ["applied"]
    status, body = http_get(h, "alice.example.com")
    assert status == 200 and "alice.example.com" in body
    assert (h.root / "home/alice/www/site/index.html").exists()
    suspend = change("account_suspend", account="alice")
    assert apply(executor, collector, [request(h, suspend)]) == ["applied"]
    assert http_get(h, "alice.example.com")[0] == 403
    assert apply(
        executor, collector, [request(h, change("account_unsuspend", account="alice"))]
    ) == ["applied"]
    assert http_get(h, "alice.example.com")[0] == 200
    assert apply(
        executor, collector, [request(h, change("vhost_delete", domain="alice.example.com"))]
    ) == ["applied"]
    assert http_get(h, "alice.example.com")[0] == 404


def test_a_vhost_of_the_old_template_is_upgraded_when_requested_again(
    hosts: list[LocalHost], executor: Executor, collector: OutcomeCollector
) -> None:
    """Sites made before vhosts had `disable_symlinks` get it when created again."""
    h = hosts[0]
    create = change("vhost_create", account="olda", domain="olda.example.com",
                    document_root="www")  # fmt: skip
    assert apply(executor, collector, [request(h, create)]) == ["applied"]
    conf = h.root / "nginx/sites/olda.example.com.conf"
    old = conf.read_text().replace("    disable_symlinks if_not_owner;\n", "")
    conf.write_text(old)  # as the template before issue 7 wrote it
    # The upgrade comes with a new deployment: a new executor, which knows no file yet.
    col = OutcomeCollector()
    upgraded = Executor(col)
    upgraded.add_host(h.spec())
    try:
        assert apply(upgraded, col, [request(h, create)]) == ["applied"]
        assert "disable_symlinks if_not_owner;" in conf.read_text()
        assert http_get(h, "olda.example.com")[0] == 200
        other = change("vhost_create", account="olda", domain="olda.example.com",
                       document_root="www/other")  # fmt: skip
        assert apply(upgraded, col, [request(h, other)]) == ["failed"]  # still a conflict
    finally:
        upgraded.close()


def test_one_batch_of_many_kinds(
    hosts: list[LocalHost], executor: Executor, collector: OutcomeCollector
) -> None:
    """Many kinds in one round trip to a host with every service; each service's own tests
    (test_mail_service, test_ftp_service, test_web_tls_cron, test_database_service) check
    them with their clients one by one."""
    h, acct = hosts[2], CUSTOMER
    cert, key = make_cert(["shop.example.com"])
    pw = "correct horse battery"
    reqs = [
        request(h, change("mailbox_create", address="bob@example.com", password=pw, quota_mb=500)),
        request(h, change("mailbox_create", address="carol@example.com", password=pw)),
        request(h, change("mailbox_password", address="bob@example.com",
                          password="new horse battery staple")),
        request(h, change("mailbox_quota", address="bob@example.com", quota_mb=2048)),
        request(h, change("mail_forwarder_add", source="bob@example.com",
                          destination="carol@example.com")),
        request(h, change("mail_forwarder_add", source="carol@example.com",
                          destination="bob@example.com")),
        request(h, change("mailbox_delete", address="carol@example.com")),
        request(h, change("ftp_account_create", account=acct, username="bobftp", password=pw)),
        request(h, change("ftp_password", username="bobftp", password="another horse battery")),
        request(h, change("cron_add", account=acct, name="backup", schedule="*/15 * * * *",
                          command="/usr/bin/backup --quiet 'a b'")),
        request(h, change("cron_add", account=acct, name="report", schedule="0 3 * * mon",
                          command="true")),
        request(h, change("cron_remove", account=acct, name="report")),
        request(h, change("vhost_create", account=acct, domain="shop.example.com")),
        request(h, change("tls_install", domain="shop.example.com", certificate=cert,
                          private_key=key)),
        request(h, change("mail_forwarder_delete", source="bob@example.com",
                          destination="carol@example.com")),
    ]  # fmt: skip
    statuses = apply(executor, collector, reqs)
    # the reverse forwarder would close a loop: refused, everything else applied
    assert statuses == ["applied"] * 5 + ["failed"] + ["applied"] * 9
    assert "loop" in (collector.last(reqs[5].change_id).error or "")  # type: ignore[union-attr]
    passwd = (h.root / "mail/passwd").read_text()
    assert passwd.startswith("bob@example.com:{ARGON2ID}$argon2id$")
    assert "storage=2048M" in passwd and "carol@" not in passwd and "horse" not in passwd
    assert (h.root / "mail/forwarders").read_text() == ""
    assert "horse" not in (h.root / "ftp/passwd").read_text()
    crontab = subprocess.run(
        ["crontab", "-l", "-u", acct], capture_output=True, text=True, check=True
    ).stdout
    assert "*/15 * * * * /usr/bin/backup --quiet 'a b'" in crontab and "report" not in crontab
    assert (h.root / "tls/shop.example.com.key").stat().st_mode & 0o777 == 0o600
    for r in reqs:
        entry = journal(h) / r.change_id
        assert entry.exists() == (r is not reqs[5])


def test_same_change_twice_applies_once(
    hosts: list[LocalHost], executor: Executor, collector: OutcomeCollector
) -> None:
    h = hosts[1]
    req = request(h, dns_add("once", "TXT", "exactly once"))
    assert apply(executor, collector, [req]) == ["applied"]
    zone_before = (h.root / "zones" / f"{ZONE}.zone").read_text()
    collector.outcomes.clear()
    assert apply(executor, collector, [req]) == ["already_applied"]
    assert (h.root / "zones" / f"{ZONE}.zone").read_text() == zone_before
    # also from a brand-new executor (e.g. after a crash), and twice in one batch
    col2 = OutcomeCollector()
    ex2 = Executor(col2)
    ex2.add_host(h.spec())
    ex2.add_host(hosts[2].spec())
    try:
        fresh = request(
            hosts[2],
            change("cron_add", account=CUSTOMER, name="dup", schedule="@daily", command="true"),
        )
        ex2.submit_many([req, fresh, fresh])
        col2.wait([req.change_id, fresh.change_id])
        assert ex2.wait_idle(10)
        assert [o.status for o in col2.outcomes[req.change_id]] == ["already_applied"]
        assert sorted(o.status for o in col2.outcomes[fresh.change_id]) == [
            "already_applied",
            "applied",
        ]
    finally:
        ex2.close()
    assert dig(h, "once.example.com", "TXT") == ['"exactly once"']
    assert (hosts[2].root / f"cron/{CUSTOMER}").read_text().count("# gdcas:dup") == 1


def test_forced_verify_failure_rolls_back(
    hosts: list[LocalHost], collector: OutcomeCollector
) -> None:
    h = hosts[2]
    bad_id = str(uuid.uuid4())
    ex = Executor(
        collector, verify_hook=lambda r: "forced by test" if r.change_id == bad_id else None
    )
    ex.add_host(h.spec())
    try:
        serial = int(dig(h, "site2.test", "SOA")[0].split()[2])
        good = request(h, dns_add("good", "A", "192.0.2.7", zone="site2.test"))
        bad = request(h, dns_add("bad", "A", "192.0.2.8", zone="site2.test"), change_id=bad_id)
        vhost_id = str(uuid.uuid4())
        assert apply(ex, collector, [good, bad]) == ["applied", "rolled_back"]
        assert "forced by test" in (collector.last(bad_id).error or "")  # type: ignore[union-attr]
        assert dig(h, "good.site2.test", "A") == ["192.0.2.7"]
        assert dig(h, "bad.site2.test", "A") == []
        assert int(dig(h, "site2.test", "SOA")[0].split()[2]) > serial + 1  # serial only goes up
        assert (journal(h) / bad_id).read_text().startswith("rolled_back")
        ex.verify_hook = None
        bad_id = vhost_id
        ex2 = Executor(
            collector, verify_hook=lambda r: "forced" if r.change_id == vhost_id else None
        )
        ex2.add_host(h.spec())
        try:
            v = request(
                h,
                change("vhost_create", account="zed", domain="zed.site2.test"),
                change_id=vhost_id,
            )
            assert apply(ex2, collector, [v]) == ["rolled_back"]
            assert http_get(h, "zed.site2.test")[0] == 404
            assert not (h.root / "nginx/sites/zed.site2.test.conf").exists()
        finally:
            ex2.close()
    finally:
        ex.close()


def test_dry_run_shows_plan_without_secrets_or_applying(
    hosts: list[LocalHost], executor: Executor
) -> None:
    h = hosts[2]
    plan = executor.dry_run(
        h.host_id, change("mailbox_create", address="dry@example.com", password="very secret pw 1")
    )
    assert "very secret" not in plan and "<redacted>" in plan and "$argon2" not in plan
    assert "sh -s" in plan and "flock" in plan
    assert (
        not (h.root / "mail/passwd").exists() or "dry@" not in (h.root / "mail/passwd").read_text()
    )
    dns_plan = executor.dry_run(h.host_id, dns_add("dry", "TXT", "x; $(reboot)"))
    assert "named-checkzone" in dns_plan and "rndc" in dns_plan
    assert "'GDCAS_EOF_" in dns_plan  # file content goes in a quoted here-document
    assert dig(h, "dry.example.com", "TXT") == []
