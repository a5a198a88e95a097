"""Issue 8: extending a link needs the right to send and stops at a total lifetime; a revoke
can be undone while the link is unused and unexpired (restore_revoked)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest
from flask import Flask
from sqlalchemy import Engine, select

from invite_desk.services import settings
from invite_desk.services.errors import Conflict, PermissionDenied
from invite_desk.services.invitations.importing import parse_pasted
from invite_desk.services.invitations.preflight import run_preflight
from invite_desk.services.invitations.queueing import queue_invitations
from invite_desk.services.models import AuditLog, Invitation, utcnow
from invite_desk.services.operator import Operator
from invite_desk.services.registration.links import LinkState, open_link
from invite_desk.services.roles import Role
from invite_desk.services.tracking.actions import (
    MAX_LINK_LIFETIME_DAYS,
    extend_invitations,
    restore_revoked,
    revoke_invitations,
)
from invite_desk.services.uow import UnitOfWork
from tests.portal_client import HttpClient, portal_app, running_portal
from tests.tracking_data import NOW, S, Seeder


@pytest.fixture
def seeder(uow: UnitOfWork, admin: Operator) -> Seeder:
    return Seeder(uow, admin.organization_id)


def expiry(uow: UnitOfWork, invitation_id: uuid.UUID) -> object:
    with uow:
        row = uow.session.get(Invitation, invitation_id)
        assert row is not None
        return row.expires_at


@dataclass(frozen=True)
class Stored:
    status: str
    revoked_at: datetime | None


def stored(uow: UnitOfWork, invitation_id: uuid.UUID) -> Stored:
    with uow:
        row = uow.session.get(Invitation, invitation_id)
        assert row is not None
        return Stored(row.status, row.revoked_at)


def audit_actions(uow: UnitOfWork, invitation_id: uuid.UUID) -> list[str]:
    with uow:
        return list(uow.session.scalars(select(AuditLog.action).where(
            AuditLog.entity_id == invitation_id).order_by(AuditLog.at, AuditLog.id)))


# ------------------------------------------------------------------------------ extend
@pytest.mark.parametrize("who", list(Role))
@pytest.mark.parametrize("needed", list(Role))
def test_extending_needs_the_role_that_may_send(
    uow: UnitOfWork, admin: Operator, seeder: Seeder, who: Role, needed: Role
) -> None:
    unit = seeder.unit(f"Unit {who.name} {needed.name}")
    operator = seeder.member("Olga", who.name.title(), role=who, unit_id=unit)
    mine = seeder.add(S.SENT, inviter=operator.member_id, unit_id=unit, expires_in_days=3)
    settings.update_settings(uow, admin, {"who_can_send_user_invitation": needed})
    before = expiry(uow, mine.id)
    if who >= needed:
        assert extend_invitations(uow, operator, [mine.id], 5, now=NOW).done == (mine.id,)
        assert expiry(uow, mine.id) == NOW + timedelta(days=8)
    else:
        with pytest.raises(PermissionDenied, match=needed.name):
            extend_invitations(uow, operator, [mine.id], 5, now=NOW)
        assert expiry(uow, mine.id) == before


def test_extending_is_refused_when_invitations_are_off_even_for_an_admin(
    uow: UnitOfWork, admin: Operator, seeder: Seeder
) -> None:
    live = seeder.add(S.SENT, inviter=admin.member_id, expires_in_days=3)
    settings.update_settings(uow, admin, {"has_user_invitation": False})
    with pytest.raises(PermissionDenied, match="turned off"):
        extend_invitations(uow, admin, [live.id], 5, now=NOW)
    assert expiry(uow, live.id) == NOW + timedelta(days=3)


def test_extending_outside_the_scope_is_refused(
    uow: UnitOfWork, admin: Operator, seeder: Seeder
) -> None:
    east, west = seeder.unit("East"), seeder.unit("West")
    hr_east = seeder.member("Hera", "East", role=Role.HR_LOCAL, unit_id=east)
    theirs = seeder.add(S.SENT, inviter=admin.member_id, unit_id=west, expires_in_days=3)
    with pytest.raises(PermissionDenied, match="outside your scope"):
        extend_invitations(uow, hr_east, [theirs.id], 5, now=NOW)


@pytest.mark.parametrize(("sent_days_ago", "expires_in", "days", "allowed"), [
    (2, 12, 60, True),  # 2 + 12 + 60 = 74 days after it was sent
    (2, 12, 75, True),  # 89 days
    (2, 12, 77, False),  # 91
    (80, 5, 30, False),
    (100, -3, 1, False),  # already older than the limit: only a new link helps
    (30, -2, 7, True),
])
def test_a_link_lives_at_most_the_lifetime_limit_from_when_it_was_sent(
    uow: UnitOfWork, admin: Operator, seeder: Seeder, sent_days_ago: int, expires_in: int,
    days: int, allowed: bool,
) -> None:
    row = seeder.add(S.SENT, inviter=admin.member_id, sent_days_ago=sent_days_ago,
                     expires_in_days=expires_in, token=True)
    before = expiry(uow, row.id)
    result = extend_invitations(uow, admin, [row.id], days, now=NOW)
    if allowed:
        assert result.done == (row.id,)
        return
    assert result.done == ()
    [skip] = result.skipped
    assert f"at most {MAX_LINK_LIFETIME_DAYS} days from when it was sent" in skip.reason
    assert expiry(uow, row.id) == before
    assert "invitation.extended" not in audit_actions(uow, row.id)


def test_a_longer_link_expiry_setting_raises_the_lifetime_limit(
    uow: UnitOfWork, admin: Operator, seeder: Seeder
) -> None:
    settings.update_settings(uow, admin, {"invitation_expiry_days": 200})
    row = seeder.add(S.SENT, inviter=admin.member_id, sent_days_ago=2, expires_in_days=120)
    assert extend_invitations(uow, admin, [row.id], 30, now=NOW).done == (row.id,)
    assert extend_invitations(uow, admin, [row.id], 60, now=NOW).done == ()


# ------------------------------------------------------------------------------ undo revoke
def test_undoing_a_revoke_brings_the_same_link_back(
    uow: UnitOfWork, admin: Operator, seeder: Seeder
) -> None:
    live = seeder.add(S.SENT, inviter=admin.member_id, token=True)
    assert live.token is not None
    result = revoke_invitations(uow, admin, [live.id], now=NOW)
    [revoked] = result.revoked
    assert result.restorable == (live.id,)
    assert (revoked.previous_status, revoked.restorable) == (S.SENT, True)
    assert open_link(uow, live.token, now=NOW).state is LinkState.REVOKED

    restored = restore_revoked(uow, admin, live.id, expected_version=revoked.version, now=NOW)
    assert restored.status is S.SENT
    row = stored(uow, live.id)
    assert (row.status, row.revoked_at) == (S.SENT.value, None)
    assert open_link(uow, live.token, now=NOW).state is LinkState.VALID
    assert audit_actions(uow, live.id)[-2:] == ["invitation.revoked", "invitation.restored"]
    with pytest.raises(Conflict, match="no longer revoked"):
        restore_revoked(uow, admin, live.id, now=NOW)


@pytest.mark.parametrize("status", [S.QUEUED, S.DRAFT, S.FAILED, S.UNCERTAIN])
def test_undo_puts_back_the_status_it_had(
    uow: UnitOfWork, admin: Operator, seeder: Seeder, status: S
) -> None:
    row = seeder.add(status, inviter=admin.member_id, expires_in_days=5,
                     token=status is S.UNCERTAIN)
    revoke_invitations(uow, admin, [row.id], now=NOW)
    assert restore_revoked(uow, admin, row.id, now=NOW).status is status
    assert stored(uow, row.id).status == status.value


def test_undo_is_refused_once_the_link_has_expired(
    uow: UnitOfWork, admin: Operator, seeder: Seeder
) -> None:
    soon = seeder.add(S.SENT, inviter=admin.member_id, expires_in_days=1, token=True)
    overdue = seeder.add(S.SENT, inviter=admin.member_id, expires_in_days=-1, token=True)
    result = revoke_invitations(uow, admin, [soon.id, overdue.id], now=NOW)
    assert result.restorable == (soon.id,)
    with pytest.raises(Conflict, match="expired"):
        restore_revoked(uow, admin, soon.id, now=NOW + timedelta(days=2))
    with pytest.raises(Conflict, match="expired"):
        restore_revoked(uow, admin, overdue.id, now=NOW)
    assert stored(uow, soon.id).status == S.REVOKED.value


def test_undo_is_refused_when_the_invitation_changed_or_was_revoked_long_ago(
    uow: UnitOfWork, admin: Operator, seeder: Seeder
) -> None:
    live = seeder.add(S.SENT, inviter=admin.member_id, token=True)
    [revoked] = revoke_invitations(uow, admin, [live.id], now=NOW).revoked
    with pytest.raises(Conflict, match="changed since"):
        restore_revoked(uow, admin, live.id, expected_version=revoked.version - 1, now=NOW)
    # Revoked by an older version (token destroyed, no stored status): nothing to bring back.
    old = seeder.add(S.REVOKED, inviter=admin.member_id)
    with pytest.raises(Conflict, match="Compose"):
        restore_revoked(uow, admin, old.id, now=NOW)


def test_undo_is_refused_when_the_person_was_invited_again(
    uow: UnitOfWork, admin: Operator, seeder: Seeder
) -> None:
    live = seeder.add(S.SENT, inviter=admin.member_id, token=True, email="zoe@example.org")
    revoke_invitations(uow, admin, [live.id], now=NOW)
    preflight = run_preflight(uow, admin.organization_id,
                              parse_pasted("zoe@example.org").rows)
    queue_invitations(uow, admin, preflight.ready, source="paste")
    with pytest.raises(Conflict, match="invited again"):
        restore_revoked(uow, admin, live.id, now=NOW)


def test_undo_needs_the_right_to_revoke_and_a_live_account(
    uow: UnitOfWork, admin: Operator, seeder: Seeder
) -> None:
    east, west = seeder.unit("East"), seeder.unit("West")
    hr_east = seeder.member("Hera", "East", role=Role.HR_LOCAL, unit_id=east)
    theirs = seeder.add(S.SENT, inviter=admin.member_id, unit_id=west, token=True)
    revoke_invitations(uow, admin, [theirs.id], now=NOW)
    with pytest.raises(PermissionDenied, match="outside your scope"):
        restore_revoked(uow, hr_east, theirs.id, now=NOW)
    assert stored(uow, theirs.id).status == S.REVOKED.value


def test_the_portal_opens_a_restored_link_again(
    engine: Engine, uow: UnitOfWork, admin: Operator
) -> None:
    seeder = Seeder(uow, admin.organization_id, now=utcnow())
    live = seeder.add(S.SENT, inviter=admin.member_id, token=True, name="Zoë Martin")
    app: Flask = portal_app(engine, uow)
    browser = HttpClient()
    with running_portal(app) as base:
        assert browser.get(f"{base}/join/{live.token}").status == 200
        revoke_invitations(uow, admin, [live.id])
        assert browser.get(f"{base}/join/{live.token}").status == 410
        restore_revoked(uow, admin, live.id)
        page = browser.get(f"{base}/join/{live.token}")
        assert page.status == 200 and "<form" in page.text
