"""What an invitation link shows: the registration form, or why it cannot be used.

The link carries a token; the database keeps only its SHA-256 (`invitations/tokens.py`). A
token is looked up by its hash and then compared in constant time.

States, and what each page may say:
- VALID: the form (branding, inviter, personal message, the invitation's address).
- EXPIRED / USED: the holder of the link knows it existed, so the page may say so.
- NOT_READY: the invitation is being sent this very moment; try again shortly.
- REVOKED / SUPERSEDED: the link worked once and was withdrawn, or replaced by a newer one
  (`retired_link` keeps the hashes of such links): the holder of the link knows it existed,
  so the page says which, and whom to ask (the inviter, the organization's address).
- REPLACED: closed as a duplicate by a sync push (two desktops invited the address offline):
  another invitation to the same address is the valid one (`registration/replaced.py`); the
  page says so, and what became of that one, never its link or anything about other addresses.
- INVALID: unknown, failed or never sent. One page for all of them that reveals
  nothing (whether the link ever existed, or why it stopped working); these count towards the
  bad-token limit.
- ALREADY_MEMBER: the invitation's address is already registered (told only to someone who
  holds a link mailed to that address).
- NEEDS_MORE_INVITATIONS: invite-only with N >= 2 and fewer than N distinct members have
  invited this address (the page says how many more, never who).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from invite_desk.services import settings as settings_service
from invite_desk.services.invitations.tokens import hash_token, hashes_match
from invite_desk.services.mail_settings import load_mail_settings
from invite_desk.services.models import (
    Event,
    EventGuest,
    Invitation,
    InvitationKind,
    InvitationStatus,
    Member,
    MemberStatus,
    RetiredLink,
    utcnow,
)
from invite_desk.services.registration.branding import Branding, branding_of
from invite_desk.services.settings_schema import PolicySettings
from invite_desk.services.uow import UnitOfWork

# Invitations whose link works: sent, or uncertain (the server may well have delivered it, and
# a person presenting the token proves that it did).
LINK_STATUSES = (InvitationStatus.SENT.value, InvitationStatus.UNCERTAIN.value)

# secrets.token_urlsafe(32) makes 43 characters; anything far from that is not ours.
_TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{16,128}")


class LinkState(StrEnum):
    VALID = "valid"
    NEEDS_MORE_INVITATIONS = "needs_more_invitations"
    ALREADY_MEMBER = "already_member"
    EXPIRED = "expired"
    USED = "used"
    NOT_READY = "not_ready"
    REVOKED = "revoked"  # withdrawn by the organization
    SUPERSEDED = "superseded"  # a newer link was sent (resend, fresh link)
    REPLACED = "replaced"  # closed as a duplicate: another invitation to the address is valid
    INVALID = "invalid"

    @property
    def is_bad_token(self) -> bool:
        """Whether this answer counts towards the per-client limit on bad tokens."""
        return self is LinkState.INVALID


@dataclass(frozen=True)
class EventSummary:
    name: str
    starts_at: datetime | None
    location: str


@dataclass(frozen=True)
class JoinView:
    """Everything the join page shows. Fields beyond `state` and `branding` are filled only
    for the states that may show them."""

    state: LinkState
    branding: Branding | None
    kind: InvitationKind = InvitationKind.MEMBERSHIP
    email: str = ""
    first_name: str = ""  # prefilled from the name the inviter typed
    last_name: str = ""
    inviter_name: str = ""
    personal_message: str = ""
    event: EventSummary | None = None
    asks_password: bool = False
    adhesion_required: bool = False
    invitations_needed: int = 0  # N when invite-only needs N >= 2 distinct members
    invitations_held: int = 0  # distinct members whose live invitations this address holds
    expires_at: datetime | None = None
    contact: str = ""  # the organization's email address, on the REVOKED page
    # REPLACED: what became of the invitation that is valid (registration/replaced.py's
    # Current), and whether its link may be emailed again from this page.
    current: str = ""
    can_request_link: bool = False

    @property
    def invitations_missing(self) -> int:
        return max(0, self.invitations_needed - self.invitations_held)


def find_invitation(
    session: Session, token: str, organization_id: uuid.UUID | None
) -> Invitation | None:
    """The invitation this token opens, or None. Looked up by hash, compared in constant time."""
    if not _TOKEN_SHAPE.fullmatch(token):
        return None
    invitation = session.scalar(select(Invitation).where(Invitation.token_hash == hash_token(token)))
    if invitation is None or invitation.token_hash is None:
        return None
    if not hashes_match(invitation.token_hash, token):
        return None
    if organization_id is not None and invitation.organization_id != organization_id:
        return None
    return invitation


def status_state(invitation: Invitation, now: datetime) -> LinkState:
    """The state the invitation's own status gives, before anything about the person."""
    status = invitation.status
    if status == InvitationStatus.ACCEPTED.value:
        return LinkState.USED
    if status == InvitationStatus.EXPIRED.value:
        return LinkState.EXPIRED
    if status == InvitationStatus.SENDING.value:
        return LinkState.NOT_READY
    if status in LINK_STATUSES:
        # Expired the moment expires_at passes, whatever the status column still says.
        if invitation.expires_at is not None and invitation.expires_at <= now:
            return LinkState.EXPIRED
        return LinkState.VALID
    return LinkState.INVALID  # revoked, failed, draft, queued


