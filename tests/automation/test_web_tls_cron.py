"""What a customer notices of TLS certificates, suspensions and cron entries, on a real host:
the certificate nginx presents in a handshake naming the site (SNI), the page a suspended site
answers (and its FTP log-ins refused), the account's crontab as ``crontab -l -u`` shows it."""

from __future__ import annotations

import contextlib
import hashlib
import pwd
import socket
import ssl
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from automation.changes import Change, ChangeValidationError, parse_change
from automation.changes.base import SUSPENDED_LIST
from automation.changes.cron import cron_path
from automation.changes.tls import cert_path, key_path
from automation.changes.vhost import tls_path
from automation.clients import Endpoint
from automation.clients.ftp import LoginRefused, listing
from automation.executor.executor import Executor
from automation.executor.outcome import ChangeOutcome, OutcomeCollector
from automation.executor.request import ChangeRequest
from automation.local_hosts.host import LocalHost
from tests.automation.conftest import change, http_get, journal, request
from tests.automation.test_validation import make_cert
from tests.hosts import unix_user

SITES = "wtc-web"  # the account whose sites get certificates
SUSPENDED = "wtc-susp"  # the account a test suspends (its sites, its FTP user)
CRON = "wtc-cron"  # the accounts whose crontabs the cron tests edit
CRON2 = "wtc-cron2"
USERS = (SITES, SUSPENDED, CRON, CRON2)
NO_USER = "wtc-nouser"  # an account name no Unix user has

FORCED: set[str] = set()  # change ids whose verification the executor is told fails

Apply = Callable[..., ChangeOutcome]


@pytest.fixture(scope="module")
def accounts() -> Iterator[dict[str, pwd.struct_passwd]]:
    """The accounts' Unix users (made if missing; the session's end removes those it made);
    their crontabs are removed after the module."""
    with contextlib.suppress(KeyError):
        pwd.getpwnam(NO_USER)
        pytest.fail(f"{NO_USER} must not be a user on this machine")
    yield {name: unix_user(name) for name in USERS}
    for name in USERS:
        subprocess.run(["crontab", "-u", name, "-r"], capture_output=True, check=False)


@pytest.fixture(scope="module")
def host(hosts_base: Path, accounts: dict[str, pwd.struct_passwd]) -> Iterator[LocalHost]:
    """One host with nginx (HTTP and HTTPS) and pure-ftpd; each account's home is its own."""
    name = f"wtc-{uuid.uuid4().hex[:6]}"
    with LocalHost(hosts_base, name, with_named=False, services=("ftp",)) as h:
        for user in accounts.values():
            home = h.root / "home" / user.pw_name
            home.mkdir(parents=True)
            home.chmod(0o755)
            subprocess.run(["chown", f"{user.pw_uid}:{user.pw_gid}", str(home)], check=True)
        yield h


@pytest.fixture(scope="module")
def apply(host: LocalHost) -> Iterator[Apply]:
    """``apply(request, ...)``: submit, wait, the last one's outcome. The executor fails the
    verification of the FORCED ids."""
    collector = OutcomeCollector()
    ex = Executor(
        collector,
        exec_timeout=10.0,
        connect_timeout=2.0,
        backoff_max=0.5,
        verify_hook=lambda req: "forced by the test" if req.change_id in FORCED else None,
    )
    ex.add_host(host.spec())

    def run(*reqs: ChangeRequest) -> ChangeOutcome:
        ex.submit_many(list(reqs))
        got = collector.wait([r.change_id for r in reqs], 60)
        return got[reqs[-1].change_id]

    yield run
    ex.close()


def applied(apply: Apply, host: LocalHost, ch: Change) -> None:
    outcome = apply(request(host, ch))
    assert outcome.status == "applied", outcome.error


def forced(apply: Apply, host: LocalHost, ch: Change) -> ChangeOutcome:
    req = request(host, ch)
    FORCED.add(req.change_id)
    return apply(req)


# --- TLS --------------------------------------------------------------------------------------


