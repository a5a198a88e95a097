"""Adhesion services for the Applications page: who sees which applications, and approve,
reject, back to draft and resubmit with their permission checks, audit rows and referrals."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from invite_desk.services import adhesion
from invite_desk.services.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from invite_desk.services.models import (
    AdhesionStatus,
    AuditLog,
    Member,
    MemberStatus,
    ReferralStatus,
)
from invite_desk.services.operator import Operator
from invite_desk.services.registration.joining import register_with_invitation
from invite_desk.services.registration.public import register_publicly
from invite_desk.services.roles import Role
from invite_desk.services.uow import UnitOfWork
from tests.conftest import MakeOperator, MakeUnit
from tests.registration_fixtures import form, invite, referral_rows, set_policy


@pytest.fixture
def units(make_unit: MakeUnit) -> tuple[uuid.UUID, uuid.UUID]:
    return make_unit("North"), make_unit("South")


def apply(uow: UnitOfWork, inviter: Operator, email: str) -> uuid.UUID:
    """Someone invited by `inviter` registers while adhesion is required."""
    sent = invite(uow, inviter, email)
    result = register_with_invitation(uow, sent.token, form(email.split("@")[0].title()))
    assert result.registered and result.application_pending and result.member_id is not None
    return result.member_id


@pytest.fixture
def applicants(
    uow: UnitOfWork, admin: Operator, make_operator: MakeOperator,
    units: tuple[uuid.UUID, uuid.UUID],
) -> dict[str, uuid.UUID]:
    """One applicant in North, one in South (each invited by a member of that unit), one
    without a unit (public registration)."""
    set_policy(uow, admin, adhesion_required=True)
    north, south = units
    ids = {
        "north": apply(uow, make_operator(Role.USER, north), "nora@example.org"),
        "south": apply(uow, make_operator(Role.USER, south), "sam@example.org"),
    }
    register_publicly(uow, admin.organization_id, form("Pat", "Public", email="pat@example.org"))
    with uow:
        ids["public"] = uow.session.scalars(
            select(Member.id).where(Member.email_normalized == "pat@example.org")).one()
    return ids


def names(rows: list[adhesion.ApplicationRow]) -> list[str]:
    return [row.email for row in rows]


def test_applications_are_listed_within_each_role_s_scope(
    uow: UnitOfWork, admin: Operator, make_operator: MakeOperator,
    units: tuple[uuid.UUID, uuid.UUID], applicants: dict[str, uuid.UUID],
) -> None:
    north, _ = units
    everyone = ["nora@example.org", "sam@example.org", "pat@example.org"]
    assert names(adhesion.list_applications(uow, admin)) == everyone
    assert names(adhesion.list_applications(uow, make_operator(Role.HR_TENANT))) == everyone
    assert names(adhesion.list_applications(uow, make_operator(Role.HR_LOCAL, north))) == [
        "nora@example.org"]
    assert names(adhesion.list_applications(uow, make_operator(Role.ADMIN_LOCAL, north))) == [
        "nora@example.org"]
    assert adhesion.list_applications(uow, make_operator(Role.HR_LOCAL)) == []  # no unit
    with pytest.raises(PermissionDenied) as denied:
        adhesion.list_applications(uow, make_operator(Role.USER, north))
    assert "HR_LOCAL" in str(denied.value)
    assert adhesion.count_open_applications(uow, admin) == 3
    assert adhesion.count_open_applications(uow, make_operator(Role.USER)) == 0


def test_a_row_carries_what_the_page_shows(
    uow: UnitOfWork, admin: Operator, units: tuple[uuid.UUID, uuid.UUID],
    applicants: dict[str, uuid.UUID],
) -> None:
    row = adhesion.get_application(uow, admin, applicants["north"])
    assert row.email == "nora@example.org" and row.name == "Nora Martin"
    assert row.unit_id == units[0] and row.unit_name == "North"
    assert row.status is AdhesionStatus.PENDING and row.status_label == "Pending" and row.is_open
    assert row.member_status is MemberStatus.APPLICANT
    assert row.referred_by_name == "User Tester" and row.reason == ""
    assert adhesion.list_applications(uow, admin, AdhesionStatus.APPROVED) == []


def test_approval_activates_the_member_and_completes_the_referral(
    uow: UnitOfWork, admin: Operator, make_operator: MakeOperator,
    units: tuple[uuid.UUID, uuid.UUID], applicants: dict[str, uuid.UUID],
) -> None:
    hr_north = make_operator(Role.HR_LOCAL, units[0])
    member_id = applicants["north"]
    assert [r.status for r in referral_rows(uow, member_id)] == [ReferralStatus.PENDING.value]

    row = adhesion.approve(uow, hr_north, member_id)

    assert row.status is AdhesionStatus.APPROVED and row.member_status is MemberStatus.ACTIVE
    referral = referral_rows(uow, member_id)[0]
    assert referral.status == ReferralStatus.COMPLETED.value and referral.completed_at is not None
    with uow:
        entry = uow.session.scalars(select(AuditLog).where(
            AuditLog.action == "adhesion.approved", AuditLog.entity_id == member_id)).one()
        assert entry.actor_id == hr_north.member_id
        assert '"pending"' in entry.before_json and '"approved"' in entry.after_json
    with pytest.raises(Conflict):
        adhesion.reject(uow, admin, member_id, "too late")
    assert adhesion.count_open_applications(uow, hr_north) == 0


@pytest.mark.parametrize(
    ("role", "unit_index", "allowed"),
    [
        (Role.USER, 0, False),
        (Role.HR_LOCAL, 0, True),
        (Role.HR_LOCAL, 1, False),
        (Role.ADMIN_LOCAL, 0, True),
        (Role.ADMIN_LOCAL, 1, False),
        (Role.HR_TENANT, 1, True),
        (Role.ADMIN_TENANT, None, True),
    ],
)
def test_who_may_decide_on_an_applicant_of_the_north_unit(
    uow: UnitOfWork, make_operator: MakeOperator, units: tuple[uuid.UUID, uuid.UUID],
    applicants: dict[str, uuid.UUID], role: Role, unit_index: int | None, allowed: bool,
) -> None:
    operator = make_operator(role, units[unit_index] if unit_index is not None else None)
    member_id = applicants["north"]
    actions = [
        lambda: adhesion.return_to_draft(uow, operator, member_id, "Please add your club number"),
        lambda: adhesion.resubmit(uow, operator, member_id),
        lambda: adhesion.reject(uow, operator, member_id, "Not a rower"),
    ]
    for action in actions:
        if allowed:
            action()
        else:
            with pytest.raises(PermissionDenied):
                action()
    with uow:
        member = uow.session.get(Member, member_id)
        assert member is not None
        expected = AdhesionStatus.REJECTED if allowed else AdhesionStatus.PENDING
        assert member.adhesion_status == expected.value


def test_public_applicants_without_a_unit_are_for_tenant_roles(
    uow: UnitOfWork, make_operator: MakeOperator, units: tuple[uuid.UUID, uuid.UUID],
    applicants: dict[str, uuid.UUID],
) -> None:
    with pytest.raises(PermissionDenied) as denied:
        adhesion.approve(uow, make_operator(Role.ADMIN_LOCAL, units[0]), applicants["public"])
    assert "another unit" in str(denied.value)
    row = adhesion.approve(uow, make_operator(Role.HR_TENANT), applicants["public"])
    assert row.member_status is MemberStatus.ACTIVE


def test_rejection_keeps_the_row_with_its_reason(
    uow: UnitOfWork, admin: Operator, applicants: dict[str, uuid.UUID]
) -> None:
    member_id = applicants["south"]
    with pytest.raises(ValidationFailed):
        adhesion.reject(uow, admin, member_id, "   ")
    row = adhesion.reject(uow, admin, member_id, "  We only accept rowers from the coast.  ")
    assert row.status is AdhesionStatus.REJECTED and row.member_status is MemberStatus.REJECTED
    assert row.reason == "We only accept rowers from the coast."
    assert not row.is_open
    # The referral will never complete: it is declined, no longer counted as pending.
    assert [r.status for r in referral_rows(uow, member_id)] == [ReferralStatus.DECLINED.value]
    with pytest.raises(Conflict):
        adhesion.approve(uow, admin, member_id)


def test_back_to_draft_with_a_reason_then_resubmitted_then_approved(
    uow: UnitOfWork, admin: Operator, applicants: dict[str, uuid.UUID]
) -> None:
    member_id = applicants["north"]
    with pytest.raises(ValidationFailed):
        adhesion.return_to_draft(uow, admin, member_id, "")
    draft = adhesion.return_to_draft(uow, admin, member_id, "Your last name is missing")
    assert draft.status is AdhesionStatus.DRAFT and draft.reason == "Your last name is missing"
    assert draft.member_status is MemberStatus.APPLICANT and draft.is_open
    with pytest.raises(Conflict):
        adhesion.return_to_draft(uow, admin, member_id, "again")
    assert adhesion.resubmit(uow, admin, member_id).status is AdhesionStatus.PENDING
    with pytest.raises(Conflict):
        adhesion.resubmit(uow, admin, member_id)
    assert adhesion.approve(uow, admin, member_id).member_status is MemberStatus.ACTIVE
    with uow:
        actions = list(uow.session.scalars(
            select(AuditLog.action).where(AuditLog.entity_id == member_id,
                                          AuditLog.action.like("adhesion.%"))
            .order_by(AuditLog.at)))
    assert actions == ["adhesion.submitted", "adhesion.returned_to_draft",
                       "adhesion.resubmitted", "adhesion.approved"]


def test_a_decision_on_a_stale_row_is_refused(
    uow: UnitOfWork, admin: Operator, make_operator: MakeOperator,
    applicants: dict[str, uuid.UUID],
) -> None:
    member_id = applicants["north"]
    seen = adhesion.get_application(uow, admin, member_id)
    adhesion.return_to_draft(uow, make_operator(Role.HR_TENANT), member_id, "Missing details")
    with pytest.raises(Conflict) as conflict:
        adhesion.approve(uow, admin, member_id, expected_version=seen.version)
    assert "back to draft" in str(conflict.value)


def test_a_demoted_operator_can_no_longer_decide(
    uow: UnitOfWork, make_operator: MakeOperator, applicants: dict[str, uuid.UUID]
) -> None:
    hr = make_operator(Role.HR_TENANT)
    with uow:
        row = uow.session.get(Member, hr.member_id)
        assert row is not None
        row.role = Role.USER.name
        uow.commit()
    with pytest.raises(PermissionDenied):
        adhesion.approve(uow, hr, applicants["north"])
    with pytest.raises(PermissionDenied):
        adhesion.list_applications(uow, hr)


def test_members_who_never_applied_and_unknown_ids_are_not_applications(
    uow: UnitOfWork, admin: Operator, applicants: dict[str, uuid.UUID]
) -> None:
    with pytest.raises(NotFound):
        adhesion.approve(uow, admin, admin.member_id)
    with pytest.raises(NotFound):
        adhesion.get_application(uow, admin, uuid.uuid4())


def test_without_adhesion_new_members_are_active_and_never_listed(
    uow: UnitOfWork, admin: Operator
) -> None:
    sent = invite(uow, admin, "ada.lovelace@example.org")
    result = register_with_invitation(uow, sent.token, form("Ada", "Lovelace"))
    assert result.registered and not result.application_pending
    assert adhesion.list_applications(uow, admin) == []
