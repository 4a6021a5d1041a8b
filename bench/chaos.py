"""The chaos ledger: a mixed load through the public doors of `sitedesk up` on PostgreSQL
(tickets and replies over HTTP by customers and agents, self-service DNS and mailbox-password
changes, mail over SMTP into the intake) while every component is struck, each fault several
times: kill -9 of every actor kind and of the gateway (restarted as systemd would), a Redis
restart, a PostgreSQL crash restart, a managed host's sshd, named or nginx killed and restarted,
a host frozen with SIGSTOP. Then the proof that every acknowledged ticket, message and change
exists once, every change is on its host once, no notification is lost or doubled, and every
live stream saw every event of its audience in order; one table, faults x outcomes.

    .venv/bin/python bench/chaos.py            # every fault kind 3 times (~20 min here)
    .venv/bin/python bench/chaos.py --quick    # every fault kind once, a smaller load

Everything runs privately: its own PostgreSQL (initdb), Redis and Ray head in a temp dir, HTTP
on 8111-8119, SMTP on 2611-2619, the private servers on 15500-15599.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, bench/ is on sys.path and its automation.py and email.py would shadow the
# automation package and the standard library: the repository root instead.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import argparse
import shutil
import tempfile

from bench._chaos import ALL_FAULTS, Load, run_chaos


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="every fault once, a smaller load")
    ap.add_argument("--repeats", type=int, default=None, help="times each fault strikes")
    ap.add_argument(
        "--faults", default="", help="comma-separated subset of: " + ", ".join(ALL_FAULTS)
    )
    ap.add_argument("--keep", action="store_true", help="keep the run's directory")
    ap.add_argument("--base", default="", help="where the run lives (default: a temp dir)")
    args = ap.parse_args()
    kinds = [k.strip() for k in args.faults.split(",") if k.strip()] or ALL_FAULTS
    unknown = set(kinds) - set(ALL_FAULTS)
    if unknown:
        ap.error(f"unknown faults {sorted(unknown)}")
    repeats = args.repeats or (1 if args.quick else 3)
    load = Load(customers=4, phone_agents=2, streams=2) if args.quick else Load()
    base = Path(args.base) if args.base else Path(tempfile.mkdtemp(prefix="sitedesk-chaos-"))
    try:
        outcome = run_chaos(base, load, kinds, repeats=repeats, settle=2.0 if args.quick else 3.0)
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    print()
    print(outcome.text)
    r = outcome.report
    bad = r.count(None, "lost") + r.count(None, "doubled") + r.count(None, "gaps")
    return 1 if bad or outcome.run.ledger.errors else 0


if __name__ == "__main__":
    sys.exit(main())
