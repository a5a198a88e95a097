"""The per-period summary (referral_period_stats, migration 0011) and the pages read from it.

- after random changes (invitations, acceptances, referrals, lapses) and incremental
  reconciliations, the kept rows equal a rebuild from scratch, and every page of the
  leaderboard and of the conversion table (calendar months, quarters, years, all time;
  organization-wide and per unit; sorted by sent or accepted) equals the same slice of the
  whole view computed from the raw rows, with the whole view's size;
- ties: a crowd of referrers with equal scores and equal completion times is ranked by who
  got there first, then id, on every page;
- which periods are calendar periods, in the organization's time zone, and a time zone
  change rebuilds the summary."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from invite_desk.services import auth
from invite_desk.services import referral_program as rp
from invite_desk.services.models import (
    InvitationStatus,
    LeaderboardOptOut,
    Member,
    MemberStatus,
    ReferralPeriodStats,
)
from invite_desk.services.operator import Operator
from invite_desk.services.referral_program import Period, PeriodKind, periods, reports, stats
from invite_desk.services.roles import Role
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
from tests.integration.test_referral_program_speed import _random_changes

CALENDAR = (Period(PeriodKind.ALL_TIME), Period(PeriodKind.THIS_YEAR),
            Period(PeriodKind.THIS_QUARTER), Period(PeriodKind.THIS_MONTH),
            Period.custom(date(2026, 4, 1), date(2026, 6, 30)),  # a quarter, typed
            Period.custom(date(2026, 5, 1), date(2026, 5, 31)),  # a month, typed
            # whole months that are not one calendar period: sums over the periods
            # covering them (threshold algorithm)
            Period.custom(date(2026, 2, 1), date(2026, 4, 30)),
            Period.custom(date(2025, 11, 1), date(2026, 6, 30)))
PAGES = ((0, 1), (0, 2), (1, 2), (2, 3), (0, 100), (3, 1), (4, 2), (50, 5))


@pytest.fixture
def world(any_uow: UnitOfWork) -> Iterator[World]:
    admin = auth.setup_organization(
        any_uow, organization_name="Harbour Rowing Club", description="",
        admin_email="ada@example.org", admin_first_name="Ada", admin_last_name="Admin",
        password="correct horse battery", registration_base_url="https://join.example.org")
    world = build(any_uow, admin)
    rp.reconcile(any_uow, admin, now=NOW)
    yield world


def _stored(world: World) -> dict[tuple[object, ...], tuple[object, ...]]:
    with world.uow:
        return _stored_in(world)


def _raw(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every report from the raw rows: as if no summary had been built."""
    monkeypatch.setattr(reports.stats, "usable", lambda *_args: False)
    monkeypatch.setattr(reports.running, "built", lambda *_args: False)
    monkeypatch.setattr(reports.periods, "built", lambda *_args: False)


def _check_pages(world: World, operator: Operator | None = None,
                 unit: object = None) -> int:
    """Every page equals the slice of the raw whole view; returns how many pages were read
    from the period summary."""
    who = operator or world.admin
    fast_pages = 0
    with pytest.MonkeyPatch.context() as patch:
        _raw(patch)
        raw_boards = {p: rp.leaderboard(world.uow, who, p, unit, now=NOW) for p in CALENDAR}
        raw_conversions = {(p, o): rp.conversion(world.uow, who, p, now=NOW, order=o)
                           for p in CALENDAR for o in rp.ConversionOrder}
    original = reports._period_page

    def counting(*args: object, **kwargs: object) -> object:
        nonlocal fast_pages
        found = original(*args, **kwargs)  # type: ignore[arg-type]
        fast_pages += found is not None
        return found

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(reports, "_period_page", counting)
        for period, raw in raw_boards.items():
            assert rp.leaderboard(world.uow, who, period, unit, now=NOW).rows == raw.rows
            for offset, limit in PAGES:
                page = rp.leaderboard(world.uow, who, period, unit, limit=limit,
                                      offset=offset, now=NOW)
                assert page.rows == raw.rows[offset:offset + limit], (period, offset, limit)
                assert page.total == len(raw.rows)
                assert [r.rank for r in page.rows] == list(
                    range(offset + 1, offset + 1 + len(page.rows)))
    for (period, order), raw_conversion in raw_conversions.items():
        if unit is not None:
            continue
        whole = rp.conversion(world.uow, who, period, now=NOW, order=order)
        assert whole.rows == raw_conversion.rows
        for offset, limit in PAGES:
            page = rp.conversion(world.uow, who, period, now=NOW, order=order, limit=limit,
                                 offset=offset)
            assert page.rows == raw_conversion.rows[offset:offset + limit], (period, order)
            assert page.total_rows == len(raw_conversion.rows)
            assert (page.sent, page.accepted, page.members, page.k_factor) == (
                raw_conversion.sent, raw_conversion.accepted, raw_conversion.members,
                raw_conversion.k_factor)
    return fast_pages


