"""Settings → Referrals: `isActive`, `numberOfReferralsNeededForSignup` (invite-only), adhesion."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QLineEdit, QVBoxLayout, QWidget

from invite_desk.services import settings as settings_service
from invite_desk.services.errors import ValidationFailed
from invite_desk.services.operator import Operator
from invite_desk.services.settings_schema import SPECS_BY_FIELD, PolicySettings
from invite_desk.ui.hub import OperationsHub
from invite_desk.ui.settings.page import (
    BANNER_STYLES,
    PolicySettingsPage,
    parse_whole_number,
    set_editable,
)
from invite_desk.ui.widgets import PlainLabel

if TYPE_CHECKING:
    from invite_desk.ui.context import UnitOfWork

INVITE_ONLY_WARNING = (
    "Invite-only mode significantly limits growth. Only use it if your organization "
    "specifically requires controlled membership."
)
INVITATIONS_OFF_NOTE = (
    "Invitations are turned off (Invitations page), so while invite-only mode is on nobody "
    "new can register."
)
INVITE_ONLY_EFFECTS = (
    "Public registration is disabled",
    "Users must receive an invitation to register",
    "The registration page shows a message explaining the invite-only policy",
    "Invited users can register normally",
)


class InviteOnlyNotice(QLabel):
    """What invite-only mode does, and the product document's warning, in a warning box."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("invite-only-warning")
        self.setWordWrap(True)
        self.setTextFormat(Qt.TextFormat.RichText)
        self.setStyleSheet(
            f"QLabel {{ {BANNER_STYLES['warning']} border-radius: 4px; padding: 10px 12px; }}"
        )
        self.set_needed(1)

    def set_needed(self, needed: int, *, invitations_enabled: bool = True) -> None:
        people = "one existing member" if needed == 1 else f"{needed} different existing members"
        effects = "".join(f"<li>{effect}</li>" for effect in INVITE_ONLY_EFFECTS)
        blocked = (
            "" if invitations_enabled else
            f"<p style='margin-top:6px; margin-bottom:0'>{INVITATIONS_OFF_NOTE}</p>"
        )
        self.setText(
            f"<p style='margin:0'><b>Invite-only mode is on:</b> a new member must be invited "
            f"by {people} to register.</p>"
            f"<ul style='margin-top:4px; margin-bottom:4px; -qt-list-indent:1'>{effects}</ul>"
            f"<p style='margin:0'><b>{INVITE_ONLY_WARNING}</b></p>{blocked}"
        )
        self.setAccessibleDescription(INVITE_ONLY_WARNING)


