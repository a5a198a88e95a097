"""The Invitations window: the lazily fetching table model, tabs and counts, search, filters,
sorting, multi-select actions (resend through the real sending thread, revoke, extend, fresh
link), export, scope per role, expiry while the window is open, the sweep and the detail pane.

Background work runs synchronously (SynchronousRunner) except where a test says otherwise;
resend uses the real SendJob thread against a loopback SMTP server.
"""

from __future__ import annotations

import csv
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QHeaderView
from pytestqt.qtbot import QtBot
from sqlalchemy import func, insert, select
from sqlalchemy.engine import Engine

from invite_desk.app import AppContext
from invite_desk.services import mail_settings, settings
from invite_desk.services.credentials import MemoryCredentialStore
from invite_desk.services.errors import DomainError, SettingsIncomplete
from invite_desk.services.invitations.tokens import hash_token
from invite_desk.services.models import AuditLog, Invitation
from invite_desk.services.operator import Operator
from invite_desk.services.registration.links import LinkState, open_link
from invite_desk.services.roles import Role
from invite_desk.services.tracking import Column, InvitationQuery, Tab
from invite_desk.services.uow import UnitOfWork
from invite_desk.ui.hub import OperationsHub
from invite_desk.ui.invitations import InvitationsWindow
from invite_desk.ui.invitations import window as invitations_module
from invite_desk.ui.invitations.paged_model import LOADING_TEXT
from invite_desk.ui.invitations.table_model import (
    InvitationRole,
    InvitationSource,
    InvitationTableModel,
)
from invite_desk.ui.tasks import SynchronousRunner
from tests.smtp_server import LoopbackSmtpServer
from tests.tracking_data import NOW, S, Seeder
from tests.ui.conftest import Confirmations


class Clock:
    """A clock the test moves forward."""

    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def context(engine: Engine, uow: UnitOfWork, credentials: MemoryCredentialStore) -> AppContext:
    return AppContext(engine=engine, uow=uow, credentials=credentials, database_label="test")


@pytest.fixture
def seeder(uow: UnitOfWork, admin: Operator) -> Seeder:
    return Seeder(uow, admin.organization_id)


@pytest.fixture
def clock() -> Clock:
    return Clock()


MakeWindow = Callable[..., InvitationsWindow]


@pytest.fixture
def make_window(qtbot: QtBot, context: AppContext, admin: Operator,
                clock: Clock) -> Iterator[MakeWindow]:
    windows: list[InvitationsWindow] = []

    def make(operator: Operator | None = None, **kw: Any) -> InvitationsWindow:
        kw.setdefault("runner", SynchronousRunner())
        kw.setdefault("sweep_interval_ms", 0)
        window = InvitationsWindow(context, operator or admin, clock=clock, **kw)
        qtbot.addWidget(window)
        window.resize(1200, 780)
        windows.append(window)
        return window

    yield make
    for window in windows:
        assert window.stop(30_000)


def shown(window: InvitationsWindow, qtbot: QtBot) -> list[str]:
    """The invitee emails the table shows, in order (waiting for their pages)."""
    model = window.model
    qtbot.waitUntil(lambda: all(model.row_at(r) is not None for r in range(model.rowCount())),
                    timeout=5000)
    return [model.row_at(r).email for r in range(model.rowCount())]  # type: ignore[union-attr]


def cell(window: InvitationsWindow, row: int, column: Column) -> str:
    return str(window.model.index(row, column).data())


def stored(uow: UnitOfWork, invitation_id: uuid.UUID) -> dict[str, Any]:
    with uow:
        row = uow.session.get(Invitation, invitation_id)
        assert row is not None
        return {"status": row.status, "token_hash": row.token_hash, "expires_at": row.expires_at,
                "batch_id": row.batch_id}


def audit_actions(uow: UnitOfWork, invitation_id: uuid.UUID) -> list[str]:
    with uow:
        return list(uow.session.scalars(
            select(AuditLog.action).where(AuditLog.entity_id == invitation_id)
            .order_by(AuditLog.at)))


