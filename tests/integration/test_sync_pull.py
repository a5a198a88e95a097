"""Pull (issue 12): a replica's snapshot and incremental rounds against real PostgreSQL and
MariaDB servers: equality with the server, updates and deletes, scope per role, redaction,
resuming after a fault, idempotency, and rows with local changes not yet confirmed."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, delete, insert, select, text, update
from sqlalchemy.exc import DBAPIError

from invite_desk.services import auth, db
from invite_desk.services.models import (
    Base,
    Event,
    Invitation,
    InvitationStatus,
    Member,
    Referral,
    Setting,
    Suppression,
    SyncCommandState,
    Unit,
    new_id,
    utcnow,
)
from invite_desk.services.operator import Operator
from invite_desk.services.roles import Role
from invite_desk.services.sync import capture, pull
from invite_desk.services.sync.tables import SYNCED_TABLES, key_column, scope_condition
from invite_desk.services.uow import UnitOfWork
from tests.tracking_data import Seeder

S = InvitationStatus
SYNC_STATE = Base.metadata.tables["sync_state"]
LOCAL_CHANGE = Base.metadata.tables["local_change"]
SYNC_COMMAND = Base.metadata.tables["sync_command"]
INVITATION = Base.metadata.tables["invitation"]


@dataclass
class Org:
    admin: Operator
    north: uuid.UUID
    south: uuid.UUID
    local: Operator  # HR_LOCAL of north
    user: Operator  # a USER of south
    south_admin: Operator  # ADMIN_LOCAL of south
    seeder: Seeder
    invitations: dict[str, uuid.UUID]


@pytest.fixture
def server(server_engine: Engine) -> Iterator[Engine]:
    db.upgrade_to_head(server_engine)
    yield server_engine


def _org(server: Engine) -> Org:
    uow = UnitOfWork(server)
    admin = auth.setup_organization(
        uow, organization_name="Harbour Rowing Club", description="",
        admin_email="ada@example.org", admin_first_name="Ada", admin_last_name="Admin",
        password="correct horse battery", registration_base_url="https://join.example.org")
    seeder = Seeder(uow, admin.organization_id)
    north, south = seeder.unit("North"), seeder.unit("South")
    local = seeder.member("Lena", "Local", role=Role.HR_LOCAL, unit_id=north)
    user = seeder.member("Uma", "User", role=Role.USER, unit_id=south)
    south_admin = seeder.member("Sam", "South", role=Role.ADMIN_LOCAL, unit_id=south)
    seeder.member("Nils", "North", unit_id=north)
    event = seeder.event("Regatta")
    batch = seeder.batch(admin.member_id, "Spring")
    inv = {
        "north_by_admin": seeder.add(S.SENT, inviter=admin.member_id, unit_id=north,
                                     batch_id=batch, token=True).id,
        "south_by_admin": seeder.add(S.QUEUED, inviter=admin.member_id, unit_id=south).id,
        "by_user": seeder.add(S.SENT, inviter=user.member_id, unit_id=south,
                              event_id=event).id,
        "by_local": seeder.add(S.DRAFT, inviter=local.member_id, unit_id=None).id,
        "accepted": seeder.add(S.ACCEPTED, inviter=south_admin.member_id, unit_id=south).id,
    }
    with uow:
        uow.session.add(Suppression(organization_id=admin.organization_id,
                                    address="gone@example.net",
                                    address_normalized="gone@example.net", reason="manual"))
        uow.session.add(Setting(organization_id=admin.organization_id, key="sync.test",
                                value_json='"x"'))
        member = uow.session.get(Member, user.member_id)
        assert member is not None
        member.password_hash = auth.hash_password("a long enough password")
        uow.commit()
    return Org(admin, north, south, local, user, south_admin, seeder, inv)


def _replica(tmp_path: Path, operator: Operator, name: str = "replica") -> Engine:
    engine = db.make_engine(f"sqlite:///{tmp_path / (name + '.sqlite3')}")
    db.upgrade_to_head(engine)
    with engine.begin() as connection:
        connection.execute(insert(SYNC_STATE).values(
            id=1, replica_id=uuid.uuid4(), remote_label="test", operator_id=operator.member_id,
            cursor="", snapshot_done=False, last_error=""))
    return engine


@pytest.fixture
def replicas(tmp_path: Path) -> Iterator[list[Engine]]:
    made: list[Engine] = []
    yield made
    for engine in made:
        engine.dispose()


def _rows(connection: Connection, name: str, where: Any = None) -> dict[uuid.UUID, dict[str, Any]]:
    tbl = Base.metadata.tables[name]
    stmt = select(tbl) if where is None else select(tbl).where(where)
    return {row[key_column(name)]: dict(row) for row in connection.execute(stmt).mappings()}


def _assert_mirrors(server: Engine, replica: Engine, operator: Operator) -> None:
    """The replica holds exactly the server's in-scope rows, secrets redacted."""
    with server.connect() as remote, replica.connect() as local:
        for name in SYNCED_TABLES:
            tbl = Base.metadata.tables[name]
            expected = _rows(remote, name, scope_condition(tbl, operator))
            got = _rows(local, name)
            for row in expected.values():
                if name == "member" and row["id"] != operator.member_id:
                    row["password_hash"] = None
                if name == "pending_registration":
                    row["password_hash"] = None
            assert set(got) == set(expected), name
            for key, row in expected.items():
                assert got[key] == row, (name, key)


