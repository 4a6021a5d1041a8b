"""Full-text search on both backends: every field finds its ticket or account, the better match
first; a customer finds only their own account's tickets and never an internal note's words;
the index follows every write in its own transaction; hostile queries answer, never fail."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from sqlalchemy import inspect, select, text

from store.db import Database
from store.models import Account, Contact, Message, Service, Ticket
from store.models.ticket import ticket_number
from store.read.search import InvalidCursor, SearchReads, SearchResults
from store.repositories import SearchRepository
from store.search import MAX_QUERY_LENGTH, parse_query
from tests.factories import make_account, make_contact, make_message, make_service, make_ticket

BACKENDS = pytest.mark.parametrize("fresh_db_url", ["sqlite", "postgresql"], indirect=True)


@dataclass
class World:
    acme: int  # account ids
    globex: int
    ada: int  # Acme's contact
    bounce: int  # Acme's ticket about bouncing mail, opened by Ada
    invoice: int  # Acme's other ticket
    outage: int  # Globex's ticket
    bounce_reply: int  # the public message on `bounce`
    bounce_note: int  # the internal note on `bounce`


@pytest.fixture
def world(db: Database) -> World:
    with db.write() as s:
        acme = make_account(s, code="ACME-0001", name="Acme Bakery")
        globex = make_account(s, code="GLOBEX-0002", name="Globex Hosting")
        ada = make_contact(
            s, acme, name="Ada Lovelace", email="ada@acme-bakery.test", phone="+1 202 555 0101"
        )
        make_contact(s, globex, name="Bob Builder", email="bob@globex.test", phone="030 1234567")
        make_service(s, acme, kind="domain", name="acme-bakery.test")
        make_service(s, acme, kind="mailbox", name="orders@acme-bakery.test")
        make_service(s, globex, kind="domain", name="globex.test")
        bounce = make_ticket(s, acme, subject="Mail bounces since Tuesday", contact_id=ada.id)
        reply = make_message(
            s, bounce, body="Every mail to orders@acme-bakery.test comes back with 550."
        )
        note = make_message(
            s,
            bounce,
            body="Zeppelin relay blocklisted them; do not tell the customer yet.",
            direction="internal",
            channel="portal",
            visibility="internal",
            author_name="Agent Smith",
        )
        invoice = make_ticket(s, acme, subject="Invoice question")
        make_message(s, invoice, body="Why did the price of the hosting plan change?")
        outage = make_ticket(s, globex, subject="Website down")
        make_message(s, outage, body="nginx answers 502 Bad Gateway for globex.test")
        ids = (acme, globex, ada, bounce, invoice, outage, reply, note)
        return World(*(row.id for row in ids))


def staff(db: Database, query: str, *, limit: int = 20, cursor: str | None = None) -> SearchResults:
    return SearchReads(db).search(query, account_id=None, staff=True, limit=limit, cursor=cursor)


def customer(db: Database, account_id: int, query: str) -> SearchResults:
    return SearchReads(db).search(query, account_id=account_id, staff=False)


def numbers(results: SearchResults) -> list[str]:
    return [t.number for t in results.tickets]


def codes(results: SearchResults) -> list[str]:
    return [a.code for a in results.accounts]


def snippet_text(results: SearchResults, index: int = 0) -> str:
    return "".join(p.text for p in results.tickets[index].snippet)


def hits(results: SearchResults, index: int = 0) -> list[str]:
    return [p.text for p in results.tickets[index].snippet if p.hit]


# -- every field ------------------------------------------------------------------------------
def test_a_ticket_is_found_by_its_number_whole_or_partial(db: Database, world: World) -> None:
    number = ticket_number(world.outage)
    for query in (number, number.lower(), f"#{number}", str(world.outage), f"TT{world.outage}"):
        found = staff(db, query)
        assert numbers(found)[:1] == [number], query
        assert found.tickets[0].matched == "number"
        assert found.tickets[0].account_code == "GLOBEX-0002"
        assert found.tickets[0].account_name == "Globex Hosting"
        assert snippet_text(found) == "Website down"


def test_a_ticket_is_found_by_the_words_of_its_subject(db: Database, world: World) -> None:
    found = staff(db, "bounces tuesday")
    assert numbers(found) == [ticket_number(world.bounce)]
    assert (found.tickets[0].matched, found.tickets[0].status.value) == ("subject", "new")
    assert snippet_text(found) == "Mail bounces since Tuesday"
    assert hits(found) == ["bounces", "Tuesday"]
    # Stemmed: another form of the word finds it too, and a word's beginning.
    assert numbers(staff(db, "bounced")) == [ticket_number(world.bounce)]
    assert numbers(staff(db, "Tues")) == [ticket_number(world.bounce)]


def test_a_ticket_is_found_by_the_text_of_a_message(db: Database, world: World) -> None:
    found = staff(db, "nginx gateway")
    assert numbers(found) == [ticket_number(world.outage)]
    assert found.tickets[0].matched == "message"
    assert "nginx" in hits(found) and "Gateway" in hits(found)
    assert "502 Bad Gateway" in snippet_text(found)
    assert numbers(staff(db, "price hosting plan")) == [ticket_number(world.invoice)]


def test_an_account_is_found_by_code_name_contact_email_phone_and_domain(
    db: Database, world: World
) -> None:
    cases = {
        "ACME-0001": ("code", "ACME-0001"),
        "acme-0001": ("code", "ACME-0001"),
        "0001": ("code", "ACME-0001"),
        "Acme Bakery": ("name", "Acme Bakery"),
        "bakery": ("name", "Acme Bakery"),
        "Lovelace": ("contact_name", "Ada Lovelace"),
        "ada lovelace": ("contact_name", "Ada Lovelace"),
        "ada@acme-bakery.test": ("email", "ada@acme-bakery.test"),
        "ADA@ACME": ("email", "ada@acme-bakery.test"),
        "+1 202 555 0101": ("phone", "+12025550101"),
        "(202) 555-0101": ("phone", "+12025550101"),
        "001 202 5550101": ("phone", "+12025550101"),
        "acme-bakery.test": ("service", "acme-bakery.test"),
        "orders@acme-bakery.test": ("service", "orders@acme-bakery.test"),
    }
    for query, (field, value) in cases.items():
        found = staff(db, query)
        assert codes(found) == ["ACME-0001"], query
        assert (found.accounts[0].matched, found.accounts[0].matched_value) == (field, value), query
        assert found.accounts[0].id == world.acme
    # Globex's Berlin number, written nationally: found in its E.164 form.
    found = staff(db, "030 1234567")
    assert codes(found) == ["GLOBEX-0002"]
    assert found.accounts[0].matched == "phone"


def test_terms_of_an_account_may_be_in_different_fields(db: Database, world: World) -> None:
    assert codes(staff(db, "globex bob")) == ["GLOBEX-0002"]
    assert codes(staff(db, "globex ada")) == []


def test_a_contact_finds_the_tickets_it_opened(db: Database, world: World) -> None:
    for query in ("Ada Lovelace", "ada@acme-bakery.test", "+12025550101"):
        found = staff(db, query)
        assert numbers(found) == [ticket_number(world.bounce)], query
        assert found.tickets[0].matched == "contact"
        assert snippet_text(found) == "Ada Lovelace <ada@acme-bakery.test>"


def test_a_domain_in_a_message_finds_the_ticket_and_the_account(db: Database, world: World) -> None:
    found = staff(db, "globex.test")
    assert numbers(found) == [ticket_number(world.outage)]
    assert codes(found) == ["GLOBEX-0002"]
    assert found.accounts[0].matched == "service"


# -- ranking ----------------------------------------------------------------------------------
def test_the_better_match_comes_first(db: Database) -> None:
    with db.write() as s:
        account = make_account(s)
        in_a_message = make_ticket(s, account, subject="Question")
        make_message(s, in_a_message, body="The backup of my database did not run last night.")
        in_the_subject = make_ticket(s, account, subject="Backup failed")
        named = make_ticket(s, account, subject="Another question")
        make_message(s, named, body="Nothing to do with it")
        once = make_ticket(s, account, subject="Long story")
        make_message(s, once, body="A backup. " + "Words about other things. " * 40)
        often = make_ticket(s, account, subject="Short story")
        make_message(s, often, body="Backup, backup, backup: the backup again.")
    found = staff(db, "backup")
    assert numbers(found) == [
        ticket_number(in_the_subject.id),  # the subject before a message
        ticket_number(often.id),  # a short message saying it often before a long one once
        ticket_number(in_a_message.id),
        ticket_number(once.id),
    ]
    # The number the query names comes before every ticket whose text mentions it.
    with db.write() as s:
        mention = make_ticket(s, account, subject=f"Follow-up of {ticket_number(named.id)}")
    found = staff(db, ticket_number(named.id))
    assert numbers(found)[0] == ticket_number(named.id)
    assert ticket_number(mention.id) in numbers(found)


def test_an_account_equal_to_the_query_comes_before_one_starting_or_holding_it(
    db: Database,
) -> None:
    with db.write() as s:
        make_account(s, code="C-3", name="Old Nordwind Ltd")
        make_account(s, code="C-1", name="Nordwind Bakery")
        make_account(s, code="C-2", name="Nordwind")
        make_account(s, code="C-4", name="Southwind")
    assert codes(staff(db, "nordwind")) == ["C-2", "C-1", "C-3"]


# -- tenants and internal notes -----------------------------------------------------------------
def test_a_customer_finds_only_their_own_accounts_tickets(db: Database, world: World) -> None:
    for query in ("Website down", "nginx", "globex.test", ticket_number(world.outage), "bob"):
        everyone = staff(db, query)
        assert numbers(everyone) or codes(everyone), query  # there is something to find
        found = customer(db, world.acme, query)
        assert ticket_number(world.outage) not in numbers(found), query
        assert found.accounts == [], query
    # Their own tickets they do find, but never the accounts list.
    found = customer(db, world.acme, "acme")
    assert found.accounts == []
    assert numbers(customer(db, world.acme, "bounces")) == [ticket_number(world.bounce)]
    assert numbers(customer(db, world.globex, "bounces")) == []


def test_a_customer_never_finds_a_ticket_by_an_internal_note(db: Database, world: World) -> None:
    found = staff(db, "zeppelin blocklisted")
    assert numbers(found) == [ticket_number(world.bounce)]
    assert found.tickets[0].message_id == world.bounce_note
    assert customer(db, world.acme, "zeppelin blocklisted").tickets == []
    assert customer(db, world.acme, "zeppelin").tickets == []


def test_a_customers_snippet_is_never_of_an_internal_note(db: Database, world: World) -> None:
    story = " We had waited for it for a long time and asked about it several times before."
    with db.write() as s:
        ticket = s.get(Ticket, world.invoice)
        assert ticket is not None
        public = make_message(s, ticket, body="The refund arrived, thank you." + story * 3)
        note = make_message(
            s,
            ticket,
            body="Refund approved, refund secret.",  # shorter and saying it twice: ranks higher
            direction="internal",
            channel="portal",
            visibility="internal",
            author_name="Agent Smith",
        )
    as_staff = staff(db, "refund")
    assert as_staff.tickets[0].message_id == note.id
    assert "secret" in snippet_text(as_staff)
    as_customer = customer(db, world.acme, "refund")
    assert numbers(as_customer) == [ticket_number(world.invoice)]
    assert as_customer.tickets[0].message_id == public.id
    assert "refund arrived" in snippet_text(as_customer)
    assert "secret" not in snippet_text(as_customer)


def test_a_customers_search_must_name_the_account(db: Database, world: World) -> None:
    with pytest.raises(ValueError):
        SearchReads(db).search("bounces", account_id=None, staff=False)


# -- the index follows the writes -------------------------------------------------------------
def test_a_new_message_is_found_in_its_own_transaction_and_after(
    db: Database, world: World
) -> None:
    query = parse_query("quokka")
    with db.write() as s:
        ticket = s.get(Ticket, world.invoice)
        assert ticket is not None
        make_message(s, ticket, body="A quokka ate the cable.")
        inside = SearchRepository(s).tickets(
            query, account_id=None, include_internal=True, offset=0, limit=5
        )
        assert [m.ticket_id for m in inside] == [world.invoice]
    assert numbers(staff(db, "quokka")) == [ticket_number(world.invoice)]
    assert numbers(customer(db, world.acme, "quokka")) == [ticket_number(world.invoice)]


def test_a_rolled_back_write_leaves_no_search_entry(db: Database, world: World) -> None:
    with pytest.raises(RuntimeError), db.write() as s:
        ticket = s.get(Ticket, world.outage)
        assert ticket is not None
        make_message(s, ticket, body="Xylophone music on the homepage")
        globex = s.get(Account, world.globex)
        assert globex is not None
        make_ticket(s, globex, subject="Xylophone ticket")
        account = make_account(s, code="ROLLBACK-1", name="Xylophone GmbH")
        make_contact(s, account, name="Xaver Xylo", email="xaver@xylophone.test")
        make_service(s, account, name="xylophone.test")
        s.flush()
        raise RuntimeError("the unit of work fails")
    found = staff(db, "xylophone")
    assert (found.tickets, found.accounts) == ([], [])
    assert staff(db, "xaver").accounts == []


def test_changes_and_deletes_follow_into_the_index(db: Database, world: World) -> None:
    with db.write() as s:
        ticket = s.get(Ticket, world.invoice)
        assert ticket is not None
        ticket.subject = "Credit note wanted"
        contact = s.get(Contact, world.ada)
        assert contact is not None
        contact.email = "ada@lovelace.test"
        s.delete(s.scalars(select(Service).where(Service.name == "acme-bakery.test")).one())
    assert numbers(staff(db, "invoice")) == []
    assert numbers(staff(db, "credit note")) == [ticket_number(world.invoice)]
    assert staff(db, "ada@acme-bakery.test").accounts == []
    assert codes(staff(db, "ada@lovelace.test")) == ["ACME-0001"]
    # Acme is still found by its mailbox, no longer by the deleted domain.
    assert [a.matched_value for a in staff(db, "acme-bakery.test").accounts] == [
        "orders@acme-bakery.test"
    ]
    # A contact moved to another account is found on that one.
    with db.write() as s:
        contact = s.get(Contact, world.ada)
        assert contact is not None
        contact.account_id = world.globex
    assert codes(staff(db, "lovelace")) == ["GLOBEX-0002"]
    # A deleted ticket takes its messages (and their entries) with it.
    with db.write() as s:
        s.execute(text("DELETE FROM messages WHERE ticket_id = :t"), {"t": world.outage})
        s.execute(text("DELETE FROM tickets WHERE id = :t"), {"t": world.outage})
    assert staff(db, "nginx").tickets == []
    assert staff(db, "website").tickets == []


def test_a_message_deleted_with_its_ticket_leaves_the_index(db: Database, world: World) -> None:
    """ON DELETE CASCADE from tickets to messages: the messages' own triggers fire too."""
    with db.write() as s:
        s.execute(text("DELETE FROM tickets WHERE id = :t"), {"t": world.outage})
    assert staff(db, "nginx").tickets == []
    with db.read() as s:
        assert s.get(Message, world.bounce_reply) is not None  # the others stay
    assert numbers(staff(db, "550")) == [ticket_number(world.bounce)]


