"""The audit log, read side: filter, search, keyset paging, CSV export, one object's history.

The whole log is for ADMIN_TENANT. `history_for` an object is for whoever may see it
(an invitation or member in their scope; settings and organization: ADMIN_TENANT).
Pages are keyset-paged on (at, id) newest first, so page N costs what page 1 costs.
"""

from __future__ import annotations

import contextlib
import csv
import json
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TextIO

from sqlalchemy import ColumnElement, Select, and_, func, or_, select
from sqlalchemy.orm import Session

from invite_desk.services.errors import NotFound, ValidationFailed
from invite_desk.services.models import AuditLog, Event, Invitation, Member, Unit
from invite_desk.services.operator import Operator, refreshed
from invite_desk.services.permissions import Action, Target, require
from invite_desk.services.tracking.export import _defuse
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
    # Names of the members, units and events the row refers to (its object, and `..._id`
    # values before and after), by id as text: what a person reads instead of a UUID.
    names: Mapping[str, str] = field(default_factory=dict, compare=False)

    def name_of(self, value: object) -> str | None:
        return self.names.get(str(value)) if value is not None else None

    @property
    def changed_fields(self) -> tuple[str, ...]:
        keys = set(self.before) | set(self.after)
        return tuple(sorted(k for k in keys if self.before.get(k) != self.after.get(k)))

    @property
    def cursor(self) -> AuditCursor:
        return AuditCursor(self.at, self.id)


@dataclass(frozen=True)
class AuditPage:
    """With a text search a page may hold fewer rows than asked (even none) and still have a
    next cursor: it searched the rows back to `scanned_to`, and the next page goes on."""

    rows: tuple[AuditRow, ...]
    next_cursor: AuditCursor | None  # None: this was the last page
    scanned_to: datetime | None = None


@dataclass(frozen=True)
class AuditChoices:
    actions: tuple[str, ...]
    entity_types: tuple[str, ...]
    actors: tuple[tuple[uuid.UUID, str], ...]  # (member id, name) of people who acted


PAGE_SIZE = 200
PAGE_MAX = 5000
CSV_HEADER = ("at", "actor", "actor_id", "action", "object_type", "object_id", "changed",
              "before", "after")


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _conditions(operator: Operator, query: AuditQuery) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = [AuditLog.organization_id == operator.organization_id]
    if query.since is not None and query.until is not None and query.since >= query.until:
        raise ValidationFailed({"until": "The end of the period must be after its start."})
    if query.actor_id is not None:
        conditions.append(AuditLog.actor_id == query.actor_id)
    action = query.action.strip()
    if action.endswith("."):
        conditions.append(AuditLog.action.like(_escape_like(action) + "%", escape="\\"))
    elif action:
        conditions.append(AuditLog.action == action)
    if query.entity_type.strip():
        conditions.append(AuditLog.entity_type == query.entity_type.strip())
    if query.entity_id is not None:
        conditions.append(AuditLog.entity_id == query.entity_id)
    if query.since is not None:
        conditions.append(AuditLog.at >= query.since)
    if query.until is not None:
        conditions.append(AuditLog.at < query.until)
    return conditions


def _text_condition(text: str, backend: str) -> ColumnElement[bool]:
    """Free text in the action, the object type or the before/after JSON, case-insensitively:
    SQLite's LIKE already ignores ASCII case (and a lower() there would call Python for every
    row), MariaDB's text collation ignores case, PostgreSQL needs ILIKE. JSON stores non-ASCII
    letters as \\uXXXX, so the text is also searched the way JSON writes it."""
    needle = text.strip()
    variants: dict[str, str] = {}  # LIKE/ILIKE here ignore case: one pattern per spelling
    for variant in (needle, json.dumps(needle)[1:-1], json.dumps(needle.lower())[1:-1]):
        variants.setdefault(variant.lower(), variant)
    likes: list[ColumnElement[bool]] = []
    for variant in variants.values():
        pattern = "%" + _escape_like(variant) + "%"
        for column in (AuditLog.action, AuditLog.entity_type, AuditLog.before_json,
                       AuditLog.after_json):
            likes.append(column.ilike(pattern, escape="\\") if backend == "postgresql"
                         else column.like(pattern, escape="\\"))
    return or_(*likes)


