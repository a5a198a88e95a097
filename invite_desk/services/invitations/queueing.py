"""Queue a batch: permission, daily limit, a batch row, invitations in the outbox, audit rows.

A batch is written in chunks, each its own short transaction, so that a 200,000-row batch
never holds the database's write lock for long (the portal and other operators keep
writing meanwhile). Each chunk reads the operator, the policy and the addresses again. A run
that stops half-way leaves its batch `queuing`; the same input queued again (pre-flight
then calls the rows already queued "Already queued") continues that batch.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, insert, select, text, update
from sqlalchemy.orm import Session

from invite_desk.services import audit
from invite_desk.services import settings as settings_service
from invite_desk.services.errors import DomainError, NotFound
from invite_desk.services.invitations.preflight import (
    SENDABLE,
    Hold,
    PreflightRow,
    RowStatus,
    existing_members,
    hold_verdict,
    invitation_holds,
)
from invite_desk.services.models import (
    AuditLog,
    Batch,
    Event,
    Invitation,
    InvitationKind,
    InvitationStatus,
    Member,
    MemberStatus,
    Organization,
    new_id,
    utcnow,
)
from invite_desk.services.operator import Operator, refreshed
from invite_desk.services.permissions import Action, Target, require
from invite_desk.services.settings_schema import PolicySettings
from invite_desk.services.sync import journal
from invite_desk.services.uow import UnitOfWork

QUEUE_CHUNK = 2_000  # rows per transaction: tens of milliseconds of write lock on SQLite
QUEUING = "queuing"  # a batch whose rows are still being written (or whose run stopped)


class DailyLimitReached(DomainError):
    """The credited inviter would pass the per-inviter daily limit."""


@dataclass(frozen=True)
class QueuedBatch:
    batch_id: uuid.UUID
    queued: int  # invitations this call queued
    skipped: tuple[PreflightRow, ...]  # rows that became members or invited since pre-flight
    total: int = 0  # invitations in the batch (more than `queued` when a stopped run resumed)
    resumed: bool = False


def invitations_in_last_day(uow: UnitOfWork, inviter_id: uuid.UUID, now: datetime) -> int:
    with uow:
        return _count_since(uow, inviter_id, now - timedelta(days=1))


def _count_since(uow: UnitOfWork, inviter_id: uuid.UUID, since: datetime) -> int:
    return int(
        uow.session.scalar(
            select(func.count())
            .select_from(Invitation)
            .where(Invitation.inviter_id == inviter_id, Invitation.created_at >= since)
        )
        or 0
    )


@dataclass(frozen=True)
class _Checked:
    operator: Operator
    policy: PolicySettings
    inviter_name: str
    unit_id: uuid.UUID | None


def _check(session: Session, operator: Operator, credited: uuid.UUID, kind: InvitationKind,
           event_id: uuid.UUID | None) -> _Checked:
    """Who may queue, for whom, and what: read fresh for every chunk."""
    operator = refreshed(session, operator)
    policy = settings_service.load(session, operator.organization_id)
    inviter = session.get(Member, credited)
    if inviter is None or inviter.organization_id != operator.organization_id:
        raise NotFound("The member credited as inviter does not exist.")
    if inviter.status != MemberStatus.ACTIVE.value:
        raise DomainError(f"{inviter.display_name} is not an active member and cannot invite.")
    require(operator, Action.SEND_INVITATIONS, settings=policy)
    if credited != operator.member_id:
        require(operator, Action.SEND_ON_BEHALF, settings=policy,
                target=Target(unit_id=inviter.unit_id, owner_ids=()))
    if kind is InvitationKind.EVENT:
        event = session.get(Event, event_id) if event_id else None
        if event is None or event.organization_id != operator.organization_id:
            raise NotFound("Choose the event the guests are invited to.")
    return _Checked(operator, policy, inviter.display_name, inviter.unit_id)


def _check_limit(uow: UnitOfWork, checked: _Checked, credited: uuid.UUID, moment: datetime,
                 count: int, *, queued_before: int = 0) -> None:
    limit = checked.policy.daily_limit_per_inviter
    if not limit or not count:
        return
    used = _count_since(uow, credited, moment - timedelta(days=1))
    if used + count > limit:
        left = max(limit - used, 0)
        already = (f" {queued_before:,} invitation{'' if queued_before == 1 else 's'} of this "
                   "batch were queued before the limit was reached." if queued_before else "")
        raise DailyLimitReached(
            f"{checked.inviter_name} can be credited with {left} more invitation"
            f"{'' if left == 1 else 's'} in the next 24 hours (daily limit {limit}); "
            f"this batch has {count} more. Send fewer, or ask an admin to raise the limit."
            f"{already}"
        )


def _serialize(session: Session, organization_id: uuid.UUID) -> None:
    """Make this transaction the organization's only queueing writer until it commits, and
    its reads see every queueing committed before. Two runs of the same `send --csv` at
    once (a scheduled job and a person) both found the addresses free and queued and
    mailed everyone twice. The first statement writes (a no-op: its name, not its key,
    which every table refers to) to the organization's row:
    SQLite takes its write lock, PostgreSQL and MariaDB lock the row; the checks that
    follow read after the other run's chunk has committed."""
    session.execute(
        update(Organization).where(Organization.id == organization_id)
        .values(name=Organization.name).execution_options(synchronize_session=False)
    )


