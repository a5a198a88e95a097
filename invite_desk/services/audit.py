"""Audit rows: who did what, when, with the values before and after."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from invite_desk.services.models import AuditLog, Member


def _jsonable(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    return value


def record(
    session: Session,
    *,
    organization_id: uuid.UUID,
    actor_id: uuid.UUID | None,
    action: str,
    entity_type: str,
    entity_id: uuid.UUID | None = None,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
) -> AuditLog:
    """Add an audit row to the session (the caller's commit makes it durable with the change)."""
    row = AuditLog(
        organization_id=organization_id,
        actor_id=actor_id,
        action=action,
        entity_type=entity_type,
        entity_id=entity_id,
        before_json=json.dumps(_jsonable(before or {}), sort_keys=True),
        after_json=json.dumps(_jsonable(after or {}), sort_keys=True),
    )
    session.add(row)
    return row


@dataclass(frozen=True)
class AuditEntry:
    at: datetime
    actor: str
    action: str
    entity_type: str
    entity_id: uuid.UUID | None
    before: dict[str, Any]
    after: dict[str, Any]


def entries(
    session: Session,
    organization_id: uuid.UUID,
    *,
    entity_type: str | None = None,
    entity_id: uuid.UUID | None = None,
    limit: int = 200,
) -> list[AuditEntry]:
    """The newest audit rows first, optionally for one entity."""
    stmt = (
        select(AuditLog, Member)
        .outerjoin(Member, Member.id == AuditLog.actor_id)
        .where(AuditLog.organization_id == organization_id)
        .order_by(AuditLog.at.desc())
        .limit(limit)
    )
    if entity_type is not None:
        stmt = stmt.where(AuditLog.entity_type == entity_type)
    if entity_id is not None:
        stmt = stmt.where(AuditLog.entity_id == entity_id)
    return [
        AuditEntry(
            at=row.at,
            actor=actor.display_name if actor is not None else "system",
            action=row.action,
            entity_type=row.entity_type,
            entity_id=row.entity_id,
            before=json.loads(row.before_json),
            after=json.loads(row.after_json),
        )
        for row, actor in session.execute(stmt)
    ]