# A text search reads at most this many rows (newest first, after the other filters) per
# page, so a search that matches little stays as fast as a page; the next page goes on from
# where it stopped (AuditPage.scanned_to says how far back it looked).
TEXT_SCAN_ROWS = 20_000


def _after(cursor: AuditCursor) -> ColumnElement[bool]:
    # `at <= x` leads the index range; the OR only breaks ties within one instant.
    return and_(AuditLog.at <= cursor.at,
                or_(AuditLog.at < cursor.at, AuditLog.id < cursor.id))


def _statement(operator: Operator, query: AuditQuery, after: AuditCursor | None,
               limit: int) -> Select[AuditLog]:
    conditions = _conditions(operator, query)
    if after is not None:
        conditions.append(_after(after))
    return (select(AuditLog).where(*conditions)
            .order_by(AuditLog.at.desc(), AuditLog.id.desc()).limit(limit))


def _scan_boundary(session: Session, operator: Operator, query: AuditQuery,
                   after: AuditCursor | None) -> AuditCursor | None:
    """The last row a bounded text search reads (None: it can read to the end)."""
    conditions = _conditions(operator, query)
    if after is not None:
        conditions.append(_after(after))
    row = session.execute(
        select(AuditLog.at, AuditLog.id).where(*conditions)
        .order_by(AuditLog.at.desc(), AuditLog.id.desc())
        .offset(TEXT_SCAN_ROWS - 1).limit(1)).first()
    return AuditCursor(row[0], row[1]) if row is not None else None


def _actor_names(session: Session, ids: set[uuid.UUID]) -> dict[uuid.UUID, str]:
    if not ids:
        return {}
    return {m.id: m.display_name
            for m in session.scalars(select(Member).where(Member.id.in_(ids)))}


_NAMED = {"member": Member, "unit": Unit, "event": Event}


def _referenced(entity_type: str, entity_id: uuid.UUID | None,
                values: Iterable[dict[str, Any]]) -> set[uuid.UUID]:
    ids: set[uuid.UUID] = set()
    if entity_id is not None and entity_type in _NAMED:
        ids.add(entity_id)
    for value in values:
        for key, item in value.items():
            if key.endswith("_id") and isinstance(item, str):
                with contextlib.suppress(ValueError):
                    ids.add(uuid.UUID(item))
    return ids


def _object_names(session: Session, ids: set[uuid.UUID]) -> dict[str, str]:
    """Display names of members, units and events by id (one query per table)."""
    if not ids:
        return {}
    found = {str(member.id): member.display_name
             for member in session.scalars(select(Member).where(Member.id.in_(ids)))}
    for row_id, name in session.execute(select(Unit.id, Unit.name).where(Unit.id.in_(ids))):
        found[str(row_id)] = name
    for row_id, name in session.execute(select(Event.id, Event.name).where(Event.id.in_(ids))):
        found[str(row_id)] = name
    return found


def _rows(session: Session, logs: list[AuditLog]) -> list[AuditRow]:
    names = _actor_names(session, {log.actor_id for log in logs if log.actor_id is not None})
    parsed = [(log, _loads(log.before_json), _loads(log.after_json)) for log in logs]
    wanted: set[uuid.UUID] = set()
    for log, before, after in parsed:
        wanted |= _referenced(log.entity_type, log.entity_id, (before, after))
    objects = _object_names(session, wanted)
    return [AuditRow(
        id=log.id, at=log.at, actor_id=log.actor_id,
        actor=names.get(log.actor_id, "former member") if log.actor_id else "system",
        action=log.action, entity_type=log.entity_type, entity_id=log.entity_id,
        before=before, after=after,
        names={k: objects[k] for k in (
            str(i) for i in _referenced(log.entity_type, log.entity_id, (before, after)))
            if k in objects},
    ) for log, before, after in parsed]


