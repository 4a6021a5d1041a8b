"""Self-service in the pages, in headless Chromium against the real desk and real hosts (sshd and
named on loopback): a customer changes their DNS zone and mailbox from SiteControl and watches
each change go live; an agent requests a change for a customer from the ticket in SiteTools."""

from __future__ import annotations

import ftplib
import re
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from automation.local_hosts.host import LocalHost
from store.models.ticket import ticket_id_from_number
from store.repositories import AccountRepository, TicketRepository
from tests.desk import PASSWORD, Desk
from tests.gateway.test_changes import (
    applied,
    crontab_of,
    forwarded_to,
    host_body,
    imap_refusal,
)
from tests.gateway.test_pages import browser, log_in, make_agent  # noqa: F401 - a fixture
from tests.gateway.test_pages import new_page as new_page  # the fixture
from tests.hosts import dig, edit_zone_by_hand, running_hosts, unix_user

pytestmark = [pytest.mark.ray, pytest.mark.browser]


@pytest.fixture(scope="module")
def hosts(hosts_base: Path) -> Iterator[list[LocalHost]]:
    """One host with sshd, named, Dovecot and Postfix, and pure-ftpd."""
    made = [LocalHost(hosts_base, f"ph-{secrets.token_hex(3)}", with_nginx=False,
                      services=("mail", "ftp"))]  # fmt: skip
    with running_hosts(made) as up:
        yield up


def ftp_refusal(h: LocalHost, user: str, password: str) -> str | None:
    """None when `user` logs in to the host's FTP server with `password` and lists its home,
    as an FTP program would; otherwise what the server answered."""
    try:
        with ftplib.FTP(timeout=10) as ftp:  # noqa: S321 - the server speaks FTP
            ftp.connect("127.0.0.1", h.layout().service_port("ftp"))
            ftp.login(user, password)
            ftp.nlst()
    except ftplib.error_perm as exc:
        return str(exc)
    return None


@pytest.fixture(scope="module")
def host_id(desk_session: Desk, hosts: list[LocalHost]) -> int:
    with desk_session.http(desk_session.admin()) as c:
        r = c.post("/api/v1/hosts", json=host_body(hosts[0]))
        assert r.status_code == 201, r.text
        return int(r.json()["id"])


def customer_with_zone(desk: Desk, h: LocalHost, host_id: int) -> tuple[Any, str, int, str]:
    """A new customer whose account has a DNS zone on the host: (account, e-mail, id, zone)."""
    account, email = desk.new_customer(f"Page {secrets.token_hex(2)}")
    zone = f"p{secrets.token_hex(4)}.test"
    h.add_zone(zone)
    with desk.db.write() as s:
        sv = AccountRepository(s).add_service(account.id, kind="dns_zone", name=zone,
                                              host_id=host_id)  # fmt: skip
    return account, email, sv.id, zone


def preview_record(page: Any, name: str, rtype: str, value: str) -> Any:
    """Fill the page's "Add a DNS record" form and ask for its preview; returns the form."""
    form = page.locator("form[data-kind=dns_record_add]")
    form.get_by_label("Name").fill(name)
    form.get_by_label("Type").select_option(rtype)
    form.get_by_label("Value").fill(value)
    form.get_by_role("button", name="Preview").click()
    return form


