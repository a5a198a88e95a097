"""People: a member's role, unit and status, and their desktop sign-in.

Policy (enforced here, mirrored by the windows through `edit_policy`):
- ADMIN_TENANT may edit everyone and grant every role.
- ADMIN_LOCAL may edit members of their own unit whose role is not above their own and not
  organization-wide (HR_TENANT), may grant the unit's roles (USER, HR_LOCAL, ADMIN_LOCAL),
  and cannot move anyone to another unit.
- Everyone else may edit no one.
- Nobody can demote, deactivate (lapsed, resigned) or revoke the sign-in of the last active
  ADMIN_TENANT; two concurrent demotions of the last two admins cannot both succeed (the
  admin rows are locked, and the count re-checked, before the change is written).
- Members are never deleted: status becomes lapsed or resigned.
Every change writes an audit row with the values before and after.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, func, or_, select, update
from sqlalchemy.orm import Session

from invite_desk.services import audit
from invite_desk.services.admin import notifications
from invite_desk.services.auth import hash_password
from invite_desk.services.concurrency import changed_meanwhile
from invite_desk.services.errors import (
    Conflict,
    NotFound,
    PermissionDenied,
    SettingsIncomplete,
    ValidationFailed,
)
from invite_desk.services.models import (
    Member,
    MemberStatus,
    Organization,
    SignInLink,
    Unit,
    utcnow,
)
from invite_desk.services.operator import Operator, refreshed
from invite_desk.services.permissions import Action, Target, decide, require
from invite_desk.services.roles import Role
from invite_desk.services.settings import load as load_settings
from invite_desk.services.sync import journal
from invite_desk.services.uow import UnitOfWork


class Unset(StrEnum):
    """Marks "leave this field unchanged" where None is a meaningful value (no unit)."""

    KEEP = "keep"


KEEP = Unset.KEEP

# The statuses an administrator may set (applicant/rejected belong to the adhesion flow).
EDITABLE_STATUSES: tuple[str, ...] = ("active", "lapsed", "resigned")


class SignInState(StrEnum):
    NONE = "none"  # no desktop sign-in
    LINK_PENDING = "link_pending"  # a set-password link was emailed and not used yet
    ONE_TIME_PASSWORD = "one_time_password"  # must choose a new password at first sign-in
    ACTIVE = "active"  # has a password of their own


@dataclass(frozen=True)
class PersonView:
    id: uuid.UUID
    email: str
    name: str
    role: Role
    unit_id: uuid.UUID | None
    unit_name: str
    status: str
    sign_in: SignInState
    last_sign_in_at: datetime | None
    version: int


@dataclass(frozen=True)
class UnitChoice:
    id: uuid.UUID | None  # None = no unit
    name: str


@dataclass(frozen=True)
class EditPolicy:
    """What `operator` may change on one member (the window disables what is refused)."""

    can_edit: bool
    reason: str  # why not, when can_edit is False ("" otherwise)
    grantable_roles: tuple[Role, ...]
    unit_choices: tuple[UnitChoice, ...]
    can_change_unit: bool
    statuses: tuple[str, ...]
    can_manage_sign_in: bool


@dataclass(frozen=True)
class RowOutcome:
    member_id: uuid.UUID
    email: str
    applied: bool
    reason: str  # why refused ("" when applied or nothing to change)


@dataclass(frozen=True)
class BulkOutcome:
    """Per-row outcome: every member the operator may change is changed (one transaction);
    each refused row says why and is left untouched."""

    rows: tuple[RowOutcome, ...]

    @property
    def applied(self) -> int:
        return sum(1 for row in self.rows if row.applied)

    @property
    def refused(self) -> tuple[RowOutcome, ...]:
        return tuple(row for row in self.rows if row.reason)

    @property
    def unchanged(self) -> tuple[RowOutcome, ...]:
        """Rows that already had the values asked for."""
        return tuple(row for row in self.rows if not row.applied and not row.reason)


@dataclass(frozen=True)
class SignInLinkIssued:
    member_id: uuid.UUID
    email: str
    expires_at: datetime
    notification_id: uuid.UUID  # the queued email; delivered by send_pending_notifications


@dataclass(frozen=True)
class OneTimePassword:
    """Shown once to the admin; never stored in clear. The member must change it at first
    sign-in (auth.sign_in raises PasswordChangeRequired until they do)."""

    member_id: uuid.UUID
    email: str
    password: str


SIGN_IN_LINK_DAYS = 3


def _sign_in_state(member: Member, pending_link: bool) -> SignInState:
    if member.password_hash:
        return SignInState.ONE_TIME_PASSWORD if member.must_change_password else SignInState.ACTIVE
    return SignInState.LINK_PENDING if pending_link else SignInState.NONE


def _pending_link_ids(session: Session, member_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
    if not member_ids:
        return set()
    now = utcnow()
    return set(session.scalars(
        select(SignInLink.member_id).where(
            SignInLink.member_id.in_(member_ids), SignInLink.used_at.is_(None),
            SignInLink.revoked_at.is_(None), SignInLink.expires_at > now)
    ))


def _view(session: Session, member: Member, pending: set[uuid.UUID] | None = None) -> PersonView:
    unit_name = ""
    if member.unit_id is not None:
        unit = session.get(Unit, member.unit_id)
        unit_name = unit.name if unit is not None else ""
    if pending is None:
        pending = _pending_link_ids(session, [member.id])
    return PersonView(
        id=member.id, email=member.email, name=member.display_name,
        role=Role.parse(member.role), unit_id=member.unit_id, unit_name=unit_name,
        status=member.status, sign_in=_sign_in_state(member, member.id in pending),
        last_sign_in_at=member.last_sign_in_at, version=member.version,
    )


def _scope_filter(operator: Operator) -> ColumnElement[bool] | None:
    if operator.role.is_tenant_wide:
        return None
    if operator.role.is_local:
        return Member.unit_id == operator.unit_id if operator.unit_id is not None \
            else Member.id == operator.member_id
    return Member.id == operator.member_id


def _member_in_org(session: Session, operator: Operator, member_id: uuid.UUID) -> Member:
    member = session.get(Member, member_id)
    if member is None or member.organization_id != operator.organization_id:
        raise NotFound("This member no longer exists.")
    return member


def _unit_in_org(session: Session, operator: Operator, unit_id: uuid.UUID) -> Unit:
    unit = session.get(Unit, unit_id)
    if unit is None or unit.organization_id != operator.organization_id:
        raise NotFound("This unit no longer exists.")
    return unit


def list_people(uow: UnitOfWork, operator: Operator, *, search: str = "",
                unit_id: uuid.UUID | None = None, limit: int = 500) -> list[PersonView]:
    """Members within the operator's scope (HR_LOCAL and above; local roles see their unit),
    by name; `search` matches name or email (case-insensitively)."""
    with uow:
        session = uow.session
        operator = refreshed(session, operator)
        require(operator, Action.VIEW_PEOPLE)
        stmt = select(Member).where(Member.organization_id == operator.organization_id)
        scope = _scope_filter(operator)
        if scope is not None:
            stmt = stmt.where(scope)
        if unit_id is not None:
            stmt = stmt.where(Member.unit_id == unit_id)
        text = search.strip().lower()
        if text:
            pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            stmt = stmt.where(or_(
                Member.email_normalized.like(pattern, escape="\\"),
                func.lower(Member.first_name + " " + Member.last_name).like(pattern, escape="\\"),
            ))
        members = list(session.scalars(
            stmt.order_by(Member.last_name, Member.first_name, Member.email_normalized)
            .limit(limit)))
        pending = _pending_link_ids(session, [m.id for m in members])
        return [_view(session, m, pending) for m in members]


def get_person(uow: UnitOfWork, operator: Operator, member_id: uuid.UUID) -> PersonView:
    """One member within the operator's scope (HR_LOCAL and above)."""
    with uow:
        session = uow.session
        operator = refreshed(session, operator)
        member = _member_in_org(session, operator, member_id)
        require(operator, Action.VIEW_PEOPLE, target=Target(unit_id=member.unit_id))
        return _view(session, member)


