"""Read and change the organization's policy settings (audited, ADMIN_TENANT only)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from invite_desk.services import audit
from invite_desk.services.concurrency import changed_meanwhile
from invite_desk.services.errors import ValidationFailed
from invite_desk.services.models import Setting
from invite_desk.services.operator import Operator, refreshed
from invite_desk.services.permissions import Action, require
from invite_desk.services.settings_schema import (
    SCHEMA_VERSION_KEY,
    SETTINGS_SCHEMA_VERSION,
    SPECS,
    SPECS_BY_FIELD,
    SPECS_BY_KEY,
    PolicySettings,
    coerce,
    to_stored,
)
from invite_desk.services.sync import journal
from invite_desk.services.uow import UnitOfWork

# Versioned upgrades of stored settings: version N's function rewrites rows stored at N-1.
_UPGRADES: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {}


def _stored(session: Session, organization_id: uuid.UUID) -> dict[str, Setting]:
    rows = session.scalars(select(Setting).where(Setting.organization_id == organization_id))
    return {row.key: row for row in rows}


def load(session: Session, organization_id: uuid.UUID) -> PolicySettings:
    """The typed settings; unknown or broken stored values fall back to their defaults."""
    values: dict[str, Any] = {}
    for key, row in _stored(session, organization_id).items():
        spec = SPECS_BY_KEY.get(key)
        if spec is None:
            continue
        try:
            values[spec.field] = coerce(spec, json.loads(row.value_json))
        except (ValueError, TypeError):
            continue
    return replace(PolicySettings(), **values)


def get_settings(uow: UnitOfWork, organization_id: uuid.UUID) -> PolicySettings:
    with uow:
        return load(uow.session, organization_id)


def _put(session: Session, rows: dict[str, Setting], organization_id: uuid.UUID,
         key: str, value: Any) -> None:
    row = rows.get(key)
    encoded = json.dumps(value)
    if row is None:
        rows[key] = row = Setting(organization_id=organization_id, key=key, value_json=encoded)
        session.add(row)
    elif row.value_json != encoded:
        row.value_json = encoded


def validate(changes: Mapping[str, Any]) -> dict[str, Any]:
    """Check every changed field (by PolicySettings field name); all errors at once."""
    errors: dict[str, str] = {}
    clean: dict[str, Any] = {}
    for field, raw in changes.items():
        spec = SPECS_BY_FIELD.get(field)
        if spec is None:
            errors[field] = "is not a setting"
            continue
        try:
            value = coerce(spec, raw)
        except ValueError as exc:
            errors[field] = f"{spec.label} {exc}"
            continue
        if value is not None and spec.check is not None:
            problem = spec.check(value)
            if problem:
                errors[field] = f"{spec.label} {problem}"
                continue
        clean[field] = value
    if errors:
        raise ValidationFailed(errors)
    return clean


def update_settings(
    uow: UnitOfWork, operator: Operator, changes: Mapping[str, Any]
) -> PolicySettings:
    """Apply `changes` (PolicySettings field -> value). One audit row lists before and after."""
    require(operator, Action.CHANGE_SETTINGS)
    clean = validate(changes)
    with uow, changed_meanwhile():  # two first saves of a key race on its unique row
        require(refreshed(uow.session, operator), Action.CHANGE_SETTINGS)
        session = uow.session
        # The rows are read once, before the values: a row someone else inserts meanwhile is
        # then a unique-key race (a Conflict), not quietly overwritten.
        rows = _stored(session, operator.organization_id)
        current = load(session, operator.organization_id)
        before: dict[str, Any] = {}
        after: dict[str, Any] = {}
        for field, value in clean.items():
            old = getattr(current, field)
            if old != value:
                spec = SPECS_BY_FIELD[field]
                before[spec.key] = to_stored(spec, old)
                after[spec.key] = to_stored(spec, value)
        if not after:
            return current
        for key, value in after.items():
            _put(session, rows, operator.organization_id, key, value)
        audit.record(
            session,
            organization_id=operator.organization_id,
            actor_id=operator.member_id,
            action="settings.update",
            entity_type="settings",
            before=before,
            after=after,
        )
        updated = replace(current, **clean)
        with journal.command("settings.save", "Change the settings " + ", ".join(sorted(after))):
            uow.commit()
        return updated


def initialize(session: Session, organization_id: uuid.UUID) -> None:
    """Store every default and the schema version; upgrade stored settings written by older versions."""
    rows = _stored(session, organization_id)
    version_row = rows.get(SCHEMA_VERSION_KEY)
    stored_version = json.loads(version_row.value_json) if version_row else 0
    if stored_version and stored_version < SETTINGS_SCHEMA_VERSION:
        values = {key: json.loads(row.value_json) for key, row in rows.items()}
        for version in range(stored_version + 1, SETTINGS_SCHEMA_VERSION + 1):
            upgrade = _UPGRADES.get(version)
            if upgrade is not None:
                values = upgrade(values)
        for key, value in values.items():
            _put(session, rows, organization_id, key, value)
    for spec in SPECS:
        if spec.key not in rows:
            _put(session, rows, organization_id, spec.key, to_stored(spec, spec.default))
    _put(session, rows, organization_id, SCHEMA_VERSION_KEY, SETTINGS_SCHEMA_VERSION)
