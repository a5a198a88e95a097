"""The service calls the referral pages make, bound to the app's unit of work.

The pages hold a `ReferralSource` and call it only inside the functions they hand to the
hub (which run off the GUI thread); they never see the unit of work themselves, so this
package imports neither it nor SQLAlchemy."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from invite_desk.services import referral_program as rp
from invite_desk.services.operator import Operator
from invite_desk.services.organization import UnitInfo, list_units


class ReferralSource:
    """`uow` is the app's UnitOfWork (typed loosely: pages do not import its module)."""

    def __init__(self, uow: Any) -> None:
        self._uow = uow

    def units(self, operator: Operator) -> list[UnitInfo]:
        return list_units(self._uow, operator.organization_id)

    def reconcile(self, operator: Operator, now: datetime | None = None) -> rp.ReconcileResult:
        """Bring the points ledger, reward states and flags up to date (a write)."""
        return rp.reconcile(self._uow, operator, now)

    def leaderboard(self, operator: Operator, period: rp.Period, unit_id: uuid.UUID | None,
                    now: datetime | None = None, *, limit: int | None = None,
                    offset: int = 0) -> rp.Leaderboard:
        return rp.leaderboard(self._uow, operator, period, unit_id, now=now, limit=limit,
                              offset=offset)

    def standing(self, operator: Operator, period: rp.Period,
                 now: datetime | None = None) -> rp.LeaderboardRow | None:
        """The operator's own leaderboard row and rank, without the rest of the board."""
        return rp.leaderboard_standing(self._uow, operator, period, now=now)

    def trends(self, operator: Operator, period: rp.Period, granularity: rp.Granularity,
               unit_id: uuid.UUID | None, now: datetime | None = None) -> rp.Trends:
        return rp.trends(self._uow, operator, period, granularity, unit_id, now=now)

    def conversion(self, operator: Operator, period: rp.Period, by: rp.ConversionBy,
                   unit_id: uuid.UUID | None, now: datetime | None = None, *,
                   limit: int | None = None, offset: int = 0,
                   order: rp.ConversionOrder = rp.ConversionOrder.SENT,
                   sort: rp.ConversionSort | None = None) -> rp.Conversion:
        return rp.conversion(self._uow, operator, period, by, unit_id, now=now, limit=limit,
                             offset=offset, order=order, sort=sort)

    def retention(self, operator: Operator, unit_id: uuid.UUID | None,
                  now: datetime | None = None) -> rp.Retention:
        return rp.retention(self._uow, operator, unit_id, now=now)

    def flags(self, operator: Operator, unit_id: uuid.UUID | None) -> list[rp.FlagRow]:
        return rp.list_flags(self._uow, operator, rp.FlagStatus.OPEN, unit_id=unit_id)

    def decide_flag(self, operator: Operator, flag: rp.FlagRow, decision: rp.FlagStatus,
                    note: str = "") -> rp.FlagRow:
        return rp.decide_flag(self._uow, operator, flag.id, decision, note,
                              expected_version=flag.version)

    def activity(self, operator: Operator, member_id: uuid.UUID,
                 now: datetime | None = None) -> rp.ReferralActivity:
        return rp.member_activity(self._uow, operator, member_id, now)

    def settings(self, operator: Operator) -> rp.GamificationSettings:
        return rp.get_settings(self._uow, operator)

    def opted_out(self, operator: Operator, member_id: uuid.UUID) -> bool:
        return rp.leaderboard_opt_out(self._uow, operator, member_id)

    def set_opted_out(self, operator: Operator, member_id: uuid.UUID, opted_out: bool) -> bool:
        return rp.set_leaderboard_opt_out(self._uow, operator, member_id, opted_out)