def _data_version(session: Session) -> int:
    """SQLite's counter of commits by other connections (PRAGMA data_version)."""
    return int(session.execute(text("PRAGMA data_version")).scalar() or 0)


def _unfinished_batch(session: Session, operator: Operator, credited: uuid.UUID,
                      kind: InvitationKind, event_id: uuid.UUID | None, source: str,
                      label: str) -> Batch | None:
    """The newest batch a stopped run of the same queueing left `queuing`."""
    return session.scalars(
        select(Batch)
        .where(Batch.organization_id == operator.organization_id,
               Batch.created_by_id == operator.member_id, Batch.inviter_id == credited,
               Batch.kind == kind.value,
               Batch.event_id.is_(None) if event_id is None else Batch.event_id == event_id,
               Batch.source == source, Batch.label == label[:300], Batch.status == QUEUING)
        .order_by(Batch.created_at.desc())
        .limit(1)
    ).first()


def queue_invitations(
    uow: UnitOfWork,
    operator: Operator,
    rows: Sequence[PreflightRow],
    *,
    inviter_id: uuid.UUID | None = None,
    personal_message: str = "",
    kind: InvitationKind = InvitationKind.MEMBERSHIP,
    event_id: uuid.UUID | None = None,
    source: str = "single",
    label: str = "",
    now: datetime | None = None,
    chunk_size: int = QUEUE_CHUNK,
    progress: Callable[[int, int], None] | None = None,
) -> QueuedBatch:
    """Put the sendable rows in the outbox as one batch, `chunk_size` rows a transaction;
    `progress(done, total)` after each. Raises PermissionDenied / DailyLimitReached (also
    part-way, after a fresh check: the rows queued so far stay in the batch)."""
    moment = now or utcnow()
    credited = inviter_id or operator.member_id
    if kind is not InvitationKind.EVENT:
        event_id = None
    seen: set[str] = set()
    ready: list[PreflightRow] = []
    for row in rows:
        if row.status in SENDABLE and row.key not in seen:
            seen.add(row.key)
            ready.append(row)
    with uow:
        session = uow.session
        _serialize(session, operator.organization_id)
        checked = _check(session, operator, credited, kind, event_id)
        _check_limit(uow, checked, credited, moment, len(ready))
        batch = _unfinished_batch(session, checked.operator, credited, kind, event_id, source,
                                  label) if ready else None
        resumed = batch is not None
        if batch is None:
            batch = Batch(
                organization_id=operator.organization_id,
                created_by_id=operator.member_id,
                inviter_id=credited,
                label=label[:300],
                source=source,
                kind=kind.value,
                event_id=event_id,
                personal_message=personal_message,
                total=0,
                status=QUEUING,
            )
            session.add(batch)
        session.flush()
        batch_id = batch.id
        with journal.command("invitation.queue", _summary(label, len(ready))):
            uow.commit()

    queued = 0
    skipped: list[PreflightRow] = []
    size = max(1, chunk_size)
    try:
        for start in range(0, len(ready), size):
            chunk = ready[start : start + size]
            for _attempt in range(5):
                with uow:
                    session = uow.session
                    sqlite = session.get_bind().dialect.name == "sqlite"
                    if not sqlite:  # first: MariaDB reads from its first snapshot
                        _serialize(session, operator.organization_id)
                    # SQLite reads without a lock and has no fair queue for writers: taking
                    # its write lock before reading starves the portal. The insert takes it;
                    # if another connection committed since *before* the reads (each read
                    # is its own snapshot here), look again.
                    version = _data_version(session) if sqlite else 0
                    checked = _check(session, operator, credited, kind, event_id)
                    go, gone = _recheck(session, checked, chunk, credited, kind, event_id,
                                        moment)
                    _check_limit(uow, checked, credited, moment, len(go),
                                 queued_before=queued)
                    _insert(session, checked, go, batch_id=batch_id, credited=credited,
                            kind=kind, event_id=event_id, personal_message=personal_message,
                            moment=moment)
                    if (sqlite and go and _data_version(session) != version
                            and _taken_meanwhile(session, checked, go, credited, kind,
                                                 event_id, moment)):
                        uow.rollback()
                        continue
                    with journal.command("invitation.queue", _summary(label, len(go))):
                        uow.commit()
                    break
            else:
                raise DomainError("Another run kept queueing the same addresses at the same "
                                  "time; run this again once it has finished.")
            skipped.extend(gone)
            queued += len(go)
            if progress is not None:
                progress(start + len(chunk), len(ready))
    except DomainError:
        _finish(uow, operator, batch_id, queued=queued, skipped=len(skipped), source=source,
                credited=credited, kind=kind, label=label, resumed=resumed, stopped=True)
        raise
    total = _finish(uow, operator, batch_id, queued=queued, skipped=len(skipped), source=source,
                    credited=credited, kind=kind, label=label, resumed=resumed, stopped=False)
    return QueuedBatch(batch_id, queued, tuple(skipped), total, resumed)


