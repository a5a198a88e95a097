"""The organization the portal serves, and what its pages show of it."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from invite_desk.services.models import Organization
from invite_desk.services.uow import UnitOfWork

DEFAULT_ACCENT = "#2F6FEB"
_HEX_COLOUR = re.compile(r"#[0-9A-Fa-f]{6}")


@dataclass(frozen=True)
class Branding:
    organization_id: uuid.UUID
    name: str
    description: str
    accent_color: str  # always a valid #RRGGBB (a stored value that is not falls back)
    has_logo: bool

    @property
    def accent_text_color(self) -> str:
        """Black or white, whichever reads better on the accent colour (WCAG luminance)."""
        channels = [int(self.accent_color[i : i + 2], 16) / 255 for i in (1, 3, 5)]
        linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        luminance = 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]
        return "#111111" if luminance > 0.35 else "#FFFFFF"


@dataclass(frozen=True)
class Logo:
    data: bytes
    mime: str


def portal_organization_id(uow: UnitOfWork) -> uuid.UUID | None:
    """The organization this database serves (the oldest one that is not archived)."""
    with uow:
        return uow.session.scalar(
            select(Organization.id)
            .where(Organization.archived.is_(False))
            .order_by(Organization.created_at, Organization.id)
            .limit(1)
        )


def branding_of(session: Session, organization_id: uuid.UUID) -> Branding | None:
    org = session.get(Organization, organization_id)
    if org is None:
        return None
    accent = org.accent_color if _HEX_COLOUR.fullmatch(org.accent_color or "") else DEFAULT_ACCENT
    return Branding(
        organization_id=org.id,
        name=org.name,
        description=org.description,
        accent_color=accent.upper(),
        has_logo=bool(org.logo) and bool(org.logo_mime),
    )


def get_branding(uow: UnitOfWork, organization_id: uuid.UUID) -> Branding | None:
    with uow:
        return branding_of(uow.session, organization_id)


def get_logo(uow: UnitOfWork, organization_id: uuid.UUID) -> Logo | None:
    with uow:
        row = uow.session.execute(
            select(Organization.logo, Organization.logo_mime).where(
                Organization.id == organization_id
            )
        ).first()
    if row is None or not row.logo or not row.logo_mime:
        return None
    return Logo(bytes(row.logo), row.logo_mime)
