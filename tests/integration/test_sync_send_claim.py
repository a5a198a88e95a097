"""Exactly-once sending between a desktop replica and the server (issue 12's known limit).

A replica's outbox claims every invitation the server knows ON THE SERVER before SMTP (the
same durable claim as `invite-desk send`), so the headless sender, another replica and a
killed-and-rerun desktop never mail anyone twice; offline, only invitations created on the
replica (that nobody else can send) go out, and the others wait for the server.

Real PostgreSQL and MariaDB servers, real replicas (`Replica.open`), a real loopback SMTP
server counting the messages each recipient got.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
from sqlalchemy import select

from invite_desk.services import auth, mail_settings, settings
from invite_desk.services.credentials import MemoryCredentialStore
from invite_desk.services.invitations.parallel import ParallelSender, smtp_lanes
from invite_desk.services.invitations.sending import SendReport, describe
from invite_desk.services.models import Invitation
from invite_desk.services.roles import Role
from invite_desk.services.sync import push
from invite_desk.services.sync.replica import Replica
from invite_desk.services.uow import UnitOfWork
from tests.smtp_server import LoopbackSmtpServer
from tests.sync_push_support import PASSWORD, SyncWorld, count, queue, rows_of
from tests.tcp_proxy import TcpProxy, proxied_url

BATCH = 200
LANES = 3


def _configure(world: SyncWorld, smtp: LoopbackSmtpServer) -> None:
    mail_settings.update_mail_settings(world.server_uow, world.admin, {
        "host": smtp.host, "port": smtp.port, "security": "none",
        "from_address": "invitations@rowing.example", "from_name": "Harbour Rowing Club",
        "rate_per_minute": 0, "connections": LANES})
    settings.update_settings(world.server_uow, world.admin, {"daily_limit_per_inviter": 0})


def _server_url(world: SyncWorld) -> str:
    return world.server.url.render_as_string(hide_password=False)


@contextmanager
def _replica(url: str, email: str = "ada.admin@example.org") -> Iterator[Replica]:
    replica = Replica.open(url, email, MemoryCredentialStore(), password=PASSWORD)
    try:
        yield replica
    finally:
        replica.close()


def _send(uow: UnitOfWork, world: SyncWorld, replica: Replica | None = None) -> SendReport:
    """What the desktop's outbox runs (replica: with its server link), or `invite-desk send`
    on the server (no replica)."""
    mail = mail_settings.get_mail_settings(uow, world.admin.organization_id)
    return ParallelSender(uow, smtp_lanes(mail, None, timeout=10),
                          organization_id=world.admin.organization_id, connections=LANES,
                          link=replica.send_link() if replica is not None else None).run()


def _each_once(smtp: LoopbackSmtpServer, addresses: list[str]) -> None:
    counts = {a: smtp.count_for(a) for a in addresses}
    twice = {a: n for a, n in counts.items() if n > 1}
    missing = [a for a, n in counts.items() if n == 0]
    assert not twice, f"{len(twice)} recipients got more than one email: {list(twice)[:5]}"
    assert not missing, f"{len(missing)} never got one: {missing[:5]}"


def _statuses(engine: object, **where: object) -> dict[str, int]:
    found: dict[str, int] = {}
    for row in rows_of(engine, "invitation", **where):  # type: ignore[arg-type]
        found[row["status"]] = found.get(row["status"], 0) + 1
    return found


def _converge(replica: Replica, expected: dict[str, int]) -> None:
    """Rounds until the replica's statuses are `expected` (PostgreSQL: another database's
    open transaction on the shared test server can hold a pull back for a moment)."""
    deadline = time.monotonic() + 20
    while True:
        round_ = replica.round()
        assert round_.online and not round_.error, round_.error
        if _statuses(replica.engine) == expected or time.monotonic() > deadline:
            assert _statuses(replica.engine) == expected
            return
        time.sleep(0.2)


@pytest.mark.parametrize("other", ["invite-desk send", "another desktop"])
def test_a_replica_outbox_racing_another_sender_on_one_batch_mails_everyone_once(
    world: SyncWorld, other: str,
) -> None:
    second: Replica | None = None
    if other == "another desktop":
        hugo = world.member(Role.HR_TENANT, "hugo.hr@example.org", "Hugo")
        auth.set_password(world.server_uow, hugo.member_id, PASSWORD)
    # A distant provider: every reply waits, so both senders are mid-batch at the same time.
    with LoopbackSmtpServer(reply_delay=0.01) as smtp, ExitStack() as stack:
        _configure(world, smtp)
        addresses = [f"race{i:03d}@example.org" for i in range(BATCH)]
        queue(world.server_uow, world.admin, *addresses, label="spring")
        if other == "another desktop":
            second = stack.enter_context(_replica(_server_url(world), "hugo.hr@example.org"))
            assert count(second.engine, "invitation", status="queued") == BATCH
        with _replica(_server_url(world)) as replica:
            assert count(replica.engine, "invitation", status="queued") == BATCH
            reports: dict[str, SendReport] = {}
            errors: list[BaseException] = []
            start = threading.Barrier(2)

            def run(name: str, uow: UnitOfWork, link: Replica | None) -> None:
                try:
                    start.wait(10)
                    reports[name] = _send(uow, world, link)
                except BaseException as exc:  # reported below
                    errors.append(exc)

            threads = [threading.Thread(target=run, args=("desktop", replica.uow, replica)),
                       threading.Thread(target=run, args=(
                           "headless", second.uow if second else world.server_uow, second))]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(120)
            assert not errors, errors
            desktop, headless = reports["desktop"], reports["headless"]
            _each_once(smtp, addresses)
            assert len(smtp.messages) == BATCH
            # Both really sent part of it: the race was run, not one after the other.
            assert desktop.sent > 0 and headless.sent > 0, (describe(desktop),
                                                            describe(headless))
            assert desktop.sent + headless.sent == BATCH
            assert not desktop.error and not desktop.failed and not desktop.uncertain
            assert desktop.waiting_server == 0
            assert _statuses(world.server) == {"sent": BATCH}
            # The desktop's own sends are mirrored, not journaled: nothing to push again.
            assert count(replica.engine, "local_change", table_name="invitation") == 0
            _converge(replica, {"sent": BATCH})
            assert not replica.rejected()
            if second is not None:
                _converge(second, {"sent": BATCH})
                assert not second.rejected()
            # Every link opens: the token hash the server keeps is the one of the email sent.
            with world.server.connect() as connection:
                hashes = set(connection.execute(select(Invitation.token_hash)).scalars())
            assert len(hashes) == BATCH and None not in hashes


def test_offline_the_replica_sends_what_it_alone_knows_and_the_rest_waits_for_the_server(
    world: SyncWorld, smtp_server: LoopbackSmtpServer,
) -> None:
    _configure(world, smtp_server)
    known = [f"known{i}@example.org" for i in range(4)]
    mine = [f"mine{i}@example.org" for i in range(3)]
    queue(world.server_uow, world.admin, *known, label="on the server")
    proxy = TcpProxy(world.server.url.host or "127.0.0.1", world.server.url.port or 0).start()
    try:
        with _replica(proxied_url(world.server.url, proxy)) as replica:
            proxy.cut()
            assert not replica.round().online
            operator = replica.check_password(PASSWORD)
            queue(replica.uow, operator, *mine, label="made offline")
            report = _send(replica.uow, world, replica)
            assert report.sent == len(mine) and report.waiting_server == len(known), \
                describe(report)
            assert f"{len(known)} waiting for the server" in describe(report)
            assert sorted(m.rcpt_tos[0] for m in smtp_server.messages) == sorted(mine)
            # Meanwhile the server's own sender cannot see the replica's rows, and the rows it
            # can see are not sent by the replica: it sends them (once).
            assert count(world.server, "invitation", status="queued") == len(known)
            proxy.restore()
            round_ = replica.round()
            assert round_.online and not round_.error, round_.error
            assert _statuses(world.server) == {"sent": len(mine), "queued": len(known)}
            again = _send(replica.uow, world, replica)
            assert again.sent == len(known) and again.waiting_server == 0, describe(again)
            late = _send(world.server_uow, world)  # `invite-desk send` afterwards: nothing
            assert late.sent == 0
            _each_once(smtp_server, known + mine)
            assert len(smtp_server.messages) == len(known) + len(mine)
            assert _statuses(world.server) == {"sent": len(known) + len(mine)}
            _converge(replica, {"sent": len(known) + len(mine)})
            assert not replica.rejected()
    finally:
        proxy.stop()


def test_a_row_the_server_already_sent_is_skipped_and_counted_as_sent_elsewhere(
    world: SyncWorld, smtp_server: LoopbackSmtpServer,
) -> None:
    _configure(world, smtp_server)
    addresses = [f"twice{i}@example.org" for i in range(6)]
    queue(world.server_uow, world.admin, *addresses)
    with _replica(_server_url(world)) as replica:
        # The server sent them all before the replica pulled: its copy still says queued.
        assert _send(world.server_uow, world).sent == len(addresses)
        assert count(replica.engine, "invitation", status="queued") == len(addresses)
        report = _send(replica.uow, world, replica)
        assert report.sent == 0 and report.elsewhere == len(addresses), describe(report)
        assert "6 already sent elsewhere" in describe(report)
        assert not report.failed and not report.error and report.waiting_server == 0
        _each_once(smtp_server, addresses)
        assert _statuses(replica.engine) == {"sent": len(addresses)}  # mirrored at once
        # Nothing about the invitations waits to be pushed (at most the batch's "done").
        assert count(replica.engine, "local_change", table_name="invitation") == 0


_KILLED_SENDER = """
import sys
from invite_desk.services import mail_settings
from invite_desk.services.credentials import MemoryCredentialStore
from invite_desk.services.invitations.parallel import ParallelSender, smtp_lanes
from invite_desk.services.sync import push
from invite_desk.services.sync.replica import Replica

