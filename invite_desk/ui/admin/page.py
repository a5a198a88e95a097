"""The "Units & events" page: two tabs over the administration services."""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import QTabWidget, QVBoxLayout, QWidget

from invite_desk.services.operator import Operator
from invite_desk.ui.admin.events_page import EventsPage
from invite_desk.ui.admin.units_page import UnitsPage
from invite_desk.ui.hub import OperationsHub
from invite_desk.ui.theme import set_variant
from invite_desk.ui.widgets import PlainLabel


class UnitsEventsPage(QWidget):
    def __init__(self, hub: OperationsHub, operator: Operator, parent: QWidget | None = None,
                 *, uow: Any) -> None:
        super().__init__(parent)
        self.setObjectName("UnitsEventsPage")
        title = PlainLabel("Units & events")
        set_variant(title, "title")
        subtitle = PlainLabel("Local chapters and the events members invite guests to.")
        set_variant(subtitle, "muted")
        self.units = UnitsPage(hub, operator, uow=uow)
        self.events = EventsPage(hub, operator, uow=uow)
        self.tabs = QTabWidget()
        self.tabs.setObjectName("AdminTabs")
        self.tabs.addTab(self.units, "Units")
        self.tabs.addTab(self.events, "Events")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(20, 16, 20, 16)
        layout.setSpacing(6)
        layout.addWidget(title)
        layout.addWidget(subtitle)
        layout.addWidget(self.tabs, 1)
