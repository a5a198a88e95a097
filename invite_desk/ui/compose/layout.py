"""The composer's widgets: the recipients box (one, a pasted list, a CSV), the message, the
kind of invitation and who is credited, the checked rows, the send progress; and the
helpers they share. The page is built in three layers: this layout, the view (view.py:
state, inputs, check, preview) and ComposeWindow (window.py: sending).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from email.message import EmailMessage
from enum import IntEnum
from typing import TypeVar

from PySide6.QtCore import QStringListModel, Qt, QTimer
from PySide6.QtWidgets import (
    QAbstractItemView,
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QCompleter,
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

from invite_desk.services.credentials import CredentialStore
from invite_desk.services.mail_settings import MailSettings
from invite_desk.services.operator import Operator
from invite_desk.services.permissions import Decision
from invite_desk.services.smtp.transport import (
    AccessToken,
    SendResult,
    SmtpTransport,
)
from invite_desk.ui.compose.preflight_model import (
    Column,
    PreflightModel,
    ProblemFilter,
)
from invite_desk.ui.hub_page import SendingPage
from invite_desk.ui.password_prompt import PasswordAnswer
from invite_desk.ui.theme import set_flag, set_variant
from invite_desk.ui.widgets import Banner, PlainLabel

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
    mail: MailSettings, password: str | None, message: EmailMessage | bytes, to: str,
    access_token: AccessToken | None = None,
) -> SendResult:
    """One message over its own connection (the test email); not recorded anywhere."""
    with SmtpTransport(mail.smtp_config(timeout=20), password,
                       access_token=access_token) as transport:
        return transport.send(message, to)



class ComposeLayout(SendingPage):
    """The widgets of the Compose page (built once, by `_build`)."""

    requester = REQUESTER
    model: PreflightModel
    proxy: ProblemFilter

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
            "optional; UTF-8, UTF-16 (Excel's Unicode Text) or Latin-1; comma, semicolon or "
            "tab."
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
        # Many kinds of rows make a long line; wrapped, it never widens the window past
        # its size (it cut off "Show only problems" and Send at 1200 px).
        self.counts_label.setWordWrap(True)
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
