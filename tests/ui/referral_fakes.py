"""A stand-in for ReferralSource with fixed figures: the UI tests that check what the
Referrals pages ask for and how they show and export it (the real services and a real
database are exercised in test_referrals_data.py)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from invite_desk.services import referral_program as rp
from invite_desk.services.operator import Operator
from invite_desk.services.organization import UnitInfo

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
NORTH = UnitInfo(uuid.UUID(int=101), "North")
SOUTH = UnitInfo(uuid.UUID(int=102), "South")


def board_row(rank: int, name: str, *, completed: int, active: int, pending: int = 0,
              opted_out: bool = False, unit: str = "North", flags: int = 0) -> rp.LeaderboardRow:
    sent = completed + pending + 2
    badges = tuple(rp.Badge(m) for m in (1, 5, 10) if active >= m)
    return rp.LeaderboardRow(
        rank=rank, referrer_id=uuid.UUID(int=rank), referrer_name=name,
        referrer_email=f"{name.split()[0].lower()}@example.org", unit_name=unit,
        completed=completed, active=active, pending=pending, pending_invitations=pending,
        pending_referrals=0, invitations_sent=sent,
        invitations_accepted=completed, acceptance_rate=completed / sent, points=10 * active,
        held_points=5 if flags else 0, badges=badges,
        score=rp.ACTIVE_WEIGHT * active + rp.INACTIVE_WEIGHT * (completed - active),
        first_reached_at=NOW - timedelta(days=rank), opted_out=opted_out, open_flags=flags)


@dataclass
class FakeSource:
    """Records every call (period, unit, ...) and answers with the figures below."""

    calls: list[tuple[str, Any]] = field(default_factory=list)
    pages: list[tuple[str, int | None, int]] = field(default_factory=list)  # view, limit, offset
    sorts: list[rp.ConversionSort] = field(default_factory=list)  # conversion orders asked
    board_size: int = 0  # > 0: that many leaderboard and conversion rows, generated
    flags_open: list[rp.FlagRow] = field(default_factory=list)
    decided: list[tuple[uuid.UUID, rp.FlagStatus]] = field(default_factory=list)
    visible_to_members: bool = True
    standing_rank: int | None = 57  # "My referrals": the member's own rank

    def reconcile(self, operator: Operator, now: datetime | None = None) -> rp.ReconcileResult:
        self.calls.append(("reconcile", None))
        return rp.ReconcileResult()

    def units(self, operator: Operator) -> list[UnitInfo]:
        return [NORTH, SOUTH]

    def leaderboard(self, operator: Operator, period: rp.Period, unit_id: uuid.UUID | None,
                    now: datetime | None = None, *, limit: int | None = None,
                    offset: int = 0) -> rp.Leaderboard:
        self.calls.append(("leaderboard", (period, unit_id)))
        self.pages.append(("leaderboard", limit, offset))
        rows = (
            board_row(1, "Ada Lovelace", completed=6, active=5, pending=1),
            board_row(2, "<b>Bold</b> Bob", completed=20, active=1, pending=3, flags=1),
            board_row(3, "Quiet Quinn", completed=3, active=3, opted_out=True, unit="South"),
        )
        if unit_id == SOUTH.id:
            rows = (rows[2],)
        elif period.kind is rp.PeriodKind.THIS_MONTH:
            rows = (rows[0],)
        if self.board_size:  # a big organization: rows to page through
            rows = tuple(board_row(n, f"Referrer {n:05d}", completed=self.board_size - n + 1,
                                   active=0) for n in range(1, self.board_size + 1))
        end = None if limit is None else offset + limit
        return rp.Leaderboard(period, None, None, rows[offset:end], "test", total=len(rows),
                              offset=offset)

    def standing(self, operator: Operator, period: rp.Period,
                 now: datetime | None = None) -> rp.LeaderboardRow | None:
        self.calls.append(("standing", period))
        if self.standing_rank is None:
            return None
        return replace(board_row(self.standing_rank, operator.name, completed=2, active=1),
                       referrer_id=operator.member_id)

    def trends(self, operator: Operator, period: rp.Period, granularity: rp.Granularity,
               unit_id: uuid.UUID | None, now: datetime | None = None) -> rp.Trends:
        self.calls.append(("trends", (period, granularity, unit_id)))
        step = timedelta(days=7) if granularity is rp.Granularity.WEEK else timedelta(days=31)
        start = datetime(2026, 1, 1, tzinfo=UTC)
        buckets = []
        for i in range(6):
            moment = start + step * i
            if granularity is rp.Granularity.MONTH:
                moment = moment.replace(day=1)
            buckets.append(rp.TrendBucket(
                moment, {rp.Channel.REFERRAL: i, rp.Channel.PUBLIC: 2,
                         rp.Channel.EVENT_GUEST: i % 2, rp.Channel.IMPORTED: 1},
                invitations_sent=10 + i, invitations_accepted=i))
        return rp.Trends(period, granularity, tuple(buckets))

    def conversion(self, operator: Operator, period: rp.Period, by: rp.ConversionBy,
                   unit_id: uuid.UUID | None, now: datetime | None = None, *,
                   limit: int | None = None, offset: int = 0,
                   order: rp.ConversionOrder = rp.ConversionOrder.SENT,
                   sort: rp.ConversionSort | None = None) -> rp.Conversion:
        self.calls.append(("conversion", (period, by, unit_id)))
        self.pages.append(("conversion", limit, offset))
        sort = sort or rp.ConversionSort.of(order)
        self.sorts.append(sort)
        rows = (rp.ConversionRow(uuid.UUID(int=1), f"{by.value} one", 10, 4, 0.4, 3 * 86_400),
                rp.ConversionRow(uuid.UUID(int=2), "=HYPERLINK(\"x\")", 5, 0, 0.0, None))
        if self.board_size:
            rows = tuple(rp.ConversionRow(uuid.UUID(int=n), f"Inviter {n:05d}",
                                          self.board_size - n + 1, 1, None, None)
                         for n in range(1, self.board_size + 1))
        if sort != rp.ConversionSort():  # as the service sorts: the column, then the label
            def value(row: rp.ConversionRow) -> float:
                figure = {rp.ConversionColumn.SENT: row.sent,
                          rp.ConversionColumn.ACCEPTED: row.accepted,
                          rp.ConversionColumn.RATE: row.accepted / row.sent}[sort.column]
                return -figure if sort.descending else figure

            rows = tuple(sorted(rows, key=lambda r: (value(r), r.label.casefold())))
        end = None if limit is None else offset + limit
        return rp.Conversion(period, by, rows[offset:end], 15, 4, 20, 0.75, 4 / 15, 0.2,
                             total_rows=len(rows), offset=offset, order=order, sort=sort)

    def retention(self, operator: Operator, unit_id: uuid.UUID | None,
                  now: datetime | None = None) -> rp.Retention:
        self.calls.append(("retention", unit_id))
        f = rp.RetentionFigure
        return rp.Retention(f(10, 8, 0.8), f(4, 3, 0.75), f(20, 10, 0.5), f(8, 2, 0.25),
                            (rp.RetentionRow(uuid.UUID(int=1), "Ada Lovelace", f(5, 5, 1.0),
                                             f(2, 2, 1.0)),))

    def flags(self, operator: Operator, unit_id: uuid.UUID | None) -> list[rp.FlagRow]:
        self.calls.append(("flags", unit_id))
        return list(self.flags_open)

    def decide_flag(self, operator: Operator, flag: rp.FlagRow, decision: rp.FlagStatus,
                    note: str = "") -> rp.FlagRow:
        self.decided.append((flag.id, decision))
        self.flags_open = [f for f in self.flags_open if f.id != flag.id]
        return flag

    def activity(self, operator: Operator, member_id: uuid.UUID,
                 now: datetime | None = None) -> rp.ReferralActivity:
        self.calls.append(("activity", member_id))
        return rp.ReferralActivity(member_id, operator.name, 3, 2, 1, 4, 20, 10,
                                   (rp.Badge(1),), rp.Badge(5), ())

    def settings(self, operator: Operator) -> rp.GamificationSettings:
        return rp.GamificationSettings(leaderboard_visible_to_members=self.visible_to_members)

    def opted_out(self, operator: Operator, member_id: uuid.UUID) -> bool:
        self.calls.append(("opted_out", member_id))
        return False

    def set_opted_out(self, operator: Operator, member_id: uuid.UUID, opted_out: bool) -> bool:
        self.calls.append(("set_opted_out", (member_id, opted_out)))
        return opted_out


def flag(referrer: str = "<b>Bold</b> Bob", referee: str = "Sock Puppet") -> rp.FlagRow:
    return rp.FlagRow(uuid.uuid4(), rp.FlagKind.SAME_DEVICE, rp.FlagStatus.OPEN,
                      uuid.UUID(int=2), referrer, uuid.uuid4(), referee,
                      "Registered from the same address and browser as the referrer",
                      NOW - timedelta(hours=3), None, "", "", 1)
