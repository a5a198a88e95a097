"""A push whose answer was lost (the connection cut after the server committed) is retried:
the server's stored answer comes back, and with it the versions the first answer carried, so
the replica's next offline edit of the same rows applies instead of being taken for someone
else's change (docs/architecture.md, "Journal and push as built"). Real PostgreSQL and
MariaDB; the cut is a fault hook between the server's commit and the replica's bookkeeping."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from invite_desk.services import settings as settings_service
from invite_desk.services.admin.units import rename_unit
from invite_desk.services.models import SyncCommandState, Unit
from invite_desk.services.sync import journal, push
from invite_desk.services.uow import UnitOfWork
from tests.sync_push_support import (
    SyncWorld,
    commands,
    count,
    push_losing_the_answer,
    rows_of,
)


def _new_unit_named_twice(replica: Engine, world: SyncWorld) -> Unit:
    """An offline command that writes one row twice (its local version moves by 2, the
    server's insert gives it version 1): only the answer's rebase lines them up."""
    uow = UnitOfWork(replica)
    with journal.command("edit", "Create the unit North"), uow:
        unit = Unit(organization_id=world.admin.organization_id, name="Nort")
        uow.session.add(unit)
        uow.session.flush()
        unit.name = "North"
        uow.session.flush()
        uow.commit()
        return unit


@pytest.mark.parametrize("edit_before_retry", [False, True],
                         ids=["edit-after-retry", "edit-before-retry"])
def test_a_retried_answer_rebases_so_the_next_offline_edit_applies(
        world: SyncWorld, monkeypatch: pytest.MonkeyPatch, edit_before_retry: bool) -> None:
    replica = world.replica(world.admin)
    unit = _new_unit_named_twice(replica, world)
    assert rows_of(replica, "unit", id=unit.id)[0]["version"] == 2
    push_losing_the_answer(world, replica, monkeypatch)
    assert {c["state"] for c in commands(replica)} == {SyncCommandState.PENDING}
    assert rows_of(world.server, "unit", id=unit.id)[0]["version"] == 1

    uow = UnitOfWork(replica)
    if edit_before_retry:  # the next edit waits behind the lost one, in the same push
        rename_unit(uow, world.admin, unit.id, "North Shore")
    retry = push.push_pending(world.server, replica)
    if not edit_before_retry:
        assert (retry.applied, retry.rejected) == (1, 0)
        assert rows_of(replica, "unit", id=unit.id)[0]["version"] == 1  # the server's
        rename_unit(uow, world.admin, unit.id, "North Shore")
        report = push.push_pending(world.server, replica)
    else:
        report = retry
    assert report.rejected == 0, report.reasons
    assert {c["state"] for c in commands(replica)} == {SyncCommandState.APPLIED}
    server = rows_of(world.server, "unit", id=unit.id)[0]
    local = rows_of(replica, "unit", id=unit.id)[0]
    assert server["name"] == "North Shore"
    assert server["version"] == local["version"] == 2
    assert count(world.server, "unit", name="North") == 0


def test_a_retried_settings_answer_leaves_no_phantom_conflict(
        world: SyncWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    """Last writer wins: the first save replaced the server's value (told once); after the
    retry, the next save replaces only the operator's own value: no second conflict."""
    replica = world.replica(world.admin)
    settings_service.update_settings(world.server_uow, world.admin,
                                     {"invitation_expiry_days": 10})
    uow = UnitOfWork(replica)
    settings_service.update_settings(uow, world.admin, {"invitation_expiry_days": 20})
    push_losing_the_answer(world, replica, monkeypatch)
    assert {c["state"] for c in commands(replica)} == {SyncCommandState.PENDING}
    retry = push.push_pending(world.server, replica)
    assert retry.applied == 1 and "sync.conflict" in retry.reasons[0]  # the stored note

    settings_service.update_settings(uow, world.admin, {"invitation_expiry_days": 30})
    report = push.push_pending(world.server, replica)
    assert (report.applied, report.rejected, report.reasons) == (1, 0, ())
    assert count(world.server, "audit_log", action="sync.conflict") == 1
    with world.server_uow as s:
        assert settings_service.load(s.session, world.admin.organization_id
                                     ).invitation_expiry_days == 30


def test_a_retried_answer_does_not_hide_a_change_made_after_it(
        world: SyncWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    """The replay must not take the server's version blindly: a rename made on the server
    after the lost push still rejects the replica's next offline rename."""
    replica = world.replica(world.admin)
    unit = _new_unit_named_twice(replica, world)
    push_losing_the_answer(world, replica, monkeypatch)
    assert {c["state"] for c in commands(replica)} == {SyncCommandState.PENDING}
    rename_unit(world.server_uow, world.admin, unit.id, "Northern")  # on the server, after
    assert push.push_pending(world.server, replica).applied == 1
    rename_unit(UnitOfWork(replica), world.admin, unit.id, "North Shore")
    report = push.push_pending(world.server, replica)
    assert report.rejected == 1 and "changed on the server" in report.reasons[0]
    assert rows_of(world.server, "unit", id=unit.id)[0]["name"] == "Northern"
