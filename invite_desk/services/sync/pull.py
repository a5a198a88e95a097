"""Pull: bring the server's rows into a replica (docs/architecture.md, "Pull").

`snapshot()` copies every in-scope row of every synced table in one REPEATABLE READ read;
`pull_round()` reads the change log after the replica's cursor, fetches the current in-scope
rows of the changed ids in the same server snapshot, and writes them and the new cursor in
ONE local transaction (a fault anywhere resumes from the last committed cursor). Pulled rows
are written with the journal off (journal.applying), never over a row with local changes not
yet confirmed, and with the replica's foreign-key checks off: a scoped replica may hold an
invitation whose event or batch is outside its operator's scope, and a pull may bring a row
before the row it references (member.referred_by_id, or the next batch's parents).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    Boolean,
    Connection,
    Engine,
    Integer,
    LargeBinary,
    Table,
    Text,
    Uuid,
    cast,
    delete,
    exists,
    func,
    or_,
    select,
    text,
    type_coerce,
    update,
)
from sqlalchemy.orm import Session
from sqlalchemy.types import NullType

from invite_desk.services.errors import PermissionDenied
from invite_desk.services.models import (
    Member,
    MemberStatus,
    SyncCommandState,
    UTCDateTime,
    utcnow,
)
from invite_desk.services.operator import Operator, operator_for
from invite_desk.services.permissions import ScopeLevel, scope_of
from invite_desk.services.sync import capture, journal
from invite_desk.services.sync.capture import Change, CursorExpired
from invite_desk.services.sync.journal import (  # the sync tables, defined once
    LOCAL_CHANGE,
    SYNC_COMMAND,
    SYNC_STATE,
)
from invite_desk.services.sync.tables import (
    SYNCED_TABLES,
    key_column,
    kinds_for,
    redacted_columns,
    scope_condition,
    table,
)

_CHUNK = 500  # ids per IN (...) on the server
_INSERT_BATCH = 5000  # rows per executemany into the replica


@dataclass(frozen=True)
class PullReport:
    applied: int = 0  # rows written into the replica
    deleted: int = 0  # rows removed from it (deleted on the server, or out of scope)
    tables: dict[str, int] = field(default_factory=dict)  # rows written or removed, per table
    kinds: frozenset[str] = frozenset()  # the hub kinds those tables feed
    cursor: str = ""
    snapshot: bool = False  # this was a full snapshot
    more: bool = False  # another batch is waiting on the server


class ReplicaNotReady(RuntimeError):
    """The replica has no sync_state row (Replica.open creates it)."""


# -- replica side ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _State:
    operator_id: uuid.UUID
    cursor: str
    snapshot_done: bool


def _state(replica: Engine) -> _State:
    with replica.connect() as connection:
        row = connection.execute(select(SYNC_STATE.c.operator_id, SYNC_STATE.c.cursor,
                                        SYNC_STATE.c.snapshot_done)
                                 .where(SYNC_STATE.c.id == 1)).first()
    if row is None or row.operator_id is None:
        raise ReplicaNotReady("This database is not a replica yet: open it with Replica.open.")
    return _State(row.operator_id, row.cursor or "", bool(row.snapshot_done))


@contextmanager
def _replica_transaction(replica: Engine) -> Iterator[Connection]:
    """One local transaction with foreign-key checks off and the journal quiet."""
    with replica.connect() as connection:
        # PRAGMA foreign_keys is ignored inside a transaction: set it before BEGIN, and put it
        # back before the connection returns to the pool.
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        # A snapshot updates a dozen indexes per invitation: give them room (64 MiB).
        connection.exec_driver_sql("PRAGMA cache_size=-65536")
        connection.commit()  # ends SQLAlchemy's autobegun transaction (no BEGIN was sent)
        try:
            with connection.begin(), journal.applying(connection):
                yield connection
        finally:
            if connection.in_transaction():
                connection.rollback()
            connection.exec_driver_sql("PRAGMA foreign_keys=ON")
            connection.exec_driver_sql("PRAGMA cache_size=-2000")
            connection.commit()


def _write_rows(connection: Connection, shape: _Shape, rows: Sequence[tuple[Any, ...]]) -> None:
    """INSERT OR REPLACE rows in their stored form: a row already there is replaced, and so is
    a local row holding a unique value the server's row now has (that row changed on the
    server too; its own change is further on in the log and brings it back)."""
    for start in range(0, len(rows), _INSERT_BATCH):
        connection.exec_driver_sql(shape.insert_sql, list(rows[start:start + _INSERT_BATCH]))


def _delete_rows(connection: Connection, name: str, keys: Sequence[str]) -> int:
    deleted = 0
    for start in range(0, len(keys), _CHUNK):
        part = tuple(keys[start:start + _CHUNK])
        marks = ", ".join("?" for _ in part)
        deleted += connection.exec_driver_sql(
            f'DELETE FROM "{name}" WHERE "{key_column(name)}" IN ({marks})', part).rowcount
    return deleted


def _save_cursor(connection: Connection, cursor: str, *, snapshot: bool = False) -> None:
    values: dict[str, Any] = {"cursor": cursor, "last_pull_at": utcnow(), "last_error": ""}
    if snapshot:
        values["snapshot_done"] = True
    connection.execute(update(SYNC_STATE).where(SYNC_STATE.c.id == 1).values(**values))


def _confirm(connection: Connection, cursor: str) -> None:
    journal.confirm_passed(connection, lambda checkpoint: capture.passed(cursor, checkpoint))


# Which rows of the replica a pull must leave alone or bring again: journal.py's rules.


def _rows_of(connection: Connection, condition: Any) -> dict[str, set[uuid.UUID]]:
    rows = connection.execute(
        select(LOCAL_CHANGE.c.table_name, LOCAL_CHANGE.c.row_id)
        .select_from(LOCAL_CHANGE.outerjoin(SYNC_COMMAND,
                                            SYNC_COMMAND.c.id == LOCAL_CHANGE.c.command_id))
        .where(condition)).all()
    found: dict[str, set[uuid.UUID]] = {}
    for table_name, row_id in rows:
        found.setdefault(table_name, set()).add(row_id)
    return found


def _confirmable_rows(connection: Connection, cursor: str) -> dict[str, set[uuid.UUID]]:
    """Rows of APPLIED commands whose checkpoint `cursor` has passed."""
    rows = connection.execute(select(SYNC_COMMAND.c.id, SYNC_COMMAND.c.checkpoint).where(
        SYNC_COMMAND.c.state == SyncCommandState.APPLIED.value)).all()
    done = [command_id for command_id, checkpoint in rows if capture.passed(cursor, checkpoint)]
    if not done:
        return {}
    return _rows_of(connection, LOCAL_CHANGE.c.command_id.in_(done))


# -- server side ----------------------------------------------------------------------------


@contextmanager
def _server_snapshot(remote: Engine) -> Iterator[Connection]:
    """A read-only REPEATABLE READ transaction on the server: one consistent snapshot."""
    with remote.connect() as connection:
        connection = connection.execution_options(isolation_level="REPEATABLE READ")
        with connection.begin() as tx:
            yield connection
            tx.rollback()  # nothing was written: end it cheaply


def _operator(connection: Connection, member_id: uuid.UUID) -> Operator:
    """The replica's operator as the server knows them now (role and unit define the scope)."""
    with Session(bind=connection) as session:
        member = session.get(Member, member_id)
        if member is None or member.status != MemberStatus.ACTIVE.value:
            raise PermissionDenied(
                "sync this replica", "USER",
                detail="Your account is no longer active on the server; sign in again.")
        return operator_for(session, member)


