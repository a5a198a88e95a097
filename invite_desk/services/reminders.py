"""Reminders: one email N days before an unanswered invitation's link expires (the setting
`reminder_days_before`; 0 = none).

Only for invitations that are `sent` and still live: never for revoked, accepted, expired,
bounced, suppressed (or failed, uncertain, queued) ones, and never to a suppressed address.
Each invitation gets at most one reminder, whatever crashes or re-runs happen: a reminder is
claimed (`reminder_owner`, committed) before the SMTP transaction, like invitations are, and
settled after it. A run that stops mid-send leaves at most one claimed reminder; the next run
marks it uncertain and never sends it again.

The reminder carries a fresh link (the stored hash is all there is of the old one; the old
link then says a newer one was sent) with the same expiry, the same one-click unsubscribe
token, and "Reminder:" before the subject.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, delete, select
from sqlalchemy.orm.exc import StaleDataError

from invite_desk.services import audit, suppression
from invite_desk.services import settings as settings_service
from invite_desk.services.email.templates import InvitationTemplates
from invite_desk.services.errors import Conflict, DomainError
from invite_desk.services.invitations.rendering import (
    InvitationContent,
    build_invitation_raw,
    require_registration_address,
)
from invite_desk.services.invitations.send_scope import SendScope
from invite_desk.services.invitations.sending import (
    Transport,
    _org_info,
    _owner_is_gone,
    sender_identity,
)
from invite_desk.services.invitations.tokens import hash_token, new_token
from invite_desk.services.mail_settings import MailSettings, load_mail_settings, load_templates
from invite_desk.services.models import (
    Event,
    Invitation,
    InvitationStatus,
    Member,
    Organization,
    RetiredLink,
    utcnow,
)
from invite_desk.services.organization import OrganizationInfo
from invite_desk.services.smtp.transport import (
    PermanentFailure,
    Sent,
    SmtpAuthError,
    SmtpConnectError,
    TemporaryFailure,
    Uncertain,
)
from invite_desk.services.uow import UnitOfWork

UNCERTAIN = "uncertain"  # reminder_owner of a reminder whose run stopped mid-send
FAILED = "failed"  # reminder_owner of a reminder the server refused for good


@dataclass
class ReminderReport:
    due: int = 0
    sent: int = 0
    failed: int = 0
    uncertain: int = 0
    retry_later: int = 0
    error: str = ""
    sent_to: list[str] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)

    def summary(self) -> str:
        parts = [f"{self.sent} reminder{'' if self.sent == 1 else 's'} sent"]
        if self.failed:
            parts.append(f"{self.failed} failed")
        if self.retry_later:
            parts.append(f"{self.retry_later} to retry on the next run")
        if self.uncertain:
            parts.append(f"{self.uncertain} uncertain (not resent)")
        text = ", ".join(parts)
        return text + (f". Stopped: {self.error}" if self.error else ".")


def _scope_conditions(scope: SendScope) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = [Invitation.organization_id == scope.organization_id]
    if scope.batch_id is not None:
        conditions.append(Invitation.batch_id == scope.batch_id)
    if scope.sender_id is not None:
        conditions.append(Invitation.sender_id == scope.sender_id)
    if scope.unit_id is not None:
        conditions.append(Invitation.unit_id == scope.unit_id)
    return conditions


def due_conditions(organization_id: uuid.UUID, days: int,
                   now: datetime) -> list[ColumnElement[bool]]:
    """SQL: the invitation is owed its reminder at `now`."""
    window = timedelta(days=days)
    return [
        Invitation.status == InvitationStatus.SENT.value,
        Invitation.expires_at.is_not(None),
        Invitation.expires_at > now,
        Invitation.expires_at <= now + window,
        Invitation.reminder_sent_at.is_(None),
        Invitation.reminder_owner.is_(None),
        Invitation.token_hash.is_not(None),
        ~suppression.is_suppressed_sql(organization_id, Invitation.email_normalized),
    ]


def _recover(uow: UnitOfWork, scope: SendScope, now: datetime) -> int:
    """Reminders claimed by a run that stopped: uncertain, never sent again."""
    with uow:
        rows = [r for r in uow.session.scalars(select(Invitation).where(
            *_scope_conditions(scope), Invitation.reminder_owner.is_not(None),
            Invitation.reminder_owner.not_in([UNCERTAIN, FAILED]),
            Invitation.reminder_sent_at.is_(None)))
            if _owner_is_gone(r.reminder_owner, r.updated_at, now)]
        for row in rows:
            row.reminder_owner = UNCERTAIN
            audit.record(uow.session, organization_id=row.organization_id, actor_id=None,
                         action="invitation.reminder_uncertain", entity_type="invitation",
                         entity_id=row.id, after={"reminder": UNCERTAIN})
        uow.commit()
        return len(rows)


@dataclass(frozen=True)
class _Claimed:
    id: uuid.UUID
    email: str
    old_hash: str
    message: bytes


def send_reminders(
    uow: UnitOfWork,
    scope: SendScope,
    transport: Transport,
    *,
    actor_id: uuid.UUID | None = None,
    now: datetime | None = None,
    limit: int | None = None,
) -> ReminderReport:
    """Send every reminder due within `scope` (see the module docstring). `scope` comes from
    `sendable_scope`, which checks the operator's right to send."""
    moment = now or utcnow()
    report = ReminderReport()
    report.uncertain = _recover(uow, scope, moment)
    identity = sender_identity()
    with uow:
        session = uow.session
        policy = settings_service.load(session, scope.organization_id)
        days = policy.reminder_days_before
        if days <= 0:
            return report
        org_row = session.get(Organization, scope.organization_id)
        if org_row is None:
            raise DomainError("The organization no longer exists in this database.")
        org = _org_info(org_row)
        require_registration_address(org)
        mail = load_mail_settings(session, scope.organization_id)
        templates = load_templates(session, scope.organization_id)
        stmt = (select(Invitation.id)
                .where(*_scope_conditions(scope),
                       *due_conditions(scope.organization_id, days, moment))
                .order_by(Invitation.expires_at, Invitation.id))
        ids = list(session.scalars(stmt.limit(limit) if limit else stmt))
    report.due = len(ids)
    key = suppression.unsubscribe_key(uow)
    try:
        for invitation_id in ids:
            claimed = _claim(uow, invitation_id, identity, org, mail, templates, key, days,
                             moment)
            if claimed is None:
                continue
            try:
                result = transport.send(claimed.message, claimed.email)
            except (SmtpConnectError, SmtpAuthError) as exc:
                _settle(uow, claimed, actor_id, release=True, note=str(exc))
                report.error = str(exc)
                break
            except Exception as exc:  # the transport could not say: never resent
                result = Uncertain(f"Sending stopped unexpectedly ({type(exc).__name__}).")
            _record(uow, claimed, result, actor_id, report)
    finally:
        transport.close()
    return report


