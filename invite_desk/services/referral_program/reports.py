"""Leaderboard, trends, conversion and retention: SQL aggregation within the operator's scope.

The figures are GROUP BYs over index ranges (referral_reward by completion time, invitation by
sent time, member_origin by join time); Python only merges the per-referrer / per-bucket
aggregates. Scope: tenant-wide roles see the organization (or one unit they pick), local roles
their unit, a member only themself (or, when the leaderboard is visible to members, the
leaderboard without those who opted out)."""

from __future__ import annotations

import uuid
from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    ColumnElement,
    Double,
    Select,
    and_,
    case,
    cast,
    exists,
    func,
    or_,
    select,
    union,
)
from sqlalchemy.orm import Session

from invite_desk.services.errors import PermissionDenied
from invite_desk.services.models import (
    Batch,
    Event,
    GrowthDayStats,
    Invitation,
    InvitationStatus,
    LeaderboardOptOut,
    Member,
    MemberOrigin,
    MemberStatus,
    Referral,
    ReferralFlag,
    ReferralMonthStats,
    ReferralPeriodStats,
    ReferralReward,
    ReferralStatus,
    Unit,
    utcnow,
)
from invite_desk.services.operator import Operator, refreshed
from invite_desk.services.permissions import ScopeLevel, scope_of
from invite_desk.services.referral_program import periods, running, stats
from invite_desk.services.referral_program.edges import Edges
from invite_desk.services.referral_program.running import ACTIVE_WEIGHT, INACTIVE_WEIGHT
from invite_desk.services.referral_program.settings import load as load_settings
from invite_desk.services.referral_program.sql import bucket_index, seconds_between
from invite_desk.services.referral_program.types import (
    Badge,
    Channel,
    Conversion,
    ConversionBy,
    ConversionColumn,
    ConversionOrder,
    ConversionRow,
    ConversionSort,
    FlagStatus,
    GamificationSettings,
    Granularity,
    Leaderboard,
    LeaderboardRow,
    Period,
    PeriodKind,
    Retention,
    RetentionFigure,
    RetentionRow,
    TrendBucket,
    Trends,
)
from invite_desk.services.roles import Role
from invite_desk.services.uow import UnitOfWork

CHUNK = 500
# Up to this many acceptances in a conversion view, medians are exact (ranked in SQL);
# beyond, interpolated within the running histogram's log-spaced bucket.
EXACT_MEDIAN_LIMIT = 2_000

HELD, VESTED, FAKE = "held", "vested", "fake"


# -- scope -------------------------------------------------------------------------------------

class _Scope:
    """Which referrers / invitations / members a report covers for this operator."""

    def __init__(self, operator: Operator, unit_id: uuid.UUID | None,
                 settings: GamificationSettings, *, leaderboard: bool = False) -> None:
        level = scope_of(operator).level
        self.operator = operator
        self.own_only = False
        self.unit_id = unit_id
        if level is ScopeLevel.UNIT:
            if unit_id is not None and unit_id != operator.unit_id:
                raise PermissionDenied("see another unit's referrals", Role.HR_TENANT.name)
            self.unit_id = operator.unit_id
        elif level is ScopeLevel.OWN:
            self.own_only = not (leaderboard and settings.leaderboard_visible_to_members)
        # Members who opted out are shown to admins only (marked), and to themselves.
        self.sees_opted_out = operator.role >= Role.ADMIN_LOCAL

    def person(self, column: Any) -> list[ColumnElement[bool]]:
        """Conditions on a member-id column (referrer, inviter)."""
        if self.own_only:
            return [column == self.operator.member_id]
        if self.unit_id is not None:
            return [column.in_(select(Member.id).where(
                Member.organization_id == self.operator.organization_id,
                Member.unit_id == self.unit_id))]
        return []

    def person_row(self, column: Any) -> list[ColumnElement[bool]]:
        """As `person`, checked per row by the member's primary key: for reads that walk a
        summary in rank order and stop after a page (a unit's member list can be 100,000
        ids long)."""
        if self.own_only:
            return [column == self.operator.member_id]
        if self.unit_id is not None:
            return [exists().where(Member.id == column, Member.unit_id == self.unit_id)]
        return []

    def invitations(self) -> list[ColumnElement[bool]]:
        if self.own_only:
            return [Invitation.inviter_id == self.operator.member_id]
        if self.unit_id is not None:
            return [Invitation.unit_id == self.unit_id]
        return []


def _today_bounds(period: Period, zone: ZoneInfo, now: datetime
                  ) -> tuple[datetime | None, datetime | None]:
    return period.bounds(zone, now)


def _in_range(column: Any, start: datetime | None, end: datetime | None
              ) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if start is not None:
        conditions.append(column >= start)
    if end is not None:
        conditions.append(column < end)
    return conditions


def _chunks(ids: Sequence[uuid.UUID]) -> Iterable[Sequence[uuid.UUID]]:
    for start in range(0, len(ids), CHUNK):
        yield ids[start:start + CHUNK]


def _members(session: Session, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, tuple[str, str, str]]:
    """id -> (name, email, unit name)."""
    found: dict[uuid.UUID, tuple[str, str, str]] = {}
    for part in _chunks(ids):
        for mid, first, last, email, unit in session.execute(
            select(Member.id, Member.first_name, Member.last_name, Member.email, Unit.name)
            .outerjoin(Unit, Unit.id == Member.unit_id).where(Member.id.in_(part))
        ):
            found[mid] = (f"{first} {last}".strip() or email, email, unit or "")
    return found


def badges_for(active: int, milestones: Sequence[int]) -> tuple[Badge, ...]:
    return tuple(Badge(m) for m in sorted(milestones) if active >= m)


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


# -- leaderboard -------------------------------------------------------------------------------