def _stored_form(column: Any, server_dialect: str) -> Any:
    """The server expression giving `column` in the form SQLAlchemy stores it in SQLite: a
    UUID as 32 hex digits, a UTC datetime as 'YYYY-MM-DD HH:MM:SS.ffffff', a boolean as 0/1.
    A snapshot moves 100,000s of rows; converting each value in Python (the driver's
    parsing, then SQLAlchemy's processing, twice) was most of its time."""
    kind = column.type
    pg = server_dialect == "postgresql"
    expr: Any
    if isinstance(kind, Uuid):  # native on PostgreSQL and MariaDB >= 10.7: with dashes
        expr = func.replace(cast(column, Text), "-", "")
    elif isinstance(kind, UTCDateTime):
        expr = (func.to_char(column, "YYYY-MM-DD HH24:MI:SS.US") if pg
                else func.date_format(column, "%Y-%m-%d %H:%i:%s.%f"))
    elif isinstance(kind, Boolean) and pg:
        expr = cast(column, Integer)
    else:
        expr = column
    return type_coerce(expr, NullType()).label(column.name)


class _Shape:
    """How one table's rows travel: the server SELECT of their stored form, where the key
    and the secrets sit in a row, the replica's INSERT, and the references to follow."""

    def __init__(self, tbl: Table, server_dialect: str, operator: Operator) -> None:
        self.table = tbl
        self.name = tbl.name
        names = [c.name for c in tbl.columns]
        self.exprs = [_stored_form(c, server_dialect) for c in tbl.columns]
        # PyMySQL parses every value in Python; one JSON array per row (parsed in C) is
        # several times faster. Not for binary columns (the organization's logo).
        self.as_json = server_dialect != "postgresql" and not any(
            isinstance(c.type, LargeBinary) for c in tbl.columns)
        self.scope = scope_condition(tbl, operator)
        self.key = tbl.c[key_column(tbl.name)]
        self.key_at = names.index(key_column(tbl.name))
        self.secret = [(names.index(n), tbl.c[n].nullable) for n in redacted_columns(tbl.name)]
        self.own = operator.member_id.hex if tbl.name == "member" else None
        quoted = ", ".join('"' + n + '"' for n in names)
        marks = ", ".join("?" for _ in names)
        self.insert_sql = f'INSERT OR REPLACE INTO "{tbl.name}" ({quoted}) VALUES ({marks})'
        self.references = [
            (names.index(fk.parent.name), fk.column.table.name) for fk in tbl.foreign_keys
            if fk.column.table.name in SYNCED_TABLES
            and fk.column.name == key_column(fk.column.table.name)]

    def select(self, *where: Any) -> Any:
        columns = (type_coerce(func.json_array(*self.exprs), NullType()),) if self.as_json \
            else self.exprs
        return select(*columns).where(self.scope, *where)

    def rows(self, raw: Iterable[Any]) -> list[tuple[Any, ...]]:
        """Driver rows -> stored tuples, secrets redacted (one's own member row kept)."""
        out: list[tuple[Any, ...]] = []
        for row in ([json.loads(r[0]) for r in raw] if self.as_json else raw):
            key = row[self.key_at]
            if self.secret and key != self.own:
                values = list(row)
                for at, nullable in self.secret:
                    if values[at] is not None:
                        values[at] = None if nullable else f"redacted:{key}"
                out.append(tuple(values))
            else:
                out.append(tuple(row))
        return out


