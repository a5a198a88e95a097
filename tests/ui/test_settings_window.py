"""The Settings window: navigation, Save checks every page before it saves any, the unsaved
mark, permission mirroring (read-only for everyone but ADMIN_TENANT) and service errors."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QAbstractButton, QLineEdit, QListView, QPlainTextEdit, QTabBar
from pytestqt.modeltest import ModelTester
from pytestqt.qtbot import QtBot

from invite_desk.services import audit, organization, settings
from invite_desk.services.errors import PermissionDenied, ValidationFailed
from invite_desk.services.operator import Operator
from invite_desk.services.roles import Role
from invite_desk.services.uow import UnitOfWork
from invite_desk.ui.settings import SettingsWindow
from invite_desk.ui.settings.invitations_page import InvitationsPage
from invite_desk.ui.settings.organization_page import OrganizationPage
from invite_desk.ui.settings.referrals_page import ReferralsPage
from invite_desk.ui.settings.window import PageRole, read_only_reason

if TYPE_CHECKING:
    from tests.conftest import MakeOperator, MakeUnit

def open_settings(qtbot: QtBot, uow: UnitOfWork, operator: Operator) -> SettingsWindow:
    window = SettingsWindow(uow, operator)
    qtbot.addWidget(window)
    window.resize(1000, 700)
    window.show()
    qtbot.waitExposed(window)
    return window


def retype(qtbot: QtBot, editor: QLineEdit | QPlainTextEdit, text: str) -> None:
    editor.setFocus()
    qtbot.keyClick(editor, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
    if text:
        qtbot.keyClicks(editor, text)
    else:
        qtbot.keyClick(editor, Qt.Key.Key_Backspace)


def click(qtbot: QtBot, widget: QAbstractButton) -> None:
    qtbot.mouseClick(widget, Qt.MouseButton.LeftButton)


def audit_rows(uow: UnitOfWork, admin: Operator, *actions: str) -> list[audit.AuditEntry]:
    with uow:
        rows = audit.entries(uow.session, admin.organization_id)
    return [row for row in rows if row.action in actions]


SETTINGS_ACTIONS = ("settings.update", "organization.update")


def pages(window: SettingsWindow) -> tuple[InvitationsPage, ReferralsPage, OrganizationPage]:
    invitations, referrals, org = (window.page(n) for n in ("invitations", "referrals", "organization"))
    assert isinstance(invitations, InvitationsPage)
    assert isinstance(referrals, ReferralsPage)
    assert isinstance(org, OrganizationPage)
    return invitations, referrals, org


# ---- navigation --------------------------------------------------------------------------------


def test_the_page_list_names_every_page_and_switches_between_them(
    qtbot: QtBot, qtmodeltester: ModelTester, uow: UnitOfWork, admin: Operator
) -> None:
    window = open_settings(qtbot, uow, admin)
    assert isinstance(window.page_list, QListView)
    qtmodeltester.check(window.page_model)

    model = window.page_model
    titles = [model.index(row, 0).data() for row in range(model.rowCount())]
    names = [model.index(row, 0).data(PageRole.NAME) for row in range(model.rowCount())]
    assert titles == [
        "Invitations", "Referrals", "Gamification", "Organization", "Email (SMTP)",
        "Email template",
    ]
    assert window.page_names() == names == [
        "invitations", "referrals", "gamification", "organization", "email-smtp",
        "email-template",
    ]
    assert window.current_page().NAME == "invitations"

    window.show_page("organization")
    assert window.current_page().NAME == "organization"
    assert window.page_list.currentIndex().row() == 3

    # Clicking an entry in the list shows its page, as a user would switch.
    rect = window.page_list.visualRect(model.index(1, 0))
    qtbot.mouseClick(window.page_list.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert window.current_page().NAME == "referrals"
    assert window.current_page().isVisible()

    with pytest.raises(KeyError, match="invitations, referrals, gamification, organization"):
        window.show_page("smtp")


# ---- save: every page is checked before any is saved -----------------------------------------------


def test_one_bad_value_on_any_page_saves_nothing_anywhere(
    qtbot: QtBot, uow: UnitOfWork, admin: Operator
) -> None:
    window = open_settings(qtbot, uow, admin)
    invitations, referrals, org = pages(window)
    settings_before = settings.get_settings(uow, admin.organization_id)
    org_before = organization.get_organization(uow, admin.organization_id)

    retype(qtbot, invitations.expiry_edit, "30")
    window.show_page("referrals")
    retype(qtbot, referrals.needed_edit, "2")
    window.show_page("organization")
    retype(qtbot, org.name_edit, "Harbour Rowing Association")
    retype(qtbot, org.url_edit, "join.example.org")
    window.show_page("invitations")

    with qtbot.assertNotEmitted(window.settings_saved):
        click(qtbot, window.save_button)

    assert settings.get_settings(uow, admin.organization_id) == settings_before
    assert organization.get_organization(uow, admin.organization_id) == org_before
    assert audit_rows(uow, admin, *SETTINGS_ACTIONS) == []
    # The user is taken to the page with the problem, which names the field.
    assert window.current_page() is org
    assert org.visible_errors() == {
        "registration_base_url":
            "Registration base URL must start with https:// (or http://) and name a host"
    }
    assert window.banner.isVisible()
    assert window.banner.text() == (
        "Nothing was saved. Please correct the fields marked in red on: Organization."
    )
    assert window.has_unsaved_changes()

    retype(qtbot, org.url_edit, "https://join.harbour.example")
    assert not window.banner.isVisible()  # the summary goes once nothing is marked red
    with qtbot.waitSignal(window.settings_saved, timeout=2000):
        click(qtbot, window.save_button)

    stored = settings.get_settings(uow, admin.organization_id)
    assert stored.invitation_expiry_days == 30
    assert stored.number_of_referrals_needed_for_signup == 2
    org_after = organization.get_organization(uow, admin.organization_id)
    assert org_after.name == "Harbour Rowing Association"
    assert org_after.registration_base_url == "https://join.harbour.example"
    assert len(audit_rows(uow, admin, *SETTINGS_ACTIONS)) == 3  # one per page
    assert window.banner.text() == "Saved. 4 changes recorded in the audit log."


def test_errors_on_two_pages_are_all_reported(
    qtbot: QtBot, uow: UnitOfWork, admin: Operator
) -> None:
    window = open_settings(qtbot, uow, admin)
    invitations, referrals, org = pages(window)
    retype(qtbot, invitations.limit_edit, "-10")
    retype(qtbot, org.accent_edit, "#GGGGGG")

    click(qtbot, window.save_button)

    assert invitations.visible_errors() == {
        "daily_limit_per_inviter": "Daily limit per inviter must be between 0 and 1000000"
    }
    assert org.visible_errors() == {"accent_color": "Accent colour must look like #2F6FEB"}
    assert referrals.visible_errors() == {}
    assert window.banner.text() == (
        "Nothing was saved. Please correct the fields marked in red on: Invitations, Organization."
    )
    assert window.current_page() is invitations
    assert audit_rows(uow, admin, *SETTINGS_ACTIONS) == []


def test_unsaved_changes_are_marked_until_saved(
    qtbot: QtBot, uow: UnitOfWork, admin: Operator
) -> None:
    window = open_settings(qtbot, uow, admin)
    invitations, _, org = pages(window)
    assert not window.has_unsaved_changes()
    assert not window.save_button.isEnabled()
    assert not window.revert_button.isEnabled()
    assert not window.isWindowModified()

    click(qtbot, invitations.who_buttons[Role.HR_LOCAL])
    retype(qtbot, org.description_edit, "New description")

    assert window.has_unsaved_changes()
    assert window.page_model.item(0).text() == "Invitations •"
    assert window.page_model.item(1).text() == "Referrals"
    assert window.page_model.item(3).text() == "Organization •"
    assert window.page_model.item(0).font().italic()
    assert window.unsaved_label.text() == "Unsaved changes on Invitations, Organization."
    assert window.isWindowModified()
    assert window.save_button.isEnabled()
    assert window.revert_button.isEnabled()

    # Typing the stored value back is no change at all.
    click(qtbot, invitations.who_buttons[Role.USER])
    assert window.page_model.item(0).text() == "Invitations"

    click(qtbot, window.save_button)
    assert window.banner.text() == "Saved. 1 change recorded in the audit log."
    assert not window.has_unsaved_changes()
    assert window.page_model.item(3).text() == "Organization"
    assert window.unsaved_label.text() == ""
    assert not window.isWindowModified()
    assert not window.save_button.isEnabled()

    # The confirmation is quiet: the next edit clears it.
    retype(qtbot, org.name_edit, "Another name")
    assert not window.banner.isVisible()


def test_invite_only_with_invitations_off_warns_that_nobody_can_register(
    qtbot: QtBot, uow: UnitOfWork, admin: Operator
) -> None:
    window = open_settings(qtbot, uow, admin)
    invitations, referrals, _ = pages(window)
    window.show_page("referrals")
    retype(qtbot, referrals.needed_edit, "1")
    assert "nobody new can register" not in referrals.invite_only_notice.text()

    window.show_page("invitations")
    click(qtbot, invitations.enabled_box)
    window.show_page("referrals")
    assert referrals.invite_only_notice.isVisible()
    assert "Invitations are turned off (Invitations page)" in referrals.invite_only_notice.text()

    click(qtbot, window.revert_button)
    assert not referrals.invite_only_notice.isVisible()


# ---- permissions ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "signed_in_as"),
    [
        (Role.USER, "Member (USER)"),
        (Role.HR_LOCAL, "Local HR (HR_LOCAL)"),
        (Role.HR_TENANT, "Organization HR (HR_TENANT)"),
        (Role.ADMIN_LOCAL, "Local admin (ADMIN_LOCAL)"),
    ],
    ids=["USER", "HR_LOCAL", "HR_TENANT", "ADMIN_LOCAL"],
)
def test_everyone_but_organization_admins_sees_read_only_pages(
    qtbot: QtBot, uow: UnitOfWork, admin: Operator, make_operator: MakeOperator,
    make_unit: MakeUnit, role: Role, signed_in_as: str,
) -> None:
    unit = make_unit("North") if role.is_local else None
    operator = make_operator(role, unit)
    settings.update_settings(uow, admin, {"invitation_expiry_days": 9})
    window = open_settings(qtbot, uow, operator)
    invitations, referrals, org = pages(window)
    reason = (
        "Only organization admins (ADMIN_TENANT) can change settings; "
        f"you are signed in as {signed_in_as}."
    )
    assert read_only_reason(operator) == reason
    assert window.is_read_only()

    for page in window.pages:
        window.show_page(page.NAME)
        assert page.is_read_only()
        assert page.banner.isVisible()
        assert page.banner.text() == reason
        for line in page.findChildren(QLineEdit) + page.findChildren(QPlainTextEdit):
            assert line.isReadOnly(), line.accessibleName()
        for button in page.findChildren(QAbstractButton):
            if isinstance(button.parent(), QTabBar):
                continue  # a tab bar's scroll arrows only scroll its tabs
            assert not button.isEnabled(), button.text()
    assert not window.save_button.isEnabled()
    assert not window.revert_button.isEnabled()
    assert window.save_button.toolTip() == reason

    # The stored values are shown, and typing or clicking changes nothing.
    window.show_page("invitations")
    assert invitations.expiry_edit.text() == "9"
    retype(qtbot, invitations.expiry_edit, "90")
    click(qtbot, invitations.enabled_box)
    window.show_page("organization")
    retype(qtbot, org.name_edit, "Hijacked")
    assert invitations.expiry_edit.text() == "9"
    assert invitations.enabled_box.isChecked()
    assert org.name_edit.text() == "Harbour Rowing Club"
    assert not window.has_unsaved_changes()

    assert window.save() is False
    assert settings.get_settings(uow, admin.organization_id).invitation_expiry_days == 9
    assert len(audit_rows(uow, admin, "settings.update")) == 1  # only the admin's change
    assert referrals.is_read_only()


def test_organization_admins_can_edit(qtbot: QtBot, uow: UnitOfWork, admin: Operator) -> None:
    window = open_settings(qtbot, uow, admin)
    assert read_only_reason(admin) == ""
    assert not window.is_read_only()
    for page in window.pages:
        assert not page.is_read_only()
        assert not page.banner.isVisible()


@pytest.mark.parametrize("role", [Role.USER, Role.HR_TENANT, Role.ADMIN_LOCAL], ids=lambda r: r.name)
def test_the_services_refuse_a_non_admin_and_name_admin_tenant(
    uow: UnitOfWork, admin: Operator, make_operator: MakeOperator, make_unit: MakeUnit,
    role: Role,
) -> None:
    operator = make_operator(role, make_unit("South") if role.is_local else None)

    with pytest.raises(PermissionDenied) as denied:
        settings.update_settings(uow, operator, {"invitation_expiry_days": 3})
    assert denied.value.needed == "ADMIN_TENANT"
    assert "ADMIN_TENANT" in str(denied.value)
    assert str(denied.value) == (
        "You cannot change the organization's settings: this needs the ADMIN_TENANT role or higher."
    )

    with pytest.raises(PermissionDenied, match="ADMIN_TENANT"):
        organization.update_organization(uow, operator, {"name": "Mine now"})

    assert settings.get_settings(uow, admin.organization_id).invitation_expiry_days == 14
    assert organization.get_organization(uow, admin.organization_id).name == "Harbour Rowing Club"
    assert audit_rows(uow, admin, *SETTINGS_ACTIONS) == []


# ---- the services stay the final authority ----------------------------------------------------------


def test_a_permission_denied_at_save_time_is_shown_and_the_pages_turn_read_only(
    qtbot: QtBot, uow: UnitOfWork, admin: Operator, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionDenied("change the organization's settings", "ADMIN_TENANT")

    monkeypatch.setattr(settings, "update_settings", refuse)
    window = open_settings(qtbot, uow, admin)
    invitations, _, org = pages(window)
    retype(qtbot, invitations.expiry_edit, "20")
    retype(qtbot, org.name_edit, "Renamed")

    with qtbot.assertNotEmitted(window.settings_saved):
        click(qtbot, window.save_button)

    assert window.banner.isVisible()
    assert window.banner.text() == (
        "Nothing was saved. Invitations: You cannot change the organization's settings: "
        "this needs the ADMIN_TENANT role or higher."
    )
    assert all(page.is_read_only() for page in window.pages)
    assert not window.save_button.isEnabled()
    assert organization.get_organization(uow, admin.organization_id).name == "Harbour Rowing Club"


def test_a_validation_error_from_the_service_is_shown_next_to_its_field(
    qtbot: QtBot, uow: UnitOfWork, admin: Operator, monkeypatch: pytest.MonkeyPatch
) -> None:
    def reject(*args: object, **kwargs: object) -> None:
        raise ValidationFailed({"name": "Name is already used by another organization"})

    monkeypatch.setattr(organization, "update_organization", reject)
    window = open_settings(qtbot, uow, admin)
    _, _, org = pages(window)
    window.show_page("organization")
    retype(qtbot, org.name_edit, "Taken Name")

    click(qtbot, window.save_button)

    assert org.visible_errors() == {"name": "Name is already used by another organization"}
    assert org.row("name").error.isVisible()
    assert window.current_page() is org
    assert window.banner.text() == (
        "Nothing was saved. Organization: please correct the fields marked in red."
    )
    assert window.has_unsaved_changes()


def test_the_window_banner_appearing_does_not_move_the_fields(
    qtbot: QtBot, uow: UnitOfWork, admin: Operator
) -> None:
    window = open_settings(qtbot, uow, admin)
    window.resize(1100, 760)
    invitations, _referrals, _org = pages(window)
    qtbot.wait(10)
    watched = (invitations.expiry_edit, window.save_button, window.revert_button)
    before = [w.mapTo(window, w.rect().topLeft()) for w in watched]
    window.banner.show_message("Saved. " * 40, "success")
    qtbot.wait(10)
    assert window.banner.isVisible()
    assert [w.mapTo(window, w.rect().topLeft()) for w in watched] == before
    window.banner.clear_message()
    qtbot.wait(10)
    assert [w.mapTo(window, w.rect().topLeft()) for w in watched] == before


def test_a_save_runs_on_the_hub_and_tells_every_view_a_failed_one_tells_none(
    qtbot: QtBot, uow: UnitOfWork, admin: Operator
) -> None:
    """With the app's (threaded) hub, the pages are read and written on its pool (the
    GUI-thread guard would fail this test otherwise) and a save broadcasts
    {settings, referrals}; a refused save broadcasts nothing."""
    from invite_desk.ui.hub import REFERRALS, SETTINGS, Changes, OperationsHub

    hub = OperationsHub()
    window = SettingsWindow(uow, admin, hub=hub)
    qtbot.addWidget(window)
    invitations, _referrals, _org = pages(window)
    assert not window.save_button.isEnabled()  # nothing to save while the pages are read
    qtbot.waitUntil(lambda: hub.in_flight == 0, timeout=10_000)  # every page read
    assert invitations.expiry_edit.text() == "14"
    assert not window.has_unsaved_changes() and window.unsaved_label.text() == ""
    assert not window.save_button.isEnabled()
    broadcasts: list[Changes] = []
    hub.changed.connect(broadcasts.append)
    saved: list[bool] = []
    window.settings_saved.connect(lambda: saved.append(True))

    invitations.expiry_edit.setText("21")
    assert window.save() is True, window.banner.text()  # started: the answer comes back later
    qtbot.waitUntil(lambda: saved == [True], timeout=10_000)
    assert settings.get_settings(uow, admin.organization_id).invitation_expiry_days == 21
    assert [(b.kinds, b.origin) for b in broadcasts] == [
        (frozenset({SETTINGS, REFERRALS}), window)]
    assert window.banner.text() == "Saved. 1 change recorded in the audit log."

    qtbot.waitUntil(lambda: hub.in_flight == 0, timeout=10_000)  # the page read again
    assert invitations.expiry_edit.text() == "21" and not window.has_unsaved_changes()

    settings.update_settings(uow, admin, {"invitation_expiry_days": 30})  # meanwhile, elsewhere
    invitations.expiry_edit.setText("40")
    with uow:  # the admin is demoted while the window is open
        from invite_desk.services.models import Member

        member = uow.session.get(Member, admin.member_id)
        assert member is not None
        member.role = Role.USER.name
        uow.commit()
    window.save()
    qtbot.waitUntil(lambda: window.banner.kind == "error", timeout=10_000)
    assert len(broadcasts) == 1 and saved == [True]
    assert settings.get_settings(uow, admin.organization_id).invitation_expiry_days == 30
    assert hub.shutdown(10_000)
