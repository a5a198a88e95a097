"""The replica's journal: which rows the desktop changed, grouped into commands to push.

SQLite triggers on every synced table append `(table_name, row_id, op, changed columns,
base_version)` to `local_change` for each local write, unless `sync_applying` holds a row (a
pull writing server rows). When a transaction on a journaled engine commits, its untagged
entries become one `sync_command` (client UUID, kind, operator), in the same transaction: the
engine's commit event does it, so ORM units of work and Core connections (the outbox's send
loop commits through Core) are tagged alike. A service names the command with
`with journal.command("invitation.revoke", summary):` around its commit; a commit without a
name is an `edit`, or a `delivery` when it only touched the outbox's delivery columns.

docs/architecture.md, "Offline replica and sync", is the contract.
"""

from __future__ import annotations

import uuid
import weakref
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import (
    Connection,
    Engine,
    Table,
    delete,
    event,
    func,
    insert,
    or_,
    select,
    update,
)

from invite_desk.services.models import (
    Base,
    LocalChange,
    SyncApplying,
    SyncCommand,
    SyncCommandState,
    SyncState,
    new_id,
    utcnow,
)

LOCAL_CHANGE = Base.metadata.tables[LocalChange.__tablename__]
SYNC_COMMAND = Base.metadata.tables[SyncCommand.__tablename__]
SYNC_APPLYING = Base.metadata.tables[SyncApplying.__tablename__]
SYNC_STATE = Base.metadata.tables[SyncState.__tablename__]

_journaled: weakref.WeakSet[Engine] = weakref.WeakSet()  # engines whose commits are tagged
TRIGGER_PREFIX = "sync_journal_"

EDIT = "edit"
DELIVERY = "delivery"
# A commit whose writes are this database's own derived state (the referral reconciliation):
# its journal entries are dropped, not pushed; the server derives its own.
LOCAL_ONLY = "local"

# What the outbox writes while sending (sending.py, sweeps): a command touching only these
# invitation columns (plus audit rows and batch bookkeeping) is a delivery fact.
DELIVERY_COLUMNS = frozenset({
    "status", "sending_owner", "token_hash", "expires_at", "message_id", "attempts",
    "unsubscribe_token_hash", "sent_at", "next_attempt_at", "last_error", "version",
    "updated_at",
})
BATCH_DELIVERY_COLUMNS = frozenset({"status", "version", "updated_at"})

# Derived rows the referral reconciliation keeps on whichever database it runs on (the
# server's is the authority; a replica's copy is a preview until the pull brings the
# server's): never journaled, never pushed.
NOT_JOURNALED = frozenset({"referral_reward", "referral_ledger"})
# Setting keys with a "._" segment are a database's own bookkeeping (the reconciliation's
# watermarks and time zones), not the organization's settings: never journaled.


def is_bookkeeping_key(key: str) -> bool:
    return "._" in key

_current: ContextVar[tuple[str, str] | None] = ContextVar("sync_command", default=None)


# -- naming the command a commit records -------------------------------------------------------

@contextmanager
def command(kind: str, summary: str = "") -> Iterator[None]:
    """Name the command that the commits inside this block record on a replica (a no-op on a
    database that is not a replica). Each commit inside is one command of this kind."""
    token = _current.set((kind, summary[:500]))
    try:
        yield
    finally:
        _current.reset(token)


def current_command() -> tuple[str, str] | None:
    return _current.get()


# -- triggers ----------------------------------------------------------------------------------

def _synced_tables() -> tuple[str, ...]:
    from invite_desk.services.sync import tables  # lazy: tables imports the permissions

    return tuple(tables.SYNCED_TABLES)


