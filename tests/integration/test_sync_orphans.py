"""Parents a local operator's replica holds only because a child named them (a batch, the
member who sent an invitation of their unit) leave the replica when their last in-scope child
stops naming them, also when that child was changed on the replica itself (then the pull
never sees the old reference: the replica's copy already names the new parent). Real
PostgreSQL and MariaDB (docs/architecture.md, "Pull")."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

from sqlalchemy import Engine, select

from invite_desk.services.admin.units import create_unit
from invite_desk.services.models import Base, Invitation, SyncCommandState, utcnow
from invite_desk.services.operator import Operator
from invite_desk.services.roles import Role
from invite_desk.services.sync import pull, push
from invite_desk.services.sync.tables import scope_condition
from invite_desk.services.tracking.actions import resend_invitations
from invite_desk.services.uow import UnitOfWork
from tests.sync_push_support import SyncWorld, commands, queue


def _ids(engine: Engine, name: str, operator: Operator | None = None) -> set[uuid.UUID]:
    table = Base.metadata.tables[name]
    stmt = select(table.c.id)
    if operator is not None:
        stmt = stmt.where(scope_condition(table, operator))
    with engine.connect() as connection:
        return set(connection.scalars(stmt))


def _as_sent(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(Invitation.__table__.update().values(
            status="sent", sent_at=utcnow(), expires_at=utcnow() + timedelta(days=9)))


def _until_confirmed(world: SyncWorld, replica: Engine) -> None:
    """Rounds until every command is confirmed (PostgreSQL: another database's transaction
    may hold the pull's xmin back for a moment)."""
    deadline = time.monotonic() + 30
    while {c["state"] for c in commands(replica)} != {SyncCommandState.CONFIRMED}:
        assert time.monotonic() < deadline, commands(replica)
        pull.pull_round(world.server, replica)
        time.sleep(0.05)
    pull.pull_round(world.server, replica)


def test_parents_named_by_a_child_leave_when_the_replica_itself_moved_the_child(
        world: SyncWorld) -> None:
    north = create_unit(world.server_uow, world.admin, "North").id
    hugo = world.member(Role.HR_TENANT, "hugo.hr@example.org", "Hugo")
    lena = world.member(Role.HR_LOCAL, "lena.local@example.org", "Lena", unit_id=north)
    queue(world.server_uow, lena, "zoe@example.org")
    _as_sent(world.server)
    with world.server_uow as s:
        zoe = s.session.scalar(select(Invitation.id))
    # Hugo resends it: he is its sender, and his batch holds it.
    hugos_batch = resend_invitations(world.server_uow, hugo, [zoe]).batch_id
    _as_sent(world.server)
    replica = world.replica(lena)
    assert hugo.member_id in _ids(replica, "member")  # named on an invitation she sees
    assert hugos_batch in _ids(replica, "batch")  # and his batch (credited to her, inviter)

    # Lena resends it offline: her own batch, her as the sender. The old references are
    # gone from her copy before the pull ever sees the change.
    resend_invitations(UnitOfWork(replica), lena, [zoe])
    assert push.push_pending(world.server, replica).rejected == 0
    _until_confirmed(world, replica)

    assert hugo.member_id not in _ids(replica, "member")
    for name in ("batch", "member"):
        assert _ids(replica, name) == _ids(world.server, name, lena), name


def test_a_parent_still_named_by_an_invitation_stays(world: SyncWorld) -> None:
    north = create_unit(world.server_uow, world.admin, "North").id
    hugo = world.member(Role.HR_TENANT, "hugo.hr@example.org", "Hugo")
    lena = world.member(Role.HR_LOCAL, "lena.local@example.org", "Lena", unit_id=north)
    queue(world.server_uow, lena, "zoe@example.org", "yann@example.org")
    _as_sent(world.server)
    with world.server_uow as s:
        ids = dict(s.session.execute(select(Invitation.email, Invitation.id)).all())
    resend_invitations(world.server_uow, hugo, list(ids.values()))
    _as_sent(world.server)
    replica = world.replica(lena)

    resend_invitations(UnitOfWork(replica), lena, [ids["zoe@example.org"]])
    assert push.push_pending(world.server, replica).rejected == 0
    _until_confirmed(world, replica)

    assert hugo.member_id in _ids(replica, "member")  # still Yann's sender
    for name in ("batch", "member"):
        assert _ids(replica, name) == _ids(world.server, name, lena), name
