"""FTP accounts on a real pure-ftpd (PureDB virtual users), as a customer's FTP client sees
them: a log-in with the password the change set, the listing of the account's home."""

from __future__ import annotations

import contextlib
import pwd
import subprocess
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from automation.changes import Change, ChangeValidationError, parse_change
from automation.changes.base import SUSPENDED_LIST
from automation.changes.ftp import FTP_PASSWD, FTP_PDB, FTP_PDB_SOURCE, FtpAccountCreate
from automation.clients import Endpoint
from automation.clients.ftp import listing, login_error, names
from automation.executor.executor import Executor
from automation.executor.outcome import ChangeOutcome, OutcomeCollector
from automation.executor.request import ChangeRequest
from automation.local_hosts.host import LocalHost
from tests.automation.conftest import change, journal, request
from tests.hosts import running_hosts, unix_user

ACCOUNT = "gdcas-ftp"  # a real Unix user: the account whose FTP users these are
OTHER = "gdcas-ftp2"  # a second account, the one a test suspends
NO_USER = "gdcas-ftp-nouser"  # an account name no Unix user has

FORCED: set[str] = set()  # change ids whose verification the executor is told fails


@pytest.fixture(scope="module")
def accounts() -> Iterator[dict[str, pwd.struct_passwd]]:
    """The accounts' Unix users (made if missing; the session's end removes those it made)."""
    with contextlib.suppress(KeyError):
        pwd.getpwnam(NO_USER)
        pytest.fail(f"{NO_USER} must not be a user on this machine")
    yield {name: unix_user(name) for name in (ACCOUNT, OTHER)}


@pytest.fixture(scope="module")
def hosts_ftp(
    hosts_base: Path, accounts: dict[str, pwd.struct_passwd]
) -> Iterator[tuple[LocalHost, LocalHost]]:
    """A host running pure-ftpd (with each account's home, its own), and one without FTP."""
    made = [
        LocalHost(hosts_base, "ftp0", with_named=False, with_nginx=False, services=("ftp",)),
        LocalHost(hosts_base, "noftp0", with_named=False, with_nginx=False),
    ]
    with running_hosts(made) as (ftp_host, bare):
        for user in accounts.values():
            home = ftp_host.root / "home" / user.pw_name
            home.mkdir(parents=True)
            home.chmod(0o750)
            subprocess.run(["chown", f"{user.pw_uid}:{user.pw_gid}", str(home)], check=True)
        yield ftp_host, bare


@pytest.fixture
def ftp_host(hosts_ftp: tuple[LocalHost, LocalHost]) -> LocalHost:
    return hosts_ftp[0]


Apply = Callable[..., ChangeOutcome]


@pytest.fixture
def new_apply(hosts_ftp: tuple[LocalHost, LocalHost]) -> Iterator[Callable[[], Apply]]:
    """Each call: a new executor of both hosts (its own file cache), as ``apply(request, ...)``
    that submits and waits for the outcomes (the last one's is returned). The executors fail
    the verification of the FORCED ids."""
    made: list[Executor] = []

    def new() -> Apply:
        collector = OutcomeCollector()
        ex = Executor(
            collector,
            exec_timeout=10.0,
            connect_timeout=2.0,
            backoff_max=0.5,
            verify_hook=lambda req: "forced by the test" if req.change_id in FORCED else None,
        )
        made.append(ex)
        for host in hosts_ftp:
            ex.add_host(host.spec())

        def run(*reqs: ChangeRequest) -> ChangeOutcome:
            collector.outcomes.clear()
            ex.submit_many(list(reqs))
            got = collector.wait([r.change_id for r in reqs], 60)
            return got[reqs[-1].change_id]

        return run

    yield new
    for ex in made:
        ex.close()


@pytest.fixture
def apply(new_apply: Callable[[], Apply]) -> Apply:
    return new_apply()


def at(host: LocalHost) -> Endpoint:
    return Endpoint("127.0.0.1", host.layout())


def new_user(prefix: str = "u") -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def create(account: str, username: str, password: str, **extra: str) -> Change:
    return change(
        "ftp_account_create", account=account, username=username, password=password, **extra
    )


def password_change(username: str, password: str) -> Change:
    return change("ftp_password", username=username, password=password)


