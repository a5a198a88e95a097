"""Adhesion: membership applications, and the decisions HR and admins take on them.

When adhesion is required, a person who registers becomes an applicant (member status
`applicant`) whose application is submitted at once (adhesion `new` -> `pending`). HR and admins
within their scope then approve (the member becomes active and their pending referrals are
completed), reject (with a reason), or return it to `draft` with a reason (the applicant is to
correct something; `resubmit` moves it back to `pending`).

Scope: local roles (HR_LOCAL, ADMIN_LOCAL) decide on applicants of their own unit, tenant roles
(HR_TENANT, ADMIN_TENANT) on everyone; members (USER) on nobody. Applicants without a unit
(public registrations) are for tenant roles. Every decision writes an audit row.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.orm import aliased

from invite_desk.services import audit, referrals
from invite_desk.services.admin import notifications
from invite_desk.services.concurrency import changed_meanwhile
from invite_desk.services.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from invite_desk.services.models import AdhesionStatus, Member, MemberStatus, Unit, utcnow
from invite_desk.services.operator import Operator, refreshed
from invite_desk.services.permissions import Action, ScopeLevel, Target, require, scope_of
from invite_desk.services.roles import Role
from invite_desk.services.sync import journal
from invite_desk.services.uow import UnitOfWork

REASON_MAX = 2000
OPEN_STATUSES = (AdhesionStatus.NEW, AdhesionStatus.PENDING, AdhesionStatus.DRAFT)
STATUS_LABELS = {
    AdhesionStatus.NEW: "New",
    AdhesionStatus.PENDING: "Pending",
    AdhesionStatus.APPROVED: "Approved",
    AdhesionStatus.REJECTED: "Rejected",
    AdhesionStatus.DRAFT: "Back to draft",
}
LIST_ACTION = "see membership applications"


@dataclass(frozen=True)
class ApplicationRow:
    """One membership application (an applicant, or a member who was one)."""

    member_id: uuid.UUID
    email: str
    first_name: str
    last_name: str
    unit_id: uuid.UUID | None
    unit_name: str
    status: AdhesionStatus
    member_status: MemberStatus
    reason: str  # why it was rejected or returned to draft
    submitted_at: datetime  # when the person registered
    updated_at: datetime
    referred_by_id: uuid.UUID | None
    referred_by_name: str
    version: int  # pass back as expected_version to refuse a decision on a stale row

    @property
    def name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip() or self.email

    @property
    def status_label(self) -> str:
        return STATUS_LABELS[self.status]

    @property
    def is_open(self) -> bool:
        """Still awaiting a decision (new, pending, or back to draft)."""
        return self.status in OPEN_STATUSES


_Referrer = aliased(Member, name="referrer")


def _base_query() -> Select[Member, str, Member]:  # unit name and referrer may be NULL
    return (
        select(Member, Unit.name, _Referrer)
        .outerjoin(Unit, Unit.id == Member.unit_id)
        .outerjoin(_Referrer, _Referrer.id == Member.referred_by_id)
        .where(Member.adhesion_status.is_not(None))
    )


def _row(member: Member, unit_name: str | None, referrer: Member | None) -> ApplicationRow:
    return ApplicationRow(
        member_id=member.id,
        email=member.email,
        first_name=member.first_name,
        last_name=member.last_name,
        unit_id=member.unit_id,
        unit_name=unit_name or "",
        status=AdhesionStatus(member.adhesion_status or AdhesionStatus.NEW.value),
        member_status=MemberStatus(member.status),
        reason=member.adhesion_reason,
        submitted_at=member.joined_at,
        updated_at=member.updated_at,
        referred_by_id=member.referred_by_id,
        referred_by_name=referrer.display_name if referrer is not None else "",
        version=member.version,
    )


def _require_reviewer(operator: Operator) -> None:
    if operator.role < Role.HR_LOCAL:
        raise PermissionDenied(LIST_ACTION, Role.HR_LOCAL.name)


def _scope_condition(operator: Operator) -> ColumnElement[bool] | None:
    """None: the whole organization."""
    scope = scope_of(operator)
    if scope.level is ScopeLevel.ORGANIZATION:
        return None
    if scope.unit_id is None:
        return Member.id.is_(None)  # a local role without a unit reviews nobody
    return Member.unit_id == scope.unit_id


def list_applications(
    uow: UnitOfWork,
    operator: Operator,
    status: AdhesionStatus | None = None,
    *,
    limit: int | None = None,
) -> list[ApplicationRow]:
    """Applications in the operator's scope, oldest first; all statuses when `status` is None.
    Raises PermissionDenied for members (USER)."""
    _require_reviewer(operator)
    with uow:
        operator = refreshed(uow.session, operator)
        _require_reviewer(operator)
        stmt = _base_query().where(Member.organization_id == operator.organization_id)
        condition = _scope_condition(operator)
        if condition is not None:
            stmt = stmt.where(condition)
        if status is not None:
            stmt = stmt.where(Member.adhesion_status == status.value)
        stmt = stmt.order_by(Member.joined_at, Member.id)
        if limit is not None:
            stmt = stmt.limit(limit)
        return [_row(m, unit_name, ref) for m, unit_name, ref in uow.session.execute(stmt)]


def count_open_applications(uow: UnitOfWork, operator: Operator) -> int:
    """Applications awaiting a decision in the operator's scope (0 for members)."""
    with uow:
        operator = refreshed(uow.session, operator)
        if operator.role < Role.HR_LOCAL:
            return 0
        stmt = select(func.count()).select_from(Member).where(
            Member.organization_id == operator.organization_id,
            Member.adhesion_status.in_([s.value for s in OPEN_STATUSES]),
        )
        condition = _scope_condition(operator)
        if condition is not None:
            stmt = stmt.where(condition)
        return int(uow.session.scalar(stmt) or 0)