def _summary(label: str, count: int) -> str:
    """What a queueing commit did, in words, for a command made offline (sync/journal.py)."""
    what = f"Queue {count:,} invitation{'' if count == 1 else 's'}"
    return f"{what} ({label})" if label else what


def _recheck(session: Session, checked: _Checked, chunk: Sequence[PreflightRow],
             credited: uuid.UUID, kind: InvitationKind, event_id: uuid.UUID | None,
             moment: datetime) -> tuple[list[PreflightRow], list[PreflightRow]]:
    """Pre-flight's verdict again, now: rows that became members, were queued or invited by
    this inviter since (or by enough sponsors) are skipped with their new status."""
    organization_id = checked.operator.organization_id
    keys = [r.key for r in chunk]
    members = existing_members(session, organization_id, keys) if kind is InvitationKind.MEMBERSHIP else set()
    holds = invitation_holds(session, organization_id, keys, kind=kind, event_id=event_id,
                             now=moment)
    needed = checked.policy.number_of_referrals_needed_for_signup or 0
    go: list[PreflightRow] = []
    gone: list[PreflightRow] = []
    for row in chunk:
        if row.key in members:
            gone.append(dataclasses.replace(row, status=RowStatus.MEMBER,
                                            reason="This person is already a member."))
            continue
        held = holds.get(row.key)
        if held:
            status, reason = hold_verdict(held, inviter_id=credited, needed=needed, kind=kind)
            if status not in SENDABLE:
                gone.append(dataclasses.replace(row, status=status, reason=reason))
                continue
        go.append(row)
    return go, gone


def _taken_meanwhile(session: Session, checked: _Checked, go: Sequence[PreflightRow],
                     credited: uuid.UUID, kind: InvitationKind, event_id: uuid.UUID | None,
                     moment: datetime) -> bool:
    """Whether, besides the rows just inserted (one queued row per address, from
    `credited`), an address now holds an invitation that another run queued meanwhile."""
    holds = invitation_holds(session, checked.operator.organization_id, [r.key for r in go],
                             kind=kind, event_id=event_id, now=moment)
    needed = checked.policy.number_of_referrals_needed_for_signup or 0
    for row in go:
        others = list(holds.get(row.key, ()))
        mine = Hold(InvitationStatus.QUEUED.value, credited)
        if mine in others:
            others.remove(mine)
        status, _ = hold_verdict(others, inviter_id=credited, needed=needed, kind=kind)
        if others and status not in SENDABLE:
            return True
    return False


