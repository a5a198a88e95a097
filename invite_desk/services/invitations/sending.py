"""The outbox worker: sends queued invitations over one SMTP connection, crash-safely.

Each invitation is committed as `sending` (with its token hash and Message-ID) before the
SMTP transaction starts, and its outcome is committed with the claim of the next one. So a
crash leaves at most one invitation in `sending`; `recover_interrupted` marks it `uncertain`
and it is never resent automatically.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Protocol, cast

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Table,
    Update,
    and_,
    bindparam,
    exists,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session

from invite_desk.services import audit, suppression
from invite_desk.services import settings as settings_service
from invite_desk.services.errors import DomainError
from invite_desk.services.invitations.rendering import (
    InvitationContent,
    build_invitation_raw,
    require_registration_address,
)
from invite_desk.services.invitations.send_scope import SendScope
from invite_desk.services.invitations.tokens import hash_token, new_token
from invite_desk.services.mail_settings import MailSettings, load_mail_settings, load_templates
from invite_desk.services.models import (
    AuditLog,
    Batch,
    Event,
    Invitation,
    InvitationStatus,
    Member,
    Organization,
    SyncCommandState,
    new_id,
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
from invite_desk.services.sync import journal
from invite_desk.services.uow import UnitOfWork

UNCERTAIN_REASON = (
    "The program stopped while this invitation was being sent; the server may have received "
    "it. Check with the invitee (or the mail server's log) before resending."
)


PAGE_SIZE = 500
INVITATION = cast(Table, Invitation.__table__)
AUDIT = cast(Table, AuditLog.__table__)
_CANDIDATE_COLUMNS = (
    INVITATION.c.id, INVITATION.c.organization_id, INVITATION.c.email, INVITATION.c.name,
    INVITATION.c.inviter_id, INVITATION.c.sender_id, INVITATION.c.personal_message,
    INVITATION.c.event_id, INVITATION.c.attempts, INVITATION.c.message_id,
)


@dataclass
class _Candidate:
    """The columns of a queued invitation the loop needs (read a page at a time)."""

    id: uuid.UUID
    organization_id: uuid.UUID
    email: str
    name: str
    inviter_id: uuid.UUID
    sender_id: uuid.UUID
    personal_message: str
    event_id: uuid.UUID | None
    attempts: int
    message_id: str | None
    # Where the row was claimed: "local" (this database), or "server" (a replica's sender
    # claimed it on the server, see ServerLink).
    home: str = "local"


@dataclass(frozen=True)
class _Prepared:
    """A rendered message with its token's hash, ready to be claimed and sent."""

    invitation_id: uuid.UUID
    message: bytes
    message_id: str
    token_hash: str
    expires: datetime
    unsubscribe_hash: str = ""


@dataclass(frozen=True)
class _Outcome:
    """The writes that record one send's result (counted in the report once)."""

    status: InvitationStatus
    values: dict[str, object]
    action: str
    after: dict[str, object]


def _invitation_update(*conditions: ColumnElement[bool], **values: object) -> Update:
    """A prepared UPDATE of one invitation (by :row_id) that bumps its version like the ORM."""
    return (
        update(INVITATION)
        .where(INVITATION.c.id == bindparam("row_id"), *conditions)
        .values(version=INVITATION.c.version + 1, updated_at=bindparam("now"), **values)
    )