def get_application(uow: UnitOfWork, operator: Operator, member_id: uuid.UUID) -> ApplicationRow:
    _require_reviewer(operator)
    with uow:
        operator = refreshed(uow.session, operator)
        found = uow.session.execute(
            _base_query().where(
                Member.id == member_id, Member.organization_id == operator.organization_id
            )
        ).first()
        if found is None:
            raise NotFound("This application no longer exists.")
        member, unit_name, referrer = found
        require(operator, Action.APPROVE_APPLICATION, target=Target(unit_id=member.unit_id))
        return _row(member, unit_name, referrer)


def _clean_reason(reason: str, *, required: bool) -> str:
    text = reason.strip()
    if required and not text:
        raise ValidationFailed({"reason": "Please give a reason; the applicant will see it."})
    if len(text) > REASON_MAX:
        raise ValidationFailed({"reason": f"The reason must be at most {REASON_MAX:,} characters."})
    return text


def _decide(
    uow: UnitOfWork,
    operator: Operator,
    member_id: uuid.UUID,
    *,
    allowed_from: tuple[AdhesionStatus, ...],
    to: AdhesionStatus,
    reason: str,
    expected_version: int | None,
) -> ApplicationRow:
    _require_reviewer(operator)
    now = utcnow()
    # Two reviewers deciding at once: the second one's write finds the row changed (stale
    # version, or its referrals flushed by a query) and gets the usual Conflict.
    with uow, changed_meanwhile():
        session = uow.session
        operator = refreshed(session, operator)
        member = session.get(Member, member_id)
        if (
            member is None
            or member.organization_id != operator.organization_id
            or member.adhesion_status is None
        ):
            raise NotFound("This application no longer exists.")
        require(operator, Action.APPROVE_APPLICATION, target=Target(unit_id=member.unit_id))
        current = AdhesionStatus(member.adhesion_status)
        if expected_version is not None and member.version != expected_version:
            raise Conflict(
                f"{member.display_name}'s application changed since you opened it (it is now "
                f"{STATUS_LABELS[current].lower()}). Reload to see the latest state."
            )
        if current not in allowed_from:
            raise Conflict(
                f"{member.display_name}'s application is {STATUS_LABELS[current].lower()}; "
                f"it cannot be moved to {STATUS_LABELS[to].lower()}."
            )
        before = {"adhesion_status": current.value, "status": member.status,
                  "reason": member.adhesion_reason}
        member.adhesion_status = to.value
        member.adhesion_reason = reason
        if to is AdhesionStatus.APPROVED:
            member.status = MemberStatus.ACTIVE.value
        elif to is AdhesionStatus.REJECTED:
            member.status = MemberStatus.REJECTED.value
        else:
            member.status = MemberStatus.APPLICANT.value
        completed = 0
        if to is AdhesionStatus.APPROVED:
            completed = referrals.complete_pending(
                session, referee_id=member.id, actor_id=operator.member_id, at=now
            )
        after: dict[str, object] = {"adhesion_status": to.value, "status": member.status,
                                    "reason": reason}
        if to is AdhesionStatus.REJECTED:
            declined = referrals.decline_pending(
                session, referee_id=member.id, actor_id=operator.member_id, at=now
            )
            if declined:
                after["referrals_declined"] = declined
        if completed:
            after["referrals_completed"] = completed
        audit.record(
            session, organization_id=operator.organization_id, actor_id=operator.member_id,
            action=f"adhesion.{_ACTION_NAMES[to]}", entity_type="member", entity_id=member.id,
            before=before, after=after,
        )
        if to in (AdhesionStatus.APPROVED, AdhesionStatus.REJECTED):
            # Issue 11: the applicant's email, queued in this transaction (sent exactly once).
            unit = session.get(Unit, member.unit_id) if member.unit_id else None
            notifications.notify_application_decision(
                session, member, approved=to is AdhesionStatus.APPROVED, reason=reason,
                unit_name=unit.name if unit is not None else "")
        with journal.command("application.decide", f"{_ACTION_NAMES[to].replace('_', ' ')} "
                             f"the application of {member.display_name}".capitalize()):
            uow.commit()
    return get_application(uow, operator, member_id)


