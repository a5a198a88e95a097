"""Queue a batch: permission, daily limit, a batch row, invitations in the outbox, one audit row."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, insert, select

from invite_desk.services import audit
from invite_desk.services import settings as settings_service
from invite_desk.services.errors import DomainError, NotFound
from invite_desk.services.invitations.preflight import (
    PreflightRow,
    RowStatus,
    existing_members,
    pending_invitations,
)
from invite_desk.services.models import (
    AuditLog,
    Batch,
    Event,
    Invitation,
    InvitationKind,
    InvitationStatus,
    Member,
    MemberStatus,
    new_id,
    utcnow,
)
from invite_desk.services.operator import Operator, refreshed
from invite_desk.services.permissions import Action, Target, require
from invite_desk.services.uow import UnitOfWork


class DailyLimitReached(DomainError):
    """The credited inviter would pass the per-inviter daily limit."""


@dataclass(frozen=True)
class QueuedBatch:
    batch_id: uuid.UUID
    queued: int
    skipped: tuple[PreflightRow, ...]  # rows that became members or pending since pre-flight


def invitations_in_last_day(uow: UnitOfWork, inviter_id: uuid.UUID, now: datetime) -> int:
    with uow:
        return _count_since(uow, inviter_id, now - timedelta(days=1))


def _count_since(uow: UnitOfWork, inviter_id: uuid.UUID, since: datetime) -> int:
    return int(
        uow.session.scalar(
            select(func.count())
            .select_from(Invitation)
            .where(Invitation.inviter_id == inviter_id, Invitation.created_at >= since)
        )
        or 0
    )


def queue_invitations(
    uow: UnitOfWork,
    operator: Operator,
    rows: Sequence[PreflightRow],
    *,
    inviter_id: uuid.UUID | None = None,
    personal_message: str = "",
    kind: InvitationKind = InvitationKind.MEMBERSHIP,
    event_id: uuid.UUID | None = None,
    source: str = "single",
    label: str = "",
    now: datetime | None = None,
) -> QueuedBatch:
    """Put the ready rows in the outbox as one batch. Raises PermissionDenied / DailyLimitReached."""
    moment = now or utcnow()
    credited = inviter_id or operator.member_id
    ready = [r for r in rows if r.status is RowStatus.READY]
    with uow:
        session = uow.session
        operator = refreshed(session, operator)
        policy = settings_service.load(session, operator.organization_id)
        inviter = session.get(Member, credited)
        if inviter is None or inviter.organization_id != operator.organization_id:
            raise NotFound("The member credited as inviter does not exist.")
        if inviter.status != MemberStatus.ACTIVE.value:
            raise DomainError(f"{inviter.display_name} is not an active member and cannot invite.")
        require(operator, Action.SEND_INVITATIONS, settings=policy)
        if credited != operator.member_id:
            require(operator, Action.SEND_ON_BEHALF, settings=policy,
                    target=Target(unit_id=inviter.unit_id, owner_ids=()))
        if kind is InvitationKind.EVENT:
            event = session.get(Event, event_id) if event_id else None
            if event is None or event.organization_id != operator.organization_id:
                raise NotFound("Choose the event the guests are invited to.")
        else:
            event_id = None
        keys = [r.key for r in ready]
        members = existing_members(session, operator.organization_id, keys) if kind is InvitationKind.MEMBERSHIP else set()
        pending = pending_invitations(session, operator.organization_id, keys, kind=kind,
                                      event_id=event_id, now=moment)
        skipped = tuple(r for r in ready if r.key in members or r.key in pending)
        go = [r for r in ready if r.key not in members and r.key not in pending]
        limit = policy.daily_limit_per_inviter
        if limit and go:
            used = _count_since(uow, credited, moment - timedelta(days=1))
            if used + len(go) > limit:
                left = max(limit - used, 0)
                raise DailyLimitReached(
                    f"{inviter.display_name} can be credited with {left} more invitation"
                    f"{'' if left == 1 else 's'} in the next 24 hours (daily limit {limit}); "
                    f"this batch has {len(go)}. Send fewer, or ask an admin to raise the limit."
                )
        batch = Batch(
            organization_id=operator.organization_id,
            created_by_id=operator.member_id,
            inviter_id=credited,
            label=label[:300],
            source=source,
            kind=kind.value,
            event_id=event_id,
            personal_message=personal_message,
            total=len(go),
            status="open" if go else "done",
        )
        session.add(batch)
        session.flush()
        invitation_rows = []
        audit_rows = []
        for row in go:
            invitation_id = new_id()
            invitation_rows.append(
                {
                    "id": invitation_id,
                    "version": 1,
                    "created_at": moment,
                    "updated_at": moment,
                    "organization_id": operator.organization_id,
                    "email": row.email,
                    "email_normalized": row.key,
                    "name": row.name,
                    "kind": kind.value,
                    "event_id": event_id,
                    "inviter_id": credited,
                    "sender_id": operator.member_id,
                    "unit_id": inviter.unit_id,
                    "batch_id": batch.id,
                    "personal_message": row.message or personal_message,
                    "status": InvitationStatus.QUEUED.value,
                    "queued_at": moment,
                    "attempts": 0,
                    "last_error": "",
                }
            )
            audit_rows.append(
                {
                    "id": new_id(),
                    "version": 1,
                    "created_at": moment,
                    "updated_at": moment,
                    "organization_id": operator.organization_id,
                    "actor_id": operator.member_id,
                    "action": "invitation.queued",
                    "entity_type": "invitation",
                    "entity_id": invitation_id,
                    "before_json": "{}",
                    "after_json": f'{{"batch": "{batch.id}", "status": "queued"}}',
                    "at": moment,
                }
            )
        if invitation_rows:
            # Core executemany: the ORM's bulk path costs ~10x more per row here.
            connection = session.connection()
            connection.execute(insert(Invitation.__table__), invitation_rows)  # type: ignore[arg-type]
            connection.execute(insert(AuditLog.__table__), audit_rows)  # type: ignore[arg-type]
        audit.record(
            session,
            organization_id=operator.organization_id,
            actor_id=operator.member_id,
            action="batch.queued",
            entity_type="batch",
            entity_id=batch.id,
            after={"queued": len(go), "skipped": len(skipped), "source": source,
                   "inviter": str(credited), "kind": kind.value, "label": label},
        )
        uow.commit()
        return QueuedBatch(batch.id, len(go), skipped)


@dataclass(frozen=True)
class UnsentBatch:
    batch_id: uuid.UUID
    label: str
    queued: int
    created_at: datetime


def unsent_batches(uow: UnitOfWork, operator: Operator) -> list[UnsentBatch]:
    """Batches with invitations still queued (a cancel, a stop, or a crash left them), newest
    first: the operator's own, or every batch for organization-wide roles."""
    with uow:
        operator = refreshed(uow.session, operator)
        stmt = (
            select(Batch.id, Batch.label, func.count(Invitation.id), Batch.created_at)
            .join(Invitation, Invitation.batch_id == Batch.id)
            .where(
                Batch.organization_id == operator.organization_id,
                Invitation.status == InvitationStatus.QUEUED.value,
            )
            .group_by(Batch.id, Batch.label, Batch.created_at)
            .order_by(Batch.created_at.desc())
        )
        if not operator.role.is_tenant_wide:
            stmt = stmt.where(Batch.created_by_id == operator.member_id)
        return [UnsentBatch(bid, label, int(n), at) for bid, label, n, at in uow.session.execute(stmt)]
