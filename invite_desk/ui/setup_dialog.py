"""First run: create the organization and its first administrator (ADMIN_TENANT)."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtWidgets import (
    QDialog,
    QFrame,
    QHBoxLayout,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from invite_desk.services import auth
from invite_desk.services.errors import ValidationFailed
from invite_desk.services.operator import Operator
from invite_desk.services.uow import UnitOfWork
from invite_desk.ui import theme
from invite_desk.ui.tasks import BackgroundTask, TaskRunner, error_message
from invite_desk.ui.widgets import PlainLabel, plain_tooltip

PASSWORDS_DIFFER = "The two passwords are not the same"

# Which field shows each error key of `ValidationFailed.errors` (from setup_organization and
# organization.validate); keys not listed here go to the banner above the form.
_ERROR_FIELDS = {
    "organization_name": "organization_name",
    "name": "organization_name",
    "description": "description",
    "registration_base_url": "registration_base_url",
    "admin_name": "first_name",
    "admin_first_name": "first_name",
    "admin_last_name": "last_name",
    "admin_email": "email",
    "email": "email",
    "password": "password",
    "password_confirmation": "password_confirmation",
}


class _Field(QWidget):
    """A label above its editor, an optional hint, and an error line shown when it is invalid."""

    def __init__(self, label: str, editor: QWidget, hint: str = "") -> None:
        super().__init__()
        self.editor = editor
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        caption = PlainLabel(label)
        caption.setBuddy(editor)
        layout.addWidget(caption)
        layout.addWidget(editor)
        if hint:
            hint_label = PlainLabel(hint)
            hint_label.setWordWrap(True)
            theme.set_variant(hint_label, "small")
            layout.addWidget(hint_label)
        self.error_label = PlainLabel()
        self.error_label.setWordWrap(True)
        theme.set_variant(self.error_label, "fieldError")
        self.error_label.hide()
        layout.addWidget(self.error_label)
        # Typing in the field takes its error away: the red must not outlive the mistake.
        changed = getattr(editor, "textChanged", None)
        if changed is not None:
            changed.connect(self.clear_error)

    def clear_error(self, *_args: object) -> None:
        if self.error or self.editor.property("invalid") == "true":
            self.set_error(None)

    def set_error(self, message: str | None) -> None:
        self.error_label.setText(message or "")
        self.error_label.setVisible(bool(message))
        self.editor.setToolTip(plain_tooltip(message or ""))
        theme.set_flag(self.editor, "invalid", bool(message))

    @property
    def error(self) -> str:
        return self.error_label.text() if not self.error_label.isHidden() else ""


def _section(title: str, text: str) -> QWidget:
    box = QWidget()
    layout = QVBoxLayout(box)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.setSpacing(2)
    heading = PlainLabel(title)
    theme.set_variant(heading, "heading")
    layout.addWidget(heading)
    if text:
        note = PlainLabel(text)
        note.setWordWrap(True)
        theme.set_variant(note, "muted")
        layout.addWidget(note)
    return box


class SetupDialog(QDialog):
    """Accepted once the organization exists; `operator` is its first administrator."""

    organization_created = Signal(object)  # Operator

    def __init__(
        self,
        uow: UnitOfWork,
        *,
        runner: TaskRunner | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._uow = uow
        self._runner = runner
        self.operator: Operator | None = None
        self.setWindowTitle("Welcome · Invite Desk")
        self.setWindowIcon(theme.app_icon())
        self.resize(940, 720)

        outer = QHBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.setSpacing(0)
        outer.addWidget(self._welcome_panel())

        right = QVBoxLayout()
        right.setContentsMargins(0, 0, 0, 0)
        right.setSpacing(0)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self._form = self._build_form()
        scroll.setWidget(self._form)
        scroll.viewport().setAutoFillBackground(False)
        right.addWidget(scroll, 1)

        bar = QFrame()
        bar.setObjectName("SetupButtons")
        buttons = QHBoxLayout(bar)
        buttons.setContentsMargins(40, 12, 40, 20)
        note = PlainLabel("You can change all of this later in Settings.")
        theme.set_variant(note, "small")
        buttons.addWidget(note, 1)
        self.quit_button = QPushButton("Quit")
        self.quit_button.setAutoDefault(False)
        self.quit_button.clicked.connect(self.reject)
        self.create_button = QPushButton("Create organization")
        self.create_button.setDefault(True)
        theme.set_flag(self.create_button, "primary", True)
        self.create_button.clicked.connect(self.submit)
        buttons.addWidget(self.quit_button)
        buttons.addWidget(self.create_button)
        right.addWidget(bar)
        outer.addLayout(right, 1)

        self.organization_name_edit.setFocus()

    # -- building -------------------------------------------------------------------------

    def _welcome_panel(self) -> QWidget:
        panel = QFrame()
        panel.setObjectName("WelcomePanel")
        panel.setFixedWidth(300)
        layout = QVBoxLayout(panel)
        layout.setContentsMargins(32, 40, 28, 32)
        layout.setSpacing(10)
        logo = PlainLabel()
        logo.setPixmap(theme.app_icon().pixmap(QSize(56, 56)))
        logo.setFixedSize(56, 56)
        layout.addWidget(logo)
        layout.addSpacing(8)
        title = PlainLabel("Welcome to\nInvite Desk")
        theme.set_variant(title, "title")
        layout.addWidget(title)
        intro = PlainLabel(
            "Invitations and referrals for your membership organization. "
            "Let's get you set up: it takes a minute."
        )
        intro.setWordWrap(True)
        layout.addWidget(intro)
        layout.addSpacing(12)
        steps = (
            ("1", "Name your organization"),
            ("2", "Create your administrator account"),
            ("3", "Invite members and watch referrals grow"),
        )
        for number, text in steps:
            row = QHBoxLayout()
            row.setSpacing(10)
            badge = PlainLabel(number)
            badge.setObjectName("StepNumber")
            badge.setAlignment(Qt.AlignmentFlag.AlignCenter)
            badge.setFixedSize(24, 24)
            badge.setStyleSheet(
                "QLabel#StepNumber { border: 1.5px solid rgba(255,255,255,0.85);"
                " border-radius: 12px; font-weight: 600; }"
            )
            label = PlainLabel(text)
            label.setWordWrap(True)
            row.addWidget(badge, 0, Qt.AlignmentFlag.AlignTop)
            row.addWidget(label, 1)
            layout.addLayout(row)
        layout.addStretch(1)
        footer = PlainLabel("You will be the organization's first administrator "
                        "(Organization admin, ADMIN_TENANT).")
        footer.setWordWrap(True)
        layout.addWidget(footer)
        return panel

    def _build_form(self) -> QWidget:
        form = QWidget()
        form.setObjectName("SetupForm")
        form.setAutoFillBackground(False)
        layout = QVBoxLayout(form)
        layout.setContentsMargins(40, 32, 40, 16)
        layout.setSpacing(10)

        self.error_label = PlainLabel()
        self.error_label.setObjectName("setupError")
        self.error_label.setWordWrap(True)
        theme.set_variant(self.error_label, "alert")
        self.error_label.hide()
        layout.addWidget(self.error_label)

        layout.addWidget(_section("Your organization",
                                  "How members will see it in invitations and on the "
                                  "registration pages."))
        self.organization_name_edit = QLineEdit()
        self.organization_name_edit.setPlaceholderText("e.g. Harbour Rowing Club")
        self.description_edit = QPlainTextEdit()
        self.description_edit.setPlaceholderText("A sentence or two for the invitation emails.")
        self.description_edit.setTabChangesFocus(True)
        self.description_edit.setFixedHeight(68)
        self.registration_url_edit = QLineEdit()
        self.registration_url_edit.setPlaceholderText("https://join.example.org")
        self._fields: dict[str, _Field] = {
            "organization_name": _Field("Organization &name", self.organization_name_edit),
            "description": _Field("&Description", self.description_edit),
            "registration_base_url": _Field(
                "&Registration web address (optional)", self.registration_url_edit,
                "Where invitees register: the invitation links start with it. "
                "You can add it later.",
            ),
        }
        for key in ("organization_name", "description", "registration_base_url"):
            layout.addWidget(self._fields[key])

        layout.addSpacing(14)
        layout.addWidget(_section("Your administrator account",
                                  "You sign in with this email and password."))
        self.first_name_edit = QLineEdit()
        self.last_name_edit = QLineEdit()
        self.email_edit = QLineEdit()
        self.email_edit.setPlaceholderText("you@example.org")
        self.password_edit = QLineEdit()
        self.password_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.confirm_edit = QLineEdit()
        self.confirm_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self._fields.update({
            "first_name": _Field("&First name", self.first_name_edit),
            "last_name": _Field("&Last name", self.last_name_edit),
            "email": _Field("&Email", self.email_edit),
            "password": _Field("&Password", self.password_edit,
                               f"At least {auth.MIN_PASSWORD_LENGTH} characters."),
            "password_confirmation": _Field("&Confirm password", self.confirm_edit),
        })
        names = QHBoxLayout()
        names.setSpacing(12)
        names.addWidget(self._fields["first_name"], 1, Qt.AlignmentFlag.AlignTop)
        names.addWidget(self._fields["last_name"], 1, Qt.AlignmentFlag.AlignTop)
        layout.addLayout(names)
        layout.addWidget(self._fields["email"])
        passwords = QHBoxLayout()
        passwords.setSpacing(12)
        passwords.addWidget(self._fields["password"], 1, Qt.AlignmentFlag.AlignTop)
        passwords.addWidget(self._fields["password_confirmation"], 1, Qt.AlignmentFlag.AlignTop)
        layout.addLayout(passwords)
        # The confirmation is wrong or right again when either password changes.
        self.password_edit.textChanged.connect(self._fields["password_confirmation"].clear_error)
        layout.addStretch(1)
        return form

    # -- behaviour ------------------------------------------------------------------------

    def field_error(self, key: str) -> str:
        """The error shown next to field `key` (see `_fields`), or ""."""
        return self._fields[key].error

    @property
    def error_text(self) -> str:
        return self.error_label.text() if not self.error_label.isHidden() else ""

    def submit(self) -> None:
        self._clear_errors()
        password = self.password_edit.text()
        if password != self.confirm_edit.text():
            self._show_errors({"password_confirmation": PASSWORDS_DIFFER})
            return
        values = {
            "organization_name": self.organization_name_edit.text(),
            "description": self.description_edit.toPlainText(),
            "registration_base_url": self.registration_url_edit.text(),
            "admin_first_name": self.first_name_edit.text(),
            "admin_last_name": self.last_name_edit.text(),
            "admin_email": self.email_edit.text(),
            "password": password,
        }
        uow = self._uow
        self.create_button.setText("Creating…")
        (
            BackgroundTask(lambda: auth.setup_organization(uow, **values), widget=self)
            .on_success(self._succeeded)
            .on_failure(self._failed)
            .run_in_background(self._runner)
        )

    def _succeeded(self, operator: Operator) -> None:
        self.create_button.setText("Create organization")
        self.operator = operator
        self.organization_created.emit(operator)
        self.accept()

    def _failed(self, error: BaseException) -> None:
        self.create_button.setText("Create organization")
        if isinstance(error, ValidationFailed):
            self._show_errors(error.errors)
        else:
            self._show_banner(error_message(error))

    def _clear_errors(self) -> None:
        self.error_label.hide()
        for field in self._fields.values():
            field.set_error(None)

    def _show_errors(self, errors: dict[str, str]) -> None:
        unplaced: list[str] = []
        for key, message in errors.items():
            field = self._fields.get(_ERROR_FIELDS.get(key, ""))
            if field is None:
                unplaced.append(message)
            else:
                field.set_error(message)
        if unplaced:
            self._show_banner("\n".join(unplaced))
        for field in self._fields.values():  # form order: focus the first field to fix
            if field.error:
                field.editor.setFocus()
                break

    def _show_banner(self, message: str) -> None:
        self.error_label.setText(message)
        self.error_label.show()
