"""Push: the replica's pending commands, applied on the organization's server exactly once.

For each pending command, in the order they were made, the desktop opens a transaction on
the server, and there: takes the organization's row lock (so two desktops' commands apply one
after the other), re-reads the operator as the server knows them now, runs the table appliers
on the command's rows (only the columns changed locally, with the current local values),
under the conflict rules below, and inserts the `sync_applied` answer with the transaction's
log position (its checkpoint) in the same transaction. A rejection rolls the effects back and
stores `rejected` with the reason on its own. The command id is the primary key of
`sync_applied`: a command seen again (the connection dropped after the server committed) gets
its stored answer and is not applied twice.

Conflict rules (docs/architecture.md, "Conflicts"):
- rows with a state: the command's base version must be the server's version, else the
  server wins and the command is rejected, naming who changed the row and when;
- invitations: the server's `accepted` wins over an offline revoke, resend or extend;
- an offline invitation to an address that meanwhile holds an invitation on the server (or is
  a member) is inserted closed as a duplicate (revoked, with the reason), and the operator is
  told;
- delivery facts (the outbox's sends) are never rejected; they change the status only from a
  state that is still open;
- settings and the organization's branding: last writer wins by arrival; the value replaced is
  recorded in the audit log (`sync.conflict`) and the operator is told;
- append-only rows (audit log, referral ledger, anti-gaming flags): inserted if absent;
- rights: the operator's current role, status and scope on the server (services/permissions).

Only the replica's answer bookkeeping is written on the replica: the command's state, the
versions of its rows rebased on the server's (so the operator's next offline edit of the same
row is based on the version the server has), and nothing else: a rejected command's rows are
fetched again from the server by the next pull (journal.refetch_rows).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    Table,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from invite_desk.services import audit
from invite_desk.services import settings as settings_service
from invite_desk.services.errors import DomainError, PermissionDenied
from invite_desk.services.invitations.preflight import (
    SENDABLE,
    existing_members,
    hold_verdict,
    invitation_holds,
)
from invite_desk.services.models import (
    AuditLog,
    Base,
    InvitationKind,
    InvitationStatus,
    Member,
    SyncApplied,
    SyncCommandState,
    utcnow,
)
from invite_desk.services.operator import Operator, operator_for, refreshed
from invite_desk.services.permissions import Action, Target, require
from invite_desk.services.settings_schema import PolicySettings
from invite_desk.services.sync import journal
from invite_desk.services.sync.journal import (  # the sync tables, defined once
    LOCAL_CHANGE,
    SYNC_COMMAND,
    SYNC_STATE,
)

SYNC_APPLIED = Base.metadata.tables[SyncApplied.__tablename__]
AUDIT = Base.metadata.tables[AuditLog.__tablename__]

APPLIED = "applied"
REJECTED = "rejected"
GROUP = 50  # commands per server transaction
EXPIRE = "invitation.expire"  # tracking/expiry.py's sweep on a replica

# Rows only ever added: inserted if absent, never updated from a replica. (The referral
# ledger is append-only too, but derived: see DERIVED.)
APPEND_ONLY = frozenset({"audit_log"})
# Kept by the server's own referral reconciliation; a replica's copy never goes back.
DERIVED = journal.NOT_JOURNALED
# Last writer wins (by arrival), the replaced value kept in the audit log.
LAST_WRITER_WINS = frozenset({"setting", "organization"})
# Invitation states a delivery fact no longer moves (accepted, revoked, or closed for good).
CLOSED_FOR_DELIVERY = frozenset({InvitationStatus.ACCEPTED.value, InvitationStatus.REVOKED.value,
                                 InvitationStatus.BOUNCED.value,
                                 InvitationStatus.SUPPRESSED.value})
DELIVERY_STATUS_COLUMNS = frozenset({"status", "sending_owner", "next_attempt_at"})
# How far a send has come. A delivery fact never moves the server's status backwards: a
# replica that marks a row `uncertain` (its recovery of a send it believes interrupted) must
# not undo the `sent` that the desktop which really sent it already recorded.
DELIVERY_PROGRESS = {InvitationStatus.DRAFT.value: 0, InvitationStatus.QUEUED.value: 1,
                     InvitationStatus.SENDING.value: 2, InvitationStatus.UNCERTAIN.value: 3,
                     InvitationStatus.FAILED.value: 3, InvitationStatus.SENT.value: 4,
                     InvitationStatus.EXPIRED.value: 5}
# Never copied from a replica's row: the server keeps its own key, version and clock.
BOOKKEEPING = frozenset({"version", "updated_at", "created_at"})
# What a member may change on their own row (signing in offline).
OWN_SIGN_IN_COLUMNS = frozenset({"last_sign_in_at", "password_hash", "must_change_password"})

VERBS = {
    "invitation.revoke": "revoke",
    "invitation.resend": "resend",
    "invitation.extend": "extension",
    "invitation.queue": "invitation",
    "application.decide": "decision",
    "settings.save": "settings change",
    "member.edit": "change",
    "delivery": "delivery update",
}


@dataclass(frozen=True)
class PushReport:
    applied: int
    rejected: int
    reasons: tuple[str, ...]
    more: bool


class Rejection(Exception):
    """The server refuses the command; `reason` is shown to the operator."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class RowChange:
    """A command's net effect on one row."""

    table: str
    row_id: uuid.UUID
    op: str  # I, U, D
    columns: frozenset[str]
    base_version: int | None
    first_seq: int
    last_seq: int


@dataclass(frozen=True)
class PendingCommand:
    id: uuid.UUID
    seq: int
    kind: str
    operator_id: uuid.UUID | None
    summary: str
    created_at: datetime
    changes: tuple[RowChange, ...]
    values: Mapping[tuple[str, uuid.UUID], Mapping[str, Any] | None]  # current local rows


@dataclass
class _Outcome:
    outcome: str
    reason: str = ""
    checkpoint: str = ""
    versions: dict[tuple[str, uuid.UUID], int] = field(default_factory=dict)
    drop_local: list[tuple[str, uuid.UUID]] = field(default_factory=list)
    # Invitations whose server row a delivery fact did not move (the server's send got
    # further): the replica takes the server's delivery columns back (see _apply_delivery).
    mirror: dict[uuid.UUID, dict[str, Any]] = field(default_factory=dict)