def test_customer_adds_a_dns_record_and_sees_it_applied_live(
    desk: Desk, hosts: list[LocalHost], host_id: int, new_page: Any
) -> None:
    h = hosts[0]
    _, email, _, zone = customer_with_zone(desk, h, host_id)
    page = new_page()
    log_in(page, f"{desk.base_url}/portal", email)
    page.get_by_role("link", name=re.compile(zone)).first.click()
    # The zone as the name server serves it: the SOA and NS records the host keeps.
    rows = page.locator("table.records tbody tr")
    expect(rows.filter(has_text="SOA")).to_have_count(1)
    preview_record(page, "www", "A", "192.0.2.10")
    preview = page.get_by_role("region", name="Preview")
    expect(preview).to_contain_text(f"add www 3600 A 192.0.2.10 in zone {zone}")
    assert dig(h, f"www.{zone}", "A") == []  # a preview applies nothing
    preview.get_by_role("button", name="Confirm").click()
    line = page.locator("#changes li.change").first
    expect(line).to_have_attribute("data-status", "applied")
    expect(line).to_contain_text("Verified: the host's name server answers")
    assert dig(h, f"www.{zone}", "A") == ["192.0.2.10"]
    # The table follows what is served now, without a reload.
    expect(rows.filter(has_text="192.0.2.10")).to_have_count(1)

    # Edit it from its row: the form comes filled with the record as served.
    page.get_by_role("button", name="Edit www A 192.0.2.10").click()
    editor = page.locator("form[data-kind=dns_record_update]")
    expect(editor.get_by_label("Value")).to_have_value("192.0.2.10")
    editor.get_by_label("Value").fill("192.0.2.11")
    editor.get_by_role("button", name="Preview").click()
    expect(preview).to_contain_text("update www A 192.0.2.10 -> www A 192.0.2.11")
    preview.get_by_role("button", name="Confirm").click()
    expect(page.locator("#changes li.change")).to_have_count(2)  # each change on its own line
    expect(page.locator("#changes li.change").first).to_have_attribute("data-status", "applied")
    assert dig(h, f"www.{zone}", "A") == ["192.0.2.11"]
    expect(rows.filter(has_text="192.0.2.11")).to_have_count(1)


def test_a_refused_value_shows_its_reason_at_its_field(
    desk: Desk, hosts: list[LocalHost], host_id: int, new_page: Any
) -> None:
    _, email, _, zone = customer_with_zone(desk, hosts[0], host_id)
    page = new_page()
    log_in(page, f"{desk.base_url}/portal", email)
    page.get_by_role("link", name=re.compile(zone)).first.click()
    form = preview_record(page, "mail", "A", "not-an-address")
    value = form.get_by_label("Value")
    expect(value).to_have_attribute("aria-invalid", "true")
    reason = form.locator("[data-field='record.value'] .field-error")
    expect(reason).to_be_visible()
    expect(reason).to_contain_text("IPv4")
    expect(page.get_by_role("region", name="Preview")).to_be_hidden()
    # Corrected, the same form goes through.
    value.fill("192.0.2.25")
    form.get_by_role("button", name="Preview").click()
    expect(reason).to_be_hidden()
    expect(page.get_by_role("region", name="Preview")).to_contain_text("add mail 3600 A 192.0.2.25")


def test_customer_resets_a_mailbox_password(
    desk: Desk, hosts: list[LocalHost], host_id: int, new_page: Any
) -> None:
    h = hosts[0]
    account, email, zone_id, zone = customer_with_zone(desk, h, host_id)
    address = f"info@{zone}"
    params = {"address": address, "password": "first-Password-1"}  # made as support would
    applied(desk, desk.admin(), {"service_id": zone_id, "kind": "mailbox_create",
                                 "params": params})  # fmt: skip
    with desk.db.write() as s:
        box = AccountRepository(s).add_service(account.id, kind="mailbox", name=address,
                                               host_id=host_id)  # fmt: skip
    page = new_page()
    log_in(page, f"{desk.base_url}/portal", email)
    page.goto(f"{desk.base_url}/portal#/services/{box.id}")
    # What the mail server has, read from the host.
    facts = page.locator("section.mailbox-facts")
    expect(facts).to_contain_text(f"{address} exists, quota 1024 MB")
    form = page.locator("form[data-kind=mailbox_password]")
    form.get_by_label("Password").fill("a-New-mailbox-Password-2")
    form.get_by_role("button", name="Preview").click()
    preview = page.get_by_role("region", name="Preview")
    expect(preview).to_contain_text(address)
    expect(preview).not_to_contain_text("a-New-mailbox-Password-2")  # the secret is not echoed
    preview.get_by_role("button", name="Confirm").click()
    expect(page.locator("#changes li.change").first).to_have_attribute("data-status", "applied")
    # The mail program logs in with the new password only; the host keeps no plain password.
    assert imap_refusal(h, address, "a-New-mailbox-Password-2") is None
    assert imap_refusal(h, address, "first-Password-1") is not None
    assert "a-New-mailbox-Password-2" not in (h.root / "mail" / "passwd").read_text()

    # A forwarder of the mailbox: it starts from the box's own address; listed as the host has
    # it; removed from its row.
    fwd = page.locator("form[data-kind=mail_forwarder_add]")
    expect(fwd.get_by_label("Source")).to_have_value(address)
    fwd.get_by_label("Destination").fill("owner@example.org")
    fwd.get_by_role("button", name="Preview").click()
    preview.get_by_role("button", name="Confirm").click()
    rows = page.locator("section.forwarders tbody tr")
    expect(rows.filter(has_text="owner@example.org")).to_have_count(1)
    assert forwarded_to(h, address) == {address, "owner@example.org"}  # where Postfix sends
    page.get_by_role("button", name=f"Remove the forwarder {address} to owner@example.org").click()
    page.locator("form[data-kind=mail_forwarder_delete] button").click()
    preview.get_by_role("button", name="Confirm").click()
    expect(rows.filter(has_text="owner@example.org")).to_have_count(0)
    assert "owner@example.org" not in forwarded_to(h, address)


