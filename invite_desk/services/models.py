"""ORM models. Every row has a client-generated UUID, a version counter and updated_at,
so that offline replicas can be synced later; nothing is hard-deleted."""

from __future__ import annotations

import os
import time
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    Uuid,
    event,
    inspect,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column
from sqlalchemy.orm import Session as OrmSession

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> uuid.UUID:
    """A time-ordered UUID (version 7, RFC 9562): 48 bits of Unix milliseconds, then random.

    Rows created together get neighbouring ids, so inserting a batch appends to the primary
    key and (..., id) indexes instead of scattering writes over a million-row B-tree; still a
    plain UUID to every backend, and unguessable enough for ids (not for secrets: tokens use
    `secrets`)."""
    millis = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")  # 80 random bits, 74 used
    value = (millis & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76 | ((rand >> 62) & 0xFFF) << 64  # version 7, 12 random bits
    value |= 0b10 << 62 | (rand & ((1 << 62) - 1))  # RFC variant, 62 random bits
    return uuid.UUID(int=value)


def exact_string(length: int) -> String:
    """A string compared byte for byte on every backend.

    MySQL/MariaDB's default collations ignore case, accents and trailing spaces, so
    'zoe@x.org' and 'zoë@x.org' would collide in a unique key and match each other in lookups;
    SQLite and PostgreSQL compare exactly. Used for normalized emails and token hashes.
    """
    return String(length).with_variant(
        mysql.VARCHAR(length, charset="utf8mb4", collation="utf8mb4_bin"), "mysql", "mariadb"
    )


class UTCDateTime(TypeDecorator[datetime]):
    """Stores naive UTC on every backend and hands back aware UTC datetimes."""

    # Microsecond precision on MySQL/MariaDB too (its plain DATETIME drops fractions).
    impl = DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class SyncedMixin:
    """Columns every synced row carries."""

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime, nullable=False, default=utcnow, onupdate=utcnow
    )

    @declared_attr.directive
    def __mapper_args__(cls) -> dict[str, Any]:
        # `version` doubles as the optimistic-lock counter: every ORM UPDATE checks and bumps it.
        return {"version_id_col": cls.__table__.c.version}  # type: ignore[attr-defined]


class MemberStatus(StrEnum):
    ACTIVE = "active"
    APPLICANT = "applicant"  # registered, adhesion application not yet approved
    REJECTED = "rejected"
    DEACTIVATED = "deactivated"
    LAPSED = "lapsed"  # issue 11: membership not renewed; kept, never deleted
    RESIGNED = "resigned"  # issue 11: left the organization; kept, never deleted


class AdhesionStatus(StrEnum):
    """The adhesion (membership application) flow of the product documents."""

    NEW = "new"
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    DRAFT = "draft"


class InvitationStatus(StrEnum):
    DRAFT = "draft"
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    ACCEPTED = "accepted"
    EXPIRED = "expired"
    REVOKED = "revoked"
    FAILED = "failed"
    UNCERTAIN = "uncertain"
    # Deliverability (migration 0008): the address bounced hard, or the invitation was not
    # sent because its address is on the suppression list (opt-out, bounces, an admin).
    BOUNCED = "bounced"
    SUPPRESSED = "suppressed"


OPEN_INVITATION_STATES = frozenset(
    {InvitationStatus.DRAFT, InvitationStatus.QUEUED, InvitationStatus.SENDING, InvitationStatus.SENT}
)


class InvitationKind(StrEnum):
    MEMBERSHIP = "membership"
    EVENT = "event"


class AcceptedVia(StrEnum):
    """How an accepted invitation came to be accepted (`invitation.accepted_via`)."""

    LINK = "link"  # the invitee registered (or signed up as a guest) through this invitation's link
    OTHER_INVITATION = "other_invitation"  # closed: the invitee registered through another one
    PUBLIC_REGISTRATION = "public_registration"  # closed: the invitee used the public page


class ReferralStatus(StrEnum):
    PENDING = "pending"
    COMPLETED = "completed"
    DECLINED = "declined"  # the referee's adhesion application was rejected


class Organization(SyncedMixin, Base):
    __tablename__ = "organization"

    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    logo: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    logo_mime: Mapped[str | None] = mapped_column(String(50), nullable=True)
    accent_color: Mapped[str] = mapped_column(String(7), default="#2F6FEB")
    registration_base_url: Mapped[str] = mapped_column(String(500), default="")
    archived: Mapped[bool] = mapped_column(Boolean, default=False)