def insert_many(uow: UnitOfWork, admin: Operator, count: int) -> None:
    with uow:
        uow.session.execute(insert(Invitation), [dict(
            id=uuid.uuid4(), organization_id=admin.organization_id, email=f"p{i:05d}@example.org",
            email_normalized=f"p{i:05d}@example.org", name=f"Person {i}", kind="membership",
            inviter_id=admin.member_id, sender_id=admin.member_id, personal_message="",
            status="sent", sent_at=NOW - timedelta(minutes=i), queued_at=NOW - timedelta(days=1),
            expires_at=NOW + timedelta(days=3), attempts=1, last_error="", version=1,
            created_at=NOW, updated_at=NOW) for i in range(count)])
        uow.commit()


# ------------------------------------------------------------------------------ the model
def test_the_model_passes_the_model_tester_while_it_opens_pages_and_refreshes(
    qtmodeltester: Any, qtbot: QtBot, uow: UnitOfWork, admin: Operator, seeder: Seeder
) -> None:
    insert_many(uow, admin, 450)
    seeder.add(S.FAILED, inviter=admin.member_id, last_error="550 unknown user")
    model = InvitationTableModel(InvitationSource(uow, admin, lambda: NOW),
                                 hub=OperationsHub(runner=SynchronousRunner()))
    model.max_pages = 2
    model.set_query(InvitationQuery(tab=Tab.ALL))
    qtmodeltester.check(model)

    assert model.rowCount() == 451 and model.columnCount() == len(Column)
    assert model.cached_rows() == 60  # only a screenful: the first paint waits for no more
    assert model.index(100, 0).data() == LOADING_TEXT  # asks for the rest of page 1 ...
    qtbot.waitUntil(lambda: model.index(100, 0).data() != LOADING_TEXT)
    assert model.cached_rows() == 200
    assert model.index(300, 0).data() == LOADING_TEXT  # asks for page 2 ...
    qtbot.waitUntil(lambda: model.index(300, 0).data() != LOADING_TEXT)  # ... which arrives
    model.index(450, 0).data()  # the last page, read from the end
    qtbot.waitUntil(lambda: model.index(450, 0).data() != LOADING_TEXT)
    assert model.index(450, Column.STATUS).data() == "Failed"
    assert model.cached_rows() <= 400  # at most two pages: the least recently used go
    row = model.index(0, Column.STATUS).data(InvitationRole.ROW)
    assert model.index(0, Column.STATUS).data() == "Sent" and row.status is S.SENT
    assert model.index(0, 0).data(InvitationRole.ID) == row.id
    model.refresh()  # stale-marked, re-read as painted
    model.sort(Column.INVITEE, Qt.SortOrder.AscendingOrder)
    assert model.query.sort is Column.INVITEE and not model.query.descending
    assert model.index(0, Column.INVITEE).data().startswith("invitee0001@")
    qtmodeltester.check(model)


def test_the_table_fetches_only_the_pages_in_sight_while_scrolling_to_the_end(
    qtbot: QtBot, make_window: MakeWindow, uow: UnitOfWork, admin: Operator
) -> None:
    insert_many(uow, admin, 2500)
    window = make_window()
    window.show()
    model = window.model
    assert model.rowCount() == 2500
    header = window.table.verticalHeader()
    assert header.sectionResizeMode(0) == QHeaderView.ResizeMode.Fixed
    assert header.defaultSectionSize() == 26
    assert model.cached_rows() == 60
    window.table.scrollToBottom()
    qtbot.waitUntil(lambda: model.row_at(2499) is not None)
    assert model.row_at(2499).email == "p02499@example.org"  # type: ignore[union-attr]
    assert model.cached_rows() <= 600  # the first page and what was in sight


def test_with_the_real_thread_pool_rows_and_counts_arrive_after_the_window_opens(
    qtbot: QtBot, make_window: MakeWindow, uow: UnitOfWork, admin: Operator
) -> None:
    insert_many(uow, admin, 700)
    window = make_window(runner=None)  # its own QThreadPool
    qtbot.waitUntil(lambda: window.model.rowCount() == 700, timeout=10_000)
    qtbot.waitUntil(lambda: window.counts.get(Tab.PENDING) == 700, timeout=10_000)
    window.table.scrollToBottom()
    qtbot.waitUntil(lambda: window.model.row_at(699) is not None, timeout=10_000)
    assert window.tabs.tabText(0) == "Pending  700"


