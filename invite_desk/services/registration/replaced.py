"""Links closed as duplicates: what their page says, and emailing the current link again.

When two desktops invited the same address offline, the sync push closes the later one as a
duplicate (revoked, reason in `last_error`, an `invitation.closed_duplicate` audit row:
services/sync/push.py). Its email may already be out. Its link then opens a page that says
the link was replaced by another invitation from the same organization to the same address,
what became of that one (still waiting, on its way, already used), and, while that one's link
works, offers "Email me the current link".

The request never takes an address from the visitor: the live invitation's email goes to the
address on file, which is the closed link's own address. It is queued in `outgoing_mail`
(kind `invitation_link`) like every email the portal causes, and sent by the notification
sender on the server (the desktop after a sync round, `invite-desk notify`), which mints a
fresh link then (invitations/current_link.py). At most once per closed link per
RESEND_INTERVAL, counted from the audit rows it writes (`invitation.current_link_requested`),
under a lock on the closed invitation's row, so two requests at once queue one email. The
page reveals neither the live invitation's link nor anything about other addresses.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from invite_desk.services import audit
from invite_desk.services.admin.notifications import NotificationKind, enqueue
from invite_desk.services.invitations.tokens import hash_token, hashes_match
from invite_desk.services.mail_settings import load_mail_settings
from invite_desk.services.models import (
    AuditLog,
    Invitation,
    InvitationKind,
    InvitationStatus,
    MemberStatus,
    utcnow,
)
from invite_desk.services.registration.branding import branding_of
from invite_desk.services.registration.busy import retry_when_busy
from invite_desk.services.registration.links import (
    _TOKEN_SHAPE,
    JoinView,
    LinkState,
    _inviter_name,
    is_live,
    open_link,
    registered_member,
)
from invite_desk.services.uow import UnitOfWork

CLOSED_DUPLICATE = "invitation.closed_duplicate"
RESTORED = "invitation.restored"
LINK_REQUESTED = "invitation.current_link_requested"
RESEND_INTERVAL = timedelta(hours=1)

# Invitations that will be mailed by themselves: nothing to ask for.
_ON_ITS_WAY = frozenset({InvitationStatus.DRAFT.value, InvitationStatus.QUEUED.value,
                         InvitationStatus.SENDING.value})


class Current(StrEnum):
    """What became of the invitation that replaced a closed link."""

    PENDING = "pending"  # sent, its link works: it may be emailed again from the page
    ON_ITS_WAY = "on_its_way"  # queued or being sent: the email comes by itself
    REGISTERED = "registered"  # used, or the address is already a member
    CLOSED = "closed"  # expired, withdrawn or undeliverable: ask the inviter


class RequestState(StrEnum):
    QUEUED = "queued"  # the current link's email is queued
    ALREADY_REQUESTED = "already_requested"  # asked within the last RESEND_INTERVAL
    UNAVAILABLE = "unavailable"  # not a closed duplicate, or nothing to send (see `view`)


@dataclass(frozen=True)
class LinkRequest:
    state: RequestState
    view: JoinView  # the page for the link as it is now
    retry_after: int = 0  # ALREADY_REQUESTED: seconds until it may be asked again


def closed_as_duplicate(session: Session, invitation: Invitation) -> bool:
    """Whether this revoked invitation was closed as a duplicate by a sync push (and not
    restored since)."""
    if invitation.status != InvitationStatus.REVOKED.value:
        return False
    rows = session.execute(
        select(AuditLog.action, AuditLog.at)
        .where(AuditLog.entity_type == "invitation", AuditLog.entity_id == invitation.id,
               AuditLog.action.in_((CLOSED_DUPLICATE, RESTORED)))
        .order_by(AuditLog.at.desc()).limit(1)).first()
    return rows is not None and rows.action == CLOSED_DUPLICATE


def current_invitation(session: Session, closed: Invitation, now: datetime
                       ) -> tuple[Current, Invitation | None]:
    """The invitation that replaced `closed` (same organization, address, kind and event),
    and what became of it. The live one when there is one (the newest)."""
    others = list(session.scalars(
        select(Invitation).where(
            Invitation.organization_id == closed.organization_id,
            Invitation.email_normalized == closed.email_normalized,
            Invitation.kind == closed.kind,
            Invitation.id != closed.id)))
    if closed.kind == InvitationKind.EVENT.value:
        others = [o for o in others if o.event_id == closed.event_id]
    live = [o for o in others if is_live(o.status, o.expires_at, now)]
    if live:
        return Current.PENDING, max(live, key=lambda o: (o.sent_at or o.created_at, o.id.hex))
    if any(o.status == InvitationStatus.ACCEPTED.value for o in others):
        return Current.REGISTERED, None
    if closed.kind == InvitationKind.MEMBERSHIP.value:
        member = registered_member(session, closed.organization_id, closed.email_normalized)
        if member is not None and member.status != MemberStatus.DEACTIVATED.value:
            return Current.REGISTERED, None
    if any(o.status in _ON_ITS_WAY for o in others):
        return Current.ON_ITS_WAY, None
    return Current.CLOSED, None


def replaced_view(session: Session, invitation: Invitation, now: datetime) -> JoinView | None:
    """The page for a link closed as a duplicate, or None when `invitation` is not one."""
    if not closed_as_duplicate(session, invitation):
        return None
    current, _ = current_invitation(session, invitation, now)
    contact = load_mail_settings(session, invitation.organization_id).from_address
    return JoinView(LinkState.REPLACED, branding_of(session, invitation.organization_id),
                    kind=InvitationKind(invitation.kind), email=invitation.email,
                    inviter_name=_inviter_name(session, invitation.inviter_id),
                    contact=contact, current=current.value,
                    can_request_link=current is Current.PENDING)


def _closed_link(session: Session, token: str, organization_id: uuid.UUID | None
                 ) -> Invitation | None:
    """The invitation this token opens, its row locked (two requests for the same link queue
    one email). The first statement of the transaction: MariaDB's snapshot comes after it."""
    if not _TOKEN_SHAPE.fullmatch(token):
        return None
    found = session.scalar(select(Invitation).where(Invitation.token_hash == hash_token(token))
                           .with_for_update())
    if found is None or found.token_hash is None or not hashes_match(found.token_hash, token):
        return None
    if organization_id is not None and found.organization_id != organization_id:
        return None
    return found


