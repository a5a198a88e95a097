"""The server's change log: capture triggers on PostgreSQL and MariaDB, and reading it in
commit order (docs/architecture.md, "Capture on the server").

Positions are opaque strings outside this module:

- a *cursor* says how far a replica has read: ``pg:<done>:<xid>:<seq>`` (PostgreSQL) or
  ``my:<done>:<clock>:<seq>`` (MariaDB), where ``(xid|clock, seq)`` is the last entry read
  and ``done`` the bound below which every transaction has been read whole (PostgreSQL: a
  transaction id, exclusive; MariaDB: a commit clock, inclusive).
- a *checkpoint* names one committed writing transaction (or "now"): ``pg:<xid>`` or
  ``my:<clock>``. ``passed(cursor, checkpoint)`` says whether a replica at `cursor` has read it.

PostgreSQL orders by the writing transaction's id and reads only below the reader's
snapshot xmin. MariaDB has no xmin; its triggers tag each row with a per-transaction token
(kept in `sync_change.conn_id`, @sync_token) and the engine's commit hook, just before
COMMIT, bumps the single `sync_clock` row and appends one *marker* entry (table_name '',
op 'C', clock = the new tick, conn_id = the token). The clock row stays locked until the
commit, so clock order is commit order; a reader reads markers with `clock > cursor` and the
entries of their tokens. The hook only inserts: it never updates log rows, so it takes no
range locks another writer could be waiting on (no deadlock).
"""

from __future__ import annotations

import contextlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, event, text

from invite_desk.services.models import Base
from invite_desk.services.sync.tables import SYNCED_TABLES, key_column

_BIG = 1 << 62
_NIL = uuid.UUID(int=0)
# sync_clock's rows: 1 holds MariaDB's commit clock; 2 the position pruning reached (both
# dialects), so a replica whose cursor is behind it knows it missed changes.
_CLOCK_ROW = 1
_PRUNED_ROW = 2


class CursorExpired(Exception):
    """The replica's cursor is older than the oldest kept change: take a fresh snapshot."""


@dataclass(frozen=True)
class Change:
    table_name: str
    row_id: uuid.UUID
    op: str  # I, U, D


def _dialect(connection: Connection) -> str:
    name = connection.dialect.name
    if name == "postgresql":
        return "pg"
    if name in ("mysql", "mariadb"):
        return "my"
    raise ValueError(f"{name} is never a sync server")


# -- triggers ---------------------------------------------------------------------------------


def _pg_ddl(name: str) -> list[str]:
    key = key_column(name)
    org = "id" if name == "organization" else "organization_id"
    fn = f"sync_capture_{name}"
    body = f"""
CREATE OR REPLACE FUNCTION {fn}() RETURNS trigger LANGUAGE plpgsql AS $body$
BEGIN
  IF TG_OP = 'DELETE' THEN
    INSERT INTO sync_change (xid, table_name, row_id, op, organization_id, changed_at)
    VALUES (pg_current_xact_id()::text::bigint, '{name}', OLD.{key}, 'D', OLD.{org},
            now() AT TIME ZONE 'UTC');
  ELSE
    INSERT INTO sync_change (xid, table_name, row_id, op, organization_id, changed_at)
    VALUES (pg_current_xact_id()::text::bigint, '{name}', NEW.{key}, left(TG_OP, 1),
            NEW.{org}, now() AT TIME ZONE 'UTC');
  END IF;
  RETURN NULL;
END
$body$"""
    return [
        body,
        f'DROP TRIGGER IF EXISTS sync_capture_insdel ON "{name}"',
        f'DROP TRIGGER IF EXISTS sync_capture_upd ON "{name}"',
        f'CREATE TRIGGER sync_capture_insdel AFTER INSERT OR DELETE ON "{name}" '
        f"FOR EACH ROW EXECUTE FUNCTION {fn}()",
        # An UPDATE that changed nothing is not a change.
        f'CREATE TRIGGER sync_capture_upd AFTER UPDATE ON "{name}" FOR EACH ROW '
        f"WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION {fn}()",
    ]


