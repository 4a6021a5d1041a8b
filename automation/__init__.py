"""GDCAS, the data-center automation system: change catalog and SSH executors for managed hosts.

- ``automation.changes`` — the catalog: ``parse_change``, ``Change``, ``CHANGE_KINDS``,
  ``CUSTOMER_SELF_SERVICE_KINDS``, ``ChangeValidationError``;
- ``automation.host`` — ``HostSpec`` / ``HostLayout``: how a caller describes a managed host;
- ``automation.executor`` — ``Executor`` (one ``HostLane`` thread per host), ``ChangeRequest``,
  ``ChangeOutcome`` (one module each, see the package's docstring);
- ``automation.plan`` / ``automation.journal`` — the script of one round trip on a host, and the
  on-host journal of applied change ids;
- ``automation.ssh`` — the paramiko connection and its errors (``HostUnreachable``,
  ``OutcomeUnknown``, ``HostKeyMismatch``);
- ``automation.local_hosts`` — real sshd/named/nginx "hosts" on loopback for tests and the demo
  (``LocalHost`` in ``automation.local_hosts.host``).

This package imports no other package of the repository.
"""
