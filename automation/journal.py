"""The on-host journal's housekeeping: entries past their retention are removed on the host.

An entry (one file per change id, see automation/plan.py) is what lets a host recognise a change
sent again after a crash. A change is sent again only while it is pending in the SCDB, so an
entry older than the retention (default 90 days, store/retention.py) recognises nothing any
more. Age is the entry's modification time on the host, as the host's own clock tells it.
"""

from __future__ import annotations

from automation.host import HostLayout
from automation.plan import JOURNAL_DIR, q


def prune_journal_script(layout: HostLayout, keep_days: float) -> str:
    """A script that removes the journal entries older than `keep_days` and prints how many."""
    jdir = q(layout.path(JOURNAL_DIR))
    minutes = max(1, int(keep_days * 24 * 60))
    return (
        f"[ -d {jdir} ] || {{ echo 0; exit 0; }}\n"
        f"find {jdir} -mindepth 1 -maxdepth 1 -type f -mmin +{minutes} -print -delete | wc -l\n"
    )
