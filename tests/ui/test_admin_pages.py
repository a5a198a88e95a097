"""The administration windows: audit log, units, events, member edit and bulk change, with
the real services on a real database (the hub runs synchronously)."""

from __future__ import annotations

import csv
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QDateTime
from pytestqt.qtbot import QtBot

from invite_desk.services import auth
from invite_desk.services.admin import events as event_service
from invite_desk.services.admin import people
from invite_desk.services.admin import units as unit_service
from invite_desk.services.admin.people import SignInState
from invite_desk.services.errors import DomainError
from invite_desk.services.operator import Operator
from invite_desk.services.roles import Role
from invite_desk.services.uow import UnitOfWork
from invite_desk.ui.admin import dialogs
from invite_desk.ui.admin.audit_window import AuditLogWindow
from invite_desk.ui.admin.events_page import EventsPage
from invite_desk.ui.admin.units_page import UnitsPage
from invite_desk.ui.hub import OperationsHub
from invite_desk.ui.members import edit_dialog
from invite_desk.ui.members.edit_dialog import MemberEditDialog
from invite_desk.ui.tasks import SynchronousRunner
from tests.conftest import MakeOperator, MakeUnit


@pytest.fixture
def hub(qtbot: QtBot) -> Iterator[OperationsHub]:
    hub = OperationsHub(runner=SynchronousRunner())
    yield hub
    hub.shutdown(5_000)
    hub.deleteLater()


def _shown(qtbot: QtBot, widget: Any) -> Any:
    qtbot.addWidget(widget)
    widget.resize(1100, 700)
    widget.show()
    return widget


# -- audit log ------------------------------------------------------------------------------

def test_audit_log_shows_who_did_what_with_a_diff_and_filters(
        qtbot: QtBot, hub: OperationsHub, uow: UnitOfWork, admin: Operator,
        make_unit: MakeUnit, make_operator: MakeOperator) -> None:
    north = make_unit("North")
    uma = make_operator(Role.USER, north, email="uma@example.org")
    people.update_person(uow, admin, uma.member_id, role=Role.HR_LOCAL)
    unit_service.create_unit(uow, admin, "South <b>side</b>")

    window = _shown(qtbot, AuditLogWindow(hub, admin, uow=uow))
    qtbot.waitUntil(lambda: window.action_combo.count() > 1)  # read after the first screen
    actions = [row.action for row in window.visible_rows()]
    assert actions[0] == "unit.create" and "member.update" in actions
    assert "entr" in window.summary_label.text()

    index = next(i for i, row in enumerate(window.visible_rows())
                 if row.action == "member.update")
    window.select_row(index)
    diff = {field: (before, after) for field, before, after in window.diff_rows()}
    assert diff["role"] == ("USER", "HR_LOCAL")
    assert window.diff_rows()[0][0] == "role"  # changed fields first

    window.action_combo.setCurrentIndex(window.action_combo.findData("unit.create"))
    assert [row.action for row in window.visible_rows()] == ["unit.create"]
    # A name typed by someone is shown as typed in the table.
    window.select_row(0)
    assert any("South <b>side</b>" in after for _f, _b, after in window.diff_rows())

    window.action_combo.setCurrentIndex(0)
    window.set_search("HR_LOCAL")
    assert [row.action for row in window.visible_rows()] == ["member.update"]

    window.set_search("")
    window.show_history("member", uma.member_id, "member Uma")
    assert window.entity_bar.isVisibleTo(window)
    assert {row.entity_id for row in window.visible_rows()} == {uma.member_id}
    window.clear_entity()
    assert len({row.entity_id for row in window.visible_rows()}) > 1


def test_audit_log_pages_in_older_rows_and_exports_every_match(
        qtbot: QtBot, hub: OperationsHub, uow: UnitOfWork, admin: Operator,
        tmp_path: Path) -> None:
    for number in range(25):
        unit_service.create_unit(uow, admin, f"Unit {number:02d}")
    window = AuditLogWindow(hub, admin, uow=uow)
    window.model.page_size = 10
    _shown(qtbot, window)
    window.refresh()
    assert window.model.rowCount() == 10 and not window.model.complete
    window.model.fetchMore()
    window.model.fetchMore()
    window.model.fetchMore()
    assert window.model.rowCount() >= 26 and window.model.complete
    names = [row.after.get("name") for row in window.visible_rows()]
    assert names.index("Unit 24") < names.index("Unit 00")  # newest first

    qtbot.waitUntil(lambda: window.action_combo.findData("unit.create") >= 0)
    window.action_combo.setCurrentIndex(window.action_combo.findData("unit.create"))
    target = tmp_path / "audit.csv"
    with qtbot.waitSignal(window.export_finished, timeout=10_000) as finished:
        assert window.export_to(target)
    assert finished.args == [25]
    with target.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    assert len(rows) == 26  # header + every match, not just the loaded page


