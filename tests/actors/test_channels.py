"""Who hears an event: customers only public ones of their account; staff by tier and owner."""

from __future__ import annotations

from actors.notify.audience import STAFF_ALL, account, agent, channels_for, tier


def test_public_ticket_event_reaches_account_tier_and_owner() -> None:
    payload = {"visibility": "public", "data": {"tier": 2, "owner_agent_id": 9, "number": "TT-1"}}
    assert set(channels_for(5, payload)) == {STAFF_ALL, account(5), tier(2), agent(9)}


def test_internal_event_never_reaches_the_customer() -> None:
    payload = {"visibility": "internal", "data": {"tier": 1, "owner_agent_id": 4}}
    assert account(5) not in channels_for(5, payload)


def test_escalation_reaches_both_tiers_and_the_previous_owner() -> None:
    payload = {"visibility": "public", "data": {"tier": 3, "from_tier": 2, "previous_owner": 8}}
    assert {tier(2), tier(3), agent(8)} <= set(channels_for(1, payload))
