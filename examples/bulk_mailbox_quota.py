"""Batch job: raise every mailbox quota on one plan, on the real hosts, with a per-item report.
Run it against a platform started with `./scripts/up`:

    export SITEDESK_API_TOKEN=$(.venv/bin/sitedesk token create --user admin@sitedesk.demo \
        --scope batch --name quotas --quiet)
    .venv/bin/python examples/bulk_mailbox_quota.py --plan standard --quota-mb 4096

Re-running with the same --job name requests nothing twice.
"""

from __future__ import annotations

import argparse

from rich.console import Console
from sqlalchemy import select

from gateway.batch import Sitedesk
from gateway.batch_changes import apply_to_services
from store.models import Account, Service


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plan", default="standard", help="the accounts' plan")
    parser.add_argument("--quota-mb", type=int, required=True, help="the new quota in MB")
    parser.add_argument("--ticket", help="ticket number (required when acting as an agent)")
    parser.add_argument("--job", help="job name (idempotency); default from plan and quota")
    args = parser.parse_args()

    desk = Sitedesk.connect()  # acts as the staff user of the token in SITEDESK_API_TOKEN
    with desk.db.read() as s:
        mailboxes = sorted(
            s.scalars(
                select(Service.id)
                .join(Account, Account.id == Service.account_id)
                .where(Service.kind == "mailbox", Service.status == "active")
                .where(Account.plan == args.plan, Service.host_id.is_not(None))
            )
        )
    console = Console()
    report = apply_to_services(
        desk,
        "mailbox_quota",
        mailboxes,
        {"quota_mb": args.quota_mb},  # the address is each mailbox service's own
        job=args.job or f"quota-{args.plan}-{args.quota_mb}",
        ticket=args.ticket,
        console=console,
    )
    console.print(report.table())
    console.print(report.summary())


if __name__ == "__main__":
    main()