def _grantable(operator: Operator) -> tuple[Role, ...]:
    """Roles the operator may give: every role for ADMIN_TENANT; up to their own otherwise."""
    if operator.role is Role.ADMIN_TENANT:
        return tuple(Role)
    if operator.role >= Role.ADMIN_LOCAL:
        # A local admin's reach is their unit: organization-wide roles (HR_TENANT) rank below
        # ADMIN_LOCAL but reach every unit, so only an organization admin gives them.
        return tuple(role for role in Role if role <= operator.role and not role.is_tenant_wide)
    return ()


def _refusal(operator: Operator, member: Member) -> tuple[str, Role]:
    """Why the operator may not edit this member at all ("" when they may), and the role
    that would allow it."""
    decision = decide(operator, Action.MANAGE_PEOPLE, target=Target(unit_id=member.unit_id))
    if not decision.allowed:
        if operator.role < Role.ADMIN_LOCAL:
            return (f"Changing members needs the {decision.needed.name} role or higher.",
                    decision.needed)
        return (f"{member.display_name} is not in your unit ({operator.unit_name or 'none'}).",
                decision.needed)
    if Role.parse(member.role) > operator.role:
        return (f"{member.display_name} is {Role.parse(member.role).label}, above your own "
                f"role ({operator.role.label}): only an organization admin can change them.",
                Role.ADMIN_TENANT)
    if operator.role is not Role.ADMIN_TENANT and Role.parse(member.role).is_tenant_wide:
        return (f"{member.display_name} is {Role.parse(member.role).label}, a role that reaches "
                "the whole organization: only an organization admin can change them.",
                Role.ADMIN_TENANT)
    return "", operator.role