def _tables() -> Any:
    from invite_desk.services.sync import tables

    return tables


def _capture() -> Any:
    from invite_desk.services.sync import capture

    return capture


def _table(name: str) -> Table:
    return Base.metadata.tables[name]


def _key(table_name: str) -> str:
    return str(_tables().key_column(table_name))


# -- reading the replica -----------------------------------------------------------------------

def net_changes(entries: Sequence[tuple[int, str, uuid.UUID, str, str, int | None]]
                ) -> list[RowChange]:
    """Fold a command's journal entries (seq, table, row id, op, columns, base version), in
    seq order, into one change per row: an insert later updated is an insert, a row inserted
    and deleted is nothing, the columns are the union, the base version the first one's."""
    rows: dict[tuple[str, uuid.UUID], list[tuple[int, str, str, int | None]]] = {}
    for seq, table_name, row_id, op, columns, base in entries:
        rows.setdefault((table_name, row_id), []).append((seq, op, columns, base))
    out: list[RowChange] = []
    for (table_name, row_id), items in rows.items():
        ops = [op for _, op, _, _ in items]
        first, last = ops[0], ops[-1]
        if first == "I" and last == "D":
            continue
        net = "I" if first == "I" else ("D" if last == "D" else "U")
        names: set[str] = set()
        for _, _, columns, _ in items:
            names.update(filter(None, columns.split(",")))
        out.append(RowChange(table_name, row_id, net, frozenset(names), items[0][3],
                             items[0][0], items[-1][0]))
    out.sort(key=lambda change: change.first_seq)
    return out


def _load_command(connection: Connection, row: Mapping[str, Any]) -> PendingCommand:
    entries = connection.execute(
        select(LOCAL_CHANGE.c.seq, LOCAL_CHANGE.c.table_name, LOCAL_CHANGE.c.row_id,
               LOCAL_CHANGE.c.op, LOCAL_CHANGE.c.columns, LOCAL_CHANGE.c.base_version)
        .where(LOCAL_CHANGE.c.command_id == row["id"]).order_by(LOCAL_CHANGE.c.seq)).all()
    changes = net_changes([(e[0], e[1], e[2], e[3], e[4], e[5]) for e in entries])
    values: dict[tuple[str, uuid.UUID], Mapping[str, Any] | None] = {}
    by_table: dict[str, set[uuid.UUID]] = {}
    for change in changes:
        by_table.setdefault(change.table, set()).add(change.row_id)
    for table_name, ids in by_table.items():
        table = _table(table_name)
        key = table.c[_key(table_name)]
        found = {r[key.name]: dict(r) for r in connection.execute(
            select(table).where(key.in_(list(ids)))).mappings()}
        for row_id in ids:
            values[(table_name, row_id)] = found.get(row_id)
    return PendingCommand(row["id"], row["seq"], row["kind"], row["operator_id"],
                          row["summary"], row["created_at"], tuple(changes), values)


def pending_commands(replica: Engine, limit: int) -> list[PendingCommand]:
    """The oldest `limit` pending commands, with their rows as the replica has them now."""
    with replica.connect() as connection:
        rows = connection.execute(
            select(SYNC_COMMAND).where(SYNC_COMMAND.c.state == SyncCommandState.PENDING.value)
            .order_by(SYNC_COMMAND.c.seq).limit(limit)).mappings().all()
        return [_load_command(connection, dict(row)) for row in rows]


# -- the push ----------------------------------------------------------------------------------

def push_pending(remote: Engine, replica: Engine, *, limit: int = 200) -> PushReport:
    """Send the replica's pending commands to the server, oldest first, at most `limit`.

    A command the server refuses is marked rejected with the reason (shown to the operator
    until dismissed). An error that is not the server's answer (the connection dropped, the
    server went away) propagates; the command stays pending and the next round retries it,
    and the server's stored answer makes a retry of a command it already applied harmless."""
    with replica.begin() as connection:  # writes no unit of work made (Core) become commands
        journal.tag_pending(connection)
        replica_id = connection.execute(
            select(SYNC_STATE.c.replica_id).where(SYNC_STATE.c.id == 1)).scalar()
    if replica_id is None:
        raise DomainError("This database is not a replica (it has no sync state).")
    commands = pending_commands(replica, limit + 1)
    more = len(commands) > limit
    applied = rejected = 0
    reasons: list[str] = []
    commands = commands[:limit]
    for start in range(0, len(commands), GROUP):
        group = commands[start:start + GROUP]
        with remote.connect():  # a server that cannot be reached is offered nothing
            offered(replica, group)
        outcomes = apply_on_server(remote, group, replica_id)
        record_answers(replica, group, outcomes)
        for command, outcome in zip(group, outcomes, strict=True):
            if outcome.outcome == APPLIED:
                applied += 1
            else:
                rejected += 1
            if outcome.reason:
                reasons.append(f"{command.summary}: {outcome.reason}")
    if commands:
        with replica.begin() as connection:
            connection.execute(update(SYNC_STATE).where(SYNC_STATE.c.id == 1)
                               .values(last_push_at=utcnow()))
    return PushReport(applied, rejected, tuple(reasons), more)


# The checkpoint of a pending command that has been sent to the server once: its answer
# may have been lost on the way back, so the server may hold its rows already (the sender
# then treats an invitation it inserted as known to the server: services/invitations).
OFFERED = "offered"


def offered(replica: Engine, commands: Sequence[PendingCommand]) -> None:
    """Mark `commands` as sent to the server once (before they are; kept until answered)."""
    with replica.begin() as connection:
        connection.execute(update(SYNC_COMMAND).where(
            SYNC_COMMAND.c.id.in_([command.id for command in commands]),
            SYNC_COMMAND.c.state == SyncCommandState.PENDING.value).values(checkpoint=OFFERED))


def _stored_answers(connection: Connection, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, _Outcome]:
    rows = connection.execute(
        select(SYNC_APPLIED.c.command_id, SYNC_APPLIED.c.outcome, SYNC_APPLIED.c.reason,
               SYNC_APPLIED.c.checkpoint).where(SYNC_APPLIED.c.command_id.in_(list(ids)))).all()
    found: dict[uuid.UUID, _Outcome] = {}
    now = ""
    for command_id, outcome, reason, checkpoint in rows:
        if outcome == APPLIED and not checkpoint:
            now = now or _capture().current_position(connection)
            checkpoint = now
        found[command_id] = _Outcome(outcome, reason, checkpoint)
    return found


