"""Admitting a person: the member row, their other invitations, and who is credited.

Shared by registration through a link (`joining`) and the public page (`public`); the callers
own the transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, Result, select, update
from sqlalchemy.orm import Session

from invite_desk.services import audit
from invite_desk.services.models import (
    AcceptedVia,
    AdhesionStatus,
    EventGuest,
    Invitation,
    InvitationStatus,
    Member,
    MemberStatus,
    new_id,
)
from invite_desk.services.referrals import Credit
from invite_desk.services.registration.form import CleanRegistration
from invite_desk.services.registration.links import LINK_STATUSES, LiveInvitation
from invite_desk.services.roles import Role


def rowcount(result: Result[Any]) -> int:
    """Rows an UPDATE matched (SQLAlchemy asks MySQL/MariaDB for matched, not changed, rows)."""
    return cast(CursorResult[Any], result).rowcount


def admit_member(
    session: Session,
    *,
    organization_id: uuid.UUID,
    email: str,
    email_normalized: str,
    registration: CleanRegistration,
    unit_id: uuid.UUID | None,
    referred_by_id: uuid.UUID | None,
    adhesion_required: bool,
    via: str,
    now: datetime,
    rejoining: Member | None = None,
) -> Member:
    """A new member (or a deactivated one back), role USER: active, or an applicant whose
    application is submitted (adhesion New -> Pending) when adhesion is required.

    Flushes, so a concurrent registration of the same address fails here on the unique key.
    """
    status = MemberStatus.APPLICANT if adhesion_required else MemberStatus.ACTIVE
    adhesion = AdhesionStatus.PENDING.value if adhesion_required else None
    if rejoining is None:
        member = Member(
            id=new_id(),
            organization_id=organization_id,
            email=email,
            email_normalized=email_normalized,
            role=Role.USER.name,
            adhesion_reason="",
        )
        session.add(member)
        action = "member.registered"
    else:
        member = rejoining
        action = "member.rejoined"
    # A former admin coming back through an invitation comes back as a member: roles are
    # given on the desktop, never by a web form.
    member.role = Role.USER.name
    member.first_name = registration.first_name
    member.last_name = registration.last_name
    member.password_hash = registration.password_hash
    member.unit_id = unit_id
    member.referred_by_id = referred_by_id
    member.status = status.value
    member.adhesion_status = adhesion
    member.adhesion_reason = ""
    member.joined_at = now
    session.flush()
    audit.record(
        session, organization_id=organization_id, actor_id=member.id, action=action,
        entity_type="member", entity_id=member.id,
        after={"email": email, "status": status.value, "unit": unit_id,
               "referred_by": referred_by_id, "via": via},
    )
    if adhesion_required:
        audit.record(
            session, organization_id=organization_id, actor_id=member.id,
            action="adhesion.submitted", entity_type="member", entity_id=member.id,
            before={"adhesion_status": AdhesionStatus.NEW.value},
            after={"adhesion_status": AdhesionStatus.PENDING.value},
        )
    return member


def close_invitations(
    session: Session,
    invitations: Sequence[LiveInvitation],
    *,
    organization_id: uuid.UUID,
    member_id: uuid.UUID | None,
    via: AcceptedVia,
    now: datetime,
) -> list[LiveInvitation]:
    """Mark these live invitations accepted (by `via`); returns those it closed.

    Conditional on the status, so one a sender or another registration changed meanwhile is
    left alone.
    """
    closed: list[LiveInvitation] = []
    for live in invitations:
        result = session.execute(
            update(Invitation)
            .where(Invitation.id == live.id, Invitation.status.in_(LINK_STATUSES))
            .values(
                status=InvitationStatus.ACCEPTED.value,
                accepted_at=now,
                accepted_via=via.value,
                accepted_member_id=member_id,
                version=Invitation.version + 1,
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        if rowcount(result) == 1:
            closed.append(live)
            audit.record(
                session, organization_id=organization_id, actor_id=member_id,
                action="invitation.accepted_elsewhere", entity_type="invitation",
                entity_id=live.id, before={"status": "sent"},
                after={"status": "accepted", "accepted_via": via.value, "member": member_id},
            )
    return closed


def event_guest_credits(
    session: Session, *, organization_id: uuid.UUID, email_normalized: str, member_id: uuid.UUID
) -> list[Credit]:
    """Link the person's event-guest registrations to their member row, and credit the members
    who invited them to those events (oldest first)."""
    rows = session.execute(
        select(EventGuest, Invitation.inviter_id)
        .outerjoin(Invitation, Invitation.id == EventGuest.invitation_id)
        .where(EventGuest.organization_id == organization_id,
               EventGuest.email_normalized == email_normalized)
        .order_by(EventGuest.registered_at)
    ).all()
    credits: list[Credit] = []
    for guest, inviter_id in rows:
        if guest.member_id is None:
            guest.member_id = member_id
        if inviter_id is not None:
            credits.append(Credit(inviter_id, guest.invitation_id))
    return credits
