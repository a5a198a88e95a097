"""Pick members of a unit and the unit to move them to."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QListWidget,
    QListWidgetItem,
    QVBoxLayout,
    QWidget,
)

from invite_desk.services.admin.people import PersonView
from invite_desk.ui.widgets import PlainLabel


class MoveMembersDialog(QDialog):
    def __init__(self, parent: QWidget | None, unit_name: str, people: Sequence[PersonView],
                 targets: Sequence[tuple[str, object]]) -> None:
        super().__init__(parent)
        self.setWindowTitle("Move members")
        prompt = PlainLabel(f"Members of {unit_name} to move (all are ticked):")
        prompt.setWordWrap(True)
        self.list = QListWidget()
        self.list.setAccessibleName("Members to move")
        for person in people:
            item = QListWidgetItem(f"{person.name} <{person.email}>")  # items are plain text
            item.setData(Qt.ItemDataRole.UserRole, str(person.id))
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked)
            self.list.addItem(item)
        self.target_combo = QComboBox()
        self.target_combo.setAccessibleName("Move to")
        for text, value in targets:
            self.target_combo.addItem(text, str(value))
        self.target_combo.addItem("No unit", "")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.ok = buttons.addButton("Move", QDialogButtonBox.ButtonRole.AcceptRole)
        self.ok.setEnabled(bool(people))
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(prompt)
        layout.addWidget(self.list, 1)
        layout.addWidget(PlainLabel("Move them to:"))
        layout.addWidget(self.target_combo)
        layout.addWidget(buttons)
        self.resize(460, 420)

    def chosen_ids(self) -> list[uuid.UUID]:
        return [uuid.UUID(self.list.item(i).data(Qt.ItemDataRole.UserRole))
                for i in range(self.list.count())
                if self.list.item(i).checkState() == Qt.CheckState.Checked]

    def target(self) -> uuid.UUID | None:
        value = self.target_combo.currentData()
        return uuid.UUID(value) if value else None

    def ask(self) -> bool:
        """Shown to a person (tests replace this)."""
        return self.exec() == QDialog.DialogCode.Accepted
