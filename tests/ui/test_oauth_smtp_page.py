"""Issue 13 on Settings > Email (SMTP): provider presets, the K connections and daily limit,
and the OAuth2 sign-in (msal faked at its HTTP boundary; the loopback server checks XOAUTH2)."""

from __future__ import annotations

from typing import Any

import pytest
from pytestqt.qtbot import QtBot

from invite_desk.services import mail_settings
from invite_desk.services.credentials import MemoryCredentialStore
from invite_desk.services.operator import Operator
from invite_desk.services.smtp import oauth
from invite_desk.services.uow import UnitOfWork
from invite_desk.ui.tasks import SynchronousRunner
from tests.integration.test_oauth_smtp import FakeEntra
from tests.ui.test_settings_email_pages import click, open_settings, retype, smtp_page

USER = "invitations@harbour.example"


def choose(combo: Any, value: str) -> None:
    combo.setCurrentIndex(combo.findData(value))


def test_choosing_microsoft_365_fills_the_server_limits_and_sign_in(
    qtbot: QtBot, uow: UnitOfWork, admin: Operator, credentials: MemoryCredentialStore,
) -> None:
    window = open_settings(qtbot, uow, admin, "email-smtp", credentials)
    page = smtp_page(window)
    assert not page.sign_in_row.isVisible()  # password sign-in: no OAuth2 controls
    assert not page.row("oauth_client_id").container.isVisible()
    choose(page.preset_combo, "microsoft365")
    assert page.host_edit.text() == "smtp.office365.com" and page.port_edit.text() == "587"
    assert page.security_buttons["starttls"].isChecked()
    assert page.rate_edit.text() == "30"
    assert page.auth_combo.currentData() == oauth.MICROSOFT
    assert page.sign_in_row.isVisible() and page.row("oauth_tenant").container.isVisible()
    assert page.sign_in_button.text() == "Sign in with Microsoft 365…"
    assert "10,000 recipients a day" in page.preset_note.text()
    assert not page.password_edit.isEnabled()
    assert page.password_status.text().startswith("Not used: the OAuth2 sign-in")

    retype(qtbot, page.username_edit, USER)
    retype(qtbot, page.from_address_edit, USER)
    retype(qtbot, page.client_id_edit, "11111111-2222-3333-4444-555555555555")
    retype(qtbot, page.tenant_edit, "harbour.onmicrosoft.com")
    retype(qtbot, page.connections_edit, "2")
    with qtbot.waitSignal(window.settings_saved, timeout=2000):
        click(qtbot, window.save_button)
    stored = mail_settings.get_mail_settings(uow, admin.organization_id)
    assert (stored.preset, stored.auth, stored.connections, stored.rate_per_minute) == (
        "microsoft365", oauth.MICROSOFT, 2, 30)
    assert stored.oauth_tenant == "harbour.onmicrosoft.com"
    assert stored.connection_count == 2

    choose(page.preset_combo, "google")  # another provider replaces the filled-in values
    assert page.host_edit.text() == "smtp.gmail.com"
    assert page.auth_combo.currentData() == oauth.GOOGLE
    assert page.client_secret_edit.isVisible() and not page.row("oauth_tenant").container.isVisible()


def test_microsoft_sign_in_shows_the_device_code_and_keeps_only_the_refresh_token(
    qtbot: QtBot, uow: UnitOfWork, admin: Operator, credentials: MemoryCredentialStore,
    make_smtp_server: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    entra = FakeEntra()
    real_app = oauth.microsoft_app
    monkeypatch.setattr(oauth, "microsoft_app",
                        lambda cid, tenant, http_client=None: real_app(cid, tenant,
                                                                       http_client=entra))
    server = make_smtp_server(xoauth2={USER: "at-2"})
    mail_settings.update_mail_settings(uow, admin, {
        "host": server.host, "port": server.port, "security": "none", "username": USER,
        "from_address": USER, "from_name": "Harbour", "rate_per_minute": 30,
        "preset": "microsoft365", "auth": oauth.MICROSOFT, "oauth_client_id": "client-1",
        "oauth_tenant": "contoso"})
    window = open_settings(qtbot, uow, admin, "email-smtp", credentials)
    page = smtp_page(window)
    page.runner = SynchronousRunner()
    assert page.sign_in_status.text() == "Not signed in on this computer yet."

    click(qtbot, page.test_button)  # the test checks the sign-in before connecting
    assert page.test_result.kind == "error"
    assert "Sign in again with Microsoft 365" in page.test_result.text()
    assert server.connections == 0

    prompts: list[str] = []
    page.sign_in_prompt.connect(prompts.append)
    click(qtbot, page.sign_in_button)
    assert prompts and "F7K2-Q9" in prompts[0]  # the device code was shown to the person
    assert page.test_result.kind == "success"
    assert "Signed in with Microsoft 365" in page.test_result.text()
    assert credentials._secrets == {f"oauth:{oauth.MICROSOFT}:{USER}": "rt-1"}
    assert page.sign_in_status.text().startswith("Signed in on this computer")

    click(qtbot, page.test_button)  # refreshes rt-1 -> at-2, which the server accepts
    assert page.test_result.kind == "success", page.test_result.text()
    assert server.xoauth2_attempts == [f"user={USER}\x01auth=Bearer at-2\x01\x01"]
