"""The organization's invitation and referral policy: defaults, audited updates, validation,
and ADMIN_TENANT-only changes."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select

from invite_desk.services import settings
from invite_desk.services.errors import PermissionDenied, ValidationFailed
from invite_desk.services.models import AuditLog, Setting
from invite_desk.services.operator import Operator
from invite_desk.services.roles import Role
from invite_desk.services.settings_schema import SPECS, PolicySettings
from invite_desk.services.uow import UnitOfWork
from tests.conftest import MakeOperator


def stored(uow: UnitOfWork, admin: Operator) -> dict[str, Any]:
    with uow:
        rows = uow.session.scalars(
            select(Setting).where(Setting.organization_id == admin.organization_id)
        )
        return {row.key: json.loads(row.value_json) for row in rows}


@dataclass(frozen=True)
class AuditRow:
    actor_id: uuid.UUID | None
    organization_id: uuid.UUID
    entity_id: uuid.UUID | None
    before: dict[str, Any]
    after: dict[str, Any]


def audit_rows(uow: UnitOfWork) -> list[AuditRow]:
    """The "settings.update" audit rows, oldest first, read from the database."""
    with uow:
        rows = uow.session.scalars(
            select(AuditLog).where(AuditLog.action == "settings.update").order_by(AuditLog.at)
        )
        return [AuditRow(r.actor_id, r.organization_id, r.entity_id, json.loads(r.before_json),
                         json.loads(r.after_json)) for r in rows]


def test_a_new_organization_has_the_defaults_stored(uow: UnitOfWork, admin: Operator) -> None:
    assert settings.get_settings(uow, admin.organization_id) == PolicySettings()
    values = stored(uow, admin)
    for spec in SPECS:
        assert spec.key in values, spec.key
    assert values["userInvitations.whoCanSendUserInvitation"] == "USER"
    assert values["referralSettings.numberOfReferralsNeededForSignup"] is None
    assert values["_schemaVersion"] == 1


def test_an_update_writes_one_audit_row_with_only_the_changed_keys(
    uow: UnitOfWork, admin: Operator
) -> None:
    result = settings.update_settings(uow, admin, {
        "who_can_send_user_invitation": "HR_LOCAL",
        "number_of_referrals_needed_for_signup": "2",
        "invitation_expiry_days": 14,  # unchanged: not in the audit row
        "has_user_invitation": True,  # unchanged
    })

    assert result.who_can_send_user_invitation is Role.HR_LOCAL
    assert result.number_of_referrals_needed_for_signup == 2 and result.invite_only
    reloaded = settings.get_settings(uow, admin.organization_id)
    assert reloaded == result
    values = stored(uow, admin)
    assert values["userInvitations.whoCanSendUserInvitation"] == "HR_LOCAL"
    assert values["referralSettings.numberOfReferralsNeededForSignup"] == 2

    [row] = audit_rows(uow)
    assert row.actor_id == admin.member_id and row.organization_id == admin.organization_id
    assert row.before == {
        "userInvitations.whoCanSendUserInvitation": "USER",
        "referralSettings.numberOfReferralsNeededForSignup": None,
    }
    assert row.after == {
        "userInvitations.whoCanSendUserInvitation": "HR_LOCAL",
        "referralSettings.numberOfReferralsNeededForSignup": 2,
    }


def test_a_second_update_is_audited_against_the_new_values(uow: UnitOfWork, admin: Operator) -> None:
    settings.update_settings(uow, admin, {"invitation_expiry_days": 30})
    settings.update_settings(uow, admin, {"invitation_expiry_days": 7})
    rows = audit_rows(uow)
    assert [(r.before, r.after) for r in rows] == [
        ({"userInvitations.invitationExpiryDays": 14}, {"userInvitations.invitationExpiryDays": 30}),
        ({"userInvitations.invitationExpiryDays": 30}, {"userInvitations.invitationExpiryDays": 7}),
    ]
    assert settings.get_settings(uow, admin.organization_id).invitation_expiry_days == 7


def test_a_no_op_update_writes_no_audit_row(uow: UnitOfWork, admin: Operator) -> None:
    before = stored(uow, admin)
    result = settings.update_settings(uow, admin, {
        "has_user_invitation": True, "invitation_expiry_days": "14",
        "number_of_referrals_needed_for_signup": "",
    })
    assert result == PolicySettings()
    assert audit_rows(uow) == []
    assert stored(uow, admin) == before


@pytest.mark.parametrize(
    ("changes", "field", "reason"),
    [
        ({"invitation_expiry_days": -3}, "invitation_expiry_days", "between 1 and 365"),
        ({"invitation_expiry_days": "soon"}, "invitation_expiry_days", "whole number"),
        ({"number_of_referrals_needed_for_signup": 25}, "number_of_referrals_needed_for_signup",
         "between 0 and 20"),
        ({"daily_limit_per_inviter": -1}, "daily_limit_per_inviter", "between 0 and"),
        ({"who_can_send_user_invitation": "OWNER"}, "who_can_send_user_invitation", "Unknown role"),
        ({"has_user_invitation": "sometimes"}, "has_user_invitation", "on or off"),
    ],
)
def test_invalid_values_name_the_field_and_change_nothing(
    uow: UnitOfWork, admin: Operator, changes: dict[str, Any], field: str, reason: str
) -> None:
    before = stored(uow, admin)
    with pytest.raises(ValidationFailed) as failed:
        settings.update_settings(uow, admin, {**changes, "adhesion_required": True})
    assert list(failed.value.errors) == [field]
    assert reason in failed.value.errors[field]
    assert field in str(failed.value)
    assert stored(uow, admin) == before  # the valid change in the same call was not applied
    assert audit_rows(uow) == []


@pytest.mark.parametrize("role", [Role.USER, Role.HR_LOCAL, Role.HR_TENANT, Role.ADMIN_LOCAL])
def test_only_organization_admins_may_change_settings(
    uow: UnitOfWork, admin: Operator, make_operator: MakeOperator, role: Role
) -> None:
    operator = make_operator(role)
    before = stored(uow, admin)
    with pytest.raises(PermissionDenied) as denied:
        settings.update_settings(uow, operator, {"has_user_invitation": False})
    assert denied.value.needed == "ADMIN_TENANT"
    assert "ADMIN_TENANT" in str(denied.value)
    assert stored(uow, admin) == before
    assert audit_rows(uow) == []


def test_permission_is_checked_before_validation(
    uow: UnitOfWork, admin: Operator, make_operator: MakeOperator
) -> None:
    """A USER learns that they may not change settings, not which values would be wrong."""
    with pytest.raises(PermissionDenied):
        settings.update_settings(uow, make_operator(Role.USER), {"invitation_expiry_days": -1})


def test_broken_stored_values_fall_back_to_defaults(uow: UnitOfWork, admin: Operator) -> None:
    with uow:
        row = uow.session.scalars(select(Setting).where(
            Setting.key == "userInvitations.invitationExpiryDays")).one()
        row.value_json = json.dumps("fortnight")
        uow.commit()
    assert settings.get_settings(uow, admin.organization_id).invitation_expiry_days == 14


def test_settings_round_trip_on_every_backend(any_uow: UnitOfWork) -> None:
    from invite_desk.services import auth

    admin = auth.setup_organization(
        any_uow, organization_name="Any Club", admin_email="admin@any.example",
        admin_first_name="Any", admin_last_name="Admin", password="long enough pw",
    )
    settings.update_settings(any_uow, admin, {
        "who_can_send_user_invitation": Role.ADMIN_LOCAL, "referral_is_active": False,
        "number_of_referrals_needed_for_signup": 3,
    })
    loaded = settings.get_settings(any_uow, admin.organization_id)
    assert loaded == PolicySettings(who_can_send_user_invitation=Role.ADMIN_LOCAL,
                                    referral_is_active=False,
                                    number_of_referrals_needed_for_signup=3)
    [row] = audit_rows(any_uow)
    assert row.after["referralSettings.isActive"] is False
