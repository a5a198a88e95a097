"""Public registration with a confirmed address (how Discourse and Mastodon do it).

`request_registration` checks the form, hashes the password and answers the same way for
every address ("check your inbox"), so the page never tells whether an address is a member,
invited, or new. What differs is only the email sent to that address, which only its owner
reads:

- a new address: a confirmation link (a random token; only its SHA-256 is stored in
  `pending_registration`, valid CONFIRM_HOURS hours, single use);
- an address with a live invitation: the same link, and the email says who invited them and
  that confirming accepts that invitation (the inviter is credited, as when the invitation
  link is used); the invitation's own link keeps working until then;
- a member's address: "you already have an account", no link; nothing changes.

The member exists only once `confirm_registration` runs for the link: someone who types
another person's address gets nothing, and the real owner's invitation link still works.
At most EMAILS_PER_ADDRESS confirmation emails go to one address per hour (the page answers
the same when one is not sent).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from invite_desk.services import audit
from invite_desk.services import settings as settings_service
from invite_desk.services.auth import normalize_email
from invite_desk.services.invitations.tokens import hash_token, new_token
from invite_desk.services.models import (
    AuditLog,
    Member,
    Organization,
    PendingRegistration,
    utcnow,
)
from invite_desk.services.referral_program.origin import RegistrationClient
from invite_desk.services.registration.admission import rowcount
from invite_desk.services.registration.branding import Branding, branding_of
from invite_desk.services.registration.busy import retry_when_busy
from invite_desk.services.registration.form import (
    CleanRegistration,
    RegistrationForm,
    check_form,
)
from invite_desk.services.registration.links import (
    live_invitations,
    referrals_needed,
    registered_member,
)
from invite_desk.services.registration.public import (
    PublicState,
    PublicView,
    admit_publicly,
    public_registration,
    record_repeated,
)
from invite_desk.services.uow import UnitOfWork

CONFIRM_HOURS = 48
EMAILS_PER_ADDRESS = 3  # per hour
_TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{16,128}")


class EmailKind(StrEnum):
    CONFIRM = "confirm"  # a new address: the confirmation link
    INVITED = "invited"  # the address holds a live invitation: the link, and who invited them
    MEMBER = "member"  # already a member: no link


@dataclass(frozen=True)
class ConfirmationEmail:
    """The email to send for a registration request (plain text)."""

    to: str
    subject: str
    text: str
    kind: EmailKind


@dataclass(frozen=True)
class RegistrationRequest:
    """`view.state` OPEN: answer "check your inbox" and send `email` (None when the hourly
    cap for the address was reached: the answer is the same). Any other state: show `view`."""

    view: PublicView
    email: ConfirmationEmail | None = None


def confirmation_link(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/confirm/{token}"


def request_registration(
    uow: UnitOfWork,
    organization_id: uuid.UUID | None,
    form: RegistrationForm,
    *,
    now: datetime | None = None,
    busy_budget: float = 8.0,
) -> RegistrationRequest:
    """Check the form (ValidationFailed), hash the password, and record what to email.
    Raises SystemBusy when the database stays locked for `busy_budget` seconds."""
    moment = now or utcnow()
    view = public_registration(uow, organization_id, confirm_by_email=True)
    if view.state is not PublicState.OPEN or organization_id is None:
        return RegistrationRequest(view)
    clean = check_form(form, needs_password=view.asks_password, needs_email=True)
    return retry_when_busy(
        lambda: _record_request(uow, organization_id, view, clean, moment), budget=busy_budget
    )


def _record_request(
    uow: UnitOfWork, organization_id: uuid.UUID, view: PublicView, clean: CleanRegistration,
    moment: datetime,
) -> RegistrationRequest:
    key = normalize_email(clean.email)
    with uow:
        session = uow.session
        policy = settings_service.load(session, organization_id)
        if referrals_needed(policy) >= 1:  # switched to invite-only meanwhile
            return RegistrationRequest(public_registration(uow, organization_id))
        org = session.get(Organization, organization_id)
        assert org is not None
        since = moment - timedelta(hours=1)
        existing = registered_member(session, organization_id, key)
        if existing is not None:
            recent = session.scalar(select(func.count()).select_from(AuditLog).where(
                AuditLog.entity_id == existing.id, AuditLog.action == "registration.repeated",
                AuditLog.at > since))
            record_repeated(session, organization_id, existing.id)
            uow.commit()
            if (recent or 0) >= EMAILS_PER_ADDRESS:
                return RegistrationRequest(view)
            return RegistrationRequest(view, _member_email(org.name, clean.email))
        recent = session.scalar(select(func.count()).select_from(PendingRegistration).where(
            PendingRegistration.organization_id == organization_id,
            PendingRegistration.email_normalized == key,
            PendingRegistration.created_at > since))
        if (recent or 0) >= EMAILS_PER_ADDRESS:
            return RegistrationRequest(view)
        token, token_hash = new_token()
        pending = PendingRegistration(
            organization_id=organization_id, email=clean.email, email_normalized=key,
            first_name=clean.first_name, last_name=clean.last_name,
            password_hash=clean.password_hash, token_hash=token_hash,
            expires_at=moment + timedelta(hours=CONFIRM_HOURS),
        )
        session.add(pending)
        session.flush()
        live = live_invitations(session, organization_id, key, moment)
        inviter = session.get(Member, live[0].inviter_id) if live else None
        audit.record(
            session, organization_id=organization_id, actor_id=None,
            action="registration.requested", entity_type="pending_registration",
            entity_id=pending.id,
            after={"email": clean.email, "invited": bool(live),
                   "expires_at": pending.expires_at},
        )
        uow.commit()
        link = confirmation_link(org.registration_base_url, token)
        name = clean.first_name or clean.display_name
        if inviter is not None:
            return RegistrationRequest(view, _invited_email(
                org.name, clean.email, name, link, inviter.display_name))
        return RegistrationRequest(view, _confirm_email(org.name, clean.email, name, link))


def _confirm_email(org: str, to: str, name: str, link: str) -> ConfirmationEmail:
    text = (
        f"Hello {name},\n\n"
        f"someone, hopefully you, asked to join {org} with this email address.\n\n"
        f"To confirm and finish your registration, open this link within {CONFIRM_HOURS} "
        f"hours:\n\n{link}\n\n"
        "If this was not you, ignore this email: nothing happens without the link.\n"
    )
    return ConfirmationEmail(to, f"Confirm your registration with {org}", text,
                             EmailKind.CONFIRM)


def _invited_email(org: str, to: str, name: str, link: str, inviter: str) -> ConfirmationEmail:
    text = (
        f"Hello {name},\n\n"
        f"someone, hopefully you, asked to join {org} with this email address.\n\n"
        f"You already have an invitation from {inviter}. You can use the link in that "
        "invitation email, or confirm here: confirming this registration accepts the "
        f"invitation, and {inviter} is credited for inviting you.\n\n"
        f"To confirm, open this link within {CONFIRM_HOURS} hours:\n\n{link}\n\n"
        "If this was not you, ignore this email: nothing happens without the link, and your "
        "invitation stays as it is.\n"
    )
    return ConfirmationEmail(to, f"Confirm your registration with {org}", text,
                             EmailKind.INVITED)


def _member_email(org: str, to: str) -> ConfirmationEmail:
    text = (
        f"Hello,\n\nsomeone, hopefully you, asked to register with {org} using this email "
        "address. You already have an account with this address, so nothing was changed.\n\n"
        "If you forgot your password, ask the organization's office. If this was not you, "
        "ignore this email.\n"
    )
    return ConfirmationEmail(to, f"Your registration with {org}", text, EmailKind.MEMBER)


class ConfirmState(StrEnum):
    READY = "ready"  # (checking only) the link works: show the confirm button
    CONFIRMED = "confirmed"  # the member exists now
    ALREADY_MEMBER = "already_member"  # the address was registered meanwhile
    USED = "used"  # this link was followed before
    EXPIRED = "expired"
    CLOSED = "closed"  # public registration was switched off meanwhile
    INVALID = "invalid"  # unknown: counts towards the bad-token limit


@dataclass(frozen=True)
class ConfirmResult:
    state: ConfirmState
    branding: Branding | None
    first_name: str = ""
    application_pending: bool = False
    member_id: uuid.UUID | None = None


def confirm_registration(
    uow: UnitOfWork,
    token: str,
    organization_id: uuid.UUID | None,
    *,
    now: datetime | None = None,
    busy_budget: float = 8.0,
    client: RegistrationClient | None = None,
) -> ConfirmResult:
    """Follow a confirmation link: admit the person (single use). Raises SystemBusy when the
    database stays locked for `busy_budget` seconds."""
    moment = now or utcnow()
    return retry_when_busy(lambda: _confirm(uow, token, organization_id, moment, client=client),
                           budget=busy_budget)


def check_confirmation(
    uow: UnitOfWork, token: str, organization_id: uuid.UUID | None, *,
    now: datetime | None = None,
) -> ConfirmResult:
    """What the confirmation link's page shows, changing nothing: READY (a button that
    confirms, so a mail scanner that opens links does not register anyone), USED, EXPIRED,
    CLOSED or INVALID."""
    return _confirm(uow, token, organization_id, now or utcnow(), claim=False)


def _confirm(
    uow: UnitOfWork, token: str, organization_id: uuid.UUID | None, moment: datetime,
    *, claim: bool = True, client: RegistrationClient | None = None,
) -> ConfirmResult:
    with uow:
        session = uow.session
        branding = branding_of(session, organization_id) if organization_id else None
        pending = None
        if _TOKEN_SHAPE.fullmatch(token):
            pending = session.scalar(select(PendingRegistration).where(
                PendingRegistration.token_hash == hash_token(token)))
        if pending is None or (organization_id is not None
                               and pending.organization_id != organization_id):
            return ConfirmResult(ConfirmState.INVALID, branding)
        org_id = pending.organization_id
        branding = branding_of(session, org_id)
        if pending.confirmed_at is not None:
            return ConfirmResult(ConfirmState.USED, branding)
        if pending.expires_at <= moment:
            return ConfirmResult(ConfirmState.EXPIRED, branding)
        policy = settings_service.load(session, org_id)
        if referrals_needed(policy) >= 1:
            return ConfirmResult(ConfirmState.CLOSED, branding)
        if not claim:
            return ConfirmResult(ConfirmState.READY, branding, first_name=pending.first_name)
        claimed = session.execute(
            update(PendingRegistration)
            .where(PendingRegistration.id == pending.id,
                   PendingRegistration.confirmed_at.is_(None))
            .values(confirmed_at=moment, version=PendingRegistration.version + 1,
                    updated_at=moment)
            .execution_options(synchronize_session=False)
        )
        if rowcount(claimed) != 1:
            return ConfirmResult(ConfirmState.USED, branding)
        audit.record(session, organization_id=org_id, actor_id=None,
                     action="registration.confirmed", entity_type="pending_registration",
                     entity_id=pending.id, after={"email": pending.email})
        existing = registered_member(session, org_id, pending.email_normalized)
        if existing is not None:
            record_repeated(session, org_id, existing.id)
            uow.commit()
            return ConfirmResult(ConfirmState.ALREADY_MEMBER, branding)
        clean = CleanRegistration(pending.first_name, pending.last_name,
                                  pending.password_hash, pending.email)
        try:
            member = admit_publicly(session, org_id, clean, pending.email_normalized, policy,
                                    moment, client=client)
            uow.commit()
        except IntegrityError:
            return ConfirmResult(ConfirmState.ALREADY_MEMBER, branding)
        return ConfirmResult(ConfirmState.CONFIRMED, branding, first_name=pending.first_name,
                             application_pending=policy.adhesion_required, member_id=member.id)