def leaderboard(uow: UnitOfWork, operator: Operator, period: Period,
                unit_id: uuid.UUID | None = None, *, limit: int | None = None,
                offset: int = 0, now: datetime | None = None,
                only_own: bool = False) -> Leaderboard:
    """Referrers ranked by score, ties to who reached it first. USER: only themself unless the
    leaderboard is visible to members (then opted-out members are hidden from them).

    `limit` / `offset`: one page of the ranking (ranks offset+1 .. offset+limit);
    `Leaderboard.total` is the number of referrers on the whole board either way. A calendar
    month, quarter, year or all time, organization-wide or for one unit, reads its page in
    rank order from the per-period summary (periods.py): a few rows whatever the size;
    other whole months sum the calendar periods covering them (threshold algorithm).
    `only_own`: the operator's own row alone (rank 1 of 1; `leaderboard_standing` ranks it
    on the board)."""
    moment = now or utcnow()
    offset = max(0, offset)
    with uow:
        session = uow.session
        operator = refreshed(session, operator)
        org = operator.organization_id
        settings = load_settings(session, org)
        scope = _Scope(operator, unit_id, settings, leaderboard=True)
        if only_own:
            scope.own_only, scope.unit_id = True, None
        start, end = period.bounds(settings.zone, moment)

        figures: dict[uuid.UUID, dict[str, Any]] = {}
        opted_out = set(session.scalars(select(LeaderboardOptOut.member_id).where(
            LeaderboardOptOut.organization_id == org)))
        # Opted-out members are hidden from those who may not see them (but not from
        # themselves): a condition on a member-id column, so SQL pages count right.
        hidden = (None if scope.sees_opted_out else select(LeaderboardOptOut.member_id).where(
            LeaderboardOptOut.organization_id == org,
            LeaderboardOptOut.member_id != operator.member_id))

        def shown(column: Any) -> list[ColumnElement[bool]]:
            return [*scope.person(column), *([~column.in_(hidden)] if hidden is not None
                                             else [])]

        def shown_row(column: Any) -> list[ColumnElement[bool]]:
            return [*scope.person_row(column), *([~column.in_(hidden)] if hidden is not None
                                                 else [])]

        def shown_period(column: Any) -> list[ColumnElement[bool]]:
            """The period summary keeps each referrer's unit: a unit's page is an index
            range of it."""
            if scope.unit_id is None or scope.own_only:
                return shown_row(column)
            return [ReferralPeriodStats.unit_id == scope.unit_id,
                    *([~column.in_(hidden)] if hidden is not None else [])]

        def row_for(mid: uuid.UUID) -> dict[str, Any]:
            return figures.setdefault(mid, {
                "completed": 0, "active": 0, "points": 0, "held": 0, "reached": None,
                "sent": 0, "accepted": 0, "open": 0, "pending_ref": 0})

        summarized = (stats.is_whole_months(start, end, settings.zone)
                      and stats.usable(session, org, settings.time_zone))
        page: tuple[list[uuid.UUID], int] | None = None
        if summarized and limit is not None and not scope.own_only:
            keys = periods.pieces(start, end, settings.zone)
            if keys and periods.built(session, org, settings.time_zone):
                page = _period_page(session, org, keys, start, end, shown_period, shown_row,
                                    row_for, offset, limit)
        elif (limit is not None and not scope.own_only
              and stats.usable(session, org, settings.time_zone)
              and periods.built(session, org, settings.time_zone)):
            # Days that are not whole months: the whole months inside from the period
            # summary, the partial months at the edges from the raw rows (indexed ranges).
            composed = periods.split(start, end, settings.zone)
            if composed is not None:
                keys, edges = composed
                hidden_ids = (set() if scope.sees_opted_out
                              else opted_out - {operator.member_id})
                page = _period_page(session, org, keys, start, end, shown_period, shown_row,
                                    row_for, offset, limit,
                                    Edges(session, org, edges, scope.person_row, hidden_ids))
        candidates = None
        wanted = None if limit is None else offset + limit
        if page is not None:
            candidates = set(page[0])
        elif (summarized and wanted is not None and scope.unit_id is None
              and not scope.own_only and running.built(session, org, settings.time_zone)):
            candidates = _ranked_candidates(session, org, settings.zone, start, end,
                                            wanted + (0 if scope.sees_opted_out
                                                      else len(opted_out)) + 1)
        if page is not None:
            pass  # the page's figures are read
        elif summarized:
            # Whole local months: sum the monthly summary (a few rows per referrer).
            S = ReferralMonthStats
            summed = (
                select(S.referrer_id, func.sum(S.completed), func.sum(S.active),
                       func.sum(S.vested_points), func.sum(S.held_points), func.max(S.reached),
                       func.sum(S.sent), func.sum(S.accepted))
                .where(S.organization_id == org, *_in_range(S.month_start, start, end),
                       *scope.person(S.referrer_id))
                .group_by(S.referrer_id)
            )
            if wanted is not None and candidates is None:
                # Rank in SQL, as below (score, who got there first, id): only the rows
                # shown (and the opted-out ones that may be hidden) come back.
                hidden_count = len(opted_out) if not scope.sees_opted_out else 0
                score_sql = (ACTIVE_WEIGHT * func.sum(S.active)
                             + INACTIVE_WEIGHT * (func.sum(S.completed) - func.sum(S.active)))
                summed = summed.order_by(
                    score_sql.desc(), case((func.max(S.reached).is_(None), 1), else_=0),
                    func.max(S.reached), S.referrer_id).limit(wanted + hidden_count + 1)
            batches = ([summed] if candidates is None else
                       [summed.where(S.referrer_id.in_(part))
                        for part in _chunks(sorted(candidates))])
            for mid, completed, active, vested, held, reached, sent, accepted in (
                row for batch in batches for row in session.execute(batch)
            ):
                row_for(mid).update(
                    completed=int(completed or 0), active=int(active or 0),
                    points=int(vested or 0), held=int(held or 0), reached=reached,
                    sent=int(sent or 0), accepted=int(accepted or 0))
        else:
            _raw_figures(session, org, scope, start, end, row_for, moment)

        pending_where = [Referral.organization_id == org, Referral.completed_at.is_(None),
                         Referral.status == ReferralStatus.PENDING.value,
                         *_in_range(Referral.referred_at, start, end),
                         *scope.person_row(Referral.referrer_id)]
        pending_parts = ([pending_where] if page is None else
                         [[*pending_where, Referral.referrer_id.in_(part)]
                          for part in _chunks(page[0])])
        for where in pending_parts:
            for mid, pending in session.execute(
                select(Referral.referrer_id, func.count()).where(*where)
                .group_by(Referral.referrer_id)
            ):
                if candidates is None or mid in candidates:
                    row_for(mid)["pending_ref"] = int(pending)

        def score(f: dict[str, Any]) -> int:
            return int(ACTIVE_WEIGHT * f["active"] + INACTIVE_WEIGHT * (f["completed"] - f["active"]))

        if page is not None:
            order, total = page
        else:
            far = datetime.max.replace(tzinfo=moment.tzinfo)
            order = sorted(
                (mid for mid in figures
                 if scope.sees_opted_out or mid not in opted_out or mid == operator.member_id),
                key=lambda mid: (-score(figures[mid]), figures[mid]["reached"] or far,
                                 str(mid)))
            if candidates is None and (wanted is None or not summarized):
                total = len(order)  # every referrer's figures were read
            else:
                total = _summarized_total(session, org, start, end, shown, pending_where)
            if limit is not None:
                order = order[offset:offset + limit]
            elif offset:
                order = order[offset:]
        people = _members(session, order)
        if summarized or page is not None:
            # Still-open invitations of the period: read by the status index (there are only
            # as many as were sent within one expiry period), not per inviter.
            for mid, still_open in session.execute(
                select(Invitation.inviter_id, func.count())
                .where(Invitation.organization_id == org,
                       Invitation.status == InvitationStatus.SENT.value,
                       *_in_range(Invitation.sent_at, start, end),
                       or_(Invitation.expires_at.is_(None), Invitation.expires_at > moment))
                .group_by(Invitation.inviter_id)
            ):
                if mid in figures:
                    figures[mid]["open"] = int(still_open)
        flags: dict[uuid.UUID, int] = {}
        for part in _chunks(order):
            flags.update(session.execute(
                select(ReferralFlag.referrer_id, func.count())
                .where(ReferralFlag.organization_id == org,
                       ReferralFlag.status == FlagStatus.OPEN.value,
                       ReferralFlag.referrer_id.in_(part))
                .group_by(ReferralFlag.referrer_id)).all())

        # Badges count all-time referees whose points vested, for the rows shown.
        vested_all: dict[uuid.UUID, int] = {}
        for part in _chunks(order):
            if summarized:
                counted = select(ReferralMonthStats.referrer_id,
                                 func.sum(ReferralMonthStats.vested)).where(
                    ReferralMonthStats.organization_id == org,
                    ReferralMonthStats.referrer_id.in_(part)
                ).group_by(ReferralMonthStats.referrer_id)
            else:
                counted = select(ReferralReward.referrer_id, func.count()).where(
                    ReferralReward.organization_id == org,
                    ReferralReward.referrer_id.in_(part), ReferralReward.state == VESTED
                ).group_by(ReferralReward.referrer_id)
            vested_all.update((mid, int(n or 0)) for mid, n in session.execute(counted))
        rows = []
        for rank, mid in enumerate(order, start=offset + 1):
            f = figures[mid]
            name, email, unit = people.get(mid, ("", "", ""))
            rows.append(LeaderboardRow(
                rank=rank, referrer_id=mid, referrer_name=name, referrer_email=email,
                unit_name=unit, completed=f["completed"], active=f["active"],
                pending=f["open"] + f["pending_ref"], pending_invitations=f["open"],
                pending_referrals=f["pending_ref"], invitations_sent=f["sent"],
                invitations_accepted=f["accepted"], acceptance_rate=_rate(f["accepted"], f["sent"]),
                points=f["points"], held_points=f["held"],
                badges=badges_for(vested_all.get(mid, 0), settings.badge_milestones),
                score=score(f), first_reached_at=f["reached"], opted_out=mid in opted_out,
                open_flags=flags.get(mid, 0) if scope.sees_opted_out else 0,
            ))
        chosen = session.get(Unit, scope.unit_id) if scope.unit_id is not None else None
        label = ("your own referrals" if scope.own_only else
                 chosen.name if chosen is not None else "whole organization")
        return Leaderboard(period, start, end, tuple(rows), label, total=total, offset=offset)


