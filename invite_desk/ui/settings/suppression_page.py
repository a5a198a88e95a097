"""The suppression list: which addresses no invitation may reach, why (a bounce with its DSN
status, an unsubscribe, an admin), and Undo.

A view of the operations hub: every read and write runs in a function handed to the hub (no
database call on the GUI thread); changes are broadcast as SUPPRESSION (and INVITATIONS, whose
held rows depend on the list), and the page reloads when another view changes them.
Organization HR and above see the list; organization admins add and undo (the services
enforce the same rules). Every address, reason and piece of evidence is shown as plain text.
"""

from __future__ import annotations

import uuid
from typing import Any

from PySide6.QtCore import QItemSelection, Qt
from PySide6.QtGui import QStandardItem, QStandardItemModel
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QHBoxLayout,
    QHeaderView,
    QLineEdit,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from invite_desk.services import suppression
from invite_desk.services.errors import DomainError
from invite_desk.services.operator import Operator
from invite_desk.services.permissions import Action, decide
from invite_desk.services.suppression import SuppressionEntry
from invite_desk.ui import widgets
from invite_desk.ui.context import PageContext
from invite_desk.ui.hub import INVITATIONS, SUPPRESSION, Changes, OperationsHub
from invite_desk.ui.widgets import PlainLabel, plain_tooltip

COLUMNS = ("Address", "Why", "Since", "Evidence", "Added by", "Undone")
ID_ROLE = Qt.ItemDataRole.UserRole + 1


