"""Issue 13 in the composer: the confirmation says how long the batch takes at the provider's
pace, and a batch sent over K connections is delivered once per address."""

from __future__ import annotations

from typing import Any

from invite_desk.services import mail_settings
from invite_desk.services.operator import Operator
from invite_desk.services.uow import UnitOfWork
from tests.smtp_server import LoopbackSmtpServer
from tests.ui import test_compose_window as compose
from tests.ui.test_compose_window import (
    SEND_TIMEOUT_MS,
    configure_smtp,
    paste_and_check,
    statuses,
)

# The composer's own fixtures (a window on the test database with the loopback server).
context = compose.context
make_window = compose.make_window


def test_the_confirmation_says_how_long_the_batch_takes(
    make_window: Any, uow: UnitOfWork, admin: Operator, smtp_server: LoopbackSmtpServer,
    confirmations: Any,
) -> None:
    configure_smtp(uow, admin, smtp_server)
    mail_settings.update_mail_settings(uow, admin, {
        **mail_settings.get_mail_settings(uow, admin.organization_id).__dict__,
        "preset": "microsoft365", "rate_per_minute": 30, "connections": 3})
    window = make_window()
    paste_and_check(window, "\n".join(f"t{i}@example.org" for i in range(90)))
    confirmations.answer = False
    window.send_button.click()
    [asked] = confirmations.asked
    assert ("Takes: 90 invitations: about 2 minutes at 30 a minute over 3 connections."
            in asked["informative"])


def test_a_batch_goes_out_over_k_connections_once_per_address(
    make_window: Any, uow: UnitOfWork, admin: Operator, make_smtp_server: Any, qtbot: Any,
    confirmations: Any,
) -> None:
    server = make_smtp_server(reply_delay=0.005)
    configure_smtp(uow, admin, server)
    mail_settings.update_mail_settings(uow, admin, {
        **mail_settings.get_mail_settings(uow, admin.organization_id).__dict__,
        "connections": 3})
    window = make_window()
    paste_and_check(window, "\n".join(f"k{i}@example.org" for i in range(30)))
    with qtbot.waitSignal(window.sending_finished, timeout=SEND_TIMEOUT_MS) as finished:
        window.send_button.click()
    assert finished.args[0].sent == 30
    assert set(server.recipient_counts().values()) == {1} and len(server.messages) == 30
    assert server.max_concurrent == 3
    assert set(statuses(uow).values()) == {"sent"}


def test_a_batch_signed_in_with_oauth2_asks_no_password_and_goes_out_over_xoauth2(
    make_window: Any, uow: UnitOfWork, admin: Operator, make_smtp_server: Any, qtbot: Any,
    confirmations: Any, credentials: Any, monkeypatch: Any,
) -> None:
    from invite_desk.services.smtp import oauth
    from tests.integration.test_oauth_smtp import FakeEntra

    entra = FakeEntra()
    real_app = oauth.microsoft_app
    monkeypatch.setattr(oauth, "microsoft_app",
                        lambda cid, tenant, http_client=None: real_app(cid, tenant,
                                                                       http_client=entra))
    user = "invitations@rowing.example"
    server = make_smtp_server(xoauth2={user: "at-1"})
    mail = mail_settings.update_mail_settings(uow, admin, {
        "host": server.host, "port": server.port, "security": "none", "username": user,
        "from_address": user, "from_name": "Rowing", "rate_per_minute": 0,
        "preset": "microsoft365", "auth": "oauth-microsoft", "oauth_client_id": "c",
        "oauth_tenant": "contoso", "connections": 2})
    credentials.set(mail.refresh_token_key(), "rt-1")
    window = make_window()
    paste_and_check(window, "\n".join(f"o{i}@example.org" for i in range(6)))
    with qtbot.waitSignal(window.sending_finished, timeout=SEND_TIMEOUT_MS) as finished:
        window.send_button.click()  # no password prompt: it would fail the test (no answer)
    assert finished.args[0].sent == 6, finished.args[0]
    assert len(server.messages) == 6 and len(server.xoauth2_attempts) == 2
    assert len(entra.posts) == 1  # one refresh for both connections
