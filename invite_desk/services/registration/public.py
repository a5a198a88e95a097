"""The public registration page: open registration, or the invite-only notice.

`numberOfReferralsNeededForSignup` 0 or empty: anyone may register here. 1 or more: public
registration is off; the page explains the invite-only policy and nothing can be submitted.

The answer never tells whether an address is already registered: a new address and a known one
get the same "registration received" result (worded so that it is true for both), the password
is hashed in both cases before the database is touched (so the time taken does not tell
either), and a known member's row is never changed from this page. A repeated registration
writes only an audit row.

Live invitations to the address are closed (`accepted_via = public_registration`): the member
who sent the oldest one becomes the referrer (and gives the unit), and members who invited the
person to events are credited too. The address is not proven on this page (the portal sends no
email); organizations that need proven addresses use invite-only mode or adhesion.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy.exc import IntegrityError

from invite_desk.services import audit, referrals
from invite_desk.services import settings as settings_service
from invite_desk.services.auth import normalize_email
from invite_desk.services.models import AcceptedVia, utcnow
from invite_desk.services.referrals import Credit
from invite_desk.services.registration.admission import (
    admit_member,
    close_invitations,
    event_guest_credits,
)
from invite_desk.services.registration.branding import Branding, branding_of
from invite_desk.services.registration.form import RegistrationForm, check_form
from invite_desk.services.registration.links import (
    live_invitations,
    referrals_needed,
    registered_member,
)
from invite_desk.services.uow import UnitOfWork


class PublicState(StrEnum):
    OPEN = "open"  # the form (or, after submitting, "registration received")
    INVITE_ONLY = "invite_only"  # the invite-only notice
    NOT_SET_UP = "not_set_up"  # no organization in this database yet


@dataclass(frozen=True)
class PublicView:
    state: PublicState
    branding: Branding | None
    referrals_needed: int = 0
    asks_password: bool = True
    adhesion_required: bool = False


def public_registration(uow: UnitOfWork, organization_id: uuid.UUID | None) -> PublicView:
    """What /register shows."""
    if organization_id is None:
        return PublicView(PublicState.NOT_SET_UP, None)
    with uow:
        branding = branding_of(uow.session, organization_id)
        if branding is None:
            return PublicView(PublicState.NOT_SET_UP, None)
        policy = settings_service.load(uow.session, organization_id)
    needed = referrals_needed(policy)
    return PublicView(
        PublicState.INVITE_ONLY if needed >= 1 else PublicState.OPEN,
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
    """Register from the public page. Raises ValidationFailed for form errors; otherwise returns
    the view to answer with: OPEN means "registration received" (for a new address and a known
    one alike), INVITE_ONLY that public registration is off."""
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
                audit.record(
                    session, organization_id=organization_id, actor_id=None,
                    action="registration.repeated", entity_type="member", entity_id=existing.id,
                    after={"via": "public registration page", "changed": False},
                )
                uow.commit()
                return view
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
            uow.commit()
    except IntegrityError:
        # The same address registered by a concurrent request: the same answer.
        pass
    return view
