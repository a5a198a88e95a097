"""Per referrer and calendar period (`referral_period_stats`), kept by the reconciliation.

A period is a local month ("2026-01"), quarter ("2026-Q1"), year ("2026") or all time
("all") of the organization's time zone. Each row holds what `referral_month_stats` holds for
that referrer, summed over the period's months, plus the quality score
(ACTIVE_WEIGHT * active + INACTIVE_WEIGHT * (completed - active)). The leaderboard of such a
period reads one page in rank order from the index on (organization, period, score, reached,
referrer), and the conversion table by inviter its page by invitations sent or accepted,
instead of aggregating every referrer of the organization (20,000 at a million referrals).

The rows are derived from the monthly summary with INSERT ... SELECT (no Python loop over
rows): for every referrer whose monthly rows the reconciliation rewrote, right after it did,
and for everyone when the summary is first built or the organization's time zone changed.
Because they are sums of the monthly rows, they are exactly what summing those gives."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, delete, func, insert, literal, or_, select, update
from sqlalchemy.orm import Session

from invite_desk.services.models import Member, ReferralMonthStats, ReferralPeriodStats, Setting
from invite_desk.services.referral_program import running
from invite_desk.services.referral_program.edges import Edges
from invite_desk.services.referral_program.running import ACTIVE_WEIGHT, INACTIVE_WEIGHT

P = ReferralPeriodStats
S = ReferralMonthStats
BUILT_KEY = "referralProgram._periodStatsZone"
ALL = "all"
CHUNK = 500
FAMILIES = ("month", "quarter", "year", "all")


def month_key(local_year: int, local_month: int) -> str:
    return f"{local_year:04d}-{local_month:02d}"


def quarter_key(local_year: int, local_month: int) -> str:
    return f"{local_year:04d}-Q{(local_month - 1) // 3 + 1}"


def year_key(local_year: int) -> str:
    return f"{local_year:04d}"


def _keys(month_start: datetime, zone: ZoneInfo) -> dict[str, str]:
    local = month_start.astimezone(zone).date()
    return {"month": month_key(local.year, local.month),
            "quarter": quarter_key(local.year, local.month),
            "year": year_key(local.year), "all": ALL}


def _local_month_start(moment: datetime, zone: ZoneInfo) -> tuple[int, int] | None:
    """(year, month) when `moment` is the first instant of a local month, else None."""
    local = moment.astimezone(zone)
    if (local.day, local.hour, local.minute, local.second, local.microsecond) != (1, 0, 0, 0, 0):
        return None
    return local.year, local.month


def key_for(start: datetime | None, end: datetime | None, zone: ZoneInfo) -> str | None:
    """The calendar period [start, end) is, or None when it is not one (a custom range)."""
    if start is None and end is None:
        return ALL
    if start is None or end is None:
        return None
    first, after = _local_month_start(start, zone), _local_month_start(end, zone)
    if first is None or after is None:
        return None
    months = (after[0] - first[0]) * 12 + (after[1] - first[1])
    year, month = first
    if months == 1:
        return month_key(year, month)
    if months == 3 and month % 3 == 1:
        return quarter_key(year, month)
    if months == 12 and month == 1:
        return year_key(year)
    return None


def built(session: Session, org: uuid.UUID, zone_name: str) -> bool:
    value = session.scalar(select(Setting.value_json).where(Setting.organization_id == org,
                                                            Setting.key == BUILT_KEY))
    return value is not None and json.loads(value) == zone_name


def _chunks(ids: Sequence[uuid.UUID]) -> Iterable[Sequence[uuid.UUID]]:
    for start in range(0, len(ids), CHUNK):
        yield ids[start:start + CHUNK]


def _fill(session: Session, org: uuid.UUID, zone: ZoneInfo,
          referrers: Sequence[uuid.UUID] | None) -> None:
    """Rewrite the rows of `referrers` (None: everyone) from their monthly rows."""
    where: list[Any] = [S.organization_id == org]
    wipe = delete(P).where(P.organization_id == org)
    if referrers is not None:
        where.append(S.referrer_id.in_(referrers))
        wipe = wipe.where(P.referrer_id.in_(referrers))
    session.execute(wipe)
    low, high = session.execute(
        select(func.min(S.month_start), func.max(S.month_start)).where(*where)).one()
    if low is None or high is None:
        return
    months = [low]
    while months[-1] < high:
        # The month starts in between; any that holds no row is simply never matched.
        months.append(running.next_month(months[-1], zone))
    labels = {month: _keys(month, zone) for month in months}
    for family in FAMILIES:
        if family == ALL:
            period: Any = literal(ALL)
        else:
            period = case({month: keys[family] for month, keys in labels.items()},
                          value=S.month_start, else_=literal(""))
        label = period.label("period")
        session.execute(insert(P).from_select(
            ["organization_id", "referrer_id", "unit_id", "period", "score", "completed",
             "active", "vested_points", "vested", "held_points", "reached", "sent",
             "accepted"],
            select(S.organization_id, S.referrer_id, Member.unit_id, label,
                   ACTIVE_WEIGHT * func.sum(S.active)
                   + INACTIVE_WEIGHT * (func.sum(S.completed) - func.sum(S.active)),
                   func.sum(S.completed), func.sum(S.active), func.sum(S.vested_points),
                   func.sum(S.vested), func.sum(S.held_points), func.max(S.reached),
                   func.sum(S.sent), func.sum(S.accepted))
            .join(Member, Member.id == S.referrer_id)
            .where(*where)
            .group_by(S.organization_id, S.referrer_id, Member.unit_id, period)))


def rebuild(session: Session, org: uuid.UUID, zone: ZoneInfo, zone_name: str) -> None:
    """Every referrer's rows (first build, or the time zone changed)."""
    _fill(session, org, zone, None)
    row = session.scalar(select(Setting).where(Setting.organization_id == org,
                                               Setting.key == BUILT_KEY))
    if row is None:
        session.add(Setting(organization_id=org, key=BUILT_KEY,
                            value_json=json.dumps(zone_name)))
    else:
        row.value_json = json.dumps(zone_name)


