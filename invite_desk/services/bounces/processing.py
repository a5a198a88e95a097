"""What one bounce-mailbox message means for the invitations, recorded once.

- hard bounce: the invitation becomes `bounced` (with the DSN status and diagnostic) and its
  address joins the suppression list with that evidence;
- soft bounce: counted on the invitation; after `soft_bounces_to_suppress` of them (a
  setting) the address is suppressed too;
- auto-replies (vacation, out of office) and anything else: recorded as seen, nothing more.

Each message is recorded in `processed_bounce` under its Message-ID (or a digest of its
bytes) in the same transaction as its effect, so a re-run never counts it twice.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from invite_desk.services import audit, suppression
from invite_desk.services import settings as settings_service
from invite_desk.services.bounces.classifier import BounceKind, Verdict, classify
from invite_desk.services.models import (
    Invitation,
    InvitationStatus,
    ProcessedBounce,
    SuppressionReason,
    utcnow,
)
from invite_desk.services.uow import UnitOfWork

# Statuses a hard bounce turns into `bounced`: the message went out (or may have).
BOUNCEABLE = frozenset({InvitationStatus.SENT.value, InvitationStatus.UNCERTAIN.value,
                        InvitationStatus.EXPIRED.value})


@dataclass(frozen=True)
class BounceOutcome:
    key: str
    kind: BounceKind
    invitation_id: uuid.UUID | None
    email: str  # the invitation's address ("" when unmatched)
    suppressed: bool  # the address was put on the suppression list by this message
    already_processed: bool = False
    evidence: str = ""

    @property
    def verdict(self) -> str:
        if self.kind in (BounceKind.HARD, BounceKind.SOFT) and self.invitation_id is None:
            return "unmatched"
        return self.kind.value


def bounce_key(raw: bytes, message_id: str) -> str:
    """The key a message is remembered by: its Message-ID, else a digest of its bytes."""
    mid = " ".join(message_id.split())
    if mid and len(mid) <= 190:
        return f"mid:{mid}"
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def _match(session: Session, organization_id: uuid.UUID, verdict: Verdict) -> Invitation | None:
    """The invitation a bounce is about: by the header the outbox sets, else the original
    Message-ID, else the newest sent invitation to the failed recipient."""
    for invitation_id in verdict.invitation_ids:
        row = session.get(Invitation, invitation_id)
        if row is not None and row.organization_id == organization_id:
            return row
    if verdict.message_ids:
        row = session.scalars(select(Invitation).where(
            Invitation.organization_id == organization_id,
            Invitation.message_id.in_(verdict.message_ids[:50]))).first()
        if row is not None:
            return row
    if len(verdict.recipients) == 1:
        key = suppression.normalize(verdict.recipients[0])
        return session.scalars(
            select(Invitation)
            .where(Invitation.organization_id == organization_id,
                   Invitation.email_normalized == key, Invitation.sent_at.is_not(None))
            .order_by(Invitation.sent_at.desc())).first()
    return None


def _already(session: Session, key: str) -> ProcessedBounce | None:
    return session.get(ProcessedBounce, key)


def process_bounce(uow: UnitOfWork, organization_id: uuid.UUID, raw: bytes, *,
                   source: str = "bounce mailbox") -> BounceOutcome:
    """Classify one message and record its effect, once (see the module docstring)."""
    verdict = classify(raw)
    key = bounce_key(raw, verdict.message_id)
    try:
        return _record(uow, organization_id, verdict, key, source)
    except IntegrityError:  # another run recorded the same message meanwhile
        return BounceOutcome(key, verdict.kind, None, "", False, already_processed=True)


def _record(uow: UnitOfWork, organization_id: uuid.UUID, verdict: Verdict, key: str,
            source: str) -> BounceOutcome:
    with uow:
        session = uow.session
        seen = _already(session, key)
        if seen is not None:
            return BounceOutcome(key, verdict.kind, seen.invitation_id, "", False,
                                 already_processed=True, evidence=verdict.evidence)
        row = None
        if verdict.kind in (BounceKind.HARD, BounceKind.SOFT):
            row = _match(session, organization_id, verdict)
        suppressed = False
        if row is not None and verdict.kind is BounceKind.HARD:
            suppressed = _hard(session, row, verdict, key, source)
        elif row is not None and verdict.kind is BounceKind.SOFT:
            suppressed = _soft(session, row, verdict, key, source)
        outcome = BounceOutcome(key, verdict.kind, row.id if row is not None else None,
                                row.email if row is not None else "", suppressed,
                                evidence=verdict.evidence)
        session.add(ProcessedBounce(key=key, organization_id=organization_id,
                                    invitation_id=outcome.invitation_id,
                                    verdict=outcome.verdict, processed_at=utcnow()))
        uow.commit()
        return outcome


def _hard(session: Session, row: Invitation, verdict: Verdict, key: str, source: str) -> bool:
    evidence = verdict.evidence or "permanent delivery failure"
    before = {"status": row.status, "bounce_kind": row.bounce_kind}
    row.bounce_kind = BounceKind.HARD.value
    row.bounced_at = utcnow()
    row.bounce_detail = evidence
    if row.status in BOUNCEABLE:
        row.status = InvitationStatus.BOUNCED.value
    audit.record(session, organization_id=row.organization_id, actor_id=None,
                 action="invitation.bounced", entity_type="invitation", entity_id=row.id,
                 before=before, after={"status": row.status, "bounce_kind": "hard",
                                       "evidence": evidence, "bounce": key})
    added = suppression.suppress(
        session, row.organization_id, row.email, SuppressionReason.HARD_BOUNCE,
        evidence=evidence, source=f"{source} {key}"[:300], invitation_id=row.id)
    return added is not None


def _soft(session: Session, row: Invitation, verdict: Verdict, key: str, source: str) -> bool:
    evidence = verdict.evidence or "temporary delivery failure"
    row.soft_bounces = (row.soft_bounces or 0) + 1
    if row.bounce_kind != BounceKind.HARD.value:
        row.bounce_kind = BounceKind.SOFT.value
        row.bounce_detail = evidence
    audit.record(session, organization_id=row.organization_id, actor_id=None,
                 action="invitation.soft_bounce", entity_type="invitation", entity_id=row.id,
                 after={"soft_bounces": row.soft_bounces, "evidence": evidence, "bounce": key})
    limit = settings_service.load(session, row.organization_id).soft_bounces_to_suppress
    if row.soft_bounces < limit:
        return False
    added = suppression.suppress(
        session, row.organization_id, row.email, SuppressionReason.SOFT_BOUNCES,
        evidence=f"{row.soft_bounces} soft bounces; the last: {evidence}",
        source=f"{source} {key}"[:300], invitation_id=row.id)
    return added is not None