def _loads(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {"value": text}
    return value if isinstance(value, dict) else {"value": value}


def fetch_audit_page(uow: UnitOfWork, operator: Operator, query: AuditQuery,
                     after: AuditCursor | None = None, *, limit: int = PAGE_SIZE) -> AuditPage:
    """One page, newest first, starting after `after` (ADMIN_TENANT). A text search reads
    at most TEXT_SCAN_ROWS rows per call (see AuditPage)."""
    limit = max(1, min(limit, PAGE_MAX))
    with uow:
        session = uow.session
        operator = refreshed(session, operator)
        require(operator, Action.VIEW_AUDIT_LOG)
        if not query.text.strip():
            logs = list(session.scalars(_statement(operator, query, after, limit + 1)))
            more = len(logs) > limit
            rows = _rows(session, logs[:limit])
            return AuditPage(tuple(rows), rows[-1].cursor if more and rows else None)
        boundary = _scan_boundary(session, operator, query, after)
        stmt = _statement(operator, query, after, limit + 1).where(
            _text_condition(query.text, uow.backend))
        if boundary is not None:  # rows not older than the boundary; `at >=` bounds the range
            stmt = stmt.where(AuditLog.at >= boundary.at,
                              or_(AuditLog.at > boundary.at, AuditLog.id >= boundary.id))
        logs = list(session.scalars(stmt))
        rows = _rows(session, logs[:limit])
        if len(logs) > limit:
            return AuditPage(tuple(rows), rows[-1].cursor, scanned_to=rows[-1].at)
        return AuditPage(tuple(rows), boundary,
                         scanned_to=boundary.at if boundary is not None else None)


def audit_choices(uow: UnitOfWork, operator: Operator) -> AuditChoices:
    """Values for the filter pickers (ADMIN_TENANT): the actions and object types that occur
    (skip-scanned from the indexes, so cheap at a million rows) and the organization's
    operators (members with a role above USER or a sign-in)."""
    with uow:
        session = uow.session
        operator = refreshed(session, operator)
        require(operator, Action.VIEW_AUDIT_LOG)
        org = operator.organization_id
        actions = _distinct(session, AuditLog.action, org)
        types = _distinct(session, AuditLog.entity_type, org)
        people = session.execute(
            select(Member.id, Member.first_name, Member.last_name, Member.email)
            .where(Member.organization_id == org,
                   or_(Member.role != "USER", Member.password_hash.is_not(None)))
            .order_by(Member.last_name, Member.first_name)).all()
        actors = tuple((mid, f"{first} {last}".strip() or email)
                       for mid, first, last, email in people)
        return AuditChoices(tuple(actions), tuple(types), actors)


def _distinct(session: Session, column: Any, organization_id: uuid.UUID) -> list[str]:
    """Distinct values by hopping the (organization_id, column, ...) index: one probe per
    value instead of a scan of every row."""
    values: list[str] = []
    last: str | None = None
    for _ in range(500):
        stmt = select(func.min(column)).where(AuditLog.organization_id == organization_id)
        if last is not None:
            stmt = stmt.where(column > last)
        value = session.scalar(stmt)
        if value is None:
            break
        values.append(value)
        last = value
    return values


def csv_row(row: AuditRow) -> list[str]:
    """One audit row as CSV cells; text typed by people is defused (no spreadsheet formula)."""
    return [
        row.at.isoformat(timespec="seconds"), _defuse(row.actor),
        str(row.actor_id or ""), _defuse(row.action), _defuse(row.entity_type),
        str(row.entity_id or ""), " ".join(row.changed_fields),
        _defuse(json.dumps(row.before, ensure_ascii=False, sort_keys=True)),
        _defuse(json.dumps(row.after, ensure_ascii=False, sort_keys=True)),
    ]


def export_audit_csv(uow: UnitOfWork, operator: Operator, query: AuditQuery,
                     out: TextIO, *, on_progress: Callable[[int], None] | None = None,
                     cancelled: Callable[[], bool] | None = None) -> int:
    """Write every matching row as CSV to `out`, page by page (never the whole log in
    memory); returns the row count (ADMIN_TENANT). Nothing is written when the operator may
    not read the log (the first page is read before the header)."""
    writer = csv.writer(out)
    written = 0
    cursor: AuditCursor | None = None
    while True:
        if cancelled is not None and cancelled():
            break
        page = fetch_audit_page(uow, operator, query, cursor, limit=2000)
        if cursor is None:
            writer.writerow(CSV_HEADER)
        writer.writerows(csv_row(row) for row in page.rows)
        written += len(page.rows)
        if on_progress is not None:
            on_progress(written)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    return written


def _require_object(session: Session, operator: Operator, entity_type: str,
                    entity_id: uuid.UUID | None) -> None:
    if entity_type == "invitation" and entity_id is not None:
        invitation = session.get(Invitation, entity_id)
        if invitation is None or invitation.organization_id != operator.organization_id:
            raise NotFound("This invitation no longer exists.")
        require(operator, Action.VIEW_INVITATION, target=Target(
            unit_id=invitation.unit_id, owner_ids=(invitation.inviter_id, invitation.sender_id)))
    elif entity_type == "member" and entity_id is not None:
        member = session.get(Member, entity_id)
        if member is None or member.organization_id != operator.organization_id:
            raise NotFound("This member no longer exists.")
        if member.id != operator.member_id:
            require(operator, Action.VIEW_PEOPLE, target=Target(unit_id=member.unit_id))
    elif entity_type == "event" and entity_id is not None:
        event = session.get(Event, entity_id)
        if event is None or event.organization_id != operator.organization_id:
            raise NotFound("This event no longer exists.")
        require(operator, Action.VIEW_EVENTS,
                target=Target(unit_id=event.unit_id) if event.unit_id else None)
    else:  # settings, organization, units, batches: the organization's administration
        require(operator, Action.VIEW_AUDIT_LOG)


def history_for(uow: UnitOfWork, operator: Operator, entity_type: str,
                entity_id: uuid.UUID | None = None, *, setting_key: str = "",
                limit: int = 500) -> list[AuditRow]:
    """Newest first: an invitation's, a member's (changes to them), an event's or unit's
    history; entity_type "settings" (entity_id None) is every settings change, or with
    `setting_key` ("userInvitations.hasUserInvitation") only the changes of that setting.
    Whoever may see the object may see its history; settings need ADMIN_TENANT."""
    entity_type = "settings" if entity_type == "setting" else entity_type
    with uow:
        session = uow.session
        operator = refreshed(session, operator)
        _require_object(session, operator, entity_type, entity_id)
        conditions = [AuditLog.organization_id == operator.organization_id,
                      AuditLog.entity_type == entity_type]
        # Settings rows carry no id: IS NULL keeps the (org, type, id, at, id) index ordered.
        conditions.append(AuditLog.entity_id == entity_id if entity_id is not None
                          else AuditLog.entity_id.is_(None))
        if setting_key:
            needle = "%" + _escape_like(json.dumps(setting_key)) + "%"
            conditions.append(or_(AuditLog.before_json.like(needle, escape="\\"),
                                  AuditLog.after_json.like(needle, escape="\\")))
        logs = list(session.scalars(
            select(AuditLog).where(*conditions)
            .order_by(AuditLog.at.desc(), AuditLog.id.desc()).limit(limit)))
        rows = _rows(session, logs)
        if setting_key:
            rows = [r for r in rows if setting_key in r.before or setting_key in r.after]
        return rows
