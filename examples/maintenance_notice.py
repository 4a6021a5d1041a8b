"""Batch job: open a maintenance-notice ticket on every account hosted on one server, then
close the ones of a previous run. Run it against a platform started with `./scripts/up`:

    export SITEDESK_API_TOKEN=$(.venv/bin/sitedesk token create --user admin@sitedesk.demo \
        --scope batch --name maintenance --quiet)
    .venv/bin/python examples/maintenance_notice.py --host demo-host-1

Re-running with the same --job name applies nothing twice.
"""

from __future__ import annotations

import argparse

from sqlalchemy import select

from gateway.batch import Sitedesk, TicketRequest
from store.models import ManagedHost, Service


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", help="managed host name; all accounts when left out")
    parser.add_argument("--job", default="maintenance-notice", help="job name (idempotency)")
    parser.add_argument("--when", default="Sunday 02:00-04:00 UTC")
    args = parser.parse_args()

    desk = Sitedesk.connect()  # acts as the staff user of the token in SITEDESK_API_TOKEN
    with desk.db.read() as s:
        q = select(Service.account_id).distinct()
        if args.host:
            q = q.join(ManagedHost, ManagedHost.id == Service.host_id).where(
                ManagedHost.name == args.host
            )
        accounts = sorted(s.scalars(q))
    requests = [
        TicketRequest(
            account_id=a,
            subject=f"Planned maintenance {args.when}",
            body=f"Your services will be briefly unavailable during {args.when}. "
            "No action is needed; reply to this ticket with any question.",
            priority="low",
            category="general",
        )
        for a in accounts
    ]
    report = desk.open_tickets(requests, job=args.job)
    print(report.summary())
    numbers = [i.result.number for i in report.succeeded]
    print("opened:", ", ".join(numbers) or "none")


if __name__ == "__main__":
    main()
