"""A demo organization to explore the app with: created on the first run, topped up later.

`invite-desk demo` calls `create_or_top_up`. The first run creates the Northbridge Cycling
Federation (chapters, events, one signing-in operator per role, a few hundred members and about
a thousand invitations in every state, referrals over the last twelve months); later runs only
add members (with their invitations and referrals) up to the requested count.
"""

from __future__ import annotations

import json
import math
import random
import struct
import unicodedata
import uuid
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from invite_desk.services import audit, settings
from invite_desk.services.auth import hash_password, normalize_email
from invite_desk.services.errors import DomainError, ValidationFailed
from invite_desk.services.invitations.sending import UNCERTAIN_REASON
from invite_desk.services.invitations.tokens import new_token, registration_link
from invite_desk.services.models import (
    AdhesionStatus,
    Batch,
    Event,
    Invitation,
    InvitationKind,
    InvitationStatus,
    Member,
    MemberStatus,
    Organization,
    Referral,
    ReferralStatus,
    Setting,
    Suppression,
    Unit,
    new_id,
    utcnow,
)
from invite_desk.services.organization import validate as validate_organization
from invite_desk.services.roles import Role
from invite_desk.services.settings_schema import SPECS_BY_FIELD
from invite_desk.services.uow import UnitOfWork

DEMO_ORGANIZATION_NAME = "Northbridge Cycling Federation"
DEMO_DOMAIN = "northbridge.example"
DEMO_PASSWORD = "northbridge-demo"
DEMO_ADMIN_EMAIL = f"admin@{DEMO_DOMAIN}"
DEMO_ACCENT = "#0E7C66"
DEMO_REGISTRATION_URL = "http://127.0.0.1:8080"
DEMO_DESCRIPTION = (
    "The Northbridge Cycling Federation brings together five local chapters of road, gravel "
    "and commuter cyclists. Members ride together every weekend, run beginner clinics and "
    "organise the Northbridge Century Ride each year."
)
MAX_MEMBERS = 100_000

# One operator per role who can sign in with DEMO_PASSWORD: (role, mailbox, first, last, unit index).
DEMO_OPERATORS: tuple[tuple[Role, str, str, str, int | None], ...] = (
    (Role.ADMIN_TENANT, "admin", "Astrid", "Lindqvist", None),
    (Role.HR_TENANT, "hr", "Hamid", "Rahimi", None),
    (Role.ADMIN_LOCAL, "local-admin", "Łukasz", "Nowak", 0),
    (Role.HR_LOCAL, "local-hr", "Zoë", "Fontaine", 0),
    (Role.USER, "member", "Søren", "Kjær", 0),
)

UNIT_NAMES = (
    "Northbridge Central",
    "Riverside Chapter",
    "Harbour Hills Chapter",
    "Eastgate Velo",
    "Millbrook Riders",
)
UNIT_WEIGHTS = (0.30, 0.22, 0.18, 0.16, 0.14)

# (name, days from the first run, location, unit index)
EVENTS: tuple[tuple[str, int, str, int | None], ...] = (
    ("Northbridge Century Ride", 38, "Northbridge Velodrome", None),
    ("Gravel Weekend at Millbrook", -80, "Millbrook Forest Trails", 4),
    ("Harbour Hills Open Day", -200, "Harbour Hills Clubhouse", 2),
)

FIRST_NAMES = (
    "Zoë", "Łukasz", "Søren", "José", "François", "Agnieszka", "Björn", "Chloé", "Dagný",
    "Émile", "Inès", "Jürgen", "Kateřina", "Oğuz", "Paweł", "Renée", "Siobhán", "Tomás",
    "Aoife", "Bongani", "Chen", "Darius", "Esra", "Farah", "Giulia", "Hiroshi", "Ingrid",
    "Jamal", "Kwame", "Leilani", "Mei", "Nadia", "Olumide", "Priya", "Quentin", "Rafael",
    "Saoirse", "Tariq", "Valentina", "William", "Xavier", "Yara", "Zainab", "Anna", "Ben",
    "Clara", "David", "Emma", "Finn", "Grace", "Hannah", "Isaac", "Julia", "Karl", "Laura",
    "Marco", "Nina", "Oscar", "Paula", "Rosa", "Samuel", "Tara", "Ulla", "Victor", "Wiebke",
    "Yusuf", "Amara", "Lars", "Maëlle", "Noor", "Ömer", "Álvaro", "Signe", "Mateo", "Eilidh",
)
LAST_NAMES = (
    "Müller", "Nowak", "Ødegaard", "García", "Núñez", "Kowalczyk", "Dubois", "Lefèvre",
    "Andersen", "Johansson", "Åberg", "O'Brien", "MacLeod", "Rossi", "Bianchi", "Schäfer",
    "Öztürk", "Yılmaz", "Kim", "Nguyen", "Tanaka", "Okafor", "Mensah", "Silva", "Gonçalves",
    "Novák", "Dvořák", "Horváth", "Szabó", "Papadopoulos", "Ivanova", "Petrović", "Hughes",
    "Patel", "Shah", "Cohen", "Haddad", "Fernández", "Brennan", "Walsh", "Murphy", "Smith",
    "Jones", "Taylor", "Brown", "Wilson", "Evans", "Thomas", "Roberts", "Clarke", "Lindgren",
    "Van der Berg", "De Luca", "Kaur", "Bakker", "Jansen", "Costa", "Moreau", "Fischer",
)
INVITEE_DOMAINS = (
    "example.com", "example.net", "example.org", "mail.example", "post.example", "velo.example",
)
PERSONAL_MESSAGES = (
    "",
    "",
    "",
    "Come ride with us on Saturday mornings — the coffee stop is the best part!",
    "We'd love to have you in the club. The Sunday social ride is very relaxed.",
    "Bring your gravel bike: we're exploring the forest trails this month.",
    "Ça roule ? The café ride leaves from the bridge at 9:00 ☕",
    "Tom & Jerry's <favourite> loop is on the calendar again — join us!",
    "You mentioned wanting to try group rides; this is the friendliest club I know.",
)
STAFF_BATCH_LABELS = (
    "{unit} — {month} sign-ups",
    "{unit} open day follow-up",
    "{unit} beginner clinic ({month})",
    "Newsletter subscribers, {month} (CSV)",
    "Bike shop leads, {month}",
)
# SMTP replies of permanent failures, as the sender would keep them.
FAILURE_REPLIES = (
    "550 5.1.1 <{email}>: Recipient address rejected: User unknown in virtual mailbox table",
    "550 5.1.1 <{email}>: Recipient address rejected",
    "552 5.2.2 <{email}>: Mailbox full",
    "554 5.7.1 <{email}>: Relay access denied",
)
LIVE_BATCH_LABEL = "Riverside Chapter — spring open day sign-ups"
RETRY_REPLY = "451 4.7.1 Greylisted, please try again in 300 seconds"

