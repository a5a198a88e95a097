"""Issue 11: the permission matrix of every administration action, through the services.

Every role (in unit North) x every action on a target in North, in South, or organization-wide.
"ok" means the service did it; a role name means PermissionDenied naming that role. Written
out by hand, not recomputed from the code under test. Plus the two rules the matrix cannot
show: "cannot grant above your own role" and "the last organization admin".
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from invite_desk.services.admin import audit_log, events, people, units
from invite_desk.services.errors import Conflict, PermissionDenied
from invite_desk.services.models import Event
from invite_desk.services.operator import Operator
from invite_desk.services.roles import Role
from invite_desk.services.uow import UnitOfWork
from tests.conftest import MakeOperator, MakeUnit

ROLES = (Role.USER, Role.HR_LOCAL, Role.HR_TENANT, Role.ADMIN_LOCAL, Role.ADMIN_TENANT)


@dataclass
class World:
    north: uuid.UUID
    south: uuid.UUID
    member_north: uuid.UUID
    member_south: uuid.UUID
    event_north: uuid.UUID
    event_south: uuid.UUID
    event_org: uuid.UUID


Call = Callable[[UnitOfWork, Operator, World], object]


def _draft(unit: uuid.UUID | None) -> events.EventDraft:
    return events.EventDraft("Gala", None, "Europe/Paris", unit_id=unit)


#         action                      call                                     USER HR_LOCAL HR_TENANT ADMIN_LOCAL ADMIN_TENANT
MATRIX: list[tuple[str, Call, tuple[str, ...]]] = [
    ("list people", lambda u, o, w: people.list_people(u, o),
     ("HR_LOCAL", "ok", "ok", "ok", "ok")),
    ("see a member of my unit", lambda u, o, w: people.get_person(u, o, w.member_north),
     ("HR_LOCAL", "ok", "ok", "ok", "ok")),
    ("see a member of another unit", lambda u, o, w: people.get_person(u, o, w.member_south),
     ("HR_TENANT", "HR_TENANT", "ok", "ADMIN_TENANT", "ok")),
    ("change role, my unit", lambda u, o, w: people.update_person(
        u, o, w.member_north, role=Role.HR_LOCAL),
     ("ADMIN_LOCAL", "ADMIN_LOCAL", "ADMIN_LOCAL", "ok", "ok")),
    ("change role, other unit", lambda u, o, w: people.update_person(
        u, o, w.member_south, role=Role.HR_LOCAL),
     ("ADMIN_TENANT", "ADMIN_TENANT", "ADMIN_TENANT", "ADMIN_TENANT", "ok")),
    ("change status, my unit", lambda u, o, w: people.update_person(
        u, o, w.member_north, status="lapsed"),
     ("ADMIN_LOCAL", "ADMIN_LOCAL", "ADMIN_LOCAL", "ok", "ok")),
    ("move to another unit", lambda u, o, w: people.update_person(
        u, o, w.member_north, unit_id=w.south),
     ("ADMIN_LOCAL", "ADMIN_LOCAL", "ADMIN_LOCAL", "ADMIN_TENANT", "ok")),
    ("one-time password, my unit", lambda u, o, w: people.issue_one_time_password(
        u, o, w.member_north),
     ("ADMIN_LOCAL", "ADMIN_LOCAL", "ADMIN_LOCAL", "ok", "ok")),
    ("sign-in link, my unit", lambda u, o, w: people.issue_sign_in_link(u, o, w.member_north),
     ("ADMIN_LOCAL", "ADMIN_LOCAL", "ADMIN_LOCAL", "ok", "ok")),
    ("sign-in link, other unit", lambda u, o, w: people.issue_sign_in_link(
        u, o, w.member_south),
     ("ADMIN_TENANT", "ADMIN_TENANT", "ADMIN_TENANT", "ADMIN_TENANT", "ok")),
    ("revoke sign-in, my unit", lambda u, o, w: people.revoke_sign_in(u, o, w.member_north),
     ("ADMIN_LOCAL", "ADMIN_LOCAL", "ADMIN_LOCAL", "ok", "ok")),
    ("bulk change, my unit", lambda u, o, w: people.bulk_update(
        u, o, [w.member_north], role=Role.HR_LOCAL),
     ("ADMIN_LOCAL", "ADMIN_LOCAL", "ADMIN_LOCAL", "ok", "ok")),
    ("list units", lambda u, o, w: units.list_units(u, o),
     ("HR_LOCAL", "ok", "ok", "ok", "ok")),
    ("create unit", lambda u, o, w: units.create_unit(u, o, "East"),
     ("ADMIN_TENANT", "ADMIN_TENANT", "ADMIN_TENANT", "ADMIN_TENANT", "ok")),
    ("rename unit", lambda u, o, w: units.rename_unit(u, o, w.north, "Northside"),
     ("ADMIN_TENANT", "ADMIN_TENANT", "ADMIN_TENANT", "ADMIN_TENANT", "ok")),
    ("merge units", lambda u, o, w: units.merge_units(u, o, w.south, w.north),
     ("ADMIN_TENANT", "ADMIN_TENANT", "ADMIN_TENANT", "ADMIN_TENANT", "ok")),
    ("archive unit", lambda u, o, w: units.archive_unit(u, o, w.south,
                                                         move_members_to=w.north),
     ("ADMIN_TENANT", "ADMIN_TENANT", "ADMIN_TENANT", "ADMIN_TENANT", "ok")),
    ("list events", lambda u, o, w: events.list_events(u, o),
     ("HR_LOCAL", "ok", "ok", "ok", "ok")),
    ("guests of my unit's event", lambda u, o, w: events.event_guests(u, o, w.event_north),
     ("HR_LOCAL", "ok", "ok", "ok", "ok")),
    ("guests of another unit's event", lambda u, o, w: events.event_guests(
        u, o, w.event_south),
     ("HR_TENANT", "HR_TENANT", "ok", "ADMIN_TENANT", "ok")),
    ("create event, my unit", lambda u, o, w: events.create_event(u, o, _draft(w.north)),
     ("ADMIN_LOCAL", "ADMIN_LOCAL", "ADMIN_LOCAL", "ok", "ok")),
    ("edit my unit's event", lambda u, o, w: events.update_event(
        u, o, w.event_north, _draft(w.north)),
     ("ADMIN_LOCAL", "ADMIN_LOCAL", "ADMIN_LOCAL", "ok", "ok")),
    ("edit another unit's event", lambda u, o, w: events.update_event(
        u, o, w.event_south, _draft(w.south)),
     ("ADMIN_TENANT", "ADMIN_TENANT", "ADMIN_TENANT", "ADMIN_TENANT", "ok")),
    ("archive an organization-wide event", lambda u, o, w: events.archive_event(
        u, o, w.event_org),
     ("ADMIN_TENANT", "ADMIN_TENANT", "ADMIN_TENANT", "ADMIN_TENANT", "ok")),
    ("read the audit log", lambda u, o, w: audit_log.fetch_audit_page(
        u, o, audit_log.AuditQuery()),
     ("ADMIN_TENANT", "ADMIN_TENANT", "ADMIN_TENANT", "ADMIN_TENANT", "ok")),
    ("export the audit log", lambda u, o, w: audit_log.export_audit_csv(
        u, o, audit_log.AuditQuery(), io.StringIO()),
     ("ADMIN_TENANT", "ADMIN_TENANT", "ADMIN_TENANT", "ADMIN_TENANT", "ok")),
    ("history of settings", lambda u, o, w: audit_log.history_for(u, o, "settings"),
     ("ADMIN_TENANT", "ADMIN_TENANT", "ADMIN_TENANT", "ADMIN_TENANT", "ok")),
    ("history of a member of my unit", lambda u, o, w: audit_log.history_for(
        u, o, "member", w.member_north),
     ("HR_LOCAL", "ok", "ok", "ok", "ok")),
    ("history of a member of another unit", lambda u, o, w: audit_log.history_for(
        u, o, "member", w.member_south),
     ("HR_TENANT", "HR_TENANT", "ok", "ADMIN_TENANT", "ok")),
]

ROWS = [pytest.param(call, outcomes, id=case) for case, call, outcomes in MATRIX]


@pytest.fixture
def world(uow: UnitOfWork, admin: Operator, make_unit: MakeUnit,
          make_operator: MakeOperator) -> World:
    north, south = make_unit("North"), make_unit("South")
    with uow:
        made = [Event(organization_id=admin.organization_id, name=n, unit_id=unit)
                for n, unit in (("North fair", north), ("South fair", south), ("AGM", None))]
        uow.session.add_all(made)
        uow.commit()
        ids = [e.id for e in made]
    return World(north, south, make_operator(Role.USER, north).member_id,
                 make_operator(Role.USER, south).member_id, *ids)


@pytest.mark.parametrize(("call", "outcomes"), ROWS)
def test_administration_permission_matrix(uow: UnitOfWork, admin: Operator, world: World,
                                          make_operator: MakeOperator, call: Call,
                                          outcomes: tuple[str, ...]) -> None:
    """One row: each role in turn, lowest first (a refusal changes nothing, so the roles
    that are allowed find the same world)."""
    for role, expected in zip(ROLES, outcomes, strict=True):
        operator = make_operator(role, world.north)
        if expected == "ok":
            call(uow, operator, world)
            continue
        with pytest.raises(PermissionDenied) as denied:
            call(uow, operator, world)
        assert denied.value.needed == expected, f"{role.name}: {denied.value}"


@pytest.mark.parametrize("granted", [Role.ADMIN_TENANT])
def test_cannot_grant_above_own_role(uow: UnitOfWork, world: World,
                                     make_operator: MakeOperator, granted: Role) -> None:
    local = make_operator(Role.ADMIN_LOCAL, world.north)
    with pytest.raises(PermissionDenied, match="above your own role"):
        people.update_person(uow, local, world.member_north, role=granted)
    outcome = people.bulk_update(uow, local, [world.member_north], role=granted)
    assert outcome.applied == 0 and "above your own role" in outcome.refused[0].reason
    # ...nor edit someone above it, even in their own unit.
    boss = make_operator(Role.ADMIN_TENANT, world.north)
    for call in (lambda: people.update_person(uow, local, boss.member_id, role=Role.USER),
                 lambda: people.issue_one_time_password(uow, local, boss.member_id),
                 lambda: people.revoke_sign_in(uow, local, boss.member_id)):
        with pytest.raises(PermissionDenied, match="above your own role"):
            call()


def test_a_local_admin_cannot_give_or_change_an_organization_wide_role(
        uow: UnitOfWork, world: World, make_operator: MakeOperator) -> None:
    """HR_TENANT ranks below ADMIN_LOCAL but reaches every unit: a local admin's reach is
    their unit, so they may neither grant it nor change someone who holds it."""
    local = make_operator(Role.ADMIN_LOCAL, world.north)
    with pytest.raises(PermissionDenied, match="whole organization"):
        people.update_person(uow, local, world.member_north, role=Role.HR_TENANT)
    policy = people.edit_policy(uow, local, world.member_north)
    assert Role.HR_TENANT not in policy.grantable_roles
    assert set(policy.grantable_roles) == {Role.USER, Role.HR_LOCAL, Role.ADMIN_LOCAL}
    org_hr = make_operator(Role.HR_TENANT, world.north)
    with pytest.raises(PermissionDenied, match="whole organization"):
        people.update_person(uow, local, org_hr.member_id, role=Role.USER)


def test_last_organization_admin(uow: UnitOfWork, admin: Operator, world: World) -> None:
    for change in ({"role": Role.ADMIN_LOCAL}, {"status": "lapsed"}, {"status": "resigned"}):
        with pytest.raises(Conflict, match="last active organization admin"):
            people.update_person(uow, admin, admin.member_id, **change)  # type: ignore[arg-type]
    assert people.get_person(uow, admin, admin.member_id).role is Role.ADMIN_TENANT
