"""The outbox worker: sends queued invitations over one SMTP connection, crash-safely.

Each invitation is committed as `sending` (with its token hash and Message-ID) before the
SMTP transaction starts, and its outcome is committed with the claim of the next one. So a
crash leaves at most one invitation in `sending`; `recover_interrupted` marks it `uncertain`
and it is never resent automatically.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Protocol

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from invite_desk.services import audit
from invite_desk.services import settings as settings_service
from invite_desk.services.errors import DomainError
from invite_desk.services.invitations.rendering import InvitationContent, build_invitation_raw
from invite_desk.services.invitations.tokens import new_token
from invite_desk.services.mail_settings import MailSettings, load_mail_settings, load_templates
from invite_desk.services.models import (
    Batch,
    Event,
    Invitation,
    InvitationStatus,
    Member,
    Organization,
    utcnow,
)
from invite_desk.services.organization import OrganizationInfo
from invite_desk.services.smtp.transport import (
    PermanentFailure,
    RetryPolicy,
    SendResult,
    Sent,
    SmtpAuthError,
    SmtpConnectError,
    TemporaryFailure,
    Uncertain,
)
from invite_desk.services.uow import UnitOfWork

UNCERTAIN_REASON = (
    "The program stopped while this invitation was being sent; the server may have received "
    "it. Check with the invitee (or the mail server's log) before resending."
)


PAGE_SIZE = 500


class Transport(Protocol):
    def send(self, message: EmailMessage | bytes, to: str) -> SendResult: ...

    def close(self) -> None: ...


class SendControl:
    """Pause, resume and cancel, safe to call from any thread."""

    def __init__(self) -> None:
        self._running = threading.Event()
        self._running.set()
        self._cancelled = threading.Event()

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    def cancel(self) -> None:
        self._cancelled.set()
        self._running.set()

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def wait_while_paused(self) -> None:
        self._running.wait()

    def sleep(self, seconds: float) -> None:
        """Sleep, but wake at once on cancel."""
        self._cancelled.wait(max(0.0, seconds))


@dataclass(frozen=True)
class SendProgress:
    total: int
    sent: int
    failed: int
    uncertain: int
    waiting_retry: int
    remaining: int
    seconds_left: float | None
    last_email: str = ""
    last_outcome: str = ""


@dataclass
class SendReport:
    sent: int = 0
    failed: int = 0
    uncertain: int = 0
    retried: int = 0
    cancelled: bool = False
    error: str = ""
    failures: list[tuple[str, str]] = field(default_factory=list)  # (email, reason)


SENDING_LEASE = timedelta(minutes=15)


def sender_identity() -> str:
    """This process, as written on the rows it holds in `sending`."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _owner_is_gone(owner: str | None, updated_at: datetime, now: datetime) -> bool:
    """Whether the sender holding a row has stopped: a dead process on this machine, or no
    word from it for longer than any single SMTP transaction can take (other machines)."""
    if not owner or updated_at < now - SENDING_LEASE:
        return True
    host, _, rest = owner.partition(":")
    if host != socket.gethostname()[:60]:
        return False
    try:
        pid = int(rest.partition(":")[0])
        os.kill(pid, 0)
    except (ValueError, ProcessLookupError):
        return True
    except PermissionError:
        return False
    return False


def recover_interrupted(
    uow: UnitOfWork, organization_id: uuid.UUID | None = None, *, now: datetime | None = None
) -> list[str]:
    """Mark invitations left in `sending` by a stopped sender as `uncertain`; return their emails.

    Rows held by a sender that is still running (another window, the CLI, another desktop on
    a shared database) are left alone.
    """
    moment = now or utcnow()
    with uow:
        stmt = select(Invitation).where(Invitation.status == InvitationStatus.SENDING.value)
        if organization_id is not None:
            stmt = stmt.where(Invitation.organization_id == organization_id)
        rows = [
            row for row in uow.session.scalars(stmt)
            if _owner_is_gone(row.sending_owner, row.updated_at, moment)
        ]
        for row in rows:
            row.status = InvitationStatus.UNCERTAIN.value
            row.last_error = UNCERTAIN_REASON
            row.sending_owner = None
            audit.record(
                uow.session, organization_id=row.organization_id, actor_id=None,
                action="invitation.uncertain", entity_type="invitation", entity_id=row.id,
                before={"status": "sending"},
                after={"status": "uncertain", "message_id": row.message_id},
            )
        uow.commit()
        return [row.email for row in rows]


