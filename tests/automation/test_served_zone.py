"""The zone as the name server serves it, turned back into the fields of the records a customer
edits: every editable record round-trips through `DnsRecord` to the same zone-file data."""

from __future__ import annotations

from automation.changes.dns import DnsRecord, served_records
from automation.zonefile import canonical_rdata

# What `dig +noall +answer example.com AXFR` prints (the SOA again at the end, as a transfer has).
AXFR = """\
example.com.\t3600\tIN\tSOA\tns1.example.com. hostmaster.example.com. 2026120301 3600 600 86400 300
example.com.\t3600\tIN\tNS\tns1.example.com.
example.com.\t3600\tIN\tMX\t10 mail.example.com.
example.com.\t3600\tIN\tCAA\t0 issue "letsencrypt.org"
_dmarc.example.com.\t300\tIN\tTXT\t"v=DMARC1; p=reject; " "rua=mailto:\\"d\\"@example.com"
_sip._tcp.example.com.\t3600\tIN\tSRV\t10 5 5060 sip.example.com.
alias.example.com.\t3600\tIN\tCNAME\twww.example.com.
www.example.com.\t60\tIN\tA\t192.0.2.10
www.example.com.\t3600\tIN\tAAAA\t2001:db8:0:0::10
example.com.\t3600\tIN\tSOA\tns1.example.com. hostmaster.example.com. 2026120301 3600 600 86400 300
"""


def test_each_served_record_has_the_fields_a_change_names() -> None:
    records = served_records("example.com", AXFR)
    by_type = {r["type"]: r for r in records}
    assert [r["type"] for r in records[:2]] == ["SOA", "NS"]  # the host's, first
    assert len([r for r in records if r["type"] == "SOA"]) == 1  # the closing SOA dropped
    assert not by_type["SOA"]["editable"] and not by_type["NS"]["editable"]
    assert by_type["MX"] == {"name": "@", "type": "MX", "ttl": 3600, "value": "mail.example.com",
                             "priority": 10, "editable": True}  # fmt: skip
    assert by_type["SRV"]["name"] == "_sip._tcp"
    assert (by_type["SRV"]["priority"], by_type["SRV"]["weight"], by_type["SRV"]["port"]) == (
        10, 5, 5060,
    )  # fmt: skip
    assert by_type["TXT"]["value"] == 'v=DMARC1; p=reject; rua=mailto:"d"@example.com'
    assert by_type["CAA"]["tag"] == "issue" and by_type["CAA"]["value"] == "letsencrypt.org"
    assert by_type["AAAA"]["value"] == "2001:db8::10"  # canonical
    assert by_type["A"]["ttl"] == 60


def test_editable_records_round_trip_through_dns_record() -> None:
    editable = [r for r in served_records("example.com", AXFR) if r["editable"]]
    assert len(editable) == 7
    served = {
        (r["name"], r["type"]): line.split("\t")[4]
        for line in AXFR.splitlines()
        for r in editable
        if line.startswith("example.com." if r["name"] == "@" else f"{r['name']}.example.com.")
        and line.split("\t")[3] == r["type"]
    }
    for r in editable:
        fields = {k: v for k, v in r.items() if k != "editable"}
        rec = DnsRecord.model_validate(fields)  # what an edit form sends back is a valid record
        assert canonical_rdata(rec.type, rec.rdata()) == canonical_rdata(
            rec.type, served[(r["name"], r["type"])]
        )


def test_records_no_change_kind_names_are_shown_but_not_editable() -> None:
    text = AXFR + 'old.example.com.\t3600\tIN\tHINFO\t"PC" "Linux"\n'
    hinfo = [r for r in served_records("example.com", text) if r["type"] == "HINFO"]
    assert hinfo == [{"name": "old", "type": "HINFO", "ttl": 3600, "value": '"PC" "Linux"',
                      "editable": False}]  # fmt: skip
