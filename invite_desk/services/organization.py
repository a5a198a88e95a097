"""The organization's identity and branding (ADMIN_TENANT only, audited)."""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from sqlalchemy import select

from invite_desk.services import audit
from invite_desk.services.errors import NotFound, ValidationFailed
from invite_desk.services.logo import LOGO_TYPES as LOGO_TYPES  # re-exported for the UI
from invite_desk.services.logo import MAX_LOGO_BYTES as MAX_LOGO_BYTES
from invite_desk.services.logo import inspect_logo
from invite_desk.services.models import Organization, Unit
from invite_desk.services.operator import Operator, refreshed
from invite_desk.services.permissions import Action, require
from invite_desk.services.sync import journal
from invite_desk.services.uow import UnitOfWork

HEX_COLOUR = re.compile(r"^#[0-9A-Fa-f]{6}$")


@dataclass(frozen=True)
class OrganizationInfo:
    id: uuid.UUID
    name: str
    description: str
    logo: bytes | None
    logo_mime: str | None
    accent_color: str
    registration_base_url: str


@dataclass(frozen=True)
class UnitInfo:
    id: uuid.UUID
    name: str


def _info(org: Organization) -> OrganizationInfo:
    return OrganizationInfo(
        org.id, org.name, org.description, org.logo, org.logo_mime, org.accent_color,
        org.registration_base_url,
    )


def get_organization(uow: UnitOfWork, organization_id: uuid.UUID) -> OrganizationInfo:
    with uow:
        org = uow.session.get(Organization, organization_id)
        if org is None:
            raise NotFound("The organization no longer exists in this database.")
        return _info(org)


def list_units(uow: UnitOfWork, organization_id: uuid.UUID) -> list[UnitInfo]:
    with uow:
        rows = uow.session.scalars(
            select(Unit)
            .where(Unit.organization_id == organization_id, Unit.archived.is_(False))
            .order_by(Unit.name)
        )
        return [UnitInfo(u.id, u.name) for u in rows]


FIELDS = ("name", "description", "logo", "logo_mime", "accent_color", "registration_base_url")


def validate(changes: Mapping[str, Any]) -> dict[str, Any]:
    errors: dict[str, str] = {}
    clean: dict[str, Any] = {}
    for field, value in changes.items():
        if field not in FIELDS:
            errors[field] = "is not an organization field"
            continue
        if field == "name":
            value = str(value).strip()
            if not value:
                errors[field] = "Name is required"
            elif len(value) > 200:
                errors[field] = "Name must be at most 200 characters"
        elif field == "description":
            value = str(value).strip()
            if len(value) > 5000:
                errors[field] = "Description must be at most 5,000 characters"
        elif field == "accent_color":
            value = str(value).strip()
            if not HEX_COLOUR.match(value):
                errors[field] = "Accent colour must look like #2F6FEB"
            value = value.upper()
        elif field == "registration_base_url":
            value = str(value).strip().rstrip("/")
            if value:
                parsed = urlparse(value)
                if parsed.scheme not in ("http", "https") or not parsed.netloc:
                    errors[field] = (
                        "Registration base URL must start with https:// (or http://) and name a host"
                    )
        elif field == "logo":
            # The type comes from the bytes, never from the caller: `logo_mime` follows it.
            mime = None
            if value is not None:
                try:
                    mime = inspect_logo(value).mime
                    value = bytes(value)
                except ValidationFailed as exc:
                    errors.update(exc.errors)
            clean["logo_mime"] = mime
        elif field == "logo_mime":
            continue  # derived from the logo's content (above); a caller's guess is ignored
        clean[field] = value
    if errors:
        raise ValidationFailed(errors)
    return clean


def _audit_value(field: str, value: Any) -> Any:
    if field == "logo" and value is not None:
        return {"bytes": len(value), "sha256": hashlib.sha256(value).hexdigest()}
    return value


def update_organization(
    uow: UnitOfWork, operator: Operator, changes: Mapping[str, Any]
) -> OrganizationInfo:
    """Change name, description, logo, accent colour or registration base URL."""
    require(operator, Action.CHANGE_SETTINGS)
    clean = validate(changes)
    with uow:
        require(refreshed(uow.session, operator), Action.CHANGE_SETTINGS)
        org = uow.session.get(Organization, operator.organization_id)
        if org is None:
            raise NotFound("The organization no longer exists in this database.")
        before: dict[str, Any] = {}
        after: dict[str, Any] = {}
        for field, value in clean.items():
            old = getattr(org, field)
            if old != value:
                before[field] = _audit_value(field, old)
                after[field] = _audit_value(field, value)
                setattr(org, field, value)
        if after:
            audit.record(
                uow.session,
                organization_id=org.id,
                actor_id=operator.member_id,
                action="organization.update",
                entity_type="organization",
                entity_id=org.id,
                before=before,
                after=after,
            )
            with journal.command("settings.save",
                                 "Change the organization's " + ", ".join(sorted(after))):
                uow.commit()
        return _info(org)
