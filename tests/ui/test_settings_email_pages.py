"""Settings → Email (SMTP) and Email template: what the user sees, what the database, the
keyring and a real loopback SMTP server end up holding."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QColor, QFontInfo, QImage, QTextCursor, QTextDocument
from PySide6.QtWidgets import QAbstractButton, QLabel, QLineEdit, QPlainTextEdit
from pytestqt.qtbot import QtBot
from sqlalchemy import select

from invite_desk.services import audit, mail_settings, organization
from invite_desk.services.credentials import (
    CredentialStoreError,
    MemoryCredentialStore,
    smtp_key,
)
from invite_desk.services.email.templates import InvitationTemplates, default_templates
from invite_desk.services.mail_settings import MailSettings
from invite_desk.services.models import Base, Setting
from invite_desk.services.operator import Operator
from invite_desk.services.roles import Role
from invite_desk.services.uow import UnitOfWork
from invite_desk.ui.settings import SettingsWindow, SmtpPage, TemplatePage
from invite_desk.ui.settings.smtp_page import NO_KEYRING_TEXT, STORED_TEXT
from invite_desk.ui.settings.template_page import PREVIEW_DELAY_MS, STALE_PREVIEW
from invite_desk.ui.settings.window import PAGE_CLASSES
from invite_desk.ui.tasks import SynchronousRunner
from tests.smtp_server import LoopbackSmtpServer


def _index(page_class: type) -> int:
    """A page's row in the settings navigation (pages are added over time)."""
    return PAGE_CLASSES.index(page_class)

MakeServer = Callable[..., LoopbackSmtpServer]
SECRET = "pa55-Word_that-is-unique-7741"
USER = "invitations@harbour.example"
CONFIGURED: dict[str, Any] = {
    "host": "smtp.office365.com",
    "port": 587,
    "security": "starttls",
    "username": USER,
    "from_address": "invitations@harbour.example",
    "from_name": "Harbour Rowing Club",
    "rate_per_minute": 30,
}

# ---- helpers ---------------------------------------------------------------------------------


def open_settings(
    qtbot: QtBot, uow: UnitOfWork, operator: Operator, page: str,
    credentials: MemoryCredentialStore | None = None,
) -> SettingsWindow:
    window = SettingsWindow(uow, operator, credentials=credentials)
    qtbot.addWidget(window)
    window.resize(1000, 700)
    window.show()
    qtbot.waitExposed(window)
    window.show_page(page)
    return window


def smtp_page(window: SettingsWindow) -> SmtpPage:
    page = window.page("email-smtp")
    assert isinstance(page, SmtpPage)
    return page


def template_page(window: SettingsWindow) -> TemplatePage:
    page = window.page("email-template")
    assert isinstance(page, TemplatePage)
    return page