# Cycling is seasonal: more people join in spring and summer (weight per calendar month).
SEASON = {1: 0.7, 2: 0.85, 3: 1.1, 4: 1.3, 5: 1.45, 6: 1.5, 7: 1.4, 8: 1.3, 9: 1.2, 10: 1.0,
          11: 0.8, 12: 0.65}
MONTHS = 12
MONTH_DAYS = 30
REFERRED_SHARE = 0.45
APPLICANT_SHARE = 0.04
DEACTIVATED_SHARE = 0.02
INVITATIONS_PER_MEMBER = 3.2

_hasher = PasswordHasher()


@dataclass(frozen=True)
class DemoResult:
    """What the demo run left in the database, and how to sign in."""

    organization_id: uuid.UUID
    admin_email: str
    password: str
    operators: dict[str, str]  # role name -> email, highest role first
    counts: dict[str, int]  # totals in the database after the run
    created: bool = False  # True when this run created the organization
    added: dict[str, int] = field(default_factory=dict)  # rows this run added
    sample_link: str | None = None  # a live invitation link created by this run

    def summary(self, database_label: str) -> str:
        c = self.counts
        verb = "created" if self.created else "topped up"
        added = self.added.get("members", 0)
        lines = [
            f'Demo organization "{DEMO_ORGANIZATION_NAME}" {verb} in {database_label} '
            f"({added} member{'s' if added != 1 else ''} added).",
            "",
        ]
        for role_name, email in self.operators.items():
            role = Role[role_name]
            lines.append(
                f"Sign in as {email} with password {self.password}  ({role.label}, {role.name})"
            )
        statuses = ", ".join(
            f"{status.value} {c.get(f'invitations_{status.value}', 0)}" for status in InvitationStatus
        )
        lines += [
            "",
            f"The database holds {c.get('units', 0)} units, {c.get('events', 0)} events, "
            f"{c.get('members', 0)} members ({c.get('operators', 0)} can sign in, "
            f"{c.get('members_applicant', 0)} applicants), {c.get('invitations', 0)} invitations "
            f"in {c.get('batches', 0)} batches and {c.get('referrals', 0)} referrals "
            f"({c.get('referrals_completed', 0)} completed, {c.get('referrals_pending', 0)} pending).",
            f"Invitations by status: {statuses}.",
        ]
        if self.sample_link:
            lines.append(
                f"Open an invitation as the invitee would (start `invite-desk portal` first): "
                f"{self.sample_link}"
            )
        return "\n".join(lines)


# --------------------------------------------------------------------------- entry point


def create_or_top_up(
    uow: UnitOfWork, *, members: int = 300, now: datetime | None = None, seed: int = 7
) -> DemoResult:
    """Create the demo organization, or add members to it until it has `members` of them.

    Idempotent: units, events and operators are created once; a second run with the same
    count adds nothing. The demo operators' password is reset to DEMO_PASSWORD (and they are
    reactivated) so that the printed sign-in lines always work. Refuses (DomainError) when the
    database holds another organization.
    """
    if not 0 <= members <= MAX_MEMBERS:
        raise ValidationFailed({"members": f"must be between 0 and {MAX_MEMBERS:,}"})
    now = now if now is not None else utcnow()
    if now.tzinfo is None:
        raise ValueError("now must be a timezone-aware datetime")
    with uow:
        session = uow.session
        org = _find_demo_organization(session)
        created = org is None
        if org is None:
            org = _create_organization(session, now)
        existing = _member_count(session, org.id)
        # Seeded by the member count too, so that each top-up draws new people.
        world = _World.load(session, org, now, random.Random(f"{seed}:{existing}"))
        operator_ids = world.ensure_operators(session)
        if created:
            world.plan_staff()
        planned = _member_count(session, org.id) + len(world.new_members)
        world.plan_growth(max(0, members - planned))
        if created:
            world.plan_showcase(operator_ids)
        added = world.insert(session)
        _nothing_left_to_send(session, org.id, now)
        admin_id = operator_ids[Role.ADMIN_TENANT]
        _initialize_settings(session, org.id, admin_id, require_adhesion=created)
        if created or any(added.values()):  # a run that changes nothing leaves no trace
            audit.record(
                session, organization_id=org.id, actor_id=admin_id,
                action="demo.create" if created else "demo.top_up", entity_type="organization",
                entity_id=org.id, after=added,
            )
        session.flush()
        counts = _counts(session, org.id)
        uow.commit()
        return DemoResult(
            organization_id=org.id,
            admin_email=DEMO_ADMIN_EMAIL,
            password=DEMO_PASSWORD,
            operators={role.name: f"{mailbox}@{DEMO_DOMAIN}"
                       for role, mailbox, *_ in sorted(DEMO_OPERATORS, key=lambda o: -o[0])},
            counts=counts,
            created=created,
            added=added,
            sample_link=(registration_link(org.registration_base_url, world.sample_token)
                         if world.sample_token else None),
        )


def _nothing_left_to_send(session: Session, organization_id: uuid.UUID, now: datetime) -> None:
    """Demo databases made before issue 8 left the live batch queued (some waiting for a
    greylisting retry) and one row in `sending`: the first real send mailed them and then
    waited minutes. Settle them the way the current demo plans them (cancelled batch)."""
    batch_ids = list(session.scalars(select(Batch.id).where(
        Batch.organization_id == organization_id, Batch.label == LIVE_BATCH_LABEL)))
    if not batch_ids:
        return
    rows = session.scalars(select(Invitation).where(
        Invitation.batch_id.in_(batch_ids),
        Invitation.status.in_([InvitationStatus.QUEUED.value, InvitationStatus.SENDING.value]),
        Invitation.sending_owner.is_(None),
    ))
    for row in rows:
        if row.status == InvitationStatus.SENDING.value:
            row.status, row.last_error = InvitationStatus.UNCERTAIN.value, UNCERTAIN_REASON
        else:  # what cancelling the batch does
            row.status, row.token_hash = InvitationStatus.DRAFT.value, None
            row.next_attempt_at = None
        row.updated_at = now
    for batch in session.scalars(select(Batch).where(Batch.id.in_(batch_ids),
                                                     Batch.status == "open")):
        batch.status, batch.updated_at = "cancelled", now


