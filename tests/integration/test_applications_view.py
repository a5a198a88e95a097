"""The Applications page's use cases, now in the services: the snapshot, one application's
details and decisions on several applications, with the adhesion service's scope checks."""

from __future__ import annotations

import uuid

import pytest

from invite_desk.services import adhesion, applications_view, compose_view, settings
from invite_desk.services.applications_view import Verdict
from invite_desk.services.errors import Conflict, PermissionDenied
from invite_desk.services.models import AdhesionStatus
from invite_desk.services.operator import Operator
from invite_desk.services.roles import Role
from invite_desk.services.uow import UnitOfWork
from tests.conftest import MakeOperator, MakeUnit
from tests.integration.test_adhesion import apply
from tests.registration_fixtures import set_policy


@pytest.fixture
def north(make_unit: MakeUnit) -> uuid.UUID:
    return make_unit("North")


@pytest.fixture
def applicants(uow: UnitOfWork, admin: Operator, make_operator: MakeOperator,
               north: uuid.UUID, make_unit: MakeUnit) -> dict[str, uuid.UUID]:
    set_policy(uow, admin, adhesion_required=True)
    south = make_unit("South")
    return {
        "nora": apply(uow, make_operator(Role.USER, north), "nora@example.org"),
        "sam": apply(uow, make_operator(Role.USER, south), "sam@example.org"),
    }


def test_the_snapshot_follows_the_reviewer_s_scope_and_the_policy(
    uow: UnitOfWork, admin: Operator, make_operator: MakeOperator, north: uuid.UUID,
    applicants: dict[str, uuid.UUID],
) -> None:
    everything = applications_view.applications_snapshot(uow, admin)
    assert [r.email for r in everything.rows] == ["nora@example.org", "sam@example.org"]
    assert everything.adhesion_required is True
    local = applications_view.applications_snapshot(uow, make_operator(Role.HR_LOCAL, north))
    assert [r.email for r in local.rows] == ["nora@example.org"]
    with pytest.raises(PermissionDenied):
        applications_view.applications_snapshot(uow, make_operator(Role.USER, north))


def test_details_show_the_referrer_and_the_history_and_respect_the_scope(
    uow: UnitOfWork, admin: Operator, make_operator: MakeOperator, north: uuid.UUID,
    applicants: dict[str, uuid.UUID],
) -> None:
    adhesion.return_to_draft(uow, admin, applicants["nora"], "Add  your\naddress")
    details = applications_view.application_details(uow, admin, applicants["nora"])
    assert details.row.email == "nora@example.org"
    assert len(details.referrals) == 1
    texts = [line.text for line in details.history]
    assert texts[0] == "Registered through an invitation"
    assert texts[-1].startswith("Returned to draft by ") and texts[-1].endswith(
        "“Add your address”")
    with pytest.raises(PermissionDenied):  # Sam is in South: not this reviewer's business
        applications_view.application_details(
            uow, make_operator(Role.HR_LOCAL, north), applicants["sam"])


def test_decisions_go_row_by_row_and_a_stale_row_fails_alone(
    uow: UnitOfWork, admin: Operator, applicants: dict[str, uuid.UUID],
) -> None:
    rows = adhesion.list_applications(uow, admin)
    adhesion.return_to_draft(uow, admin, rows[1].member_id, "Changed meanwhile")  # now stale
    outcome = applications_view.decide_applications(uow, admin, Verdict.APPROVE, rows)
    assert [d.row.email for d in outcome.decided] == ["nora@example.org"]
    assert outcome.decided[0].row.status is AdhesionStatus.APPROVED
    assert len(outcome.decided[0].completed_by) == 1  # the referral of her inviter completed
    assert [name for name, _ in outcome.failed] == [rows[1].name]
    assert isinstance(outcome.failed[0][1], Conflict)


def test_a_demoted_reviewer_decides_nothing(
    uow: UnitOfWork, admin: Operator, make_operator: MakeOperator, north: uuid.UUID,
    applicants: dict[str, uuid.UUID],
) -> None:
    reviewer = make_operator(Role.HR_LOCAL, north)
    rows = adhesion.list_applications(uow, reviewer)
    outcome = applications_view.decide_applications(uow, make_operator(Role.USER, north),
                                                    Verdict.REJECT, rows, "No")
    assert outcome.decided == () and len(outcome.failed) == 1
    assert isinstance(outcome.failed[0][1], PermissionDenied)
    assert adhesion.get_application(uow, admin, rows[0].member_id).status is not (
        AdhesionStatus.REJECTED)


def test_the_composer_state_reads_policy_branding_events_and_mail_in_one_go(
    uow: UnitOfWork, admin: Operator, make_operator: MakeOperator,
) -> None:
    settings.update_settings(uow, admin, {"invitation_expiry_days": 9})
    member = make_operator(Role.USER)
    state = compose_view.compose_state(uow, member)
    assert state.policy.invitation_expiry_days == 9
    assert state.organization.name == "Harbour Rowing Club"
    assert state.operator.member_id == member.member_id and state.operator.role is Role.USER
    assert state.mail.configured is False and state.events == ()
