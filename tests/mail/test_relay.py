"""The mailer against a real SMTP relay on loopback that wants STARTTLS and a login (aiosmtpd
with a certificate from a test CA): the mail goes over TLS with the credentials; a certificate
the desk does not trust, a relay that offers no TLS for the login, and wrong credentials all
keep the mail queued instead of sending it or the password anywhere unsafe."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from actors.mail.settings import MailSettings
from actors.notify.mailer import Mailer, Relay
from automation.loopback import free_port
from store.db import Database
from store.models.enums import DeliveryStatus

USER, PASSWORD = "desk", "s3cret relay pw"
RAW = b"From: support@sitedesk.test\r\nTo: ann@customer.example\r\nSubject: hi\r\n\r\nhello\r\n"


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_ca_and_cert(tmp: Path) -> tuple[Path, Path, Path]:
    """A CA, and a server certificate it signed for 127.0.0.1; returns ca, cert, key paths."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder().subject_name(_name("Sitedesk test CA")).issuer_name(
            _name("Sitedesk test CA")).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder().subject_name(_name("relay.test")).issuer_name(ca.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    paths = tmp / "ca.pem", tmp / "relay.pem", tmp / "relay.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


@dataclass
class TlsRelay:
    """Accepts mail only after STARTTLS and a login as USER/PASSWORD."""

    context: ssl.SSLContext | None
    port: int = field(default_factory=free_port)
    received: list[tuple[str, list[str], bytes, bool]] = field(default_factory=list)
    logins: list[tuple[str, str]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        data = envelope.original_content or b""
        with self._lock:
            self.received.append(
                (str(envelope.mail_from), list(envelope.rcpt_tos), data, session.ssl is not None)
            )
        return "250 2.0.0 Ok: queued as TLS1"

    def authenticate(
        self, server: Any, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        who = (data.login.decode(), data.password.decode())
        self.logins.append(who)
        return AuthResult(success=who == (USER, PASSWORD), handled=False)

    def start(self) -> TlsRelay:
        kwargs: dict[str, Any] = {"authenticator": self.authenticate, "auth_required": True}
        if self.context is not None:
            kwargs.update(tls_context=self.context, require_starttls=True)
        else:
            kwargs.update(auth_require_tls=False)
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port, **kwargs)
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    return make_ca_and_cert(tmp_path_factory.mktemp("relay-tls"))


@pytest.fixture
def tls_relay(certs: tuple[Path, Path, Path]) -> Iterator[TlsRelay]:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(certs[1], certs[2])
    relay = TlsRelay(ctx).start()
    yield relay
    relay.stop()


def mailer(relay: str, ca: Path | None, tmp: Path) -> Mailer:
    """A mailer whose attempts are tried directly (its database is never reached by them)."""
    settings = MailSettings(
        mail_secret="00" * 16,
        mail_from="support@sitedesk.test",
        mail_domain="sitedesk.test",
        smtp_relay=relay,
        smtp_relay_ca_file=str(ca) if ca else "",
    )
    return Mailer(Database(f"sqlite:///{tmp / 'unused.db'}"), settings)


def test_the_relay_url_is_read_with_its_defaults() -> None:
    assert Relay.parse("smtp://mx.example:2525") == Relay("mx.example", 2525, False)
    assert Relay.parse("smtp://u%40x:p%3Aw@mx.example") == Relay(
        "mx.example", 587, False, "u@x", "p:w"
    )
    assert Relay.parse("smtps://mx.example").port == 465
    for bad in ("http://mx.example", "smtp://", "mx.example:25"):
        with pytest.raises(ValueError, match="smtp://"):
            Relay.parse(bad)


def test_mail_goes_over_starttls_with_the_login(
    tls_relay: TlsRelay, certs: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    m = mailer(
        f"smtp://{USER}:{PASSWORD.replace(' ', '%20')}@127.0.0.1:{tls_relay.port}",
        certs[0],
        tmp_path,
    )
    attempt = m.attempt(1, "ann@customer.example", RAW)
    assert attempt.status is DeliveryStatus.sent, attempt.answer
    assert attempt.answer.startswith("250 2.0.0 Ok: queued as TLS1")
    ((sender, rcpts, data, over_tls),) = tls_relay.received
    assert sender == "support@sitedesk.test" and rcpts == ["ann@customer.example"]
    assert data == RAW and over_tls
    assert tls_relay.logins == [(USER, PASSWORD)]


def test_an_untrusted_certificate_sends_nothing_and_no_password(
    tls_relay: TlsRelay, tmp_path: Path
) -> None:
    # The system's CAs: the test CA is not one of them.
    m = mailer(f"smtp://{USER}:pw@127.0.0.1:{tls_relay.port}", None, tmp_path)
    attempt = m.attempt(1, "ann@customer.example", RAW)
    assert attempt.status is DeliveryStatus.queued and "CERTIFICATE_VERIFY_FAILED" in attempt.answer
    assert tls_relay.received == [] and tls_relay.logins == []


def test_wrong_credentials_keep_the_mail_queued(
    tls_relay: TlsRelay, certs: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    m = mailer(f"smtp://{USER}:wrong@127.0.0.1:{tls_relay.port}", certs[0], tmp_path)
    attempt = m.attempt(1, "ann@customer.example", RAW)
    assert attempt.status is DeliveryStatus.queued and "535" in attempt.answer
    assert tls_relay.received == []


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_a_relay_without_tls_never_gets_the_password(tmp_path: Path) -> None:
    plain = TlsRelay(None).start()
    try:
        m = mailer(
            f"smtp://{USER}:{PASSWORD.replace(' ', '%20')}@127.0.0.1:{plain.port}", None, tmp_path
        )
        attempt = m.attempt(1, "ann@customer.example", RAW)
    finally:
        plain.stop()
    assert attempt.status is DeliveryStatus.queued and "no TLS" in attempt.answer
    assert plain.logins == [] and plain.received == []


def test_a_relay_that_refuses_connections_costs_one_attempt_not_one_per_mail(
    tmp_path: Path,
) -> None:
    """While the relay is down, a batch stops at its first refused connection: the other mails
    keep their attempts (a retry budget is not spent by an outage) and wait with it; once the
    relay takes connections again every mail goes once."""
    from store.models import MailDelivery
    from store.repositories.delivery import DeliveryRepository
    from tests.smtp_sink import SmtpSink

    db = Database(f"sqlite:///{tmp_path / 'desk.db'}")
    db.upgrade()
    relay = SmtpSink()  # not started: connections are refused
    settings = MailSettings(
        mail_secret="00" * 16, mail_from="support@sitedesk.test", mail_domain="sitedesk.test",
        smtp_relay=f"smtp://127.0.0.1:{relay.port}", mail_retry_seconds=60,
    )  # fmt: skip
    m = Mailer(db, settings)
    with db.write() as s:
        rows = [
            {"source": f"test:{i}", "kind": "customer", "recipient": f"r{i}@customer.example",
             "message_id": f"<m{i}@sitedesk.test>", "subject": "hi", "raw": RAW}
            for i in range(5)
        ]  # fmt: skip
        DeliveryRepository(s).plan(rows)
    now = dt.datetime.now(dt.UTC)
    assert m.send_due(now) == 0  # nothing to go on with: the loop waits
    with db.read() as s:
        attempts = sorted(d.attempts for d in s.query(MailDelivery))
    assert attempts == [0, 0, 0, 0, 1]
    assert m.next_due_at() == now + dt.timedelta(seconds=60)  # one wait for all of them
    assert m.send_due(now + dt.timedelta(seconds=30)) == 0  # still waiting: no connection
    with db.read() as s:
        assert sum(d.attempts for d in s.query(MailDelivery)) == 1
    relay.start()
    try:
        later = now + dt.timedelta(seconds=61)
        assert m.send_due(later) == 5  # the first one's backoff (60 s) is over too
        assert m.send_due(later) == 0 and m.next_due_at() is None
        assert sorted(r.rcpt_tos[0] for r in relay.received) == [
            f"r{i}@customer.example" for i in range(5)
        ]
    finally:
        relay.stop()
        db.dispose()
