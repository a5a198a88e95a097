"""Push: commands made on a replica reach the server exactly once, on real PostgreSQL and
MariaDB, whatever the connection does (docs/architecture.md, "Push: commands with client
ids")."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select, update
from sqlalchemy.exc import OperationalError

from invite_desk.services import settings as settings_service
from invite_desk.services.models import (
    Invitation,
    InvitationStatus,
    LocalChange,
    SyncCommandState,
)
from invite_desk.services.registration.joining import register_with_invitation
from invite_desk.services.sync import capture, journal, pull, push, tables
from invite_desk.services.tracking.actions import extend_invitations, revoke_invitations
from invite_desk.services.uow import UnitOfWork
from tests.registration_fixtures import form, invite
from tests.sync_push_support import (
    SyncWorld,
    answers,
    commands,
    count,
    push_losing_the_answer,
    queue,
    rows_of,
)


def test_journal_names_each_commit_and_skips_pulled_rows(world: SyncWorld) -> None:
    replica = world.replica(world.admin)
    assert commands(replica) == []  # the snapshot was written with the journal off
    uow = UnitOfWork(replica)
    queue(uow, world.admin, "zoe@example.org", "yann@example.org", label="Spring")
    made = commands(replica)
    assert {c["kind"] for c in made} == {"invitation.queue"}
    assert all(c["operator_id"] == world.admin.member_id for c in made)
    assert any("Queue 2 invitations (Spring)" in c["summary"] for c in made)
    with replica.begin() as connection:  # a Core write outside any unit of work
        connection.execute(update(Invitation.__table__)
                           .where(Invitation.email == "zoe@example.org")
                           .values(last_error="x", version=Invitation.version + 1))
    assert commands(replica)[-1]["kind"] == "delivery"
    with replica.begin() as connection:
        connection.execute(update(Invitation.__table__)
                           .where(Invitation.email == "zoe@example.org")
                           .values(name="Zoë"))
    assert commands(replica)[-1]["kind"] == "edit"
    with replica.begin() as connection, journal.applying(connection):
        connection.execute(update(Invitation.__table__).values(name="pulled"))
    assert len(commands(replica)) == len(made) + 2
    with replica.connect() as connection:
        untagged = connection.execute(select(LocalChange.seq).where(
            LocalChange.command_id.is_(None))).all()
    assert untagged == []
    assert journal.pending_count(replica) == len(made) + 2


def test_offline_queue_reaches_the_server_once_when_the_answer_is_lost(
        world: SyncWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    replica = world.replica(world.admin)
    queue(UnitOfWork(replica), world.admin, "zoe@example.org", "yann@example.org")
    made = commands(replica)
    assert len(made) == 3  # the batch, its rows, opening it for sending
    push_losing_the_answer(world, replica, monkeypatch)
    assert count(world.server, "invitation") == 2  # the server did commit
    assert len(answers(world.server)) == 3
    assert {c["state"] for c in commands(replica)} == {SyncCommandState.PENDING}

    report = push.push_pending(world.server, replica)
    assert (report.applied, report.rejected, report.more) == (3, 0, False)
    assert count(world.server, "invitation") == 2  # not applied twice
    assert count(world.server, "audit_log", action="invitation.queued") == 2
    assert count(world.server, "batch") == 1
    assert len(answers(world.server)) == 3
    assert {c["state"] for c in commands(replica)} == {SyncCommandState.APPLIED}
    assert all(c["checkpoint"] for c in commands(replica))
    server_rows = {r["id"]: r for r in rows_of(world.server, "invitation")}
    for row in rows_of(replica, "invitation"):
        assert server_rows[row["id"]]["email"] == row["email"]
        assert server_rows[row["id"]]["status"] == InvitationStatus.QUEUED
    assert push.push_pending(world.server, replica).applied == 0


def test_many_commands_go_in_transactions_of_a_group_each(world: SyncWorld) -> None:
    sent = [invite(world.server_uow, world.admin, f"p{i}@example.org") for i in range(3)]
    replica = world.replica(world.admin)
    uow = UnitOfWork(replica)
    for _ in range(push.GROUP // 2 + 1):  # a chain of edits of the same rows
        extend_invitations(uow, world.admin, [s.id for s in sent], 1)
    revoke_invitations(uow, world.admin, [sent[0].id])
    waiting = journal.pending_count(replica)
    assert waiting == push.GROUP // 2 + 2
    first = push.push_pending(world.server, replica, limit=push.GROUP + 5)
    assert (first.applied, first.rejected) == (waiting, 0)
    for s in sent:
        server = rows_of(world.server, "invitation", id=s.id)[0]
        local = rows_of(replica, "invitation", id=s.id)[0]
        assert server["expires_at"] == local["expires_at"]
        assert server["version"] == local["version"]
    assert rows_of(world.server, "invitation", id=sent[0].id)[0]["status"] == "revoked"


def test_a_fault_mid_apply_applies_nothing_and_keeps_the_command(
        world: SyncWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    replica = world.replica(world.admin)
    queue(UnitOfWork(replica), world.admin, "zoe@example.org", "yann@example.org")
    real_insert = push._insert
    inserted = {"invitation": 0}

    def fail_on_second_invitation(context: Any, change: push.RowChange, local: Any) -> None:
        real_insert(context, change, local)
        if change.table == "invitation":
            inserted["invitation"] += 1
            if inserted["invitation"] == 2:
                raise OperationalError("INSERT", {}, Exception("server went away"))

    monkeypatch.setattr(push, "_insert", fail_on_second_invitation)
    with pytest.raises(OperationalError):
        push.push_pending(world.server, replica)
    assert count(world.server, "invitation") == 0  # the first insert was rolled back too
    pending = [c for c in commands(replica) if c["state"] == SyncCommandState.PENDING]
    assert pending and all(c["id"] not in {a["command_id"] for a in answers(world.server)}
                           for c in pending)

    monkeypatch.setattr(push, "_insert", real_insert)
    push.push_pending(world.server, replica)
    assert count(world.server, "invitation") == 2
    assert journal.pending_count(replica) == 0


def test_offline_revoke_and_extend_apply_in_order_with_versions_that_follow_the_server(
        world: SyncWorld) -> None:
    sent = invite(world.server_uow, world.admin, "zoe@example.org")
    replica = world.replica(world.admin)
    uow = UnitOfWork(replica)
    extend_invitations(uow, world.admin, [sent.id], 7)
    revoke_invitations(uow, world.admin, [sent.id])
    assert [c["kind"] for c in commands(replica)] == ["invitation.extend", "invitation.revoke"]
    assert commands(replica)[1]["summary"] == "Revoke the invitation to zoe@example.org"
    report = push.push_pending(world.server, replica)
    assert (report.applied, report.rejected) == (2, 0)
    server = rows_of(world.server, "invitation", id=sent.id)[0]
    local = rows_of(replica, "invitation", id=sent.id)[0]
    assert server["status"] == InvitationStatus.REVOKED
    assert server["expires_at"] == local["expires_at"]
    assert server["version"] == local["version"]
    assert count(world.server, "audit_log", action="invitation.revoked") == 1
    assert count(world.server, "audit_log", action="invitation.extended") == 1


def test_second_offline_save_of_a_setting_builds_on_the_first_one(world: SyncWorld) -> None:
    """After a last-writer-wins save, the replica's next edit of the same row is based on the
    server's version (rebased), so it is not taken for another conflict."""
    replica = world.replica(world.admin)
    settings_service.update_settings(world.server_uow, world.admin,
                                     {"invitation_expiry_days": 10})
    uow = UnitOfWork(replica)
    settings_service.update_settings(uow, world.admin, {"invitation_expiry_days": 20})
    settings_service.update_settings(uow, world.admin, {"invitation_expiry_days": 30})
    report = push.push_pending(world.server, replica)
    assert (report.applied, report.rejected) == (2, 0)
    assert len(report.reasons) == 1 and "sync.conflict" in report.reasons[0]
    with world.server_uow as s:
        assert settings_service.load(s.session, world.admin.organization_id
                                     ).invitation_expiry_days == 30
    assert count(world.server, "audit_log", action="sync.conflict") == 1


