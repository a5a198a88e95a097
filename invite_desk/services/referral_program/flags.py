"""Anti-gaming flags: raised by `reconcile`, decided by an admin (never acted on silently)."""

from __future__ import annotations

import uuid
from datetime import datetime

from invite_desk.services.operator import Operator
from invite_desk.services.referral_program.types import FlagRow, FlagStatus
from invite_desk.services.uow import UnitOfWork


def list_flags(uow: UnitOfWork, operator: Operator, status: FlagStatus | None = FlagStatus.OPEN,
               *, unit_id: uuid.UUID | None = None, limit: int = 500) -> list[FlagRow]:
    """Flags for review, newest first (ADMIN_LOCAL: their unit's referrers; tenant admins: all)."""
    raise NotImplementedError


def decide_flag(uow: UnitOfWork, operator: Operator, flag_id: uuid.UUID, decision: FlagStatus,
                note: str = "", *, expected_version: int | None = None,
                now: datetime | None = None) -> FlagRow:
    """Clear (legitimate: points vest) or reject (fake: points and badges taken back) a flag.
    Admins only; audited; Conflict when someone decided it meanwhile."""
    raise NotImplementedError
