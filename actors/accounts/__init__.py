"""Accounts: the per-account serial lane (``lane``, an actor of many accounts per shard) that
every step on an account's tickets takes in order, and the account's 360° view (``view``)."""
