"""The server's change log (issue 12): capture triggers on PostgreSQL and MariaDB, read in
commit order, so that a transaction committing after a later one was read is not lost."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Connection, Engine, text

from invite_desk.services import auth, db
from invite_desk.services.models import Unit
from invite_desk.services.sync import capture
from invite_desk.services.sync.capture import Change, CursorExpired
from invite_desk.services.sync.tables import SYNCED_TABLES
from invite_desk.services.uow import UnitOfWork


@pytest.fixture
def server(server_engine: Engine) -> Iterator[Engine]:
    db.upgrade_to_head(server_engine)
    yield server_engine


def _org(engine: Engine) -> uuid.UUID:
    op = auth.setup_organization(
        UnitOfWork(engine), organization_name="Harbour Rowing Club", description="",
        admin_email="ada@example.org", admin_first_name="Ada", admin_last_name="Admin",
        password="correct horse battery", registration_base_url="https://join.example.org")
    return op.organization_id


def _start(engine: Engine) -> str:
    with engine.connect() as connection:
        connection = connection.execution_options(isolation_level="REPEATABLE READ")
        with connection.begin():
            return capture.snapshot_position(connection)


def _read(engine: Engine, cursor: str, limit: int = 10_000) -> tuple[list[Change], str]:
    with engine.connect() as connection:
        connection = connection.execution_options(isolation_level="REPEATABLE READ")
        with connection.begin():
            return capture.read_changes(connection, cursor, limit)


def _catch_up(engine: Engine, cursor: str, limit: int = 10_000) -> tuple[list[Change], str]:
    """Read until every transaction committed before the call is read (on PostgreSQL a
    transaction open anywhere on the server, even in another database, holds readers back
    until it ends)."""
    with engine.connect() as connection:
        now = capture.current_position(connection)
    changes: list[Change] = []
    deadline = time.monotonic() + 30
    while True:
        batch, cursor = _read(engine, cursor, limit)
        changes += batch
        if capture.passed(cursor, now):
            return changes, cursor
        assert time.monotonic() < deadline, "the reader never caught up"
        if not batch:
            time.sleep(0.05)


def _add_unit(connection: Connection, org: uuid.UUID, name: str) -> uuid.UUID:
    unit_id = uuid.uuid4()
    now = datetime.now(UTC)
    connection.execute(Unit.__table__.insert().values(
        id=unit_id, organization_id=org, name=name, archived=False, version=1,
        created_at=now, updated_at=now))
    return unit_id


def test_every_synced_table_is_captured_insert_update_delete(server: Engine) -> None:
    cursor = _start(server)
    org = _org(server)
    changes, cursor = _catch_up(server, cursor)
    tables = {c.table_name for c in changes}
    assert {"organization", "member", "audit_log"} <= tables
    assert all(c.op == "I" for c in changes)
    with server.begin() as connection:
        unit = _add_unit(connection, org, "North")
    with server.begin() as connection:
        connection.execute(text("UPDATE unit SET name = 'South' WHERE name = 'North'"))
    with server.begin() as connection:
        connection.execute(text("UPDATE unit SET name = 'South' WHERE name = 'South'"))
        connection.execute(text("DELETE FROM unit WHERE name = 'South'"))
    changes, cursor = _catch_up(server, cursor)
    assert [(c.table_name, c.row_id, c.op) for c in changes] == [
        ("unit", unit, "I"), ("unit", unit, "U"), ("unit", unit, "D")]
    assert _read(server, cursor)[0] == []  # nothing more
    # Every synced table has its triggers, and installing again is harmless.
    with server.begin() as connection:
        capture.install_capture(connection)
        if server.dialect.name == "postgresql":
            names = {r[0] for r in connection.execute(text(
                "SELECT event_object_table FROM information_schema.triggers "
                "WHERE trigger_name LIKE 'sync_capture%'"))}
        else:
            names = {r[0] for r in connection.execute(text(
                "SELECT event_object_table FROM information_schema.triggers "
                "WHERE trigger_schema = DATABASE() AND trigger_name LIKE 'sync\\_%'"))}
    assert names == set(SYNCED_TABLES)


def test_rolled_back_writes_leave_nothing(server: Engine) -> None:
    org = _org(server)
    cursor = _start(server)
    with server.connect() as connection:
        with connection.begin() as tx:
            _add_unit(connection, org, "Ghost")
            tx.rollback()
        with connection.begin():  # the same connection commits something else
            unit = _add_unit(connection, org, "Real")
    changes, _ = _catch_up(server, cursor)
    # (On PostgreSQL the organization's own entries may come too: another database's open
    # transaction can hold the start position back.)
    assert [(c.row_id, c.op) for c in changes if c.table_name == "unit"] == [(unit, "I")]


def test_a_change_committed_out_of_order_reaches_the_reader(server: Engine) -> None:
    """THE case of issue 12: transaction A writes first, B writes later and commits; a reader
    reads (and moves its cursor past B); then A commits. A's change must still be read."""
    org = _org(server)
    cursor = _start(server)
    with server.connect() as a, server.connect() as b:
        tx_a = a.begin()
        first = _add_unit(a, org, "Written first")
        with b.begin():
            second = _add_unit(b, org, "Committed first")
        changes, cursor = _read(server, cursor)
        read_ids = [c.row_id for c in changes if c.table_name == "unit"]
        # PostgreSQL holds B back until A ends (A is below its xmin); MariaDB reads B now.
        assert first not in read_ids
        tx_a.commit()
    changes, cursor = _catch_up(server, cursor)
    read_ids += [c.row_id for c in changes if c.table_name == "unit"]
    assert sorted(map(str, read_ids)) == sorted(map(str, [first, second]))
    assert _read(server, cursor)[0] == []