def test_audit_export_can_be_cancelled_and_leaves_no_file(
        qtbot: QtBot, hub: OperationsHub, uow: UnitOfWork, admin: Operator,
        tmp_path: Path) -> None:
    unit_service.create_unit(uow, admin, "North")
    window = _shown(qtbot, AuditLogWindow(hub, admin, uow=uow))
    target = tmp_path / "audit.csv"
    original = window.hub.query

    def cancel_first(owner: Any, fn: Any, done: Any, error: Any = None, **kw: Any) -> bool:
        if window.export_writer is not None:
            window.export_writer.cancel()
        return original(owner, fn, done, error, **kw)

    window.hub.query = cancel_first  # type: ignore[method-assign]
    with qtbot.waitSignal(window.export_failed, timeout=10_000) as failed:
        window.export_to(target)
    assert failed.args == ["cancelled"]
    assert not target.exists()


def test_audit_log_is_closed_to_other_roles(qtbot: QtBot, hub: OperationsHub, uow: UnitOfWork,
                                            make_operator: MakeOperator,
                                            make_unit: MakeUnit) -> None:
    local_admin = make_operator(Role.ADMIN_LOCAL, make_unit("North"))
    window = _shown(qtbot, AuditLogWindow(hub, local_admin, uow=uow))
    assert window.model.rowCount() == 0
    assert "organization admins" in window.summary_label.text()


# -- units ------------------------------------------------------------------------------------

def test_units_create_rename_merge_and_archive(
        qtbot: QtBot, hub: OperationsHub, uow: UnitOfWork, admin: Operator,
        make_operator: MakeOperator, monkeypatch: pytest.MonkeyPatch,
        confirmations: Any) -> None:
    answers = iter(["North", "South", "Nord"])
    monkeypatch.setattr(dialogs, "ask_text", lambda *a, **k: next(answers))
    page = _shown(qtbot, UnitsPage(hub, admin, uow=uow))
    page.new_unit()
    page.new_unit()
    assert sorted(u.name for u in page.units) == ["North", "South"]
    north = next(u for u in page.units if u.name == "North")
    south = next(u for u in page.units if u.name == "South")
    make_operator(Role.USER, north.id)
    make_operator(Role.USER, north.id)
    page.reload()

    page.select_unit(north.id)
    page.rename()
    assert {u.name for u in page.units} == {"Nord", "South"}

    page.select_unit(north.id)
    monkeypatch.setattr(dialogs, "ask_choice", lambda *a, **k: south.id)
    page.merge()
    asked = confirmations.asked[-1]
    assert asked["text"] == "Merge Nord into South?"
    assert "2 members (2 active)" in asked["informative"]
    assert [u.name for u in page.units] == ["South"]
    assert next(u for u in page.units if u.name == "South").active_members == 2
    assert "Merged Nord into South: 2 members" in page.summary_label.text()

    page.show_archived.setChecked(True)
    assert any(u.name == "Nord" and u.archived for u in page.units)

    # Archiving a unit with active members asks where they go first.
    monkeypatch.setattr(dialogs, "ask_text", lambda *a, **k: "East")
    page.new_unit()
    east = next(u for u in page.units if u.name == "East")
    page.select_unit(south.id)
    monkeypatch.setattr(dialogs, "ask_choice", lambda *a, **k: east.id)
    page.archive()
    assert "move to East first" in confirmations.asked[-1]["informative"]
    units = {u.name: u for u in page.units}
    assert units["South"].archived and units["East"].active_members == 2


