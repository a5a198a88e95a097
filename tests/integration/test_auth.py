"""First-run setup and sign-in, on a migrated SQLite database (and on the servers where it matters)."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from invite_desk.services import auth
from invite_desk.services.errors import AuthenticationFailed, Conflict, ValidationFailed
from invite_desk.services.models import (
    AuditLog,
    Member,
    MemberStatus,
    Organization,
    Setting,
)
from invite_desk.services.operator import Operator
from invite_desk.services.roles import Role
from invite_desk.services.uow import UnitOfWork
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, MakeOperator

SETUP = dict(
    organization_name="Harbour Rowing Club",
    admin_email="Ada.Admin@Example.org",
    admin_first_name="Ada",
    admin_last_name="Admin",
    password="correct horse battery",
)


def test_setup_creates_the_organization_and_an_argon2_admin(uow: UnitOfWork) -> None:
    assert auth.needs_setup(uow) is True

    operator = auth.setup_organization(
        uow, **SETUP, description="Rowing on the coast.",
        registration_base_url="https://join.example.org/",
    )

    assert auth.needs_setup(uow) is False
    assert operator.role is Role.ADMIN_TENANT
    assert operator.name == "Ada Admin"
    with uow:
        org = uow.session.scalars(select(Organization)).one()
        admin = uow.session.scalars(select(Member)).one()
        assert (org.name, org.description, org.registration_base_url) == (
            "Harbour Rowing Club", "Rowing on the coast.", "https://join.example.org")
        assert admin.id == operator.member_id and admin.organization_id == org.id
        assert admin.role == "ADMIN_TENANT" and admin.status == MemberStatus.ACTIVE.value
        assert admin.email_normalized == "ada.admin@example.org"
        assert admin.password_hash is not None
        assert admin.password_hash.startswith("$argon2id$")
        assert SETUP["password"] not in admin.password_hash
        # Settings are stored from the start, and the creation is audited.
        keys = set(uow.session.scalars(select(Setting.key)))
        assert "userInvitations.hasUserInvitation" in keys
        audit = uow.session.scalars(select(AuditLog)).one()
        assert (audit.action, audit.actor_id) == ("organization.create", admin.id)
        assert json.loads(audit.after_json) == {"name": "Harbour Rowing Club"}


def test_a_second_setup_is_refused_and_changes_nothing(uow: UnitOfWork, admin: Operator) -> None:
    with pytest.raises(Conflict, match="already has an organization"):
        auth.setup_organization(uow, **{**SETUP, "admin_email": "mallory@example.org"})
    with uow:
        assert uow.session.scalar(select(func.count()).select_from(Organization)) == 1
        assert list(uow.session.scalars(select(Member.email))) == [ADMIN_EMAIL]


def test_setup_validation_names_every_bad_field(uow: UnitOfWork) -> None:
    with pytest.raises(ValidationFailed) as failed:
        auth.setup_organization(
            uow, organization_name="  ", admin_email="not an email", admin_first_name="",
            admin_last_name=" ", password="short",
        )
    errors = failed.value.errors
    assert set(errors) == {"organization_name", "admin_email", "admin_name", "password"}
    assert "at least 10 characters" in errors["password"]
    assert "organization_name" in str(failed.value) and "password" in str(failed.value)
    assert auth.needs_setup(uow) is True


def test_setup_rejects_a_bad_registration_url(uow: UnitOfWork) -> None:
    with pytest.raises(ValidationFailed) as failed:
        auth.setup_organization(uow, **SETUP, registration_base_url="ftp://join")
    assert list(failed.value.errors) == ["registration_base_url"]
    assert auth.needs_setup(uow) is True


@pytest.mark.parametrize("typed", [ADMIN_EMAIL, ADMIN_EMAIL.upper(), f"  {ADMIN_EMAIL.title()} "])
def test_sign_in_ignores_the_case_of_the_email(uow: UnitOfWork, admin: Operator, typed: str) -> None:
    operator = auth.sign_in(uow, typed, ADMIN_PASSWORD)
    assert operator == admin
    with uow:
        member = uow.session.get(Member, admin.member_id)
        assert member is not None and member.last_sign_in_at is not None


def test_wrong_password_and_unknown_email_read_exactly_the_same(
    uow: UnitOfWork, admin: Operator
) -> None:
    with pytest.raises(AuthenticationFailed) as wrong_password:
        auth.sign_in(uow, ADMIN_EMAIL, "not the password")
    with pytest.raises(AuthenticationFailed) as unknown_email:
        auth.sign_in(uow, "nobody@example.org", ADMIN_PASSWORD)
    assert str(wrong_password.value) == str(unknown_email.value)
    assert str(wrong_password.value) == "The email or password is incorrect."
    with uow:
        member = uow.session.get(Member, admin.member_id)
        assert member is not None and member.last_sign_in_at is None


def test_a_deactivated_operator_cannot_sign_in(uow: UnitOfWork, make_operator: MakeOperator) -> None:
    operator = make_operator(Role.HR_TENANT, email="gone@example.org", password="a fine password")
    assert auth.sign_in(uow, "gone@example.org", "a fine password") == operator
    with uow:
        member = uow.session.get(Member, operator.member_id)
        assert member is not None
        member.status = MemberStatus.DEACTIVATED.value
        uow.commit()
    with pytest.raises(AuthenticationFailed) as failed:
        auth.sign_in(uow, "gone@example.org", "a fine password")
    assert str(failed.value) == "The email or password is incorrect."


@pytest.mark.parametrize("status", [MemberStatus.APPLICANT, MemberStatus.REJECTED])
def test_members_who_are_not_active_cannot_sign_in(
    uow: UnitOfWork, make_operator: MakeOperator, status: MemberStatus
) -> None:
    operator = make_operator(Role.USER, email="applicant@example.org", password="a fine password")
    with uow:
        member = uow.session.get(Member, operator.member_id)
        assert member is not None
        member.status = status.value
        uow.commit()
    with pytest.raises(AuthenticationFailed):
        auth.sign_in(uow, "applicant@example.org", "a fine password")


def test_a_member_without_a_password_cannot_sign_in(
    uow: UnitOfWork, make_operator: MakeOperator
) -> None:
    make_operator(Role.USER, email="plain@example.org")  # no password: not an operator
    for attempt in ("", "anything at all", ADMIN_PASSWORD):
        with pytest.raises(AuthenticationFailed):
            auth.sign_in(uow, "plain@example.org", attempt)


def test_set_password_lets_a_member_sign_in(uow: UnitOfWork, make_operator: MakeOperator) -> None:
    operator = make_operator(Role.HR_LOCAL, email="newop@example.org")
    with pytest.raises(ValidationFailed) as failed:
        auth.set_password(uow, operator.member_id, "short")
    assert list(failed.value.errors) == ["password"]
    auth.set_password(uow, operator.member_id, "now long enough")
    assert auth.sign_in(uow, "newop@example.org", "now long enough").member_id == operator.member_id


def test_setup_and_sign_in_on_every_backend(any_uow: UnitOfWork) -> None:
    operator = auth.setup_organization(any_uow, **SETUP)
    assert auth.sign_in(any_uow, "ADA.ADMIN@example.org", SETUP["password"]) == operator
    with pytest.raises(AuthenticationFailed):
        auth.sign_in(any_uow, "ada.admin@example.org", "wrong password!")