def _key_column(table_name: str) -> str:
    from invite_desk.services.sync import tables

    return tables.key_column(table_name)


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def trigger_ddl(table: Table, key: str = "id") -> list[str]:
    """CREATE TRIGGER statements journaling `table`, whose UUID key is `key`; the base
    version is the row's `version` before the write (NULL for a table without one)."""
    name = table.name
    version = "OLD.version" if "version" in table.c else "NULL"
    columns = [c.name for c in table.columns]
    literal = name.replace("'", "''")
    quiet = "NOT EXISTS (SELECT 1 FROM sync_applying)"
    new_quiet = old_quiet = quiet
    if name == "setting":  # instr: LIKE would take "_" for any character
        new_quiet = f"{quiet} AND instr(NEW.key, '._') = 0"
        old_quiet = f"{quiet} AND instr(OLD.key, '._') = 0"
    changed = " OR ".join(f"OLD.{_q(c)} IS NOT NEW.{_q(c)}" for c in columns)
    listing = " || ".join(
        f"CASE WHEN OLD.{_q(c)} IS NOT NEW.{_q(c)} THEN ',{c}' ELSE '' END" for c in columns)
    insert_into = ("INSERT INTO local_change (table_name, row_id, op, columns, base_version, "
                   "command_id)")
    return [
        f"CREATE TRIGGER {_q(TRIGGER_PREFIX + name + '_i')} AFTER INSERT ON {_q(name)} "
        f"WHEN {new_quiet} BEGIN {insert_into} VALUES ('{literal}', NEW.{_q(key)}, 'I', "
        f"'{','.join(columns)}', NULL, NULL); END",
        f"CREATE TRIGGER {_q(TRIGGER_PREFIX + name + '_u')} AFTER UPDATE ON {_q(name)} "
        f"WHEN {new_quiet} AND ({changed}) BEGIN {insert_into} VALUES ('{literal}', NEW.{_q(key)}, "
        f"'U', substr({listing}, 2), {version}, NULL); END",
        f"CREATE TRIGGER {_q(TRIGGER_PREFIX + name + '_d')} AFTER DELETE ON {_q(name)} "
        f"WHEN {old_quiet} BEGIN {insert_into} VALUES ('{literal}', OLD.{_q(key)}, 'D', "
        f"'', {version}, NULL); END",
    ]


def install_journal(replica_engine: Engine, table_names: Iterable[str] | None = None) -> None:
    """Journal every synced table of this SQLite replica and tag its commits. Idempotent, and
    cheap: call it every time a replica's engine is made (the triggers live in the file, the
    commit hook in the engine)."""
    if replica_engine.dialect.name != "sqlite":
        raise ValueError("only a SQLite file can be a replica")
    names = tuple(table_names) if table_names is not None else _synced_tables()
    with replica_engine.begin() as connection:
        existing = set(connection.exec_driver_sql(
            "SELECT name FROM sqlite_master WHERE type = 'trigger' AND substr(name, 1, ?) = ?",
            (len(TRIGGER_PREFIX), TRIGGER_PREFIX)).scalars())
        for trigger in existing:  # rebuilt: a migration may have added columns since
            connection.exec_driver_sql(f"DROP TRIGGER IF EXISTS {_q(trigger)}")
        for name in names:
            if name in NOT_JOURNALED:
                continue
            for statement in trigger_ddl(Base.metadata.tables[name], _key_column(name)):
                connection.exec_driver_sql(statement)
    if replica_engine not in _journaled:
        event.listen(replica_engine, "commit", _tag_on_commit)
        _journaled.add(replica_engine)


def is_journaled(engine: Engine) -> bool:
    """Whether this engine's commits record commands (install_journal ran on it)."""
    return engine in _journaled


# -- tagging -----------------------------------------------------------------------------------

def _tag_on_commit(connection: Connection) -> None:
    if connection.info.get("sync_tagging"):
        return
    connection.info["sync_tagging"] = True
    try:
        tag_pending(connection)
    finally:
        connection.info["sync_tagging"] = False


def classify(entries: Iterable[tuple[str, str, str]]) -> str:
    """`delivery` when every (table, op, columns) entry is an outbox write, else `edit`."""
    seen = False
    for table_name, op, columns in entries:
        seen = True
        names = set(filter(None, columns.split(",")))
        if table_name == "audit_log" and op == "I":
            continue
        if table_name == "invitation" and op == "U" and names <= DELIVERY_COLUMNS:
            continue
        if table_name == "batch" and op == "U" and names <= BATCH_DELIVERY_COLUMNS:
            continue
        return EDIT
    return DELIVERY if seen else EDIT