def leaderboard_standing(uow: UnitOfWork, operator: Operator, period: Period, *,
                         now: datetime | None = None) -> LeaderboardRow | None:
    """The operator's own row of the leaderboard they may see, with their rank on it: read
    at the source, without the rest of the board ("My referrals"). None when they have no
    figures in the period, or may see no leaderboard but their own (a USER while the
    organization keeps it private: their rank would tell of others).

    A calendar month, quarter, year or all time: the rank is one more than the referrers
    ranked ahead in the period summary's rank index (higher score; the same score reached
    earlier; the same instant and a lower id), less those hidden from the operator. Other
    periods, or a referrer without a score (ranked among those with none), rank on the
    whole board."""
    moment = now or utcnow()
    own = leaderboard(uow, operator, period, now=moment, only_own=True)
    if not own.rows:
        return None
    mine = own.rows[0]
    with uow:
        session = uow.session
        operator = refreshed(session, operator)
        org = operator.organization_id
        settings = load_settings(session, org)
        scope = _Scope(operator, None, settings, leaderboard=True)
        if scope.own_only:
            return None
        start, end = period.bounds(settings.zone, moment)
        key = periods.key_for(start, end, settings.zone)
        calendar = (key is not None and mine.score > 0 and mine.first_reached_at is not None
                    and periods.built(session, org, settings.time_zone))
        if calendar:
            P = ReferralPeriodStats
            where: list[ColumnElement[bool]] = [P.organization_id == org, P.period == key,
                                                *scope.person_row(P.referrer_id)]
            if not scope.sees_opted_out:
                where.append(~P.referrer_id.in_(select(LeaderboardOptOut.member_id).where(
                    LeaderboardOptOut.organization_id == org,
                    LeaderboardOptOut.member_id != operator.member_id)))
            reached = mine.first_reached_at
            ahead = sum(int(session.scalar(select(func.count()).select_from(P).where(
                *where, *condition)) or 0) for condition in (
                    [P.score > mine.score],
                    [P.score == mine.score, P.reached < reached],
                    [P.score == mine.score, P.reached == reached,
                     P.referrer_id < operator.member_id]))
            return replace(mine, rank=ahead + 1)
    board = leaderboard(uow, operator, period, now=moment)
    return next((row for row in board.rows if row.referrer_id == operator.member_id), None)


def _period_page(session: Session, org: uuid.UUID, keys: list[str], start: datetime | None,
                 end: datetime | None, shown: Any, shown_row: Any, row_for: Any, offset: int,
                 limit: int, extra: Edges | None = None
                 ) -> tuple[list[uuid.UUID], int] | None:
    """One page of the ranking (score, who got there first, id) from the period summary, and
    the number of referrers on the whole board. One calendar period: read in rank order
    from its index; whole months that are not one (`keys`: the calendar periods covering
    them): the top of the summed scores by the threshold algorithm, with `extra`, the
    figures of a range's partial edges (periods.split), added. None when the page
    reaches past the referrers with a score (those without one, and those with only
    pending referrals, who have no row, are ranked by the general path)."""
    P = ReferralPeriodStats
    shown_conditions = shown(P.referrer_id)
    where = [P.organization_id == org, *shown_conditions]
    if len(keys) == 1 and extra is None:
        where.append(P.period == keys[0])
        rows = session.execute(
            select(P.referrer_id, P.completed, P.active, P.vested_points, P.held_points,
                   P.reached, P.sent, P.accepted)
            .where(*where, P.score > 0)
            .order_by(P.score.desc(), P.reached, P.referrer_id)
            .offset(offset).limit(limit)).all()
        if len(rows) < limit:
            return None
        for mid, completed, active, vested, held, reached, sent, accepted in rows:
            row_for(mid).update(completed=int(completed), active=int(active),
                                points=int(vested), held=int(held), reached=reached,
                                sent=int(sent), accepted=int(accepted))
        order = [row[0] for row in rows]
        listed = int(session.scalar(select(func.count()).select_from(P).where(*where)) or 0)
    else:
        found = periods.top_by_sum(session, org, keys, "score", offset + limit,
                                   where[1:], extra)
        if found is None:
            return None
        far = datetime.max.replace(tzinfo=UTC)
        order = sorted(found, key=lambda mid: (-found[mid]["score"],
                                               found[mid]["reached"] or far,
                                               str(mid)))[offset:offset + limit]
        if len(order) < limit:
            return None
        for mid in order:
            f = found[mid]
            row_for(mid).update(completed=f["completed"], active=f["active"],
                                points=f["vested_points"], held=f["held_points"],
                                reached=f["reached"], sent=f["sent"], accepted=f["accepted"])
        where.append(P.period.in_(keys))
        # with a range's edges: the referrers of the whole months and of the edges together
        listed = (int(session.scalar(select(func.count(func.distinct(P.referrer_id)))
                                     .where(*where)) or 0) if extra is None else
                  extra.board(keys, key_conditions=shown_conditions))
    # Referrers with only pending referrals (few: pending referrals await one approval
    # each).
    pending_only = set(session.scalars(
        select(Referral.referrer_id).where(
            Referral.organization_id == org, Referral.completed_at.is_(None),
            Referral.status == ReferralStatus.PENDING.value,
            *_in_range(Referral.referred_at, start, end), *shown_row(Referral.referrer_id),
            ~exists().where(P.organization_id == org, P.period.in_(keys),
                            P.referrer_id == Referral.referrer_id)).distinct()))
    if extra is not None:
        pending_only -= extra.present(sorted(pending_only))
    return order, listed + len(pending_only)