def apply_on_server(remote: Engine, commands: Sequence[PendingCommand],
                    replica_id: uuid.UUID) -> list[_Outcome]:
    """The server's answers to consecutive `commands`: each applied (with the checkpoint of
    the transaction) or rejected (why). One server transaction for all of them, each command
    in a savepoint of its own (a rejected one rolls back alone); the answers are stored in
    the same transaction. A command answered before (its answer was lost on the way back)
    gets that answer again and is not applied twice."""
    ids = [command.id for command in commands]
    with remote.connect() as connection:
        answers = _stored_answers(connection, ids)
        written = _replay_versions(connection, commands, answers)
        for command in commands:
            if command.id in answers and answers[command.id].outcome != APPLIED:
                _refused(written, command)
        connection.rollback()  # MariaDB: the apply below must not read from this snapshot
        todo = [command for command in commands if command.id not in answers]
        if todo:
            try:
                answers.update(_apply_all(connection, todo, replica_id, written))
            except IntegrityError:  # another push of the same commands stored them first
                connection.rollback()
                answers = _stored_answers(connection, ids)
                _replay_versions(connection, commands, answers)
                connection.rollback()
                if len(answers) < len(ids):
                    raise
    return [answers[command_id] for command_id in ids]


# The base of a row's later edits in a push after the command that changed it there was
# refused: those edits were made on top of a change the server never took, so their local
# versions say nothing about the server's (a local count of edits can equal the server's by
# coincidence, and an offline resend then went in over another desk's revoke). No server
# version is negative: the version check refuses them, and a delivery fact, which is not
# checked, is not rebased on it. On the replica the refused row takes this version too
# (until the pull brings the server's row back), so an edit made after the answer is
# refused as well; far below zero, so that local edits counting up never reach a version.
REFUSED_BASE = -(1 << 30)


def _refused(written: dict[tuple[str, uuid.UUID], int], command: PendingCommand) -> None:
    for change in command.changes:
        if change.table not in DERIVED and "version" in _table(change.table).c:
            written[(change.table, change.row_id)] = REFUSED_BASE


def _replay_versions(connection: Connection, commands: Sequence[PendingCommand],
                     answers: Mapping[uuid.UUID, _Outcome]) -> dict[tuple[str, uuid.UUID], int]:
    """Give each stored `applied` answer the versions its first answer carried (lost with
    the connection), so that the replica rebases its rows as it would have then, and a
    later command of this push builds on them. Returns those versions (the `written` of
    the commands that follow).

    The server does not keep them: they follow from the command and the server's rules.
    An insert made the row version 1. An update checked against its base (the default
    rule) was applied only when its base was the server's version, so it made base + 1.
    An unchecked update (a delivery fact, the expiry sweep, a batch, one's own sign-in)
    rebased only when its base was the server's: rebased here when the server's row is at
    base + 1 now. A last-writer-wins row takes the server's version when the server still
    holds the command's values (else someone wrote after it, and the next save must still
    tell the operator). A setting whose row the server does not have by this id was saved
    onto the server's own row: the local one is dropped, as the first answer did."""
    written: dict[tuple[str, uuid.UUID], int] = {}
    replayed = [command for command in commands
                if command.id in answers and answers[command.id].outcome == APPLIED]
    if not replayed:
        return written
    by_table: dict[str, set[uuid.UUID]] = {}
    for command in replayed:
        for change in command.changes:
            if change.table not in DERIVED and "version" in _table(change.table).c:
                by_table.setdefault(change.table, set()).add(change.row_id)
    server: dict[tuple[str, uuid.UUID], dict[str, Any]] = {}
    for table_name, ids in by_table.items():
        table = _table(table_name)
        key = table.c[_key(table_name)]
        for row in connection.execute(select(table).where(key.in_(list(ids)))).mappings():
            server[(table_name, row[key.name])] = dict(row)
    for command in replayed:
        outcome = answers[command.id]
        for change in command.changes:
            version = _replayed_version(command, change, server, written, outcome)
            if version is not None:
                outcome.versions[(change.table, change.row_id)] = version
        written.update(outcome.versions)
    return written


def _replayed_version(command: PendingCommand, change: RowChange,
                      server: Mapping[tuple[str, uuid.UUID], Mapping[str, Any]],
                      written: Mapping[tuple[str, uuid.UUID], int],
                      outcome: _Outcome) -> int | None:
    """The version the server gave this row when it applied `command` (see
    _replay_versions), or None when its first answer did not rebase the row."""
    row_key = (change.table, change.row_id)
    local = command.values.get(row_key)
    if change.table in DERIVED or "version" not in _table(change.table).c or local is None:
        return None
    if change.table == "setting" and journal.is_bookkeeping_key(str(local.get("key", ""))):
        return None
    there = server.get(row_key)
    if change.op == "I":
        if change.table == "setting" and there is None:
            outcome.drop_local.append(row_key)  # saved onto the server's row of that key
            return None
        return 1 if local.get("version") != 1 else None
    if change.op != "U" or there is None or not _data_columns(change):
        return None
    if change.table in LAST_WRITER_WINS:
        same = all(there[c] == local[c] for c in _data_columns(change))
        return int(there["version"]) if same else None
    base = written.get(row_key, change.base_version)
    if base is None:
        return None
    checked = change.table != "batch" and command.kind not in (journal.DELIVERY, EXPIRE) \
        and not (change.table == "member" and change.row_id == command.operator_id
                 and set(_data_columns(change)) <= OWN_SIGN_IN_COLUMNS)
    if checked or int(there["version"]) == base + 1:
        return base + 1
    return None