def _deny(operator: Operator, detail: str, needed: Role = Role.ADMIN_TENANT) -> PermissionDenied:
    return PermissionDenied(str(Action.MANAGE_PEOPLE), needed.name, detail=detail,
                            role_ok=operator.role >= needed)


def _require_editable(operator: Operator, member: Member) -> None:
    reason, needed = _refusal(operator, member)
    if reason:
        raise _deny(operator, reason, needed)


def edit_policy(uow: UnitOfWork, operator: Operator, member_id: uuid.UUID) -> EditPolicy:
    """What the operator may change on this member (anyone signed in may ask)."""
    with uow:
        session = uow.session
        operator = refreshed(session, operator)
        member = _member_in_org(session, operator, member_id)
        reason, _needed = _refusal(operator, member)
        units: tuple[UnitChoice, ...] = ()
        can_change_unit = not reason and operator.role is Role.ADMIN_TENANT
        if can_change_unit:
            rows = session.scalars(select(Unit).where(
                Unit.organization_id == operator.organization_id,
                Unit.archived.is_(False)).order_by(Unit.name))
            units = (UnitChoice(None, "No unit"), *(UnitChoice(u.id, u.name) for u in rows))
        elif member.unit_id is not None:
            unit = session.get(Unit, member.unit_id)
            units = (UnitChoice(member.unit_id, unit.name if unit else ""),)
        statuses = EDITABLE_STATUSES if member.status in (*EDITABLE_STATUSES,
                                                          MemberStatus.DEACTIVATED.value) else ()
        return EditPolicy(
            can_edit=not reason, reason=reason,
            grantable_roles=_grantable(operator) if not reason else (),
            unit_choices=units, can_change_unit=can_change_unit,
            statuses=statuses if not reason else (),
            can_manage_sign_in=not reason and member.status == MemberStatus.ACTIVE.value,
        )


def _lock_active_admins(session: Session, organization_id: uuid.UUID) -> list[uuid.UUID]:
    """The active ADMIN_TENANT ids, locked until commit (PostgreSQL/MariaDB: FOR UPDATE, so a
    second demotion waits for the first and then counts again; SQLite serializes writers)."""
    return list(session.scalars(
        select(Member.id).where(
            Member.organization_id == organization_id,
            Member.role == Role.ADMIN_TENANT.name,
            Member.status == MemberStatus.ACTIVE.value,
        ).with_for_update()
    ))


LAST_ADMIN = ("{name} is the organization's last active organization admin (ADMIN_TENANT): "
              "make someone else an organization admin first.")