def _summarized_total(session: Session, org: uuid.UUID, start: datetime | None,
                      end: datetime | None, shown: Any,
                      pending_where: Sequence[ColumnElement[bool]]) -> int:
    """Referrers on the whole board of a whole-months period: those with a monthly row in
    it, and those with only pending referrals."""
    S = ReferralMonthStats
    ids = union(
        select(S.referrer_id.label("id")).where(
            S.organization_id == org, *_in_range(S.month_start, start, end),
            *shown(S.referrer_id)),
        select(Referral.referrer_id.label("id")).where(*pending_where,
                                                       *shown(Referral.referrer_id)))
    return int(session.scalar(select(func.count()).select_from(ids.subquery())) or 0)


def _ranked_candidates(session: Session, org: uuid.UUID, zone: ZoneInfo,
                       start: datetime | None, end: datetime | None,
                       wanted: int) -> set[uuid.UUID] | None:
    """The referrers who can appear in the top `wanted` of a whole-months period: those
    whose score, from the running totals (two rows per referrer), is at least the
    `wanted`-th best; ties at that score are all kept, the figures and the tie-break are
    then read for them alone. None when fewer referrers than that have a score (small
    data: the plain sum is as cheap)."""
    top = running.period_rows(
        session, org, zone, "inviter", start, end, ("score",),
        where=[lambda f: f["score"] > 0], order_by=[lambda f: f["score"].desc()],
        limit=wanted)
    if len(top) < wanted:
        return None
    threshold = int(top[-1][1])
    return {uuid.UUID(key) for key, _ in running.period_rows(
        session, org, zone, "inviter", start, end, ("score",),
        where=[lambda f: f["score"] >= threshold])}


def _raw_figures(session: Session, org: uuid.UUID, scope: _Scope, start: datetime | None,
                 end: datetime | None, row_for: Any, moment: datetime) -> None:
    """The leaderboard's figures from the reward rows and invitations themselves (a period
    that is not whole months, or before the first reconciliation built the summary)."""
    not_fake = ReferralReward.state != FAKE
    earning = ReferralReward.state.in_((HELD, VESTED))
    for mid, completed, active, vested, held, reached in session.execute(
        select(ReferralReward.referrer_id,
               func.sum(case((not_fake, 1), else_=0)),
               func.sum(case((earning, 1), else_=0)),
               func.sum(case((ReferralReward.state == VESTED, ReferralReward.points), else_=0)),
               func.sum(case((ReferralReward.state == HELD, ReferralReward.points), else_=0)),
               func.max(case((not_fake, ReferralReward.completed_at), else_=None)))
        .where(ReferralReward.organization_id == org,
               *_in_range(ReferralReward.completed_at, start, end),
               *scope.person(ReferralReward.referrer_id))
        .group_by(ReferralReward.referrer_id)
    ):
        row_for(mid).update(completed=int(completed or 0), active=int(active or 0),
                            points=int(vested or 0), held=int(held or 0), reached=reached)
    open_now = and_(Invitation.status == InvitationStatus.SENT.value,
                    or_(Invitation.expires_at.is_(None), Invitation.expires_at > moment))
    for mid, sent, accepted, still_open in session.execute(
        select(Invitation.inviter_id, func.count(),
               func.sum(case((Invitation.status == InvitationStatus.ACCEPTED.value, 1),
                             else_=0)),
               func.sum(case((open_now, 1), else_=0)))
        .where(Invitation.organization_id == org, Invitation.sent_at.is_not(None),
               *_in_range(Invitation.sent_at, start, end), *scope.person(Invitation.inviter_id))
        .group_by(Invitation.inviter_id)
    ):
        row_for(mid).update(sent=int(sent), accepted=int(accepted or 0),
                            open=int(still_open or 0))


# -- trends ------------------------------------------------------------------------------------

def _bucket_starts(first: date, last: date, granularity: Granularity) -> list[date]:
    """Local bucket starts covering first..last, plus the start after the last bucket."""
    if granularity is Granularity.WEEK:
        current = first - timedelta(days=first.weekday())
    else:
        current = first.replace(day=1)
    starts = [current]
    while starts[-1] <= last:
        d = starts[-1]
        starts.append(d + timedelta(days=7) if granularity is Granularity.WEEK
                      else (d + timedelta(days=32)).replace(day=1))
    return starts


def _span(session: Session, org: uuid.UUID, zone: ZoneInfo, period: Period,
          now: datetime) -> tuple[date, date]:
    first, last = period.local_dates(now.astimezone(zone).date())
    if first is None or last is None:
        earliest = session.scalar(select(func.min(MemberOrigin.joined_at))
                                  .where(MemberOrigin.organization_id == org))
        sent = session.scalar(select(func.min(Invitation.sent_at))
                              .where(Invitation.organization_id == org))
        candidates = [value for value in (earliest, sent) if value is not None]
        start = min(candidates) if candidates else now
        return start.astimezone(zone).date(), now.astimezone(zone).date()
    return first, last


