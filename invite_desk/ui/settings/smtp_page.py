"""Settings → Email (SMTP): the server invitations are sent through, and "Test connection".

The password never touches the database: it is shown only as "stored" or "not stored", never
read back into the field, and a newly typed one goes to the OS keyring through
`update_mail_settings(password=..., credentials=...)`.
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING, Any, ClassVar

import shiboken6
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QComboBox,
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
from invite_desk.services.smtp import oauth
from invite_desk.services.smtp.presets import PRESETS, preset
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
SIGN_IN_LABELS = {"password": "Password", oauth.MICROSOFT: "Microsoft 365 (OAuth2)",
                  oauth.GOOGLE: "Google (OAuth2)"}
PRESET_ORDER = ("", "microsoft365", "google", "relay")


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
    sign_in_prompt = Signal(str)  # the provider's instructions (device code), from the sign-in

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
        self._signing_in = False  # "Sign in with ..." runs on the hub (it waits for the person)
        self._shown_preset = ""

        self.form.addWidget(_section("Server"))
        self.preset_combo = QComboBox()
        self.preset_combo.setAccessibleName("Provider")
        for key in PRESET_ORDER:
            self.preset_combo.addItem(PRESETS[key].label, key)
        self.preset_combo.currentIndexChanged.connect(self._on_preset_chosen)
        self.preset_note = help_label("")
        self.add_field(
            "preset", editors=[self.preset_combo], title="Provider",
            help_text="Choosing a provider fills in its server, limits and sign-in; "
                      "sending is paced so its limits are never hit.",
        )
        self.form.addWidget(self.preset_note)
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

        self.auth_combo = QComboBox()
        self.auth_combo.setAccessibleName("Sign-in method")
        for value, label in SIGN_IN_LABELS.items():
            self.auth_combo.addItem(label, value)
        self.auth_combo.currentIndexChanged.connect(self._on_auth_changed)
        auth = self.add_field("auth", editors=[self.auth_combo], title="Sign in with")
        self.client_id_edit = QLineEdit()
        self.client_id_edit.setAccessibleName("Application (client) ID")
        self.client_id_edit.setMinimumWidth(220)
        client = self.add_field(
            "oauth_client_id", editors=[self.client_id_edit], title="Application (client) ID",
            body=self.client_id_edit,
            help_text="The app your IT registered for Invite Desk (Entra ID or Google Cloud).")
        self.tenant_edit = QLineEdit()
        self.tenant_edit.setAccessibleName("Tenant")
        self.tenant_edit.setPlaceholderText("contoso.onmicrosoft.com")
        tenant = self.add_field("oauth_tenant", editors=[self.tenant_edit], title="Tenant",
                                body=self.tenant_edit)
        self._side_by_side((auth, 0), (client, 1), (tenant, 1))
        self.client_secret_edit = QLineEdit()
        self.client_secret_edit.setAccessibleName("Google client secret")
        self.client_secret_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.client_secret_edit.setPlaceholderText("Google client secret (kept in the keyring)")
        self.sign_in_button = QPushButton("Sign in…")
        self.sign_in_button.setAccessibleName("Sign in with the provider")
        self.sign_in_button.clicked.connect(self.start_sign_in)
        self.sign_in_button.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        self.sign_in_status = help_label("")
        self.sign_in_status.setObjectName("sign-in-status")
        self.sign_in_row = QWidget()
        sign_line = QHBoxLayout(self.sign_in_row)
        sign_line.setContentsMargins(0, 0, 0, 0)
        sign_line.setSpacing(12)
        sign_line.addWidget(self.sign_in_button, 0, Qt.AlignmentFlag.AlignTop)
        sign_line.addWidget(self.client_secret_edit, 1)
        sign_line.addWidget(self.sign_in_status, 2)
        self.form.addWidget(self.sign_in_row)
        self.sign_in_prompt.connect(self._show_sign_in_prompt)

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
        rate = self.add_field(
            "rate_per_minute",
            editors=[self.rate_edit, PlainLabel("per minute")],
            title="Rate limit",
            help_text=(
                "Stay under your provider's limit: Microsoft 365 allows 30 per minute; "
                "Google Workspace 2,000 per day (about 1.4 per minute sustained, kept by the "
                "daily limit). 0 = no limit."
            ),
        )
        self.per_day_edit = QLineEdit()
        self.per_day_edit.setAccessibleName("Daily limit in messages per 24 hours")
        self.per_day_edit.setFixedWidth(90)
        per_day = self.add_field(
            "per_day", editors=[self.per_day_edit, PlainLabel("per 24 hours")],
            title="Daily limit",
            help_text="0 = the provider's. The rest waits for the next day.",
        )
        self.connections_edit = QLineEdit()
        self.connections_edit.setAccessibleName("Parallel connections")
        self.connections_edit.setFixedWidth(60)
        connections = self.add_field(
            "connections", editors=[self.connections_edit], title="Connections",
            help_text="Sent in parallel; 0 = the provider's.",
        )
        self._side_by_side((rate, 1), (per_day, 1), (connections, 1))

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
            self._select(self.preset_combo, self.loaded.preset)
            self._shown_preset = self.loaded.preset
            self._select(self.auth_combo, self.loaded.auth)
            self.client_id_edit.setText(self.loaded.oauth_client_id)
            self.tenant_edit.setText(self.loaded.oauth_tenant)
            self.client_secret_edit.clear()
            self.per_day_edit.setText(str(self.loaded.per_day))
            self.connections_edit.setText(str(self.loaded.connections))
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
            "preset": self.preset_combo.currentData() or "",
            "per_day": _zero_when_empty(self.per_day_edit.text()),
            "connections": _zero_when_empty(self.connections_edit.text()),
            "auth": self.auth_combo.currentData() or "password",
            "oauth_client_id": self.client_id_edit.text().strip(),
            "oauth_tenant": self.tenant_edit.text().strip(),
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
             self.test_button, self.preset_combo, self.auth_combo, self.client_id_edit,
             self.tenant_edit, self.client_secret_edit, self.sign_in_button,
             self.per_day_edit, self.connections_edit],
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
        auth = self.auth_combo.currentData() or "password"
        oauth_on = auth != "password"
        self.sign_in_row.setVisible(oauth_on)
        self.row("oauth_client_id").container.setVisible(oauth_on)
        self.row("oauth_tenant").container.setVisible(auth == oauth.MICROSOFT)
        self.client_id_edit.setEnabled(editable and oauth_on)
        self.tenant_edit.setEnabled(editable and auth == oauth.MICROSOFT)
        self.client_secret_edit.setVisible(auth == oauth.GOOGLE)
        if oauth_on:
            self.password_edit.setEnabled(False)
            self.sign_in_button.setText(
                f"Sign in with {oauth.PROVIDER_NAMES[auth]}…")
            if self.credentials is None:
                self.sign_in_button.setEnabled(False)
        if self._signing_in:
            self.sign_in_button.setEnabled(False)
        if self.credentials is None and oauth_on:
            self.sign_in_status.setText(NO_KEYRING_TEXT)
        elif oauth_on and not self._signing_in:
            self.sign_in_status.setText(self._sign_in_state(auth))
        preset_note = preset(self.preset_combo.currentData() or "").note
        self.preset_note.setText(preset_note)
        self.preset_note.setVisible(bool(preset_note))
        self._show_password_status()

    def _sign_in_state(self, auth: str) -> str:
        username = self.username_edit.text().strip()
        if not username:
            return "Enter the mailbox's address as the user name, then sign in."
        key = MailSettings(auth=auth, username=username).refresh_token_key()
        try:
            stored = self.credentials is not None and self.credentials.get(key) is not None
        except CredentialStoreError as exc:
            return str(exc)
        return ("Signed in on this computer (the sign-in is kept in the system keyring)."
                if stored else "Not signed in on this computer yet.")

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
        if entered["auth"] != "password":
            return "Not used: the OAuth2 sign-in below replaces the password.", ""
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

    @staticmethod
    def _select(combo: QComboBox, value: str) -> None:
        index = combo.findData(value)
        combo.setCurrentIndex(index if index >= 0 else 0)

    def _on_preset_chosen(self) -> None:
        """A provider fills in its server, limits and sign-in (fields set by hand for another
        provider are replaced; a custom choice leaves everything as it is)."""
        key = self.preset_combo.currentData() or ""
        previous, self._shown_preset = self._shown_preset, key
        if self._loading or key == previous:
            return
        chosen = preset(key)
        if key:
            if chosen.host:
                self.host_edit.setText(chosen.host)
            self.port_edit.setText(str(chosen.port))
            self.security_buttons[chosen.security].setChecked(True)
            self.rate_edit.setText(str(chosen.per_minute))
            self.per_day_edit.setText("0")
            self.connections_edit.setText("0")
            self._select(self.auth_combo, chosen.auth)
        self.update_dependent_controls()

    def _on_auth_changed(self) -> None:
        if not self._loading:
            self.update_dependent_controls()

    def _show_sign_in_prompt(self, text: str) -> None:
        if shiboken6.isValid(self):
            self.test_result.show_message(text, "info")

    def start_sign_in(self) -> None:
        """Sign in with Microsoft (device code: the code is shown here) or Google (the
        browser opens), off the GUI thread; the refresh token goes to the keyring."""
        if not self.editable() or self._signing_in or self.credentials is None:
            return
        entered = self._entered()
        auth, username = entered["auth"], entered["username"]
        client_id, tenant = entered["oauth_client_id"], entered["oauth_tenant"]
        missing = {}
        if not username:
            missing["username"] = "Signing in needs the mailbox's address as the user name"
        if not client_id:
            missing["oauth_client_id"] = "The application (client) ID is required to sign in"
        secret = self.client_secret_edit.text()
        if auth == oauth.GOOGLE and not secret and self.credentials is not None:
            secret = self.credentials.get(oauth.google_client_key(client_id)) or ""
        if auth == oauth.GOOGLE and not secret:
            missing["oauth_client_id"] = "Google also needs the client secret of that app"
        if missing:
            self.show_errors(missing)
            return
        store = self.credentials
        key = MailSettings(auth=auth, username=username).refresh_token_key()
        prompt = self.sign_in_prompt

        def run() -> str:
            if auth == oauth.MICROSOFT:
                return oauth.sign_in_microsoft(client_id, tenant, username, store, key,
                                               show=prompt.emit)
            prompt.emit("Your browser opens Google's sign-in; come back here when it says so.")
            return oauth.sign_in_google(client_id, secret, username, store, key)

        self._signing_in = True
        self.sign_in_status.setText("Signing in…")
        self.update_dependent_controls()
        self.hub.query(self, run, self._sign_in_done, self._sign_in_failed, key="sign_in")

    def _sign_in_done(self, message: str) -> None:
        if not shiboken6.isValid(self):
            return
        self._signing_in = False
        self.test_result.show_message(message + " Save, then Test connection.", "success")
        self.update_dependent_controls()

    def _sign_in_failed(self, error: BaseException) -> None:
        if not shiboken6.isValid(self):
            return
        self._signing_in = False
        self.test_result.show_message(error_message(error), "error")
        self.update_dependent_controls()

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
        uses_oauth = entered.get("auth", "password") != "password"
        if uses_oauth:
            mail = MailSettings(host=mail.host, port=mail.port, security=mail.security,
                                username=entered["username"], auth=entered["auth"],
                                oauth_client_id=entered["oauth_client_id"],
                                oauth_tenant=entered["oauth_tenant"])
        elif mail.username and not typed and key is None:
            self.test_result.show_message(
                f"Type the password of {mail.username} to test signing in.", "error"
            )
            return
        config = mail.smtp_config(timeout=TEST_TIMEOUT)
        credentials, context = self.credentials, self.ssl_context

        def run() -> str:
            # The keyring may be slow (D-Bus): read it here, off the GUI thread.
            password: str | None = None
            if uses_oauth:  # the sign-in is checked first: a clear "sign in again"
                tokens = oauth.for_settings(mail, credentials) if credentials else None
                if tokens is not None:
                    tokens()
                return test_connection(config, None, ssl_context=context, access_token=tokens)
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


def _zero_when_empty(text: str) -> int | str:
    number = parse_whole_number(text)
    return 0 if number is None else number


def _section(text: str) -> QLabel:
    label = PlainLabel(text)
    label.setProperty("variant", "heading")
    font = label.font()
    font.setBold(True)
    font.setPointSizeF(font.pointSizeF() * 1.15)
    label.setFont(font)
    return label