def _fetch(server: Connection, shape: _Shape, ids: Sequence[uuid.UUID]) -> list[tuple[Any, ...]]:
    """The in-scope rows of `shape`'s table with these ids, stored form."""
    rows: list[tuple[Any, ...]] = []
    for start in range(0, len(ids), _CHUNK):
        part = ids[start:start + _CHUNK]
        rows += shape.rows(server.execute(shape.select(shape.key.in_(part))))
    return rows


def _references(shapes: dict[str, _Shape], rows_by_table: dict[str, list[tuple[Any, ...]]]
                ) -> dict[str, set[str]]:
    """The synced rows (keys, stored form) the fetched rows reference: inviter, unit, ..."""
    wanted: dict[str, set[str]] = {}
    for name, rows in rows_by_table.items():
        for at, target in shapes[name].references:
            for row in rows:
                if row[at] is not None:
                    wanted.setdefault(target, set()).add(row[at])
    return wanted


# Parents a replica may hold only because of a child row (a batch or a member that a local
# role sees through the invitations it sees): when such a child changes, the parent it
# pointed to before is looked at again, and leaves the replica if nothing in scope holds it.
# (The parent's own row did not change, so no log entry would ever name it.)
_SCOPED_BY_CHILDREN = frozenset({"batch", "member"})


