"""The Invitations page's widgets: tabs, search and filters above the table of invitations,
the detail pane beside it, the actions below; and the constants they show.

The page is built in three layers: this layout, the view's state (view.py) and the actions
(window.py, InvitationsWindow).
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import (
    QDate,
    QStringListModel,
    Qt,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QCompleter,
    QDateEdit,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QTabBar,
    QVBoxLayout,
    QWidget,
)

from invite_desk.services.credentials import CredentialStore
from invite_desk.services.mail_settings import MailSettings
from invite_desk.services.operator import Operator
from invite_desk.services.permissions import Decision, scope_of
from invite_desk.services.tracking import (
    Column,
    RowAction,
    Tab,
)
from invite_desk.services.tracking.actions import (
    MAX_EXTEND_DAYS,
)
from invite_desk.ui.hub_page import SendingPage
from invite_desk.ui.invitations.detail_pane import DetailPane
from invite_desk.ui.invitations.table_model import (
    InvitationTableModel,
)
from invite_desk.ui.password_prompt import PasswordAnswer
from invite_desk.ui.theme import set_variant
from invite_desk.ui.widgets import (
    Banner,
    PlainLabel,
    debounce,
    record_table,
    search_box,
    table_and_detail,
)

AskPassword = Callable[[QWidget | None, MailSettings, CredentialStore], PasswordAnswer | None]

ROW_HEIGHT = 26
SEARCH_DELAY_MS = 250
SWEEP_INTERVAL_MS = 60_000
REQUESTER = "invitations"  # how the outbox names sends started here
COLUMN_WIDTHS = {
    Column.INVITEE: 250, Column.INVITER: 130, Column.SENDER: 120, Column.UNIT: 120,
    Column.KIND: 110, Column.BATCH: 170, Column.SENT: 152, Column.EXPIRES: 142,
    Column.ACCEPTED: 142, Column.STATUS: 84, Column.LAST_ERROR: 200,
}
# What the eye needs first (the model's column order stays as the services define it; the
# operator can drag columns around).
VISUAL_ORDER = (Column.INVITEE, Column.STATUS, Column.SENT, Column.EXPIRES, Column.INVITER,
                Column.SENDER, Column.UNIT, Column.KIND, Column.BATCH, Column.ACCEPTED,
                Column.LAST_ERROR)
TAB_ORDER = (Tab.PENDING, Tab.ACCEPTED, Tab.EXPIRED, Tab.FAILED, Tab.UNCERTAIN, Tab.REVOKED,
             Tab.BOUNCED, Tab.SUPPRESSED, Tab.ALL)
TAB_TIPS = {
    Tab.PENDING: "Queued, being sent, or sent and waiting for the invitee (link not expired)",
    Tab.ACCEPTED: "The invitee registered",
    Tab.EXPIRED: "The link expired before the invitee registered",
    Tab.FAILED: "The mail server refused the invitation",
    Tab.UNCERTAIN: "The program stopped while the server may have had the message; "
                   "check before resending",
    Tab.REVOKED: "Revoked: the link no longer works",
    Tab.BOUNCED: "The invitee's mail server said the address does not work; it is on the "
                 "suppression list",
    Tab.SUPPRESSED: "Not sent: the address is on the suppression list (bounced or unsubscribed)",
    Tab.ALL: "Every invitation, drafts included",
}
ACTION_WORDS = {
    RowAction.RESEND: "Resending",
    RowAction.REVOKE: "Revoking",
    RowAction.EXTEND: "Extending",
    RowAction.FRESH_LINK: "Issuing a fresh link",
}
TIPS = {
    RowAction.RESEND: "Send again with a new link and a new expiry; the old link stops working "
                      "at once.",
    RowAction.REVOKE: "The link stops working at once; the invitation can no longer be accepted.",
    RowAction.EXTEND: "Move the expiry this many days later (from now, if it has passed).",
    RowAction.FRESH_LINK: "Issue a new link and copy it to the clipboard, to share by hand; the "
                          "old link stops working.",
}



def denied_tooltip(what: str, decision: Decision, operator: Operator) -> str:
    """Why an action is disabled, naming the role that would allow it."""
    if decision.reason and operator.role >= decision.needed:
        return decision.reason
    needed = decision.needed
    text = (f"{what} needs the {needed.name} role ({needed.label}) or higher; you are signed "
            f"in as {operator.role.label} ({operator.role.name}).")
    return f"{text} {decision.reason}".strip()



class InvitationsLayout(SendingPage):
    """The widgets of the Invitations page (built once, by `_build`)."""

    requester = REQUESTER
    model: InvitationTableModel

    # ================================================================ construction
    def _build(self) -> None:
        title = PlainLabel("Invitations")
        set_variant(title, "title")
        scope = {
            "organization": "every invitation in the organization",
            "unit": f"the invitations of {self._operator.unit_name or 'your unit'} and your own",
            "own": "the invitations you sent or were credited with",
        }
        self.scope_label = PlainLabel(f"Showing {scope[scope_of(self._operator).level.value]}.")
        set_variant(self.scope_label, "muted")
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.setToolTip("Read the invitations and counts again (F5)")
        header = QHBoxLayout()
        titles = QVBoxLayout()
        titles.setSpacing(0)
        titles.addWidget(title)
        titles.addWidget(self.scope_label)
        header.addLayout(titles, 1)
        header.addWidget(self.refresh_button, 0, Qt.AlignmentFlag.AlignBottom)

        self.tabs = QTabBar()
        self.tabs.setObjectName("InvitationTabs")
        self.tabs.setDocumentMode(True)
        self.tabs.setExpanding(False)
        self.tabs.setDrawBase(False)
        for tab in TAB_ORDER:
            index = self.tabs.addTab(tab.label)
            self.tabs.setTabData(index, tab.value)
            self.tabs.setTabToolTip(index, TAB_TIPS[tab])

        self.search_edit = search_box("Search: email, name or inviter (starts with)",
                                      "Search invitations")
        self.unit_combo = QComboBox()
        self.unit_combo.setAccessibleName("Unit filter")
        self.unit_combo.setMinimumContentsLength(14)
        self.kind_combo = QComboBox()
        self.kind_combo.setAccessibleName("Kind or event filter")
        self.kind_combo.setMinimumContentsLength(16)
        self.batch_combo = QComboBox()
        self.batch_combo.setAccessibleName("Batch filter")
        self.batch_combo.setMinimumContentsLength(18)
        self.batch_combo.setMaximumWidth(260)
        self.inviter_edit = QLineEdit()
        self.inviter_edit.setPlaceholderText("Inviter: type a name or email")
        self.inviter_edit.setClearButtonEnabled(True)
        self.inviter_edit.setAccessibleName("Inviter filter")
        self._inviter_model = QStringListModel(self)
        self.inviter_completer = QCompleter(self._inviter_model, self)
        self.inviter_completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.inviter_completer.setFilterMode(Qt.MatchFlag.MatchContains)
        self.inviter_edit.setCompleter(self.inviter_completer)
        self.dates_check = QCheckBox("Sent between")
        today = QDate.currentDate()
        self.from_date = QDateEdit(today.addMonths(-1))
        self.to_date = QDateEdit(today)
        for edit in (self.from_date, self.to_date):
            edit.setCalendarPopup(True)
            edit.setDisplayFormat("dd MMM yyyy")
            edit.setEnabled(False)
        self.from_date.setAccessibleName("Sent from")
        self.to_date.setAccessibleName("Sent until (inclusive)")
        self.clear_filters_button = QPushButton("Clear filters")

        search_row = QHBoxLayout()
        search_row.setSpacing(8)
        search_row.addWidget(self.search_edit, 3)
        search_row.addWidget(self.inviter_edit, 2)
        search_row.addWidget(self.unit_combo, 1)
        search_row.addWidget(self.kind_combo, 1)
        filter_row = QHBoxLayout()
        filter_row.setSpacing(8)
        filter_row.addWidget(self.batch_combo, 2)
        filter_row.addWidget(self.dates_check)
        filter_row.addWidget(self.from_date)
        and_label = PlainLabel("and")
        set_variant(and_label, "muted")
        filter_row.addWidget(and_label)
        filter_row.addWidget(self.to_date)
        filter_row.addStretch(1)
        filter_row.addWidget(self.clear_filters_button)

        self.resend_button = QPushButton("Resend")
        self.revoke_button = QPushButton("Revoke")
        self.extend_days = QSpinBox()
        self.extend_days.setRange(1, MAX_EXTEND_DAYS)
        self.extend_days.setValue(7)
        self.extend_days.setSuffix(" days")
        self.extend_days.setAccessibleName("Days to extend by")
        self.extend_button = QPushButton("Extend by")
        self.link_button = QPushButton("Copy fresh link")
        self.export_button = QPushButton("Export CSV…")
        self.export_button.setToolTip("Write the current view (tab, search, filters and order) "
                                      "to a CSV file")
        self.summary_label = PlainLabel("")
        self.summary_label.setAccessibleName("Invitations shown")
        set_variant(self.summary_label, "muted")
        actions = QHBoxLayout()
        actions.setSpacing(8)
        for widget in (self.resend_button, self.revoke_button, self.extend_button,
                       self.extend_days, self.link_button):
            actions.addWidget(widget)
        actions.addStretch(1)
        actions.addWidget(self.summary_label)
        actions.addWidget(self.export_button)

        self.table = record_table("InvitationsTable", "Invitations", self.model,
                                  row_height=ROW_HEIGHT, multi_select=True,
                                  widths=COLUMN_WIDTHS, order=VISUAL_ORDER)
        self.table.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.table.setHorizontalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        horizontal = self.table.horizontalHeader()
        horizontal.setSortIndicatorShown(True)
        query = self.model.query
        horizontal.setSortIndicator(
            query.sort, Qt.SortOrder.DescendingOrder if query.descending
            else Qt.SortOrder.AscendingOrder)
        self.table.setSortingEnabled(True)

        self.detail = DetailPane()
        self.splitter = table_and_detail(self.table, self.detail, (820, 340))

        self.banner = Banner("InvitationsBanner")
        self.banner.reserve_space()

        root = QVBoxLayout(self)
        root.setContentsMargins(20, 16, 20, 16)
        root.setSpacing(8)
        root.addLayout(header)
        root.addWidget(self.tabs)
        root.addLayout(search_row)
        root.addLayout(filter_row)
        root.addLayout(actions)
        root.addWidget(self.splitter, 1)
        # Messages show below the table, in a place kept for them: nothing moves when one
        # appears or goes.
        root.addWidget(self.banner)

        self._search_timer = debounce(self, SEARCH_DELAY_MS)
        self._inviter_timer = debounce(self, 200)
        self._detail_timer = debounce(self, 120)
