"""Ask for the SMTP password when this computer's keyring has none, and keep it there.

The password goes to the OS keyring only (context.credentials): never to the database, a
file or a log. If the keyring cannot store it, it is used for this session and the user
is told so.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLineEdit,
    QVBoxLayout,
    QWidget,
)

from invite_desk.services.credentials import CredentialStore, CredentialStoreError
from invite_desk.services.mail_settings import MailSettings
from invite_desk.ui.widgets import PlainLabel

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PasswordAnswer:
    password: str
    stored: bool  # False: the keyring refused it; it lasts for this session only
    problem: str = ""


class PasswordPrompt(QDialog):
    """Asks for the password of the configured SMTP user; OK stays disabled until one is typed."""

    def __init__(self, mail: MailSettings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("SMTP password")
        self.setModal(True)
        intro = PlainLabel(
            f"Sending needs the password of <b>{_html(mail.username)}</b> on "
            f"<b>{_html(mail.host)}:{mail.port}</b>. It is kept in this computer's keyring, "
            "never in the database."
        )
        intro.setTextFormat(Qt.TextFormat.RichText)
        intro.setWordWrap(True)
        self.password_edit = QLineEdit()
        self.password_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.password_edit.setAccessibleName("SMTP password")
        self.password_edit.setMinimumWidth(280)
        form = QFormLayout()
        form.addRow("Password:", self.password_edit)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        self._ok = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        self._ok.setText("Use this password")
        self._ok.setEnabled(False)
        self.password_edit.textChanged.connect(lambda text: self._ok.setEnabled(bool(text)))
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addLayout(form)
        layout.addWidget(self.buttons)

    def password(self) -> str:
        return self.password_edit.text()


def ask_smtp_password(
    parent: QWidget | None, mail: MailSettings, credentials: CredentialStore
) -> PasswordAnswer | None:
    """Show the prompt; store the answer in the keyring. None when the user cancels."""
    dialog = PasswordPrompt(mail, parent)
    try:
        if dialog.exec() != QDialog.DialogCode.Accepted or not dialog.password():
            return None
        return remember_password(mail, credentials, dialog.password())
    finally:
        dialog.password_edit.clear()
        dialog.deleteLater()


def remember_password(
    mail: MailSettings, credentials: CredentialStore, password: str
) -> PasswordAnswer:
    try:
        credentials.set(mail.password_key(), password)
    except CredentialStoreError as exc:
        return PasswordAnswer(password, False, f"{exc} The password is used for this session only.")
    return PasswordAnswer(password, True)


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


AskPassword = Callable[[QWidget | None, MailSettings, CredentialStore], PasswordAnswer | None]


@dataclass(frozen=True)
class PasswordOutcome:
    go_on: bool  # False: the user cancelled the prompt, nothing should be sent
    password: str | None  # None when the server needs no sign-in
    warning: str = ""  # e.g. the keyring refused it: kept for this session only


class SmtpPasswords:
    """Where a window gets the SMTP password: this session's memory, the keyring, or the
    user (asked once, then stored in the keyring)."""

    def __init__(self, credentials: CredentialStore, ask: AskPassword | None = None) -> None:
        self._credentials = credentials
        self._ask = ask or ask_smtp_password
        self._session: dict[str, str] = {}

    def password_for(self, parent: QWidget | None, mail: MailSettings) -> PasswordOutcome:
        if not mail.username or mail.uses_oauth:  # OAuth2: the sign-in is checked at send
            return PasswordOutcome(True, None)
        key = mail.password_key()
        if key in self._session:
            return PasswordOutcome(True, self._session[key])
        try:
            stored = self._credentials.get(key)
        except CredentialStoreError as exc:
            log.warning("keyring unavailable: %s", exc)
            stored = None
        if stored:
            return PasswordOutcome(True, stored)
        answer = self._ask(parent, mail, self._credentials)
        if answer is None:
            return PasswordOutcome(False, None)
        if not answer.stored:
            self._session[key] = answer.password
        return PasswordOutcome(True, answer.password, answer.problem)