class SuppressionPage(QWidget):
    """The suppression list with search, Add and Undo."""

    def __init__(self, hub: OperationsHub, operator: Operator, parent: QWidget | None = None,
                 *, context: PageContext) -> None:
        super().__init__(parent)
        self.setObjectName("SuppressionPage")
        self.hub = hub
        self.operator = operator
        self._context = context
        self._entries: dict[uuid.UUID, SuppressionEntry] = {}
        self._stale = False
        self._notice = ""  # what the last action did (or why it failed), beside the count
        self._count = 0
        self.may_view = decide(operator, Action.VIEW_SUPPRESSION).allowed
        self.may_manage = decide(operator, Action.MANAGE_SUPPRESSION).allowed

        title = PlainLabel("Suppression list")
        font = title.font()
        font.setPointSizeF(font.pointSizeF() * 1.4)
        font.setBold(True)
        title.setFont(font)
        intro = PlainLabel(
            "No invitation or reminder is sent to these addresses: their mail bounced, they "
            "unsubscribed with the link in an invitation, or an admin added them. Pre-flight "
            "names the reason when someone tries to invite them again.")
        intro.setWordWrap(True)

        self.search = QLineEdit()
        self.search.setObjectName("suppression-search")
        self.search.setPlaceholderText("Search addresses")
        self.search.setClearButtonEnabled(True)
        self.search.textChanged.connect(lambda _text: self.reload())
        self.show_undone = QCheckBox("Show undone")
        self.show_undone.toggled.connect(lambda _on: self.reload())
        search_row = QHBoxLayout()
        search_row.addWidget(self.search, 1)
        search_row.addWidget(self.show_undone)

        self.model = QStandardItemModel(0, len(COLUMNS), self)
        self.model.setHorizontalHeaderLabels(list(COLUMNS))
        self.table = QTableView()
        self.table.setObjectName("suppression-table")
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.setWordWrap(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(False)
        header.setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        for column, width in ((0, 230), (1, 150), (2, 90), (4, 120), (5, 90)):
            self.table.setColumnWidth(column, width)
        self.table.selectionModel().selectionChanged.connect(self._selection_changed)

        self.detail = PlainLabel()
        self.detail.setObjectName("suppression-detail")
        self.detail.setWordWrap(True)
        self.detail.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.status = PlainLabel()
        self.status.setObjectName("suppression-status")

        self.add_address = QLineEdit()
        self.add_address.setObjectName("suppression-add-address")
        self.add_address.setPlaceholderText("address@example.org")
        self.add_note = QLineEdit()
        self.add_note.setPlaceholderText("Why (kept as the evidence)")
        self.add_button = QPushButton("Suppress address")
        self.add_button.clicked.connect(self.add)
        self.undo_button = QPushButton("Undo suppression…")
        self.undo_button.setObjectName("suppression-undo")
        self.undo_button.clicked.connect(self.undo_selected)
        actions = QHBoxLayout()
        actions.addWidget(self.add_address, 2)
        actions.addWidget(self.add_note, 3)
        actions.addWidget(self.add_button)
        actions.addStretch(0)
        actions.addWidget(self.undo_button)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(24, 20, 24, 20)
        layout.setSpacing(10)
        layout.addWidget(title)
        layout.addWidget(intro)
        layout.addLayout(search_row)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.detail)
        layout.addLayout(actions)
        layout.addWidget(self.status)

        if not self.may_manage:
            for widget in (self.add_address, self.add_note, self.add_button, self.undo_button):
                widget.setEnabled(False)
            reason = ("Only organization admins (ADMIN_TENANT) can add addresses or undo a "
                      "suppression.")
            self.add_button.setToolTip(plain_tooltip(reason))
            self.undo_button.setToolTip(plain_tooltip(reason))
        if not self.may_view:
            for widget in (self.search, self.show_undone, self.table):
                widget.setEnabled(False)
            self.status.setText(
                f"The suppression list needs the HR_TENANT role (organization HR) or higher; "
                f"you are signed in as {operator.role.label} ({operator.role.name}).")
        self.hub.changed.connect(self._hub_changed)
        self._update_buttons()
        self.reload()

    # -- reading ----------------------------------------------------------------------------
    def reload(self) -> None:
        if not self.may_view:
            return
        context, operator = self._context, self.operator
        search, undone = self.search.text(), self.show_undone.isChecked()
        self._stale = False
        self.hub.query(
            self,
            lambda: suppression.list_suppressions(context.uow, operator, search=search,
                                                  include_undone=undone),
            self._show, self._failed, key="list")

    def _hub_changed(self, changes: Changes) -> None:
        if changes.touches(SUPPRESSION, INVITATIONS):
            if self.isVisible():
                self.reload()
            else:
                self._stale = True

    def showEvent(self, event: Any) -> None:  # noqa: N802 (Qt override)
        super().showEvent(event)
        if self._stale:
            self.reload()

    def _show(self, entries: tuple[SuppressionEntry, ...]) -> None:
        selected = self.selected_id()
        self.model.removeRows(0, self.model.rowCount())
        self._entries = {entry.id: entry for entry in entries}
        for entry in entries:
            cells = [
                entry.address, entry.reason_label, f"{entry.created_at.astimezone():%Y-%m-%d}",
                " ".join(entry.evidence.split()), entry.created_by or "(automatic)",
                f"{entry.undone_at.astimezone():%Y-%m-%d}" if entry.undone_at else "",
            ]
            items = []
            for text in cells:
                item = QStandardItem(text)
                item.setToolTip(plain_tooltip(text))
                item.setData(str(entry.id), ID_ROLE)
                items.append(item)
            self.model.appendRow(items)
        self._count = len(entries)
        self._show_status()
        if selected is not None:
            self.select(selected)
        self._update_buttons()

    def _show_status(self) -> None:
        count = self._count
        text = f"{count} address{'' if count == 1 else 'es'}"
        if self.search.text().strip():
            text += " match the search"
        self.status.setText(f"{text}. {self._notice}" if self._notice else text)

    def _failed(self, exc: BaseException) -> None:
        self._notice = (str(exc) if isinstance(exc, DomainError)
                        else f"That did not work: {exc}")
        self._show_status()

    # -- selection --------------------------------------------------------------------------
    def selected_id(self) -> uuid.UUID | None:
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            return None
        value = rows[0].data(ID_ROLE)
        return uuid.UUID(value) if value else None

    def select(self, entry_id: uuid.UUID) -> None:
        for row in range(self.model.rowCount()):
            if self.model.item(row, 0).data(ID_ROLE) == str(entry_id):
                self.table.selectRow(row)
                return

    def _selection_changed(self, _selected: QItemSelection, _deselected: QItemSelection) -> None:
        entry = self._entries.get(self.selected_id()) if self.selected_id() else None
        self.detail.setText(entry.why if entry is not None else "")
        self._update_buttons()

    def _update_buttons(self) -> None:
        entry_id = self.selected_id()
        entry = self._entries.get(entry_id) if entry_id else None
        self.undo_button.setEnabled(self.may_manage and entry is not None and entry.active)

    # -- changes ----------------------------------------------------------------------------
    def undo_selected(self) -> None:
        entry_id = self.selected_id()
        entry = self._entries.get(entry_id) if entry_id else None
        if entry is None or not entry.active or not self.may_manage:
            return
        if not widgets.confirm(
                self, "Undo suppression",
                f"Take {entry.address} off the suppression list?",
                informative=f"{entry.why} Invitations can then reach this address again.",
                action="Undo suppression"):
            return
        context, operator = self._context, self.operator
        self.hub.mutate(self, lambda: suppression.undo_suppression(context.uow, operator,
                                                                   entry.id),
                        changes={SUPPRESSION, INVITATIONS}, done=self._undone,
                        error=self._failed)

    def _undone(self, entry: SuppressionEntry) -> None:
        self._notice = f"{entry.address} is no longer suppressed."
        self._show_status()

    def add(self) -> None:
        address, note = self.add_address.text().strip(), self.add_note.text()
        if not address or not self.may_manage:
            return
        if not widgets.confirm(
                self, "Suppress address",
                f"Send no more invitations or reminders to {address}?",
                informative="Invitations already queued for it are held.",
                action="Suppress"):
            return
        context, operator = self._context, self.operator
        self.hub.mutate(self, lambda: suppression.add_suppression(context.uow, operator,
                                                                  address, note),
                        changes={SUPPRESSION, INVITATIONS}, done=self._added,
                        error=self._failed)

    def _added(self, entry: SuppressionEntry) -> None:
        self.add_address.clear()
        self.add_note.clear()
        self._notice = f"{entry.address} is suppressed."
        self._show_status()
