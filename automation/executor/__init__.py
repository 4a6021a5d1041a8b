"""Executors: one lane per managed host applies its changes in order, exactly once.

- ``automation.executor.request`` — ``ChangeRequest`` (a change for one host, with its id) and
  ``QueuedRequest`` (one waiting in a lane's queue);
- ``automation.executor.outcome`` — what is reported: ``ChangeOutcome`` and its ``Status``,
  ``HostStatus``, and ``OutcomeCollector`` (a callback that keeps outcomes);
- ``automation.executor.lane`` — ``HostLane``: one host's queue, thread, health and housekeeping;
- ``automation.executor.batch`` — ``BatchApplier``: one batch's round trip on the host (plan,
  apply, judge the probes, roll back what fails verification) and the journal look-ups;
- ``automation.executor.executor`` — ``Executor``: many lanes, one thread each.
"""
