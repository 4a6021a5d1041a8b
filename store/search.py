"""Full-text search's two rules that are not queries: what a user typed, made into terms no
database can misread (the queries are in repositories/search.py), and which database objects
belong to the search index rather than to the models (built by migration 0008).

The query is user text. It is cut into whitespace-separated terms, each stripped of the
punctuation around it, lower-cased, and kept only when it has a letter or a digit; English stop
words are dropped (PostgreSQL's `english` configuration drops the same list, so both backends
ask for the same words). A term then only ever reaches the database as a bound parameter inside
a quoted phrase: operators (`AND`, `OR`, `NOT`, `-`, `*`, `:`, `"`) are plain words to search.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

MAX_QUERY_LENGTH = 200  # characters; the API answers a longer query with 422
MAX_TERMS = 8  # the terms past these are ignored: every term is one more index lookup

# PostgreSQL's english.stop (tsearch_data), which `to_tsquery('english', ...)` drops itself.
_ENGLISH_STOP = """i me my myself we our ours ourselves you your yours yourself yourselves he him
    his himself she her hers herself it its itself they them their theirs themselves what which who
    whom this that these those am is are was were be been being have has had having do does did
    doing a an the and but if or because as until while of at by for with about against between
    into through during before after above below to from up down in out on off over under again
    further then once here there when where why how all any both each few more most other some
    such no nor not only own same so than too very s t can will just don should now"""
STOP_WORDS = frozenset(_ENGLISH_STOP.split())

_EDGES = re.compile(r"^\W+|\W+$")
_TICKET = re.compile(r"(TT-?)?([0-9]{1,18})", re.IGNORECASE | re.ASCII)
_PHONE = re.compile(r"\+?[0-9 ().\-/]+", re.ASCII)
_MAX_TICKET_ID = 2**62
_MIN_PHONE_DIGITS = 5


@dataclass(frozen=True)
class SearchQuery:
    """What a query asks for, in the forms the two sides of the search compare."""

    text_terms: tuple[str, ...]  # words and phrases of subjects and messages (prefix match)
    field_terms: tuple[str, ...]  # substrings of account fields (code, names, e-mail, domains)
    # Tickets the query names by number: TT-000123 (tt000123) anywhere in it, or a bare 123
    # when that is the whole query (in "error 2024" the number is a word of the text).
    ticket_ids: tuple[int, ...]

    @property
    def phrase(self) -> str:
        """The field terms as one string: a field equal to it, or starting with it, ranks first."""
        return " ".join(self.field_terms)

    @property
    def is_empty(self) -> bool:
        return not (self.text_terms or self.field_terms or self.ticket_ids)


def parse_query(text: str) -> SearchQuery:
    """The terms of a user's query; a query of only punctuation or stop words asks for nothing."""
    if len(text) > MAX_QUERY_LENGTH:
        raise ValueError(f"a search is at most {MAX_QUERY_LENGTH} characters")
    text = unicodedata.normalize("NFKC", text)
    # Control characters (NUL among them: PostgreSQL refuses it in text) separate words.
    text = "".join(" " if unicodedata.category(ch).startswith("C") else ch for ch in text)
    terms: list[str] = []
    ticket_ids: list[int] = []
    bare: list[int] = []
    for raw in text.split():
        term = _EDGES.sub("", raw)
        if not any(ch.isalnum() for ch in term):
            continue
        number = _TICKET.fullmatch(term)
        if number and 0 < int(number.group(2)) < _MAX_TICKET_ID:
            (ticket_ids if number.group(1) else bare).append(int(number.group(2)))
        term = term.lower()
        if term not in terms:
            terms.append(term)
    if len(terms) == 1 and bare:
        ticket_ids += bare
    words = [t for t in terms if t not in STOP_WORDS]
    # A name made of stop words only ("The Who") is still a name to look for in the fields.
    fields = words or terms
    phone = _phone_key(text)
    return SearchQuery(
        text_terms=tuple(words[:MAX_TERMS]),
        field_terms=(phone,) if phone else tuple(fields[:MAX_TERMS]),
        ticket_ids=tuple(dict.fromkeys(ticket_ids))[:MAX_TERMS],
    )


def _phone_key(text: str) -> str | None:
    """A query that is a phone number in any spelling, as a substring of contacts' E.164
    numbers: `+1 202 555-0101` and `001 202 5550101` are `+12025550101`; a national spelling
    loses its trunk zero (`030 1234567` is found in `+49301234567`)."""
    text = text.strip()
    if not _PHONE.fullmatch(text):
        return None
    digits = re.sub(r"[^0-9]", "", text)
    if len(digits) < _MIN_PHONE_DIGITS:
        return None
    if text.startswith("+"):
        return "+" + digits
    if digits.startswith("00"):
        return "+" + digits[2:]
    return digits.lstrip("0") or None


def fts5_match(terms: tuple[str, ...]) -> str:
    """An SQLite FTS5 query that every term must match, each a quoted phrase (its words in
    order) whose last word may be a prefix; inside quotes FTS5 has no operators."""
    return " ".join('"' + t.replace('"', '""') + '"*' for t in terms)


def fts5_substring(term: str) -> str:
    """An FTS5 query for a trigram table: the term as a substring (at least 3 characters)."""
    return '"' + term.replace('"', '""') + '"'


def pg_tsquery(terms: tuple[str, ...]) -> str:
    """Input for PostgreSQL's `to_tsquery`: every term a quoted operand whose words its parser
    splits (`acme-bakery.test` stays one host name), prefix-matched, all of them required."""
    return " & ".join("'" + t.replace("\\", "\\\\").replace("'", "''") + "':*" for t in terms)


def like_pattern(term: str) -> str:
    """An ILIKE pattern for `term` anywhere in a value, its wildcards escaped (ESCAPE '\\')."""
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def described_by_models(name: str | None, type_: str, parent_names: object) -> bool:
    """Alembic's `include_name` hook: False for what the search index adds to the schema
    (SQLite's FTS5 tables and their shadow tables, PostgreSQL's tsvector columns and GIN
    indexes, all named `search_...`), which the models do not describe."""
    return not (name or "").startswith("search_")
