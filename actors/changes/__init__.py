"""Changes to customers' hosting, from request to the host and back.

``requests`` records a change request (validated by GDCAS's catalog, checked by ``access``:
who may ask for which change on which service); ``executor`` (actor) hands changes to GDCAS
for the hosts of its shard; ``settle`` records what happened; ``stored`` keeps parameters at
rest without secrets in clear; ``hosts`` registers managed hosts with their pinned keys;
``timeline`` writes a change's entries on its account's timeline; ``dto`` crosses boundaries.
"""
