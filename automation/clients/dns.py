"""The host's name server as a resolver sees it: which SOA serial it serves, and what it answers
for the names a change touched, asked with dnspython over the network from the executor.

Each query is a packet or two, not a ``dig`` process on the host (which cost ~20 ms each and
were most of a DNS change's time). The host's named must answer the executors at the host's
address and its layout's ``dns_port``.
"""

from __future__ import annotations

import time

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rdatatype

from automation.clients import Endpoint
from automation.zonefile import Record, Zone

QUERY_TIMEOUT = 2.0


def serial(at: Endpoint, zone: str) -> int | None:
    """The SOA serial the name server answers for ``zone`` (None: no answer)."""
    query = dns.message.make_query(zone + ".", dns.rdatatype.SOA)
    query.flags &= ~dns.flags.RD
    try:
        answer = dns.query.udp(query, at.address, port=at.layout.dns_port, timeout=QUERY_TIMEOUT)
    except (dns.exception.DNSException, OSError):
        return None
    for rrset in answer.answer:
        if rrset.rdtype == dns.rdatatype.SOA:
            return int(rrset[0].serial)
    return None


def answers(
    at: Endpoint, zone: str, want_serial: int, keys: set[tuple[str, str]], within: float
) -> Zone | None:
    """What the name server answers, once it serves ``want_serial`` (or, past ``within``
    seconds, as it is then): its SOA and the records of each (name, type) in ``keys``, as a
    zone holding just those (a query each over TCP, no truncation; as fast for a zone of ten
    records as for one of ten thousand). None: no answer."""
    deadline = time.monotonic() + within
    while serial(at, zone) != want_serial and time.monotonic() < deadline:
        time.sleep(0.005)  # named loads a reloaded zone in the background
    records: list[Record] = []
    try:
        for name, rtype in sorted({(zone + ".", "SOA"), *keys}):
            query = dns.message.make_query(name, rtype)
            query.flags &= ~dns.flags.RD
            reply = dns.query.tcp(query, at.address, port=at.layout.dns_port,
                                  timeout=QUERY_TIMEOUT)  # fmt: skip
            for rrset in reply.answer:
                if rrset.name == dns.name.from_text(name) and rrset.rdtype == rrset_type(rtype):
                    got = rrset.name.canonicalize().to_text()
                    records += [Record(got, rrset.ttl, rtype, rd.to_text()) for rd in rrset]
    except (dns.exception.DNSException, OSError, EOFError):
        return None
    return Zone(zone + ".", 0, records)


def rrset_type(rtype: str) -> dns.rdatatype.RdataType:
    return dns.rdatatype.from_text(rtype)
