"""The referral programme's speed structures give the figures the raw rows give.

- the running totals (referral_running_stats), kept incrementally by each reconciliation,
  equal a rebuild from scratch after random changes (invitations, acceptances, referrals,
  status changes), and the views that read them (limited leaderboard, conversion by every
  dimension, K-factor) equal the views computed from the raw rows;
- the incremental reconciliation (watermark) leaves nothing for a whole pass to do, and
  really reads only what changed since its last run;
- the conversion median is exact for small views and interpolated within its histogram
  bucket beyond EXACT_MEDIAN_LIMIT."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import date, timedelta

import pytest
from sqlalchemy import delete, select, update

from invite_desk.services import auth
from invite_desk.services import referral_program as rp
from invite_desk.services.models import (
    Invitation,
    InvitationStatus,
    Member,
    MemberStatus,
    ReferralRunningStats,
    Setting,
    utcnow,
)
from invite_desk.services.referral_program import Period, PeriodKind, ledger, reports, running
from invite_desk.services.uow import UnitOfWork
from tests.integration.referral_program_data import (
    NOW,
    World,
    _invitation,
    _member,
    _referral,
    at,
    build,
)

PERIODS = (Period(PeriodKind.ALL_TIME), Period(PeriodKind.THIS_YEAR),
           Period(PeriodKind.THIS_QUARTER), Period.custom(date(2026, 2, 1), date(2026, 4, 30)))
REFERRERS = ("Rita", "Sam", "Tom", "Uma")


@pytest.fixture
def world(any_uow: UnitOfWork) -> Iterator[World]:
    admin = auth.setup_organization(
        any_uow, organization_name="Harbour Rowing Club", description="",
        admin_email="ada@example.org", admin_first_name="Ada", admin_last_name="Admin",
        password="correct horse battery", registration_base_url="https://join.example.org")
    world = build(any_uow, admin)
    rp.reconcile(any_uow, admin, now=NOW)
    yield world


def _running_rows(world: World) -> dict[tuple[object, ...], tuple[int, ...]]:
    """What the rows say for every (dim, group, month) up to the newest month of any row:
    a month without a row of its own holds the group's last row before it (trailing rows
    carried beyond a dimension's newest data, and zero rows, may differ; the figures not)."""
    R = ReferralRunningStats
    rows = world.uow.session.execute(
        select(R.dim, R.group_key, R.month_start, *[getattr(R, c) for c in running.COLS])
        .where(R.organization_id == world.admin.organization_id)).all()
    months = sorted({row[2] for row in rows})
    groups: dict[tuple[str, str], dict[object, tuple[int, ...]]] = {}
    for dim, key, month, *figures in rows:
        groups.setdefault((dim, key), {})[month] = tuple(int(v) for v in figures)
    out: dict[tuple[object, ...], tuple[int, ...]] = {}
    for (dim, key), per in groups.items():
        last: tuple[int, ...] | None = None
        for month in months:
            last = per.get(month, last)
            if last is not None and any(last):
                out[(dim, key, month)] = last
    return out


def _random_changes(world: World, rng: random.Random, count: int, serial: list[int]) -> None:
    org = world.admin.organization_id
    with world.uow:
        session = world.uow.session
        for _ in range(count):
            serial[0] += 1
            n = serial[0]
            action = rng.choice(("invite", "invite", "accept", "referral", "status"))
            sent = at(rng.randint(1, 6), rng.randint(1, 28), rng.randint(0, 23))
            if action == "invite":
                _invitation(world, rng.choice(REFERRERS), f"p{n}@{rng.choice('abc')}.example",
                            sent=sent, status=InvitationStatus.SENT,
                            unit=rng.choice((world.north, world.south, None)))
            elif action == "accept":
                waiting = session.scalars(select(Invitation).where(
                    Invitation.organization_id == org,
                    Invitation.status == InvitationStatus.SENT.value)
                    .order_by(Invitation.email)).all()
                if waiting:
                    invitation = rng.choice(waiting)
                    invitation.status = InvitationStatus.ACCEPTED.value
                    assert invitation.sent_at is not None
                    invitation.accepted_at = invitation.sent_at + timedelta(
                        seconds=rng.randint(30, 12 * 86400))
            elif action == "referral":
                name = f"New{n}"
                _member(world, name, unit=rng.choice((world.north, world.south)), joined=sent,
                        status=rng.choice((MemberStatus.ACTIVE, MemberStatus.DEACTIVATED)))
                _referral(world, f"r{n}", rng.choice(REFERRERS), name,
                          completed=sent if rng.random() < 0.8 else None)
            else:
                referees = sorted(k for k in world.ids if k not in (*REFERRERS, "Ada"))
                member = session.get(Member, world.ids[rng.choice(referees)])
                assert member is not None
                member.status = (MemberStatus.DEACTIVATED.value
                                 if member.status == MemberStatus.ACTIVE.value
                                 else MemberStatus.ACTIVE.value)
        world.uow.commit()


def _raw_conversion(world: World, period: Period, by: rp.ConversionBy) -> rp.Conversion:
    """The conversion from the raw rows: without the running totals' marker."""
    with world.uow:
        world.uow.session.execute(delete(Setting).where(Setting.key == running.BUILT_KEY))
        world.uow.commit()
    raw = rp.conversion(world.uow, world.admin, period, by, now=NOW)
    rp.reconcile(world.uow, world.admin, now=NOW)  # builds them again (0009 upgrade path)
    return raw