def test_units_cancelled_merge_changes_nothing(
        qtbot: QtBot, hub: OperationsHub, uow: UnitOfWork, admin: Operator,
        make_unit: MakeUnit, monkeypatch: pytest.MonkeyPatch, confirmations: Any) -> None:
    north, south = make_unit("North"), make_unit("South")
    page = _shown(qtbot, UnitsPage(hub, admin, uow=uow))
    page.select_unit(north)
    monkeypatch.setattr(dialogs, "ask_choice", lambda *a, **k: south)
    confirmations.answer = False
    page.merge()
    assert sorted(u.name for u in page.units) == ["North", "South"]


def test_units_are_read_only_below_organization_admin(
        qtbot: QtBot, hub: OperationsHub, uow: UnitOfWork, make_operator: MakeOperator,
        make_unit: MakeUnit) -> None:
    north = make_unit("North")
    page = _shown(qtbot, UnitsPage(hub, make_operator(Role.ADMIN_LOCAL, north), uow=uow))
    assert [u.name for u in page.units] == ["North"]
    page.select_unit(north)
    for button in page.buttons:
        assert not button.isEnabled()
        assert "ADMIN_TENANT" in button.toolTip()
    assert page.note.isVisibleTo(page)


# -- events -----------------------------------------------------------------------------------

def _fill_event(dialog: Any, name: str, zone: str, when: datetime, capacity: int = 0) -> None:
    dialog.name_edit.setText(name)
    dialog.zone_combo.setCurrentText(zone)
    dialog.when_edit.setDateTime(QDateTime(when))
    dialog.place_edit.setText("Boathouse")
    dialog.capacity_spin.setValue(capacity)


def test_events_create_edit_archive_in_their_time_zone(
        qtbot: QtBot, hub: OperationsHub, uow: UnitOfWork, admin: Operator,
        monkeypatch: pytest.MonkeyPatch, confirmations: Any) -> None:
    page = _shown(qtbot, EventsPage(hub, admin, uow=uow))
    made: list[Any] = []

    def answer(dialog: Any) -> bool:
        if not made:
            _fill_event(dialog, "Summer <regatta>", "America/New_York",
                        datetime(2027, 7, 4, 19, 0), capacity=40)
        else:
            dialog.name_edit.setText("Summer regatta")
        made.append(dialog)
        return True

    monkeypatch.setattr("invite_desk.ui.admin.event_dialog.EventDialog.ask", answer)
    page.new_event()
    assert [e.name for e in page.events] == ["Summer <regatta>"]
    event = page.events[0]
    assert event.time_zone == "America/New_York" and event.capacity == 40
    assert event.starts_at is not None and event.starts_at.hour == 23  # 19:00 EDT in UTC
    assert page.table.item(0, 1).text() == "Sun 04 Jul 2027 19:00 (America/New_York)"

    page.select_row(0)
    page.edit()
    assert [e.name for e in page.events] == ["Summer regatta"]
    assert made[1].zone_combo.currentText() == "America/New_York"  # the form shows what is

    page.select_row(0)
    page.archive()
    assert confirmations.asked[-1]["action"] == "Archive"
    assert page.events == []
    page.show_archived.setChecked(True)
    assert page.events[0].archived


def test_event_form_shows_the_services_reasons_and_asks_again(
        qtbot: QtBot, hub: OperationsHub, uow: UnitOfWork, admin: Operator,
        monkeypatch: pytest.MonkeyPatch) -> None:
    page = _shown(qtbot, EventsPage(hub, admin, uow=uow))
    shown: list[str] = []

    def answer(dialog: Any) -> bool:
        shown.append(dialog.error_label.text())
        if len(shown) == 1:
            _fill_event(dialog, "", "Mars/Olympus", datetime(2027, 1, 1, 10, 0))
            return True
        if len(shown) == 2:
            dialog.name_edit.setText("Open day")
            dialog.zone_combo.setCurrentText("Europe/Paris")
            return True
        return False

    monkeypatch.setattr("invite_desk.ui.admin.event_dialog.EventDialog.ask", answer)
    page.new_event()
    assert shown[0] == "" and shown[1]  # the reasons, on the same form
    assert [e.name for e in page.events] == ["Open day"]