# ------------------------------------------------------------------------------ tabs, search, filters, sort
def test_tabs_show_their_counts_and_their_rows(
    qtbot: QtBot, make_window: MakeWindow, admin: Operator, seeder: Seeder
) -> None:
    live = seeder.add(S.SENT, inviter=admin.member_id, email="live@example.org")
    seeder.add(S.SENT, inviter=admin.member_id, email="overdue@example.org", sent_days_ago=20,
               expires_in_days=-1)
    seeder.add(S.ACCEPTED, inviter=admin.member_id, email="joined@example.org")
    window = make_window()

    assert window.current_tab is Tab.PENDING
    assert shown(window, qtbot) == [live.email]
    assert window.tabs.tabText(0) == "Pending  1"
    assert window.tabs.tabText(2) == "Expired  1"
    window.set_tab(Tab.EXPIRED)
    assert shown(window, qtbot) == ["overdue@example.org"]
    assert cell(window, 0, Column.STATUS) == "Expired"
    window.set_tab(Tab.ALL)
    assert sorted(shown(window, qtbot)) == ["joined@example.org", "live@example.org",
                                            "overdue@example.org"]
    assert window.summary_label.text() == "3 invitations"


def test_search_as_typed_finds_email_name_and_inviter(
    qtbot: QtBot, make_window: MakeWindow, admin: Operator, seeder: Seeder
) -> None:
    grace = seeder.member("Grace", "Hopper")
    seeder.add(S.SENT, inviter=admin.member_id, email="ada@analytical.org", name="Ada Lovelace")
    seeder.add(S.SENT, inviter=grace.member_id, email="alan@bletchley.uk", name="Alan Turing")
    window = make_window()

    qtbot.keyClicks(window.search_edit, "hop")
    qtbot.waitUntil(lambda: window.model.query.search == "hop", timeout=2000)
    assert shown(window, qtbot) == ["alan@bletchley.uk"]
    assert "matching “hop”" in window.summary_label.text()
    window.set_search("ADA")
    assert shown(window, qtbot) == ["ada@analytical.org"]
    window.set_search("")
    assert len(shown(window, qtbot)) == 2


def test_filters_narrow_the_table(
    qtbot: QtBot, make_window: MakeWindow, admin: Operator, seeder: Seeder
) -> None:
    north = seeder.unit("North")
    batch = seeder.batch(admin.member_id, "Spring open day")
    ride = seeder.event("Sunday ride")
    seeder.add(S.SENT, inviter=admin.member_id, unit_id=north, email="north@example.org")
    seeder.add(S.SENT, inviter=admin.member_id, batch_id=batch, email="batch@example.org")
    seeder.add(S.SENT, inviter=admin.member_id, event_id=ride, email="guest@example.org")
    window = make_window()
    assert len(shown(window, qtbot)) == 3

    window.unit_combo.setCurrentIndex(window.unit_combo.findText("North"))
    assert shown(window, qtbot) == ["north@example.org"]
    assert "(filtered)" in window.summary_label.text()
    window.clear_filters()
    window.batch_combo.setCurrentIndex(window.batch_combo.findText("Spring open day"))
    assert shown(window, qtbot) == ["batch@example.org"]
    window.clear_filters()
    window.kind_combo.setCurrentIndex(window.kind_combo.findText("Event: Sunday ride"))
    assert shown(window, qtbot) == ["guest@example.org"]
    window.clear_filters()
    window.choose_inviter(admin.member_id, "Ada Admin")
    assert len(shown(window, qtbot)) == 3
    day = NOW.astimezone().date()
    window.from_date.setDate(day - timedelta(days=3))
    window.to_date.setDate(day - timedelta(days=1))
    window.dates_check.setChecked(True)  # sent between 3 and 1 days ago: all three
    assert len(shown(window, qtbot)) == 3
    window.to_date.setDate(day - timedelta(days=3))
    assert shown(window, qtbot) == []


