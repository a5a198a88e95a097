"""How members came in (`member_origin`): the channel for trends, the address as one person
for self-referral checks, disposable domains, and the portal's hashed IP / user agent.

The portal records an origin at registration (`record_registration`); `backfill` gives every
other member one (imported, created by an operator, or registered before the programme)."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from sqlalchemy import exists, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from invite_desk.services.models import (
    EventGuest,
    Member,
    MemberOrigin,
    PortalSecret,
    Referral,
    utcnow,
)
from invite_desk.services.referral_program.types import Channel

GMAIL_DOMAINS = frozenset({"gmail.com", "googlemail.com"})
FINGERPRINT_SECRET = "registration_fingerprint"


@lru_cache(maxsize=1)
def _disposable_domains() -> frozenset[str]:
    # The community-maintained list (pip package disposable-email-domains, updated monthly).
    from disposable_email_domains import blocklist

    return frozenset(domain.lower() for domain in blocklist)


def email_domain(email: str) -> str:
    return email.rpartition("@")[2].strip().lower()


def is_disposable(email: str) -> bool:
    domain = email_domain(email)
    parts = domain.split(".")
    # a subdomain of a listed domain is as disposable as the domain
    return any(".".join(parts[i:]) in _disposable_domains() for i in range(len(parts) - 1))


def email_key(email: str) -> str:
    """One person's address, however they decorate it: lower-case, '+tag' dropped, and for
    Gmail the dots too ('A.nn+x@gmail.com' and 'ann@googlemail.com' are the same inbox)."""
    local, _, domain = email.strip().lower().rpartition("@")
    if not local:
        return email.strip().lower()
    local = local.split("+", 1)[0]
    if domain in GMAIL_DOMAINS:
        local = local.replace(".", "")
        domain = "gmail.com"
    return f"{local}@{domain}"


def _secret(session: Session) -> str:
    row = session.get(PortalSecret, FINGERPRINT_SECRET)
    if row is not None:
        return row.value
    value = secrets.token_hex(32)
    try:
        with session.begin_nested():
            session.add(PortalSecret(name=FINGERPRINT_SECRET, value=value, created_at=utcnow()))
    except IntegrityError:  # another process made it first
        row = session.get(PortalSecret, FINGERPRINT_SECRET)
        assert row is not None
        return row.value
    return value


def fingerprint(session: Session, value: str | None) -> str | None:
    """sha256(secret + value): comparable between registrations, useless without the secret."""
    if not value:
        return None
    return hashlib.sha256((_secret(session) + value).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class RegistrationClient:
    """The browser a registration came from, as the portal saw it. Only hashes are stored."""

    ip: str | None
    user_agent: str | None


def record_registration(
    session: Session, *, member: Member, channel: Channel, at: datetime,
    client: RegistrationClient | None,
) -> None:
    """The portal's record of a new member: channel, address key, and hashes (never raw).
    A member who rejoins keeps their first origin."""
    if session.get(MemberOrigin, member.id) is not None:
        return
    ip = client.ip if client else None
    user_agent = client.user_agent if client else None
    session.add(MemberOrigin(
        member_id=member.id, organization_id=member.organization_id, channel=channel.value,
        joined_at=at, email_key=email_key(member.email_normalized),
        disposable=is_disposable(member.email_normalized),
        ip_hash=fingerprint(session, ip), ua_hash=fingerprint(session, user_agent),
        recorded_at=utcnow(),
    ))


def channel_of(session: Session, member_id: uuid.UUID) -> Channel:
    if session.scalar(select(exists().where(Referral.referee_id == member_id))):
        return Channel.REFERRAL
    if session.scalar(select(exists().where(EventGuest.member_id == member_id))):
        return Channel.EVENT_GUEST
    return Channel.IMPORTED


def backfill(session: Session, organization_id: uuid.UUID, chunk: int = 5000, *,
             since: datetime | None = None) -> int:
    """Give every member without an origin one (referral, event guest who joined, else
    imported); returns how many. With `since`, only members changed since then (a member is
    created with `updated_at` set, so a new one is among them)."""
    referred = exists().where(Referral.referee_id == Member.id)
    guest = exists().where(EventGuest.member_id == Member.id)
    missing = (
        select(Member.id, Member.email_normalized, Member.joined_at, referred, guest)
        .where(Member.organization_id == organization_id,
               ~exists().where(MemberOrigin.member_id == Member.id))
    )
    if since is not None:
        missing = missing.where(Member.updated_at > since)
    added = 0
    rows = session.execute(missing).all()
    for start in range(0, len(rows), chunk):
        values = [
            {"member_id": mid, "organization_id": organization_id,
             "channel": (Channel.REFERRAL if is_referred else
                         Channel.EVENT_GUEST if is_guest else Channel.IMPORTED).value,
             "joined_at": joined, "email_key": email_key(email), "disposable": is_disposable(email),
             "ip_hash": None, "ua_hash": None, "recorded_at": utcnow()}
            for mid, email, joined, is_referred, is_guest in rows[start:start + chunk]
        ]
        session.execute(insert(MemberOrigin), values)
        added += len(values)
    return added