def follow(session: Session, org: uuid.UUID, zone: ZoneInfo,
           referrers: Iterable[uuid.UUID], since: datetime | None = None) -> None:
    """After the monthly rows of `referrers` were rewritten: theirs again; with `since`,
    also the unit of referrers who moved to another unit since then (members changed since
    are few: read by the updated_at index)."""
    for part in _chunks(sorted(set(referrers))):
        _fill(session, org, zone, part)
    if since is None:
        return
    moved = session.execute(
        select(Member.id, Member.unit_id).join(P, and_(
            P.organization_id == org, P.referrer_id == Member.id, P.period == ALL))
        .where(Member.organization_id == org, Member.updated_at > since,
               or_(P.unit_id.is_(None) != Member.unit_id.is_(None),
                   P.unit_id != Member.unit_id))).all()
    for member_id, unit_id in moved:
        session.execute(update(P).where(P.organization_id == org, P.referrer_id == member_id)
                        .values(unit_id=unit_id).execution_options(synchronize_session=False))



# -- periods of whole months that are not one calendar period --------------------------------

MAX_WANTED = 500  # deeper pages of sums: the caller sums everyone (cheaper than this)
MAX_SEEN = 3_000  # referrers summed before a ranking gives up
SUMMED = ("score", "completed", "active", "vested_points", "vested", "held_points", "sent",
          "accepted")


def pieces(start: datetime | None, end: datetime | None, zone: ZoneInfo) -> list[str] | None:
    """Calendar periods that exactly cover the whole local months [start, end): whole years,
    then quarters, then months (twelve months from November: 2 months, 3 quarters, 1 month).
    None when the bounds are not local month starts."""
    if start is None and end is None:
        return [ALL]
    if start is None or end is None:
        return None
    first, after = _local_month_start(start, zone), _local_month_start(end, zone)
    if first is None or after is None:
        return None
    index, stop = first[0] * 12 + first[1] - 1, after[0] * 12 + after[1] - 1
    keys: list[str] = []
    while index < stop:
        year, month = index // 12, index % 12 + 1
        if month == 1 and index + 12 <= stop:
            keys.append(year_key(year))
            index += 12
        elif month % 3 == 1 and index + 3 <= stop:
            keys.append(quarter_key(year, month))
            index += 3
        else:
            keys.append(month_key(year, month))
            index += 1
    return keys