def trends(uow: UnitOfWork, operator: Operator, period: Period,
           granularity: Granularity = Granularity.MONTH, unit_id: uuid.UUID | None = None,
           *, now: datetime | None = None) -> Trends:
    """New members per local week/month by channel, and invitations sent vs accepted."""
    moment = now or utcnow()
    with uow:
        session = uow.session
        operator = refreshed(session, operator)
        org = operator.organization_id
        settings = load_settings(session, org)
        zone = settings.zone
        scope = _Scope(operator, unit_id, settings)
        first, last = _span(session, org, zone, period, moment)
        starts = _bucket_starts(first, last, granularity)
        # Clip the first and last bucket to the period itself.
        edges = [datetime.combine(d, time.min, zone) for d in starts]
        low = datetime.combine(first, time.min, zone)
        high = datetime.combine(last + timedelta(days=1), time.min, zone)
        cut = [max(low, min(high, edge)) for edge in edges]
        utc_edges = [edge for edge in cut]
        joined: dict[tuple[int, str], int] = {}
        if not scope.own_only and stats.usable(session, org, settings.time_zone):
            # Whole local days: sum the daily summary (a few rows a day).
            day = bucket_index(GrowthDayStats.day_start, utc_edges).label("bucket")
            summary = (select(day, GrowthDayStats.kind, func.sum(GrowthDayStats.count))
                       .where(GrowthDayStats.organization_id == org,
                              GrowthDayStats.day_start >= low, GrowthDayStats.day_start < high)
                       .group_by(day, GrowthDayStats.kind))
            if scope.unit_id is not None:
                summary = summary.where(GrowthDayStats.unit_key == str(scope.unit_id))
            per_kind: dict[tuple[int, str], int] = {
                (int(i), kind): int(n or 0) for i, kind, n in session.execute(summary)}
            return Trends(period, granularity, tuple(
                TrendBucket(
                    start=edges[i] if i else max(edges[0], low),
                    new_members={c: per_kind.get((i, c.value), 0) for c in Channel},
                    invitations_sent=per_kind.get((i, "sent"), 0),
                    invitations_accepted=per_kind.get((i, "accepted"), 0))
                for i in range(len(edges) - 1)))
        index = bucket_index(MemberOrigin.joined_at, utc_edges).label("bucket")
        stmt = (
            select(index, MemberOrigin.channel, func.count())
            .where(MemberOrigin.organization_id == org,
                   *_in_range(MemberOrigin.joined_at, low, high))
            .group_by(index, MemberOrigin.channel)
        )
        if scope.own_only:
            stmt = stmt.where(MemberOrigin.member_id.in_(select(Referral.referee_id).where(
                Referral.referrer_id == operator.member_id)))
        elif scope.unit_id is not None:
            stmt = stmt.where(MemberOrigin.member_id.in_(select(Member.id).where(
                Member.organization_id == org, Member.unit_id == scope.unit_id)))
        for bucket, channel, count in session.execute(stmt):
            joined[(int(bucket), channel)] = int(count)
        sent_index = bucket_index(Invitation.sent_at, utc_edges).label("bucket")
        sent = dict(session.execute(
            select(sent_index, func.count())
            .where(Invitation.organization_id == org, *_in_range(Invitation.sent_at, low, high),
                   *scope.invitations())
            .group_by(sent_index)).all())
        accepted_index = bucket_index(Invitation.accepted_at, utc_edges).label("bucket")
        accepted = dict(session.execute(
            select(accepted_index, func.count())
            .where(Invitation.organization_id == org,
                   Invitation.status == InvitationStatus.ACCEPTED.value,
                   *_in_range(Invitation.accepted_at, low, high), *scope.invitations())
            .group_by(accepted_index)).all())
        buckets = tuple(
            TrendBucket(
                start=edges[i] if i else max(edges[0], low),
                new_members={channel: joined.get((i, channel.value), 0) for channel in Channel},
                invitations_sent=int(sent.get(i, 0)),
                invitations_accepted=int(accepted.get(i, 0)),
            )
            for i in range(len(edges) - 1)
        )
        return Trends(period, granularity, buckets)


# -- conversion --------------------------------------------------------------------------------

def _group_key(by: ConversionBy) -> Any:
    return {ConversionBy.INVITER: Invitation.inviter_id, ConversionBy.UNIT: Invitation.unit_id,
            ConversionBy.BATCH: Invitation.batch_id, ConversionBy.EVENT: Invitation.event_id}[by]


def _labels(session: Session, by: ConversionBy, keys: list[uuid.UUID]) -> dict[uuid.UUID, str]:
    labels: dict[uuid.UUID, str] = {}
    if by is ConversionBy.INVITER:  # the name alone (no unit join): thousands of rows
        for part in _chunks(keys):
            for mid, first, last, email in session.execute(
                select(Member.id, Member.first_name, Member.last_name, Member.email)
                .where(Member.id.in_(part))
            ):
                labels[mid] = f"{first} {last}".strip() or email
        return labels
    for part in _chunks(keys):
        if by is ConversionBy.UNIT:
            rows = session.execute(select(Unit.id, Unit.name).where(Unit.id.in_(part)))
        elif by is ConversionBy.EVENT:
            rows = session.execute(select(Event.id, Event.name).where(Event.id.in_(part)))
        else:
            rows = session.execute(
                select(Batch.id, func.coalesce(func.nullif(Batch.label, ""), Batch.source))
                .where(Batch.id.in_(part)))
        labels.update(rows.all())
    return labels


NO_GROUP = {ConversionBy.INVITER: "(unknown)", ConversionBy.UNIT: "No unit",
            ConversionBy.BATCH: "No batch", ConversionBy.EVENT: "No event"}


def _ordered_page(counts: dict[Any, tuple[int, int]], column: int, offset: int,
                  limit: int | None, labelled: Callable[[list[Any]], dict[Any, str]]
                  ) -> list[tuple[Any, str]]:
    """(key, label) of rows offset .. offset+limit in the order (-count, label, key), where
    count is `column` of `counts`. Only the rows whose count is within the page's range are
    labelled (the ties at its edges decide by label), not every group."""
    def ranked(keys: list[Any]) -> list[tuple[Any, str]]:
        labels = labelled(keys)
        return sorted(((k, labels[k]) for k in keys),
                      key=lambda kl: (-counts[kl[0]][column], kl[1].casefold(),
                                      str(kl[0]) if kl[0] is not None else ""))

    if limit is None:
        return ranked(list(counts))[offset:]
    values = sorted((v[column] for v in counts.values()), reverse=True)
    if offset >= len(values) or limit <= 0:
        return []
    high, low = values[offset], values[min(offset + limit, len(values)) - 1]
    above = bisect_left([-v for v in values], -high)  # rows with a larger count
    band = ranked([k for k, v in counts.items() if low <= v[column] <= high])
    return band[offset - above:offset - above + limit]