def _guard_last_admin(session: Session, member: Member, *, loses_admin: bool) -> None:
    if not loses_admin:
        return
    admins = _lock_active_admins(session, member.organization_id)
    if set(admins) <= {member.id}:
        raise Conflict(LAST_ADMIN.format(name=member.display_name))


def _recheck_admins(session: Session, organization_id: uuid.UUID, name: str) -> None:
    """After the write (which holds the write lock on SQLite): at least one admin remains."""
    session.flush()
    if not _lock_active_admins(session, organization_id):
        raise Conflict(LAST_ADMIN.format(name=name))


def _snapshot(member: Member) -> dict[str, Any]:
    return {"role": member.role, "unit_id": member.unit_id, "status": member.status}


def _apply(session: Session, operator: Operator, member: Member, *, role: Role | None,
           unit_id: uuid.UUID | None | Unset, status: str | None) -> dict[str, Any] | None:
    """Check and apply one member's change; returns the audit `before` (None: no change).
    Raises PermissionDenied / ValidationFailed / Conflict with the reason."""
    _require_editable(operator, member)
    before = _snapshot(member)
    current_role = Role.parse(member.role)
    if role is not None and role != current_role and role not in _grantable(operator):
        why = ("it reaches the whole organization" if role.is_tenant_wide and role < operator.role
               else f"it is above your own role ({operator.role.name})")
        raise _deny(operator, f"You cannot grant {role.name} ({role.label}): {why}.")
    if not isinstance(unit_id, Unset) and unit_id != member.unit_id:
        if operator.role is not Role.ADMIN_TENANT:
            raise _deny(operator, "Only an organization admin can move members to another unit.")
        if unit_id is not None:
            unit = _unit_in_org(session, operator, unit_id)
            if unit.archived:
                raise ValidationFailed({"unit": f"{unit.name} is archived."})
    if status is not None and status != member.status:
        if status not in EDITABLE_STATUSES:
            raise ValidationFailed({"status": f"must be one of {', '.join(EDITABLE_STATUSES)}"})
        if member.status not in (*EDITABLE_STATUSES, MemberStatus.DEACTIVATED.value):
            raise Conflict(f"{member.display_name} is an applicant; approve or reject their "
                           "application in Applications instead.")
    new_role = role if role is not None else current_role
    new_status = status if status is not None else member.status
    was_admin = current_role is Role.ADMIN_TENANT and member.status == MemberStatus.ACTIVE.value
    stays_admin = new_role is Role.ADMIN_TENANT and new_status == MemberStatus.ACTIVE.value
    _guard_last_admin(session, member, loses_admin=was_admin and not stays_admin)
    member.role = new_role.name
    if not isinstance(unit_id, Unset):
        member.unit_id = unit_id
    member.status = new_status
    if _snapshot(member) == before:
        return None
    if new_status != MemberStatus.ACTIVE.value and before["status"] == MemberStatus.ACTIVE.value:
        # Lapsed or resigned: their desktop sign-in ends with their membership.
        member.sign_in_revoked_at = utcnow()
    return before


def _audit_change(session: Session, operator: Operator, member: Member,
                  before: dict[str, Any], action: str = "member.update") -> None:
    audit.record(session, organization_id=operator.organization_id,
                 actor_id=operator.member_id, action=action, entity_type="member",
                 entity_id=member.id, before=before, after=_snapshot(member))


def update_person(uow: UnitOfWork, operator: Operator, member_id: uuid.UUID, *,
                  role: Role | None = None, unit_id: uuid.UUID | None | Unset = KEEP,
                  status: str | None = None, expected_version: int | None = None) -> PersonView:
    """Change role, unit and/or status (ADMIN_LOCAL and above, within the policy above).
    `expected_version` (from PersonView.version) turns a concurrent edit into Conflict."""
    with uow, changed_meanwhile():
        session = uow.session
        operator = refreshed(session, operator)
        member = _member_in_org(session, operator, member_id)
        if expected_version is not None and member.version != expected_version:
            raise Conflict(f"{member.display_name} was changed by someone else since you opened "
                           "them. Reload to see the latest values, then make your change again.")
        before = _apply(session, operator, member, role=role, unit_id=unit_id, status=status)
        if before is not None:
            _audit_change(session, operator, member, before)
            _recheck_admins(session, operator.organization_id, member.display_name)
            with journal.command("member.edit", f"Change {member.display_name}'s membership"):
                uow.commit()
        return _view(session, member)