def _find_demo_organization(session: Session) -> Organization | None:
    demo = session.scalar(
        select(Organization)
        .join(Member, Member.organization_id == Organization.id)
        .where(Member.email_normalized == DEMO_ADMIN_EMAIL)
        .limit(1)
    )
    if demo is not None:
        return demo
    other = session.scalar(select(Organization).limit(1))
    if other is not None:
        raise DomainError(
            f'This database already holds the organization "{other.name}", so no demo data '
            "was added to it. Run the demo on an empty database instead, for example "
            "`invite-desk demo --db sqlite:///demo.sqlite3`."
        )
    return None


def _create_organization(session: Session, now: datetime) -> Organization:
    fields = validate_organization({
        "name": DEMO_ORGANIZATION_NAME,
        "description": DEMO_DESCRIPTION,
        "accent_color": DEMO_ACCENT,
        "registration_base_url": DEMO_REGISTRATION_URL,
        "logo": demo_logo_png(),
        "logo_mime": "image/png",
    })
    founded = now - timedelta(days=6 * 365)
    org = Organization(**fields, created_at=founded, updated_at=founded)
    session.add(org)
    session.flush()
    for name in UNIT_NAMES:
        session.add(Unit(organization_id=org.id, name=name, created_at=founded, updated_at=founded))
    session.flush()
    units = {u.name: u.id for u in session.scalars(select(Unit).where(Unit.organization_id == org.id))}
    for name, days, location, unit_index in EVENTS:
        session.add(Event(
            organization_id=org.id,
            unit_id=units[UNIT_NAMES[unit_index]] if unit_index is not None else None,
            name=name,
            starts_at=(now + timedelta(days=days)).replace(hour=8, minute=0, second=0, microsecond=0),
            location=location,
            created_at=now - timedelta(days=240),
            updated_at=now - timedelta(days=240),
        ))
    session.flush()
    return org


def _member_count(session: Session, organization_id: uuid.UUID) -> int:
    stmt = select(func.count()).select_from(Member).where(Member.organization_id == organization_id)
    return session.scalar(stmt) or 0


def _initialize_settings(session: Session, organization_id: uuid.UUID, admin_id: uuid.UUID,
                         *, require_adhesion: bool) -> None:
    """Store missing defaults; on the first run also require adhesion (the demo has
    applicants awaiting approval)."""
    settings.initialize(session, organization_id)
    session.flush()
    if not require_adhesion:
        return
    spec = SPECS_BY_FIELD["adhesion_required"]
    row = session.scalar(
        select(Setting).where(Setting.organization_id == organization_id, Setting.key == spec.key)
    )
    assert row is not None
    if json.loads(row.value_json) is not True:
        before = json.loads(row.value_json)
        row.value_json = json.dumps(True)
        audit.record(
            session, organization_id=organization_id, actor_id=admin_id,
            action="settings.update", entity_type="settings",
            before={spec.key: before}, after={spec.key: True},
        )


def _counts(session: Session, organization_id: uuid.UUID) -> dict[str, int]:
    def count(model: Any, *where: Any) -> int:
        stmt = select(func.count()).select_from(model).where(
            model.organization_id == organization_id, *where
        )
        return session.scalar(stmt) or 0

    counts = {
        "units": count(Unit),
        "events": count(Event),
        "members": count(Member),
        "operators": count(Member, Member.password_hash.is_not(None)),
        "members_applicant": count(Member, Member.status == MemberStatus.APPLICANT.value),
        "members_deactivated": count(Member, Member.status == MemberStatus.DEACTIVATED.value),
        "batches": count(Batch),
        "invitations": count(Invitation),
        "referrals": count(Referral),
    }
    for role in Role:
        counts[f"members_{role.name}"] = 0
    for role_name, n in session.execute(
        select(Member.role, func.count()).where(Member.organization_id == organization_id)
        .group_by(Member.role)
    ):
        counts[f"members_{role_name}"] = n
    for status in InvitationStatus:
        counts[f"invitations_{status.value}"] = 0
    for status_value, n in session.execute(
        select(Invitation.status, func.count()).where(Invitation.organization_id == organization_id)
        .group_by(Invitation.status)
    ):
        counts[f"invitations_{status_value}"] = n
    for kind in InvitationKind:
        counts[f"invitations_kind_{kind.value}"] = count(Invitation, Invitation.kind == kind.value)
    for rstatus in ReferralStatus:
        counts[f"referrals_{rstatus.value}"] = count(Referral, Referral.status == rstatus.value)
    return counts


# --------------------------------------------------------------------------- the generator


@dataclass
class _Person:
    """A member the generator can pick as an inviter (already stored or about to be)."""

    id: uuid.UUID
    role: Role
    unit_id: uuid.UUID | None
    joined_at: datetime
    active: bool
    weight: float  # how keen an inviter this person is


@dataclass
class _EventInfo:
    id: uuid.UUID
    name: str
    starts_at: datetime
    unit_id: uuid.UUID | None


@dataclass
class _BatchPlan:
    at: datetime
    bucket: int  # months ago, 0 = the last 30 days
    size: int
    staff: bool


