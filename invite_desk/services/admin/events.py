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

from invite_desk.services.operator import Operator
from invite_desk.services.uow import UnitOfWork


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


def list_events(uow: UnitOfWork, operator: Operator, *,
                include_archived: bool = False) -> list[EventView]:
    """Events in scope, soonest first (HR_LOCAL and above)."""
    raise NotImplementedError


def get_event(uow: UnitOfWork, operator: Operator, event_id: uuid.UUID) -> EventView:
    raise NotImplementedError


def create_event(uow: UnitOfWork, operator: Operator, draft: EventDraft) -> EventView:
    """ADMIN_LOCAL (own unit) or ADMIN_TENANT. ValidationFailed names every bad field."""
    raise NotImplementedError


def update_event(uow: UnitOfWork, operator: Operator, event_id: uuid.UUID, draft: EventDraft,
                 *, expected_version: int | None = None) -> EventView:
    raise NotImplementedError


def archive_event(uow: UnitOfWork, operator: Operator, event_id: uuid.UUID) -> EventView:
    """Archived events leave Compose's event list; guests and history stay."""
    raise NotImplementedError


def event_guests(uow: UnitOfWork, operator: Operator, event_id: uuid.UUID) -> list[GuestRow]:
    """The event's guests, newest first, with who invited them and whether they joined."""
    raise NotImplementedError