def test_agent_requests_a_change_from_the_ticket_and_the_customer_sees_it_live(
    desk: Desk, hosts: list[LocalHost], host_id: int, new_page: Any
) -> None:
    h = hosts[0]
    _, email, _, zone = customer_with_zone(desk, h, host_id)
    customer = desk.login(email)
    with desk.http(customer) as c:
        r = c.post("/api/v1/tickets", json={"subject": "Please add a TXT record",
                                            "body": f"for {zone}: verify=abc"})  # fmt: skip
        assert r.status_code == 201, r.text
        number = r.json()["number"]
    agent = make_agent(desk, 1)
    console = new_page()
    log_in(console, f"{desk.base_url}/console#/tickets/{number}", agent)
    expect(console.locator("#ticket-title")).to_contain_text(number)
    portal = new_page()
    log_in(portal, f"{desk.base_url}/portal", email)
    expect(portal.locator("#live")).to_have_attribute("data-state", "live")

    console.locator("#change-tools summary").click()
    console.get_by_label("Service").select_option(label=f"dns_zone {zone}")
    console.get_by_label("Change", exact=True).select_option(label="Add a DNS record")
    preview_record(console, "_verify", "TXT", "verify=abc")
    preview = console.get_by_role("region", name="Preview")
    expect(preview).to_contain_text("add _verify 3600 TXT")
    expect(preview.locator("details summary")).to_contain_text("exact script")  # staff see it
    preview.get_by_role("button", name="Confirm").click()
    line = console.locator("#ticket-changes li.change").first
    expect(line).to_have_attribute("data-status", "applied")
    assert dig(h, f"_verify.{zone}") == ['"verify=abc"']
    # The customer's portal heard of it live: the change on its own line, applied.
    expect(portal.locator("#changes li.change").first).to_have_attribute("data-status", "applied")


def test_the_queue_counts_sla_time_down_live_without_asking_the_server(
    desk: Desk, new_page: Any
) -> None:
    _, customer = desk.customer("Tick Tock")
    with desk.http(customer) as c:
        number = c.post("/api/v1/tickets", json={"subject": "Counting down", "body": "x"}).json()[
            "number"
        ]
    due = datetime.now(UTC) + timedelta(seconds=40)
    with desk.db.write() as s:  # its first response falls due in 40 s (the clock is the SLA's)
        TicketRepository(s).get(ticket_id_from_number(number)).first_response_due = due
    agent = make_agent(desk, 1)
    page = new_page()
    log_in(page, f"{desk.base_url}/console", agent)
    item = page.locator(f"#queue li[data-number='{number}'] .countdown")
    expect(item).to_contain_text(re.compile(r"first response in \d+ s"))
    first = item.inner_text()
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url))
    expect(item).not_to_have_text(first)  # a second later, the page's one ticker rewrote it
    assert re.fullmatch(r"first response (in|overdue by) \d+ s", item.inner_text())
    assert asked == []  # ...and asked the server nothing for it