def _org_info(org: Organization) -> OrganizationInfo:
    return OrganizationInfo(org.id, org.name, org.description, org.logo, org.logo_mime,
                            org.accent_color, org.registration_base_url)


class OutboxSender:
    """Sends every due queued invitation of an organization (or of one batch)."""

    def __init__(
        self,
        uow: UnitOfWork,
        transport: Transport,
        *,
        organization_id: uuid.UUID,
        batch_id: uuid.UUID | None = None,
        retry: RetryPolicy | None = None,
        control: SendControl | None = None,
        on_progress: Callable[[SendProgress], None] | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.uow = uow
        self.transport = transport
        self.organization_id = organization_id
        self.batch_id = batch_id
        self.retry = retry or RetryPolicy()
        self.control = control or SendControl()
        self.on_progress = on_progress
        self.clock = clock
        self.identity = sender_identity()
        self._page: deque[uuid.UUID] = deque()
        self._names: dict[uuid.UUID, str] = {}
        self._events: dict[uuid.UUID, str] = {}
        self.report = SendReport()
        self._started = time.monotonic()
        self._total = 0
        self._done_before = 0

    # -- selection -------------------------------------------------------------------------
    def _scope(self) -> list[object]:
        conditions: list[object] = [Invitation.organization_id == self.organization_id]
        if self.batch_id is not None:
            conditions.append(Invitation.batch_id == self.batch_id)
        return conditions

    def _next_due(self, session: Session, now: datetime) -> Invitation | None:
        """The next queued invitation that is due, from a page of candidate ids.

        Paging keeps the per-message cost constant (no ORDER BY over the whole queue per
        message); each candidate is re-read by primary key, so one revoked or claimed
        meanwhile is skipped.
        """
        while True:
            if not self._page:
                self._page.extend(session.scalars(
                    select(Invitation.id)
                    .where(
                        *self._scope(),  # type: ignore[arg-type]
                        Invitation.status == InvitationStatus.QUEUED.value,
                        or_(Invitation.next_attempt_at.is_(None),
                            Invitation.next_attempt_at <= now),
                    )
                    .order_by(Invitation.queued_at, Invitation.id)
                    .limit(PAGE_SIZE)
                ))
                if not self._page:
                    return None
            row = session.get(Invitation, self._page.popleft())
            if row is not None and row.status == InvitationStatus.QUEUED.value and (
                row.next_attempt_at is None or row.next_attempt_at <= now
            ):
                return row

    def _earliest_retry(self, session: Session) -> datetime | None:
        return session.scalar(
            select(func.min(Invitation.next_attempt_at)).where(
                *self._scope(),  # type: ignore[arg-type]
                Invitation.status == InvitationStatus.QUEUED.value,
            )
        )

    def _counts(self, session: Session) -> dict[str, int]:
        rows = session.execute(
            select(Invitation.status, func.count())
            .where(*self._scope())  # type: ignore[arg-type]
            .group_by(Invitation.status)
        )
        return {status: count for status, count in rows}

    # -- per-invitation content ------------------------------------------------------------
    def _name_of(self, session: Session, member_id: uuid.UUID) -> str:
        if member_id not in self._names:
            member = session.get(Member, member_id)
            self._names[member_id] = member.display_name if member else "A member"
        return self._names[member_id]

    def _event_name(self, session: Session, event_id: uuid.UUID | None) -> str:
        if event_id is None:
            return ""
        if event_id not in self._events:
            event = session.get(Event, event_id)
            self._events[event_id] = event.name if event else ""
        return self._events[event_id]

    def _claim(
        self, session: Session, row: Invitation, org: OrganizationInfo, mail: MailSettings,
        expiry_days: int, now: datetime,
    ) -> bytes:
        """Render with a fresh token and mark the row `sending` (committed by the caller)."""
        token, token_hash = new_token()
        expires = now + timedelta(days=expiry_days)
        content = InvitationContent(
            email=row.email, name=row.name, inviter_name=self._name_of(session, row.inviter_id),
            personal_message=row.personal_message, expires_at=expires,
            event_name=self._event_name(session, row.event_id),
        )
        message, message_id = build_invitation_raw(org, mail, self._templates, content, token)
        row.status = InvitationStatus.SENDING.value
        row.sending_owner = self.identity
        row.token_hash = token_hash
        row.expires_at = expires
        row.message_id = message_id
        row.attempts = row.attempts + 1
        return message

    def _settle(self, session: Session, row: Invitation, result: SendResult, now: datetime) -> None:
        """Record the outcome of one send in the session."""
        before = {"status": row.status}
        row.sending_owner = None
        action: str
        after: dict[str, object]
        if isinstance(result, Sent):
            row.status = InvitationStatus.SENT.value
            row.sent_at = now
            row.next_attempt_at = None
            row.last_error = ""
            self.report.sent += 1
            action, after = "invitation.sent", {"status": "sent", "message_id": row.message_id,
                                                "reply": result.reply[:200]}
        elif isinstance(result, TemporaryFailure) and self.retry.should_retry(row.attempts):
            delay = self.retry.delay_for(row.attempts)
            row.status = InvitationStatus.QUEUED.value
            row.token_hash = None  # the next attempt issues a new token
            row.next_attempt_at = now + timedelta(seconds=delay)
            row.last_error = _reply_text(result.code, result.reply)
            self.report.retried += 1
            action, after = "invitation.retry", {"status": "queued", "attempt": row.attempts,
                                                 "error": row.last_error, "retry_in_s": delay}
        elif isinstance(result, Uncertain):
            row.status = InvitationStatus.UNCERTAIN.value
            row.last_error = result.reason
            self.report.uncertain += 1
            action, after = "invitation.uncertain", {"status": "uncertain",
                                                     "error": result.reason}
        else:
            assert isinstance(result, PermanentFailure | TemporaryFailure)
            row.status = InvitationStatus.FAILED.value
            row.token_hash = None
            row.last_error = _reply_text(result.code, result.reply)
            if isinstance(result, TemporaryFailure):
                row.last_error = f"Gave up after {row.attempts} attempts: {row.last_error}"
            self.report.failed += 1
            self.report.failures.append((row.email, row.last_error))
            action, after = "invitation.failed", {"status": "failed", "error": row.last_error}
        audit.record(
            session, organization_id=row.organization_id, actor_id=row.sender_id, action=action,
            entity_type="invitation", entity_id=row.id, before=before, after=after,
        )

    def _release(self, session: Session, row: Invitation) -> None:
        """Put a claimed, unsent invitation back in the queue."""
        row.status = InvitationStatus.QUEUED.value
        row.sending_owner = None
        row.token_hash = None
        row.attempts = max(0, row.attempts - 1)

    def _emit(self, last_email: str = "", last_outcome: str = "") -> None:
        if self.on_progress is None:
            return
        r = self.report
        done = r.sent + r.failed + r.uncertain
        remaining = max(0, self._total - self._done_before - done)
        elapsed = time.monotonic() - self._started
        seconds_left = (elapsed / done * remaining) if done else None
        self.on_progress(SendProgress(
            total=self._total, sent=r.sent, failed=r.failed, uncertain=r.uncertain,
            waiting_retry=0, remaining=remaining, seconds_left=seconds_left,
            last_email=last_email, last_outcome=last_outcome,
        ))

    # -- waiting ---------------------------------------------------------------------------
    def _rate_wait(self) -> float:
        """Seconds the transport's rate limit would hold the next send (0 when it has none)."""
        wait_time = getattr(getattr(self.transport, "limiter", None), "wait_time", None)
        return float(wait_time()) if callable(wait_time) else 0.0

    def _wait_to_go_on(self) -> None:
        """Wait while paused, then for the rate limit, before claiming the next invitation.

        Waiting here rather than inside the transport means nothing is claimed yet, so a
        cancel wakes at once and leaves every unsent invitation queued.
        """
        while not self.control.cancelled:
            if self.control.paused:
                self.control.wait_while_paused()
                continue
            wait = self._rate_wait()
            if wait <= 0:
                return
            self.control.sleep(wait)

    # -- the loop --------------------------------------------------------------------------
    def run(self) -> SendReport:
        """Send until nothing is due (waiting for retries), or until cancelled."""
        recover_interrupted(self.uow, self.organization_id)
        uow = self.uow
        with uow:
            session = uow.session
            org_row = session.get(Organization, self.organization_id)
            if org_row is None:
                raise DomainError("The organization no longer exists in this database.")
            org = _org_info(org_row)
            mail = load_mail_settings(session, self.organization_id)
            self._templates = load_templates(session, self.organization_id)
            expiry_days = settings_service.load(session, self.organization_id).invitation_expiry_days
            counts = self._counts(session)
            self._total = sum(counts.values()) if self.batch_id else sum(
                counts.get(s.value, 0) for s in (InvitationStatus.QUEUED,))
            if self.batch_id:
                self._done_before = self._total - counts.get(InvitationStatus.QUEUED.value, 0)
        self._started = time.monotonic()
        self._emit()
        current: Invitation | None = None
        message: bytes | None = None
        last_result: SendResult | None = None
        try:
            while True:
                with uow:
                    session = uow.session
                    now = self.clock()
                    if current is not None and last_result is not None:
                        row = session.get(Invitation, current.id)
                        assert row is not None
                        self._settle(session, row, last_result, now)
                        self._emit(row.email, row.status)
                    current, message, last_result = None, None, None
                    retry_at: datetime | None = None
                    if self.control.paused or self._rate_wait() > 0:
                        # Never wait with the outcome above unsaved or the database locked.
                        uow.commit()
                        self._wait_to_go_on()
                        now = self.clock()
                    if self.control.cancelled:
                        uow.commit()
                        self.report.cancelled = True
                        break
                    row = self._next_due(session, now)
                    if row is not None:
                        message = self._claim(session, row, org, mail, expiry_days, now)
                        current = row
                    else:
                        retry_at = self._earliest_retry(session)
                    uow.commit()
                if current is None:
                    if retry_at is None:
                        break
                    self.control.sleep((retry_at - self.clock()).total_seconds())
                    if self.control.cancelled:
                        self.report.cancelled = True
                        break
                    continue
                assert message is not None
                try:
                    last_result = self.transport.send(message, current.email)
                except (SmtpConnectError, SmtpAuthError) as exc:
                    with uow:
                        row = uow.session.get(Invitation, current.id)
                        assert row is not None
                        self._release(uow.session, row)
                        row.last_error = str(exc)
                        uow.commit()
                    current = None
                    self.report.error = str(exc)
                    break
        finally:
            self.transport.close()
        self._finish_batches()
        self._emit()
        return self.report

    def _finish_batches(self) -> None:
        """Mark batches with nothing left to send as done."""
        with self.uow:
            open_left = (
                select(Invitation.id)
                .where(
                    Invitation.batch_id == Batch.id,
                    Invitation.status.in_([InvitationStatus.QUEUED.value,
                                           InvitationStatus.SENDING.value]),
                )
                .exists()
            )
            conditions = [Batch.organization_id == self.organization_id, Batch.status == "open",
                          ~open_left]
            if self.batch_id is not None:
                conditions.append(Batch.id == self.batch_id)
            self.uow.session.execute(
                update(Batch).where(and_(*conditions)).values(
                    status="done", version=Batch.version + 1, updated_at=utcnow()
                ).execution_options(synchronize_session=False)
            )
            self.uow.commit()


def cancel_batch(uow: UnitOfWork, batch_id: uuid.UUID, actor_id: uuid.UUID) -> int:
    """Move the batch's still-queued invitations back to draft; return how many."""
    with uow:
        rows = list(uow.session.scalars(select(Invitation).where(
            Invitation.batch_id == batch_id, Invitation.status == InvitationStatus.QUEUED.value)))
        for row in rows:
            row.status = InvitationStatus.DRAFT.value
            row.token_hash = None
        batch = uow.session.get(Batch, batch_id)
        if batch is not None:
            batch.status = "cancelled"
            audit.record(uow.session, organization_id=batch.organization_id, actor_id=actor_id,
                         action="batch.cancelled", entity_type="batch", entity_id=batch_id,
                         after={"returned_to_draft": len(rows)})
        uow.commit()
        return len(rows)


def _reply_text(code: int | None, reply: str) -> str:
    text = " ".join(reply.split())
    if code is not None and not text.startswith(str(code)):
        return f"{code} {text}"
    return text


def describe(report: SendReport) -> str:
    parts = [f"{report.sent} sent"]
    if report.failed:
        parts.append(f"{report.failed} failed")
    if report.uncertain:
        parts.append(f"{report.uncertain} uncertain")
    if report.cancelled:
        parts.append("cancelled")
    text = ", ".join(parts)
    if report.error:
        text += f". Stopped: {report.error}"
    return text

