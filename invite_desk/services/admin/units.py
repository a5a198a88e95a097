"""Units (local chapters): create, rename, merge, archive, move members. ADMIN_TENANT only
(a unit is organization structure); every change is audited."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from invite_desk.services.admin.people import BulkOutcome
from invite_desk.services.operator import Operator
from invite_desk.services.uow import UnitOfWork


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


def list_units(uow: UnitOfWork, operator: Operator, *,
               include_archived: bool = False) -> list[UnitView]:
    """Units by name with counts (HR_LOCAL and above; local roles see only their own)."""
    raise NotImplementedError


def create_unit(uow: UnitOfWork, operator: Operator, name: str) -> UnitView:
    """A new unit (ADMIN_TENANT). Names are unique in the organization, ignoring case."""
    raise NotImplementedError


def rename_unit(uow: UnitOfWork, operator: Operator, unit_id: uuid.UUID, name: str, *,
                expected_version: int | None = None) -> UnitView:
    """Rename (ADMIN_TENANT)."""
    raise NotImplementedError


def merge_units(uow: UnitOfWork, operator: Operator, source_id: uuid.UUID,
                target_id: uuid.UUID) -> MergeOutcome:
    """Move the source's members, invitations and events (and so their referral credit, which
    follows the member) to the target, then archive the source (ADMIN_TENANT). Not deleted."""
    raise NotImplementedError


def archive_unit(uow: UnitOfWork, operator: Operator, unit_id: uuid.UUID, *,
                 move_members_to: uuid.UUID | None = None) -> UnitView:
    """Archive (ADMIN_TENANT). Refused while it has active members, unless `move_members_to`
    names a unit to move every member to first."""
    raise NotImplementedError


def move_members(uow: UnitOfWork, operator: Operator, member_ids: Sequence[uuid.UUID],
                 target_unit_id: uuid.UUID | None) -> BulkOutcome:
    """Move members to a unit (or none) (ADMIN_TENANT); per-row outcome like bulk_update."""
    raise NotImplementedError