def test_a_ticket_with_a_file_from_the_portal_to_a_change_and_an_escalation_live(
    desk: Desk, hosts: list[LocalHost], host_id: int, new_page: Any, tmp_path: Path
) -> None:
    """The whole journey: a customer opens a ticket with a file; a level-1 agent sees it arrive
    in the queue, finds the customer by searching the domain, replies, requests a change with
    its preview and escalates; the customer sees the reply and the change live."""
    h = hosts[0]
    _, email, _, zone = customer_with_zone(desk, h, host_id)
    agent = make_agent(desk, 1)
    console = new_page()
    log_in(console, f"{desk.base_url}/console", agent)
    expect(console.locator("#live")).to_have_attribute("data-state", "live")
    portal = new_page()
    log_in(portal, f"{desk.base_url}/portal", email)
    screenshot = tmp_path / "error page.png"
    screenshot.write_bytes(b"\x89PNG\r\n\x1a\n" + secrets.token_bytes(2048))
    portal.get_by_label("Subject").fill("Mail from our site bounces")
    portal.get_by_label("What do you need?").fill(f"Our SPF for {zone} seems wrong; see file.")
    portal.get_by_label("Attach files (optional)").first.set_input_files(str(screenshot))
    portal.get_by_role("button", name="Open ticket").click()
    expect(portal.locator("#ticket-title")).to_contain_text("Mail from our site bounces")
    number = portal.locator("#ticket-title .mono").inner_text()
    expect(portal.locator("#messages .files")).to_contain_text("error page.png")

    # The agent: it arrives in the queue without a reload; the domain finds the customer.
    expect(console.locator(f"#queue li[data-number='{number}']")).to_be_visible()
    console.get_by_label("Search tickets and accounts").fill(zone)
    console.get_by_role("button", name="Search").click()
    expect(console.locator("#search-accounts li[data-account-id]")).to_have_count(1)
    expect(console.locator(f"#search-tickets li[data-number='{number}']")).to_be_visible()
    console.locator(f"#search-tickets li[data-number='{number}'] a").click()
    expect(console.locator("#messages .files")).to_contain_text("error page.png")
    with console.expect_download() as got:
        console.get_by_role("button", name="error page.png").click()
    assert Path(got.value.path()).read_bytes() == screenshot.read_bytes()
    console.get_by_role("button", name="Take").click()
    expect(console.locator("#ticket-meta")).to_contain_text("owner")
    console.get_by_label("Reply or internal note").fill("We will publish a new SPF record now.")
    guide = tmp_path / "spf-guide.txt"
    guide.write_text("v=spf1 mx -all: only your MX may send.\n")
    console.locator("#message-files").set_input_files(str(guide))
    console.get_by_role("button", name="Reply to customer").click()
    expect(portal.locator("#messages > li")).to_have_count(2)  # the reply, live, with its file
    expect(portal.locator("#messages")).to_contain_text("publish a new SPF record")
    reply = portal.locator("#messages > li").nth(1)
    expect(reply.locator(".files")).to_contain_text("spf-guide.txt")

    console.locator("#change-tools summary").click()
    console.get_by_label("Service").select_option(label=f"dns_zone {zone}")
    console.get_by_label("Change", exact=True).select_option(label="Add a DNS record")
    preview_record(console, "@", "TXT", "v=spf1 mx -all")
    preview = console.get_by_role("region", name="Preview")
    expect(preview).to_contain_text(f'add @ 3600 TXT "v=spf1 mx -all" in zone {zone}')
    preview.get_by_role("button", name="Confirm").click()
    expect(console.locator("#ticket-changes li.change").first).to_have_attribute(
        "data-status", "applied"
    )
    assert dig(h, zone) == ['"v=spf1 mx -all"']
    expect(portal.locator("#changes li.change").first).to_have_attribute("data-status", "applied")

    console.get_by_label("Escalation reason").fill("SPF fixed; DKIM keys need level 2")
    console.get_by_role("button", name="Escalate").click()
    expect(console.locator("#ticket-meta")).to_contain_text("level 2")
    expect(portal.locator("#ticket-meta")).to_contain_text("open")


