"""Edit one member: role, unit and status, and their desktop sign-in.

What may be changed comes from the services (`edit_policy`): a control the operator may not
use is disabled and says why. Changing the status asks first; a one-time password is shown
once, selectable and copyable, and never again."""

from __future__ import annotations

import uuid
from typing import Any

from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from invite_desk.services.admin import people
from invite_desk.services.admin.people import (
    KEEP,
    EditPolicy,
    OneTimePassword,
    PersonView,
    SignInLinkIssued,
    SignInState,
)
from invite_desk.services.operator import Operator
from invite_desk.services.roles import Role
from invite_desk.ui import widgets
from invite_desk.ui.hub import MEMBERS, OperationsHub
from invite_desk.ui.invitations.table_model import format_when
from invite_desk.ui.members.table_model import MEMBER_STATUS_TEXT
from invite_desk.ui.theme import set_variant
from invite_desk.ui.widgets import PlainLabel, plain_tooltip

SIGN_IN_TEXT = {
    SignInState.NONE: "No desktop sign-in.",
    SignInState.LINK_PENDING: "A link to set a password was emailed and not used yet.",
    SignInState.ONE_TIME_PASSWORD: "Has a one-time password; must choose their own at "
                                   "first sign-in.",
    SignInState.ACTIVE: "Signs in with a password of their own.",
}
STATUS_WARNING = {
    "lapsed": "A lapsed member keeps their history but can no longer sign in or invite.",
    "resigned": "A resigned member keeps their history but can no longer sign in or invite.",
    "active": "They can sign in and invite again, as their role allows.",
}


def status_text(status: str) -> str:
    return MEMBER_STATUS_TEXT.get(status, status.capitalize())


class OneTimePasswordDialog(QDialog):
    """Shows a one-time password once: selectable, with a Copy button."""

    def __init__(self, parent: QWidget | None, issued: OneTimePassword) -> None:
        super().__init__(parent)
        self.setWindowTitle("One-time password")
        intro = PlainLabel(f"One-time password for {issued.email}. It is shown only now: "
                           "hand it over in person. They must choose their own password "
                           "when they first sign in.")
        intro.setWordWrap(True)
        self.password_edit = QLineEdit(issued.password)
        self.password_edit.setObjectName("OneTimePassword")
        self.password_edit.setReadOnly(True)
        self.password_edit.setAccessibleName("One-time password")
        self.password_edit.setStyleSheet("font-family: monospace; font-size: 13pt;")
        self.copy_button = QPushButton("Copy")
        self.copy_button.clicked.connect(self.copy)
        row = QHBoxLayout()
        row.addWidget(self.password_edit, 1)
        row.addWidget(self.copy_button)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        buttons.accepted.connect(self.accept)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addLayout(row)
        layout.addWidget(buttons)
        self.setMinimumWidth(440)
        self.password_edit.selectAll()

    def copy(self) -> None:
        QGuiApplication.clipboard().setText(self.password_edit.text())
        self.copy_button.setText("Copied")

    def done(self, result: int) -> None:  # noqa: D102 (the password leaves memory with it)
        self.password_edit.clear()
        super().done(result)


def show_one_time_password(parent: QWidget | None, issued: OneTimePassword) -> None:
    """Shown to a person (tests replace this)."""
    dialog = OneTimePasswordDialog(parent, issued)
    dialog.exec()
    dialog.deleteLater()