def _my_ddl(name: str) -> list[str]:
    key = key_column(name)
    org = "id" if name == "organization" else "organization_id"
    columns = [column.name for column in Base.metadata.tables[name].columns]
    out: list[str] = []
    for when, op, row in (("INSERT", "I", "NEW"), ("UPDATE", "U", "NEW"),
                          ("DELETE", "D", "OLD")):
        trigger = f"sync_{op.lower()}_{name}"
        out.append(f"DROP TRIGGER IF EXISTS `{trigger}`")
        # An UPDATE that changed nothing is not a change (MariaDB fires the trigger anyway).
        guard = ("IF NOT (" + " AND ".join(f"OLD.`{c}` <=> NEW.`{c}`" for c in columns)
                 + ") THEN ") if when == "UPDATE" else ""
        # UUID_SHORT is unique across restarts (its high bits hold the server's start time);
        # the top bit is cleared so that it fits a signed BIGINT whatever the server_id.
        out.append(
            f"CREATE TRIGGER `{trigger}` AFTER {when} ON `{name}` FOR EACH ROW BEGIN " + guard
            + "IF @sync_token IS NULL THEN "
            "SET @sync_token = UUID_SHORT() & 9223372036854775807; END IF; "
            "INSERT INTO sync_change (conn_id, table_name, row_id, op, organization_id, "
            f"changed_at) VALUES (@sync_token, '{name}', {row}.{key}, '{op}', {row}.{org}, "
            "UTC_TIMESTAMP(6)); " + ("END IF; " if guard else "") + "END"
        )
    return out


def install_capture(connection: Connection) -> None:
    """Create (or re-create) the capture triggers on every synced table; idempotent. Run by
    migration 0010 on PostgreSQL and MariaDB; SQLite is never a sync server."""
    kind = _dialect(connection)
    for name in SYNCED_TABLES:
        for statement in (_pg_ddl(name) if kind == "pg" else _my_ddl(name)):
            connection.exec_driver_sql(statement)
    connection.execute(text(
        "INSERT INTO sync_clock (id, tick) SELECT :id, 0 WHERE NOT EXISTS "
        "(SELECT 1 FROM sync_clock WHERE id = :id)"), {"id": _PRUNED_ROW})


def remove_capture(connection: Connection) -> None:
    kind = _dialect(connection)
    for name in SYNCED_TABLES:
        if kind == "pg":
            connection.exec_driver_sql(f'DROP TRIGGER IF EXISTS sync_capture_insdel ON "{name}"')
            connection.exec_driver_sql(f'DROP TRIGGER IF EXISTS sync_capture_upd ON "{name}"')
            connection.exec_driver_sql(f"DROP FUNCTION IF EXISTS sync_capture_{name}()")
        else:
            for op in "iud":
                connection.exec_driver_sql(f"DROP TRIGGER IF EXISTS `sync_{op}_{name}`")


# -- MariaDB's commit clock -----------------------------------------------------------------


def _stamp_commit(connection: Connection) -> None:
    """Just before COMMIT: if this transaction logged changes, take the next tick and append
    its marker. Runs on the DBAPI cursor (the Connection is mid-commit)."""
    cursor = connection.connection.cursor()
    try:
        cursor.execute("SELECT @sync_token")
        row = cursor.fetchone()
        if row is None or row[0] is None:
            return
        cursor.execute("UPDATE sync_clock SET tick = LAST_INSERT_ID(tick + 1) WHERE id = 1")
        cursor.execute(
            "INSERT INTO sync_change (clock, conn_id, table_name, row_id, op, changed_at) "
            "VALUES (LAST_INSERT_ID(), @sync_token, '', '" + _NIL.hex + "', 'C', "
            "UTC_TIMESTAMP(6))")
        cursor.execute("SET @sync_token = NULL")
    finally:
        cursor.close()


def _forget_token(connection: Connection) -> None:
    """After a rollback the token belongs to nothing: the next transaction takes a new one.
    A connection that was lost (invalidated) took its variable with it."""
    if connection.invalidated or connection.closed:
        return
    with contextlib.suppress(Exception):
        cursor = connection.connection.cursor()
        try:
            cursor.execute("SET @sync_token = NULL")
        finally:
            cursor.close()


def install_commit_clock(engine: Engine) -> None:
    """MariaDB/MySQL: stamp every committing transaction that logged changes with the next
    commit-clock tick (db.make_engine calls this for every such engine)."""
    if not event.contains(engine, "commit", _stamp_commit):
        event.listen(engine, "commit", _stamp_commit)
        event.listen(engine, "rollback", _forget_token)


# -- positions ------------------------------------------------------------------------------


def _parse(position: str) -> tuple[str, list[int]]:
    kind, _, rest = position.partition(":")
    if kind not in ("pg", "my") or not rest:
        raise ValueError(f"not a sync position: {position!r}")
    return kind, [int(part) for part in rest.split(":")]


def _cursor(kind: str, done: int, at: int, seq: int) -> str:
    return f"{kind}:{done}:{at}:{seq}"


