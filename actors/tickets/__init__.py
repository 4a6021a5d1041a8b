"""Tickets: the intake actor, the tier pools, and the rules every ticket follows.

``intake`` (actor) files new tickets in group commits and hands them to level 1;
``tier_pool`` (actor) keeps one tier's queue and agents; ``filing``, ``assignment`` and
``lifecycle`` are the units of work on the SCDB (what a ticket looks like to its readers is
store/read/tickets.py); ``commands`` is what can happen to a ticket (one typed union, which
``lifecycle`` dispatches with ``match``) and ``states`` the transition table of its statuses
that every check reads; ``routing`` and ``classify`` choose the agent and the category;
``service`` puts them together for one process; ``dto`` is what crosses actor boundaries.
"""
