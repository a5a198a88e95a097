"""The Outbox delivers queued notification emails (issue 11) on its own thread, after a
change that may have queued one, at a real loopback SMTP server; with nothing queued it opens
no connection."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

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


def test_drains_sign_in_with_the_password_from_the_keyring(
        qtbot: QtBot, engine: Engine, uow: UnitOfWork, admin: Operator,
        make_operator: MakeOperator,
        make_smtp_server: Callable[..., LoopbackSmtpServer]) -> None:
    from invite_desk.services import mail_settings
    from invite_desk.services.credentials import MemoryCredentialStore
    from invite_desk.ui.outbox import keyring_password

    server = make_smtp_server(auth=("sender", "s3cret-smtp"))
    enable_confirmation_email(uow, admin, server)
    mail_settings.update_mail_settings(uow, admin, {
        "host": server.host, "port": server.port, "security": "none", "username": "sender",
        "from_address": "office@rowing.example", "from_name": "Harbour Rowing Club",
        "rate_per_minute": 0})
    credentials = MemoryCredentialStore()
    mail = mail_settings.get_mail_settings(uow, admin.organization_id)
    credentials.set(mail.password_key(), "s3cret-smtp")
    hal = make_operator(Role.USER, email="hal@example.org")
    people.issue_sign_in_link(uow, admin, hal.member_id)

    hub = OperationsHub(runner=SynchronousRunner())
    outbox = Outbox(engine, admin.organization_id, hub, notify_idle_ms=0,
                    password_source=keyring_password(credentials))
    try:
        with qtbot.waitSignal(outbox.notifications_sent, timeout=20_000) as run:
            assert outbox.drain_notifications()
        assert run.args[0].sent == 1 and server.count_for("hal@example.org") == 1
        assert server.auth_failures == 0
    finally:
        assert outbox.stop(10_000)
        hub.shutdown(10_000)