replica = Replica.open(sys.argv[1], "ada.admin@example.org", MemoryCredentialStore(),
                       password=sys.argv[2])
operator = replica.check_password(sys.argv[2])
mail = mail_settings.get_mail_settings(replica.uow, operator.organization_id)
print("sending", flush=True)
ParallelSender(replica.uow, smtp_lanes(mail, None, timeout=10),
               organization_id=operator.organization_id, connections=int(sys.argv[3]),
               link=replica.send_link()).run()
"""


@pytest.mark.slow
def test_a_replica_sender_killed_mid_batch_and_run_again_never_mails_anyone_twice(
    world: SyncWorld, tmp_path: Path,
) -> None:
    with LoopbackSmtpServer(reply_delay=0.01) as smtp:
        _configure(world, smtp)
        addresses = [f"kill{i:03d}@example.org" for i in range(120)]
        queue(world.server_uow, world.admin, *addresses)
        url = _server_url(world)
        with _replica(url) as replica:  # made here; the killed process opens the same file
            env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
            log = tmp_path / "sender.log"
            with log.open("w") as out:
                proc = subprocess.Popen(
                    [sys.executable, "-c", _KILLED_SENDER, url, PASSWORD, str(LANES)],
                    env=env, stdout=out, stderr=out)
                deadline = time.monotonic() + 60
                while len(smtp.messages) < 30 and proc.poll() is None:
                    assert time.monotonic() < deadline, log.read_text()
                    time.sleep(0.005)
                assert proc.poll() is None, log.read_text()
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=30)
            sent_before = len(smtp.messages)
            assert sent_before < len(addresses), "finished before the kill; make it larger"
            left = count(world.server, "invitation", status="sending")
            assert left <= LANES
            # The desktop runs again (the outbox of the next start), and the server's own
            # sender as well: nobody gets a second email.
            report = _send(replica.uow, world, replica)
            late = _send(world.server_uow, world)
            assert late.sent == 0
            counts = {a: smtp.count_for(a) for a in addresses}
            assert max(counts.values()) == 1, [a for a, n in counts.items() if n > 1]
            server = _statuses(world.server)
            assert server.get("sending", 0) == 0 and server.get("queued", 0) == 0, server
            # Interrupted rows are uncertain (never resent); everything else went out once.
            assert server.get("uncertain", 0) <= LANES
            assert server["sent"] + server.get("uncertain", 0) == len(addresses)
            assert len(smtp.messages) == sum(counts.values()) >= server["sent"]
            assert 0 < report.sent <= len(addresses) - sent_before + LANES
            _converge(replica, server)
            assert not replica.rejected()


def test_a_delivery_fact_behind_the_servers_send_gives_the_replica_the_servers_row(
    world: SyncWorld, smtp_server: LoopbackSmtpServer,
) -> None:
    """A desktop killed after the server recorded `sent` but before its copy did: its own
    recovery marks the copy `uncertain` (a delivery fact). The server keeps `sent`, and the
    replica takes the server's row back instead of keeping `uncertain` for good."""
    _configure(world, smtp_server)
    queue(world.server_uow, world.admin, "late@example.org")
    with _replica(_server_url(world)) as replica:
        assert _send(world.server_uow, world).sent == 1
        token_hash = rows_of(world.server, "invitation")[0]["token_hash"]
        with replica.engine.begin() as connection:  # the killed desktop's copy, recovered
            connection.execute(Invitation.__table__.update().values(
                status="uncertain", last_error="The program stopped", attempts=1))
        assert count(replica.engine, "sync_command", kind="delivery", state="pending") == 1
        round_ = replica.round()
        assert round_.online and not round_.error
        assert _statuses(world.server) == {"sent": 1}
        (row,) = rows_of(replica.engine, "invitation")
        assert (row["status"], row["token_hash"], row["last_error"]) == ("sent", token_hash, "")
        assert not replica.rejected()
        _converge(replica, {"sent": 1})


