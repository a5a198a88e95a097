"""Which queued invitations an operator may send: the same policy for the window and the CLI.

Sending needs invitations on and a role at or above `whoCanSendUserInvitation`. What is sent
is the operator's own queued batches by default, one batch (`batch_id`, which must be within
the operator's scope), or everything queued within their scope (`everything`, which sends other
members' invitations and so needs the right to send on their behalf).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select

from invite_desk.services import settings as settings_service
from invite_desk.services.errors import NotFound, PermissionDenied
from invite_desk.services.models import Batch, Member
from invite_desk.services.operator import Operator, refreshed
from invite_desk.services.permissions import (
    Action,
    ScopeLevel,
    Target,
    decide,
    require,
    scope_of,
)
from invite_desk.services.uow import UnitOfWork


@dataclass(frozen=True)
class SendScope:
    """A filter on queued invitations; None in a field means no restriction on it."""

    organization_id: uuid.UUID
    batch_id: uuid.UUID | None = None
    sender_id: uuid.UUID | None = None  # only invitations this operator queued
    unit_id: uuid.UUID | None = None  # only invitations of this unit
    description: str = ""

    @classmethod
    def organization(cls, organization_id: uuid.UUID) -> SendScope:
        return cls(organization_id, description="everything queued in the organization")


def sendable_scope(
    uow: UnitOfWork,
    operator: Operator,
    *,
    batch_id: uuid.UUID | None = None,
    everything: bool = False,
) -> SendScope:
    """What `operator` may send now; raises PermissionDenied (or NotFound for a batch id that
    is not in the organization) with the reason and the role that would be needed."""
    if batch_id is not None and everything:
        raise ValueError("choose one batch or everything, not both")
    with uow:
        session = uow.session
        operator = refreshed(session, operator)  # deactivated or demoted since sign-in: refused
        policy = settings_service.load(session, operator.organization_id)
        require(operator, Action.SEND_INVITATIONS, settings=policy)
        org = operator.organization_id
        if batch_id is not None:
            batch = session.get(Batch, batch_id)
            if batch is None or batch.organization_id != org:
                raise NotFound(f"There is no batch {batch_id} in this organization.")
            owners = (batch.created_by_id, batch.inviter_id)
            if operator.member_id in owners:
                return SendScope(org, batch_id=batch_id, description=f"batch {batch_id}")
            creator_unit = session.scalar(
                select(Member.unit_id).where(Member.id == batch.created_by_id))
            target = Target(unit_id=creator_unit, owner_ids=owners)
            decision = decide(operator, Action.SEND_ON_BEHALF, settings=policy, target=target)
            if not decision.allowed:
                raise PermissionDenied(
                    f"send batch {batch_id}", decision.needed.name,
                    detail=decision.reason or "It was queued by another member.",
                    role_ok=operator.role >= decision.needed and bool(decision.reason),
                )
            return SendScope(org, batch_id=batch_id, description=f"batch {batch_id}")
        if everything:
            require(operator, Action.SEND_ON_BEHALF, settings=policy)
            scope = scope_of(operator)
            if scope.level is ScopeLevel.ORGANIZATION:
                return SendScope.organization(org)
            if scope.unit_id is None:
                raise PermissionDenied(
                    "send every queued invitation of your unit", "HR_TENANT",
                    detail="You belong to no unit.",
                )
            return SendScope(org, unit_id=scope.unit_id,
                             description="everything queued in your unit")
        return SendScope(org, sender_id=operator.member_id,
                         description="the batches you queued")
