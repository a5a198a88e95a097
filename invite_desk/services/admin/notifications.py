"""Emails people expect, queued durably in the same transaction as what they announce.

- an applicant, when their application is approved or rejected (with HR's reason, if any);
- an inviter, when their invitee joins;
- a new operator, with their link to set a desktop password.
Each kind can be switched off in Settings (`notifications.*`). Rows in `outgoing_mail` go
queued -> sending -> sent / failed / uncertain, like invitations: a row is committed as
`sending` before its SMTP transaction, so a crash or a re-run never sends it twice (a row
left in `sending` by a dead run becomes `uncertain`, never resent automatically).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from invite_desk.services.operator import Operator
from invite_desk.services.uow import UnitOfWork


class NotificationKind(StrEnum):
    APPLICATION_APPROVED = "application_approved"
    APPLICATION_REJECTED = "application_rejected"
    INVITEE_JOINED = "invitee_joined"
    OPERATOR_SIGN_IN = "operator_sign_in"


class MailState(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    UNCERTAIN = "uncertain"
    SKIPPED = "skipped"  # e.g. a sign-in link superseded before it was sent


@dataclass(frozen=True)
class NotificationRun:
    sent: int
    failed: int
    uncertain: int
    remaining: int  # still queued (e.g. temporary failures, or `limit` reached)


@dataclass(frozen=True)
class PendingCounts:
    queued: int
    failed: int
    uncertain: int


def send_pending_notifications(uow: UnitOfWork, transport: object, *,
                               limit: int | None = None,
                               now: datetime | None = None) -> NotificationRun:
    """Deliver queued notification emails over `transport` (an SmtpTransport, or anything
    with `send(message_bytes, to) -> SendResult`). Called by the desktop Outbox after a run
    and by `invite-desk notify` / the end of `invite-desk send`; safe to run concurrently."""
    raise NotImplementedError


def pending_counts(uow: UnitOfWork, operator: Operator) -> PendingCounts:
    """How many notification emails wait (HR_LOCAL and above; org-wide counts)."""
    raise NotImplementedError