def split(start: datetime | None, end: datetime | None, zone: ZoneInfo
          ) -> tuple[list[str], list[tuple[datetime, datetime]]] | None:
    """A range of local days that is not whole local months (a custom range, "the last 30
    days" across month ends): the calendar periods covering the whole months inside it, and
    its partial edges, [start, first whole month) and [end of the last one, end), for the
    raw rows. None when the range is open, is whole months already, or holds no whole
    month (then it is at most two months of raw rows)."""
    if start is None or end is None or key_for(start, end, zone) is not None:
        return None
    first = (start if _local_month_start(start, zone) is not None
             else running.next_month(running.month_of(start, zone), zone))
    last = running.month_of(end, zone)
    if first >= last:
        return None
    keys = pieces(first, last, zone)
    if not keys:
        return None
    edges = [(low, high) for low, high in ((start, first), (last, end)) if low < high]
    return (keys, edges) if edges else None


def added(figures: dict[str, Any], more: dict[str, Any] | None) -> dict[str, Any]:
    """`figures` plus the figures `more` of the same referrer (the partial edges)."""
    if not more:
        return figures
    reached = [r for r in (figures.get("reached"), more.get("reached")) if r is not None]
    return {"reached": max(reached) if reached else None,
            **{c: int(figures.get(c, 0)) + int(more.get(c, 0)) for c in SUMMED}}


def summed(session: Session, org: uuid.UUID, keys: Sequence[str],
           referrers: Sequence[uuid.UUID], extra: Edges | None = None
           ) -> dict[uuid.UUID, dict[str, Any]]:
    """The figures of `referrers` summed over the periods `keys` (their primary keys), plus
    their `extra` figures (the raw partial edges of a range, when it has them)."""
    found: dict[uuid.UUID, dict[str, Any]] = {}
    for part in _chunks(referrers):
        for mid, reached, *values in session.execute(
            select(P.referrer_id, func.max(P.reached), *[func.sum(getattr(P, c))
                                                          for c in SUMMED])
            .where(P.organization_id == org, P.period.in_(keys), P.referrer_id.in_(part))
            .group_by(P.referrer_id)
        ):
            found[mid] = {"reached": reached,
                          **{c: int(v or 0) for c, v in zip(SUMMED, values, strict=True)}}
    if extra is not None and referrers:
        for mid, more in extra.figures(referrers).items():
            found[mid] = added(found.get(mid, {"reached": None}), more)
    return found


def top_by_sum(session: Session, org: uuid.UUID, keys: Sequence[str], column: str,
               wanted: int, conditions: Sequence[Any] = (), extra: Edges | None = None
               ) -> dict[uuid.UUID, dict[str, Any]] | None:
    """Every referrer whose `column` summed over `keys` is at least the `wanted`-th largest
    such sum (ties included), with all their summed figures: the threshold algorithm over
    each key's index in descending order, which stops once the `wanted`-th best sum found so
    far beats what a referrer not yet seen could still reach (the sum of the last values
    read). `conditions` (on P) restrict the referrers. `extra`: the raw partial edges of a
    range (restricted alike), one more list read in descending order, whose figures are
    added to the sums. None when fewer than `wanted` referrers have a positive sum, for a
    page deeper than MAX_WANTED, or past MAX_SEEN referrers (the caller then sums
    everyone)."""
    if wanted > MAX_WANTED:
        return None
    value = getattr(P, column)
    batch = max(64, wanted)
    offsets = dict.fromkeys(keys, 0)
    bounds: dict[str, int] = {}
    seen: dict[uuid.UUID, dict[str, Any]] = {}
    extra_read = 0
    while True:
        fresh: dict[uuid.UUID, None] = {}
        for key in keys:
            if bounds.get(key) == 0:
                continue  # read to its end
            rows = session.execute(
                select(P.referrer_id, value)
                .where(P.organization_id == org, P.period == key, value > 0, *conditions)
                .order_by(value.desc()).offset(offsets[key]).limit(batch)).all()
            offsets[key] += len(rows)
            bounds[key] = int(rows[-1][1]) if len(rows) == batch else 0
            fresh.update((row[0], None) for row in rows if row[0] not in seen)
        if extra is not None and bounds.get("") != 0:
            taken = extra.ranked(column, extra_read, batch)
            extra_read += len(taken)
            bounds[""] = taken[-1][1] if len(taken) == batch else 0
            fresh.update((mid, None) for mid, _ in taken if mid not in seen)
        seen.update(summed(session, org, keys, list(fresh), extra))
        best = sorted((figures[column] for figures in seen.values()), reverse=True)
        unseen_at_most = sum(bounds.values())
        if len(best) >= wanted and best[wanted - 1] > unseen_at_most:
            return seen
        if unseen_at_most == 0:
            return seen if len(best) >= wanted else None
        if len(seen) > MAX_SEEN:
            return None
        batch *= 2