def passed(cursor: str, checkpoint: str) -> bool:
    """Whether a replica at `cursor` has read every change of the transaction `checkpoint`
    names (an empty checkpoint or cursor: no)."""
    if not cursor or not checkpoint:
        return False
    kind, numbers = _parse(cursor)
    check_kind, check = _parse(checkpoint)
    if kind != check_kind:
        return False
    done, mark = numbers[0], check[0]
    return done > mark if kind == "pg" else done >= mark


def _pg_xmin(connection: Connection) -> int:
    return int(connection.execute(text(
        "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")).scalar_one())


def _my_tick(connection: Connection) -> int:
    return int(connection.execute(text("SELECT tick FROM sync_clock WHERE id = 1")).scalar_one())


def snapshot_position(connection: Connection) -> str:
    """The cursor of a snapshot read in this REPEATABLE READ transaction: every change
    before it is in the snapshot; a change after it may be too (it comes again, harmlessly)."""
    kind = _dialect(connection)
    if kind == "pg":
        xmin = _pg_xmin(connection)
        return _cursor(kind, xmin, xmin - 1, _BIG)
    tick = _my_tick(connection)
    return _cursor(kind, tick, tick, _BIG)


def transaction_checkpoint(connection: Connection) -> str:
    """The checkpoint of the writing transaction `connection` is in; "" when it cannot be
    known before the commit (MariaDB: take current_position after committing)."""
    if _dialect(connection) == "pg":
        xid = int(connection.execute(text("SELECT pg_current_xact_id()::text::bigint"))
                  .scalar_one())
        return f"pg:{xid}"
    return ""


def current_position(connection: Connection) -> str:
    """A checkpoint at or after every transaction committed so far."""
    kind = _dialect(connection)
    if kind == "pg":
        xmax = int(connection.execute(text(
            "SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint")).scalar_one())
        return f"pg:{xmax - 1}"
    return f"my:{_my_tick(connection)}"


def _check_not_pruned(kind: str, done: int, pruned: Any) -> None:
    if pruned is None:
        return
    # PostgreSQL: everything below `done` was read, and pruning removed every xid <= pruned;
    # MariaDB: every clock <= done was read, and pruning removed every clock <= pruned.
    behind = done <= int(pruned) if kind == "pg" else done < int(pruned)
    if behind:
        raise CursorExpired("the server's change log no longer holds this replica's changes")


def read_changes(connection: Connection, cursor: str, limit: int) -> tuple[list[Change], str]:
    """Up to `limit` log entries after `cursor`, in commit order, and the cursor after them.
    Call it inside the REPEATABLE READ transaction that also reads the rows. One statement
    (an idle round's only one): the pruning horizon, (PostgreSQL) the snapshot's xmin, and
    the entries."""
    kind, numbers = _parse(cursor)
    if kind != _dialect(connection):
        raise CursorExpired("this replica's cursor is from another kind of server")
    done, at, seq = numbers[0], numbers[1], numbers[2]
    if kind == "pg":
        rows = connection.execute(text(
            "WITH s AS (SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS xmin, "
            "(SELECT tick FROM sync_clock WHERE id = :pruned_row) AS pruned) "
            "SELECT s.xmin, s.pruned, c.xid, c.seq, c.table_name, c.row_id, c.op FROM s "
            "LEFT JOIN LATERAL (SELECT xid, seq, table_name, row_id, op FROM sync_change "
            "WHERE xid < s.xmin AND (xid, seq) > (:xid, :seq) ORDER BY xid, seq LIMIT :limit) c "
            "ON true ORDER BY c.xid, c.seq"),
            {"pruned_row": _PRUNED_ROW, "xid": at, "seq": seq, "limit": limit}).all()
        xmin = int(rows[0][0])
        _check_not_pruned(kind, done, rows[0][1])
        entries = [r[2:] for r in rows if r[2] is not None]
        changes = [Change(r[2], _uuid(r[3]), r[4]) for r in entries]
        if len(entries) < limit:  # everything below xmin is read
            last = entries[-1] if entries else None
            return changes, _cursor(kind, max(done, xmin), last[0] if last else at,
                                    last[1] if last else seq)
        last = entries[-1]
        return changes, _cursor(kind, max(done, int(last[0])), last[0], last[1])
    # After a whole transaction (seq at the top) only later markers; inside one, the rest of
    # its entries too. Two shapes, so each is one index range on (clock, seq).
    whole = seq >= _BIG
    rows = connection.execute(text(
        "SELECT p.tick, x.clock, x.seq, x.table_name, x.row_id, x.op FROM "
        "(SELECT max(tick) AS tick FROM sync_clock WHERE id = :pruned_row) p LEFT JOIN "
        "(SELECT m.clock, c.seq, c.table_name, c.row_id, c.op FROM sync_change m "
        "JOIN sync_change c ON c.conn_id = m.conn_id AND c.clock IS NULL "
        + ("WHERE m.clock > :clock " if whole
           else "WHERE m.clock >= :clock AND (m.clock > :clock OR c.seq > :seq) ")
        + "ORDER BY m.clock, c.seq LIMIT :limit) x ON 1 = 1 ORDER BY x.clock, x.seq"),
        {"pruned_row": _PRUNED_ROW, "clock": at, "seq": seq, "limit": limit}).all()
    _check_not_pruned(kind, done, rows[0][0] if rows else None)
    entries = [r[1:] for r in rows if r[1] is not None]
    changes = [Change(r[2], _uuid(r[3]), r[4]) for r in entries]
    if not entries:
        return changes, cursor
    last = entries[-1]
    if len(entries) < limit:
        return changes, _cursor(kind, max(done, int(last[0])), last[0], _BIG)
    return changes, _cursor(kind, max(done, int(last[0]) - 1), last[0], last[1])