class _World:
    """Plans members, batches, invitations and referrals in memory, then bulk-inserts them."""

    def __init__(self, org: Organization, now: datetime, rng: random.Random) -> None:
        self.org = org
        self.now = now
        self.rng = rng
        # A separate stream, so adding rejections leaves every other draw as it was.
        self.rejection_rng = random.Random(7919)
        self.units: list[tuple[uuid.UUID, str]] = []
        self.events: list[_EventInfo] = []
        self.people: list[_Person] = []
        self.taken_emails: set[str] = set()  # member addresses (normalized)
        self.invited_emails: set[str] = set()  # invitee addresses generated this run
        self.expiry = timedelta(days=14)
        self.new_members: list[dict[str, Any]] = []
        self.batches: list[dict[str, Any]] = []
        self.invitations: list[dict[str, Any]] = []
        self.referrals: list[dict[str, Any]] = []
        self.suppressions: list[dict[str, Any]] = []
        self.sample_token: str | None = None
        self._fresh_hash: str | None = None
        self.operators_created = 0
        self.operators_reset = 0  # demo operators whose password or status was put back
        self._verified: dict[str, bool] = {}

    # -- loading ------------------------------------------------------------------------

    @classmethod
    def load(cls, session: Session, org: Organization, now: datetime,
             rng: random.Random) -> _World:
        world = cls(org, now, rng)
        world.units = [
            (u.id, u.name)
            for u in session.scalars(
                select(Unit).where(Unit.organization_id == org.id, Unit.archived.is_(False))
                .order_by(Unit.created_at, Unit.name)
            )
        ]
        order = {name: i for i, name in enumerate(UNIT_NAMES)}
        world.units.sort(key=lambda u: order.get(u[1], len(order)))
        world.events = [
            _EventInfo(e.id, e.name, e.starts_at or now, e.unit_id)
            for e in session.scalars(
                select(Event).where(Event.organization_id == org.id)
                .order_by(Event.starts_at, Event.name)
            )
        ]
        rows = session.execute(
            select(Member.id, Member.role, Member.unit_id, Member.joined_at, Member.status,
                   Member.email_normalized)
            .where(Member.organization_id == org.id)
            .order_by(Member.joined_at, Member.email_normalized)  # same draws on every backend
        )
        for member_id, role, unit_id, joined_at, status, email in rows:
            world.taken_emails.add(email)
            world.people.append(_Person(
                member_id, Role.parse(role), unit_id, joined_at,
                status == MemberStatus.ACTIVE.value, world._keenness(Role.parse(role)),
            ))
        world.expiry = timedelta(days=settings.load(session, org.id).invitation_expiry_days)
        return world

    def _keenness(self, role: Role) -> float:
        keen = min(self.rng.paretovariate(1.4), 25.0)
        return keen * (2.5 if role >= Role.HR_LOCAL else 1.0)

    # -- people -------------------------------------------------------------------------

    def _demo_hash(self, current: str | None) -> str:
        """An argon2 hash of DEMO_PASSWORD: `current` when it already matches, else a new one.

        Argon2 is deliberately slow (about 0.2 s a hash), so one hash is shared by the demo
        operators of a run and each distinct stored hash is verified once. Sharing a salt
        costs nothing here: the password is printed for everyone to read.
        """
        if current is not None:
            matches = self._verified.get(current)
            if matches is None:
                matches = self._verified[current] = _password_matches(current, DEMO_PASSWORD)
            if matches:
                return current
        if self._fresh_hash is None:
            self._fresh_hash = hash_password(DEMO_PASSWORD)
            self._verified[self._fresh_hash] = True
        return self._fresh_hash

    def ensure_operators(self, session: Session) -> dict[Role, uuid.UUID]:
        """The five demo operators: created once, their password and status kept usable."""
        ids: dict[Role, uuid.UUID] = {}
        for role, mailbox, first, last, unit_index in DEMO_OPERATORS:
            email = f"{mailbox}@{DEMO_DOMAIN}"
            member = session.scalar(
                select(Member).where(Member.organization_id == self.org.id,
                                     Member.email_normalized == email)
            )
            if member is None:
                joined = self.now - timedelta(days=self.rng.uniform(900, 2000))
                member = Member(
                    organization_id=self.org.id, email=email, email_normalized=email,
                    first_name=first, last_name=last, role=role.name,
                    unit_id=self._unit_at(unit_index), status=MemberStatus.ACTIVE.value,
                    adhesion_status=AdhesionStatus.APPROVED.value,
                    password_hash=self._demo_hash(None), joined_at=joined,
                    created_at=joined, updated_at=joined,
                )
                session.add(member)
                session.flush()
                self.operators_created += 1
                self.taken_emails.add(email)
                self.people.append(_Person(member.id, role, member.unit_id, joined, True,
                                           self._keenness(role) * 2))
            else:
                password_hash = self._demo_hash(member.password_hash)
                if (member.password_hash, member.status) != (password_hash,
                                                             MemberStatus.ACTIVE.value):
                    member.password_hash = password_hash
                    member.status = MemberStatus.ACTIVE.value
                    self.operators_reset += 1
                session.flush()
            ids[role] = member.id
        return ids

    def _unit_at(self, index: int | None) -> uuid.UUID | None:
        if index is None or not self.units:
            return None
        return self.units[index % len(self.units)][0]

    def _random_unit(self) -> uuid.UUID | None:
        if not self.units:
            return None
        weights = [UNIT_WEIGHTS[i] if i < len(UNIT_WEIGHTS) else 0.1 for i in range(len(self.units))]
        return self.rng.choices(self.units, weights)[0][0]

    def _name(self) -> tuple[str, str]:
        return self.rng.choice(FIRST_NAMES), self.rng.choice(LAST_NAMES)

    def _email(self, first: str, last: str) -> str:
        f, l_ = _ascii_slug(first), _ascii_slug(last)
        domain = self.rng.choice(INVITEE_DOMAINS)
        patterns = (f"{f}.{l_}", f"{f}{l_}", f"{f[:1]}.{l_}", f"{f}_{l_}", f"{l_}.{f}")
        local = self.rng.choice(patterns)
        candidate = f"{local}@{domain}"
        while candidate in self.taken_emails or candidate in self.invited_emails:
            candidate = f"{local}{self.rng.randint(2, 999)}@{domain}"
        self.invited_emails.add(candidate)
        return candidate

    def _add_member(self, *, first: str, last: str, email: str, role: Role,
                    unit_id: uuid.UUID | None, joined: datetime, status: MemberStatus,
                    adhesion: AdhesionStatus | None, referred_by: uuid.UUID | None,
                    keen: float | None = None) -> uuid.UUID:
        member_id = new_id()
        self.taken_emails.add(email)
        self.new_members.append({
            "id": member_id, "organization_id": self.org.id, "email": email,
            "email_normalized": normalize_email(email), "first_name": first, "last_name": last,
            "role": role.name, "unit_id": unit_id, "status": status.value,
            "adhesion_status": adhesion.value if adhesion else None, "adhesion_reason": "",
            "referred_by_id": referred_by, "password_hash": None, "joined_at": joined,
            "last_sign_in_at": None, "version": 1, "created_at": joined, "updated_at": joined,
        })
        self.people.append(_Person(member_id, role, unit_id, joined,
                                   status is MemberStatus.ACTIVE,
                                   keen if keen is not None else self._keenness(role)))
        return member_id

    def plan_staff(self) -> None:
        """Local admins and HR for every chapter, plus a second organization HR (no passwords)."""
        for index, (unit_id, _name) in enumerate(self.units):
            roles = [Role.ADMIN_LOCAL, Role.HR_LOCAL] if index else [Role.HR_LOCAL]
            for role in roles:
                self._plan_founder(role, unit_id)
        self._plan_founder(Role.HR_TENANT, None)

    def _plan_founder(self, role: Role, unit_id: uuid.UUID | None,
                      status: MemberStatus = MemberStatus.ACTIVE) -> None:
        first, last = self._name()
        joined = self.now - timedelta(days=self.rng.uniform(380, 6 * 365))
        self._add_member(first=first, last=last, email=self._email(first, last), role=role,
                         unit_id=unit_id, joined=joined, status=status,
                         adhesion=None, referred_by=None)

    # -- growth -------------------------------------------------------------------------

    def _bucket_weights(self) -> list[float]:
        weights = []
        for bucket in range(MONTHS):
            middle = self.now - timedelta(days=bucket * MONTH_DAYS + MONTH_DAYS / 2)
            growth = 1.0 + 0.09 * (MONTHS - 1 - bucket)  # the club grows: recent months are busier
            weights.append(growth * SEASON[middle.month])
        return weights

    def plan_growth(self, count: int) -> None:
        """`count` new regular members: some joined through referrals, the rest long ago."""
        if count <= 0:
            return
        applicants = max(1, round(count * APPLICANT_SHARE)) if count >= 10 else 0
        referred = round(count * REFERRED_SHARE)
        founders = count - referred - applicants
        for _ in range(founders):
            dead = self.rng.random() < DEACTIVATED_SHARE
            self._plan_founder(Role.USER, self._random_unit(),
                               MemberStatus.DEACTIVATED if dead else MemberStatus.ACTIVE)
        weights = self._bucket_weights()
        quotas = _allocate(referred, weights, minimum=1 if referred >= MONTHS else 0)
        pending = [0] * MONTHS
        pending[0] = math.ceil(applicants * 0.6)
        pending[1] = applicants - pending[0]
        slots_total = max(round(count * INVITATIONS_PER_MEMBER), 1)
        slots = _allocate(slots_total, weights, minimum=1)
        plans: list[_BatchPlan] = []
        for bucket in range(MONTHS):
            needed = quotas[bucket] + pending[bucket]
            slots[bucket] = max(slots[bucket], 2 * needed + 1)
            filled = 0
            while filled < slots[bucket]:
                staff = self.rng.random() < 0.12
                size = self.rng.randint(8, 40) if staff else self._personal_size()
                size = min(size, slots[bucket] - filled)
                age = timedelta(days=bucket * MONTH_DAYS + self.rng.random() * MONTH_DAYS)
                plans.append(_BatchPlan(self.now - age, bucket, size, staff))
                filled += size
        plans.sort(key=lambda p: p.at)
        quota_left = [q + p for q, p in zip(quotas, pending, strict=True)]
        slots_left = list(slots)
        accepted = 0
        for plan in plans:
            accepted += self._play_batch(plan, quota_left, slots_left, pending)
        # Referrals the calendar could not place (tiny runs) become long-standing members.
        for _ in range(referred + applicants - accepted):
            self._plan_founder(Role.USER, self._random_unit())

    def _personal_size(self) -> int:
        return 1 if self.rng.random() < 0.7 else self.rng.randint(2, 5)

    def _inviter(self, at: datetime, staff: bool) -> _Person | None:
        cutoff = at - timedelta(days=1)
        pool = [p for p in self.people if p.active and p.joined_at < cutoff
                and (not staff or p.role >= Role.HR_LOCAL)]
        if not pool:
            return None
        return self.rng.choices(pool, [p.weight for p in pool])[0]

    def _event_for(self, at: datetime) -> _EventInfo | None:
        fitting = [e for e in self.events
                   if e.starts_at - timedelta(days=45) <= at < e.starts_at]
        return self.rng.choice(fitting) if fitting else None

    def _play_batch(self, plan: _BatchPlan, quota_left: list[int], slots_left: list[int],
                    pending: list[int]) -> int:
        """Lay out one batch and decide each invitation's fate; returns how many were accepted."""
        inviter = self._inviter(plan.at, plan.staff)
        if inviter is None:
            slots_left[plan.bucket] -= plan.size
            return 0
        event = self._event_for(plan.at) if self.rng.random() < 0.35 else None
        kind = InvitationKind.EVENT if event else InvitationKind.MEMBERSHIP
        unit_id = inviter.unit_id or self._random_unit()
        sender = inviter
        if not plan.staff and inviter.role is Role.USER and self.rng.random() < 0.1:
            helpers = [p for p in self.people if p.active and p.role is Role.HR_LOCAL
                       and p.unit_id == inviter.unit_id and p.joined_at < plan.at]
            if helpers:
                sender = self.rng.choice(helpers)  # local HR sent it on the member's behalf
        batch_id = self._add_batch(
            at=plan.at, inviter=inviter.id, sender=sender.id, size=plan.size, kind=kind,
            event=event, staff=plan.staff, unit_id=unit_id, open_=False,
        )
        message = self.batches[-1]["personal_message"]
        accepted = 0
        gap = timedelta(seconds=2 if plan.size > 1 else 0)
        for index in range(plan.size):
            sent_at = plan.at + gap * index + timedelta(seconds=1)
            age = self.now - sent_at
            take = False
            bucket = plan.bucket
            if quota_left[bucket] > 0 and age > timedelta(hours=3):
                take = self.rng.random() < quota_left[bucket] / max(slots_left[bucket], 1)
            slots_left[bucket] -= 1
            first, last = self._name()
            email = self._email(first, last)
            row = self._invitation_row(
                email=email, name=f"{first} {last}", kind=kind, event=event,
                inviter=inviter.id, sender=sender.id, unit_id=unit_id, batch_id=batch_id,
                message=message, created=plan.at,
            )
            if take:
                quota_left[bucket] -= 1
                is_pending = pending[bucket] > 0 and self.rng.random() < (
                    pending[bucket] / (quota_left[bucket] + 1))
                if is_pending:
                    pending[bucket] -= 1
                self._accept(row, sent_at, first, last, inviter, unit_id, is_pending)
                accepted += 1
            else:
                self._settle(row, sent_at)
            self.invitations.append(row)
        return accepted

    def _accept(self, row: dict[str, Any], sent_at: datetime, first: str, last: str,
                inviter: _Person, unit_id: uuid.UUID | None, is_pending: bool) -> None:
        rejected = not is_pending and self.rejection_rng.random() < 0.04
        age = self.now - sent_at
        latest = min(8 * 24, age.total_seconds() / 3600 - 0.5, self.expiry.total_seconds() / 3600 - 1)
        delay_hours = self.rng.uniform(min(2, latest), latest)
        joined = sent_at + timedelta(hours=delay_hours)
        member_id = self._add_member(
            first=first, last=last, email=row["email"], role=Role.USER, unit_id=unit_id,
            joined=joined,
            status=(MemberStatus.APPLICANT if is_pending
                    else MemberStatus.REJECTED if rejected else MemberStatus.ACTIVE),
            adhesion=(AdhesionStatus.PENDING if is_pending
                      else AdhesionStatus.REJECTED if rejected else AdhesionStatus.APPROVED),
            referred_by=inviter.id,
        )
        self._mark_sent(row, sent_at)
        row.update(status=InvitationStatus.ACCEPTED.value, accepted_at=joined,
                   accepted_member_id=member_id, updated_at=joined)
        completed = None
        if not is_pending:
            completed = min(joined + timedelta(hours=self.rng.uniform(1, 96)), self.now)
        status = (ReferralStatus.PENDING if is_pending
                  else ReferralStatus.DECLINED if rejected else ReferralStatus.COMPLETED)
        self.referrals.append({
            "id": new_id(), "organization_id": self.org.id, "referrer_id": inviter.id,
            "referee_id": member_id, "invitation_id": row["id"],
            "status": status.value,
            "referred_at": joined, "completed_at": None if rejected else completed, "version": 1,
            "created_at": joined, "updated_at": completed or joined,
        })

    def _settle(self, row: dict[str, Any], sent_at: datetime) -> None:
        """A fate for an invitation nobody accepted: failed, revoked, still open or expired."""
        age = self.now - sent_at
        roll = self.rng.random()
        if roll < 0.05:
            self._fail(row, sent_at)
        elif roll < 0.11 and age > timedelta(hours=2):
            self._mark_sent(row, sent_at)
            window = min(age, self.expiry).total_seconds()
            revoked = sent_at + timedelta(seconds=self.rng.uniform(3600, max(window, 3601)))
            row.update(status=InvitationStatus.REVOKED.value, revoked_at=revoked,
                       updated_at=revoked)
        else:
            token = self._mark_sent(row, sent_at)
            if row["expires_at"] <= self.now:
                row.update(status=InvitationStatus.EXPIRED.value, updated_at=row["expires_at"])
            else:
                self.sample_token = token  # batches come in time order: the newest live link

    def _claim(self, row: dict[str, Any], at: datetime, status: InvitationStatus) -> str:
        """Fill in what a send attempt leaves: token hash, expiry, message id. Returns the token."""
        token, token_hash = new_token()
        row.update(
            status=status.value, token_hash=token_hash, queued_at=at - timedelta(seconds=1),
            expires_at=at + self.expiry, attempts=1,
            message_id=f"<{uuid.uuid4().hex}@{DEMO_DOMAIN}>", updated_at=at,
        )
        return token

    def _mark_sent(self, row: dict[str, Any], sent_at: datetime) -> str:
        token = self._claim(row, sent_at, InvitationStatus.SENT)
        row.update(sent_at=sent_at)
        return token

    def _suppress(self, row: dict[str, Any], reason: str, evidence: str, at: datetime,
                  source: str) -> None:
        """The suppression-list entry behind a bounced or suppressed showcase invitation."""
        self.suppressions.append({
            "id": new_id(), "version": 1, "created_at": at, "updated_at": at,
            "organization_id": self.org.id, "address": row["email"],
            "address_normalized": row["email_normalized"], "reason": reason,
            "evidence": evidence, "source": source, "invitation_id": row["id"],
            "created_by_id": None, "undone_at": None, "undone_by_id": None,
        })

    def _fail(self, row: dict[str, Any], at: datetime) -> None:
        reply = self.rng.choice(FAILURE_REPLIES).format(email=row["email"])
        row.update(status=InvitationStatus.FAILED.value, queued_at=at - timedelta(seconds=1),
                   attempts=1, last_error=reply, updated_at=at)

    def _add_batch(self, *, at: datetime, inviter: uuid.UUID, sender: uuid.UUID, size: int,
                   kind: InvitationKind, event: _EventInfo | None, staff: bool,
                   unit_id: uuid.UUID | None, open_: bool, label: str | None = None) -> uuid.UUID:
        batch_id = new_id()
        if label is None:
            if event is not None:
                label = f"Guests for {event.name}"
            elif staff:
                unit = next((name for uid, name in self.units if uid == unit_id), "Federation")
                label = self.rng.choice(STAFF_BATCH_LABELS).format(
                    unit=unit, month=at.strftime("%B %Y"))
            else:
                label = ""
        source = (self.rng.choice(("csv", "paste")) if staff
                  else ("single" if size == 1 else "paste"))
        self.batches.append({
            "id": batch_id, "organization_id": self.org.id, "created_by_id": sender,
            "inviter_id": inviter, "label": label, "source": source, "kind": kind.value,
            "event_id": event.id if event else None,
            "personal_message": self.rng.choice(PERSONAL_MESSAGES), "total": size,
            "status": "open" if open_ else "done", "version": 1, "created_at": at,
            "updated_at": at,
        })
        return batch_id

    def _invitation_row(self, *, email: str, name: str, kind: InvitationKind,
                        event: _EventInfo | None, inviter: uuid.UUID, sender: uuid.UUID,
                        unit_id: uuid.UUID | None, batch_id: uuid.UUID, message: str,
                        created: datetime) -> dict[str, Any]:
        return {
            "id": new_id(), "organization_id": self.org.id, "email": email,
            "email_normalized": normalize_email(email), "name": name, "kind": kind.value,
            "event_id": event.id if event else None, "inviter_id": inviter, "sender_id": sender,
            "unit_id": unit_id, "batch_id": batch_id, "personal_message": message,
            "status": InvitationStatus.DRAFT.value, "token_hash": None, "expires_at": None,
            "queued_at": None, "sent_at": None, "accepted_at": None, "revoked_at": None,
            "message_id": None, "attempts": 0, "next_attempt_at": None, "last_error": "",
            "accepted_member_id": None, "version": 1, "created_at": created,
            "updated_at": created, "unsubscribe_token_hash": None, "bounced_at": None,
            "bounce_kind": None, "bounce_detail": "", "soft_bounces": 0,
            "reminder_sent_at": None, "reminder_owner": None,
        }

    # -- showcase -----------------------------------------------------------------------

    def plan_showcase(self, operators: dict[Role, uuid.UUID]) -> None:
        """Batches that show every state at a glance: one sending right now, one stopped
        mid-way, a draft, guests for the next ride and the demo member's own invitations."""
        now = self.now
        admin, hr = operators[Role.ADMIN_TENANT], operators[Role.HR_TENANT]
        local_admin, local_hr = operators[Role.ADMIN_LOCAL], operators[Role.HR_LOCAL]
        member = operators[Role.USER]
        home = self._unit_at(0)
        riverside = self._unit_at(1)

        # Cancelled half-way 25 minutes ago: sent, one permanent failure, one on the wire when
        # it stopped (uncertain), the rest back to draft (two had been greylisted once).
        # Nothing is left queued: the first real send must not mail demo addresses.
        started = now - timedelta(minutes=25)
        live = [InvitationStatus.SENT] * 14 + [InvitationStatus.FAILED, InvitationStatus.UNCERTAIN]
        live += [InvitationStatus.QUEUED] * 8
        batch = self._add_batch(at=started, inviter=admin, sender=admin, size=len(live),
                                kind=InvitationKind.MEMBERSHIP, event=None, staff=True,
                                unit_id=riverside, open_=True, label=LIVE_BATCH_LABEL)
        self.batches[-1]["status"] = "cancelled"
        for index, status in enumerate(live):
            row = self._showcase_row(admin, admin, riverside, batch, started)
            at = started + timedelta(seconds=90 * index + 5)
            if status is InvitationStatus.SENT:
                token = self._mark_sent(row, at)
                self.sample_token = token
            elif status is InvitationStatus.FAILED:
                self._fail(row, at)
            elif status is InvitationStatus.UNCERTAIN:
                self._claim(row, at, status)
                row.update(last_error=UNCERTAIN_REASON)
            else:  # returned to draft by the cancel
                row.update(status=InvitationStatus.DRAFT.value, updated_at=now)
                if index < len(live) - 6:  # greylisted before the cancel
                    row.update(attempts=1, last_error=RETRY_REPLY)

        # The program stopped while the server had one message: it is never resent by itself.
        started = now - timedelta(days=3, hours=2)
        stopped = [InvitationStatus.SENT] * 9 + [InvitationStatus.UNCERTAIN, InvitationStatus.FAILED,
                                                 InvitationStatus.BOUNCED,
                                                 InvitationStatus.SUPPRESSED]
        batch = self._add_batch(at=started, inviter=hr, sender=hr, size=len(stopped),
                                kind=InvitationKind.MEMBERSHIP, event=None, staff=True,
                                unit_id=home, open_=False,
                                label="Northbridge Central — winter clinic follow-up")
        for index, status in enumerate(stopped):
            row = self._showcase_row(hr, hr, home, batch, started)
            at = started + timedelta(seconds=2 * index + 3)
            if status is InvitationStatus.SENT:
                self._mark_sent(row, at)
            elif status is InvitationStatus.UNCERTAIN:
                self._claim(row, at, status)
                row.update(last_error=UNCERTAIN_REASON)
            elif status is InvitationStatus.BOUNCED:  # the bounce came back an hour later
                self._mark_sent(row, at)
                detail = (f"5.1.1 550 5.1.1 <{row['email']}>: Recipient address rejected: "
                          "User unknown in virtual mailbox table")
                row.update(status=status.value, bounce_kind="hard", bounce_detail=detail,
                           bounced_at=at + timedelta(hours=1), updated_at=at + timedelta(hours=1))
                self._suppress(row, "hard_bounce", detail, at + timedelta(hours=1),
                               f"imap bounces@{DEMO_DOMAIN}")
            elif status is InvitationStatus.SUPPRESSED:  # unsubscribed from an earlier one
                why = "One-click unsubscribe from the invitation email."
                self._suppress(row, "unsubscribed", why, at - timedelta(days=30), "portal")
                row.update(status=status.value, queued_at=at - timedelta(seconds=1),
                           last_error=f"Not sent: This address unsubscribed ({why}).",
                           updated_at=at)
            else:
                self._fail(row, at)

        # A draft the local admin has not sent yet.
        started = now - timedelta(days=1, hours=5)
        batch = self._add_batch(at=started, inviter=local_admin, sender=local_admin, size=4,
                                kind=InvitationKind.MEMBERSHIP, event=None, staff=True,
                                unit_id=home, open_=True, label="Draft: bike shop leads")
        for _ in range(4):
            self._showcase_row(local_admin, local_admin, home, batch, started)

        # Guests for the next ride.
        ride = min((e for e in self.events if e.starts_at > now), key=lambda e: e.starts_at,
                   default=None)
        if ride is not None:
            started = now - timedelta(days=4)
            fates = [InvitationStatus.SENT] * 5 + [InvitationStatus.REVOKED]
            batch = self._add_batch(at=started, inviter=local_hr, sender=local_hr,
                                    size=len(fates), kind=InvitationKind.EVENT, event=ride,
                                    staff=False, unit_id=home, open_=False)
            for index, status in enumerate(fates):
                row = self._showcase_row(local_hr, local_hr, home, batch, started, event=ride)
                at = started + timedelta(seconds=2 * index + 1)
                self._mark_sent(row, at)
                if status is InvitationStatus.REVOKED:
                    row.update(status=status.value, revoked_at=at + timedelta(hours=20),
                               updated_at=at + timedelta(hours=20))

        # The demo member's own invitations: open, expired and revoked.
        for days, status in ((2, InvitationStatus.SENT), (40, InvitationStatus.EXPIRED),
                             (9, InvitationStatus.REVOKED)):
            started = now - timedelta(days=days)
            batch = self._add_batch(at=started, inviter=member, sender=member, size=1,
                                    kind=InvitationKind.MEMBERSHIP, event=None, staff=False,
                                    unit_id=home, open_=False)
            row = self._showcase_row(member, member, home, batch, started)
            at = started + timedelta(seconds=1)
            self._mark_sent(row, at)
            if status is InvitationStatus.EXPIRED:
                row.update(status=status.value, updated_at=row["expires_at"])
            elif status is InvitationStatus.REVOKED:
                row.update(status=status.value, revoked_at=at + timedelta(days=1),
                           updated_at=at + timedelta(days=1))

    def _showcase_row(self, inviter: uuid.UUID, sender: uuid.UUID, unit_id: uuid.UUID | None,
                      batch_id: uuid.UUID, created: datetime,
                      event: _EventInfo | None = None) -> dict[str, Any]:
        first, last = self._name()
        row = self._invitation_row(
            email=self._email(first, last), name=f"{first} {last}",
            kind=InvitationKind.EVENT if event else InvitationKind.MEMBERSHIP, event=event,
            inviter=inviter, sender=sender, unit_id=unit_id, batch_id=batch_id,
            message=next(b["personal_message"] for b in self.batches if b["id"] == batch_id),
            created=created,
        )
        self.invitations.append(row)
        return row

    # -- storing ------------------------------------------------------------------------

    def insert(self, session: Session) -> dict[str, int]:
        """Bulk-insert everything planned, parents before children; returns what was added."""
        # A referrer always joined before the members they brought in, so inserting in order
        # of joining satisfies the self-reference on backends that check it row by row.
        self.new_members.sort(key=lambda m: m["joined_at"])
        for model, rows in ((Member, self.new_members), (Batch, self.batches),
                            (Invitation, self.invitations), (Referral, self.referrals),
                            (Suppression, self.suppressions)):
            if rows:
                session.execute(insert(model), rows)
        return {
            "members": len(self.new_members) + self.operators_created,
            "batches": len(self.batches),
            "invitations": len(self.invitations),
            "referrals": len(self.referrals),
            "operators_reset": self.operators_reset,
        }


