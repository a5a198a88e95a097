"""People: a member's role, unit and status, and their desktop sign-in.

Policy (enforced here, mirrored by the windows through `edit_policy`):
- ADMIN_TENANT may edit everyone and grant every role.
- ADMIN_LOCAL may edit members of their own unit whose role is not above their own, may
  grant roles up to ADMIN_LOCAL, and cannot move anyone to another unit.
- Everyone else may edit no one.
- Nobody can demote, deactivate (lapsed, resigned) or revoke the sign-in of the last active
  ADMIN_TENANT; two concurrent demotions of the last two admins cannot both succeed (the
  admin rows are locked, and the count re-checked, before the change is written).
- Members are never deleted: status becomes lapsed or resigned.
Every change writes an audit row with the values before and after.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from invite_desk.services.operator import Operator
from invite_desk.services.roles import Role
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
        return tuple(row for row in self.rows if not row.applied)


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


def list_people(uow: UnitOfWork, operator: Operator, *, search: str = "",
                unit_id: uuid.UUID | None = None, limit: int = 500) -> list[PersonView]:
    """Members within the operator's scope (HR_LOCAL and above; local roles see their unit),
    by name; `search` matches name or email."""
    raise NotImplementedError


def get_person(uow: UnitOfWork, operator: Operator, member_id: uuid.UUID) -> PersonView:
    """One member within the operator's scope (HR_LOCAL and above)."""
    raise NotImplementedError


def edit_policy(uow: UnitOfWork, operator: Operator, member_id: uuid.UUID) -> EditPolicy:
    """What the operator may change on this member (anyone signed in may ask)."""
    raise NotImplementedError


def update_person(uow: UnitOfWork, operator: Operator, member_id: uuid.UUID, *,
                  role: Role | None = None, unit_id: uuid.UUID | None | Unset = KEEP,
                  status: str | None = None, expected_version: int | None = None) -> PersonView:
    """Change role, unit and/or status (ADMIN_LOCAL and above, within the policy above).
    `expected_version` (from PersonView.version) turns a concurrent edit into Conflict."""
    raise NotImplementedError


def bulk_update(uow: UnitOfWork, operator: Operator, member_ids: Sequence[uuid.UUID], *,
                role: Role | None = None,
                unit_id: uuid.UUID | None | Unset = KEEP) -> BulkOutcome:
    """Change role and/or unit of a selection; per-row outcome (see BulkOutcome)."""
    raise NotImplementedError


def issue_sign_in_link(uow: UnitOfWork, operator: Operator, member_id: uuid.UUID, *,
                       now: datetime | None = None) -> SignInLinkIssued:
    """Email the member a link to set their desktop password (ADMIN_LOCAL+, within policy).
    Replaces (resets) any password or earlier link they had. The link's token exists only in
    the email: it is minted when the notification is sent and only its SHA-256 is stored;
    single use; expires after SIGN_IN_LINK_DAYS."""
    raise NotImplementedError


def issue_one_time_password(uow: UnitOfWork, operator: Operator,
                            member_id: uuid.UUID) -> OneTimePassword:
    """A one-time password to hand over in person (ADMIN_LOCAL+, within policy); resets any
    password or pending link. It must be changed at first sign-in."""
    raise NotImplementedError


def revoke_sign_in(uow: UnitOfWork, operator: Operator, member_id: uuid.UUID) -> PersonView:
    """Remove the member's desktop sign-in (ADMIN_LOCAL+, within policy): password and
    pending links stop working, and a session already open is refused at its next action."""
    raise NotImplementedError
