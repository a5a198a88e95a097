"""The settings declaration: product field names, defaults, and how entered values are read."""

from __future__ import annotations

from dataclasses import fields

import pytest
from hypothesis import given
from hypothesis import strategies as st

from invite_desk.services.errors import ValidationFailed
from invite_desk.services.roles import Role
from invite_desk.services.settings import validate
from invite_desk.services.settings_schema import (
    SPECS,
    SPECS_BY_FIELD,
    SPECS_BY_KEY,
    PolicySettings,
    coerce,
    to_stored,
)


def test_keys_keep_the_product_documents_field_names() -> None:
    keys = set(SPECS_BY_KEY)
    assert "userInvitations.hasUserInvitation" in keys
    assert "userInvitations.whoCanSendUserInvitation" in keys
    assert "referralSettings.isActive" in keys
    assert "referralSettings.numberOfReferralsNeededForSignup" in keys


def test_every_policy_field_is_declared_once_with_the_same_default() -> None:
    declared = [spec.field for spec in SPECS]
    assert len(declared) == len(set(declared)) == len(SPECS_BY_KEY)
    defaults = PolicySettings()
    assert {f.name for f in fields(PolicySettings)} == set(declared)
    for spec in SPECS:
        assert getattr(defaults, spec.field) == spec.default, spec.field
        assert spec.label and spec.help, spec.field


def test_defaults_are_open_and_permissive() -> None:
    """Out of the box: invitations on, everyone may invite, open registration, 14-day links."""
    defaults = PolicySettings()
    assert defaults.has_user_invitation is True
    assert defaults.who_can_send_user_invitation is Role.USER
    assert defaults.invitation_expiry_days == 14
    assert defaults.referral_is_active is True
    assert defaults.number_of_referrals_needed_for_signup is None
    assert defaults.invite_only is False


@pytest.mark.parametrize(("needed", "invite_only"), [(None, False), (0, False), (1, True), (3, True)])
def test_invite_only_means_one_or_more_referrals_needed(needed: int | None, invite_only: bool) -> None:
    assert PolicySettings(number_of_referrals_needed_for_signup=needed).invite_only is invite_only


@pytest.mark.parametrize(
    ("field", "raw", "expected"),
    [
        ("has_user_invitation", True, True),
        ("has_user_invitation", False, False),
        ("who_can_send_user_invitation", "hr_local", Role.HR_LOCAL),
        ("who_can_send_user_invitation", " ADMIN_TENANT ", Role.ADMIN_TENANT),
        ("who_can_send_user_invitation", 2, Role.HR_TENANT),
        ("who_can_send_user_invitation", Role.ADMIN_LOCAL, Role.ADMIN_LOCAL),
        ("invitation_expiry_days", "30", 30),
        ("invitation_expiry_days", " 7 ", 7),
        ("number_of_referrals_needed_for_signup", "", None),
        ("number_of_referrals_needed_for_signup", None, None),
        ("number_of_referrals_needed_for_signup", "2", 2),
    ],
)
def test_coerce_reads_entered_and_stored_values(field: str, raw: object, expected: object) -> None:
    assert coerce(SPECS_BY_FIELD[field], raw) == expected


@pytest.mark.parametrize(
    ("field", "raw", "reason"),
    [
        ("has_user_invitation", "yes", "must be on or off"),
        ("has_user_invitation", None, "is required"),
        ("invitation_expiry_days", "two weeks", "must be a whole number"),
        ("invitation_expiry_days", True, "must be a whole number"),
        ("invitation_expiry_days", "", "is required"),
        ("who_can_send_user_invitation", "SUPERUSER", "Unknown role"),
    ],
)
def test_coerce_rejects_with_a_reason(field: str, raw: object, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        coerce(SPECS_BY_FIELD[field], raw)


def test_roles_are_stored_by_name() -> None:
    spec = SPECS_BY_FIELD["who_can_send_user_invitation"]
    assert to_stored(spec, Role.HR_TENANT) == "HR_TENANT"
    assert coerce(spec, to_stored(spec, Role.HR_TENANT)) is Role.HR_TENANT


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("invitation_expiry_days", 0),
        ("invitation_expiry_days", -1),
        ("invitation_expiry_days", 366),
        ("daily_limit_per_inviter", -5),
        ("number_of_referrals_needed_for_signup", 21),
    ],
)
def test_out_of_range_values_name_the_field_and_the_range(field: str, value: int) -> None:
    with pytest.raises(ValidationFailed) as failed:
        validate({field: value})
    assert list(failed.value.errors) == [field]
    assert "must be between" in failed.value.errors[field]
    assert SPECS_BY_FIELD[field].label in failed.value.errors[field]


def test_every_bad_field_is_reported_at_once() -> None:
    with pytest.raises(ValidationFailed) as failed:
        validate({"invitation_expiry_days": -1, "has_user_invitation": "maybe", "colour": "red"})
    assert set(failed.value.errors) == {"invitation_expiry_days", "has_user_invitation", "colour"}


@given(st.integers(min_value=1, max_value=365))
def test_every_expiry_in_range_is_accepted_as_typed(days: int) -> None:
    assert validate({"invitation_expiry_days": str(days)}) == {"invitation_expiry_days": days}
