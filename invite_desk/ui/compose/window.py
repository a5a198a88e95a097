"""The Invite composer: who to invite, a pre-flight check, a preview, then sending with progress.

Flow: the operator enters one invitee, pastes a list or imports a CSV; "Check addresses"
runs the services' pre-flight in the background and shows every row with its status; only
ready rows go on. "Send" queues them as one batch (the services check permission and the
daily limit) and a SendWorker sends the batch off the GUI thread with pause, resume and
cancel. The services enforce every rule; this window mirrors them (disabled controls and
an explanation) so the operator knows before trying.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import timedelta
from email.message import EmailMessage
from enum import IntEnum
from pathlib import Path
from typing import TypeVar

from PySide6.QtCore import QStringListModel, Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent, QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QCompleter,
    QFileDialog,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QScrollArea,
    QStackedWidget,
    QTableView,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from invite_desk.services.compose_view import ComposeState, compose_state
from invite_desk.services.credentials import CredentialStore
from invite_desk.services.email.templates import InvitationTemplates
from invite_desk.services.errors import DomainError, SettingsIncomplete
from invite_desk.services.events import EventInfo
from invite_desk.services.invitations.importing import (
    ImportFailed,
    ImportResult,
    InviteeInput,
    clean_message,
    clean_name,
    parse_csv,
    parse_pasted,
)
from invite_desk.services.invitations.preflight import (
    SENDABLE,
    Preflight,
    PreflightRow,
    RowStatus,
    run_preflight,
)
from invite_desk.services.invitations.queueing import (
    QueuedBatch,
    UnsentBatch,
    queue_invitations,
    unsent_batches,
)
from invite_desk.services.invitations.rendering import (
    InvitationContent,
    build_test_message,
    render_invitation,
)
from invite_desk.services.invitations.sending import SendProgress, SendReport, recover_interrupted
from invite_desk.services.mail_settings import MailSettings
from invite_desk.services.members_lookup import MemberChoice, search_members
from invite_desk.services.models import InvitationKind, utcnow
from invite_desk.services.operator import Operator
from invite_desk.services.organization import OrganizationInfo
from invite_desk.services.permissions import Action, Decision, decide
from invite_desk.services.settings_schema import PolicySettings
from invite_desk.services.smtp.transport import (
    PermanentFailure,
    RetryPolicy,
    SendResult,
    Sent,
    SmtpAuthError,
    SmtpTransport,
    TemporaryFailure,
)
from invite_desk.ui import widgets
from invite_desk.ui.compose.password_prompt import PasswordAnswer, SmtpPasswords
from invite_desk.ui.compose.preflight_model import (
    STATUS_TEXT,
    Column,
    PreflightModel,
    PreflightRole,
    ProblemFilter,
)
from invite_desk.ui.compose.preview import PREVIEW_TOKEN, PreviewDialog, PreviewEmail
from invite_desk.ui.context import PageContext
from invite_desk.ui.hub import INVITATIONS, SETTINGS, Changes, OperationsHub
from invite_desk.ui.outbox import Outbox, SendOutcome
from invite_desk.ui.tasks import TaskRunner
from invite_desk.ui.theme import set_flag, set_variant
from invite_desk.ui.widgets import Banner, PlainLabel, plural

log = logging.getLogger(__name__)

T = TypeVar("T")

REQUESTER = "compose"  # how the outbox names sends started here

MAX_CSV_BYTES = 100 * 1024 * 1024
AskPassword = Callable[[QWidget | None, MailSettings, CredentialStore], PasswordAnswer | None]

class InputMode(IntEnum):
    """The tabs of the recipients box."""

    ONE = 0
    PASTE = 1
    CSV = 2


def format_time_left(seconds: float | None) -> str:
    if seconds is None:
        return "estimating time left…"
    if seconds < 5:
        return "a few seconds left"
    if seconds < 60:
        return f"about {int(math.ceil(seconds / 5) * 5)} s left"
    minutes = seconds / 60
    if minutes < 90:
        return f"about {round(minutes)} min left"
    return f"about {minutes / 60:.1f} h left"


def denied_text(decision: Decision, operator: Operator) -> str:
    """Why the composer is disabled, in words an operator can act on."""
    if decision.reason:
        return decision.reason
    needed = decision.needed
    return (
        f"Sending invitations needs the {needed.label} role ({needed.name}) or higher: "
        f"whoCanSendUserInvitation is set to {needed.name}. You are signed in as "
        f"{operator.role.label} ({operator.role.name}); an organization admin can change this "
        "in Settings › Invitations."
    )


def send_test_message(
    mail: MailSettings, password: str | None, message: EmailMessage | bytes, to: str
) -> SendResult:
    """One message over its own connection (the test email); not recorded anywhere."""
    with SmtpTransport(mail.smtp_config(timeout=20), password) as transport:
        return transport.send(message, to)


class ComposeWindow(QWidget):
    """The Compose page: enter invitees, check them, preview, send, follow the progress.

    The main window embeds it and should call `stop_sending()` before quitting while
    `sending` is true; `email_settings_requested` asks it to open Settings › Email.
    `runner` (tests: SynchronousRunner), `ask_password` and `retry` are injectable.
    """

    batch_queued = Signal(QueuedBatch)
    sending_started = Signal(uuid.UUID)  # the batch id
    sending_finished = Signal(SendReport)  # the report of the run that just ended
    email_settings_requested = Signal()
    settings_requested = Signal(str)  # a settings page name ("organization", "email", ...)

    def __init__(
        self,
        context: PageContext,
        operator: Operator,
        parent: QWidget | None = None,
        *,
        runner: TaskRunner | None = None,
        ask_password: AskPassword | None = None,
        retry: RetryPolicy | None = None,
        hub: OperationsHub | None = None,
        outbox: Outbox | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("ComposeWindow")
        self.setWindowTitle("Compose invitations")
        self._context = context
        self._operator = operator
        # The main window hands in the app's hub and outbox; alone (tests), the page has its own.
        self._owns_hub = hub is None
        self.hub = hub if hub is not None else OperationsHub(self, runner=runner)
        self._runner: TaskRunner = runner or self.hub.runner
        self.outbox = outbox if outbox is not None else Outbox(
            context.engine, operator.organization_id, self.hub, self, retry=retry)
        self._passwords = SmtpPasswords(context.credentials, ask_password)
        self._retry = retry
        self._policy = PolicySettings()
        self._org: OrganizationInfo | None = None
        self._events: list[EventInfo] = []
        self._send_decision = Decision(False, operator.role)
        self._behalf_decision = Decision(False, operator.role)
        self._preflight: Preflight | None = None
        self._stale = False
        self._consumed = False
        self._check_generation = 0
        self._csv: ImportResult | None = None
        self._csv_name = ""
        self._busy = ""
        self._batch_id: uuid.UUID | None = None
        self._batch_total = 0
        self._last_progress: SendProgress | None = None
        self._uncertain: list[str] = []
        # What earlier runs of the same batch did (after a cancel, "Send the rest" goes on).
        self._batch_report = SendReport()
        self._member_choices: dict[str, MemberChoice] = {}
        self._inviter: MemberChoice | None = None
        self._recovered: list[str] = []
        self._preview: PreviewDialog | None = None
        self._rate = 0
        self._state: ComposeState | None = None
        self._unsent: list[UnsentBatch] = []
        self._offer_pending = False
        self._check_pending = False

        self._build()
        self._connect()
        self.hub.changed.connect(self._hub_changed)
        self.refresh()
        self._recover_interrupted()
        self._look_up_unsent()
        self._update_actions()

    # ==================================================================== construction
    def _build(self) -> None:
        title = PlainLabel("Compose invitations")
        set_variant(title, "title")
        subtitle = PlainLabel(
            "Invite new members or guests of an event. Check the addresses, preview the email, "
            "then send."
        )
        set_variant(subtitle, "muted")
        subtitle.setWordWrap(True)

        self.permission_banner = Banner("PermissionBanner")
        self.recovery_banner = Banner("RecoveryBanner")
        self.message_banner = Banner("MessageBanner")
        self.message_banner.reserve_space()

        self.content = QWidget()
        body = QHBoxLayout(self.content)
        body.setContentsMargins(0, 0, 0, 0)
        body.setSpacing(16)
        inputs = QScrollArea()
        inputs.setObjectName("ComposeInputsScroll")
        inputs.setWidget(self._build_inputs())
        inputs.setWidgetResizable(True)
        inputs.setFrameShape(QFrame.Shape.NoFrame)
        inputs.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        inputs.setFixedWidth(440)
        inputs.setStyleSheet("QScrollArea#ComposeInputsScroll { background: transparent; }"
                             " QScrollArea#ComposeInputsScroll > QWidget > QWidget"
                             " { background: transparent; }")
        # The inputs scroll; Check addresses stays under them, always in sight.
        left = QVBoxLayout()
        left.setContentsMargins(0, 0, 0, 0)
        left.setSpacing(8)
        left.addWidget(inputs, 1)
        left.addWidget(self.check_button)
        body.addLayout(left, 0)
        body.addLayout(self._build_results(), 1)

        root = QVBoxLayout(self)
        root.setContentsMargins(20, 16, 20, 16)
        root.setSpacing(10)
        root.addWidget(title)
        root.addWidget(subtitle)
        root.addWidget(self.permission_banner)
        root.addWidget(self.recovery_banner)
        root.addWidget(self.content, 1)
        # Messages show under the buttons that caused them, in a place kept for them: nothing
        # moves under the pointer when one appears or goes.
        root.addWidget(self.message_banner)

        self._progress_timer = QTimer(self)
        self._progress_timer.setSingleShot(True)
        self._progress_timer.setInterval(100)
        # The time left counts down every second, also while the sender waits for the rate.
        self._countdown_timer = QTimer(self)
        self._countdown_timer.setInterval(1000)
        self._monotonic: Callable[[], float] = time.monotonic
        self._progress_at = 0.0
        self._search_timer = QTimer(self)
        self._search_timer.setSingleShot(True)
        self._search_timer.setInterval(200)

    def _build_inputs(self) -> QWidget:
        card = QFrame()
        card.setObjectName("ComposeInputs")
        set_variant(card, "card")
        card.setMinimumWidth(400)
        layout = QVBoxLayout(card)
        layout.setContentsMargins(16, 14, 16, 14)
        layout.setSpacing(8)

        layout.addWidget(self._heading("Who to invite"))
        self.input_tabs = QTabWidget()
        self.input_tabs.setDocumentMode(True)
        self.input_tabs.addTab(self._build_one_tab(), "One invitee")
        self.input_tabs.addTab(self._build_paste_tab(), "Paste a list")
        self.input_tabs.addTab(self._build_csv_tab(), "Import CSV")
        self.input_tabs.setMinimumHeight(170)
        layout.addWidget(self.input_tabs, 1)

        layout.addWidget(self._heading("Personal message (optional)"))
        self.message_edit = QPlainTextEdit()
        self.message_edit.setPlaceholderText("e.g. We'd love to see you at training on Tuesday!")
        self.message_edit.setAccessibleName("Personal message")
        self.message_edit.setFixedHeight(76)
        layout.addWidget(self.message_edit)
        hint = PlainLabel(
            "Invitations with a personal message are accepted more often. It appears in the email "
            "exactly as written (a CSV \"message\" column overrides it per row)."
        )
        hint.setWordWrap(True)
        set_variant(hint, "small")
        layout.addWidget(hint)

        layout.addWidget(self._heading("Invitation"))
        self.membership_radio = QRadioButton("Membership")
        self.guest_radio = QRadioButton("Guest to an event")
        self.membership_radio.setChecked(True)
        self.kind_group = QButtonGroup(self)
        self.kind_group.addButton(self.membership_radio, 0)
        self.kind_group.addButton(self.guest_radio, 1)
        kinds = QHBoxLayout()
        kinds.addWidget(self.membership_radio)
        kinds.addWidget(self.guest_radio)
        kinds.addStretch(1)
        layout.addLayout(kinds)
        self.event_combo = QComboBox()
        self.event_combo.setAccessibleName("Event")
        self.event_combo.setEnabled(False)
        layout.addWidget(self.event_combo)

        self.behalf_check = QCheckBox("Send on behalf of another member")
        layout.addWidget(self.behalf_check)
        self.member_edit = QLineEdit()
        self.member_edit.setPlaceholderText("Type a name or email, then pick the member")
        self.member_edit.setAccessibleName("Member credited as inviter")
        self.member_edit.setEnabled(False)
        self._member_model = QStringListModel(self)
        self.member_completer = QCompleter(self._member_model, self)
        self.member_completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.member_completer.setFilterMode(Qt.MatchFlag.MatchContains)
        self.member_completer.setCompletionMode(QCompleter.CompletionMode.PopupCompletion)
        self.member_edit.setCompleter(self.member_completer)
        layout.addWidget(self.member_edit)
        self.behalf_hint = PlainLabel()
        self.behalf_hint.setWordWrap(True)
        set_variant(self.behalf_hint, "small")
        layout.addWidget(self.behalf_hint)

        self.check_button = QPushButton("Check addresses")
        self.check_button.setToolTip(
            "Validates every address (no DNS lookups), finds duplicates, members and pending "
            "invitations. Nothing is sent or saved."
        )
        return card

    def _build_one_tab(self) -> QWidget:
        page = QWidget()
        form = QFormLayout(page)
        form.setContentsMargins(4, 10, 4, 4)
        self.email_edit = QLineEdit()
        self.email_edit.setPlaceholderText("name@example.org")
        self.email_edit.setAccessibleName("Invitee email")
        self.name_edit = QLineEdit()
        self.name_edit.setPlaceholderText("Optional")
        self.name_edit.setAccessibleName("Invitee name")
        form.addRow("Email:", self.email_edit)
        form.addRow("Name:", self.name_edit)
        return page

    def _build_paste_tab(self) -> QWidget:
        page = QWidget()
        layout = QVBoxLayout(page)
        layout.setContentsMargins(4, 8, 4, 4)
        self.paste_edit = QPlainTextEdit()
        self.paste_edit.setAccessibleName("Pasted list of invitees")
        self.paste_edit.setPlaceholderText(
            "One invitee per line:\nada@example.org\nGrace Hopper <grace@example.org>\n"
            "alan@example.org, Alan Turing"
        )
        layout.addWidget(self.paste_edit, 1)
        self.paste_count = PlainLabel("")
        set_variant(self.paste_count, "small")
        layout.addWidget(self.paste_count)
        return page

    def _build_csv_tab(self) -> QWidget:
        page = QWidget()
        layout = QVBoxLayout(page)
        layout.setContentsMargins(4, 8, 4, 4)
        row = QHBoxLayout()
        self.csv_button = QPushButton("Choose a CSV file…")
        row.addWidget(self.csv_button)
        self.csv_file_label = PlainLabel("No file chosen")
        self.csv_file_label.setWordWrap(True)
        row.addWidget(self.csv_file_label, 1)
        layout.addLayout(row)
        self.csv_notes = PlainLabel("")
        self.csv_notes.setWordWrap(True)
        self.csv_notes.setTextFormat(Qt.TextFormat.PlainText)
        self.csv_notes.hide()
        layout.addWidget(self.csv_notes)
        self.csv_error = Banner("CsvError")
        layout.addWidget(self.csv_error)
        help_text = PlainLabel(
            "Columns: email, name (or first and last name), message. The header row is "
            "optional; UTF-8 (with or without BOM) or Latin-1; comma, semicolon or tab."
        )
        help_text.setWordWrap(True)
        set_variant(help_text, "small")
        layout.addWidget(help_text)
        layout.addStretch(1)
        return page

    def _build_results(self) -> QVBoxLayout:
        column = QVBoxLayout()
        column.setSpacing(8)
        header = QHBoxLayout()
        header.addWidget(self._heading("Pre-flight check"))
        self.counts_label = PlainLabel("")
        self.counts_label.setAccessibleName("Pre-flight counts")
        header.addWidget(self.counts_label, 1)
        self.problems_check = QCheckBox("Show only problems")
        header.addWidget(self.problems_check)
        column.addLayout(header)

        self.stale_label = PlainLabel("")
        self.stale_label.setWordWrap(True)
        set_variant(self.stale_label, "badge")
        self.stale_label.hide()
        column.addWidget(self.stale_label)

        self.model = PreflightModel(self)
        self.proxy = ProblemFilter(self)
        self.proxy.setSourceModel(self.model)
        self.table = QTableView()
        self.table.setModel(self.proxy)
        self.table.setAccessibleName("Pre-flight table")
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(Column.ROW, Qt.SortOrder.AscendingOrder)
        self.table.setWordWrap(False)
        vertical = self.table.verticalHeader()
        vertical.hide()
        vertical.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        vertical.setDefaultSectionSize(26)
        horizontal = self.table.horizontalHeader()
        horizontal.setHighlightSections(False)
        horizontal.setStretchLastSection(True)
        for col, width in ((Column.ROW, 52), (Column.EMAIL, 210), (Column.NAME, 130),
                           (Column.STATUS, 132)):
            self.table.setColumnWidth(col, width)
        self.placeholder = PlainLabel(
            "Enter who to invite on the left and press Check addresses.\n\nEvery address is "
            "validated (without DNS lookups), duplicates in the list are found, and each is "
            "compared with current members and pending invitations. Only ready rows are sent."
        )
        self.placeholder.setWordWrap(True)
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        set_variant(self.placeholder, "muted")
        self.placeholder.setMargin(40)
        self.table_stack = QStackedWidget()
        self.table_stack.addWidget(self.placeholder)
        self.table_stack.addWidget(self.table)
        column.addWidget(self.table_stack, 1)

        actions = QHBoxLayout()
        self.preview_button = QPushButton("Preview email")
        self.preview_button.setToolTip("The email of the selected row, as the invitee will see it")
        self.test_button = QPushButton("Send a test to myself")
        self.test_button.setToolTip(
            f"Sends the selected row's email to {self._operator.email}. It is not recorded as an "
            "invitation and its link does not work."
        )
        self.send_button = QPushButton("Send invitations")
        set_flag(self.send_button, "primary", True)
        self.send_button.setToolTip("Only ready rows are sent; the others are skipped.")
        actions.addWidget(self.preview_button)
        actions.addWidget(self.test_button)
        actions.addStretch(1)
        actions.addWidget(self.send_button)
        column.addLayout(actions)
        column.addWidget(self._build_progress())
        return column

    def _build_progress(self) -> QWidget:
        panel = QFrame()
        panel.setObjectName("SendingPanel")
        set_variant(panel, "card")
        layout = QVBoxLayout(panel)
        layout.setContentsMargins(14, 12, 14, 12)
        layout.setSpacing(6)
        top = QHBoxLayout()
        self.progress_title = PlainLabel("Sending")
        set_variant(self.progress_title, "heading")
        top.addWidget(self.progress_title, 1)
        self.pause_button = QPushButton("Pause")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip(
            "Stops after the message being sent now; the rest stay queued and nothing is lost."
        )
        self.resume_batch_button = QPushButton("Send the rest")
        set_flag(self.resume_batch_button, "primary", True)
        self.resume_batch_button.hide()
        top.addWidget(self.pause_button)
        top.addWidget(self.cancel_button)
        top.addWidget(self.resume_batch_button)
        layout.addLayout(top)
        self.progress_bar = QProgressBar()
        self.progress_bar.setTextVisible(True)
        self.progress_bar.setFormat("%v of %m")
        layout.addWidget(self.progress_bar)
        self.progress_counts = PlainLabel("")
        self.progress_counts.setAccessibleName("Sending counts")
        layout.addWidget(self.progress_counts)
        self.summary_label = PlainLabel("")
        self.summary_label.setWordWrap(True)
        self.summary_label.setTextFormat(Qt.TextFormat.PlainText)
        self.summary_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.summary_label.hide()
        layout.addWidget(self.summary_label)
        self.failures_view = QPlainTextEdit()
        self.failures_view.setReadOnly(True)
        self.failures_view.setAccessibleName("Failed and uncertain invitations")
        self.failures_view.setMaximumHeight(96)
        self.failures_view.hide()
        layout.addWidget(self.failures_view)
        self.progress_panel = panel
        panel.hide()
        return panel

    @staticmethod
    def _heading(text: str) -> QLabel:
        label = PlainLabel(text)
        set_variant(label, "heading")
        return label

    def _connect(self) -> None:
        self.outbox.progressed.connect(self._outbox_progressed)
        self.outbox.finished.connect(self._outbox_finished)
        self.outbox.failed.connect(self._outbox_failed)
        self.outbox.running_changed.connect(self._outbox_running_changed)
        self.input_tabs.currentChanged.connect(self._inputs_changed)
        self.email_edit.textChanged.connect(self._inputs_changed)
        self.name_edit.textChanged.connect(self._inputs_changed)
        self.paste_edit.textChanged.connect(self._paste_changed)
        self.email_edit.returnPressed.connect(self.check)
        self.csv_button.clicked.connect(self.choose_csv)
        self.kind_group.idToggled.connect(self._kind_changed)
        self.event_combo.currentIndexChanged.connect(self._inputs_changed)
        self.behalf_check.toggled.connect(self._behalf_toggled)
        self.member_edit.textEdited.connect(self._member_text_edited)
        self.member_completer.activated[str].connect(self._member_chosen)  # type: ignore[index]
        self._search_timer.timeout.connect(self._search_members)
        self.message_edit.textChanged.connect(self._refresh_preview)
        self.check_button.clicked.connect(self.check)
        self.problems_check.toggled.connect(self.proxy.set_problems_only)
        self.table.selectionModel().currentRowChanged.connect(self._refresh_preview)
        self.table.doubleClicked.connect(lambda _index: self.show_preview())
        self.preview_button.clicked.connect(self.show_preview)
        self.test_button.clicked.connect(self.send_test)
        self.send_button.clicked.connect(self.send)
        self.pause_button.clicked.connect(self.toggle_pause)
        self.cancel_button.clicked.connect(self.cancel_sending)
        self.resume_batch_button.clicked.connect(self.send_rest)
        self._progress_timer.timeout.connect(self._render_progress)
        self._countdown_timer.timeout.connect(self._render_progress)

    # ==================================================================== state from the services
    def refresh(self) -> None:
        """Re-read the policy, branding, events, templates and mail settings in the background
        (e.g. after an admin changed settings); the page follows when the answer comes."""
        uow = self._context.uow
        operator = self._operator
        self.hub.query(self, lambda: compose_state(uow, operator), self._state_read,
                       self._state_failed, key="state")

    def _state_read(self, state: ComposeState) -> None:
        self._state = state
        self._policy = state.policy
        self._org = state.organization
        self._events = list(state.events)
        self._apply_policy()

    def _state_failed(self, error: BaseException) -> None:
        self.message_banner.show_message(str(error), "error")
        self._apply_policy()

    def _apply_policy(self) -> None:
        self._send_decision = decide(self._operator, Action.SEND_INVITATIONS, settings=self._policy)
        self._behalf_decision = decide(self._operator, Action.SEND_ON_BEHALF, settings=self._policy)
        if self._send_decision.allowed:
            self.permission_banner.clear_message()
        else:
            self.permission_banner.show_message(
                denied_text(self._send_decision, self._operator), "warning"
            )
        self.content.setEnabled(self._send_decision.allowed)
        self._fill_events()
        self._update_behalf()
        self._update_actions()
        if self._offer_pending:
            self._offer_pending = False
            self._offer_unsent()
        if self._check_pending:
            self._check_pending = False
            self.check()

    def _hub_changed(self, changes: Changes) -> None:
        if changes.touches(SETTINGS) and not self.sending and not self._busy:
            self.refresh()

    def _fill_events(self) -> None:
        current = self.event_combo.currentData()
        self.event_combo.blockSignals(True)
        self.event_combo.clear()
        for event in self._events:
            self.event_combo.addItem(event.label, str(event.id))
        if not self._events:
            self.event_combo.addItem("No events yet: add one before inviting guests", None)
        index = self.event_combo.findData(current) if current else -1
        self.event_combo.setCurrentIndex(max(index, 0))
        self.event_combo.blockSignals(False)
        self.guest_radio.setEnabled(bool(self._events))
        self.guest_radio.setToolTip("" if self._events else "There are no events to invite guests to.")
        if not self._events and self.guest_radio.isChecked():
            self.membership_radio.setChecked(True)
        self.event_combo.setEnabled(self.guest_radio.isChecked() and bool(self._events))

    def _update_behalf(self) -> None:
        allowed = self._behalf_decision.allowed
        self.behalf_check.setEnabled(allowed)
        if not allowed:
            self.behalf_check.setChecked(False)
            needed = self._behalf_decision.needed
            self.behalf_hint.setText(
                f"Sending on behalf of another member needs the {needed.label} role or higher."
            )
        else:
            self._show_credited()
        self.member_edit.setEnabled(allowed and self.behalf_check.isChecked())

    def _show_credited(self) -> None:
        if self.behalf_check.isChecked():
            if self._inviter is not None:
                text = f"Credited to {self._inviter.label}; you are recorded as the sender."
            else:
                text = "Pick the member to credit from the list."
        else:
            text = f"Credited to you ({self._operator.name})."
        self.behalf_hint.setText(text)

    def _recover_interrupted(self) -> None:
        """Once per window: invitations a stopped program left `sending` become `uncertain`."""
        uow = self._context.uow
        org_id = self._operator.organization_id
        # Bookkeeping, not a change the person asked for: quitting need not ask about it, so
        # it runs as a query and says what changed only when it changed something.
        self.hub.query(self, lambda: recover_interrupted(uow, org_id), self._recovered_read,
                       self._recovery_failed, key="recover")

    @staticmethod
    def _recovery_failed(error: BaseException) -> None:
        # The composer must work even if this bookkeeping fails.
        log.error("could not recover interrupted invitations", exc_info=error)

    def _recovered_read(self, recovered: list[str]) -> None:
        self._recovered = recovered
        if not self._recovered:
            return
        self.hub.broadcast({INVITATIONS}, self)
        shown = ", ".join(self._recovered[:5])
        more = f" and {len(self._recovered) - 5} more" if len(self._recovered) > 5 else ""
        count = len(self._recovered)
        self.recovery_banner.show_message(
            f"{plural(count, 'invitation was', 'invitations were')} being sent when Invite Desk "
            f"stopped last time: {shown}{more}. The server may have received "
            f"{'it' if count == 1 else 'them'}, so {'it is' if count == 1 else 'they are'} "
            "marked uncertain and will not be resent automatically. Check with "
            f"{'this person' if count == 1 else 'these people'} before resending.",
            "warning",
        )

    def _look_up_unsent(self) -> None:
        """Invitations still queued from an earlier session (cancelled, stopped or crashed)."""
        uow = self._context.uow
        operator = self._operator
        self.hub.query(self, lambda: unsent_batches(uow, operator), self._unsent_read,
                       self._unsent_failed, key="unsent")

    @staticmethod
    def _unsent_failed(error: BaseException) -> None:
        # The composer must work even if this lookup fails.
        log.error("could not look up unsent batches", exc_info=error)

    def _unsent_read(self, unsent: list[UnsentBatch]) -> None:
        self._unsent = unsent
        if self._state is None:  # the offer waits until the policy is known
            self._offer_pending = True
            return
        self._offer_unsent()

    def _offer_unsent(self) -> None:
        """Offer to send the newest batch an earlier session left queued, instead of leaving
        it forgotten."""
        if not self._unsent or not self._send_decision.allowed:
            return
        newest = self._unsent[0]
        others = sum(b.queued for b in self._unsent[1:])
        label = f" ({newest.label})" if newest.label else ""
        extra = (f" {plural(others, 'more invitation is', 'more invitations are')} queued in "
                 "older batches." if others else "")
        self.message_banner.show_message(
            f"{plural(newest.queued, 'invitation')} from a batch of "
            f"{newest.created_at:%d %b %Y %H:%M}{label} {'was' if newest.queued == 1 else 'were'}"
            f" never sent.{extra}",
            "info",
            action=("Send them now", lambda: self.resume_batch(newest)),
        )

    def resume_batch(self, batch: UnsentBatch) -> None:
        """Send what an earlier session left queued in `batch`."""
        if self.sending or self._busy:
            return
        self._batch_id = batch.batch_id
        self._batch_total = batch.queued
        self._batch_report = SendReport()
        self._uncertain = []
        self.send_rest()

    @property
    def recovered(self) -> list[str]:
        """Emails marked uncertain when this window opened."""
        return list(self._recovered)

    # ==================================================================== inputs
    @property
    def input_mode(self) -> InputMode:
        return InputMode(self.input_tabs.currentIndex())

    def set_input_mode(self, mode: InputMode) -> None:
        self.input_tabs.setCurrentIndex(int(mode))

    def _paste_changed(self) -> None:
        text = self.paste_edit.toPlainText()
        lines = sum(1 for line in text.splitlines() if line.strip())
        self.paste_count.setText(plural(lines, "line") if lines else "")
        self._inputs_changed()

    def _kind_changed(self, _id: int = 0, _checked: bool = True) -> None:
        self.event_combo.setEnabled(self.guest_radio.isChecked() and bool(self._events))
        self._inputs_changed()

    def _inputs_changed(self, *_args: object) -> None:
        """Anything that changes which rows would be ready makes the last check stale."""
        if self._preflight is not None and not self._consumed:
            self._stale = True
            self.stale_label.setText(
                "The list changed since this check. Press Check addresses again before sending."
            )
            self.stale_label.show()
        self._update_actions()

    def _has_input(self) -> bool:
        mode = self.input_mode
        if mode is InputMode.ONE:
            return bool(self.email_edit.text().strip())
        if mode is InputMode.PASTE:
            return bool(self.paste_edit.toPlainText().strip())
        return self._csv is not None

    def _kind(self) -> InvitationKind:
        return InvitationKind.EVENT if self.guest_radio.isChecked() else InvitationKind.MEMBERSHIP

    def _event(self) -> EventInfo | None:
        if self._kind() is not InvitationKind.EVENT:
            return None
        data = self.event_combo.currentData()
        return next((e for e in self._events if str(e.id) == data), None)

    def _collect_inputs(self) -> tuple[InviteeInput, ...]:
        mode = self.input_mode
        if mode is InputMode.ONE:
            return (InviteeInput(1, self.email_edit.text().strip(), clean_name(self.name_edit.text())),)
        if mode is InputMode.PASTE:
            return parse_pasted(self.paste_edit.toPlainText()).rows
        return self._csv.rows if self._csv is not None else ()

    def _source_and_label(self) -> tuple[str, str]:
        mode = self.input_mode
        if mode is InputMode.ONE:
            return "single", self.email_edit.text().strip()
        if mode is InputMode.PASTE:
            return "paste", "Pasted list"
        return "csv", self._csv_name

    # -- CSV ---------------------------------------------------------------------------------
    def choose_csv(self) -> None:
        path, _filter = QFileDialog.getOpenFileName(
            self, "Import invitees from a CSV file", "", "CSV files (*.csv *.txt);;All files (*)"
        )
        if path:
            self.import_csv(Path(path))

    def import_csv(self, path: Path) -> None:
        """Read and parse the file in the background, then check it."""
        self.set_input_mode(InputMode.CSV)
        self.csv_error.clear_message()
        self._set_busy("Reading the file…")

        def work() -> ImportResult:
            try:
                size = path.stat().st_size
                if size > MAX_CSV_BYTES:
                    raise ImportFailed(
                        f"{path.name} is {size / 1024 / 1024:.0f} MB; split it into files under "
                        f"{MAX_CSV_BYTES // 1024 // 1024} MB."
                    )
                data = path.read_bytes()
            except OSError as exc:
                raise ImportFailed(f"Could not read {path.name}: {exc.strerror or exc}.") from None
            return parse_csv(data)

        self._run(work, lambda result: self._csv_imported(path, result), self._csv_failed)

    def _csv_imported(self, path: Path, result: ImportResult) -> None:
        self._set_busy("")
        self._csv = result
        self._csv_name = path.name
        self.csv_file_label.setText(f"{path.name}: {plural(len(result.rows), 'row')}")
        self.csv_notes.setText("\n".join(result.notes))
        self.csv_notes.setVisible(bool(result.notes))
        set_variant(self.csv_notes, "badge" if any("Latin-1" in n for n in result.notes) else "small")
        self._inputs_changed()
        if result.rows:
            self.check()

    def _csv_failed(self, error: BaseException) -> None:
        self._set_busy("")
        self._csv = None
        self._csv_name = ""
        self.csv_file_label.setText("No file imported")
        self.csv_notes.hide()
        if isinstance(error, DomainError):
            self.csv_error.show_message(f"The file was not imported. {error}", "error")
        else:
            log.error("CSV import failed", exc_info=error)
            self.csv_error.show_message(f"The file was not imported: {error}", "error")
        self._inputs_changed()

    # -- on behalf ---------------------------------------------------------------------------
    def _behalf_toggled(self, on: bool) -> None:
        self.member_edit.setEnabled(on and self._behalf_decision.allowed)
        if not on:
            self._inviter = None
            self.member_edit.clear()
        else:
            self.member_edit.setFocus()
            self._search_timer.start()
        self._show_credited()
        self._refresh_preview()
        self._update_actions()

    def _member_text_edited(self, text: str) -> None:
        self._inviter = self._member_choices.get(text)
        self._show_credited()
        self._search_timer.start()
        self._update_actions()

    def _search_members(self) -> None:
        uow = self._context.uow
        operator = self._operator
        text = self.member_edit.text()
        self.hub.query(self, lambda: search_members(uow, operator, text), self._members_found,
                       lambda error: self.behalf_hint.setText(str(error)), key="members")

    def _members_found(self, found: list[MemberChoice]) -> None:
        self._member_choices = {m.label: m for m in found}
        self._member_model.setStringList(list(self._member_choices))
        if self.member_edit.hasFocus() and found and self._inviter is None:
            self.member_completer.complete()

    def _member_chosen(self, label: str) -> None:
        self._inviter = self._member_choices.get(label)
        self._show_credited()
        self._refresh_preview()
        self._update_actions()

    def choose_inviter(self, member: MemberChoice) -> None:
        """Credit `member` as the inviter (what picking from the completer does)."""
        self.behalf_check.setChecked(True)
        self._member_choices[member.label] = member
        self.member_edit.setText(member.label)
        self._member_chosen(member.label)

    # ==================================================================== pre-flight
    def check(self) -> None:
        """Run the pre-flight for the current inputs in the background."""
        if self._state is None:  # the policy is still being read: check once it is known
            self._check_pending = True
            return
        if not self._send_decision.allowed or self._busy or self.sending:
            return
        inputs = self._collect_inputs()
        if not inputs:
            self.message_banner.show_message("Enter at least one email address first.", "info")
            return
        kind = self._kind()
        event = self._event()
        if kind is InvitationKind.EVENT and event is None:
            self.message_banner.show_message("Choose the event the guests are invited to.", "info")
            return
        self.message_banner.clear_message()
        self._check_generation += 1
        generation = self._check_generation
        uow = self._context.uow
        org_id = self._operator.organization_id
        event_id = event.id if event else None
        inviter_id = (self._inviter.id if self.behalf_check.isChecked() and self._inviter
                      else self._operator.member_id)  # invite-only N >= 2: sponsor k of N
        self._set_busy(f"Checking {plural(len(inputs), 'address', 'addresses')}…")
        self._run(
            lambda: run_preflight(uow, org_id, inputs, kind=kind, event_id=event_id,
                                  inviter_id=inviter_id),
            lambda result: self._checked(generation, result),
            self._check_failed,
        )

    def _checked(self, generation: int, result: Preflight) -> None:
        self._set_busy("")
        if generation != self._check_generation:
            return
        self._preflight = result
        self._stale = False
        self._consumed = False
        self.stale_label.hide()
        self.model.set_preflight(result)
        self.table_stack.setCurrentWidget(self.table)
        self.counts_label.setText(self.model.summary())
        self._select_first_row()
        self._update_actions()

    def _check_failed(self, error: BaseException) -> None:
        self._set_busy("")
        self._show_error("The check did not run", error)

    def _select_first_row(self) -> None:
        if self.proxy.rowCount() == 0:
            return
        first_ready = next(
            (r for r in range(self.proxy.rowCount())
             if self.proxy.index(r, 0).data(PreflightRole.STATUS) == RowStatus.READY.value),
            0,
        )
        self.table.selectRow(first_ready)

    @property
    def loaded(self) -> bool:
        """True once the policy, branding and mail settings have been read."""
        return self._state is not None

    @property
    def preflight(self) -> Preflight | None:
        return self._preflight

    def selected_row(self) -> PreflightRow | None:
        index = self.table.currentIndex()
        if index.isValid():
            row = self.proxy.data(index, PreflightRole.ROW)
            if isinstance(row, PreflightRow):
                return row
        if self._preflight and self._preflight.rows:
            return (self._preflight.ready or self._preflight.rows)[0]
        return None

    # ==================================================================== preview and test
    def _inviter_name(self) -> str:
        if self.behalf_check.isChecked() and self._inviter is not None:
            return self._inviter.name
        return self._operator.name

    def _content_for(self, row: PreflightRow, *, email: str | None = None) -> InvitationContent:
        event = self._event()
        return InvitationContent(
            email=email or row.email,
            name=row.name,
            inviter_name=self._inviter_name(),
            personal_message=row.message or clean_message(self.message_edit.toPlainText()),
            expires_at=utcnow() + timedelta(days=self._policy.invitation_expiry_days),
            event_name=event.name if event else "",
        )

    def _templates_and_mail(self) -> tuple[OrganizationInfo, InvitationTemplates, MailSettings]:
        """As last read by `refresh` (on showing the page and after every settings change)."""
        if self._state is None:
            raise DomainError("The organization's settings are still being read: try again in "
                              "a moment.")
        return self._state.organization, self._state.templates, self._state.mail

    def preview_email(self, row: PreflightRow | None = None) -> PreviewEmail:
        """The selected row's email, rendered by the services with a placeholder link."""
        row = row or self.selected_row()
        if row is None:
            raise DomainError("Check the addresses first: the preview shows one row of the list.")
        org, templates, mail = self._templates_and_mail()
        rendered = render_invitation(org, templates, self._content_for(row), PREVIEW_TOKEN)
        sender = mail.from_name or org.name
        if mail.from_address:
            sender = f"{sender} <{mail.from_address}>"
        else:
            sender = f"{sender} (no sender address yet: see Settings › Email)"
        to = f"{row.name} <{row.email}>" if row.name else row.email
        link_note = "The link in a preview is a placeholder and does not work."
        if row.status in SENDABLE:
            note = f"Row {row.row}. {link_note}"
        else:
            note = f"Row {row.row} will not be sent ({STATUS_TEXT[row.status].lower()}). {link_note}"
        return PreviewEmail(rendered, sender, to, org.logo, note)

    def show_preview(self) -> None:
        if self._preview is None:
            self._preview = PreviewDialog(self)
            self._preview.test_requested.connect(self.send_test)
        self._render_preview()
        if self._preview.isVisible():  # already open, perhaps behind the main window
            self._preview.raise_()
        else:
            self._preview.show()

    @property
    def preview_dialog(self) -> PreviewDialog | None:
        return self._preview

    def _refresh_preview(self, *_args: object) -> None:
        """Follow the selection, the message and the inviter while the preview is open."""
        if self._preview is None or not self._preview.isVisible():
            return
        self._render_preview()

    def _render_preview(self) -> None:
        assert self._preview is not None
        try:
            self._preview.pane.show_email(self.preview_email())
        except DomainError as exc:
            self._preview.pane.show_nothing(str(exc))

    def send_test(self) -> None:
        """Send the selected row's email to the operator's own address (not an invitation)."""
        if self._busy or self.sending:
            return
        row = self.selected_row()
        if row is None:
            self.message_banner.show_message("Check the addresses first, then send a test.", "info")
            return
        try:
            org, templates, mail = self._templates_and_mail()
            if not self._mail_ready(mail):
                return
            message, _message_id = build_test_message(  # the batch builder (issue 8)
                org, mail, templates, self._content_for(row, email=self._operator.email),
                PREVIEW_TOKEN,
            )
        except DomainError as exc:
            self._show_error("The test email could not be prepared", exc)
            return
        go_on, password = self._password_for(mail)
        if not go_on:
            return
        to = self._operator.email
        self._set_busy(f"Sending a test to {to}…")
        self._run(
            lambda: send_test_message(mail, password, message, to),
            lambda result: self._test_sent(to, result),
            lambda error: self._test_failed(error),
        )

    def _test_sent(self, to: str, result: SendResult) -> None:
        self._set_busy("")
        if isinstance(result, Sent):
            self.message_banner.show_message(
                f"A test email was sent to {to}. Check your inbox (and the spam folder).", "success"
            )
        elif isinstance(result, PermanentFailure | TemporaryFailure):
            code = f"{result.code} " if result.code else ""
            self.message_banner.show_message(
                f"The server refused the test email to {to}: {code}{result.reply}", "error"
            )
        else:
            self.message_banner.show_message(
                f"The test email to {to} may or may not have arrived: {result.reason}", "warning"
            )

    def _test_failed(self, error: BaseException) -> None:
        self._set_busy("")
        self._show_error("The test email was not sent", error)

    # ==================================================================== sending
    @property
    def sending(self) -> bool:
        """True while the outbox sends a batch this page started."""
        current = self.outbox.current
        return current is not None and current.requester == REQUESTER

    def _outbox_busy(self) -> bool:
        """True (and says so) when the outbox is sending for another page."""
        if not self.outbox.running:
            return False
        self.message_banner.show_message(self.outbox.busy_message(REQUESTER), "warning")
        return True

    def _mail_ready(self, mail: MailSettings) -> bool:
        if mail.configured:
            return True
        self.message_banner.show_message(
            "Sending needs the organization's SMTP server: it is not set up yet. An organization "
            "admin can enter it in Settings › Email.",
            "error",
            action=("Open Settings › Email", self.email_settings_requested.emit),
        )
        return False

    def _password_for(self, mail: MailSettings) -> tuple[bool, str | None]:
        """(go on, password): the password is None when the server needs no sign-in."""
        outcome = self._passwords.password_for(self, mail)
        if not outcome.go_on:
            self.message_banner.show_message(
                "Nothing was sent: the SMTP password is needed to send.", "info"
            )
        elif outcome.warning:
            self.message_banner.show_message(outcome.warning, "warning")
        return outcome.go_on, outcome.password

    def send(self) -> None:
        """Queue the ready rows as one batch, then send it in the background."""
        preflight = self._preflight
        if (preflight is None or self._stale or self._consumed or self._busy or self.sending
                or not self._send_decision.allowed):
            return
        ready = preflight.ready
        if not ready:
            self.message_banner.show_message("No row is ready to send.", "info")
            return
        if self._outbox_busy():
            return
        if self.behalf_check.isChecked() and self._inviter is None:
            self.message_banner.show_message(
                "Pick the member to credit from the list, or untick \"Send on behalf of another "
                "member\".", "error")
            return
        try:
            _org, _templates, mail = self._templates_and_mail()
        except DomainError as exc:
            self._show_error("Nothing was sent", exc)
            return
        if not self._mail_ready(mail):
            return
        source, label = self._source_and_label()
        if not self._confirm_send(ready, label):
            return
        go_on, password = self._password_for(mail)
        if not go_on:
            return
        self.message_banner.clear_message()
        uow = self._context.uow
        operator = self._operator
        inviter_id = self._inviter.id if self.behalf_check.isChecked() and self._inviter else None
        message = clean_message(self.message_edit.toPlainText())
        kind = self._kind()
        event = self._event()
        self._set_busy(f"Queuing {plural(len(ready), 'invitation')}…")
        self.hub.mutate(
            self,
            lambda: queue_invitations(
                uow, operator, ready, inviter_id=inviter_id,
                personal_message=message, kind=kind, event_id=event.id if event else None,
                source=source, label=label,
            ),
            {INVITATIONS},
            lambda queued: self._queued(queued, mail, password),
            self._queue_failed,
        )

    def _confirm_send(self, ready: Sequence[PreflightRow], label: str) -> bool:
        """One click must not send: say how many, to whom and as which batch, Cancel default."""
        count = len(ready)
        event = self._event()
        what = f"guest invitations to {event.label}" if event else "membership invitations"
        text = f"Send {plural(count, 'invitation')} now?"
        details = [f"To: {widgets.summarize_people([r.email for r in ready])}",
                   f"As: {what}"]
        if label:
            details.append(f"Batch: {label}")
        if self.behalf_check.isChecked() and self._inviter is not None:
            details.append(f"On behalf of: {self._inviter.label}")
        return widgets.confirm(self, "Send invitations", text, informative="\n".join(details),
                               action=f"Send {plural(count, 'invitation')}")

    def _queued(self, queued: QueuedBatch, mail: MailSettings, password: str | None) -> None:
        self._set_busy("")
        self._consumed = True
        self.model.mark_ready_rows("queued")
        for row in queued.skipped:
            self.model.set_outcome(row.email, "skipped", "Became a member or was invited since "
                                   "the check: not queued.")
        self.stale_label.setText(
            "These addresses were queued. To invite more people, change the list and check again."
        )
        self.stale_label.show()
        self.batch_queued.emit(queued)
        if queued.skipped:
            emails = ", ".join(r.email for r in queued.skipped[:5])
            self.message_banner.show_message(
                f"{plural(len(queued.skipped), 'address was', 'addresses were')} skipped because "
                f"they became members or were invited since the check: {emails}.", "info")
        if queued.queued == 0:
            self._update_actions()
            return
        self._batch_id = queued.batch_id
        # A resumed batch holds the rows a stopped run queued too.
        self._batch_total = max(queued.queued, queued.total)
        self._batch_report = SendReport()
        self._uncertain = []
        self._start_sending(mail, password)

    def _queue_failed(self, error: BaseException) -> None:
        self._set_busy("")
        self._show_error("Nothing was queued or sent", error)

    def send_rest(self) -> None:
        """Send what is still queued in the last batch (after a cancel or a stop)."""
        if self._batch_id is None or self.sending or self._busy or self._outbox_busy():
            return
        try:
            _org, _templates, mail = self._templates_and_mail()
        except DomainError as exc:
            self._show_error("Nothing was sent", exc)
            return
        if not self._mail_ready(mail):
            return
        go_on, password = self._password_for(mail)
        if not go_on:
            return
        self.message_banner.clear_message()
        self._start_sending(mail, password)

    def _start_sending(self, mail: MailSettings, password: str | None) -> None:
        assert self._batch_id is not None
        # The outbox reads the mail settings again, on its thread, when it connects.
        refusal = self.outbox.send(self._batch_id, password, requester=REQUESTER,
                                   total=self._batch_total)
        if refusal is not None:  # another page started a send meanwhile: this batch waits
            self.message_banner.show_message(refusal.message, "warning")
            self.resume_batch_button.setText("Send the rest")
            self.resume_batch_button.show()
            self._update_actions()
            return
        self._rate = mail.rate_per_minute
        self._last_progress = None
        self.progress_panel.show()
        self.progress_title.setText(f"Sending {plural(self._batch_total, 'invitation')}")
        self.progress_bar.setRange(0, max(self._batch_total, 1))
        self.progress_bar.setValue(0)
        self.progress_counts.setText("Connecting to the mail server…")
        self.summary_label.hide()
        self.failures_view.hide()
        self.failures_view.clear()
        self.pause_button.setText("Pause")
        self.pause_button.show()
        self.pause_button.setEnabled(True)
        self.cancel_button.show()
        self.cancel_button.setEnabled(True)
        self.cancel_button.setText("Cancel")
        self.resume_batch_button.hide()
        self._progress_at = self._monotonic()
        self._countdown_timer.start()
        self.sending_started.emit(self._batch_id)
        self._update_actions()

    def toggle_pause(self) -> None:
        if not self.sending:
            return
        if self.outbox.paused:
            self.outbox.resume()
            self.pause_button.setText("Pause")
        else:
            self.outbox.pause()
            self.pause_button.setText("Resume")
        self._render_progress()

    def cancel_sending(self) -> None:
        if not self.sending:
            return
        self.outbox.cancel()
        self.cancel_button.setEnabled(False)
        self.cancel_button.setText("Cancelling…")
        self.pause_button.setEnabled(False)
        self.progress_counts.setText(
            "Cancelling after the message being sent now; the rest stay queued."
        )

    def _progressed(self, progress: SendProgress) -> None:
        self._last_progress = progress
        self._progress_at = self._monotonic()
        if progress.last_email and progress.last_outcome:
            self.model.set_outcome(progress.last_email, progress.last_outcome)
        if progress.last_outcome == "uncertain" and progress.last_email:
            self._uncertain.append(progress.last_email)
        if not self._progress_timer.isActive():
            self._progress_timer.start()

    def _render_progress(self) -> None:
        progress = self._last_progress
        if progress is None or not self.sending:
            return
        done = progress.total - progress.remaining
        self.progress_bar.setRange(0, max(progress.total, 1))
        self.progress_bar.setValue(done)
        seconds = progress.seconds_left
        if self._rate and progress.remaining:
            seconds = max(seconds or 0.0, progress.remaining * 60 / self._rate)
        if seconds is not None and not self.outbox.paused:
            # Count down between two reports (a rate-limit wait reports rarely).
            seconds = max(seconds - (self._monotonic() - self._progress_at), 0.0)
        if self.outbox.paused:
            tail = "paused: nothing is being sent"
        elif progress.remaining:
            tail = format_time_left(seconds)
        else:
            tail = "finishing…"
        if self.cancel_button.isEnabled() or not self.sending:
            self.progress_counts.setText(f"{self._counts_text(progress)} · {tail}")

    def _counts_text(self, progress: SendProgress) -> str:
        """Counts for the whole batch: earlier runs plus this one."""
        before = self._batch_report
        return (f"{before.sent + progress.sent:,} sent · {before.failed + progress.failed:,} "
                f"failed · {before.uncertain + progress.uncertain:,} uncertain · "
                f"{progress.remaining:,} remaining")

    def _end_job(self) -> None:
        self._progress_timer.stop()
        self._countdown_timer.stop()

    # The outbox reports every send; this page follows the ones it started.
    def _outbox_progressed(self, progress: SendProgress) -> None:
        if self.sending:
            self._progressed(progress)

    def _outbox_finished(self, outcome: SendOutcome) -> None:
        if outcome.requester == REQUESTER and outcome.report is not None:
            self._finished(outcome.report)

    def _outbox_failed(self, outcome: SendOutcome) -> None:
        if outcome.requester == REQUESTER:
            self._failed(outcome.message, outcome.settings_page)

    def _outbox_running_changed(self, _running: bool) -> None:
        self._update_actions()

    def _finished(self, report: SendReport) -> None:
        """The run ended (done, cancelled or stopped): summarize the whole batch so far."""
        self._end_job()
        progress = self._last_progress
        remaining = progress.remaining if progress is not None else 0
        before = self._batch_report
        self._batch_report = SendReport(
            sent=before.sent + report.sent, failed=before.failed + report.failed,
            uncertain=before.uncertain + report.uncertain, retried=before.retried + report.retried,
            cancelled=report.cancelled, error=report.error,
            failures=[*before.failures, *report.failures],
        )
        for email, reason in report.failures:
            self.model.set_outcome(email, "failed", reason)
        for email in self._uncertain:
            self.model.set_outcome(email, "uncertain", "May have been received; not resent "
                                   "automatically.")
        self._show_summary(self._batch_report, remaining)
        self.sending_finished.emit(report)
        self._update_actions()

    def _failed(self, message: str, page: str | None = None) -> None:
        self._end_job()
        self.progress_title.setText("Sending stopped")
        self.progress_counts.setText(message)
        self.pause_button.hide()
        self.cancel_button.hide()
        self.resume_batch_button.setText("Try again")
        self.resume_batch_button.setVisible(self._batch_id is not None)
        self.message_banner.show_message(
            f"Sending stopped: {message} Invitations not sent yet stay queued.", "error",
            action=(("Open settings", lambda: self.settings_requested.emit(page))
                    if page else None))
        self._update_actions()

    def _show_summary(self, report: SendReport, remaining: int) -> None:
        parts = [f"{report.sent:,} sent"]
        if report.failed:
            parts.append(f"{report.failed:,} failed")
        if report.uncertain:
            parts.append(f"{report.uncertain:,} uncertain")
        if remaining:
            parts.append(f"{remaining:,} not sent yet")
        headline = ", ".join(parts)
        if report.error:
            title = "Sending stopped"
        elif report.cancelled:
            title = "Sending cancelled"
        else:
            title = "Sending finished"
        self.progress_title.setText(f"{title}: {headline}")
        self.progress_counts.setText(headline)
        done = report.sent + report.failed + report.uncertain
        self.progress_bar.setRange(0, max(done + remaining, 1))
        self.progress_bar.setValue(done)
        lines: list[str] = []
        if report.error:
            hint = (" Check the user name and password in Settings › Email."
                    if "password" in report.error or "sign" in report.error else "")
            lines.append(f"Stopped: {report.error}{hint}")
        if remaining:
            lines.append(
                f"{plural(remaining, 'invitation is', 'invitations are')} still queued and nothing "
                "was lost: press Send the rest to continue."
            )
        if report.failed:
            one = report.failed == 1
            lines.append(
                f"{plural(report.failed, 'invitation')} failed: the server refused "
                f"{'it' if one else 'them'} (reply below). {'It is' if one else 'They are'} "
                "not retried."
            )
        if report.uncertain:
            lines.append(
                f"{plural(report.uncertain, 'invitation is', 'invitations are')} uncertain: the "
                "connection broke after the message went out, so it may have been received. "
                "Not resent automatically; check with the invitee before resending."
            )
        if report.retried and not report.failed:
            lines.append(f"{plural(report.retried, 'temporary refusal')} retried.")
        self.summary_label.setText("\n".join(lines))
        self.summary_label.setVisible(bool(lines))
        details = [f"{email} — {reason}" for email, reason in report.failures]
        details += [f"{email} — uncertain: may have been received; not resent automatically"
                    for email in self._uncertain]
        self.failures_view.setPlainText("\n".join(details))
        self.failures_view.setVisible(bool(details))
        self.pause_button.hide()
        self.cancel_button.hide()
        self.resume_batch_button.setText(f"Send the rest ({remaining:,})")
        self.resume_batch_button.setVisible(remaining > 0)
        kind = "error" if report.error or report.failed else ("warning" if report.uncertain
                                                              or remaining else "success")
        self.message_banner.show_message(f"{title}: {headline}.", kind)

    def stop_sending(self, wait_ms: int = 60_000) -> bool:
        """Cancel a running batch and wait for it (the main window calls this before quitting)."""
        if not self.sending:
            return True
        return self.outbox.stop(wait_ms)

    # ==================================================================== helpers
    def _run(
        self,
        work: Callable[[], T],
        on_done: Callable[[T], None],
        on_failed: Callable[[BaseException], None],
    ) -> None:
        self.hub.query(self, work, on_done, on_failed, key=None)

    def _set_busy(self, text: str) -> None:
        self._busy = text
        if text:
            self.counts_label.setText(text)
        elif self._preflight is not None:
            self.counts_label.setText(self.model.summary())
        else:
            self.counts_label.setText("")
        self._update_actions()

    def _show_error(self, what: str, error: BaseException) -> None:
        if isinstance(error, SmtpAuthError):
            self.message_banner.show_message(
                f"{what}. {error}", "error",
                action=("Open Settings › Email", self.email_settings_requested.emit))
        elif isinstance(error, SettingsIncomplete):
            page = error.settings_page
            self.message_banner.show_message(
                f"{what}. {error}", "error",
                action=("Open settings", lambda: self.settings_requested.emit(page)))
        elif isinstance(error, DomainError):
            self.message_banner.show_message(f"{what}. {error}", "error")
        else:
            log.error("%s", what, exc_info=error)
            self.message_banner.show_message(
                f"{what}: an unexpected error happened ({type(error).__name__}: {error}).", "error")

    def _update_actions(self) -> None:
        allowed = self._send_decision.allowed
        sending = self.sending
        idle = allowed and not sending and not self._busy
        has_rows = self._preflight is not None and bool(self._preflight.rows)
        ready = len(self._preflight.ready) if self._preflight is not None else 0
        for widget in (self.input_tabs, self.message_edit, self.membership_radio,
                       self.guest_radio, self.behalf_check):
            widget.setEnabled(allowed and not sending and not self._busy)
        self.guest_radio.setEnabled(self.guest_radio.isEnabled() and bool(self._events))
        self.behalf_check.setEnabled(self.behalf_check.isEnabled() and self._behalf_decision.allowed)
        self.event_combo.setEnabled(self.guest_radio.isEnabled() and self.guest_radio.isChecked())
        self.member_edit.setEnabled(self.behalf_check.isEnabled() and self.behalf_check.isChecked())
        self.check_button.setEnabled(idle and self._has_input())
        can_send = idle and has_rows and ready > 0 and not self._stale and not self._consumed
        elsewhere = self.outbox.running and not sending  # one send at a time, app-wide
        self.send_button.setEnabled(can_send and not elsewhere)
        self.send_button.setToolTip(self.outbox.busy_message(REQUESTER) if elsewhere else
                                    "Only ready rows are sent; the others are skipped.")
        self.send_button.setText(f"Send {plural(ready, 'invitation')}" if ready and not
                                 self._consumed else "Send invitations")
        self.preview_button.setEnabled(allowed and has_rows)
        self.test_button.setEnabled(idle and has_rows)
        self.problems_check.setEnabled(has_rows)

    # ==================================================================== Qt overrides
    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if not self.sending and not self._busy:
            self.refresh()

    def closeEvent(self, event: QCloseEvent) -> None:
        self.stop_sending()
        self._end_job()
        if self._owns_hub:  # in the main window, the window waits for the app's hub
            self.hub.shutdown(30_000)
        if self._preview is not None:
            self._preview.close()
        super().closeEvent(event)