# Built once: constructing statements per message cost more than executing them.
_CLAIM = _invitation_update(
    INVITATION.c.status == InvitationStatus.QUEUED.value,
    status=InvitationStatus.SENDING.value, sending_owner=bindparam("owner"),
    token_hash=bindparam("token_hash"), expires_at=bindparam("expires"),
    message_id=bindparam("message_id"), attempts=INVITATION.c.attempts + 1,
    unsubscribe_token_hash=bindparam("unsubscribe_hash"),
)
_SETTLE = {
    InvitationStatus.SENT: _invitation_update(
        status="sent", sending_owner=None, sent_at=bindparam("sent_at"),
        next_attempt_at=None, last_error=""),
    InvitationStatus.QUEUED: _invitation_update(  # retry later with a new token
        status="queued", sending_owner=None, token_hash=None,
        next_attempt_at=bindparam("next_attempt_at"), last_error=bindparam("last_error")),
    InvitationStatus.UNCERTAIN: _invitation_update(
        status="uncertain", sending_owner=None, last_error=bindparam("last_error")),
    InvitationStatus.FAILED: _invitation_update(
        status="failed", sending_owner=None, token_hash=None,
        last_error=bindparam("last_error")),
}
_RELEASE = _invitation_update(
    status="queued", sending_owner=None, token_hash=None,
    attempts=INVITATION.c.attempts - 1, last_error=bindparam("last_error"),
)
_FAIL_UNSENT = _invitation_update(
    INVITATION.c.status == InvitationStatus.QUEUED.value,
    status="failed", sending_owner=None, token_hash=None, last_error=bindparam("last_error"),
)
_AUDIT_INSERT = insert(AUDIT)
LOCAL = "local"
SERVER = "server"
# A server row in one of these states was claimed or sent by another sender (a headless
# `invite-desk send`, another desktop): the replica skips it and counts it as sent elsewhere.
SENT_ELSEWHERE = frozenset({
    InvitationStatus.SENDING.value, InvitationStatus.SENT.value,
    InvitationStatus.UNCERTAIN.value, InvitationStatus.FAILED.value,
    InvitationStatus.BOUNCED.value,
})
# The columns a server-side claim or outcome is mirrored into on the replica (not journaled).
MIRRORED_COLUMNS = tuple(sorted(journal.DELIVERY_COLUMNS))


@dataclass(frozen=True)
class ServerLink:
    """How a replica's sender reaches the organization's server (replica mode, issue 12).

    `engine()`: the server while the last sync round reached it, else None (no connection is
    made). `exclusive()`: held while a row only this replica knows is claimed; no push runs
    inside it (the replica's round lock), so a push after it carries the claim. `push()`:
    push the waiting commands now; False when the server did not answer.
    """

    engine: Callable[[], Engine | None]
    exclusive: Callable[[], AbstractContextManager[object]]
    push: Callable[[], bool] | None = None


NEVER_OFFERED = ""  # the checkpoint of a pending command not yet sent (sync/push.OFFERED)


def _open_commands(*, never_offered: bool) -> ColumnElement[bool]:
    command = journal.SYNC_COMMAND
    change = journal.LOCAL_CHANGE
    pending = [command.c.state == SyncCommandState.PENDING.value]
    if never_offered:
        pending.append(command.c.checkpoint == NEVER_OFFERED)
    return or_(change.c.command_id.is_(None),
               change.c.command_id.in_(select(command.c.id).where(*pending)))


def unpushed_sql(row_id: ColumnElement[uuid.UUID] | uuid.UUID, *,
                 inserted: bool = False) -> ColumnElement[bool]:
    """SQL on a replica: the invitation has changes made here that the server has not
    answered yet; `inserted`: it was created here and that insert never went to the server
    (not even in a push whose answer was lost), so the server cannot know it."""
    change = journal.LOCAL_CHANGE
    conditions = [change.c.table_name == "invitation", change.c.row_id == row_id,
                  _open_commands(never_offered=inserted)]
    if inserted:
        conditions.append(change.c.op == "I")
    return exists().where(*conditions)


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
    # The provider's daily cap was reached: `deferred` invitations stay queued until
    # `resumes_at` (UTC), when the oldest send of the last 24 hours leaves the window.
    deferred: int = 0
    resumes_at: datetime | None = None
    daily_limit: int = 0
    # Replica mode: invitations another sender had already claimed or sent on the server
    # (skipped here, not an error), and queued ones the server must answer for first (they
    # are sent once it does).
    elsewhere: int = 0
    waiting_server: int = 0


SENDING_LEASE = timedelta(minutes=15)
PROGRESS_EVERY = 1.0  # seconds between progress reports while waiting