def test_the_server_going_away_mid_send_stops_the_run_and_nobody_is_mailed_twice(
    world: SyncWorld,
) -> None:
    """The network drops while the lanes claim on the server: the run stops and says why,
    the outcomes it could not record there are kept as delivery facts (pushed later), and
    the next run (then `invite-desk send`) sends the rest once."""
    with LoopbackSmtpServer(reply_delay=0.02) as smtp:
        _configure(world, smtp)
        addresses = [f"cut{i:03d}@example.org" for i in range(80)]
        queue(world.server_uow, world.admin, *addresses)
        proxy = TcpProxy(world.server.url.host or "127.0.0.1",
                         world.server.url.port or 0).start()
        try:
            with _replica(proxied_url(world.server.url, proxy)) as replica:
                assert replica.round().online
                reports: list[SendReport] = []
                sender = threading.Thread(
                    target=lambda: reports.append(_send(replica.uow, world, replica)))
                sender.start()
                deadline = time.monotonic() + 60
                while len(smtp.messages) < 15:
                    assert time.monotonic() < deadline and sender.is_alive()
                    time.sleep(0.005)
                proxy.cut()
                sender.join(60)
                (report,) = reports
                assert "The server stopped answering" in report.error, describe(report)
                assert report.sent < len(addresses)
                assert report.waiting_server > 0  # the rest waits for the server
                proxy.restore()
                assert replica.round().online
                again = _send(replica.uow, world, replica)
                assert not again.error, describe(again)
                late = _send(world.server_uow, world)
                assert late.sent == 0, describe(late)
                counts = {a: smtp.count_for(a) for a in addresses}
                assert max(counts.values()) == 1, [a for a, n in counts.items() if n > 1]
                server = _statuses(world.server)
                # A claim whose commit the cut swallowed is never sent: `uncertain` at most
                # once per lane; every other invitation went out exactly once.
                assert server.get("queued", 0) == 0 and server.get("sending", 0) == 0, server
                assert server.get("uncertain", 0) <= LANES
                assert server["sent"] + server.get("uncertain", 0) == len(addresses)
                assert server["sent"] <= len(smtp.messages) <= len(addresses)
                _converge(replica, server)
                assert not replica.rejected()
        finally:
            proxy.stop()