def test_event_guests_and_who_joined(qtbot: QtBot, hub: OperationsHub, uow: UnitOfWork,
                                     admin: Operator, make_operator: MakeOperator) -> None:
    from invite_desk.services.models import EventGuest

    event = event_service.create_event(uow, admin, event_service.EventDraft(
        name="Open day", starts_at_local=datetime(2027, 5, 1, 10, 0), time_zone="UTC"))
    joiner = make_operator(Role.USER, email="guest0@example.org")  # joined after registering
    with uow:
        from invite_desk.services.models import Member
        member = uow.session.get(Member, joiner.member_id)
        assert member is not None
        member.joined_at = datetime(2030, 1, 1).astimezone()
        for number, joined in enumerate((True, False)):
            uow.session.add(EventGuest(
                organization_id=admin.organization_id, event_id=event.id,
                email=f"guest{number}@example.org", email_normalized=f"guest{number}@example.org",
                first_name=f"Guest{number}", last_name="<i>x</i>",
                member_id=joiner.member_id if joined else None))
        uow.commit()
    page = _shown(qtbot, EventsPage(hub, admin, uow=uow))
    page.select_row(0)
    assert page.guest_title.text() == "Guests of Open day: 2 guests, 1 joined"
    cells = {page.guest_table.item(r, 1).text(): page.guest_table.item(r, 4).text()
             for r in range(page.guest_table.rowCount())}
    assert cells["guest1@example.org"] == "Not yet"
    assert cells["guest0@example.org"].startswith("Yes")
    assert any("<i>x</i>" in page.guest_table.item(r, 0).text()
               for r in range(page.guest_table.rowCount()))


def test_events_read_only_for_hr(qtbot: QtBot, hub: OperationsHub, uow: UnitOfWork,
                                 make_operator: MakeOperator, make_unit: MakeUnit) -> None:
    page = _shown(qtbot, EventsPage(hub, make_operator(Role.HR_TENANT), uow=uow))
    assert not page.new_button.isEnabled()
    assert "ADMIN_LOCAL" in page.new_button.toolTip()


# -- members ----------------------------------------------------------------------------------

def test_member_edit_changes_role_and_status_with_confirmation(
        qtbot: QtBot, hub: OperationsHub, uow: UnitOfWork, admin: Operator,
        make_operator: MakeOperator, make_unit: MakeUnit, confirmations: Any) -> None:
    north = make_unit("North")
    uma = make_operator(Role.USER, north, email="uma@example.org")
    dialog = _shown(qtbot, MemberEditDialog(hub, admin, uma.member_id, uow=uow))
    assert dialog.person is not None and dialog.role_combo.isEnabled()
    assert not dialog.save_button.isEnabled()
    dialog.role_combo.setCurrentIndex(dialog.role_combo.findData("HR_LOCAL"))
    assert dialog.save_button.isEnabled()
    dialog.save()
    assert people.get_person(uow, admin, uma.member_id).role is Role.HR_LOCAL
    assert "audit log" in dialog.message_label.text()

    confirmations.answer = False
    dialog.status_combo.setCurrentIndex(dialog.status_combo.findData("resigned"))
    dialog.save()
    assert confirmations.asked[-1]["title"] == "Change status"
    assert people.get_person(uow, admin, uma.member_id).status == "active"
    confirmations.answer = True
    dialog.save()
    assert people.get_person(uow, admin, uma.member_id).status == "resigned"


def test_member_edit_refusals_are_shown_and_controls_mirror_the_policy(
        qtbot: QtBot, hub: OperationsHub, uow: UnitOfWork, admin: Operator,
        make_operator: MakeOperator, make_unit: MakeUnit) -> None:
    north = make_unit("North")
    local = make_operator(Role.ADMIN_LOCAL, north)
    boss = MemberEditDialog(hub, local, admin.member_id, uow=uow)
    _shown(qtbot, boss)  # an organization admin, above a local admin
    assert not boss.role_combo.isEnabled() and boss.reason_label.text()
    assert not boss.otp_button.isEnabled()

    # The last organization admin cannot lower their own role: the services say why.
    me = _shown(qtbot, MemberEditDialog(hub, admin, admin.member_id, uow=uow))
    me.role_combo.setCurrentIndex(me.role_combo.findData("HR_TENANT"))
    me.save()
    assert people.get_person(uow, admin, admin.member_id).role is Role.ADMIN_TENANT
    assert "admin" in me.message_label.text().lower()


