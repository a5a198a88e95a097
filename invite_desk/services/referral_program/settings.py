"""Gamification settings and the organization time zone, stored as `Setting` rows under
`referralProgram.*` (the policy settings loader ignores keys it does not know)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import fields, replace
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.orm import Session

from invite_desk.services import audit
from invite_desk.services.concurrency import changed_meanwhile
from invite_desk.services.errors import NotFound, ValidationFailed
from invite_desk.services.models import LeaderboardOptOut, Member, Setting, utcnow
from invite_desk.services.operator import Operator, refreshed
from invite_desk.services.permissions import Action, Target, require
from invite_desk.services.referral_program.types import GamificationSettings
from invite_desk.services.roles import Role
from invite_desk.services.uow import UnitOfWork

PREFIX = "referralProgram."
KEYS: dict[str, str] = {  # field -> stored key
    "points_per_referral": "pointsPerReferral",
    "badge_milestones": "badgeMilestones",
    "vesting_hold_days": "vestingHoldDays",
    "leaderboard_visible_to_members": "leaderboardVisibleToMembers",
    "time_zone": "organizationTimeZone",
    "burst_per_hour": "burstPerHour",
    "domain_concentration": "domainConcentration",
    "low_acceptance_volume": "lowAcceptanceVolume",
    "low_acceptance_rate": "lowAcceptanceRate",
    "never_active_days": "neverActiveDays",
}
LABELS: dict[str, str] = {
    "points_per_referral": "Points per completed referral",
    "badge_milestones": "Badge milestones",
    "vesting_hold_days": "Hold before points vest (days)",
    "leaderboard_visible_to_members": "Show the leaderboard to members",
    "time_zone": "Organization time zone",
    "burst_per_hour": "Burst threshold (invitations per hour)",
    "domain_concentration": "Invitations to one domain before a flag",
    "low_acceptance_volume": "Invitations before the acceptance rate is checked",
    "low_acceptance_rate": "Lowest acceptable acceptance rate",
    "never_active_days": "Days before a never-active referee is flagged",
}


def _whole(low: int, high: int) -> Callable[[Any], Any]:
    def check(value: Any) -> int:
        if isinstance(value, bool):
            raise ValueError("must be a whole number")
        try:
            number = int(str(value).strip())
        except ValueError:
            raise ValueError("must be a whole number") from None
        if not low <= number <= high:
            raise ValueError(f"must be between {low} and {high}")
        return number

    return check


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise ValueError("must be on or off")


def _rate(value: Any) -> float:
    try:
        number = float(str(value).strip().rstrip("%"))
    except ValueError:
        raise ValueError("must be a number between 0 and 1") from None
    if isinstance(value, str) and value.strip().endswith("%"):
        number /= 100
    if not 0 <= number <= 1:
        raise ValueError("must be between 0 and 1 (0% and 100%)")
    return number


def _milestones(value: Any) -> tuple[int, ...]:
    items: list[Any]
    if isinstance(value, str):
        items = [part for part in value.replace(";", ",").split(",") if part.strip()]
    elif isinstance(value, list | tuple):
        items = list(value)
    else:
        raise ValueError("must be a list of whole numbers, e.g. 1, 5, 10")
    numbers = [_whole(1, 100_000)(item) for item in items]
    if not 1 <= len(numbers) <= 10:
        raise ValueError("needs between 1 and 10 numbers")
    if len(set(numbers)) != len(numbers):
        raise ValueError("has the same number twice")
    return tuple(sorted(numbers))


def _zone(value: Any) -> str:
    name = str(value).strip()
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{name!r} is not a known time zone (e.g. Europe/Paris, UTC)") from None
    return name


CHECKS: dict[str, Callable[[Any], Any]] = {
    "points_per_referral": _whole(0, 10_000),
    "badge_milestones": _milestones,
    "vesting_hold_days": _whole(0, 365),
    "leaderboard_visible_to_members": _flag,
    "time_zone": _zone,
    "burst_per_hour": _whole(1, 100_000),
    "domain_concentration": _whole(2, 1_000_000),
    "low_acceptance_volume": _whole(1, 1_000_000),
    "low_acceptance_rate": _rate,
    "never_active_days": _whole(1, 3650),
}
assert set(CHECKS) == set(KEYS) == {f.name for f in fields(GamificationSettings)}


def _stored(session: Session, organization_id: uuid.UUID) -> dict[str, Setting]:
    rows = session.scalars(select(Setting).where(
        Setting.organization_id == organization_id, Setting.key.startswith(PREFIX)))
    return {row.key: row for row in rows}


def load(session: Session, organization_id: uuid.UUID) -> GamificationSettings:
    """The settings; a missing or broken stored value falls back to its default."""
    rows = _stored(session, organization_id)
    values: dict[str, Any] = {}
    for field, key in KEYS.items():
        row = rows.get(PREFIX + key)
        if row is None:
            continue
        try:
            values[field] = CHECKS[field](json.loads(row.value_json))
        except (ValueError, TypeError):
            continue
    return replace(GamificationSettings(), **values)


def validate(changes: Mapping[str, Any]) -> dict[str, Any]:
    errors: dict[str, str] = {}
    clean: dict[str, Any] = {}
    for field, raw in changes.items():
        if field not in CHECKS:
            errors[field] = "is not a referral programme setting"
            continue
        try:
            clean[field] = CHECKS[field](raw)
        except ValueError as exc:
            errors[field] = f"{LABELS[field]} {exc}"
    if errors:
        raise ValidationFailed(errors)
    return clean


def get_settings(uow: UnitOfWork, operator: Operator) -> GamificationSettings:
    """The programme's settings (any signed-in member may read them)."""
    with uow:
        operator = refreshed(uow.session, operator)
        return load(uow.session, operator.organization_id)


