"""Issue 10: the referral programme's figures on a hand-built dataset (referral_program_data.py
lists it), on SQLite, PostgreSQL and MariaDB.

Score = 5 x active referees + 1 x completed referrals whose referee is no longer active;
10 points per referral, vesting at once unless said otherwise; badges at 1, 5, 10 referees
whose points vested. Worked out by hand from the table:

all time   completed active score reached  points held badges
Rita       3 (A1-3)  2      11    Apr 20   20     0    1      pending 1 referral + 1 invitation
Sam        3 (B1-3)  2      11    May 2    10     10   1      B2's disposable address: on hold
Tom        6 (C1-6)  1      10    Jan 10   10     0    1      more referrals, fewer active
Uma        2 (D1-2)  2      10    Jun 1    20     0    1      opted out: admins only, marked
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select, update

from invite_desk.services import auth
from invite_desk.services import referral_program as rp
from invite_desk.services.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from invite_desk.services.models import (
    AuditLog,
    MemberStatus,
    ReferralLedger,
    ReferralReward,
)
from invite_desk.services.referral_program import Channel, Period, PeriodKind
from invite_desk.services.roles import Role
from invite_desk.services.uow import UnitOfWork
from tests.integration.referral_program_data import NOW, World, at, build

ALL = Period(PeriodKind.ALL_TIME)
QUARTER = Period(PeriodKind.THIS_QUARTER)


@pytest.fixture
def world(any_uow: UnitOfWork) -> Iterator[World]:
    admin = auth.setup_organization(
        any_uow, organization_name="Harbour Rowing Club", description="",
        admin_email="ada@example.org", admin_first_name="Ada", admin_last_name="Admin",
        password="correct horse battery", registration_base_url="https://join.example.org")
    world = build(any_uow, admin)
    rp.reconcile(any_uow, admin, now=NOW)
    yield world


def board(world: World, period: Period = ALL, operator_name: str | None = None,
          **kw: object) -> dict[str, rp.LeaderboardRow]:
    operator = world.admin if operator_name is None else world.operator(operator_name)
    result = rp.leaderboard(world.uow, operator, period, now=NOW, **kw)  # type: ignore[arg-type]
    return {row.referrer_name.split()[0]: row for row in result.rows}


def test_all_time_leaderboard_ranks_quality_and_breaks_ties_by_who_got_there_first(
        world: World) -> None:
    rows = board(world)
    assert list(rows) == ["Rita", "Sam", "Tom", "Uma"]
    rita, sam, tom, uma = rows.values()
    assert (rita.completed, rita.active, rita.score) == (3, 2, 11)
    assert (sam.completed, sam.active, sam.score) == (3, 2, 11)
    assert rita.first_reached_at == at(4, 20) and sam.first_reached_at == at(5, 2)
    # Tom has twice the referrals but one active referee: ranked below both.
    assert (tom.completed, tom.active, tom.score) == (6, 1, 10)
    assert (uma.completed, uma.active, uma.score, uma.opted_out) == (2, 2, 10, True)
    assert tom.first_reached_at == at(1, 10) and uma.first_reached_at == at(6, 1)
    assert [r.rank for r in rows.values()] == [1, 2, 3, 4]
    # pending: A4's adhesion application, plus i3 still open (i4 expired)
    assert (rita.pending_referrals, rita.pending_invitations, rita.pending) == (1, 1, 2)
    assert (rita.invitations_sent, rita.invitations_accepted, rita.acceptance_rate) == (4, 2, 0.5)
    assert (sam.invitations_sent, sam.acceptance_rate) == (1, 1.0)
    assert tom.acceptance_rate is None
    assert (rita.points, rita.held_points) == (20, 0)
    assert (sam.points, sam.held_points, sam.open_flags) == (10, 10, 1)  # B2 flagged: on hold
    assert (tom.points, uma.points) == (10, 20)
    assert [b.milestone for b in rita.badges] == [1]
    assert rita.referrer_email == "rita@example.org" and rita.unit_name == "North"


def test_a_quarter_counts_only_referrals_completed_inside_it(world: World) -> None:
    rows = board(world, QUARTER)
    assert list(rows) == ["Rita", "Sam", "Uma"]  # Tom's are all in January
    assert (rows["Rita"].completed, rows["Rita"].active, rows["Rita"].score) == (2, 1, 6)
    assert (rows["Sam"].completed, rows["Sam"].score) == (2, 6)
    assert (rows["Uma"].completed, rows["Uma"].score) == (1, 5)  # D2 was 31 March in UTC
    assert (rows["Rita"].points, rows["Sam"].points, rows["Sam"].held_points) == (10, 0, 10)
    month = board(world, Period(PeriodKind.THIS_MONTH))
    assert list(month) == ["Uma", "Rita"]  # Rita: only A4's pending adhesion in June
    assert (month["Rita"].completed, month["Rita"].pending_referrals) == (0, 1)
    custom = board(world, Period.custom(date(2026, 4, 20), date(2026, 4, 20)))
    assert list(custom) == ["Rita"] and custom["Rita"].completed == 1  # the last day counts


def test_the_organization_time_zone_moves_a_referral_across_the_quarter_boundary(
        world: World) -> None:
    rp.save_settings(world.uow, world.admin, {"time_zone": "Europe/Paris"})
    rows = board(world, QUARTER)
    # D2 completed 31 March 22:30 UTC = 1 April 00:30 in Paris: now in the second quarter.
    assert list(rows) == ["Uma", "Rita", "Sam"]
    assert (rows["Uma"].completed, rows["Uma"].score) == (2, 10)
    trend = rp.trends(world.uow, world.admin, QUARTER, rp.Granularity.MONTH, now=NOW)
    assert trend.buckets[0].new_members[Channel.REFERRAL] == 3
    assert trend.buckets[0].start.utcoffset() == timedelta(hours=2)


def test_a_lapsed_referee_takes_the_points_back_and_a_comeback_earns_them_again(
        world: World) -> None:
    world.set_status("A2", MemberStatus.DEACTIVATED)
    result = rp.reconcile(world.uow, world.admin, now=NOW)
    assert (result.revoked, result.awarded) == (1, 0)
    rita = board(world)["Rita"]
    assert (rita.completed, rita.active, rita.score, rita.points) == (3, 1, 7, 10)
    activity = rp.member_activity(world.uow, world.admin, world.ids["Rita"], now=NOW)
    revoke = activity.ledger[0]
    assert (revoke.kind, revoke.reason, revoke.points, revoke.vested_points) == (
        rp.LedgerKind.REVOKE, rp.LedgerReason.REFEREE_LAPSED, -10, -10)
    assert revoke.referee_name == "A2 Test"
    world.set_status("A2", MemberStatus.ACTIVE)
    rp.reconcile(world.uow, world.admin, now=NOW + timedelta(days=1))
    assert board(world)["Rita"].points == 20
    with world.uow:
        kinds = world.uow.session.execute(
            select(ReferralLedger.kind, ReferralLedger.cycle)
            .where(ReferralLedger.referral_id == world.referrals["r2"])).all()
    order = ["award", "vest", "revoke"]
    assert sorted((tuple(k) for k in kinds), key=lambda k: (k[1], order.index(k[0]))) == [("award", 1), ("vest", 1), ("revoke", 1),
                                         ("award", 2), ("vest", 2)]


def test_reconciling_twice_writes_nothing_and_the_ledger_sums_match_the_summary(
        world: World) -> None:
    assert rp.reconcile(world.uow, world.admin, now=NOW) == rp.ReconcileResult()
    with world.uow:
        session = world.uow.session
        ledger = dict(session.execute(
            select(ReferralLedger.member_id, func.sum(ReferralLedger.vested_points))
            .group_by(ReferralLedger.member_id)).all())
        summary = dict(session.execute(
            select(ReferralReward.referrer_id, func.sum(ReferralReward.points))
            .where(ReferralReward.state == "vested")
            .group_by(ReferralReward.referrer_id)).all())
    assert {k: int(v) for k, v in ledger.items() if v} == {k: int(v) for k, v in summary.items()}


def test_the_ledger_is_append_only(world: World) -> None:
    with world.uow:
        row = world.uow.session.scalars(select(ReferralLedger).limit(1)).one()
        row.points = 1000
        with pytest.raises(RuntimeError, match="append-only"):
            world.uow.session.flush()


def test_a_rejected_application_revokes_with_its_reason(world: World) -> None:
    world.set_status("A1", MemberStatus.REJECTED)
    rp.reconcile(world.uow, world.admin, now=NOW)
    entry = rp.member_activity(world.uow, world.admin, world.ids["Rita"], now=NOW).ledger[0]
    assert entry.reason is rp.LedgerReason.APPLICATION_REJECTED


def test_the_vesting_hold_keeps_new_points_held_until_it_passes(world: World) -> None:
    rp.save_settings(world.uow, world.admin, {"vesting_hold_days": 30})
    world.set_status("D1", MemberStatus.DEACTIVATED)
    rp.reconcile(world.uow, world.admin, now=NOW)
    world.set_status("D1", MemberStatus.ACTIVE)
    rp.reconcile(world.uow, world.admin, now=NOW)  # comeback: new award, held 30 days
    uma = board(world)["Uma"]
    assert (uma.points, uma.held_points) == (10, 10)
    rp.reconcile(world.uow, world.admin, now=NOW + timedelta(days=29))
    assert board(world)["Uma"].held_points == 10
    rp.reconcile(world.uow, world.admin, now=NOW + timedelta(days=30))
    assert (board(world)["Uma"].points, board(world)["Uma"].held_points) == (20, 0)


def test_a_flagged_referral_stays_on_hold_until_an_admin_decides(world: World) -> None:
    flags = rp.list_flags(world.uow, world.admin)
    disposable = [f for f in flags if f.kind is rp.FlagKind.DISPOSABLE_DOMAIN]
    assert len(disposable) == 1 and disposable[0].referee_name == "B2 Test"
    assert disposable[0].referral_id == world.referrals["s2"]
    # Reconciling again changes nothing: still held, no duplicate flag.
    rp.reconcile(world.uow, world.admin, now=NOW + timedelta(days=5))
    assert len(rp.list_flags(world.uow, world.admin)) == len(flags)
    assert board(world)["Sam"].held_points == 10
    decided = rp.decide_flag(world.uow, world.admin, disposable[0].id, rp.FlagStatus.CLEARED,
                             "Known member, uses a forwarding service", now=NOW)
    assert decided.status is rp.FlagStatus.CLEARED and decided.decided_by == "Ada Admin"
    sam = board(world)["Sam"]
    assert (sam.points, sam.held_points, sam.open_flags) == (20, 0, 0)
    with pytest.raises(Conflict):
        rp.decide_flag(world.uow, world.admin, disposable[0].id, rp.FlagStatus.REJECTED)
    with world.uow:
        actions = set(world.uow.session.scalars(select(AuditLog.action)))
    assert "referral_flag.cleared" in actions


def test_rejecting_a_flag_as_fake_takes_points_and_the_referral_away(world: World) -> None:
    flag = next(f for f in rp.list_flags(world.uow, world.admin)
                if f.kind is rp.FlagKind.DISPOSABLE_DOMAIN)
    rp.decide_flag(world.uow, world.admin, flag.id, rp.FlagStatus.REJECTED, "Fake", now=NOW)
    sam = board(world)["Sam"]
    assert (sam.completed, sam.active, sam.score, sam.points, sam.held_points) == (2, 1, 6, 10, 0)
    entry = rp.member_activity(world.uow, world.admin, world.ids["Sam"], now=NOW).ledger[0]
    assert (entry.kind, entry.reason, entry.points, entry.vested_points) == (
        rp.LedgerKind.REVOKE, rp.LedgerReason.FLAGGED_FAKE, -10, 0)
    # a fake referee coming back active earns nothing
    world.set_status("B2", MemberStatus.DEACTIVATED)
    rp.reconcile(world.uow, world.admin, now=NOW)
    world.set_status("B2", MemberStatus.ACTIVE)
    assert rp.reconcile(world.uow, world.admin, now=NOW).awarded == 0


def test_trends_split_new_members_by_channel_per_local_month(world: World) -> None:
    trend = rp.trends(world.uow, world.admin, QUARTER, rp.Granularity.MONTH, now=NOW)
    assert [b.start.date() for b in trend.buckets] == [date(2026, 4, 1), date(2026, 5, 1),
                                                       date(2026, 6, 1)]
    by_month = [{c.value: n for c, n in b.new_members.items() if n} for b in trend.buckets]
    assert by_month == [{"referral": 2, "event_guest": 1}, {"referral": 2, "public": 1},
                        {"referral": 2}]
    assert [b.invitations_sent for b in trend.buckets] == [3, 2, 0]
    assert [b.invitations_accepted for b in trend.buckets] == [3, 0, 0]
    weekly = rp.trends(world.uow, world.admin, QUARTER, rp.Granularity.WEEK, now=NOW)
    assert weekly.buckets[0].start.date() == date(2026, 4, 1)  # clipped to the period
    assert weekly.buckets[1].start.date() == date(2026, 4, 6)  # then Mondays
    assert sum(b.total_new_members for b in weekly.buckets) == 8
    assert sum(b.invitations_sent for b in weekly.buckets) == 5


def test_conversion_by_inviter_with_median_time_to_accept_and_k_factor(world: World) -> None:
    conv = rp.conversion(world.uow, world.admin, QUARTER, rp.ConversionBy.INVITER, now=NOW)
    rows = {r.label.split()[0]: r for r in conv.rows}
    assert (rows["Rita"].sent, rows["Rita"].accepted, rows["Rita"].rate) == (4, 2, 0.5)
    assert rows["Rita"].median_seconds_to_accept == pytest.approx(2 * 86400)  # 1 and 3 days
    assert rows["Sam"].median_seconds_to_accept == pytest.approx(7200)
    # 14 active members (Ada, 4 referrers, 7 active referees, P1, E1); 5 sent, 3 accepted
    assert (conv.sent, conv.accepted, conv.members) == (5, 3, 14)
    assert conv.k_factor == pytest.approx(3 / 14)
    by_unit = rp.conversion(world.uow, world.admin, QUARTER, rp.ConversionBy.UNIT, now=NOW)
    assert [(r.label, r.sent, r.accepted) for r in by_unit.rows] == [("North", 5, 3)]


def test_retention_of_referred_and_non_referred_members(world: World) -> None:
    ret = rp.retention(world.uow, world.admin, now=NOW)
    assert (ret.referred_90.cohort, ret.referred_90.retained) == (8, 3)
    assert (ret.non_referred_90.cohort, ret.non_referred_90.retained) == (5, 5)
    assert ret.referred_365.cohort == 0 and ret.referred_365.rate is None
    per = {row.referrer_name.split()[0]: row.at_90 for row in ret.per_referrer}
    assert (per["Tom"].cohort, per["Tom"].retained) == (6, 1)
    assert (per["Rita"].cohort, per["Rita"].retained) == (1, 1)
    assert ret.per_referrer[0].referrer_name.startswith("Tom")


def test_a_member_sees_only_their_own_figures(world: World) -> None:
    assert list(board(world, operator_name="Rita")) == ["Rita"]
    conv = rp.conversion(world.uow, world.operator("Rita"), QUARTER, now=NOW)
    assert [r.label.split()[0] for r in conv.rows] == ["Rita"]
    mine = rp.member_activity(world.uow, world.operator("Rita"), world.ids["Rita"], now=NOW)
    assert (mine.successful_referrals, mine.active_referees, mine.pending_referrals) == (3, 2, 1)
    assert (mine.pending_invitations, mine.points) == (1, 20)
    assert [r.name for r in mine.referred][:1] == ["A4 Test"]
    assert mine.next_badge == rp.Badge(5)
    with pytest.raises(PermissionDenied):
        rp.member_activity(world.uow, world.operator("Rita"), world.ids["Sam"], now=NOW)
    with pytest.raises(PermissionDenied):
        rp.list_flags(world.uow, world.operator("Rita"))
    with pytest.raises(PermissionDenied):
        rp.save_settings(world.uow, world.operator("Rita"), {"points_per_referral": 99})
    trend = rp.trends(world.uow, world.operator("Rita"), QUARTER, now=NOW)
    assert sum(b.total_new_members for b in trend.buckets) == 3  # A2, A3, A4


def test_a_visible_leaderboard_hides_opted_out_members_from_all_but_admins(
        world: World) -> None:
    rp.save_settings(world.uow, world.admin, {"leaderboard_visible_to_members": True})
    assert list(board(world, operator_name="Rita")) == ["Rita", "Sam", "Tom"]
    assert list(board(world, operator_name="Uma")) == ["Rita", "Sam", "Tom", "Uma"]
    assert board(world, operator_name="Rita")["Sam"].open_flags == 0  # admins' business
    hr = world.operator("Tom", Role.HR_TENANT)
    assert "Uma" not in {r.referrer_name.split()[0] for r in
                         rp.leaderboard(world.uow, hr, ALL, now=NOW).rows}
    rp.set_leaderboard_opt_out(world.uow, world.operator("Uma"), world.ids["Uma"], False)
    assert "Uma" in board(world, operator_name="Rita")


def test_a_member_reads_their_own_opt_out_and_nobody_elses(world: World) -> None:
    uma, rita = world.operator("Uma"), world.operator("Rita")
    assert rp.leaderboard_opt_out(world.uow, uma, world.ids["Uma"]) is True
    assert rp.leaderboard_opt_out(world.uow, rita, world.ids["Rita"]) is False
    with pytest.raises(PermissionDenied):
        rp.leaderboard_opt_out(world.uow, rita, world.ids["Uma"])
    assert rp.leaderboard_opt_out(world.uow, world.admin, world.ids["Uma"]) is True
    rp.set_leaderboard_opt_out(world.uow, uma, world.ids["Uma"], False)
    assert rp.leaderboard_opt_out(world.uow, uma, world.ids["Uma"]) is False
    with pytest.raises(NotFound):
        rp.leaderboard_opt_out(world.uow, world.admin, uuid.uuid4())


def test_a_local_admin_sees_their_unit_only(world: World) -> None:
    local = world.operator("Sam", Role.ADMIN_LOCAL)
    rows = {r.referrer_name.split()[0] for r in
            rp.leaderboard(world.uow, local, ALL, now=NOW).rows}
    assert rows == {"Rita", "Sam"}
    with pytest.raises(PermissionDenied):
        rp.leaderboard(world.uow, local, ALL, unit_id=world.south, now=NOW)
    assert {f.referrer_name.split()[0] for f in rp.list_flags(world.uow, local)} == {"Sam"}
    south = {r.referrer_name.split()[0] for r in
             rp.leaderboard(world.uow, world.admin, ALL, unit_id=world.south, now=NOW).rows}
    assert south == {"Tom", "Uma"}


def test_settings_are_validated_and_audited(world: World) -> None:
    with pytest.raises(ValidationFailed) as caught:
        rp.save_settings(world.uow, world.admin, {"badge_milestones": "5, 5", "time_zone": "Mars",
                                                  "points_per_referral": -1})
    assert set(caught.value.errors) == {"badge_milestones", "time_zone", "points_per_referral"}
    saved = rp.save_settings(world.uow, world.admin, {"badge_milestones": "10, 1, 3",
                                                      "low_acceptance_rate": "5%"})
    assert saved.badge_milestones == (1, 3, 10) and saved.low_acceptance_rate == 0.05
    assert rp.get_settings(world.uow, world.operator("Rita")) == saved
    with world.uow:
        assert world.uow.session.scalar(select(func.count()).select_from(AuditLog).where(
            AuditLog.action == "referral_program.settings.update")) == 1


def test_new_points_follow_the_setting_but_earned_points_keep_their_value(
        world: World) -> None:
    rp.save_settings(world.uow, world.admin, {"points_per_referral": 25})
    world.set_status("A3", MemberStatus.ACTIVE)
    rp.reconcile(world.uow, world.admin, now=NOW)
    assert board(world)["Rita"].points == 20 + 25


def test_a_competing_reconcile_that_loses_the_race_changes_nothing(world: World) -> None:
    world.set_status("A3", MemberStatus.ACTIVE)
    with world.uow:  # another run got there first with the same rows
        from invite_desk.services.referral_program.ledger import reconcile_session
        reconcile_session(world.uow.session, world.admin.organization_id, NOW)
        world.uow.commit()
    with world.uow:
        world.uow.session.execute(update(ReferralReward).where(
            ReferralReward.referral_id == world.referrals["r3"]).values(state="inactive",
                                                                        cycle=0))
        world.uow.commit()
    assert rp.reconcile(world.uow, world.admin, now=NOW) == rp.ReconcileResult()
    with world.uow:  # the loser's rows were rolled back: one award, one vest
        assert world.uow.session.scalar(select(func.count()).select_from(ReferralLedger).where(
            ReferralLedger.referral_id == world.referrals["r3"])) == 2


def test_anti_gaming_checks_raise_flags_for_review_and_act_on_nothing(world: World) -> None:
    from tests.integration.referral_program_data import _invitation, _member, _referral

    with world.uow:
        # Rita refers herself under a +tag address, and a referee who never became active.
        _member(world, "Rself", unit=world.north, joined=at(6, 1),
                email="Rita+second@example.org")
        _referral(world, "self", "Rita", "Rself", completed=at(6, 1))
        _member(world, "Ghost", unit=world.north, joined=at(5, 1),
                status=MemberStatus.APPLICANT)
        _referral(world, "ghost", "Rita", "Ghost", completed=None, referred=at(5, 1))
        # Tom: 35 invitations to one company in one hour, none accepted.
        for i in range(35):
            _invitation(world, "Tom", f"person{i}@acme-widgets.test",
                        sent=at(6, 2, 14, i), status=rp_status("expired"), unit=world.south)
        world.uow.commit()
    result = rp.reconcile(world.uow, world.admin, now=NOW)
    assert result.flags_raised == 5
    flags = rp.list_flags(world.uow, world.admin)
    kinds = {(f.kind, f.referrer_name.split()[0]) for f in flags}
    assert kinds == {
        (rp.FlagKind.DISPOSABLE_DOMAIN, "Sam"), (rp.FlagKind.SELF_REFERRAL, "Rita"),
        (rp.FlagKind.NEVER_ACTIVE, "Rita"), (rp.FlagKind.BURST, "Tom"),
        (rp.FlagKind.DOMAIN_CONCENTRATION, "Tom"), (rp.FlagKind.LOW_ACCEPTANCE, "Tom"),
    }
    burst = next(f for f in flags if f.kind is rp.FlagKind.BURST)
    assert "35 invitations in one hour (2026-06-02 14:00 UTC)" in burst.detail
    assert "acme-widgets.test" in next(
        f.detail for f in flags if f.kind is rp.FlagKind.DOMAIN_CONCENTRATION)
    # Nothing was acted on: the self-referral's points are held, Tom's vested points stay.
    rita, tom = board(world)["Rita"], board(world)["Tom"]
    assert (rita.points, rita.held_points) == (20, 10)
    assert tom.points == 10 and tom.open_flags == 3
    assert rp.reconcile(world.uow, world.admin, now=NOW).flags_raised == 0


def rp_status(value: str) -> object:
    from invite_desk.services.models import InvitationStatus

    return InvitationStatus(value)


@pytest.mark.parametrize("period", [
    Period(PeriodKind.ALL_TIME), Period(PeriodKind.THIS_YEAR), QUARTER,
    Period(PeriodKind.THIS_MONTH), Period.custom(date(2026, 4, 1), date(2026, 6, 30))])
def test_the_monthly_summary_gives_the_figures_the_raw_rows_give(
        world: World, period: Period) -> None:
    from invite_desk.services.referral_program import stats

    world.set_status("B1", MemberStatus.DEACTIVATED)  # a change the summary must follow
    rp.reconcile(world.uow, world.admin, now=NOW)
    summarized = rp.leaderboard(world.uow, world.admin, period, now=NOW).rows
    with world.uow:
        assert stats.usable(world.uow.session, world.admin.organization_id, "UTC")
        world.uow.session.execute(update(stats.Setting).where(
            stats.Setting.key == stats.WATERMARK_KEY).values(value_json="null"))
        world.uow.commit()
    raw = rp.leaderboard(world.uow, world.admin, period, now=NOW).rows
    assert summarized == raw
    assert board(world)["Sam"].active == 1


@pytest.mark.parametrize("granularity", [rp.Granularity.WEEK, rp.Granularity.MONTH])
def test_the_daily_summary_follows_changes_and_gives_the_raw_trends(
        world: World, granularity: rp.Granularity) -> None:
    from invite_desk.services.models import Invitation, InvitationStatus
    from invite_desk.services.referral_program import stats
    from tests.integration.referral_program_data import _invitation, _member, _referral

    with world.uow:  # after the first reconciliation: a new referee, an acceptance
        _member(world, "Late", unit=world.north, joined=at(6, 12, 23, 30))
        _referral(world, "late", "Sam", "Late", completed=at(6, 12, 23, 30))
        _invitation(world, "Sam", "late@example.net", sent=at(6, 11), status=InvitationStatus.SENT)
        world.uow.session.flush()
        invitation = world.uow.session.scalars(select(Invitation).where(
            Invitation.email == "late@example.net")).one()
        invitation.status = InvitationStatus.ACCEPTED.value
        invitation.accepted_at = at(6, 12, 23, 0)
        world.uow.commit()
    rp.save_settings(world.uow, world.admin, {"time_zone": "America/New_York"})
    rp.reconcile(world.uow, world.admin, now=NOW)  # the zone changed: rebuilt
    for period in (QUARTER, ALL, Period.custom(date(2026, 3, 30), date(2026, 6, 13))):
        for unit in (None, world.north):
            summarized = rp.trends(world.uow, world.admin, period, granularity, unit, now=NOW)
            with world.uow:
                assert stats.usable(world.uow.session, world.admin.organization_id,
                                    "America/New_York")
                world.uow.session.execute(update(stats.Setting).where(
                    stats.Setting.key == stats.WATERMARK_KEY).values(value_json="null"))
                world.uow.commit()
            raw = rp.trends(world.uow, world.admin, period, granularity, unit, now=NOW)
            assert summarized == raw
            rp.reconcile(world.uow, world.admin, now=NOW)  # builds the summaries again
    june = rp.trends(world.uow, world.admin, QUARTER, rp.Granularity.MONTH, now=NOW).buckets[-1]
    assert june.new_members[Channel.REFERRAL] == 3 and june.invitations_accepted == 1


def test_a_limited_leaderboard_is_the_top_of_the_full_one(world: World) -> None:
    rp.save_settings(world.uow, world.admin, {"leaderboard_visible_to_members": True})
    for operator in (world.admin, world.operator("Rita")):
        for period in (ALL, QUARTER, Period(PeriodKind.THIS_MONTH)):
            full = rp.leaderboard(world.uow, operator, period, now=NOW).rows
            for limit in (1, 2, 3):
                top = rp.leaderboard(world.uow, operator, period, limit=limit, now=NOW).rows
                assert top == full[:limit]
