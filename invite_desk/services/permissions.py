"""The permission policy. The services enforce it; the UI only mirrors `decide()`."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from enum import StrEnum

from invite_desk.services.errors import PermissionDenied
from invite_desk.services.operator import Operator
from invite_desk.services.roles import Role
from invite_desk.services.settings_schema import PolicySettings


class Action(StrEnum):
    """Guarded actions; the value completes "You cannot ..."."""

    CHANGE_SETTINGS = "change the organization's settings"
    SEND_INVITATIONS = "send invitations"
    SEND_ON_BEHALF = "send invitations on behalf of another member"
    VIEW_INVITATION = "see this invitation"
    MANAGE_INVITATION = "resend, revoke or extend this invitation"
    APPROVE_APPLICATION = "approve or reject this membership application"
    VIEW_MEMBER = "see this member"
    # Issue 11: administration.
    MANAGE_PEOPLE = "change this member's role, unit, status or sign-in"
    VIEW_PEOPLE = "see the people of the organization"
    MANAGE_UNITS = "create, rename, merge or archive units"
    MANAGE_EVENTS = "create, edit or archive this event"
    VIEW_EVENTS = "see events and their guests"
    VIEW_AUDIT_LOG = "see the audit log"
    VIEW_SUPPRESSION = "see the suppression list"
    MANAGE_SUPPRESSION = "add to or undo the suppression list"


@dataclass(frozen=True)
class Target:
    """What an action is about: the unit it belongs to and the member who owns it."""

    unit_id: uuid.UUID | None = None
    owner_ids: tuple[uuid.UUID, ...] = ()


@dataclass(frozen=True)
class Decision:
    allowed: bool
    needed: Role
    reason: str = ""


class ScopeLevel(StrEnum):
    OWN = "own"
    UNIT = "unit"
    ORGANIZATION = "organization"


@dataclass(frozen=True)
class Scope:
    """Which rows an operator may see: a read model filters with this."""

    level: ScopeLevel
    member_id: uuid.UUID
    unit_id: uuid.UUID | None


def scope_of(operator: Operator) -> Scope:
    if operator.role.is_tenant_wide:
        level = ScopeLevel.ORGANIZATION
    elif operator.role.is_local:
        level = ScopeLevel.UNIT
    else:
        level = ScopeLevel.OWN
    return Scope(level, operator.member_id, operator.unit_id)


def in_scope(operator: Operator, target: Target) -> bool:
    scope = scope_of(operator)
    if scope.level is ScopeLevel.ORGANIZATION:
        return True
    if operator.member_id in target.owner_ids:
        return True
    if scope.level is ScopeLevel.UNIT:
        return target.unit_id is not None and target.unit_id == operator.unit_id
    return False


def _role_gate(operator: Operator, needed: Role, reason: str = "") -> Decision:
    return Decision(operator.role >= needed, needed, reason)


def _lowest_role_reaching(operator: Operator, target: Target | None, at_least: Role) -> Role:
    """The lowest role above the operator's (and at least `at_least`) whose scope covers `target`.

    Scope does not grow with rank (ADMIN_LOCAL outranks HR_TENANT but sees one unit), so a
    denial must never name a role the operator already holds or outranks.
    """
    for role in Role:
        if role > operator.role and role >= at_least and (
            target is None or in_scope(replace(operator, role=role), target)
        ):
            return role
    return Role.ADMIN_TENANT


def decide(
    operator: Operator,
    action: Action,
    *,
    settings: PolicySettings | None = None,
    target: Target | None = None,
) -> Decision:
    """Whether `operator` may do `action` (on `target`), and which role it would need."""
    if action in (Action.CHANGE_SETTINGS, Action.MANAGE_SUPPRESSION):
        return _role_gate(operator, Role.ADMIN_TENANT)
    if action is Action.VIEW_SUPPRESSION:  # organization-wide: addresses of every unit
        return _role_gate(operator, Role.HR_TENANT)
    if action in (Action.SEND_INVITATIONS, Action.SEND_ON_BEHALF):
        if settings is None:
            raise ValueError("sending decisions need the organization's settings")
        needed = settings.who_can_send_user_invitation
        if action is Action.SEND_ON_BEHALF:
            needed = max(needed, Role.HR_LOCAL)
        if not settings.has_user_invitation:
            return Decision(
                False,
                needed,
                "Invitations are turned off for the organization; an organization admin "
                "can turn them on in Settings.",
            )
        if operator.role < needed:
            return Decision(False, _lowest_role_reaching(operator, target, needed))
        if target is not None and not in_scope(operator, target):
            return Decision(
                False,
                _lowest_role_reaching(operator, target, needed),
                "That member is outside your unit.",
            )
        return Decision(True, needed)
    if action in (Action.VIEW_INVITATION, Action.VIEW_MEMBER, Action.MANAGE_INVITATION):
        assert target is not None, "row actions need a target"
        if in_scope(operator, target):
            return Decision(True, operator.role)
        return Decision(
            False, _lowest_role_reaching(operator, target, Role.USER), "It is outside your scope."
        )
    if action is Action.APPROVE_APPLICATION:
        assert target is not None, "approvals need a target"
        unit_only = Target(unit_id=target.unit_id)
        if operator.role < Role.HR_LOCAL:
            return Decision(False, _lowest_role_reaching(operator, unit_only, Role.HR_LOCAL))
        if not in_scope(operator, unit_only):
            return Decision(
                False,
                _lowest_role_reaching(operator, unit_only, Role.HR_LOCAL),
                "The applicant belongs to another unit.",
            )
        return Decision(True, operator.role)
    if action in (Action.MANAGE_PEOPLE, Action.MANAGE_EVENTS, Action.VIEW_PEOPLE,
                  Action.VIEW_EVENTS):
        # People and events: local admins (and HR, for reading) within their unit; the
        # organization roles everywhere. The people policy's role limits are in admin/people.py.
        needed = (Role.ADMIN_LOCAL if action in (Action.MANAGE_PEOPLE, Action.MANAGE_EVENTS)
                  else Role.HR_LOCAL)
        if operator.role < needed:
            return Decision(False, _lowest_role_reaching(operator, target, needed))
        if target is not None and not in_scope(operator, Target(unit_id=target.unit_id)):
            unit_only = Target(unit_id=target.unit_id)
            return Decision(False, _lowest_role_reaching(operator, unit_only, needed),
                            "It belongs to another unit." if target.unit_id is not None
                            else "It belongs to no unit.")
        return Decision(True, needed)
    if action in (Action.MANAGE_UNITS, Action.VIEW_AUDIT_LOG):
        return _role_gate(operator, Role.ADMIN_TENANT)
    raise ValueError(f"unknown action {action!r}")  # pragma: no cover


def require(
    operator: Operator,
    action: Action,
    *,
    settings: PolicySettings | None = None,
    target: Target | None = None,
) -> None:
    """Raise PermissionDenied naming the role needed, unless `decide` allows the action."""
    decision = decide(operator, action, settings=settings, target=target)
    if not decision.allowed:
        raise PermissionDenied(str(action), decision.needed.name, detail=decision.reason,
                               role_ok=operator.role >= decision.needed)
