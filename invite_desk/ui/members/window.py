"""The Members window: the members in the operator's scope, searchable and filterable, with
who referred each, and a member page with their referral activity."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from PySide6.QtCore import QItemSelectionModel, Qt, Signal
from PySide6.QtGui import QCloseEvent, QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QVBoxLayout,
    QWidget,
)

from invite_desk.services.members_view import (
    MemberActivity,
    MemberColumn,
    MemberQuery,
    member_activity,
)
from invite_desk.services.models import MemberStatus, utcnow
from invite_desk.services.operator import Operator
from invite_desk.services.organization import UnitInfo, list_units
from invite_desk.services.permissions import ScopeLevel, scope_of
from invite_desk.services.referral_program import member_activity as referral_activity
from invite_desk.services.roles import Role
from invite_desk.ui.context import PageContext
from invite_desk.ui.hub import APPLICATIONS, INVITATIONS, MEMBERS, REFERRALS, Changes, OperationsHub
from invite_desk.ui.invitations.table_model import Clock
from invite_desk.ui.members.admin_bar import MemberAdminBar
from invite_desk.ui.members.member_page import MemberPage
from invite_desk.ui.members.table_model import (
    MEMBER_STATUS_TEXT,
    MemberRole,
    MemberSource,
    MemberTableModel,
)
from invite_desk.ui.tasks import TaskRunner
from invite_desk.ui.theme import set_variant
from invite_desk.ui.widgets import (
    PlainLabel,
    debounce,
    record_table,
    search_box,
    table_and_detail,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

ROW_HEIGHT = 26
COLUMN_WIDTHS = {MemberColumn.NAME: 160, MemberColumn.EMAIL: 210, MemberColumn.ROLE: 110,
                 MemberColumn.UNIT: 140, MemberColumn.STATUS: 90, MemberColumn.REFERRED_BY: 150,
                 MemberColumn.JOINED: 100}
# Who referred each member next to who they are (the model's order stays as defined).
VISUAL_ORDER = (MemberColumn.NAME, MemberColumn.EMAIL, MemberColumn.REFERRED_BY,
                MemberColumn.ROLE, MemberColumn.UNIT, MemberColumn.STATUS, MemberColumn.JOINED)


class MembersWindow(QWidget):
    """The Members page. `invitations_requested(member_id)`: the member page asked to list
    that member's invitations (the main window shows Invitations filtered by inviter)."""

    invitations_requested = Signal(object)
    history_requested = Signal(str, object, str)  # entity type, id, title: the audit log

    def __init__(self, context: PageContext, operator: Operator, parent: QWidget | None = None,
                 *, runner: TaskRunner | None = None, clock: Clock | None = None,
                 hub: OperationsHub | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("MembersWindow")
        self.setWindowTitle("Members")
        self._context = context
        self._operator = operator
        # The main window hands in the app's hub; alone (tests), the page has its own.
        self._owns_hub = hub is None
        self.hub = hub if hub is not None else OperationsHub(self, runner=runner)
        self._runner: TaskRunner = runner or self.hub.runner
        self._clock: Clock = clock or utcnow
        self._stale = False  # something changed while the page was hidden
        self.model = MemberTableModel(MemberSource(context.uow, operator), hub=self.hub,
                                      parent=self)
        self._build()
        self._connect()
        self._load_units()
        self.model.set_query(self._query_from_controls())

    def _build(self) -> None:
        title = PlainLabel("Members")
        set_variant(title, "title")
        level = scope_of(self._operator).level
        scope_text = {
            ScopeLevel.ORGANIZATION: "Every member of the organization.",
            ScopeLevel.UNIT: f"The members of {self._operator.unit_name or 'your unit'}.",
            ScopeLevel.OWN: "Your own membership and referral activity.",
        }[level]
        self.scope_label = PlainLabel(scope_text)
        set_variant(self.scope_label, "muted")

        self.search_edit = search_box("Search: email, last name, or first and last name",
                                      "Search members")
        self.role_combo = QComboBox()
        self.role_combo.setAccessibleName("Role filter")
        self.role_combo.addItem("All roles", None)
        for role in Role:
            self.role_combo.addItem(role.label, role.name)
        self.unit_combo = QComboBox()
        self.unit_combo.setAccessibleName("Unit filter")
        self.unit_combo.addItem("All units", None)
        self.unit_combo.setMinimumContentsLength(14)
        self.status_combo = QComboBox()
        self.status_combo.setAccessibleName("Status filter")
        self.status_combo.addItem("Any status", None)
        for status in MemberStatus:
            self.status_combo.addItem(MEMBER_STATUS_TEXT[status.value], status.value)
        self.summary_label = PlainLabel("")
        set_variant(self.summary_label, "muted")
        filters = QHBoxLayout()
        filters.setSpacing(8)
        filters.addWidget(self.search_edit, 3)
        filters.addWidget(self.role_combo, 1)
        filters.addWidget(self.unit_combo, 1)
        filters.addWidget(self.status_combo, 1)
        for combo in (self.search_edit, self.role_combo, self.unit_combo, self.status_combo):
            combo.setEnabled(level is not ScopeLevel.OWN)

        self.table = record_table("MembersTable", "Members", self.model, row_height=ROW_HEIGHT,
                                  widths=COLUMN_WIDTHS, order=VISUAL_ORDER)
        # Several rows at once: the admin bar's bulk change works on the selection.
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        horizontal = self.table.horizontalHeader()
        horizontal.setSortIndicator(MemberColumn.NAME, Qt.SortOrder.AscendingOrder)
        self.table.setSortingEnabled(True)

        self.page = MemberPage()
        self.splitter = table_and_detail(self.table, self.page, (740, 420))

        header = QHBoxLayout()
        titles = QVBoxLayout()
        titles.setSpacing(0)
        titles.addWidget(title)
        titles.addWidget(self.scope_label)
        header.addLayout(titles, 1)
        header.addWidget(self.summary_label, 0, Qt.AlignmentFlag.AlignBottom)
        root = QVBoxLayout(self)
        root.setContentsMargins(20, 16, 20, 16)
        root.setSpacing(8)
        root.addLayout(header)
        root.addLayout(filters)
        self.admin_bar = MemberAdminBar(self.hub, self._operator, self.table,
                                        uow=self._context.uow, parent=self)
        self.admin_bar.history_requested.connect(self.history_requested.emit)
        root.addWidget(self.admin_bar)
        root.addWidget(self.splitter, 1)

        self._search_timer = debounce(self, 250)
        self._page_timer = debounce(self, 120)

    def _connect(self) -> None:
        self.search_edit.textChanged.connect(lambda _t: self._search_timer.start())
        self.search_edit.returnPressed.connect(self.apply_query)
        self._search_timer.timeout.connect(self.apply_query)
        for combo in (self.role_combo, self.unit_combo, self.status_combo):
            combo.currentIndexChanged.connect(lambda _i: self.apply_query())
        self.model.opened.connect(self._opened)
        self.model.opening.connect(lambda: self.summary_label.setText("Loading…"))
        self.model.failed.connect(lambda message: self.summary_label.setText(message))
        self.table.selectionModel().currentRowChanged.connect(
            lambda *_a: self._page_timer.start())
        self._page_timer.timeout.connect(self._load_page)
        self.page.invitations_requested.connect(self.invitations_requested.emit)
        self.hub.changed.connect(self._hub_changed)

    def _hub_changed(self, changes: Changes) -> None:
        """Invitations sent, members approved or edited anywhere: the list and the member's
        activity follow (now if shown, else when shown again)."""
        if not changes.touches(MEMBERS, INVITATIONS, APPLICATIONS, REFERRALS):
            return
        if self.isVisible():
            self.refresh()
        else:
            self._stale = True

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802
        super().showEvent(event)
        if self._stale and self.model.has_opened:
            self._stale = False
            self.refresh()

    def _load_units(self) -> None:
        uow, org = self._context.uow, self._operator.organization_id
        self._run(lambda: list_units(uow, org), self._fill_units,
                  lambda error: log.warning("units: %s", error))

    def _fill_units(self, units: list[UnitInfo]) -> None:
        scope = scope_of(self._operator)
        if scope.level is ScopeLevel.UNIT:
            units = [u for u in units if u.id == scope.unit_id]
        self.unit_combo.blockSignals(True)
        for unit in units:
            self.unit_combo.addItem(unit.name, str(unit.id))
        self.unit_combo.blockSignals(False)

    def _query_from_controls(self) -> MemberQuery:
        role = self.role_combo.currentData()
        unit = self.unit_combo.currentData()
        status = self.status_combo.currentData()
        current = self.model.query
        return MemberQuery(search=self.search_edit.text(),
                           role=Role[role] if role else None,
                           unit_id=uuid.UUID(unit) if unit else None,
                           status=MemberStatus(status) if status else None,
                           sort=current.sort, descending=current.descending)

    def apply_query(self) -> None:
        self._search_timer.stop()
        query = self._query_from_controls()
        if query != self.model.query or not self.model.has_opened:
            self.model.set_query(query)

    def set_search(self, text: str) -> None:
        self.search_edit.setText(text)
        self.apply_query()

    def refresh(self) -> None:
        self.model.refresh()
        self._load_page()

    def _opened(self, total: int) -> None:
        self.summary_label.setText(f"{total:,} member{'' if total == 1 else 's'}")
        if total == 1 or (scope_of(self._operator).level is ScopeLevel.OWN and total):
            self.select_row(0)

    def select_row(self, row: int) -> None:
        self.table.selectionModel().setCurrentIndex(
            self.model.index(row, 0),
            QItemSelectionModel.SelectionFlag.ClearAndSelect
            | QItemSelectionModel.SelectionFlag.Rows)

    def show_member(self, member_id: uuid.UUID) -> None:
        """Open a member's page directly (e.g. from the invitations window)."""
        self._show(member_id)

    def _load_page(self) -> None:
        index = self.table.currentIndex()
        member_id = index.data(MemberRole.ID) if index.isValid() else None
        if member_id is None:
            if index.isValid():
                self._page_timer.start(200)  # its page of rows is still loading
            else:
                self.page.show_message()
            return
        self._show(member_id)

    def _show(self, member_id: uuid.UUID) -> None:
        uow, operator, now = self._context.uow, self._operator, self._clock()
        # The newest request wins: a slow answer for the previous member is dropped.
        self.hub.query(self, lambda: member_activity(uow, operator, member_id, now),
                       self._show_activity, lambda error: self.page.show_message(str(error)),
                       key="activity")

    def _show_activity(self, activity: MemberActivity) -> None:
        self.page.show_activity(activity)
        uow, operator, now = self._context.uow, self._operator, self._clock()
        member_id = activity.member.id
        # Points and badges after the page (a failure leaves the rest of the page as it is).
        self.hub.query(self, lambda: referral_activity(uow, operator, member_id, now),
                       self.page.show_rewards, lambda error: self._rewards_failed(error),
                       key="rewards")

    def _rewards_failed(self, error: BaseException) -> None:
        log.warning("points and badges: %s", error)
        self.page.show_rewards(None)

    def _run(self, work: Callable[[], T], on_done: Callable[[T], Any],
             on_failed: Callable[[BaseException], None]) -> None:
        """Run `work` off the GUI thread; the callbacks run on it, unless the page is gone."""
        self.hub.query(self, work, on_done, on_failed, key=None)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        if self._owns_hub:  # in the main window, the window waits for the app's hub
            self.hub.shutdown(30_000)
        super().closeEvent(event)