class Unit(SyncedMixin, Base):
    """A local chapter of the organization."""

    __tablename__ = "unit"
    __table_args__ = (UniqueConstraint("organization_id", "name"),)

    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organization.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    archived: Mapped[bool] = mapped_column(Boolean, default=False)


class Member(SyncedMixin, Base):
    __tablename__ = "member"
    __table_args__ = (
        # Email is unique case-insensitively: email_normalized is the lower-cased address.
        UniqueConstraint("organization_id", "email_normalized"),
        Index("ix_member_org_last_first", "organization_id", "last_name", "first_name"),
    )

    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organization.id"), index=True)
    email: Mapped[str] = mapped_column(String(320))
    email_normalized: Mapped[str] = mapped_column(exact_string(320))
    first_name: Mapped[str] = mapped_column(String(100), default="")
    last_name: Mapped[str] = mapped_column(String(100), default="")
    role: Mapped[str] = mapped_column(String(20), default="USER")
    unit_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("unit.id"), index=True)
    status: Mapped[str] = mapped_column(String(20), default=MemberStatus.ACTIVE.value)
    adhesion_status: Mapped[str | None] = mapped_column(String(20), nullable=True)
    adhesion_reason: Mapped[str] = mapped_column(Text, default="")
    referred_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("member.id"), index=True)
    password_hash: Mapped[str | None] = mapped_column(String(200), nullable=True)
    joined_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_sign_in_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Issue 11 (migration 0007): a one-time password must be replaced at the first sign-in;
    # a revoked sign-in ends every session that started before this moment.
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=False)
    sign_in_revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    @property
    def display_name(self) -> str:
        name = f"{self.first_name} {self.last_name}".strip()
        return name or self.email


class Setting(SyncedMixin, Base):
    """One organization setting; keys and types are declared in services/settings.py."""

    __tablename__ = "setting"
    __table_args__ = (UniqueConstraint("organization_id", "key"),)

    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organization.id"))
    key: Mapped[str] = mapped_column(String(100))
    value_json: Mapped[str] = mapped_column(Text)


class Event(SyncedMixin, Base):
    __tablename__ = "event"

    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organization.id"), index=True)
    unit_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("unit.id"))
    name: Mapped[str] = mapped_column(String(200))
    starts_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    location: Mapped[str] = mapped_column(String(300), default="")
    archived: Mapped[bool] = mapped_column(Boolean, default=False)
    # Issue 11 (migration 0007): the IANA zone the start time was entered in, and details.
    time_zone: Mapped[str] = mapped_column(String(64), default="UTC")
    description: Mapped[str] = mapped_column(Text, default="")
    capacity: Mapped[int | None] = mapped_column(Integer, nullable=True)
    guests_allowed: Mapped[bool] = mapped_column(Boolean, default=True)