class ReferralsPage(PolicySettingsPage):
    """Referral tracking, invite-only registration and the adhesion requirement."""

    NAME = "referrals"
    TITLE = "Referrals"
    INTRO = (
        "The referral system is integrated with the invitation feature: when members invite others and those "
        "invitations are accepted, the referral is tracked."
    )

    def __init__(self, uow: UnitOfWork, operator: Operator, parent: QWidget | None = None,
                 *, hub: OperationsHub | None = None) -> None:
        super().__init__(uow, operator, parent, hub=hub)
        self.loaded = PolicySettings()
        self._invitations_enabled = True

        self.active_box = QCheckBox(SPECS_BY_FIELD["referral_is_active"].label)
        self.add_field(
            "referral_is_active",
            editors=[self.active_box],
            header=self.active_box,
            field_name="isActive",
            help_text="Enable referral tracking. When on, the system records who referred each new member.",
        )

        self.needed_edit = QLineEdit()
        self.needed_edit.setPlaceholderText("empty")
        self.needed_edit.setAccessibleName("Referrals needed for sign-up")
        self.needed_edit.setMaximumWidth(110)
        self.mode_label = PlainLabel()
        self.mode_label.setObjectName("registration-mode")
        self.invite_only_notice = InviteOnlyNotice()
        self.invite_only_notice.hide()
        body = QWidget()
        body_layout = QVBoxLayout(body)
        body_layout.setContentsMargins(0, 0, 0, 0)
        body_layout.setSpacing(8)
        line = QWidget()
        line_layout = QHBoxLayout(line)
        line_layout.setContentsMargins(0, 0, 0, 0)
        line_layout.setSpacing(10)
        line_layout.addWidget(self.needed_edit)
        line_layout.addWidget(self.mode_label)
        line_layout.addStretch(1)
        body_layout.addWidget(line)
        self.add_field(
            "number_of_referrals_needed_for_signup",
            editors=[self.needed_edit],
            title=SPECS_BY_FIELD["number_of_referrals_needed_for_signup"].label,
            field_name="numberOfReferralsNeededForSignup",
            body=body,
            help_text=(
                "If set, new users must be referred by an existing member to register. This "
                "creates an invite-only membership model.\n"
                "• Set to 1 — requires one referral to register\n"
                "• Set to 0 or leave empty — open registration (referrals tracked but not required)"
            ),
        )
        # The warning goes below the help text so it is the last, most visible thing in the row.
        self.form.addWidget(self.invite_only_notice)

        self.adhesion_box = QCheckBox(SPECS_BY_FIELD["adhesion_required"].label)
        self.add_field(
            "adhesion_required",
            editors=[self.adhesion_box],
            header=self.adhesion_box,
            field_name="adhesion.required",
            help_text=(
                "Even if members can invite anyone, you can still require an adhesion "
                "(application) process for formal membership. New members then start as "
                "applicants until HR or an admin approves their application."
            ),
        )

        self.password_box = QCheckBox(SPECS_BY_FIELD["registration_asks_password"].label)
        self.add_field(
            "registration_asks_password",
            editors=[self.password_box],
            header=self.password_box,
            field_name="registrationForm.askPassword",
            help_text=SPECS_BY_FIELD["registration_asks_password"].help,
        )

    # ---- contract ---------------------------------------------------------------------------

    def show_loaded(self, data: PolicySettings) -> None:
        self.loaded = data
        self.begin_loading()
        try:
            self.active_box.setChecked(self.loaded.referral_is_active)
            needed = self.loaded.number_of_referrals_needed_for_signup
            self.needed_edit.setText("" if needed is None else str(needed))
            self.adhesion_box.setChecked(self.loaded.adhesion_required)
            self.password_box.setChecked(self.loaded.registration_asks_password)
        finally:
            self.end_loading()

    def _entered(self) -> dict[str, Any]:
        return {
            "referral_is_active": self.active_box.isChecked(),
            "number_of_referrals_needed_for_signup": parse_whole_number(self.needed_edit.text()),
            "adhesion_required": self.adhesion_box.isChecked(),
            "registration_asks_password": self.password_box.isChecked(),
        }

    def check(self) -> dict[str, str]:
        try:
            settings_service.validate(self._entered())
        except ValidationFailed as exc:
            return exc.errors
        return {}

    def set_invitations_enabled(self, enabled: bool) -> None:
        """What the Invitations page currently says about `hasUserInvitation`: invite-only mode
        with invitations off lets nobody register, which the warning then says."""
        if enabled != self._invitations_enabled:
            self._invitations_enabled = enabled
            self.update_dependent_controls()

    def invite_only_entered(self) -> int:
        """The number of referrals entered, or 0 when empty, zero or not a valid number."""
        value = parse_whole_number(self.needed_edit.text())
        if not isinstance(value, int) or value <= 0:
            return 0
        try:
            settings_service.validate({"number_of_referrals_needed_for_signup": value})
        except ValidationFailed:
            return 0
        return value

    def update_dependent_controls(self) -> None:
        set_editable(
            [self.active_box, self.needed_edit, self.adhesion_box, self.password_box],
            self.editable(),
            self.read_only_reason,
        )
        value = parse_whole_number(self.needed_edit.text())
        needed = self.invite_only_entered()
        if needed:
            self.mode_label.setText("Invite-only registration")
            self.invite_only_notice.set_needed(
                needed, invitations_enabled=self._invitations_enabled
            )
        elif value is None or value == 0:
            self.mode_label.setText("Open registration")
        else:
            self.mode_label.setText("")
        self.invite_only_notice.setVisible(bool(needed))