def _calendar_counts(session: Session, org: uuid.UUID, calendar: str, column: int,
                     offset: int, limit: int | None
                     ) -> tuple[dict[Any, tuple[int, int]], int, int, int, int]:
    """From the period summary's covering index: (sent, accepted) of the inviters whose
    count (`column`) lies within the page's range, where that range starts in their order,
    and the whole view's row count and totals. Without a limit, every inviter."""
    P = ReferralPeriodStats
    where = [P.organization_id == org, P.period == calendar, P.sent > 0]
    rows, sent, accepted = session.execute(
        select(func.count(), func.coalesce(func.sum(P.sent), 0),
               func.coalesce(func.sum(P.accepted), 0)).where(*where)).one()
    totals = int(rows), int(sent), int(accepted)
    count = (P.sent, P.accepted)[column]
    band: list[ColumnElement[bool]] = []
    start = offset
    if limit is not None:
        if offset >= totals[0] or limit <= 0:
            return {}, 0, *totals
        edges = [session.scalar(select(count).where(*where).order_by(count.desc())
                                .offset(at).limit(1))
                 for at in (offset, min(offset + limit, totals[0]) - 1)]
        if edges[0] is None or edges[1] is None:  # changed meanwhile: nothing to show
            return {}, 0, *totals
        high, low = int(edges[0]), int(edges[1])
        start = offset - int(session.scalar(
            select(func.count()).select_from(P).where(*where, count > high)) or 0)
        band = [count >= low, count <= high]
    found = {k: (int(s), int(a)) for k, s, a in session.execute(
        select(P.referrer_id, P.sent, P.accepted).where(*where, *band))}
    return found, start, *totals


def _grouped(session: Session, org: uuid.UUID, zone: ZoneInfo, by: ConversionBy,
             start: datetime | None, end: datetime | None, where: Sequence[Any], key: Any,
             calendar: list[str] | None, fast: bool
             ) -> tuple[Any, Callable[[Any], Any]]:
    """The conversion's groups as a statement of (k, sent, accepted), and how to read its
    k: one calendar period by inviter from the period summary's rows; other whole months
    organization-wide from the running totals (two rows a group); else the raw rows
    grouped."""
    if calendar is not None and len(calendar) == 1 and by is ConversionBy.INVITER:
        P = ReferralPeriodStats
        return (select(P.referrer_id.label("k"), P.sent.label("sent"),
                       P.accepted.label("accepted"))
                .where(P.organization_id == org, P.period == calendar[0], P.sent > 0),
                lambda k: k)
    if fast:
        stmt = running.period_select(session, org, zone, by.value, start, end,
                                     ("sent", "accepted"), where=[lambda f: f["sent"] > 0])
        if stmt is not None:
            sub = stmt.subquery()
            return (select(sub.c.group_key.label("k"), sub.c.sent, sub.c.accepted),
                    lambda k: uuid.UUID(k) if k else None)
    accepted = func.sum(case((Invitation.status == InvitationStatus.ACCEPTED.value, 1),
                             else_=0))
    return (select(key, func.count().label("sent"), accepted.label("accepted"))
            .where(*where).group_by(key), lambda k: k)


def _sorted_page(session: Session, grouped: Select[Any], read_key: Callable[[Any], Any],
                 sort: ConversionSort, offset: int, limit: int | None,
                 labelled: Callable[[list[Any]], dict[Any, str]]
                 ) -> tuple[list[tuple[Any, str]], dict[Any, tuple[int, int]], int, int, int]:
    """(key, label) of rows offset .. offset+limit of `grouped` (k, sent, accepted) in the
    order of `sort`, ties to the label then the key; their counts; the whole view's row
    count and totals. The database sorts: the values at the page's two ends, how many rows
    come before it, and the rows between those values (the band) are read; only the band
    is labelled and ordered here."""
    q = grouped.subquery()
    metric: Any = {ConversionColumn.SENT: q.c.sent, ConversionColumn.ACCEPTED: q.c.accepted,
                   ConversionColumn.RATE: cast(q.c.accepted, Double) / cast(q.c.sent, Double),
                   }[sort.column]
    rows, sent, accepted = session.execute(
        select(func.count(), func.coalesce(func.sum(q.c.sent), 0),
               func.coalesce(func.sum(q.c.accepted), 0)).select_from(q)).one()
    totals = int(rows), int(sent), int(accepted)
    band: list[Any] = []
    start = offset
    if limit is not None:
        if offset >= totals[0] or limit <= 0:
            return [], {}, *totals
        direction = metric.desc() if sort.descending else metric.asc()
        first, last = (session.scalar(select(metric).select_from(q).order_by(direction)
                                      .offset(at).limit(1))
                       for at in (offset, min(offset + limit, totals[0]) - 1))
        if first is None or last is None:  # changed meanwhile: nothing to show
            return [], {}, *totals
        before = metric > first if sort.descending else metric < first
        start = offset - int(session.scalar(select(func.count()).select_from(q)
                                            .where(before)) or 0)
        low, high = (last, first) if sort.descending else (first, last)
        band = [metric >= low, metric <= high]
    found = {read_key(k): (int(s), int(a or 0)) for k, s, a in session.execute(
        select(q.c.k, q.c.sent, q.c.accepted).where(*band))}
    labels = labelled(list(found))

    def value(k: Any) -> float:
        s, a = found[k]
        figure = {ConversionColumn.SENT: s, ConversionColumn.ACCEPTED: a,
                  ConversionColumn.RATE: a / s if s else 0.0}[sort.column]
        return -figure if sort.descending else figure

    ordered = sorted(found, key=lambda k: (value(k), labels[k].casefold(),
                                           str(k) if k is not None else ""))
    chosen = ordered[start:] if limit is None else ordered[start:start + limit]
    return [(k, labels[k]) for k in chosen], {k: found[k] for k in chosen}, *totals


def _median(value: float | None) -> float | None:
    return float(value) if value is not None else None


def _in_groups(column: Any, keys: Sequence[Any]) -> ColumnElement[bool]:
    condition: ColumnElement[bool] = column.in_([k for k in keys if k is not None])
    if any(k is None for k in keys):
        condition = condition | column.is_(None)
    return condition