def _apply_all(connection: Connection, commands: Sequence[PendingCommand],
               replica_id: uuid.UUID,
               replayed: Mapping[tuple[str, uuid.UUID], int] | None = None,
               ) -> dict[uuid.UUID, _Outcome]:
    connection.begin()  # ours: the sessions below join it and never end it
    organization_id = next((o for o in map(_organization_of, commands) if o is not None), None)
    if organization_id is not None:
        # One push at a time per organization; and the first statement, so that MariaDB's
        # snapshot is taken after the lock (reads see the previous push's commands).
        org = _table("organization")
        connection.execute(select(org.c.id).where(org.c.id == organization_id)
                           .with_for_update())
    written: dict[tuple[str, uuid.UUID], int] = dict(replayed or {})
    answers: dict[uuid.UUID, _Outcome] = {}
    known: dict[object, Any] = {}  # the operator and policy, read again after a change of them
    for command in commands:
        outcome = _Outcome(APPLIED)
        savepoint = connection.begin_nested()
        try:
            _apply(connection, command, outcome, written, organization_id, known)
            savepoint.commit()
            written.update(outcome.versions)
            if any(c.table in ("member", "setting", "unit") for c in command.changes):
                known.clear()
        except (Rejection, DomainError) as exc:
            savepoint.rollback()
            reason = exc.reason if isinstance(exc, Rejection) else str(exc)
            outcome = _Outcome(REJECTED, reason)
        except IntegrityError:
            savepoint.rollback()
            outcome = _Outcome(REJECTED, (
                f"The server could not take your {_verb(command.kind)}: it refers to "
                "something the server no longer has, or repeats something it already has. "
                "The server's version is shown again."))
        if outcome.outcome != APPLIED:
            _refused(written, command)
        answers[command.id] = outcome
    checkpoint = _capture().transaction_checkpoint(connection)
    now = utcnow()
    connection.execute(insert(SYNC_APPLIED), [
        {"command_id": command.id, "replica_id": replica_id,
         "operator_id": command.operator_id, "kind": command.kind,
         "outcome": answers[command.id].outcome, "reason": answers[command.id].reason,
         "checkpoint": checkpoint if answers[command.id].outcome == APPLIED else "",
         "applied_at": now} for command in commands])
    connection.commit()
    if not checkpoint:
        checkpoint = _capture().current_position(connection)
        connection.rollback()
    for outcome in answers.values():
        if outcome.outcome == APPLIED:
            outcome.checkpoint = checkpoint
    return answers


def record_answers(replica: Engine, commands: Sequence[PendingCommand],
                   outcomes: Sequence[_Outcome]) -> None:
    """Write the server's answers on the replica, in one local transaction, in order; and
    rebase each applied command's rows' versions on the server's."""
    with replica.begin() as connection, journal.applying(connection):
        for command, outcome in zip(commands, outcomes, strict=True):
            _record(connection, command, outcome)


def _record(connection: Connection, command: PendingCommand, outcome: _Outcome) -> None:
    state = (SyncCommandState.APPLIED if outcome.outcome == APPLIED
             else SyncCommandState.REJECTED).value
    connection.execute(update(SYNC_COMMAND).where(SYNC_COMMAND.c.id == command.id).values(
        state=state, reason=outcome.reason, checkpoint=outcome.checkpoint,
        answered_at=utcnow()))
    if outcome.outcome != APPLIED:
        _mark_refused(connection, command)
        return
    for (table_name, row_id), server_version in outcome.versions.items():
        _rebase(connection, command, table_name, row_id, server_version)
    for table_name, row_id in outcome.drop_local:
        table = _table(table_name)
        connection.execute(delete(table).where(table.c[_key(table_name)] == row_id))
    invitation = _table("invitation")
    for row_id, values in outcome.mirror.items():
        last_seq = max(c.last_seq for c in command.changes
                       if c.table == "invitation" and c.row_id == row_id)
        later = connection.execute(select(LOCAL_CHANGE.c.seq).where(
            LOCAL_CHANGE.c.table_name == "invitation", LOCAL_CHANGE.c.row_id == row_id,
            LOCAL_CHANGE.c.seq > last_seq).limit(1)).first()
        if later is None:  # a later local edit of the row is pushed (and answered) as usual
            connection.execute(update(invitation).where(invitation.c.id == row_id)
                               .values(**values))


def _mark_refused(connection: Connection, command: PendingCommand) -> None:
    """The rows of a refused command: their later local edits (pending, or made before the
    pull brings the server's row) are based on REFUSED_BASE, never on a local count."""
    for change in command.changes:
        table = _table(change.table)
        if change.table in DERIVED or "version" not in table.c or change.op == "D":
            continue
        later = (LOCAL_CHANGE.c.table_name == change.table) \
            & (LOCAL_CHANGE.c.row_id == change.row_id) & (LOCAL_CHANGE.c.seq > change.last_seq)
        connection.execute(update(LOCAL_CHANGE).where(
            later, LOCAL_CHANGE.c.base_version.is_not(None)).values(base_version=REFUSED_BASE))
        connection.execute(update(table).where(table.c[_key(change.table)] == change.row_id)
                           .values(version=REFUSED_BASE))


def _rebase(connection: Connection, command: PendingCommand, table_name: str,
            row_id: uuid.UUID, server_version: int) -> None:
    """Shift the local row's version (and the base versions of later edits of it) so that the
    version this command produced locally is the one the server gave it."""
    table = _table(table_name)
    if "version" not in table.c:
        return
    key = table.c[_key(table_name)]
    last_seq = max(c.last_seq for c in command.changes
                   if c.table == table_name and c.row_id == row_id)
    later = (LOCAL_CHANGE.c.table_name == table_name) & (LOCAL_CHANGE.c.row_id == row_id) \
        & (LOCAL_CHANGE.c.seq > last_seq)
    after = connection.execute(select(LOCAL_CHANGE.c.base_version).where(later)
                               .order_by(LOCAL_CHANGE.c.seq).limit(1)).first()
    if after is not None and after.base_version is not None:
        local_after = int(after.base_version)
    else:
        current = connection.execute(select(table.c.version).where(key == row_id)).scalar()
        if current is None:
            return
        local_after = int(current)
    offset = server_version - local_after
    if not offset:
        return
    connection.execute(update(table).where(key == row_id)
                       .values(version=table.c.version + offset))
    connection.execute(update(LOCAL_CHANGE).where(later, LOCAL_CHANGE.c.base_version.is_not(None))
                       .values(base_version=LOCAL_CHANGE.c.base_version + offset))


# -- the server side ---------------------------------------------------------------------------

def _verb(kind: str) -> str:
    return VERBS.get(kind, "change")


