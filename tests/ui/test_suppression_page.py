"""The Suppression page: a view of the hub (reads and writes on the hub's threads), plain
text, Undo asks first, and what each role may do mirrors the services."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pytestqt.qtbot import QtBot
from sqlalchemy import Engine

from invite_desk.app import AppContext
from invite_desk.services import suppression
from invite_desk.services.credentials import MemoryCredentialStore
from invite_desk.services.operator import Operator
from invite_desk.services.roles import Role
from invite_desk.services.uow import UnitOfWork
from invite_desk.ui.hub import SUPPRESSION, OperationsHub
from invite_desk.ui.settings.suppression_page import SuppressionPage
from tests.conftest import MakeOperator
from tests.ui.conftest import Confirmations


@pytest.fixture
def context(engine: Engine, uow: UnitOfWork) -> AppContext:
    return AppContext(engine=engine, uow=uow, credentials=MemoryCredentialStore(),
                      database_label="test")


@pytest.fixture
def hub(qtbot: QtBot) -> Iterator[OperationsHub]:
    hub = OperationsHub()
    yield hub
    hub.shutdown()


def _page(qtbot: QtBot, hub: OperationsHub, operator: Operator,
          context: AppContext) -> SuppressionPage:
    page = SuppressionPage(hub, operator, context=context)
    qtbot.addWidget(page)
    page.show()
    qtbot.waitUntil(lambda: hub.in_flight == 0)
    return page


def _addresses(page: SuppressionPage) -> list[str]:
    return [page.model.item(r, 0).text() for r in range(page.model.rowCount())]


def test_admin_sees_why_and_undoes_after_confirming(
    qtbot: QtBot, hub: OperationsHub, admin: Operator, uow: UnitOfWork, context: AppContext,
    confirmations: Confirmations,
) -> None:
    suppression.add_suppression(uow, admin, "b@example.org", "<b>bold</b> & moved")
    suppression.add_suppression(uow, admin, "a@example.org", "typo")
    page = _page(qtbot, hub, admin, context)
    assert _addresses(page) == ["a@example.org", "b@example.org"]
    assert page.model.item(1, 3).text() == "<b>bold</b> & moved"  # plain text, as typed
    page.table.selectRow(1)
    assert "<b>bold</b> & moved" in page.detail.text()
    assert page.detail.textFormat().name == "PlainText"
    assert page.undo_button.isEnabled()

    confirmations.answer = False
    page.undo_selected()
    qtbot.waitUntil(lambda: hub.in_flight == 0)
    assert len(suppression.list_suppressions(uow, admin)) == 2  # Cancel changed nothing

    confirmations.answer = True
    with qtbot.waitSignal(hub.changed, check_params_cb=lambda c: c.touches(SUPPRESSION)):
        page.undo_selected()
    qtbot.waitUntil(lambda: _addresses(page) == ["a@example.org"])
    assert confirmations.asked[-1]["action"] == "Undo suppression"
    assert "b@example.org" in confirmations.asked[-1]["text"]

    page.add_address.setText("c@example.org")
    page.add_note.setText("asked by phone")
    page.add()
    qtbot.waitUntil(lambda: "c@example.org" in _addresses(page))
    assert page.status.text() == "2 addresses. c@example.org is suppressed."

    page.add_address.setText("not an address")
    page.add()
    qtbot.waitUntil(lambda: "Please correct" in page.status.text())


def test_hr_sees_the_list_but_cannot_change_it_and_a_member_sees_why_not(
    qtbot: QtBot, hub: OperationsHub, admin: Operator, uow: UnitOfWork, context: AppContext,
    make_operator: MakeOperator,
) -> None:
    suppression.add_suppression(uow, admin, "a@example.org")
    hr = _page(qtbot, hub, make_operator(Role.HR_TENANT), context)
    assert _addresses(hr) == ["a@example.org"]
    hr.table.selectRow(0)
    assert not hr.undo_button.isEnabled() and not hr.add_button.isEnabled()
    member = _page(qtbot, hub, make_operator(Role.USER), context)
    assert member.model.rowCount() == 0
    assert "HR_TENANT" in member.status.text() and not member.table.isEnabled()


def test_the_page_follows_changes_made_elsewhere(
    qtbot: QtBot, hub: OperationsHub, admin: Operator, uow: UnitOfWork, context: AppContext,
) -> None:
    page = _page(qtbot, hub, admin, context)
    assert _addresses(page) == []
    suppression.add_suppression(uow, admin, "late@example.org")
    hub.broadcast({SUPPRESSION})
    qtbot.waitUntil(lambda: _addresses(page) == ["late@example.org"])
