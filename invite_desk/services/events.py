"""Events guests can be invited to (a read model for the composer's event picker)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from invite_desk.services.models import Event
from invite_desk.services.uow import UnitOfWork


@dataclass(frozen=True)
class EventInfo:
    id: uuid.UUID
    name: str
    starts_at: datetime | None
    location: str
    unit_id: uuid.UUID | None

    @property
    def label(self) -> str:
        """Name, then the date and place when known: Summer Regatta — 12 Jul 2025, Harbour."""
        details = [part for part in (
            self.starts_at.strftime("%d %b %Y") if self.starts_at else "",
            self.location,
        ) if part]
        return f"{self.name} — {', '.join(details)}" if details else self.name


def list_events(uow: UnitOfWork, organization_id: uuid.UUID) -> list[EventInfo]:
    """The organization's events that are not archived, soonest first (undated ones last)."""
    with uow:
        rows = uow.session.scalars(
            select(Event)
            .where(Event.organization_id == organization_id, Event.archived.is_(False))
            .order_by(Event.starts_at.is_(None), Event.starts_at, Event.name)
        )
        return [EventInfo(e.id, e.name, e.starts_at, e.location, e.unit_id) for e in rows]