def test_clicking_a_header_sorts_in_sql_both_ways(
    qtbot: QtBot, make_window: MakeWindow, admin: Operator, seeder: Seeder
) -> None:
    for email in ("bravo@example.org", "alpha@example.org", "charlie@example.org"):
        seeder.add(S.SENT, inviter=admin.member_id, email=email)
    window = make_window()
    header = window.table.horizontalHeader()

    header.sectionClicked.emit(Column.INVITEE)
    window.table.sortByColumn(Column.INVITEE, Qt.SortOrder.AscendingOrder)
    assert window.model.query.sort is Column.INVITEE
    assert shown(window, qtbot) == ["alpha@example.org", "bravo@example.org",
                                    "charlie@example.org"]
    window.table.sortByColumn(Column.INVITEE, Qt.SortOrder.DescendingOrder)
    assert shown(window, qtbot) == ["charlie@example.org", "bravo@example.org",
                                    "alpha@example.org"]
    window.table.sortByColumn(Column.SENT, Qt.SortOrder.DescendingOrder)
    assert shown(window, qtbot)[0] == "bravo@example.org"  # the seeder sent it last
    assert header.sortIndicatorSection() == Column.SENT


# ------------------------------------------------------------------------------ actions
def test_multi_select_revoke_changes_the_database_and_audits_each(
    qtbot: QtBot, make_window: MakeWindow, uow: UnitOfWork, admin: Operator, seeder: Seeder
) -> None:
    rows = [seeder.add(S.SENT, inviter=admin.member_id, token=True) for _ in range(3)]
    window = make_window()
    emails = shown(window, qtbot)
    window.select_rows([0, 2])
    assert window.revoke_button.isEnabled()

    window.revoke_button.click()

    chosen = {r.id for r in rows if r.email in (emails[0], emails[2])}
    for row in rows:
        expected = S.REVOKED.value if row.id in chosen else S.SENT.value
        assert stored(uow, row.id)["status"] == expected
        assert ("invitation.revoked" in audit_actions(uow, row.id)) == (row.id in chosen)
    assert window.banner.text == "2 invitations revoked."
    assert shown(window, qtbot) == [emails[1]]  # they left the Pending tab
    assert window.tabs.tabText(TAB_INDEX[Tab.REVOKED]) == "Revoked  2"


TAB_INDEX = {tab: i for i, tab in enumerate((Tab.PENDING, Tab.ACCEPTED, Tab.EXPIRED, Tab.FAILED,
                                             Tab.UNCERTAIN, Tab.REVOKED, Tab.ALL))}


def test_multi_select_resend_goes_through_the_sending_worker(
    qtbot: QtBot, make_window: MakeWindow, uow: UnitOfWork, admin: Operator, seeder: Seeder,
    smtp_server: LoopbackSmtpServer
) -> None:
    mail_settings.update_mail_settings(uow, admin, {
        "host": smtp_server.host, "port": smtp_server.port, "security": "none",
        "from_address": "invitations@rowing.example", "from_name": "Harbour Rowing Club",
        "rate_per_minute": 0})
    failed = seeder.add(S.FAILED, inviter=admin.member_id, email="bounce@example.org",
                        last_error="452 mailbox full")
    expired = seeder.add(S.EXPIRED, inviter=admin.member_id, email="late@example.org",
                         sent_days_ago=30, expires_in_days=-10, token=True)
    window = make_window()
    window.set_tab(Tab.ALL)
    assert len(shown(window, qtbot)) == 2
    window.select_rows([0, 1])
    assert window.resend_button.isEnabled()

    window.resend_button.click()
    qtbot.waitUntil(lambda: "Resend finished" in window.banner.text, timeout=20_000)

    assert window.banner.text == "Resend finished: 2 sent."
    assert smtp_server.recipient_counts() == {"bounce@example.org": 1, "late@example.org": 1}
    for row in (failed, expired):
        after = stored(uow, row.id)
        assert after["status"] == S.SENT.value and after["token_hash"] is not None
        actions = audit_actions(uow, row.id)
        assert actions[-2:] == ["invitation.resent", "invitation.sent"]
    assert stored(uow, failed.id)["batch_id"] == stored(uow, expired.id)["batch_id"]
    assert expired.token is not None and hash_token(expired.token) != stored(
        uow, expired.id)["token_hash"]  # the old link is dead
    body = smtp_server.messages[0].message.get_body(("plain",)).get_content()
    assert "/join/" in body