def _crowd(world: World, count: int, rng: random.Random) -> None:
    """`count` more referrers, many with equal scores, some reaching them at the same
    instant (ties decided by id), some with only invitations or only pending referrals."""
    with world.uow:
        for n in range(count):
            name = f"Crowd{n}"
            _member(world, name, unit=rng.choice((world.north, world.south)),
                    joined=datetime(2025, 1, 1, tzinfo=UTC))
            kind = rng.random()
            for m in range(rng.choice((1, 1, 2, 3)) if kind < 0.8 else 0):
                referee = f"{name}r{m}"
                completed = rng.choice((at(4, 2), at(5, 5), at(6, 1), at(3, 3, 12)))
                _member(world, referee, unit=world.north, joined=completed,
                        status=rng.choice((MemberStatus.ACTIVE, MemberStatus.ACTIVE,
                                           MemberStatus.DEACTIVATED)))
                _referral(world, referee, name, referee, completed=completed)
            if kind >= 0.8:
                referee = f"{name}p"
                _member(world, referee, unit=world.north, joined=at(5, 20),
                        status=MemberStatus.APPLICANT)
                _referral(world, referee, name, referee, completed=None, referred=at(5, 20))
            for m in range(rng.choice((0, 1, 2))):
                sent = at(rng.choice((4, 5, 6)), rng.randint(1, 14))
                _invitation(world, name, f"{name.lower()}{m}@x.example", sent=sent,
                            status=rng.choice((InvitationStatus.SENT,
                                               InvitationStatus.ACCEPTED)),
                            accepted=sent + timedelta(hours=rng.randint(1, 90)))
        world.uow.commit()


