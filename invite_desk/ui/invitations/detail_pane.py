"""The detail pane: one invitation, its personal message and its history from the audit log."""

from __future__ import annotations

import html

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QTextDocument
from PySide6.QtWidgets import (
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from invite_desk.services.models import InvitationStatus
from invite_desk.services.tracking import InvitationDetail
from invite_desk.ui.invitations.table_model import (
    STATUS_COLOURS,
    STATUS_TEXT,
    format_full,
    format_when,
)
from invite_desk.ui.theme import set_variant
from invite_desk.ui.widgets import PlainLabel, rich_label

EMPTY_TEXT = "Select an invitation to see its details and history."
NOT_SENT = {
    InvitationStatus.FAILED: "never delivered",
    InvitationStatus.UNCERTAIN: "perhaps: the program stopped while sending it",
    InvitationStatus.REVOKED: "never (revoked before it was sent)",
    InvitationStatus.SUPPRESSED: "never (the address is on the suppression list)",
}


class DetailPane(QFrame):
    """Shows an InvitationDetail; `show_message` for nothing or many selected, or an error.
    `history_requested(entity type, id, title)`: open the audit log filtered to it."""

    history_requested = Signal(str, object, str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("InvitationDetail")
        set_variant(self, "card")
        self.setMinimumWidth(300)
        self.detail: InvitationDetail | None = None

        self.message_label = PlainLabel(EMPTY_TEXT)
        self.message_label.setWordWrap(True)
        self.message_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        set_variant(self.message_label, "muted")
        self.message_label.setMargin(24)

        self._content: QScrollArea | None = None
        self.stack = QStackedWidget()
        self.stack.addWidget(self.message_label)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(self.stack)

    def _build_content(self) -> None:
        """The detail widgets, built when the first invitation is shown (opening the
        window stays quick)."""
        content = QWidget()
        layout = QVBoxLayout(content)
        layout.setContentsMargins(16, 14, 16, 14)
        layout.setSpacing(6)
        self.email_label = PlainLabel()
        self.email_label.setObjectName("DetailEmail")
        self.email_label.setStyleSheet("font-size: 12pt; font-weight: 600;")
        self.email_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.email_label.setWordWrap(True)
        self.email_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.name_label = PlainLabel()
        set_variant(self.name_label, "muted")
        self.status_label = rich_label()  # composed HTML, the status text escaped
        self.status_label.setObjectName("DetailStatus")
        self.status_label.setWordWrap(True)
        layout.addWidget(self.email_label)
        layout.addWidget(self.name_label)
        layout.addWidget(self.status_label)

        form = QFormLayout()
        form.setContentsMargins(0, 6, 0, 6)
        form.setHorizontalSpacing(12)
        form.setVerticalSpacing(3)
        form.setLabelAlignment(Qt.AlignmentFlag.AlignLeft)
        self.fields: dict[str, QLabel] = {}
        for key in ("Inviter", "Sender", "Unit", "Kind", "Batch", "Sent", "Expires", "Accepted",
                    "Attempts", "Last error"):
            value = PlainLabel()
            value.setWordWrap(True)
            # Long unbroken text (a Message-ID) must wrap or clip, never widen the pane.
            value.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
            value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            caption = PlainLabel(key)
            set_variant(caption, "small")
            form.addRow(caption, value)
            self.fields[key] = value
        layout.addLayout(form)

        self.personal_message = PlainLabel()
        self.personal_message.setWordWrap(True)
        self.personal_message.setTextFormat(Qt.TextFormat.PlainText)
        self.personal_message.setStyleSheet(
            "background: #F6F7F9; border-radius: 6px; padding: 6px 8px; font-style: italic;")
        layout.addWidget(self.personal_message)

        heading = PlainLabel("History")
        set_variant(heading, "heading")
        self.audit_button = QPushButton("Open in the audit log")
        self.audit_button.setObjectName("DetailAuditLink")
        self.audit_button.setFlat(True)
        self.audit_button.clicked.connect(self._ask_history)
        heading_row = QHBoxLayout()
        heading_row.addWidget(heading, 1)
        heading_row.addWidget(self.audit_button)
        layout.addLayout(heading_row)
        self.history_note = PlainLabel()
        self.history_note.setWordWrap(True)
        set_variant(self.history_note, "small")
        layout.addWidget(self.history_note)
        self.history = PlainLabel()
        self.history.setObjectName("DetailHistory")
        self.history.setAccessibleName("Invitation history")
        self.history.setTextFormat(Qt.TextFormat.RichText)
        self.history.setWordWrap(True)
        self.history.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.history.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.history.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        layout.addWidget(self.history)
        layout.addStretch(1)

        scroll = QScrollArea()
        scroll.setObjectName("DetailScroll")
        scroll.setWidget(content)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setStyleSheet("QScrollArea#DetailScroll, QScrollArea#DetailScroll > QWidget > QWidget"
                             " { background: transparent; }")
        self._content = scroll
        self.stack.addWidget(self._content)

    def _ask_history(self) -> None:
        if self.detail is not None:
            row = self.detail.row
            self.history_requested.emit("invitation", row.id, f"the invitation to {row.email}")

    def show_message(self, text: str = EMPTY_TEXT) -> None:
        self.detail = None
        self.message_label.setText(text)
        self.stack.setCurrentWidget(self.message_label)

    def show_detail(self, detail: InvitationDetail) -> None:
        if self._content is None:
            self._build_content()
        self.detail = detail
        row = detail.row
        self.email_label.setText(row.email)
        self.name_label.setText(row.name)
        self.name_label.setVisible(bool(row.name))
        colour = STATUS_COLOURS[row.status]
        status = STATUS_TEXT[row.status]
        if row.status is not row.stored_status:
            status += " (the link's expiry has passed)"
        elif row.expires_at is not None and row.status.value in ("sent", "uncertain"):
            status += f" · link valid until {format_when(row.expires_at)}"
        self.status_label.setText(
            f"<span style='color:{colour}; font-weight:600'>{html.escape(status)}</span>")
        values = {
            "Inviter": row.inviter_name,
            "Sender": row.sender_name if row.sender_id != row.inviter_id else "the inviter",
            "Unit": row.unit_name or "—",
            "Kind": row.kind_label,
            "Batch": row.batch_label or "—",
            "Sent": format_full(row.sent_at) or NOT_SENT.get(row.status, "not sent yet"),
            "Expires": format_full(row.expires_at) or "—",
            "Accepted": format_full(row.accepted_at) or "—",
            "Attempts": str(row.attempts),
            "Last error": " ".join(row.last_error.split()) or "—",
        }
        for key, value in values.items():
            self.fields[key].setText(value)
        message = detail.personal_message.strip()
        self.personal_message.setText(f"“{message}”" if message else "")
        self.personal_message.setVisible(bool(message))
        self.history_note.setText(
            "" if detail.from_audit else
            "No audit rows were recorded for this invitation (imported or demo data); "
            "this history comes from its own dates.")
        self.history_note.setVisible(not detail.from_audit)
        self.history.setText(self._history_html(detail))
        self.stack.setCurrentIndex(1)

    @staticmethod
    def _history_html(detail: InvitationDetail) -> str:
        items = []
        for entry in reversed(detail.history):  # newest first
            who = f" · {html.escape(entry.actor)}" if entry.actor else ""
            # Zero-width spaces let a Message-ID wrap at its @ and dots.
            breakable = html.escape(entry.detail).replace("@", "@\u200b").replace(".", ".\u200b")
            detail_text = (f"<br><span style='color:#3B424D'>{breakable}</span>"
                           if entry.detail else "")
            items.append(
                f"<p style='margin-top:0; margin-bottom:8px'><b>{html.escape(entry.title)}</b>"
                f"<br><span style='color:#5B6270; font-size:9pt'>"
                f"{html.escape(format_when(entry.at))}{who}</span>{detail_text}</p>"
            )
        return "".join(items) or "<i>Nothing recorded yet.</i>"

    def history_text(self) -> str:
        """The history as plain text (tests, accessibility)."""
        doc = QTextDocument()
        doc.setHtml(self.history.text())
        return doc.toPlainText()