def _local_rows(connection: Connection, name: str, columns: Sequence[str],
                keys: Sequence[str]) -> Iterator[Any]:
    """The replica's `columns` of the rows of `name` whose key is one of `keys` (stored
    form), in chunks of _CHUNK bound parameters."""
    key = key_column(name)
    quoted = ", ".join(f'"{column}"' for column in columns)
    for start in range(0, len(keys), _CHUNK):
        part = tuple(keys[start:start + _CHUNK])
        marks = ", ".join("?" for _ in part)
        yield from connection.exec_driver_sql(
            f'SELECT {quoted} FROM "{name}" WHERE "{key}" IN ({marks})', part)


def _former_parents(connection: Connection, shapes: dict[str, _Shape],
                    ids: dict[str, list[uuid.UUID]]) -> dict[str, set[uuid.UUID]]:
    """The scope-dependent parents the replica's copies of the changed rows point to now."""
    found: dict[str, set[uuid.UUID]] = {}
    for name, keys in ids.items():
        shape = shapes[name]
        refs = [(shape.table.columns[at].name, target) for at, target in shape.references
                if target in _SCOPED_BY_CHILDREN]
        if not refs or not keys:
            continue
        for row in _local_rows(connection, name, [column for column, _ in refs],
                               [k.hex for k in keys]):
            for (_, target), value in zip(refs, row, strict=True):
                if value is not None:
                    found.setdefault(target, set()).add(uuid.UUID(str(value)))
    return found


# The invitation columns whose rows keep a scope-dependent parent in a local operator's
# replica (tables.scope_condition: the people named on visible invitations, the batches
# holding them).
_NAMED_BY_INVITATIONS = {"member": ("inviter_id", "sender_id", "accepted_member_id"),
                         "batch": ("batch_id",)}


def _unnamed_parents(connection: Connection, operator: Operator) -> dict[str, set[uuid.UUID]]:
    """The scope-dependent parents no invitation on the replica names any more, except those
    the operator holds by a rule of their own (themselves, their unit's members, their own
    batches). The server's scope decides whether each stays: a parent whose last child was
    changed *on the replica* (a resend into a new batch) was never named by the pulled row,
    as the replica's copy already pointed elsewhere, so _former_parents cannot find it."""
    scope = scope_of(operator)
    if scope.level is ScopeLevel.ORGANIZATION:
        return {}
    inv = table("invitation")
    found: dict[str, set[uuid.UUID]] = {}
    for name, columns in _NAMED_BY_INVITATIONS.items():
        parent = table(name)
        named = [exists().where(inv.c[column] == parent.c.id) for column in columns]
        # IS (not =): a NULL unit or creator must not make the whole condition NULL.
        if name == "member":
            own = [parent.c.id.is_not_distinct_from(operator.member_id)]
            if scope.level is ScopeLevel.UNIT and scope.unit_id is not None:
                own.append(parent.c.unit_id.is_not_distinct_from(scope.unit_id))
        else:
            own = [parent.c.created_by_id.is_not_distinct_from(operator.member_id),
                   parent.c.inviter_id.is_not_distinct_from(operator.member_id)]
        ids = set(connection.scalars(select(parent.c.id).where(~or_(*named, *own))))
        if ids:
            found[name] = ids
    return found


def _missing_locally(connection: Connection, wanted: dict[str, set[str]]
                     ) -> dict[str, list[uuid.UUID]]:
    missing: dict[str, list[uuid.UUID]] = {}
    for name, keys in wanted.items():
        listed = sorted(keys)
        present = {row[0] for row in _local_rows(connection, name, [key_column(name)], listed)}
        absent = [uuid.UUID(k) for k in listed if k not in present]
        if absent:
            missing[name] = absent
    return missing


