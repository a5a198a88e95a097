"""Every organization setting, declared once with its type, default and check.

Keys keep the product documents' field names (`hasUserInvitation`, `whoCanSendUserInvitation`,
`isActive`, `numberOfReferralsNeededForSignup`), prefixed with the settings section they live in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from invite_desk.services.roles import Role

Check = Callable[[Any], str | None]


@dataclass(frozen=True)
class SettingSpec:
    key: str
    field: str  # attribute of PolicySettings
    kind: type
    default: Any
    label: str
    help: str
    check: Check | None = None
    nullable: bool = False


def _int_range(low: int, high: int) -> Check:
    def check(value: Any) -> str | None:
        if value < low or value > high:
            return f"must be between {low} and {high}"
        return None

    return check


SPECS: tuple[SettingSpec, ...] = (
    SettingSpec(
        "userInvitations.hasUserInvitation", "has_user_invitation", bool, True,
        "Enable invitations",
        "When enabled, members can use the Invite functionality.",
    ),
    SettingSpec(
        "userInvitations.whoCanSendUserInvitation", "who_can_send_user_invitation", Role,
        Role.USER, "Who can send invitations",
        "The permission level required to send invitations.",
    ),
    SettingSpec(
        "userInvitations.invitationExpiryDays", "invitation_expiry_days", int, 14,
        "Link expiry (days)",
        "How long an invitation link stays valid after it is sent.",
        _int_range(1, 365),
    ),
    SettingSpec(
        "userInvitations.dailyLimitPerInviter", "daily_limit_per_inviter", int, 200,
        "Daily limit per inviter",
        "How many invitations one inviter may be credited with per day (0 = no limit).",
        _int_range(0, 1_000_000),
    ),
    SettingSpec(
        "referralSettings.isActive", "referral_is_active", bool, True,
        "Enable referral tracking",
        "When on, the system records who referred each new member.",
    ),
    SettingSpec(
        "referralSettings.numberOfReferralsNeededForSignup",
        "number_of_referrals_needed_for_signup", int, None,
        "Referrals needed for sign-up",
        "0 or empty: open registration (referrals tracked but not required). "
        "1 or more: invite-only; a person needs that many distinct members' invitations.",
        _int_range(0, 20), nullable=True,
    ),
    SettingSpec(
        "adhesion.required", "adhesion_required", bool, False,
        "Require adhesion",
        "New members start as applicants until HR or an admin approves their application.",
    ),
    SettingSpec(
        "registrationForm.askPassword", "registration_asks_password", bool, True,
        "Ask for a password at registration",
        "When on, people choose a password on the registration page (members can then sign in "
        "with their email). When off, the form asks only for their name.",
    ),
    # Issue 11: the emails people expect; each can be switched off.
    SettingSpec(
        "notifications.applicationDecision", "notify_application_decision", bool, True,
        "Email applicants when their application is approved or rejected",
        "The rejection email includes the reason HR gave, if any.",
    ),
    SettingSpec(
        "notifications.inviteeJoined", "notify_invitee_joined", bool, True,
        "Email inviters when their invitee joins",
        "Tells the member credited with the invitation that the person they invited joined.",
    ),
    SettingSpec(
        "notifications.operatorSignIn", "notify_operator_sign_in", bool, True,
        "Email new operators their sign-in link",
        "When off, give sign-ins as one-time passwords instead.",
    ),
    SettingSpec(
        "deliverability.reminderDaysBefore", "reminder_days_before", int, 0,
        "Reminder before the link expires (days)",
        "Send one reminder this many days before an unanswered invitation's link expires "
        "(0 = no reminders).",
        _int_range(0, 364),
    ),
    SettingSpec(
        "deliverability.softBouncesToSuppress", "soft_bounces_to_suppress", int, 3,
        "Soft bounces before suppressing",
        "After this many temporary delivery failures (mailbox full, ...) for one invitation, "
        "its address is put on the suppression list.",
        _int_range(1, 100),
    ),
)

SPECS_BY_KEY = {spec.key: spec for spec in SPECS}
SPECS_BY_FIELD = {spec.field: spec for spec in SPECS}

# Bumped whenever stored settings need a rewrite; see services/settings.py `_UPGRADES`.
SETTINGS_SCHEMA_VERSION = 1
SCHEMA_VERSION_KEY = "_schemaVersion"


@dataclass(frozen=True)
class PolicySettings:
    """The organization's invitation and referral policy, typed."""

    has_user_invitation: bool = True
    who_can_send_user_invitation: Role = Role.USER
    invitation_expiry_days: int = 14
    daily_limit_per_inviter: int = 200
    referral_is_active: bool = True
    number_of_referrals_needed_for_signup: int | None = None
    adhesion_required: bool = False
    registration_asks_password: bool = True
    notify_application_decision: bool = True
    notify_invitee_joined: bool = True
    notify_operator_sign_in: bool = True
    reminder_days_before: int = 0
    soft_bounces_to_suppress: int = 3

    @property
    def invite_only(self) -> bool:
        return bool(self.number_of_referrals_needed_for_signup)


def coerce(spec: SettingSpec, value: Any) -> Any:
    """Turn a stored or entered value into the spec's type; raise ValueError with a reason."""
    if value is None or value == "":
        if spec.nullable:
            return None
        raise ValueError("is required")
    if spec.kind is bool:
        if isinstance(value, bool):
            return value
        raise ValueError("must be on or off")
    if spec.kind is Role:
        return Role.parse(value)
    if spec.kind is int:
        if isinstance(value, bool):
            raise ValueError("must be a whole number")
        try:
            number = int(str(value).strip())
        except ValueError:
            raise ValueError("must be a whole number") from None
        return number
    return spec.kind(value)


def to_stored(spec: SettingSpec, value: Any) -> Any:
    return value.name if isinstance(value, Role) else value