class Batch(SyncedMixin, Base):
    """One send action: a pasted list, a CSV import, or a single invitation."""

    __tablename__ = "batch"

    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organization.id"), index=True)
    created_by_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("member.id"))
    inviter_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("member.id"))
    label: Mapped[str] = mapped_column(String(300), default="")
    source: Mapped[str] = mapped_column(String(20), default="single")  # single, paste, csv, cli
    kind: Mapped[str] = mapped_column(String(20), default=InvitationKind.MEMBERSHIP.value)
    event_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("event.id"))
    personal_message: Mapped[str] = mapped_column(Text, default="")
    total: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(20), default="open")  # open, done, cancelled
    # Not sent before this moment (migration 0008); None: as soon as it is sent.
    scheduled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Invitation(SyncedMixin, Base):
    __tablename__ = "invitation"
    __table_args__ = (
        Index("ix_invitation_org_email", "organization_id", "email_normalized"),
        Index("ix_invitation_inviter_created", "inviter_id", "created_at"),
        Index("ix_invitation_batch_status", "batch_id", "status"),
        # Tracking tables (migration 0003): a tab is a merge of per-status branches read in
        # the order of the sort key, so no sort runs at a million rows; the trailing columns
        # let the walk filter (live/overdue, a local role's unit) without reading the table.
        # See tracking/read.py.
        Index("ix_invitation_org_status_queued_id",
              "organization_id", "status", "queued_at", "id", "unit_id"),
        Index("ix_invitation_org_status_sent_id",
              "organization_id", "status", "sent_at", "id", "expires_at", "unit_id"),
        Index("ix_invitation_org_status_expires_id",
              "organization_id", "status", "expires_at", "id", "sent_at", "unit_id"),
        Index("ix_invitation_org_status_accepted_id",
              "organization_id", "status", "accepted_at", "id", "expires_at", "unit_id"),
        Index("ix_invitation_org_status_email_id",
              "organization_id", "status", "email_normalized", "id", "expires_at", "unit_id"),
        Index("ix_invitation_org_name", "organization_id", "name"),
        Index("ix_invitation_sender_created", "sender_id", "created_at"),
    )

    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organization.id"))
    email: Mapped[str] = mapped_column(String(320))
    email_normalized: Mapped[str] = mapped_column(exact_string(320))
    name: Mapped[str] = mapped_column(String(200), default="")
    kind: Mapped[str] = mapped_column(String(20), default=InvitationKind.MEMBERSHIP.value)
    event_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("event.id"))
    inviter_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("member.id"))
    sender_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("member.id"))
    unit_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("unit.id"), index=True)
    batch_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("batch.id"))
    personal_message: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(20), default=InvitationStatus.DRAFT.value)
    # SHA-256 hex of the link token; the token itself is only ever in the email.
    token_hash: Mapped[str | None] = mapped_column(exact_string(64), unique=True, nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    queued_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    message_id: Mapped[str | None] = mapped_column(String(300), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # "host:pid:run" of the sender that holds this row in `sending` (see sending.py).
    sending_owner: Mapped[str | None] = mapped_column(String(120), nullable=True)
    last_error: Mapped[str] = mapped_column(Text, default="")
    accepted_member_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("member.id"))
    # Set with status `accepted`: AcceptedVia (through its own link, or closed by another one).
    accepted_via: Mapped[str | None] = mapped_column(String(20), nullable=True)
    # Deliverability (migration 0008). SHA-256 of the one-click unsubscribe token in the email.
    unsubscribe_token_hash: Mapped[str | None] = mapped_column(exact_string(64), unique=True,
                                                               nullable=True)
    bounced_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    bounce_kind: Mapped[str | None] = mapped_column(String(10), nullable=True)  # hard, soft
    bounce_detail: Mapped[str] = mapped_column(Text, default="")
    soft_bounces: Mapped[int] = mapped_column(Integer, default=0)
    reminder_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # "host:pid:run" of the reminder run that claimed this reminder (see reminders.py).
    reminder_owner: Mapped[str | None] = mapped_column(String(120), nullable=True)


class EventGuest(SyncedMixin, Base):
    """A guest who registered for an event through an event invitation (not a member)."""

    __tablename__ = "event_guest"
    __table_args__ = (
        UniqueConstraint("event_id", "email_normalized"),
        Index("ix_event_guest_org_email", "organization_id", "email_normalized"),
    )

    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organization.id"))
    event_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("event.id"))
    invitation_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("invitation.id"), index=True)
    email: Mapped[str] = mapped_column(String(320))
    email_normalized: Mapped[str] = mapped_column(exact_string(320))
    first_name: Mapped[str] = mapped_column(String(100), default="")
    last_name: Mapped[str] = mapped_column(String(100), default="")
    # The member this guest is (or later became); their event inviter is credited on joining.
    member_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("member.id"), index=True)
    registered_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    @property
    def display_name(self) -> str:
        name = f"{self.first_name} {self.last_name}".strip()
        return name or self.email


