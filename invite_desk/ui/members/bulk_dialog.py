"""Change the role and/or unit of several members at once. The services apply each change
they allow and say why for each one they refuse (per-row outcome); nothing is asked twice."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QVBoxLayout,
    QWidget,
)

from invite_desk.services.admin.people import KEEP, BulkOutcome, Unset
from invite_desk.services.roles import Role
from invite_desk.ui.widgets import PlainLabel, summarize_people

NO_UNIT = "none"


class BulkChangeDialog(QDialog):
    def __init__(self, parent: QWidget | None, emails: Sequence[str],
                 units: Sequence[tuple[str, uuid.UUID]], *, grantable: Sequence[Role],
                 can_change_unit: bool) -> None:
        super().__init__(parent)
        self.setWindowTitle("Change selected members")
        count = len(emails)
        intro = PlainLabel(f"{count:,} member{'' if count == 1 else 's'} selected: "
                           f"{summarize_people(list(emails))}")
        intro.setWordWrap(True)
        self.role_combo = QComboBox()
        self.role_combo.setAccessibleName("New role")
        self.role_combo.addItem("Keep each member's role", None)
        for role in grantable:
            self.role_combo.addItem(f"{role.label} ({role.name})", role.name)
        self.unit_combo = QComboBox()
        self.unit_combo.setAccessibleName("New unit")
        self.unit_combo.addItem("Keep each member's unit", None)
        for name, unit_id in units:
            self.unit_combo.addItem(name, str(unit_id))
        self.unit_combo.addItem("No unit", NO_UNIT)
        self.unit_combo.setEnabled(can_change_unit)
        if not can_change_unit:
            self.unit_combo.setToolTip("Only an organization admin moves members between units.")
        form = QFormLayout()
        form.addRow("Role", self.role_combo)
        form.addRow("Unit", self.unit_combo)
        note = PlainLabel("Members you may not change are left as they are; you will see "
                          "which and why.")
        note.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.apply_button = buttons.addButton("Apply", QDialogButtonBox.ButtonRole.AcceptRole)
        self.apply_button.setEnabled(False)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        for combo in (self.role_combo, self.unit_combo):
            combo.currentIndexChanged.connect(lambda _i: self.apply_button.setEnabled(
                self.role() is not None or self.unit() is not KEEP))
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addLayout(form)
        layout.addWidget(note)
        layout.addWidget(buttons)
        self.setMinimumWidth(460)

    def role(self) -> Role | None:
        value = self.role_combo.currentData()
        return Role[value] if value else None

    def unit(self) -> uuid.UUID | None | Unset:
        value = self.unit_combo.currentData()
        if value is None:
            return KEEP
        return None if value == NO_UNIT else uuid.UUID(value)

    def ask(self) -> bool:
        """Shown to a person (tests replace this)."""
        return self.exec() == QDialog.DialogCode.Accepted


def outcome_text(outcome: BulkOutcome) -> str:
    text = f"Changed {outcome.applied:,} member{'' if outcome.applied == 1 else 's'}."
    refused = outcome.refused
    if refused:
        shown = "; ".join(f"{row.email}: {row.reason}" for row in refused[:5])
        more = f" and {len(refused) - 5} more" if len(refused) > 5 else ""
        text += f" Not changed ({len(refused):,}): {shown}{more}."
    return text