class MemberEditDialog(QDialog):
    """Loads the member and what the operator may change in the background, then edits."""

    def __init__(self, hub: OperationsHub, operator: Operator, member_id: uuid.UUID,
                 parent: QWidget | None = None, *, uow: Any) -> None:
        super().__init__(parent)
        self.setObjectName("MemberEditDialog")
        self.setWindowTitle("Edit member")
        self.hub = hub
        self._operator = operator
        self._uow = uow
        self.member_id = member_id
        self.person: PersonView | None = None
        self.policy: EditPolicy | None = None
        self._build()
        self.reload()

    def _build(self) -> None:
        self.name_label = PlainLabel("Loading…")
        self.name_label.setObjectName("MemberEditName")
        self.name_label.setStyleSheet("font-size: 13pt; font-weight: 600;")
        self.email_label = PlainLabel("")
        set_variant(self.email_label, "muted")
        self.reason_label = PlainLabel("")
        self.reason_label.setObjectName("MemberEditReason")
        self.reason_label.setWordWrap(True)
        set_variant(self.reason_label, "muted")
        self.reason_label.hide()
        self.role_combo = QComboBox()
        self.role_combo.setAccessibleName("Role")
        self.unit_combo = QComboBox()
        self.unit_combo.setAccessibleName("Unit")
        self.status_combo = QComboBox()
        self.status_combo.setAccessibleName("Status")
        form = QFormLayout()
        form.addRow("Role", self.role_combo)
        form.addRow("Unit", self.unit_combo)
        form.addRow("Status", self.status_combo)

        self.sign_in_box = QGroupBox("Desktop sign-in")
        self.sign_in_label = PlainLabel("")
        self.sign_in_label.setObjectName("SignInState")
        self.sign_in_label.setWordWrap(True)
        self.link_button = QPushButton("Email a sign-in link")
        self.link_button.setToolTip("Email them a link to choose their own password "
                                    f"(valid {people.SIGN_IN_LINK_DAYS} days, single use)")
        self.otp_button = QPushButton("One-time password…")
        self.otp_button.setToolTip("A password to hand over in person, shown once; they "
                                   "choose their own at first sign-in")
        self.revoke_button = QPushButton("Revoke sign-in…")
        sign_in_buttons = QHBoxLayout()
        for button in (self.link_button, self.otp_button, self.revoke_button):
            sign_in_buttons.addWidget(button)
        sign_in_layout = QVBoxLayout(self.sign_in_box)
        sign_in_layout.addWidget(self.sign_in_label)
        sign_in_layout.addLayout(sign_in_buttons)

        self.message_label = PlainLabel("")
        self.message_label.setObjectName("MemberEditMessage")
        self.message_label.setWordWrap(True)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.save_button = self.buttons.addButton("Save",
                                                  QDialogButtonBox.ButtonRole.ApplyRole)
        self.save_button.setEnabled(False)
        self.buttons.rejected.connect(self.reject)
        self.save_button.clicked.connect(self.save)
        self.link_button.clicked.connect(self.send_link)
        self.otp_button.clicked.connect(self.one_time_password)
        self.revoke_button.clicked.connect(self.revoke)
        for combo in (self.role_combo, self.unit_combo, self.status_combo):
            combo.currentIndexChanged.connect(lambda _i: self._update_save())

        layout = QVBoxLayout(self)
        layout.addWidget(self.name_label)
        layout.addWidget(self.email_label)
        layout.addWidget(self.reason_label)
        layout.addLayout(form)
        layout.addWidget(self.sign_in_box)
        layout.addWidget(self.message_label)
        layout.addWidget(self.buttons)
        self.setMinimumWidth(520)
        self._set_enabled(False)

    # -- loading --------------------------------------------------------------------------
    def reload(self) -> None:
        uow, operator, member_id = self._uow, self._operator, self.member_id

        def work() -> tuple[PersonView, EditPolicy]:
            return (people.get_person(uow, operator, member_id),
                    people.edit_policy(uow, operator, member_id))

        self.hub.query(self, work, self._show, self._failed, key="person")

    def _failed(self, error: BaseException) -> None:
        """Not even readable by this operator (out of their scope): say why."""
        self.reason_label.setText(str(error))
        self.reason_label.show()

    def _show(self, loaded: tuple[PersonView, EditPolicy]) -> None:
        person, policy = loaded
        self.person, self.policy = person, policy
        self.name_label.setText(person.name or person.email)
        self.email_label.setText(f"{person.email} · last sign-in "
                                 f"{format_when(person.last_sign_in_at) or 'never'}")
        self.reason_label.setText(policy.reason)
        self.reason_label.setVisible(bool(policy.reason))

        for combo in (self.role_combo, self.unit_combo, self.status_combo):
            combo.blockSignals(True)
            combo.clear()
        roles = list(policy.grantable_roles)
        if person.role not in roles:
            roles.append(person.role)
        for role in sorted(roles):
            self.role_combo.addItem(f"{role.label} ({role.name})", role.name)
        self.role_combo.setCurrentIndex(self.role_combo.findData(person.role.name))
        choices = list(policy.unit_choices)
        if not any(c.id == person.unit_id for c in choices):
            choices.append(people.UnitChoice(person.unit_id, person.unit_name or "No unit"))
        for choice in choices:
            self.unit_combo.addItem(choice.name or "No unit",
                                    str(choice.id) if choice.id else "")
        self.unit_combo.setCurrentIndex(
            self.unit_combo.findData(str(person.unit_id) if person.unit_id else ""))
        statuses = list(policy.statuses)
        if person.status not in statuses:
            statuses.append(person.status)
        for status in statuses:
            self.status_combo.addItem(status_text(status), status)
        self.status_combo.setCurrentIndex(self.status_combo.findData(person.status))
        for combo in (self.role_combo, self.unit_combo, self.status_combo):
            combo.blockSignals(False)
        self.sign_in_label.setText(SIGN_IN_TEXT.get(person.sign_in, str(person.sign_in)))
        self._set_enabled(True)

    def _set_enabled(self, loaded: bool) -> None:
        policy = self.policy
        can_edit = loaded and policy is not None and policy.can_edit
        reason = plain_tooltip(policy.reason) if policy is not None else ""
        for combo in (self.role_combo, self.status_combo):
            combo.setEnabled(can_edit)
            combo.setToolTip(reason)
        can_unit = can_edit and policy is not None and policy.can_change_unit
        self.unit_combo.setEnabled(can_unit)
        self.unit_combo.setToolTip(
            reason or ("" if can_unit else "A local admin cannot move members to another unit."))
        can_sign_in = loaded and policy is not None and policy.can_manage_sign_in
        has_sign_in = (self.person is not None and self.person.sign_in is not SignInState.NONE)
        for button in (self.link_button, self.otp_button, self.revoke_button):
            usable = can_sign_in and (button is not self.revoke_button or has_sign_in)
            button.setEnabled(usable)
            button.setToolTip(reason if not can_sign_in else (
                "" if usable else "They have no sign-in to revoke."))
        self._update_save()

    def _changes(self) -> dict[str, Any]:
        person = self.person
        if person is None:
            return {}
        changes: dict[str, Any] = {}
        role = self.role_combo.currentData()
        if role and Role[role] != person.role:
            changes["role"] = Role[role]
        unit = self.unit_combo.currentData()
        unit_id = uuid.UUID(unit) if unit else None
        if self.unit_combo.currentIndex() >= 0 and unit_id != person.unit_id:
            changes["unit_id"] = unit_id
        status = self.status_combo.currentData()
        if status and status != person.status:
            changes["status"] = status
        return changes

    def _update_save(self) -> None:
        self.save_button.setEnabled(bool(self._changes()) and self.policy is not None
                                    and self.policy.can_edit)

    # -- saving ---------------------------------------------------------------------------
    def save(self) -> None:
        person, changes = self.person, self._changes()
        if person is None or not changes:
            return
        if "status" in changes:
            new = changes["status"]
            if not widgets.confirm(
                    self, "Change status",
                    f"Mark {person.name or person.email} as {status_text(new).lower()}?",
                    informative=STATUS_WARNING.get(new, ""), action="Change status"):
                return
        if changes.get("role", person.role) < person.role and not widgets.confirm(
                self, "Lower role", f"Lower {person.name or person.email}'s role to "
                f"{changes['role'].label}?", informative="They lose what the higher role "
                "allowed at their next action.", action="Lower role"):
            return
        uow, operator, member_id, version = (self._uow, self._operator, self.member_id,
                                             person.version)
        role = changes.get("role")
        unit = changes.get("unit_id", KEEP)
        status = changes.get("status")
        self.save_button.setEnabled(False)
        self.message_label.setText("Saving…")
        self.hub.mutate(self, lambda: people.update_person(
            uow, operator, member_id, role=role, unit_id=unit, status=status,
            expected_version=version), {MEMBERS}, self._saved, self._refused)

    def _saved(self, person: PersonView) -> None:
        self.message_label.setText("Saved; recorded in the audit log.")
        self.reload()

    def _refused(self, error: BaseException) -> None:
        self.message_label.setText(str(error))
        self.reload()

    def send_link(self) -> None:
        person = self.person
        if person is None:
            return
        replaces = person.sign_in is not SignInState.NONE
        if not widgets.confirm(
                self, "Email a sign-in link", f"Email {person.email} a link to set their "
                "desktop password?",
                informative=("Their current password or link stops working." if replaces
                             else "The link works once and expires after "
                             f"{people.SIGN_IN_LINK_DAYS} days."), action="Send link"):
            return
        uow, operator, member_id = self._uow, self._operator, self.member_id
        self.hub.mutate(self, lambda: people.issue_sign_in_link(uow, operator, member_id),
                        {MEMBERS}, self._link_sent, self._refused)

    def _link_sent(self, issued: SignInLinkIssued) -> None:
        self.message_label.setText(f"A sign-in link is on its way to {issued.email} (valid "
                                   f"until {format_when(issued.expires_at)}).")
        self.reload()

    def one_time_password(self) -> None:
        person = self.person
        if person is None:
            return
        if person.sign_in is not SignInState.NONE and not widgets.confirm(
                self, "One-time password", f"Replace {person.email}'s sign-in with a "
                "one-time password?", informative="Their current password or link stops "
                "working.", action="Replace"):
            return
        uow, operator, member_id = self._uow, self._operator, self.member_id
        self.hub.mutate(self, lambda: people.issue_one_time_password(uow, operator, member_id),
                        {MEMBERS}, self._password_issued, self._refused)

    def _password_issued(self, issued: OneTimePassword) -> None:
        self.message_label.setText("A one-time password was created; it was shown once.")
        show_one_time_password(self, issued)
        self.reload()

    def revoke(self) -> None:
        person = self.person
        if person is None:
            return
        if not widgets.confirm(
                self, "Revoke sign-in", f"Revoke {person.name or person.email}'s desktop "
                "sign-in?", informative="Their password and any pending link stop working; "
                "a window they have open is refused at its next action.", action="Revoke"):
            return
        uow, operator, member_id = self._uow, self._operator, self.member_id
        self.hub.mutate(self, lambda: people.revoke_sign_in(uow, operator, member_id),
                        {MEMBERS}, lambda _p: self._revoked(), self._refused)

    def _revoked(self) -> None:
        self.message_label.setText("Sign-in revoked.")
        self.reload()