def is_live(status: str, expires_at: datetime | None, now: datetime) -> bool:
    return status in LINK_STATUSES and (expires_at is None or expires_at > now)


@dataclass(frozen=True)
class LiveInvitation:
    id: uuid.UUID
    inviter_id: uuid.UUID
    unit_id: uuid.UUID | None
    sent_at: datetime | None


def live_invitations(
    session: Session,
    organization_id: uuid.UUID,
    email_normalized: str,
    now: datetime,
    *,
    kind: InvitationKind = InvitationKind.MEMBERSHIP,
    event_id: uuid.UUID | None = None,
) -> list[LiveInvitation]:
    """Invitations to this address whose link still works, oldest first (plain rows: the
    caller may already have changed some of them with a Core UPDATE)."""
    rows = session.execute(
        select(Invitation.id, Invitation.inviter_id, Invitation.unit_id, Invitation.status,
               Invitation.expires_at,
               Invitation.kind, Invitation.event_id, Invitation.sent_at, Invitation.created_at)
        .where(Invitation.organization_id == organization_id,
               Invitation.email_normalized == email_normalized)
    ).all()
    live = [
        row for row in rows
        if is_live(row.status, row.expires_at, now) and row.kind == kind.value
        and (event_id is None or row.event_id == event_id)
    ]
    live.sort(key=lambda row: (row.sent_at or row.created_at, row.id))
    return [LiveInvitation(row.id, row.inviter_id, row.unit_id, row.sent_at) for row in live]


def registered_member(
    session: Session, organization_id: uuid.UUID, email_normalized: str
) -> Member | None:
    """The member with this address, in any status."""
    return session.scalar(
        select(Member).where(
            Member.organization_id == organization_id,
            Member.email_normalized == email_normalized,
        )
    )


def referrals_needed(policy: PolicySettings) -> int:
    return policy.number_of_referrals_needed_for_signup or 0


def evaluate(
    session: Session, invitation: Invitation, policy: PolicySettings, now: datetime
) -> tuple[LinkState, int]:
    """The link's state for this person, and how many distinct members have invited them."""
    state = status_state(invitation, now)
    if state is not LinkState.VALID:
        return state, 0
    if invitation.kind == InvitationKind.EVENT.value:
        event = session.get(Event, invitation.event_id) if invitation.event_id else None
        if event is None or event.archived:
            return LinkState.EXPIRED, 0
        guest = session.scalar(
            select(EventGuest.id).where(
                EventGuest.event_id == event.id,
                EventGuest.email_normalized == invitation.email_normalized,
            )
        )
        return (LinkState.USED if guest is not None else LinkState.VALID), 0
    member = registered_member(session, invitation.organization_id, invitation.email_normalized)
    if member is not None and member.status != MemberStatus.DEACTIVATED.value:
        return LinkState.ALREADY_MEMBER, 0
    inviters = {
        live.inviter_id
        for live in live_invitations(
            session, invitation.organization_id, invitation.email_normalized, now
        )
    }
    needed = referrals_needed(policy)
    if needed >= 2 and len(inviters) < needed:
        return LinkState.NEEDS_MORE_INVITATIONS, len(inviters)
    return LinkState.VALID, len(inviters)


