"""Events: create, edit, archive; each event's guests and which of them later joined.

ADMIN_TENANT manages every event; ADMIN_LOCAL the events of their own unit (an event they
create belongs to their unit). HR_LOCAL and above may read events and guests in their scope.
Start times are entered as a local date-time in an IANA time zone and stored in UTC with
the zone's name, so "19:00 Europe/Paris" stays 19:00 there across daylight-saving changes.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from invite_desk.services import audit
from invite_desk.services.concurrency import changed_meanwhile
from invite_desk.services.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from invite_desk.services.events import local_time
from invite_desk.services.models import Event, EventGuest, Invitation, Member, MemberStatus, Unit
from invite_desk.services.operator import Operator, refreshed
from invite_desk.services.permissions import Action, Target, require
from invite_desk.services.roles import Role
from invite_desk.services.uow import UnitOfWork

NAME_MAX = 200
LOCATION_MAX = 300
DESCRIPTION_MAX = 5000
CAPACITY_MAX = 1_000_000


@dataclass(frozen=True)
class EventDraft:
    name: str
    starts_at_local: datetime | None  # naive wall-clock time in `time_zone`
    time_zone: str  # IANA name, e.g. "Europe/Paris"
    location: str = ""
    description: str = ""
    capacity: int | None = None  # None = unlimited
    guests_allowed: bool = True
    unit_id: uuid.UUID | None = None


@dataclass(frozen=True)
class EventView:
    id: uuid.UUID
    name: str
    starts_at: datetime | None  # aware, UTC
    starts_at_local: datetime | None  # aware, in time_zone
    time_zone: str
    location: str
    description: str
    capacity: int | None
    guests_allowed: bool
    unit_id: uuid.UUID | None
    unit_name: str
    archived: bool
    guests: int
    joined: int  # guests who later became members
    version: int


@dataclass(frozen=True)
class GuestRow:
    guest_id: uuid.UUID
    name: str
    email: str
    registered_at: datetime
    invited_by: str  # the inviter credited ("" when unknown)
    inviter_id: uuid.UUID | None
    member_id: uuid.UUID | None  # the member they later became
    joined: bool
    joined_at: datetime | None


def time_zone_names() -> list[str]:
    """Every IANA zone this machine knows, sorted (for the window's picker)."""
    return sorted(available_timezones())


def _counts(session: Session, event_ids: list[uuid.UUID]) -> dict[uuid.UUID, tuple[int, int]]:
    if not event_ids:
        return {}
    guests = dict(session.execute(
        select(EventGuest.event_id, func.count()).where(EventGuest.event_id.in_(event_ids))
        .group_by(EventGuest.event_id)).all())
    joined = dict(session.execute(
        select(EventGuest.event_id, func.count())
        .join(Member, Member.id == EventGuest.member_id)
        .where(EventGuest.event_id.in_(event_ids), Member.joined_at >= EventGuest.registered_at,
               Member.status == MemberStatus.ACTIVE.value)
        .group_by(EventGuest.event_id)).all())
    return {eid: (guests.get(eid, 0), joined.get(eid, 0)) for eid in event_ids}


def _view(session: Session, event: Event,
          counts: dict[uuid.UUID, tuple[int, int]] | None = None) -> EventView:
    if counts is None:
        counts = _counts(session, [event.id])
    unit_name = ""
    if event.unit_id is not None:
        unit = session.get(Unit, event.unit_id)
        unit_name = unit.name if unit is not None else ""
    guests, joined = counts.get(event.id, (0, 0))
    return EventView(
        id=event.id, name=event.name, starts_at=event.starts_at,
        starts_at_local=local_time(event.starts_at, event.time_zone),
        time_zone=event.time_zone, location=event.location, description=event.description,
        capacity=event.capacity, guests_allowed=event.guests_allowed, unit_id=event.unit_id,
        unit_name=unit_name, archived=event.archived, guests=guests, joined=joined,
        version=event.version,
    )


def _event(session: Session, operator: Operator, event_id: uuid.UUID) -> Event:
    event = session.get(Event, event_id)
    if event is None or event.organization_id != operator.organization_id:
        raise NotFound("This event no longer exists.")
    return event


def _validated(session: Session, operator: Operator, draft: EventDraft) -> dict[str, Any]:
    errors: dict[str, str] = {}
    name = " ".join(draft.name.split())
    if not name:
        errors["name"] = "An event needs a name."
    elif len(name) > NAME_MAX:
        errors["name"] = f"must be at most {NAME_MAX} characters"
    zone: ZoneInfo | None = None
    try:
        zone = ZoneInfo(draft.time_zone.strip())
    except (ZoneInfoNotFoundError, ValueError):
        errors["time_zone"] = (f"{draft.time_zone!r} is not a time zone; use a name like "
                               "Europe/Paris or America/New_York.")
    starts_at = None
    if draft.starts_at_local is not None and zone is not None:
        wall = draft.starts_at_local.replace(tzinfo=None)
        aware = wall.replace(tzinfo=zone)
        # A wall-clock time skipped by a daylight-saving jump does not exist there.
        if aware.astimezone(ZoneInfo("UTC")).astimezone(zone).replace(tzinfo=None) != wall:
            errors["starts_at"] = (f"{wall:%d %b %Y %H:%M} does not exist in {zone.key} (the "
                                   "clocks jump forward then); choose another time.")
        else:
            starts_at = aware.astimezone(ZoneInfo("UTC"))
    location = draft.location.strip()
    if len(location) > LOCATION_MAX:
        errors["location"] = f"must be at most {LOCATION_MAX} characters"
    description = draft.description.strip()
    if len(description) > DESCRIPTION_MAX:
        errors["description"] = f"must be at most {DESCRIPTION_MAX:,} characters"
    if draft.capacity is not None and not 1 <= draft.capacity <= CAPACITY_MAX:
        errors["capacity"] = "must be at least 1 (or empty for no limit)"
    unit_id = draft.unit_id
    if operator.role is not Role.ADMIN_TENANT:
        if unit_id is None:
            unit_id = operator.unit_id
        elif unit_id != operator.unit_id:
            errors["unit"] = "You can only create events for your own unit."
    if unit_id is not None:
        unit = session.get(Unit, unit_id)
        if unit is None or unit.organization_id != operator.organization_id:
            errors["unit"] = "This unit no longer exists."
        elif unit.archived:
            errors["unit"] = f"{unit.name} is archived."
    if errors:
        raise ValidationFailed(errors)
    return {"name": name, "starts_at": starts_at, "time_zone": zone.key if zone else "UTC",
            "location": location, "description": description, "capacity": draft.capacity,
            "guests_allowed": draft.guests_allowed, "unit_id": unit_id}


def _snapshot(event: Event) -> dict[str, Any]:
    return {"name": event.name, "starts_at": event.starts_at, "time_zone": event.time_zone,
            "location": event.location, "description": event.description,
            "capacity": event.capacity, "guests_allowed": event.guests_allowed,
            "unit_id": event.unit_id, "archived": event.archived}


def list_events(uow: UnitOfWork, operator: Operator, *,
                include_archived: bool = False) -> list[EventView]:
    """Events in scope, soonest first, undated last (HR_LOCAL and above; local roles see
    their unit's events and the organization-wide ones)."""
    with uow:
        session = uow.session
        operator = refreshed(session, operator)
        require(operator, Action.VIEW_EVENTS)
        stmt = select(Event).where(Event.organization_id == operator.organization_id)
        if not include_archived:
            stmt = stmt.where(Event.archived.is_(False))
        if not operator.role.is_tenant_wide:
            stmt = stmt.where((Event.unit_id.is_(None)) | (Event.unit_id == operator.unit_id))
        events = list(session.scalars(
            stmt.order_by(Event.starts_at.is_(None), Event.starts_at, Event.name)))
        counts = _counts(session, [e.id for e in events])
        return [_view(session, e, counts) for e in events]


def get_event(uow: UnitOfWork, operator: Operator, event_id: uuid.UUID) -> EventView:
    """One event in scope (HR_LOCAL and above)."""
    with uow:
        session = uow.session
        operator = refreshed(session, operator)
        event = _event(session, operator, event_id)
        if event.unit_id is not None:
            require(operator, Action.VIEW_EVENTS, target=Target(unit_id=event.unit_id))
        else:
            require(operator, Action.VIEW_EVENTS)
        return _view(session, event)


def _require_manage(operator: Operator, event: Event | None) -> None:
    """ADMIN_TENANT: every event; ADMIN_LOCAL: their unit's (not organization-wide ones)."""
    target = Target(unit_id=event.unit_id) if event is not None else None
    require(operator, Action.MANAGE_EVENTS, target=target)
    if event is not None and event.unit_id is None and operator.role is not Role.ADMIN_TENANT:
        raise PermissionDenied(str(Action.MANAGE_EVENTS), Role.ADMIN_TENANT.name,
                               detail="It is an organization-wide event.")


def create_event(uow: UnitOfWork, operator: Operator, draft: EventDraft) -> EventView:
    """ADMIN_LOCAL (own unit) or ADMIN_TENANT. ValidationFailed names every bad field."""
    with uow, changed_meanwhile():
        session = uow.session
        operator = refreshed(session, operator)
        _require_manage(operator, None)
        values = _validated(session, operator, draft)
        event = Event(organization_id=operator.organization_id, **values)
        session.add(event)
        session.flush()
        audit.record(session, organization_id=operator.organization_id,
                     actor_id=operator.member_id, action="event.create", entity_type="event",
                     entity_id=event.id, after=_snapshot(event))
        uow.commit()
        return _view(session, event)


def update_event(uow: UnitOfWork, operator: Operator, event_id: uuid.UUID, draft: EventDraft,
                 *, expected_version: int | None = None) -> EventView:
    """Edit every field (same rights as create, on the event's unit)."""
    with uow, changed_meanwhile():
        session = uow.session
        operator = refreshed(session, operator)
        event = _event(session, operator, event_id)
        _require_manage(operator, event)
        if expected_version is not None and event.version != expected_version:
            raise Conflict(f"{event.name} was changed by someone else; reload and try again.")
        if event.archived:
            raise Conflict(f"{event.name} is archived; it can no longer be edited.")
        values = _validated(session, operator, draft)
        before = _snapshot(event)
        for key, value in values.items():
            setattr(event, key, value)
        after = _snapshot(event)
        if after != before:
            changed = {k for k in after if after[k] != before[k]}
            audit.record(session, organization_id=operator.organization_id,
                         actor_id=operator.member_id, action="event.update",
                         entity_type="event", entity_id=event.id,
                         before={k: before[k] for k in changed},
                         after={k: after[k] for k in changed})
            uow.commit()
        return _view(session, event)


def archive_event(uow: UnitOfWork, operator: Operator, event_id: uuid.UUID) -> EventView:
    """Archived events leave Compose's event list; guests and history stay."""
    with uow, changed_meanwhile():
        session = uow.session
        operator = refreshed(session, operator)
        event = _event(session, operator, event_id)
        _require_manage(operator, event)
        if not event.archived:
            event.archived = True
            audit.record(session, organization_id=operator.organization_id,
                         actor_id=operator.member_id, action="event.archive",
                         entity_type="event", entity_id=event.id,
                         before={"archived": False}, after={"archived": True})
            uow.commit()
        return _view(session, event)


def event_guests(uow: UnitOfWork, operator: Operator, event_id: uuid.UUID) -> list[GuestRow]:
    """The event's guests, newest first, with the inviter credited (the event invitation's
    inviter, as DESIGN.md says) and whether they later joined as a member."""
    with uow:
        session = uow.session
        operator = refreshed(session, operator)
        event = _event(session, operator, event_id)
        if event.unit_id is not None:
            require(operator, Action.VIEW_EVENTS, target=Target(unit_id=event.unit_id))
        else:
            require(operator, Action.VIEW_EVENTS)
        inviter = Member.__table__.alias("inviter")
        joined_member = Member.__table__.alias("joined_member")
        rows = session.execute(
            select(EventGuest, Invitation.inviter_id, inviter.c.first_name, inviter.c.last_name,
                   inviter.c.email, joined_member.c.joined_at, joined_member.c.status)
            .outerjoin(Invitation, Invitation.id == EventGuest.invitation_id)
            .outerjoin(inviter, inviter.c.id == Invitation.inviter_id)
            .outerjoin(joined_member, joined_member.c.id == EventGuest.member_id)
            .where(EventGuest.event_id == event.id)
            .order_by(EventGuest.registered_at.desc(), EventGuest.id.desc())
        ).all()
        result: list[GuestRow] = []
        for guest, inviter_id, first, last, email, joined_at, status in rows:
            inviter_name = f"{first or ''} {last or ''}".strip() or (email or "")
            # Joined: a member now, who became one at or after registering as a guest.
            joined = (guest.member_id is not None and joined_at is not None
                      and joined_at >= guest.registered_at
                      and status == MemberStatus.ACTIVE.value)
            result.append(GuestRow(
                guest_id=guest.id, name=guest.display_name, email=guest.email,
                registered_at=guest.registered_at, invited_by=inviter_name,
                inviter_id=inviter_id, member_id=guest.member_id, joined=joined,
                joined_at=joined_at if joined else None))
        return result
