"""Running totals per local month (`referral_running_stats`), kept by the reconciliation.

Every group (a referrer/inviter, unit, batch, event; "members" has the one group "") has a
row for every local month from its first to the dimension's newest month (the horizon),
holding its totals through the end of that month. A period of whole months is then the row
at its last month less the row of the month before its first: two indexed reads per group,
whatever the length of the period (summing monthly rows read twelve per group for a year).

Figures: `score` (dim "inviter": the quality score of the referrer's completed referrals by
completion month; dim "members": active members by join month), `sent` / `accepted`
(invitations by sent month), and `h0`..`h15`, accepted invitations by time to accept in the
log-spaced buckets of `HISTOGRAM_EDGES` (the conversion's median is interpolated within its
bucket when the period holds too many acceptances to rank them exactly).

Recomputed from the raw tables (so idempotent): whole groups for the referrers a
reconciliation touched and inviters whose invitations changed; for units, batches, events and
members, the months from the earliest one a changed row falls in."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    case,
    delete,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.orm import Session, aliased

from invite_desk.services.models import (
    Invitation,
    InvitationStatus,
    Member,
    MemberStatus,
    ReferralReward,
    ReferralRunningStats,
    Setting,
)
from invite_desk.services.referral_program.sql import bucket_index, seconds_between

R = ReferralRunningStats
ACTIVE_WEIGHT = 5  # a referee who is still an active member
INACTIVE_WEIGHT = 1  # a completed referral whose referee is no longer active
# Lower edges (seconds) of the time-to-accept buckets; the last one is open-ended.
HISTOGRAM_EDGES: tuple[int, ...] = (
    0, 60, 300, 900, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 2 * 86400, 3 * 86400,
    5 * 86400, 7 * 86400, 14 * 86400, 30 * 86400, 60 * 86400)
HIST = tuple(f"h{i}" for i in range(len(HISTOGRAM_EDGES)))
COLS = ("score", "sent", "accepted", *HIST)
INVITATION_DIMS = ("inviter", "unit", "batch", "event")
DIMS = (*INVITATION_DIMS, "members")
BUILT_KEY = "referralProgram._runningStatsZone"
CHUNK = 500


def _column(dim: str) -> Any:
    return {"inviter": Invitation.inviter_id, "unit": Invitation.unit_id,
            "batch": Invitation.batch_id, "event": Invitation.event_id}[dim]


def group_key(value: uuid.UUID | None) -> str:
    return str(value) if value is not None else ""


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


def month_of(moment: datetime, zone: ZoneInfo) -> datetime:
    """The start (UTC) of the local month `moment` falls in."""
    local = moment.astimezone(zone).date().replace(day=1)
    return _utc(datetime(local.year, local.month, 1, tzinfo=zone))


def next_month(month: datetime, zone: ZoneInfo) -> datetime:
    local = (month.astimezone(zone).date().replace(day=1) + timedelta(days=32)).replace(day=1)
    return _utc(datetime(local.year, local.month, 1, tzinfo=zone))


def previous_month(month: datetime, zone: ZoneInfo) -> datetime:
    local = (month.astimezone(zone).date().replace(day=1) - timedelta(days=1)).replace(day=1)
    return _utc(datetime(local.year, local.month, 1, tzinfo=zone))


def _months(first: datetime, last: datetime, zone: ZoneInfo) -> list[datetime]:
    """Month starts from `first`'s month through `last`'s, plus the one after (edges)."""
    edges = [month_of(first, zone)]
    end = month_of(last, zone)
    while edges[-1] <= end:
        edges.append(next_month(edges[-1], zone))
    return edges


def _chunks(values: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), CHUNK):
        yield values[start:start + CHUNK]


def _group_filter(column: Any, keys: Sequence[str]) -> ColumnElement[bool]:
    ids = [uuid.UUID(k) for k in keys if k]
    condition: ColumnElement[bool] = column.in_(ids)
    if "" in keys:
        condition = condition | column.is_(None)
    return condition


def histogram_bucket(session: Session) -> ColumnElement[int]:
    seconds = seconds_between(session, Invitation.sent_at, Invitation.accepted_at)
    edges: list[Any] = [*HISTOGRAM_EDGES, 10 ** 12]
    clipped = case((seconds < 0, literal(0.0)), else_=seconds)
    return bucket_index(clipped, edges)


# -- monthly figures from the raw tables -------------------------------------------------------

Monthly = dict[str, dict[datetime, list[int]]]


def _add(out: Monthly, key: str, month: datetime, column: str, value: int) -> None:
    figures = out.setdefault(key, {}).setdefault(month, [0] * len(COLS))
    figures[COLS.index(column)] += value


def _monthly(session: Session, org: uuid.UUID, zone: ZoneInfo, dim: str,
             keys: Sequence[str] | None, since: datetime | None) -> Monthly:
    """Per group and month (from `since`'s month on): the month's own figures."""
    out: Monthly = {}
    if dim == "members":
        where: list[Any] = [Member.organization_id == org,
                            Member.status == MemberStatus.ACTIVE.value]
        if since is not None:
            where.append(Member.joined_at >= since)
        low, high = session.execute(
            select(func.min(Member.joined_at), func.max(Member.joined_at)).where(*where)).one()
        if low is None:
            return out
        edges = _months(low, high, zone)
        month = bucket_index(Member.joined_at, edges).label("m")
        for index, count in session.execute(select(month, func.count()).where(*where)
                                            .group_by(month)):
            if index >= 0:
                _add(out, "", edges[index], "score", int(count))
        return out
    column = _column(dim)
    where = [Invitation.organization_id == org, Invitation.sent_at.is_not(None)]
    reward_where: list[Any] = [ReferralReward.organization_id == org]
    if since is not None:
        where.append(Invitation.sent_at >= since)
        reward_where.append(ReferralReward.completed_at >= since)
    if keys is not None:
        where.append(_group_filter(column, keys))
        reward_where.append(ReferralReward.referrer_id.in_([uuid.UUID(k) for k in keys if k]))
    bounds = [v for v in session.execute(
        select(func.min(Invitation.sent_at), func.max(Invitation.sent_at)).where(*where)).one()
        if v is not None]
    if dim == "inviter":
        bounds += [v for v in session.execute(
            select(func.min(ReferralReward.completed_at), func.max(ReferralReward.completed_at))
            .where(*reward_where)).one() if v is not None]
    if not bounds:
        return out
    edges = _months(min(bounds), max(bounds), zone)
    month = bucket_index(Invitation.sent_at, edges).label("m")
    accepted = Invitation.status == InvitationStatus.ACCEPTED.value
    for key, index, sent, ok in session.execute(
        select(column, month, func.count(), func.sum(case((accepted, 1), else_=0)))
        .where(*where).group_by(column, month)
    ):
        if index >= 0:
            _add(out, group_key(key), edges[index], "sent", int(sent))
            _add(out, group_key(key), edges[index], "accepted", int(ok or 0))
    bucket = histogram_bucket(session).label("b")
    for key, index, hist, count in session.execute(
        select(column, month, bucket, func.count())
        .where(*where, accepted, Invitation.accepted_at.is_not(None))
        .group_by(column, month, bucket)
    ):
        if index >= 0 and hist >= 0:
            _add(out, group_key(key), edges[index], f"h{int(hist)}", int(count))
    if dim == "inviter":
        done = bucket_index(ReferralReward.completed_at, edges).label("m")
        weight = case((ReferralReward.state.in_(("held", "vested")), ACTIVE_WEIGHT),
                      (ReferralReward.state == "fake", 0), else_=INACTIVE_WEIGHT)
        for referrer, index, score in session.execute(
            select(ReferralReward.referrer_id, done, func.sum(weight))
            .where(*reward_where).group_by(ReferralReward.referrer_id, done)
        ):
            if index >= 0:
                _add(out, group_key(referrer), edges[index], "score", int(score or 0))
    return out


# -- writing running rows ----------------------------------------------------------------------

def _horizon(session: Session, org: uuid.UUID, dim: str) -> datetime | None:
    return session.scalar(select(func.max(R.month_start))
                          .where(R.organization_id == org, R.dim == dim))


def _extend(session: Session, org: uuid.UUID, dim: str, zone: ZoneInfo,
            to: datetime) -> datetime:
    """Carry every group's last row forward, month by month, up to `to`."""
    horizon = _horizon(session, org, dim)
    if horizon is None:
        return to
    while horizon < to:
        after = next_month(horizon, zone)
        session.execute(insert(R).from_select(
            ["organization_id", "dim", "group_key", "month_start", *COLS],
            select(R.organization_id, R.dim, R.group_key,
                   literal(after, R.__table__.c.month_start.type),
                   *[getattr(R, c) for c in COLS])
            .where(R.organization_id == org, R.dim == dim, R.month_start == horizon)))
        horizon = after
    return horizon


def _write(session: Session, org: uuid.UUID, dim: str, zone: ZoneInfo, monthly: Monthly,
           firsts: dict[str, datetime | None]) -> None:
    """Rewrite the rows of each group in `firsts` from its month (None: all) to the horizon."""
    newest = [m for per in monthly.values() for m in per]
    horizon = _horizon(session, org, dim)
    if newest:
        top = max(newest)
        horizon = _extend(session, org, dim, zone, top) if horizon is not None else top
        horizon = max(horizon, top)
    rows: list[dict[str, Any]] = []
    for key, first in firsts.items():
        base = [0] * len(COLS)
        group = (R.organization_id == org, R.dim == dim, R.group_key == key)
        if first is not None:
            before = session.execute(
                select(*[getattr(R, c) for c in COLS]).where(*group, R.month_start < first)
                .order_by(R.month_start.desc()).limit(1)).first()
            if before is not None:
                base = [int(v) for v in before]
            session.execute(delete(R).where(*group, R.month_start >= first))
        else:
            session.execute(delete(R).where(*group))
        months = monthly.get(key, {})
        start = first if first is not None and any(base) else (
            min(months) if months else None)
        if start is None or horizon is None:
            continue
        month = start
        while month <= horizon:
            own = months.get(month)
            if own is not None:
                base = [a + b for a, b in zip(base, own, strict=True)]
            rows.append({"organization_id": org, "dim": dim, "group_key": key,
                         "month_start": month, **dict(zip(COLS, base, strict=True))})
            month = next_month(month, zone)
            if len(rows) >= 5000:
                session.execute(insert(R), rows)
                rows = []
    if rows:
        session.execute(insert(R), rows)


def recompute(session: Session, org: uuid.UUID, zone: ZoneInfo, dim: str,
              groups: dict[str, datetime | None]) -> None:
    """Recompute these groups of `dim` from their month (None: whole group)."""
    by_first: dict[datetime | None, list[str]] = {}
    for key, first in groups.items():
        by_first.setdefault(month_of(first, zone) if first is not None else None,
                            []).append(key)
    for first, keys in sorted(by_first.items(), key=lambda item: item[0] or datetime.min.replace(
            tzinfo=UTC)):
        for part in _chunks(sorted(keys)):
            monthly = _monthly(session, org, zone, dim, part, first)
            _write(session, org, dim, zone, monthly, dict.fromkeys(part, first))


def rebuild(session: Session, org: uuid.UUID, zone: ZoneInfo, zone_name: str) -> None:
    """Everything from the raw tables (first build, or the time zone changed)."""
    session.execute(delete(R).where(R.organization_id == org))
    for dim in DIMS:
        monthly = _monthly(session, org, zone, dim, None, None)
        _write(session, org, dim, zone, monthly, dict.fromkeys(sorted(monthly)))
    row = session.scalar(select(Setting).where(Setting.organization_id == org,
                                               Setting.key == BUILT_KEY))
    if row is None:
        session.add(Setting(organization_id=org, key=BUILT_KEY,
                            value_json=json.dumps(zone_name)))
    else:
        row.value_json = json.dumps(zone_name)


def built(session: Session, org: uuid.UUID, zone_name: str) -> bool:
    value = session.scalar(select(Setting.value_json).where(Setting.organization_id == org,
                                                            Setting.key == BUILT_KEY))
    return value is not None and json.loads(value) == zone_name


def follow(session: Session, org: uuid.UUID, zone: ZoneInfo, referrers: Iterable[uuid.UUID],
           since: datetime | None) -> None:
    """After a reconciliation: the touched referrers (whole), and with `since` the groups of
    invitations and members changed since then (from the month they fall in)."""
    inviters: dict[str, datetime | None] = dict.fromkeys(
        (group_key(r) for r in referrers), None)
    if since is not None:
        # The changed rows themselves, by the updated_at indexes (a GROUP BY here could
        # be planned as a walk of a whole group index), grouped here: they are few.
        changed = session.execute(
            select(Invitation.inviter_id, Invitation.unit_id, Invitation.batch_id,
                   Invitation.event_id, Invitation.sent_at)
            .where(Invitation.organization_id == org, Invitation.updated_at > since)).all()
        for row in changed:
            if row.sent_at is not None:
                inviters[group_key(row.inviter_id)] = None
        for dim in ("unit", "batch", "event"):
            groups: dict[str, datetime | None] = {}
            for row in changed:
                if row.sent_at is None:
                    continue
                key = group_key(getattr(row, f"{dim}_id"))
                first = groups.get(key)
                groups[key] = row.sent_at if first is None else min(first, row.sent_at)
            if groups:
                recompute(session, org, zone, dim, groups)
        joined = set(session.scalars(select(Member.joined_at).where(
            Member.organization_id == org, Member.updated_at > since)))
        if joined:
            _follow_members(session, org, zone, {month_of(j, zone) for j in joined})
    if inviters:
        recompute(session, org, zone, "inviter", inviters)


def _follow_members(session: Session, org: uuid.UUID, zone: ZoneInfo,
                    months: set[datetime]) -> None:
    """Active members by join month, for the months changed members joined in: each month
    counted again (by the status / join index), the difference carried to later months.
    (A member sign-in touches `updated_at` too: this must not recount every month.)"""
    group = (R.organization_id == org, R.dim == "members", R.group_key == "")
    for month in sorted(months):
        count = int(session.scalar(select(func.count()).select_from(Member).where(
            Member.organization_id == org, Member.status == MemberStatus.ACTIVE.value,
            Member.joined_at >= month, Member.joined_at < next_month(month, zone))) or 0)
        here = session.scalar(select(R.score).where(*group, R.month_start == month))
        if here is None:  # before the first row or after the horizon: rewrite from there
            recompute(session, org, zone, "members", {"": month})
            continue
        before = session.scalar(select(R.score).where(
            *group, R.month_start == previous_month(month, zone))) or 0
        delta = count - (int(here) - int(before))
        if delta:
            session.execute(update(R).where(*group, R.month_start >= month)
                            .values(score=R.score + delta)
                            .execution_options(synchronize_session=False))


# -- reading a period --------------------------------------------------------------------------

def period_rows(session: Session, org: uuid.UUID, zone: ZoneInfo, dim: str,
                start: datetime | None, end: datetime | None,
                columns: Sequence[str] = COLS, *, where: Sequence[Any] = (),
                order_by: Sequence[Any] = (), limit: int | None = None,
                groups: Sequence[str] | None = None) -> list[tuple[Any, ...]]:
    """(group_key, *figures of the period) for the groups with a row at the period's last
    month (or those of them in `groups`); the period is whole local months (start / end
    None: open)."""
    stmt = period_select(session, org, zone, dim, start, end, columns, where=where,
                         order_by=order_by, limit=limit, groups=groups)
    return [] if stmt is None else [tuple(row) for row in session.execute(stmt)]


def period_select(session: Session, org: uuid.UUID, zone: ZoneInfo, dim: str,
                  start: datetime | None, end: datetime | None,
                  columns: Sequence[str] = COLS, *, where: Sequence[Any] = (),
                  order_by: Sequence[Any] = (), limit: int | None = None,
                  groups: Sequence[str] | None = None) -> Select[Any] | None:
    """The statement of `period_rows` (to sort and page in SQL); None when the period holds
    no month of the dimension."""
    horizon = _horizon(session, org, dim)
    if horizon is None:
        return None
    last = horizon if end is None else min(horizon, previous_month(_utc(end), zone))
    if start is not None and last < _utc(start):
        return None
    at = aliased(R, name="at_end")
    before = aliased(R, name="before_start")
    figures = {c: getattr(at, c) - func.coalesce(getattr(before, c), 0) if start is not None
               else getattr(at, c) for c in columns}
    stmt = select(at.group_key, *[figures[c].label(c) for c in columns]).where(
        at.organization_id == org, at.dim == dim, at.month_start == last)
    if start is not None:
        stmt = stmt.outerjoin(before, and_(
            before.organization_id == at.organization_id, before.dim == at.dim,
            before.group_key == at.group_key,
            before.month_start == previous_month(_utc(start), zone)))
    if groups is not None:
        stmt = stmt.where(at.group_key.in_(groups))
    stmt = stmt.where(*[condition(figures) for condition in where])
    stmt = stmt.order_by(*[key(figures) for key in order_by])
    if limit is not None:
        stmt = stmt.limit(limit)
    return stmt


def interpolated_median(counts: Sequence[int]) -> float | None:
    """The median of a histogram over `HISTOGRAM_EDGES`, interpolated linearly within the
    bucket it falls in (the open last bucket is taken as twice its lower edge wide)."""
    total = sum(counts)
    if total <= 0:
        return None
    half = total / 2
    below = 0
    for index, count in enumerate(counts):
        if count and below + count >= half:
            low = HISTOGRAM_EDGES[index]
            high = (HISTOGRAM_EDGES[index + 1] if index + 1 < len(HISTOGRAM_EDGES)
                    else 2 * low)
            return float(low + (high - low) * (half - below) / count)
        below += count
    return float(HISTOGRAM_EDGES[-1])