def sender_identity() -> str:
    """This process, as written on the rows it holds in `sending`."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


# Runs of this process that have ended: a row one of them left `sending` (its server went
# away between the claim and the outcome) is theirs no more, though the process lives on.
_ENDED_RUNS: set[str] = set()


def run_ended(identity: str) -> None:
    """Record that the send run `identity` (sender_identity()) has ended."""
    _ENDED_RUNS.add(identity)


def _owner_is_gone(owner: str | None, updated_at: datetime, now: datetime) -> bool:
    """Whether the sender holding a row has stopped: a dead process on this machine, a run
    of this process that has ended, or no word from it for longer than any single SMTP
    transaction can take (other machines)."""
    if not owner or updated_at < now - SENDING_LEASE or owner in _ENDED_RUNS:
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


def scheduled_later_sql(batch_id: ColumnElement[uuid.UUID | None] | object,
                        now: datetime) -> ColumnElement[bool]:
    """SQL: the invitation's batch is scheduled to start after `now` (not to be sent yet)."""
    return exists().where(Batch.id == batch_id, Batch.scheduled_at.is_not(None),
                          Batch.scheduled_at > now)


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
        scope: SendScope | None = None,
        retry: RetryPolicy | None = None,
        control: SendControl | None = None,
        on_progress: Callable[[SendProgress], None] | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.uow = uow
        self.transport = transport
        self.organization_id = organization_id
        if scope is not None and scope.organization_id != organization_id:
            raise ValueError("the scope belongs to another organization")
        self.send_scope = scope or SendScope(organization_id)
        self.batch_id = batch_id or self.send_scope.batch_id
        self.retry = retry or RetryPolicy()
        self.control = control or SendControl()
        self.on_progress = on_progress
        self.clock = clock
        self.identity = sender_identity()
        # Rendering the next message overlaps the wait for the server's reply to this one.
        self._renderer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="render")
        self._ahead: tuple[uuid.UUID, Future[_Prepared]] | None = None
        self._page: deque[_Candidate] = deque()
        self._names: dict[uuid.UUID, str] = {}
        self._events: dict[uuid.UUID, str] = {}
        self.report = SendReport()
        self._started = time.monotonic()
        self._total = 0
        self._done_before = 0

    # -- selection -------------------------------------------------------------------------
    # The loop below runs on a Core connection, not the ORM: it is the per-message hot path
    # (the ORM's identity map and flush cost ~2 ms a message, more than the SMTP exchange).
    def _scope(self) -> list[ColumnElement[bool]]:
        conditions: list[ColumnElement[bool]] = [
            INVITATION.c.organization_id == self.organization_id
        ]
        if self.batch_id is not None:
            conditions.append(INVITATION.c.batch_id == self.batch_id)
        if self.send_scope.sender_id is not None:
            conditions.append(INVITATION.c.sender_id == self.send_scope.sender_id)
        if self.send_scope.unit_id is not None:
            conditions.append(INVITATION.c.unit_id == self.send_scope.unit_id)
        return conditions

    def _next_due(self, conn: Connection, now: datetime) -> _Candidate | None:
        """The next due queued invitation, from a page read at once (re-checked at claim)."""
        if not self._page:
            rows = conn.execute(
                select(*_CANDIDATE_COLUMNS)
                .where(
                    *self._scope(),
                    INVITATION.c.status == InvitationStatus.QUEUED.value,
                    or_(INVITATION.c.next_attempt_at.is_(None),
                        INVITATION.c.next_attempt_at <= now),
                    # Deliverability: never a suppressed address, never a batch before its time.
                    ~suppression.is_suppressed_sql(self.organization_id,
                                                   INVITATION.c.email_normalized),
                    ~scheduled_later_sql(INVITATION.c.batch_id, now),
                    *self._sendable(),
                )
                .order_by(INVITATION.c.queued_at, INVITATION.c.id)
                .limit(PAGE_SIZE)
            )
            self._page.extend(_Candidate(**row._mapping) for row in rows)
        return self._page.popleft() if self._page else None

    def _earliest_retry(self, conn: Connection) -> datetime | None:
        return conn.execute(
            select(func.min(INVITATION.c.next_attempt_at)).where(
                *self._scope(), INVITATION.c.status == InvitationStatus.QUEUED.value,
                ~scheduled_later_sql(INVITATION.c.batch_id, self.clock()), *self._sendable(),
            )
        ).scalar()

    def _sendable(self) -> list[ColumnElement[bool]]:
        """Further conditions on the queued rows this run may take (a replica's sender:
        rows it can claim now; see parallel.py)."""
        return []

    def _counts(self, session: Session) -> dict[str, int]:
        rows = session.execute(
            select(Invitation.status, func.count())
            .where(*self._scope())
            .group_by(Invitation.status)
        )
        return {status: count for status, count in rows}

    # -- per-invitation content ------------------------------------------------------------
    def _name_of(self, conn: Connection, member_id: uuid.UUID) -> str:
        if member_id not in self._names:
            found = conn.execute(
                select(Member.first_name, Member.last_name, Member.email)
                .where(Member.id == member_id)
            ).first()
            name = f"{found[0]} {found[1]}".strip() or found[2] if found else ""
            self._names[member_id] = name or "A member"
        return self._names[member_id]

    def _event_name(self, conn: Connection, event_id: uuid.UUID | None) -> str:
        if event_id is None:
            return ""
        if event_id not in self._events:
            self._events[event_id] = conn.execute(
                select(Event.name).where(Event.id == event_id)
            ).scalar() or ""
        return self._events[event_id]

    def _audit(self, conn: Connection, row: _Candidate, action: str,
               before: dict[str, object], after: dict[str, object]) -> None:
        now = utcnow()
        conn.execute(_AUDIT_INSERT, {
            "id": new_id(), "version": 1, "created_at": now, "updated_at": now, "at": now,
            "organization_id": row.organization_id, "actor_id": row.sender_id,
            "action": action, "entity_type": "invitation", "entity_id": row.id,
            "before_json": json.dumps(before, sort_keys=True, default=str),
            "after_json": json.dumps(after, sort_keys=True, default=str),
        })

    def _prepare(
        self, conn: Connection, row: _Candidate, org: OrganizationInfo, mail: MailSettings,
        expiry_days: int, now: datetime,
    ) -> Future[_Prepared]:
        """Render `row` with a fresh token on the render thread (names are looked up here,
        on the loop's connection). Nothing is written: the claim stores the token's hash."""
        content = InvitationContent(
            email=row.email, name=row.name, inviter_name=self._name_of(conn, row.inviter_id),
            personal_message=row.personal_message,
            expires_at=now + timedelta(days=expiry_days),
            event_name=self._event_name(conn, row.event_id),
        )
        templates = self._templates

        def render() -> _Prepared:
            token, token_hash = new_token()
            unsubscribe = suppression.unsubscribe_token(self._unsubscribe_key, row.id)
            unsubscribe_hash = hash_token(unsubscribe)
            message, message_id = build_invitation_raw(
                org, mail, templates, content, token,
                invitation_id=row.id, unsubscribe_token=unsubscribe)
            return _Prepared(row.id, message, message_id, token_hash, content.expires_at,
                             unsubscribe_hash)

        return self._renderer.submit(render)

    def _claim(self, conn: Connection, row: _Candidate, prepared: _Prepared) -> bytes | None:
        """Mark the row `sending` with the prepared token hash and Message-ID (committed by the
        caller). None when the row changed since it was read (revoked, or claimed elsewhere)."""
        claimed = conn.execute(_CLAIM, {
            "row_id": row.id, "owner": self.identity, "token_hash": prepared.token_hash,
            "expires": prepared.expires, "message_id": prepared.message_id, "now": utcnow(),
            "unsubscribe_hash": prepared.unsubscribe_hash or None,
        }).rowcount
        if claimed != 1:
            return None
        row.attempts += 1
        row.message_id = prepared.message_id
        return prepared.message

    def _settle(self, conn: Connection, row: _Candidate, result: SendResult, now: datetime) -> str:
        """Record the outcome of one send; returns the new status."""
        outcome = self._outcome(row, result, now)
        self._write_outcome(conn, row, outcome)
        return outcome.status.value

    def _write_outcome(self, conn: Connection, row: _Candidate, outcome: _Outcome) -> None:
        conn.execute(_SETTLE[outcome.status], outcome.values)
        self._audit(conn, row, outcome.action, {"status": "sending"}, outcome.after)

    def _outcome(self, row: _Candidate, result: SendResult, now: datetime) -> _Outcome:
        """What one send's result makes of its row (and counts it in the report)."""
        values: dict[str, object] = {"row_id": row.id, "now": utcnow()}
        after: dict[str, object]
        if isinstance(result, Sent):
            status = InvitationStatus.SENT
            values.update(sent_at=now)
            self.report.sent += 1
            action, after = "invitation.sent", {"status": "sent", "message_id": row.message_id,
                                                "reply": result.reply[:200]}
        elif isinstance(result, TemporaryFailure) and self.retry.should_retry(row.attempts):
            delay = self.retry.delay_for(row.attempts)
            status = InvitationStatus.QUEUED
            error = _reply_text(result.code, result.reply)
            # The next attempt issues a new token.
            values.update(next_attempt_at=now + timedelta(seconds=delay), last_error=error)
            self.report.retried += 1
            action, after = "invitation.retry", {"status": "queued", "attempt": row.attempts,
                                                 "error": error, "retry_in_s": delay}
        elif isinstance(result, Uncertain):
            status = InvitationStatus.UNCERTAIN
            values.update(last_error=result.reason)
            self.report.uncertain += 1
            action, after = "invitation.uncertain", {"status": "uncertain",
                                                     "error": result.reason,
                                                     "message_id": row.message_id}
        else:
            assert isinstance(result, PermanentFailure | TemporaryFailure)
            status = InvitationStatus.FAILED
            error = _reply_text(result.code, result.reply)
            if isinstance(result, TemporaryFailure):
                error = f"Gave up after {row.attempts} attempts: {error}"
            values.update(last_error=error)
            self.report.failed += 1
            self.report.failures.append((row.email, error))
            action, after = "invitation.failed", {"status": "failed", "error": error}
        return _Outcome(status, values, action, after)

    def _release(self, conn: Connection, row: _Candidate, error: str) -> None:
        """Put a claimed, unsent invitation back in the queue."""
        conn.execute(_RELEASE, {"row_id": row.id, "last_error": error, "now": utcnow()})

    def _emit(self, last_email: str = "", last_outcome: str = "", *,
              retry_in: float | None = None) -> None:
        if self.on_progress is None:
            return
        r = self.report
        done = r.sent + r.failed + r.uncertain + r.elsewhere
        remaining = max(0, self._total - self._done_before - done)
        interval = self._send_interval()
        seconds_left: float | None
        if retry_in is not None:  # nothing else is due: the next retry decides
            seconds_left = retry_in + max(0, remaining - 1) * interval
        elif interval and remaining:
            # The rate limit, not the pace so far, decides (and keeps counting down while
            # the sender waits for it).
            seconds_left = self._rate_wait() + (remaining - 1) * interval
        elif done:
            seconds_left = (time.monotonic() - self._started) / done * remaining
        else:
            seconds_left = None
        self.on_progress(SendProgress(
            total=self._total, sent=r.sent, failed=r.failed, uncertain=r.uncertain,
            waiting_retry=r.retried if retry_in is not None else 0, remaining=remaining,
            seconds_left=seconds_left, last_email=last_email, last_outcome=last_outcome,
        ))

    # -- waiting ---------------------------------------------------------------------------
    def _rate_wait(self) -> float:
        """Seconds the transport's rate limit would hold the next send (0 when it has none)."""
        wait_time = getattr(getattr(self.transport, "limiter", None), "wait_time", None)
        return float(wait_time()) if callable(wait_time) else 0.0

    def _send_interval(self) -> float:
        """Seconds between sends the rate limit allows on average (0 when it has none)."""
        per_minute = getattr(getattr(self.transport, "limiter", None), "per_minute", 0)
        return 60.0 / per_minute if isinstance(per_minute, int) and per_minute > 0 else 0.0

    def _wait_to_go_on(self) -> None:
        """Wait while paused, then for the rate limit, before claiming the next invitation.

        Waiting here rather than inside the transport means nothing is claimed yet, so a
        cancel wakes at once and leaves every unsent invitation queued. The progress goes on
        (once a second) so the time left keeps counting down.
        """
        while not self.control.cancelled:
            if self.control.paused:
                self.control.wait_while_paused()
                continue
            wait = self._rate_wait()
            if wait <= 0:
                return
            self.control.sleep(min(wait, PROGRESS_EVERY))
            self._emit()

    def _wait_for_retry(self, retry_at: datetime) -> None:
        """Sleep until the earliest retry is due (or a cancel), reporting progress meanwhile."""
        while not self.control.cancelled:
            wait = (retry_at - self.clock()).total_seconds()
            if wait <= 0:
                return
            self._emit(retry_in=wait)
            self.control.sleep(min(wait, PROGRESS_EVERY))

    # -- the loop --------------------------------------------------------------------------
    def run(self) -> SendReport:
        """Send until nothing is due (waiting for retries), or until cancelled.

        One invitation that cannot be prepared (an address the builder refuses, a template
        error, anything) fails alone with its reason; the run goes on with the next one.
        Raises SettingsIncomplete before sending anything while the registration address is
        empty.
        """
        with journal.command(journal.DELIVERY, "Send invitations (what the outbox sent)"):
            return self._run()

    def _run(self) -> SendReport:
        uow = self.uow
        org, mail, expiry_days = self._setup()
        self._started = time.monotonic()
        self._emit()
        current: _Candidate | None = None
        message: bytes | None = None
        last_result: SendResult | None = None
        handed = False  # whether `current` went to the transport (then its fate is unknown)
        try:
            with uow.engine.connect() as conn:
                try:
                    while True:
                        now = self.clock()
                        if current is not None and last_result is not None:
                            status = self._settle(conn, current, last_result, now)
                            self._emit(current.email, status)
                        current, message, last_result, handed = None, None, None, False
                        retry_at: datetime | None = None
                        if self.control.paused or self._rate_wait() > 0:
                            # Never wait with the outcome above unsaved or the database locked.
                            conn.commit()
                            self._wait_to_go_on()
                            now = self.clock()
                        if self.control.cancelled:
                            conn.commit()
                            self.report.cancelled = True
                            break
                        while (candidate := self._next_due(conn, now)) is not None:
                            ahead, self._ahead = self._ahead, None
                            if ahead is None or ahead[0] != candidate.id:
                                ahead = (candidate.id, self._prepare(
                                    conn, candidate, org, mail, expiry_days, now))
                            try:
                                prepared = ahead[1].result()
                            except Exception as exc:  # this invitation only: fail it, go on
                                if self._fail_unsent(conn, candidate, _unpreparable(exc)):
                                    self._emit(candidate.email, InvitationStatus.FAILED.value)
                                continue
                            message = self._claim(conn, candidate, prepared)
                            if message is not None:
                                current = candidate
                                break
                        if current is None:
                            retry_at = self._earliest_retry(conn)
                        conn.commit()
                        if current is None:
                            if retry_at is None:
                                break
                            self._wait_for_retry(retry_at)
                            if self.control.cancelled:
                                self.report.cancelled = True
                                break
                            continue
                        assert message is not None
                        if self._page:  # render the next one while the server answers this one
                            following = self._page[0]
                            self._ahead = (following.id, self._prepare(
                                conn, following, org, mail, expiry_days, now))
                            conn.commit()  # the name lookups must not hold a read transaction
                        handed = True
                        try:
                            last_result = self.transport.send(message, current.email)
                        except (SmtpConnectError, SmtpAuthError) as exc:
                            self._release(conn, current, str(exc))
                            conn.commit()
                            current = None
                            self.report.error = str(exc)
                            break
                        except Exception as exc:  # the transport could not say: not resent
                            last_result = Uncertain(
                                f"Sending stopped unexpectedly ({type(exc).__name__}: {exc}); "
                                "the server may have received it.")
                except BaseException:
                    # Keep what is known: the outcome settled above, and a claimed invitation
                    # that never reached the transport goes back to the queue (not uncertain).
                    self._save_on_error(conn, current, handed=handed)
                    raise
        finally:
            self._renderer.shutdown(wait=True, cancel_futures=True)
            self.transport.close()
        self._finish_batches()
        self._emit()
        return self.report

    def _setup(self) -> tuple[OrganizationInfo, MailSettings, int]:
        """Before sending: check the organization, recover rows a stopped run left in
        `sending`, read the settings and count what there is to send."""
        uow = self.uow
        with uow:
            session = uow.session
            org_row = session.get(Organization, self.organization_id)
            if org_row is None:
                raise DomainError("The organization no longer exists in this database.")
            org = _org_info(org_row)
            counts = self._counts(session)
            if counts.get(InvitationStatus.QUEUED.value, 0):
                require_registration_address(org)
        recover_interrupted(self.uow, self.organization_id)
        self._unsubscribe_key = suppression.unsubscribe_key(uow)
        with uow:
            session = uow.session
            # Addresses suppressed since they were queued (a bounce, an opt-out) are held.
            if suppression.hold_suppressed_queued(session, self.organization_id, self._scope()):
                uow.commit()
            mail = load_mail_settings(session, self.organization_id)
            self._templates = load_templates(session, self.organization_id)
            expiry_days = settings_service.load(session, self.organization_id).invitation_expiry_days
            counts = self._counts(session)
            self._total = sum(counts.values()) if self.batch_id else sum(
                counts.get(s.value, 0) for s in (InvitationStatus.QUEUED,))
            if self.batch_id:
                self._done_before = self._total - counts.get(InvitationStatus.QUEUED.value, 0)
        return org, mail, expiry_days

    def _fail_unsent(self, conn: Connection, row: _Candidate, reason: str) -> bool:
        """Fail a queued invitation that was never claimed nor sent (committed by the caller)."""
        failed = conn.execute(_FAIL_UNSENT, {
            "row_id": row.id, "last_error": reason, "now": utcnow(),
        }).rowcount
        if failed != 1:
            return False
        self.report.failed += 1
        self.report.failures.append((row.email, reason))
        self._audit(conn, row, "invitation.failed", {"status": "queued"},
                    {"status": "failed", "error": reason})
        return True

    def _commit(self, conn: Connection) -> None:
        """Commit what the loop wrote (a replica's sender: on the server first)."""
        conn.commit()

    def _rollback(self, conn: Connection) -> None:
        conn.rollback()

    def _save_on_error(self, conn: Connection, current: _Candidate | None, *,
                       handed: bool) -> None:
        try:
            if current is not None and not handed:
                self._release(conn, current, "The send run stopped before this was sent.")
            elif current is not None:  # stopped while the server may have had it
                self._settle(conn, current, Uncertain(UNCERTAIN_REASON), self.clock())
            self._commit(conn)
        except Exception:  # the database itself failed; the original error says why
            self._rollback(conn)
            return
        if current is not None and handed:  # say which one, so nobody has to search for it
            self._emit(current.email, InvitationStatus.UNCERTAIN.value)

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