@dataclass
class _Context:
    connection: Connection
    session: Session
    command: PendingCommand
    operator: Operator | None  # None: a delivery fact from an operator the server refuses
    policy: PolicySettings | None
    outcome: _Outcome
    now: datetime
    # The server versions earlier commands of this push gave rows: a later command's edit
    # of such a row is based on that version (the replica rebases it when it records them).
    written: Mapping[tuple[str, uuid.UUID], int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    # The server's rows of this command (locked), read in one query per table.
    server_rows: dict[tuple[str, uuid.UUID], dict[str, Any] | None] = field(
        default_factory=dict)
    appends: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # inserted last
    skipped: set[uuid.UUID] = field(default_factory=set)  # rows whose audit rows are moot
    # Consecutive inserts into one table, written together (one executemany).
    buffered: tuple[str, list[dict[str, Any]]] | None = None
    # Per (kind, event): the command's addresses that are members, and the invitations they
    # hold on the server (read once for all of its new invitations).
    holds: dict[tuple[str, uuid.UUID | None], tuple[set[str], dict[str, list[Any]]]] = field(
        default_factory=dict)

    def base_of(self, change: RowChange) -> int | None:
        return self.written.get((change.table, change.row_id), change.base_version)


@dataclass(frozen=True)
class _Author:
    """A command's author as the server knows them now, or why the server refuses them."""

    operator: Operator | None
    refused: str
    sign_in_revoked_at: datetime | None


def _server_author(session: Session, operator_id: uuid.UUID | None) -> _Author:
    member = session.get(Member, operator_id) if operator_id else None
    if member is None:
        return _Author(None, "Your account does not exist on the server; nothing was changed "
                             "there.", None)
    revoked = member.sign_in_revoked_at
    try:
        # Whether they are still an active member, with their role and unit of now; a
        # revoked sign-in is checked per command (commands made before it are refused).
        operator = refreshed(session, replace(operator_for(session, member),
                                              signed_in_at=utcnow()))
    except PermissionDenied as exc:
        return _Author(None, str(exc).replace("You cannot do this", "The server refused this"),
                       revoked)
    return _Author(operator, "", revoked)


def _server_operator(author: _Author, command: PendingCommand) -> Operator:
    """The command's author as the server knows them now (role, unit, status)."""
    if author.operator is None:
        raise Rejection(author.refused)
    if author.sign_in_revoked_at is not None and command.created_at < author.sign_in_revoked_at:
        raise Rejection("The server refused this: your sign-in was revoked by an administrator "
                        "after you made this change; ask them for a new one.")
    return author.operator


def _apply(connection: Connection, command: PendingCommand, outcome: _Outcome,
           written: Mapping[tuple[str, uuid.UUID], int], organization_id: uuid.UUID | None,
           known: dict[object, Any]) -> None:
    session = Session(bind=connection, autoflush=False,
                      join_transaction_mode="rollback_only")
    try:
        author_key = ("author", command.operator_id)
        if author_key not in known:
            known[author_key] = _server_author(session, command.operator_id)
        operator: Operator | None = None
        try:
            operator = _server_operator(known[author_key], command)
        except Rejection:
            if command.kind != journal.DELIVERY:
                raise
            # A delivery goes in anyway: an email that went out went out.
        org_id = operator.organization_id if operator is not None else organization_id
        policy_key = ("policy", org_id)
        if policy_key not in known:
            known[policy_key] = settings_service.load(session, org_id) \
                if org_id is not None else None
        policy: PolicySettings | None = known[policy_key]
        context = _Context(connection, session, command, operator, policy, outcome, utcnow(),
                           written)
        _prefetch(context)
        # Append-only rows last: the rules above read the audit log as it was before this
        # command (who changed a row last), not the command's own audit rows.
        for change in sorted(command.changes, key=lambda c: c.table in APPEND_ONLY):
            if context.buffered and (change.op != "I" or change.table != context.buffered[0]):
                _flush_inserts(context)
            _apply_change(context, change)
        _flush_inserts(context)
        for table_name, rows in context.appends.items():
            connection.execute(insert(_table(table_name)), rows)
        session.flush()
        if context.notes:
            outcome.reason = " ".join(dict.fromkeys(context.notes))
    finally:
        session.close()


def _organization_of(command: PendingCommand) -> uuid.UUID | None:
    """The organization the command's rows belong to (as the replica has them)."""
    for (table_name, row_id), values in command.values.items():
        if table_name == "organization":
            return row_id
        if values is not None and isinstance(values.get("organization_id"), uuid.UUID):
            return values["organization_id"]  # type: ignore[no-any-return]
    return None


def _prefetch(context: _Context) -> None:
    by_table: dict[str, list[uuid.UUID]] = {}
    for change in context.command.changes:
        if change.table not in DERIVED:
            by_table.setdefault(change.table, []).append(change.row_id)
    for table_name, ids in by_table.items():
        table = _table(table_name)
        key = table.c[_key(table_name)]
        stmt = select(table).where(key.in_(ids))
        if table_name not in APPEND_ONLY:
            stmt = stmt.with_for_update()
        found = {row[key.name]: dict(row) for row in context.connection.execute(stmt).mappings()}
        for row_id in ids:
            context.server_rows[(table_name, row_id)] = found.get(row_id)


def _server_row(context: _Context, table_name: str, row_id: uuid.UUID) -> dict[str, Any] | None:
    if (table_name, row_id) in context.server_rows:
        return context.server_rows[(table_name, row_id)]
    table = _table(table_name)
    key = table.c[_key(table_name)]
    row = context.connection.execute(select(table).where(key == row_id).with_for_update()
                                     ).mappings().first()
    return dict(row) if row is not None else None


def _apply_change(context: _Context, change: RowChange) -> None:
    if change.table in DERIVED:
        return
    local = context.command.values.get((change.table, change.row_id))
    if change.table == "setting" and local is not None \
            and journal.is_bookkeeping_key(str(local.get("key", ""))):
        return  # a database's own bookkeeping (journaled before the journal knew better)
    if change.op == "U" and not _data_columns(change):
        return  # only the row's clock moved (a no-op write that takes a lock, as queueing's)
    server = _server_row(context, change.table, change.row_id)
    if change.op == "I":
        if local is None:
            return
        if server is not None:
            return  # insert if absent (append-only, or a row the server already has)
        _authorize(context, change, local, None)
        _insert(context, change, local)
        return
    if change.table in APPEND_ONLY:
        return  # never updated nor deleted from a replica
    if server is None:
        if change.op == "D":
            return
        raise Rejection(f"{_describe(context, change.table, local or {})} no longer exists on "
                        f"the server, so your {_verb(context.command.kind)} was not applied.")
    _authorize(context, change, local, server)
    if change.op == "D":
        _check_base(context, change, server)
        table = _table(change.table)
        context.connection.execute(delete(table).where(
            table.c[_key(change.table)] == change.row_id))
        return
    if local is None:
        return
    if context.command.kind == journal.DELIVERY and change.table == "invitation":
        _apply_delivery(context, change, local, server)
        return
    if context.command.kind == EXPIRE and change.table == "invitation":
        _apply_expiry(context, change, local, server)
        return
    if change.table == "invitation":
        _accepted_wins(context, change, server)
    if change.table in LAST_WRITER_WINS:
        _last_writer_wins(context, change, local, server)
        return
    if change.table != "batch" and not _own_sign_in(context, change, server):
        _check_base(context, change, server)
    _update(context, change, {c: local[c] for c in _data_columns(change)}, server)


def _own_sign_in(context: _Context, change: RowChange, server: Mapping[str, Any]) -> bool:
    """The operator's own sign-in facts (signing in, changing their password offline): the
    last one wins, whatever else changed on their member row meanwhile."""
    return (change.table == "member" and context.operator is not None
            and server.get("id") == context.operator.member_id
            and set(_data_columns(change)) <= OWN_SIGN_IN_COLUMNS)


def _data_columns(change: RowChange) -> list[str]:
    table = _table(change.table)
    key = _key(change.table)
    return [c for c in change.columns if c in table.c and c != key and c not in BOOKKEEPING]


def _update(context: _Context, change: RowChange, values: dict[str, Any],
            server: Mapping[str, Any]) -> None:
    table = _table(change.table)
    if "version" in table.c:
        version = int(server["version"]) + 1
        values = {**values, "version": version}
        # The replica's later edits of the row build on this version only when this write
        # was based on the server's (or the row is last-writer-wins). A write that went in
        # over someone else's change (a delivery fact, one's own sign-in) must leave the
        # next edit based on the older version, so that the default rule still sees that
        # someone else changed the row.
        if context.base_of(change) == int(server["version"]) \
                or change.table in LAST_WRITER_WINS:
            context.outcome.versions[(change.table, change.row_id)] = version
    if "updated_at" in table.c:
        values["updated_at"] = context.now
    if not values:
        return
    context.connection.execute(update(table).where(table.c[_key(change.table)] == change.row_id)
                               .values(**values))


def _insert(context: _Context, change: RowChange, local: Mapping[str, Any]) -> None:
    table = _table(change.table)
    values = {c.name: local[c.name] for c in table.columns if c.name in local}
    closed = change.table == "invitation" and _close_if_duplicate(context, values)
    if change.table == "setting" and _setting_taken(context, change, values):
        return
    if change.table == "referral_flag" and _flag_taken(context, values):
        return
    if "version" in table.c:
        if values.get("version") != 1:  # the replica rebases it on the server's
            context.outcome.versions[(change.table, change.row_id)] = 1
        # Closed as a duplicate, the server's row is one change past the replica's (which
        # still looks live there until the pull brings it): an offline resend made meanwhile
        # is refused as a change over the server's, not taken as based on it (it reopened
        # the duplicate: two live invitations, seen by the convergence test).
        values["version"] = 2 if closed else 1
    if "updated_at" in table.c:
        values["updated_at"] = context.now  # the referral reconciliation reads from a watermark
    if change.table in APPEND_ONLY:
        if change.table == "audit_log" and values.get("entity_id") in context.skipped:
            return  # it described a change the server did not take
        context.appends.setdefault(change.table, []).append(values)
        return
    if context.buffered is None:
        context.buffered = (change.table, [])
    context.buffered[1].append(values)


def _flush_inserts(context: _Context) -> None:
    if context.buffered is not None:
        table_name, rows = context.buffered
        context.buffered = None
        by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for row in rows:
            by_columns.setdefault(tuple(sorted(row)), []).append(row)
        for same in by_columns.values():
            context.connection.execute(insert(_table(table_name)), same)


# -- rules -------------------------------------------------------------------------------------

def _who_and_when(context: _Context, table_name: str, server: Mapping[str, Any]
                  ) -> tuple[str, datetime | None]:
    """Who last changed the server's row, and when (its newest audit row, else updated_at)."""
    conditions = [AUDIT.c.entity_id == server.get(_key(table_name))]
    if table_name == "setting":
        conditions = [AUDIT.c.organization_id == server["organization_id"],
                      AUDIT.c.entity_type.in_(("settings", "setting"))]
    row = context.connection.execute(
        select(AUDIT.c.actor_id, AUDIT.c.at).where(*conditions)
        .order_by(AUDIT.c.at.desc()).limit(1)).first()
    at = server.get("updated_at")
    name = "Someone"
    if row is not None:
        at = row.at if table_name != "setting" or at is None else max(row.at, at)
        if row.actor_id is not None:
            member = context.session.get(Member, row.actor_id)
            if member is not None:
                name = member.display_name
        elif table_name == "invitation":
            name = "The registration portal or the outbox"
    return name, at


def _day(moment: datetime | None) -> str:
    return f"{moment:%d %b %Y %H:%M} UTC" if moment is not None else "recently"


def _describe(context: _Context, table_name: str, row: Mapping[str, Any]) -> str:
    if table_name == "invitation":
        return f"The invitation to {row.get('email', 'this address')}"
    if table_name == "member":
        name = f"{row.get('first_name', '')} {row.get('last_name', '')}".strip()
        return f"{name or row.get('email', 'This member')}'s membership record"
    if table_name == "setting":
        return f"The setting {row.get('key', '')}"
    return f"This {table_name.replace('_', ' ')}"


def _check_base(context: _Context, change: RowChange, server: Mapping[str, Any]) -> None:
    """Rows with a state: the edit must be based on the server's version, else it wins."""
    base = context.base_of(change)
    if base is None or "version" not in server:
        return
    if int(server["version"]) == base:
        return
    who, when = _who_and_when(context, change.table, server)
    raise Rejection(
        f"{_describe(context, change.table, server)} was changed on the server by {who} on "
        f"{_day(when)}, after the version your {_verb(context.command.kind)} was based on; "
        "the server's version was kept. Look at it again and redo your change if it still "
        "applies.")


def _accepted_wins(context: _Context, change: RowChange, server: Mapping[str, Any]) -> None:
    if server.get("status") != InvitationStatus.ACCEPTED.value:
        return
    who = server.get("name") or server.get("email") or "The invitee"
    if server.get("accepted_member_id") is not None:
        member = context.session.get(Member, server["accepted_member_id"])
        if member is not None:
            who = member.display_name
    when = server.get("accepted_at")
    raise Rejection(
        f"{who} accepted on {_day(when)} before your {_verb(context.command.kind)} reached the "
        f"server; the invitation to {server.get('email')} stays accepted.")


def _apply_delivery(context: _Context, change: RowChange, local: Mapping[str, Any],
                    server: Mapping[str, Any]) -> None:
    """An email that went out went out: its facts are kept whatever the server's row did
    meanwhile; the status moves only while the server's invitation is still open."""
    open_on_server = server.get("status") not in CLOSED_FOR_DELIVERY
    here, there = DELIVERY_PROGRESS.get(str(local.get("status"))), \
        DELIVERY_PROGRESS.get(str(server.get("status")))
    # (A status outside the send's progress, e.g. a later command's revoke carried along with
    # the row's current values, is left to the rules below.)
    if open_on_server and here is not None and there is not None and here < there:
        context.skipped.add(change.row_id)  # the server's send got further: keep its row
        # ...and give it back to the replica: its cursor has passed the server's write
        # (e.g. the `sent` of a send whose local copy a killed desktop recovered as
        # `uncertain`), so no pull brings it again.
        context.outcome.mirror[change.row_id] = {
            column: server[column] for column in journal.DELIVERY_COLUMNS if column in server}
        return
    values: dict[str, Any] = {}
    for column in _data_columns(change):
        if column in DELIVERY_STATUS_COLUMNS and not open_on_server:
            continue
        if column in ("token_hash", "expires_at") and not open_on_server \
                and local.get("token_hash") is None:
            continue
        values[column] = local[column]
    _update(context, change, values, server)


def _apply_expiry(context: _Context, change: RowChange, local: Mapping[str, Any],
                  server: Mapping[str, Any]) -> None:
    """The replica's expiry sweep is the sweep's condition, checked again on the server's
    row: an invitation extended, accepted or revoked there meanwhile is left as it is (and
    its `invitation.expired` audit row is not written). Never a rejection: bookkeeping."""
    expires = server.get("expires_at")
    if server.get("status") == InvitationStatus.SENT.value and expires is not None \
            and expires <= context.now:
        _update(context, change, {"status": InvitationStatus.EXPIRED.value}, server)
    else:
        context.skipped.add(change.row_id)


def _last_writer_wins(context: _Context, change: RowChange, local: Mapping[str, Any],
                      server: Mapping[str, Any]) -> None:
    """Settings: the later arrival wins; a value it replaces that the operator never saw is
    kept in the audit log (`sync.conflict`) and the operator is told."""
    columns = _data_columns(change)
    values = {c: local[c] for c in columns}
    base = context.base_of(change)
    if base is not None and int(server["version"]) != base:
        lost = {c: server[c] for c in columns if server[c] != local[c]}
        if lost:
            who, when = _who_and_when(context, change.table, server)
            label = server.get("key") or change.table
            _conflict_audit(context, change.table, server, lost, values, who, when)
            shown = ", ".join(f"{c}={_short(v)}" for c, v in lost.items()
                              if change.table != "setting" or c == "value_json")
            context.notes.append(
                f"Your change to {label} replaced {shown}, set by {who} on {_day(when)} while "
                "you were offline (the last change to reach the server wins; the replaced "
                "value is in the audit log as sync.conflict).")
    _update(context, change, values, server)


def _short(value: Any) -> str:
    text = value.decode(errors="replace") if isinstance(value, bytes) else str(value)
    return text if len(text) <= 60 else text[:57] + "…"


def _conflict_audit(context: _Context, table_name: str, server: Mapping[str, Any],
                    lost: Mapping[str, Any], won: Mapping[str, Any], who: str,
                    when: datetime | None) -> None:
    operator = context.operator
    before: dict[str, Any] = {"replaced_by_sync": True, "set_by": who, "set_at": when}
    after: dict[str, Any] = {"command": str(context.command.id)}
    if table_name == "setting":
        before[str(server["key"])] = server["value_json"]
        after[str(server["key"])] = won.get("value_json")
    else:
        before.update({c: v for c, v in lost.items() if not isinstance(v, bytes)})
        after.update({c: v for c, v in won.items() if not isinstance(v, bytes) and c in lost})
    audit.record(context.session, organization_id=server.get("organization_id") or server["id"],
                 actor_id=operator.member_id if operator is not None else None,
                 action="sync.conflict", entity_type=table_name,
                 entity_id=server[_key(table_name)], before=before, after=after)


def _setting_taken(context: _Context, change: RowChange, values: dict[str, Any]) -> bool:
    """Two desktops saved the same setting for the first time: the later one updates the
    server's row (last writer wins) and the replica takes the server's row instead of its
    own."""
    table = _table("setting")
    server = context.connection.execute(
        select(table).where(table.c.organization_id == values["organization_id"],
                            table.c.key == values["key"]).with_for_update()).mappings().first()
    if server is None:
        return False
    stand_in = RowChange("setting", server["id"], "U", frozenset({"value_json"}), -1,
                         change.first_seq, change.last_seq)
    _last_writer_wins(context, stand_in, values, dict(server))
    context.outcome.versions.pop(("setting", server["id"]), None)
    context.outcome.drop_local.append(("setting", change.row_id))
    return True


def _flag_taken(context: _Context, values: Mapping[str, Any]) -> bool:
    table = _table("referral_flag")
    return context.connection.execute(
        select(table.c.id).where(table.c.organization_id == values["organization_id"],
                                 table.c.dedupe_key == values["dedupe_key"])).first() is not None


def _holds_of(context: _Context, org_id: uuid.UUID, kind: InvitationKind,
              event_id: uuid.UUID | None) -> tuple[set[str], dict[str, list[Any]]]:
    """For every new invitation of this kind (and event) in the command, at once: which
    addresses are members, and which invitations they hold on the server."""
    cache_key = (kind.value, event_id)
    if cache_key not in context.holds:
        keys = sorted({
            str(row["email_normalized"]) for (table_name, _), row
            in context.command.values.items()
            if table_name == "invitation" and row is not None
            and (row.get("kind") or InvitationKind.MEMBERSHIP.value) == kind.value
            and row.get("event_id") == event_id})
        session = context.session
        members = existing_members(session, org_id, keys) \
            if kind is InvitationKind.MEMBERSHIP else set()
        holds = invitation_holds(session, org_id, keys, kind=kind, event_id=event_id,
                                 now=context.now)
        context.holds[cache_key] = (members, dict(holds))
    return context.holds[cache_key]


def _close_if_duplicate(context: _Context, values: dict[str, Any]) -> bool:
    """An invitation made offline to an address that meanwhile holds one on the server (from
    another desktop), or became a member: inserted closed (revoked, with the reason) so that
    one invitation stays live, and the operator is told. The same verdict as queueing online."""
    status = values.get("status")
    if status in (InvitationStatus.REVOKED.value, InvitationStatus.ACCEPTED.value):
        return False
    session = context.session
    org_id = values["organization_id"]
    key = values["email_normalized"]
    kind = InvitationKind(values.get("kind") or InvitationKind.MEMBERSHIP.value)
    members, all_holds = _holds_of(context, org_id, kind, values.get("event_id"))
    reason = ""
    if kind is InvitationKind.MEMBERSHIP and key in members:
        reason = "the person is already a member"
    else:
        holds = all_holds.get(key)
        if holds:
            needed = (context.policy.number_of_referrals_needed_for_signup or 0
                      if context.policy is not None else 0)
            verdict, _ = hold_verdict(holds, inviter_id=values.get("inviter_id"), needed=needed,
                                      kind=kind)
            if verdict not in SENDABLE:
                reason = "another invitation to this address reached the server first"
    if not reason:
        return False
    text = (f"Closed as a duplicate when it reached the server: {reason}; that one is the "
            "valid one.")
    values.update(status=InvitationStatus.REVOKED.value, revoked_at=context.now,
                  next_attempt_at=None, last_error=text)
    context.notes.append(f"Your invitation to {values.get('email')} was closed as a duplicate: "
                         f"{reason}, and that one is the valid one.")
    audit.record(session, organization_id=org_id,
                 actor_id=context.operator.member_id if context.operator else None,
                 action="invitation.closed_duplicate", entity_type="invitation",
                 entity_id=values["id"], before={"status": status},
                 after={"status": InvitationStatus.REVOKED.value, "reason": text})
    return True


# -- rights ------------------------------------------------------------------------------------

def _authorize(context: _Context, change: RowChange, local: Mapping[str, Any] | None,
               server: Mapping[str, Any] | None) -> None:
    """Whether the operator, as the server knows them now, may make this change."""
    kind = context.command.kind
    operator = context.operator
    if kind in (journal.DELIVERY, EXPIRE) or operator is None:
        return  # facts (an email went out) and the sweep's bookkeeping (re-checked above)
    row = server if server is not None else (local or {})
    table = change.table
    policy = context.policy
    if table in ("audit_log", "referral_ledger", "referral_reward", "outgoing_mail",
                 "member_origin") or (table == "referral_flag" and change.op == "I"):
        return  # written alongside a change that is itself checked
    if table == "invitation":
        target = Target(unit_id=row.get("unit_id"),
                        owner_ids=tuple(i for i in (row.get("inviter_id"), row.get("sender_id"))
                                        if i is not None))
        if change.op == "I" or kind in ("invitation.resend", "invitation.extend",
                                        "invitation.queue"):
            require(operator, Action.SEND_INVITATIONS, settings=policy)
            inviter = row.get("inviter_id")
            if change.op == "I" and inviter is not None and inviter != operator.member_id:
                inviter_unit = context.session.get(Member, inviter)
                require(operator, Action.SEND_ON_BEHALF, settings=policy,
                        target=Target(unit_id=inviter_unit.unit_id if inviter_unit else None))
        if change.op != "I":
            require(operator, Action.MANAGE_INVITATION, target=target)
        return
    if table == "batch":
        if change.op == "I":
            require(operator, Action.SEND_INVITATIONS, settings=policy)
        else:
            owners = tuple(i for i in (row.get("created_by_id"), row.get("inviter_id")) if i)
            require(operator, Action.MANAGE_INVITATION, target=Target(owner_ids=owners))
        return
    if table in ("setting", "organization"):
        require(operator, Action.CHANGE_SETTINGS)
        return
    if table == "member":
        if kind == "application.decide":
            require(operator, Action.APPROVE_APPLICATION, target=Target(unit_id=row.get("unit_id")))
            return
        if row.get("id") == operator.member_id and change.op == "U" \
                and set(_data_columns(change)) <= OWN_SIGN_IN_COLUMNS:
            return
        require(operator, Action.MANAGE_PEOPLE, target=Target(unit_id=row.get("unit_id")))
        return
    if table == "referral" and kind == "application.decide":
        return
    if table == "unit":
        require(operator, Action.MANAGE_UNITS)
        return
    if table == "event":
        require(operator, Action.MANAGE_EVENTS, target=Target(unit_id=row.get("unit_id")))
        return
    if table == "suppression":
        require(operator, Action.MANAGE_SUPPRESSION)
        return
    if table == "leaderboard_opt_out" and row.get("member_id") == operator.member_id:
        return
    require(operator, Action.MANAGE_PEOPLE, target=Target(unit_id=_unit_of(context, row)))


def _unit_of(context: _Context, row: Mapping[str, Any]) -> uuid.UUID | None:
    for column in ("member_id", "referee_id", "referrer_id"):
        if row.get(column) is not None:
            member = context.session.get(Member, row[column])
            if member is not None:
                return member.unit_id
    unit = row.get("unit_id")
    return unit if isinstance(unit, uuid.UUID) else None


def answered(replica: Engine) -> dict[str, int]:
    """How many commands are in each state (for status lines and tests)."""
    with replica.connect() as connection:
        return {state: count for state, count in connection.execute(
            select(SYNC_COMMAND.c.state, func.count()).group_by(SYNC_COMMAND.c.state))}
