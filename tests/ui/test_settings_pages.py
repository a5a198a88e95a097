"""Each settings page: load shows the stored values, edits save through the services with an
audit row, check rejects bad values (and then nothing is saved), revert restores."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QImage
from PySide6.QtWidgets import (
    QAbstractButton,
    QColorDialog,
    QFileDialog,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
)
from pytestqt.qtbot import QtBot

from invite_desk.services import audit, organization, settings
from invite_desk.services.operator import Operator
from invite_desk.services.roles import Role
from invite_desk.services.uow import UnitOfWork
from invite_desk.ui.hub import SETTINGS
from invite_desk.ui.settings import SettingsWindow
from invite_desk.ui.settings.invitations_page import InvitationsPage
from invite_desk.ui.settings.organization_page import OrganizationPage
from invite_desk.ui.settings.referrals_page import INVITE_ONLY_WARNING, ReferralsPage

# ---- helpers ---------------------------------------------------------------------------------


def open_settings(qtbot: QtBot, uow: UnitOfWork, operator: Operator, page: str) -> SettingsWindow:
    window = SettingsWindow(uow, operator)
    qtbot.addWidget(window)
    window.resize(1000, 700)
    window.show()
    qtbot.waitExposed(window)
    window.show_page(page)
    return window


def retype(qtbot: QtBot, editor: QLineEdit | QPlainTextEdit, text: str) -> None:
    """Select everything in `editor` and type `text` over it, as a user would."""
    editor.setFocus()
    qtbot.keyClick(editor, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
    if text:
        qtbot.keyClicks(editor, text)
    else:
        qtbot.keyClick(editor, Qt.Key.Key_Backspace)


def click(qtbot: QtBot, widget: QAbstractButton) -> None:
    qtbot.mouseClick(widget, Qt.MouseButton.LeftButton)


def audit_rows(uow: UnitOfWork, admin: Operator, action: str) -> list[audit.AuditEntry]:
    """The audit rows the settings window can write: "settings.update" or "organization.update"."""
    with uow:
        rows = audit.entries(uow.session, admin.organization_id)
    return [row for row in rows if row.action == action]


def shown_errors(window: SettingsWindow, page: str) -> dict[str, str]:
    return window.page(page).visible_errors()


# ---- Invitations -------------------------------------------------------------------------------


def test_invitations_page_shows_the_stored_values(
    qtbot: QtBot, uow: UnitOfWork, admin: Operator
) -> None:
    settings.update_settings(uow, admin, {
        "has_user_invitation": False,
        "who_can_send_user_invitation": Role.HR_TENANT,
        "invitation_expiry_days": 30,
        "daily_limit_per_inviter": 0,
    })
    window = open_settings(qtbot, uow, admin, "invitations")
    page = window.page("invitations")
    assert isinstance(page, InvitationsPage)

    assert not page.enabled_box.isChecked()
    assert page.who_buttons[Role.HR_TENANT].isChecked()
    assert page.who_buttons[Role.HR_TENANT].text() == "Only organization HR and above"
    assert page.expiry_edit.text() == "30"
    assert page.limit_edit.text() == "0"
    # Invitations are off, so what depends on them cannot be changed; nothing is unsaved.
    assert not page.who_buttons[Role.USER].isEnabled()
    assert not page.expiry_edit.isEnabled()
    assert not page.limit_edit.isEnabled()
    assert not window.save_button.isEnabled()


def test_invitations_page_explains_each_level_with_the_field_names_users_know(
    qtbot: QtBot, uow: UnitOfWork, admin: Operator
) -> None:
    window = open_settings(qtbot, uow, admin, "invitations")
    page = window.page("invitations")
    assert isinstance(page, InvitationsPage)
    texts = {role.name: button.text() for role, button in page.who_buttons.items()}
    assert texts == {
        "USER": "All members can invite",
        "HR_LOCAL": "Only local HR and above",
        "HR_TENANT": "Only organization HR and above",
        "ADMIN_LOCAL": "Only local admins and above",
        "ADMIN_TENANT": "Only organization admins",
    }
    labels = {label.text() for label in page.findChildren(QLabel) if label.isVisible()}
    for name in ("hasUserInvitation", "whoCanSendUserInvitation", "invitationExpiryDays",
                 "dailyLimitPerInviter", "USER", "ADMIN_TENANT"):
        assert name in labels


def test_invitations_edit_and_save_writes_through_the_services_with_an_audit_row(
    qtbot: QtBot, uow: UnitOfWork, admin: Operator
) -> None:
    window = open_settings(qtbot, uow, admin, "invitations")
    page = window.page("invitations")
    assert isinstance(page, InvitationsPage)

    click(qtbot, page.who_buttons[Role.HR_TENANT])
    retype(qtbot, page.expiry_edit, "21")
    retype(qtbot, page.limit_edit, "0")
    with qtbot.waitSignal(window.settings_saved, timeout=2000):
        click(qtbot, window.save_button)

    stored = settings.get_settings(uow, admin.organization_id)
    assert stored.who_can_send_user_invitation is Role.HR_TENANT
    assert stored.invitation_expiry_days == 21
    assert stored.daily_limit_per_inviter == 0
    assert stored.has_user_invitation is True

    [entry] = audit_rows(uow, admin, "settings.update")
    assert entry.action == "settings.update"
    assert entry.actor == "Ada Admin"
    assert entry.before == {
        "userInvitations.whoCanSendUserInvitation": "USER",
        "userInvitations.invitationExpiryDays": 14,
        "userInvitations.dailyLimitPerInviter": 200,
    }
    assert entry.after == {
        "userInvitations.whoCanSendUserInvitation": "HR_TENANT",
        "userInvitations.invitationExpiryDays": 21,
        "userInvitations.dailyLimitPerInviter": 0,
    }
    assert window.banner.isVisible()
    assert window.banner.text() == "Saved. 3 changes recorded in the audit log."
    assert not window.save_button.isEnabled()


def test_turning_invitations_off_disables_what_depends_on_them(
    qtbot: QtBot, uow: UnitOfWork, admin: Operator
) -> None:
    window = open_settings(qtbot, uow, admin, "invitations")
    page = window.page("invitations")
    assert isinstance(page, InvitationsPage)
    assert page.expiry_edit.isEnabled()

    click(qtbot, page.enabled_box)
    assert not page.enabled_box.isChecked()
    assert not page.expiry_edit.isEnabled()
    assert not page.limit_edit.isEnabled()
    assert not any(b.isEnabled() for b in page.who_buttons.values())
    assert "Enable invitations" in page.expiry_edit.toolTip()

    click(qtbot, window.save_button)
    assert settings.get_settings(uow, admin.organization_id).has_user_invitation is False

    click(qtbot, page.enabled_box)
    assert page.expiry_edit.isEnabled()
    assert all(b.isEnabled() for b in page.who_buttons.values())


@pytest.mark.parametrize(
    ("field", "text", "message"),
    [
        ("invitation_expiry_days", "-5", "Link expiry (days) must be between 1 and 365"),
        ("invitation_expiry_days", "0", "Link expiry (days) must be between 1 and 365"),
        ("invitation_expiry_days", "400", "Link expiry (days) must be between 1 and 365"),
        ("invitation_expiry_days", "two weeks", "Link expiry (days) must be a whole number"),
        ("invitation_expiry_days", "", "Link expiry (days) is required"),
        ("daily_limit_per_inviter", "-1",
         "Daily limit per inviter must be between 0 and 1000000"),
        ("daily_limit_per_inviter", "1.5", "Daily limit per inviter must be a whole number"),
    ],
)
def test_invitations_check_rejects_bad_values_and_nothing_is_saved(
    qtbot: QtBot, uow: UnitOfWork, admin: Operator, field: str, text: str, message: str
) -> None:
    window = open_settings(qtbot, uow, admin, "invitations")
    page = window.page("invitations")
    assert isinstance(page, InvitationsPage)
    before = settings.get_settings(uow, admin.organization_id)

    click(qtbot, page.who_buttons[Role.ADMIN_LOCAL])  # a good change alongside the bad one
    editor = page.expiry_edit if field == "invitation_expiry_days" else page.limit_edit
    retype(qtbot, editor, text)
    assert page.check() == {field: message}
    click(qtbot, window.save_button)

    assert shown_errors(window, "invitations") == {field: message}
    assert window.banner.text() == (
        "Nothing was saved. Please correct the fields marked in red on: Invitations."
    )
    assert settings.get_settings(uow, admin.organization_id) == before
    assert audit_rows(uow, admin, "settings.update") == []

    # Correcting the value clears the message, and then the save goes through.
    retype(qtbot, editor, "7")
    assert shown_errors(window, "invitations") == {}
    click(qtbot, window.save_button)
    stored = settings.get_settings(uow, admin.organization_id)
    assert getattr(stored, field) == 7
    assert stored.who_can_send_user_invitation is Role.ADMIN_LOCAL


# ---- Referrals -------------------------------------------------------------------------------


def test_referrals_page_shows_the_stored_values(
    qtbot: QtBot, uow: UnitOfWork, admin: Operator
) -> None:
    settings.update_settings(uow, admin, {
        "referral_is_active": False,
        "number_of_referrals_needed_for_signup": 3,
        "adhesion_required": True,
    })
    window = open_settings(qtbot, uow, admin, "referrals")
    page = window.page("referrals")
    assert isinstance(page, ReferralsPage)

    assert not page.active_box.isChecked()
    assert page.needed_edit.text() == "3"
    assert page.adhesion_box.isChecked()
    assert page.mode_label.text() == "Invite-only registration"
    assert page.invite_only_notice.isVisible()
    assert "3 different existing members" in page.invite_only_notice.text()


def test_referrals_edit_and_save_writes_through_the_services_with_an_audit_row(
    qtbot: QtBot, uow: UnitOfWork, admin: Operator
) -> None:
    window = open_settings(qtbot, uow, admin, "referrals")
    page = window.page("referrals")
    assert isinstance(page, ReferralsPage)
    assert page.active_box.isChecked()
    assert page.needed_edit.text() == ""

    click(qtbot, page.active_box)
    retype(qtbot, page.needed_edit, "1")
    click(qtbot, page.adhesion_box)
    with qtbot.waitSignal(window.settings_saved, timeout=2000):
        click(qtbot, window.save_button)

    stored = settings.get_settings(uow, admin.organization_id)
    assert stored.referral_is_active is False
    assert stored.number_of_referrals_needed_for_signup == 1
    assert stored.adhesion_required is True
    assert stored.invite_only

    [entry] = audit_rows(uow, admin, "settings.update")
    assert entry.before == {
        "referralSettings.isActive": True,
        "referralSettings.numberOfReferralsNeededForSignup": None,
        "adhesion.required": False,
    }
    assert entry.after == {
        "referralSettings.isActive": False,
        "referralSettings.numberOfReferralsNeededForSignup": 1,
        "adhesion.required": True,
    }
    assert window.banner.text() == "Saved. 3 changes recorded in the audit log."


def test_clearing_referrals_needed_returns_to_open_registration(
    qtbot: QtBot, uow: UnitOfWork, admin: Operator
) -> None:
    settings.update_settings(uow, admin, {"number_of_referrals_needed_for_signup": 2})
    window = open_settings(qtbot, uow, admin, "referrals")
    page = window.page("referrals")
    assert isinstance(page, ReferralsPage)

    retype(qtbot, page.needed_edit, "")
    assert page.mode_label.text() == "Open registration"
    click(qtbot, window.save_button)

    stored = settings.get_settings(uow, admin.organization_id)
    assert stored.number_of_referrals_needed_for_signup is None
    assert not stored.invite_only


def test_invite_only_warning_appears_at_one_or_more_and_disappears_at_zero_or_empty(
    qtbot: QtBot, uow: UnitOfWork, admin: Operator
) -> None:
    window = open_settings(qtbot, uow, admin, "referrals")
    page = window.page("referrals")
    assert isinstance(page, ReferralsPage)
    notice = page.invite_only_notice
    assert not notice.isVisible()
    assert page.mode_label.text() == "Open registration"

    retype(qtbot, page.needed_edit, "1")
    assert notice.isVisible()
    assert INVITE_ONLY_WARNING in notice.text()
    assert (
        "Invite-only mode significantly limits growth. Only use it if your organization "
        "specifically requires controlled membership."
    ) in notice.text()
    assert "Public registration is disabled" in notice.text()
    assert "registration page shows a message explaining the invite-only policy" in notice.text()
    assert "one existing member" in notice.text()
    assert page.mode_label.text() == "Invite-only registration"

    retype(qtbot, page.needed_edit, "4")
    assert notice.isVisible()
    assert "4 different existing members" in notice.text()

    retype(qtbot, page.needed_edit, "0")
    assert not notice.isVisible()
    assert page.mode_label.text() == "Open registration"

    retype(qtbot, page.needed_edit, "2")
    assert notice.isVisible()
    retype(qtbot, page.needed_edit, "")
    assert not notice.isVisible()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("-1", "Referrals needed for sign-up must be between 0 and 20"),
        ("21", "Referrals needed for sign-up must be between 0 and 20"),
        ("one", "Referrals needed for sign-up must be a whole number"),
    ],
)
def test_referrals_check_rejects_bad_values_and_nothing_is_saved(
    qtbot: QtBot, uow: UnitOfWork, admin: Operator, text: str, message: str
) -> None:
    window = open_settings(qtbot, uow, admin, "referrals")
    page = window.page("referrals")
    assert isinstance(page, ReferralsPage)
    before = settings.get_settings(uow, admin.organization_id)

    click(qtbot, page.adhesion_box)
    retype(qtbot, page.needed_edit, text)
    click(qtbot, window.save_button)

    assert shown_errors(window, "referrals") == {"number_of_referrals_needed_for_signup": message}
    assert not page.invite_only_notice.isVisible()
    assert settings.get_settings(uow, admin.organization_id) == before
    assert audit_rows(uow, admin, "settings.update") == []


# ---- Organization ----------------------------------------------------------------------------


def write_png(path: Path, colour: str = "#0E6BA8") -> bytes:
    image = QImage(120, 40, QImage.Format.Format_ARGB32)
    image.fill(QColor(colour))
    assert image.save(str(path))
    return path.read_bytes()


def test_organization_page_shows_the_stored_values(
    qtbot: QtBot, uow: UnitOfWork, admin: Operator, tmp_path: Path
) -> None:
    logo = write_png(tmp_path / "logo.png")
    organization.update_organization(
        uow, admin, {"accent_color": "#AA3377", "logo": logo, "logo_mime": "image/png"}
    )
    window = open_settings(qtbot, uow, admin, "organization")
    page = window.page("organization")
    assert isinstance(page, OrganizationPage)

    assert page.name_edit.text() == "Harbour Rowing Club"
    assert page.description_edit.toPlainText() == "A rowing club with chapters along the coast."
    assert page.accent_edit.text() == "#AA3377"
    assert "#AA3377" in page.accent_swatch.styleSheet()
    assert page.url_edit.text() == "https://join.example.org"
    assert not page.logo_preview.pixmap().isNull()
    assert page.logo_info.text().startswith("PNG, ")
    assert "120 × 40 px" in page.logo_info.text()
    assert page.remove_logo_button.isEnabled()


def test_organization_edit_and_save_writes_through_the_services_with_an_audit_row(
    qtbot: QtBot, uow: UnitOfWork, admin: Operator
) -> None:
    window = open_settings(qtbot, uow, admin, "organization")
    page = window.page("organization")
    assert isinstance(page, OrganizationPage)

    retype(qtbot, page.name_edit, "Harbour Rowing & Sculling Club")
    retype(qtbot, page.description_edit, "Rowing on the whole coast.")
    retype(qtbot, page.accent_edit, "#1a7f37")
    retype(qtbot, page.url_edit, "https://members.example.org/")
    with qtbot.waitSignal(window.settings_saved, timeout=2000):
        click(qtbot, window.save_button)

    stored = organization.get_organization(uow, admin.organization_id)
    assert stored.name == "Harbour Rowing & Sculling Club"
    assert stored.description == "Rowing on the whole coast."
    assert stored.accent_color == "#1A7F37"
    assert stored.registration_base_url == "https://members.example.org"

    [entry] = audit_rows(uow, admin, "organization.update")
    assert entry.action == "organization.update"
    assert entry.entity_id == admin.organization_id
    assert entry.before == {
        "name": "Harbour Rowing Club",
        "description": "A rowing club with chapters along the coast.",
        "accent_color": "#2F6FEB",
        "registration_base_url": "https://join.example.org",
    }
    assert entry.after == {
        "name": "Harbour Rowing & Sculling Club",
        "description": "Rowing on the whole coast.",
        "accent_color": "#1A7F37",
        "registration_base_url": "https://members.example.org",
    }
    assert window.banner.text() == "Saved. 4 changes recorded in the audit log."
    # The page now shows what is stored (normalized by the service).
    assert page.accent_edit.text() == "#1A7F37"
    assert page.url_edit.text() == "https://members.example.org"


def test_choosing_and_removing_a_logo(
    qtbot: QtBot, uow: UnitOfWork, admin: Operator, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    png = write_png(tmp_path / "crest.png")
    monkeypatch.setattr(
        QFileDialog, "getOpenFileName",
        staticmethod(lambda *args, **kwargs: (str(tmp_path / "crest.png"), "")),
    )
    window = open_settings(qtbot, uow, admin, "organization")
    page = window.page("organization")
    assert isinstance(page, OrganizationPage)
    assert page.logo_preview.text() == "No logo"
    assert not page.remove_logo_button.isEnabled()

    click(qtbot, page.choose_logo_button)
    assert not page.logo_preview.pixmap().isNull()
    assert "120 × 40 px" in page.logo_info.text()
    click(qtbot, window.save_button)

    stored = organization.get_organization(uow, admin.organization_id)
    assert stored.logo == png
    assert stored.logo_mime == "image/png"
    [entry] = audit_rows(uow, admin, "organization.update")
    assert entry.before == {"logo": None, "logo_mime": None}
    assert entry.after["logo"]["bytes"] == len(png)
    assert entry.after["logo_mime"] == "image/png"
    assert window.banner.text() == "Saved. 1 change recorded in the audit log."

    click(qtbot, page.remove_logo_button)
    assert page.logo_preview.text() == "No logo"
    click(qtbot, window.save_button)
    stored = organization.get_organization(uow, admin.organization_id)
    assert stored.logo is None
    assert stored.logo_mime is None


@pytest.mark.parametrize(
    ("filename", "content", "message"),
    [
        ("notes.png", b"not really a picture",
         "Logo must be a PNG, JPEG or SVG image; notes.png is not one."),
        ("huge.png", b"\x89PNG\r\n\x1a\n" + b"0" * 600_000,
         "Logo must be at most 512 KB; huge.png is 586 KB."),
    ],
    ids=["not-an-image", "too-large"],
)
def test_a_logo_file_that_cannot_be_used_is_refused_next_to_the_logo(
    qtbot: QtBot, uow: UnitOfWork, admin: Operator, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, filename: str, content: bytes, message: str,
) -> None:
    (tmp_path / filename).write_bytes(content)
    monkeypatch.setattr(
        QFileDialog, "getOpenFileName",
        staticmethod(lambda *args, **kwargs: (str(tmp_path / filename), "")),
    )
    window = open_settings(qtbot, uow, admin, "organization")
    page = window.page("organization")
    assert isinstance(page, OrganizationPage)
    retype(qtbot, page.name_edit, "Renamed Club")

    click(qtbot, page.choose_logo_button)
    assert shown_errors(window, "organization") == {"logo": message}
    assert page.logo_preview.text() == "No logo"
    click(qtbot, window.save_button)
    stored = organization.get_organization(uow, admin.organization_id)
    assert stored.name == "Harbour Rowing Club"
    assert stored.logo is None
    assert audit_rows(uow, admin, "organization.update") == []


def test_the_colour_button_fills_the_hex_field_and_swatch(
    qtbot: QtBot, uow: UnitOfWork, admin: Operator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        QColorDialog, "getColor", staticmethod(lambda *args, **kwargs: QColor("#123456"))
    )
    window = open_settings(qtbot, uow, admin, "organization")
    page = window.page("organization")
    assert isinstance(page, OrganizationPage)

    click(qtbot, page.accent_button)
    assert page.accent_edit.text() == "#123456"
    assert "#123456" in page.accent_swatch.styleSheet()
    click(qtbot, window.save_button)
    assert organization.get_organization(uow, admin.organization_id).accent_color == "#123456"


@pytest.mark.parametrize(
    ("field", "text", "message"),
    [
        ("accent_color", "#12345", "Accent colour must look like #2F6FEB"),
        ("accent_color", "blue", "Accent colour must look like #2F6FEB"),
        ("registration_base_url", "join.example.org",
         "Registration base URL must start with https:// (or http://) and name a host"),
        ("registration_base_url", "ftp://join.example.org",
         "Registration base URL must start with https:// (or http://) and name a host"),
        ("name", "", "Name is required"),
    ],
)
def test_organization_check_rejects_bad_values_and_nothing_is_saved(
    qtbot: QtBot, uow: UnitOfWork, admin: Operator, field: str, text: str, message: str
) -> None:
    window = open_settings(qtbot, uow, admin, "organization")
    page = window.page("organization")
    assert isinstance(page, OrganizationPage)
    before = organization.get_organization(uow, admin.organization_id)
    editors = {"accent_color": page.accent_edit, "registration_base_url": page.url_edit,
               "name": page.name_edit}

    retype(qtbot, page.description_edit, "A good change next to a bad one.")
    retype(qtbot, editors[field], text)
    click(qtbot, window.save_button)

    assert shown_errors(window, "organization") == {field: message}
    assert window.page("organization").row(field).error.isVisible()
    assert organization.get_organization(uow, admin.organization_id) == before
    assert audit_rows(uow, admin, "organization.update") == []


# ---- Revert ----------------------------------------------------------------------------------


def test_revert_restores_the_loaded_values_on_every_page(
    qtbot: QtBot, uow: UnitOfWork, admin: Operator
) -> None:
    window = open_settings(qtbot, uow, admin, "invitations")
    invitations = window.page("invitations")
    referrals = window.page("referrals")
    org = window.page("organization")
    assert isinstance(invitations, InvitationsPage)
    assert isinstance(referrals, ReferralsPage)
    assert isinstance(org, OrganizationPage)

    click(qtbot, invitations.who_buttons[Role.ADMIN_TENANT])
    retype(qtbot, invitations.expiry_edit, "-1")
    window.show_page("referrals")
    retype(qtbot, referrals.needed_edit, "3")
    click(qtbot, referrals.adhesion_box)
    window.show_page("organization")
    retype(qtbot, org.name_edit, "Something else")
    retype(qtbot, org.accent_edit, "nope")
    assert window.revert_button.isEnabled()

    click(qtbot, window.revert_button)

    assert invitations.who_buttons[Role.USER].isChecked()
    assert invitations.expiry_edit.text() == "14"
    assert referrals.needed_edit.text() == ""
    assert not referrals.adhesion_box.isChecked()
    assert not referrals.invite_only_notice.isVisible()
    assert org.name_edit.text() == "Harbour Rowing Club"
    assert org.accent_edit.text() == "#2F6FEB"
    assert all(not page.visible_errors() for page in window.pages)
    assert not window.has_unsaved_changes()
    assert not window.save_button.isEnabled()
    assert window.unsaved_label.text() == ""
    assert audit_rows(uow, admin, "settings.update") == []


def test_referrals_page_saves_whether_registration_asks_for_a_password(
    qtbot: QtBot, uow: UnitOfWork, admin: Operator
) -> None:
    page = ReferralsPage(uow, admin)  # alone, a page reads and writes through its own hub
    qtbot.addWidget(page)
    page.load()
    assert page.password_box.isChecked()  # the default: people choose a password
    page.password_box.click()
    assert page.check() == {}
    page.hub.mutate(page, page.writer(), {SETTINGS})  # (the page's own, synchronous hub)
    assert settings.get_settings(uow, admin.organization_id).registration_asks_password is False
    with uow:
        changes = [e.after for e in audit.entries(uow.session, admin.organization_id,
                                                    entity_type="settings")]
    assert {"referralSettings.registrationForm.askPassword": False} in changes or any(
        "registrationForm.askPassword" in key for after in changes for key in after)