@pytest.mark.parametrize("seed", [7, 11])
def test_running_totals_and_their_views_equal_the_raw_figures_after_random_changes(
        world: World, seed: int) -> None:
    rng = random.Random(seed)
    serial = [0]
    for _ in range(3):
        _random_changes(world, rng, 8, serial)
        rp.reconcile(world.uow, world.admin, now=NOW)
        with world.uow:  # incremental == from scratch (not committed)
            kept = _running_rows(world)
            running.rebuild(world.uow.session, world.admin.organization_id,
                            rp.get_settings(world.uow, world.admin).zone, "UTC")
            assert _running_rows(world) == kept
            world.uow.rollback()
        for period in PERIODS:
            full = rp.leaderboard(world.uow, world.admin, period, now=NOW).rows
            for limit in (1, 2, 3):
                top = rp.leaderboard(world.uow, world.admin, period, limit=limit, now=NOW).rows
                assert top == full[:limit]
    for period in PERIODS:
        for by in rp.ConversionBy:
            fast = rp.conversion(world.uow, world.admin, period, by, now=NOW)
            assert fast == _raw_conversion(world, period, by)
    # and the incremental passes left nothing for a whole one to do
    with world.uow:
        world.uow.session.execute(delete(Setting).where(Setting.key == ledger.MARK_KEY))
        world.uow.commit()
    assert rp.reconcile(world.uow, world.admin, now=NOW) == rp.ReconcileResult()


def test_the_reconciliation_reads_only_rows_changed_since_its_watermark(world: World) -> None:
    sam_before = {r.referrer_name: r for r in rp.leaderboard(
        world.uow, world.admin, PERIODS[0], now=NOW).rows}["Sam Test"]
    with world.uow:
        org = world.admin.organization_id
        mark = world.uow.session.scalar(select(Setting.value_json).where(
            Setting.organization_id == org, Setting.key == ledger.MARK_KEY))
        assert mark is not None
        # the world was built seconds ago, within the clock-skew margin: move the mark past it
        value = json.loads(mark)
        value["at"] = utcnow().isoformat()
        world.uow.session.execute(update(Setting).where(
            Setting.organization_id == org, Setting.key == ledger.MARK_KEY)
            .values(value_json=json.dumps(value)))
        # a referee lapses behind the reconciliation's back: updated_at left in the past
        world.uow.session.execute(
            update(Member).where(Member.id == world.ids["B1"])
            .values(status=MemberStatus.DEACTIVATED.value, updated_at=at(1, 1))
            .execution_options(synchronize_session=False))
        world.uow.commit()
    assert rp.reconcile(world.uow, world.admin, now=NOW).revoked == 0  # not looked at
    with world.uow:
        world.uow.session.execute(delete(Setting).where(Setting.key == ledger.MARK_KEY))
        world.uow.commit()
    assert rp.reconcile(world.uow, world.admin, now=NOW).revoked == 1  # a whole pass sees it
    sam = {r.referrer_name: r for r in rp.leaderboard(
        world.uow, world.admin, PERIODS[0], now=NOW).rows}["Sam Test"]
    assert sam.active == sam_before.active - 1
    # an ordinary change is seen by the next incremental pass
    world.set_status("B1", MemberStatus.ACTIVE)
    assert rp.reconcile(world.uow, world.admin, now=NOW).awarded == 1
    assert rp.reconcile(world.uow, world.admin, now=NOW) == rp.ReconcileResult()


def test_the_median_is_interpolated_within_its_bucket_beyond_the_exact_limit(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    exact = {r.label: r for r in rp.conversion(world.uow, world.admin, PERIODS[0],
                                               rp.ConversionBy.INVITER, now=NOW).rows}
    monkeypatch.setattr(reports, "EXACT_MEDIAN_LIMIT", 0)
    approx = {r.label: r for r in rp.conversion(world.uow, world.admin, PERIODS[0],
                                                rp.ConversionBy.INVITER, now=NOW).rows}
    assert exact.keys() == approx.keys()
    checked = 0
    for label, row in exact.items():
        assert (approx[label].sent, approx[label].accepted) == (row.sent, row.accepted)
        if row.median_seconds_to_accept is None:
            assert approx[label].median_seconds_to_accept is None
            continue
        value = approx[label].median_seconds_to_accept
        assert value is not None
        edges = running.HISTOGRAM_EDGES
        # within the span of the buckets holding the two middle values
        low = max(e for e in edges if e <= row.median_seconds_to_accept)
        assert low * 0.5 <= value <= row.median_seconds_to_accept * 2 + 60
        checked += 1
    assert checked >= 2


def test_interpolated_median_of_a_histogram() -> None:
    edges = running.HISTOGRAM_EDGES
    counts = [0] * len(edges)
    assert running.interpolated_median(counts) is None
    day = edges.index(86400)
    counts[day] = 4  # four acceptances between one and two days
    assert running.interpolated_median(counts) == pytest.approx(86400 * 1.5)
    counts[0] = 4  # and four within the first minute: the median is the bucket edge
    assert running.interpolated_median(counts) == pytest.approx(60)
    counts = [0] * len(edges)
    counts[-1] = 2
    assert running.interpolated_median(counts) == pytest.approx(edges[-1] * 1.5)