def _copy_table(server: Connection, local: Connection, shape: _Shape,
                keep: set[uuid.UUID]) -> int:
    """Stream every in-scope row of the table from the server into the replica; returns the
    rows written."""
    keep_hex = {k.hex for k in keep}
    written = 0
    result = server.execution_options(yield_per=_INSERT_BATCH).execute(shape.select())
    for part in result.partitions():
        batch = [r for r in shape.rows(part) if r[shape.key_at] not in keep_hex]
        if batch:
            _write_rows(local, shape, batch)
            written += len(batch)
    return written


def snapshot(remote: Engine, replica: Engine) -> PullReport:
    """Copy every in-scope row of every synced table into the replica, replacing what it held
    (except rows with local changes not yet confirmed), and set the cursor to the snapshot's
    log position. The server's rows stream into one local transaction."""
    state = _state(replica)
    counts: dict[str, int] = {}
    applied = deleted = 0
    with _server_snapshot(remote) as server:
        cursor = capture.snapshot_position(server)
        operator = _operator(server, state.operator_id)
        with _replica_transaction(replica) as local:
            _confirm(local, cursor)  # their rows are in this snapshot: no longer protected
            protected = journal.protected_rows(local)
            for name in reversed(SYNCED_TABLES):
                tbl = table(name)
                keep = protected.get(name, set())
                stmt = delete(tbl)
                if keep:
                    stmt = stmt.where(tbl.c[key_column(name)].not_in(list(keep)))
                deleted += local.execute(stmt).rowcount
            for name in SYNCED_TABLES:
                # Bulk load: a non-unique index built once after the rows is several times
                # faster than one updated row by row.
                indexes = local.execute(text(
                    "SELECT name, sql FROM sqlite_master WHERE type = 'index' "
                    "AND tbl_name = :t AND sql IS NOT NULL AND sql NOT LIKE 'CREATE UNIQUE%'"),
                    {"t": name}).all()
                for index_name, _ in indexes:
                    local.exec_driver_sql(f'DROP INDEX "{index_name}"')
                written = _copy_table(server, local,
                                      _Shape(table(name), server.dialect.name, operator),
                                      protected.get(name, set()))
                for _, index_sql in indexes:
                    local.exec_driver_sql(index_sql)
                applied += written
                if written:
                    counts[name] = written
            journal.forget_rejected_rows(local)
            _save_cursor(local, cursor, snapshot=True)
    return PullReport(applied=applied, deleted=deleted, tables=counts,
                      kinds=kinds_for(SYNCED_TABLES), cursor=cursor, snapshot=True, more=False)


# -- incremental round ----------------------------------------------------------------------


def _scope_changed(replica: Engine, operator: Operator) -> bool:
    """Whether the operator's role or unit differs from the replica's copy of their member
    row (then the replica's rows were chosen by another scope: take a fresh snapshot)."""
    member = table("member")
    with replica.connect() as connection:
        row = connection.execute(select(member.c.role, member.c.unit_id)
                                 .where(member.c.id == operator.member_id)).first()
    return row is None or row.role != operator.role.name or row.unit_id != operator.unit_id


def _group(changes: Iterable[Change]) -> dict[str, list[uuid.UUID]]:
    ids: dict[str, dict[uuid.UUID, None]] = {}
    for change in changes:
        if change.table_name in SYNCED_TABLES:
            ids.setdefault(change.table_name, {})[change.row_id] = None
    return {name: list(found) for name, found in ids.items()}


def _has_applied_commands(replica: Engine) -> bool:
    with replica.connect() as connection:
        return connection.execute(select(SYNC_COMMAND.c.id).where(
            SYNC_COMMAND.c.state == SyncCommandState.APPLIED.value).limit(1)
        ).first() is not None