def test_checkpoints_pass_once_the_reader_has_read_the_transaction(server: Engine) -> None:
    org = _org(server)
    cursor = _start(server)
    with server.connect() as writer:
        with writer.begin():
            _add_unit(writer, org, "Checked")
            checkpoint = capture.transaction_checkpoint(writer)
        if not checkpoint:  # MariaDB: known only after the commit
            with writer.begin():
                checkpoint = capture.current_position(writer)
    assert checkpoint
    assert not capture.passed(cursor, checkpoint)
    _, cursor = _catch_up(server, cursor)  # passes `now`, taken after the commit
    assert capture.passed(cursor, checkpoint)
    assert not capture.passed("", checkpoint)


def test_a_batch_cut_by_the_limit_resumes_where_it_stopped(server: Engine) -> None:
    org = _org(server)
    cursor = _start(server)
    with server.begin() as connection:
        ids = [_add_unit(connection, org, f"Unit {n}") for n in range(7)]
        checkpoint = capture.transaction_checkpoint(connection)
    if not checkpoint:
        with server.connect() as connection:
            checkpoint = capture.current_position(connection)
    seen: list[uuid.UUID] = []
    deadline = time.monotonic() + 30
    while not capture.passed(cursor, checkpoint):
        changes, cursor = _read(server, cursor, limit=3)
        if changes and len(seen) + len(changes) < len(ids):
            assert not capture.passed(cursor, checkpoint)  # the transaction is half read
        seen += [c.row_id for c in changes if c.table_name == "unit"]
        assert time.monotonic() < deadline
        if not changes:
            time.sleep(0.05)
    assert seen == ids


def test_pruning_drops_old_entries_and_expires_cursors_behind_it(server: Engine) -> None:
    org = _org(server)
    old = _start(server)
    with server.begin() as connection:
        _add_unit(connection, org, "Old")
    _, current = _catch_up(server, old)
    with server.begin() as connection:
        assert capture.prune(connection, datetime.now(UTC) + timedelta(seconds=1)) > 0
        assert connection.execute(text("SELECT count(*) FROM sync_change")).scalar() == 0
        assert capture.prune(connection, datetime.now(UTC)) == 0
    with pytest.raises(CursorExpired):
        _read(server, old)
    with server.begin() as connection:
        unit = _add_unit(connection, org, "New")
    changes, _ = _catch_up(server, current)
    assert [c.row_id for c in changes] == [unit]


@pytest.mark.slow
def test_concurrent_writers_lose_nothing(server: Engine) -> None:
    """Several writers commit for a few seconds (each transaction a few rows, with jittered
    commit times) while a reader reads in a loop: every change is read, none twice."""
    org = _org(server)
    cursor = _start(server)
    stop = time.monotonic() + 3.0
    written: list[uuid.UUID] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            k = 0
            while time.monotonic() < stop:
                with server.begin() as connection:
                    mine = [_add_unit(connection, org, f"w{n}-{k}-{j}") for j in range(3)]
                    time.sleep(0.001 * ((n + k) % 4))  # hold the transaction a little
                k += 1
                with lock:
                    written.extend(mine)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    read: list[uuid.UUID] = []
    while any(t.is_alive() for t in threads):
        changes, cursor = _read(server, cursor, limit=50)
        read += [c.row_id for c in changes if c.table_name == "unit"]
    for thread in threads:
        thread.join()
    changes, cursor = _catch_up(server, cursor, limit=500)
    read += [c.row_id for c in changes if c.table_name == "unit"]
    assert not errors
    assert len(written) > 100
    assert len(read) == len(set(read))  # none twice
    assert set(read) == set(written)  # none lost


def test_writes_committed_without_the_hook_are_adopted(server: Engine) -> None:
    """A tool outside Invite Desk (no db.make_engine, so no MariaDB commit hook) writes twice
    on one session: its entries have no marker until adopt_foreign_writes gives them one;
    PostgreSQL needs no hook at all."""
    from sqlalchemy import create_engine
    from sqlalchemy.pool import StaticPool

    org = _org(server)
    _, cursor = _catch_up(server, _start(server))
    foreign = create_engine(server.url, poolclass=StaticPool)  # one session, no hook
    try:
        with foreign.begin() as connection:
            first = _add_unit(connection, org, "Typed in a console")
        mariadb = server.dialect.name != "postgresql"
        if mariadb:
            assert _catch_up(server, cursor)[0] == []  # no marker: not read yet
            assert capture.adopt_foreign_writes(server) == 1
        changes, cursor = _catch_up(server, cursor)
        assert [c.row_id for c in changes] == [first]
        with foreign.begin() as connection:  # the same session, its old token
            second = _add_unit(connection, org, "Typed again")
        if mariadb:
            with server.begin() as connection:  # pruning adopts too
                capture.prune(connection, datetime(2000, 1, 1, tzinfo=UTC))
        else:
            assert capture.adopt_foreign_writes(server) == 0
        changes, cursor = _catch_up(server, cursor)
        assert [c.row_id for c in changes] == [second]
        assert capture.adopt_foreign_writes(server) == 0  # nothing left
    finally:
        foreign.dispose()
