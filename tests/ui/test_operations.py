"""One owner for background work (issue 9), through the real main window and a loopback SMTP
server: quitting during a resend from Invitations asks and ends the send thread; a batch sent
from Compose shows in Invitations and Members without a refresh; two pages asking to send
open one SMTP connection."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import shiboken6
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QMessageBox, QWidget
from pytestqt.qtbot import QtBot
from sqlalchemy import select
from sqlalchemy.engine import Engine

from invite_desk.app import AppContext
from invite_desk.services import mail_settings
from invite_desk.services.credentials import MemoryCredentialStore
from invite_desk.services.models import Invitation
from invite_desk.services.operator import Operator
from invite_desk.services.tracking import Tab
from invite_desk.services.tracking.actions import RowAction
from invite_desk.services.uow import UnitOfWork
from invite_desk.ui.compose.window import ComposeWindow, InputMode
from invite_desk.ui.invitations import InvitationsWindow
from invite_desk.ui.invitations.layout import TAB_ORDER
from invite_desk.ui.main_window import MainWindow
from invite_desk.ui.members.window import MembersWindow
from tests.smtp_server import LoopbackSmtpServer
from tests.tracking_data import S, Seeder

WAIT_MS = 15_000


def settings_stub(uow: UnitOfWork, operator: Operator, parent: QWidget | None = None) -> QWidget:
    return QLabel("settings", parent)


@pytest.fixture
def context(engine: Engine, uow: UnitOfWork) -> AppContext:
    return AppContext(engine=engine, uow=uow, credentials=MemoryCredentialStore(),
                      database_label="test")


@pytest.fixture
def open_window(qtbot: QtBot, context: AppContext, admin: Operator,
                answers: list[str]) -> Iterator[Callable[[], MainWindow]]:
    """(The quit question is answered Yes unless a test says otherwise: pytest-qt closes
    the window before this fixture's own clean-up.)"""
    windows: list[MainWindow] = []

    def open_() -> MainWindow:
        window = MainWindow(context, admin, settings_stub, remember_geometry=False)
        qtbot.addWidget(window)
        window.show()
        windows.append(window)
        return window

    yield open_
    for window in windows:  # never leave a sending thread behind
        if shiboken6.isValid(window):
            assert window.finish_background_work(30_000)


@pytest.fixture
def answers(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records every question the window asks and answers Yes."""
    asked: list[str] = []

    def question(parent: object, title: str, text: str, *args: Any) -> QMessageBox.StandardButton:
        asked.append(f"{title}: {text}")
        return QMessageBox.StandardButton.Yes

    monkeypatch.setattr(QMessageBox, "question", question)
    return asked


def configure_smtp(uow: UnitOfWork, admin: Operator, server: LoopbackSmtpServer,
                   rate_per_minute: int = 0) -> None:
    mail_settings.update_mail_settings(uow, admin, {
        "host": server.host, "port": server.port, "security": "none",
        "from_address": "invitations@rowing.example", "from_name": "Harbour Rowing Club",
        "rate_per_minute": rate_per_minute})


def statuses(uow: UnitOfWork) -> dict[str, str]:
    with uow:
        return {i.email: i.status for i in uow.session.scalars(select(Invitation))}


def select_all_rows(qtbot: QtBot, page: InvitationsWindow, count: int) -> None:
    page.set_tab(Tab.ALL)
    model = page.model
    qtbot.waitUntil(lambda: model.rowCount() == count and all(
        model.row_at(r) is not None for r in range(count)), timeout=WAIT_MS)
    page.select_rows(list(range(count)))


def compose_and_send(qtbot: QtBot, compose: ComposeWindow, addresses: list[str]) -> None:
    compose.set_input_mode(InputMode.PASTE)
    compose.paste_edit.setPlainText("\n".join(addresses))
    compose.check_button.click()
    qtbot.waitUntil(compose.send_button.isEnabled, timeout=WAIT_MS)
    compose.send_button.click()


def test_quitting_during_a_resend_from_invitations_asks_and_ends_the_send_thread(
    qtbot: QtBot, open_window: Callable[[], MainWindow], uow: UnitOfWork, admin: Operator,
    smtp_server: LoopbackSmtpServer, answers: list[str],
) -> None:
    # One a minute: the first goes at once, the next waits a minute for the rate.
    configure_smtp(uow, admin, smtp_server, rate_per_minute=1)
    seeder = Seeder(uow, admin.organization_id)
    emails = ["one@example.org", "two@example.org", "three@example.org"]
    for email in emails:
        seeder.add(S.FAILED, inviter=admin.member_id, email=email, last_error="452 full")
    window = open_window()
    assert window.show_page("invitations")
    page = window.pages["invitations"]
    assert isinstance(page, InvitationsWindow)
    select_all_rows(qtbot, page, 3)

    assert page.resend_button.isEnabled(), page.resend_button.toolTip()
    page.resend_button.click()
    qtbot.waitUntil(lambda: len(smtp_server.messages) == 1, timeout=WAIT_MS)
    assert window.outbox.running and page.sending
    job = window.outbox._job
    assert job is not None
    thread = job.qthread
    ended: list[bool] = []
    thread.finished.connect(lambda: ended.append(True), Qt.ConnectionType.DirectConnection)
    window.show_page("members")  # the send goes on while another page is shown

    window.close()

    assert len(answers) == 1 and answers[0].startswith("Invitations are being sent")
    assert "started from Invitations" in answers[0]
    assert not window.isVisible()
    # The close returned only after the send thread ended: nothing runs behind the user.
    assert ended == [True]
    assert not shiboken6.isValid(thread) or thread.isFinished()  # joined, then released
    assert not window.outbox.running and window.hub.in_flight == 0
    qtbot.wait(200)
    assert len(smtp_server.messages) == 1
    left = statuses(uow)
    assert sorted(left.values()).count("queued") == 2, left  # the rest waits, nothing lost
    assert "Resend finished" in page.banner.text  # the page heard how its send ended


def test_answering_cancel_to_the_quit_question_keeps_the_window_and_the_send(
    qtbot: QtBot, open_window: Callable[[], MainWindow], uow: UnitOfWork, admin: Operator,
    smtp_server: LoopbackSmtpServer, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """'Cancel' on the question keeps the window and the send."""
    configure_smtp(uow, admin, smtp_server, rate_per_minute=1)
    seeder = Seeder(uow, admin.organization_id)
    for email in ("a@example.org", "b@example.org"):
        seeder.add(S.FAILED, inviter=admin.member_id, email=email, last_error="452 full")
    monkeypatch.setattr(QMessageBox, "question",
                        lambda *_a: QMessageBox.StandardButton.Cancel)
    window = open_window()
    window.show_page("invitations")
    page = window.pages["invitations"]
    assert isinstance(page, InvitationsWindow)
    select_all_rows(qtbot, page, 2)
    page.resend_button.click()
    qtbot.waitUntil(lambda: len(smtp_server.messages) == 1, timeout=WAIT_MS)

    window.close()

    assert window.isVisible() and window.outbox.running


def test_a_batch_sent_from_compose_shows_in_invitations_and_members_without_a_refresh(
    qtbot: QtBot, open_window: Callable[[], MainWindow], uow: UnitOfWork, admin: Operator,
    smtp_server: LoopbackSmtpServer,
) -> None:
    configure_smtp(uow, admin, smtp_server)
    window = open_window()
    invitations = window.pages["invitations"]
    members = window.pages["members"]
    compose = window.pages["compose"]
    assert isinstance(invitations, InvitationsWindow)
    assert isinstance(members, MembersWindow) and isinstance(compose, ComposeWindow)
    # Both views are open and have read once: nothing yet.
    window.show_page("invitations")
    qtbot.waitUntil(lambda: invitations.model.has_opened and bool(invitations.counts),
                    timeout=WAIT_MS)
    assert invitations.counts.get(Tab.ALL, 0) == 0
    window.show_page("members")
    members.set_search(admin.email)
    qtbot.waitUntil(lambda: members.page.activity is not None, timeout=WAIT_MS)
    assert members.page.invitations_label.text().startswith("0 invitations")

    window.show_page("compose")
    addresses = ["ann@example.org", "bob@example.org", "cy@example.org"]
    with qtbot.waitSignal(compose.sending_finished, timeout=WAIT_MS):
        compose_and_send(qtbot, compose, addresses)
    assert smtp_server.recipient_counts() == {a: 1 for a in addresses}

    # No refresh anywhere: the outbox's broadcast marked both views stale; showing reads.
    window.show_page("invitations")
    qtbot.waitUntil(lambda: invitations.counts.get(Tab.ALL) == 3, timeout=WAIT_MS)
    assert invitations.tabs.tabText(TAB_ORDER.index(Tab.ALL)).endswith("3")
    window.show_page("members")
    qtbot.waitUntil(lambda: members.page.activity is not None
                    and members.page.invitations_label.text().startswith("3 invitations"),
                    timeout=WAIT_MS)


def test_a_visible_view_follows_a_change_made_elsewhere_at_once(
    qtbot: QtBot, open_window: Callable[[], MainWindow], uow: UnitOfWork, admin: Operator,
) -> None:
    window = open_window()
    invitations = window.pages["invitations"]
    assert isinstance(invitations, InvitationsWindow)
    window.show_page("invitations")
    qtbot.waitUntil(lambda: invitations.model.has_opened and bool(invitations.counts),
                    timeout=WAIT_MS)
    Seeder(uow, admin.organization_id).add(S.FAILED, inviter=admin.member_id,
                                           email="new@example.org")
    window.hub.broadcast({"invitations"}, origin="test")
    qtbot.waitUntil(lambda: invitations.counts.get(Tab.ALL) == 1, timeout=WAIT_MS)


def test_two_pages_asking_to_send_open_one_smtp_connection(
    qtbot: QtBot, open_window: Callable[[], MainWindow], uow: UnitOfWork, admin: Operator,
    smtp_server: LoopbackSmtpServer,
) -> None:
    configure_smtp(uow, admin, smtp_server, rate_per_minute=1)
    seeder = Seeder(uow, admin.organization_id)
    for email in ("old1@example.org", "old2@example.org"):
        seeder.add(S.FAILED, inviter=admin.member_id, email=email, last_error="452 full")
    window = open_window()
    compose = window.pages["compose"]
    invitations = window.pages["invitations"]
    assert isinstance(compose, ComposeWindow) and isinstance(invitations, InvitationsWindow)
    window.show_page("invitations")
    select_all_rows(qtbot, invitations, 2)

    window.show_page("compose")
    compose_and_send(qtbot, compose, ["new1@example.org", "new2@example.org",
                                      "new3@example.org"])
    qtbot.waitUntil(lambda: len(smtp_server.messages) == 1, timeout=WAIT_MS)
    assert compose.sending

    # Invitations asks while Compose sends: refused, said so, nothing re-queued.
    window.show_page("invitations")
    enabled, tip = invitations.action_state(RowAction.RESEND)
    assert not enabled and "Another send is running (started from Compose)" in tip
    invitations.resend_selected()
    assert "Another send is running (started from Compose)" in invitations.banner.text
    assert not invitations.sending
    assert statuses(uow)["old1@example.org"] == "failed"
    # And straight at the outbox: a second send does not start.
    refusal = window.outbox.send(None, None, requester="invitations")
    assert refusal is not None and refusal.requester == "compose"

    assert smtp_server.connections == 1
    compose.cancel_sending()
    qtbot.waitUntil(lambda: not window.outbox.running, timeout=WAIT_MS)
    assert smtp_server.connections == 1

    # Idle again: now Invitations may send, over a connection of its own.
    invitations.resend_selected()
    qtbot.waitUntil(lambda: "Resend finished" in invitations.banner.text
                    or "Resending" in invitations.banner.text, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: smtp_server.connections == 2, timeout=WAIT_MS)
    assert window.finish_background_work(30_000)


def test_compose_is_refused_while_invitations_resends_and_nothing_is_queued(
    qtbot: QtBot, open_window: Callable[[], MainWindow], uow: UnitOfWork, admin: Operator,
    smtp_server: LoopbackSmtpServer,
) -> None:
    configure_smtp(uow, admin, smtp_server, rate_per_minute=1)
    seeder = Seeder(uow, admin.organization_id)
    for email in ("old1@example.org", "old2@example.org"):
        seeder.add(S.FAILED, inviter=admin.member_id, email=email, last_error="452 full")
    window = open_window()
    compose = window.pages["compose"]
    invitations = window.pages["invitations"]
    assert isinstance(compose, ComposeWindow) and isinstance(invitations, InvitationsWindow)
    window.show_page("compose")
    qtbot.waitUntil(lambda: compose.loaded, timeout=WAIT_MS)  # read in the background
    compose.set_input_mode(InputMode.PASTE)
    compose.paste_edit.setPlainText("new@example.org")
    compose.check_button.click()
    qtbot.waitUntil(compose.send_button.isEnabled, timeout=WAIT_MS)

    window.show_page("invitations")
    select_all_rows(qtbot, invitations, 2)
    invitations.resend_button.click()
    qtbot.waitUntil(lambda: len(smtp_server.messages) == 1, timeout=WAIT_MS)

    window.show_page("compose")
    assert not compose.send_button.isEnabled()
    assert "started from Invitations" in compose.send_button.toolTip()
    compose.send()
    assert "Another send is running (started from Invitations)" in compose.message_banner.text
    assert "new@example.org" not in statuses(uow)  # refused before anything was queued
    assert smtp_server.connections == 1 and not compose.sending