def test_rows_of_a_push_whose_answer_was_lost_wait_for_the_server_even_after_a_restart(
    world: SyncWorld, smtp_server: LoopbackSmtpServer, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The server applied a push but its answer never came back: those invitations may be
    on the server (and sent there), so the replica must not send them offline, not even
    after the desktop started again."""
    _configure(world, smtp_server)
    mine = [f"lost{i}@example.org" for i in range(3)]
    proxy = TcpProxy(world.server.url.host or "127.0.0.1", world.server.url.port or 0).start()
    url = proxied_url(world.server.url, proxy)
    try:
        with _replica(url) as replica:
            queue(replica.uow, replica.check_password(PASSWORD), *mine)

            def answer_lost(*_args: object) -> None:
                raise ConnectionResetError("the connection dropped before the answer")

            with monkeypatch.context() as patched:
                patched.setattr(push, "record_answers", answer_lost)
                assert not replica.round().online
        assert count(world.server, "invitation", status="queued") == len(mine)
        proxy.cut()
        with _replica(url) as replica:  # the desktop starts again, still offline
            assert not replica.round().online
            report = _send(replica.uow, world, replica)
            assert (report.sent, report.waiting_server) == (0, len(mine)), describe(report)
            assert smtp_server.messages == []
            assert _send(world.server_uow, world).sent == len(mine)  # `invite-desk send`
            proxy.restore()
            assert replica.round().online
            again = _send(replica.uow, world, replica)
            assert again.sent == 0 and not again.error, describe(again)
            _each_once(smtp_server, mine)
            assert len(smtp_server.messages) == len(mine)
            _converge(replica, {"sent": len(mine)})
            assert not replica.rejected()
    finally:
        proxy.stop()