# -- hostile queries --------------------------------------------------------------------------
HOSTILE = [
    '"',
    "'",
    '""',
    "AND OR NOT",
    "bounces AND",
    "NOT bounces",
    "bounces OR",
    "*",
    "bounce*",
    "**bounces**",
    ":",
    "subject:bounces",
    "a:b:c",
    "-",
    "-bounces",
    "--",
    "' OR 1=1 --",
    "'; DROP TABLE tickets; --",
    '"unterminated phrase',
    "NEAR(bounces tuesday)",
    "bounces NEAR tuesday",
    "(((",
    ")",
    "&|!<->",
    "!bounces",
    "bounces:*",
    "\\",
    "\\'",
    "%",
    "_",
    "%_%",
    "^bounces",
    "{col}: x",
    "TT-",
    "TT-000000",
    "TT-99999999999999999999",
    "99999999999999999999999",
    "日本語のメール",
    "Grüße aus Köln",
    "ﬁle",  # a ligature, NFKC'd to "file"
    "emoji 🎉🎉",
    "🎉",
    "\u200b",
    "a\u0301",
    "x" * MAX_QUERY_LENGTH,
    " ".join(["bounces"] * 40)[:MAX_QUERY_LENGTH],
    "bounces\x00tuesday",
    "\t\n",
]