def test_one_time_password_is_shown_once_and_signs_in(
        qtbot: QtBot, hub: OperationsHub, uow: UnitOfWork, admin: Operator,
        make_operator: MakeOperator, monkeypatch: pytest.MonkeyPatch) -> None:
    uma = make_operator(Role.USER, email="uma@example.org")
    shown: list[people.OneTimePassword] = []
    monkeypatch.setattr(edit_dialog, "show_one_time_password",
                        lambda _parent, issued: shown.append(issued))
    dialog = _shown(qtbot, MemberEditDialog(hub, admin, uma.member_id, uow=uow))
    assert not dialog.revoke_button.isEnabled()  # nothing to revoke yet
    dialog.one_time_password()
    assert len(shown) == 1 and shown[0].password
    assert dialog.person is not None
    assert dialog.person.sign_in is SignInState.ONE_TIME_PASSWORD
    assert shown[0].password not in dialog.message_label.text()
    with pytest.raises(DomainError):  # must choose their own first
        auth.sign_in(uow, "uma@example.org", shown[0].password)

    otp = edit_dialog.OneTimePasswordDialog(None, shown[0])
    qtbot.addWidget(otp)
    otp.copy()
    from PySide6.QtGui import QGuiApplication
    assert QGuiApplication.clipboard().text() == shown[0].password
    otp.done(0)
    assert otp.password_edit.text() == ""

    dialog.revoke()
    assert dialog.person.sign_in is SignInState.NONE


