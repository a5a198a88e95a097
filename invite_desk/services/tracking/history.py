"""One invitation's story, from the audit log: queued, sent (with the Message-ID), retries,
failures, acceptance, revocation, resends, extensions, fresh links and expiry."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from invite_desk.services import audit
from invite_desk.services.models import Invitation, InvitationStatus, utcnow
from invite_desk.services.operator import Operator, refreshed
from invite_desk.services.tracking.read import InvitationRow, get_invitation
from invite_desk.services.uow import UnitOfWork

HISTORY_LIMIT = 200


@dataclass(frozen=True)
class HistoryEntry:
    at: datetime
    actor: str
    title: str
    detail: str = ""


@dataclass(frozen=True)
class InvitationDetail:
    """What the detail pane shows: the row, its personal message and its history (oldest
    first). `from_audit` is False when the database holds no audit rows for it (imported or
    demo data) and the history was pieced together from the invitation's own dates."""

    row: InvitationRow
    personal_message: str
    history: tuple[HistoryEntry, ...]
    from_audit: bool


def _when(value: Any) -> str:
    if not value:
        return ""
    try:
        return datetime.fromisoformat(str(value)).strftime("%d %b %Y %H:%M UTC")
    except ValueError:
        return str(value)


def describe(action: str, before: Mapping[str, Any], after: Mapping[str, Any]) -> tuple[str, str]:
    """(title, detail) for an audit row about an invitation."""
    if action == "invitation.queued":
        return "Queued for sending", ""
    if action == "invitation.sent":
        parts = []
        if after.get("message_id"):
            parts.append(f"Message-ID {after['message_id']}")
        if after.get("reply"):
            parts.append(f"server: {after['reply']}")
        return "Sent", "; ".join(parts)
    if action == "invitation.retry":
        wait = after.get("retry_in_s")
        detail = str(after.get("error", ""))
        if wait is not None:
            detail += f" (attempt {after.get('attempt', '?')}, retrying in {int(wait)} s)"
        return "Temporarily refused, will retry", detail.strip()
    if action == "invitation.failed":
        return "Failed", str(after.get("error", ""))
    if action == "invitation.uncertain":
        detail = str(after.get("error", ""))
        if after.get("message_id"):
            detail = f"{detail} Message-ID {after['message_id']}".strip()
        return "Uncertain: may have been delivered", detail
    if action == "invitation.accepted":
        return "Accepted", ""
    if action == "invitation.accepted_elsewhere":
        return "Closed: the invitee joined through another invitation", ""
    if action == "invitation.revoked":
        return "Revoked", "The link stopped working."
    if action == "invitation.resent":
        return "Resent", "Back in the outbox with a new link to come; the old link stopped working."
    if action == "invitation.extended":
        return "Expiry extended", (f"from {_when(before.get('expires_at')) or 'none'} "
                                   f"to {_when(after.get('expires_at'))}")
    if action == "invitation.link_issued":
        return "Fresh link issued", (f"valid until {_when(after.get('expires_at'))}; "
                                     "the previous link stopped working")
    if action == "invitation.expired":
        return "Expired", f"the link expired on {_when(before.get('expires_at'))}"
    return action.removeprefix("invitation.").replace("_", " ").capitalize(), ""


def _from_dates(row: InvitationRow, message_id: str | None) -> list[HistoryEntry]:
    """A history from the invitation's own dates, for rows without audit entries."""
    entries = [HistoryEntry(row.queued_at or row.created_at, "", "Queued for sending")]
    if row.sent_at is not None:
        entries.append(HistoryEntry(row.sent_at, row.sender_name, "Sent",
                                    f"Message-ID {message_id}" if message_id else ""))
    if row.stored_status is InvitationStatus.FAILED:
        entries.append(HistoryEntry(row.queued_at or row.created_at, "", "Failed", row.last_error))
    if row.stored_status is InvitationStatus.UNCERTAIN:
        entries.append(HistoryEntry(row.sent_at or row.queued_at or row.created_at, "",
                                    "Uncertain: may have been delivered", row.last_error))
    if row.accepted_at is not None:
        entries.append(HistoryEntry(row.accepted_at, "", "Accepted"))
    if row.revoked_at is not None:
        entries.append(HistoryEntry(row.revoked_at, "", "Revoked"))
    if row.stored_status is InvitationStatus.EXPIRED and row.expires_at is not None:
        entries.append(HistoryEntry(row.expires_at, "", "Expired"))
    return entries


def invitation_detail(uow: UnitOfWork, operator: Operator, invitation_id: uuid.UUID,
                      now: datetime | None = None) -> InvitationDetail:
    """The invitation (if in scope: PermissionDenied otherwise) and its history."""
    moment = now or utcnow()
    row = get_invitation(uow, operator, invitation_id, moment)
    with uow:
        session = uow.session
        operator = refreshed(session, operator)
        invitation = session.get(Invitation, invitation_id)
        message = invitation.personal_message if invitation is not None else ""
        message_id = invitation.message_id if invitation is not None else None
        found = audit.entries(session, operator.organization_id, entity_type="invitation",
                              entity_id=invitation_id, limit=HISTORY_LIMIT)
    entries = [HistoryEntry(e.at, e.actor, *describe(e.action, e.before, e.after))
               for e in reversed(found)]
    from_audit = bool(entries)
    if not entries:
        entries = _from_dates(row, message_id)
    if (row.status is InvitationStatus.EXPIRED and row.stored_status is InvitationStatus.SENT
            and row.expires_at is not None):
        entries.append(HistoryEntry(row.expires_at, "", "Expired",
                                    "The link's expiry passed; the expiry sweep has not "
                                    "recorded it yet."))
    entries.sort(key=lambda e: e.at)
    return InvitationDetail(row, message, tuple(entries), from_audit)
