"""`invite-desk sync` on real PostgreSQL and MariaDB servers: one round prints what it pulled
and pushed, a second prints nothing new, and a server that cannot be reached is one line and
exit status 2 (through tests/tcp_proxy.py, which takes the server away)."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from invite_desk import app, cli
from invite_desk.cli_sync import OPERATOR_PASSWORD_ENV
from invite_desk.services import auth
from invite_desk.services.credentials import MemoryCredentialStore
from invite_desk.services.errors import AuthenticationFailed
from invite_desk.services.registration.joining import register_with_invitation
from invite_desk.services.sync.replica import (
    Replica,
    ReplicaUnavailable,
    replica_path,
    replicas_of,
)
from invite_desk.services.tracking.actions import revoke_invitations
from tests.registration_fixtures import form, invite
from tests.sync_push_support import (
    ADMIN_EMAIL,
    PASSWORD,
    SyncWorld,
    count,
    queue,
)
from tests.tcp_proxy import TcpProxy, proxied_url


@pytest.fixture(autouse=True)
def _no_real_keyring(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app, "default_credentials", MemoryCredentialStore)
    monkeypatch.setenv(OPERATOR_PASSWORD_ENV, PASSWORD)


def _sync(url: str, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str, str]:
    code = cli.main(["sync", "--db", url, "--operator", ADMIN_EMAIL, *extra])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _sync_until(url: str, capsys: pytest.CaptureFixture[str], wanted: str, *extra: str
                ) -> tuple[int, str, str]:
    """Rounds until one prints `wanted`. On PostgreSQL a pull reads only transactions below
    the cluster's xmin: another database's open transaction on the same server (parallel
    tests) holds a change back for a moment, it never loses it."""
    deadline = time.monotonic() + 20
    while True:
        code, out, err = _sync(url, capsys, *extra)
        if wanted in out or time.monotonic() > deadline:
            return code, out, err
        time.sleep(0.2)


def test_a_round_prints_what_it_pulled_and_pushed_and_a_second_round_nothing_new(
        world: SyncWorld, proxy: TcpProxy, capsys: pytest.CaptureFixture[str]) -> None:
    url = proxied_url(world.server.url, proxy)
    queue(world.server_uow, world.admin, "ana@example.org", "ben@example.org")

    code, out, err = _sync(url, capsys)
    assert code == 0, err
    assert out.startswith("snapshot: ")
    assert "  invitation: 2\n" in out and "  member: 1\n" in out

    # The sign-in's own change (last_sign_in_at) comes once, then nothing is new.
    code, out, _ = _sync_until(url, capsys, "Up to date with ")
    code, out, _ = _sync(url, capsys)
    assert code == 0
    assert out.startswith("Up to date with ") and "pushed" not in out and "pulled" not in out
    assert "invite_desk_test" in out and PASSWORD not in out

    queue(world.server_uow, world.admin, "cleo@example.org")  # a change on the server
    code, out, _ = _sync_until(url, capsys, "invitation: 1")
    assert code == 0
    assert out.startswith("pulled: ") and "  invitation: 1\n" in out and "pushed" not in out

    replica = Replica.open(url, ADMIN_EMAIL, MemoryCredentialStore())  # offline-capable open
    try:
        operator = replica.check_password(PASSWORD)
        queue(replica.uow, operator, "dana@example.org")  # a change made on this computer
    finally:
        replica.close()
    code, out, _ = _sync(url, capsys, "--format", "json")
    answer = json.loads(out)
    assert code == 0 and answer["ok"] is True
    # queueing commits the batch and its rows in steps: each commit is one command
    assert answer["pushed"]["applied"] >= 1 and answer["pushed"]["rejected"] == 0
    assert answer["waiting"] == 0
    assert count(world.server, "invitation", email="dana@example.org") == 1

    for _ in range(3):  # the push's own change comes back once, then nothing is new
        code, out, _ = _sync(url, capsys, "--format", "json")
        answer = json.loads(out)
        if answer["pulled"]["tables"] == {} and answer["pushed"]["applied"] == 0:
            break
    assert answer == {"ok": True, "server": answer["server"], "waiting": 0, "more": False,
                      "pushed": {"applied": 0, "rejected": 0, "reasons": []},
                      "pulled": {"applied": 0, "deleted": 0, "tables": {}, "snapshot": False}}


def test_a_server_that_cannot_be_reached_is_one_line_and_exit_2(
        world: SyncWorld, proxy: TcpProxy, capsys: pytest.CaptureFixture[str]) -> None:
    url = proxied_url(world.server.url, proxy)
    proxy.cut()
    code, out, err = _sync(url, capsys)  # first time: the replica cannot be made
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1
    assert "Cannot reach the server" in err and "needs the server" in err
    assert PASSWORD not in err

    proxy.restore()
    assert _sync(url, capsys)[0] == 0
    replica = Replica.open(url, ADMIN_EMAIL, MemoryCredentialStore())
    try:
        queue(replica.uow, replica.check_password(PASSWORD), "eve@example.org")
    finally:
        replica.close()
    proxy.cut()
    code, out, err = _sync(url, capsys, "--format", "json")
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "Cannot reach the server" in err
    waiting = json.loads(out)["waiting"]
    assert waiting >= 1 and f"({waiting} changes waiting to be pushed)" in err.replace(
        "1 change waiting", "1 changes waiting")
    proxy.restore()
    code, out, _ = _sync(url, capsys)
    assert code == 0 and "pushed: " in out and " applied, 0 rejected" in out
    assert count(world.server, "invitation", email="eve@example.org") == 1


def test_a_wrong_password_or_no_server_url_is_refused(
        world: SyncWorld, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    url = world.server.url.render_as_string(hide_password=False)
    monkeypatch.setenv(OPERATOR_PASSWORD_ENV, "not the password")
    code, out, err = _sync(url, capsys)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert AuthenticationFailed().message in err
    path = replica_path(world.server.url.render_as_string(hide_password=True), ADMIN_EMAIL)
    assert path.parent.name == "replicas" and not path.exists()  # nothing copied
    code = cli.main(["sync", "--operator", ADMIN_EMAIL])
    assert code == 2
    assert "--db" in capsys.readouterr().err


def test_prune_deletes_change_log_entries_older_than_the_days_given(
        world: SyncWorld, proxy: TcpProxy, capsys: pytest.CaptureFixture[str]) -> None:
    url = proxied_url(world.server.url, proxy)
    assert _sync(url, capsys)[0] == 0
    old = count(world.server, "sync_change")
    with world.server.begin() as connection:  # everything so far happened 40 days ago
        connection.execute(text("UPDATE sync_change SET changed_at = :at"),
                           {"at": datetime.now(UTC).replace(tzinfo=None) - timedelta(days=40)})
    queue(world.server_uow, world.admin, "fred@example.org")
    recent = count(world.server, "sync_change") - old
    code, out, _ = _sync(url, capsys, "--prune")  # default: 30 days
    assert code == 0
    assert out.startswith(f"pruned: {old} change-log entries\n")
    # what is left: the recent entries, and the prune's own audit row
    assert count(world.server, "sync_change") >= recent
    assert count(world.server, "sync_change") < recent + 3
    assert count(world.server, "audit_log", action="sync.prune") == 1
    if "invitation: 1" not in out:  # the replica still follows (in this round or a next)
        code, out, _ = _sync_until(url, capsys, "invitation: 1")
    assert code == 0 and "invitation: 1" in out


def test_later_opens_sign_in_offline_and_a_refused_change_is_shown_until_dismissed(
        world: SyncWorld, proxy: TcpProxy) -> None:
    url = proxied_url(world.server.url, proxy)
    sent = invite(world.server_uow, world.admin, "zoe@example.org", name="Zoë Martin")
    proxy.cut()
    with pytest.raises(ReplicaUnavailable, match="first sign-in on this computer needs"):
        Replica.open(url, ADMIN_EMAIL, MemoryCredentialStore(), password=PASSWORD)
    proxy.restore()
    first = Replica.open(url, ADMIN_EMAIL, MemoryCredentialStore(), password=PASSWORD)
    assert first.first_snapshot is not None and first.first_snapshot.tables["invitation"] == 1
    first.close()

    proxy.cut()  # from now on the server is away: the desktop still opens and signs in
    replica = Replica.open(url, ADMIN_EMAIL, MemoryCredentialStore())
    try:
        assert replica.first_snapshot is None
        with pytest.raises(AuthenticationFailed):
            replica.sign_in("not the password")
        operator = replica.sign_in(PASSWORD)
        assert operator.email == ADMIN_EMAIL
        revoke_invitations(replica.uow, operator, [sent.id])  # offline
        report = replica.round()
        assert not report.online and report.error.startswith("Cannot reach the server")
        status = replica.status()
        assert not status.online and status.waiting >= 1 and status.rejected == 0
        assert status.offline_since is not None and status.offline_since == status.last_sync
        assert "Cannot reach the server" in status.error

        # Meanwhile Zoë accepts on the portal: the server's acceptance wins.
        register_with_invitation(world.server_uow, sent.token, form("Zoë", "Martin"))
        proxy.restore()
        report = replica.round()
        assert report.online and report.error == ""
        assert report.pushed is not None and report.pushed.rejected == 1
        assert "stays accepted" in report.pushed.reasons[-1]
        status = replica.status()
        assert status.online and status.rejected == 1 and status.error == ""
        told = replica.rejected()
        assert len(told) == 1 and "Zoë Martin accepted on" in told[0].reason
        deadline = time.monotonic() + 20  # the server's accepted row comes back
        while _status_of(replica, sent.id) != "accepted" and time.monotonic() < deadline:
            replica.round()
            time.sleep(0.2)
        assert _status_of(replica, sent.id) == "accepted"
        replica.dismiss(told[0].command_id)
        assert replica.status().rejected == 0 and replica.rejected() == []
    finally:
        replica.close()


def _status_of(replica: Replica, invitation_id: object) -> str:
    with replica.engine.connect() as connection:
        return str(connection.execute(text("SELECT status FROM invitation WHERE id = :id"),
                                      {"id": str(invitation_id).replace("-", "")}).scalar())


def test_a_dead_network_is_offline_within_seconds_not_minutes(
        world: SyncWorld, proxy: TcpProxy) -> None:
    url = proxied_url(world.server.url, proxy)
    replica = Replica.open(url, ADMIN_EMAIL, MemoryCredentialStore(), password=PASSWORD)
    try:
        assert replica.round().online
        with replica.remote().connect() as connection:  # connected: queries may take longer
            raw = connection.connection.dbapi_connection
            if hasattr(raw, "_read_timeout"):
                assert raw._read_timeout == 60
        proxy.hold()  # connections are accepted and never answered
        started = time.monotonic()
        report = replica.round()
        assert not report.online and "Cannot reach the server" in report.error
        assert time.monotonic() - started < 10
        proxy.restore()
        assert replica.round().online
    finally:
        replica.close()


def test_replica_files_are_named_by_server_port_database_and_operator() -> None:
    data = Path(os.environ["INVITE_DESK_DATA_DIR"])
    label = "postgresql+psycopg://invite@db.example.org:6543/club"
    path = replica_path(label, "Ada.Admin@Example.org")
    assert path == data / "replicas" / "db.example.org_6543-club-ada.admin@example.org.sqlite3"
    assert replica_path("mariadb+pymysql://invite@db.example.org/club?charset=utf8mb4",
                        "ada@example.org").name == "db.example.org-club-ada@example.org.sqlite3"
    assert replica_path(label, "ada@example.org") != replica_path(
        label.replace(":6543", ":6544"), "ada@example.org")
    assert replica_path("postgresql://u@h/../../etc", "a/b@x.org").parent == data / "replicas"
    assert replicas_of(label) == []
    path.parent.mkdir(parents=True)
    path.write_bytes(b"")
    (path.parent / "db.example.org_6543-club2-ada@example.org.sqlite3").write_bytes(b"")
    assert replicas_of(label) == [path]


def test_a_password_changed_elsewhere_works_once_the_server_confirms_it(
        world: SyncWorld, proxy: TcpProxy, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    url = proxied_url(world.server.url, proxy)
    assert _sync(url, capsys)[0] == 0  # the replica holds the old password's hash
    auth.set_password(world.server_uow, world.admin.member_id, "a brand new Passw0rd")
    proxy.cut()
    monkeypatch.setenv(OPERATOR_PASSWORD_ENV, "a brand new Passw0rd")
    code, _, err = _sync(url, capsys)  # offline: the replica cannot know the new one yet
    assert code == 2 and AuthenticationFailed().message in err
    proxy.restore()
    code, _, err = _sync(url, capsys)  # the server confirms it; the round brings it here
    assert code == 0, err
    proxy.cut()
    replica = Replica.open(url, ADMIN_EMAIL, MemoryCredentialStore())
    try:  # and from now on it works offline, the old one no longer
        assert replica.sign_in("a brand new Passw0rd").email == ADMIN_EMAIL
        with pytest.raises(AuthenticationFailed):
            replica.sign_in(PASSWORD)
    finally:
        replica.close()
