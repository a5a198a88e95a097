"""The main window: who is signed in, mirrored permissions, navigation, settings, geometry."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, QSize, Qt, QTimer, Signal
from PySide6.QtWidgets import QApplication, QLabel, QMessageBox, QWidget
from pytestqt.qtbot import QtBot
from sqlalchemy import Engine

from invite_desk.app import AppContext
from invite_desk.services import settings
from invite_desk.services.credentials import MemoryCredentialStore
from invite_desk.services.operator import Operator
from invite_desk.services.roles import Role
from invite_desk.services.uow import UnitOfWork
from invite_desk.ui import main_window as main_window_module
from invite_desk.ui.applications import ApplicationsPage
from invite_desk.ui.main import run_gui
from invite_desk.ui.main_window import MainWindow, SettingsFactory
from invite_desk.ui.placeholder import PlaceholderPage
from invite_desk.ui.setup_dialog import SetupDialog
from invite_desk.ui.sign_in_dialog import SignInDialog
from tests.conftest import MakeOperator, MakeUnit

DATABASE_LABEL = "postgresql+psycopg://ada@db.example.org/invites"


@pytest.fixture
def context(engine: Engine, uow: UnitOfWork) -> AppContext:
    return AppContext(engine=engine, uow=uow, credentials=MemoryCredentialStore(),
                      database_label=DATABASE_LABEL)


class FakeSettingsPanel(QLabel):
    settings_saved = Signal()

    def __init__(self, uow: UnitOfWork, operator: Operator, parent: QWidget | None = None) -> None:
        super().__init__(f"settings for {operator.name}", parent)
        self.unsaved = False

    def has_unsaved_changes(self) -> bool:
        return self.unsaved


OpenWindow = Callable[..., MainWindow]


@pytest.fixture
def open_window(qtbot: QtBot, context: AppContext) -> OpenWindow:
    def open_(operator: Operator, factory: SettingsFactory | None = FakeSettingsPanel,
              **kwargs: object) -> MainWindow:
        window = MainWindow(context, operator, factory, **kwargs)  # type: ignore[arg-type]
        qtbot.addWidget(window)
        window.show()
        return window

    return open_


def status(window: MainWindow) -> dict[str, str]:
    return {key: label.text() for key, label in window.status_labels.items()}


def click_nav(qtbot: QtBot, window: MainWindow, key: str) -> None:
    index = window.nav_model.index(window.page_keys().index(key), 0)
    rect = window.nav_view.visualRect(index)
    qtbot.mouseClick(window.nav_view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())


def test_status_bar_names_the_admin_role_unit_and_database(
    open_window: OpenWindow, admin: Operator
) -> None:
    window = open_window(admin)
    assert status(window) == {
        "operator": "Signed in as Ada Admin",
        "role": "Organization admin (ADMIN_TENANT)",
        "unit": "Unit: whole organization",
        "database": f"Database: {DATABASE_LABEL}",
    }
    assert all(label.isVisible() for label in window.status_labels.values())
    assert window.organization_label.text() == "Harbour Rowing Club"
    assert window.windowTitle() == "Harbour Rowing Club · Invite Desk"


def test_status_bar_of_a_local_operator_names_their_unit(
    open_window: OpenWindow, make_unit: MakeUnit, make_operator: MakeOperator
) -> None:
    riverside = make_unit("Riverside")
    hr = make_operator(Role.HR_LOCAL, riverside)
    window = open_window(hr)
    assert status(window)["role"] == "Local HR (HR_LOCAL)"
    assert status(window)["unit"] == "Unit: Riverside"
    assert status(window)["operator"] == f"Signed in as {hr.name}"


def test_compose_is_disabled_for_a_member_when_only_hr_local_may_send(
    qtbot: QtBot, open_window: OpenWindow, uow: UnitOfWork, admin: Operator,
    make_operator: MakeOperator,
) -> None:
    settings.update_settings(uow, admin, {"who_can_send_user_invitation": Role.HR_LOCAL})
    member = make_operator(Role.USER)
    window = open_window(member)

    assert not window.is_page_enabled("compose")
    assert "HR_LOCAL" in window.page_tooltip("compose")
    assert "Member (USER)" in window.page_tooltip("compose")
    assert window.compose_note.isVisible()
    assert "HR_LOCAL" in window.compose_note.text()
    assert not window.page_actions["compose"].isEnabled()
    assert window.current_page_key() == "invitations"  # the first page they may open

    click_nav(qtbot, window, "compose")
    assert window.current_page_key() == "invitations"
    assert window.current_page() is window.pages["invitations"]
    assert window.show_page("compose") is False
    assert "HR_LOCAL" in window.statusBar().currentMessage()


def test_compose_is_enabled_for_an_admin(open_window: OpenWindow, uow: UnitOfWork,
                                         admin: Operator) -> None:
    settings.update_settings(uow, admin, {"who_can_send_user_invitation": Role.HR_LOCAL})
    window = open_window(admin)
    assert window.is_page_enabled("compose")
    assert window.page_actions["compose"].isEnabled()
    assert not window.compose_note.isVisible()
    assert window.current_page_key() == "compose"
    from invite_desk.ui.compose.window import ComposeWindow

    page = window.pages["compose"]
    assert isinstance(page, ComposeWindow)
    assert page.isEnabled()


def test_compose_is_disabled_for_everyone_when_invitations_are_off(
    open_window: OpenWindow, uow: UnitOfWork, admin: Operator
) -> None:
    settings.update_settings(uow, admin, {"has_user_invitation": False})
    window = open_window(admin)
    assert not window.is_page_enabled("compose")
    assert "turned off" in window.page_tooltip("compose")
    assert "role" not in window.page_tooltip("compose")  # the admin's role is not the problem


def test_saving_settings_refreshes_what_the_window_mirrors(
    qtbot: QtBot, open_window: OpenWindow, uow: UnitOfWork, admin: Operator
) -> None:
    window = open_window(admin)
    assert window.is_page_enabled("compose")
    settings.update_settings(uow, admin, {"has_user_invitation": False})
    panel = window.pages["settings"]
    assert isinstance(panel, FakeSettingsPanel)
    panel.settings_saved.emit()  # re-read in the background
    qtbot.waitUntil(lambda: not window.is_page_enabled("compose"), timeout=10_000)
    assert window.current_page_key() != "compose"


def test_clicking_the_navigation_switches_pages(
    qtbot: QtBot, open_window: OpenWindow, admin: Operator
) -> None:
    window = open_window(admin)
    from invite_desk.ui.invitations import InvitationsWindow
    from invite_desk.ui.members.window import MembersWindow

    for key, page_type in (("invitations", InvitationsWindow), ("members", MembersWindow)):
        click_nav(qtbot, window, key)
        assert window.current_page() is window.pages[key]
        assert isinstance(window.pages[key], page_type) and window.pages[key].isVisible()
    click_nav(qtbot, window, "referrals")
    from invite_desk.ui.referrals import ReferralsPage

    referrals = window.pages["referrals"]
    assert isinstance(referrals, ReferralsPage) and referrals.isVisible()
    assert referrals.hub is window.hub  # the app's one hub, not a page's own
    qtbot.waitUntil(lambda: referrals.idle and referrals.leaderboard is not None)
    click_nav(qtbot, window, "applications")
    applications = window.pages["applications"]
    assert isinstance(applications, ApplicationsPage)
    assert window.current_page_key() == "applications"
    assert applications.isVisible()
    assert applications.title_label.text() == "Membership applications"
    qtbot.waitUntil(lambda: applications.loaded)  # its first read, on its own thread pool
    assert applications.empty_title.text() == "No applications waiting"
    click_nav(qtbot, window, "settings")
    assert window.stack.currentWidget().text() == "settings for Ada Admin"  # type: ignore[attr-defined]


def test_ctrl_number_shortcuts_switch_pages(
    qtbot: QtBot, open_window: OpenWindow, admin: Operator
) -> None:
    window = open_window(admin)
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow)
    for number, key in enumerate(window.page_keys(), start=1):
        assert window.page_actions[key].shortcut().toString() == f"Ctrl+{number}"
    qtbot.keyClick(window, Qt.Key.Key_4, Qt.KeyboardModifier.ControlModifier)
    assert window.current_page_key() == "members"
    qtbot.keyClick(window, Qt.Key.Key_6, Qt.KeyboardModifier.ControlModifier)
    assert window.current_page_key() == "settings"
    qtbot.keyClick(window, Qt.Key.Key_1, Qt.KeyboardModifier.ControlModifier)
    assert window.current_page_key() == "compose"


def test_settings_page_embeds_the_settings_panel(
    open_window: OpenWindow, admin: Operator
) -> None:
    pytest.importorskip("invite_desk.ui.settings.window")
    from invite_desk.ui.settings.window import SettingsWindow

    window = open_window(admin, None)
    window.show_page("settings")
    assert isinstance(window.pages["settings"], SettingsWindow)
    assert window.stack.currentWidget() is window.pages["settings"]


def test_settings_page_falls_back_to_a_placeholder_without_the_panel(
    open_window: OpenWindow, admin: Operator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(main_window_module, "default_settings_factory", lambda: None)
    window = open_window(admin, None)
    page = window.pages["settings"]
    assert isinstance(page, PlaceholderPage)
    assert "Not built yet" in page.visible_text()


def test_sign_out_closes_the_window_and_says_so(
    qtbot: QtBot, open_window: OpenWindow, admin: Operator
) -> None:
    window = open_window(admin)
    with qtbot.waitSignals([window.signed_out, window.closed], order="strict"):
        qtbot.mouseClick(window.sign_out_button, Qt.MouseButton.LeftButton)
    assert window.was_signed_out
    assert not window.isVisible()


def test_quit_closes_without_signing_out(
    qtbot: QtBot, open_window: OpenWindow, admin: Operator
) -> None:
    window = open_window(admin)
    with qtbot.waitSignal(window.closed):
        window.quit_action.trigger()
    assert not window.was_signed_out


@pytest.mark.parametrize("leave", ["sign out", "quit"])
def test_unsaved_settings_are_not_dropped_without_asking(
    qtbot: QtBot, open_window: OpenWindow, admin: Operator, monkeypatch: pytest.MonkeyPatch,
    leave: str,
) -> None:
    window = open_window(admin)
    panel = window.pages["settings"]
    assert isinstance(panel, FakeSettingsPanel)
    panel.unsaved = True
    questions: list[str] = []
    answer = QMessageBox.StandardButton.Cancel

    def ask(parent: QWidget, title: str, text: str, *args: object) -> QMessageBox.StandardButton:
        questions.append(text)
        return answer

    monkeypatch.setattr(QMessageBox, "question", ask)
    act = window.sign_out if leave == "sign out" else window.quit_action.trigger
    act()
    assert window.isVisible()  # Cancel keeps the window and the edits
    assert not window.was_signed_out
    assert window.current_page_key() == "settings"  # showing what is unsaved
    assert "not saved" in questions[0]

    answer = QMessageBox.StandardButton.Discard
    with qtbot.waitSignal(window.closed):
        act()
    assert not window.isVisible()
    assert window.was_signed_out == (leave == "sign out")
    assert len(questions) == 2


def test_default_size_and_geometry_is_remembered_in_the_config_dir(
    qtbot: QtBot, open_window: OpenWindow, admin: Operator
) -> None:
    window = open_window(admin)
    assert window.size() == QSize(1200, 780).boundedTo(window.screen().availableSize())
    # Within the offscreen screen (800x600), so nothing is clamped, and no smaller than the
    # window may be (what that is depends on the fonts and the pages' contents).
    wanted = QSize(700, 500).expandedTo(window.minimumSizeHint())
    window.resize(wanted)
    window.move(QPoint(20, 10))
    window.close()

    state = Path(os.environ["INVITE_DESK_CONFIG_DIR"]) / "window-state.ini"
    assert state.is_file()
    again = open_window(admin)
    assert again.size() == wanted


def test_geometry_is_not_written_when_not_remembered(
    open_window: OpenWindow, admin: Operator
) -> None:
    window = open_window(admin, remember_geometry=False)
    window.close()
    assert not (Path(os.environ["INVITE_DESK_CONFIG_DIR"]) / "window-state.ini").exists()


@pytest.fixture
def restore_app(qapp: QApplication, free_left_behind: Callable[[], None]) -> Iterator[None]:
    """run_gui themes the shared QApplication and changes when it quits; undo that (after
    freeing the windows it left, which the new look would restyle: seconds)."""
    saved = (qapp.style().name(), qapp.styleSheet(), qapp.palette(), qapp.font(),
             qapp.quitOnLastWindowClosed())
    yield
    free_left_behind()
    style, sheet, palette, font, quit_on_close = saved
    qapp.setStyleSheet(sheet)
    qapp.setStyle(style)
    qapp.setPalette(palette)
    qapp.setFont(font)
    qapp.setQuitOnLastWindowClosed(quit_on_close)


@pytest.mark.usefixtures("restore_app")
def test_run_gui_goes_from_setup_to_main_window_to_sign_in_and_quits(
    qapp: QApplication, context: AppContext
) -> None:
    """The whole session as a person drives it: first-run setup, the main window, Sign out,
    the sign-in dialog (email remembered), the main window again, Quit."""
    steps: list[str] = []

    def drive() -> None:
        for widget in QApplication.topLevelWidgets():
            if not widget.isVisible():
                continue
            if isinstance(widget, SetupDialog) and not steps:
                steps.append("setup")
                widget.organization_name_edit.setText("Harbour Rowing Club")
                widget.first_name_edit.setText("Ada")
                widget.email_edit.setText("ada@harbour.example")
                widget.password_edit.setText("correct horse battery")
                widget.confirm_edit.setText("correct horse battery")
                widget.create_button.click()
            elif isinstance(widget, MainWindow) and steps == ["setup"]:
                steps.append(f"main as {widget.operator.role.name}")
                widget.sign_out_button.click()
            elif isinstance(widget, SignInDialog) and len(steps) == 2:
                steps.append(f"sign in as {widget.email_edit.text()}")
                widget.password_edit.setText("correct horse battery")
                widget.sign_in_button.click()
            elif isinstance(widget, MainWindow) and len(steps) == 3:
                steps.append("quit")
                widget.quit_action.trigger()
            elif time.monotonic() > deadline:  # never hang the test run
                widget.close()

    deadline = time.monotonic() + 60
    driver = QTimer()
    driver.setInterval(50)
    driver.timeout.connect(drive)
    driver.start()
    try:
        assert run_gui(context) == 0
    finally:
        driver.stop()
    assert steps == ["setup", "main as ADMIN_TENANT", "sign in as ada@harbour.example", "quit"]
