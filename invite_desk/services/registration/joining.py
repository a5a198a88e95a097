"""Register through an invitation link: one transaction, and one registration per link.

Two requests with the same token (a double click, two tabs) make one member: the invitation
is claimed first with a conditional UPDATE from a link status (`sent`, `uncertain`) to
`accepted`, and only the request whose UPDATE matched the row goes on. The unique
(organization, email) key on members is the last guard when two *different* invitations to one
address are used at the same moment. The loser is rolled back and told what the link shows now
(used, or already a member).

A membership registration:
- creates the member (role USER, the invitation's unit, `referred_by` = the inviter), active or,
  when adhesion is required, an applicant whose application is submitted;
- marks the invitation accepted (its hash is kept, so the link then says "already used");
- closes every other live membership invitation to that address as accepted through another
  invitation (`accepted_via = other_invitation`);
- when referral tracking is on, credits the inviter (with N >= 2 referrals needed: every member
  whose invitation counted) and the members who invited this person to events, `completed`,
  or `pending` while the application awaits approval.

An event invitation records the guest on the event (`event_guest`) and makes no member.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from invite_desk.services import audit, referrals
from invite_desk.services import settings as settings_service
from invite_desk.services.errors import Conflict
from invite_desk.services.models import (
    AcceptedVia,
    Event,
    EventGuest,
    Invitation,
    InvitationKind,
    InvitationStatus,
    MemberStatus,
    new_id,
    utcnow,
)
from invite_desk.services.referral_program import origin
from invite_desk.services.referral_program.types import Channel
from invite_desk.services.referrals import Credit
from invite_desk.services.registration.admission import (
    admit_member,
    close_invitations,
    event_guest_credits,
    rowcount,
)
from invite_desk.services.registration.branding import Branding, branding_of
from invite_desk.services.registration.busy import retry_when_busy
from invite_desk.services.registration.form import (
    CleanRegistration,
    RegistrationForm,
    check_form,
)
from invite_desk.services.registration.links import (
    LINK_STATUSES,
    LinkState,
    evaluate,
    find_invitation,
    live_invitations,
    open_link,
    referrals_needed,
    registered_member,
)
from invite_desk.services.settings_schema import PolicySettings
from invite_desk.services.uow import UnitOfWork

ATTEMPTS = 3


@dataclass(frozen=True)
class JoinResult:
    """`state` is VALID when the person was registered; otherwise it says which page to show
    instead (the link was used meanwhile, expired, ...)."""

    state: LinkState
    branding: Branding | None
    kind: InvitationKind = InvitationKind.MEMBERSHIP
    member_id: uuid.UUID | None = None
    guest_id: uuid.UUID | None = None
    first_name: str = ""
    application_pending: bool = False
    event_name: str = ""
    referrers_credited: int = 0

    @property
    def registered(self) -> bool:
        return self.state is LinkState.VALID


@dataclass(frozen=True)
class _Claimed:
    """The invitation's values, copied once the claim succeeded."""

    id: uuid.UUID
    organization_id: uuid.UUID
    email: str
    email_normalized: str
    inviter_id: uuid.UUID
    unit_id: uuid.UUID | None
    event_id: uuid.UUID | None


def register_with_invitation(
    uow: UnitOfWork,
    token: str,
    form: RegistrationForm,
    *,
    organization_id: uuid.UUID | None = None,
    now: datetime | None = None,
    busy_budget: float = 8.0,
    client: origin.RegistrationClient | None = None,
) -> JoinResult:
    """Register the holder of `token`. Raises ValidationFailed for form errors (field -> reason),
    SystemBusy when the database stays locked for `busy_budget` seconds; every other outcome
    is a JoinResult."""
    moment = now or utcnow()
    view = open_link(uow, token, organization_id=organization_id, now=moment)
    if view.state is not LinkState.VALID:
        return JoinResult(view.state, view.branding)
    # Checked and hashed before the transaction: argon2 never runs while holding a write lock.
    clean = check_form(form, needs_password=view.asks_password, needs_email=False)
    for _ in range(ATTEMPTS):
        try:
            result = retry_when_busy(
                lambda: _register(uow, token, clean, organization_id, moment, client),
                budget=busy_budget)
        except (IntegrityError, OperationalError):
            # A concurrent registration of the same address won (unique key), or the database
            # broke a deadlock between two of them: look again at what the link shows now.
            result = None
        if result is not None:
            return result
        view = open_link(uow, token, organization_id=organization_id, now=moment)
        if view.state is not LinkState.VALID:
            return JoinResult(view.state, view.branding)
    raise Conflict("The registration could not be completed just now. Please try again.")


