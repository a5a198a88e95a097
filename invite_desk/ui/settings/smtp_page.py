"""Settings → Email (SMTP): the server invitations are sent through, and "Test connection".

The password never touches the database: it is shown only as "stored" or "not stored", never
read back into the field, and a newly typed one goes to the OS keyring through
`update_mail_settings(password=..., credentials=...)`.
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING, Any, ClassVar

import shiboken6
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QButtonGroup,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from invite_desk.services import mail_settings as mail_service
from invite_desk.services.credentials import CredentialStore, CredentialStoreError
from invite_desk.services.errors import ValidationFailed
from invite_desk.services.mail_settings import MailSettings
from invite_desk.services.operator import Operator
from invite_desk.services.smtp.transport import test_connection
from invite_desk.ui.hub import OperationsHub
from invite_desk.ui.settings.page import (
    Banner,
    FieldRow,
    SettingsPage,
    Writer,
    help_label,
    parse_whole_number,
    set_editable,
    set_enabled,
)
from invite_desk.ui.tasks import error_message
from invite_desk.ui.widgets import PlainLabel

if TYPE_CHECKING:
    from invite_desk.ui.context import UnitOfWork

SECURITY_LABELS = {"ssl": "SSL/TLS", "starttls": "STARTTLS", "none": "None"}
USUAL_PORTS = {"ssl": 465, "starttls": 587, "none": 25}
CONNECTION_FIELDS = ("host", "port", "security")
TEST_TIMEOUT = 15.0

STORED_TEXT = "Stored in the system keyring."
NO_KEYRING_TEXT = (
    "The system keyring is not available to this window, so the password cannot be set here. "
    "Invite Desk asks for it the first time it sends and keeps it in the keyring."
)
NEW_PASSWORD_TEXT = "A new password: Save keeps it in the system keyring, never in the database."


class SmtpPage(SettingsPage):
    """The organization's SMTP server, sender and rate limit; the password goes to the keyring."""

    NAME = "email-smtp"
    TITLE = "Email (SMTP)"
    INTRO = (
        "The mail server invitations are sent through, and who they come from. "
        "These apply to the whole organization; the password is kept in this computer's "
        "keyring only."
    )
    NEEDS_CREDENTIALS: ClassVar[bool] = True
    """SettingsWindow passes its CredentialStore to pages that set this."""

    def __init__(
        self,
        uow: UnitOfWork,
        operator: Operator,
        parent: QWidget | None = None,
        *,
        credentials: CredentialStore | None = None,
        ssl_context: ssl.SSLContext | None = None,
        hub: OperationsHub | None = None,
    ) -> None:
        super().__init__(uow, operator, parent, hub=hub)
        self.credentials = credentials
        self.ssl_context = ssl_context
        """The TLS context for "Test connection" (None: the system's trusted certificates)."""
        self.loaded = MailSettings()
        self._stored_password = False  # the keyring holds one for the loaded server and user
        self._keyring_problem = ""  # the keyring could not be read
        self._save_problem = ""  # the last save could not store the password
        self._keep_save_problem = False  # shown through the reload right after that save
        self._shown_security = self.loaded.security
        self._testing = False  # "Test connection" runs on the hub

        self.form.addWidget(_section("Server"))
        self.host_edit = QLineEdit()
        self.host_edit.setAccessibleName("SMTP server")
        self.host_edit.setPlaceholderText("smtp.office365.com")
        self.host_edit.setMinimumWidth(300)
        host = self.add_field(
            "host", editors=[self.host_edit], title="SMTP server", body=self.host_edit
        )
        self.port_edit = QLineEdit()
        self.port_edit.setAccessibleName("Port")
        self.port_edit.setPlaceholderText("587")
        self.port_edit.setFixedWidth(90)
        port = self.add_field("port", editors=[self.port_edit], title="Port")
        self._side_by_side((host, 1), (port, 0))

        self.security_group = QButtonGroup(self)
        self.security_buttons: dict[str, QRadioButton] = {}
        choices = QWidget()
        line = QHBoxLayout(choices)
        line.setContentsMargins(0, 0, 0, 0)
        line.setSpacing(18)
        for index, (value, label) in enumerate(SECURITY_LABELS.items()):
            button = QRadioButton(label)
            button.setAccessibleDescription(f"{label}, usually port {USUAL_PORTS[value]}")
            self.security_group.addButton(button, index)
            self.security_buttons[value] = button
            button.toggled.connect(self._on_security_toggled)
            line.addWidget(button)
        line.addStretch(1)
        self.add_field(
            "security",
            editors=list(self.security_buttons.values()),
            title="Security",
            body=choices,
            help_text=(
                "SSL/TLS encrypts from the start (usually port 465); STARTTLS upgrades the "
                "connection before signing in (usually port 587); None sends unencrypted "
                "(port 25; only for a relay on your own network)."
            ),
        )

        self.username_edit = QLineEdit()
        self.username_edit.setAccessibleName("User name")
        self.username_edit.setPlaceholderText("invitations@example.org")
        self.username_edit.setMinimumWidth(240)
        user = self.add_field(
            "username", editors=[self.username_edit], title="User name", body=self.username_edit,
            help_text="Leave empty if the server accepts mail without signing in.",
        )
        self.password_edit = QLineEdit()
        self.password_edit.setAccessibleName("Password")
        self.password_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.password_edit.setMinimumWidth(200)
        self.password_status = help_label("")
        self.password_status.setObjectName("password-status")
        password_body = QWidget()
        password_box = QVBoxLayout(password_body)
        password_box.setContentsMargins(0, 0, 0, 0)
        password_box.setSpacing(4)
        password_box.addWidget(self.password_edit)
        password_box.addWidget(self.password_status)
        password = self.add_field(
            "password", editors=[self.password_edit], title="Password", body=password_body
        )
        self._side_by_side((user, 1), (password, 1))

        self.test_button = QPushButton("Test connection")
        self.test_button.setToolTip(
            "Connect, secure and sign in with the values on this page; nothing is sent or saved."
        )
        self.test_button.clicked.connect(self.start_test)
        self.test_button.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        self.test_result = Banner(self)
        self.test_result.setObjectName("smtp-test-result")
        self.test_result.setAccessibleName("Connection test result")
        self.test_result.reserve_space(3)  # the fields below stay put when a result comes
        test_line = QHBoxLayout()
        test_line.setSpacing(12)
        test_line.addWidget(self.test_button, 0, Qt.AlignmentFlag.AlignTop)
        test_line.addWidget(self.test_result, 1)
        test_line.addStretch(0)
        self.form.addLayout(test_line)

        self.form.addWidget(_section("Sender"))
        self.from_address_edit = QLineEdit()
        self.from_address_edit.setAccessibleName("From address")
        self.from_address_edit.setPlaceholderText("invitations@example.org")
        self.from_address_edit.setMinimumWidth(240)
        from_address = self.add_field(
            "from_address", editors=[self.from_address_edit], title="From address",
            body=self.from_address_edit,
        )
        self.from_name_edit = QLineEdit()
        self.from_name_edit.setAccessibleName("From name")
        self.from_name_edit.setMinimumWidth(200)
        from_name = self.add_field(
            "from_name", editors=[self.from_name_edit], title="From name",
            body=self.from_name_edit,
            help_text="Empty: the organization's name.",
        )
        self._side_by_side((from_address, 1), (from_name, 1))

        self.rate_edit = QLineEdit()
        self.rate_edit.setAccessibleName("Rate limit in messages per minute")
        self.rate_edit.setPlaceholderText("30")
        self.rate_edit.setFixedWidth(90)
        self.add_field(
            "rate_per_minute",
            editors=[self.rate_edit, PlainLabel("messages per minute")],
            title="Rate limit",
            help_text=(
                "Stay under your provider's limit: Microsoft 365 allows 30 per minute; "
                "Google Workspace 2,000 per day (about 1.4 per minute sustained, so 1). "
                "0 = no limit."
            ),
        )

        for editor in (self.host_edit, self.port_edit, self.username_edit, self.password_edit):
            editor.textChanged.connect(self._on_connection_edited)

    # ---- layout helpers -------------------------------------------------------------------

    def _side_by_side(self, *rows: tuple[FieldRow, int]) -> None:
        """Put the given fields on one line, top-aligned, each with its horizontal stretch
        (each keeps its own title and error line)."""
        line = QHBoxLayout()
        line.setSpacing(16)
        for row, stretch in rows:
            self.form.removeWidget(row.container)
            line.addWidget(row.container, stretch, Qt.AlignmentFlag.AlignTop)
        self.form.addLayout(line)

    # ---- contract ---------------------------------------------------------------------------

    def fetch(self) -> tuple[MailSettings, bool, str]:
        # The keyring may be slow (D-Bus): it is read here too, off the GUI thread.
        mail = mail_service.get_mail_settings(self.uow, self.operator.organization_id)
        return (mail, *self._look_up_password(mail))

    def show_loaded(self, data: tuple[MailSettings, bool, str]) -> None:
        self.loaded, self._stored_password, self._keyring_problem = data
        if not self._keep_save_problem:
            self._save_problem = ""
        self._keep_save_problem = False
        self.begin_loading()
        try:
            self.host_edit.setText(self.loaded.host)
            self.port_edit.setText(str(self.loaded.port))
            security = self.loaded.security if self.loaded.security in USUAL_PORTS else "starttls"
            self.security_buttons[security].setChecked(True)
            self._shown_security = security
            self.username_edit.setText(self.loaded.username)
            self.password_edit.clear()  # never pre-filled: the secret stays in the keyring
            self.from_address_edit.setText(self.loaded.from_address)
            self.from_name_edit.setText(self.loaded.from_name)
            self.rate_edit.setText(str(self.loaded.rate_per_minute))
            self.test_result.clear_message()
        finally:
            self.end_loading()

    def _look_up_password(self, mail: MailSettings) -> tuple[bool, str]:
        if self.credentials is None or not mail.username:
            return False, ""
        try:
            return self.credentials.get(mail.password_key()) is not None, ""
        except CredentialStoreError as exc:
            return False, str(exc)

    def _entered(self) -> dict[str, Any]:
        checked = [value for value, button in self.security_buttons.items() if button.isChecked()]
        return {
            "host": self.host_edit.text().strip(),
            "port": parse_whole_number(self.port_edit.text()),
            "security": checked[0] if checked else "",
            "username": self.username_edit.text().strip(),
            "from_address": self.from_address_edit.text().strip(),
            "from_name": " ".join(self.from_name_edit.text().split()),
            "rate_per_minute": parse_whole_number(self.rate_edit.text()),
        }

    def check(self) -> dict[str, str]:
        # An untouched page is never in the way of saving the other pages, even while the
        # organization has no SMTP server yet.
        if not self.changes():
            return {}
        try:
            mail_service.validate_mail_settings(self._entered())  # the services' own rules
        except ValidationFailed as exc:
            return dict(exc.errors)
        return {}

    def changes(self) -> dict[str, Any]:
        changed = {
            field: value
            for field, value in self._entered().items()
            if value != getattr(self.loaded, field)
        }
        if self._new_password():
            changed["password"] = "(new password)"  # a marker, never the secret itself
        return changed

    def _new_password(self) -> str:
        """The typed password, when it can be used (a store and a user name to sign in)."""
        if self.credentials is None or not self.username_edit.text().strip():
            return ""
        return self.password_edit.text()

    def writer(self) -> Writer:
        if not self.changes():
            return lambda: None
        values = self._entered()
        password = self._new_password() or self._carried_over_password(values)
        self._save_problem = ""
        uow, operator, credentials = self.uow, self.operator, self.credentials

        def write() -> str:
            try:
                mail_service.update_mail_settings(
                    uow, operator, values, password=password or None, credentials=credentials,
                )
            except CredentialStoreError as exc:
                # The settings are committed before the keyring is asked: only the password
                # is missing, and the line under the password field says so after the reload.
                return f"The password was not saved: {exc}"
            return ""

        return write

    def written(self, result: object) -> None:
        if result:
            self._save_problem = str(result)
            self._keep_save_problem = True

    def _carried_over_password(self, values: dict[str, Any]) -> str | None:
        """The stored password, when only the port or security changed (same host and user):
        it moves with them. A different server never gets another server's password."""
        if self.credentials is None or not values["username"] or not self._stored_password:
            return None
        if values["host"] != self.loaded.host or values["username"] != self.loaded.username:
            return None
        if values["port"] == self.loaded.port:
            return None  # the same keyring entry: nothing to move
        try:
            return self.credentials.get(self.loaded.password_key())
        except CredentialStoreError:
            return None

    # ---- dependent controls -------------------------------------------------------------------

    def update_dependent_controls(self) -> None:
        reason = self.read_only_reason
        editable = self.editable()
        set_editable(
            [self.host_edit, self.port_edit, *self.security_buttons.values(), self.username_edit,
             self.password_edit, self.from_address_edit, self.from_name_edit, self.rate_edit,
             self.test_button],
            editable,
            reason,
        )
        has_user = bool(self.username_edit.text().strip())
        if self.credentials is None:
            set_enabled([self.password_edit], False, NO_KEYRING_TEXT)
        elif editable:
            set_enabled(
                [self.password_edit], has_user,
                "Enter a user name first: without one the server is used without signing in.",
            )
        if self._testing:
            self.test_button.setEnabled(False)
        self._show_password_status()

    def _show_password_status(self) -> None:
        status, kind = self._password_status()
        self.password_edit.setPlaceholderText(
            "Type a new one to replace it" if status == STORED_TEXT else ""
        )
        self.password_status.setText(status)
        colour = {"problem": "#B42318", "ok": "#1E5631"}.get(kind)
        self.password_status.setStyleSheet(f"QLabel {{ color: {colour}; }}" if colour else "")

    def _password_status(self) -> tuple[str, str]:
        if self.credentials is None:
            return NO_KEYRING_TEXT, ""
        if self._save_problem or self._keyring_problem:
            return self._save_problem or self._keyring_problem, "problem"
        entered = self._entered()
        if not entered["username"]:
            return "No sign-in: no password is needed.", ""
        if self.password_edit.text():
            return NEW_PASSWORD_TEXT, ""
        same_user = (entered["host"] == self.loaded.host
                     and entered["username"] == self.loaded.username)
        if self._stored_password and same_user:
            return STORED_TEXT, "ok"
        if self.loaded.username and self._stored_password:
            return "Type the password for this server and user name; Save keeps it in the keyring.", ""
        return "No password stored yet: type it here; Save keeps it in the system keyring.", ""

    def _on_security_toggled(self, checked: bool) -> None:
        """Choosing a security suggests its usual port, unless the port was set by hand."""
        if not checked:
            return
        chosen = next(v for v, b in self.security_buttons.items() if b.isChecked())
        previous, self._shown_security = self._shown_security, chosen
        if self._loading or chosen == previous:
            return
        port = self.port_edit.text().strip()
        if not port or port == str(USUAL_PORTS.get(previous)):
            self.port_edit.setText(str(USUAL_PORTS[chosen]))

    def _on_connection_edited(self) -> None:
        if self._loading:
            return
        # A result is about the values it was given: it says nothing about the new ones.
        if not self._testing:
            self.test_result.clear_message()

    # ---- test connection ----------------------------------------------------------------------

    def start_test(self) -> None:
        """Connect and sign in with the entered values, off the GUI thread."""
        if not self.editable() or self._testing:
            return
        entered = self._entered()
        try:
            mail = mail_service.validate_mail_settings(entered)
        except ValidationFailed as exc:
            blocking = {k: v for k, v in exc.errors.items() if k in CONNECTION_FIELDS}
            if blocking:
                self.show_errors(blocking)
                self.test_result.show_message(
                    "Correct the server settings marked in red first.", "error"
                )
                return
            mail = MailSettings(host=entered["host"], port=int(entered["port"]),
                                security=entered["security"], username=entered["username"])
        typed = self._new_password()
        key = self._password_key_for_test(mail)
        if mail.username and not typed and key is None:
            self.test_result.show_message(
                f"Type the password of {mail.username} to test signing in.", "error"
            )
            return
        config = mail.smtp_config(timeout=TEST_TIMEOUT)
        credentials, context = self.credentials, self.ssl_context

        def run() -> str:
            # The keyring may be slow (D-Bus): read it here, off the GUI thread.
            password: str | None = None
            if mail.username:
                password = typed or (credentials.get(key) if credentials and key else None)
            return test_connection(config, password, ssl_context=context)

        self.test_result.show_message(f"Testing the connection to {config.address}…", "info")
        self._testing = True
        self.test_button.setEnabled(False)
        self.hub.query(self, run, self._test_succeeded, self._test_failed, key="test")

    def _password_key_for_test(self, mail: MailSettings) -> str | None:
        """The keyring entry to test with: the one for the entered server and user, or the
        loaded one when only the port or security differ. None when none is known."""
        if self.credentials is None or not mail.username or not self._stored_password:
            return None
        if mail.host != self.loaded.host or mail.username != self.loaded.username:
            return None
        return self.loaded.password_key()

    def _test_succeeded(self, message: str) -> None:
        if not shiboken6.isValid(self):
            return
        self._testing = False
        self.test_result.show_message(message, "success")
        self.update_dependent_controls()

    def _test_failed(self, error: BaseException) -> None:
        if not shiboken6.isValid(self):
            return
        self._testing = False
        text = str(error) if isinstance(error, CredentialStoreError) else error_message(error)
        self.test_result.show_message(text, "error")
        self.update_dependent_controls()


def _section(text: str) -> QLabel:
    label = PlainLabel(text)
    label.setProperty("variant", "heading")
    font = label.font()
    font.setBold(True)
    font.setPointSizeF(font.pointSizeF() * 1.15)
    label.setFont(font)
    return label