def test_extend_and_fresh_link_on_the_selection(
    qtbot: QtBot, make_window: MakeWindow, uow: UnitOfWork, admin: Operator, seeder: Seeder
) -> None:
    row = seeder.add(S.SENT, inviter=admin.member_id, expires_in_days=2, token=True)
    window = make_window()
    shown(window, qtbot)
    window.select_rows([0])

    window.extend_days.setValue(10)
    window.extend_button.click()
    assert stored(uow, row.id)["expires_at"] == NOW + timedelta(days=12)
    window.select_rows([0])
    window.link_button.click()

    [link] = window.last_links
    assert QGuiApplication.clipboard().text() == link
    assert open_link(uow, link.rsplit("/", 1)[1], now=NOW).state is LinkState.VALID
    assert row.token is not None
    assert open_link(uow, row.token, now=NOW).state is LinkState.SUPERSEDED
    assert "copied to the clipboard" in window.banner.text


def test_extend_is_disabled_without_the_right_to_send(
    qtbot: QtBot, make_window: MakeWindow, uow: UnitOfWork, admin: Operator, seeder: Seeder
) -> None:
    """Extending puts a working link in someone's hands: the window mirrors the service."""
    user = seeder.member("Uma", "User")
    seeder.add(S.SENT, inviter=user.member_id, token=True)
    settings.update_settings(uow, admin, {"who_can_send_user_invitation": Role.HR_LOCAL})
    window = make_window(user)
    window.set_tab(Tab.ALL)
    shown(window, qtbot)
    window.select_rows([0])
    assert not window.extend_button.isEnabled()
    assert "HR_LOCAL" in window.extend_button.toolTip()
    assert window.revoke_button.isEnabled()


def test_actions_are_disabled_with_the_role_they_need(
    qtbot: QtBot, make_window: MakeWindow, uow: UnitOfWork, admin: Operator, seeder: Seeder
) -> None:
    user = seeder.member("Uma", "User")
    seeder.add(S.FAILED, inviter=user.member_id)
    settings.update_settings(uow, admin, {"who_can_send_user_invitation": Role.HR_LOCAL})
    window = make_window(user)
    window.set_tab(Tab.ALL)
    shown(window, qtbot)
    window.select_rows([0])

    assert not window.resend_button.isEnabled()
    assert "HR_LOCAL" in window.resend_button.toolTip()
    assert not window.link_button.isEnabled()
    assert window.revoke_button.isEnabled()  # revoking their own invitation is theirs to do
    assert not window.extend_button.isEnabled()  # extending needs the right to send
    assert "HR_LOCAL" in window.extend_button.toolTip()
    window.table.clearSelection()
    assert window.revoke_button.toolTip() == "Select one or more invitations first."


def test_export_writes_the_current_view(
    qtbot: QtBot, make_window: MakeWindow, admin: Operator, seeder: Seeder, tmp_path: Path
) -> None:
    seeder.add(S.SENT, inviter=admin.member_id, email="b@example.org")
    seeder.add(S.SENT, inviter=admin.member_id, email="a@example.org")
    seeder.add(S.ACCEPTED, inviter=admin.member_id, email="c@example.org")
    window = make_window()
    window.table.sortByColumn(Column.INVITEE, Qt.SortOrder.AscendingOrder)
    target = tmp_path / "pending.csv"

    window.export_to(target)

    with target.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["email"] for r in rows] == ["a@example.org", "b@example.org"]
    assert {r["status"] for r in rows} == {"sent"}
    assert window.banner.text == f"Exported 2 invitations to {target}."


