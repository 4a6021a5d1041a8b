"""Live state of the desk: stateful Ray actors (router, tier pools, sessions, SLA, notifier)."""
