"""A server database and desktop replicas of it, for the push and conflict tests.

A replica here is what `Replica.open` makes (a SQLite file at head, its sync state, the
journal, then the pull's snapshot of what the operator may see), built from the parts
directly."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, insert, select

from invite_desk.services import auth, db
from invite_desk.services.credentials import MemoryCredentialStore
from invite_desk.services.invitations.preflight import PreflightRow, RowStatus
from invite_desk.services.invitations.queueing import QueuedBatch, queue_invitations
from invite_desk.services.models import (
    Base,
    Member,
    MemberStatus,
    SyncApplied,
    SyncCommand,
    SyncState,
)
from invite_desk.services.operator import Operator
from invite_desk.services.roles import Role
from invite_desk.services.sync import journal, pull
from invite_desk.services.sync.replica import Replica
from invite_desk.services.uow import UnitOfWork
from tests.db_servers import fresh_server_database
from tests.tcp_proxy import TcpProxy, proxied_url, proxy_for

ADMIN_EMAIL = "ada.admin@example.org"
PASSWORD = "correct horse battery"


@dataclass
class SyncWorld:
    """One organization on a server database, and the replicas made of it."""

    server: Engine
    server_uow: UnitOfWork
    admin: Operator
    tmp: Path
    replicas: list[Engine] = field(default_factory=list)

    def member(self, role: Role, email: str, first: str = "", unit_id: uuid.UUID | None = None
               ) -> Operator:
        """A member with `role`, created on the server."""
        with self.server_uow as uow:
            member = Member(organization_id=self.admin.organization_id, email=email,
                            email_normalized=auth.normalize_email(email),
                            first_name=first or role.name.title(), last_name="Tester",
                            role=role.name, unit_id=unit_id, status=MemberStatus.ACTIVE.value)
            uow.session.add(member)
            uow.session.flush()
            operator = auth.operator_for(uow.session, member)
            uow.commit()
            return operator

    def replica(self, operator: Operator) -> Engine:
        """A new replica of the server for `operator`: schema at head, sync state, journal,
        then the snapshot of what the operator may see."""
        path = self.tmp / f"replica-{len(self.replicas)}.sqlite3"
        engine = db.make_engine(f"sqlite:///{path}")
        self.replicas.append(engine)
        db.upgrade_to_head(engine)
        with engine.begin() as connection:
            connection.execute(insert(SyncState.__table__).values(
                id=1, replica_id=uuid.uuid4(), remote_label="test server",
                operator_id=operator.member_id, cursor="", snapshot_done=False,
                last_error=""))
        journal.install_journal(engine)
        pull.snapshot(self.server, engine)
        return engine


@contextmanager
def sync_world(backend: str, tmp: Path) -> Iterator[SyncWorld]:
    with fresh_server_database(backend) as url:
        server = db.make_engine(url)
        try:
            db.upgrade_to_head(server)
            server_uow = UnitOfWork(server)
            admin = auth.setup_organization(
                server_uow, organization_name="Harbour Rowing Club",
                description="A rowing club.", admin_email=ADMIN_EMAIL, admin_first_name="Ada",
                admin_last_name="Admin", password=PASSWORD,
                registration_base_url="https://join.example.org")
            world = SyncWorld(server, server_uow, admin, tmp)
            try:
                yield world
            finally:
                for engine in world.replicas:
                    engine.dispose()
        finally:
            server.dispose()


def push_losing_the_answer(world: SyncWorld, replica: Engine,
                           monkeypatch: pytest.MonkeyPatch) -> None:
    """One push that the server commits and whose answer never reaches the replica (the
    connection dropped after the server's commit): its commands stay pending there."""
    from invite_desk.services.sync import push

    real = push.record_answers

    def cut(*args: Any, **kwargs: Any) -> None:
        raise ConnectionResetError("connection dropped after the server committed")

    monkeypatch.setattr(push, "record_answers", cut)
    with pytest.raises(ConnectionResetError):
        push.push_pending(world.server, replica)
    monkeypatch.setattr(push, "record_answers", real)


def queue(uow: UnitOfWork, operator: Operator, *addresses: str, label: str = "") -> QueuedBatch:
    rows = [PreflightRow(i + 1, a, "", "", RowStatus.READY) for i, a in enumerate(addresses)]
    return queue_invitations(uow, operator, rows, source="paste", label=label)


def rows_of(engine: Engine, table_name: str, /, **where: Any) -> list[dict[str, Any]]:
    table = Base.metadata.tables[table_name]
    stmt = select(table)
    for column, value in where.items():
        stmt = stmt.where(table.c[column] == value)
    with engine.connect() as connection:
        return [dict(r) for r in connection.execute(stmt).mappings()]


def count(engine: Engine, table_name: str, /, **where: Any) -> int:
    table = Base.metadata.tables[table_name]
    stmt = select(func.count()).select_from(table)
    for column, value in where.items():
        stmt = stmt.where(table.c[column] == value)
    with engine.connect() as connection:
        return int(connection.execute(stmt).scalar() or 0)


def commands(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as connection:
        return [dict(r) for r in connection.execute(
            select(SyncCommand.__table__).order_by(SyncCommand.seq)).mappings()]


def answers(server: Engine) -> list[dict[str, Any]]:
    with server.connect() as connection:
        return [dict(r) for r in connection.execute(select(SyncApplied.__table__)).mappings()]


BACKEND_PARAMS = [
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    pytest.param("mariadb", id="mariadb", marks=pytest.mark.mariadb),
]


# The fixtures every sync test file uses (registered in tests/conftest.py's pytest_plugins).


@pytest.fixture(params=BACKEND_PARAMS)
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SyncWorld]:
    """One organization on a throwaway PostgreSQL or MariaDB database."""
    with sync_world(request.param, tmp_path) as made:
        yield made


@pytest.fixture
def proxy(world: SyncWorld) -> Iterator[TcpProxy]:
    """A TCP proxy in front of `world`'s server, to cut and restore the network."""
    started = proxy_for(world.server.url)
    yield started
    started.stop()


@pytest.fixture
def replica(world: SyncWorld, proxy: TcpProxy) -> Iterator[Replica]:
    """The admin's replica of `world`, reaching the server through `proxy`."""
    opened = Replica.open(proxied_url(world.server.url, proxy), ADMIN_EMAIL,
                          MemoryCredentialStore(), password=PASSWORD)
    yield opened
    opened.close()
