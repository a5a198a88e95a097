"""The Applications page: HR and admins review membership applications within their scope.

When adhesion is required, people who register become applicants. This page lists the
applications the services let the operator see (local roles: their unit; tenant roles: the
organization), filtered Open / Approved / Rejected / All, with a side panel on the selected
one (who referred them, when they registered, the status history from the audit log).
Approve, Reject (with a reason) and Return to draft (with a reason) act on the selected rows
through the services in the background; approval completes the referral. The services
enforce every rule; the page mirrors them (members see an explanation, not the table).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from typing import TypeVar

from PySide6.QtCore import QItemSelection, QItemSelectionModel, Qt, Signal
from PySide6.QtGui import QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QButtonGroup,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSizePolicy,
    QSplitter,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from invite_desk.services.adhesion import ApplicationRow
from invite_desk.services.applications_view import (
    ApplicationDetails,
    DecisionOutcome,
    Snapshot,
    Verdict,
    application_details,
    applications_snapshot,
    decide_applications,
)
from invite_desk.services.errors import DomainError, PermissionDenied
from invite_desk.services.operator import Operator
from invite_desk.services.permissions import Action, Target, decide
from invite_desk.services.roles import Role
from invite_desk.ui import theme
from invite_desk.ui.applications.model import (
    ApplicationFilter,
    ApplicationsModel,
    Column,
    StatusFilter,
)
from invite_desk.ui.applications.panels import (
    ADHESION_EXPLAINED,
    ALLOWED_FROM,
    DECIDED_CHANGES,
    DENIED_TITLE,
    NOT_ELIGIBLE,
    SETTINGS_PLACE,
    VERDICT_BUSY,
    VERDICT_BUTTON,
    DetailPanel,
    FittedTableView,
    ReasonDialog,
    confirmation_text,
    failure_text,
)
from invite_desk.ui.context import PageContext
from invite_desk.ui.hub import APPLICATIONS, SETTINGS, OperationsHub
from invite_desk.ui.hub_page import HubPage
from invite_desk.ui.tasks import (
    TaskRunner,
    error_message,
)
from invite_desk.ui.widgets import Banner, PlainLabel, plain_tooltip, plural

log = logging.getLogger(__name__)

T = TypeVar("T")


__all__ = ["DENIED_TITLE", "ApplicationsPage", "ReasonDialog", "Verdict"]


# ------------------------------------------------------------------------------ the page
class ApplicationsPage(HubPage):
    """The Applications page. `runner` (tests: SynchronousRunner) runs the background work."""

    applications_decided = Signal(int)  # how many applications a decision changed

    def __init__(
        self,
        context: PageContext,
        operator: Operator,
        parent: QWidget | None = None,
        *,
        runner: TaskRunner | None = None,
        hub: OperationsHub | None = None,
    ) -> None:
        # The main window hands in the app's hub (quitting waits for it); alone, its own.
        super().__init__(context, operator, parent, hub=hub, runner=runner)
        self.setObjectName("ApplicationsPage")
        self._may_review = operator.role >= Role.HR_LOCAL
        self._loaded = False
        self._adhesion_required: bool | None = None
        self._accent = ""
        self._load_generation = 0
        self._detail_generation = 0
        self._busy = ""
        self._restoring = False
        self.reason_dialog: ReasonDialog | None = None

        self._build()
        if self._may_review:
            self._connect()
            # Another view decided, or adhesion was switched on or off: read again.
            self.follow(APPLICATIONS, SETTINGS)
            self._update_actions()
            self.refresh()

    # ==================================================================== construction
    def _build(self) -> None:
        self.title_label = PlainLabel("Membership applications")
        theme.set_variant(self.title_label, "title")
        self.scope_label = PlainLabel(self._scope_text())
        self.scope_label.setWordWrap(True)
        theme.set_variant(self.scope_label, "muted")

        self.confirmation_banner = Banner("ApplicationsConfirmation")
        self.message_banner = Banner("ApplicationsMessage")

        self.body = QStackedWidget()
        self.review = self._build_review()
        self.denied = self._build_denied()
        self.body.addWidget(self.review)
        self.body.addWidget(self.denied)
        self._style_filters()
        self.body.setCurrentWidget(self.review if self._may_review else self.denied)
        self.scope_label.setVisible(self._may_review)

        root = QVBoxLayout(self)
        root.setContentsMargins(20, 16, 20, 16)
        root.setSpacing(10)
        root.addWidget(self.title_label)
        root.addWidget(self.scope_label)
        root.addWidget(self.confirmation_banner)
        root.addWidget(self.message_banner)
        root.addWidget(self.body, 1)

    def _scope_text(self) -> str:
        operator = self._operator
        if operator.role.is_tenant_wide:
            return "Showing applications across the organization."
        if operator.role.is_local:
            if operator.unit_id is None:
                return ("You have no unit, so no applications are yours to review. An "
                        "organization admin can assign you to a unit.")
            return f"Showing applications in {operator.unit_name or 'your unit'}."
        return ""

    def _build_denied(self) -> QWidget:
        page = QWidget()
        outer = QVBoxLayout(page)
        outer.setContentsMargins(0, 12, 0, 0)
        card = QFrame()
        card.setObjectName("ApplicationsDenied")
        theme.set_variant(card, "card")
        card.setMaximumWidth(640)
        layout = QVBoxLayout(card)
        layout.setContentsMargins(28, 24, 28, 26)
        layout.setSpacing(10)
        top = QHBoxLayout()
        picture = PlainLabel()
        picture.setPixmap(theme.icon("lock").pixmap(28, 28))
        top.addWidget(picture, 0, Qt.AlignmentFlag.AlignTop)
        self.denied_title = PlainLabel(DENIED_TITLE)
        self.denied_title.setWordWrap(True)
        theme.set_variant(self.denied_title, "heading")
        top.addWidget(self.denied_title, 1)
        layout.addLayout(top)
        decision = decide(self._operator, Action.APPROVE_APPLICATION,
                          target=Target(unit_id=self._operator.unit_id))
        needed = decision.needed
        self.denied_text = PlainLabel(
            f"You are signed in as {self._operator.role.label} ({self._operator.role.name}); "
            f"reviewing applications needs the {needed.name} role ({needed.label}) or higher. "
            "Local HR and local admins approve or reject the applicants of their own unit; "
            "organization HR and organization admins review every application.\n\n"
            f"{ADHESION_EXPLAINED}"
        )
        self.denied_text.setWordWrap(True)
        self.denied_text.setTextFormat(Qt.TextFormat.PlainText)
        layout.addWidget(self.denied_text)
        row = QHBoxLayout()
        row.addWidget(card, 100)
        row.addStretch(1)
        outer.addLayout(row)
        outer.addStretch(1)
        return page

    def _build_review(self) -> QWidget:
        page = QWidget()
        column = QVBoxLayout(page)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(10)

        filters = QHBoxLayout()
        filters.setSpacing(0)
        self.filter_group = QButtonGroup(self)
        self.filter_group.setExclusive(True)
        self.filter_buttons: dict[StatusFilter, QPushButton] = {}
        for position, status_filter in enumerate(StatusFilter):
            button = QPushButton(status_filter.label)
            button.setObjectName(f"filter_{status_filter.value}")
            button.setProperty("segmented", "true")
            button.setProperty("segment", "first" if position == 0 else (
                "last" if position == len(StatusFilter) - 1 else "middle"))
            button.setCheckable(True)
            button.setAutoDefault(False)
            self.filter_group.addButton(button, position)
            self.filter_buttons[status_filter] = button
            filters.addWidget(button)
        self.filter_buttons[StatusFilter.OPEN].setChecked(True)
        filters.addSpacing(12)
        self.loading_label = PlainLabel("")
        theme.set_variant(self.loading_label, "small")
        filters.addWidget(self.loading_label)
        filters.addStretch(1)
        self.reload_button = QPushButton("Reload")
        self.reload_button.setToolTip("Read the applications again (someone else may have "
                                      "decided on some meanwhile).")
        filters.addWidget(self.reload_button)
        column.addLayout(filters)

        self.model = ApplicationsModel(self)
        self.proxy = ApplicationFilter(self)
        self.proxy.setSourceModel(self.model)
        self.table = FittedTableView()
        self.table.setObjectName("ApplicationsTable")
        self.table.setModel(self.proxy)
        self.table.setAccessibleName("Membership applications")
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        self.table.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(Column.SUBMITTED, Qt.SortOrder.AscendingOrder)
        vertical = self.table.verticalHeader()
        vertical.hide()
        vertical.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        vertical.setDefaultSectionSize(28)
        horizontal = self.table.horizontalHeader()
        horizontal.setHighlightSections(False)
        horizontal.setStretchLastSection(False)
        horizontal.setMinimumSectionSize(48)
        horizontal.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        # A local role sees one unit: the column would say the same thing on every row.
        self.table.set_column_shown(Column.UNIT, not self._operator.role.is_local)

        self.empty_title = PlainLabel()
        self.empty_title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty_title.setWordWrap(True)
        theme.set_variant(self.empty_title, "heading")
        self.empty_text = PlainLabel()
        self.empty_text.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty_text.setWordWrap(True)
        self.empty_text.setTextFormat(Qt.TextFormat.PlainText)
        theme.set_variant(self.empty_text, "muted")
        self.empty_state = QFrame()
        self.empty_state.setObjectName("ApplicationsEmpty")
        theme.set_variant(self.empty_state, "card")
        empty_layout = QVBoxLayout(self.empty_state)
        empty_layout.setContentsMargins(40, 30, 40, 30)
        empty_layout.addStretch(1)
        empty_layout.addWidget(self.empty_title)
        empty_layout.addSpacing(6)
        empty_layout.addWidget(self.empty_text)
        empty_layout.addStretch(2)
        self.table_stack = QStackedWidget()
        self.table_stack.addWidget(self.empty_state)
        self.table_stack.addWidget(self.table)

        self.actions_bar = QWidget()
        actions = QHBoxLayout(self.actions_bar)
        actions.setContentsMargins(0, 0, 0, 0)
        self.selection_label = PlainLabel("")
        theme.set_variant(self.selection_label, "small")
        self.draft_button = QPushButton(VERDICT_BUTTON[Verdict.DRAFT])
        self.reject_button = QPushButton(VERDICT_BUTTON[Verdict.REJECT])
        self.approve_button = QPushButton(VERDICT_BUTTON[Verdict.APPROVE])
        theme.set_flag(self.approve_button, "primary", True)
        for button in (self.draft_button, self.reject_button, self.approve_button):
            button.setAutoDefault(False)
        actions.addWidget(self.selection_label, 1)
        actions.addWidget(self.draft_button)
        actions.addWidget(self.reject_button)
        actions.addWidget(self.approve_button)
        self.action_buttons = {Verdict.APPROVE: self.approve_button,
                               Verdict.REJECT: self.reject_button,
                               Verdict.DRAFT: self.draft_button}

        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.setSpacing(8)
        left_layout.addWidget(self.table_stack, 1)
        left_layout.addWidget(self.actions_bar)

        self.detail = DetailPanel()
        self.detail.setMinimumWidth(240)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.setObjectName("ApplicationsSplitter")
        self.splitter.setChildrenCollapsible(False)
        self.splitter.setHandleWidth(10)
        self.splitter.addWidget(left)
        self.splitter.addWidget(self.detail)
        self.splitter.setStretchFactor(0, 1)
        self.splitter.setStretchFactor(1, 0)
        self.splitter.setSizes([660, 270])
        left.setMinimumWidth(360)
        left.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        column.addWidget(self.splitter, 1)
        self._show_empty_state()
        return page

    def _connect(self) -> None:
        self.filter_group.idClicked.connect(self._filter_clicked)
        self.reload_button.clicked.connect(self.refresh)
        self.table.selectionModel().selectionChanged.connect(self._selection_changed)
        self.proxy.modelReset.connect(self._update_view)
        self.proxy.layoutChanged.connect(self._update_view)
        self.approve_button.clicked.connect(self.approve_selected)
        self.reject_button.clicked.connect(self.reject_selected)
        self.draft_button.clicked.connect(self.return_selected_to_draft)

    # ==================================================================== public API
    @property
    def may_review(self) -> bool:
        """Whether the operator's role reviews applications (else the page only explains)."""
        return self._may_review

    @property
    def loaded(self) -> bool:
        return self._loaded

    @property
    def busy(self) -> bool:
        return bool(self._busy)

    @property
    def status_filter(self) -> StatusFilter:
        return self.proxy.status_filter

    def set_status_filter(self, status_filter: StatusFilter) -> None:
        self.filter_buttons[status_filter].setChecked(True)
        self.proxy.set_status_filter(status_filter)
        self._update_view()
        selected = self.table.selectionModel().selectedRows()
        if selected:
            self.table.scrollTo(min(selected, key=lambda index: index.row()))

    def visible_rows(self) -> list[ApplicationRow]:
        """The rows the table shows, in its order."""
        return [self.proxy.row_at(r) for r in range(self.proxy.rowCount())]

    def selected_rows(self) -> list[ApplicationRow]:
        rows = sorted(index.row() for index in self.table.selectionModel().selectedRows())
        return [self.proxy.row_at(r) for r in rows]

    def select_members(self, member_ids: Sequence[uuid.UUID]) -> None:
        """Select the rows of these members that the current filter shows."""
        wanted = set(member_ids)
        selection = QItemSelection()
        first = None
        for proxy_row in range(self.proxy.rowCount()):
            if self.proxy.row_at(proxy_row).member_id in wanted:
                index = self.proxy.index(proxy_row, 0)
                selection.select(index, self.proxy.index(proxy_row, len(Column) - 1))
                if first is None:
                    first = index
        model = self.table.selectionModel()
        flags = QItemSelectionModel.SelectionFlag.ClearAndSelect
        model.select(selection, flags | QItemSelectionModel.SelectionFlag.Rows)
        if first is not None:
            model.setCurrentIndex(first, QItemSelectionModel.SelectionFlag.NoUpdate)
            self.table.scrollTo(first)

    def refresh(self) -> None:
        """Read the applications (and whether adhesion is on) again, in the background."""
        if not self._may_review:
            return
        self._load_generation += 1
        generation = self._load_generation
        uow = self._context.uow
        operator = self._operator
        self.loading_label.setText("Loading…" if not self._loaded else "Refreshing…")
        self._run(lambda: applications_snapshot(uow, operator),
                  lambda snapshot: self._loaded_snapshot(generation, snapshot),
                  lambda error: self._load_failed(generation, error))

    def approve_selected(self) -> None:
        rows = self._eligible_selection(Verdict.APPROVE)
        if rows:
            self._decide(Verdict.APPROVE, rows)

    def reject_selected(self) -> None:
        rows = self._eligible_selection(Verdict.REJECT)
        if rows:
            self._ask_reason(Verdict.REJECT, rows)

    def return_selected_to_draft(self) -> None:
        rows = self._eligible_selection(Verdict.DRAFT)
        if rows:
            self._ask_reason(Verdict.DRAFT, rows)

    def filter_counts(self) -> dict[StatusFilter, int]:
        return {f: self.model.count(f) for f in StatusFilter}

    # ==================================================================== loading
    def _loaded_snapshot(self, generation: int, snapshot: Snapshot) -> None:
        if generation != self._load_generation:
            return  # a newer load is on its way
        self.loading_label.setText("")
        self._loaded = True
        self._adhesion_required = snapshot.adhesion_required
        if snapshot.accent != self._accent:
            self._accent = snapshot.accent
            self._style_filters()
        kept = [row.member_id for row in self.selected_rows()]
        current = self.table.currentIndex()
        position = current.row() if current.isValid() else -1
        self._restoring = True
        try:
            self.model.set_rows(snapshot.rows)
            self._restore_selection(kept, position)
        finally:
            self._restoring = False
        self._update_view()
        self._sync_detail(reload=True)  # the selected application may have news

    def _load_failed(self, generation: int, error: BaseException) -> None:
        if generation != self._load_generation:
            return
        self.loading_label.setText("")
        if isinstance(error, PermissionDenied):
            self.model.set_rows(())  # what they may no longer see goes away
        if not isinstance(error, DomainError):
            log.error("could not load the applications", exc_info=error)
        text = f"The applications could not be loaded. {error_message(error)}"
        earlier = self.message_banner.text if self.message_banner.kind == "error" else ""
        if earlier and error_message(error) not in earlier:
            text = f"{earlier}\n{text}"  # keep what a decision just reported
        elif earlier:
            text = earlier
        self.message_banner.show_message(text, "error", action=("Try again", self.refresh))

    def _restore_selection(self, member_ids: list[uuid.UUID], position: int) -> None:
        """Keep the selected applications selected; when they left the view (decided), select
        the one that took the place of the first, so a queue can be worked through."""
        visible = {row.member_id for row in self.visible_rows()}
        still = [m for m in member_ids if m in visible]
        if still:
            self.select_members(still)
        elif member_ids and position >= 0 and self.proxy.rowCount():
            row = min(position, self.proxy.rowCount() - 1)
            self.select_members([self.proxy.row_at(row).member_id])
        else:
            self.table.clearSelection()

    # ==================================================================== view state
    def _filter_clicked(self, button_id: int) -> None:
        self.set_status_filter(list(StatusFilter)[button_id])

    def _update_view(self) -> None:
        counts = self.filter_counts()
        for status_filter, button in self.filter_buttons.items():
            count = counts[status_filter]
            button.setText(f"{status_filter.label} ({count:,})" if self._loaded
                           else status_filter.label)
        self._show_empty_state()
        self._update_actions()

    def _show_empty_state(self) -> None:
        has_rows = self._loaded and self.proxy.rowCount() > 0
        # Without rows there is nothing to select: the side panel and the actions step aside.
        self.detail.setVisible(has_rows)
        self.actions_bar.setVisible(has_rows)
        if has_rows:
            self.table_stack.setCurrentWidget(self.table)
            return
        self.table_stack.setCurrentWidget(self.empty_state)
        if not self._loaded:
            self.empty_title.setText("Loading applications…")
            self.empty_text.setText("")
            return
        where = ""
        if self._operator.role.is_local and self._operator.unit_name:
            where = f" in {self._operator.unit_name}"
        status_filter = self.proxy.status_filter
        titles = {
            StatusFilter.OPEN: f"No applications waiting{where}",
            StatusFilter.APPROVED: f"No approved applications{where}",
            StatusFilter.REJECTED: f"No rejected applications{where}",
            StatusFilter.ALL: f"No applications{where} yet",
        }
        self.empty_title.setText(titles[status_filter])
        if self._adhesion_required:
            state = ("Adhesion is on: new members start as applicants. An organization admin "
                     f"can turn it off in {SETTINGS_PLACE}.")
        else:
            state = ("Adhesion is off: people who register become members at once, without an "
                     f"application. An organization admin can turn it on in {SETTINGS_PLACE}.")
        self.empty_text.setText(f"{ADHESION_EXPLAINED}\n\n{state}")

    def _style_filters(self) -> None:
        colours = theme.accent_palette(self._accent or None)
        self.review.setStyleSheet(
            "QPushButton[segmented=\"true\"] { border-radius: 0px; padding: 5px 14px; margin: 0px;"
            " background: #FFFFFF; }"
            " QPushButton[segment=\"first\"] { border-top-left-radius: 6px;"
            " border-bottom-left-radius: 6px; }"
            " QPushButton[segment=\"last\"] { border-top-right-radius: 6px;"
            " border-bottom-right-radius: 6px; }"
            " QPushButton[segment=\"middle\"], QPushButton[segment=\"last\"]"
            " { border-left: none; }"
            f" QPushButton[segmented=\"true\"]:checked {{ background: {colours['accent_soft']};"
            f" color: {colours['accent_text']}; border-color: {colours['accent']}; }}"
        )

    def _selection_changed(self, *_args: object) -> None:
        if not self._restoring:  # a reload restores the selection, then syncs once
            self._sync_detail(reload=False)

    def _sync_detail(self, *, reload: bool) -> None:
        """Show the selected application in the side panel (reading its details again when
        it is a different one, or when `reload`)."""
        rows = self.selected_rows()
        if not rows:
            self.detail.show_nothing()
        elif len(rows) > 1:
            self.detail.show_several(rows)
        elif reload or rows[0].member_id != self.detail.member_id:
            self._show_detail(rows[0])
        self._update_actions()

    def _show_detail(self, row: ApplicationRow) -> None:
        self.detail.show_row(row)
        self._detail_generation += 1
        generation = self._detail_generation
        uow = self._context.uow
        operator = self._operator
        member_id = row.member_id

        def shown(details: ApplicationDetails) -> None:
            if generation == self._detail_generation:
                self.detail.show_details(details)

        def failed(error: BaseException) -> None:
            if generation == self._detail_generation:
                if not isinstance(error, DomainError):
                    log.error("could not load an application's details", exc_info=error)
                self.detail.show_details_error(error_message(error))

        self._run(lambda: application_details(uow, operator, member_id), shown, failed)

    def _eligible(self, verdict: Verdict, row: ApplicationRow) -> bool:
        if row.status not in ALLOWED_FROM[verdict]:
            return False
        return decide(self._operator, Action.APPROVE_APPLICATION,
                      target=Target(unit_id=row.unit_id)).allowed

    def _eligible_selection(self, verdict: Verdict) -> list[ApplicationRow]:
        if self._busy or not self._may_review:
            return []
        rows = self.selected_rows()
        if not rows or not all(self._eligible(verdict, row) for row in rows):
            return []
        return rows

    def _update_actions(self) -> None:
        rows = self.selected_rows()
        for verdict, button in self.action_buttons.items():
            eligible = bool(rows) and all(self._eligible(verdict, row) for row in rows)
            button.setEnabled(eligible and not self._busy)
            label = VERDICT_BUTTON[verdict]
            button.setText(f"{label} ({len(rows)})" if eligible and len(rows) > 1 else label)
            if not rows:
                button.setToolTip("Select one or more open applications first.")
            elif not eligible:
                button.setToolTip(plain_tooltip(NOT_ELIGIBLE[verdict]))
            else:
                button.setToolTip(plain_tooltip(self._action_tooltip(verdict, rows)))
        if self._busy:
            self.selection_label.setText(self._busy)
        elif rows:
            self.selection_label.setText(f"{plural(len(rows), 'application')} selected")
        else:
            self.selection_label.setText("Select one or more applications.")
            self.selection_label.setToolTip("Ctrl-click or Shift-click to select several; "
                                            "the actions apply to every selected application.")

    @staticmethod
    def _action_tooltip(verdict: Verdict, rows: Sequence[ApplicationRow]) -> str:
        who = rows[0].name if len(rows) == 1 else plural(len(rows), "applicant")
        if verdict is Verdict.APPROVE:
            return f"Make {who} a member; their referral is completed."
        if verdict is Verdict.REJECT:
            return f"Reject {who}, with a reason they will see."
        return f"Send {who} back to draft, with a reason saying what to correct."

    # ==================================================================== decisions
    def _ask_reason(self, verdict: Verdict, rows: list[ApplicationRow]) -> None:
        if self.reason_dialog is not None:
            self.reason_dialog.raise_()
            return
        dialog = ReasonDialog(verdict, [row.name for row in rows], self)
        self.reason_dialog = dialog
        dialog.accepted.connect(lambda: self._decide(verdict, rows, dialog.reason))
        dialog.finished.connect(self._reason_dialog_closed)
        dialog.open()

    def _reason_dialog_closed(self, _result: int) -> None:
        dialog, self.reason_dialog = self.reason_dialog, None
        if dialog is not None:
            dialog.deleteLater()

    def _decide(self, verdict: Verdict, rows: list[ApplicationRow], reason: str = "") -> None:
        if self._busy:
            return
        self.confirmation_banner.clear_message()
        self.message_banner.clear_message()
        count = plural(len(rows), "application") if len(rows) > 1 else rows[0].name
        self._busy = f"{VERDICT_BUSY[verdict]} {count}…"
        self._update_actions()
        uow = self._context.uow
        operator = self._operator
        frozen = tuple(rows)
        # Approvals make members and complete referrals: every open view follows.
        self.hub.mutate(self, lambda: decide_applications(uow, operator, verdict, frozen, reason),
                        lambda outcome: DECIDED_CHANGES if outcome.decided else set(),
                        self._decided, self._decide_failed)

    def _decided(self, outcome: DecisionOutcome) -> None:
        self._busy = ""
        confirmation = confirmation_text(outcome)
        if confirmation:
            self.confirmation_banner.show_message(confirmation, "success")
        failure = failure_text(outcome)
        if failure:
            for _name, error in outcome.failed:
                if not isinstance(error, DomainError):
                    log.error("an application decision failed", exc_info=error)
            self.message_banner.show_message(failure, "error")
        self._update_actions()
        if outcome.decided:
            self.applications_decided.emit(len(outcome.decided))
        self.refresh()  # the rows changed (or were stale): show what the database says now

    def _decide_failed(self, error: BaseException) -> None:
        self._busy = ""
        if not isinstance(error, DomainError):
            log.error("application decisions failed", exc_info=error)
        self.message_banner.show_message(error_message(error), "error")
        self._update_actions()
        self.refresh()

    # ==================================================================== helpers
    def _run(
        self,
        work: Callable[[], T],
        on_done: Callable[[T], None],
        on_failed: Callable[[BaseException], None],
    ) -> None:
        self.hub.query(self, work, on_done, on_failed, key=None)

    def visible_text(self) -> str:
        """Everything the page says (labels that are shown), for tests."""
        return "\n".join(label.text() for label in self.findChildren(QLabel)
                         if label.text() and label.isVisibleTo(self))

    # ==================================================================== Qt overrides
    def may_reload(self) -> bool:
        return self._may_review and self._loaded and not self._busy

    def reload(self) -> None:
        self.refresh()

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 (Qt override)
        self._stale = True  # someone else may have decided meanwhile: read again when shown
        super().showEvent(event)