@pytest.mark.parametrize("seed", [3, 5])
def test_pages_of_calendar_periods_equal_the_raw_views_after_random_changes(
        world: World, seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    ranked: list[str] = []  # columns the threshold algorithm answered for
    original = periods.top_by_sum

    def counting(*args: Any, **kwargs: Any) -> Any:
        found = original(*args, **kwargs)
        if found is not None:
            ranked.append(args[3])
        return found

    monkeypatch.setattr(periods, "top_by_sum", counting)
    rng = random.Random(seed)
    serial = [0]
    _crowd(world, 24, rng)
    fast = 0
    for _ in range(3):
        _random_changes(world, rng, 8, serial)
        rp.reconcile(world.uow, world.admin, now=NOW)
        kept = _stored(world)
        with world.uow:  # incremental == from scratch (not committed)
            periods.rebuild(world.uow.session, world.admin.organization_id, ZoneInfo("UTC"),
                            "UTC")
            world.uow.session.flush()
            rebuilt = _stored_in(world)
            world.uow.rollback()
        assert kept == rebuilt
        fast += _check_pages(world)
    assert fast > 0  # the pages really came from the period summary
    assert {"score", "sent", "accepted"} <= set(ranked)  # and from sums of several


def _stored_in(world: World) -> dict[tuple[object, ...], tuple[object, ...]]:
    P = ReferralPeriodStats
    return {(row[0], row[1]): tuple(row[2:]) for row in world.uow.session.execute(
        select(P.referrer_id, P.period, P.score, P.completed, P.active, P.vested_points,
               P.vested, P.held_points, P.reached, P.sent, P.accepted)
        .where(P.organization_id == world.admin.organization_id))}


def test_pages_per_unit_and_with_opted_out_members_hidden(world: World) -> None:
    _crowd(world, 30, random.Random(9))
    rp.reconcile(world.uow, world.admin, now=NOW)
    with world.uow:  # a few of the crowd opt out of the public leaderboard
        for n in (0, 3, 4, 11):
            world.uow.session.add(LeaderboardOptOut(
                organization_id=world.admin.organization_id, member_id=world.ids[f"Crowd{n}"]))
        world.uow.commit()
    assert _check_pages(world, unit=world.north) > 0
    assert _check_pages(world, unit=world.south) > 0
    # referrers move to the other unit: the next reconciliation moves their period rows
    with world.uow:
        for name in ("Rita", "Crowd1", "Crowd2", "Crowd7"):
            member = world.uow.session.get(Member, world.ids[name])
            assert member is not None
            member.unit_id = world.south if member.unit_id == world.north else world.north
        world.uow.commit()
    rp.reconcile(world.uow, world.admin, now=NOW)
    assert _check_pages(world, unit=world.north) > 0
    assert _check_pages(world, unit=world.south) > 0
    local = world.operator("Rita", Role.ADMIN_LOCAL)  # sees opted-out members of her unit
    assert _check_pages(world, operator=local) > 0
    # a member, with the leaderboard visible to members: opted-out members hidden
    rp.save_settings(world.uow, world.admin, {"leaderboard_visible_to_members": True})
    rp.reconcile(world.uow, world.admin, now=NOW)
    member = world.operator("Crowd3")  # opted out: still sees themself
    board = rp.leaderboard(world.uow, member, Period(PeriodKind.THIS_YEAR), limit=500,
                           now=NOW)
    names = {r.referrer_name for r in board.rows}
    assert "Crowd3 Test" in names and "Crowd4 Test" not in names and "Uma Test" not in names
    assert board.total == len(board.rows)
    for offset, limit in PAGES:
        page = rp.leaderboard(world.uow, member, Period(PeriodKind.THIS_YEAR), limit=limit,
                              offset=offset, now=NOW)
        assert page.rows == board.rows[offset:offset + limit]
        assert page.total == board.total


def test_ties_go_to_who_got_there_first_then_the_same_order_on_every_page(
        world: World) -> None:
    with world.uow:  # ten referrers, one active referee each, three at the same instant
        for n in range(10):
            name = f"Tie{n}"
            _member(world, name, unit=world.south, joined=datetime(2025, 1, 1, tzinfo=UTC))
            completed = at(5, 10) if n < 3 else at(5, n - 2 if n < 6 else 11 + n)
            _member(world, f"{name}r", unit=world.south, joined=completed)
            _referral(world, f"{name}r", name, f"{name}r", completed=completed)
        world.uow.commit()
    rp.reconcile(world.uow, world.admin, now=NOW)
    month = Period.custom(date(2026, 5, 1), date(2026, 5, 31))
    whole = rp.leaderboard(world.uow, world.admin, month, now=NOW).rows
    tied = [r for r in whole if r.referrer_name.startswith("Tie")]
    assert [r.first_reached_at for r in tied] == sorted(r.first_reached_at for r in tied
                                                        if r.first_reached_at is not None)
    same = [r for r in tied if r.first_reached_at == at(5, 10)]
    assert len(same) == 3 and [str(r.referrer_id) for r in same] == sorted(
        str(r.referrer_id) for r in same)
    paged = [row for offset in range(0, len(whole), 2) for row in rp.leaderboard(
        world.uow, world.admin, month, limit=2, offset=offset, now=NOW).rows]
    assert paged == list(whole)


@pytest.mark.parametrize(("zone", "start", "end", "key"), [
    ("UTC", date(2026, 1, 1), date(2026, 12, 31), "2026"),
    ("UTC", date(2026, 4, 1), date(2026, 6, 30), "2026-Q2"),
    ("UTC", date(2026, 2, 1), date(2026, 2, 28), "2026-02"),
    ("Europe/Paris", date(2026, 3, 1), date(2026, 3, 31), "2026-03"),  # DST starts within
    ("Pacific/Auckland", date(2026, 1, 1), date(2026, 12, 31), "2026"),
    ("America/St_Johns", date(2025, 10, 1), date(2025, 12, 31), "2025-Q4"),
    ("UTC", date(2026, 2, 1), date(2026, 4, 30), None),  # three months, not a quarter
    ("UTC", date(2025, 11, 1), date(2026, 10, 31), None),  # twelve months, not a year
    ("UTC", date(2026, 2, 2), date(2026, 2, 28), None),  # not from the 1st
    ("Europe/Paris", date(2026, 1, 1), date(2026, 1, 30), None),
])
def test_which_periods_are_calendar_periods(zone: str, start: date, end: date,
                                            key: str | None) -> None:
    bounds = Period.custom(start, end).bounds(ZoneInfo(zone), NOW)
    assert periods.key_for(*bounds, ZoneInfo(zone)) == key
    assert periods.key_for(None, None, ZoneInfo(zone)) == "all"


@pytest.mark.parametrize(("start", "end", "keys"), [
    (date(2025, 11, 1), date(2026, 10, 31),
     ["2025-11", "2025-12", "2026-Q1", "2026-Q2", "2026-Q3", "2026-10"]),
    (date(2024, 12, 1), date(2026, 2, 28), ["2024-12", "2025", "2026-01", "2026-02"]),
    (date(2026, 2, 1), date(2026, 4, 30), ["2026-02", "2026-03", "2026-04"]),
    (date(2026, 1, 1), date(2026, 12, 31), ["2026"]),
    (date(2026, 1, 2), date(2026, 12, 31), None),
])
def test_whole_months_are_covered_by_calendar_periods(start: date, end: date,
                                                      keys: list[str] | None) -> None:
    zone = ZoneInfo("Europe/Paris")
    assert periods.pieces(*Period.custom(start, end).bounds(zone, NOW), zone) == keys
    assert periods.pieces(None, None, zone) == ["all"]


def test_the_threshold_ranking_gives_up_on_deep_pages_and_the_general_path_answers(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    _crowd(world, 30, random.Random(4))
    rp.reconcile(world.uow, world.admin, now=NOW)
    months = Period.custom(date(2026, 2, 1), date(2026, 5, 31))
    whole = rp.leaderboard(world.uow, world.admin, months, now=NOW)
    monkeypatch.setattr(periods, "MAX_SEEN", 3)
    monkeypatch.setattr(periods, "MAX_WANTED", 12)
    for offset, limit in ((0, 2), (5, 10), (20, 5)):
        page = rp.leaderboard(world.uow, world.admin, months, limit=limit, offset=offset,
                              now=NOW)
        assert page.rows == whole.rows[offset:offset + limit]
        assert page.total == len(whole.rows)


def test_a_time_zone_change_rebuilds_the_periods_in_local_months(world: World) -> None:
    # D2 completed 2026-03-31 22:30 UTC: March in UTC, April in Paris.
    def uma(period: Period) -> int:
        board = rp.leaderboard(world.uow, world.admin, period, limit=10, now=NOW)
        return sum(r.completed for r in board.rows if r.referrer_name == "Uma Test")

    march = Period.custom(date(2026, 3, 1), date(2026, 3, 31))
    april = Period.custom(date(2026, 4, 1), date(2026, 4, 30))
    assert (uma(march), uma(april)) == (1, 0)
    rp.save_settings(world.uow, world.admin, {"time_zone": "Europe/Paris"})
    rp.reconcile(world.uow, world.admin, now=NOW)
    with world.uow:
        assert periods.built(world.uow.session, world.admin.organization_id, "Europe/Paris")
        assert stats.usable(world.uow.session, world.admin.organization_id, "Europe/Paris")
        keys = {key for _, key in _stored_in(world)}
    assert {"all", "2026", "2026-Q2", "2026-04"} <= keys
    assert (uma(march), uma(april)) == (0, 1)
    assert _check_pages(world) > 0
