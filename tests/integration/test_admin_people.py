"""Issue 11: people: role, unit and status within the policy, the last organization admin
(also under two concurrent demotions, on every backend), sign-ins, bulk changes, audit."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select

from invite_desk.services import auth
from invite_desk.services.admin import people
from invite_desk.services.admin.people import KEEP, SignInState
from invite_desk.services.auth import PasswordChangeRequired
from invite_desk.services.errors import (
    AuthenticationFailed,
    Conflict,
    PermissionDenied,
    ValidationFailed,
)
from invite_desk.services.models import (
    AuditLog,
    Member,
    MemberStatus,
    OutgoingMail,
    SignInLink,
    Unit,
    utcnow,
)
from invite_desk.services.operator import Operator
from invite_desk.services.roles import Role
from invite_desk.services.uow import UnitOfWork
from tests.conftest import ADMIN_PASSWORD, MakeOperator, MakeUnit


def _audit(uow: UnitOfWork, entity_id: uuid.UUID) -> list[AuditLog]:
    with uow:
        rows = list(uow.session.scalars(select(AuditLog).where(AuditLog.entity_id == entity_id)
                                        .order_by(AuditLog.at)))
        uow.session.expunge_all()
        return rows


def test_an_organization_admin_changes_role_unit_and_status_with_an_audit_row(
        uow: UnitOfWork, admin: Operator, make_unit: MakeUnit,
        make_operator: MakeOperator) -> None:
    north, south = make_unit("North"), make_unit("South")
    member = make_operator(Role.USER, north)
    view = people.update_person(uow, admin, member.member_id, role=Role.HR_LOCAL,
                                unit_id=south)
    assert (view.role, view.unit_id, view.unit_name) == (Role.HR_LOCAL, south, "South")
    view = people.update_person(uow, admin, member.member_id, status="lapsed",
                                expected_version=view.version)
    assert view.status == "lapsed"
    rows = _audit(uow, member.member_id)
    assert [r.action for r in rows] == ["member.update", "member.update"]
    import json
    first = rows[0]
    assert json.loads(first.before_json) == {"role": "USER", "unit_id": str(north),
                                             "status": "active"}
    assert json.loads(first.after_json) == {"role": "HR_LOCAL", "unit_id": str(south),
                                            "status": "active"}
    assert first.actor_id == admin.member_id
    # Never deleted: resigned keeps the row.
    people.update_person(uow, admin, member.member_id, status="resigned")
    with uow:
        assert uow.session.get(Member, member.member_id) is not None


def test_a_stale_version_is_a_conflict(uow: UnitOfWork, admin: Operator,
                                       make_operator: MakeOperator) -> None:
    member = make_operator(Role.USER)
    view = people.get_person(uow, admin, member.member_id)
    people.update_person(uow, admin, member.member_id, role=Role.HR_TENANT)
    with pytest.raises(Conflict):
        people.update_person(uow, admin, member.member_id, role=Role.USER,
                             expected_version=view.version)


def test_unknown_status_and_applicants_are_refused(uow: UnitOfWork, admin: Operator,
                                                   make_operator: MakeOperator) -> None:
    member = make_operator(Role.USER)
    with pytest.raises(ValidationFailed):
        people.update_person(uow, admin, member.member_id, status="deleted")
    with uow:
        uow.session.get(Member, member.member_id).status = MemberStatus.APPLICANT.value  # type: ignore[union-attr]
        uow.commit()
    with pytest.raises(Conflict, match="applicant"):
        people.update_person(uow, admin, member.member_id, status="active")


def test_a_local_admin_edits_only_their_unit_and_never_above_their_role(
        uow: UnitOfWork, admin: Operator, make_unit: MakeUnit,
        make_operator: MakeOperator) -> None:
    north, south = make_unit("North"), make_unit("South")
    local = make_operator(Role.ADMIN_LOCAL, north)
    mine = make_operator(Role.USER, north)
    theirs = make_operator(Role.USER, south)
    boss = make_operator(Role.ADMIN_TENANT, north)

    assert people.update_person(uow, local, mine.member_id, role=Role.HR_LOCAL).role \
        is Role.HR_LOCAL
    assert people.update_person(uow, local, mine.member_id, role=Role.ADMIN_LOCAL).role \
        is Role.ADMIN_LOCAL
    with pytest.raises(PermissionDenied, match="cannot grant ADMIN_TENANT"):
        people.update_person(uow, local, mine.member_id, role=Role.ADMIN_TENANT)
    with pytest.raises(PermissionDenied, match="not in your unit"):
        people.update_person(uow, local, theirs.member_id, role=Role.HR_LOCAL)
    with pytest.raises(PermissionDenied, match="above your own role"):
        people.update_person(uow, local, boss.member_id, status="lapsed")
    with pytest.raises(PermissionDenied, match="another unit"):
        people.update_person(uow, local, mine.member_id, unit_id=south)

    policy = people.edit_policy(uow, local, mine.member_id)
    assert policy.can_edit and not policy.can_change_unit
    assert Role.ADMIN_TENANT not in policy.grantable_roles
    assert max(policy.grantable_roles) is Role.ADMIN_LOCAL
    assert not people.edit_policy(uow, local, boss.member_id).can_edit
    assert not people.edit_policy(uow, local, theirs.member_id).can_edit


@pytest.mark.parametrize("role", [Role.USER, Role.HR_LOCAL, Role.HR_TENANT])
def test_roles_below_local_admin_cannot_change_anyone(
        uow: UnitOfWork, admin: Operator, make_unit: MakeUnit, make_operator: MakeOperator,
        role: Role) -> None:
    unit = make_unit("North")
    operator = make_operator(role, unit)
    member = make_operator(Role.USER, unit)
    with pytest.raises(PermissionDenied, match="ADMIN_LOCAL"):
        people.update_person(uow, operator, member.member_id, role=Role.HR_LOCAL)
    with pytest.raises(PermissionDenied):
        people.issue_one_time_password(uow, operator, member.member_id)


def test_the_last_organization_admin_cannot_be_demoted_or_deactivated(
        uow: UnitOfWork, admin: Operator, make_operator: MakeOperator) -> None:
    with pytest.raises(Conflict, match="last active organization admin"):
        people.update_person(uow, admin, admin.member_id, role=Role.ADMIN_LOCAL)
    for status in ("lapsed", "resigned"):
        with pytest.raises(Conflict, match="last active organization admin"):
            people.update_person(uow, admin, admin.member_id, status=status)
    second = make_operator(Role.ADMIN_TENANT)
    people.update_person(uow, admin, admin.member_id, role=Role.HR_TENANT)
    # Now `second` is the last one; the former admin is refused anyway (role too low).
    with pytest.raises(Conflict, match="last active organization admin"):
        people.update_person(uow, second, second.member_id, status="lapsed")


def test_bulk_update_is_per_row_and_keeps_the_last_admin(
        uow: UnitOfWork, admin: Operator, make_unit: MakeUnit,
        make_operator: MakeOperator) -> None:
    north, south = make_unit("North"), make_unit("South")
    local = make_operator(Role.ADMIN_LOCAL, north)
    a, b = make_operator(Role.USER, north), make_operator(Role.USER, north)
    outsider = make_operator(Role.USER, south)
    outcome = people.bulk_update(uow, local, [a.member_id, outsider.member_id, b.member_id],
                                 role=Role.HR_LOCAL)
    assert outcome.applied == 2
    assert [r.member_id for r in outcome.refused] == [outsider.member_id]
    assert "not in your unit" in outcome.refused[0].reason
    assert people.get_person(uow, admin, outsider.member_id).role is Role.USER
    # The organization admin moves a selection, including themself, to USER: they are the
    # last admin, so their own row is refused and the rest applies.
    outcome = people.bulk_update(uow, admin, [a.member_id, admin.member_id], role=Role.USER,
                                 unit_id=south)
    assert outcome.applied == 1
    assert "last active organization admin" in outcome.refused[0].reason
    assert people.get_person(uow, admin, a.member_id).unit_id == south
    assert people.get_person(uow, admin, admin.member_id).role is Role.ADMIN_TENANT
    actions = [r.action for r in _audit(uow, a.member_id)]
    assert actions == ["member.bulk_update", "member.bulk_update"]


def test_two_concurrent_demotions_leave_one_organization_admin(
        any_uow: UnitOfWork, monkeypatch: pytest.MonkeyPatch) -> None:
    """A and B are the only two admins; A demotes B while B demotes A. The first holds the
    admin rows (or, on SQLite, the write lock); the second must find it is now the last."""
    uow = any_uow
    first = auth.setup_organization(
        uow, organization_name="Club", admin_email="a@example.org", admin_first_name="A",
        admin_last_name="Admin", password=ADMIN_PASSWORD)
    with uow:
        b = Member(organization_id=first.organization_id, email="b@example.org",
                   email_normalized="b@example.org", first_name="B", last_name="Admin",
                   role=Role.ADMIN_TENANT.name, status=MemberStatus.ACTIVE.value)
        uow.session.add(b)
        uow.session.flush()
        second = auth.operator_for(uow.session, b)
        uow.commit()

    locked = threading.Event()
    original = people._lock_active_admins

    def slow_lock(session, organization_id):  # type: ignore[no-untyped-def]
        ids = original(session, organization_id)
        if threading.current_thread().name == "first" and not locked.is_set():
            locked.set()
            time.sleep(0.6)  # hold the lock while the other demotion starts
        return ids

    monkeypatch.setattr(people, "_lock_active_admins", slow_lock)
    outcomes: dict[str, object] = {}

    def demote(name: str, operator: Operator, target: uuid.UUID) -> None:
        if name == "second":
            assert locked.wait(10)
        try:
            outcomes[name] = people.update_person(uow, operator, target, role=Role.USER)
        except Exception as exc:  # noqa: BLE001 - recorded and asserted below
            outcomes[name] = exc

    threads = [threading.Thread(target=demote, name="first", args=("first", first, b.id)),
               threading.Thread(target=demote, name="second",
                                args=("second", second, first.member_id))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    errors = [v for v in outcomes.values() if isinstance(v, Exception)]
    assert len(outcomes) == 2 and len(errors) == 1, outcomes
    assert isinstance(errors[0], Conflict | PermissionDenied), errors
    with uow:
        admins = uow.session.scalars(select(Member).where(
            Member.role == Role.ADMIN_TENANT.name, Member.status == "active")).all()
    assert len(admins) == 1


def test_one_time_password_must_be_changed_at_first_sign_in(
        uow: UnitOfWork, admin: Operator, make_operator: MakeOperator) -> None:
    member = make_operator(Role.HR_LOCAL)
    otp = people.issue_one_time_password(uow, admin, member.member_id)
    assert len(otp.password) >= 10
    with uow:
        stored = uow.session.get(Member, member.member_id)
        assert stored is not None and otp.password not in (stored.password_hash or "")
    assert people.get_person(uow, admin, member.member_id).sign_in is SignInState.ONE_TIME_PASSWORD
    with pytest.raises(PasswordChangeRequired):
        auth.sign_in(uow, member.email, otp.password)
    with pytest.raises(AuthenticationFailed):
        auth.sign_in_with_new_password(uow, member.email, "wrong password", "a new password!")
    with pytest.raises(ValidationFailed):
        auth.sign_in_with_new_password(uow, member.email, otp.password, otp.password)
    operator = auth.sign_in_with_new_password(uow, member.email, otp.password, "my own secret 1")
    assert operator.member_id == member.member_id
    assert auth.sign_in(uow, member.email, "my own secret 1").member_id == member.member_id
    with pytest.raises(AuthenticationFailed):
        auth.sign_in(uow, member.email, otp.password)
    assert people.get_person(uow, admin, member.member_id).sign_in is SignInState.ACTIVE


def test_revoking_a_sign_in_ends_the_open_session(
        uow: UnitOfWork, admin: Operator, make_operator: MakeOperator) -> None:
    member = make_operator(Role.HR_TENANT, password="their password 1")
    session_op = auth.sign_in(uow, member.email, "their password 1")
    assert people.list_people(uow, session_op)  # works while signed in
    view = people.revoke_sign_in(uow, admin, member.member_id)
    assert view.sign_in is SignInState.NONE
    with pytest.raises(PermissionDenied, match="revoked"):
        people.list_people(uow, session_op)
    with pytest.raises(AuthenticationFailed):
        auth.sign_in(uow, member.email, "their password 1")
    # A new sign-in afterwards works again (and is not ended by the old revocation).
    otp = people.issue_one_time_password(uow, admin, member.member_id)
    fresh = auth.sign_in_with_new_password(uow, member.email, otp.password, "a brand new one")
    assert people.list_people(uow, fresh)
    assert [r.action for r in _audit(uow, member.member_id)][-3:] == [
        "member.sign_in_revoked", "member.one_time_password", "member.password_set"]


def test_the_last_admin_s_sign_in_cannot_be_revoked_nor_your_own(
        uow: UnitOfWork, admin: Operator, make_operator: MakeOperator) -> None:
    other = make_operator(Role.ADMIN_TENANT)  # an admin without a sign-in
    with pytest.raises(Conflict, match="own sign-in"):
        people.revoke_sign_in(uow, admin, admin.member_id)
    with pytest.raises(Conflict):
        people.revoke_sign_in(uow, other, admin.member_id)


def test_lapsing_a_member_ends_their_session(uow: UnitOfWork, admin: Operator,
                                             make_operator: MakeOperator) -> None:
    member = make_operator(Role.HR_TENANT, password="their password 1")
    session_op = auth.sign_in(uow, member.email, "their password 1")
    people.update_person(uow, admin, member.member_id, status="lapsed")
    with pytest.raises(PermissionDenied):
        people.list_people(uow, session_op)


def test_a_sign_in_link_is_queued_hashed_single_use_and_expires(
        uow: UnitOfWork, admin: Operator, make_operator: MakeOperator) -> None:
    member = make_operator(Role.HR_LOCAL)
    issued = people.issue_sign_in_link(uow, admin, member.member_id)
    assert issued.expires_at - utcnow() > timedelta(days=people.SIGN_IN_LINK_DAYS - 1)
    with uow:
        link = uow.session.scalars(select(SignInLink)).one()
        mail = uow.session.get(OutgoingMail, issued.notification_id)
        assert link.token_hash is None  # minted only when the email is sent
        assert mail is not None and mail.status == "queued" and mail.to_email == member.email
    assert people.get_person(uow, admin, member.member_id).sign_in is SignInState.LINK_PENDING
    # A second link replaces the first.
    people.issue_sign_in_link(uow, admin, member.member_id)
    with uow:
        links = uow.session.scalars(select(SignInLink).order_by(SignInLink.created_at)).all()
        assert links[0].revoked_at is not None and links[1].revoked_at is None


def test_list_people_is_scoped(uow: UnitOfWork, admin: Operator, make_unit: MakeUnit,
                               make_operator: MakeOperator) -> None:
    north, south = make_unit("North"), make_unit("South")
    hr = make_operator(Role.HR_LOCAL, north)
    make_operator(Role.USER, north, email="zoe@north.example")
    make_operator(Role.USER, south, email="sam@south.example")
    seen = {p.email for p in people.list_people(uow, hr)}
    assert "zoe@north.example" in seen and "sam@south.example" not in seen
    everyone = {p.email for p in people.list_people(uow, admin)}
    assert {"zoe@north.example", "sam@south.example"} <= everyone
    assert [p.email for p in people.list_people(uow, admin, search="ZOE@")] == ["zoe@north.example"]
    with pytest.raises(PermissionDenied):
        people.list_people(uow, make_operator(Role.USER, north))
    with uow:
        assert uow.session.scalar(select(Unit).where(Unit.id == north)) is not None
    assert KEEP is people.Unset.KEEP
