"""First-run setup and operator sign-in (argon2 password hashes)."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from email_validator import EmailNotValidError, validate_email
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from invite_desk.services import audit, settings
from invite_desk.services.errors import (
    AuthenticationFailed,
    Conflict,
    DomainError,
    ValidationFailed,
)
from invite_desk.services.invitations.tokens import hash_token
from invite_desk.services.models import Member, MemberStatus, Organization, SignInLink, utcnow
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
        if member.must_change_password:
            raise PasswordChangeRequired()
        if _hasher.check_needs_rehash(stored_hash):
            member.password_hash = hash_password(password)
        now = utcnow()
        member.last_sign_in_at = now
        operator = replace(operator_for(session, member), signed_in_at=now)
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
    problem = password_problem(new_password)
    if problem:
        raise ValidationFailed({"new_password": problem})
    if new_password == one_time_password:
        raise ValidationFailed({"new_password": "Choose a password different from the one-time "
                                                "password."})
    with uow:
        session = uow.session
        member = session.scalar(
            select(Member).where(Member.email_normalized == normalize_email(email)).limit(1)
        )
        stored_hash = (member.password_hash if member is not None
                       and member.status == MemberStatus.ACTIVE.value else None)
        try:
            _hasher.verify(stored_hash or _DUMMY_HASH, one_time_password)
        except (VerificationError, InvalidHashError):
            raise AuthenticationFailed() from None
        if member is None or stored_hash is None:
            raise AuthenticationFailed()
        now = utcnow()
        member.password_hash = hash_password(new_password)
        member.must_change_password = False
        member.last_sign_in_at = now
        audit.record(session, organization_id=member.organization_id, actor_id=member.id,
                     action="member.password_set", entity_type="member", entity_id=member.id,
                     before={"sign_in": "one_time_password"}, after={"sign_in": "active"})
        operator = replace(operator_for(session, member), signed_in_at=now)
        uow.commit()
        return operator


def _link_for(session: Session, token: str, now: datetime) -> tuple[SignInLink, Member]:
    link = session.scalar(select(SignInLink).where(SignInLink.token_hash == hash_token(token)))
    if link is None:
        raise SignInLinkInvalid("This link is not valid. Ask your administrator for a new one.")
    if link.used_at is not None:
        raise SignInLinkInvalid("This link was already used. Sign in to the desktop app with the "
                                "password you chose, or ask your administrator for a new link.")
    if link.revoked_at is not None:
        raise SignInLinkInvalid("This link was withdrawn by an administrator. Ask them for a "
                                "new one.")
    if link.expires_at <= now:
        raise SignInLinkInvalid("This link has expired. Ask your administrator for a new one.")
    member = session.get(Member, link.member_id)
    if member is None or member.status != MemberStatus.ACTIVE.value:
        raise SignInLinkInvalid("This sign-in is no longer active. Ask your administrator.")
    return link, member


def check_sign_in_link(uow: UnitOfWork, token: str, *, now: datetime | None = None) -> str:
    """The email the link sets a password for; SignInLinkInvalid otherwise (the portal)."""
    with uow:
        _link, member = _link_for(uow.session, token, now or utcnow())
        return member.email


def set_password_from_link(uow: UnitOfWork, token: str, password: str, *,
                           now: datetime | None = None) -> str:
    """Use the link once: store the argon2 hash of `password`; returns the member's email.
    Two submissions of the same link at once: one wins, the other is told it was used."""
    problem = password_problem(password)
    if problem:
        raise ValidationFailed({"password": problem})
    now = now or utcnow()
    password_hash = hash_password(password)
    with uow:
        session = uow.session
        link, member = _link_for(session, token, now)
        used = session.execute(
            update(SignInLink)
            .where(SignInLink.id == link.id, SignInLink.used_at.is_(None),
                   SignInLink.revoked_at.is_(None))
            .values(used_at=now, updated_at=now, version=SignInLink.version + 1)
            .execution_options(synchronize_session=False)
        )
        if used.rowcount != 1:  # type: ignore[attr-defined]
            raise SignInLinkInvalid("This link was already used. Sign in to the desktop app with "
                                    "the password you chose.")
        member.password_hash = password_hash
        member.must_change_password = False
        audit.record(session, organization_id=member.organization_id, actor_id=member.id,
                     action="member.password_set", entity_type="member", entity_id=member.id,
                     before={"sign_in": "link_pending"}, after={"sign_in": "active"})
        email = member.email
        uow.commit()
        return email