# --------------------------------------------------------------------------- helpers


def _password_matches(password_hash: str | None, password: str) -> bool:
    if not password_hash:
        return False
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


_ASCII_FOLD = str.maketrans({"ł": "l", "Ł": "L", "ø": "o", "Ø": "O", "ß": "ss", "æ": "ae",
                             "Æ": "AE", "đ": "d", "Đ": "D", "ı": "i", "œ": "oe"})


def _ascii_slug(text: str) -> str:
    """'Łukasz' -> 'lukasz', "O'Brien" -> 'obrien': the part of a plausible email address."""
    folded = unicodedata.normalize("NFKD", text.translate(_ASCII_FOLD))
    plain = "".join(ch for ch in folded if not unicodedata.combining(ch))
    return "".join(ch for ch in plain.lower() if ch.isascii() and ch.isalnum()) or "member"


def _allocate(total: int, weights: Sequence[float], *, minimum: int = 0) -> list[int]:
    """Split `total` in proportion to `weights` (largest remainders), at least `minimum` each."""
    n = len(weights)
    base = [minimum] * n
    rest = total - minimum * n
    if rest <= 0:
        return _allocate(total, weights) if minimum else [0] * n
    scale = sum(weights)
    shares = [rest * w / scale for w in weights]
    result = [b + math.floor(s) for b, s in zip(base, shares, strict=True)]
    leftovers = sorted(range(n), key=lambda i: shares[i] - math.floor(shares[i]), reverse=True)
    for i in leftovers[: total - sum(result)]:
        result[i] += 1
    return result


