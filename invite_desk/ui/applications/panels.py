"""The Applications page's parts: the wording of decisions, the table that fits its columns,
the dialog asking for a reason and the side panel with one application's details."""

from __future__ import annotations

import html
import uuid
from collections.abc import Sequence

from PySide6.QtCore import Qt
from PySide6.QtGui import QFont, QResizeEvent
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFrame,
    QLabel,
    QPlainTextEdit,
    QScrollArea,
    QStackedWidget,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from invite_desk.services.adhesion import OPEN_STATUSES, REASON_MAX, ApplicationRow
from invite_desk.services.applications_view import (
    ApplicationDetails,
    DecisionOutcome,
    Verdict,
)
from invite_desk.services.models import AdhesionStatus, ReferralStatus
from invite_desk.ui import theme
from invite_desk.ui.applications.model import (
    STATUS_COLOURS,
    STATUS_TEXT,
    Column,
    format_date,
    format_datetime,
)
from invite_desk.ui.hub import APPLICATIONS, MEMBERS, REFERRALS
from invite_desk.ui.tasks import (
    error_message,
)
from invite_desk.ui.widgets import PlainLabel, plural

DENIED_TITLE = "Applications are reviewed by HR and admins"
SETTINGS_PLACE = "Settings › Referrals"
ADHESION_EXPLAINED = (
    "Adhesion is the formal application process: when it is required, people who register "
    "become applicants and wait here until HR or an admin approves them; approval makes them "
    "members and completes the referral of whoever invited them."
)
# Which statuses each decision can start from (as services/adhesion.py allows).
ALLOWED_FROM: dict[Verdict, frozenset[AdhesionStatus]] = {
    Verdict.APPROVE: frozenset(OPEN_STATUSES),
    Verdict.REJECT: frozenset(OPEN_STATUSES),
    Verdict.DRAFT: frozenset({AdhesionStatus.NEW, AdhesionStatus.PENDING}),
}
DECIDED_CHANGES = frozenset({APPLICATIONS, MEMBERS, REFERRALS})
VERDICT_BUTTON = {Verdict.APPROVE: "Approve", Verdict.REJECT: "Reject",
                  Verdict.DRAFT: "Return to draft"}
VERDICT_BUSY = {Verdict.APPROVE: "Approving", Verdict.REJECT: "Rejecting",
                Verdict.DRAFT: "Returning"}
NOT_ELIGIBLE = {
    Verdict.APPROVE: "Approved and rejected applications are final.",
    Verdict.REJECT: "Approved and rejected applications are final.",
    Verdict.DRAFT: "Only new or pending applications can go back to draft.",
}


# ------------------------------------------------------------------------------ wording
def join_names(names: Sequence[str], limit: int = 3) -> str:
    """"Zoë Martin", "Zoë Martin and Sam Weiß", "A, B and C", "A, B, C and 2 more"."""
    names = list(names)
    if len(names) > limit:
        shown, rest = names[:limit], len(names) - limit
        return f"{', '.join(shown)} and {rest} more"
    if len(names) <= 1:
        return "".join(names)
    return f"{', '.join(names[:-1])} and {names[-1]}"



def confirmation_text(outcome: DecisionOutcome) -> str:
    """The quiet line after a decision, e.g. "Approved Zoë Martin; their referral by Ada Admin
    is completed." """
    decided = outcome.decided
    if not decided:
        return ""
    names = [d.row.name for d in decided]
    if outcome.verdict is Verdict.APPROVE:
        if len(decided) == 1:
            referrers = decided[0].completed_by
            if not referrers:
                return f"Approved {names[0]}."
            noun = "referral" if len(referrers) == 1 else "referrals"
            verb = "is" if len(referrers) == 1 else "are"
            return f"Approved {names[0]}; their {noun} by {join_names(referrers)} {verb} completed."
        completed = sum(len(d.completed_by) for d in decided)
        text = f"Approved {plural(len(decided), 'application')}: {join_names(names)}"
        if completed:
            verb = "is" if completed == 1 else "are"
            text += f"; {plural(completed, 'referral')} {verb} completed"
        return text + "."
    if outcome.verdict is Verdict.REJECT:
        if len(decided) == 1:
            return f"Rejected {names[0]}'s application; the reason is kept with it."
        return (f"Rejected {plural(len(decided), 'application')}: {join_names(names)}; the "
                "reason is kept with each.")
    if len(decided) == 1:
        return f"Returned {names[0]}'s application to draft, with your reason."
    return (f"Returned {plural(len(decided), 'application')} to draft: {join_names(names)}, "
            "with your reason.")


