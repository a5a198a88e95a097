"""The desktop's outbox in replica mode sends each invitation once (issue 12's known limit).

A real PostgreSQL/MariaDB server behind the TCP proxy, a real replica, the real Outbox with
its sending thread and the replica's server link, and the loopback SMTP server. Offline, the
outbox sends what only the replica knows and reports the rest as waiting for the server; the
first round that reaches the server again starts that send again, and the rest goes out once
(claimed on the server, beside `invite-desk send`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pytestqt.qtbot import QtBot
from sqlalchemy import Engine

from invite_desk.app import AppContext
from invite_desk.services import mail_settings, settings
from invite_desk.services.credentials import MemoryCredentialStore
from invite_desk.services.invitations.parallel import ParallelSender, smtp_lanes
from invite_desk.services.invitations.sending import SendReport, describe
from invite_desk.services.operator import Operator
from invite_desk.services.sync.replica import Replica
from invite_desk.services.uow import UnitOfWork
from invite_desk.ui.compose import ComposeWindow
from invite_desk.ui.hub import OperationsHub
from invite_desk.ui.outbox import Outbox, SendOutcome
from invite_desk.ui.tasks import SynchronousRunner
from tests.smtp_server import LoopbackSmtpServer
from tests.sync_push_support import PASSWORD, SyncWorld, queue, rows_of
from tests.tcp_proxy import TcpProxy

WAIT_MS = 30_000


@pytest.fixture
def outbox(qtbot: QtBot, replica: Replica, world: SyncWorld) -> Iterator[Outbox]:
    hub = OperationsHub(runner=SynchronousRunner())
    made = Outbox(replica.engine, world.admin.organization_id, hub, notify_idle_ms=0,
                  notify_target=replica.notification_engine, send_link=replica.send_link)
    yield made
    made.stop(10_000)
    hub.shutdown(10_000)


def _round_until(replica: Replica, done: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 20
    while True:
        assert replica.round().online
        if done() or time.monotonic() > deadline:
            assert done()
            return
        time.sleep(0.2)


def _statuses(engine: Engine) -> dict[str, int]:
    found: dict[str, int] = {}
    for row in rows_of(engine, "invitation"):
        found[row["status"]] = found.get(row["status"], 0) + 1
    return found


def test_offline_the_outbox_sends_its_own_rows_and_the_rest_once_when_the_server_answers(
        qtbot: QtBot, world: SyncWorld, proxy: TcpProxy, smtp_server: LoopbackSmtpServer,
        replica: Replica, outbox: Outbox) -> None:
    mail_settings.update_mail_settings(world.server_uow, world.admin, {
        "host": smtp_server.host, "port": smtp_server.port, "security": "none",
        "from_address": "invitations@rowing.example", "from_name": "Rowing",
        "rate_per_minute": 0, "connections": 2})
    settings.update_settings(world.server_uow, world.admin, {"daily_limit_per_inviter": 0})
    known = [f"known{i}@example.org" for i in range(5)]
    mine = [f"mine{i}@example.org" for i in range(2)]
    queue(world.server_uow, world.admin, *known)
    # (PostgreSQL: another database's open transaction on the shared test server can hold a
    # pull back for a moment; it never loses a change.)
    _round_until(replica, lambda: _statuses(replica.engine) == {"queued": len(known)})

    proxy.cut()
    assert not replica.round().online
    operator: Operator = replica.check_password(PASSWORD)
    queue(replica.uow, operator, *mine)
    finished: list[SendOutcome] = []
    outbox.finished.connect(finished.append)
    assert outbox.send(None, None, requester="compose") is None
    qtbot.waitUntil(lambda: bool(finished), timeout=WAIT_MS)
    report = finished[0].report
    assert report is not None
    assert (report.sent, report.waiting_server) == (len(mine), len(known)), describe(report)
    assert "5 waiting for the server" in describe(report)
    assert sorted(m.rcpt_tos[0] for m in smtp_server.messages) == sorted(mine)
    assert outbox.send_waiting == (None, "compose")

    # Rounds that do not reach the server start nothing.
    outbox.sync_round(replica.round())
    assert not outbox.running

    # Meanwhile `invite-desk send` on the server sends the rows it knows (it could not
    # before: the replica never claimed them), and the server answers again.
    server_mail = mail_settings.get_mail_settings(world.server_uow, world.admin.organization_id)
    headless = ParallelSender(world.server_uow, smtp_lanes(server_mail, None, timeout=10),
                              organization_id=world.admin.organization_id,
                              connections=1, per_day=2).run()
    assert headless.sent == 2  # its daily cap stops it halfway
    proxy.restore()
    round_ = replica.round()
    assert round_.online
    outbox.sync_round(round_)  # what the main window connects to the controller's rounds
    assert outbox.running
    qtbot.waitUntil(lambda: len(finished) == 2, timeout=WAIT_MS)
    again = finished[1].report
    assert again is not None and again.waiting_server == 0, describe(again)
    assert again.sent + headless.sent == len(known)
    for address in known + mine:
        assert smtp_server.count_for(address) == 1, address
    assert len(smtp_server.messages) == len(known) + len(mine)
    assert outbox.send_waiting is None
    assert _statuses(world.server) == {"sent": len(known) + len(mine)}
    _round_until(replica, lambda: _statuses(replica.engine) == {"sent": len(known) + len(mine)})
    assert not replica.rejected()


def test_the_composer_says_how_many_wait_for_the_server_and_were_sent_elsewhere(
        qtbot: Any, engine: Engine, uow: UnitOfWork, credentials: MemoryCredentialStore,
        admin: Operator) -> None:
    context = AppContext(engine=engine, uow=uow, credentials=credentials,
                         database_label="test")
    window = ComposeWindow(context, admin, runner=SynchronousRunner())
    qtbot.addWidget(window)
    window.send_finished(SendReport(sent=4, elsewhere=2, waiting_server=3))
    title = window.progress_title.text()
    assert title == ("Sending finished: 4 sent, 2 already sent elsewhere, "
                     "3 waiting for the server")
    summary = window.summary_label.text()
    assert "3 invitations wait for the server" in summary
    assert "they go out (once) by themselves when it answers again" in summary
    assert "2 invitations were already sent from elsewhere" in summary
    assert window.message_banner.kind == "warning"
    assert (window.progress_bar.value(), window.progress_bar.maximum()) == (6, 9)
    assert window.stop_sending(10_000)
