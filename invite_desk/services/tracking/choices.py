"""What the filters of the invitations window offer: units, events and recent batches."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select

from invite_desk.services.events import EventInfo, list_events
from invite_desk.services.models import Batch, Member
from invite_desk.services.operator import Operator, refreshed
from invite_desk.services.organization import UnitInfo, list_units
from invite_desk.services.permissions import ScopeLevel, scope_of
from invite_desk.services.tracking.read import batch_label
from invite_desk.services.uow import UnitOfWork

RECENT_BATCHES = 300


@dataclass(frozen=True)
class BatchChoice:
    id: uuid.UUID
    label: str
    created_at: datetime


@dataclass(frozen=True)
class FilterChoices:
    units: tuple[UnitInfo, ...]
    events: tuple[EventInfo, ...]
    batches: tuple[BatchChoice, ...]  # the most recent first


def recent_batches(uow: UnitOfWork, operator: Operator,
                   limit: int = RECENT_BATCHES) -> list[BatchChoice]:
    """The newest batches the operator may see: all of them tenant-wide; those they created or
    are credited with, or (local roles) credited to a member of their unit."""
    with uow:
        session = uow.session
        operator = refreshed(session, operator)
        scope = scope_of(operator)
        stmt = select(Batch.id, Batch.label, Batch.source, Batch.created_at).where(
            Batch.organization_id == operator.organization_id)
        if scope.level is not ScopeLevel.ORGANIZATION:
            mine = or_(Batch.created_by_id == operator.member_id,
                       Batch.inviter_id == operator.member_id)
            if scope.level is ScopeLevel.UNIT and scope.unit_id is not None:
                unit_members = select(Member.id).where(Member.unit_id == scope.unit_id)
                mine = or_(mine, Batch.inviter_id.in_(unit_members))
            stmt = stmt.where(mine)
        rows = session.execute(stmt.order_by(Batch.created_at.desc(), Batch.id).limit(limit))
        return [BatchChoice(bid, batch_label(label, source, at), at)
                for bid, label, source, at in rows]


def filter_choices(uow: UnitOfWork, operator: Operator) -> FilterChoices:
    units = list_units(uow, operator.organization_id)
    scope = scope_of(operator)
    if scope.level is ScopeLevel.UNIT:
        units = [u for u in units if u.id == scope.unit_id]
    elif scope.level is ScopeLevel.OWN:
        units = []
    return FilterChoices(tuple(units), tuple(list_events(uow, operator.organization_id)),
                         tuple(recent_batches(uow, operator)))