def failure_text(outcome: DecisionOutcome) -> str:
    failed = outcome.failed
    if not failed:
        return ""
    messages = " ".join(error_message(error) for _name, error in failed)
    if len(failed) == 1:
        return messages
    return f"{plural(len(failed), 'application was', 'applications were')} not changed. {messages}"


# ------------------------------------------------------------------------------ the table
# Columns share the table's width: each gets its minimum, the rest is spread by weight,
# until the operator resizes a column by hand (then their widths stay as they made them).
COLUMN_MINIMUMS = {Column.NAME: 100, Column.EMAIL: 110, Column.UNIT: 72, Column.REFERRED_BY: 92,
                   Column.STATUS: 100, Column.SUBMITTED: 84, Column.REASON: 56}
COLUMN_WEIGHTS = {Column.NAME: 22, Column.EMAIL: 30, Column.UNIT: 16, Column.REFERRED_BY: 18,
                  Column.STATUS: 2, Column.SUBMITTED: 0, Column.REASON: 12}


class FittedTableView(QTableView):
    """A table whose columns fill its width (no horizontal scrolling at a normal size)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._user_sized = False
        self._fitting = False
        self.horizontalHeader().sectionResized.connect(self._section_resized)

    def fit_columns(self) -> None:
        if self.model() is None or self._user_sized:
            return
        shown = [col for col in Column if not self.isColumnHidden(col)]
        spare = max(0, self.viewport().width() - sum(COLUMN_MINIMUMS[col] for col in shown))
        total = sum(COLUMN_WEIGHTS[col] for col in shown) or 1
        widths = {col: COLUMN_MINIMUMS[col] + spare * COLUMN_WEIGHTS[col] // total
                  for col in shown}
        widths[Column.REASON] += max(0, self.viewport().width() - sum(widths.values()))
        self._fitting = True
        try:
            for col, width in widths.items():
                self.setColumnWidth(col, width)
        finally:
            self._fitting = False

    def set_column_shown(self, column: Column, shown: bool) -> None:
        self._fitting = True  # hiding a column is not the operator resizing one
        try:
            self.setColumnHidden(column, not shown)
        finally:
            self._fitting = False
        self.fit_columns()

    def _section_resized(self, _section: int, _old: int, _new: int) -> None:
        if not self._fitting:
            self._user_sized = True

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 (Qt override)
        super().resizeEvent(event)
        self.fit_columns()


# ------------------------------------------------------------------------------ reason dialog
class ReasonDialog(QDialog):
    """Asks why an application is rejected or returned to draft; refuses an empty reason."""

    def __init__(self, verdict: Verdict, names: Sequence[str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        if verdict is Verdict.APPROVE:
            raise ValueError("approvals need no reason")
        self.setObjectName("ReasonDialog")
        self.verdict = verdict
        many = len(names) > 1
        what = plural(len(names), "application") if many else "application"
        if verdict is Verdict.REJECT:
            self.setWindowTitle(f"Reject {what}")
            question = (f"Why are these {len(names)} applications rejected ({join_names(names)})?"
                        if many else f"Why is {names[0]}'s application rejected?")
            hint = "The applicant will see this reason. Nothing is deleted: the record stays."
            accept_text = f"Reject {len(names)}" if many else "Reject"
        else:
            self.setWindowTitle(f"Return {what} to draft")
            question = (f"What should these {len(names)} applicants correct "
                        f"({join_names(names)})?" if many
                        else f"What should {names[0]} correct in their application?")
            hint = ("The application goes back to draft with this reason; the applicant will "
                    "see it, and it can be submitted again.")
            accept_text = "Return to draft"
        self.question_label = PlainLabel(question)
        self.question_label.setWordWrap(True)
        self.question_label.setTextFormat(Qt.TextFormat.PlainText)
        self.question_label.setStyleSheet("font-weight: 600;")
        hint_label = PlainLabel(hint)
        hint_label.setWordWrap(True)
        theme.set_variant(hint_label, "small")
        self.reason_edit = QPlainTextEdit()
        self.reason_edit.setAccessibleName("Reason")
        self.reason_edit.setTabChangesFocus(True)
        self.reason_edit.setPlaceholderText(
            "e.g. We could not confirm your address; please correct it and submit again."
            if verdict is Verdict.DRAFT else "e.g. Membership is open to residents of the coast.")
        self.reason_edit.setFixedHeight(96)
        self.error_label = PlainLabel()
        self.error_label.setWordWrap(True)
        theme.set_variant(self.error_label, "fieldError")
        self.error_label.hide()
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.accept_button = self.buttons.addButton(accept_text,
                                                    QDialogButtonBox.ButtonRole.AcceptRole)
        theme.set_flag(self.accept_button, "primary", True)
        self.accept_button.setDefault(True)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        self.reason_edit.textChanged.connect(self._edited)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(20, 18, 20, 16)
        layout.setSpacing(8)
        layout.addWidget(self.question_label)
        layout.addWidget(hint_label)
        layout.addWidget(self.reason_edit)
        layout.addWidget(self.error_label)
        layout.addSpacing(4)
        layout.addWidget(self.buttons)
        self.setMinimumWidth(460)

    @property
    def reason(self) -> str:
        return self.reason_edit.toPlainText().strip()

    @property
    def error(self) -> str:
        return self.error_label.text() if self.error_label.isVisibleTo(self) else ""

    def accept(self) -> None:
        """Close only with a usable reason; otherwise say what is missing and stay open."""
        text = self.reason
        if not text:
            self._show_error("Please give a reason; the applicant will see it.")
            return
        if len(text) > REASON_MAX:
            self._show_error(f"The reason must be at most {REASON_MAX:,} characters "
                             f"(it has {len(text):,}).")
            return
        super().accept()

    def _show_error(self, text: str) -> None:
        self.error_label.setText(text)
        self.error_label.show()
        theme.set_flag(self.reason_edit, "invalid", True)
        self.reason_edit.setFocus()

    def _edited(self) -> None:
        if self.error_label.isVisibleTo(self) and self.reason:
            self.error_label.hide()
            theme.set_flag(self.reason_edit, "invalid", False)


# ------------------------------------------------------------------------------ side panel
class DetailPanel(QFrame):
    """The selected application: who, where, who referred them, and what happened so far."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("ApplicationDetail")
        theme.set_variant(self, "card")
        self.placeholder = PlainLabel("Select an application to see who referred them, when they "
                                  "registered and its history.")
        self.placeholder.setWordWrap(True)
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        theme.set_variant(self.placeholder, "muted")

        self.name_label = PlainLabel()
        self.name_label.setWordWrap(True)
        self.name_label.setTextFormat(Qt.TextFormat.PlainText)
        theme.set_variant(self.name_label, "heading")
        self.email_label = PlainLabel()
        self.email_label.setWordWrap(True)
        self.email_label.setTextFormat(Qt.TextFormat.PlainText)
        self.email_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        theme.set_variant(self.email_label, "muted")
        self.status_label = PlainLabel()
        self.status_label.setObjectName("ApplicationStatus")
        self.facts_label = self._rich_label()
        self.reason_heading = self._heading("Reason")
        self.reason_label = PlainLabel()
        self.reason_label.setWordWrap(True)
        self.reason_label.setTextFormat(Qt.TextFormat.PlainText)
        self.reason_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.referrals_label = self._rich_label()
        self.history_label = self._rich_label()

        content = QWidget()
        content.setObjectName("ApplicationDetailContent")
        column = QVBoxLayout(content)
        column.setContentsMargins(16, 14, 16, 14)
        column.setSpacing(6)
        column.addWidget(self.name_label)
        column.addWidget(self.email_label)
        column.addWidget(self.status_label, 0, Qt.AlignmentFlag.AlignLeft)
        column.addSpacing(4)
        column.addWidget(self.facts_label)
        column.addWidget(self.reason_heading)
        column.addWidget(self.reason_label)
        column.addSpacing(4)
        column.addWidget(self._heading("Referred by"))
        column.addWidget(self.referrals_label)
        column.addSpacing(4)
        column.addWidget(self._heading("History"))
        column.addWidget(self.history_label)
        column.addStretch(1)
        scroll = QScrollArea()
        scroll.setObjectName("ApplicationDetailScroll")
        scroll.setWidget(content)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setStyleSheet("QScrollArea#ApplicationDetailScroll, "
                             "QWidget#ApplicationDetailContent { background: transparent; }")

        self.stack = QStackedWidget()
        self.stack.addWidget(self.placeholder)
        self.stack.addWidget(scroll)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(1, 1, 1, 1)
        layout.addWidget(self.stack)
        self._member_id: uuid.UUID | None = None
        self.show_nothing()

    @staticmethod
    def _heading(text: str) -> QLabel:
        label = PlainLabel(text)
        font = QFont(label.font())
        font.setWeight(QFont.Weight.DemiBold)
        label.setFont(font)
        label.setContentsMargins(0, 4, 0, 0)
        return label

    @staticmethod
    def _rich_label() -> QLabel:
        label = PlainLabel()
        label.setWordWrap(True)
        label.setTextFormat(Qt.TextFormat.RichText)
        label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        return label

    @property
    def member_id(self) -> uuid.UUID | None:
        """The application shown (None when nothing or several are selected)."""
        return self._member_id

    def show_nothing(self, text: str = "") -> None:
        self._member_id = None
        if text:
            self.placeholder.setText(text)
        else:
            self.placeholder.setText("Select an application to see who referred them, when "
                                     "they registered and its history.")
        self.stack.setCurrentIndex(0)

    def show_several(self, rows: Sequence[ApplicationRow]) -> None:
        self.show_nothing(f"{plural(len(rows), 'application')} selected: "
                          f"{join_names([r.name for r in rows], limit=5)}.")

    def show_row(self, row: ApplicationRow) -> None:
        """What the table row already knows; history and referrals follow (show_details)."""
        self._member_id = row.member_id
        self.name_label.setText(row.name)
        self.email_label.setText(row.email)
        text, background = STATUS_COLOURS[row.status]
        self.status_label.setText(STATUS_TEXT[row.status])
        self.status_label.setStyleSheet(
            f"QLabel#ApplicationStatus {{ color: {text}; background: {background};"
            " border-radius: 9px; padding: 2px 10px; font-weight: 600; }")
        self.facts_label.setText(self._facts(row))
        self.reason_heading.setVisible(bool(row.reason))
        self.reason_label.setVisible(bool(row.reason))
        self.reason_label.setText(row.reason)
        referrer = html.escape(row.referred_by_name) if row.referred_by_name else ""
        self.referrals_label.setText(referrer or self._muted("Nobody: they registered on the "
                                                             "public page."))
        self.history_label.setText(self._muted("Loading…"))
        self.stack.setCurrentIndex(1)

    def show_details(self, details: ApplicationDetails) -> None:
        if details.row.member_id != self._member_id:
            return
        self.show_row(details.row)
        if details.referrals:
            lines = []
            for record in details.referrals:
                if record.status is ReferralStatus.COMPLETED and record.completed_at is not None:
                    state = f"referral completed {format_date(record.completed_at)}"
                elif details.row.status is AdhesionStatus.REJECTED:
                    state = "referral not completed: the application was rejected"
                else:
                    state = "referral completed on approval"
                lines.append(f"{html.escape(record.referrer_name)} "
                             f"{self._muted('· ' + state)}")
            self.referrals_label.setText("<br>".join(lines))
        elif details.row.referred_by_name:
            self.referrals_label.setText(
                f"{html.escape(details.row.referred_by_name)} "
                f"{self._muted('· no referral recorded (tracking was off)')}")
        if details.history:
            self.history_label.setText("".join(
                f"<p style='margin:0 0 4px 0'>{self._muted(format_datetime(line.at))}<br>"
                f"{html.escape(line.text)}</p>" for line in details.history))
        else:
            self.history_label.setText(self._muted(
                f"Nothing recorded yet besides the registration on "
                f"{format_date(details.row.submitted_at)}."))

    def show_details_error(self, message: str) -> None:
        self.history_label.setText(self._muted(html.escape(message)))

    @staticmethod
    def _muted(text: str) -> str:
        return f"<span style='color:{theme.MUTED}'>{text}</span>"

    def _facts(self, row: ApplicationRow) -> str:
        unit = row.unit_name or "No unit (public registration)"
        pairs = [("Unit", unit), ("Registered", format_datetime(row.submitted_at))]
        if not row.is_open:
            pairs.append(("Decided", format_datetime(row.updated_at)))
        return "".join(
            f"<div>{self._muted(html.escape(name) + ':')} {html.escape(value)}</div>"
            for name, value in pairs)

    def visible_text(self) -> str:
        """Everything the panel says, for tests and accessibility checks."""
        labels = [self.placeholder] if self.stack.currentIndex() == 0 else [
            self.name_label, self.email_label, self.status_label, self.facts_label,
            self.reason_label, self.referrals_label, self.history_label]
        return "\n".join(label.text() for label in labels if label.isVisibleTo(self)
                         or label is self.placeholder)
