"""Referral records, write side: who brought whom in.

A referral is `completed` when the referee becomes an active member, and `pending` while their
adhesion application awaits approval (approval completes it; see services/adhesion.py).
Registration writes these rows only while referral tracking (`isActive`) is on.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from invite_desk.services import audit
from invite_desk.services.models import Member, Referral, ReferralStatus, new_id
from invite_desk.services.uow import UnitOfWork


@dataclass(frozen=True)
class Credit:
    """One member to credit for a new member, and the invitation that shows it."""

    referrer_id: uuid.UUID
    invitation_id: uuid.UUID | None


def record(
    session: Session,
    *,
    organization_id: uuid.UUID,
    referee_id: uuid.UUID,
    credits: Iterable[Credit],
    pending: bool,
    at: datetime,
) -> list[uuid.UUID]:
    """Add one referral per distinct referrer (never the referee themself); returns the ids added.

    A referrer already credited for this referee (a member who left and rejoined) keeps the
    original row: the unique (referrer, referee) pair is one referral, however often it happens.
    """
    seen: set[uuid.UUID] = set()
    wanted: list[Credit] = []
    for credit in credits:
        if credit.referrer_id == referee_id or credit.referrer_id in seen:
            continue
        seen.add(credit.referrer_id)
        wanted.append(credit)
    if not wanted:
        return []
    already = set(
        session.scalars(
            select(Referral.referrer_id).where(
                Referral.referee_id == referee_id, Referral.referrer_id.in_(seen)
            )
        )
    )
    status = ReferralStatus.PENDING if pending else ReferralStatus.COMPLETED
    added: list[uuid.UUID] = []
    for credit in wanted:
        if credit.referrer_id in already:
            continue
        row = Referral(
            id=new_id(),
            organization_id=organization_id,
            referrer_id=credit.referrer_id,
            referee_id=referee_id,
            invitation_id=credit.invitation_id,
            status=status.value,
            referred_at=at,
            completed_at=None if pending else at,
        )
        session.add(row)
        added.append(row.id)
        audit.record(
            session, organization_id=organization_id, actor_id=referee_id,
            action="referral.recorded", entity_type="referral", entity_id=row.id,
            after={"referrer": credit.referrer_id, "referee": referee_id,
                   "invitation": credit.invitation_id, "status": status.value},
        )
    if not pending and added:
        _notify_inviters(session, organization_id, referee_id,
                         [(c.referrer_id, c.invitation_id) for c in wanted
                          if c.referrer_id not in already])
    return added


def _notify_inviters(session: Session, organization_id: uuid.UUID, referee_id: uuid.UUID,
                     credits: list[tuple[uuid.UUID, uuid.UUID | None]]) -> None:
    """Issue 11: the inviters' "your invitee joined" emails, queued with the referral."""
    from invite_desk.services.admin.notifications import notify_inviters

    notify_inviters(session, organization_id=organization_id, referee_id=referee_id,
                    credits=credits)


def _close_pending(
    session: Session, *, referee_id: uuid.UUID, actor_id: uuid.UUID | None, at: datetime,
    to: ReferralStatus,
) -> int:
    rows = list(
        session.scalars(
            select(Referral).where(
                Referral.referee_id == referee_id,
                Referral.status == ReferralStatus.PENDING.value,
            )
        )
    )
    for row in rows:
        row.status = to.value
        row.completed_at = at if to is ReferralStatus.COMPLETED else None
        audit.record(
            session, organization_id=row.organization_id, actor_id=actor_id,
            action=f"referral.{to.value}", entity_type="referral", entity_id=row.id,
            before={"status": ReferralStatus.PENDING.value}, after={"status": to.value},
        )
    if rows and to is ReferralStatus.COMPLETED:
        _notify_inviters(session, rows[0].organization_id, referee_id,
                         [(row.referrer_id, row.invitation_id) for row in rows])
    return len(rows)


def complete_pending(
    session: Session, *, referee_id: uuid.UUID, actor_id: uuid.UUID | None, at: datetime
) -> int:
    """Complete the referee's pending referrals (their application was approved); returns how many."""
    return _close_pending(session, referee_id=referee_id, actor_id=actor_id, at=at,
                          to=ReferralStatus.COMPLETED)


def decline_pending(
    session: Session, *, referee_id: uuid.UUID, actor_id: uuid.UUID | None, at: datetime
) -> int:
    """The referee's application was rejected: their pending referrals will never complete, so
    they stop counting as pending in referral activity and reports."""
    return _close_pending(session, referee_id=referee_id, actor_id=actor_id, at=at,
                          to=ReferralStatus.DECLINED)


@dataclass(frozen=True)
class ReferralRecord:
    id: uuid.UUID
    referrer_id: uuid.UUID
    referrer_name: str
    referee_id: uuid.UUID
    invitation_id: uuid.UUID | None
    status: ReferralStatus
    referred_at: datetime
    completed_at: datetime | None


def referrals_of(uow: UnitOfWork, referee_id: uuid.UUID) -> list[ReferralRecord]:
    """Who is credited for bringing in this member, oldest first."""
    with uow:
        rows = uow.session.execute(
            select(Referral, Member)
            .join(Member, Member.id == Referral.referrer_id)
            .where(Referral.referee_id == referee_id)
            .order_by(Referral.referred_at, Member.last_name, Member.first_name)
        )
        return [
            ReferralRecord(
                id=referral.id,
                referrer_id=referral.referrer_id,
                referrer_name=referrer.display_name,
                referee_id=referral.referee_id,
                invitation_id=referral.invitation_id,
                status=ReferralStatus(referral.status),
                referred_at=referral.referred_at,
                completed_at=referral.completed_at,
            )
            for referral, referrer in rows
        ]