class Referral(SyncedMixin, Base):
    __tablename__ = "referral"
    __table_args__ = (
        UniqueConstraint("referrer_id", "referee_id"),
        Index("ix_referral_org_referred_at", "organization_id", "referred_at"),
    )

    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organization.id"))
    referrer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("member.id"), index=True)
    referee_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("member.id"), index=True)
    invitation_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("invitation.id"))
    status: Mapped[str] = mapped_column(String(20), default=ReferralStatus.PENDING.value)
    referred_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class AuditLog(SyncedMixin, Base):
    """Who did what, when, with the values before and after. Append-only."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_entity", "entity_type", "entity_id"),
        # Issue 11 (migration 0007): keyset paging newest first on (at, id), per filter.
        Index("ix_audit_log_org_at_id", "organization_id", "at", "id"),
        Index("ix_audit_log_org_actor_at_id", "organization_id", "actor_id", "at", "id"),
        Index("ix_audit_log_org_action_at_id", "organization_id", "action", "at", "id"),
        Index("ix_audit_log_org_entity_at_id",
              "organization_id", "entity_type", "entity_id", "at", "id"),
    )

    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organization.id"))
    actor_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("member.id"))
    action: Mapped[str] = mapped_column(String(100))
    entity_type: Mapped[str] = mapped_column(String(50))
    entity_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    before_json: Mapped[str] = mapped_column(Text, default="{}")
    after_json: Mapped[str] = mapped_column(Text, default="{}")
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# -- registration portal hardening (migration 0005) ------------------------------------------


class PendingRegistration(SyncedMixin, Base):
    """A public registration waiting for its address to be confirmed by the emailed link.

    The member is created only when the link is followed; until then nothing about the
    address changes. Only the SHA-256 of the link's token is kept."""

    __tablename__ = "pending_registration"
    __table_args__ = (Index("ix_pending_registration_org_email", "organization_id",
                            "email_normalized"),)

    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organization.id"))
    email: Mapped[str] = mapped_column(String(320))
    email_normalized: Mapped[str] = mapped_column(exact_string(320))
    first_name: Mapped[str] = mapped_column(String(100), default="")
    last_name: Mapped[str] = mapped_column(String(100), default="")
    password_hash: Mapped[str | None] = mapped_column(String(200), nullable=True)
    token_hash: Mapped[str] = mapped_column(exact_string(64), unique=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class RetiredLink(Base):
    """The hash of an invitation link that stopped working because the invitation was revoked
    or a newer link replaced it (resend, fresh link), so the portal can say which."""

    __tablename__ = "retired_link"

    token_hash: Mapped[str] = mapped_column(exact_string(64), primary_key=True)
    invitation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("invitation.id"), index=True)
    reason: Mapped[str] = mapped_column(String(20))  # "revoked" or "superseded"
    retired_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PortalSecret(Base):
    """Secrets every portal process shares (the session-signing key), made once."""

    __tablename__ = "portal_secret"

    name: Mapped[str] = mapped_column(String(50), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RateLimitCounter(Base):
    """Fixed-window hit counters shared by every portal process: `key` (what is limited and
    for whom), the window's number (epoch seconds // window length), and the hits in it."""

    __tablename__ = "rate_limit_counter"
    __table_args__ = (Index("ix_rate_limit_counter_expires_at", "expires_at"),)

    key: Mapped[str] = mapped_column(exact_string(200), primary_key=True)
    window: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hits: Mapped[int] = mapped_column(Integer, default=0)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


# -- deliverability (migration 0008) ---------------------------------------------------------


class SuppressionReason(StrEnum):
    HARD_BOUNCE = "hard_bounce"
    SOFT_BOUNCES = "soft_bounces"
    UNSUBSCRIBED = "unsubscribed"
    MANUAL = "manual"


class Suppression(SyncedMixin, Base):
    """An address no invitation may be sent to, with why and the evidence. Undoing it sets
    `undone_at` (the row stays, for the record); a later suppression adds a new row."""

    __tablename__ = "suppression"
    __table_args__ = (
        Index("ix_suppression_org_address", "organization_id", "address_normalized"),
    )

    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organization.id"))
    address: Mapped[str] = mapped_column(String(320))
    address_normalized: Mapped[str] = mapped_column(exact_string(320))
    reason: Mapped[str] = mapped_column(String(20))  # SuppressionReason
    evidence: Mapped[str] = mapped_column(Text, default="")
    source: Mapped[str] = mapped_column(String(300), default="")  # bounce Message-ID, portal, ...
    invitation_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("invitation.id"))
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("member.id"))
    undone_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    undone_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("member.id"))


class ProcessedBounce(Base):
    """A bounce-mailbox message already handled (by its Message-ID, or a digest of it), so a
    re-run of `bounces fetch` never counts it twice."""

    __tablename__ = "processed_bounce"

    key: Mapped[str] = mapped_column(exact_string(200), primary_key=True)
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organization.id"))
    invitation_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("invitation.id"))
    verdict: Mapped[str] = mapped_column(String(20))  # hard, soft, auto_reply, unmatched, other
    processed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


@event.listens_for(OrmSession, "before_flush")
def _remember_retired_links(session: OrmSession, _context: Any, _instances: Any) -> None:
    """When an invitation's link hash is cleared or replaced, keep the old hash with why
    (revoked, or superseded by a newer link), whichever service made the change."""
    for obj in session.dirty:
        if not isinstance(obj, Invitation):
            continue
        history = inspect(obj).attrs.token_hash.history
        old = [value for value in history.deleted if value]
        if not old or not history.has_changes():
            continue
        reason = "revoked" if obj.status == InvitationStatus.REVOKED.value else "superseded"
        for value in old:
            # A hash can be retired twice on an offline replica: a resend there whose command
            # the server rejected brings the server's row, and its old hash, back.
            with session.no_autoflush:
                known = session.get(RetiredLink, value)
            if known is not None:
                known.invitation_id, known.reason, known.retired_at = obj.id, reason, utcnow()
                continue
            session.add(RetiredLink(token_hash=value, invitation_id=obj.id, reason=reason,
                                    retired_at=utcnow()))


