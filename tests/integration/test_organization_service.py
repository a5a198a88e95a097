"""The organization's identity and branding: audited, validated, ADMIN_TENANT only."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select

from invite_desk.services import organization
from invite_desk.services.errors import PermissionDenied, ValidationFailed
from invite_desk.services.models import AuditLog, Organization, Unit
from invite_desk.services.operator import Operator
from invite_desk.services.roles import Role
from invite_desk.services.uow import UnitOfWork
from tests.conftest import MakeOperator, MakeUnit
from tests.images import PNG_LOGO

PNG = PNG_LOGO


def row(uow: UnitOfWork, admin: Operator) -> dict[str, Any]:
    with uow:
        org = uow.session.get(Organization, admin.organization_id)
        assert org is not None
        return {f: getattr(org, f) for f in organization.FIELDS} | {"version": org.version}


@dataclass(frozen=True)
class AuditRow:
    actor_id: uuid.UUID | None
    organization_id: uuid.UUID
    entity_id: uuid.UUID | None
    before: dict[str, Any]
    after: dict[str, Any]


def audit_rows(uow: UnitOfWork) -> list[AuditRow]:
    """The "organization.update" audit rows, oldest first, read from the database."""
    with uow:
        rows = uow.session.scalars(
            select(AuditLog).where(AuditLog.action == "organization.update").order_by(AuditLog.at)
        )
        return [AuditRow(r.actor_id, r.organization_id, r.entity_id, json.loads(r.before_json),
                         json.loads(r.after_json)) for r in rows]


def test_get_organization_returns_what_setup_stored(uow: UnitOfWork, admin: Operator) -> None:
    info = organization.get_organization(uow, admin.organization_id)
    assert info.id == admin.organization_id
    assert info.name == "Harbour Rowing Club"
    assert info.description == "A rowing club with chapters along the coast."
    assert info.registration_base_url == "https://join.example.org"
    assert info.accent_color == "#2F6FEB"  # the default
    assert info.logo is None and info.logo_mime is None


def test_list_units_is_sorted_and_skips_archived_units(
    uow: UnitOfWork, admin: Operator, make_unit: MakeUnit
) -> None:
    for name in ("Westside", "Eastside", "Old Town"):
        make_unit(name)
    with uow:
        old = uow.session.scalars(select(Unit).where(Unit.name == "Old Town")).one()
        old.archived = True
        uow.commit()
    assert [u.name for u in organization.list_units(uow, admin.organization_id)] == [
        "Eastside", "Westside"]


def test_an_update_writes_one_audit_row_with_only_the_changed_fields(
    uow: UnitOfWork, admin: Operator
) -> None:
    info = organization.update_organization(uow, admin, {
        "name": "Harbour Rowing Club",  # unchanged
        "accent_color": "#0e7c66",
        "registration_base_url": "https://join.harbour.example/ ",
        "logo": PNG,
        "logo_mime": "image/png",
    })

    assert info.accent_color == "#0E7C66"
    assert info.registration_base_url == "https://join.harbour.example"
    stored = row(uow, admin)
    assert stored["accent_color"] == "#0E7C66" and stored["logo"] == PNG
    assert stored["version"] == 2
    [audit] = audit_rows(uow)
    assert audit.actor_id == admin.member_id and audit.entity_id == admin.organization_id
    before, after = audit.before, audit.after
    assert set(before) == set(after) == {"accent_color", "registration_base_url", "logo",
                                         "logo_mime"}
    assert before["accent_color"] == "#2F6FEB" and after["accent_color"] == "#0E7C66"
    assert before["logo"] is None
    # The audit row describes the logo; it does not copy the image.
    assert after["logo"] == {"bytes": len(PNG), "sha256": hashlib.sha256(PNG).hexdigest()}


def test_a_no_op_update_writes_no_audit_row(uow: UnitOfWork, admin: Operator) -> None:
    before = row(uow, admin)
    organization.update_organization(uow, admin, {
        "name": " Harbour Rowing Club ", "accent_color": "#2f6feb",
        "registration_base_url": "https://join.example.org/",
    })
    assert row(uow, admin) == before
    assert audit_rows(uow) == []


@pytest.mark.parametrize(
    ("changes", "field", "reason"),
    [
        ({"accent_color": "blue"}, "accent_color", "#2F6FEB"),
        ({"accent_color": "#12345"}, "accent_color", "#2F6FEB"),
        ({"registration_base_url": "join.example.org"}, "registration_base_url", "https://"),
        ({"registration_base_url": "javascript:alert(1)"}, "registration_base_url", "https://"),
        ({"registration_base_url": "https://"}, "registration_base_url", "name a host"),
        ({"name": "   "}, "name", "required"),
        ({"name": "x" * 201}, "name", "200"),
        ({"logo": b"%PDF-1.7\n", "logo_mime": "application/pdf"}, "logo", "PNG"),
        ({"logo": b"\x00" * (512 * 1024 + 1)}, "logo", "512 KB"),
        ({"owner": "me"}, "owner", "not an organization field"),
    ],
)
def test_invalid_values_name_the_field_and_change_nothing(
    uow: UnitOfWork, admin: Operator, changes: dict[str, Any], field: str, reason: str
) -> None:
    before = row(uow, admin)
    with pytest.raises(ValidationFailed) as failed:
        organization.update_organization(uow, admin, {**changes, "description": "Changed."})
    assert list(failed.value.errors) == [field]
    assert reason in failed.value.errors[field]
    assert row(uow, admin) == before
    assert audit_rows(uow) == []


@pytest.mark.parametrize("role", [Role.USER, Role.HR_LOCAL, Role.HR_TENANT, Role.ADMIN_LOCAL])
def test_only_organization_admins_may_change_it(
    uow: UnitOfWork, admin: Operator, make_operator: MakeOperator, role: Role
) -> None:
    before = row(uow, admin)
    with pytest.raises(PermissionDenied) as denied:
        organization.update_organization(uow, make_operator(role), {"name": "Taken Over"})
    assert denied.value.needed == "ADMIN_TENANT"
    assert "needs the ADMIN_TENANT role" in str(denied.value)
    assert row(uow, admin) == before
    assert audit_rows(uow) == []


def test_a_second_admin_may_change_it(
    uow: UnitOfWork, admin: Operator, make_operator: MakeOperator
) -> None:
    other = make_operator(Role.ADMIN_TENANT)
    organization.update_organization(uow, other, {"description": "Now with a sculling school."})
    assert row(uow, admin)["description"] == "Now with a sculling school."
    [audit] = audit_rows(uow)
    assert audit.actor_id == other.member_id