def test_a_change_that_fails_on_the_host_says_why_and_links_its_ticket(
    desk: Desk, hosts: list[LocalHost], host_id: int, new_page: Any
) -> None:
    """Between the preview and the confirm, the zone changed on the host (an A record where the
    customer wants a CNAME): the change fails there, the line says so plainly and links the
    ticket support got for it."""
    h = hosts[0]
    _, email, _, zone = customer_with_zone(desk, h, host_id)
    page = new_page()
    log_in(page, f"{desk.base_url}/portal", email)
    page.get_by_role("link", name=re.compile(zone)).first.click()
    preview_record(page, "shop", "CNAME", f"www.{zone}")
    preview = page.get_by_role("region", name="Preview")
    expect(preview).to_contain_text(f"add shop 3600 CNAME www.{zone}. in zone {zone}")
    edit_zone_by_hand(h, zone, "shop", "192.0.2.80")  # meanwhile, someone edits it by hand
    preview.get_by_role("button", name="Confirm").click()
    line = page.locator("#changes li.change").first
    expect(line).to_have_attribute("data-status", "failed")
    expect(line).to_contain_text("could not be applied")
    link = line.get_by_role("link", name=re.compile(r"TT-\d+"))
    expect(link).to_be_visible()
    link.click()
    expect(page.locator("#ticket-title")).to_contain_text("shop")
    assert dig(h, f"shop.{zone}", "CNAME") == []  # nothing half-done on the host


def test_settings_change_the_password_and_sign_out_everywhere(desk: Desk, new_page: Any) -> None:
    _, email = desk.new_customer("Set Tings")
    other = desk.login(email)  # another device's session
    page = new_page()
    log_in(page, f"{desk.base_url}/portal", email)
    page.get_by_role("link", name="Settings").click()
    page.get_by_label("Current password").fill(PASSWORD)
    page.get_by_label("New password").fill(email)
    page.get_by_role("button", name="Change password").click()
    expect(page.locator("#password-error")).to_contain_text("e-mail")  # the server's reason
    page.get_by_label("Current password").fill(PASSWORD)
    page.get_by_label("New password").fill("a much longer new password")
    page.get_by_role("button", name="Change password").click()
    expect(page.locator("#password-done")).to_be_visible()
    with desk.http(other) as c:
        assert c.get("/api/v1/me").status_code == 401  # the other session ended
    assert desk.login(email, "a much longer new password")
    page.get_by_role("button", name="Sign out everywhere").click()
    expect(page.get_by_role("button", name="Log in")).to_be_visible()


def test_customer_adds_and_removes_a_cron_job(
    desk: Desk, hosts: list[LocalHost], host_id: int, new_page: Any
) -> None:
    account, email = desk.new_customer("Cron Page")
    unix_user(account.unix_user)  # cron runs the account's jobs as its Unix user
    with desk.db.write() as s:
        site = AccountRepository(s).add_service(account.id, kind="web_hosting",
                                                name=f"cron{secrets.token_hex(3)}.test",
                                                host_id=host_id)  # fmt: skip
    page = new_page()
    log_in(page, f"{desk.base_url}/portal", email)
    page.goto(f"{desk.base_url}/portal#/services/{site.id}")
    rows = page.locator("section.cron tbody tr")
    expect(rows).to_have_text(["No cron jobs."])
    form = page.locator("form[data-kind=cron_add]")
    form.get_by_label("Name").fill("nightly")
    form.get_by_label("Schedule").fill("15 3 * * *")
    form.get_by_label("Command").fill("php /home/site/cron.php")
    form.get_by_role("button", name="Preview").click()
    preview = page.get_by_role("region", name="Preview")
    preview.get_by_role("button", name="Confirm").click()
    expect(rows.filter(has_text="nightly")).to_contain_text("15 3 * * *")
    assert "15 3 * * * php /home/site/cron.php" in crontab_of(account.unix_user)  # cron's
    page.get_by_role("button", name="Remove cron job nightly").click()
    page.locator("form[data-kind=cron_remove] button").click()
    preview.get_by_role("button", name="Confirm").click()
    expect(rows).to_have_text(["No cron jobs."])
    assert crontab_of(account.unix_user) == ""  # no job left: no crontab


