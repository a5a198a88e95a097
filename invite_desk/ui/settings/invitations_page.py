"""Settings → Invitations: `hasUserInvitation`, `whoCanSendUserInvitation`, link expiry, daily limit,
reminders and soft bounces."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QGridLayout,
    QLineEdit,
    QRadioButton,
    QWidget,
)

from invite_desk.services import settings as settings_service
from invite_desk.services.errors import ValidationFailed
from invite_desk.services.operator import Operator
from invite_desk.services.roles import WHO_CAN_INVITE_EXPLANATIONS, Role
from invite_desk.services.settings_schema import SPECS_BY_FIELD, PolicySettings
from invite_desk.ui.hub import OperationsHub
from invite_desk.ui.settings.page import (
    PolicySettingsPage,
    field_name_label,
    parse_whole_number,
    set_editable,
    set_enabled,
)
from invite_desk.ui.widgets import PlainLabel

if TYPE_CHECKING:
    from invite_desk.ui.context import UnitOfWork

FIELDS = (
    "has_user_invitation",
    "who_can_send_user_invitation",
    "invitation_expiry_days",
    "daily_limit_per_inviter",
    "reminder_days_before",
    "soft_bounces_to_suppress",
)


def _number_edit(placeholder: str, accessible_name: str) -> QLineEdit:
    edit = QLineEdit()
    edit.setPlaceholderText(placeholder)
    edit.setAccessibleName(accessible_name)
    edit.setMaximumWidth(110)
    return edit


class InvitationsPage(PolicySettingsPage):
    """Whether members may invite, who may, how long links live and how many per day."""

    NAME = "invitations"
    TITLE = "Invitations"
    INTRO = (
        "Who may invite, and for how long a link stays valid. "
        "These apply to the whole organization."
    )

    def __init__(self, uow: UnitOfWork, operator: Operator, parent: QWidget | None = None,
                 *, hub: OperationsHub | None = None) -> None:
        super().__init__(uow, operator, parent, hub=hub)
        self.loaded = PolicySettings()

        self.enabled_box = QCheckBox(SPECS_BY_FIELD["has_user_invitation"].label)
        self.add_field(
            "has_user_invitation",
            editors=[self.enabled_box],
            header=self.enabled_box,
            field_name="hasUserInvitation",
            help_text=(
                "Toggle to enable or disable the invitation feature. When enabled, members can "
                "access the “Invite” functionality from their dashboard or profile menu."
            ),
        )

        self.who_group = QButtonGroup(self)
        self.who_buttons: dict[Role, QRadioButton] = {}
        choices = QWidget()
        grid = QGridLayout(choices)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setHorizontalSpacing(16)
        grid.setVerticalSpacing(4)
        for row, role in enumerate(Role):
            button = QRadioButton(WHO_CAN_INVITE_EXPLANATIONS[role])
            button.setAccessibleDescription(role.name)
            self.who_group.addButton(button, int(role))
            self.who_buttons[role] = button
            grid.addWidget(button, row, 0)
            grid.addWidget(field_name_label(role.name), row, 1)
        grid.setColumnStretch(2, 1)
        self.add_field(
            "who_can_send_user_invitation",
            editors=list(self.who_buttons.values()),
            title=SPECS_BY_FIELD["who_can_send_user_invitation"].label,
            field_name="whoCanSendUserInvitation",
            body=choices,
            help_text="The permission level required to send invitations.",
        )

        self.expiry_edit = _number_edit("14", "Link expiry in days")
        self.add_field(
            "invitation_expiry_days",
            editors=[self.expiry_edit, PlainLabel("days")],
            title="Link expiry",
            field_name="invitationExpiryDays",
            help_text=(
                "How long an invitation link stays valid after it is sent (1 to 365 days). "
                "A resend issues a new link with a new expiry."
            ),
        )

        self.limit_edit = _number_edit("0", "Daily limit per inviter")
        self.add_field(
            "daily_limit_per_inviter",
            editors=[self.limit_edit, PlainLabel("invitations per inviter per day")],
            title=SPECS_BY_FIELD["daily_limit_per_inviter"].label,
            field_name="dailyLimitPerInviter",
            help_text=(
                "How many invitations one inviter may be credited with per day, including "
                "those sent on their behalf. 0 = no limit."
            ),
        )

        self.reminder_edit = _number_edit("0", "Reminder days before the link expires")
        self.add_field(
            "reminder_days_before",
            editors=[self.reminder_edit, PlainLabel("days before the link expires")],
            title=SPECS_BY_FIELD["reminder_days_before"].label,
            field_name="deliverability.reminderDaysBefore",
            help_text=(
                "One reminder to each invitee who has not answered, this many days before "
                "the link expires (sent by `invite-desk reminders send`). 0 = no reminders."
            ),
        )

        self.soft_bounce_edit = _number_edit("3", "Soft bounces before suppressing")
        self.add_field(
            "soft_bounces_to_suppress",
            editors=[self.soft_bounce_edit, PlainLabel("temporary failures")],
            title=SPECS_BY_FIELD["soft_bounces_to_suppress"].label,
            field_name="deliverability.softBouncesToSuppress",
            help_text=(
                "After this many soft bounces (mailbox full, ...) of one invitation its "
                "address is put on the suppression list. A hard bounce suppresses at once."
            ),
        )

    # ---- contract ---------------------------------------------------------------------------

    def show_loaded(self, data: PolicySettings) -> None:
        self.loaded = data
        self.begin_loading()
        try:
            self.enabled_box.setChecked(self.loaded.has_user_invitation)
            self.who_buttons[self.loaded.who_can_send_user_invitation].setChecked(True)
            self.expiry_edit.setText(str(self.loaded.invitation_expiry_days))
            self.limit_edit.setText(str(self.loaded.daily_limit_per_inviter))
            self.reminder_edit.setText(str(self.loaded.reminder_days_before))
            self.soft_bounce_edit.setText(str(self.loaded.soft_bounces_to_suppress))
        finally:
            self.end_loading()

    def _entered(self) -> dict[str, Any]:
        checked = self.who_group.checkedId()
        return {
            "has_user_invitation": self.enabled_box.isChecked(),
            "who_can_send_user_invitation": Role(checked) if checked >= 0 else None,
            "invitation_expiry_days": parse_whole_number(self.expiry_edit.text()),
            "daily_limit_per_inviter": parse_whole_number(self.limit_edit.text()),
            "reminder_days_before": parse_whole_number(self.reminder_edit.text()),
            "soft_bounces_to_suppress": parse_whole_number(self.soft_bounce_edit.text()),
        }

    def check(self) -> dict[str, str]:
        errors: dict[str, str] = {}
        entered = self._entered()
        if entered["who_can_send_user_invitation"] is None:
            errors["who_can_send_user_invitation"] = "Choose who can send invitations."
        # The services' own (database-free) validation is the one source of the rules.
        try:
            settings_service.validate(
                {k: v for k, v in entered.items() if k not in errors}
            )
        except ValidationFailed as exc:
            errors.update(exc.errors)
        return errors

    def update_dependent_controls(self) -> None:
        dependents: list[QWidget] = [
            *self.who_buttons.values(),
            *self.row("invitation_expiry_days").editors,
            *self.row("daily_limit_per_inviter").editors,
            *self.row("reminder_days_before").editors,
            *self.row("soft_bounces_to_suppress").editors,
        ]
        set_editable([self.enabled_box, *dependents], self.editable(), self.read_only_reason)
        if self.editable():
            set_enabled(
                dependents,
                self.enabled_box.isChecked(),
                "Turn on “Enable invitations” to change this.",
            )
