"""Changes to customers' hosting, from request to the host and back.

``requests`` records a change request in the account's lane (validated by GDCAS's catalog;
which kinds a role may ask for is ``actors/policy.py``, which services it may touch is
``access``); ``shards`` says which ``executor`` (actor) owns a host and hands changes to it;
the executor applies them with GDCAS and registers new hosts; ``settle`` records what happened,
once; ``standing`` makes an applied suspension true in the SCDB; ``stored`` keeps parameters at
rest without secrets in clear; ``hosts`` checks and registers managed hosts with their pinned
keys; ``timeline`` writes a change's entries on its account's timeline; ``dto`` crosses
boundaries.
"""
