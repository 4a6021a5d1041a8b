"""The desk's rules and the Ray actors that run them, one folder per domain.

- ``tickets/``  the intake actor (group commit of new tickets), the tier pools, and the rules:
  filing, assignment, the lifecycle of one ticket, routing and classification.
- ``accounts/`` the per-account serial lane every step of an account takes, the 360° view.
- ``sla/``      the SLA clock actor, its timers, business-hours arithmetic, the policies.
- ``changes/``  the GDCAS executor actor, change requests and their settlement, who may ask
  for what (access), parameters at rest, the managed-host registry.
- ``notify/``   the notifier (outbox to Redis) and who hears which event (audience).

Shared by all of them at this level: the principal (who acts), checked text types, errors,
idempotency records, the clock, the config and the names of the actors and their directory.
Nothing here imports ``gateway`` or ``cluster``; actors receive what they need when built.
"""
