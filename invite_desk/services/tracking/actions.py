"""Act on invitations from the tracking table: resend, revoke, extend, issue a fresh link.

Every action takes the ids of one or many invitations. It is refused as a whole
(PermissionDenied) when any of them is outside the operator's scope; invitations whose state
does not allow it are skipped with a reason. Each change is one audit row per invitation.

- Resend: the invitation goes back to the outbox in a new batch ("a resend is a send
  action"); the old link dies at once (its token hash is cleared) and the sending worker
  issues a new token and a new expiry when it sends it. Needs the right to send.
- Revoke: the link dies at once; nothing is deleted. The link's token hash is kept (a
  revoked invitation never opens: the portal goes by its status) so that `restore_revoked`
  can undo a revoke while the link is unused and unexpired.
- Extend: the expiry moves N days past the later of now and the current expiry; an expired
  invitation whose link is kept becomes live again. Needs the right to send (a longer-lived
  link is a working link in someone's hands), and a link lives at most
  `max(MAX_LINK_LIFETIME_DAYS, the organization's link expiry)` days from when it was sent.
- Fresh link: a new token and a new expiry, handed back to the operator to share by hand; the
  old link dies at once. Needs the right to send.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from invite_desk.services import audit, suppression
from invite_desk.services import settings as settings_service
from invite_desk.services.errors import Conflict, NotFound, ValidationFailed
from invite_desk.services.invitations.rendering import fallback_base_url
from invite_desk.services.invitations.tokens import new_token, registration_link
from invite_desk.services.models import (
    AuditLog,
    Batch,
    Invitation,
    InvitationKind,
    InvitationStatus,
    Member,
    MemberStatus,
    utcnow,
)
from invite_desk.services.operator import Operator, refreshed
from invite_desk.services.organization import get_organization
from invite_desk.services.permissions import Action, Target, require
from invite_desk.services.settings_schema import PolicySettings
from invite_desk.services.sync import journal
from invite_desk.services.tracking.status import effective_status
from invite_desk.services.uow import UnitOfWork

MAX_ROWS_PER_ACTION = 10_000
MAX_EXTEND_DAYS = 365
# A link lives at most this many days from when it was sent, however often it is extended
# (or the organization's own link expiry, when that is longer).
MAX_LINK_LIFETIME_DAYS = 90

S = InvitationStatus


class RowAction(StrEnum):
    RESEND = "resend"
    REVOKE = "revoke"
    EXTEND = "extend"
    FRESH_LINK = "fresh_link"

    @property
    def past_tense(self) -> str:
        return {"resend": "queued to be resent", "revoke": "revoked", "extend": "extended",
                "fresh_link": "given a fresh link"}[self.value]


# Which effective statuses each action applies to.
ALLOWED: dict[RowAction, frozenset[InvitationStatus]] = {
    RowAction.RESEND: frozenset({S.DRAFT, S.SENT, S.EXPIRED, S.FAILED, S.UNCERTAIN, S.BOUNCED,
                                 S.SUPPRESSED}),
    RowAction.REVOKE: frozenset({S.DRAFT, S.QUEUED, S.SENT, S.EXPIRED, S.FAILED, S.UNCERTAIN,
                                 S.BOUNCED, S.SUPPRESSED}),
    RowAction.EXTEND: frozenset({S.SENT, S.EXPIRED, S.UNCERTAIN}),
    RowAction.FRESH_LINK: frozenset({S.DRAFT, S.SENT, S.EXPIRED, S.FAILED, S.UNCERTAIN,
                                     S.BOUNCED, S.SUPPRESSED}),
}

# Actions that put a working link in someone's hands need the right to send invitations.
NEEDS_SENDING_RIGHT = frozenset({RowAction.RESEND, RowAction.EXTEND, RowAction.FRESH_LINK})


def why_not(action: RowAction, status: InvitationStatus, *, has_link: bool = True) -> str | None:
    """Why `action` does not apply to an invitation whose effective status is `status`
    (None when it does)."""
    if status in ALLOWED[action]:
        if action is RowAction.EXTEND and status is S.EXPIRED and not has_link:
            return "its link is gone; resend it instead"
        return None
    if status is S.ACCEPTED:
        return "it was accepted"
    if status is S.REVOKED:
        return "it was revoked; invite the person again from Compose"
    if status is S.SENDING:
        return "it is being sent right now; try again in a moment"
    if status is S.QUEUED:
        return "it is waiting in the outbox to be sent"
    if status is S.DRAFT:
        return "it was never sent"
    if status is S.FAILED:
        return "it was never delivered; resend it instead"
    return f"it is {status.value}"


@dataclass(frozen=True)
class Skipped:
    invitation_id: uuid.UUID
    email: str
    reason: str


@dataclass(frozen=True)
class IssuedLink:
    invitation_id: uuid.UUID
    email: str
    link: str
    expires_at: datetime


@dataclass(frozen=True)
class Revoked:
    """One revoked invitation, as the UI needs it to offer Undo (see `restore_revoked`)."""

    invitation_id: uuid.UUID
    email: str
    previous_status: InvitationStatus  # the stored status before the revoke
    version: int  # the row's version after the revoke: pass as expected_version
    restorable: bool  # False when nothing would come back (its link had already expired)


@dataclass(frozen=True)
class ActionResult:
    action: RowAction
    done: tuple[uuid.UUID, ...]
    skipped: tuple[Skipped, ...] = ()
    batch_id: uuid.UUID | None = None  # resend: the batch the sending worker should send
    links: tuple[IssuedLink, ...] = ()
    revoked: tuple[Revoked, ...] = ()  # revoke: what `restore_revoked` can undo

    @property
    def restorable(self) -> tuple[uuid.UUID, ...]:
        """Revoke: the ids an Undo can bring back."""
        return tuple(r.invitation_id for r in self.revoked if r.restorable)

    @property
    def summary(self) -> str:
        count = len(self.done)
        text = f"{count:,} invitation{'' if count == 1 else 's'} {self.action.past_tense}"
        if self.skipped:
            first = self.skipped[0]
            text += (f"; {len(self.skipped):,} skipped ({first.email}: {first.reason}"
                     f"{', …' if len(self.skipped) > 1 else ''})")
        return text + "."


# -- shared steps -------------------------------------------------------------------------

def _checked_ids(ids: Sequence[uuid.UUID]) -> list[uuid.UUID]:
    unique = list(dict.fromkeys(ids))
    if not unique:
        raise ValidationFailed({"selection": "select at least one invitation"})
    if len(unique) > MAX_ROWS_PER_ACTION:
        raise ValidationFailed({"selection": f"act on at most {MAX_ROWS_PER_ACTION:,} "
                                             "invitations at a time"})
    return unique


def _load(session: Session, operator: Operator, ids: list[uuid.UUID]) -> list[Invitation]:
    """The invitations, after checking that the operator may manage every one of them."""
    rows: dict[uuid.UUID, Invitation] = {}
    for start in range(0, len(ids), 500):
        for row in session.scalars(select(Invitation).where(
                Invitation.id.in_(ids[start:start + 500]),
                Invitation.organization_id == operator.organization_id)):
            rows[row.id] = row
    if len(rows) < len(ids):
        raise NotFound("Some of the selected invitations no longer exist; refresh the list.")
    ordered = [rows[i] for i in ids]
    for row in ordered:
        require(operator, Action.MANAGE_INVITATION,
                target=Target(unit_id=row.unit_id, owner_ids=(row.inviter_id, row.sender_id)))
    return ordered


def _start(uow: UnitOfWork, operator: Operator, action: RowAction) -> Operator:
    """Re-read the operator and check the organization-wide part of the permission."""
    session = uow.session
    operator = refreshed(session, operator)
    if action in NEEDS_SENDING_RIGHT:
        policy = settings_service.load(session, operator.organization_id)
        require(operator, Action.SEND_INVITATIONS, settings=policy)
    return operator


def link_lifetime_days(policy: PolicySettings) -> int:
    """The longest a link may live from when it was sent."""
    return max(MAX_LINK_LIFETIME_DAYS, policy.invitation_expiry_days)


def _sent_moment(row: Invitation) -> datetime | None:
    return row.sent_at or row.queued_at or row.created_at


def _split(rows: list[Invitation], action: RowAction,
           now: datetime) -> tuple[list[tuple[Invitation, InvitationStatus]], list[Skipped]]:
    eligible: list[tuple[Invitation, InvitationStatus]] = []
    skipped: list[Skipped] = []
    for row in rows:
        status = effective_status(row.status, row.expires_at, now)
        reason = why_not(action, status, has_link=row.token_hash is not None)
        if reason is None:
            eligible.append((row, status))
        else:
            skipped.append(Skipped(row.id, row.email, reason))
    return eligible, skipped


def _summary(verb: str, rows: Sequence[tuple[Invitation, InvitationStatus]]) -> str:
    """What an action did, in words, for a command made offline (sync/journal.py)."""
    if len(rows) == 1:
        return f"{verb} the invitation to {rows[0][0].email}"
    return f"{verb} {len(rows):,} invitations"


def _record(session: Session, operator: Operator, row: Invitation, action: str,
            before: Mapping[str, object], after: Mapping[str, object]) -> None:
    audit.record(session, organization_id=row.organization_id, actor_id=operator.member_id,
                 action=action, entity_type="invitation", entity_id=row.id,
                 before=before, after=after)


# -- the actions --------------------------------------------------------------------------

def resend_invitations(uow: UnitOfWork, operator: Operator, ids: Sequence[uuid.UUID], *,
                       now: datetime | None = None) -> ActionResult:
    """Put the invitations back in the outbox, in a new batch, with their links dead.

    Send `result.batch_id` with the sending worker (OutboxSender): it issues each a new
    token and a new expiry. Invitations are credited to the same inviter as before; the
    operator becomes their sender.
    """
    moment = now or utcnow()
    unique = _checked_ids(ids)
    with uow:
        session = uow.session
        operator = _start(uow, operator, RowAction.RESEND)
        eligible, skipped = _split(_load(session, operator, unique), RowAction.RESEND, moment)
        # Never resend to a suppressed address (bounced, unsubscribed): say why instead.
        blocked = suppression.suppressed_reasons(
            session, operator.organization_id, {row.email_normalized for row, _ in eligible})
        skipped += [Skipped(row.id, row.email, blocked[row.email_normalized])
                    for row, _ in eligible if row.email_normalized in blocked]
        eligible = [(row, st) for row, st in eligible if row.email_normalized not in blocked]
        if not eligible:
            return ActionResult(RowAction.RESEND, (), tuple(skipped))
        inviters = {row.inviter_id for row, _ in eligible}
        kinds = {(row.kind, row.event_id) for row, _ in eligible}
        kind, event_id = next(iter(kinds)) if len(kinds) == 1 else (
            InvitationKind.MEMBERSHIP.value, None)
        count = len(eligible)
        batch = Batch(
            organization_id=operator.organization_id, created_by_id=operator.member_id,
            inviter_id=next(iter(inviters)) if len(inviters) == 1 else operator.member_id,
            label=f"Resend of {count:,} invitation{'' if count == 1 else 's'}",
            source="resend", kind=kind, event_id=event_id, personal_message="",
            total=count, status="open",
        )
        session.add(batch)
        session.flush()
        for row, status in eligible:
            before = {"status": status.value, "batch": row.batch_id, "expires_at": row.expires_at,
                      "sent_at": row.sent_at, "sender": row.sender_id}
            row.status = S.QUEUED.value
            row.token_hash = None  # the old link stops working now
            row.expires_at = None  # the worker sets the new expiry when it sends
            row.sent_at = None
            row.message_id = None
            row.queued_at = moment
            row.next_attempt_at = None
            row.attempts = 0
            row.last_error = ""
            row.sending_owner = None
            row.batch_id = batch.id
            row.sender_id = operator.member_id
            _record(session, operator, row, "invitation.resent", before,
                    {"status": S.QUEUED.value, "batch": batch.id, "sender": operator.member_id})
        audit.record(session, organization_id=operator.organization_id,
                     actor_id=operator.member_id, action="batch.queued", entity_type="batch",
                     entity_id=batch.id, after={"queued": count, "source": "resend",
                                                "skipped": len(skipped)})
        with journal.command("invitation.resend", _summary("Resend", eligible)):
            uow.commit()
        return ActionResult(RowAction.RESEND, tuple(r.id for r, _ in eligible), tuple(skipped),
                            batch_id=batch.id)


def revoke_invitations(uow: UnitOfWork, operator: Operator, ids: Sequence[uuid.UUID], *,
                       now: datetime | None = None) -> ActionResult:
    """Revoke: the links stop working at once and the invitations can no longer be accepted."""
    moment = now or utcnow()
    unique = _checked_ids(ids)
    with uow:
        session = uow.session
        operator = _start(uow, operator, RowAction.REVOKE)
        eligible, skipped = _split(_load(session, operator, unique), RowAction.REVOKE, moment)
        previous: list[tuple[Invitation, InvitationStatus, bool]] = []
        for row, status in eligible:
            stored = InvitationStatus(row.status)
            # `stored_status` and `next_attempt_at` are what restore_revoked puts back.
            before = {"status": status.value, "stored_status": stored.value,
                      "expires_at": row.expires_at, "next_attempt_at": row.next_attempt_at}
            restorable = status is not S.EXPIRED
            row.status = S.REVOKED.value
            row.revoked_at = moment
            # The token hash stays: a revoked link never opens (the portal goes by the
            # status), and keeping it lets an Undo bring the very same link back.
            row.next_attempt_at = None
            _record(session, operator, row, "invitation.revoked", before,
                    {"status": S.REVOKED.value})
            previous.append((row, stored, restorable))
        with journal.command("invitation.revoke", _summary("Revoke", eligible)):
            uow.commit()
        revoked = tuple(Revoked(row.id, row.email, stored, row.version, restorable)
                        for row, stored, restorable in previous)
        return ActionResult(RowAction.REVOKE, tuple(r.id for r, _ in eligible), tuple(skipped),
                            revoked=revoked)


def extend_invitations(uow: UnitOfWork, operator: Operator, ids: Sequence[uuid.UUID],
                       days: int, *, now: datetime | None = None) -> ActionResult:
    """Move each expiry `days` past the later of now and its current expiry."""
    if not 1 <= days <= MAX_EXTEND_DAYS:
        raise ValidationFailed({"days": f"must be between 1 and {MAX_EXTEND_DAYS}"})
    moment = now or utcnow()
    unique = _checked_ids(ids)
    with uow:
        session = uow.session
        operator = _start(uow, operator, RowAction.EXTEND)
        lifetime = link_lifetime_days(settings_service.load(session, operator.organization_id))
        eligible, skipped = _split(_load(session, operator, unique), RowAction.EXTEND, moment)
        done: list[uuid.UUID] = []
        for row, status in eligible:
            start = max(row.expires_at or moment, moment)
            new_expiry = start + timedelta(days=days)
            sent = _sent_moment(row)
            if sent is not None and new_expiry > sent + timedelta(days=lifetime):
                skipped.append(Skipped(row.id, row.email,
                                       _over_lifetime(sent, start, lifetime)))
                continue
            before = {"status": status.value, "expires_at": row.expires_at}
            row.expires_at = new_expiry
            if row.status == S.EXPIRED.value:
                row.status = S.SENT.value
            _record(session, operator, row, "invitation.extended", before,
                    {"status": row.status, "expires_at": row.expires_at, "days": days})
            done.append(row.id)
        with journal.command("invitation.extend", _summary(
                f"Extend by {days} day{'' if days == 1 else 's'}",
                [(r, s) for r, s in eligible if r.id in done])):
            uow.commit()
        return ActionResult(RowAction.EXTEND, tuple(done), tuple(skipped))


def _over_lifetime(sent: datetime, start: datetime, lifetime: int) -> str:
    limit = sent + timedelta(days=lifetime)
    left = (limit - start).days
    reason = (f"a link lives at most {lifetime} days from when it was sent "
              f"(this one until {limit:%d %b %Y}); ")
    if left >= 1:
        return reason + f"extend it by at most {left} day{'' if left == 1 else 's'}, or resend it"
    return reason + "resend it for a new link instead"


def issue_fresh_links(uow: UnitOfWork, operator: Operator, ids: Sequence[uuid.UUID], *,
                      now: datetime | None = None) -> ActionResult:
    """A new link (and expiry) for each invitation, to share by hand; old links stop working.

    The links are in `result.links`; only their hashes are stored.
    """
    moment = now or utcnow()
    unique = _checked_ids(ids)
    organization = get_organization(uow, operator.organization_id)
    base_url = fallback_base_url(organization)
    with uow:
        session = uow.session
        operator = _start(uow, operator, RowAction.FRESH_LINK)
        policy = settings_service.load(session, operator.organization_id)
        eligible, skipped = _split(_load(session, operator, unique), RowAction.FRESH_LINK,
                                   moment)
        links: list[IssuedLink] = []
        expires = moment + timedelta(days=policy.invitation_expiry_days)
        for row, status in eligible:
            before = {"status": status.value, "expires_at": row.expires_at}
            token, token_hash = new_token()
            row.token_hash = token_hash
            row.expires_at = expires
            row.status = S.SENT.value
            row.sent_at = row.sent_at or moment
            row.last_error = ""
            row.next_attempt_at = None
            _record(session, operator, row, "invitation.link_issued", before,
                    {"status": S.SENT.value, "expires_at": expires})
            links.append(IssuedLink(row.id, row.email, registration_link(base_url, token),
                                    expires))
        uow.commit()
        return ActionResult(RowAction.FRESH_LINK, tuple(r.id for r, _ in eligible),
                            tuple(skipped), links=tuple(links))


# -- undo a revoke ------------------------------------------------------------------------

@dataclass(frozen=True)
class Restored:
    invitation_id: uuid.UUID
    email: str
    status: InvitationStatus  # what it is again: sent (same link), uncertain, queued, draft, …
    expires_at: datetime | None
    version: int


def _not_restorable(row: Invitation, why: str) -> Conflict:
    return Conflict(f"The invitation to {row.email} cannot be brought back: {why}.")


def restore_revoked(uow: UnitOfWork, operator: Operator, invitation_id: uuid.UUID, *,
                    expected_version: int | None = None,
                    now: datetime | None = None) -> Restored:
    """Undo a revoke: the invitation goes back to the status it had (a sent one with the very
    same link, which works again), while that link is unused and unexpired.

    Needs the same permission as revoking it. Conflict when the invitation changed since it
    was revoked (pass `Revoked.version` as `expected_version`), its link has expired, or the
    person was invited again or became a member meanwhile.
    """
    moment = now or utcnow()
    with uow:
        session = uow.session
        operator = _start(uow, operator, RowAction.REVOKE)
        row = _load(session, operator, [invitation_id])[0]
        if row.status != S.REVOKED.value:
            raise Conflict(f"The invitation to {row.email} is no longer revoked (it is "
                           f"{row.status}); there is nothing to undo. Refresh the list.")
        if expected_version is not None and row.version != expected_version:
            raise _not_restorable(row, "it changed since it was revoked; refresh the list")
        last = session.scalars(
            select(AuditLog).where(AuditLog.entity_type == "invitation",
                                   AuditLog.entity_id == row.id)
            .order_by(AuditLog.at.desc(), AuditLog.id.desc()).limit(1)).first()
        if last is not None and last.action != "invitation.revoked":
            raise _not_restorable(row, "it changed since it was revoked; refresh the list")
        before = json.loads(last.before_json) if last is not None else {}
        stored = before.get("stored_status")
        if stored is None:  # revoked before undo existed: its link was destroyed then
            raise _not_restorable(row, "its link was destroyed when it was revoked; invite "
                                       "the person again from Compose")
        previous = InvitationStatus(stored)
        if previous in (S.SENT, S.UNCERTAIN, S.EXPIRED):
            if row.token_hash is None:
                raise _not_restorable(row, "its link is gone; invite the person again "
                                           "from Compose")
            if previous is S.EXPIRED or row.expires_at is None or row.expires_at <= moment:
                raise _not_restorable(row, "its link has expired; invite the person again "
                                           "from Compose")
        elif previous not in (S.DRAFT, S.QUEUED, S.FAILED):
            raise _not_restorable(row, f"it was {previous.value} when it was revoked")
        since = row.revoked_at or (last.at if last is not None else moment)
        again = session.scalar(select(Invitation.id).where(
            Invitation.organization_id == row.organization_id,
            Invitation.email_normalized == row.email_normalized,
            Invitation.id != row.id,
            Invitation.status != S.REVOKED.value,
            Invitation.created_at >= since,
        ).limit(1))
        if again is not None:
            raise _not_restorable(row, "the person was invited again since; that invitation "
                                       "stands")
        if row.kind == InvitationKind.MEMBERSHIP.value and session.scalar(
                select(Member.id).where(Member.organization_id == row.organization_id,
                                        Member.email_normalized == row.email_normalized,
                                        Member.status != MemberStatus.REJECTED.value)
                .limit(1)) is not None:
            raise _not_restorable(row, "the person has joined (or applied) since")
        row.status = previous.value
        row.revoked_at = None
        if previous is S.QUEUED and isinstance(before.get("next_attempt_at"), str):
            row.next_attempt_at = datetime.fromisoformat(before["next_attempt_at"])
        _record(session, operator, row, "invitation.restored",
                {"status": S.REVOKED.value, "revoked_at": since},
                {"status": previous.value, "expires_at": row.expires_at})
        uow.commit()
        return Restored(row.id, row.email, previous, row.expires_at, row.version)