def as_user(user: pwd.struct_passwd, script: str) -> None:
    """A shell command run as the account's Unix user (what the customer's own code may do)."""
    ids = [f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups"]
    subprocess.run(["setpriv", *ids, "--", "sh", "-c", script], check=True)


def refused(host: LocalHost, *logins: tuple[str, str]) -> list[bool]:
    """Whether the server refuses each (user, password) log-in. Tried side by side: pure-ftpd
    answers a refusal only after 3-6 s."""
    with ThreadPoolExecutor(len(logins)) as pool:
        reasons = list(pool.map(lambda login: login_error(at(host), *login), logins))
    return [r is not None and "refused the log-in of" in r for r in reasons]


def test_a_new_ftp_account_logs_in_and_lists_its_home(
    ftp_host: LocalHost, apply: Apply, accounts: dict[str, pwd.struct_passwd]
) -> None:
    user, password = new_user(), "first ftp password 1"
    outcome = apply(request(ftp_host, create(ACCOUNT, user, password)))
    assert outcome.status == "applied", outcome.error
    home = ftp_host.root / "home" / ACCOUNT
    as_user(accounts[ACCOUNT], f"echo hello > {home}/hello-{user}.txt")
    assert f"hello-{user}.txt" in names(at(ftp_host), user, password)
    [line] = [x for x in listing(at(ftp_host), user, password) if f"hello-{user}" in x]
    # Its owner, as the account's user wrote it (by number: chrooted, the server sees no names).
    assert line.split()[2] == str(accounts[ACCOUNT].pw_uid)
    assert refused(ftp_host, (user, "not the password 1"), (new_user(), password)) == [True] * 2
    # Only hashes on the host, in root's files alone.
    for rel in (FTP_PASSWD, FTP_PDB_SOURCE, FTP_PDB):
        path = ftp_host.root / rel
        assert password.encode() not in path.read_bytes()
        assert path.stat().st_mode & 0o077 == 0 and path.stat().st_uid == 0
    assert f"{user}:{{ARGON2ID}}$argon2id$" in (ftp_host.root / FTP_PASSWD).read_text()
    assert FtpAccountCreate.verified_by.startswith("the FTP server accepts the new password")


def test_an_ftp_home_below_the_account_home_is_made_as_the_account_user(
    ftp_host: LocalHost, apply: Apply, accounts: dict[str, pwd.struct_passwd]
) -> None:
    user, password, sub = new_user(), "sub dir password 1", f"sites/{new_user('d')}"
    outcome = apply(request(ftp_host, create(ACCOUNT, user, password, directory=sub)))
    assert outcome.status == "applied", outcome.error
    directory = ftp_host.root / "home" / ACCOUNT / sub
    assert directory.is_dir() and directory.stat().st_uid == accounts[ACCOUNT].pw_uid
    assert directory.parent.stat().st_uid == accounts[ACCOUNT].pw_uid
    as_user(accounts[ACCOUNT], f"echo up > {directory}/index.html")
    assert names(at(ftp_host), user, password) == ["index.html"]  # chrooted to its directory


def test_a_password_change_takes_effect(ftp_host: LocalHost, apply: Apply) -> None:
    user, old, new = new_user(), "the old password 1", "the new password 2"
    assert apply(request(ftp_host, create(ACCOUNT, user, old))).status == "applied"
    outcome = apply(request(ftp_host, password_change(user, new)))
    assert outcome.status == "applied", outcome.error
    assert login_error(at(ftp_host), user, new) is None
    assert refused(ftp_host, (user, old)) == [True]


def test_a_failed_verification_rolls_the_password_back(ftp_host: LocalHost, apply: Apply) -> None:
    user, old, new = new_user(), "kept password 11", "rolled back password 2"
    assert apply(request(ftp_host, create(ACCOUNT, user, old))).status == "applied"
    req = request(ftp_host, password_change(user, new))
    FORCED.add(req.change_id)
    outcome = apply(req)
    assert outcome.status == "rolled_back" and "forced by the test" in (outcome.error or "")
    assert login_error(at(ftp_host), user, old) is None
    assert refused(ftp_host, (user, new)) == [True]
    assert (journal(ftp_host) / req.change_id).read_text().startswith("rolled_back")


def test_a_host_without_ftp_refuses_ftp_changes(
    hosts_ftp: tuple[LocalHost, LocalHost], apply: Apply
) -> None:
    bare = hosts_ftp[1]
    for ch in (create(ACCOUNT, new_user(), "no server here 1"), password_change("x", "y" * 12)):
        req = request(bare, ch)
        outcome = apply(req)
        assert outcome.status == "failed"
        assert "this host runs no FTP server" in (outcome.error or ""), outcome.error
        assert not (journal(bare) / req.change_id).exists()
    assert not (bare.root / "ftp").exists()


def test_an_account_without_a_unix_user_is_refused_and_said_so(
    ftp_host: LocalHost, apply: Apply
) -> None:
    kept, password = new_user(), "still works 123"
    assert apply(request(ftp_host, create(ACCOUNT, kept, password))).status == "applied"
    user = new_user()
    outcome = apply(request(ftp_host, create(NO_USER, user, "orphan password 1")))
    assert outcome.status == "failed"
    assert f"there is no Unix user {NO_USER} on this host" in (outcome.error or ""), outcome.error
    assert f"{user}:" not in (ftp_host.root / FTP_PASSWD).read_text()  # taken back
    assert login_error(at(ftp_host), kept, password) is None  # the others' log-ins stay


def test_a_suspended_account_cannot_log_in(
    ftp_host: LocalHost, apply: Apply, new_apply: Callable[[], Apply]
) -> None:
    user, other_user = new_user(), new_user()
    assert apply(request(ftp_host, create(OTHER, user, "before suspension 1"))).status == "applied"
    assert apply(request(ftp_host, create(ACCOUNT, other_user, "not suspended 1"))).status == (
        "applied"
    )
    listed = ftp_host.root / SUSPENDED_LIST
    listed.parent.mkdir(exist_ok=True)
    listed.write_text(f"{OTHER}\n")  # by hand, as an administrator would
    try:
        # A new executor (it reads the list afresh). Another account's change runs the reload:
        # the suspended account's user is refused with the password it had all along.
        apply = new_apply()
        outcome = apply(request(ftp_host, password_change(other_user, "not suspended 2")))
        assert outcome.status == "applied", outcome.error
        assert refused(ftp_host, (user, "before suspension 1")) == [True]
        assert login_error(at(ftp_host), other_user, "not suspended 2") is None
        assert f"{user}:" not in (ftp_host.root / FTP_PDB_SOURCE).read_text()
        # Its password may be changed meanwhile: applied, and still refused (as its check
        # by the FTP client expects of a suspended account).
        outcome = apply(request(ftp_host, password_change(user, "while suspended 2")))
        assert outcome.status == "applied", outcome.error
        assert refused(ftp_host, (user, "while suspended 2")) == [True]
    finally:
        listed.write_text("")
    outcome = new_apply()(request(ftp_host, password_change(user, "after suspension 3")))
    assert outcome.status == "applied", outcome.error
    assert login_error(at(ftp_host), user, "after suspension 3") is None


def test_the_same_change_sent_twice_applies_once(ftp_host: LocalHost, apply: Apply) -> None:
    user, password = new_user(), "exactly once 123"
    first = request(ftp_host, create(ACCOUNT, user, password))
    assert apply(first).status == "applied"
    passwd = (ftp_host.root / FTP_PASSWD).read_text()
    again = apply(first)
    assert again.status == "already_applied", again.error
    assert (ftp_host.root / FTP_PASSWD).read_text() == passwd
    assert [line for line in passwd.splitlines() if line.startswith(f"{user}:")] != []
    reset = request(ftp_host, password_change(user, "second password 2"))
    assert apply(reset, reset).status in ("applied", "already_applied")
    assert apply(reset).status == "already_applied"
    assert login_error(at(ftp_host), user, "second password 2") is None


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"directory": "../gdcas-ftp2"}, "path"),
        ({"directory": "/etc"}, "path"),
        ({"directory": "www/../../x"}, "path"),
        ({"directory": "www//x"}, "path"),
        ({"directory": "www:x"}, "path"),
        ({"directory": "www\nx"}, "path"),
        ({"username": "bob:0:0"}, "FTP user"),
        ({"username": "../bob"}, "FTP user"),
        ({"username": "a/b"}, "FTP user"),
        ({"username": "Bob"}, "FTP user"),
        ({"username": "bob\n"}, "FTP user"),
        ({"account": "gdcas-ftp:0"}, "account"),
        ({"account": "../root"}, "account"),
    ],
)
def test_hostile_ftp_values_are_refused_before_the_host(params: dict[str, str], field: str) -> None:
    values = {"account": ACCOUNT, "username": "bob", "password": "a good password", **params}
    with pytest.raises(ChangeValidationError) as info:
        parse_change("ftp_account_create", values)
    assert field in " ".join(info.value.errors)
