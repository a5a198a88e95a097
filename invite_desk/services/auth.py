"""First-run setup and operator sign-in (argon2 password hashes)."""

from __future__ import annotations

import uuid

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from email_validator import EmailNotValidError, validate_email
from sqlalchemy import func, select

from invite_desk.services import audit, settings
from invite_desk.services.errors import (
    AuthenticationFailed,
    Conflict,
    DomainError,
    ValidationFailed,
)
from invite_desk.services.models import Member, MemberStatus, Organization, utcnow
from invite_desk.services.operator import Operator, operator_for
from invite_desk.services.roles import Role
from invite_desk.services.uow import UnitOfWork

MIN_PASSWORD_LENGTH = 10

_hasher = PasswordHasher()
# Verified against when the email is unknown, so both paths cost the same time.
_DUMMY_HASH = _hasher.hash("invite-desk-dummy-password")


def normalize_email(text: str) -> str:
    """The canonical, lower-cased address used for case-insensitive uniqueness."""
    return text.strip().lower()


def checked_email(text: str, field: str = "email") -> str:
    try:
        return validate_email(text.strip(), check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise ValidationFailed({field: str(exc)}) from None


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def password_problem(password: str) -> str | None:
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"Password must be at least {MIN_PASSWORD_LENGTH} characters"
    return None


def needs_setup(uow: UnitOfWork) -> bool:
    """True until the first organization exists."""
    with uow:
        return uow.session.scalar(select(func.count()).select_from(Organization)) == 0


def setup_organization(
    uow: UnitOfWork,
    *,
    organization_name: str,
    admin_email: str,
    admin_first_name: str,
    admin_last_name: str,
    password: str,
    description: str = "",
    registration_base_url: str = "",
) -> Operator:
    """Create the organization and its first ADMIN_TENANT operator (first run only)."""
    errors: dict[str, str] = {}
    if not organization_name.strip():
        errors["organization_name"] = "Organization name is required"
    try:
        email = checked_email(admin_email, "admin_email")
    except ValidationFailed as exc:
        errors.update(exc.errors)
        email = ""
    if not admin_first_name.strip() and not admin_last_name.strip():
        errors["admin_name"] = "Your name is required"
    problem = password_problem(password)
    if problem:
        errors["password"] = problem
    from invite_desk.services.organization import validate as validate_org

    org_fields: dict[str, object] = {}
    try:
        org_fields = validate_org(
            {"name": organization_name, "description": description,
             "registration_base_url": registration_base_url}
        )
    except ValidationFailed as exc:  # reported together with the fields above
        renamed = {"name": "organization_name"}
        errors.update({renamed.get(k, k): v for k, v in exc.errors.items()
                       if renamed.get(k, k) not in errors})
    if errors:
        raise ValidationFailed(errors)
    with uow:
        session = uow.session
        if session.scalar(select(func.count()).select_from(Organization)):
            raise Conflict("This database already has an organization: sign in instead.")
        org = Organization(**org_fields)
        session.add(org)
        session.flush()
        admin = Member(
            organization_id=org.id,
            email=email,
            email_normalized=normalize_email(email),
            first_name=admin_first_name.strip(),
            last_name=admin_last_name.strip(),
            role=Role.ADMIN_TENANT.name,
            status=MemberStatus.ACTIVE.value,
            password_hash=hash_password(password),
        )
        session.add(admin)
        session.flush()
        settings.initialize(session, org.id)
        audit.record(
            session, organization_id=org.id, actor_id=admin.id, action="organization.create",
            entity_type="organization", entity_id=org.id, after={"name": org.name},
        )
        uow.commit()
        return operator_for(session, admin)


def sign_in(uow: UnitOfWork, email: str, password: str) -> Operator:
    """The operator for these credentials; the error never tells whether the email exists.

    Two sign-ins of the same person at the same moment (a scheduled `invite-desk send` and
    the window) both write last_sign_in_at: the later one reads again instead of failing."""
    for attempt in range(3):
        try:
            return _sign_in(uow, email, password)
        except Conflict:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def _sign_in(uow: UnitOfWork, email: str, password: str) -> Operator:
    with uow:
        session = uow.session
        member = session.scalar(
            select(Member).where(Member.email_normalized == normalize_email(email)).limit(1)
        )
        stored_hash = (
            member.password_hash
            if member is not None and member.status == MemberStatus.ACTIVE.value
            else None
        )
        try:
            _hasher.verify(stored_hash or _DUMMY_HASH, password)
        except (VerificationError, InvalidHashError):
            raise AuthenticationFailed() from None
        if member is None or stored_hash is None:
            raise AuthenticationFailed()
        if _hasher.check_needs_rehash(stored_hash):
            member.password_hash = hash_password(password)
        member.last_sign_in_at = utcnow()
        operator = operator_for(session, member)
        uow.commit()
        return operator


def set_password(uow: UnitOfWork, member_id: uuid.UUID, password: str) -> None:
    """Give a member an operator password (used by setup, demo and the members page)."""
    problem = password_problem(password)
    if problem:
        raise ValidationFailed({"password": problem})
    with uow:
        member = uow.session.get(Member, member_id)
        if member is None:
            raise ValidationFailed({"member": "No such member"})
        member.password_hash = hash_password(password)
        uow.commit()



# -- issue 11: one-time passwords and emailed set-password links -----------------------------


class PasswordChangeRequired(DomainError):
    """The password was a one-time password: the person must choose their own first
    (`sign_in_with_new_password`)."""

    def __init__(self) -> None:
        super().__init__("This is a one-time password: choose your own password to sign in.")


class SignInLinkInvalid(DomainError):
    """A set-password link that is unknown, used, revoked or expired (the message says which)."""


def sign_in_with_new_password(uow: UnitOfWork, email: str, one_time_password: str,
                              new_password: str) -> Operator:
    """First sign-in with a one-time password: check it, store `new_password`, sign in."""
    raise NotImplementedError


def check_sign_in_link(uow: UnitOfWork, token: str) -> str:
    """The email the link sets a password for; SignInLinkInvalid otherwise (the portal)."""
    raise NotImplementedError


def set_password_from_link(uow: UnitOfWork, token: str, password: str) -> str:
    """Use the link once: store the argon2 hash of `password`; returns the member's email."""
    raise NotImplementedError