def _uuid(value: Any) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def adopt_foreign_writes(engine: Engine) -> int:
    """MariaDB: give a commit tick to log entries committed without the commit hook (a tool
    that does not go through db.make_engine: the mysql client, a script). A reader sees an
    entry only with its transaction's marker, and a hooked transaction commits both at once,
    so a *visible* entry whose token has no marker was committed without the hook. They move
    to a fresh token, which this transaction's own commit stamps (the foreign session keeps
    its old token, never marked, so its later writes are found the same way). READ
    COMMITTED: the UPDATE locks only those rows, no ranges a writer could be waiting on.
    Scans the unmarked entries: run it now and then (prune runs it), not every round.
    Returns the entries adopted; 0 on PostgreSQL (its capture needs no hook)."""
    if engine.dialect.name not in ("mysql", "mariadb"):
        return 0
    install_commit_clock(engine)
    with engine.connect() as connection:
        connection = connection.execution_options(isolation_level="READ COMMITTED")
        with connection.begin():
            orphans = list(connection.execute(text(
                "SELECT DISTINCT c.conn_id FROM sync_change c WHERE c.clock IS NULL "
                "AND c.conn_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM sync_change m "
                "WHERE m.conn_id = c.conn_id AND m.clock IS NOT NULL)")).scalars())
            if not orphans:
                return 0
            token = int(connection.execute(text(
                "SELECT UUID_SHORT() & 9223372036854775807")).scalar_one())
            adopted = 0
            for start in range(0, len(orphans), 500):
                adopted += connection.execute(
                    text("UPDATE sync_change SET conn_id = :token "
                         "WHERE clock IS NULL AND conn_id IN :orphans")
                    .bindparams(bindparam("orphans", expanding=True)),
                    {"token": token, "orphans": orphans[start:start + 500]}).rowcount
            connection.execute(text("SET @sync_token = :token"), {"token": token})
        return int(adopted)


def prune(connection: Connection, older_than: datetime) -> int:
    """Delete log entries written before `older_than` (naive or aware UTC); remember how far
    pruning reached, so a replica behind it starts over. Returns the entries deleted. On
    MariaDB it first adopts entries committed without the commit hook (in a transaction of
    its own), so that pruning does not leave them unread behind its horizon."""
    kind = _dialect(connection)
    if kind == "my":
        adopt_foreign_writes(connection.engine)
    moment = older_than.replace(tzinfo=None) if older_than.tzinfo is None \
        else older_than.astimezone(UTC).replace(tzinfo=None)
    if kind == "pg":
        top = connection.execute(text(
            "SELECT max(xid) FROM sync_change WHERE changed_at < :at"), {"at": moment}).scalar()
    else:
        top = connection.execute(text(
            "SELECT max(clock) FROM sync_change WHERE clock IS NOT NULL AND changed_at < :at"),
            {"at": moment}).scalar()
    if top is None:
        return 0
    top = int(top)
    if kind == "pg":
        deleted = connection.execute(text("DELETE FROM sync_change WHERE xid <= :top"),
                                     {"top": top}).rowcount
    else:
        tokens = [r[0] for r in connection.execute(text(
            "SELECT conn_id FROM sync_change WHERE clock IS NOT NULL AND clock <= :top"),
            {"top": top})]
        deleted = 0
        for start in range(0, len(tokens), 500):
            part = tokens[start:start + 500]
            deleted += connection.execute(
                text("DELETE FROM sync_change WHERE conn_id IN :tokens")
                .bindparams(bindparam("tokens", expanding=True)),
                {"tokens": part}).rowcount
    connection.execute(text(
        "UPDATE sync_clock SET tick = :top WHERE id = :id AND tick < :top"),
        {"top": top, "id": _PRUNED_ROW})
    return int(deleted)
