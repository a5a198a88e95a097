"""Units (local chapters): create, rename, merge, archive, move members. ADMIN_TENANT only
(a unit is organization structure); every change is audited."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from invite_desk.services import audit
from invite_desk.services.admin import people
from invite_desk.services.admin.people import BulkOutcome
from invite_desk.services.concurrency import changed_meanwhile
from invite_desk.services.errors import Conflict, NotFound, ValidationFailed
from invite_desk.services.models import Event, Invitation, Member, MemberStatus, Unit, utcnow
from invite_desk.services.operator import Operator, refreshed
from invite_desk.services.permissions import Action, require
from invite_desk.services.uow import UnitOfWork

NAME_MAX = 200


@dataclass(frozen=True)
class UnitView:
    id: uuid.UUID
    name: str
    archived: bool
    active_members: int
    members: int  # any status
    events: int
    version: int


@dataclass(frozen=True)
class MergeOutcome:
    source: UnitView  # now archived
    target: UnitView
    moved_members: int
    moved_invitations: int
    moved_events: int


def _counts(session: Session, unit_ids: list[uuid.UUID]) -> dict[uuid.UUID, tuple[int, int, int]]:
    if not unit_ids:
        return {}
    members = dict(session.execute(
        select(Member.unit_id, func.count()).where(Member.unit_id.in_(unit_ids))
        .group_by(Member.unit_id)).all())
    active = dict(session.execute(
        select(Member.unit_id, func.count())
        .where(Member.unit_id.in_(unit_ids), Member.status == MemberStatus.ACTIVE.value)
        .group_by(Member.unit_id)).all())
    events = dict(session.execute(
        select(Event.unit_id, func.count()).where(Event.unit_id.in_(unit_ids))
        .group_by(Event.unit_id)).all())
    return {uid: (active.get(uid, 0), members.get(uid, 0), events.get(uid, 0)) for uid in unit_ids}


def _view(session: Session, unit: Unit) -> UnitView:
    active, members, events = _counts(session, [unit.id])[unit.id]
    return UnitView(unit.id, unit.name, unit.archived, active, members, events, unit.version)


def _unit(session: Session, operator: Operator, unit_id: uuid.UUID) -> Unit:
    unit = session.get(Unit, unit_id)
    if unit is None or unit.organization_id != operator.organization_id:
        raise NotFound("This unit no longer exists.")
    return unit


def _clean_name(session: Session, operator: Operator, name: str,
                exclude: uuid.UUID | None = None) -> str:
    text = " ".join(name.split())
    if not text:
        raise ValidationFailed({"name": "A unit needs a name."})
    if len(text) > NAME_MAX:
        raise ValidationFailed({"name": f"must be at most {NAME_MAX} characters"})
    clash = session.scalar(select(Unit).where(
        Unit.organization_id == operator.organization_id,
        func.lower(Unit.name) == text.lower(),
        Unit.id != exclude if exclude is not None else Unit.id.is_not(None)).limit(1))
    if clash is not None:
        state = " (archived)" if clash.archived else ""
        raise ValidationFailed({"name": f"A unit named {clash.name}{state} already exists."})
    return text


def list_units(uow: UnitOfWork, operator: Operator, *,
               include_archived: bool = False) -> list[UnitView]:
    """Units by name with counts (HR_LOCAL and above; local roles see only their own)."""
    with uow:
        session = uow.session
        operator = refreshed(session, operator)
        require(operator, Action.VIEW_PEOPLE)
        stmt = select(Unit).where(Unit.organization_id == operator.organization_id)
        if not include_archived:
            stmt = stmt.where(Unit.archived.is_(False))
        if not operator.role.is_tenant_wide:
            stmt = stmt.where(Unit.id == operator.unit_id)
        units = list(session.scalars(stmt.order_by(Unit.name)))
        counts = _counts(session, [u.id for u in units])
        return [UnitView(u.id, u.name, u.archived, *counts[u.id], u.version) for u in units]


def create_unit(uow: UnitOfWork, operator: Operator, name: str) -> UnitView:
    """A new unit (ADMIN_TENANT). Names are unique in the organization, ignoring case."""
    with uow, changed_meanwhile("A unit with this name was just created by someone else."):
        session = uow.session
        operator = refreshed(session, operator)
        require(operator, Action.MANAGE_UNITS)
        unit = Unit(organization_id=operator.organization_id,
                    name=_clean_name(session, operator, name))
        session.add(unit)
        session.flush()
        audit.record(session, organization_id=operator.organization_id,
                     actor_id=operator.member_id, action="unit.create", entity_type="unit",
                     entity_id=unit.id, after={"name": unit.name})
        uow.commit()
        return _view(session, unit)


def rename_unit(uow: UnitOfWork, operator: Operator, unit_id: uuid.UUID, name: str, *,
                expected_version: int | None = None) -> UnitView:
    """Rename (ADMIN_TENANT)."""
    with uow, changed_meanwhile():
        session = uow.session
        operator = refreshed(session, operator)
        require(operator, Action.MANAGE_UNITS)
        unit = _unit(session, operator, unit_id)
        if expected_version is not None and unit.version != expected_version:
            raise Conflict(f"{unit.name} was changed by someone else; reload and try again.")
        new_name = _clean_name(session, operator, name, exclude=unit.id)
        if new_name != unit.name:
            before = {"name": unit.name}
            unit.name = new_name
            audit.record(session, organization_id=operator.organization_id,
                         actor_id=operator.member_id, action="unit.rename", entity_type="unit",
                         entity_id=unit.id, before=before, after={"name": new_name})
            uow.commit()
        return _view(session, unit)


def _move_everything(session: Session, source: Unit, target: Unit) -> tuple[int, int, int]:
    now = utcnow()

    def moved(model: type[Member] | type[Invitation] | type[Event]) -> int:
        result = session.execute(
            update(model).where(model.unit_id == source.id)
            .values(unit_id=target.id, updated_at=now, version=model.version + 1)
            .execution_options(synchronize_session=False))
        return int(result.rowcount)  # type: ignore[attr-defined]

    return moved(Member), moved(Invitation), moved(Event)


def merge_units(uow: UnitOfWork, operator: Operator, source_id: uuid.UUID,
                target_id: uuid.UUID) -> MergeOutcome:
    """Move the source's members, invitations and events (and so their referral credit, which
    follows the member) to the target, then archive the source (ADMIN_TENANT). Not deleted."""
    if source_id == target_id:
        raise ValidationFailed({"target": "Choose another unit to merge into."})
    with uow, changed_meanwhile():
        session = uow.session
        operator = refreshed(session, operator)
        require(operator, Action.MANAGE_UNITS)
        source = _unit(session, operator, source_id)
        target = _unit(session, operator, target_id)
        if target.archived:
            raise ValidationFailed({"target": f"{target.name} is archived; choose an open unit."})
        members, invitations, events = _move_everything(session, source, target)
        source.archived = True
        audit.record(session, organization_id=operator.organization_id,
                     actor_id=operator.member_id, action="unit.merge", entity_type="unit",
                     entity_id=source.id,
                     before={"name": source.name, "archived": False},
                     after={"archived": True, "merged_into": target.id,
                            "merged_into_name": target.name, "members_moved": members,
                            "invitations_moved": invitations, "events_moved": events})
        uow.commit()
        session.expire_all()
        return MergeOutcome(_view(session, source), _view(session, target),
                            members, invitations, events)


def archive_unit(uow: UnitOfWork, operator: Operator, unit_id: uuid.UUID, *,
                 move_members_to: uuid.UUID | None = None) -> UnitView:
    """Archive (ADMIN_TENANT). Refused while it has active members, unless `move_members_to`
    names a unit to move every member to first."""
    with uow, changed_meanwhile():
        session = uow.session
        operator = refreshed(session, operator)
        require(operator, Action.MANAGE_UNITS)
        unit = _unit(session, operator, unit_id)
        if unit.archived:
            return _view(session, unit)
        after: dict[str, object] = {"archived": True}
        if move_members_to is not None:
            if move_members_to == unit.id:
                raise ValidationFailed({"move_members_to": "Choose another unit."})
            target = _unit(session, operator, move_members_to)
            if target.archived:
                raise ValidationFailed({"move_members_to": f"{target.name} is archived."})
            now = utcnow()
            moved = session.execute(
                update(Member).where(Member.unit_id == unit.id)
                .values(unit_id=target.id, updated_at=now, version=Member.version + 1)
                .execution_options(synchronize_session=False))
            after.update(members_moved_to=target.id, members_moved=int(moved.rowcount))  # type: ignore[attr-defined]
        active = session.scalar(select(func.count()).select_from(Member).where(
            Member.unit_id == unit.id, Member.status == MemberStatus.ACTIVE.value)) or 0
        if active:
            raise Conflict(f"{unit.name} still has {active} active member"
                           f"{'s' if active != 1 else ''}: move them to another unit first "
                           "(or merge the unit).")
        unit.archived = True
        audit.record(session, organization_id=operator.organization_id,
                     actor_id=operator.member_id, action="unit.archive", entity_type="unit",
                     entity_id=unit.id, before={"name": unit.name, "archived": False},
                     after=after)
        uow.commit()
        session.expire_all()
        return _view(session, _unit(session, operator, unit_id))


def move_members(uow: UnitOfWork, operator: Operator, member_ids: Sequence[uuid.UUID],
                 target_unit_id: uuid.UUID | None) -> BulkOutcome:
    """Move members to a unit (or none) (ADMIN_TENANT); per-row outcome like bulk_update."""
    return people.bulk_update(uow, operator, member_ids, unit_id=target_unit_id)