def _cursor(replica: Engine) -> str:
    with replica.connect() as connection:
        return str(connection.execute(select(SYNC_STATE.c.cursor)).scalar_one())


def _local_ids(replica: Engine, name: str) -> set[uuid.UUID]:
    with replica.connect() as connection:
        return set(_rows(connection, name))


def _pull_all(server: Engine, replica: Engine, limit: int = 5000) -> pull.PullReport:
    """Rounds until the replica has read every transaction committed before the call (on
    PostgreSQL a transaction still open anywhere on the server, even another database's,
    holds the reader back until it ends); the rounds' reports added up."""
    with server.connect() as connection:
        now = capture.current_position(connection)
    deadline = time.monotonic() + 30
    applied = deleted = 0
    tables: dict[str, int] = {}
    kinds: frozenset[str] = frozenset()
    snapshot = False
    while True:
        report = pull.pull_round(server, replica, limit=limit)
        applied, deleted = applied + report.applied, deleted + report.deleted
        for name, count in report.tables.items():
            tables[name] = tables.get(name, 0) + count
        kinds |= report.kinds
        snapshot = snapshot or report.snapshot
        if not report.more and capture.passed(report.cursor, now):
            return pull.PullReport(applied, deleted, tables, kinds, report.cursor, snapshot)
        assert time.monotonic() < deadline, "the replica never caught up"
        if not report.more:
            time.sleep(0.05)


# -- snapshot and incremental rounds ----------------------------------------------------------


def test_snapshot_then_rounds_mirror_the_server(server: Engine, tmp_path: Path,
                                                replicas: list[Engine]) -> None:
    org = _org(server)
    replica = _replica(tmp_path, org.admin)
    replicas.append(replica)
    first = _pull_all(server, replica)  # no snapshot yet: takes one
    assert first.snapshot and first.applied > 10 and not first.more
    assert {"invitations", "members", "settings", "suppression"} <= first.kinds
    _assert_mirrors(server, replica, org.admin)
    with replica.connect() as local:
        hashes = dict(local.execute(select(Member.id, Member.password_hash)).all())
    assert hashes[org.admin.member_id]  # one's own, for signing in offline
    assert hashes[org.user.member_id] is None  # nobody else's

    # Updates, deletes and inserts of every kind, by ORM and by plain SQL.
    uow = UnitOfWork(server)
    with uow:
        row = uow.session.get(Invitation, org.invitations["south_by_admin"])
        assert row is not None
        row.status = S.REVOKED.value
        row.revoked_at = utcnow()
        uow.commit()
    with server.begin() as connection:
        connection.execute(delete(INVITATION).where(
            INVITATION.c.id == org.invitations["by_local"]))
        connection.execute(update(Base.metadata.tables["unit"]).where(
            Base.metadata.tables["unit"].c.id == org.north).values(name="Northwest"))
    added = org.seeder.add(S.QUEUED, inviter=org.admin.member_id, unit_id=org.north).id
    report = _pull_all(server, replica)
    assert not report.snapshot and not report.more
    assert report.tables.get("invitation") == 3  # 2 written + 1 deleted
    assert report.deleted == 1
    assert {"invitations", "settings"} <= report.kinds
    _assert_mirrors(server, replica, org.admin)
    assert added in _local_ids(replica, "invitation")
    assert org.invitations["by_local"] not in _local_ids(replica, "invitation")

    # An idle round reads one indexed query and writes nothing.
    cursor = _cursor(replica)
    idle = pull.pull_round(server, replica)
    assert idle.applied == idle.deleted == 0 and not idle.kinds and not idle.snapshot
    assert _cursor(replica) == cursor
    started = time.perf_counter()
    for _ in range(20):
        pull.pull_round(server, replica)
    per_round = (time.perf_counter() - started) / 20
    print(f"idle round on {server.dialect.name}: {per_round * 1000:.1f} ms")
    assert per_round < 0.1


