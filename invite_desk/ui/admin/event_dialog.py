"""Create or edit an event: name, local date and time in a time zone, place, description,
capacity and whether guests may be invited. The services validate; their reasons are shown
next to the form."""

from __future__ import annotations

import uuid
import zoneinfo
from collections.abc import Sequence
from datetime import datetime
from functools import cache

from PySide6.QtCore import QDateTime, QTimeZone
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QCompleter,
    QDateTimeEdit,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLineEdit,
    QPlainTextEdit,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from invite_desk.services.admin.events import EventDraft, EventView
from invite_desk.ui.theme import set_variant
from invite_desk.ui.widgets import PlainLabel

UNLIMITED = "Unlimited"


@cache
def time_zones() -> tuple[str, ...]:
    return tuple(sorted(zoneinfo.available_timezones()))


def system_time_zone() -> str:
    name = bytes(QTimeZone.systemTimeZoneId().data()).decode("ascii", "replace")
    return name if name in time_zones() else "UTC"


class EventDialog(QDialog):
    def __init__(self, parent: QWidget | None, *, event: EventView | None = None,
                 units: Sequence[tuple[str, uuid.UUID | None]] = (),
                 can_choose_unit: bool = False) -> None:
        super().__init__(parent)
        self.setWindowTitle("Edit event" if event else "New event")
        self.editing = event  # (not `event`: that is QObject.event)
        self.name_edit = QLineEdit(event.name if event else "")
        self.name_edit.setAccessibleName("Event name")
        self.when_edit = QDateTimeEdit()
        self.when_edit.setAccessibleName("Starts")
        self.when_edit.setCalendarPopup(True)
        self.when_edit.setDisplayFormat("ddd dd MMM yyyy  HH:mm")
        self.zone_combo = QComboBox()
        self.zone_combo.setAccessibleName("Time zone")
        self.zone_combo.setEditable(True)
        self.zone_combo.addItems(list(time_zones()))
        self.zone_combo.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        completer = QCompleter(list(time_zones()), self.zone_combo)
        completer.setFilterMode(completer.filterMode().MatchContains)
        completer.setCaseSensitivity(completer.caseSensitivity().CaseInsensitive)
        self.zone_combo.setCompleter(completer)
        self.place_edit = QLineEdit(event.location if event else "")
        self.place_edit.setAccessibleName("Place")
        self.description_edit = QPlainTextEdit(event.description if event else "")
        self.description_edit.setAccessibleName("Description")
        self.description_edit.setFixedHeight(80)
        self.capacity_spin = QSpinBox()
        self.capacity_spin.setAccessibleName("Capacity")
        self.capacity_spin.setRange(0, 1_000_000)
        self.capacity_spin.setSpecialValueText(UNLIMITED)
        self.capacity_spin.setValue(event.capacity or 0 if event else 0)
        self.guests_check = QCheckBox("Members may invite guests to this event")
        self.guests_check.setChecked(event.guests_allowed if event else True)
        self.unit_combo = QComboBox()
        self.unit_combo.setAccessibleName("Unit")
        for text, value in units:
            self.unit_combo.addItem(text, str(value) if value else None)
        if event is not None:
            found = self.unit_combo.findData(str(event.unit_id) if event.unit_id else None)
            self.unit_combo.setCurrentIndex(max(found, 0))
        self.unit_combo.setEnabled(can_choose_unit)

        zone = event.time_zone if event and event.time_zone else system_time_zone()
        self.zone_combo.setCurrentText(zone)
        if event is not None and event.starts_at_local is not None:
            local = event.starts_at_local.replace(tzinfo=None)
        else:
            local = datetime.now().replace(hour=19, minute=0, second=0, microsecond=0)
        self.when_edit.setDateTime(QDateTime(local.date(), local.time()))  # type: ignore[call-overload]

        form = QFormLayout()
        form.addRow("Name", self.name_edit)
        form.addRow("Starts", self.when_edit)
        form.addRow("Time zone", self.zone_combo)
        form.addRow("Place", self.place_edit)
        form.addRow("Description", self.description_edit)
        form.addRow("Capacity", self.capacity_spin)
        form.addRow("", self.guests_check)
        form.addRow("Unit", self.unit_combo)
        self.error_label = PlainLabel("")
        self.error_label.setObjectName("EventErrors")
        self.error_label.setWordWrap(True)
        set_variant(self.error_label, "error")
        self.error_label.hide()
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.save_button = self.buttons.addButton(
            "Save" if event else "Create", QDialogButtonBox.ButtonRole.AcceptRole)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.error_label)
        layout.addWidget(self.buttons)
        self.setMinimumWidth(480)

    def draft(self) -> EventDraft:
        local: datetime = self.when_edit.dateTime().toPython()  # type: ignore[assignment]
        unit = self.unit_combo.currentData()
        capacity = self.capacity_spin.value()
        return EventDraft(
            name=self.name_edit.text().strip(),
            starts_at_local=local.replace(second=0, microsecond=0, tzinfo=None),
            time_zone=self.zone_combo.currentText().strip(),
            location=self.place_edit.text().strip(),
            description=self.description_edit.toPlainText().strip(),
            capacity=capacity or None,
            guests_allowed=self.guests_check.isChecked(),
            unit_id=uuid.UUID(unit) if unit else None,
        )

    def show_errors(self, text: str) -> None:
        self.error_label.setText(text)
        self.error_label.setVisible(bool(text))

    def ask(self) -> bool:
        """Shown to a person (tests replace this)."""
        return self.exec() == QDialog.DialogCode.Accepted
