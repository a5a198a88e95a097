"""The public registration page: open registration, or the invite-only notice.

`numberOfReferralsNeededForSignup` 0 or empty: anyone may register here. 1 or more: public
registration is off; the page explains the invite-only policy and nothing can be submitted.

The answer never tells whether an address is already registered: a new address and a known one
get the same "registration received" result (worded so that it is true for both), the password
is hashed in both cases before the database is touched (so the time taken does not tell
either), and a known member's row is never changed from this page. A repeated registration
writes only an audit row.

The portal proves the address first (`confirmation`): the form makes a pending registration
and emails a confirmation link; the member exists only once the link is followed. Then live
invitations to the address are closed (`accepted_via = public_registration`): the member who
sent the oldest one becomes the referrer (and gives the unit), and members who invited the
person to events are credited too.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from invite_desk.services import audit, referrals
from invite_desk.services import settings as settings_service
from invite_desk.services.auth import normalize_email
from invite_desk.services.mail_settings import load_mail_settings
from invite_desk.services.models import AcceptedVia, Member, Organization, utcnow
from invite_desk.services.referral_program import origin
from invite_desk.services.referral_program.types import Channel
from invite_desk.services.referrals import Credit
from invite_desk.services.registration.admission import (
    admit_member,
    close_invitations,
    event_guest_credits,
)
from invite_desk.services.registration.branding import Branding, branding_of
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
from invite_desk.services.settings_schema import PolicySettings
from invite_desk.services.uow import UnitOfWork


class PublicState(StrEnum):
    OPEN = "open"  # the form (or, after submitting, "registration received")
    INVITE_ONLY = "invite_only"  # the invite-only notice
    NOT_SET_UP = "not_set_up"  # no organization in this database yet
    # Registration confirms the address by email, and the organization's SMTP server or the
    # portal's web address is not set up: nothing can be registered.
    NO_EMAIL = "no_email"


@dataclass(frozen=True)
class PublicView:
    state: PublicState
    branding: Branding | None
    referrals_needed: int = 0
    asks_password: bool = True
    adhesion_required: bool = False


def public_registration(
    uow: UnitOfWork, organization_id: uuid.UUID | None, *, confirm_by_email: bool = False
) -> PublicView:
    """What /register shows. With `confirm_by_email` (the portal), OPEN also needs the
    organization's SMTP server and registration web address, to send the confirmation link."""
    if organization_id is None:
        return PublicView(PublicState.NOT_SET_UP, None)
    with uow:
        branding = branding_of(uow.session, organization_id)
        if branding is None:
            return PublicView(PublicState.NOT_SET_UP, None)
        policy = settings_service.load(uow.session, organization_id)
        can_email = True
        if confirm_by_email:
            org = uow.session.get(Organization, organization_id)
            can_email = (load_mail_settings(uow.session, organization_id).configured
                         and org is not None and bool(org.registration_base_url.strip()))
    needed = referrals_needed(policy)
    state = PublicState.OPEN if can_email else PublicState.NO_EMAIL
    return PublicView(
        PublicState.INVITE_ONLY if needed >= 1 else state,
        branding,
        referrals_needed=needed,
        asks_password=policy.registration_asks_password,
        adhesion_required=policy.adhesion_required,
    )


def register_publicly(
    uow: UnitOfWork,
    organization_id: uuid.UUID | None,
    form: RegistrationForm,
    *,
    now: datetime | None = None,
) -> PublicView:
    """Register a person whose address is already proven (the portal reaches this only
    through `confirmation.confirm_registration`, after the emailed link was followed; desktop
    tools and tests may call it directly). Raises ValidationFailed for form errors; otherwise
    returns the view to answer with: OPEN means "registration received" (for a new address and
    a known one alike), INVITE_ONLY that public registration is off."""
    moment = now or utcnow()
    view = public_registration(uow, organization_id)
    if view.state is not PublicState.OPEN or organization_id is None:
        return view
    clean = check_form(form, needs_password=view.asks_password, needs_email=True)
    key = normalize_email(clean.email)
    try:
        with uow:
            session = uow.session
            policy = settings_service.load(session, organization_id)
            if referrals_needed(policy) >= 1:  # switched to invite-only meanwhile
                return public_registration(uow, organization_id)
            existing = registered_member(session, organization_id, key)
            if existing is not None:
                record_repeated(session, organization_id, existing.id)
                uow.commit()
                return view
            admit_publicly(session, organization_id, clean, key, policy, moment)
            uow.commit()
    except IntegrityError:
        # The same address registered by a concurrent request: the same answer.
        pass
    return view


def record_repeated(session: Session, organization_id: uuid.UUID, member_id: uuid.UUID) -> None:
    audit.record(
        session, organization_id=organization_id, actor_id=None,
        action="registration.repeated", entity_type="member", entity_id=member_id,
        after={"via": "public registration page", "changed": False},
    )


def admit_publicly(
    session: Session,
    organization_id: uuid.UUID,
    clean: CleanRegistration,
    key: str,
    policy: PolicySettings,
    moment: datetime,
    *,
    client: origin.RegistrationClient | None = None,
) -> Member:
    """Admit a person with a proven address from the public page: their live invitations are
    accepted through it (the oldest one's inviter is the referrer and gives the unit), and
    members who invited them to events are credited too. The caller commits."""
    live = live_invitations(session, organization_id, key, moment)
    first = live[0] if live else None
    member = admit_member(
        session,
        organization_id=organization_id,
        email=clean.email,
        email_normalized=key,
        registration=clean,
        unit_id=first.unit_id if first else None,
        referred_by_id=first.inviter_id if first else None,
        adhesion_required=policy.adhesion_required,
        via="public registration page",
        now=moment,
    )
    closed = close_invitations(
        session, live, organization_id=organization_id, member_id=member.id,
        via=AcceptedVia.PUBLIC_REGISTRATION, now=moment,
    )
    credits = [Credit(first.inviter_id, first.id)] if first and first in closed else []
    guest_credits = event_guest_credits(
        session, organization_id=organization_id, email_normalized=key,
        member_id=member.id,
    )
    if member.referred_by_id is None and guest_credits:
        member.referred_by_id = guest_credits[0].referrer_id
    credits += guest_credits
    if policy.referral_is_active:
        referrals.record(
            session, organization_id=organization_id, referee_id=member.id,
            credits=credits, pending=policy.adhesion_required, at=moment,
        )
    invited = bool(first and first in closed)
    channel = (Channel.REFERRAL if invited else Channel.EVENT_GUEST if guest_credits
               else Channel.PUBLIC)
    origin.record_registration(session, member=member, channel=channel, at=moment,
                               client=client)
    return member
