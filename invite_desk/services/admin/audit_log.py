"""The audit log, read side: filter, search, keyset paging, CSV export, one object's history.

The whole log is for ADMIN_TENANT. `history_for` an object is for whoever may see it
(an invitation or member in their scope; settings and organization: ADMIN_TENANT).
Pages are keyset-paged on (at, id) newest first, so page N costs what page 1 costs.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TextIO

from invite_desk.services.operator import Operator
from invite_desk.services.uow import UnitOfWork


@dataclass(frozen=True)
class AuditQuery:
    actor_id: uuid.UUID | None = None
    action: str = ""  # exact action ("member.update"), or a prefix ending in "." ("member.")
    entity_type: str = ""
    entity_id: uuid.UUID | None = None
    since: datetime | None = None  # inclusive, aware
    until: datetime | None = None  # exclusive, aware
    text: str = ""  # free text in the action, object type or before/after values


@dataclass(frozen=True)
class AuditCursor:
    """Where the next page starts (the last row of the previous one)."""

    at: datetime
    id: uuid.UUID


@dataclass(frozen=True)
class AuditRow:
    id: uuid.UUID
    at: datetime
    actor_id: uuid.UUID | None
    actor: str  # display name, or "system"
    action: str
    entity_type: str
    entity_id: uuid.UUID | None
    before: dict[str, Any]
    after: dict[str, Any]

    @property
    def changed_fields(self) -> tuple[str, ...]:
        keys = set(self.before) | set(self.after)
        return tuple(sorted(k for k in keys if self.before.get(k) != self.after.get(k)))

    @property
    def cursor(self) -> AuditCursor:
        return AuditCursor(self.at, self.id)


@dataclass(frozen=True)
class AuditPage:
    rows: tuple[AuditRow, ...]
    next_cursor: AuditCursor | None  # None: this was the last page


@dataclass(frozen=True)
class AuditChoices:
    actions: tuple[str, ...]
    entity_types: tuple[str, ...]
    actors: tuple[tuple[uuid.UUID, str], ...]  # (member id, name) of people who acted


PAGE_SIZE = 200


def fetch_audit_page(uow: UnitOfWork, operator: Operator, query: AuditQuery,
                     after: AuditCursor | None = None, *, limit: int = PAGE_SIZE) -> AuditPage:
    """One page, newest first, starting after `after` (ADMIN_TENANT)."""
    raise NotImplementedError


def audit_choices(uow: UnitOfWork, operator: Operator) -> AuditChoices:
    """Values for the filter pickers (ADMIN_TENANT)."""
    raise NotImplementedError


def export_audit_csv(uow: UnitOfWork, operator: Operator, query: AuditQuery,
                     out: TextIO) -> int:
    """Write every matching row as CSV to `out`, page by page (never the whole log in
    memory); returns the row count (ADMIN_TENANT)."""
    raise NotImplementedError


def history_for(uow: UnitOfWork, operator: Operator, entity_type: str,
                entity_id: uuid.UUID | None = None, *, limit: int = 500) -> list[AuditRow]:
    """Newest first: an invitation's, a member's (changes to them), a setting's
    (entity_type "setting", entity_id None: every settings change) history."""
    raise NotImplementedError
