"""The Members page's administration actions: edit one member, change a selection, open a
member's history in the audit log. Disabled, with the reason, for roles that may not."""

from __future__ import annotations

import uuid
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QPushButton, QTableView, QWidget

from invite_desk.services.admin import people
from invite_desk.services.admin.people import BulkOutcome
from invite_desk.services.operator import Operator
from invite_desk.services.organization import UnitInfo, list_units
from invite_desk.services.roles import Role
from invite_desk.ui import widgets
from invite_desk.ui.hub import MEMBERS, REFERRALS, OperationsHub
from invite_desk.ui.members.bulk_dialog import BulkChangeDialog, outcome_text
from invite_desk.ui.members.edit_dialog import MemberEditDialog
from invite_desk.ui.members.table_model import MemberRole
from invite_desk.ui.theme import set_variant
from invite_desk.ui.widgets import PlainLabel, plain_tooltip


def grantable_roles(operator: Operator) -> list[Role]:
    """Mirror of the services' rule: never above one's own role, local admins up to
    ADMIN_LOCAL (the services decide each member)."""
    top = Role.ADMIN_TENANT if operator.role >= Role.ADMIN_TENANT else Role.ADMIN_LOCAL
    return [role for role in Role if role <= min(top, operator.role)]


class MemberAdminBar(QWidget):
    history_requested = Signal(str, object, str)

    def __init__(self, hub: OperationsHub, operator: Operator, table: QTableView, *,
                 uow: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("MemberAdminBar")
        self.hub = hub
        self._operator = operator
        self._uow = uow
        self._table = table
        self.units: list[UnitInfo] = []
        self.may_edit = operator.role >= Role.ADMIN_LOCAL
        self.may_read_log = operator.role >= Role.ADMIN_TENANT
        self.edit_button = QPushButton("Edit member…")
        self.bulk_button = QPushButton("Change selected…")
        self.history_button = QPushButton("History")
        self.status_label = PlainLabel("")
        self.status_label.setObjectName("MemberAdminStatus")
        set_variant(self.status_label, "small")
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.edit_button)
        row.addWidget(self.bulk_button)
        row.addWidget(self.history_button)
        row.addWidget(self.status_label, 1)
        self.edit_button.clicked.connect(self.edit_current)
        self.bulk_button.clicked.connect(self.change_selected)
        self.history_button.clicked.connect(self.show_history)
        table.selectionModel().selectionChanged.connect(lambda *_a: self.update_buttons())
        table.model().modelReset.connect(self.update_buttons)
        self.update_buttons()
        if self.may_edit:
            org = operator.organization_id
            hub.query(self, lambda: list_units(uow, org), self._units_loaded,
                      lambda _e: None, key="units")

    def _units_loaded(self, units: list[UnitInfo]) -> None:
        self.units = list(units)

    def selected(self) -> list[tuple[uuid.UUID, str, str]]:
        """(member id, email, name) of the selected rows whose data is loaded."""
        found = []
        for index in self._table.selectionModel().selectedRows():
            member_id = index.data(MemberRole.ID)
            row = index.data(MemberRole.ROW)
            if member_id is not None:
                name = " ".join(p for p in (getattr(row, "first_name", ""), getattr(row, "last_name", "")) if p)
                found.append((member_id, getattr(row, "email", ""), name))
        return found

    def update_buttons(self) -> None:
        count = len(self._table.selectionModel().selectedRows())
        role = self._operator.role
        denied = ("" if self.may_edit else
                  "Changing members needs the ADMIN_LOCAL role (Local admin) or higher; you "
                  f"are signed in as {role.label} ({role.name}).")
        self.edit_button.setEnabled(self.may_edit and count == 1)
        self.edit_button.setToolTip(plain_tooltip(denied or (
            "Role, unit, status and desktop sign-in" if count == 1 else
            "Select one member to edit")))
        self.bulk_button.setEnabled(self.may_edit and count >= 1)
        self.bulk_button.setToolTip(plain_tooltip(denied or "Role or unit of every selected "
                                                  "member"))
        self.history_button.setEnabled(self.may_read_log and count == 1)
        self.history_button.setToolTip(
            "Every change to this member, in the audit log" if self.may_read_log else
            "The audit log is for organization admins (ADMIN_TENANT).")

    def edit_current(self) -> MemberEditDialog | None:
        chosen = self.selected()
        if len(chosen) != 1 or not self.may_edit:
            return None
        dialog = MemberEditDialog(self.hub, self._operator, chosen[0][0], self,
                                  uow=self._uow)
        self.open_dialog(dialog)
        return dialog

    def open_dialog(self, dialog: MemberEditDialog) -> None:
        """Shown to a person, not modal to the app (tests replace this)."""
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.setModal(True)
        dialog.show()

    def make_bulk_dialog(self, emails: list[str]) -> BulkChangeDialog:
        return BulkChangeDialog(self, emails, [(u.name, u.id) for u in self.units],
                                grantable=grantable_roles(self._operator),
                                can_change_unit=self._operator.role >= Role.ADMIN_TENANT)

    def change_selected(self) -> None:
        chosen = self.selected()
        if not chosen or not self.may_edit:
            return
        dialog = self.make_bulk_dialog([email for _id, email, _name in chosen])
        if not dialog.ask():
            dialog.deleteLater()
            return
        ids = [member_id for member_id, _e, _n in chosen]
        role, unit = dialog.role(), dialog.unit()
        dialog.deleteLater()
        uow, operator = self._uow, self._operator
        self.status_label.setText("Saving…")
        self.hub.mutate(self, lambda: people.bulk_update(uow, operator, ids, role=role,
                                                         unit_id=unit),
                        {MEMBERS, REFERRALS}, self._bulk_done,
                        lambda error: self._failed(str(error)))

    def _bulk_done(self, outcome: BulkOutcome) -> None:
        self.status_label.setText(outcome_text(outcome))
        if outcome.refused:
            widgets.warn(self, "Some members were not changed", outcome_text(outcome))

    def _failed(self, message: str) -> None:
        self.status_label.setText(message)

    def show_history(self) -> None:
        chosen = self.selected()
        if len(chosen) == 1:
            member_id, email, name = chosen[0]
            self.history_requested.emit("member", member_id, f"member {name or email}")
