"""A small referral dataset laid out by hand; the expected figures in the tests are worked out
from this table (see test_referral_program.py's docstring).

NOW = 2026-06-15 12:00 UTC. Units North (Rita, Sam) and South (Tom, Uma). Referrers joined
2025-01-01 (imported). Referees joined when their referral completed.

referrer  referee  completed (UTC)         referee status
Rita      A1       2026-03-10 09:00        active
Rita      A2       2026-04-10 09:00        active
Rita      A3       2026-04-20 09:00        deactivated (lapsed)
Rita      A4       pending, referred 06-10 applicant (adhesion pending)
Sam       B1       2026-02-01 09:00        active
Sam       B2       2026-05-01 09:00        active, address at a disposable domain
Sam       B3       2026-05-02 09:00        deactivated
Tom       C1       2026-01-05 09:00        active
Tom       C2..C6   2026-01-06..10 09:00    deactivated
Uma       D1       2026-06-01 09:00        active              (Uma opted out)
Uma       D2       2026-03-31 22:30        active  (= 1 April 00:30 in Paris)
Public member P1 joined 2026-05-20 (portal, public); event guest E1 joined 2026-04-15.

Invitations: Rita i1 sent 04-01 10:00 accepted 04-02 10:00; i2 sent 04-05 00:00 accepted
04-08 00:00; i3 sent 05-01 still open (expires 07-01); i4 sent 05-03 expired. Sam j1 sent
04-10 08:00 accepted 04-10 10:00.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from invite_desk.services import auth
from invite_desk.services.models import (
    Event,
    EventGuest,
    Invitation,
    InvitationStatus,
    LeaderboardOptOut,
    Member,
    MemberOrigin,
    MemberStatus,
    Referral,
    ReferralStatus,
    Unit,
)
from invite_desk.services.operator import Operator, operator_for
from invite_desk.services.roles import Role
from invite_desk.services.uow import UnitOfWork

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
LONG_AGO = datetime(2025, 1, 1, 9, 0, tzinfo=UTC)


def at(month: int, day: int, hour: int = 9, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


@dataclass
class World:
    uow: UnitOfWork
    admin: Operator
    north: uuid.UUID
    south: uuid.UUID
    ids: dict[str, uuid.UUID] = field(default_factory=dict)
    referrals: dict[str, uuid.UUID] = field(default_factory=dict)
    operators: dict[str, Operator] = field(default_factory=dict)

    def operator(self, name: str, role: Role | None = None) -> Operator:
        with self.uow:
            member = self.uow.session.get(Member, self.ids[name])
            assert member is not None
            if role is not None:
                member.role = role.name
                self.uow.commit()
            return operator_for(self.uow.session, member)

    def set_status(self, name: str, status: MemberStatus) -> None:
        with self.uow:
            member = self.uow.session.get(Member, self.ids[name])
            assert member is not None
            member.status = status.value
            self.uow.commit()


def _member(world: World, name: str, *, unit: uuid.UUID | None, joined: datetime,
            status: MemberStatus = MemberStatus.ACTIVE, email: str | None = None,
            role: Role = Role.USER) -> uuid.UUID:
    address = email or f"{name.lower()}@example.org"
    member = Member(
        organization_id=world.admin.organization_id, email=address,
        email_normalized=auth.normalize_email(address), first_name=name, last_name="Test",
        role=role.name, unit_id=unit, status=status.value, joined_at=joined,
    )
    world.uow.session.add(member)
    world.uow.session.flush()
    world.ids[name] = member.id
    return member.id


def _referral(world: World, key: str, referrer: str, referee: str, *, completed: datetime | None,
              referred: datetime | None = None) -> None:
    row = Referral(
        organization_id=world.admin.organization_id, referrer_id=world.ids[referrer],
        referee_id=world.ids[referee],
        status=(ReferralStatus.COMPLETED if completed else ReferralStatus.PENDING).value,
        referred_at=referred or completed, completed_at=completed,
    )
    world.uow.session.add(row)
    world.uow.session.flush()
    world.referrals[key] = row.id


def _invitation(world: World, inviter: str, email: str, *, sent: datetime,
                status: InvitationStatus, accepted: datetime | None = None,
                expires: datetime | None = None, unit: uuid.UUID | None = None) -> None:
    org = world.admin.organization_id
    world.uow.session.add(Invitation(
        organization_id=org, email=email, email_normalized=email.lower(),
        inviter_id=world.ids[inviter], sender_id=world.ids[inviter], unit_id=unit,
        status=status.value, sent_at=sent, queued_at=sent, created_at=sent, accepted_at=accepted,
        expires_at=expires or sent + timedelta(days=14),
    ))


def build(uow: UnitOfWork, admin: Operator) -> World:
    with uow:
        session = uow.session
        org = admin.organization_id
        north = Unit(organization_id=org, name="North")
        south = Unit(organization_id=org, name="South")
        session.add_all([north, south])
        session.flush()
        world = World(uow, admin, north.id, south.id)
        world.ids["Ada"] = admin.member_id
        for name, unit in (("Rita", north.id), ("Sam", north.id), ("Tom", south.id),
                           ("Uma", south.id)):
            _member(world, name, unit=unit, joined=LONG_AGO)
        lapsed = MemberStatus.DEACTIVATED
        referees = [
            ("r1", "Rita", "A1", at(3, 10), MemberStatus.ACTIVE, None, north.id),
            ("r2", "Rita", "A2", at(4, 10), MemberStatus.ACTIVE, None, north.id),
            ("r3", "Rita", "A3", at(4, 20), lapsed, None, north.id),
            ("s1", "Sam", "B1", at(2, 1), MemberStatus.ACTIVE, None, north.id),
            ("s2", "Sam", "B2", at(5, 1), MemberStatus.ACTIVE, "b2@mailinator.com", north.id),
            ("s3", "Sam", "B3", at(5, 2), lapsed, None, north.id),
            ("t1", "Tom", "C1", at(1, 5), MemberStatus.ACTIVE, None, south.id),
            *[(f"t{i}", "Tom", f"C{i}", at(1, 4 + i), lapsed, None, south.id)
              for i in range(2, 7)],
            ("u1", "Uma", "D1", at(6, 1), MemberStatus.ACTIVE, None, south.id),
            ("u2", "Uma", "D2", at(3, 31, 22, 30), MemberStatus.ACTIVE, None, south.id),
        ]
        for key, referrer, referee, completed, status, email, unit in referees:
            _member(world, referee, unit=unit, joined=completed, status=status, email=email)
            _referral(world, key, referrer, referee, completed=completed)
        _member(world, "A4", unit=north.id, joined=at(6, 10), status=MemberStatus.APPLICANT)
        _referral(world, "p1", "Rita", "A4", completed=None, referred=at(6, 10))
        # A public registration (the portal wrote its origin) and an event guest who joined.
        p1 = _member(world, "P1", unit=None, joined=at(5, 20))
        session.add(MemberOrigin(member_id=p1, organization_id=org, channel="public",
                                 joined_at=at(5, 20), email_key="p1@example.org",
                                 disposable=False))
        e1 = _member(world, "E1", unit=None, joined=at(4, 15))
        event = Event(organization_id=org, name="Open day")
        session.add(event)
        session.flush()
        session.add(EventGuest(organization_id=org, event_id=event.id, email="e1@example.org",
                               email_normalized="e1@example.org", member_id=e1,
                               registered_at=at(4, 1)))
        session.add(LeaderboardOptOut(member_id=world.ids["Uma"], organization_id=org,
                                      at=LONG_AGO))
        S = InvitationStatus
        _invitation(world, "Rita", "i1@example.net", sent=at(4, 1, 10), status=S.ACCEPTED,
                    accepted=at(4, 2, 10), unit=north.id)
        _invitation(world, "Rita", "i2@example.net", sent=at(4, 5, 0), status=S.ACCEPTED,
                    accepted=at(4, 8, 0), unit=north.id)
        _invitation(world, "Rita", "i3@example.net", sent=at(5, 1), status=S.SENT,
                    expires=at(7, 1), unit=north.id)
        _invitation(world, "Rita", "i4@example.net", sent=at(5, 3), status=S.EXPIRED,
                    unit=north.id)
        _invitation(world, "Sam", "j1@example.net", sent=at(4, 10, 8), status=S.ACCEPTED,
                    accepted=at(4, 10, 10), unit=north.id)
        uow.commit()
    # the admin joined "now" (first-run setup): keep them out of the period figures
    with uow:
        member = uow.session.get(Member, admin.member_id)
        assert member is not None
        member.joined_at = LONG_AGO
        uow.commit()
    return world