def _request(uow: UnitOfWork, token: str, organization_id: uuid.UUID | None,
             now: datetime) -> tuple[RequestState, int]:
    with uow:
        session = uow.session
        closed = _closed_link(session, token, organization_id)
        if closed is None or not closed_as_duplicate(session, closed):
            return RequestState.UNAVAILABLE, 0
        current, live = current_invitation(session, closed, now)
        if current is not Current.PENDING or live is None:
            return RequestState.UNAVAILABLE, 0
        mail = enqueue(session, organization_id=closed.organization_id,
                       kind=NotificationKind.INVITATION_LINK, to_email=live.email,
                       to_name=live.name, context={"invitation_id": str(live.id)})
        entry = audit.record(
            session, organization_id=closed.organization_id, actor_id=None,
            action=LINK_REQUESTED, entity_type="invitation", entity_id=closed.id,
            after={"current_invitation_id": live.id,
                   "outgoing_mail_id": mail.id if mail is not None else None})
        entry.at = now  # the next request counts from this moment
        session.flush()
        # Written first, then counted: on SQLite (where FOR UPDATE locks nothing) the write
        # holds the database's write lock, so a request that wrote before this one is seen
        # here; on PostgreSQL and MariaDB the row lock above already ordered them.
        last = session.scalar(
            select(func.max(AuditLog.at))
            .where(AuditLog.entity_type == "invitation", AuditLog.entity_id == closed.id,
                   AuditLog.action == LINK_REQUESTED, AuditLog.at > now - RESEND_INTERVAL,
                   AuditLog.id != entry.id))
        if last is not None:
            uow.rollback()
            wait = last + RESEND_INTERVAL - now
            return RequestState.ALREADY_REQUESTED, max(1, int(wait.total_seconds()) + 1)
        uow.commit()
        return RequestState.QUEUED, 0


def request_current_link(uow: UnitOfWork, token: str, organization_id: uuid.UUID | None, *,
                         now: datetime | None = None, busy_budget: float = 8.0) -> LinkRequest:
    """The visitor holding a link closed as a duplicate asks for the current link: queue the
    live invitation's email to the address on file (at most once per RESEND_INTERVAL per
    closed link), and audit it. Anything else (another kind of link, a forged token, nothing
    live to send) changes nothing and is UNAVAILABLE, with the page the link shows now."""
    moment = now or utcnow()
    state, wait = retry_when_busy(lambda: _request(uow, token, organization_id, moment),
                                  budget=busy_budget)
    view = open_link(uow, token, organization_id=organization_id, now=moment)
    return LinkRequest(state, view, wait)