def bulk_update(uow: UnitOfWork, operator: Operator, member_ids: Sequence[uuid.UUID], *,
                role: Role | None = None,
                unit_id: uuid.UUID | None | Unset = KEEP) -> BulkOutcome:
    """Change role and/or unit of a selection; per-row outcome (see BulkOutcome): each row
    the operator may change is changed, in one transaction; each refused row says why."""
    outcomes: list[RowOutcome] = []
    with uow, changed_meanwhile():
        session = uow.session
        operator = refreshed(session, operator)
        require(operator, Action.MANAGE_PEOPLE)
        for member_id in dict.fromkeys(member_ids):
            member = session.get(Member, member_id)
            if member is None or member.organization_id != operator.organization_id:
                outcomes.append(RowOutcome(member_id, "", False, "This member no longer exists."))
                continue
            savepoint = session.begin_nested()
            try:
                before = _apply(session, operator, member, role=role, unit_id=unit_id,
                                status=None)
                if before is not None:
                    _audit_change(session, operator, member, before, "member.bulk_update")
                session.flush()
            except (PermissionDenied, ValidationFailed, Conflict, NotFound) as exc:
                savepoint.rollback()
                outcomes.append(RowOutcome(member_id, member.email, False, exc.message))
                continue
            savepoint.commit()
            outcomes.append(RowOutcome(member_id, member.email, before is not None, ""))
        if any(o.applied for o in outcomes):
            _recheck_admins(session, operator.organization_id, "The selection")
            changed = sum(1 for o in outcomes if o.applied)
            with journal.command("member.edit", f"Change {changed} members"):
                uow.commit()
    return BulkOutcome(tuple(outcomes))


def _managed_member(session: Session, operator: Operator, member_id: uuid.UUID) -> Member:
    member = _member_in_org(session, operator, member_id)
    _require_editable(operator, member)
    if member.status != MemberStatus.ACTIVE.value:
        raise Conflict(f"{member.display_name} is {member.status}: only active members can have a "
                       "sign-in.")
    return member


def _end_sign_in(session: Session, member: Member, now: datetime) -> None:
    """Stop every way in: password, pending links, open sessions."""
    member.password_hash = None
    member.must_change_password = False
    member.sign_in_revoked_at = now
    session.execute(
        update(SignInLink)
        .where(SignInLink.member_id == member.id, SignInLink.used_at.is_(None),
               SignInLink.revoked_at.is_(None))
        .values(revoked_at=now, updated_at=now, version=SignInLink.version + 1)
        .execution_options(synchronize_session=False)
    )


def _sign_in_before(member: Member, pending: bool) -> dict[str, Any]:
    return {"sign_in": _sign_in_state(member, pending).value}