# -- administration (issue 11, migration 0007) ----------------------------------------------


class SignInLink(SyncedMixin, Base):
    """An emailed link to set a desktop password. The token is minted when the email is sent
    and only its SHA-256 is kept; single use (`used_at`), expires, revocable."""

    __tablename__ = "sign_in_link"
    __table_args__ = (Index("ix_sign_in_link_member", "member_id", "created_at"),)

    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organization.id"))
    member_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("member.id"))
    issued_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("member.id"))
    token_hash: Mapped[str | None] = mapped_column(exact_string(64), unique=True, nullable=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class OutgoingMail(SyncedMixin, Base):
    """A notification email queued in the transaction of what it announces (approval,
    rejection, an invitee joining, a sign-in link), sent exactly once by
    services/admin/notifications.py: queued -> sending -> sent / failed / uncertain."""

    __tablename__ = "outgoing_mail"
    __table_args__ = (
        Index("ix_outgoing_mail_status_next", "status", "next_attempt_at", "created_at"),
        Index("ix_outgoing_mail_org_status", "organization_id", "status"),
    )

    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organization.id"))
    kind: Mapped[str] = mapped_column(String(40))
    to_email: Mapped[str] = mapped_column(String(320))
    to_name: Mapped[str] = mapped_column(String(200), default="")
    context_json: Mapped[str] = mapped_column(Text, default="{}")
    sign_in_link_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("sign_in_link.id"))
    status: Mapped[str] = mapped_column(String(20), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    sending_owner: Mapped[str | None] = mapped_column(String(120), nullable=True)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    message_id: Mapped[str | None] = mapped_column(String(300), nullable=True)
    last_error: Mapped[str] = mapped_column(Text, default="")
# -- referral programme (migration 0006) -------------------------------------------------------


class ReferralLedger(SyncedMixin, Base):
    """Append-only points ledger: award (held), vest, revoke, each with its reason.

    `points` changes the referrer's total (held + vested), `vested_points` the vested part, so
    balances are plain SUMs. One row per (referral, kind, cycle): a referee who lapses and comes
    back starts a new cycle. Rows are never updated or deleted (a flush guard refuses it)."""

    __tablename__ = "referral_ledger"
    __table_args__ = (
        UniqueConstraint("referral_id", "kind", "cycle"),
        Index("ix_referral_ledger_org_member", "organization_id", "member_id", "points",
              "vested_points"),
        Index("ix_referral_ledger_member_at", "member_id", "at"),
    )

    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organization.id"))
    member_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("member.id"))  # the referrer
    referral_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("referral.id"))
    kind: Mapped[str] = mapped_column(String(10))  # award, vest, revoke
    reason: Mapped[str] = mapped_column(String(30))
    cycle: Mapped[int] = mapped_column(Integer, default=1)
    points: Mapped[int] = mapped_column(Integer, default=0)
    vested_points: Mapped[int] = mapped_column(Integer, default=0)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ReferralReward(Base):
    """One row per completed referral: where its reward stands now, the summary of its ledger
    rows kept with them by the reconciliation. `inactive` (referee not active, never awarded),
    `held`, `vested`, `revoked` (may be awarded again in a new cycle) or `fake` (never again).
    The reports aggregate this table's indexes instead of joining referral, member and flags."""

    __tablename__ = "referral_reward"
    __table_args__ = (
        Index("ix_referral_reward_org_completed", "organization_id", "completed_at",
              "referrer_id", "state", "points"),
        Index("ix_referral_reward_org_referrer_state", "organization_id", "referrer_id", "state",
              "points"),
    )

    referral_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("referral.id"), primary_key=True)
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organization.id"))
    referrer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("member.id"))
    cycle: Mapped[int] = mapped_column(Integer, default=1)
    state: Mapped[str] = mapped_column(String(10))
    points: Mapped[int] = mapped_column(Integer, default=0)
    completed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    awarded_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    vest_after: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ReferralFlag(SyncedMixin, Base):
    """An anti-gaming finding for an admin to review; an open flag holds the points it covers
    (its referral's, or all of the referrer's when `referral_id` is empty)."""

    __tablename__ = "referral_flag"
    __table_args__ = (
        UniqueConstraint("organization_id", "dedupe_key"),
        Index("ix_referral_flag_org_status", "organization_id", "status", "created_at"),
        Index("ix_referral_flag_referral_status", "referral_id", "status"),
        Index("ix_referral_flag_referrer_status", "referrer_id", "status"),
    )

    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organization.id"))
    kind: Mapped[str] = mapped_column(String(30))
    status: Mapped[str] = mapped_column(String(10), default="open")
    referrer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("member.id"))
    referral_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("referral.id"), nullable=True)
    dedupe_key: Mapped[str] = mapped_column(exact_string(200))
    detail: Mapped[str] = mapped_column(Text, default="")
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    decided_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("member.id"), nullable=True)
    note: Mapped[str] = mapped_column(Text, default="")