def _stored_value(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def save_settings(uow: UnitOfWork, operator: Operator,
                  changes: Mapping[str, Any]) -> GamificationSettings:
    """Apply changes (GamificationSettings field -> value); ADMIN_TENANT; audited;
    ValidationFailed lists every bad field."""
    require(operator, Action.CHANGE_SETTINGS)
    clean = validate(changes)
    with uow, changed_meanwhile():
        session = uow.session
        operator = refreshed(session, operator)
        require(operator, Action.CHANGE_SETTINGS)
        rows = _stored(session, operator.organization_id)
        current = load(session, operator.organization_id)
        before: dict[str, Any] = {}
        after: dict[str, Any] = {}
        for field, value in clean.items():
            old = getattr(current, field)
            if old == value:
                continue
            key = PREFIX + KEYS[field]
            before[key] = _stored_value(old)
            after[key] = _stored_value(value)
            encoded = json.dumps(_stored_value(value))
            row = rows.get(key)
            if row is None:
                session.add(Setting(organization_id=operator.organization_id, key=key,
                                    value_json=encoded))
            else:
                row.value_json = encoded
        if not after:
            return current
        audit.record(session, organization_id=operator.organization_id,
                     actor_id=operator.member_id, action="referral_program.settings.update",
                     entity_type="settings", before=before, after=after)
        updated = replace(current, **clean)
        uow.commit()
        return updated


def _opt_out_reach(session: Session, operator: Operator, member_id: uuid.UUID) -> None:
    """Who may read or change a member's leaderboard opt-out: the member themself, or an
    admin for a member in scope (NotFound for a member of no concern, PermissionDenied with
    the role needed otherwise)."""
    member = session.get(Member, member_id)
    if member is None or member.organization_id != operator.organization_id:
        raise NotFound("That member no longer exists.")
    if member_id != operator.member_id:
        if operator.role < Role.ADMIN_LOCAL:
            require(operator, Action.CHANGE_SETTINGS)  # names the role needed
        require(operator, Action.VIEW_MEMBER,
                target=Target(unit_id=member.unit_id, owner_ids=(member.id,)))


def set_leaderboard_opt_out(uow: UnitOfWork, operator: Operator, member_id: uuid.UUID,
                            opted_out: bool) -> bool:
    """A member opts out of (or back into) the public leaderboard: themself, or an admin for
    a member in scope. Audited. Returns the new value."""
    with uow, changed_meanwhile():
        session = uow.session
        operator = refreshed(session, operator)
        _opt_out_reach(session, operator, member_id)
        row = session.get(LeaderboardOptOut, member_id)
        if (row is not None) == opted_out:
            return opted_out
        if opted_out:
            session.add(LeaderboardOptOut(member_id=member_id,
                                          organization_id=operator.organization_id,
                                          at=utcnow()))
        else:
            session.delete(row)
        audit.record(session, organization_id=operator.organization_id,
                     actor_id=operator.member_id, action="referral_program.leaderboard_opt_out",
                     entity_type="member", entity_id=member_id,
                     before={"opted_out": not opted_out}, after={"opted_out": opted_out})
        uow.commit()
        return opted_out


def leaderboard_opt_out(uow: UnitOfWork, operator: Operator, member_id: uuid.UUID) -> bool:
    """Whether a member opted out of the public leaderboard: asked by themself, or by an
    admin for a member in scope (the same rights as `set_leaderboard_opt_out`)."""
    with uow:
        session = uow.session
        operator = refreshed(session, operator)
        _opt_out_reach(session, operator, member_id)
        return session.get(LeaderboardOptOut, member_id) is not None
