"""The desk's permission policy, step by step and role by role (actors/policy.py)."""

from __future__ import annotations

import pytest

from actors.errors import NotAllowed
from actors.policy import (
    KINDS_BY_TIER,
    Step,
    authorize_change_kind,
    authorize_ticket_step,
)
from actors.principal import SYSTEM, Principal
from automation.changes import CHANGE_KINDS, CUSTOMER_SELF_SERVICE_KINDS

CUSTOMER = Principal(role="customer", name="C", user_id=1, account_id=1)
ADMIN = Principal(role="admin", name="A", user_id=2)


def agent(tier: int) -> Principal:
    return Principal(role="agent", name=f"L{tier}", user_id=10 + tier, agent_id=tier, tier=tier)


def allowed(by: Principal, step: Step, tier: int) -> bool:
    try:
        authorize_ticket_step(by, step, ticket_tier=tier, number="TT-000001")
    except NotAllowed:
        return False
    return True


# step -> who may take it on a level-2 ticket: customer, L1, L2, L3, admin, system
TABLE = {
    Step.take: (False, False, True, False, False, False),
    Step.handover: (False, False, True, True, True, True),
    Step.escalate: (False, False, True, True, True, True),
    Step.resolve: (False, False, True, True, True, True),
    Step.reply: (True, False, True, True, True, True),
    Step.note: (False, True, True, True, True, True),
    Step.reopen: (True, False, True, True, True, True),
    Step.close: (True, False, True, True, True, True),
    Step.change: (False, False, True, True, True, True),
    Step.call: (False, True, True, True, True, True),
}


@pytest.mark.parametrize("step", list(Step))
def test_every_step_against_every_role_on_a_level_2_ticket(step: Step) -> None:
    roles = (CUSTOMER, agent(1), agent(2), agent(3), ADMIN, SYSTEM)
    assert tuple(allowed(by, step, 2) for by in roles) == TABLE[step]


def test_a_refusal_says_why() -> None:
    with pytest.raises(NotAllowed, match="TT-000001 is at level 3; level 1 agents do not resolve"):
        authorize_ticket_step(agent(1), Step.resolve, ticket_tier=3, number="TT-000001")
    with pytest.raises(NotAllowed, match="level 2 queue, you work level 1"):
        authorize_ticket_step(agent(1), Step.take, ticket_tier=2, number="TT-000001")


def test_change_kinds_grow_with_the_level_and_admins_may_request_all() -> None:
    assert KINDS_BY_TIER[1] < KINDS_BY_TIER[2] < KINDS_BY_TIER[3] == frozenset(CHANGE_KINDS)
    for kind in CHANGE_KINDS:
        authorize_change_kind(ADMIN, kind)
        authorize_change_kind(agent(3), kind)
    with pytest.raises(NotAllowed, match="escalate the ticket to level 3"):
        authorize_change_kind(agent(2), "account_suspend")
    with pytest.raises(NotAllowed, match="escalate the ticket to level 2"):
        authorize_change_kind(agent(1), "vhost_create")


def test_customers_request_only_self_service_kinds() -> None:
    for kind in CUSTOMER_SELF_SERVICE_KINDS:
        authorize_change_kind(CUSTOMER, kind)
    with pytest.raises(NotAllowed, match="not a self-service change"):
        authorize_change_kind(CUSTOMER, "account_suspend")