def tag_pending(connection: Connection, operator_id: uuid.UUID | None = None, *,
                kind: str | None = None, summary: str | None = None) -> uuid.UUID | None:
    """Make the untagged journal entries one new pending command, in the caller's transaction.
    Returns its id (None when there was nothing to tag). The kind and summary come from the
    enclosing `command()` block unless given; the operator from sync_state unless given."""
    untagged = connection.execute(
        select(LOCAL_CHANGE.c.table_name, LOCAL_CHANGE.c.op, LOCAL_CHANGE.c.columns)
        .where(LOCAL_CHANGE.c.command_id.is_(None))).all()
    if not untagged:
        return None
    named = current_command()
    if kind is None and named is not None and named[0] == LOCAL_ONLY:
        connection.execute(delete(LOCAL_CHANGE).where(LOCAL_CHANGE.c.command_id.is_(None)))
        return None
    if kind is None:
        kind = named[0] if named is not None else classify(
            (t, o, c) for t, o, c in untagged)
    if summary is None:
        summary = named[1] if named is not None and named[0] == kind else ""
    if not summary:
        tables = sorted({t for t, _, _ in untagged})
        count = len(untagged)
        summary = f"{count} change{'' if count == 1 else 's'} to {', '.join(tables)}"
    if operator_id is None:
        operator_id = connection.execute(
            select(SYNC_STATE.c.operator_id).where(SYNC_STATE.c.id == 1)).scalar()
    seq = int(connection.execute(select(func.coalesce(func.max(SYNC_COMMAND.c.seq), 0)))
              .scalar() or 0) + 1
    command_id = new_id()
    connection.execute(insert(SYNC_COMMAND).values(
        id=command_id, seq=seq, kind=kind, operator_id=operator_id, summary=summary,
        created_at=utcnow(), state=SyncCommandState.PENDING.value, reason="",
        checkpoint=""))
    connection.execute(update(LOCAL_CHANGE).where(LOCAL_CHANGE.c.command_id.is_(None))
                       .values(command_id=command_id))
    return command_id


# -- pulls write without journaling ------------------------------------------------------------

@contextmanager
def applying(connection: Connection) -> Iterator[None]:
    """Inside this block (in the caller's transaction) writes are not journaled: a pull
    writing server rows, or push recording an answer."""
    present = connection.execute(select(SYNC_APPLYING.c.id).where(SYNC_APPLYING.c.id == 1)
                                 ).first() is not None
    if not present:
        connection.execute(insert(SYNC_APPLYING).values(id=1))
    try:
        yield
    finally:
        if not present:
            connection.execute(delete(SYNC_APPLYING).where(SYNC_APPLYING.c.id == 1))


# -- what pull needs to know -------------------------------------------------------------------

def protected_rows(connection: Connection) -> dict[str, set[uuid.UUID]]:
    """Rows a pull must not overwrite: changed locally and not yet confirmed (journal entries
    not yet tagged, or of a pending or applied-but-not-confirmed command)."""
    open_states = (SyncCommandState.PENDING.value, SyncCommandState.APPLIED.value)
    rows = connection.execute(
        select(LOCAL_CHANGE.c.table_name, LOCAL_CHANGE.c.row_id)
        .select_from(LOCAL_CHANGE.outerjoin(SYNC_COMMAND,
                                            SYNC_COMMAND.c.id == LOCAL_CHANGE.c.command_id))
        .where(or_(LOCAL_CHANGE.c.command_id.is_(None), SYNC_COMMAND.c.state.in_(open_states)))
    ).all()
    found: dict[str, set[uuid.UUID]] = {}
    for table_name, row_id in rows:
        found.setdefault(table_name, set()).add(row_id)
    return found