def presented(host: LocalHost, name: str | None) -> str:
    """SHA-256 of the certificate the host's HTTPS port presents for SNI `name` (None: no SNI);
    ssl.SSLError when nginx refuses the handshake."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    assert host.nginx is not None
    with (
        socket.create_connection(("127.0.0.1", host.nginx.https_port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=name) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return hashlib.sha256(der).hexdigest()


def fingerprint(pem: str) -> str:
    return hashlib.sha256(
        x509.load_pem_x509_certificate(pem.encode()).public_bytes(Encoding.DER)
    ).hexdigest()


def https_get(host: LocalHost, domain: str, path: str = "/") -> httpx.Response:
    """A request over HTTPS naming `domain` in SNI and Host (the certificate is self-signed)."""
    assert host.nginx is not None
    transport = httpx.HTTPTransport(verify=False)
    with httpx.Client(transport=transport, timeout=5) as client:
        url = f"https://127.0.0.1:{host.nginx.https_port}{path}"
        return client.get(url, extensions={"sni_hostname": domain}, headers={"Host": domain})


def site(host: LocalHost, apply: Apply, account: str, domain: str) -> None:
    vhost = change("vhost_create", account=account, domain=domain, document_root=domain)
    applied(apply, host, vhost)


def tls(domain: str, names: list[str] | None = None) -> tuple[Change, str]:
    cert, key = make_cert(names or [domain])
    return change("tls_install", domain=domain, certificate=cert, private_key=key), cert


def test_an_installed_certificate_is_presented_for_its_name_and_replaced_by_the_next(
    host: LocalHost, apply: Apply
) -> None:
    shop, blog = "shop.wtc.test", "blog.wtc.test"
    site(host, apply, SITES, shop)
    site(host, apply, SITES, blog)
    with pytest.raises(ssl.SSLError):
        presented(host, shop)  # no certificate yet: no handshake
    first, first_pem = tls(shop)
    applied(apply, host, first)
    assert presented(host, shop) == fingerprint(first_pem)
    key = host.root / key_path(shop)
    assert key.stat().st_mode & 0o777 == 0o600 and key.stat().st_uid == 0
    assert (host.root / "tls").stat().st_mode & 0o777 == 0o700
    # HTTPS serves the site itself.
    r = https_get(host, shop)
    assert r.status_code == 200 and shop in r.text

    blog_change, blog_pem = tls(blog, [blog, "www.blog.wtc.test"])
    applied(apply, host, blog_change)
    second, second_pem = tls(shop)
    applied(apply, host, second)
    assert presented(host, shop) == fingerprint(second_pem) != fingerprint(first_pem)
    assert presented(host, blog) == fingerprint(blog_pem)  # each site its own


@pytest.mark.parametrize("name", ["unknown.wtc.test", None], ids=["unknown-sni", "no-sni"])
def test_a_name_no_site_has_gets_no_certificate(
    host: LocalHost, apply: Apply, name: str | None
) -> None:
    domain = "known.wtc.test"
    site(host, apply, SITES, domain)
    applied(apply, host, tls(domain)[0])
    presented(host, domain)
    with pytest.raises(ssl.SSLError):
        presented(host, name)  # refused: no customer's certificate for a stranger


def test_a_failed_verification_puts_the_previous_certificate_back(
    host: LocalHost, apply: Apply
) -> None:
    domain = "roll.wtc.test"
    site(host, apply, SITES, domain)
    before, before_pem = tls(domain)
    applied(apply, host, before)
    files = {p: (host.root / p).read_text() for p in (cert_path(domain), key_path(domain))}
    outcome = forced(apply, host, tls(domain)[0])
    assert outcome.status == "rolled_back", outcome.error
    assert presented(host, domain) == fingerprint(before_pem)
    assert {p: (host.root / p).read_text() for p in files} == files
    assert (host.root / key_path(domain)).stat().st_mode & 0o777 == 0o600


def test_a_first_certificate_that_fails_verification_leaves_no_tls(
    host: LocalHost, apply: Apply
) -> None:
    domain = "first.wtc.test"
    site(host, apply, SITES, domain)
    outcome = forced(apply, host, tls(domain)[0])
    assert outcome.status == "rolled_back", outcome.error
    for rel in (cert_path(domain), key_path(domain), tls_path(domain)):
        assert not (host.root / rel).exists(), rel
    with pytest.raises(ssl.SSLError):
        presented(host, domain)
    assert http_get(host, domain)[0] == 200  # the site itself untouched


def test_a_certificate_for_a_domain_without_a_site_is_refused_before_the_host(
    host: LocalHost, apply: Apply
) -> None:
    domain = "nosite.wtc.test"
    req = request(host, tls(domain)[0])
    outcome = apply(req)
    assert outcome.status == "failed"
    assert f"there is no site for {domain}" in (outcome.error or ""), outcome.error
    for rel in (cert_path(domain), key_path(domain), tls_path(domain)):
        assert not (host.root / rel).exists(), rel
    assert not (journal(host) / req.change_id).exists()


# --- suspension -------------------------------------------------------------------------------


def ftp_refused(host: LocalHost, user: str, password: str) -> bool:
    try:
        listing(Endpoint("127.0.0.1", host.layout()), user, password)
    except LoginRefused:
        return True
    return False


def test_a_suspended_account_s_sites_answer_the_suspension_page_until_unsuspended(
    host: LocalHost, apply: Apply
) -> None:
    one, two, other = "one.susp.test", "two.susp.test", "other.susp.test"
    for domain in (one, two):
        site(host, apply, SUSPENDED, domain)
    site(host, apply, SITES, other)
    applied(apply, host, tls(one)[0])
    ftp_user, password = f"wtc{uuid.uuid4().hex[:6]}", "suspended ftp 123"
    applied(apply, host, change("ftp_account_create", account=SUSPENDED, username=ftp_user,
                                password=password))  # fmt: skip
    assert not ftp_refused(host, ftp_user, password)

    applied(apply, host, change("account_suspend", account=SUSPENDED))
    assert SUSPENDED in (host.root / SUSPENDED_LIST).read_text().split("\n")
    for domain, path in [(one, "/"), (two, "/"), (two, "/logo.png")]:
        status, body = http_get(host, domain, path)
        assert status == 403 and "This site is suspended" in body, (domain, path, status)
    assert (
        httpx.get(f"http://127.0.0.1:{host.layout().http_port}/logo.png", headers={"Host": two})
        .headers["content-type"]
        .startswith("text/html")
    )
    r = https_get(host, one)
    assert r.status_code == 403 and "This site is suspended" in r.text  # HTTPS too
    assert http_get(host, other)[0] == 200  # another account's site is served as before
    assert ftp_refused(host, ftp_user, password)

    applied(apply, host, change("account_unsuspend", account=SUSPENDED))
    assert SUSPENDED not in (host.root / SUSPENDED_LIST).read_text().split("\n")
    for domain in (one, two):
        status, body = http_get(host, domain)
        assert status == 200 and domain in body and "suspended" not in body
    assert https_get(host, one).status_code == 200
    assert not ftp_refused(host, ftp_user, password)


def test_a_suspension_that_fails_verification_leaves_the_sites_served(
    host: LocalHost, apply: Apply
) -> None:
    domain = "kept.susp.test"
    site(host, apply, SUSPENDED, domain)
    outcome = forced(apply, host, change("account_suspend", account=SUSPENDED))
    assert outcome.status == "rolled_back", outcome.error
    assert http_get(host, domain)[0] == 200
    assert SUSPENDED not in (host.root / SUSPENDED_LIST).read_text().split("\n")


# --- cron -------------------------------------------------------------------------------------


def crontab(user: str) -> list[str] | None:
    """The user's crontab as cron has it (``crontab -l -u``), None when there is none."""
    got = subprocess.run(["crontab", "-l", "-u", user], capture_output=True, text=True)
    if got.returncode != 0:
        assert "no crontab for" in got.stderr, got.stderr
        return None
    return got.stdout.splitlines()


