"""Scheduled batches: a batch that must not be sent before a moment (`batch.scheduled_at`).

The outbox (desktop and `invite-desk send`) skips the invitations of a batch scheduled later;
the first send run at or after that moment sends them (run `invite-desk send` from a scheduled
job). `scheduled_later` says which batches wait, and until when, so a run that sent nothing
can say when they will go.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select

from invite_desk.services import audit
from invite_desk.services.errors import ValidationFailed
from invite_desk.services.invitations.send_scope import SendScope, sendable_scope
from invite_desk.services.models import Batch, Invitation, InvitationStatus, utcnow
from invite_desk.services.operator import Operator
from invite_desk.services.uow import UnitOfWork


@dataclass(frozen=True)
class ScheduledBatch:
    batch_id: uuid.UUID
    label: str
    scheduled_at: datetime | None
    queued: int

    def describe(self) -> str:
        when = (f"{self.scheduled_at.astimezone():%Y-%m-%d %H:%M %Z}"
                if self.scheduled_at is not None else "now")
        return (f"batch {self.batch_id} ({self.queued} queued) is scheduled for {when}; the "
                "first send run at or after that time sends it")


def schedule_batch(uow: UnitOfWork, operator: Operator, batch_id: uuid.UUID,
                   at: datetime | None) -> ScheduledBatch:
    """Schedule the batch to start at `at` (an aware datetime; None: as soon as it is sent).
    Needs the right to send that batch (see sendable_scope); audited."""
    if at is not None and at.tzinfo is None:
        raise ValidationFailed({"at": "Give the time with its time zone (e.g. 2026-12-01 "
                                      "09:00+01:00), or in UTC."})
    sendable_scope(uow, operator, batch_id=batch_id)  # raises PermissionDenied / NotFound
    with uow:
        session = uow.session
        batch = session.get(Batch, batch_id)
        assert batch is not None
        before = {"scheduled_at": batch.scheduled_at}
        batch.scheduled_at = at.astimezone(UTC) if at is not None else None
        audit.record(session, organization_id=batch.organization_id,
                     actor_id=operator.member_id, action="batch.scheduled", entity_type="batch",
                     entity_id=batch.id, before=before, after={"scheduled_at": at})
        queued = _queued(uow, batch.id)
        result = ScheduledBatch(batch.id, batch.label, batch.scheduled_at, queued)
        uow.commit()
        return result


def _queued(uow: UnitOfWork, batch_id: uuid.UUID) -> int:
    return int(uow.session.scalar(select(func.count()).select_from(Invitation).where(
        Invitation.batch_id == batch_id,
        Invitation.status == InvitationStatus.QUEUED.value)) or 0)


def scheduled_later(uow: UnitOfWork, scope: SendScope,
                    now: datetime | None = None) -> list[ScheduledBatch]:
    """Batches within `scope` that still have queued invitations and start after `now`."""
    moment = now or utcnow()
    with uow:
        conditions = [Invitation.organization_id == scope.organization_id,
                      Invitation.status == InvitationStatus.QUEUED.value,
                      Batch.scheduled_at > moment]
        if scope.batch_id is not None:
            conditions.append(Invitation.batch_id == scope.batch_id)
        if scope.sender_id is not None:
            conditions.append(Invitation.sender_id == scope.sender_id)
        if scope.unit_id is not None:
            conditions.append(Invitation.unit_id == scope.unit_id)
        rows = uow.session.execute(
            select(Batch.id, Batch.label, Batch.scheduled_at, func.count())
            .join(Invitation, Invitation.batch_id == Batch.id)
            .where(*conditions)
            .group_by(Batch.id, Batch.label, Batch.scheduled_at)
            .order_by(Batch.scheduled_at))
        return [ScheduledBatch(bid, label, at, int(n)) for bid, label, at, n in rows]