def refetch_rows(connection: Connection) -> dict[str, set[uuid.UUID]]:
    """Rows of rejected commands that a pull must fetch again from the server (the server's
    row, or a local delete when the server has none). `forget_rejected_rows` after that."""
    rows = connection.execute(
        select(LOCAL_CHANGE.c.table_name, LOCAL_CHANGE.c.row_id)
        .join(SYNC_COMMAND, SYNC_COMMAND.c.id == LOCAL_CHANGE.c.command_id)
        .where(SYNC_COMMAND.c.state == SyncCommandState.REJECTED.value)).all()
    found: dict[str, set[uuid.UUID]] = {}
    for table_name, row_id in rows:
        found.setdefault(table_name, set()).add(row_id)
    return found


def forget_rejected_rows(connection: Connection) -> int:
    """Drop the journal entries of rejected commands (their rows were fetched again)."""
    rejected_ids = select(SYNC_COMMAND.c.id).where(
        SYNC_COMMAND.c.state == SyncCommandState.REJECTED.value)
    return connection.execute(
        delete(LOCAL_CHANGE).where(LOCAL_CHANGE.c.command_id.in_(rejected_ids))).rowcount


def confirm_passed(connection: Connection, passed: Callable[[str], bool]) -> int:
    """Mark APPLIED commands whose checkpoint `passed(checkpoint)` says the cursor passed as
    CONFIRMED and drop their journal entries; returns how many."""
    rows = connection.execute(
        select(SYNC_COMMAND.c.id, SYNC_COMMAND.c.checkpoint)
        .where(SYNC_COMMAND.c.state == SyncCommandState.APPLIED.value)).all()
    done = [cid for cid, checkpoint in rows if passed(checkpoint)]
    if done:
        connection.execute(update(SYNC_COMMAND).where(SYNC_COMMAND.c.id.in_(done))
                           .values(state=SyncCommandState.CONFIRMED.value))
        connection.execute(delete(LOCAL_CHANGE).where(LOCAL_CHANGE.c.command_id.in_(done)))
    return len(done)


# -- status for the desktop --------------------------------------------------------------------

@dataclass(frozen=True)
class RejectedCommand:
    """A command the operator must hear about: refused by the server (`applied` False), or
    applied with a note (closed as a duplicate, settings that replaced someone's value)."""

    command_id: uuid.UUID
    kind: str
    summary: str
    reason: str
    created_at: datetime
    answered_at: datetime | None
    applied: bool = False


def pending_count(replica_engine: Engine) -> int:
    """Commands waiting to be pushed (a transaction not yet tagged counts as one)."""
    with replica_engine.connect() as connection:
        waiting = int(connection.execute(
            select(func.count()).select_from(SYNC_COMMAND)
            .where(SYNC_COMMAND.c.state == SyncCommandState.PENDING.value)).scalar() or 0)
        untagged = connection.execute(
            select(LOCAL_CHANGE.c.seq).where(LOCAL_CHANGE.c.command_id.is_(None)).limit(1)
        ).first()
    return waiting + (1 if untagged is not None else 0)


def rejected(replica_engine: Engine) -> list[RejectedCommand]:
    """Rejected commands, and applied ones with a note, not yet dismissed; oldest first."""
    with replica_engine.connect() as connection:
        rows = connection.execute(
            select(SYNC_COMMAND)
            .where(SYNC_COMMAND.c.dismissed_at.is_(None),
                   or_(SYNC_COMMAND.c.state == SyncCommandState.REJECTED.value,
                       (SYNC_COMMAND.c.state.in_((SyncCommandState.APPLIED.value,
                                                   SyncCommandState.CONFIRMED.value)))
                       & (SYNC_COMMAND.c.reason != "")))
            .order_by(SYNC_COMMAND.c.seq)).mappings().all()
    return [RejectedCommand(
        command_id=row["id"], kind=row["kind"], summary=row["summary"], reason=row["reason"],
        created_at=row["created_at"], answered_at=row["answered_at"],
        applied=row["state"] != SyncCommandState.REJECTED.value) for row in rows]


def dismiss(replica_engine: Engine, command_id: uuid.UUID) -> None:
    """The operator has read this command's answer: stop showing it."""
    with replica_engine.begin() as connection:
        connection.execute(update(SYNC_COMMAND).where(SYNC_COMMAND.c.id == command_id)
                           .values(dismissed_at=utcnow()))