@pytest.mark.parametrize("query", HOSTILE)
def test_a_hostile_query_answers(db: Database, world: World, query: str) -> None:
    for as_staff in (True, False):
        found = SearchReads(db).search(query, account_id=world.acme, staff=as_staff)
        assert isinstance(found, SearchResults)
        assert ticket_number(world.outage) not in numbers(found)


def test_operators_are_words(db: Database, world: World) -> None:
    assert staff(db, "*").tickets == [] and staff(db, '"').tickets == []
    assert staff(db, "' OR 1=1 --").tickets == []
    assert numbers(staff(db, '"bounces"')) == [ticket_number(world.bounce)]
    assert numbers(staff(db, "bounces:*")) == [ticket_number(world.bounce)]
    # NOT is a word, not an operator that would turn the query round.
    assert numbers(staff(db, "-nothing-like-this bounces")) == []
    assert staff(db, "bounces\x00tuesday").tickets[0].number == ticket_number(world.bounce)
    # LIKE's wildcards are characters to look for, not patterns.
    with db.write() as s:
        make_account(s, code="W-1", name="abc")
    assert codes(staff(db, "a_c")) == [] and codes(staff(db, "a%c")) == []


def test_a_query_of_only_punctuation_or_stop_words_finds_nothing(
    db: Database, world: World
) -> None:
    for query in ("!!!", "...", " - ", "the", "and or not", "", "   "):
        found = staff(db, query)
        assert (found.tickets, found.accounts, found.next_cursor) == ([], [], None), query


