"""Leaderboard, trends, conversion and retention: SQL aggregation within the operator's scope.

The figures are GROUP BYs over index ranges (referral_reward by completion time, invitation by
sent time, member_origin by join time); Python only merges the per-referrer / per-bucket
aggregates. Scope: tenant-wide roles see the organization (or one unit they pick), local roles
their unit, a member only themself (or, when the leaderboard is visible to members, the
leaderboard without those who opted out)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Select, and_, case, func, or_, select
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
    ReferralReward,
    ReferralStatus,
    Unit,
    utcnow,
)
from invite_desk.services.operator import Operator, refreshed
from invite_desk.services.permissions import ScopeLevel, scope_of
from invite_desk.services.referral_program import running, stats
from invite_desk.services.referral_program.running import ACTIVE_WEIGHT, INACTIVE_WEIGHT
from invite_desk.services.referral_program.settings import load as load_settings
from invite_desk.services.referral_program.sql import bucket_index, seconds_between
from invite_desk.services.referral_program.types import (
    Badge,
    Channel,
    Conversion,
    ConversionBy,
    ConversionRow,
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
                now: datetime | None = None) -> Leaderboard:
    """Referrers ranked by score, ties to who reached it first. USER: only themself unless the
    leaderboard is visible to members (then opted-out members are hidden from them)."""
    moment = now or utcnow()
    with uow:
        session = uow.session
        operator = refreshed(session, operator)
        org = operator.organization_id
        settings = load_settings(session, org)
        scope = _Scope(operator, unit_id, settings, leaderboard=True)
        start, end = period.bounds(settings.zone, moment)

        figures: dict[uuid.UUID, dict[str, Any]] = {}
        opted_out = set(session.scalars(select(LeaderboardOptOut.member_id).where(
            LeaderboardOptOut.organization_id == org)))

        def row_for(mid: uuid.UUID) -> dict[str, Any]:
            return figures.setdefault(mid, {
                "completed": 0, "active": 0, "points": 0, "held": 0, "reached": None,
                "sent": 0, "accepted": 0, "open": 0, "pending_ref": 0})

        summarized = (stats.is_whole_months(start, end, settings.zone)
                      and stats.usable(session, org, settings.time_zone))
        candidates = None
        if (summarized and limit is not None and scope.unit_id is None and not scope.own_only
                and running.built(session, org, settings.time_zone)):
            candidates = _ranked_candidates(session, org, settings.zone, start, end,
                                            limit + (0 if scope.sees_opted_out
                                                     else len(opted_out)) + 1)
        if summarized:
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
            if limit is not None and candidates is None:
                # Rank in SQL, as below (score, who got there first, id): only the rows
                # shown (and the opted-out ones that may be hidden) come back.
                hidden = len(opted_out) if not scope.sees_opted_out else 0
                score_sql = (ACTIVE_WEIGHT * func.sum(S.active)
                             + INACTIVE_WEIGHT * (func.sum(S.completed) - func.sum(S.active)))
                summed = summed.order_by(
                    score_sql.desc(), case((func.max(S.reached).is_(None), 1), else_=0),
                    func.max(S.reached), S.referrer_id).limit(limit + hidden + 1)
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

        for mid, pending in session.execute(
            select(Referral.referrer_id, func.count())
            .where(Referral.organization_id == org, Referral.completed_at.is_(None),
                   Referral.status == ReferralStatus.PENDING.value,
                   *_in_range(Referral.referred_at, start, end),
                   *scope.person(Referral.referrer_id))
            .group_by(Referral.referrer_id)
        ):
            if candidates is None or mid in candidates:
                row_for(mid)["pending_ref"] = int(pending)

        ids = list(figures)

        def score(f: dict[str, Any]) -> int:
            return int(ACTIVE_WEIGHT * f["active"] + INACTIVE_WEIGHT * (f["completed"] - f["active"]))

        far = datetime.max.replace(tzinfo=moment.tzinfo)
        order = sorted(
            (mid for mid in ids
             if scope.sees_opted_out or mid not in opted_out or mid == operator.member_id),
            key=lambda mid: (-score(figures[mid]), figures[mid]["reached"] or far, str(mid)))
        if limit is not None:
            order = order[:limit]
        people = _members(session, order)
        if summarized:
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
        for rank, mid in enumerate(order, start=1):
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
        return Leaderboard(period, start, end, tuple(rows), label)


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


def conversion(uow: UnitOfWork, operator: Operator, period: Period,
               by: ConversionBy = ConversionBy.INVITER, unit_id: uuid.UUID | None = None,
               *, now: datetime | None = None) -> Conversion:
    """Invitations sent vs accepted and median time to accept per group, plus the K-factor
    (invitations per active member x acceptance rate)."""
    moment = now or utcnow()
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
        counts: dict[Any, tuple[int, int]] = {}
        histograms: dict[Any, list[int]] = {}
        if fast:
            # Organization-wide whole months: the running totals, two rows per group.
            for k, sent, accepted, *hist in running.period_rows(
                session, org, settings.zone, by.value, start, end,
                ("sent", "accepted", *running.HIST), where=[lambda f: f["sent"] > 0]
            ):
                group = uuid.UUID(k) if k else None
                counts[group] = (int(sent), int(accepted))
                histograms[group] = [int(v) for v in hist]
        else:
            counts = {
            k: (int(sent), int(accepted or 0))
            for k, sent, accepted in session.execute(
                select(key, func.count(),
                       func.sum(case((Invitation.status == InvitationStatus.ACCEPTED.value, 1),
                                     else_=0)))
                .where(*where).group_by(key))
            }
        duration = seconds_between(session, Invitation.sent_at, Invitation.accepted_at)
        ranked = (
            select(key, duration.label("d"),
                   func.row_number().over(partition_by=key, order_by=duration).label("rn"),
                   func.count().over(partition_by=key).label("n"))
            .where(*where, Invitation.status == InvitationStatus.ACCEPTED.value,
                   Invitation.accepted_at.is_not(None))
            .subquery()
        )
        if not fast or sum(a for _, a in counts.values()) <= EXACT_MEDIAN_LIMIT:
            medians = dict(session.execute(
                select(ranked.c.k, func.avg(ranked.c.d))
                .where(ranked.c.rn >= func.floor((ranked.c.n + 1) / 2.0),
                       ranked.c.rn <= func.floor((ranked.c.n + 2) / 2.0))
                .group_by(ranked.c.k)).all())
        else:
            medians = {k: running.interpolated_median(h) for k, h in histograms.items()}
        labels = _labels(session, by, [k for k in counts if k is not None])
        rows = sorted(
            (ConversionRow(key=k, label=labels.get(k, NO_GROUP[by]) if k else NO_GROUP[by],
                           sent=sent, accepted=accepted, rate=_rate(accepted, sent),
                           median_seconds_to_accept=(float(medians[k]) if medians.get(k)
                                                     is not None else None))
             for k, (sent, accepted) in counts.items()),
            key=lambda r: (-r.sent, r.label.casefold()))
        total_sent = sum(r.sent for r in rows)
        total_accepted = sum(r.accepted for r in rows)
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
        else:
            members = int(session.scalar(members_q) or 0)
        per_member = _rate(total_sent, members)
        rate = _rate(total_accepted, total_sent)
        k_factor = per_member * rate if per_member is not None and rate is not None else None
        return Conversion(period, by, tuple(rows), total_sent, total_accepted, members,
                          per_member, rate, k_factor)


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
           "leaderboard", "retention", "trends"]
