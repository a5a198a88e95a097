"""Issue 11: units (create, rename, merge, archive, move members) and events (create, edit in
a time zone, archive, guests and who of them later joined, Compose's list)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from invite_desk.services.admin import events, people, units
from invite_desk.services.admin.events import EventDraft
from invite_desk.services.errors import Conflict, PermissionDenied, ValidationFailed
from invite_desk.services.events import list_events as compose_events
from invite_desk.services.models import (
    AuditLog,
    Event,
    EventGuest,
    Invitation,
    InvitationKind,
    InvitationStatus,
    Member,
    Referral,
    utcnow,
)
from invite_desk.services.operator import Operator
from invite_desk.services.registration.joining import register_with_invitation
from invite_desk.services.roles import Role
from invite_desk.services.uow import UnitOfWork
from tests.conftest import MakeOperator, MakeUnit
from tests.registration_fixtures import form, invite


def test_units_are_created_renamed_and_unique_ignoring_case(uow: UnitOfWork,
                                                            admin: Operator) -> None:
    north = units.create_unit(uow, admin, "  North   Coast ")
    assert north.name == "North Coast"
    with pytest.raises(ValidationFailed, match="already exists"):
        units.create_unit(uow, admin, "north coast")
    with pytest.raises(ValidationFailed):
        units.create_unit(uow, admin, "   ")
    renamed = units.rename_unit(uow, admin, north.id, "Northside")
    assert renamed.name == "Northside"
    with pytest.raises(Conflict):
        units.rename_unit(uow, admin, north.id, "Again", expected_version=north.version)
    with uow:
        actions = [a for a, in uow.session.execute(
            select(AuditLog.action).where(AuditLog.entity_id == north.id).order_by(AuditLog.at))]
    assert actions == ["unit.create", "unit.rename"]


def test_merge_moves_members_invitations_events_and_archives_the_source(
        uow: UnitOfWork, admin: Operator, make_operator: MakeOperator) -> None:
    source = units.create_unit(uow, admin, "Old Town")
    target = units.create_unit(uow, admin, "New Town")
    inviter = make_operator(Role.USER, source.id)
    sent = invite(uow, inviter, "guest@example.org", unit_id=source.id)
    joined = register_with_invitation(uow, sent.token, form("Gus", "Guest"))
    assert joined.registered
    event = events.create_event(uow, admin, EventDraft("Fair", None, "UTC", unit_id=source.id))
    outcome = units.merge_units(uow, admin, source.id, target.id)
    assert (outcome.moved_members, outcome.moved_invitations, outcome.moved_events) == (2, 1, 1)
    assert outcome.source.archived and outcome.target.active_members == 2
    with uow:
        s = uow.session
        assert s.get(Member, inviter.member_id).unit_id == target.id  # type: ignore[union-attr]
        assert s.get(Invitation, sent.id).unit_id == target.id  # type: ignore[union-attr]
        assert s.get(Event, event.id).unit_id == target.id  # type: ignore[union-attr]
        # Referral credit follows the member: still credited to the inviter.
        assert s.scalar(select(Referral.referrer_id)) == inviter.member_id
        row = s.scalars(select(AuditLog).where(AuditLog.action == "unit.merge")).one()
        assert json.loads(row.after_json)["members_moved"] == 2
    assert [u.name for u in units.list_units(uow, admin)] == ["New Town"]
    assert {u.name for u in units.list_units(uow, admin, include_archived=True)} == {
        "Old Town", "New Town"}
    with pytest.raises(ValidationFailed, match="archived"):
        units.merge_units(uow, admin, target.id, source.id)


def test_archive_refuses_a_unit_with_active_members_unless_they_move(
        uow: UnitOfWork, admin: Operator, make_operator: MakeOperator) -> None:
    north = units.create_unit(uow, admin, "North")
    south = units.create_unit(uow, admin, "South")
    member = make_operator(Role.USER, north.id)
    with pytest.raises(Conflict, match="1 active member"):
        units.archive_unit(uow, admin, north.id)
    people.update_person(uow, admin, member.member_id, status="resigned")
    assert units.archive_unit(uow, admin, north.id).archived  # only a resigned member left
    make_operator(Role.USER, south.id)
    east = units.create_unit(uow, admin, "East")
    archived = units.archive_unit(uow, admin, south.id, move_members_to=east.id)
    assert archived.archived and archived.members == 0
    # Members cannot be moved into an archived unit.
    outcome = units.move_members(uow, admin, [member.member_id], south.id)
    assert outcome.applied == 0 and "archived" in outcome.refused[0].reason
    assert units.move_members(uow, admin, [member.member_id], north.id).unchanged
    assert units.move_members(uow, admin, [member.member_id], east.id).applied == 1


def test_an_event_keeps_its_wall_clock_time_in_its_zone(uow: UnitOfWork,
                                                        admin: Operator) -> None:
    summer = events.create_event(uow, admin, EventDraft(
        "Regatta", datetime(2031, 7, 12, 10, 0), "Europe/Paris", location="Harbour",
        description="Bring <b>boats</b>", capacity=120, guests_allowed=True))
    winter = events.create_event(uow, admin, EventDraft(
        "Dinner", datetime(2031, 1, 12, 19, 30), "America/New_York"))
    assert summer.starts_at is not None and summer.starts_at.hour == 8  # CEST = UTC+2
    assert summer.starts_at_local is not None and summer.starts_at_local.hour == 10
    assert winter.starts_at is not None and (winter.starts_at.hour, winter.starts_at.day) == (0, 13)
    assert summer.description == "Bring <b>boats</b>" and summer.capacity == 120
    with pytest.raises(ValidationFailed) as bad:
        events.create_event(uow, admin, EventDraft("", datetime(2031, 3, 30, 2, 30),
                                                   "Europe/Paris", capacity=0))
    assert set(bad.value.errors) == {"name", "starts_at", "capacity"}  # 02:30 does not exist
    with pytest.raises(ValidationFailed, match="time zone"):
        events.create_event(uow, admin, EventDraft("X", None, "Europe/Atlantis"))
    edited = events.update_event(uow, admin, summer.id, EventDraft(
        "Regatta", datetime(2031, 7, 12, 11, 0), "Europe/Paris", guests_allowed=False),
        expected_version=summer.version)
    assert edited.starts_at is not None and edited.starts_at.hour == 9
    with pytest.raises(Conflict):
        events.update_event(uow, admin, summer.id, EventDraft("Y", None, "UTC"),
                            expected_version=summer.version)
    with uow:
        row = uow.session.scalars(select(AuditLog).where(AuditLog.action == "event.update")).one()
        assert set(json.loads(row.after_json)) == {"starts_at", "location", "description",
                                                   "capacity", "guests_allowed"}


def test_compose_lists_open_future_events_that_take_guests(uow: UnitOfWork,
                                                           admin: Operator) -> None:
    soon = utcnow() + timedelta(days=3)
    events.create_event(uow, admin, EventDraft("Open", soon.replace(tzinfo=None),
                                               "UTC"))
    events.create_event(uow, admin, EventDraft("Undated", None, "UTC"))
    events.create_event(uow, admin, EventDraft("Members only", soon.replace(tzinfo=None), "UTC",
                                               guests_allowed=False))
    events.create_event(uow, admin, EventDraft(
        "Past", (utcnow() - timedelta(days=3)).replace(tzinfo=None), "UTC"))
    gone = events.create_event(uow, admin, EventDraft("Gone", None, "UTC"))
    events.archive_event(uow, admin, gone.id)
    listed = compose_events(uow, admin.organization_id)
    assert [e.name for e in listed] == ["Open", "Undated"]
    # The label uses the event's own zone: 23:30 UTC is the next day in Tokyo.
    late = events.create_event(uow, admin, EventDraft("Tokyo", datetime(2031, 5, 1, 8, 30),
                                                      "Asia/Tokyo"))
    info = next(e for e in compose_events(uow, admin.organization_id) if e.id == late.id)
    assert "01 May 2031" in info.label


def test_a_local_admin_manages_only_their_unit_s_events(
        uow: UnitOfWork, admin: Operator, make_unit: MakeUnit,
        make_operator: MakeOperator) -> None:
    north, south = make_unit("North"), make_unit("South")
    local = make_operator(Role.ADMIN_LOCAL, north)
    mine = events.create_event(uow, local, EventDraft("Ours", None, "UTC"))
    assert mine.unit_id == north  # defaults to their unit
    with pytest.raises(ValidationFailed, match="own unit"):
        events.create_event(uow, local, EventDraft("Theirs", None, "UTC", unit_id=south))
    theirs = events.create_event(uow, admin, EventDraft("Theirs", None, "UTC", unit_id=south))
    with pytest.raises(PermissionDenied):
        events.archive_event(uow, local, theirs.id)
    assert {e.name for e in events.list_events(uow, local)} == {"Ours"}


def test_event_guests_and_who_of_them_later_joined(
        uow: UnitOfWork, admin: Operator, make_operator: MakeOperator) -> None:
    gala = events.create_event(uow, admin, EventDraft(
        "Gala", (utcnow() + timedelta(days=10)).replace(tzinfo=None), "UTC"))
    host = make_operator(Role.USER, email="host@example.org")
    a = invite(uow, host, "amy@example.org", kind=InvitationKind.EVENT, event_id=gala.id)
    b = invite(uow, host, "ben@example.org", kind=InvitationKind.EVENT, event_id=gala.id)
    assert register_with_invitation(uow, a.token, form("Amy", "Able")).kind is InvitationKind.EVENT
    register_with_invitation(uow, b.token, form("Ben", "Baker"))
    # Amy later joins through someone else's membership invitation: the event's inviter is
    # credited too.
    other = make_operator(Role.USER)
    joining = invite(uow, other, "amy@example.org")
    assert register_with_invitation(uow, joining.token, form("Amy", "Able")).registered
    guests = {g.email: g for g in events.event_guests(uow, admin, gala.id)}
    assert set(guests) == {"amy@example.org", "ben@example.org"}
    assert guests["amy@example.org"].joined and guests["amy@example.org"].invited_by == "User Tester"
    assert guests["amy@example.org"].inviter_id == host.member_id
    assert not guests["ben@example.org"].joined and guests["ben@example.org"].joined_at is None
    view = events.get_event(uow, admin, gala.id)
    assert (view.guests, view.joined) == (2, 1)
    with uow:
        referrers = set(uow.session.scalars(select(Referral.referrer_id)))
    assert host.member_id in referrers


# -- capacity and "guests may be invited" are enforced by pre-flight ---------------------------
def _guest_rows(*emails: str) -> list:  # type: ignore[type-arg]
    from invite_desk.services.invitations.importing import InviteeInput

    return [InviteeInput(i + 1, e) for i, e in enumerate(emails)]


def test_preflight_refuses_guests_for_an_event_that_takes_none(
        uow: UnitOfWork, admin: Operator, make_operator: MakeOperator) -> None:
    from invite_desk.services.invitations.preflight import RowStatus, run_preflight

    make_operator(Role.USER, email="member@example.org")
    closed = events.create_event(uow, admin, EventDraft("AGM", None, "UTC",
                                                        guests_allowed=False))
    pre = run_preflight(uow, admin.organization_id,
                        _guest_rows("a@example.org", "not-an-address", "a@example.org"),
                        kind=InvitationKind.EVENT, event_id=closed.id)
    statuses = [r.status for r in pre.rows]
    assert statuses == [RowStatus.NO_GUESTS, RowStatus.INVALID, RowStatus.DUPLICATE]
    assert pre.ready == () or not pre.ready
    assert 'The event "AGM" does not allow guests' in pre.rows[0].reason
    # Another event, with guests allowed and no capacity, takes them.
    open_day = events.create_event(uow, admin, EventDraft("Open day", None, "UTC"))
    pre = run_preflight(uow, admin.organization_id, _guest_rows("a@example.org"),
                        kind=InvitationKind.EVENT, event_id=open_day.id)
    assert [r.status for r in pre.rows] == [RowStatus.READY]
    events.archive_event(uow, admin, open_day.id)  # an archived event takes no more guests
    pre = run_preflight(uow, admin.organization_id, _guest_rows("a@example.org"),
                        kind=InvitationKind.EVENT, event_id=open_day.id)
    assert [r.status for r in pre.rows] == [RowStatus.NO_GUESTS]
    assert "was archived" in pre.rows[0].reason


def test_preflight_refuses_guests_beyond_the_capacity(
        uow: UnitOfWork, admin: Operator) -> None:
    from invite_desk.services.invitations.preflight import (
        RowStatus,
        event_places_taken,
        run_preflight,
    )
    from invite_desk.services.invitations.queueing import queue_invitations

    fair = events.create_event(uow, admin, EventDraft("Fair", None, "UTC", capacity=4))
    other = events.create_event(uow, admin, EventDraft("Other", None, "UTC", capacity=1))
    # Two live guest invitations, one of them revoked later (frees its place), one registered
    # guest with an invitation (counted once), and a guest of another event (not counted).
    pre = run_preflight(uow, admin.organization_id,
                        _guest_rows("g1@example.org", "g2@example.org", "g3@example.org"),
                        kind=InvitationKind.EVENT, event_id=fair.id)
    assert all(r.status is RowStatus.READY for r in pre.rows)
    queue_invitations(uow, admin, pre.ready, kind=InvitationKind.EVENT, event_id=fair.id)
    pre_other = run_preflight(uow, admin.organization_id, _guest_rows("o@example.org"),
                              kind=InvitationKind.EVENT, event_id=other.id)
    queue_invitations(uow, admin, pre_other.ready, kind=InvitationKind.EVENT,
                      event_id=other.id)
    with uow:
        invitations = {i.email_normalized: i for i in uow.session.scalars(
            select(Invitation).where(Invitation.event_id == fair.id))}
        invitations["g2@example.org"].status = InvitationStatus.REVOKED.value
        uow.session.add(EventGuest(organization_id=admin.organization_id, event_id=fair.id,
                                   invitation_id=invitations["g3@example.org"].id,
                                   email="g3@example.org", email_normalized="g3@example.org"))
        uow.commit()
    with uow:
        assert event_places_taken(uow.session, admin.organization_id, fair.id,
                                  datetime.now().astimezone()) == 2  # g1 invited, g3 registered
    pre = run_preflight(uow, admin.organization_id,
                        _guest_rows("bad", "n1@example.org", "g1@example.org", "n2@example.org",
                                    "n3@example.org"),
                        kind=InvitationKind.EVENT, event_id=fair.id)
    statuses = [r.status for r in pre.rows]
    assert statuses == [RowStatus.INVALID, RowStatus.READY, RowStatus.QUEUED, RowStatus.READY,
                        RowStatus.EVENT_FULL]
    assert pre.rows[4].reason == ('The event "Fair" is full: 4 places, 2 taken by guests '
                                  "invited or registered, and the first 2 ready rows of this "
                                  "list take the rest.")
    queue_invitations(uow, admin, pre.ready, kind=InvitationKind.EVENT, event_id=fair.id)
    pre = run_preflight(uow, admin.organization_id, _guest_rows("n3@example.org"),
                        kind=InvitationKind.EVENT, event_id=fair.id)
    assert pre.rows[0].status is RowStatus.EVENT_FULL
    assert pre.rows[0].reason.endswith("4 taken by guests invited or registered.")
    # Membership invitations are not limited by any event.
    pre = run_preflight(uow, admin.organization_id, _guest_rows("n3@example.org"))
    assert pre.rows[0].status is RowStatus.READY
