"""The Invitations page's state: the query from the controls, loading the view, the tab
counts and the detail, the selection and which actions it allows."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, TypeVar

from PySide6.QtCore import (
    QItemSelectionModel,
    QModelIndex,
    Signal,
)

from invite_desk.services import settings as settings_service
from invite_desk.services.members_view import MemberRow, find_members
from invite_desk.services.models import InvitationKind
from invite_desk.services.permissions import Action, Decision, decide
from invite_desk.services.settings_schema import PolicySettings
from invite_desk.services.tracking import (
    Filters,
    InvitationDetail,
    InvitationQuery,
    InvitationRow,
    RowAction,
    Tab,
    count_tabs,
    invitation_detail,
    why_not,
)
from invite_desk.services.tracking.actions import (
    MAX_ROWS_PER_ACTION,
    NEEDS_SENDING_RIGHT,
)
from invite_desk.services.tracking.choices import FilterChoices, filter_choices
from invite_desk.ui.hub import INVITATIONS, MEMBERS
from invite_desk.ui.invitations.layout import (
    ACTION_WORDS,
    REQUESTER,
    TAB_ORDER,
    TIPS,
    InvitationsLayout,
    denied_tooltip,
)
from invite_desk.ui.invitations.table_model import (
    Clock,
    InvitationSource,
)
from invite_desk.ui.widgets import plain_tooltip, plural

log = logging.getLogger(__name__)
T = TypeVar("T")


class InvitationsView(InvitationsLayout):
    """What the page knows and shows (the actions are in InvitationsWindow)."""

    counts_changed = Signal(dict)  # {Tab: count} for the current search and filters

    _busy: str
    _policy: PolicySettings
    _choices: FilterChoices
    _counts: dict[Tab, int]
    _counts_generation: int
    _detail_generation: int
    _inviter_choices: dict[str, MemberRow]
    _inviter_id: uuid.UUID | None
    _choices_loaded: bool
    _clock: Clock
    source: InvitationSource

    @property
    def current_tab(self) -> Tab:
        return Tab(self.tabs.tabData(self.tabs.currentIndex()))

    def set_tab(self, tab: Tab) -> None:
        self.tabs.setCurrentIndex(TAB_ORDER.index(tab))

    @property
    def counts(self) -> dict[Tab, int]:
        return dict(self._counts)

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