def test_a_transaction_committed_out_of_order_reaches_the_replica(
        server: Engine, tmp_path: Path, replicas: list[Engine]) -> None:
    org = _org(server)
    replica = _replica(tmp_path, org.admin)
    replicas.append(replica)
    pull.snapshot(server, replica)
    unit = Base.metadata.tables["unit"]
    with server.connect() as slow:
        tx = slow.begin()
        first = new_id()
        now = datetime.now(UTC)
        slow.execute(insert(unit).values(id=first, organization_id=org.admin.organization_id,
                                         name="Written first", archived=False, version=1,
                                         created_at=now, updated_at=now))
        later = org.seeder.unit("Committed first")
        pull.pull_round(server, replica)
        assert first not in _local_ids(replica, "unit")
        tx.commit()
    _pull_all(server, replica)
    assert {first, later} <= _local_ids(replica, "unit")
    _assert_mirrors(server, replica, org.admin)


def test_batches_cut_by_the_limit_converge(server: Engine, tmp_path: Path,
                                           replicas: list[Engine],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    org = _org(server)
    replica = _replica(tmp_path, org.admin)
    replicas.append(replica)
    pull.snapshot(server, replica)
    for n in range(12):
        org.seeder.add(S.QUEUED, inviter=org.admin.member_id, unit_id=org.south,
                       email=f"cut{n}@example.net")
    batches: list[int] = []
    real = capture.read_changes

    def counting(connection: Connection, cursor: str, limit: int) -> Any:
        changes, after = real(connection, cursor, limit)
        batches.append(len(changes))
        return changes, after

    monkeypatch.setattr(capture, "read_changes", counting)
    report = _pull_all(server, replica, limit=5)
    assert batches.count(5) >= 2 and sum(batches) >= 12
    assert report.tables["invitation"] >= 12  # (rows the snapshot had may come again)
    _assert_mirrors(server, replica, org.admin)


def _until_raises(server: Engine, replica: Engine) -> None:
    """Pull rounds until one raises (on PostgreSQL a round may find nothing to read yet while
    another database's transaction holds the snapshot xmin back)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        pull.pull_round(server, replica)
        time.sleep(0.05)


# -- scope --------------------------------------------------------------------------------


def test_a_local_role_gets_its_unit_and_a_user_only_their_own(
        server: Engine, tmp_path: Path, replicas: list[Engine]) -> None:
    org = _org(server)
    nora = org.seeder.member("Nora", "North", unit_id=org.north)
    uow = UnitOfWork(server)
    with uow:
        referrals = {
            "by_user": Referral(organization_id=org.admin.organization_id,
                                referrer_id=org.user.member_id, referee_id=nora.member_id),
            "by_local": Referral(organization_id=org.admin.organization_id,
                                 referrer_id=org.local.member_id,
                                 referee_id=org.south_admin.member_id),
            "by_admin": Referral(organization_id=org.admin.organization_id,
                                 referrer_id=org.admin.member_id,
                                 referee_id=org.south_admin.member_id),
        }
        uow.session.add_all(referrals.values())
        uow.session.add(Event(organization_id=org.admin.organization_id, name="South picnic",
                              unit_id=org.south))
        uow.commit()
    local = _replica(tmp_path, org.local, "local")
    user = _replica(tmp_path, org.user, "user")
    replicas += [local, user]
    pull.snapshot(server, local)
    pull.snapshot(server, user)
    _assert_mirrors(server, local, org.local)
    _assert_mirrors(server, user, org.user)
    inv = org.invitations
    assert _local_ids(local, "invitation") == {inv["north_by_admin"], inv["by_local"]}
    assert _local_ids(user, "invitation") == {inv["by_user"]}
    # The local role sees its unit's members and the people named on its invitations; the
    # USER only themselves.
    local_members = _local_ids(local, "member")
    assert {org.local.member_id, org.admin.member_id} <= local_members
    assert org.user.member_id not in local_members and org.south_admin.member_id not in local_members
    assert _local_ids(user, "member") == {org.user.member_id}
    with user.connect() as connection:
        own = connection.execute(select(Member.password_hash)).scalar_one()
    assert own  # their own hash travels
    assert _local_ids(user, "suppression")  # the outbox needs the whole list
    assert not _local_ids(user, "batch")
    assert _local_ids(user, "referral") == {referrals["by_user"].id}
    # The local role: its unit's referrers (itself), not the admin's referral.
    assert _local_ids(local, "referral") == {referrals["by_local"].id}
    with local.connect() as connection:
        events = set(connection.execute(select(Event.name)).scalars())
        audit_actors = set(connection.execute(
            select(Base.metadata.tables["audit_log"].c.actor_id)).scalars())
    assert events == {"Regatta"}  # no unit: everyone's; South picnic is another unit's
    assert audit_actors <= {org.local.member_id, None}

    # An invitation moving into and out of the unit follows on the next round.
    with server.begin() as connection:
        connection.execute(update(INVITATION).where(
            INVITATION.c.id == inv["north_by_admin"]).values(unit_id=org.south))
        connection.execute(update(INVITATION).where(
            INVITATION.c.id == inv["accepted"]).values(unit_id=org.north))
    report = _pull_all(server, local)
    assert report.deleted >= 1
    got = _local_ids(local, "invitation")
    assert inv["north_by_admin"] not in got and inv["accepted"] in got
    # ...and the person who sent it came along, to show their name.
    assert org.south_admin.member_id in _local_ids(local, "member")

    # Promoted to the whole organization: the replica takes a fresh snapshot in that scope.
    with server.begin() as connection:
        connection.execute(update(Base.metadata.tables["member"]).where(
            Base.metadata.tables["member"].c.id == org.user.member_id).values(
                role=Role.HR_TENANT.name))
    report = _pull_all(server, user)
    assert report.snapshot
    assert _local_ids(user, "invitation") == set(inv.values())


# -- faults and idempotency -----------------------------------------------------------------


def test_a_fault_inside_the_apply_keeps_the_cursor_and_a_rerun_converges(
        server: Engine, tmp_path: Path, replicas: list[Engine],
        monkeypatch: pytest.MonkeyPatch) -> None:
    org = _org(server)
    replica = _replica(tmp_path, org.admin)
    replicas.append(replica)
    pull.snapshot(server, replica)
    before = _cursor(replica)
    org.seeder.add(S.QUEUED, inviter=org.admin.member_id, unit_id=org.north)
    org.seeder.member("New", "Member", unit_id=org.south)
    real = pull._write_rows
    calls = {"n": 0}

    def failing(connection: Connection, tbl: Any, rows: Any) -> None:
        calls["n"] += 1
        real(connection, tbl, rows)
        if calls["n"] == 2:  # after the first table was written
            raise RuntimeError("disk unplugged")

    monkeypatch.setattr(pull, "_write_rows", failing)
    with pytest.raises(RuntimeError):
        _until_raises(server, replica)
    assert _cursor(replica) == before  # nothing of the round was kept
    with replica.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM sync_applying")).scalar() == 0
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    monkeypatch.setattr(pull, "_write_rows", real)
    _pull_all(server, replica)
    _assert_mirrors(server, replica, org.admin)


def test_a_connection_killed_mid_round_resumes(server: Engine, tmp_path: Path,
                                               replicas: list[Engine],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    org = _org(server)
    replica = _replica(tmp_path, org.admin)
    replicas.append(replica)
    pull.snapshot(server, replica)
    before = _cursor(replica)
    org.seeder.add(S.QUEUED, inviter=org.admin.member_id, unit_id=org.north)
    real = pull._fetch

    def killing(connection: Connection, *args: Any) -> Any:
        monkeypatch.setattr(pull, "_fetch", real)
        if server.dialect.name == "postgresql":
            pid = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
            with server.connect() as killer:
                killer.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        else:
            pid = connection.execute(text("SELECT CONNECTION_ID()")).scalar_one()
            with server.connect() as killer:
                killer.exec_driver_sql(f"KILL {int(pid)}")
        return real(connection, *args)

    monkeypatch.setattr(pull, "_fetch", killing)
    with pytest.raises(DBAPIError):
        _until_raises(server, replica)
    assert _cursor(replica) == before
    _pull_all(server, replica)
    _assert_mirrors(server, replica, org.admin)


def test_applying_the_same_batch_twice_changes_nothing(server: Engine, tmp_path: Path,
                                                       replicas: list[Engine]) -> None:
    org = _org(server)
    replica = _replica(tmp_path, org.admin)
    replicas.append(replica)
    pull.snapshot(server, replica)
    before = _cursor(replica)
    org.seeder.add(S.SENT, inviter=org.admin.member_id, unit_id=org.north)
    with server.begin() as connection:
        connection.execute(delete(INVITATION).where(
            INVITATION.c.id == org.invitations["by_local"]))
    _pull_all(server, replica)

    def dump() -> dict[str, Any]:
        with replica.connect() as connection:
            return {name: _rows(connection, name) for name in SYNCED_TABLES}

    once = dump()
    with replica.begin() as connection:  # as if the cursor had not been saved
        connection.execute(update(SYNC_STATE).values(cursor=before))
    _pull_all(server, replica)
    assert dump() == once
    pull.snapshot(server, replica)  # a snapshot over a full replica: the same rows
    assert dump() == once
    _assert_mirrors(server, replica, org.admin)


# -- rows with local changes -----------------------------------------------------------------


def _local_edit(replica: Engine, row_id: uuid.UUID, state: SyncCommandState,
                checkpoint: str = "") -> uuid.UUID:
    """What the journal and push leave behind: a local edit of an invitation's name, in a
    command of `state`."""
    command_id = uuid.uuid4()
    with replica.begin() as connection:
        connection.execute(insert(Base.metadata.tables["sync_applying"]).values(id=1))
        connection.execute(update(INVITATION).where(INVITATION.c.id == row_id)
                           .values(name="Edited offline"))
        connection.execute(delete(Base.metadata.tables["sync_applying"]))
        connection.execute(insert(SYNC_COMMAND).values(
            id=command_id, seq=int(connection.execute(
                text("SELECT coalesce(max(seq), 0) + 1 FROM sync_command")).scalar_one()),
            kind="edit", operator_id=None, summary="", created_at=utcnow(), state=state.value,
            reason="", checkpoint=checkpoint))
        connection.execute(insert(LOCAL_CHANGE).values(
            table_name="invitation", row_id=row_id, op="U", columns="name", base_version=1,
            command_id=command_id))
    return command_id


def _name(engine: Engine, row_id: uuid.UUID) -> str:
    with engine.connect() as connection:
        return str(connection.execute(select(INVITATION.c.name).where(
            INVITATION.c.id == row_id)).scalar_one())


def _state(replica: Engine, command_id: uuid.UUID) -> str:
    with replica.connect() as connection:
        return str(connection.execute(select(SYNC_COMMAND.c.state).where(
            SYNC_COMMAND.c.id == command_id)).scalar_one())


def test_rows_with_unconfirmed_local_changes_are_not_overwritten(
        server: Engine, tmp_path: Path, replicas: list[Engine]) -> None:
    org = _org(server)
    replica = _replica(tmp_path, org.admin)
    replicas.append(replica)
    pull.snapshot(server, replica)
    pending_row = org.invitations["north_by_admin"]
    applied_row = org.invitations["south_by_admin"]
    rejected_row = org.invitations["accepted"]
    pending = _local_edit(replica, pending_row, SyncCommandState.PENDING)
    rejected = _local_edit(replica, rejected_row, SyncCommandState.REJECTED)
    # The server changes the pending row meanwhile; push applies the other one on the
    # server and records the checkpoint of that transaction.
    with server.begin() as connection:
        connection.execute(update(INVITATION).where(INVITATION.c.id == pending_row)
                           .values(name="Server's name"))
    with server.begin() as connection:
        connection.execute(update(INVITATION).where(INVITATION.c.id == applied_row)
                           .values(name="Edited offline"))
        checkpoint = capture.transaction_checkpoint(connection)
    if not checkpoint:
        with server.connect() as connection:
            checkpoint = capture.current_position(connection)
    applied = _local_edit(replica, applied_row, SyncCommandState.APPLIED, checkpoint)
    # The snapshot's own row for `applied_row` arrives while protected: kept as it was.
    assert _name(replica, rejected_row) == "Edited offline"

    _pull_all(server, replica)
    assert _name(replica, pending_row) == "Edited offline"  # not overwritten while pending
    assert _name(replica, rejected_row) == _name(server, rejected_row)  # fetched again
    with replica.connect() as connection:
        assert not connection.execute(select(LOCAL_CHANGE.c.seq).where(
            LOCAL_CHANGE.c.command_id == rejected)).all()
    assert _state(replica, rejected) == SyncCommandState.REJECTED.value  # still shown
    assert _state(replica, applied) == SyncCommandState.CONFIRMED.value
    assert _state(replica, pending) == SyncCommandState.PENDING.value
    # Once the pending command is answered and confirmed, the server's row comes.
    with replica.begin() as connection:
        connection.execute(update(SYNC_COMMAND).where(SYNC_COMMAND.c.id == pending)
                           .values(state=SyncCommandState.CONFIRMED.value))
        connection.execute(delete(LOCAL_CHANGE).where(LOCAL_CHANGE.c.command_id == pending))
    with server.begin() as connection:
        connection.execute(update(INVITATION).where(INVITATION.c.id == pending_row)
                           .values(name="Server's name, again"))
    _pull_all(server, replica)
    _assert_mirrors(server, replica, org.admin)


def test_a_replica_behind_the_pruned_log_takes_a_fresh_snapshot(
        server: Engine, tmp_path: Path, replicas: list[Engine]) -> None:
    org = _org(server)
    replica = _replica(tmp_path, org.admin)
    replicas.append(replica)
    pull.snapshot(server, replica)
    later = org.seeder.add(S.QUEUED, inviter=org.admin.member_id, unit_id=org.north).id
    with server.begin() as connection:
        capture.prune(connection, datetime.now(UTC).replace(year=2100))
    report = _pull_all(server, replica)
    assert report.snapshot
    assert later in _local_ids(replica, "invitation")
    _assert_mirrors(server, replica, org.admin)


def test_unit_and_no_op_updates(server: Engine) -> None:
    """Scope building blocks that the pull leans on: kinds and keys of every table."""
    from invite_desk.services.sync.tables import kinds_for, redacted_columns

    assert kinds_for(["invitation", "member"]) >= {"invitations", "members"}
    assert kinds_for([]) == frozenset()
    assert "password_hash" in redacted_columns("member")
    for name in SYNCED_TABLES:
        assert key_column(name) in Base.metadata.tables[name].c
    assert Unit.__tablename__ in SYNCED_TABLES


@pytest.mark.slow
def test_a_replica_pulling_while_several_writers_commit_ends_equal(
        server: Engine, tmp_path: Path, replicas: list[Engine]) -> None:
    """Writers insert, update and delete invitations for a few seconds (transactions held
    open a little, so they commit out of order) while the replica pulls in a loop, in small
    batches: once caught up, the replica equals the server."""
    import random
    import threading

    org = _org(server)
    replica = _replica(tmp_path, org.admin)
    replicas.append(replica)
    pull.snapshot(server, replica)
    stop = time.monotonic() + 3.0
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        rng = random.Random(n)
        mine: list[uuid.UUID] = []
        try:
            while time.monotonic() < stop:
                now = datetime.now(UTC)
                with server.begin() as connection:
                    row_id = new_id()
                    connection.execute(insert(INVITATION).values(
                        id=row_id, organization_id=org.admin.organization_id,
                        email=f"w{n}-{len(mine)}@example.net",
                        email_normalized=f"w{n}-{len(mine)}@example.net", name="", kind="membership",
                        inviter_id=org.admin.member_id, sender_id=org.admin.member_id,
                        unit_id=rng.choice([org.north, org.south]), status="queued",
                        attempts=0, last_error="", personal_message="", bounce_detail="",
                        soft_bounces=0, version=1, created_at=now, updated_at=now))
                    mine.append(row_id)
                    if len(mine) > 3:
                        connection.execute(update(INVITATION).where(
                            INVITATION.c.id == rng.choice(mine)).values(
                                name=f"renamed {rng.random()}", version=INVITATION.c.version + 1))
                    if len(mine) > 6 and rng.random() < 0.3:
                        gone = mine.pop(rng.randrange(len(mine)))
                        connection.execute(delete(INVITATION).where(INVITATION.c.id == gone))
                    time.sleep(rng.random() * 0.01)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    rounds = 0
    while any(t.is_alive() for t in threads):
        pull.pull_round(server, replica, limit=20)
        rounds += 1
    for thread in threads:
        thread.join()
    assert not errors
    _pull_all(server, replica, limit=20)
    _assert_mirrors(server, replica, org.admin)
    assert rounds > 5
    assert len(_local_ids(replica, "invitation")) > 20