# ------------------------------------------------------------------------------ scope
@pytest.mark.parametrize(("role", "unit", "expected"), [
    (Role.USER, "north", {"mine@example.org"}),
    (Role.HR_LOCAL, "north", {"mine@example.org", "north@example.org"}),
    (Role.ADMIN_LOCAL, "south", {"south@example.org"}),
    (Role.HR_TENANT, None, {"mine@example.org", "north@example.org", "south@example.org"}),
])
def test_each_role_sees_its_scope_in_the_window(
    qtbot: QtBot, make_window: MakeWindow, seeder: Seeder, role: Role, unit: str | None,
    expected: set[str]
) -> None:
    units = {"north": seeder.unit("North"), "south": seeder.unit("South")}
    user = seeder.member("Uma", "User", unit_id=units["north"])
    other = seeder.member("Olaf", "Other", unit_id=units["south"])
    seeder.add(S.SENT, inviter=user.member_id, unit_id=units["north"], email="mine@example.org")
    seeder.add(S.SENT, inviter=other.member_id, unit_id=units["north"], email="north@example.org")
    seeder.add(S.SENT, inviter=other.member_id, unit_id=units["south"], email="south@example.org")
    operator = user if role is Role.USER else seeder.member(
        "Op", role.name.title(), role=role, unit_id=units[unit] if unit else None)
    window = make_window(operator)

    assert set(shown(window, qtbot)) == expected
    assert window.counts[Tab.ALL] == len(expected)
    assert window.unit_combo.count() == (1 if role is Role.USER else 2 if unit else 3)


# ------------------------------------------------------------------------------ expiry
def test_an_invitation_expiring_while_the_window_is_open_shows_expired_after_refresh(
    qtbot: QtBot, make_window: MakeWindow, uow: UnitOfWork, admin: Operator, seeder: Seeder,
    clock: Clock
) -> None:
    soon = seeder.add(S.SENT, inviter=admin.member_id, email="soon@example.org",
                      expires_in_days=1 / 24, token=True)
    seeder.add(S.SENT, inviter=admin.member_id, email="later@example.org")
    window = make_window()
    window.table.sortByColumn(Column.INVITEE, Qt.SortOrder.DescendingOrder)
    assert shown(window, qtbot) == ["soon@example.org", "later@example.org"]
    assert soon.token is not None
    assert open_link(uow, soon.token, now=clock()).state is LinkState.VALID

    clock.now += timedelta(hours=2)  # the hour passes; nothing has swept the database
    window.refresh()

    assert shown(window, qtbot) == ["later@example.org"]
    assert window.tabs.tabText(TAB_INDEX[Tab.EXPIRED]) == "Expired  1"
    window.set_tab(Tab.ALL)
    emails = shown(window, qtbot)
    assert cell(window, emails.index("soon@example.org"), Column.STATUS) == "Expired"
    assert stored(uow, soon.id)["status"] == S.SENT.value  # not recorded yet ...
    assert open_link(uow, soon.token, now=clock()).state is LinkState.EXPIRED  # ... but refused

    window.sweep()  # the periodic sweep records it
    assert stored(uow, soon.id)["status"] == S.EXPIRED.value
    assert audit_actions(uow, soon.id) == ["invitation.expired"]
    assert cell(window, emails.index("soon@example.org"), Column.STATUS) == "Expired"


def test_the_sweep_runs_on_a_timer(
    qtbot: QtBot, make_window: MakeWindow, uow: UnitOfWork, admin: Operator, seeder: Seeder
) -> None:
    row = seeder.add(S.SENT, inviter=admin.member_id, sent_days_ago=20, expires_in_days=-1)
    make_window(sweep_interval_ms=50)
    qtbot.waitUntil(lambda: stored(uow, row.id)["status"] == S.EXPIRED.value, timeout=5000)


# ------------------------------------------------------------------------------ detail pane
def test_the_detail_pane_shows_the_history_of_the_selected_invitation(
    qtbot: QtBot, make_window: MakeWindow, uow: UnitOfWork, admin: Operator, seeder: Seeder
) -> None:
    row = seeder.add(S.SENT, inviter=admin.member_id, email="grace@example.org",
                     name="Grace Hopper", message="See you at the boathouse!")
    seeder.add(S.SENT, inviter=admin.member_id)
    window = make_window()
    emails = shown(window, qtbot)
    window.select_rows([emails.index(row.email)])
    window.extend_days.setValue(3)
    window.extend_button.click()
    window.select_rows([shown(window, qtbot).index(row.email)])
    qtbot.waitUntil(lambda: window.detail.detail is not None, timeout=3000)

    pane = window.detail
    assert pane.email_label.text() == "grace@example.org"
    assert pane.fields["Inviter"].text() == "Ada Admin"
    assert "See you at the boathouse!" in pane.personal_message.text()
    history = pane.history_text()
    assert "Expiry extended" in history and "Ada Admin" in history
    window.select_rows([0, 1])
    qtbot.waitUntil(lambda: window.detail.detail is None, timeout=3000)
    assert pane.message_label.text() == "2 invitations selected."


