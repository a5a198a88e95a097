"""Leaderboard, trends, conversion and retention: SQL aggregation within the operator's scope."""

from __future__ import annotations

import uuid
from datetime import datetime

from invite_desk.services.operator import Operator
from invite_desk.services.referral_program.types import (
    Conversion,
    ConversionBy,
    Granularity,
    Leaderboard,
    Period,
    Retention,
    Trends,
)
from invite_desk.services.uow import UnitOfWork

ACTIVE_WEIGHT = 5  # a referee who is still an active member
INACTIVE_WEIGHT = 1  # a completed referral whose referee is no longer active


def leaderboard(uow: UnitOfWork, operator: Operator, period: Period,
                unit_id: uuid.UUID | None = None, *, limit: int | None = None,
                now: datetime | None = None) -> Leaderboard:
    """Referrers ranked by score, ties to who reached it first. USER: only themself unless the
    leaderboard is visible to members (then opted-out members are hidden from them)."""
    raise NotImplementedError


def trends(uow: UnitOfWork, operator: Operator, period: Period,
           granularity: Granularity = Granularity.MONTH, unit_id: uuid.UUID | None = None,
           *, now: datetime | None = None) -> Trends:
    """New members per local week/month by channel, and invitations sent vs accepted."""
    raise NotImplementedError


def conversion(uow: UnitOfWork, operator: Operator, period: Period,
               by: ConversionBy = ConversionBy.INVITER, unit_id: uuid.UUID | None = None,
               *, now: datetime | None = None) -> Conversion:
    """Invitations sent vs accepted and median time to accept per group, plus the K-factor."""
    raise NotImplementedError


def retention(uow: UnitOfWork, operator: Operator, unit_id: uuid.UUID | None = None,
              *, now: datetime | None = None) -> Retention:
    """Share of referred vs non-referred members still active among those who joined at least
    90 / 365 days ago, and the same per referrer."""
    raise NotImplementedError
