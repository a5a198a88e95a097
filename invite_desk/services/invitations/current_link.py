"""Email an invitation again with a fresh link, from the notification queue.

Queued by the portal when the holder of a link closed as a duplicate asks for the current
one (registration/replaced.py); sent by the notification sender (admin/notifications.py),
which calls `prepare` when it claims the row and `release` when the email did not go out.

Only the hash of a link is stored, so "the current link" is a new one: `prepare` mints a
token for the live invitation, stores its hash (the old link then says that a newer one was
sent, as after a resend or a reminder) and renders the invitation's own email with it. If
the email is refused or must wait, `release` puts the old hash back, so the link the invitee
already holds keeps working. Both hashes (never a token) ride in the row's context.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from invite_desk.services import suppression
from invite_desk.services.invitations.rendering import InvitationContent, build_invitation_raw
from invite_desk.services.invitations.sending import _org_info
from invite_desk.services.invitations.tokens import hash_token, new_token
from invite_desk.services.mail_settings import MailSettings, load_templates
from invite_desk.services.models import (
    Event,
    Invitation,
    Member,
    Organization,
    PortalSecret,
    RetiredLink,
)
from invite_desk.services.registration.links import is_live

INVITATION_ID = "invitation_id"
OLD_HASH = "replaced_hash"
NEW_HASH = "minted_hash"


@dataclass(frozen=True)
class Prepared:
    message: bytes
    message_id: str
    context: dict[str, Any]  # the row's context with both hashes, to store with the claim


@dataclass(frozen=True)
class NotSent:
    skipped: bool  # True: nothing to send any more (settled `skipped`); False: `failed`
    reason: str


def _invitation_id(context: Mapping[str, Any]) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(context.get(INVITATION_ID, "")))
    except ValueError:
        return None


def prepare(session: Session, organization_id: uuid.UUID, to_email: str,
            context: Mapping[str, Any], org: Organization, mail: MailSettings,
            now: datetime) -> Prepared | NotSent:
    """Mint a fresh link for the invitation the row names and render its email; or why not.
    Runs in the sender's claim transaction (the new hash commits with the claim)."""
    invitation_id = _invitation_id(context)
    row = session.get(Invitation, invitation_id) if invitation_id is not None else None
    if row is None or row.organization_id != organization_id:
        return NotSent(True, "The invitation no longer exists.")
    if not is_live(row.status, row.expires_at, now) or row.token_hash is None \
            or row.expires_at is None:
        return NotSent(True, "The invitation was accepted, revoked or expired before its "
                             "current link was sent again.")
    if row.email.casefold() != to_email.casefold():
        return NotSent(True, "The invitation's address is not the one this email was for.")
    if session.scalar(select(suppression.is_suppressed_sql(organization_id,
                                                           row.email_normalized))):
        return NotSent(True, "The address is on the suppression list (it unsubscribed or "
                             "bounced).")
    if not org.registration_base_url.strip():
        return NotSent(False, "Set the organization's registration web address (Settings › "
                              "Organization): the invitation link points there.")
    inviter = session.get(Member, row.inviter_id)
    event = session.get(Event, row.event_id) if row.event_id is not None else None
    content = InvitationContent(
        email=row.email, name=row.name,
        inviter_name=inviter.display_name if inviter is not None else "A member",
        personal_message=row.personal_message, expires_at=row.expires_at,
        event_name=event.name if event is not None else "")
    token, token_hash = new_token()
    message, message_id = build_invitation_raw(
        _org_info(org), mail, load_templates(session, organization_id), content, token,
        invitation_id=row.id, unsubscribe_token=_unsubscribe_token(session, row))
    old_hash = row.token_hash
    try:
        with session.begin_nested():
            row.token_hash = token_hash  # the old link is retired as superseded (models.py)
            session.flush()
    except StaleDataError:
        return NotSent(True, "The invitation changed while its link was being sent again; "
                             "ask again from the link.")
    return Prepared(message, message_id,
                    {**context, OLD_HASH: old_hash, NEW_HASH: token_hash})


def _unsubscribe_token(session: Session, row: Invitation) -> str | None:
    """The invitation's one-click unsubscribe token, when this database holds the key it was
    made with (the same token as in its earlier emails)."""
    key = session.scalar(select(PortalSecret.value)
                         .where(PortalSecret.name == suppression.UNSUBSCRIBE_SECRET))
    if not key or row.unsubscribe_token_hash is None:
        return None
    token = suppression.unsubscribe_token(key.encode("ascii"), row.id)
    return token if hash_token(token) == row.unsubscribe_token_hash else None


def release(session: Session, context: Mapping[str, Any]) -> None:
    """The email did not go out (refused, or waiting for a retry): the invitation's previous
    link works again, unless something else replaced the link meanwhile."""
    invitation_id = _invitation_id(context)
    old_hash, new_hash = context.get(OLD_HASH), context.get(NEW_HASH)
    if invitation_id is None or not old_hash or not new_hash:
        return
    row = session.get(Invitation, invitation_id)
    if row is None or row.token_hash != new_hash:
        return
    row.token_hash = str(old_hash)
    session.flush()
    # The listener retired the minted hash; the old one is live again.
    session.execute(delete(RetiredLink).where(RetiredLink.token_hash.in_([old_hash, new_hash])))