def retype(qtbot: QtBot, editor: QLineEdit | QPlainTextEdit, text: str) -> None:
    """Select everything in `editor` and type `text` over it, as a user would."""
    editor.setFocus()
    qtbot.keyClick(editor, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
    if text:
        qtbot.keyClicks(editor, text)
    else:
        qtbot.keyClick(editor, Qt.Key.Key_Backspace)


def type_at_line_end(qtbot: QtBot, editor: QPlainTextEdit, line: int, text: str) -> None:
    """Put the cursor at the end of `line` (1-based) and type `text` there."""
    editor.setFocus()
    cursor = QTextCursor(editor.document().findBlockByNumber(line - 1))
    cursor.movePosition(QTextCursor.MoveOperation.EndOfBlock)
    editor.setTextCursor(cursor)
    qtbot.keyClicks(editor, text)


def click(qtbot: QtBot, widget: QAbstractButton) -> None:
    qtbot.mouseClick(widget, Qt.MouseButton.LeftButton)


def audit_rows(uow: UnitOfWork, admin: Operator, action: str) -> list[audit.AuditEntry]:
    with uow:
        rows = audit.entries(uow.session, admin.organization_id)
    return [row for row in rows if row.action == action]


def fill_server(qtbot: QtBot, page: SmtpPage, server: LoopbackSmtpServer, *, user: str = "",
                password: str = "") -> None:
    retype(qtbot, page.host_edit, server.host)
    retype(qtbot, page.port_edit, str(server.port))
    retype(qtbot, page.username_edit, user)
    if password:
        retype(qtbot, page.password_edit, password)


def wait_for_test_result(qtbot: QtBot, page: SmtpPage) -> str:
    qtbot.waitUntil(lambda: page.test_result.kind in ("success", "error"), timeout=15_000)
    return page.test_result.text()


# ---- Email (SMTP) ------------------------------------------------------------------------------


def test_smtp_page_shows_the_stored_values_and_never_the_password(
    qtbot: QtBot, uow: UnitOfWork, admin: Operator, credentials: MemoryCredentialStore
) -> None:
    mail_settings.update_mail_settings(
        uow, admin, {**CONFIGURED, "security": "ssl", "port": 465, "rate_per_minute": 1},
        password=SECRET, credentials=credentials,
    )
    window = open_settings(qtbot, uow, admin, "email-smtp", credentials)
    page = smtp_page(window)

    assert page.host_edit.text() == "smtp.office365.com"
    assert page.port_edit.text() == "465"
    assert page.security_buttons["ssl"].isChecked()
    assert not page.security_buttons["starttls"].isChecked()
    assert page.username_edit.text() == "invitations@harbour.example"
    assert page.from_address_edit.text() == "invitations@harbour.example"
    assert page.from_name_edit.text() == "Harbour Rowing Club"
    assert page.rate_edit.text() == "1"
    # The secret is never read back into the window: the field is empty, the line says where it is.
    assert page.password_edit.text() == ""
    assert page.password_edit.echoMode() == QLineEdit.EchoMode.Password
    assert page.password_status.isVisible()
    assert page.password_status.text() == STORED_TEXT
    assert page.password_edit.placeholderText() == "Type a new one to replace it"
    assert not window.has_unsaved_changes()
    assert page.check() == {}


def test_the_rate_limit_help_names_the_providers_limits(
    qtbot: QtBot, uow: UnitOfWork, admin: Operator, credentials: MemoryCredentialStore
) -> None:
    window = open_settings(qtbot, uow, admin, "email-smtp", credentials)
    page = smtp_page(window)
    help_text = " ".join(
        label.text() for label in page.row("rate_per_minute").container.findChildren(QLabel)
        if label.isVisible()
    )
    assert "Microsoft 365 allows 30 per minute" in help_text
    assert "Google Workspace 2,000 per day (about 1.4 per minute sustained" in help_text
    assert "0 = no limit" in help_text


def test_smtp_edit_and_save_writes_the_settings_and_the_password_only_to_the_keyring(
    qtbot: QtBot, uow: UnitOfWork, admin: Operator, credentials: MemoryCredentialStore,
    sqlite_url: str,
) -> None:
    window = open_settings(qtbot, uow, admin, "email-smtp", credentials)
    page = smtp_page(window)
    assert page.password_status.text() == "No sign-in: no password is needed."
    assert not page.password_edit.isEnabled()  # no user name yet: nothing to sign in with

    retype(qtbot, page.host_edit, "smtp.gmail.com")
    click(qtbot, page.security_buttons["ssl"])
    assert page.port_edit.text() == "465"  # the usual port for SSL/TLS is suggested
    retype(qtbot, page.username_edit, "office@harbour.example")
    assert page.password_edit.isEnabled()
    retype(qtbot, page.password_edit, SECRET)
    assert page.password_status.text() == (
        "A new password: Save keeps it in the system keyring, never in the database."
    )
    retype(qtbot, page.from_address_edit, "office@harbour.example")
    retype(qtbot, page.from_name_edit, "  Harbour   Rowing Club  ")
    retype(qtbot, page.rate_edit, "1")
    assert window.page_model.item(_index(SmtpPage)).text() == "Email (SMTP) •"
    with qtbot.waitSignal(window.settings_saved, timeout=2000):
        click(qtbot, window.save_button)

    stored = mail_settings.get_mail_settings(uow, admin.organization_id)
    assert stored == MailSettings(
        host="smtp.gmail.com", port=465, security="ssl", username="office@harbour.example",
        from_address="office@harbour.example", from_name="Harbour Rowing Club",
        rate_per_minute=1,
    )
    [entry] = audit_rows(uow, admin, "smtp.update")
    assert entry.actor == "Ada Admin"
    assert entry.before == {
        "host": "", "port": 587, "security": "starttls", "username": "", "from_address": "",
        "from_name": "", "rate_per_minute": 30,
    }
    assert entry.after["host"] == "smtp.gmail.com"
    assert SECRET not in repr(entry)
    assert window.banner.text().startswith("Saved.")

    # The password is in the store the window was given, under this server and user...
    assert credentials.get(smtp_key("smtp.gmail.com", 465, "office@harbour.example")) == SECRET
    # ...and in no database row, nor anywhere in the database file.
    with uow:
        values = uow.session.scalars(select(Setting.value_json)).all()
        assert values and not any(SECRET in value for value in values)
        for table in Base.metadata.sorted_tables:
            for row in uow.session.execute(select(table)).all():
                assert SECRET not in repr(tuple(row)), table.name
    database = Path(sqlite_url.removeprefix("sqlite:///"))
    for path in (database, database.with_name(database.name + "-wal")):
        if path.exists():
            assert SECRET.encode() not in path.read_bytes()

    # After the save the window shows the stored state: field empty, secret in the keyring.
    assert page.password_edit.text() == ""
    assert page.password_status.text() == STORED_TEXT
    assert not window.has_unsaved_changes()


def test_only_a_new_password_is_a_change_and_goes_to_the_keyring_without_an_audit_row(
    qtbot: QtBot, uow: UnitOfWork, admin: Operator, credentials: MemoryCredentialStore
) -> None:
    mail_settings.update_mail_settings(uow, admin, CONFIGURED)
    window = open_settings(qtbot, uow, admin, "email-smtp", credentials)
    page = smtp_page(window)
    assert page.password_status.text() == (
        "No password stored yet: type it here; Save keeps it in the system keyring."
    )
    retype(qtbot, page.password_edit, SECRET)
    assert window.has_unsaved_changes()
    click(qtbot, window.save_button)

    key = smtp_key("smtp.office365.com", 587, "invitations@harbour.example")
    assert credentials.get(key) == SECRET
    assert len(audit_rows(uow, admin, "smtp.update")) == 1  # only the setup above
    assert page.password_status.text() == STORED_TEXT


class BrokenKeyring(MemoryCredentialStore):
    def set(self, key: str, secret: str) -> None:
        raise CredentialStoreError("Could not save the password in the system keyring: locked")


def test_a_keyring_that_refuses_the_password_is_reported_and_the_settings_still_save(
    qtbot: QtBot, uow: UnitOfWork, admin: Operator
) -> None:
    keyring = BrokenKeyring()
    window = open_settings(qtbot, uow, admin, "email-smtp", keyring)
    page = smtp_page(window)
    retype(qtbot, page.host_edit, "smtp.office365.com")
    retype(qtbot, page.username_edit, USER)
    retype(qtbot, page.password_edit, SECRET)
    retype(qtbot, page.from_address_edit, USER)
    click(qtbot, window.save_button)

    assert mail_settings.get_mail_settings(uow, admin.organization_id).host == "smtp.office365.com"
    assert page.password_status.text() == (
        "The password was not saved: Could not save the password in the system keyring: locked"
    )
    assert "#B42318" in page.password_status.styleSheet()
    assert page.password_edit.text() == ""
    with uow:
        assert not any(SECRET in v for v in uow.session.scalars(select(Setting.value_json)))

    window.revert()  # the next reload shows the keyring as it is
    assert page.password_status.text() == (
        "No password stored yet: type it here; Save keeps it in the system keyring."
    )


def test_changing_only_the_port_keeps_the_stored_password_for_the_same_server_and_user(
    qtbot: QtBot, uow: UnitOfWork, admin: Operator, credentials: MemoryCredentialStore
) -> None:
    mail_settings.update_mail_settings(uow, admin, CONFIGURED, password=SECRET,
                                       credentials=credentials)
    window = open_settings(qtbot, uow, admin, "email-smtp", credentials)
    page = smtp_page(window)
    click(qtbot, page.security_buttons["ssl"])
    assert page.port_edit.text() == "465"
    assert page.password_status.text() == STORED_TEXT
    click(qtbot, window.save_button)
    assert credentials.get(smtp_key("smtp.office365.com", 465, USER)) == SECRET

    # Another server never gets this server's password.
    retype(qtbot, page.host_edit, "smtp.elsewhere.example")
    assert page.password_status.text() == (
        "Type the password for this server and user name; Save keeps it in the keyring."
    )
    click(qtbot, window.save_button)
    assert credentials.get(smtp_key("smtp.elsewhere.example", 465, USER)) is None


def test_choosing_a_security_suggests_its_port_unless_the_port_was_set_by_hand(
    qtbot: QtBot, uow: UnitOfWork, admin: Operator, credentials: MemoryCredentialStore
) -> None:
    window = open_settings(qtbot, uow, admin, "email-smtp", credentials)
    page = smtp_page(window)
    assert page.security_buttons["starttls"].isChecked()
    assert page.port_edit.text() == "587"

    click(qtbot, page.security_buttons["ssl"])
    assert page.port_edit.text() == "465"
    click(qtbot, page.security_buttons["none"])
    assert page.port_edit.text() == "25"
    retype(qtbot, page.port_edit, "2525")
    click(qtbot, page.security_buttons["starttls"])
    assert page.port_edit.text() == "2525"


@pytest.mark.parametrize(
    ("field", "text", "message"),
    [
        ("host", "", "SMTP server is required (for example smtp.office365.com)"),
        ("host", "smtp office365.com", "SMTP server is required (for example smtp.office365.com)"),
        ("port", "0", "Port must be a number between 1 and 65535"),
        ("port", "70000", "Port must be a number between 1 and 65535"),
        ("port", "smtp", "Port must be a number between 1 and 65535"),
        ("port", "", "Port must be a number between 1 and 65535"),
        ("from_address", "harbour.example", "From address must be an email address"),
        ("from_address", "Harbour <a@b.example>", "From address must be an email address"),
        ("rate_per_minute", "-1",
         "Rate limit must be 0 (none) or a positive number per minute"),
    ],
)
def test_smtp_check_names_the_bad_field_and_nothing_is_saved(
    qtbot: QtBot, uow: UnitOfWork, admin: Operator, credentials: MemoryCredentialStore,
    field: str, text: str, message: str,
) -> None:
    mail_settings.update_mail_settings(uow, admin, CONFIGURED)
    window = open_settings(qtbot, uow, admin, "email-smtp", credentials)
    page = smtp_page(window)
    editors = {"host": page.host_edit, "port": page.port_edit,
               "from_address": page.from_address_edit, "rate_per_minute": page.rate_edit}

    retype(qtbot, page.from_name_edit, "A good change next to a bad one")
    retype(qtbot, page.password_edit, SECRET)
    retype(qtbot, editors[field], text)
    assert page.check() == {field: message}
    with qtbot.assertNotEmitted(window.settings_saved):
        click(qtbot, window.save_button)

    assert page.visible_errors() == {field: message}
    assert page.row(field).error.isVisible()
    assert window.banner.text() == (
        "Nothing was saved. Please correct the fields marked in red on: Email (SMTP)."
    )
    assert mail_settings.get_mail_settings(uow, admin.organization_id) == MailSettings(**CONFIGURED)
    assert len(audit_rows(uow, admin, "smtp.update")) == 1  # only the setup
    assert credentials.get(smtp_key("smtp.office365.com", 587, USER)) is None


def test_an_untouched_unconfigured_smtp_page_does_not_block_saving_other_pages(
    qtbot: QtBot, uow: UnitOfWork, admin: Operator, credentials: MemoryCredentialStore
) -> None:
    window = open_settings(qtbot, uow, admin, "organization", credentials)
    org_page = window.page("organization")
    retype(qtbot, org_page.name_edit, "Harbour Rowing Association")  # type: ignore[attr-defined]
    with qtbot.waitSignal(window.settings_saved, timeout=2000):
        click(qtbot, window.save_button)
    assert smtp_page(window).visible_errors() == {}
    assert organization.get_organization(uow, admin.organization_id).name == (
        "Harbour Rowing Association"
    )


def test_without_a_credential_store_the_password_field_is_disabled_and_says_why(
    qtbot: QtBot, uow: UnitOfWork, admin: Operator
) -> None:
    mail_settings.update_mail_settings(uow, admin, CONFIGURED)
    window = open_settings(qtbot, uow, admin, "email-smtp", credentials=None)
    page = smtp_page(window)
    assert not page.password_edit.isEnabled()
    assert page.password_edit.toolTip() == NO_KEYRING_TEXT
    assert page.password_status.text() == NO_KEYRING_TEXT

    # The other settings still save.
    retype(qtbot, page.rate_edit, "10")
    click(qtbot, window.save_button)
    assert mail_settings.get_mail_settings(uow, admin.organization_id).rate_per_minute == 10


def test_test_connection_reaches_the_loopback_server_in_the_background(
    qtbot: QtBot, uow: UnitOfWork, admin: Operator, credentials: MemoryCredentialStore,
    smtp_server: LoopbackSmtpServer,
) -> None:
    window = open_settings(qtbot, uow, admin, "email-smtp", credentials)
    page = smtp_page(window)
    fill_server(qtbot, page, smtp_server)
    click(qtbot, page.security_buttons["none"])
    retype(qtbot, page.port_edit, str(smtp_server.port))

    click(qtbot, page.test_button)  # the real thread pool: the window stays responsive
    result = wait_for_test_result(qtbot, page)

    assert page.test_result.kind == "success"
    assert result == (
        f"Connected to 127.0.0.1:{smtp_server.port} without encryption (no sign-in). "
        "Sending should work."
    )
    assert "#1E5631" in page.test_result.styleSheet()  # green
    assert page.test_button.isEnabled()
    assert smtp_server.connections == 1 and smtp_server.messages == []
    # Testing saves nothing.
    assert mail_settings.get_mail_settings(uow, admin.organization_id) == MailSettings()
    assert audit_rows(uow, admin, "smtp.update") == []

    # Editing the server makes the result stale: it goes.
    retype(qtbot, page.host_edit, "localhost")
    assert not page.test_result.isVisible()


def test_test_connection_with_a_wrong_password_shows_the_servers_refusal(
    qtbot: QtBot, uow: UnitOfWork, admin: Operator, credentials: MemoryCredentialStore,
    make_smtp_server: MakeServer,
) -> None:
    server = make_smtp_server(auth=("mailer", "right"), tls="starttls")
    window = open_settings(qtbot, uow, admin, "email-smtp", credentials)
    page = smtp_page(window)
    page.ssl_context = server.client_ssl_context()  # the test server's certificate is self-signed
    fill_server(qtbot, page, server, user="mailer", password="wrong")

    click(qtbot, page.test_button)
    result = wait_for_test_result(qtbot, page)

    assert page.test_result.kind == "error"
    assert result.startswith(f"127.0.0.1:{server.port} refused the user name or password for mailer")
    assert "app password" in result
    assert "#8A1C1C" in page.test_result.styleSheet()  # red
    assert server.auth_failures == 1
    assert credentials.get(smtp_key("127.0.0.1", server.port, "mailer")) is None

    retype(qtbot, page.password_edit, "right")
    click(qtbot, page.test_button)
    assert wait_for_test_result(qtbot, page) == (
        f"Connected to 127.0.0.1:{server.port} with STARTTLS and signed in as mailer. "
        "Sending should work."
    )
    # A typed password is used for the test only; Save is what keeps it.
    assert credentials.get(smtp_key("127.0.0.1", server.port, "mailer")) is None


def test_test_connection_uses_the_stored_password_when_none_is_typed(
    qtbot: QtBot, uow: UnitOfWork, admin: Operator, credentials: MemoryCredentialStore,
    make_smtp_server: MakeServer,
) -> None:
    server = make_smtp_server(auth=("mailer", "right"), tls="starttls")
    mail_settings.update_mail_settings(
        uow, admin,
        {**CONFIGURED, "host": server.host, "port": server.port, "username": "mailer"},
        password="right", credentials=credentials,
    )
    window = open_settings(qtbot, uow, admin, "email-smtp", credentials)
    page = smtp_page(window)
    page.ssl_context = server.client_ssl_context()
    page.runner = SynchronousRunner()
    assert page.password_status.text() == STORED_TEXT

    click(qtbot, page.test_button)
    assert page.test_result.kind == "success"
    assert "signed in as mailer" in page.test_result.text()

    # With no password anywhere for a user, the test says what is missing instead of trying.
    retype(qtbot, page.username_edit, "someone-else")
    click(qtbot, page.test_button)
    assert page.test_result.text() == "Type the password of someone-else to test signing in."
    assert server.auth_failures == 0


def test_test_connection_first_asks_for_a_usable_server(
    qtbot: QtBot, uow: UnitOfWork, admin: Operator, credentials: MemoryCredentialStore
) -> None:
    window = open_settings(qtbot, uow, admin, "email-smtp", credentials)
    page = smtp_page(window)
    page.runner = SynchronousRunner()
    retype(qtbot, page.port_edit, "99999")
    click(qtbot, page.test_button)
    assert page.test_result.text() == "Correct the server settings marked in red first."
    assert page.visible_errors() == {
        "host": "SMTP server is required (for example smtp.office365.com)",
        "port": "Port must be a number between 1 and 65535",
    }


def test_smtp_page_is_read_only_for_a_member(
    qtbot: QtBot, uow: UnitOfWork, admin: Operator, credentials: MemoryCredentialStore,
    make_operator: Callable[..., Operator],
) -> None:
    mail_settings.update_mail_settings(uow, admin, CONFIGURED, password=SECRET,
                                       credentials=credentials)
    member = make_operator(Role.USER)
    window = open_settings(qtbot, uow, member, "email-smtp", credentials)
    page = smtp_page(window)

    assert page.is_read_only()
    assert page.banner.isVisible()
    assert "ADMIN_TENANT" in page.banner.text()
    assert page.host_edit.text() == "smtp.office365.com"
    for editor in page.findChildren(QLineEdit):
        assert editor.isReadOnly(), editor.accessibleName()
    assert not page.test_button.isEnabled()
    assert not any(button.isEnabled() for button in page.security_buttons.values())
    retype(qtbot, page.host_edit, "smtp.hijack.example")
    assert page.host_edit.text() == "smtp.office365.com"
    assert not window.has_unsaved_changes()
    assert window.save() is False
    assert mail_settings.get_mail_settings(uow, admin.organization_id) == MailSettings(**CONFIGURED)


# ---- Email template --------------------------------------------------------------------------


def write_png(path: Path, colour: str = "#0E6BA8") -> bytes:
    image = QImage(120, 40, QImage.Format.Format_ARGB32)
    image.fill(QColor(colour))
    assert image.save(str(path))
    return path.read_bytes()


def test_template_page_shows_the_defaults_and_a_preview_with_the_real_branding(
    qtbot: QtBot, uow: UnitOfWork, admin: Operator, tmp_path: Path
) -> None:
    logo = write_png(tmp_path / "logo.png")
    organization.update_organization(
        uow, admin, {"accent_color": "#AA3377", "logo": logo, "logo_mime": "image/png"}
    )
    window = open_settings(qtbot, uow, admin, "email-template")
    page = template_page(window)
    defaults = default_templates()

    assert page.subject_edit.text() == defaults.subject.rstrip("\n")  # a one-line editor
    assert page.entered() == defaults
    assert page.html_edit.toPlainText() == defaults.html
    assert page.text_edit.toPlainText() == defaults.text
    for editor in (page.html_edit, page.text_edit):
        assert QFontInfo(editor.font()).fixedPitch(), editor.accessibleName()
    assert not window.has_unsaved_changes()

    preview = page.preview
    assert preview.subject == "Ada Admin invited you to join Harbour Rowing Club"
    assert "Hello Sam Taylor," in preview.html_text
    assert "A rowing club with chapters along the coast." in preview.html_text
    assert "https://join.example.org/join/PREVIEW-TOKEN" in preview.html_text
    assert "#aa3377" in preview.html_view.toHtml().lower()
    logo_image = preview.html_view.loadResource(
        QTextDocument.ResourceType.ImageResource, QUrl("cid:org-logo@invite-desk")
    )
    assert isinstance(logo_image, QImage) and logo_image.width() == 120
    assert "> Hi Sam, I think you would enjoy it here." in preview.text_view.toPlainText()
    assert "organization_name" in page.preview.variables_view.toPlainText()
    assert "nl2br" in page.preview.variables_view.toPlainText()

    page.preview_kind.setCurrentIndex(1)  # a guest invitation to an event
    assert preview.subject == "Ada Admin invited you to Open day (Harbour Rowing Club)"


def test_editing_the_subject_updates_the_preview_after_a_pause(
    qtbot: QtBot, uow: UnitOfWork, admin: Operator
) -> None:
    window = open_settings(qtbot, uow, admin, "email-template")
    page = template_page(window)
    before = page.preview.subject

    retype(qtbot, page.subject_edit, "Welcome to {{ organization_name }}, from {{ inviter_name }}")
    assert page.preview.subject == before  # debounced: not on every key
    assert page.preview_timer.isActive()
    assert page.preview_timer.interval() == PREVIEW_DELAY_MS

    qtbot.waitUntil(
        lambda: page.preview.subject == "Welcome to Harbour Rowing Club, from Ada Admin",
        timeout=3000,
    )
    assert window.page_model.item(_index(TemplatePage)).text() == "Email template •"


@pytest.mark.parametrize(
    ("part", "line", "typed", "message"),
    [
        ("html", 3, "{{ unknown_name }}",
         "HTML template, line 3: 'unknown_name' is undefined. Available names: accent_color,"),
        ("html", 7, "{% if %}",
         "HTML template, line 7: Expected an expression, got 'end of statement block'"),
        ("text", 1, " {{ organization_name }",
         "Text template, line 1: unexpected '}'"),
        ("subject", 1, "{% if %}",
         "Subject template, line 1: Expected an expression, got 'end of statement block'"),
    ],
    ids=["undefined-name", "if-without-condition", "text-unbalanced", "subject-syntax"],
)
def test_a_template_that_does_not_render_shows_part_and_line_and_is_not_saved(
    qtbot: QtBot, uow: UnitOfWork, admin: Operator,
    part: str, line: int, typed: str, message: str,
) -> None:
    window = open_settings(qtbot, uow, admin, "email-template")
    page = template_page(window)
    good_subject = page.preview.subject

    if part == "subject":
        page.subject_edit.setFocus()
        page.subject_edit.end(False)
        qtbot.keyClicks(page.subject_edit, typed)
    else:
        page.editor_tabs.setCurrentIndex(0 if part == "html" else 1)
        editor = page.html_edit if part == "html" else page.text_edit
        type_at_line_end(qtbot, editor, line, typed)

    error = page.row(part).error
    qtbot.waitUntil(error.isVisible, timeout=3000)
    assert error.text().startswith(message)
    assert "#B42318" in error.styleSheet()  # red
    assert page.visible_errors() == {part: error.text()}
    if part != "subject":
        tab = 0 if part == "html" else 1
        assert page.editor_tabs.tabText(tab).endswith("⚠")
    assert page.preview_status.text() == STALE_PREVIEW
    assert page.preview.subject == good_subject  # the last good preview stays

    with qtbot.assertNotEmitted(window.settings_saved):
        click(qtbot, window.save_button)
    assert window.banner.text() == (
        "Nothing was saved. Please correct the fields marked in red on: Email template."
    )
    assert mail_settings.get_templates(uow, admin.organization_id) == default_templates()
    assert audit_rows(uow, admin, "templates.update") == []


def test_a_valid_edit_is_saved_with_an_audit_row(
    qtbot: QtBot, uow: UnitOfWork, admin: Operator
) -> None:
    window = open_settings(qtbot, uow, admin, "email-template")
    page = template_page(window)
    defaults = default_templates()

    page.editor_tabs.setCurrentIndex(1)
    type_at_line_end(qtbot, page.text_edit, 1, " Welcome from {{ organization_name }}!")
    qtbot.waitUntil(
        lambda: "Welcome from Harbour Rowing Club!" in page.preview.text_view.toPlainText(),
        timeout=3000,
    )
    with qtbot.waitSignal(window.settings_saved, timeout=2000):
        click(qtbot, window.save_button)

    stored = mail_settings.get_templates(uow, admin.organization_id)
    first, _, rest = defaults.text.partition("\n")
    assert stored == InvitationTemplates(
        defaults.subject, defaults.html, f"{first} Welcome from {{{{ organization_name }}}}!\n{rest}"
    )
    [entry] = audit_rows(uow, admin, "templates.update")
    assert entry.actor == "Ada Admin"
    assert entry.before["text"] == defaults.text
    assert entry.after["text"] == stored.text
    assert window.banner.text() == "Saved. 1 change recorded in the audit log."
    assert not window.has_unsaved_changes()


def test_restore_defaults_puts_the_shipped_templates_back(
    qtbot: QtBot, uow: UnitOfWork, admin: Operator
) -> None:
    custom = InvitationTemplates(
        "Join {{ organization_name }}",
        "<p>{{ inviter_name }} invites you: <a href=\"{{ registration_link }}\">join</a></p>",
        "{{ inviter_name }} invites you: {{ registration_link }}",
    )
    mail_settings.update_templates(uow, admin, custom)
    window = open_settings(qtbot, uow, admin, "email-template")
    page = template_page(window)
    assert page.subject_edit.text() == custom.subject
    assert page.preview.subject == "Join Harbour Rowing Club"

    click(qtbot, page.restore_button)
    defaults = default_templates()
    assert page.entered() == defaults
    assert window.has_unsaved_changes()  # shown, not saved yet
    assert mail_settings.get_templates(uow, admin.organization_id) == custom
    qtbot.waitUntil(
        lambda: page.preview.subject == "Ada Admin invited you to join Harbour Rowing Club",
        timeout=3000,
    )

    click(qtbot, window.save_button)
    assert mail_settings.get_templates(uow, admin.organization_id) == defaults
    entries = audit_rows(uow, admin, "templates.update")
    assert len(entries) == 2
    assert entries[0].before["subject"] == custom.subject
    assert entries[0].after["subject"] == defaults.subject


def test_template_page_is_read_only_for_a_member(
    qtbot: QtBot, uow: UnitOfWork, admin: Operator, make_operator: Callable[..., Operator]
) -> None:
    member = make_operator(Role.USER)
    window = open_settings(qtbot, uow, member, "email-template")
    page = template_page(window)

    assert page.is_read_only()
    assert "ADMIN_TENANT" in page.banner.text()
    for editor in (page.subject_edit, page.html_edit, page.text_edit):
        assert editor.isReadOnly(), editor.accessibleName()
    assert not page.restore_button.isEnabled()
    retype(qtbot, page.subject_edit, "Hijacked")
    type_at_line_end(qtbot, page.html_edit, 1, "<!-- hijacked -->")
    assert page.entered() == default_templates()
    assert not window.has_unsaved_changes()
    # The preview still works for reading.
    assert page.preview.subject.endswith("invited you to join Harbour Rowing Club")
    assert window.save() is False
    assert audit_rows(uow, admin, "templates.update") == []


def test_a_connection_test_result_or_a_page_message_does_not_move_the_fields(
    qtbot: QtBot, uow: UnitOfWork, admin: Operator
) -> None:
    window = open_settings(qtbot, uow, admin, "email-smtp")
    page = smtp_page(window)
    qtbot.wait(10)
    watched = (page.from_address_edit, page.test_button, window.save_button)
    before = [w.mapTo(window, w.rect().topLeft()) for w in watched]
    for banner in (page.test_result, page.banner):
        banner.show_message("The server did not answer in time. " * 6, "error")
        qtbot.wait(10)
        assert [w.mapTo(window, w.rect().topLeft()) for w in watched] == before
        banner.clear_message()
        qtbot.wait(10)
        assert [w.mapTo(window, w.rect().topLeft()) for w in watched] == before
