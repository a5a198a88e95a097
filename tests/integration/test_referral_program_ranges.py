"""Ranges of local days that are not whole months (custom ranges, twelve months from the
15th): the whole months inside come from the period summary, the partial edges from the raw
rows (periods.split), and the figures equal the raw computation.

- by hand, in Europe/Paris: a range from the day daylight saving starts (29 March 2026) to
  1 May, whose edges cut March and May and whose whole month (April) starts at
  31 March 22:00 UTC;
- a hypothesis property: on random data (the hand-built set, a crowd of referrers, random
  invitations, acceptances, referrals and lapses), any range with random edges (daylight
  saving days and month ends among them), in Paris or Auckland, gives the leaderboard and
  conversion pages of the raw whole view, with its size, totals and K-factor."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from invite_desk.services import auth
from invite_desk.services import referral_program as rp
from invite_desk.services.models import InvitationStatus, MemberStatus
from invite_desk.services.referral_program import Period, periods, reports
from invite_desk.services.uow import UnitOfWork
from tests.integration.referral_program_data import (
    NOW,
    World,
    _invitation,
    _member,
    _referral,
    build,
)
from tests.integration.test_referral_program_periods import _crowd, _raw
from tests.integration.test_referral_program_speed import _random_changes


def _world(uow: UnitOfWork, zone: str) -> World:
    admin = auth.setup_organization(
        uow, organization_name="Harbour Rowing Club", description="",
        admin_email="ada@example.org", admin_first_name="Ada", admin_last_name="Admin",
        password="correct horse battery", registration_base_url="https://join.example.org")
    world = build(uow, admin)
    rp.save_settings(uow, admin, {"time_zone": zone})
    return world


@pytest.fixture
def paris(any_uow: UnitOfWork) -> Iterator[World]:
    uow = any_uow
    world = _world(uow, "Europe/Paris")
    with world.uow:
        # 28 March 23:30 UTC is 29 March 00:30 in Paris (still winter time): inside a range
        # from 29 March there, outside it in UTC.
        _member(world, "C9", unit=world.south, joined=datetime(2026, 3, 28, 23, 30, tzinfo=UTC))
        _referral(world, "t9", "Tom", "C9", completed=datetime(2026, 3, 28, 23, 30, tzinfo=UTC))
        # 1 May 22:30 UTC is 2 May 00:30 in Paris: after a range ending on 1 May there.
        _invitation(world, "Tom", "late@example.net",
                    sent=datetime(2026, 5, 1, 22, 30, tzinfo=UTC), status=InvitationStatus.SENT,
                    expires=datetime(2026, 7, 1, tzinfo=UTC), unit=world.south)
        world.uow.commit()
    rp.reconcile(uow, world.admin, now=NOW)
    yield world


def _counting(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many times the composed path read a range's edges (it was taken, not the raw
    path)."""
    calls: list[int] = []

    class Counted(reports.Edges):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            calls.append(1)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(reports, "Edges", Counted)
    return calls