def _claim(uow: UnitOfWork, invitation_id: uuid.UUID, identity: str, org: OrganizationInfo,
           mail: MailSettings, templates: InvitationTemplates, key: bytes, days: int,
           now: datetime) -> _Claimed | None:
    """Re-check the row, render the reminder with a fresh link, and commit the claim; None
    when it is no longer due (answered, revoked, suppressed, or claimed by another run)."""
    try:
        return _try_claim(uow, invitation_id, identity, org, mail, templates, key, days, now)
    except (StaleDataError, Conflict):  # another run claimed it first (the version check)
        return None


def _try_claim(uow: UnitOfWork, invitation_id: uuid.UUID, identity: str, org: OrganizationInfo,
               mail: MailSettings, templates: InvitationTemplates, key: bytes, days: int,
               now: datetime) -> _Claimed | None:
    with uow:
        session = uow.session
        row = session.scalars(select(Invitation).where(
            Invitation.id == invitation_id, Invitation.organization_id == org.id,
            *due_conditions(org.id, days, now))).first()
        if row is None or row.expires_at is None or row.token_hash is None:
            return None
        inviter = session.get(Member, row.inviter_id)
        event_name = ""
        if row.event_id is not None:
            event = session.get(Event, row.event_id)
            event_name = event.name if event is not None else ""
        reminder_note = f"A reminder: this invitation expires on {row.expires_at:%d %B %Y}."
        content = InvitationContent(
            email=row.email, name=row.name,
            inviter_name=inviter.display_name if inviter is not None else "A member",
            personal_message=f"{reminder_note}\n\n{row.personal_message}".strip(),
            expires_at=row.expires_at, event_name=event_name,
        )
        token, token_hash = new_token()
        message, _ = build_invitation_raw(
            org, mail, templates, content, token, invitation_id=row.id,
            unsubscribe_token=suppression.unsubscribe_token(key, row.id),
            subject_prefix="Reminder: ")
        old_hash = row.token_hash
        row.reminder_owner = identity
        row.token_hash = token_hash
        row.unsubscribe_token_hash = hash_token(suppression.unsubscribe_token(key, row.id))
        email = row.email
        uow.commit()
        return _Claimed(invitation_id, email, old_hash, message)



