"""The host's name server as a resolver or a secondary sees it: which SOA serial it serves, and
the zone it transfers (AXFR), asked with dnspython over the network from the executor.

Each query is a packet or two, not a ``dig`` process on the host (which cost ~20 ms each and
were most of a DNS change's time). The host's named must answer the executors at the host's
address and its layout's ``dns_port``, and allow them zone transfers (as it does a secondary).
"""

from __future__ import annotations

import time

import dns.exception
import dns.message
import dns.query
import dns.rdatatype
import dns.zone

from automation.clients import Endpoint

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


def transfer(at: Endpoint, zone: str, want_serial: int, within: float) -> str | None:
    """The zone as the name server transfers it, once it serves ``want_serial`` (or, past
    ``within`` seconds, as it is then): zone-file text with absolute names. None: no answer."""
    deadline = time.monotonic() + within
    while serial(at, zone) != want_serial and time.monotonic() < deadline:
        time.sleep(0.005)  # named loads a reloaded zone in the background
    try:
        xfr = dns.query.xfr(at.address, zone + ".", port=at.layout.dns_port, relativize=False,
                            timeout=QUERY_TIMEOUT, lifetime=QUERY_TIMEOUT * 2)  # fmt: skip
        served = dns.zone.from_xfr(xfr, relativize=False, check_origin=False)
    except (dns.exception.DNSException, OSError, EOFError):
        return None
    return str(served.to_text(relativize=False, want_origin=False))
