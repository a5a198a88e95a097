"""Events: create, edit, archive; each event's guests and which of them later joined
(credited to the member who invited them).

Organization admins manage every event, local admins the events of their unit (the services
decide; the buttons mirror them and say why not); HR can read events and guests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QHBoxLayout,
    QHeaderView,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from invite_desk.services.admin import events as event_service
from invite_desk.services.admin.events import EventView, GuestRow
from invite_desk.services.errors import ValidationFailed
from invite_desk.services.operator import Operator
from invite_desk.services.organization import UnitInfo, list_units
from invite_desk.services.roles import Role
from invite_desk.ui import widgets
from invite_desk.ui.admin.event_dialog import EventDialog
from invite_desk.ui.admin.units_page import plural
from invite_desk.ui.hub import INVITATIONS, MEMBERS, REFERRALS, Changes, OperationsHub
from invite_desk.ui.invitations.table_model import format_when
from invite_desk.ui.theme import set_variant
from invite_desk.ui.widgets import PlainLabel, plain_tooltip

EVENT_HEADERS = ("Event", "Starts", "Place", "Capacity", "Guests", "Joined", "Unit", "Status")
GUEST_HEADERS = ("Guest", "Email", "Registered", "Invited by", "Joined")
# An event change reaches Compose's event list (invitations) and the referral credit.
EVENT_CHANGES = {INVITATIONS, REFERRALS}


def starts_text(event: EventView) -> str:
    if event.starts_at_local is None:
        return "—"
    return f"{event.starts_at_local:%a %d %b %Y %H:%M} ({event.time_zone})"


def _table(headers: tuple[str, ...], name: str, stretch: tuple[int, ...] = (0,)) -> QTableWidget:
    table = QTableWidget(0, len(headers))
    table.setObjectName(name)
    table.setAccessibleName(name)
    table.setHorizontalHeaderLabels(list(headers))
    table.verticalHeader().hide()
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setAlternatingRowColors(True)
    table.setWordWrap(False)
    header = table.horizontalHeader()
    header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    # An empty table sized to its titles alone left Email or Registered a word wide.
    header.setMinimumSectionSize(110)
    for column in stretch:
        header.setSectionResizeMode(column, QHeaderView.ResizeMode.Stretch)
    return table


def _fill(table: QTableWidget, rows: list[tuple[str, ...]]) -> None:
    table.setRowCount(len(rows))
    for number, cells in enumerate(rows):
        for column, text in enumerate(cells):
            item = QTableWidgetItem(text)  # plain text
            item.setToolTip(plain_tooltip(text))
            table.setItem(number, column, item)


class EventsPage(QWidget):
    def __init__(self, hub: OperationsHub, operator: Operator, parent: QWidget | None = None,
                 *, uow: Any) -> None:
        super().__init__(parent)
        self.setObjectName("EventsPage")
        self.hub = hub
        self._operator = operator
        self._uow = uow
        self._stale = False
        self.events: list[EventView] = []
        self.guests: list[GuestRow] = []
        self.units: list[UnitInfo] = []
        self.can_create = operator.role >= Role.ADMIN_LOCAL
        self.denied_reason = (
            "" if self.can_create else
            "Creating and editing events needs the ADMIN_LOCAL role (Local admin) or higher; "
            f"you are signed in as {operator.role.label} ({operator.role.name}).")
        self._build()
        if operator.role < Role.HR_LOCAL:  # the page is disabled for them: read nothing
            self.summary_label.setText("Units and events are for HR and admins.")
            return
        self.reload()
        self._load_units()

    def _build(self) -> None:
        self.new_button = QPushButton("New event…")
        self.edit_button = QPushButton("Edit…")
        self.archive_button = QPushButton("Archive…")
        self.show_archived = QCheckBox("Show archived events")
        row = QHBoxLayout()
        for button in (self.new_button, self.edit_button, self.archive_button):
            row.addWidget(button)
        row.addStretch(1)
        row.addWidget(self.show_archived)
        self.note = PlainLabel(self.denied_reason)
        self.note.setWordWrap(True)
        set_variant(self.note, "muted")
        self.note.setVisible(bool(self.denied_reason))

        self.table = _table(EVENT_HEADERS, "EventsTable")
        self.guest_title = PlainLabel("Select an event to see its guests.")
        self.guest_title.setObjectName("GuestSummary")
        set_variant(self.guest_title, "heading")
        self.guest_table = _table(GUEST_HEADERS, "GuestsTable", stretch=(0, 1))
        lower = QWidget()
        lower_layout = QVBoxLayout(lower)
        lower_layout.setContentsMargins(0, 6, 0, 0)
        lower_layout.addWidget(self.guest_title)
        lower_layout.addWidget(self.guest_table, 1)
        self.splitter = QSplitter(Qt.Orientation.Vertical)
        self.splitter.addWidget(self.table)
        self.splitter.addWidget(lower)
        self.splitter.setChildrenCollapsible(False)
        self.summary_label = PlainLabel("")
        set_variant(self.summary_label, "muted")

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 8, 0, 0)
        layout.addLayout(row)
        layout.addWidget(self.note)
        layout.addWidget(self.splitter, 1)
        layout.addWidget(self.summary_label)

        self.new_button.clicked.connect(self.new_event)
        self.edit_button.clicked.connect(self.edit)
        self.archive_button.clicked.connect(self.archive)
        self.show_archived.toggled.connect(lambda _on: self.reload())
        self.table.itemSelectionChanged.connect(self._selection_changed)
        self.hub.changed.connect(self._hub_changed)
        self._update_buttons()

    # -- reading --------------------------------------------------------------------------
    def reload(self) -> None:
        uow, operator, archived = self._uow, self._operator, self.show_archived.isChecked()
        self.hub.query(self, lambda: event_service.list_events(uow, operator,
                                                               include_archived=archived),
                       self._show, self._failed, key="events")

    def _load_units(self) -> None:
        uow, org = self._uow, self._operator.organization_id
        self.hub.query(self, lambda: list_units(uow, org), self._units_loaded, self._failed,
                       key="units")

    def _units_loaded(self, units: list[UnitInfo]) -> None:
        self.units = list(units)

    def _show(self, events: list[EventView]) -> None:
        selected = self.selected_event()
        self.events = list(events)
        _fill(self.table, [
            (e.name, starts_text(e), e.location or "—",
             f"{e.capacity:,}" if e.capacity else "Unlimited", f"{e.guests:,}",
             f"{e.joined:,}", e.unit_name or "Whole organization",
             "Archived" if e.archived else ("Guests allowed" if e.guests_allowed
                                            else "No guests"))
            for e in events])
        self.summary_label.setText(plural(len(events), "event"))
        if selected is not None:
            for number, event in enumerate(self.events):
                if event.id == selected.id:
                    self.table.selectRow(number)
        self._selection_changed()

    def _failed(self, error: BaseException) -> None:
        self.summary_label.setText(str(error))

    def _hub_changed(self, changes: Changes) -> None:
        if not changes.touches(INVITATIONS, MEMBERS, REFERRALS):
            return
        if self.isVisible():
            self.reload()
        else:
            self._stale = True

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802
        super().showEvent(event)
        if self._stale:
            self._stale = False
            self.reload()

    # -- selection and guests -------------------------------------------------------------
    def selected_event(self) -> EventView | None:
        model = self.table.selectionModel()
        rows = model.selectedRows() if model else []
        if not rows or rows[0].row() >= len(self.events):
            return None
        return self.events[rows[0].row()]

    def select_row(self, row: int) -> None:
        self.table.selectRow(row)

    def _selection_changed(self) -> None:
        self._update_buttons()
        event = self.selected_event()
        if event is None:
            self.guests = []
            self.guest_table.setRowCount(0)
            self.guest_title.setText("Select an event to see its guests.")
            return
        uow, operator = self._uow, self._operator
        self.guest_title.setText(f"Guests of {event.name}: loading…")
        self.hub.query(self, lambda: event_service.event_guests(uow, operator, event.id),
                       lambda rows: self._show_guests(event, rows), self._guests_failed,
                       key="guests")

    def _show_guests(self, event: EventView, rows: list[GuestRow]) -> None:
        self.guests = list(rows)
        joined = sum(1 for row in rows if row.joined)
        self.guest_title.setText(f"Guests of {event.name}: {plural(len(rows), 'guest')}, "
                                 f"{joined:,} joined")
        _fill(self.guest_table, [
            (g.name or "—", g.email, format_when(g.registered_at), g.invited_by or "—",
             f"Yes, {format_when(g.joined_at)}" if g.joined and g.joined_at else
             ("Yes" if g.joined else "Not yet"))
            for g in rows])

    def _guests_failed(self, error: BaseException) -> None:
        self.guest_title.setText(str(error))

    def _may_edit(self, event: EventView | None) -> tuple[bool, str]:
        if not self.can_create:
            return False, self.denied_reason
        if event is None:
            return False, "Select an event first."
        if event.archived:
            return False, "This event is archived."
        operator = self._operator
        if operator.role < Role.ADMIN_TENANT and event.unit_id != operator.unit_id:
            return False, ("A local admin edits the events of their own unit; this one "
                           f"belongs to {event.unit_name or 'the whole organization'}.")
        return True, ""

    def _update_buttons(self) -> None:
        self.new_button.setEnabled(self.can_create)
        self.new_button.setToolTip(plain_tooltip(self.denied_reason))
        allowed, reason = self._may_edit(self.selected_event())
        for button in (self.edit_button, self.archive_button):
            button.setEnabled(allowed)
            button.setToolTip(plain_tooltip(reason))

    # -- changes --------------------------------------------------------------------------
    def _unit_choices(self) -> list[tuple[str, Any]]:
        if self._operator.role >= Role.ADMIN_TENANT:
            return [("Whole organization", None)] + [(u.name, u.id) for u in self.units]
        return [(self._operator.unit_name or "Your unit", self._operator.unit_id)]

    def make_dialog(self, event: EventView | None = None) -> EventDialog:
        return EventDialog(self, event=event, units=self._unit_choices(),
                           can_choose_unit=self._operator.role >= Role.ADMIN_TENANT)

    def new_event(self) -> None:
        self._edit_with(self.make_dialog(), None)

    def edit(self) -> None:
        event = self.selected_event()
        if event is not None:
            self._edit_with(self.make_dialog(event), event)

    def _edit_with(self, dialog: EventDialog, event: EventView | None) -> None:
        """Ask until the services accept the draft or the person cancels."""
        if not dialog.ask():
            dialog.deleteLater()
            return
        draft = dialog.draft()
        uow, operator = self._uow, self._operator
        work: Callable[[], EventView]
        if event is None:
            def work() -> EventView:
                return event_service.create_event(uow, operator, draft)
        else:
            def work() -> EventView:
                return event_service.update_event(uow, operator, event.id, draft,
                                                  expected_version=event.version)

        def refused(error: BaseException) -> None:
            if isinstance(error, ValidationFailed):
                dialog.show_errors("\n".join(f"{field}: {reason}"
                                             for field, reason in error.errors.items()))
                self._edit_with(dialog, event)  # the form again, as typed, with the reasons
                return
            dialog.deleteLater()
            widgets.warn(self, "Not saved", str(error))

        def saved(view: EventView) -> None:
            dialog.deleteLater()
            self.summary_label.setText(f"Saved: {view.name}.")
            self.reload()

        self.hub.mutate(self, work, EVENT_CHANGES, saved, refused)

    def archive(self) -> None:
        event = self.selected_event()
        if event is None:
            return
        if not widgets.confirm(
                self, "Archive event", f"Archive {event.name}?",
                informative=("It leaves Compose's list of events; its "
                             f"{plural(event.guests, 'guest')} and history stay."),
                action="Archive"):
            return
        uow, operator = self._uow, self._operator
        self.hub.mutate(self, lambda: event_service.archive_event(uow, operator, event.id),
                        EVENT_CHANGES, lambda _view: self.reload(),
                        lambda error: widgets.warn(self, "Not archived", str(error)))