def _insert(session: Session, checked: _Checked, go: Sequence[PreflightRow], *,
            batch_id: uuid.UUID, credited: uuid.UUID, kind: InvitationKind,
            event_id: uuid.UUID | None, personal_message: str, moment: datetime) -> None:
    if not go:
        return
    organization_id = checked.operator.organization_id
    actor = checked.operator.member_id
    invitation_rows = []
    audit_rows = []
    after = f'{{"batch": "{batch_id}", "status": "queued"}}'
    for row in go:
        invitation_id = new_id()
        invitation_rows.append(
            {
                "id": invitation_id,
                "version": 1,
                "created_at": moment,
                "updated_at": moment,
                "organization_id": organization_id,
                "email": row.email,
                "email_normalized": row.key,
                "name": row.name,
                "kind": kind.value,
                "event_id": event_id,
                "inviter_id": credited,
                "sender_id": actor,
                "unit_id": checked.unit_id,
                "batch_id": batch_id,
                "personal_message": row.message or personal_message,
                "status": InvitationStatus.QUEUED.value,
                "queued_at": moment,
                "attempts": 0,
                "last_error": "",
            }
        )
        audit_rows.append(
            {
                "id": new_id(),
                "version": 1,
                "created_at": moment,
                "updated_at": moment,
                "organization_id": organization_id,
                "actor_id": actor,
                "action": "invitation.queued",
                "entity_type": "invitation",
                "entity_id": invitation_id,
                "before_json": "{}",
                "after_json": after,
                "at": moment,
            }
        )
    # Core executemany: the ORM's bulk path costs ~10x more per row here.
    connection = session.connection()
    connection.execute(insert(Invitation.__table__), invitation_rows)  # type: ignore[arg-type]
    connection.execute(insert(AuditLog.__table__), audit_rows)  # type: ignore[arg-type]
    session.execute(
        update(Batch).where(Batch.id == batch_id)
        .values(total=Batch.total + len(go), version=Batch.version + 1, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )


def _finish(uow: UnitOfWork, operator: Operator, batch_id: uuid.UUID, *, queued: int,
            skipped: int, source: str, credited: uuid.UUID, kind: InvitationKind, label: str,
            resumed: bool, stopped: bool) -> int:
    """Open the batch for sending (or close it when empty) and write its audit row; returns
    the batch's total."""
    with uow:
        session = uow.session
        _serialize(session, operator.organization_id)  # another run may finish it too
        batch = session.get(Batch, batch_id)
        if batch is None:  # pragma: no cover - batches are never deleted
            raise NotFound("The batch being queued disappeared.")
        total = int(session.scalar(select(func.count()).select_from(Invitation)
                                   .where(Invitation.batch_id == batch_id)) or 0)
        batch.total = total
        batch.status = "open" if total else "done"
        batch.version += 1
        batch.updated_at = utcnow()
        after: dict[str, object] = {
            "queued": queued, "skipped": skipped, "source": source, "inviter": str(credited),
            "kind": kind.value, "label": label}
        if resumed:
            after["resumed"] = True
            after["total"] = total
        if stopped:
            after["stopped"] = "a check failed part-way; the rows queued so far stay queued"
        audit.record(session, organization_id=operator.organization_id,
                     actor_id=operator.member_id, action="batch.queued", entity_type="batch",
                     entity_id=batch_id, after=after)
        with journal.command("invitation.queue", _summary(label, queued)):
            uow.commit()
        return total


@dataclass(frozen=True)
class UnsentBatch:
    batch_id: uuid.UUID
    label: str
    queued: int
    created_at: datetime


def unsent_batches(uow: UnitOfWork, operator: Operator) -> list[UnsentBatch]:
    """Batches with invitations still queued (a cancel, a stop, or a crash left them), newest
    first: the operator's own, or every batch for organization-wide roles."""
    with uow:
        operator = refreshed(uow.session, operator)
        stmt = (
            select(Batch.id, Batch.label, func.count(Invitation.id), Batch.created_at)
            .join(Invitation, Invitation.batch_id == Batch.id)
            .where(
                Batch.organization_id == operator.organization_id,
                Invitation.status == InvitationStatus.QUEUED.value,
            )
            .group_by(Batch.id, Batch.label, Batch.created_at)
            .order_by(Batch.created_at.desc())
        )
        if not operator.role.is_tenant_wide:
            stmt = stmt.where(Batch.created_by_id == operator.member_id)
        return [UnsentBatch(bid, label, int(n), at) for bid, label, n, at in uow.session.execute(stmt)]