def _unpreparable(error: Exception) -> str:
    """Why one invitation could not be prepared, for its row and the report."""
    if isinstance(error, DomainError):
        return f"Not sent: {error}"
    return f"Not sent: the message could not be prepared ({type(error).__name__}: {error})."


def _reply_text(code: int | None, reply: str) -> str:
    text = " ".join(reply.split())
    if code is not None and not text.startswith(str(code)):
        return f"{code} {text}"
    return text


def deferred_text(report: SendReport, now: datetime | None = None) -> str:
    """"1,200 stay queued: ... resumes tomorrow at 09:14" (local time of this computer)."""
    if not report.deferred:
        return ""
    text = (f"{report.deferred:,} stay queued: the daily limit of {report.daily_limit:,} "
            "messages is reached")
    if report.resumes_at is None:
        return text
    when = report.resumes_at.astimezone()
    today = (now or utcnow()).astimezone().date()
    day = ("today" if when.date() == today else
           "tomorrow" if (when.date() - today).days == 1 else when.strftime("on %Y-%m-%d"))
    return f"{text}; sending resumes {day} at {when:%H:%M} (press Send again then)"


def describe(report: SendReport) -> str:
    parts = [f"{report.sent} sent"]
    if report.failed:
        parts.append(f"{report.failed} failed")
    if report.uncertain:
        parts.append(f"{report.uncertain} uncertain")
    if report.cancelled:
        parts.append("cancelled")
    if report.elsewhere:
        parts.append(f"{report.elsewhere} already sent elsewhere")
    if report.waiting_server:
        parts.append(f"{report.waiting_server} waiting for the server")
    if report.deferred:
        parts.append(deferred_text(report))
    text = ", ".join(parts)
    if report.error:
        text += f". Stopped: {report.error}"
    return text