# --------------------------------------------------------------------------- the logo


def demo_logo_png(size: int = 96) -> bytes:
    """A small PNG: a white bicycle wheel on an accent-coloured disc (zlib + struct, no Qt)."""
    accent = tuple(int(DEMO_ACCENT[i:i + 2], 16) for i in (1, 3, 5))
    centre = (size - 1) / 2
    radius = size / 2
    samples = ((0.25, 0.25), (0.75, 0.25), (0.25, 0.75), (0.75, 0.75))

    def paint(x: float, y: float) -> tuple[float, bool]:
        """(disc coverage, white?) at a sub-pixel position."""
        dx, dy = x - centre, y - centre
        r = math.hypot(dx, dy) / radius
        if r > 0.98:
            return 0.0, False
        ring = 0.62 <= r <= 0.74
        hub = r <= 0.12
        angle = math.atan2(dy, dx) % (math.pi / 4)
        spoke = r < 0.64 and min(angle, math.pi / 4 - angle) * r * radius < 0.9
        return 1.0, ring or hub or spoke

    rows = bytearray()
    for py in range(size):
        rows.append(0)  # filter: none
        for px in range(size):
            alpha = white = 0.0
            for sx, sy in samples:
                cover, is_white = paint(px + sx - 0.5, py + sy - 0.5)
                alpha += cover / len(samples)
                white += (cover if is_white else 0.0) / len(samples)
            mix = white / alpha if alpha else 0.0
            rgb = [round(c * (1 - mix) + 255 * mix) for c in accent]
            rows.extend((*rgb, round(alpha * 255)))

    def chunk(tag: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(tag + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0)  # 8-bit RGBA
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(bytes(rows), 9)) + chunk(b"IEND", b""))