def conversion(uow: UnitOfWork, operator: Operator, period: Period,
               by: ConversionBy = ConversionBy.INVITER, unit_id: uuid.UUID | None = None,
               *, now: datetime | None = None, limit: int | None = None, offset: int = 0,
               order: ConversionOrder = ConversionOrder.SENT,
               sort: ConversionSort | None = None) -> Conversion:
    """Invitations sent vs accepted and median time to accept per group, plus the K-factor
    (invitations per active member x acceptance rate).

    Rows are ordered by invitations sent (or accepted), most first, then by label; `sort`
    (a column of ConversionColumn, either way) overrides `order`. `limit` / `offset` give
    one page of them (`Conversion.total_rows`: how many there are; the totals and the
    K-factor are the whole view's); only the page's groups are labelled and get a median.
    By inviter, organization-wide, most sent or accepted first, over a calendar month,
    quarter, year or all time (or whole months, or days around them) the page comes from
    the period summary; any other view is sorted and cut in SQL (_sorted_page), over the
    running totals of whole months, else over the raw rows' groups."""
    moment = now or utcnow()
    offset = max(0, offset)
    with uow:
        session = uow.session
        operator = refreshed(session, operator)
        org = operator.organization_id
        settings = load_settings(session, org)
        scope = _Scope(operator, unit_id, settings)
        start, end = period.bounds(settings.zone, moment)
        key = _group_key(by).label("k")
        where = [Invitation.organization_id == org, Invitation.sent_at.is_not(None),
                 *_in_range(Invitation.sent_at, start, end), *scope.invitations()]
        fast = (scope.unit_id is None and not scope.own_only
                and stats.is_whole_months(start, end, settings.zone)
                and running.built(session, org, settings.time_zone))
        calendar = (periods.pieces(start, end, settings.zone)
                    if fast and by is ConversionBy.INVITER
                    and periods.built(session, org, settings.time_zone) else None)
        counts: dict[Any, tuple[int, int]] = {}
        sort = sort or ConversionSort.of(order)
        if sort.descending and sort.column is not ConversionColumn.RATE:
            order = ConversionOrder(sort.column.value)
        column = 0 if order is ConversionOrder.SENT else 1
        # Units, batches and events, and any order but the most sent / accepted: sorted and
        # paged in SQL.
        at_source = (by is not ConversionBy.INVITER or not sort.descending
                     or sort.column is ConversionColumn.RATE)
        page_offset, total_rows = offset, -1
        top = None
        extra: Edges | None = None
        composed = (periods.split(start, end, settings.zone)
                    if (not fast and not at_source and by is ConversionBy.INVITER
                        and limit is not None
                        and scope.unit_id is None and not scope.own_only
                        and running.built(session, org, settings.time_zone)
                        and periods.built(session, org, settings.time_zone)) else None)
        if composed is not None:
            # Days that are not whole months: the whole months inside from the period
            # summary, the partial edges from the raw rows (the sent-time index).
            calendar, edges = composed
            extra = Edges(session, org, edges, lambda _column: [], invitations_only=True)
            if extra.without_inviter():  # the summary has no row for it: the general path
                calendar, extra, composed = None, None, None

        def labelled(keys: list[Any]) -> dict[Any, str]:
            found = _labels(session, by, [k for k in keys if k is not None])
            return {k: found.get(k, NO_GROUP[by]) if k is not None else NO_GROUP[by]
                    for k in keys}

        if at_source:
            page, counts, total_rows, total_sent, total_accepted = _sorted_page(
                session, *_grouped(session, org, settings.zone, by, start, end, where, key,
                                   calendar if fast else None, fast),
                sort, offset, limit, labelled)
        if at_source:
            pass
        elif calendar and (len(calendar) > 1 or extra is not None) and limit is not None:
            # whole months that are not one calendar period: the top of the sums
            top = periods.top_by_sum(session, org, calendar, order.value, offset + limit,
                                     [ReferralPeriodStats.sent > 0], extra)
        if at_source:
            pass
        elif calendar and len(calendar) == 1 and extra is None:
            counts, page_offset, total_rows, total_sent, total_accepted = _calendar_counts(
                session, org, calendar[0], column, offset, limit)
        elif top is not None and calendar:
            counts = {k: (f["sent"], f["accepted"]) for k, f in top.items()}
            P = ReferralPeriodStats
            total_rows = (int(session.scalar(
                select(func.count(func.distinct(P.referrer_id))).where(
                    P.organization_id == org, P.period.in_(calendar), P.sent > 0)) or 0)
                if extra is None else
                extra.board(calendar, sent_only=True, key_conditions=[P.sent > 0]))
            # every invitation is in one unit group (or none): the totals of 2 rows a unit
            low, high = (start, end) if composed is None else _whole_months(composed[1],
                                                                            start, end)
            units = running.period_rows(session, org, settings.zone, "unit", low, high,
                                        ("sent", "accepted"))
            total_sent = sum(int(sent) for _, sent, _ in units)
            total_accepted = sum(int(accepted) for _, _, accepted in units)
            if extra is not None:
                edge_sent, edge_accepted = extra.totals()
                total_sent += edge_sent
                total_accepted += edge_accepted
        elif fast:
            # Organization-wide whole months: the running totals, two rows per group.
            for k, sent, accepted in running.period_rows(
                session, org, settings.zone, by.value, start, end, ("sent", "accepted"),
                where=[lambda f: f["sent"] > 0]
            ):
                counts[uuid.UUID(k) if k else None] = (int(sent), int(accepted))
        else:
            counts = {
                k: (int(sent), int(accepted or 0))
                for k, sent, accepted in session.execute(
                    select(key, func.count(),
                           func.sum(case((Invitation.status == InvitationStatus.ACCEPTED.value,
                                          1), else_=0)))
                    .where(*where).group_by(key))
            }
        if total_rows < 0:
            total_rows = len(counts)
            total_sent = sum(sent for sent, _ in counts.values())
            total_accepted = sum(accepted for _, accepted in counts.values())
        if not at_source:
            page = _ordered_page(counts, column, page_offset, limit, labelled)
        keys = [k for k, _ in page]
        medians: dict[Any, float | None] = {}
        summed_view = fast or top is not None
        if keys and (not summed_view or total_accepted <= EXACT_MEDIAN_LIMIT):
            duration = seconds_between(session, Invitation.sent_at, Invitation.accepted_at)
            for part in ([keys] if limit is None else _chunks(keys)):
                ranked = (
                    select(key, duration.label("d"),
                           func.row_number().over(partition_by=key, order_by=duration)
                           .label("rn"),
                           func.count().over(partition_by=key).label("n"))
                    .where(*where, Invitation.status == InvitationStatus.ACCEPTED.value,
                           Invitation.accepted_at.is_not(None),
                           *([] if limit is None else [_in_groups(_group_key(by), part)]))
                    .subquery()
                )
                medians.update(session.execute(
                    select(ranked.c.k, func.avg(ranked.c.d))
                    .where(ranked.c.rn >= func.floor((ranked.c.n + 1) / 2.0),
                           ranked.c.rn <= func.floor((ranked.c.n + 2) / 2.0))
                    .group_by(ranked.c.k)).all())
        elif keys:
            # Beyond the exact limit: interpolated within the running histogram's bucket
            # (a range's partial edges: their own histogram, from the raw rows).
            low, high = (start, end) if composed is None else _whole_months(composed[1],
                                                                            start, end)
            for part in _chunks(keys):
                histograms = ({} if composed is None else
                              _edge_histograms(session, composed[1], where[:2], part))
                for k, *hist in running.period_rows(
                    session, org, settings.zone, by.value, low, high, running.HIST,
                    groups=[running.group_key(k) for k in part]
                ):
                    group = uuid.UUID(k) if k else None
                    more = histograms.pop(group, [0] * len(running.HIST))
                    medians[group] = running.interpolated_median(
                        [int(v) + m for v, m in zip(hist, more, strict=True)])
                for group, hist in histograms.items():
                    medians[group] = running.interpolated_median(hist)
        rows = tuple(
            ConversionRow(key=k, label=label, sent=counts[k][0], accepted=counts[k][1],
                          rate=_rate(counts[k][1], counts[k][0]),
                          median_seconds_to_accept=_median(medians.get(k)))
            for k, label in page)
        members_q = select(func.count()).select_from(Member).where(
            Member.organization_id == org, Member.status == MemberStatus.ACTIVE.value,
            *([Member.joined_at < end] if end is not None else []))
        if scope.own_only:
            members_q = members_q.where(Member.id == operator.member_id)
        elif scope.unit_id is not None:
            members_q = members_q.where(Member.unit_id == scope.unit_id)
        if fast:  # active members who joined before the end: a running total
            members = sum(int(n) for _, n in running.period_rows(
                session, org, settings.zone, "members", None, end, ("score",)))
        elif top is not None and composed is not None:  # to the last whole month, + the rest
            _, high = _whole_months(composed[1], start, end)
            members = sum(int(n) for _, n in running.period_rows(
                session, org, settings.zone, "members", None, high, ("score",)))
            if high is not None:
                members += int(session.scalar(members_q.where(Member.joined_at >= high)) or 0)
        else:
            members = int(session.scalar(members_q) or 0)
        per_member = _rate(total_sent, members)
        rate = _rate(total_accepted, total_sent)
        k_factor = per_member * rate if per_member is not None and rate is not None else None
        return Conversion(period, by, rows, total_sent, total_accepted, members,
                          per_member, rate, k_factor, total_rows=total_rows, offset=offset,
                          order=order, sort=sort)


