"""Notification emails in replica mode (issue 12): claimed and sent only on the server.

A real PostgreSQL/MariaDB server behind the TCP proxy (tests/tcp_proxy.py), a real replica
(`Replica.open`), the real Outbox with its notify thread, and the loopback SMTP server. The
replica holds a copy of every queued notification row (tenant roles), so a drain on the
replica would send what `invite-desk notify` on the server also sends. The Outbox drains on
the server's engine while the replica's last round reached it, and waits while it did not.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pytestqt.qtbot import QtBot
from sqlalchemy import select

from invite_desk import app
from invite_desk.services import adhesion, mail_settings
from invite_desk.services.admin.notifications import NotificationRun, send_pending_notifications
from invite_desk.services.credentials import MemoryCredentialStore
from invite_desk.services.models import AdhesionStatus, Member, MemberStatus, OutgoingMail
from invite_desk.services.operator import Operator
from invite_desk.services.smtp.transport import SmtpTransport
from invite_desk.services.sync import journal
from invite_desk.services.sync.replica import Replica, RoundReport
from invite_desk.services.uow import UnitOfWork
from invite_desk.ui.hub import APPLICATIONS, MEMBERS, OperationsHub
from invite_desk.ui.main_window import MainWindow
from invite_desk.ui.outbox import Outbox
from invite_desk.ui.tasks import SynchronousRunner
from tests.registration_fixtures import enable_confirmation_email
from tests.smtp_server import LoopbackSmtpServer
from tests.sync_push_support import (
    ADMIN_EMAIL,
    PASSWORD,
    SyncWorld,
    rows_of,
)
from tests.tcp_proxy import TcpProxy, proxied_url

WAIT_MS = 20_000


@pytest.fixture
def outbox(qtbot: QtBot, replica: Replica, world: SyncWorld) -> Iterator[Outbox]:
    hub = OperationsHub(runner=SynchronousRunner())
    made = Outbox(replica.engine, world.admin.organization_id, hub, notify_idle_ms=0,
                  notify_target=replica.notification_engine)
    yield made
    made.stop(10_000)
    hub.shutdown(10_000)


def _applicants(world: SyncWorld, *emails: str) -> list[uuid.UUID]:
    ids = []
    with world.server_uow as uow:
        for email in emails:
            member = Member(organization_id=world.admin.organization_id, email=email,
                            email_normalized=email.lower(), first_name="Zoë",
                            last_name="Martin", status=MemberStatus.APPLICANT.value,
                            adhesion_status=AdhesionStatus.PENDING.value)
            uow.session.add(member)
            uow.session.flush()
            ids.append(member.id)
        uow.commit()
    return ids


def _mail_status(engine: Any, email: str) -> list[str]:
    return [r["status"] for r in rows_of(engine, "outgoing_mail", to_email=email)]


def _wait(qtbot: QtBot, condition: Callable[[], Any], timeout: int = WAIT_MS) -> None:
    qtbot.waitUntil(lambda: bool(condition()), timeout=timeout)


def _round_until(replica: Replica, wanted: Callable[[RoundReport], bool]) -> RoundReport:
    """Rounds until `wanted` (PostgreSQL: another database's open transaction on the shared
    test server can hold a pull back for a moment; it never loses a change)."""
    deadline = time.monotonic() + 20
    while True:
        report = replica.round()
        if wanted(report) or time.monotonic() > deadline:
            return report
        time.sleep(0.2)


def _server_notify(world: SyncWorld) -> NotificationRun:
    """What `invite-desk notify` does on the server."""
    uow = UnitOfWork(world.server)
    mail = mail_settings.get_mail_settings(uow, world.admin.organization_id)
    with SmtpTransport(mail.smtp_config(timeout=10), None) as transport:
        return send_pending_notifications(uow, transport)  # type: ignore[arg-type]


def test_offline_the_drain_waits_and_an_offline_approval_is_emailed_once_when_the_server_returns(
        qtbot: QtBot, world: SyncWorld, proxy: TcpProxy, smtp_server: LoopbackSmtpServer,
        replica: Replica, outbox: Outbox) -> None:
    enable_confirmation_email(world.server_uow, world.admin, smtp_server)
    (zoe,) = _applicants(world, "zoe@example.org")
    assert _round_until(replica, lambda r: rows_of(replica.engine, "member", id=zoe)).online
    operator: Operator = replica.check_password(PASSWORD)

    proxy.cut()  # the server goes away
    assert not replica.round().online
    assert replica.notification_engine() is None
    adhesion.approve(replica.uow, operator, zoe)  # offline: its email is queued on the replica
    assert _mail_status(replica.engine, "zoe@example.org") == ["queued"]
    waiting = journal.pending_count(replica.engine)
    assert waiting >= 1

    # The approval's broadcast (and any explicit drain) does not send from the replica.
    outbox._hub.broadcast({MEMBERS})
    assert outbox.drain_notifications() is False
    assert outbox.notify_waiting and not outbox.notifying
    qtbot.wait(300)
    assert smtp_server.messages == []
    assert _mail_status(replica.engine, "zoe@example.org") == ["queued"]  # not claimed here
    assert journal.pending_count(replica.engine) == waiting  # the drain journaled nothing

    proxy.restore()  # the server is back: the round pushes the approval and its email row
    report = replica.round()
    assert report.online and report.pushed is not None and report.pushed.applied >= 1
    assert _mail_status(world.server, "zoe@example.org") == ["queued"]
    outbox.sync_round(report)  # what the main window connects to the controller's rounds
    _wait(qtbot, lambda: smtp_server.count_for("zoe@example.org") == 1 and not outbox.notifying)
    assert not outbox.notify_waiting
    assert _mail_status(world.server, "zoe@example.org") == ["sent"]
    assert "was approved" in str(smtp_server.messages[0].message.get_body(("plain",)))

    # Nothing goes out again: not from the server's notify, not from more drains and rounds.
    assert _server_notify(world).sent == 0
    outbox.sync_round(replica.round())
    assert outbox.drain_notifications()
    _wait(qtbot, lambda: not outbox.notifying)
    _round_until(replica, lambda r: _mail_status(replica.engine, "zoe@example.org") == ["sent"])
    assert _mail_status(replica.engine, "zoe@example.org") == ["sent"]  # the pull brought it
    assert journal.pending_count(replica.engine) == 0
    assert smtp_server.count_for("zoe@example.org") == 1
    assert len(smtp_server.messages) == 1


def test_a_replica_drain_and_the_servers_notify_racing_send_each_email_once(
        qtbot: QtBot, world: SyncWorld, make_smtp_server: Any, replica: Replica,
        outbox: Outbox) -> None:
    smtp: LoopbackSmtpServer = make_smtp_server(reply_delay=0.01)  # a slower server: overlap
    enable_confirmation_email(world.server_uow, world.admin, smtp)
    emails = [f"applicant{i:02}@example.org" for i in range(16)]
    for member_id in _applicants(world, *emails):
        adhesion.approve(world.server_uow, world.admin, member_id)  # queued on the server
    # The replica holds its own copy of every queued row.
    _round_until(replica, lambda r: len(rows_of(replica.engine, "outgoing_mail")) == 16)
    assert sorted(r["status"] for r in rows_of(replica.engine, "outgoing_mail")) \
        == ["queued"] * 16
    assert replica.notification_engine() is not None

    runs: list[NotificationRun] = []
    errors: list[BaseException] = []

    def server_side() -> None:
        try:
            runs.append(_server_notify(world))
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    drained: list[NotificationRun] = []
    outbox.notifications_sent.connect(drained.append)
    racer = threading.Thread(target=server_side)
    assert outbox.drain_notifications()  # on the server, beside `invite-desk notify`
    racer.start()
    _wait(qtbot, lambda: drained and not outbox.notifying)
    racer.join(30)
    assert not errors, errors
    assert runs and drained
    assert runs[0].sent + drained[0].sent == 16  # between them, each row once
    for email in emails:
        assert smtp.count_for(email) == 1, email
    assert len(smtp.messages) == 16
    assert sorted(_mail_status(world.server, e)[0] for e in emails) == ["sent"] * 16
    # The replica's copies were never claimed there; the pull brings the server's answer.
    _round_until(replica, lambda r: all(
        s == "sent" for s in (x["status"] for x in rows_of(replica.engine, "outgoing_mail"))))
    assert {r["status"] for r in rows_of(replica.engine, "outgoing_mail")} == {"sent"}
    assert journal.pending_count(replica.engine) == 0  # the drain made no command here
    with replica.engine.connect() as connection:
        assert connection.execute(select(OutgoingMail.id)).first() is not None


def test_the_main_window_in_replica_mode_emails_an_offline_approval_once_after_the_server_returns(
        qtbot: QtBot, world: SyncWorld, proxy: TcpProxy, smtp_server: LoopbackSmtpServer) -> None:
    """The wiring: the window's Outbox drains on the server, and its sync rounds drain."""
    enable_confirmation_email(world.server_uow, world.admin, smtp_server)
    (zoe,) = _applicants(world, "zoe@example.org")
    launcher = app.replica_launcher(proxied_url(world.server.url, proxy),
                                    credentials=MemoryCredentialStore())
    operator = launcher.sign_in(ADMIN_EMAIL, PASSWORD)  # once, online: the replica is made
    context = launcher.context()
    proxy.cut()
    window = MainWindow(context, operator, remember_geometry=False)
    qtbot.addWidget(window)
    window.show()
    try:
        sync = window.sync_status
        assert sync is not None and window.sync is not None
        _wait(qtbot, lambda: sync.label.text().startswith("Offline since "))
        # An approval made offline (as the Applications page does it, through the hub).
        window.hub.mutate(None, lambda: adhesion.approve(context.uow, operator, zoe),
                          changes={MEMBERS, APPLICATIONS})
        _wait(qtbot, lambda: _mail_status(context.engine, "zoe@example.org") == ["queued"])
        _wait(qtbot, lambda: window.outbox.notify_waiting)
        qtbot.wait(500)
        assert smtp_server.messages == []  # not sent from the replica

        proxy.restore()
        window.sync.sync_now()  # (or the next round on its own)
        _wait(qtbot, lambda: smtp_server.count_for("zoe@example.org") == 1)
        _wait(qtbot, lambda: _mail_status(world.server, "zoe@example.org") == ["sent"])
        _wait(qtbot, lambda: _mail_status(context.engine, "zoe@example.org") == ["sent"])
        qtbot.wait(500)
        assert len(smtp_server.messages) == 1
    finally:
        window.sync.stop()
        window.finish_background_work()
        window.close()
        launcher.dispose()
