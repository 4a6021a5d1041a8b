"""The on-host journal, read and pruned: which of some change ids a host holds, and the removal
of entries past their retention.

An entry (one file per change id, written by the script of automation/plan.py) is what lets a
host recognise a change sent again after a crash. A change is sent again only while it is
pending in the SCDB, so an entry older than the retention (default 90 days, store/retention.py)
recognises nothing any more. Age is the entry's modification time on the host, as the host's
own clock tells it.
"""

from __future__ import annotations

from automation.host import HostLayout
from automation.plan import JOURNAL_DIR, q


def journal_script(layout: HostLayout, ids: list[str]) -> str:
    """A read-only script printing ``<id> <entry's first line>`` for each of `ids` journaled."""
    jdir = layout.path(JOURNAL_DIR)
    return (
        f"for id in {' '.join(q(i) for i in ids)}; do\n"
        f'  if [ -e {q(jdir)}/"$id" ]; then\n'
        f'    printf "%s %s\\n" "$id" "$(head -n1 {q(jdir)}/"$id")"\n'
        "  fi\n"
        "done\n"
    )


def prune_journal_script(layout: HostLayout, keep_days: float) -> str:
    """A script that removes the journal entries older than `keep_days` and prints how many."""
    jdir = q(layout.path(JOURNAL_DIR))
    minutes = max(1, int(keep_days * 24 * 60))
    return (
        f"[ -d {jdir} ] || {{ echo 0; exit 0; }}\n"
        f"find {jdir} -mindepth 1 -maxdepth 1 -type f -mmin +{minutes} -print -delete | wc -l\n"
    )