def cron_add(account: str, name: str, schedule: str, command: str) -> Change:
    return change("cron_add", account=account, name=name, schedule=schedule, command=command)


def cron_remove(account: str, name: str) -> Change:
    return change("cron_remove", account=account, name=name)


def test_cron_entries_are_exactly_the_account_s_crontab(host: LocalHost, apply: Apply) -> None:
    root_before = subprocess.run(["crontab", "-l"], capture_output=True, text=True)
    applied(apply, host, cron_add(CRON, "backup", "*/15 * * * *", "/usr/bin/backup --quiet"))
    applied(apply, host, cron_add(CRON, "report", "@daily", "echo 'a b' >/dev/null"))
    assert crontab(CRON) == [
        "# gdcas:backup", "*/15 * * * * /usr/bin/backup --quiet",
        "# gdcas:report", "@daily echo 'a b' >/dev/null",
    ]  # fmt: skip
    assert crontab(CRON2) is None  # a user with no entries has no crontab
    applied(apply, host, cron_remove(CRON, "backup"))
    assert crontab(CRON) == ["# gdcas:report", "@daily echo 'a b' >/dev/null"]
    applied(apply, host, cron_remove(CRON, "report"))
    assert crontab(CRON) is None
    assert not (host.root / cron_path(CRON)).exists()
    root_after = subprocess.run(["crontab", "-l"], capture_output=True, text=True)
    assert (root_after.returncode, root_after.stdout) == (
        root_before.returncode,
        root_before.stdout,
    )