def test_an_applied_row_is_not_reverted_by_a_pull_before_its_checkpoint(
        world: SyncWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    """Between the push and the pull that reads its checkpoint, the replica keeps its own
    change even when the server's copy says otherwise; after it, the server's copy wins."""
    sent = invite(world.server_uow, world.admin, "zoe@example.org")
    replica = world.replica(world.admin)
    revoke_invitations(UnitOfWork(replica), world.admin, [sent.id])
    assert push.push_pending(world.server, replica).applied == 1
    # A stale server copy, as a pull reading from before the push would see it.
    with world.server.begin() as connection:
        connection.execute(update(Invitation.__table__).where(Invitation.id == sent.id)
                           .values(status=InvitationStatus.SENT.value, name="stale"))
    monkeypatch.setattr(capture, "passed", lambda cursor, checkpoint: False)
    pull.pull_round(world.server, replica)
    local = rows_of(replica, "invitation", id=sent.id)[0]
    assert local["status"] == InvitationStatus.REVOKED and local["name"] != "stale"
    assert commands(replica)[0]["state"] == SyncCommandState.APPLIED

    monkeypatch.undo()
    # PostgreSQL: a round passes the checkpoint once no older transaction runs on the server
    # (other databases' ones too: xmin is the whole server's), so allow a few rounds.
    deadline = time.monotonic() + 30
    while commands(replica)[0]["state"] != SyncCommandState.CONFIRMED:
        assert time.monotonic() < deadline, "the pull never passed the push's checkpoint"
        pull.pull_round(world.server, replica)
        time.sleep(0.05)
    assert rows_of(replica, "invitation", id=sent.id)[0]["name"] == "stale"


def test_a_replica_without_sync_state_is_refused(world: SyncWorld, tmp_path: Path) -> None:
    from invite_desk.services import db
    from invite_desk.services.errors import DomainError

    plain = db.make_engine(f"sqlite:///{tmp_path / 'plain.sqlite3'}")
    try:
        db.upgrade_to_head(plain)
        with pytest.raises(DomainError, match="not a replica"):
            push.push_pending(world.server, plain)
    finally:
        plain.dispose()


def test_dismissed_commands_are_no_longer_listed(world: SyncWorld) -> None:
    replica = world.replica(world.admin)
    sent = invite(world.server_uow, world.admin, "zoe@example.org")
    with replica.begin() as connection, journal.applying(connection):  # as a pull brings it
        connection.execute(insert(Invitation.__table__).values(
            **rows_of(world.server, "invitation", id=sent.id)[0]))
    revoke_invitations(UnitOfWork(replica), world.admin, [sent.id])
    extend_invitations(world.server_uow, world.admin, [sent.id], 3)
    report = push.push_pending(world.server, replica)
    assert report.rejected == 1
    listed = journal.rejected(replica)
    assert len(listed) == 1 and not listed[0].applied
    assert "Ada Admin" in listed[0].reason
    journal.dismiss(replica, listed[0].command_id)
    assert journal.rejected(replica) == []


def test_the_referral_reconciliation_on_a_replica_records_nothing_to_push(
        world: SyncWorld) -> None:
    """Its ledger, reward states and watermarks are derived on whichever database it runs:
    the server keeps its own; a replica's are never pushed (nor protected from the pull)."""
    from invite_desk.services.referral_program import reconcile

    sent = invite(world.server_uow, world.admin, "zoe@example.org")
    joined = register_with_invitation(world.server_uow, sent.token, form("Zoë", "Martin"))
    assert joined.member_id is not None
    replica = world.replica(world.admin)
    reconcile(UnitOfWork(replica), world.admin)
    assert count(replica, "referral_ledger") >= 1  # it did award, locally
    assert [c["summary"] for c in commands(replica)] == []
    assert journal.pending_count(replica) == 0
    assert count(world.server, "referral_ledger") == 0


def test_installing_the_journal_again_keeps_one_set_of_triggers(world: SyncWorld) -> None:
    replica = world.replica(world.admin)
    journal.install_journal(replica)
    journal.install_journal(replica)
    with replica.connect() as connection:
        names = connection.exec_driver_sql(
            "SELECT name FROM sqlite_master WHERE type = 'trigger'").scalars().all()
    assert len(names) == len(set(names)) == 3 * len(
        [t for t in tables.SYNCED_TABLES if t not in journal.NOT_JOURNALED])
    queue(UnitOfWork(replica), world.admin, "zoe@example.org")
    assert count(replica, "local_change", table_name="invitation") == 1


def test_a_commands_journal_entries_fold_into_one_change_per_row() -> None:
    a, b, c, d = (uuid.uuid4() for _ in range(4))
    entries = [
        (1, "invitation", a, "I", "id,email,status", None),
        (2, "invitation", a, "U", "status,version", 1),  # inserted then changed: an insert
        (3, "invitation", b, "I", "id,email", None),
        (4, "invitation", b, "D", "", 1),  # inserted then deleted: nothing
        (5, "member", c, "U", "role,version", 3),
        (6, "member", c, "U", "unit_id,version", 4),  # two edits: one, based on the first
        (7, "setting", d, "U", "value_json", 2),
        (8, "setting", d, "D", "", 3),  # changed then deleted: a delete
    ]
    folded = {(f.table, f.row_id): f for f in push.net_changes(entries)}
    assert set(folded) == {("invitation", a), ("member", c), ("setting", d)}
    assert folded[("invitation", a)].op == "I"
    assert folded[("invitation", a)].columns == {"id", "email", "status", "version"}
    assert (folded[("member", c)].op, folded[("member", c)].base_version) == ("U", 3)
    assert folded[("member", c)].columns == {"role", "unit_id", "version"}
    assert folded[("setting", d)].op == "D"
    assert [f.row_id for f in push.net_changes(entries)] == [a, c, d]  # in journal order