def _whole_months(edges: Sequence[tuple[datetime, datetime]], start: datetime | None,
                  end: datetime | None) -> tuple[datetime | None, datetime | None]:
    """The whole months inside a range split into them and its partial `edges`."""
    low, high = start, end
    for edge_start, edge_end in edges:
        if edge_start == start:
            low = edge_end
        if edge_end == end:
            high = edge_start
    return low, high


def _edge_histograms(session: Session, edges: Sequence[tuple[datetime, datetime]],
                     where: Sequence[ColumnElement[bool]], inviters: Sequence[Any]
                     ) -> dict[Any, list[int]]:
    """Accepted invitations of these inviters over a range's partial edges, by time to
    accept in the running histogram's buckets."""
    found: dict[Any, list[int]] = {}
    bucket = running.histogram_bucket(session).label("b")
    in_edges = or_(*[and_(Invitation.sent_at >= low, Invitation.sent_at < high)
                     for low, high in edges])
    if edges:
        for inviter, index, count in session.execute(
            select(Invitation.inviter_id, bucket, func.count())
            .where(*where, in_edges,
                   Invitation.status == InvitationStatus.ACCEPTED.value,
                   Invitation.accepted_at.is_not(None),
                   # by the sent-time range, not by an inviter index (whose rows
                   # span every month of these, the busiest, inviters)
                   _in_groups(func.coalesce(Invitation.inviter_id, Invitation.inviter_id),
                              inviters))
            .group_by(Invitation.inviter_id, bucket)
        ):
            if index >= 0:
                found.setdefault(inviter, [0] * len(running.HIST))[int(index)] += int(count)
    return found


# -- retention ---------------------------------------------------------------------------------

def _figure(cohort: Any, retained: Any) -> RetentionFigure:
    c, r = int(cohort or 0), int(retained or 0)
    return RetentionFigure(c, r, _rate(r, c))


def retention(uow: UnitOfWork, operator: Operator, unit_id: uuid.UUID | None = None,
              *, now: datetime | None = None, per_referrer_limit: int = 200) -> Retention:
    """Share of referred vs non-referred members still active now among those who joined at
    least 90 / 365 days ago, and the same per referrer (largest cohorts first)."""
    moment = now or utcnow()
    d90, d365 = moment - timedelta(days=90), moment - timedelta(days=365)
    with uow:
        session = uow.session
        operator = refreshed(session, operator)
        org = operator.organization_id
        settings = load_settings(session, org)
        scope = _Scope(operator, unit_id, settings)
        active = Member.status == MemberStatus.ACTIVE.value
        referred = MemberOrigin.channel == Channel.REFERRAL.value

        def counts(cutoff: datetime, extra: ColumnElement[bool]) -> Select[int, Any]:
            stmt = (select(func.count(), func.sum(case((active, 1), else_=0)))
                    .select_from(MemberOrigin).join(Member, Member.id == MemberOrigin.member_id)
                    .where(MemberOrigin.organization_id == org,
                           MemberOrigin.joined_at <= cutoff, extra))
            if scope.own_only:
                stmt = stmt.where(Member.id.in_(select(Referral.referee_id).where(
                    Referral.referrer_id == operator.member_id)))
            elif scope.unit_id is not None:
                stmt = stmt.where(Member.unit_id == scope.unit_id)
            return stmt

        figures = {}
        for name, cutoff, extra in (("r90", d90, referred), ("r365", d365, referred),
                                    ("n90", d90, ~referred), ("n365", d365, ~referred)):
            figures[name] = _figure(*session.execute(counts(cutoff, extra)).one())
        joined90 = Member.joined_at <= d90
        joined365 = Member.joined_at <= d365
        per = session.execute(
            select(Referral.referrer_id,
                   func.sum(case((joined90, 1), else_=0)),
                   func.sum(case((and_(joined90, active), 1), else_=0)),
                   func.sum(case((joined365, 1), else_=0)),
                   func.sum(case((and_(joined365, active), 1), else_=0)))
            .join(Member, Member.id == Referral.referee_id)
            .where(Referral.organization_id == org,
                   Referral.status == ReferralStatus.COMPLETED.value, joined90,
                   *scope.person(Referral.referrer_id))
            .group_by(Referral.referrer_id)
            .order_by(func.count().desc(), Referral.referrer_id)
            .limit(per_referrer_limit)
        ).all()
        names = _members(session, [row[0] for row in per])
        rows = tuple(
            RetentionRow(mid, names.get(mid, ("", "", ""))[0], _figure(c90, k90),
                         _figure(c365, k365))
            for mid, c90, k90, c365, k365 in per
        )
        return Retention(figures["r90"], figures["r365"], figures["n90"], figures["n365"], rows)


__all__ = ["ACTIVE_WEIGHT", "INACTIVE_WEIGHT", "PeriodKind", "badges_for", "conversion",
           "leaderboard", "leaderboard_standing", "retention", "trends"]