def test_a_query_too_long_is_refused(db: Database, world: World) -> None:
    with pytest.raises(ValueError, match="200"):
        staff(db, "x" * (MAX_QUERY_LENGTH + 1))
    with pytest.raises(ValueError):
        staff(db, "bounces " * 1280)  # 10 KB


# -- pages ------------------------------------------------------------------------------------
def test_results_come_a_page_at_a_time(db: Database) -> None:
    with db.write() as s:
        account = make_account(s, code="PAGE-0001", name="Pagination")
        made = {ticket_number(make_ticket(s, account, subject=f"Backup {n}").id) for n in range(23)}
        for n in range(12):
            make_service(s, account, name=f"backup{n}.test")
    seen: list[str] = []
    accounts: list[str] = []
    cursor = None
    for _ in range(5):
        page = staff(db, "backup", limit=10, cursor=cursor)
        seen += numbers(page)
        accounts += codes(page)
        assert len(page.tickets) <= 10
        cursor = page.next_cursor
        if cursor is None:
            break
    assert len(seen) == 23 and set(seen) == made
    assert accounts == ["PAGE-0001"]
    with pytest.raises(InvalidCursor):
        staff(db, "backup", cursor="abc")
    with pytest.raises(InvalidCursor):
        staff(db, "backup", cursor="100000")