def test_a_window_with_nothing_to_show_says_so(
    qtbot: QtBot, make_window: MakeWindow, uow: UnitOfWork
) -> None:
    window = make_window()
    assert window.model.rowCount() == 0
    assert window.summary_label.text() == "0 invitations"
    assert not window.export_button.isEnabled()
    with uow:
        assert uow.session.scalar(select(func.count()).select_from(Invitation)) == 0
    assert window.table.indexAt(QPoint(5, 5)).isValid() is False


# ------------------------------------------------------------------ issue 8: confirm, undo


def test_revoke_asks_first_and_cancel_revokes_nothing(
    qtbot: QtBot, make_window: MakeWindow, uow: UnitOfWork, admin: Operator, seeder: Seeder,
    confirmations: Confirmations,
) -> None:
    batch = seeder.batch(admin.member_id, "Spring drive")
    rows = [seeder.add(S.SENT, inviter=admin.member_id, token=True, batch_id=batch)
            for _ in range(7)]
    window = make_window()
    shown(window, qtbot)
    window.select_rows(list(range(7)))
    confirmations.answer = False

    window.revoke_button.click()

    [asked] = confirmations.asked
    assert asked["text"] == "Revoke 7 invitations?" and asked["action"] == "Revoke 7 invitations"
    assert asked["informative"].startswith("To: ") and "and 2 more" in asked["informative"]
    assert "Batch: Spring drive" in asked["informative"]
    assert all(stored(uow, row.id)["status"] == S.SENT.value for row in rows)
    assert window.banner.text == ""


def test_resend_asks_first_and_cancel_sends_nothing(
    qtbot: QtBot, make_window: MakeWindow, uow: UnitOfWork, admin: Operator, seeder: Seeder,
    smtp_server: LoopbackSmtpServer, confirmations: Confirmations,
) -> None:
    mail_settings.update_mail_settings(uow, admin, {
        "host": smtp_server.host, "port": smtp_server.port, "security": "none",
        "from_address": "invitations@rowing.example", "rate_per_minute": 0})
    failed = seeder.add(S.FAILED, inviter=admin.member_id, email="bounce@example.org",
                        last_error="452 mailbox full")
    window = make_window()
    window.set_tab(Tab.ALL)
    shown(window, qtbot)
    window.select_rows([0])
    confirmations.answer = False

    window.resend_button.click()

    [asked] = confirmations.asked
    assert asked["text"] == "Resend 1 invitation?"
    assert "To: bounce@example.org" in asked["informative"]
    assert stored(uow, failed.id)["status"] == S.FAILED.value
    assert smtp_server.messages == [] and not window.sending