class MemberOrigin(Base):
    """How a member came in (trends' channel), and for portal registrations the SHA-256 of
    (secret + IP address) and of (secret + user agent): never the raw values."""

    __tablename__ = "member_origin"
    __table_args__ = (
        Index("ix_member_origin_org_joined", "organization_id", "joined_at", "channel"),
        Index("ix_member_origin_org_device", "organization_id", "ip_hash", "ua_hash"),
        Index("ix_member_origin_org_recorded", "organization_id", "recorded_at"),
    )

    member_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("member.id"), primary_key=True)
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organization.id"))
    channel: Mapped[str] = mapped_column(String(20))  # referral_program.types.Channel
    joined_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The address as one person: lower-case, "+tag" dropped, dots dropped for Gmail.
    email_key: Mapped[str] = mapped_column(exact_string(320), default="")
    disposable: Mapped[bool] = mapped_column(Boolean, default=False)
    ip_hash: Mapped[str | None] = mapped_column(exact_string(64), nullable=True)
    ua_hash: Mapped[str | None] = mapped_column(exact_string(64), nullable=True)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class LeaderboardOptOut(Base):
    """A member who asked not to appear on the leaderboard members see (admins still see them,
    marked)."""

    __tablename__ = "leaderboard_opt_out"

    member_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("member.id"), primary_key=True)
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organization.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# Reports read these ranges without touching the wide rows (migration 0006).
Index("ix_referral_org_completed", Referral.organization_id, Referral.completed_at,
      Referral.referrer_id, Referral.status, Referral.referee_id)
Index("ix_invitation_org_sent_inviter", Invitation.organization_id, Invitation.sent_at,
      Invitation.inviter_id, Invitation.status, Invitation.accepted_at, Invitation.expires_at,
      Invitation.unit_id)


@event.listens_for(OrmSession, "before_flush")
def _ledger_is_append_only(session: OrmSession, _context: Any, _instances: Any) -> None:
    for obj in list(session.dirty) + list(session.deleted):
        if isinstance(obj, ReferralLedger) and (obj in session.deleted
                                                or session.is_modified(obj)):
            raise RuntimeError("the referral ledger is append-only: add a row instead")


class ReferralMonthStats(Base):
    """Per referrer and local month of the organization (month_start: that month's first
    instant, UTC): the leaderboard's figures, summed over a period's months instead of read
    from every referral. Kept by the reconciliation (services/referral_program/stats.py)."""

    __tablename__ = "referral_month_stats"
    __table_args__ = (
        Index("ix_referral_month_stats_referrer", "organization_id", "referrer_id", "vested"),
    )

    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organization.id"),
                                                       primary_key=True)
    month_start: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    referrer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("member.id"), primary_key=True)
    completed: Mapped[int] = mapped_column(Integer, default=0)
    active: Mapped[int] = mapped_column(Integer, default=0)
    vested_points: Mapped[int] = mapped_column(Integer, default=0)
    vested: Mapped[int] = mapped_column(Integer, default=0)  # referrals whose points vested
    held_points: Mapped[int] = mapped_column(Integer, default=0)
    reached: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    sent: Mapped[int] = mapped_column(Integer, default=0)
    accepted: Mapped[int] = mapped_column(Integer, default=0)


class GrowthDayStats(Base):
    """Per local day of the organization (day_start: its first instant, UTC), unit and kind
    (a Channel of new members, or "sent" / "accepted" invitations): how many. The trends sum
    these instead of reading every member and invitation. Kept by the reconciliation."""

    __tablename__ = "growth_day_stats"

    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organization.id"),
                                                       primary_key=True)
    day_start: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20), primary_key=True)
    unit_key: Mapped[str] = mapped_column(exact_string(36), primary_key=True)  # "" = no unit
    count: Mapped[int] = mapped_column(Integer, default=0)


Index("ix_invitation_org_updated", Invitation.organization_id, Invitation.updated_at,
      Invitation.inviter_id)