def test_a_crontab_edited_by_the_account_is_replaced_by_its_entries(
    host: LocalHost, apply: Apply, accounts: dict[str, pwd.struct_passwd]
) -> None:
    # The account's own crontab, edited with its own `crontab` (as GDCAS would write one, too).
    mine = "# gdcas:only\n* * * * * echo mine\nMAILTO=someone@example.com\n"
    user = accounts[CRON2]
    ids = [f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups"]
    subprocess.run(["setpriv", *ids, "--", "crontab", "-"], input=mine, text=True, check=True)
    assert crontab(CRON2) == mine.splitlines()
    applied(apply, host, cron_add(CRON2, "only", "0 3 * * mon", "true"))
    assert crontab(CRON2) == ["# gdcas:only", "0 3 * * mon true"]
    applied(apply, host, cron_remove(CRON2, "only"))
    assert crontab(CRON2) is None


def test_a_cron_change_that_fails_verification_restores_the_previous_crontab(
    host: LocalHost, apply: Apply
) -> None:
    applied(apply, host, cron_add(CRON, "keep", "@hourly", "true"))
    before = crontab(CRON)
    outcome = forced(apply, host, cron_add(CRON, "extra", "@weekly", "false"))
    assert outcome.status == "rolled_back", outcome.error
    assert crontab(CRON) == before == ["# gdcas:keep", "@hourly true"]
    outcome = forced(apply, host, cron_remove(CRON, "keep"))
    assert outcome.status == "rolled_back", outcome.error
    assert crontab(CRON) == before
    applied(apply, host, cron_remove(CRON, "keep"))
    assert crontab(CRON) is None


def test_cron_for_an_account_without_a_unix_user_fails_clearly(
    host: LocalHost, apply: Apply
) -> None:
    outcome = apply(request(host, cron_add(NO_USER, "job", "@daily", "true")))
    assert outcome.status == "failed"
    assert f"the crontab of {NO_USER}: no such Unix user" in (outcome.error or ""), outcome.error
    assert not (host.root / cron_path(NO_USER)).exists()  # taken back


def test_root_s_crontab_is_refused_before_the_host() -> None:
    for kind, params in [
        ("cron_add", {"account": "root", "name": "x", "schedule": "@daily", "command": "true"}),
        ("cron_remove", {"account": "root", "name": "x"}),
    ]:
        with pytest.raises(ChangeValidationError) as info:
            parse_change(kind, params)
        assert "never root's" in " ".join(info.value.errors)


# --- the checks themselves --------------------------------------------------------------------


def on_host(host: LocalHost) -> Endpoint:
    """The host as the executor's client checks reach it: its ports, and a shell on it (the
    host is this machine: its scripts run here, as root, as they would over SSH)."""

    def shell(script: str) -> tuple[int, str]:
        done = subprocess.run(["sh", "-s"], input=script, capture_output=True, text=True)
        return done.returncode, done.stdout + done.stderr

    return Endpoint("127.0.0.1", host.layout(), shell=shell)


def test_the_checks_say_when_the_servers_do_not_show_the_change(
    host: LocalHost, apply: Apply
) -> None:
    """Each kind's client check against the real servers, in a state the change did not make:
    a reason, naming what the server shows."""
    at = on_host(host)
    domain = "check.wtc.test"
    site(host, apply, SUSPENDED, domain)
    installed, installed_pem = tls(domain)
    applied(apply, host, installed)
    other = tls(domain)[0]
    assert installed.check_by_client(at) is None
    problem = other.check_by_client(at) or ""
    assert f"presents {fingerprint(installed_pem)[:16]}" in problem, problem

    suspend = parse_change("account_suspend", {"account": SUSPENDED})
    problem = suspend.check_by_client(at) or ""
    assert f"http://{domain}/ answers HTTP 200, not the suspension page" in problem, problem

    add = cron_add(CRON2, "job", "@daily", "true")
    applied(apply, host, add)
    assert add.check_by_client(at) is None
    subprocess.run(["crontab", "-u", CRON2, "-r"], check=True)  # cron lost it behind GDCAS
    problem = add.check_by_client(at) or ""
    assert f"crontab -l -u {CRON2} shows none, not the entries GDCAS wrote (1)" in problem, problem
    applied(apply, host, cron_remove(CRON2, "job"))
