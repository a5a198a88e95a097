"""The Invitations window: every invitation in the operator's scope, by tab, searchable,
filterable and sortable on every column, with actions on one or many rows and a detail pane
with each invitation's history.

The table never loads a whole view (InvitationTableModel fetches the pages in sight). Tab
counts, the view, page fetches, actions, exports and the expiry sweep all run off the GUI
thread. The services decide every permission; this window mirrors them (a disabled action
says which role it needs).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, TypeVar

from PySide6.QtCore import (
    QDate,
    QItemSelectionModel,
    QModelIndex,
    QStringListModel,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QCloseEvent, QGuiApplication, QKeySequence, QShortcut, QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QCompleter,
    QDateEdit,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTabBar,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from invite_desk.services import settings as settings_service
from invite_desk.services.credentials import CredentialStore
from invite_desk.services.errors import DomainError, SettingsIncomplete
from invite_desk.services.invitations.sending import SendProgress, SendReport, describe
from invite_desk.services.mail_settings import MailSettings, get_mail_settings
from invite_desk.services.members_view import MemberRow, find_members
from invite_desk.services.models import InvitationKind, utcnow
from invite_desk.services.operator import Operator
from invite_desk.services.permissions import Action, Decision, decide, scope_of
from invite_desk.services.settings_schema import PolicySettings
from invite_desk.services.smtp.transport import RetryPolicy
from invite_desk.services.tracking import (
    ActionResult,
    Column,
    Filters,
    InvitationDetail,
    InvitationQuery,
    InvitationRow,
    RowAction,
    Tab,
    count_tabs,
    expire_overdue,
    export_csv,
    extend_invitations,
    invitation_detail,
    issue_fresh_links,
    resend_invitations,
    revoke_invitations,
    why_not,
)
from invite_desk.services.tracking.actions import (
    MAX_EXTEND_DAYS,
    MAX_ROWS_PER_ACTION,
    NEEDS_SENDING_RIGHT,
    restore_revoked,
)
from invite_desk.services.tracking.choices import FilterChoices, filter_choices
from invite_desk.ui import widgets
from invite_desk.ui.compose.password_prompt import PasswordAnswer, SmtpPasswords
from invite_desk.ui.compose.window import Banner
from invite_desk.ui.context import PageContext
from invite_desk.ui.hub import INVITATIONS, MEMBERS, Changes, OperationsHub
from invite_desk.ui.invitations.detail_pane import DetailPane
from invite_desk.ui.invitations.table_model import (
    Clock,
    InvitationSource,
    InvitationTableModel,
)
from invite_desk.ui.outbox import Outbox, SendOutcome
from invite_desk.ui.tasks import TaskRunner, error_message
from invite_desk.ui.theme import set_variant
from invite_desk.ui.widgets import PlainLabel, plain_tooltip

# Undo of a revoke while the link is unused; a module attribute so tests can take it away.
_restore_revoked: Callable[..., Any] | None = restore_revoked

UNDO_SECONDS = 30  # how long "Undo" stays offered after a revoke

log = logging.getLogger(__name__)

T = TypeVar("T")
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
             Tab.ALL)
TAB_TIPS = {
    Tab.PENDING: "Queued, being sent, or sent and waiting for the invitee (link not expired)",
    Tab.ACCEPTED: "The invitee registered",
    Tab.EXPIRED: "The link expired before the invitee registered",
    Tab.FAILED: "The mail server refused the invitation",
    Tab.UNCERTAIN: "The program stopped while the server may have had the message; "
                   "check before resending",
    Tab.REVOKED: "Revoked: the link no longer works",
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


def plural(count: int, singular: str, plural_form: str | None = None) -> str:
    return f"{count:,} {singular if count == 1 else (plural_form or singular + 's')}"


def denied_tooltip(what: str, decision: Decision, operator: Operator) -> str:
    """Why an action is disabled, naming the role that would allow it."""
    if decision.reason and operator.role >= decision.needed:
        return decision.reason
    needed = decision.needed
    text = (f"{what} needs the {needed.name} role ({needed.label}) or higher; you are signed "
            f"in as {operator.role.label} ({operator.role.name}).")
    return f"{text} {decision.reason}".strip()


class InvitationsWindow(QWidget):
    """The Invitations page.

    `runner` runs background work (tests: SynchronousRunner); `clock` gives "now" to every
    query (tests move it forward); `ask_password` asks for the SMTP password when the keyring
    has none; `sweep_interval_ms` (0: off) is how often the expiry sweep runs (it broadcasts
    when something expired). `hub` and `outbox` are the app's (the main window's); without
    them the page makes its own. The view reloads on the hub's broadcasts, not on a timer.
    """

    invitations_changed = Signal()  # an action changed invitations (also broadcast on the hub)
    settings_requested = Signal(str)  # a settings page name ("organization", "email", ...)
    counts_changed = Signal(dict)  # {Tab: count} for the current search and filters
    email_settings_requested = Signal()

    def __init__(
        self,
        context: PageContext,
        operator: Operator,
        parent: QWidget | None = None,
        *,
        runner: TaskRunner | None = None,
        clock: Clock | None = None,
        ask_password: AskPassword | None = None,
        retry: RetryPolicy | None = None,
        sweep_interval_ms: int = SWEEP_INTERVAL_MS,
        hub: OperationsHub | None = None,
        outbox: Outbox | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("InvitationsWindow")
        self.setWindowTitle("Invitations")
        self._context = context
        self._operator = operator
        # The main window hands in the app's hub and outbox; alone (tests), the page has its own.
        self._owns_hub = hub is None
        self.hub = hub if hub is not None else OperationsHub(self, runner=runner)
        self._runner: TaskRunner = runner or self.hub.runner
        self.outbox = outbox if outbox is not None else Outbox(
            context.engine, operator.organization_id, self.hub, self, retry=retry)
        self._stale = False  # something changed while the page was hidden
        self._clock: Clock = clock or utcnow
        self._passwords = SmtpPasswords(context.credentials, ask_password)
        self._retry = retry
        self._policy = PolicySettings()
        self._choices = FilterChoices((), (), ())
        self._counts: dict[Tab, int] = {}
        self._counts_generation = 0
        self._detail_generation = 0
        self._busy = ""
        self._undo_ids: tuple[uuid.UUID, ...] = ()
        self._undo_timer = QTimer(self)
        self._undo_timer.setSingleShot(True)
        self._undo_timer.setInterval(UNDO_SECONDS * 1000)
        self._undo_timer.timeout.connect(self._undo_expired)
        self._inviter_choices: dict[str, MemberRow] = {}
        self._inviter_id: uuid.UUID | None = None
        self._sweeping = False
        self.last_links: tuple[str, ...] = ()

        self.source = InvitationSource(context.uow, operator, self._clock)
        self.model = InvitationTableModel(self.source, InvitationQuery(), hub=self.hub,
                                          parent=self)
        self._build()
        self._connect()
        self._load_policy()
        self._choices_loaded = False
        # (Reading starts after the widgets are built: started earlier, the two would only
        # take turns on the GIL and the window would appear later.)
        self.model.set_query(self._query_from_controls())
        self._sweep_timer = QTimer(self)
        self._sweep_timer.setInterval(sweep_interval_ms)
        self._sweep_timer.timeout.connect(self.sweep)
        if sweep_interval_ms > 0:
            self._sweep_timer.start()
        self._update_actions()

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

        self.search_edit = QLineEdit()
        self.search_edit.setPlaceholderText("Search: email, name or inviter (starts with)")
        self.search_edit.setClearButtonEnabled(True)
        self.search_edit.setAccessibleName("Search invitations")
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

        self.table = QTableView()
        self.table.setObjectName("InvitationsTable")
        self.table.setAccessibleName("Invitations")
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        self.table.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.table.setHorizontalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        vertical = self.table.verticalHeader()
        vertical.hide()
        vertical.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        vertical.setDefaultSectionSize(ROW_HEIGHT)
        horizontal = self.table.horizontalHeader()
        horizontal.setHighlightSections(False)
        horizontal.setSectionsMovable(True)
        horizontal.setStretchLastSection(True)
        horizontal.setSortIndicatorShown(True)
        for column, width in COLUMN_WIDTHS.items():
            self.table.setColumnWidth(column, width)
        for visual, column in enumerate(VISUAL_ORDER):
            horizontal.moveSection(horizontal.visualIndex(column), visual)
        query = self.model.query
        horizontal.setSortIndicator(
            query.sort, Qt.SortOrder.DescendingOrder if query.descending
            else Qt.SortOrder.AscendingOrder)
        self.table.setSortingEnabled(True)

        self.detail = DetailPane()
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(self.table)
        self.splitter.addWidget(self.detail)
        self.splitter.setStretchFactor(0, 1)
        self.splitter.setStretchFactor(1, 0)
        self.splitter.setChildrenCollapsible(False)
        self.splitter.setSizes([820, 340])

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

        self._search_timer = QTimer(self)
        self._search_timer.setSingleShot(True)
        self._search_timer.setInterval(SEARCH_DELAY_MS)
        self._inviter_timer = QTimer(self)
        self._inviter_timer.setSingleShot(True)
        self._inviter_timer.setInterval(200)
        self._detail_timer = QTimer(self)
        self._detail_timer.setSingleShot(True)
        self._detail_timer.setInterval(120)
        self._progress_timer = QTimer(self)
        self._progress_timer.setSingleShot(True)
        self._progress_timer.setInterval(150)
        self._last_progress: SendProgress | None = None

    def _connect(self) -> None:
        self.tabs.currentChanged.connect(lambda _i: self.apply_query())
        self.search_edit.textChanged.connect(lambda _t: self._search_timer.start())
        self.search_edit.returnPressed.connect(self.apply_query)
        self._search_timer.timeout.connect(self.apply_query)
        self.unit_combo.currentIndexChanged.connect(lambda _i: self.apply_query())
        self.kind_combo.currentIndexChanged.connect(lambda _i: self.apply_query())
        self.batch_combo.currentIndexChanged.connect(lambda _i: self.apply_query())
        self.dates_check.toggled.connect(self._dates_toggled)
        self.from_date.dateChanged.connect(lambda _d: self._dates_changed())
        self.to_date.dateChanged.connect(lambda _d: self._dates_changed())
        self.inviter_edit.textEdited.connect(self._inviter_edited)
        self._inviter_timer.timeout.connect(self._search_inviters)
        self.inviter_completer.activated[str].connect(self._inviter_chosen)  # type: ignore[index]
        self.clear_filters_button.clicked.connect(self.clear_filters)
        self.refresh_button.clicked.connect(self.refresh)
        QShortcut(QKeySequence(QKeySequence.StandardKey.Refresh), self, self.refresh)
        self.model.opening.connect(self._view_opening)
        self.model.opened.connect(self._view_opened)
        self.model.failed.connect(self._view_failed)
        self.model.page_arrived.connect(lambda _offset: self._update_actions())
        selection = self.table.selectionModel()
        selection.selectionChanged.connect(lambda *_a: self._selection_changed())
        selection.currentRowChanged.connect(lambda *_a: self._selection_changed())
        self._detail_timer.timeout.connect(self._load_detail)
        self.resend_button.clicked.connect(self.resend_selected)
        self.revoke_button.clicked.connect(self.revoke_selected)
        self.extend_button.clicked.connect(lambda: self.extend_selected(self.extend_days.value()))
        self.link_button.clicked.connect(self.copy_fresh_links)
        self.export_button.clicked.connect(self.choose_export_file)
        self._progress_timer.timeout.connect(self._render_progress)
        self.outbox.progressed.connect(self._outbox_progressed)
        self.outbox.finished.connect(self._outbox_finished)
        self.outbox.failed.connect(self._outbox_failed)
        self.outbox.running_changed.connect(self._outbox_running_changed)
        self.hub.changed.connect(self._hub_changed)

    # ================================================================ state
    @property
    def operator(self) -> Operator:
        return self._operator

    @property
    def current_tab(self) -> Tab:
        return Tab(self.tabs.tabData(self.tabs.currentIndex()))

    def set_tab(self, tab: Tab) -> None:
        self.tabs.setCurrentIndex(TAB_ORDER.index(tab))

    @property
    def counts(self) -> dict[Tab, int]:
        return dict(self._counts)

    @property
    def sending(self) -> bool:
        current = self.outbox.current
        return current is not None and current.requester == REQUESTER

    def _load_policy(self) -> None:
        uow, org_id = self._context.uow, self._operator.organization_id

        def done(policy: PolicySettings) -> None:
            self._policy = policy
            self._update_actions()

        self.hub.query(self, lambda: settings_service.get_settings(uow, org_id), done,
                       lambda error: self.banner.show_message(str(error), "error"), key="policy")

    def _load_choices(self) -> None:
        uow, operator = self._context.uow, self._operator
        self._run(lambda: filter_choices(uow, operator), self._fill_choices,
                  lambda error: log.warning("filter choices: %s", error))

    def _fill_choices(self, choices: FilterChoices) -> None:
        self._choices = choices
        for combo, items, everything in (
            (self.unit_combo, [(u.name, str(u.id)) for u in choices.units], "All units"),
            (self.batch_combo, [(b.label, str(b.id)) for b in choices.batches], "All batches"),
        ):
            current = combo.currentData()
            combo.blockSignals(True)
            combo.clear()
            combo.addItem(everything, None)
            for text, data in items:
                combo.addItem(text, data)
            index = combo.findData(current) if current else 0
            combo.setCurrentIndex(max(index, 0))
            combo.blockSignals(False)
        self.unit_combo.setEnabled(bool(choices.units))
        current = self.kind_combo.currentData()
        self.kind_combo.blockSignals(True)
        self.kind_combo.clear()
        self.kind_combo.addItem("Any kind", None)
        self.kind_combo.addItem("Membership", "kind:membership")
        self.kind_combo.addItem("Any event", "kind:event")
        for event in choices.events:
            self.kind_combo.addItem(f"Event: {event.label}", f"event:{event.id}")
        index = self.kind_combo.findData(current) if current else 0
        self.kind_combo.setCurrentIndex(max(index, 0))
        self.kind_combo.blockSignals(False)

    # ================================================================ the query
    def _filters_from_controls(self) -> Filters:
        unit = self.unit_combo.currentData()
        batch = self.batch_combo.currentData()
        kind_data = self.kind_combo.currentData() or ""
        kind: InvitationKind | None = None
        event_id: uuid.UUID | None = None
        if kind_data.startswith("kind:"):
            kind = InvitationKind(kind_data.removeprefix("kind:"))
        elif kind_data.startswith("event:"):
            event_id = uuid.UUID(kind_data.removeprefix("event:"))
        sent_from = sent_to = None
        if self.dates_check.isChecked():
            first, last = self.from_date.date(), self.to_date.date()
            start = date(first.year(), first.month(), first.day())
            end = date(last.year(), last.month(), last.day())
            local = datetime.now().astimezone().tzinfo
            sent_from = datetime.combine(start, time.min, local).astimezone(UTC)
            sent_to = datetime.combine(end + timedelta(days=1), time.min, local).astimezone(UTC)
        return Filters(
            sent_from=sent_from, sent_to=sent_to,
            unit_id=uuid.UUID(unit) if unit else None,
            inviter_id=self._inviter_id,
            batch_id=uuid.UUID(batch) if batch else None,
            event_id=event_id, kind=kind,
        )

    def _query_from_controls(self) -> InvitationQuery:
        current = self.model.query
        return InvitationQuery(tab=self.current_tab, search=self.search_edit.text(),
                               filters=self._filters_from_controls(), sort=current.sort,
                               descending=current.descending)

    def apply_query(self) -> None:
        """Show the view the controls describe (tab, search, filters; the sort is kept)."""
        self._search_timer.stop()
        query = self._query_from_controls()
        if query == self.model.query and self.model.has_opened:
            return
        self.table.clearSelection()
        self.model.set_query(query)

    def clear_filters(self) -> None:
        for combo in (self.unit_combo, self.kind_combo, self.batch_combo):
            combo.blockSignals(True)
            combo.setCurrentIndex(0)
            combo.blockSignals(False)
        self.inviter_edit.clear()
        self._inviter_id = None
        self.dates_check.blockSignals(True)
        self.dates_check.setChecked(False)
        self.dates_check.blockSignals(False)
        self._dates_toggled(False)
        self.apply_query()

    def set_filters(self, filters: Filters) -> None:
        """Set the filter controls (the inviter by id) and show the view."""
        for combo, value in ((self.unit_combo, filters.unit_id),
                             (self.batch_combo, filters.batch_id)):
            combo.blockSignals(True)
            combo.setCurrentIndex(max(combo.findData(str(value)) if value else 0, 0))
            combo.blockSignals(False)
        kind_data = (f"event:{filters.event_id}" if filters.event_id
                     else f"kind:{filters.kind.value}" if filters.kind else None)
        self.kind_combo.blockSignals(True)
        self.kind_combo.setCurrentIndex(max(self.kind_combo.findData(kind_data)
                                            if kind_data else 0, 0))
        self.kind_combo.blockSignals(False)
        self._inviter_id = filters.inviter_id
        self.apply_query()

    def _dates_toggled(self, on: bool) -> None:
        self.from_date.setEnabled(on)
        self.to_date.setEnabled(on)
        self.apply_query()

    def _dates_changed(self) -> None:
        if self.dates_check.isChecked():
            self.apply_query()

    def _inviter_edited(self, text: str) -> None:
        if not text.strip() and self._inviter_id is not None:
            self._inviter_id = None
            self.apply_query()
            return
        self._inviter_timer.start()

    def _search_inviters(self) -> None:
        text = self.inviter_edit.text()
        uow, operator = self._context.uow, self._operator

        def done(members: list[MemberRow]) -> None:
            self._inviter_choices = {f"{m.name} <{m.email}>": m for m in members}
            self._inviter_model.setStringList(list(self._inviter_choices))
            if self.inviter_edit.hasFocus() and members:
                self.inviter_completer.complete()

        self._run(lambda: find_members(uow, operator, text), done,
                  lambda error: log.warning("inviter search: %s", error))

    def _inviter_chosen(self, label: str) -> None:
        member = self._inviter_choices.get(label)
        if member is not None:
            self.choose_inviter(member.id, label)

    def choose_inviter(self, member_id: uuid.UUID, label: str = "") -> None:
        self._inviter_id = member_id
        if label:
            self.inviter_edit.setText(label)
        self.apply_query()

    def set_search(self, text: str) -> None:
        """Type `text` into the search box and show the result now (no typing delay)."""
        self.search_edit.setText(text)
        self.apply_query()

    # ================================================================ loading
    def refresh(self) -> None:
        """Read the view and the counts again (rows on screen stay until their update)."""
        self._load_policy()
        query = self._query_from_controls()
        if query != self.model.query:
            self.model.set_query(query)
        else:
            self.model.refresh()

    def _view_opening(self) -> None:
        self.summary_label.setText("Loading…")

    def _view_opened(self, total: int) -> None:
        if not self._choices_loaded:  # after the first rows, not competing with them
            self._choices_loaded = True
            self._load_choices()
        query = self.model.query
        noun = plural(total, "invitation")
        where = f" matching “{query.search_text}”" if query.search_text else ""
        filtered = " (filtered)" if query.filters.active else ""
        self.summary_label.setText(f"{noun}{where}{filtered}")
        self._load_counts()
        self._selection_changed()

    def _view_failed(self, message: str) -> None:
        self.summary_label.setText("")
        self.banner.show_message(f"The invitations could not be read: {message}", "error")

    def _load_counts(self) -> None:
        """Every tab's count, for the current search and filters, in the background."""
        self._counts_generation += 1
        generation = self._counts_generation
        uow, operator, query, now = (self._context.uow, self._operator, self.model.query,
                                     self._clock())

        def done(counts: dict[Tab, int]) -> None:
            if generation == self._counts_generation:
                self._counts = counts
                for index, tab in enumerate(TAB_ORDER):
                    self.tabs.setTabText(index, f"{tab.label}  {counts.get(tab, 0):,}")
                self.counts_changed.emit(counts)

        self._run(lambda: count_tabs(uow, operator, query, now), done,
                  lambda error: log.warning("tab counts: %s", error))

    # ================================================================ selection
    def _selected_row_numbers(self) -> list[int]:
        numbers: list[int] = []
        selection = self.table.selectionModel().selection()
        for i in range(selection.size()):
            selected = selection.at(i)
            numbers.extend(range(selected.top(), selected.bottom() + 1))
            if len(numbers) > MAX_ROWS_PER_ACTION:
                break
        return sorted(set(numbers))

    def selected_rows(self) -> list[InvitationRow]:
        """The selected rows whose pages are loaded."""
        rows = []
        for number in self._selected_row_numbers()[:MAX_ROWS_PER_ACTION + 1]:
            row = self.model.row_at(number)
            if row is not None:
                rows.append(row)
        return rows

    def select_rows(self, numbers: Sequence[int]) -> None:
        selection = self.table.selectionModel()
        selection.clearSelection()
        flags = (QItemSelectionModel.SelectionFlag.Select
                 | QItemSelectionModel.SelectionFlag.Rows)
        for number in numbers:
            selection.select(self.model.index(number, 0), flags)
        if numbers:
            selection.setCurrentIndex(self.model.index(numbers[-1], 0),
                                      QItemSelectionModel.SelectionFlag.NoUpdate)

    def _selection_changed(self) -> None:
        self._update_actions()
        self._detail_timer.start()

    def _load_detail(self) -> None:
        numbers = self._selected_row_numbers()
        self._detail_generation += 1
        if not numbers:
            self.detail.show_message()
            return
        if len(numbers) > 1:
            count = "more than 10,000" if len(numbers) > MAX_ROWS_PER_ACTION else f"{len(numbers):,}"
            self.detail.show_message(f"{count} invitations selected.")
            return
        row = self.model.row_at(numbers[0])
        if row is None:
            self.detail.show_message("Loading…")
            self._detail_timer.start(200)
            return
        generation = self._detail_generation
        uow, operator, now = self._context.uow, self._operator, self._clock()

        def done(detail: InvitationDetail) -> None:
            if generation == self._detail_generation:
                self.detail.show_detail(detail)

        def failed(error: BaseException) -> None:
            if generation == self._detail_generation:
                self.detail.show_message(str(error))

        self._run(lambda: invitation_detail(uow, operator, row.id, now), done, failed)

    # ================================================================ permissions
    def _decision(self, action: RowAction, rows: Sequence[InvitationRow]) -> Decision:
        if action in NEEDS_SENDING_RIGHT:  # the services' own list: extend needs it too
            decision = decide(self._operator, Action.SEND_INVITATIONS, settings=self._policy)
            if not decision.allowed:
                return decision
        for row in rows:
            decision = decide(self._operator, Action.MANAGE_INVITATION, target=row.target)
            if not decision.allowed:
                return decision
        return Decision(True, self._operator.role)

    def action_state(self, action: RowAction) -> tuple[bool, str]:
        """(enabled, tooltip) of an action button for the current selection."""
        what = ACTION_WORDS[action]
        numbers = self._selected_row_numbers()
        if not numbers:
            return False, "Select one or more invitations first."
        if len(numbers) > MAX_ROWS_PER_ACTION:
            return False, f"Select at most {MAX_ROWS_PER_ACTION:,} invitations at a time."
        rows = [r for r in (self.model.row_at(n) for n in numbers) if r is not None]
        decision = self._decision(action, rows)
        if not decision.allowed:
            return False, denied_tooltip(what, decision, self._operator)
        if self._busy or self.sending:
            return False, "Wait for the current action to finish."
        if action is RowAction.RESEND and self.outbox.running:
            return False, self.outbox.busy_message(REQUESTER)
        if len(rows) == len(numbers):
            reasons = [why_not(action, r.status, has_link=r.has_link) for r in rows]
            if all(reasons):
                subject = "this invitation" if len(rows) == 1 else "any selected invitation"
                return False, f"{what} does not apply to {subject}: {reasons[0]}."
            eligible = sum(1 for r in reasons if r is None)
            if eligible < len(rows):
                return True, (f"{what} applies to {plural(eligible, 'selected invitation')}; "
                              "the others are skipped.")
        return True, TIPS[action]

    def _update_actions(self) -> None:
        for action, button in ((RowAction.RESEND, self.resend_button),
                               (RowAction.REVOKE, self.revoke_button),
                               (RowAction.EXTEND, self.extend_button),
                               (RowAction.FRESH_LINK, self.link_button)):
            enabled, tip = self.action_state(action)
            button.setEnabled(enabled)
            button.setToolTip(plain_tooltip(tip))
        self.extend_days.setEnabled(self.extend_button.isEnabled())
        self.export_button.setEnabled(not self._busy and self.model.total > 0)
        self.refresh_button.setEnabled(not self._busy)

    # ================================================================ actions
    def _ids_then(self, work: Callable[[list[uuid.UUID]], T], done: Callable[[T], None],
                  busy: str) -> None:
        """Collect the selected invitations' ids (reading pages not loaded yet in the
        background), run `work` with them off the GUI thread, then `done` on it."""
        numbers = self._selected_row_numbers()
        if not numbers or len(numbers) > MAX_ROWS_PER_ACTION:
            return
        loaded = {n: self.model.row_at(n) for n in numbers}
        missing_pages = sorted({n // self.model.page_size for n, r in loaded.items() if r is None})
        source, query, total, size = (self.source, self.model.query, self.model.total,
                                      self.model.page_size)

        def collect_and_work() -> T:
            found = {n: r for n, r in loaded.items() if r is not None}
            for page in missing_pages:
                rows = source.page(query, page * size, size, total)
                for i, row in enumerate(rows):
                    if page * size + i in loaded:
                        found[page * size + i] = row
            return work([found[n].id for n in sorted(found)])

        def finished(result: T) -> None:
            self._set_busy("")
            done(result)

        self._set_busy(busy)
        self._write(collect_and_work, finished, self._action_failed)

    def _action_failed(self, error: BaseException) -> None:
        self._set_busy("")
        if isinstance(error, SettingsIncomplete):
            page = error.settings_page
            self.banner.show_message(str(error), "error", action=(
                "Open settings", lambda: self.settings_requested.emit(page)))
        elif isinstance(error, DomainError):
            self.banner.show_message(str(error), "error")
        else:
            log.error("invitation action failed", exc_info=error)
            self.banner.show_message(
                f"Nothing was changed: an unexpected error happened ({type(error).__name__}: "
                f"{error}).", "error")
        self.refresh()

    def _acted(self, result: ActionResult) -> None:
        kind = "success" if result.done and not result.skipped else (
            "warning" if result.done else "info")
        self.banner.show_message(result.summary, kind)
        if result.done:
            self._changed()
        self.refresh()

    def _confirm(self, verb: str, consequence: str) -> bool:
        """Ask before revoke or resend: how many, to whom, which batch; Cancel is the default."""
        numbers = self._selected_row_numbers()
        if not numbers:
            return False
        count = len(numbers)
        rows = self.selected_rows()
        emails = [row.email for row in rows]
        shown = widgets.summarize_people(emails)
        if count > len(emails):  # rows whose page is not loaded yet
            shown = (f"{', '.join(emails[:5])} and {count - min(len(emails), 5):,} more"
                     if emails else f"{count:,} invitations")
        batches = sorted({row.batch_label for row in rows if row.batch_label})
        details = [f"To: {shown}"]
        if batches:
            details.append(f"Batch: {widgets.summarize_people(batches, shown=3)}")
        details.append(consequence)
        noun = plural(count, "invitation")
        return widgets.confirm(self, f"{verb} invitations", f"{verb} {noun}?",
                               informative="\n".join(details), action=f"{verb} {noun}")

    def revoke_selected(self) -> None:
        if self._busy or not self._confirm(
                "Revoke", "Their links stop working at once."
                + (f" You can undo this for {UNDO_SECONDS} s, while a link is unused."
                   if _restore_revoked is not None else "")):
            return
        uow, operator, now = self._context.uow, self._operator, self._clock()
        self._ids_then(lambda ids: revoke_invitations(uow, operator, ids, now=now),
                       self._revoked, "Revoking…")

    def _revoked(self, result: ActionResult) -> None:
        self._acted(result)
        if _restore_revoked is None or not result.done:
            return
        self._undo_ids = tuple(result.done)
        kind = "success" if not result.skipped else "warning"
        self.banner.show_message(result.summary, kind, action=("Undo", self.undo_revoke))
        self._undo_timer.start()

    @property
    def can_undo(self) -> bool:
        return bool(self._undo_ids)

    def _undo_expired(self) -> None:
        if self._undo_ids:
            self._undo_ids = ()
            if self.banner.kind:  # the same message, without the button
                self.banner.show_message(self.banner.text, self.banner.kind)

    def undo_revoke(self) -> None:
        """Restore the invitations the last revoke changed, while their links are unused."""
        ids, self._undo_ids = self._undo_ids, ()
        self._undo_timer.stop()
        restore = _restore_revoked
        if not ids or restore is None:
            return
        uow, operator = self._context.uow, self._operator

        def work() -> tuple[int, list[str]]:
            restored, refused = 0, []
            for invitation_id in ids:
                try:
                    restore(uow, operator, invitation_id)
                    restored += 1
                except DomainError as exc:
                    refused.append(str(exc))
            return restored, refused

        def done(outcome: tuple[int, list[str]]) -> None:
            self._set_busy("")
            restored, refused = outcome
            text = f"Revoke undone: {plural(restored, 'invitation')} restored."
            if refused:
                text += f" {plural(len(refused), 'was', 'were')} not: {refused[0]}"
            self.banner.show_message(text, "warning" if refused else "success")
            if restored:
                self._changed()
            self.refresh()

        self._set_busy("Undoing the revoke…")
        self._write(work, done, self._action_failed)

    def extend_selected(self, days: int) -> None:
        uow, operator, now = self._context.uow, self._operator, self._clock()
        self._ids_then(lambda ids: extend_invitations(uow, operator, ids, days, now=now),
                       self._acted, "Extending…")

    def copy_fresh_links(self) -> None:
        uow, operator, now = self._context.uow, self._operator, self._clock()

        def done(result: ActionResult) -> None:
            links = result.links
            self.last_links = tuple(link.link for link in links)
            if len(links) == 1:
                text = links[0].link
            else:
                text = "\n".join(f"{link.email}\t{link.link}" for link in links)
            if links:
                QGuiApplication.clipboard().setText(text)
            self._acted(result)
            if links:
                self.banner.show_message(
                    f"{result.summary} {'The link was' if len(links) == 1 else 'The links were'} "
                    f"copied to the clipboard; {'it works' if len(links) == 1 else 'they work'} "
                    f"until {links[0].expires_at.astimezone():%d %b %Y}. Any earlier link no "
                    "longer works.", "success" if not result.skipped else "warning")

        self._ids_then(lambda ids: issue_fresh_links(uow, operator, ids, now=now), done,
                       "Issuing fresh links…")

    # -- resend: re-queue, then the sending worker sends the new batch ---------------------
    def resend_selected(self) -> None:
        if self.sending or self._busy:
            return
        if self.outbox.running:  # one send at a time, app-wide: nothing is re-queued
            self.banner.show_message(self.outbox.busy_message(REQUESTER), "warning")
            return
        uow, org_id = self._context.uow, self._operator.organization_id
        self.hub.query(self, lambda: get_mail_settings(uow, org_id), self._resend_with,
                       self._resend_refused, key="mail")

    def _resend_refused(self, exc: BaseException) -> None:
        page = exc.settings_page if isinstance(exc, SettingsIncomplete) else None
        self.banner.show_message(
            f"Nothing was resent. {error_message(exc)}", "error",
            action=(("Open settings", lambda: self.settings_requested.emit(page))
                    if page else None))

    def _resend_with(self, mail: MailSettings) -> None:
        if self.sending or self._busy or self.outbox.running:
            return
        if not mail.configured:
            self.banner.show_message(
                "Resending needs the organization's SMTP server: it is not set up yet. An "
                "organization admin can enter it in Settings › Email.", "error",
                action=("Open Settings › Email", self.email_settings_requested.emit))
            return
        if not self._confirm("Resend", "Each gets a new email with a new link; the old link "
                             "stops working."):
            return
        go_on, password = self._password_for(mail)
        if not go_on:
            return
        uow, operator, now = self._context.uow, self._operator, self._clock()

        def done(result: ActionResult) -> None:
            self.banner.show_message(result.summary, "info" if result.done else "warning")
            if result.done:
                self._changed()
            self.refresh()
            if result.batch_id is not None:
                self._start_sending(result.batch_id, len(result.done), password)

        self._ids_then(lambda ids: resend_invitations(uow, operator, ids, now=now), done,
                       "Queuing the resend…")

    def _password_for(self, mail: MailSettings) -> tuple[bool, str | None]:
        """(go on, password): from the session, the keyring, or asked once."""
        outcome = self._passwords.password_for(self, mail)
        if not outcome.go_on:
            self.banner.show_message("Nothing was resent: the SMTP password is needed to send.",
                                     "info")
        return outcome.go_on, outcome.password

    def _start_sending(self, batch_id: uuid.UUID, count: int, password: str | None) -> None:
        # The outbox reads the mail settings again, on its thread, when it connects.
        refusal = self.outbox.send(batch_id, password, requester=REQUESTER, total=count)
        if refusal is not None:  # another page started a send meanwhile
            self.banner.show_message(f"{refusal.message} The resend is queued and goes out "
                                     "with the next send.", "warning")
            self._update_actions()
            return
        self._sending_total = count
        self.banner.show_message(f"Resending {plural(count, 'invitation')}: connecting to the "
                                 "mail server…", "info")
        self._update_actions()

    def _progressed(self, progress: SendProgress) -> None:
        self._last_progress = progress
        if not self._progress_timer.isActive():
            self._progress_timer.start()

    def _render_progress(self) -> None:
        progress = self._last_progress
        if progress is None or not self.sending:
            return
        self.banner.show_message(
            f"Resending: {progress.sent:,} sent, {progress.failed:,} failed, "
            f"{progress.remaining:,} to go.", "info")

    # The outbox reports every send; this page follows the resends it started.
    def _outbox_progressed(self, progress: SendProgress) -> None:
        if self.sending:
            self._progressed(progress)

    def _outbox_finished(self, outcome: SendOutcome) -> None:
        if outcome.requester == REQUESTER and outcome.report is not None:
            self._send_finished(outcome.report)

    def _outbox_failed(self, outcome: SendOutcome) -> None:
        if outcome.requester == REQUESTER:
            self._send_failed(outcome.message, outcome.settings_page)

    def _outbox_running_changed(self, _running: bool) -> None:
        self._update_actions()

    def _send_finished(self, report: SendReport) -> None:
        # (The outbox's broadcast, right after, reloads the view.)
        self._progress_timer.stop()
        kind = "error" if report.error or report.failed else (
            "warning" if report.uncertain or report.cancelled else "success")
        self.banner.show_message(f"Resend finished: {describe(report)}.", kind)
        self.invitations_changed.emit()
        self._update_actions()

    def _send_failed(self, message: str, page: str | None = None) -> None:
        self._progress_timer.stop()
        self.banner.show_message(f"Resending stopped: {message} The invitations not sent yet "
                                 "stay queued.", "error",
                                 action=(("Open settings", lambda: self.settings_requested.emit(page))
                                         if page else None))
        self._update_actions()

    def stop(self, wait_ms: int = 60_000) -> bool:
        """Stop a resend in progress and the timers; True when nothing is left running."""
        self._sweep_timer.stop()
        if not self.sending:
            return True
        return self.outbox.stop(wait_ms)

    # -- following changes made anywhere in the app ------------------------------------------
    def _changed(self) -> None:
        """This page changed invitations (its hub mutation told the other views; it refreshes
        itself)."""
        self.invitations_changed.emit()

    def _hub_changed(self, changes: Changes) -> None:
        if changes.origin is self or not changes.touches(INVITATIONS, MEMBERS):
            return
        if self.isVisible():
            self.refresh()
        else:  # read again when shown, not while nobody looks
            self._stale = True

    # -- export ----------------------------------------------------------------------------
    def choose_export_file(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Export invitations", str(Path.home() / f"invitations-{self.current_tab}.csv"),
            "CSV files (*.csv)")
        if path:
            self.export_to(Path(path))

    def export_to(self, path: Path) -> None:
        """Write the current view to `path` in the background (streamed, never whole in memory)."""
        uow, operator, query, now = (self._context.uow, self._operator, self.model.query,
                                     self._clock())

        def work() -> int:
            with path.open("w", newline="", encoding="utf-8-sig") as out:
                return export_csv(uow, operator, query, out, now=now)

        def done(count: int) -> None:
            self._set_busy("")
            self.banner.show_message(f"Exported {plural(count, 'invitation')} to {path}.",
                                     "success")

        def failed(error: BaseException) -> None:
            self._set_busy("")
            self.banner.show_message(f"The export failed: {error}", "error")

        self._set_busy("Exporting…")
        self._run(work, done, failed)

    # -- expiry sweep ------------------------------------------------------------------------
    def sweep(self) -> None:
        """Record expired invitations (the services' sweep), then refresh the view."""
        if self._sweeping:
            return
        self._sweeping = True
        uow, org, now = self._context.uow, self._operator.organization_id, self._clock()

        def done(count: int) -> None:
            self._sweeping = False
            if count:  # every view follows; this one reads again now or when shown
                self.hub.broadcast({INVITATIONS, MEMBERS}, self.hub)

        def failed(error: BaseException) -> None:
            self._sweeping = False
            log.warning("expiry sweep: %s", error)

        # Bookkeeping on a timer, not a change the person asked for (quitting does not ask
        # about it): a query that broadcasts only when something actually expired.
        self.hub.query(self, lambda: expire_overdue(uow, now, organization_id=org), done, failed,
                       key="sweep")

    # ================================================================ helpers
    def _run(self, work: Callable[[], T], on_done: Callable[[T], Any],
             on_failed: Callable[[BaseException], None]) -> None:
        """Run `work` off the GUI thread; the callbacks run on it, unless the page is gone."""
        self.hub.query(self, work, on_done, on_failed, key=None)

    def _write(self, work: Callable[[], T], on_done: Callable[[T], Any],
               on_failed: Callable[[BaseException], None]) -> None:
        """Change invitations off the GUI thread; every view hears of it (this page refreshes
        itself in `on_done`)."""
        self.hub.mutate(self, work, {INVITATIONS, MEMBERS}, on_done, on_failed)

    def _set_busy(self, text: str) -> None:
        self._busy = text
        if text:
            self.summary_label.setText(text)
        elif self.model.has_opened:
            self._view_opened(self.model.total)
        self._update_actions()

    def row_index(self, invitation_id: uuid.UUID) -> QModelIndex:
        """The index of a loaded row, or an invalid index."""
        for number, row in self.model.loaded_rows():
            if row.id == invitation_id:
                return self.model.index(number, 0)
        return QModelIndex()

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802
        """Shown again after a change elsewhere (or an expiry) while hidden: read it again."""
        super().showEvent(event)
        if self._stale and self.model.has_opened and not self._busy:
            self._stale = False
            self.refresh()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        self.stop()
        if self._owns_hub:  # in the main window, the window waits for the app's hub
            self.hub.shutdown(30_000)
        super().closeEvent(event)

