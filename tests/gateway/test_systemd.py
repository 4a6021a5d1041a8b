"""The systemd notify protocol as `sitedesk up` speaks it (the whole exchange with a real
`sitedesk up` is in tests/cluster/test_process_lifecycle.py)."""

from __future__ import annotations

import os
import secrets
import socket

from gateway.systemd import ServiceNotifier


def test_the_variables_are_taken_out_of_the_environment_children_inherit() -> None:
    environ = {"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "30000000",
               "WATCHDOG_PID": str(os.getpid()), "PATH": "/bin"}  # fmt: skip
    notifier = ServiceNotifier(environ)
    assert environ == {"PATH": "/bin"}
    assert notifier.active and notifier.watchdog == 30.0


def test_a_watchdog_meant_for_another_process_is_not_ours() -> None:
    notifier = ServiceNotifier({"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "30000000",
                                "WATCHDOG_PID": str(os.getpid() + 1)})  # fmt: skip
    assert notifier.watchdog is None


def test_without_a_notify_socket_nothing_is_sent() -> None:
    notifier = ServiceNotifier({})
    assert not notifier.active and notifier.notify("READY=1") is False


def test_messages_reach_an_abstract_socket() -> None:
    name = f"sitedesk-test-{secrets.token_hex(4)}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind("\0" + name)
        listener.settimeout(5)
        notifier = ServiceNotifier({"NOTIFY_SOCKET": "@" + name})
        assert notifier.notify("READY=1", "STATUS=serving")
        assert listener.recv(4096) == b"READY=1\nSTATUS=serving"
