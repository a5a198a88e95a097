"""Events guests can be invited to (a read model for the composer's event picker)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import or_, select

from invite_desk.services.models import Event, utcnow
from invite_desk.services.uow import UnitOfWork


def local_time(starts_at: datetime | None, time_zone: str) -> datetime | None:
    """The start in the event's own zone (UTC when the zone is unknown to this machine)."""
    if starts_at is None:
        return None
    try:
        return starts_at.astimezone(ZoneInfo(time_zone))
    except (ZoneInfoNotFoundError, ValueError):
        return starts_at


@dataclass(frozen=True)
class EventInfo:
    id: uuid.UUID
    name: str
    starts_at: datetime | None
    location: str
    unit_id: uuid.UUID | None
    time_zone: str = "UTC"

    @property
    def label(self) -> str:
        """Name, then the date and place when known: Summer Regatta — 12 Jul 2025, Harbour.
        The date is the event's own (in its time zone), not this computer's."""
        local = local_time(self.starts_at, self.time_zone)
        details = [part for part in (
            local.strftime("%d %b %Y") if local else "",
            self.location,
        ) if part]
        return f"{self.name} — {', '.join(details)}" if details else self.name


def list_events(uow: UnitOfWork, organization_id: uuid.UUID, *,
                unit_id: uuid.UUID | None = None, now: datetime | None = None) -> list[EventInfo]:
    """Events guests can be invited to: not archived, guests allowed, not started yet (undated
    ones included), soonest first (undated ones last). With `unit_id`, that unit's events and
    the organization-wide ones."""
    now = now or utcnow()
    with uow:
        stmt = (
            select(Event)
            .where(Event.organization_id == organization_id, Event.archived.is_(False),
                   Event.guests_allowed.is_(True),
                   or_(Event.starts_at.is_(None), Event.starts_at >= now))
            .order_by(Event.starts_at.is_(None), Event.starts_at, Event.name)
        )
        if unit_id is not None:
            stmt = stmt.where(or_(Event.unit_id.is_(None), Event.unit_id == unit_id))
        rows = uow.session.scalars(stmt)
        return [EventInfo(e.id, e.name, e.starts_at, e.location, e.unit_id, e.time_zone)
                for e in rows]
