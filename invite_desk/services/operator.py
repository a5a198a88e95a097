"""The signed-in operator, as every service receives it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime

from sqlalchemy.orm import Session

from invite_desk.services.errors import PermissionDenied
from invite_desk.services.models import Member, MemberStatus, Unit
from invite_desk.services.roles import Role


@dataclass(frozen=True)
class Operator:
    member_id: uuid.UUID
    organization_id: uuid.UUID
    email: str
    name: str
    role: Role
    unit_id: uuid.UUID | None
    unit_name: str
    # When this session signed in (auth.sign_in); a sign-in revoked later ends it. Not part of
    # who the operator is: two sign-ins of the same person compare equal.
    signed_in_at: datetime | None = field(default=None, compare=False)

    @property
    def scope_label(self) -> str:
        if self.role.is_tenant_wide:
            return "whole organization"
        if self.role.is_local:
            return self.unit_name or "no unit"
        return "own invitations"


def operator_for(session: Session, member: Member) -> Operator:
    unit_name = ""
    if member.unit_id is not None:
        unit = session.get(Unit, member.unit_id)
        unit_name = unit.name if unit is not None else ""
    return Operator(
        member_id=member.id,
        organization_id=member.organization_id,
        email=member.email,
        name=member.display_name,
        role=Role.parse(member.role),
        unit_id=member.unit_id,
        unit_name=unit_name,
    )


def refreshed(session: Session, operator: Operator) -> Operator:
    """The operator as the database says now: a role lowered or an account deactivated since
    sign-in takes effect at once, not at the next sign-in."""
    member = session.get(Member, operator.member_id)
    if member is None or member.status != MemberStatus.ACTIVE.value:
        raise PermissionDenied(
            "do this", operator.role.name, detail="Your account is no longer active; sign in again."
        )
    revoked = member.sign_in_revoked_at
    if revoked is not None and (operator.signed_in_at is None or operator.signed_in_at < revoked):
        raise PermissionDenied(
            "do this", operator.role.name,
            detail="Your sign-in was revoked by an administrator; ask them for a new one.",
        )
    return replace(operator_for(session, member), signed_in_at=operator.signed_in_at)
