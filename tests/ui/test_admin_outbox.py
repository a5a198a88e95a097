"""The Outbox delivers queued notification emails (issue 11) on its own thread, after a
change that may have queued one, at a real loopback SMTP server; with nothing queued it opens
no connection."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from pytestqt.qtbot import QtBot
from sqlalchemy import Engine

from invite_desk.services.admin import people
from invite_desk.services.operator import Operator
from invite_desk.services.roles import Role
from invite_desk.services.uow import UnitOfWork
from invite_desk.ui.hub import MEMBERS, SETTINGS, OperationsHub
from invite_desk.ui.outbox import Outbox
from invite_desk.ui.tasks import SynchronousRunner
from tests.conftest import MakeOperator
from tests.registration_fixtures import enable_confirmation_email, mail_text
from tests.smtp_server import LoopbackSmtpServer


@pytest.fixture
def hub_and_outbox(qtbot: QtBot, engine: Engine,
                   admin: Operator) -> Iterator[tuple[OperationsHub, Outbox]]:
    hub = OperationsHub(runner=SynchronousRunner())
    outbox = Outbox(engine, admin.organization_id, hub, notify_idle_ms=0)
    yield hub, outbox
    assert outbox.stop(10_000)
    hub.shutdown(10_000)


def test_a_sign_in_link_is_delivered_after_the_change_that_queued_it(
        qtbot: QtBot, uow: UnitOfWork, admin: Operator, make_operator: MakeOperator,
        smtp_server: LoopbackSmtpServer,
        hub_and_outbox: tuple[OperationsHub, Outbox]) -> None:
    hub, outbox = hub_and_outbox
    enable_confirmation_email(uow, admin, smtp_server)
    hal = make_operator(Role.USER, email="hal@example.org")
    with qtbot.waitSignal(outbox.notifications_sent, timeout=20_000,
                          check_params_cb=lambda run: run.sent == 1):
        hub.mutate(None, lambda: people.issue_sign_in_link(uow, admin, hal.member_id),
                   {MEMBERS})
    assert smtp_server.count_for("hal@example.org") == 1
    assert re.search(r"https://join\.rowing\.example/\S+", mail_text(smtp_server,
                                                                     "hal@example.org"))
    qtbot.waitUntil(lambda: not outbox.notifying)
    # Delivered once: a later drain sends nothing again.
    with qtbot.waitSignal(outbox.notifications_sent, timeout=20_000) as again:
        assert outbox.drain_notifications()
    assert again.args[0].sent == 0 and smtp_server.count_for("hal@example.org") == 1


def test_with_nothing_queued_no_connection_is_opened(
        qtbot: QtBot, uow: UnitOfWork, admin: Operator, smtp_server: LoopbackSmtpServer,
        hub_and_outbox: tuple[OperationsHub, Outbox]) -> None:
    hub, outbox = hub_and_outbox
    enable_confirmation_email(uow, admin, smtp_server)
    hub.broadcast({SETTINGS})  # not something that queues mail: no drain
    assert not outbox.notifying
    with qtbot.waitSignal(outbox.notifications_sent, timeout=20_000) as run:
        hub.broadcast({MEMBERS})
    assert run.args[0].sent == 0
    assert smtp_server.connections == 0