def _settle(uow: UnitOfWork, claimed: _Claimed, actor_id: uuid.UUID | None, *, release: bool,
            note: str) -> None:
    """Give the claim back (the reminder may be tried again) with the old link restored."""
    with uow:
        session = uow.session
        row = session.get(Invitation, claimed.id)
        if row is None:
            return
        new_hash = row.token_hash
        row.reminder_owner = None if release else FAILED
        row.token_hash = claimed.old_hash
        session.flush()
        # The listener recorded both hashes as retired: the old one is live again.
        session.execute(delete(RetiredLink).where(RetiredLink.token_hash == claimed.old_hash))
        if new_hash is not None:
            session.execute(delete(RetiredLink).where(RetiredLink.token_hash == new_hash))
        if not release:
            audit.record(session, organization_id=row.organization_id, actor_id=actor_id,
                         action="invitation.reminder_failed", entity_type="invitation",
                         entity_id=row.id, after={"error": note})
        uow.commit()


def _record(uow: UnitOfWork, claimed: _Claimed, result: object, actor_id: uuid.UUID | None,
            report: ReminderReport) -> None:
    if isinstance(result, Sent):
        with uow:
            row = uow.session.get(Invitation, claimed.id)
            assert row is not None
            row.reminder_sent_at = utcnow()
            row.reminder_owner = None
            audit.record(uow.session, organization_id=row.organization_id, actor_id=actor_id,
                         action="invitation.reminded", entity_type="invitation",
                         entity_id=row.id, after={"reminder_sent_at": row.reminder_sent_at})
            uow.commit()
        report.sent += 1
        report.sent_to.append(claimed.email)
    elif isinstance(result, TemporaryFailure):
        _settle(uow, claimed, actor_id, release=True, note=result.reply)
        report.retry_later += 1
    elif isinstance(result, PermanentFailure):
        reason = " ".join(f"{result.code or ''} {result.reply}".split())
        _settle(uow, claimed, actor_id, release=False, note=reason)
        report.failed += 1
        report.failures.append((claimed.email, reason))
    else:
        reason = result.reason if isinstance(result, Uncertain) else str(result)
        with uow:
            row = uow.session.get(Invitation, claimed.id)
            assert row is not None
            row.reminder_owner = UNCERTAIN
            audit.record(uow.session, organization_id=row.organization_id, actor_id=actor_id,
                         action="invitation.reminder_uncertain", entity_type="invitation",
                         entity_id=row.id, after={"error": reason})
            uow.commit()
        report.uncertain += 1