# The referral reconciliation's watermark ranges and due vestings (migration 0009).
Index("ix_member_org_updated", Member.organization_id, Member.updated_at)
Index("ix_member_org_status_joined", Member.organization_id, Member.status, Member.joined_at)
Index("ix_referral_org_updated", Referral.organization_id, Referral.updated_at)
Index("ix_referral_flag_org_updated", ReferralFlag.organization_id, ReferralFlag.updated_at)
Index("ix_referral_reward_org_state_vest", ReferralReward.organization_id, ReferralReward.state,
      ReferralReward.vest_after)

RUNNING_HISTOGRAM_BUCKETS = 16


class ReferralRunningStats(Base):
    """Running totals per organization, dimension and group, through the end of each local
    month (every group has a row for every month from its first to the newest one, so a
    period's figure is the row at its last month less the row before its first: two
    indexed reads instead of summing every month). `dim`: "inviter" (also the leaderboard's
    quality score of the referrer's completed referrals), "unit", "batch", "event", and
    "members" (active members by join month, for the K-factor). `h0`..`h15`: accepted
    invitations by time to accept, in the log-spaced buckets of referral_program/stats.py.
    Kept by the reconciliation (services/referral_program/running.py)."""

    __tablename__ = "referral_running_stats"
    __table_args__ = (
        Index("ix_referral_running_stats_group", "organization_id", "dim", "group_key",
              "month_start"),
    )

    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organization.id"),
                                                       primary_key=True)
    dim: Mapped[str] = mapped_column(String(10), primary_key=True)
    month_start: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    group_key: Mapped[str] = mapped_column(exact_string(36), primary_key=True)  # "" = none
    score: Mapped[int] = mapped_column(Integer, default=0)
    sent: Mapped[int] = mapped_column(Integer, default=0)
    accepted: Mapped[int] = mapped_column(Integer, default=0)
    h0: Mapped[int] = mapped_column(Integer, default=0)
    h1: Mapped[int] = mapped_column(Integer, default=0)
    h2: Mapped[int] = mapped_column(Integer, default=0)
    h3: Mapped[int] = mapped_column(Integer, default=0)
    h4: Mapped[int] = mapped_column(Integer, default=0)
    h5: Mapped[int] = mapped_column(Integer, default=0)
    h6: Mapped[int] = mapped_column(Integer, default=0)
    h7: Mapped[int] = mapped_column(Integer, default=0)
    h8: Mapped[int] = mapped_column(Integer, default=0)
    h9: Mapped[int] = mapped_column(Integer, default=0)
    h10: Mapped[int] = mapped_column(Integer, default=0)
    h11: Mapped[int] = mapped_column(Integer, default=0)
    h12: Mapped[int] = mapped_column(Integer, default=0)
    h13: Mapped[int] = mapped_column(Integer, default=0)
    h14: Mapped[int] = mapped_column(Integer, default=0)
    h15: Mapped[int] = mapped_column(Integer, default=0)


# -- offline replica and sync (issue 12, migration 0010; docs/architecture.md) --------------
# Server side: sync_change (the change log the capture triggers append to), sync_clock
# (MariaDB's commit clock), sync_applied (each pushed command's answer, exactly once).
# Replica side: sync_state, local_change, sync_command, sync_applying. Every database has all
# of them (a replica is a SQLite database at head); only the triggers differ.


class SyncChange(Base):
    """One changed row on the server: which table and id, not the values (a round reads the
    current rows in the same snapshot). `xid`: PostgreSQL's writing transaction
    (pg_current_xact_id); `clock`: MariaDB's commit clock, stamped just before COMMIT
    (NULL until then); `conn_id`: the MariaDB connection that wrote it, for that stamping."""

    __tablename__ = "sync_change"
    __table_args__ = (
        Index("ix_sync_change_xid_seq", "xid", "seq"),
        Index("ix_sync_change_clock_seq", "clock", "seq"),
        Index("ix_sync_change_conn_pending", "conn_id", "clock"),
    )

    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    xid: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    clock: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    conn_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    table_name: Mapped[str] = mapped_column(String(64))
    row_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    op: Mapped[str] = mapped_column(String(1))  # I, U, D
    organization_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SyncClock(Base):
    """MariaDB's commit clock: one row (id 1), bumped last in every writing transaction."""

    __tablename__ = "sync_clock"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    tick: Mapped[int] = mapped_column(BigInteger, default=0)


