"""Units (local chapters): create, rename, merge, archive, and move members between them.

The services allow changes to organization admins only; for anyone else the buttons are
disabled and say why (the page mirrors the decision, the services make it)."""

from __future__ import annotations

import uuid
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
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from invite_desk.services.admin import units as unit_service
from invite_desk.services.admin.people import BulkOutcome, PersonView, list_people
from invite_desk.services.admin.units import MergeOutcome, UnitView
from invite_desk.services.operator import Operator
from invite_desk.services.roles import Role
from invite_desk.ui import widgets
from invite_desk.ui.admin import dialogs
from invite_desk.ui.hub import INVITATIONS, MEMBERS, REFERRALS, Changes, OperationsHub
from invite_desk.ui.theme import set_variant
from invite_desk.ui.widgets import PlainLabel, plain_tooltip

HEADERS = ("Unit", "Active members", "All members", "Events", "Status")
UNIT_CHANGES = {MEMBERS, INVITATIONS, REFERRALS}


def plural(count: int, word: str, many: str | None = None) -> str:
    return f"{count:,} {word if count == 1 else (many or word + 's')}"


class UnitsPage(QWidget):
    def __init__(self, hub: OperationsHub, operator: Operator, parent: QWidget | None = None,
                 *, uow: Any) -> None:
        super().__init__(parent)
        self.setObjectName("UnitsPage")
        self.hub = hub
        self._operator = operator
        self._uow = uow
        self._stale = False
        self.units: list[UnitView] = []
        self.can_edit = operator.role >= Role.ADMIN_TENANT
        self.denied_reason = (
            "" if self.can_edit else
            "Units are the organization's structure: only an organization admin "
            f"(ADMIN_TENANT) may change them; you are signed in as {operator.role.label} "
            f"({operator.role.name}).")
        self._build()
        if operator.role < Role.HR_LOCAL:  # the page is disabled for them: read nothing
            self.summary_label.setText("Units and events are for HR and admins.")
            return
        self.reload()

    def _build(self) -> None:
        self.table = QTableWidget(0, len(HEADERS))
        self.table.setObjectName("UnitsTable")
        self.table.setAccessibleName("Units")
        self.table.setHorizontalHeaderLabels(list(HEADERS))
        self.table.verticalHeader().hide()
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for column in range(1, len(HEADERS)):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        self.show_archived = QCheckBox("Show archived units")
        self.summary_label = PlainLabel("")
        set_variant(self.summary_label, "muted")

        self.new_button = QPushButton("New unit…")
        self.rename_button = QPushButton("Rename…")
        self.merge_button = QPushButton("Merge into…")
        self.archive_button = QPushButton("Archive…")
        self.move_button = QPushButton("Move members…")
        self.buttons = (self.new_button, self.rename_button, self.merge_button,
                        self.archive_button, self.move_button)
        row = QHBoxLayout()
        for button in self.buttons:
            row.addWidget(button)
        row.addStretch(1)
        row.addWidget(self.show_archived)
        self.note = PlainLabel(self.denied_reason)
        self.note.setObjectName("UnitsPermissionNote")
        self.note.setWordWrap(True)
        set_variant(self.note, "muted")
        self.note.setVisible(bool(self.denied_reason))

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 8, 0, 0)
        layout.addLayout(row)
        layout.addWidget(self.note)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.summary_label)

        self.new_button.clicked.connect(self.new_unit)
        self.rename_button.clicked.connect(self.rename)
        self.merge_button.clicked.connect(self.merge)
        self.archive_button.clicked.connect(self.archive)
        self.move_button.clicked.connect(self.move_members)
        self.show_archived.toggled.connect(lambda _on: self.reload())
        self.table.itemSelectionChanged.connect(self._update_buttons)
        self.hub.changed.connect(self._hub_changed)
        self._update_buttons()

    # -- reading --------------------------------------------------------------------------
    def reload(self) -> None:
        uow, operator, archived = self._uow, self._operator, self.show_archived.isChecked()
        self.hub.query(self, lambda: unit_service.list_units(uow, operator,
                                                             include_archived=archived),
                       self._show, self._failed, key="units")

    def _show(self, units: list[UnitView]) -> None:
        selected = self.selected_unit()
        self.units = list(units)
        self.table.setRowCount(len(units))
        for number, unit in enumerate(units):
            cells = (unit.name, f"{unit.active_members:,}", f"{unit.members:,}",
                     f"{unit.events:,}", "Archived" if unit.archived else "Active")
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setData(Qt.ItemDataRole.UserRole, str(unit.id))
                if column:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight
                                          | Qt.AlignmentFlag.AlignVCenter)
                if column == 0:
                    item.setToolTip(plain_tooltip(unit.name))
                self.table.setItem(number, column, item)
        active = sum(1 for unit in units if not unit.archived)
        self.summary_label.setText(f"{plural(active, 'active unit')}")
        if selected is not None:
            self.select_unit(selected.id)
        self._update_buttons()

    def _failed(self, error: BaseException) -> None:
        self.summary_label.setText(str(error))

    def _hub_changed(self, changes: Changes) -> None:
        if not changes.touches(MEMBERS):
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

    # -- selection ------------------------------------------------------------------------
    def selected_unit(self) -> UnitView | None:
        rows = self.table.selectionModel().selectedRows() if self.table.selectionModel() else []
        if not rows:
            return None
        number = rows[0].row()
        return self.units[number] if number < len(self.units) else None

    def select_unit(self, unit_id: uuid.UUID) -> None:
        for number, unit in enumerate(self.units):
            if unit.id == unit_id:
                self.table.selectRow(number)
                return

    def _update_buttons(self) -> None:
        unit = self.selected_unit()
        for button in self.buttons:
            if not self.can_edit:
                button.setEnabled(False)
                button.setToolTip(plain_tooltip(self.denied_reason))
                continue
            needs_unit = button is not self.new_button
            usable = not needs_unit or (unit is not None and not unit.archived)
            button.setEnabled(usable)
            button.setToolTip("" if usable else "Select an active unit first.")

    def _others(self, unit: UnitView) -> list[tuple[str, object]]:
        return [(other.name, other.id) for other in self.units
                if other.id != unit.id and not other.archived]

    # -- changes --------------------------------------------------------------------------
    def _mutate(self, work: Callable[[], Any], done: Callable[[Any], None]) -> None:
        self.hub.mutate(self, work, UNIT_CHANGES, done, self._refused)

    def _refused(self, error: BaseException) -> None:
        widgets.warn(self, "Not changed", str(error))

    def new_unit(self) -> None:
        name = dialogs.ask_text(self, "New unit", "Name of the new unit (local chapter):",
                                action="Create")
        if not name:
            return
        uow, operator = self._uow, self._operator
        self._mutate(lambda: unit_service.create_unit(uow, operator, name), self._changed)

    def rename(self) -> None:
        unit = self.selected_unit()
        if unit is None:
            return
        name = dialogs.ask_text(self, "Rename unit", "New name:", unit.name, action="Rename")
        if not name or name == unit.name:
            return
        uow, operator = self._uow, self._operator
        self._mutate(lambda: unit_service.rename_unit(uow, operator, unit.id, name,
                                                      expected_version=unit.version),
                     self._changed)

    def merge(self) -> None:
        unit = self.selected_unit()
        if unit is None:
            return
        others = self._others(unit)
        if not others:
            widgets.warn(self, "Merge", "There is no other active unit to merge into.")
            return
        target_id = dialogs.ask_choice(
            self, "Merge unit", f"Merge {unit.name} into:", others, action="Next")
        if target_id is None:
            return
        target = next(u for u in self.units if u.id == target_id)
        if not widgets.confirm(
                self, "Merge units",
                f"Merge {unit.name} into {target.name}?",
                informative=(f"{plural(unit.members, 'member')} ({unit.active_members:,} "
                             f"active), their invitations and referral credit, and "
                             f"{plural(unit.events, 'event')} move to {target.name}. "
                             f"{unit.name} is then archived (not deleted)."),
                action="Merge"):
            return
        uow, operator = self._uow, self._operator
        self._mutate(lambda: unit_service.merge_units(uow, operator, unit.id, target.id),
                     self._merged)

    def archive(self) -> None:
        unit = self.selected_unit()
        if unit is None:
            return
        move_to: uuid.UUID | None = None
        if unit.active_members:
            others = self._others(unit)
            if not others:
                widgets.warn(self, "Archive", f"{unit.name} still has "
                             f"{plural(unit.active_members, 'active member')} and there is no "
                             "other unit to move them to: create one first.")
                return
            chosen = dialogs.ask_choice(
                self, "Archive unit",
                f"{unit.name} has {plural(unit.active_members, 'active member')}. "
                "Move its members to:", others, action="Next")
            if chosen is None:
                return
            move_to = chosen  # type: ignore[assignment]
        where = next((name for name, value in self._others(unit) if value == move_to), "")
        informative = (f"Its {plural(unit.members, 'member')} move to {where} first. "
                       if move_to else "") + "Its history stays; nothing is deleted."
        if not widgets.confirm(self, "Archive unit", f"Archive {unit.name}?",
                               informative=informative, action="Archive"):
            return
        uow, operator = self._uow, self._operator
        self._mutate(lambda: unit_service.archive_unit(uow, operator, unit.id,
                                                       move_members_to=move_to),
                     self._changed)

    def move_members(self) -> None:
        """Move every member of the selected unit, or the ones picked, to another unit."""
        unit = self.selected_unit()
        if unit is None:
            return
        uow, operator = self._uow, self._operator
        self.hub.query(self, lambda: list_people(uow, operator, unit_id=unit.id, limit=5000),
                       lambda people: self._pick_members(unit, people), self._failed,
                       key="people")

    def _pick_members(self, unit: UnitView, people: list[PersonView]) -> None:
        from invite_desk.ui.admin.move_dialog import MoveMembersDialog

        dialog = MoveMembersDialog(self, unit.name, people, self._others(unit))
        if not dialog.ask():
            return
        ids, target = dialog.chosen_ids(), dialog.target()
        uow, operator = self._uow, self._operator
        self._mutate(lambda: unit_service.move_members(uow, operator, ids, target),
                     self._moved)

    def _changed(self, unit: UnitView) -> None:
        self.reload()
        self.summary_label.setText(f"Saved: {unit.name}.")

    def _merged(self, outcome: MergeOutcome) -> None:
        self.reload()
        self.summary_label.setText(
            f"Merged {outcome.source.name} into {outcome.target.name}: "
            f"{plural(outcome.moved_members, 'member')}, "
            f"{plural(outcome.moved_invitations, 'invitation')} and "
            f"{plural(outcome.moved_events, 'event')} moved.")

    def _moved(self, outcome: BulkOutcome) -> None:
        self.reload()
        text = f"Moved {plural(outcome.applied, 'member')}."
        if outcome.refused:
            text += f" {plural(len(outcome.refused), 'member')} not moved: " + "; ".join(
                f"{row.email}: {row.reason}" for row in outcome.refused[:3])
        self.summary_label.setText(text)