def test_members_window_bulk_change_reports_each_refusal(
        qtbot: QtBot, uow: UnitOfWork, engine: Any, credentials: Any, admin: Operator,
        make_operator: MakeOperator, make_unit: MakeUnit,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from invite_desk.app import AppContext
    from invite_desk.ui import widgets
    from invite_desk.ui.members import MembersWindow

    north = make_unit("North")
    for name in ("a", "b"):
        make_operator(Role.USER, north, email=f"{name}@example.org")
    context = AppContext(engine=engine, uow=uow, credentials=credentials,
                         database_label="test")
    window = MembersWindow(context, admin, runner=SynchronousRunner())
    _shown(qtbot, window)
    qtbot.waitUntil(lambda: window.model.rowCount() == 3)
    window.table.selectAll()
    bar = window.admin_bar
    assert bar.bulk_button.isEnabled() and not bar.edit_button.isEnabled()
    warnings: list[str] = []
    monkeypatch.setattr(widgets, "warn", lambda _p, _t, text: warnings.append(text))

    def answer(dialog: Any) -> bool:
        dialog.role_combo.setCurrentIndex(dialog.role_combo.findData("HR_LOCAL"))
        return True

    monkeypatch.setattr("invite_desk.ui.members.bulk_dialog.BulkChangeDialog.ask", answer)
    bar.change_selected()
    roles = {p.email: p.role for p in people.list_people(uow, admin)}
    assert roles["a@example.org"] is roles["b@example.org"] is Role.HR_LOCAL
    # The only organization admin cannot be lowered: refused, said, the rest applied.
    assert roles[admin.email] is Role.ADMIN_TENANT
    assert "Changed 2 members" in bar.status_label.text() and warnings
    assert admin.email in warnings[0]

    window.select_row(0)
    requested: list[tuple[str, object, str]] = []
    window.history_requested.connect(lambda *args: requested.append(args))
    bar.show_history()
    assert requested and requested[0][0] == "member"
    window.close()


def test_member_actions_disabled_for_hr(qtbot: QtBot, uow: UnitOfWork, engine: Any,
                                        credentials: Any, make_operator: MakeOperator) -> None:
    from invite_desk.app import AppContext
    from invite_desk.ui.members import MembersWindow

    context = AppContext(engine=engine, uow=uow, credentials=credentials,
                         database_label="test")
    window = MembersWindow(context, make_operator(Role.HR_TENANT), runner=SynchronousRunner())
    _shown(qtbot, window)
    qtbot.waitUntil(lambda: window.model.rowCount() >= 1)
    window.select_row(0)
    bar = window.admin_bar
    assert not bar.edit_button.isEnabled() and "ADMIN_LOCAL" in bar.edit_button.toolTip()
    assert not bar.history_button.isEnabled()
    window.close()


def _unused(_: uuid.UUID) -> None:  # keeps the uuid import for type hints above
    return None


def test_sign_in_link_is_queued_and_names_show_as_typed(
        qtbot: QtBot, hub: OperationsHub, uow: UnitOfWork, admin: Operator,
        make_operator: MakeOperator, confirmations: Any) -> None:
    from PySide6.QtCore import Qt

    from invite_desk.services.models import Member

    hal = make_operator(Role.USER, email="hal@example.org")
    with uow:
        member = uow.session.get(Member, hal.member_id)
        assert member is not None
        member.first_name, member.last_name = "<img src=x>", "<b>Hal</b>"
        uow.commit()
    dialog = _shown(qtbot, MemberEditDialog(hub, admin, hal.member_id, uow=uow))
    assert dialog.name_label.text() == "<img src=x> <b>Hal</b>"
    assert dialog.name_label.textFormat() == Qt.TextFormat.PlainText
    dialog.send_link()
    assert confirmations.asked[-1]["action"] == "Send link"
    assert dialog.person is not None and dialog.person.sign_in is SignInState.LINK_PENDING
    assert "on its way to hal@example.org" in dialog.message_label.text()
    assert dialog.revoke_button.isEnabled()


def test_units_move_members_moves_the_ticked_ones(
        qtbot: QtBot, hub: OperationsHub, uow: UnitOfWork, admin: Operator,
        make_operator: MakeOperator, make_unit: MakeUnit,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from PySide6.QtCore import Qt

    from invite_desk.ui.admin.move_dialog import MoveMembersDialog

    north, south = make_unit("North"), make_unit("South")
    for name in ("a", "b", "c"):
        make_operator(Role.USER, north, email=f"{name}@example.org")

    def answer(dialog: MoveMembersDialog) -> bool:
        assert dialog.list.count() == 3
        dialog.list.item(0).setCheckState(Qt.CheckState.Unchecked)
        dialog.target_combo.setCurrentIndex(dialog.target_combo.findData(str(south)))
        return True

    monkeypatch.setattr(MoveMembersDialog, "ask", answer)
    page = _shown(qtbot, UnitsPage(hub, admin, uow=uow))
    page.select_unit(north)
    page.move_members()
    counts = {u.name: u.active_members for u in page.units}
    assert counts == {"North": 1, "South": 2}
    assert page.summary_label.text() == "Moved 2 members."


def test_audit_log_follows_changes_without_pulling_older_rows_away(
        qtbot: QtBot, hub: OperationsHub, uow: UnitOfWork, admin: Operator) -> None:
    from invite_desk.ui.hub import MEMBERS

    for number in range(40):
        unit_service.create_unit(uow, admin, f"Unit {number:02d}")
    window = AuditLogWindow(hub, admin, uow=uow)
    window.model.page_size = 30
    _shown(qtbot, window)
    window.refresh()
    unit_service.create_unit(uow, admin, "Newest")
    hub.broadcast({MEMBERS})  # at the top: the new entry shows at once
    assert window.visible_rows()[0].after.get("name") == "Newest"

    bar = window.table.verticalScrollBar()
    bar.setValue(bar.maximum())
    qtbot.waitUntil(lambda: window.model.rowCount() > 30)
    rows = window.model.rowCount()
    unit_service.create_unit(uow, admin, "Even newer")
    hub.broadcast({MEMBERS})
    assert window.model.rowCount() == rows  # the older rows being read stay
    assert "scroll to the top" in window.summary_label.text()
    bar.setValue(0)
    assert window.visible_rows()[0].after.get("name") == "Even newer"


def test_edit_member_button_opens_the_dialog_for_the_selected_member(
        qtbot: QtBot, uow: UnitOfWork, engine: Any, credentials: Any, admin: Operator,
        make_operator: MakeOperator) -> None:
    from invite_desk.app import AppContext
    from invite_desk.ui.members import MembersWindow

    make_operator(Role.USER, email="uma@example.org")
    context = AppContext(engine=engine, uow=uow, credentials=credentials,
                         database_label="test")
    window = MembersWindow(context, admin, runner=SynchronousRunner())
    _shown(qtbot, window)
    qtbot.waitUntil(lambda: window.model.rowCount() == 2)
    row = next(r for r in range(2) if window.model.index(r, 1).data() == "uma@example.org")
    window.select_row(row)
    assert window.admin_bar.edit_button.isEnabled()
    opened: list[MemberEditDialog] = []
    window.admin_bar.open_dialog = opened.append  # type: ignore[method-assign]
    window.admin_bar.edit_button.click()
    [dialog] = opened
    qtbot.addWidget(dialog)
    assert dialog.person is not None and dialog.person.email == "uma@example.org"
    window.close()