# -- the schema -------------------------------------------------------------------------------
def test_the_index_is_in_place_at_head(db: Database) -> None:
    """A later migration that rebuilds one of the indexed tables (SQLite's batch mode) drops
    its triggers with it: this names what must be there."""
    if db.is_sqlite:
        with db.read() as s:
            triggers = set(s.scalars(text("SELECT name FROM sqlite_master WHERE type = 'trigger'")))
            tables = set(s.scalars(text("SELECT name FROM sqlite_master WHERE type = 'table'")))
        for table in ("tickets", "messages", "accounts_accounts", "accounts_contacts"):
            for when in ("insert", "update", "delete"):
                assert f"search_{table}_{when}" in triggers
        assert {"search_tickets", "search_messages", "search_accounts"} <= tables
        assert {f"search_accounts_services_{w}" for w in ("insert", "update", "delete")} <= triggers
    else:
        indexes = {
            table: {i["name"] for i in inspect(db.engine).get_indexes(table)}
            for table in ("tickets", "messages", "accounts", "contacts", "services")
        }
        assert "search_tickets_vector" in indexes["tickets"]
        assert "search_messages_vector" in indexes["messages"]
        assert {"search_accounts_code", "search_accounts_name"} <= indexes["accounts"]
        assert {"search_contacts_name", "search_contacts_email", "search_contacts_phone"} <= (
            indexes["contacts"]
        )
        assert "search_services_name" in indexes["services"]


@BACKENDS
def test_the_migration_indexes_rows_there_were_and_goes_away(fresh_db_url: str) -> None:
    db = Database(fresh_db_url)
    db.upgrade("0007")
    with db.write() as s:
        account = make_account(s, code="OLD-0001", name="Before Search Ltd")
        make_contact(s, account, name="Olga Oldtimer", email="olga@before.test")
        make_service(s, account, name="before-search.test")
        ticket = make_ticket(s, account, subject="Ancient ticket")
        make_message(s, ticket, body="Written long before the index existed")
    db.upgrade()
    found = staff(db, "ancient")
    assert numbers(found) == [ticket_number(ticket.id)]
    assert numbers(staff(db, "existed")) == [ticket_number(ticket.id)]
    for query in ("OLD-0001", "before search", "olga", "olga@before.test", "before-search.test"):
        assert codes(staff(db, query)) == ["OLD-0001"], query
    db.downgrade("0007")
    names = set(inspect(db.engine).get_table_names())
    assert not {n for n in names if n.startswith("search_")}
    for table in ("tickets", "messages", "contacts"):
        assert not [
            c["name"]
            for c in inspect(db.engine).get_columns(table)
            if c["name"].startswith("search_")
        ]
        assert not [
            i["name"]
            for i in inspect(db.engine).get_indexes(table)
            if str(i["name"]).startswith("search_")
        ]
    with db.write() as s:  # the tables take writes without their triggers
        make_ticket(s, account, subject="After the downgrade")
    db.upgrade()
    assert numbers(staff(db, "downgrade")) != []
    db.dispose()
