"""The referral pages on the real services and a real database, with the hand-built dataset of
tests/integration/referral_program_data.py (its figures are worked out in
test_referral_program.py): the leaderboard as staff see it, the flag review, "My referrals"
for a USER (only their own), the gamification settings page and the member page's points."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from PySide6.QtWidgets import QLineEdit
from pytestqt.qtbot import QtBot
from sqlalchemy.engine import Engine

from invite_desk.app import AppContext
from invite_desk.services import referral_program as rp
from invite_desk.services.credentials import MemoryCredentialStore
from invite_desk.services.operator import Operator
from invite_desk.services.roles import Role
from invite_desk.services.uow import UnitOfWork
from invite_desk.ui.hub import OperationsHub
from invite_desk.ui.members.window import MembersWindow
from invite_desk.ui.referrals import MyReferralsPage, ReferralSource, ReferralsPage, referrals_page
from invite_desk.ui.settings.gamification_page import GamificationPage
from invite_desk.ui.settings.window import SettingsWindow
from tests.integration.referral_program_data import NOW, World, build


@pytest.fixture
def world(uow: UnitOfWork, admin: Operator) -> World:
    return build(uow, admin)


@pytest.fixture
def hub(qtbot: QtBot) -> Iterator[OperationsHub]:
    hub = OperationsHub()  # a real pool: every read runs off the GUI thread
    yield hub
    hub.shutdown(10_000)


def staff_page(qtbot: QtBot, hub: OperationsHub, world: World,
               operator: Operator | None = None) -> ReferralsPage:
    page = ReferralsPage(hub, operator or world.admin, source=ReferralSource(world.uow),
                         clock=lambda: NOW)
    qtbot.addWidget(page)
    page.resize(1200, 780)
    page.show()
    qtbot.waitUntil(lambda: page.idle and page.leaderboard is not None, timeout=10_000)
    return page


def wait(qtbot: QtBot, page: ReferralsPage | MyReferralsPage) -> None:
    qtbot.wait(1)
    qtbot.waitUntil(lambda: page.idle, timeout=10_000)


def shown(page: ReferralsPage) -> dict[str, dict[str, str]]:
    """The leaderboard as the table shows it: first name -> column title -> text."""
    model = page.leaderboard_table.model()
    headers = page.leaderboard_model.headers()
    rows = {}
    for r in range(model.rowCount()):
        cells = [model.index(r, c).data() for c in range(model.columnCount())]
        rows[cells[1].split()[0]] = dict(zip(headers, cells, strict=True))
    return rows


def test_leaderboard_numbers_per_period_and_scope(qtbot: QtBot, hub: OperationsHub,
                                                  world: World) -> None:
    page = staff_page(qtbot, hub, world)
    page.set_period(rp.Period(rp.PeriodKind.ALL_TIME))
    wait(qtbot, page)
    rows = shown(page)
    assert list(rows) == ["Rita", "Sam", "Tom", "Uma"]  # ranked by quality, ties by time
    columns = ("#", "Score", "Completed", "Still active", "Pending", "Acceptance", "Points",
               "Held", "Badges")
    assert [rows["Rita"][c] for c in columns] == ["1", "11", "3", "2", "2", "50%", "20", "0",
                                                  "1"]
    assert [rows["Sam"][c] for c in columns] == ["2", "11", "3", "2", "0", "100%", "10", "10",
                                                 "1"]
    assert [rows["Tom"][c] for c in columns[:4]] == ["3", "10", "6", "1"]  # 6 raw, 1 active
    assert rows["Tom"]["Acceptance"] == "–"
    assert rows["Uma"]["Referrer"] == "Uma Test (opted out)"  # admins see her, marked
    assert rows["Sam"]["Flags"] == "1"

    page.set_period(rp.Period(rp.PeriodKind.THIS_QUARTER))
    wait(qtbot, page)
    rows = shown(page)
    assert list(rows) == ["Rita", "Sam", "Uma"]
    assert (rows["Rita"]["Completed"], rows["Rita"]["Score"]) == ("2", "6")
    assert page.conversion is not None and page.conversion.k_factor == pytest.approx(3 / 14)
    assert page.k_factor_label.text().startswith("K-factor 0.21")

    qtbot.waitUntil(lambda: page.scope_combo.count() == 3, timeout=10_000)
    page.set_unit(world.south)
    wait(qtbot, page)
    assert list(shown(page)) == ["Uma"]  # Tom's referrals were all in January
    page.set_period(rp.Period(rp.PeriodKind.ALL_TIME))
    wait(qtbot, page)
    assert list(shown(page)) == ["Tom", "Uma"]


def test_rejecting_a_flag_takes_the_referral_away_after_asking(
        qtbot: QtBot, hub: OperationsHub, world: World, confirmations: Any) -> None:
    page = staff_page(qtbot, hub, world)
    page.set_period(rp.Period(rp.PeriodKind.ALL_TIME))
    wait(qtbot, page)
    disposable = [f for f in page.flags if f.kind is rp.FlagKind.DISPOSABLE_DOMAIN]
    assert [f.referee_name for f in disposable] == ["B2 Test"]
    page.tabs.setCurrentWidget(page.flags_tab)
    page.select_flag(page.flags.index(disposable[0]))
    proxy_row = page.selected_flag()
    assert proxy_row is not None
    page.flag_table.selectRow(next(
        r for r in range(page.flag_table.model().rowCount())
        if page.flag_table.model().index(r, 1).data() == "Disposable email domain"))
    assert page.selected_flag() == disposable[0]
    with qtbot.waitSignal(hub.changed, timeout=10_000):
        assert page.decide_selected(rp.FlagStatus.REJECTED)
    assert "B2 Test" in confirmations.asked[-1]["text"]
    wait(qtbot, page)
    sam = shown(page)["Sam"]
    assert (sam["Completed"], sam["Still active"], sam["Score"], sam["Points"],
            sam["Held"]) == ("2", "1", "6", "10", "0")
    assert all(f.kind is not rp.FlagKind.DISPOSABLE_DOMAIN for f in page.flags)


def test_a_user_sees_only_their_own_referrals(qtbot: QtBot, hub: OperationsHub, world: World,
                                              engine: Engine) -> None:
    rita = world.operator("Rita")
    context = AppContext(engine=engine, uow=world.uow, credentials=MemoryCredentialStore(),
                         database_label="test")
    chosen = referrals_page(context, rita, hub=hub)
    qtbot.addWidget(chosen)  # (kept, and deleted on the GUI thread: never by a worker's GC)
    assert isinstance(chosen, MyReferralsPage)  # the main window's Referrals page for a USER
    staff = referrals_page(context, world.admin, hub=hub)
    qtbot.addWidget(staff)
    assert isinstance(staff, ReferralsPage)
    page = MyReferralsPage(hub, rita, source=ReferralSource(world.uow), clock=lambda: NOW)
    qtbot.addWidget(page)
    page.show()
    qtbot.waitUntil(lambda: page.idle and page.activity is not None, timeout=10_000)
    assert page.stat_labels["successful"].text() == "3"
    assert page.stat_labels["active"].text() == "2"
    assert page.stat_labels["pending"].text() == "1"
    assert page.stat_labels["points"].text() == "20"
    names = {row.name for row in page.referee_model.rows}
    assert names == {"A1 Test", "A2 Test", "A3 Test", "A4 Test"}  # nobody else's referees
    text = page.visible_text()
    assert "B1 Test" not in text and "Sam" not in text
    assert "3 more active referees to the “5 active referees” badge." in text
    assert "keeps its leaderboard private" in text and page.board_table.isHidden()

    rp.save_settings(world.uow, world.admin, {"leaderboard_visible_to_members": True})
    page.reload()
    qtbot.waitUntil(lambda: page.idle and page.board is not None, timeout=10_000)
    members = [row.referrer_name.split()[0] for row in page.board_model.rows]
    assert members == ["Rita", "Sam", "Tom"]  # Uma opted out: hidden from members
    assert page.standing is not None and page.standing.rank == 1  # Rita: in the top, once
    assert "You are ranked 1 of 3." in page.visible_text()
    assert not page.board_table.isHidden()
    assert all(row.open_flags == 0 for row in page.board_model.rows)


def test_gamification_page_saves_for_organization_admins(qtbot: QtBot, uow: UnitOfWork,
                                                         admin: Operator) -> None:
    window = SettingsWindow(uow, admin)
    qtbot.addWidget(window)
    window.show()
    page = window.page("gamification")
    assert isinstance(page, GamificationPage)
    window.show_page("gamification")
    assert page.milestones_edit.text() == "1, 5, 10"  # the defaults
    assert not page.is_read_only()

    page.points_edit.setText("25")
    page.milestones_edit.setText("10, 1, 3")
    page.hold_edit.setText("30")
    page.visible_box.setChecked(True)
    page.burst_edit.setText("12")
    page.zone_edit.setText("Europe/Paris")
    assert window.has_unsaved_changes()
    assert window.save()
    saved = rp.get_settings(uow, admin)
    assert (saved.points_per_referral, saved.badge_milestones, saved.vesting_hold_days,
            saved.leaderboard_visible_to_members, saved.burst_per_hour, saved.time_zone) == (
        25, (1, 3, 10), 30, True, 12, "Europe/Paris")

    page.milestones_edit.setText("5, 5")
    page.hold_edit.setText("soon")
    page.zone_edit.setText("Mars/Olympus")
    assert not window.save()
    errors = page.visible_errors()
    assert set(errors) == {"badge_milestones", "vesting_hold_days", "time_zone"}
    assert rp.get_settings(uow, admin).vesting_hold_days == 30  # nothing saved


@pytest.mark.parametrize("role", [Role.HR_TENANT, Role.ADMIN_LOCAL, Role.USER])
def test_gamification_page_is_read_only_for_everyone_else(
        qtbot: QtBot, uow: UnitOfWork, admin: Operator, make_operator: Any,
        make_unit: Any, role: Role) -> None:
    operator = make_operator(role, make_unit("North") if role.is_local else None)
    rp.save_settings(uow, admin, {"points_per_referral": 15})
    window = SettingsWindow(uow, operator)
    qtbot.addWidget(window)
    window.show()
    window.show_page("gamification")
    page = window.page("gamification")
    assert isinstance(page, GamificationPage)
    assert page.is_read_only()
    assert page.banner.isVisible() and "ADMIN_TENANT" in page.banner.text()
    assert page.points_edit.text() == "15"
    for edit in page.findChildren(QLineEdit):
        assert edit.isReadOnly()
    assert not page.visible_box.isEnabled()
    assert not window.save()
    assert rp.get_settings(uow, admin).points_per_referral == 15


def test_member_page_shows_points_and_badges(qtbot: QtBot, hub: OperationsHub, world: World,
                                             engine: Engine) -> None:
    context = AppContext(engine=engine, uow=world.uow, credentials=MemoryCredentialStore(),
                         database_label="test")
    window = MembersWindow(context, world.admin, hub=hub, clock=lambda: NOW)
    qtbot.addWidget(window)
    window.show()
    window.show_member(world.ids["Rita"])
    qtbot.waitUntil(lambda: window.page.rewards_label.isVisible(), timeout=10_000)
    assert window.page.rewards_label.text() == (
        "Points: 20. Badges: 1 active referee. 3 more active referees to the "
        "“5 active referees” badge.")
    # Another member: the previous member's points are never shown as theirs.
    rp.reconcile(world.uow, world.admin, now=NOW)  # raises the flag on B2: Sam's 10 on hold
    window.show_member(world.ids["Sam"])
    qtbot.waitUntil(lambda: "10 on hold" in window.page.rewards_label.text(), timeout=10_000)
    assert window.page.activity is not None and window.page.activity.member.id == world.ids["Sam"]



def test_my_referrals_opt_out_checkbox_saves_through_the_hub(
        qtbot: QtBot, hub: OperationsHub, world: World) -> None:
    """A member leaves the leaderboard other members see, and comes back, from My referrals."""
    from invite_desk.ui.hub import REFERRALS, Changes

    rp.save_settings(world.uow, world.admin, {"leaderboard_visible_to_members": True})
    uma, rita = world.operator("Uma"), world.operator("Rita")
    page = MyReferralsPage(hub, uma, source=ReferralSource(world.uow), clock=lambda: NOW)
    qtbot.addWidget(page)
    page.show()
    qtbot.waitUntil(lambda: page.idle and page.opt_out.isEnabled(), timeout=10_000)
    assert page.opt_out.isChecked()  # Uma opted out in the dataset
    assert not page.opt_out.isHidden()
    heard: list[Changes] = []
    hub.changed.connect(heard.append)
    page.opt_out.setChecked(False)  # what a click does
    assert not page.opt_out.isEnabled()  # until saved
    qtbot.waitUntil(lambda: page.idle and page.opt_out.isEnabled(), timeout=10_000)
    assert rp.leaderboard_opt_out(world.uow, uma, uma.member_id) is False
    assert heard and REFERRALS in heard[0].kinds and heard[0].origin is page
    assert "listed on the leaderboard again" in page.banner.text()
    board = rp.leaderboard(world.uow, rita, rp.Period(rp.PeriodKind.ALL_TIME), now=NOW)
    assert "Uma" in {r.referrer_name.split()[0] for r in board.rows}
    page.opt_out.setChecked(True)
    qtbot.waitUntil(lambda: page.idle and page.opt_out.isEnabled(), timeout=10_000)
    assert rp.leaderboard_opt_out(world.uow, uma, uma.member_id) is True
    assert "no longer listed" in page.banner.text()
    board = rp.leaderboard(world.uow, rita, rp.Period(rp.PeriodKind.ALL_TIME), now=NOW)
    assert "Uma" not in {r.referrer_name.split()[0] for r in board.rows}
