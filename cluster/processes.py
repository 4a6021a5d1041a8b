"""What `sitedesk up` started, kept in the data dir's `run/` folder, and stopped when it is gone.

Every server `up` starts (the private Redis, the demo hosts' sshd, named, nginx, Dovecot,
Postfix, pure-ftpd and MariaDB, and the private Ray's session) has a pid file there
(automation.processes). Each dies with `up` where the kernel's parent-death signal reaches it;
for the rest (what those servers fork, what changes user, Ray's agents), a guardian process
stops what the pid files name as soon as `up` ends, however it ended, and the next `up` on the
same data dir stops whatever is still left (a guardian killed too, a machine in trouble).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from automation.processes import start_guardian, stop_leftovers

RUN_DIR = "run"


def run_dir(data_dir: Path) -> Path:
    """The folder of the pid files of what `sitedesk up` on `data_dir` started."""
    return data_dir.resolve() / RUN_DIR


def take_over(data_dir: Path) -> tuple[list[str], subprocess.Popen[bytes]]:
    """Stop what an earlier `up` on `data_dir` left running (said as "name (n processes, pid
    N)"), then start the guardian of what this one will start."""
    folder = run_dir(data_dir)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    stopped = stop_leftovers(folder)
    return stopped, start_guardian(folder)