def test_undo_after_revoke_restores_each_revoked_invitation(
    qtbot: QtBot, make_window: MakeWindow, uow: UnitOfWork, admin: Operator, seeder: Seeder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The window's side, with a stand-in for the service (whatever it is called with)."""
    restored: list[uuid.UUID] = []

    def restore(uow_: UnitOfWork, operator: Operator, invitation_id: uuid.UUID) -> None:
        if len(restored) == 1:
            restored.append(invitation_id)
            raise DomainError("The link was already used: this invitation stays revoked.")
        restored.append(invitation_id)

    monkeypatch.setattr(invitations_module, "_restore_revoked", restore)
    rows = [seeder.add(S.SENT, inviter=admin.member_id, token=True) for _ in range(3)]
    window = make_window()
    shown(window, qtbot)
    window.select_rows([0, 1, 2])
    window.revoke_button.click()
    assert window.banner.text == "3 invitations revoked."
    assert window.banner.button.isVisibleTo(window) and window.banner.button.text() == "Undo"

    window.banner.button.click()

    assert sorted(restored) == sorted(row.id for row in rows)
    assert window.banner.text.startswith("Revoke undone: 2 invitations restored. 1 was not: "
                                         "The link was already used")
    assert not window.banner.button.isVisibleTo(window) and not window.can_undo


def test_undo_is_offered_for_a_limited_time(
    qtbot: QtBot, make_window: MakeWindow, admin: Operator, seeder: Seeder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(invitations_module, "_restore_revoked", lambda *args: None)
    seeder.add(S.SENT, inviter=admin.member_id, token=True)
    window = make_window()
    shown(window, qtbot)
    window.select_rows([0])
    window.revoke_button.click()
    assert window.can_undo and window._undo_timer.isActive()
    assert window._undo_timer.interval() == invitations_module.UNDO_SECONDS * 1000
    window._undo_timer.setInterval(50)
    window._undo_timer.start()
    qtbot.waitUntil(lambda: not window.can_undo, timeout=2000)
    assert window.banner.text == "1 invitation revoked."
    assert not window.banner.button.isVisibleTo(window)


def test_without_the_restore_service_there_is_no_undo_button(
    qtbot: QtBot, make_window: MakeWindow, admin: Operator, seeder: Seeder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(invitations_module, "_restore_revoked", None)
    seeder.add(S.SENT, inviter=admin.member_id, token=True)
    window = make_window()
    shown(window, qtbot)
    window.select_rows([0])
    window.revoke_button.click()
    assert window.banner.text == "1 invitation revoked."
    assert not window.banner.button.isVisibleTo(window) and not window.can_undo


def test_undo_with_the_real_service_makes_the_link_work_again(
    qtbot: QtBot, make_window: MakeWindow, uow: UnitOfWork, admin: Operator, seeder: Seeder,
) -> None:
    # The service reads the real clock: a link valid well beyond it.
    row = seeder.add(S.SENT, inviter=admin.member_id, token=True, expires_in_days=3650)
    window = make_window()
    shown(window, qtbot)
    window.select_rows([0])
    window.revoke_button.click()
    assert stored(uow, row.id)["status"] == S.REVOKED.value
    assert row.token is not None
    assert open_link(uow, row.token, now=NOW).state is LinkState.REVOKED
    window.banner.button.click()
    assert stored(uow, row.id)["status"] != S.REVOKED.value
    assert window.banner.text.startswith("Revoke undone: 1 invitation restored.")
    assert open_link(uow, row.token, now=NOW).state is LinkState.VALID


def test_a_banner_appearing_does_not_move_the_action_buttons(
    qtbot: QtBot, make_window: MakeWindow, admin: Operator, seeder: Seeder
) -> None:
    seeder.add(S.SENT, inviter=admin.member_id, token=True)
    window = make_window()
    window.show()
    shown(window, qtbot)
    buttons = (window.revoke_button, window.resend_button, window.extend_button)
    before = [b.mapTo(window, b.rect().topLeft()) for b in buttons]
    window.banner.show_message("A long message that wraps. " * 10, "warning",
                               action=("Undo", lambda: None))
    qtbot.wait(10)
    assert [b.mapTo(window, b.rect().topLeft()) for b in buttons] == before
    window.banner.clear_message()
    qtbot.wait(10)
    assert [b.mapTo(window, b.rect().topLeft()) for b in buttons] == before


def test_a_resend_needing_a_setting_offers_to_open_its_page(
    qtbot: QtBot, make_window: MakeWindow, uow: UnitOfWork, admin: Operator, seeder: Seeder,
    smtp_server: LoopbackSmtpServer, monkeypatch: pytest.MonkeyPatch,
) -> None:
    def incomplete(*args: object, **kwargs: object) -> None:
        raise SettingsIncomplete("Set the registration web address first.",
                                 settings_page="organization")

    monkeypatch.setattr(invitations_module, "resend_invitations", incomplete)
    mail_settings.update_mail_settings(uow, admin, {
        "host": smtp_server.host, "port": smtp_server.port, "security": "none",
        "from_address": "invitations@rowing.example", "rate_per_minute": 0})
    seeder.add(S.FAILED, inviter=admin.member_id, last_error="452 mailbox full")
    window = make_window()
    window.set_tab(Tab.ALL)
    shown(window, qtbot)
    window.select_rows([0])
    window.resend_button.click()
    assert "registration web address" in window.banner.text
    assert window.banner.button.text() == "Open settings"
    with qtbot.waitSignal(window.settings_requested) as requested:
        window.banner.button.click()
    assert requested.args == ["organization"]