def _register(
    uow: UnitOfWork,
    token: str,
    clean: CleanRegistration,
    organization_id: uuid.UUID | None,
    now: datetime,
    client: origin.RegistrationClient | None = None,
) -> JoinResult | None:
    """One attempt; None when the link's state changed and the caller should look again."""
    with uow:
        session = uow.session
        invitation = find_invitation(session, token, organization_id)
        if invitation is None:
            return None
        policy = settings_service.load(session, invitation.organization_id)
        state, _ = evaluate(session, invitation, policy, now)
        if state is not LinkState.VALID:
            return None
        claimed = _Claimed(
            invitation.id, invitation.organization_id, invitation.email,
            invitation.email_normalized, invitation.inviter_id, invitation.unit_id,
            invitation.event_id,
        )
        kind = InvitationKind(invitation.kind)
        # The claim, and the first write of the transaction (so SQLite takes its write lock
        # here and reads the newest data): only one request can move the row out of `sent`.
        won = session.execute(
            update(Invitation)
            .where(
                Invitation.id == claimed.id,
                Invitation.status.in_(LINK_STATUSES),
                or_(Invitation.expires_at.is_(None), Invitation.expires_at > now),
            )
            .values(
                status=InvitationStatus.ACCEPTED.value,
                accepted_at=now,
                accepted_via=AcceptedVia.LINK.value,
                version=Invitation.version + 1,
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        if rowcount(won) != 1:
            return None
        # The ORM copy is stale now; nothing below may flush it.
        session.expunge(invitation)
        if kind is InvitationKind.EVENT:
            result = _register_guest(session, claimed, clean, now)
        else:
            result = _register_member(session, claimed, clean, policy, now, client)
        if result is None:
            return None
        uow.commit()
        return result


def _link_member(session: Session, invitation_id: uuid.UUID, member_id: uuid.UUID) -> None:
    session.execute(
        update(Invitation)
        .where(Invitation.id == invitation_id)
        .values(accepted_member_id=member_id, version=Invitation.version + 1)
        .execution_options(synchronize_session=False)
    )


def _register_member(
    session: Session,
    claimed: _Claimed,
    clean: CleanRegistration,
    policy: PolicySettings,
    now: datetime,
    client: origin.RegistrationClient | None = None,
) -> JoinResult | None:
    existing = registered_member(session, claimed.organization_id, claimed.email_normalized)
    if existing is not None and existing.status != MemberStatus.DEACTIVATED.value:
        return None
    member = admit_member(
        session,
        organization_id=claimed.organization_id,
        email=claimed.email,
        email_normalized=claimed.email_normalized,
        registration=clean,
        unit_id=claimed.unit_id,
        referred_by_id=claimed.inviter_id,
        adhesion_required=policy.adhesion_required,
        via="invitation",
        now=now,
        rejoining=existing,
    )
    _link_member(session, claimed.id, member.id)
    audit.record(
        session, organization_id=claimed.organization_id, actor_id=member.id,
        action="invitation.accepted", entity_type="invitation", entity_id=claimed.id,
        before={"status": "sent"},
        after={"status": "accepted", "accepted_via": AcceptedVia.LINK.value, "member": member.id},
    )
    others = [
        live for live in live_invitations(
            session, claimed.organization_id, claimed.email_normalized, now
        )
        if live.id != claimed.id
    ]
    closed = close_invitations(
        session, others, organization_id=claimed.organization_id, member_id=member.id,
        via=AcceptedVia.OTHER_INVITATION, now=now,
    )
    credits = [Credit(claimed.inviter_id, claimed.id)]
    needed = referrals_needed(policy)
    if needed >= 2:
        # Invite-only with N >= 2: every member whose live invitation counted is a referrer,
        # and there must still be N of them (one may have been revoked meanwhile).
        credits += [Credit(live.inviter_id, live.id) for live in closed]
        if len({credit.referrer_id for credit in credits}) < needed:
            return None
    credits += event_guest_credits(
        session, organization_id=claimed.organization_id,
        email_normalized=claimed.email_normalized, member_id=member.id,
    )
    recorded: list[uuid.UUID] = []
    if policy.referral_is_active:
        recorded = referrals.record(
            session, organization_id=claimed.organization_id, referee_id=member.id,
            credits=credits, pending=policy.adhesion_required, at=now,
        )
    # Invited in: the referral channel, with the browser's hashed address (issue 10).
    origin.record_registration(session, member=member, channel=Channel.REFERRAL, at=now,
                               client=client)
    session.flush()
    return JoinResult(
        LinkState.VALID,
        branding_of(session, claimed.organization_id),
        kind=InvitationKind.MEMBERSHIP,
        member_id=member.id,
        first_name=member.first_name or member.display_name,
        application_pending=policy.adhesion_required,
        referrers_credited=len(recorded),
    )


def _register_guest(
    session: Session, claimed: _Claimed, clean: CleanRegistration, now: datetime
) -> JoinResult | None:
    member = registered_member(session, claimed.organization_id, claimed.email_normalized)
    member_id = (
        member.id
        if member is not None and member.status != MemberStatus.DEACTIVATED.value
        else None
    )
    event = session.get(Event, claimed.event_id) if claimed.event_id else None
    if event is None:
        return None
    guest = EventGuest(
        id=new_id(),
        organization_id=claimed.organization_id,
        event_id=event.id,
        invitation_id=claimed.id,
        email=claimed.email,
        email_normalized=claimed.email_normalized,
        first_name=clean.first_name,
        last_name=clean.last_name,
        member_id=member_id,
        registered_at=now,
    )
    session.add(guest)
    session.flush()  # a concurrent registration for the same event fails here (unique key)
    if member_id is not None:
        _link_member(session, claimed.id, member_id)
    audit.record(
        session, organization_id=claimed.organization_id, actor_id=None,
        action="event_guest.registered", entity_type="event_guest", entity_id=guest.id,
        after={"event": event.id, "invitation": claimed.id, "email": claimed.email},
    )
    others = [
        live for live in live_invitations(
            session, claimed.organization_id, claimed.email_normalized, now,
            kind=InvitationKind.EVENT, event_id=event.id,
        )
        if live.id != claimed.id
    ]
    close_invitations(
        session, others, organization_id=claimed.organization_id, member_id=member_id,
        via=AcceptedVia.OTHER_INVITATION, now=now,
    )
    return JoinResult(
        LinkState.VALID,
        branding_of(session, claimed.organization_id),
        kind=InvitationKind.EVENT,
        guest_id=guest.id,
        first_name=clean.first_name or clean.display_name,
        event_name=event.name,
    )