class SyncApplied(Base):
    """The server's answer to one pushed command, written in the same transaction as its
    effects (applied) or on its own (rejected): a command id seen again gets this answer."""

    __tablename__ = "sync_applied"

    command_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    replica_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    operator_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    kind: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(16))  # applied | rejected
    reason: Mapped[str] = mapped_column(Text, default="")
    checkpoint: Mapped[str] = mapped_column(String(64), default="")  # the log position
    applied_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SyncState(Base):
    """A replica's own state (one row, id 1): which server and operator it mirrors, its pull
    cursor (kept in the same transaction as the rows it applied) and the last round."""

    __tablename__ = "sync_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    replica_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    remote_label: Mapped[str] = mapped_column(String(500))  # the URL without its password
    operator_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    cursor: Mapped[str] = mapped_column(String(64), default="")
    snapshot_done: Mapped[bool] = mapped_column(Boolean, default=False)
    last_pull_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_push_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error: Mapped[str] = mapped_column(Text, default="")


class LocalChange(Base):
    """A row written on the replica (journal triggers), waiting to be pushed. `columns`: the
    columns the write changed, comma-separated; `base_version`: the row's version before the
    write (the server's version the edit was based on, for the first edit since a pull)."""

    __tablename__ = "local_change"
    __table_args__ = (Index("ix_local_change_command", "command_id", "seq"),
                      Index("ix_local_change_row", "table_name", "row_id"))

    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    table_name: Mapped[str] = mapped_column(String(64))
    row_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    op: Mapped[str] = mapped_column(String(1))  # I, U, D
    columns: Mapped[str] = mapped_column(Text, default="")
    base_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    command_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)


class SyncCommandState(StrEnum):
    PENDING = "pending"  # not yet answered by the server
    APPLIED = "applied"  # applied; its rows are protected until the cursor passes checkpoint
    CONFIRMED = "confirmed"  # applied and pulled back: nothing left to do
    REJECTED = "rejected"  # refused, with the reason; shown until the operator dismisses it


class SyncCommand(Base):
    """One offline edit, with the id the client gave it (the server applies it exactly once)."""

    __tablename__ = "sync_command"
    __table_args__ = (Index("ix_sync_command_state_seq", "state", "seq"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, unique=True)  # order of the local commits
    kind: Mapped[str] = mapped_column(String(64))
    operator_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    summary: Mapped[str] = mapped_column(Text, default="")  # what the operator did, in words
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    state: Mapped[str] = mapped_column(String(16), default=SyncCommandState.PENDING.value)
    reason: Mapped[str] = mapped_column(Text, default="")
    checkpoint: Mapped[str] = mapped_column(String(64), default="")
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    dismissed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class SyncApplying(Base):
    """Holds a row while a pull writes server rows into the replica, so the journal triggers
    (WHEN NOT EXISTS (SELECT 1 FROM sync_applying)) do not record them as local edits."""

    __tablename__ = "sync_applying"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)


# -- referral programme speed (issue 10, migration 0011) -------------------------------------


class ReferralPeriodStats(Base):
    """Per referrer and calendar period of the organization (local time): `period` is "all",
    a year "2026", a quarter "2026-Q1" or a month "2026-01". The leaderboard's figures of that
    period (summed from referral_month_stats) and its quality `score`, so that a leaderboard
    or conversion page of a month, quarter, year or all time is read in rank order from an
    index instead of aggregating every referrer. Kept by the reconciliation
    (services/referral_program/periods.py)."""

    __tablename__ = "referral_period_stats"
    __table_args__ = (
        Index("ix_referral_period_stats_rank", "organization_id", "period", "score", "reached",
              "referrer_id"),
        Index("ix_referral_period_stats_unit_rank", "organization_id", "period", "unit_id",
              "score", "reached", "referrer_id"),
        # covering: a conversion page's counts are read from the index alone
        Index("ix_referral_period_stats_sent", "organization_id", "period", "sent", "accepted",
              "referrer_id"),
        Index("ix_referral_period_stats_accepted", "organization_id", "period", "accepted",
              "sent", "referrer_id"),
    )

    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organization.id"),
                                                       primary_key=True)
    referrer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("member.id"), primary_key=True)
    period: Mapped[str] = mapped_column(String(8), primary_key=True)
    # the referrer's unit when the row was written (a unit's leaderboard pages by it)
    unit_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    score: Mapped[int] = mapped_column(Integer, default=0)
    completed: Mapped[int] = mapped_column(Integer, default=0)
    active: Mapped[int] = mapped_column(Integer, default=0)
    vested_points: Mapped[int] = mapped_column(Integer, default=0)
    vested: Mapped[int] = mapped_column(Integer, default=0)
    held_points: Mapped[int] = mapped_column(Integer, default=0)
    reached: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    sent: Mapped[int] = mapped_column(Integer, default=0)
    accepted: Mapped[int] = mapped_column(Integer, default=0)