def split_name(name: str) -> tuple[str, str]:
    """'Zoë Martin' -> ('Zoë', 'Martin'): a prefill the invitee can correct."""
    parts = name.split()
    if not parts:
        return "", ""
    if len(parts) == 1:
        return parts[0], ""
    return " ".join(parts[:-1]), parts[-1]


def _inviter_name(session: Session, member_id: uuid.UUID) -> str:
    member = session.get(Member, member_id)
    return member.display_name if member is not None else "A member"


def open_link(
    uow: UnitOfWork,
    token: str,
    *,
    organization_id: uuid.UUID | None = None,
    now: datetime | None = None,
) -> JoinView:
    """What the page for this link shows. `organization_id` is the portal's organization:
    tokens of any other organization are INVALID there."""
    moment = now or utcnow()
    with uow:
        session = uow.session
        invitation = find_invitation(session, token, organization_id)
        if invitation is None:
            retired = retired_link_view(session, token, organization_id)
            if retired is not None:
                return retired
            branding = branding_of(session, organization_id) if organization_id else None
            return JoinView(LinkState.INVALID, branding)
        if invitation.status == InvitationStatus.REVOKED.value:
            from invite_desk.services.registration.replaced import replaced_view

            replaced = replaced_view(session, invitation, moment)
            if replaced is not None:
                return replaced
            # Revoke keeps the hash (so it can be undone): the holder of the link knows it existed.
            return _revoked_view(session, invitation)
        branding = branding_of(session, invitation.organization_id)
        policy = settings_service.load(session, invitation.organization_id)
        state, held = evaluate(session, invitation, policy, moment)
        if state in (LinkState.INVALID, LinkState.EXPIRED, LinkState.USED, LinkState.NOT_READY):
            return JoinView(state, branding)
        kind = InvitationKind(invitation.kind)
        inviter = _inviter_name(session, invitation.inviter_id)
        if state is LinkState.ALREADY_MEMBER:
            return JoinView(state, branding, kind=kind, email=invitation.email)
        if state is LinkState.NEEDS_MORE_INVITATIONS:
            return JoinView(
                state, branding, kind=kind, email=invitation.email, inviter_name=inviter,
                invitations_needed=referrals_needed(policy), invitations_held=held,
            )
        event_summary = None
        if kind is InvitationKind.EVENT and invitation.event_id is not None:
            event = session.get(Event, invitation.event_id)
            if event is not None:
                event_summary = EventSummary(event.name, event.starts_at, event.location)
        first, last = split_name(invitation.name)
        is_membership = kind is InvitationKind.MEMBERSHIP
        return JoinView(
            state,
            branding,
            kind=kind,
            email=invitation.email,
            first_name=first,
            last_name=last,
            inviter_name=inviter,
            personal_message=invitation.personal_message,
            event=event_summary,
            asks_password=is_membership and policy.registration_asks_password,
            adhesion_required=is_membership and policy.adhesion_required,
            invitations_needed=referrals_needed(policy),
            invitations_held=held,
            expires_at=invitation.expires_at,
        )


def retired_link_view(
    session: Session, token: str, organization_id: uuid.UUID | None
) -> JoinView | None:
    """The page for a link that was revoked or replaced by a newer one, or None when the
    token is not such a link."""
    if not _TOKEN_SHAPE.fullmatch(token):
        return None
    retired = session.get(RetiredLink, hash_token(token))
    if retired is None:
        return None
    invitation = session.get(Invitation, retired.invitation_id)
    if invitation is None or (organization_id is not None
                              and invitation.organization_id != organization_id):
        return None
    if retired.reason == "revoked":
        return _revoked_view(session, invitation)
    branding = branding_of(session, invitation.organization_id)
    inviter = _inviter_name(session, invitation.inviter_id)
    return JoinView(LinkState.SUPERSEDED, branding, kind=InvitationKind(invitation.kind),
                    inviter_name=inviter, email=invitation.email)


def _revoked_view(session: Session, invitation: Invitation) -> JoinView:
    """The page for a withdrawn invitation: who withdrew it, and whom to ask."""
    contact = load_mail_settings(session, invitation.organization_id).from_address
    return JoinView(LinkState.REVOKED, branding_of(session, invitation.organization_id),
                    kind=InvitationKind(invitation.kind),
                    inviter_name=_inviter_name(session, invitation.inviter_id), contact=contact)