def test_without_the_live_stream_a_change_still_reaches_its_end_on_the_page(
    desk: Desk, hosts: list[LocalHost], host_id: int, new_page: Any
) -> None:
    """The stream cut (here: refused by the browser), the page asks the change itself."""
    h = hosts[0]
    _, email, _, zone = customer_with_zone(desk, h, host_id)
    page = new_page()
    page.route("**/api/v1/events", lambda route: route.abort())
    page.goto(f"{desk.base_url}/portal")
    page.get_by_label("E-mail address").fill(email)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("link", name=re.compile(zone)).first.click()
    preview_record(page, "nolive", "A", "192.0.2.44")
    page.get_by_role("region", name="Preview").get_by_role("button", name="Confirm").click()
    expect(page.locator("#live")).not_to_have_attribute("data-state", "live")
    expect(page.locator("#changes li.change").first).to_have_attribute(
        "data-status", "applied", timeout=20_000
    )
    assert dig(h, f"nolive.{zone}", "A") == ["192.0.2.44"]


def test_customer_resets_an_ftp_password(
    desk: Desk, hosts: list[LocalHost], host_id: int, new_page: Any
) -> None:
    h = hosts[0]
    account, email, zone_id, _ = customer_with_zone(desk, h, host_id)
    unix_user(account.unix_user, h)  # its FTP users are it, chrooted to its home
    username = f"ftp{secrets.token_hex(3)}"
    params = {
        "account": account.unix_user,
        "username": username,
        "password": "first-Ftp-password-1",
    }  # made as support would; fmt: skip
    applied(desk, desk.admin(), {"service_id": zone_id, "kind": "ftp_account_create",
                                 "params": params})  # fmt: skip
    with desk.db.write() as s:
        ftp = AccountRepository(s).add_service(account.id, kind="ftp_account", name=username,
                                               host_id=host_id)  # fmt: skip
    assert ftp_refusal(h, username, "first-Ftp-password-1") is None
    page = new_page()
    log_in(page, f"{desk.base_url}/portal", email)
    page.goto(f"{desk.base_url}/portal#/services/{ftp.id}")
    expect(page.locator("section.ftp-facts")).to_contain_text(f"The FTP account {username} exists")
    form = page.locator("form[data-kind=ftp_password]")
    expect(form.get_by_label("Password")).to_have_attribute("type", "password")
    form.get_by_label("Password").fill("a-New-ftp-Password-2")
    form.get_by_role("button", name="Preview").click()
    preview = page.get_by_role("region", name="Preview")
    expect(preview).to_contain_text(username)
    preview.get_by_role("button", name="Confirm").click()
    expect(page.locator("#changes li.change").first).to_have_attribute("data-status", "applied")
    # The FTP program logs in with the new password only; the host keeps no plain password.
    assert ftp_refusal(h, username, "a-New-ftp-Password-2") is None
    assert ftp_refusal(h, username, "first-Ftp-password-1") is not None
    assert "a-New-ftp-Password-2" not in (h.root / "ftp" / "passwd").read_text()


def test_one_event_costs_the_console_only_the_requests_it_needs(desk: Desk, new_page: Any) -> None:
    """The customer answers the ticket an agent has open: the console fetches that ticket and
    the agent's own list, and nothing else (the timeline entry comes in the event itself)."""
    _, customer = desk.customer("Few Requests")
    with desk.http(customer) as c:
        number = c.post("/api/v1/tickets", json={"subject": "Quiet please", "body": "x"}).json()[
            "number"
        ]
    agent = make_agent(desk, 1)
    with desk.http(desk.login(agent)) as c:
        assert c.post(f"/api/v1/tickets/{number}/take").status_code == 200
    page = new_page()
    log_in(page, f"{desk.base_url}/console#/tickets/{number}", agent)
    expect(page.locator("#account-body")).to_be_visible()
    expect(page.locator("#timeline li").first).to_be_visible()
    entries = page.locator("#timeline li").count()
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url.split("/api/v1", 1)[-1]))
    with page.expect_request(re.compile(r"/api/v1/tickets\?owner=me")):
        with desk.http(customer) as c:
            r = c.post(f"/api/v1/tickets/{number}/messages", json={"body": "Any news?"})
            assert r.status_code == 201, r.text
        expect(page.locator("#messages")).to_contain_text("Any news?")
    expect(page.locator("#timeline li")).to_have_count(entries + 1)  # from the event
    assert sorted(a.split("?", 1)[0] for a in asked) == ["/tickets", f"/tickets/{number}"], asked
