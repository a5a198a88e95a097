"""The main window's administration entries: Units & events and Audit log, enabled for the
roles that may use them (disabled, with the reason, for the others), and History links that
open the audit log filtered to one object."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pytestqt.qtbot import QtBot
from sqlalchemy import Engine

from invite_desk.app import AppContext
from invite_desk.services import settings
from invite_desk.services.admin import people
from invite_desk.services.credentials import MemoryCredentialStore
from invite_desk.services.operator import Operator
from invite_desk.services.roles import Role
from invite_desk.services.uow import UnitOfWork
from invite_desk.ui.admin import AuditLogWindow, UnitsEventsPage
from invite_desk.ui.main_window import MainWindow
from invite_desk.ui.widgets import tooltip_text
from tests.conftest import MakeOperator, MakeUnit


@pytest.fixture
def context(engine: Engine, uow: UnitOfWork) -> AppContext:
    return AppContext(engine=engine, uow=uow, credentials=MemoryCredentialStore(),
                      database_label="test")


@pytest.fixture
def windows(qtbot: QtBot, context: AppContext) -> Iterator[list[MainWindow]]:
    made: list[MainWindow] = []
    yield made
    for window in made:
        window.finish_background_work(10_000)


def _open(qtbot: QtBot, context: AppContext, operator: Operator,
          made: list[MainWindow]) -> MainWindow:
    window = MainWindow(context, operator, remember_geometry=False)
    qtbot.addWidget(window)
    window.show()
    made.append(window)
    return window


def test_admin_sees_both_pages_and_history_opens_the_filtered_log(
        qtbot: QtBot, context: AppContext, uow: UnitOfWork, admin: Operator,
        make_operator: MakeOperator, make_unit: MakeUnit, windows: list[MainWindow]) -> None:
    uma = make_operator(Role.USER, make_unit("North"), email="uma@example.org")
    people.update_person(uow, admin, uma.member_id, role=Role.HR_LOCAL)
    settings.update_settings(uow, admin, {"daily_limit_per_inviter": 5})
    window = _open(qtbot, context, admin, windows)
    assert window.is_page_enabled("admin") and window.is_page_enabled("audit")
    assert isinstance(window.pages["admin"], UnitsEventsPage)
    audit = window.pages["audit"]
    assert isinstance(audit, AuditLogWindow)

    members = window.pages["members"]
    members.history_requested.emit("member", uma.member_id, "member Uma")
    assert window.current_page_key() == "audit"
    qtbot.waitUntil(lambda: audit.model.has_opened and not audit.model.loading)
    qtbot.waitUntil(lambda: {r.entity_id for r in audit.visible_rows()} == {uma.member_id})
    assert audit.entity_label.text() == "History of member Uma"

    settings_panel = window.pages["settings"]
    settings_panel.history_requested.emit("settings", None, "the settings")
    qtbot.waitUntil(lambda: audit.model.has_opened and not audit.model.loading)
    assert audit.visible_rows() and {r.entity_type for r in audit.visible_rows()} == {"settings"}


@pytest.mark.parametrize(("role", "units_events", "audit_log", "suppression"), [
    (Role.USER, False, False, False), (Role.HR_LOCAL, True, False, False),
    (Role.ADMIN_LOCAL, True, False, True), (Role.HR_TENANT, True, False, True),
])
def test_pages_mirror_the_role(qtbot: QtBot, context: AppContext, make_operator: MakeOperator,
                               make_unit: MakeUnit, windows: list[MainWindow], role: Role,
                               units_events: bool, audit_log: bool, suppression: bool) -> None:
    unit = None if role.is_tenant_wide else make_unit("North")
    window = _open(qtbot, context, make_operator(role, unit), windows)
    assert window.is_page_enabled("admin") is units_events
    assert window.is_page_enabled("audit") is audit_log
    # The suppression list holds addresses of every unit: the services refuse it below
    # HR_TENANT, so the page is not offered (it said "permission denied" once opened).
    assert window.is_page_enabled("suppression") is suppression
    if not suppression:
        assert "HR_TENANT" in tooltip_text(window.page_tooltip("suppression"))
    assert "ADMIN_TENANT" in tooltip_text(window.page_tooltip("audit"))
    assert not window.show_history("member", None, "x")  # refused, and said why
    assert "ADMIN_TENANT" in window.statusBar().currentMessage()


def test_an_invitations_detail_pane_links_to_its_history(
        qtbot: QtBot, uow: UnitOfWork, admin: Operator) -> None:
    from invite_desk.services.tracking.history import invitation_detail
    from invite_desk.ui.invitations.detail_pane import DetailPane
    from tests.tracking_data import S, Seeder

    added = Seeder(uow, admin.organization_id).add(S.SENT, inviter=admin.member_id,
                                                   email="pat@example.org")
    pane = DetailPane()
    qtbot.addWidget(pane)
    pane.show()
    pane.show_detail(invitation_detail(uow, admin, added.id))
    with qtbot.waitSignal(pane.history_requested) as asked:
        pane.audit_button.click()
    assert asked.args == ["invitation", added.id, "the invitation to pat@example.org"]