def issue_sign_in_link(uow: UnitOfWork, operator: Operator, member_id: uuid.UUID, *,
                       now: datetime | None = None) -> SignInLinkIssued:
    """Email the member a link to set their desktop password (ADMIN_LOCAL+, within policy).
    Replaces (resets) any password or earlier link they had. The link's token exists only in
    the email: it is minted when the notification is sent and only its SHA-256 is stored;
    single use; expires after SIGN_IN_LINK_DAYS."""
    now = now or utcnow()
    with uow, changed_meanwhile():
        session = uow.session
        operator = refreshed(session, operator)
        member = _managed_member(session, operator, member_id)
        policy = load_settings(session, operator.organization_id)
        if not notifications.is_enabled(policy, notifications.NotificationKind.OPERATOR_SIGN_IN):
            raise Conflict("Sign-in emails are switched off (Settings › Notifications): give "
                           f"{member.display_name} a one-time password instead.")
        before = _sign_in_before(member, bool(_pending_link_ids(session, [member.id])))
        if member.id == operator.member_id:
            raise Conflict("You cannot reset your own sign-in here; change your password instead.")
        org = session.get(Organization, operator.organization_id)
        if org is None or not org.registration_base_url.strip():
            raise SettingsIncomplete(
                "Set the organization's registration web address (Settings › Organization) "
                "first: the sign-in link opens a page there. Or give a one-time password.",
                settings_page="organization")
        _end_sign_in(session, member, now)
        link = SignInLink(organization_id=operator.organization_id, member_id=member.id,
                          issued_by_id=operator.member_id,
                          expires_at=now + timedelta(days=SIGN_IN_LINK_DAYS))
        session.add(link)
        session.flush()
        mail = notifications.enqueue(
            session, organization_id=operator.organization_id,
            kind=notifications.NotificationKind.OPERATOR_SIGN_IN,
            to_email=member.email, to_name=member.display_name,
            context={"admin_name": operator.name, "role_label": Role.parse(member.role).label},
            sign_in_link_id=link.id, policy=policy)
        assert mail is not None
        audit.record(session, organization_id=operator.organization_id,
                     actor_id=operator.member_id, action="member.sign_in_link",
                     entity_type="member", entity_id=member.id, before=before,
                     after={"sign_in": SignInState.LINK_PENDING.value,
                            "expires_at": link.expires_at})
        _recheck_admins(session, operator.organization_id, member.display_name)
        uow.commit()
        return SignInLinkIssued(member.id, member.email, link.expires_at, mail.id)


def issue_one_time_password(uow: UnitOfWork, operator: Operator,
                            member_id: uuid.UUID) -> OneTimePassword:
    """A one-time password to hand over in person (ADMIN_LOCAL+, within policy); resets any
    password or pending link. It must be changed at first sign-in."""
    now = utcnow()
    password = "-".join(secrets.token_urlsafe(4) for _ in range(3))
    with uow, changed_meanwhile():
        session = uow.session
        operator = refreshed(session, operator)
        member = _managed_member(session, operator, member_id)
        if member.id == operator.member_id:
            raise Conflict("You cannot reset your own sign-in here; change your password instead.")
        before = _sign_in_before(member, bool(_pending_link_ids(session, [member.id])))
        _end_sign_in(session, member, now)
        member.password_hash = hash_password(password)
        member.must_change_password = True
        audit.record(session, organization_id=operator.organization_id,
                     actor_id=operator.member_id, action="member.one_time_password",
                     entity_type="member", entity_id=member.id, before=before,
                     after={"sign_in": SignInState.ONE_TIME_PASSWORD.value})
        uow.commit()
        return OneTimePassword(member.id, member.email, password)


def revoke_sign_in(uow: UnitOfWork, operator: Operator, member_id: uuid.UUID) -> PersonView:
    """Remove the member's desktop sign-in (ADMIN_LOCAL+, within policy): password and
    pending links stop working, and a session already open is refused at its next action.
    The last active organization admin's sign-in cannot be revoked."""
    now = utcnow()
    with uow, changed_meanwhile():
        session = uow.session
        operator = refreshed(session, operator)
        member = _member_in_org(session, operator, member_id)
        _require_editable(operator, member)
        if member.id == operator.member_id:
            raise Conflict("You cannot revoke your own sign-in.")
        if Role.parse(member.role) is Role.ADMIN_TENANT:
            others = [i for i in _lock_active_admins(session, member.organization_id)
                      if i != member.id]
            with_sign_in = session.scalar(select(func.count()).select_from(Member).where(
                Member.id.in_(others), Member.password_hash.is_not(None))) if others else 0
            if not with_sign_in:
                raise Conflict(LAST_ADMIN.format(name=member.display_name).replace(
                    "make someone else", "give another organization admin a sign-in or make "
                    "someone else"))
        pending = _pending_link_ids(session, [member.id])
        before = _sign_in_before(member, bool(pending))
        _end_sign_in(session, member, now)
        audit.record(session, organization_id=operator.organization_id,
                     actor_id=operator.member_id, action="member.sign_in_revoked",
                     entity_type="member", entity_id=member.id, before=before,
                     after={"sign_in": SignInState.NONE.value})
        uow.commit()
        return _view(session, member, set())
