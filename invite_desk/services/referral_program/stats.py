"""The leaderboard's monthly summary (`referral_month_stats`), kept by the reconciliation.

One row per referrer and local month of the organization: completed referrals, of them
active, vested and held points, the last completion (for ties), invitations sent and
accepted. A period made of whole local months (this month, quarter, year, all time) sums
these rows (a few per referrer) instead of reading every referral and invitation.

What is recomputed, from the raw tables, on each reconciliation: the referrers whose rewards
it changed, and the inviters of invitations changed since the last one (the invitation
`updated_at` watermark). Everything is rebuilt when the organization's time zone changed
or the summary was never built. Recomputing from the raw rows makes it idempotent."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import case, delete, func, insert, select
from sqlalchemy.orm import Session

from invite_desk.services.models import (
    GrowthDayStats,
    Invitation,
    InvitationStatus,
    Member,
    MemberOrigin,
    ReferralMonthStats,
    ReferralReward,
    Setting,
)
from invite_desk.services.referral_program import periods, running
from invite_desk.services.referral_program.sql import bucket_index

ZONE_KEY = "referralProgram._statsTimeZone"
WATERMARK_KEY = "referralProgram._statsWatermark"
CHUNK = 500
MARGIN = timedelta(seconds=5)  # clock skew between writers: look a little further back


def _get(session: Session, org: uuid.UUID, key: str) -> tuple[Setting | None, Any]:
    row = session.scalar(select(Setting).where(Setting.organization_id == org,
                                               Setting.key == key))
    return row, (json.loads(row.value_json) if row is not None else None)


def _put(session: Session, org: uuid.UUID, row: Setting | None, key: str, value: Any) -> None:
    encoded = json.dumps(value)
    if row is None:
        session.add(Setting(organization_id=org, key=key, value_json=encoded))
    elif row.value_json != encoded:
        row.value_json = encoded


def usable(session: Session, org: uuid.UUID, zone_name: str) -> bool:
    """Whether the summary is built, for this time zone."""
    _, zone = _get(session, org, ZONE_KEY)
    _, mark = _get(session, org, WATERMARK_KEY)
    return zone == zone_name and mark is not None


def month_start(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day.replace(day=1), time.min, zone)


def month_edges(zone: ZoneInfo, first: datetime, last: datetime) -> list[datetime]:
    """Local month starts from the month of `first` to the one after `last`."""
    current = first.astimezone(zone).date().replace(day=1)
    end = last.astimezone(zone).date()
    edges = [month_start(current, zone)]
    while current <= end:
        current = (current + timedelta(days=32)).replace(day=1)
        edges.append(month_start(current, zone))
    return edges


def is_whole_months(start: datetime | None, end: datetime | None, zone: ZoneInfo) -> bool:
    if start is None or end is None:
        return start is None and end is None
    return all(
        moment == month_start(moment.astimezone(zone).date(), zone) for moment in (start, end))


def _chunks(ids: list[uuid.UUID]) -> Iterable[list[uuid.UUID]]:
    for index in range(0, len(ids), CHUNK):
        yield ids[index:index + CHUNK]


def _row(rows: dict[tuple[uuid.UUID, int], dict[str, Any]], org: uuid.UUID,
         edges: list[datetime], referrer: uuid.UUID, bucket: int) -> dict[str, Any]:
    return rows.setdefault((referrer, bucket), {
        "organization_id": org, "month_start": edges[bucket], "referrer_id": referrer,
        "completed": 0, "active": 0, "vested_points": 0, "vested": 0, "held_points": 0,
        "reached": None, "sent": 0, "accepted": 0})


def _rebuild(session: Session, org: uuid.UUID, zone: ZoneInfo,
             referrers: list[uuid.UUID] | None) -> None:
    """Recompute the rows of `referrers` (None: everyone) from the raw tables."""
    parts: Iterable[list[uuid.UUID] | None] = [None] if referrers is None else _chunks(referrers)
    for part in parts:
        reward_where: list[Any] = [ReferralReward.organization_id == org]
        invite_where: list[Any] = [Invitation.organization_id == org,
                                   Invitation.sent_at.is_not(None)]
        wipe = delete(ReferralMonthStats).where(ReferralMonthStats.organization_id == org)
        if part is not None:
            reward_where.append(ReferralReward.referrer_id.in_(part))
            invite_where.append(Invitation.inviter_id.in_(part))
            wipe = wipe.where(ReferralMonthStats.referrer_id.in_(part))
        session.execute(wipe)
        low = [v for v in (
            session.scalar(select(func.min(ReferralReward.completed_at)).where(*reward_where)),
            session.scalar(select(func.min(Invitation.sent_at)).where(*invite_where))) if v]
        high = [v for v in (
            session.scalar(select(func.max(ReferralReward.completed_at)).where(*reward_where)),
            session.scalar(select(func.max(Invitation.sent_at)).where(*invite_where))) if v]
        if not low or not high:
            continue
        edges = month_edges(zone, min(low), max(high))
        rows: dict[tuple[uuid.UUID, int], dict[str, Any]] = {}


        bucket = bucket_index(ReferralReward.completed_at, edges).label("bucket")
        not_fake = ReferralReward.state != "fake"
        for referrer, index, completed, active, vested, count, held, reached in session.execute(
            select(ReferralReward.referrer_id, bucket,
                   func.sum(case((not_fake, 1), else_=0)),
                   func.sum(case((ReferralReward.state.in_(("held", "vested")), 1), else_=0)),
                   func.sum(case((ReferralReward.state == "vested", ReferralReward.points),
                                 else_=0)),
                   func.sum(case((ReferralReward.state == "vested", 1), else_=0)),
                   func.sum(case((ReferralReward.state == "held", ReferralReward.points),
                                 else_=0)),
                   func.max(case((not_fake, ReferralReward.completed_at), else_=None)))
            .where(*reward_where).group_by(ReferralReward.referrer_id, bucket)
        ):
            if index < 0:
                continue
            _row(rows, org, edges, referrer, int(index)).update(
                completed=int(completed or 0), active=int(active or 0),
                vested_points=int(vested or 0), vested=int(count or 0),
                held_points=int(held or 0), reached=reached)
        sent_bucket = bucket_index(Invitation.sent_at, edges).label("bucket")
        for inviter, index, sent, accepted in session.execute(
            select(Invitation.inviter_id, sent_bucket, func.count(),
                   func.sum(case((Invitation.status == InvitationStatus.ACCEPTED.value, 1),
                                 else_=0)))
            .where(*invite_where).group_by(Invitation.inviter_id, sent_bucket)
        ):
            if index < 0:
                continue
            _row(rows, org, edges, inviter, int(index)).update(sent=int(sent), accepted=int(accepted or 0))
        values = list(rows.values())
        for start in range(0, len(values), 5000):
            session.execute(insert(ReferralMonthStats), values[start:start + 5000])


def refresh(session: Session, org: uuid.UUID, zone_name: str, wall: datetime,
            referrers: Iterable[uuid.UUID], *, follow_invitations: bool = True) -> None:
    """Bring the summary up to date after a reconciliation that touched `referrers`."""
    zone = ZoneInfo(zone_name)
    zone_row, stored_zone = _get(session, org, ZONE_KEY)
    mark_row, mark = _get(session, org, WATERMARK_KEY)
    if stored_zone != zone_name or mark is None:
        if not follow_invitations:
            return  # never built: the next full reconciliation builds it
        _rebuild(session, org, zone, None)
        periods.rebuild(session, org, zone, zone_name)
        refresh_growth(session, org, zone, None)
        running.rebuild(session, org, zone, zone_name)
        _put(session, org, zone_row, ZONE_KEY, zone_name)
        _put(session, org, mark_row, WATERMARK_KEY, (wall - MARGIN).isoformat())
        return
    dirty = set(referrers)
    since: datetime | None = None
    if follow_invitations and not running.built(session, org, zone_name):
        running.rebuild(session, org, zone, zone_name)  # a database from before 0009
    else:
        running.follow(session, org, zone, dirty,
                       datetime.fromisoformat(str(mark)) if follow_invitations else None)
    if follow_invitations:
        since = datetime.fromisoformat(str(mark))
        dirty.update(i for i in session.scalars(
            select(Invitation.inviter_id)
            .where(Invitation.organization_id == org, Invitation.updated_at > since))
            if i is not None)
        refresh_growth(session, org, zone, since)
        _put(session, org, mark_row, WATERMARK_KEY, (wall - MARGIN).isoformat())
    if dirty:
        _rebuild(session, org, zone, sorted(dirty))
    # the calendar periods follow the monthly rows (a database from before 0011: all of them)
    if not periods.built(session, org, zone_name):
        if follow_invitations:
            periods.rebuild(session, org, zone, zone_name)
    else:
        periods.follow(session, org, zone, dirty, since)


# -- growth per local day (trends) -------------------------------------------------------------

def day_start(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time.min, zone)


def _runs(days: set[date]) -> list[tuple[date, date]]:
    """Contiguous runs of days, as (first, last)."""
    runs: list[tuple[date, date]] = []
    for day in sorted(days):
        if runs and day == runs[-1][1] + timedelta(days=1):
            runs[-1] = (runs[-1][0], day)
        else:
            runs.append((day, day))
    return runs


def _unit_key(unit_id: uuid.UUID | None) -> str:
    return str(unit_id) if unit_id is not None else ""


def _rebuild_growth(session: Session, org: uuid.UUID, zone: ZoneInfo, first: date,
                    last: date) -> None:
    edges = [day_start(first + timedelta(days=n), zone)
             for n in range((last - first).days + 2)]
    low, high = edges[0], edges[-1]
    session.execute(delete(GrowthDayStats).where(
        GrowthDayStats.organization_id == org, GrowthDayStats.day_start >= low,
        GrowthDayStats.day_start < high))
    counts: dict[tuple[int, str, str], int] = {}
    joined = bucket_index(MemberOrigin.joined_at, edges).label("bucket")
    for index, channel, unit, count in session.execute(
        select(joined, MemberOrigin.channel, Member.unit_id, func.count())
        .join(Member, Member.id == MemberOrigin.member_id)
        .where(MemberOrigin.organization_id == org, MemberOrigin.joined_at >= low,
               MemberOrigin.joined_at < high)
        .group_by(joined, MemberOrigin.channel, Member.unit_id)
    ):
        counts[(int(index), channel, _unit_key(unit))] = int(count)
    for kind, column, extra in (
        ("sent", Invitation.sent_at, []),
        ("accepted", Invitation.accepted_at,
         [Invitation.status == InvitationStatus.ACCEPTED.value]),
    ):
        bucket = bucket_index(column, edges).label("bucket")
        for index, unit, count in session.execute(
            select(bucket, Invitation.unit_id, func.count())
            .where(Invitation.organization_id == org, column >= low, column < high, *extra)
            .group_by(bucket, Invitation.unit_id)
        ):
            counts[(int(index), kind, _unit_key(unit))] = int(count)
    values = [{"organization_id": org, "day_start": edges[index], "kind": kind,
               "unit_key": unit, "count": count}
              for (index, kind, unit), count in counts.items() if index >= 0]
    for start in range(0, len(values), 5000):
        session.execute(insert(GrowthDayStats), values[start:start + 5000])


def _local_days(values: Iterable[datetime | None], zone: ZoneInfo) -> set[date]:
    return {value.astimezone(zone).date() for value in values if value is not None}


def refresh_growth(session: Session, org: uuid.UUID, zone: ZoneInfo,
                   since: datetime | None) -> None:
    """Recompute the days touched since `since` (None: every day there is data for)."""
    if since is None:
        bounds = [v for v in (
            session.scalar(select(func.min(MemberOrigin.joined_at))
                           .where(MemberOrigin.organization_id == org)),
            session.scalar(select(func.max(MemberOrigin.joined_at))
                           .where(MemberOrigin.organization_id == org)),
            session.scalar(select(func.min(Invitation.sent_at))
                           .where(Invitation.organization_id == org)),
            session.scalar(select(func.max(func.coalesce(Invitation.accepted_at,
                                                         Invitation.sent_at)))
                           .where(Invitation.organization_id == org))) if v is not None]
        session.execute(delete(GrowthDayStats).where(GrowthDayStats.organization_id == org))
        if bounds:
            days = _local_days(bounds, zone)
            _rebuild_growth(session, org, zone, min(days), max(days))
        return
    days = _local_days(session.scalars(
        select(MemberOrigin.joined_at).where(MemberOrigin.organization_id == org,
                                             MemberOrigin.recorded_at > since)), zone)
    for sent, accepted in session.execute(
        select(Invitation.sent_at, Invitation.accepted_at)
        .where(Invitation.organization_id == org, Invitation.updated_at > since)
    ):
        days |= _local_days((sent, accepted), zone)
    for first, last in _runs(days):
        _rebuild_growth(session, org, zone, first, last)