def pull_round(remote: Engine, replica: Engine, *, limit: int = 5000) -> PullReport:
    """One incremental batch: the log after the cursor (up to `limit` entries), the current
    rows of those ids, and the cursor, applied in one local transaction. A replica without a
    snapshot, or whose cursor the server no longer knows, takes a snapshot instead."""
    state = _state(replica)
    if not state.snapshot_done or not state.cursor:
        return snapshot(remote, replica)
    with replica.connect() as local:
        refetch = journal.refetch_rows(local)
    try:
        with _server_snapshot(remote) as server:
            changes, cursor = capture.read_changes(server, state.cursor, limit)
            ids = _group(changes)
            with replica.connect() as local:
                # Rows of commands the cursor now passes: this snapshot holds their change.
                confirmed = _confirmable_rows(local, cursor)
            for name, extra in [*refetch.items(), *confirmed.items()]:
                merged = dict.fromkeys(ids.get(name, []))
                merged.update(dict.fromkeys(extra))
                ids[name] = list(merged)
            rows_by_table: dict[str, list[tuple[Any, ...]]] = {}
            shapes: dict[str, _Shape] = {}
            if ids:
                operator = _operator(server, state.operator_id)
                if operator.member_id in ids.get("member", []) \
                        and _scope_changed(replica, operator):
                    raise _Rescope
                shapes = {name: _Shape(table(name), server.dialect.name, operator)
                          for name in SYNCED_TABLES}
                with replica.connect() as local:
                    former = _former_parents(local, shapes, ids)
                    if "invitation" in ids:
                        for name, extra in _unnamed_parents(local, operator).items():
                            former.setdefault(name, set()).update(extra)
                for name, extra in former.items():
                    merged = dict.fromkeys(ids.get(name, []))
                    merged.update(dict.fromkeys(extra))
                    ids[name] = list(merged)
                for name in SYNCED_TABLES:
                    if name in ids:
                        rows_by_table[name] = _fetch(server, shapes[name], ids[name])
                with replica.connect() as local:
                    missing = _missing_locally(local, _references(shapes, rows_by_table))
                for name, absent in missing.items():
                    shape = shapes[name]
                    known = {r[shape.key_at] for r in rows_by_table.get(name, [])}
                    absent = [i for i in absent if i.hex not in known]
                    if absent:
                        rows_by_table.setdefault(name, []).extend(_fetch(server, shape, absent))
    except (CursorExpired, _Rescope):
        return snapshot(remote, replica)
    more = len(changes) >= limit
    if not ids and not _has_applied_commands(replica):
        # Idle: nothing to write. The cursor's `done` bound may have moved on (PostgreSQL);
        # not saving it only means reading that empty range again next time.
        return PullReport(cursor=cursor, more=more)
    counts: dict[str, int] = {}
    applied = deleted = 0
    with _replica_transaction(replica) as local:
        _confirm(local, cursor)
        protected = journal.protected_rows(local)
        for name in reversed(SYNCED_TABLES):  # children first
            if name not in ids:
                continue
            keep = {k.hex for k in protected.get(name, set())}
            at = shapes[name].key_at
            returned = {r[at] for r in rows_by_table.get(name, [])}
            gone = [k for k in (i.hex for i in ids[name]) if k not in returned and k not in keep]
            if gone:
                removed = _delete_rows(local, name, gone)
                deleted += removed
                if removed:
                    counts[name] = counts.get(name, 0) + removed
        for name in SYNCED_TABLES:
            rows = rows_by_table.get(name)
            if not rows:
                continue
            keep = {k.hex for k in protected.get(name, set())}
            at = shapes[name].key_at
            rows = [r for r in rows if r[at] not in keep]
            if rows:
                _write_rows(local, shapes[name], rows)
                applied += len(rows)
                counts[name] = counts.get(name, 0) + len(rows)
        if refetch:
            journal.forget_rejected_rows(local)
        _save_cursor(local, cursor)
    return PullReport(applied=applied, deleted=deleted, tables=counts,
                      kinds=kinds_for(counts), cursor=cursor, snapshot=False, more=more)


class _Rescope(Exception):
    """The operator's role or unit changed on the server: their replica needs a new scope."""
