"""The Members window: its table model, search and filters, scope per role, and the member
page with their referral activity."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot
from sqlalchemy import insert
from sqlalchemy.engine import Engine

from invite_desk.app import AppContext
from invite_desk.services.credentials import MemoryCredentialStore
from invite_desk.services.members_view import MemberColumn, MemberQuery
from invite_desk.services.models import Referral, ReferralStatus
from invite_desk.services.operator import Operator
from invite_desk.services.roles import Role
from invite_desk.services.uow import UnitOfWork
from invite_desk.ui.hub import OperationsHub
from invite_desk.ui.members import MembersWindow
from invite_desk.ui.members.table_model import MemberSource, MemberTableModel
from invite_desk.ui.tasks import SynchronousRunner
from tests.tracking_data import NOW, S, Seeder


@pytest.fixture
def context(engine: Engine, uow: UnitOfWork, credentials: MemoryCredentialStore) -> AppContext:
    return AppContext(engine=engine, uow=uow, credentials=credentials, database_label="test")


@pytest.fixture
def club(uow: UnitOfWork, admin: Operator) -> dict[str, Any]:
    seeder = Seeder(uow, admin.organization_id)
    north, south = seeder.unit("North"), seeder.unit("South")
    uma = seeder.member("Uma", "Underwood", unit_id=north)
    hal = seeder.member("Hal", "Hughes", role=Role.HR_LOCAL, unit_id=north)
    seeder.member("Olga", "Olsen", unit_id=south)
    bea = seeder.member("Bea", "Baker", unit_id=north, referred_by=uma.member_id)
    with uow:
        uow.session.execute(insert(Referral), [dict(
            id=uuid.uuid4(), version=1, created_at=NOW, updated_at=NOW,
            organization_id=admin.organization_id, referrer_id=uma.member_id,
            referee_id=bea.member_id, status=ReferralStatus.COMPLETED.value,
            referred_at=NOW - timedelta(days=3), completed_at=NOW - timedelta(days=2))])
        uow.commit()
    seeder.add(S.SENT, inviter=uma.member_id, unit_id=north, email="pat@example.org")
    return {"admin": admin, "uma": uma, "hal": hal, "bea": bea, "north": north}


MakeWindow = Callable[..., MembersWindow]


@pytest.fixture
def make_window(qtbot: QtBot, context: AppContext, admin: Operator) -> Iterator[MakeWindow]:
    def make(operator: Operator | None = None) -> MembersWindow:
        window = MembersWindow(context, operator or admin, runner=SynchronousRunner(),
                               clock=lambda: NOW)
        qtbot.addWidget(window)
        window.resize(1200, 780)
        return window

    yield make


def listed(window: MembersWindow) -> list[str]:
    model = window.model
    return [model.row_at(r).name for r in range(model.rowCount())]  # type: ignore[union-attr]


def test_the_member_model_passes_the_model_tester(
    qtmodeltester: Any, uow: UnitOfWork, club: dict[str, Any]
) -> None:
    model = MemberTableModel(MemberSource(uow, club["admin"]),
                             hub=OperationsHub(runner=SynchronousRunner()))
    model.set_query(MemberQuery())
    qtmodeltester.check(model)
    assert model.rowCount() == 5
    assert [model.headerData(c, Qt.Orientation.Horizontal) for c in range(7)] == [
        "Name", "Email", "Role", "Unit", "Status", "Referred by", "Joined"]
    model.sort(MemberColumn.EMAIL, Qt.SortOrder.DescendingOrder)
    assert model.query.sort is MemberColumn.EMAIL
    qtmodeltester.check(model)


def test_search_and_filters(qtbot: QtBot, make_window: MakeWindow, club: dict[str, Any]) -> None:
    window = make_window()
    assert listed(window) == ["Ada Admin", "Bea Baker", "Hal Hughes", "Olga Olsen",
                              "Uma Underwood"]
    window.set_search("hugh")
    assert listed(window) == ["Hal Hughes"]
    window.set_search("")
    window.role_combo.setCurrentIndex(window.role_combo.findData(Role.HR_LOCAL.name))
    assert listed(window) == ["Hal Hughes"]
    window.role_combo.setCurrentIndex(0)
    window.unit_combo.setCurrentIndex(window.unit_combo.findText("North"))
    assert listed(window) == ["Bea Baker", "Hal Hughes", "Uma Underwood"]
    assert window.model.index(0, MemberColumn.REFERRED_BY).data() == "Uma Underwood"
    assert window.summary_label.text() == "3 members"


def test_the_member_page_shows_their_referral_activity(
    qtbot: QtBot, make_window: MakeWindow, club: dict[str, Any]
) -> None:
    window = make_window()
    requested: list[uuid.UUID] = []
    window.invitations_requested.connect(requested.append)
    window.set_search("underwood")
    window.select_row(0)
    qtbot.waitUntil(lambda: window.page.activity is not None, timeout=3000)

    text = window.page.visible_text()
    assert "Uma Underwood" in text
    assert "1\nsuccessful referrals" in text
    assert "pat@example.org — Sent" in text
    assert "Bea Baker <bea.baker@example.org> — completed" in text
    window.page.invitations_button.click()
    assert requested == [club["uma"].member_id]


@pytest.mark.parametrize(("who", "expected"), [
    ("uma", ["Uma Underwood"]),
    ("hal", ["Bea Baker", "Hal Hughes", "Uma Underwood"]),
])
def test_each_role_sees_its_scope(qtbot: QtBot, make_window: MakeWindow, club: dict[str, Any],
                                  who: str, expected: list[str]) -> None:
    window = make_window(club[who])
    assert listed(window) == expected
    if who == "uma":  # a member lands on their own page
        qtbot.waitUntil(lambda: window.page.activity is not None, timeout=3000)
        assert not window.search_edit.isEnabled()

