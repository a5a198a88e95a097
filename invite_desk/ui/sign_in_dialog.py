"""Sign in with member email and operator password.

A failed sign-in always shows the same message, whether or not the email exists."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QSettings, QSize, Qt, Signal
from PySide6.QtWidgets import (
    QDialog,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from invite_desk.services import auth, local_config
from invite_desk.services.errors import AuthenticationFailed
from invite_desk.services.operator import Operator
from invite_desk.services.uow import UnitOfWork
from invite_desk.ui import theme
from invite_desk.ui.tasks import BackgroundTask, TaskRunner, error_message
from invite_desk.ui.widgets import PlainLabel

MISSING_CREDENTIALS = "Enter your email and password."


SignInFunction = Callable[[str, str, "str | None"], Operator]


def _sign_in_store() -> QSettings:
    """The last email that signed in, per database, beside config.json. Never the password."""
    path = local_config.config_path().with_name("sign-in.ini")
    return QSettings(str(path), QSettings.Format.IniFormat)


def _key(database_label: str) -> str:
    # QSettings keys treat / and \\ as groups: keep the label readable but flat.
    return "last_email/" + "".join(c if c.isalnum() else "_" for c in database_label or "default")


def remembered_email(database_label: str) -> str:
    value = _sign_in_store().value(_key(database_label), "")
    return value if isinstance(value, str) else ""


def remember_email(database_label: str, email: str) -> None:
    store = _sign_in_store()
    store.setValue(_key(database_label), email)
    store.sync()


class SignInDialog(QDialog):
    """Accepted once `auth.sign_in` returns an operator; `operator` holds it."""

    signed_in = Signal(object)  # Operator

    def __init__(
        self,
        uow: UnitOfWork | None,
        *,
        database_label: str = "",
        email: str = "",
        runner: TaskRunner | None = None,
        parent: QWidget | None = None,
        sign_in: SignInFunction | None = None,
    ) -> None:
        super().__init__(parent)
        self._uow = uow
        # Replica mode: (email, password, new password or None) -> Operator, run in the
        # background like auth.sign_in (app.ReplicaLauncher.sign_in).
        self._sign_in = sign_in
        self._runner = runner
        self._database_label = database_label
        email = email or remembered_email(database_label)
        self.operator: Operator | None = None
        self.setWindowTitle("Sign in · Invite Desk")
        self.setWindowIcon(theme.app_icon())
        self.setMinimumWidth(460)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(36, 32, 36, 24)
        layout.setSpacing(0)

        header = QHBoxLayout()
        header.setSpacing(14)
        logo = PlainLabel()
        logo.setPixmap(theme.app_icon().pixmap(QSize(48, 48)))
        logo.setFixedSize(48, 48)
        header.addWidget(logo, 0, Qt.AlignmentFlag.AlignTop)
        titles = QVBoxLayout()
        titles.setSpacing(2)
        title = PlainLabel("Sign in to Invite Desk")
        theme.set_variant(title, "title")
        subtitle = PlainLabel("Use your member email and operator password.")
        subtitle.setWordWrap(True)
        theme.set_variant(subtitle, "muted")
        titles.addWidget(title)
        titles.addWidget(subtitle)
        header.addLayout(titles, 1)
        layout.addLayout(header)
        layout.addSpacing(24)

        self._body = QWidget()
        body = QVBoxLayout(self._body)
        body.setContentsMargins(0, 0, 0, 0)
        body.setSpacing(6)

        email_label = PlainLabel("&Email")
        self.email_edit = QLineEdit(email)
        self.email_edit.setObjectName("email")
        self.email_edit.setPlaceholderText("you@example.org")
        self.email_edit.setInputMethodHints(Qt.InputMethodHint.ImhEmailCharactersOnly)
        email_label.setBuddy(self.email_edit)
        body.addWidget(email_label)
        body.addWidget(self.email_edit)
        body.addSpacing(10)

        password_label = PlainLabel("&Password")
        self.password_edit = QLineEdit()
        self.password_edit.setObjectName("password")
        self.password_edit.setEchoMode(QLineEdit.EchoMode.Password)
        password_label.setBuddy(self.password_edit)
        body.addWidget(password_label)
        body.addWidget(self.password_edit)
        body.addSpacing(12)

        # Shown after a one-time password (issue 11): the person chooses their own first.
        self.new_password_box = QWidget()
        new_box = QVBoxLayout(self.new_password_box)
        new_box.setContentsMargins(0, 0, 0, 12)
        new_box.setSpacing(6)
        new_label = PlainLabel("&New password (at least 12 characters)")
        self.new_password_edit = QLineEdit()
        self.new_password_edit.setObjectName("newPassword")
        self.new_password_edit.setEchoMode(QLineEdit.EchoMode.Password)
        new_label.setBuddy(self.new_password_edit)
        confirm_label = PlainLabel("&Repeat the new password")
        self.confirm_password_edit = QLineEdit()
        self.confirm_password_edit.setObjectName("confirmPassword")
        self.confirm_password_edit.setEchoMode(QLineEdit.EchoMode.Password)
        confirm_label.setBuddy(self.confirm_password_edit)
        for widget in (new_label, self.new_password_edit, confirm_label,
                       self.confirm_password_edit):
            new_box.addWidget(widget)
        self.new_password_box.hide()
        body.addWidget(self.new_password_box)

        self.error_label = PlainLabel()
        self.error_label.setObjectName("signInError")
        self.error_label.setWordWrap(True)
        self.error_label.setAccessibleName("Sign-in error")
        theme.set_variant(self.error_label, "alert")
        self.error_label.hide()
        body.addWidget(self.error_label)
        body.addSpacing(12)

        buttons = QHBoxLayout()
        buttons.addStretch(1)
        self.quit_button = QPushButton("Quit")
        self.quit_button.setAutoDefault(False)
        self.quit_button.clicked.connect(self.reject)
        self.sign_in_button = QPushButton("Sign in")
        self.sign_in_button.setDefault(True)
        theme.set_flag(self.sign_in_button, "primary", True)
        self.sign_in_button.clicked.connect(self.submit)
        buttons.addWidget(self.quit_button)
        buttons.addWidget(self.sign_in_button)
        body.addLayout(buttons)
        layout.addWidget(self._body)

        if database_label:
            layout.addSpacing(20)
            footer = PlainLabel(f"Database: {database_label}")
            footer.setObjectName("databaseLabel")
            footer.setWordWrap(True)
            footer.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            theme.set_variant(footer, "small")
            layout.addWidget(footer)

        (self.password_edit if email else self.email_edit).setFocus()

    @property
    def error_text(self) -> str:
        """The message the person sees, or "" when none is shown."""
        return self.error_label.text() if not self.error_label.isHidden() else ""

    def submit(self) -> None:
        email = self.email_edit.text().strip()
        password = self.password_edit.text()
        if not email or not password:
            self._show_error(MISSING_CREDENTIALS)
            (self.email_edit if not email else self.password_edit).setFocus()
            return
        uow, sign_in = self._uow, self._sign_in
        new: str | None = None
        if not self.new_password_box.isHidden():
            new = self.new_password_edit.text()
            if new != self.confirm_password_edit.text():
                self._show_error("The two new passwords differ; type the same one twice.")
                return
        work: Callable[[], Operator]
        if sign_in is not None:
            work = lambda: sign_in(email, password, new)  # noqa: E731
        elif uow is None:
            raise ValueError("a unit of work or a sign-in function")
        elif new is not None:
            work = lambda: auth.sign_in_with_new_password(uow, email, password, new)  # noqa: E731
        else:
            work = lambda: auth.sign_in(uow, email, password)  # noqa: E731
        self.sign_in_button.setText("Signing in…")
        (
            BackgroundTask(work, widget=self._body)
            .on_success(self._succeeded)
            .on_failure(self._failed)
            .run_in_background(self._runner)
        )

    def _succeeded(self, operator: Operator) -> None:
        self.sign_in_button.setText("Sign in")
        self.operator = operator
        self.error_label.hide()
        remember_email(self._database_label, self.email_edit.text().strip())
        self.signed_in.emit(operator)
        self.accept()

    def _failed(self, error: BaseException) -> None:
        self.sign_in_button.setText("Sign in")
        if isinstance(error, auth.PasswordChangeRequired):
            self.new_password_box.show()
            self._show_error(error.message)
            self.new_password_edit.setFocus()
        elif isinstance(error, AuthenticationFailed):
            self._show_error(error.message)
            self.password_edit.clear()
            self.password_edit.setFocus()
        else:
            self._show_error(error_message(error))

    def _show_error(self, message: str) -> None:
        self.error_label.setText(message)
        self.error_label.show()