_ACTION_NAMES = {
    AdhesionStatus.APPROVED: "approved",
    AdhesionStatus.REJECTED: "rejected",
    AdhesionStatus.DRAFT: "returned_to_draft",
    AdhesionStatus.PENDING: "resubmitted",
}


def approve(
    uow: UnitOfWork, operator: Operator, member_id: uuid.UUID, *,
    expected_version: int | None = None,
) -> ApplicationRow:
    """Approve: the applicant becomes an active member; their pending referrals are completed."""
    return _decide(uow, operator, member_id, allowed_from=OPEN_STATUSES,
                   to=AdhesionStatus.APPROVED, reason="", expected_version=expected_version)


def reject(
    uow: UnitOfWork, operator: Operator, member_id: uuid.UUID, reason: str, *,
    expected_version: int | None = None,
) -> ApplicationRow:
    """Reject, with a reason. The member row stays (status `rejected`): nothing is deleted."""
    return _decide(uow, operator, member_id, allowed_from=OPEN_STATUSES,
                   to=AdhesionStatus.REJECTED, reason=_clean_reason(reason, required=True),
                   expected_version=expected_version)


def return_to_draft(
    uow: UnitOfWork, operator: Operator, member_id: uuid.UUID, reason: str, *,
    expected_version: int | None = None,
) -> ApplicationRow:
    """Send a submitted application back to draft, with a reason saying what to correct."""
    return _decide(uow, operator, member_id,
                   allowed_from=(AdhesionStatus.NEW, AdhesionStatus.PENDING),
                   to=AdhesionStatus.DRAFT, reason=_clean_reason(reason, required=True),
                   expected_version=expected_version)


def resubmit(
    uow: UnitOfWork, operator: Operator, member_id: uuid.UUID, *,
    expected_version: int | None = None,
) -> ApplicationRow:
    """Move a draft application back to pending (on the applicant's behalf, once corrected)."""
    return _decide(uow, operator, member_id, allowed_from=(AdhesionStatus.DRAFT,),
                   to=AdhesionStatus.PENDING, reason="", expected_version=expected_version)