def test_a_range_across_month_edges_and_the_daylight_saving_change_by_hand(
        paris: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """29 March .. 1 May 2026, Paris: [28 Mar 23:00 UTC, 1 May 22:00 UTC).

    head 29-31 March (71 hours: the clocks go forward on the 29th): Tom's C9 (28 Mar 23:30
    UTC, active); April whole, from 31 Mar 22:00 UTC: Rita's A2 (active) and A3 (lapsed),
    Uma's D2 (31 Mar 22:30 UTC, active), invitations i1, i2 (Rita, accepted) and j1 (Sam,
    accepted); tail 1 May: Sam's B2 (09:00 UTC, active) and Rita's i3 (still open). Not in
    it: Rita's A1 (10 March), Sam's B3 (2 May), Tom's invitation of 1 May 22:30 UTC (2 May in
    Paris).

    Scores (5 per active referee, 1 per lapsed one): Rita 5 + 1 = 6; Tom, Uma and Sam 5
    each, ranked by who got there first: Tom (28 Mar 23:30), Uma (31 Mar 22:30), Sam (1 May
    09:00)."""
    edges = _counting(monkeypatch)
    period = Period.custom(date(2026, 3, 29), date(2026, 5, 1))
    zone = ZoneInfo("Europe/Paris")
    start, end = period.bounds(zone, NOW)
    assert (start, end) == (datetime(2026, 3, 28, 23, tzinfo=UTC),
                            datetime(2026, 5, 1, 22, tzinfo=UTC))
    assert periods.split(start, end, zone) == (
        ["2026-04"], [(start, datetime(2026, 3, 31, 22, tzinfo=UTC)),
                      (datetime(2026, 4, 30, 22, tzinfo=UTC), end)])
    expected = [  # name, completed, active, score, sent, accepted, pending invitations
        ("Rita Test", 2, 1, 6, 3, 2, 1),
        ("Tom Test", 1, 1, 5, 0, 0, 0),
        ("Uma Test", 1, 1, 5, 0, 0, 0),
        ("Sam Test", 1, 1, 5, 1, 1, 0),
    ]
    rows = []
    for offset in (0, 2):
        page = rp.leaderboard(paris.uow, paris.admin, period, limit=2, offset=offset, now=NOW)
        assert page.total == 4
        rows += page.rows
    assert edges  # the whole month came from the summary, the edges from the raw rows
    assert [(r.referrer_name, r.completed, r.active, r.score, r.invitations_sent,
             r.invitations_accepted, r.pending_invitations) for r in rows] == expected
    assert [r.rank for r in rows] == [1, 2, 3, 4]
    assert rows[1].first_reached_at == datetime(2026, 3, 28, 23, 30, tzinfo=UTC)
    assert rows[2].opted_out  # Uma: shown to admins, marked

    edges.clear()
    first = rp.conversion(paris.uow, paris.admin, period, now=NOW, limit=1)
    assert edges
    assert [(r.label, r.sent, r.accepted) for r in first.rows] == [("Rita Test", 3, 2)]
    assert (first.total_rows, first.sent, first.accepted) == (2, 4, 3)
    # i1 took 24 h, i2 72 h: the median of Rita's two acceptances is 48 h
    assert first.rows[0].median_seconds_to_accept == pytest.approx(48 * 3600, abs=1e-3)
    second = rp.conversion(paris.uow, paris.admin, period, now=NOW, limit=1, offset=1)
    assert [(r.label, r.sent, r.accepted) for r in second.rows] == [("Sam Test", 1, 1)]

    # a member, when members see the board: Uma (opted out) is not on it
    rp.save_settings(paris.uow, paris.admin, {"leaderboard_visible_to_members": True})
    sam = paris.operator("Sam")
    seen = rp.leaderboard(paris.uow, sam, period, limit=2, offset=1, now=NOW)
    assert ([r.referrer_name for r in seen.rows], seen.total) == (["Tom Test", "Sam Test"], 3)

    with pytest.MonkeyPatch.context() as patch:  # the same from the raw rows
        _raw(patch)
        raw_board = rp.leaderboard(paris.uow, paris.admin, period, now=NOW)
        raw_conversion = rp.conversion(paris.uow, paris.admin, period, now=NOW)
    assert raw_board.rows == tuple(rows)
    assert raw_conversion.rows == first.rows + second.rows
    assert (raw_conversion.members, raw_conversion.k_factor) == (first.members,
                                                                 first.k_factor)


# -- the property -------------------------------------------------------------------------------

DST_AND_MONTH_EDGES = [date(2026, 3, 28), date(2026, 3, 29), date(2026, 3, 30),
                       date(2026, 3, 31), date(2026, 4, 1), date(2026, 4, 5),  # Auckland
                       date(2026, 4, 6), date(2026, 1, 31), date(2026, 2, 1),
                       date(2026, 2, 28), date(2026, 5, 31), date(2026, 6, 1),
                       date(2025, 12, 31), date(2026, 1, 1)]
DAYS = st.one_of(st.sampled_from(DST_AND_MONTH_EDGES),
                 st.dates(min_value=date(2025, 12, 1), max_value=date(2026, 6, 30)))


@pytest.fixture(params=["Europe/Paris", "Pacific/Auckland"])
def random_world(request: pytest.FixtureRequest, uow: UnitOfWork) -> Iterator[World]:
    world = _world(uow, request.param)
    rng = random.Random(17)
    _crowd(world, 40, rng)
    _random_changes(world, rng, 40, [0])
    with world.uow:  # a few near local midnights at the month ends
        for n, moment in enumerate((datetime(2026, 3, 31, 22, 30, tzinfo=UTC),
                                    datetime(2026, 3, 31, 11, 30, tzinfo=UTC),
                                    datetime(2026, 4, 30, 21, 59, tzinfo=UTC),
                                    datetime(2026, 1, 31, 23, 30, tzinfo=UTC))):
            _member(world, f"Edge{n}", unit=world.north, joined=moment,
                    status=MemberStatus.ACTIVE)
            _referral(world, f"e{n}", "Crowd1", f"Edge{n}", completed=moment)
            _invitation(world, "Crowd2", f"edge{n}@x.example", sent=moment,
                        status=InvitationStatus.ACCEPTED, accepted=moment + timedelta(hours=5))
        world.uow.commit()
    rp.reconcile(uow, world.admin, now=NOW)
    yield world


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(first=DAYS, second=DAYS, offset=st.sampled_from((0, 1, 3, 10)),
       limit=st.sampled_from((1, 2, 5, 100)))
def test_composed_ranges_equal_the_raw_figures(random_world: World, first: date,
                                               second: date, offset: int, limit: int) -> None:
    world = random_world
    period = Period.custom(min(first, second), max(first, second))
    with pytest.MonkeyPatch.context() as patch:
        _raw(patch)
        raw_board = rp.leaderboard(world.uow, world.admin, period, now=NOW)
        raw = {order: rp.conversion(world.uow, world.admin, period, now=NOW, order=order)
               for order in rp.ConversionOrder}
        raw_unit = rp.leaderboard(world.uow, world.admin, period, world.north, now=NOW)
    board = rp.leaderboard(world.uow, world.admin, period, limit=limit, offset=offset,
                           now=NOW)
    assert board.rows == raw_board.rows[offset:offset + limit]
    assert board.total == len(raw_board.rows)
    unit = rp.leaderboard(world.uow, world.admin, period, world.north, limit=limit,
                          offset=offset, now=NOW)
    assert (unit.rows, unit.total) == (raw_unit.rows[offset:offset + limit], len(raw_unit.rows))
    for order, whole in raw.items():
        page = rp.conversion(world.uow, world.admin, period, now=NOW, order=order,
                             limit=limit, offset=offset)
        assert page.rows == whole.rows[offset:offset + limit], order
        assert (page.total_rows, page.sent, page.accepted, page.members, page.k_factor) == (
            len(whole.rows), whole.sent, whole.accepted, whole.members, whole.k_factor)


def test_the_property_takes_the_composed_path(random_world: World,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The ranges above really are composed (not answered by the raw path), and a range
    with no whole month inside, or one of whole months, is not split."""
    zone = ZoneInfo(rp.get_settings(random_world.uow, random_world.admin).time_zone)
    edges = _counting(monkeypatch)
    period = Period.custom(date(2026, 1, 15), date(2026, 5, 20))
    rp.leaderboard(random_world.uow, random_world.admin, period, limit=3, now=NOW)
    rp.conversion(random_world.uow, random_world.admin, period, limit=3, now=NOW)
    assert len(edges) == 2
    for first, last in ((date(2026, 1, 15), date(2026, 2, 20)),
                        (date(2026, 2, 1), date(2026, 4, 30))):
        assert periods.split(*Period.custom(first, last).bounds(zone, NOW), zone) is None


# -- "My referrals": the member's own row and rank, read at the source ---------------------------

@pytest.fixture
def utc_world(any_uow: UnitOfWork) -> Iterator[World]:
    world = _world(any_uow, "UTC")
    rp.save_settings(any_uow, world.admin, {"leaderboard_visible_to_members": True})
    rp.reconcile(any_uow, world.admin, now=NOW)
    yield world


def test_a_members_standing_is_their_row_and_rank_without_the_board(
        utc_world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """This year (2026): Rita 2 active + 1 lapsed = 11, reached 20 Apr; Sam 2 + 1 = 11,
    reached 2 May; Tom 1 + 5 = 10, reached 10 Jan; Uma 2 active = 10, reached 1 Jun (opted
    out: hidden from other members, not from herself)."""
    world = utc_world
    year = Period(rp.PeriodKind.THIS_YEAR)
    boards: list[bool] = []
    original = reports.leaderboard

    def spy(*args: Any, **kwargs: Any) -> Any:
        boards.append(bool(kwargs.get("only_own")))
        return original(*args, **kwargs)

    monkeypatch.setattr(reports, "leaderboard", spy)
    ranks = {}
    for name in ("Rita", "Sam", "Tom", "Uma"):
        row = rp.leaderboard_standing(world.uow, world.operator(name), year, now=NOW)
        assert row is not None and row.referrer_name == f"{name} Test"
        ranks[name] = (row.rank, row.score, row.completed, row.active)
    assert ranks == {"Rita": (1, 11, 3, 2), "Sam": (2, 11, 3, 2), "Tom": (3, 10, 6, 1),
                     "Uma": (4, 10, 2, 2)}
    assert boards == [True] * 4  # each read only their own row, never the board
    monkeypatch.setattr(reports, "leaderboard", original)
    # the same as their row on the board they see (a period read in full: the general path)
    for name in ("Sam", "Uma"):
        who = world.operator(name)
        for period in (year, Period.custom(date(2026, 2, 10), date(2026, 5, 1))):
            standing = rp.leaderboard_standing(world.uow, who, period, now=NOW)
            board = rp.leaderboard(world.uow, who, period, now=NOW)
            assert standing == next(r for r in board.rows if r.referrer_id == who.member_id)
    # a member with nothing this month has no standing; a private board tells no rank
    assert rp.leaderboard_standing(world.uow, world.operator("Tom"),
                                   Period(rp.PeriodKind.THIS_MONTH), now=NOW) is None
    rp.save_settings(world.uow, world.admin, {"leaderboard_visible_to_members": False})
    assert rp.leaderboard_standing(world.uow, world.operator("Sam"), year, now=NOW) is None
    admin_view = rp.leaderboard_standing(world.uow, world.admin, year, now=NOW)
    assert admin_view is None  # the admin referred nobody
