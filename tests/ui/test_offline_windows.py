"""The desktop in replica mode while the organization's server is away (issue 12).

A real PostgreSQL/MariaDB server behind the TCP proxy (tests/tcp_proxy.py): the operator
signs in once while it answers (the replica is made), then the proxy cuts every connection.
The main window still opens on the replica: Invitations, Members, Applications and Referrals
list and filter; the composer checks, queues and sends a batch through SMTP; the status bar
says offline with the changes waiting. When the server is back, a round pushes the batch
and the server holds it, sent, with the token hash of the link that was mailed. Neither the
database password nor the SMTP password is in any file the app wrote.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pytestqt.qtbot import QtBot
from sqlalchemy import select, update

from invite_desk import app, cli
from invite_desk.services import auth, mail_settings
from invite_desk.services.credentials import MemoryCredentialStore, database_key
from invite_desk.services.errors import AuthenticationFailed
from invite_desk.services.models import Invitation, Member
from invite_desk.services.operator import Operator
from invite_desk.services.referral_program import Period, PeriodKind
from invite_desk.services.registration.joining import register_with_invitation
from invite_desk.services.roles import Role
from invite_desk.services.sync.replica import replica_path
from invite_desk.ui.applications.model import StatusFilter
from invite_desk.ui.compose.layout import InputMode
from invite_desk.ui.main_window import MainWindow
from invite_desk.ui.sign_in_dialog import SignInDialog
from invite_desk.ui.tasks import SynchronousRunner
from tests.db_servers import fresh_server_database
from tests.registration_fixtures import form, invite, set_policy
from tests.smtp_server import LoopbackSmtpServer
from tests.sync_push_support import (
    ADMIN_EMAIL,
    BACKEND_PARAMS,
    PASSWORD,
    SyncWorld,
    queue,
)
from tests.tcp_proxy import TcpProxy, proxied_url, proxy_for

SMTP_PASSWORD = "smtp-S3cret-never-in-a-file"
WAIT_MS = 20_000


def _seed(world: SyncWorld, smtp: LoopbackSmtpServer) -> None:
    """Two members Ada referred, two applications waiting, two invitations queued, SMTP."""
    uow, admin = world.server_uow, world.admin
    for email, first, last in (("rita@example.org", "Rita", "Rower"),
                               ("sven@example.org", "Sven", "Sculler")):
        sent = invite(uow, admin, email)
        register_with_invitation(uow, sent.token, form(first, last))
    set_policy(uow, admin, adhesion_required=True)
    for email, first, last in (("zoe@example.org", "Zoë", "Martin"),
                               ("pat@example.org", "Pat", "Pending")):
        sent = invite(uow, admin, email)
        assert register_with_invitation(uow, sent.token, form(first, last)).application_pending
    queue(uow, admin, "ana@example.org", "ben@example.org", label="Spring")
    mail_settings.update_mail_settings(uow, admin, {
        "host": smtp.host, "port": smtp.port, "security": "none", "username": "mailer",
        "from_address": "invitations@rowing.example", "from_name": "Harbour Rowing Club",
        "rate_per_minute": 0})


def _wait(qtbot: QtBot, condition: Callable[[], Any], timeout: int = WAIT_MS) -> None:
    qtbot.waitUntil(lambda: bool(condition()), timeout=timeout)


def test_the_pages_work_offline_and_a_batch_sent_offline_reaches_the_server(
        qtbot: QtBot, world: SyncWorld, proxy: TcpProxy, make_smtp_server: Any) -> None:
    smtp: LoopbackSmtpServer = make_smtp_server(auth=("mailer", SMTP_PASSWORD))
    _seed(world, smtp)
    url = proxied_url(world.server.url, proxy)
    credentials = MemoryCredentialStore()
    launcher = app.replica_launcher(url, credentials=credentials, remember=True)
    assert credentials.get(database_key(world.server.url.set(port=proxy.port))) \
        == world.server.url.password  # the password went to the keyring (memory here)
    operator: Operator = launcher.sign_in(ADMIN_EMAIL, PASSWORD)  # once, online
    context = launcher.context()
    mail = mail_settings.get_mail_settings(context.uow, operator.organization_id)
    credentials.set(mail.password_key(), SMTP_PASSWORD)  # as the password prompt would

    proxy.cut()  # the server goes away
    window = MainWindow(context, operator, remember_geometry=False)
    qtbot.addWidget(window)
    window.show()
    try:
        sync = window.sync_status
        assert sync is not None and window.sync is not None
        _wait(qtbot, lambda: sync.label.text().startswith("Offline since "))
        assert "Cannot reach the server" in sync.label.toolTip()

        # Invitations: listed and searched from the replica.
        window.show_page("invitations")
        invitations = window.pages["invitations"]
        _wait(qtbot, lambda: invitations.model.rowCount() >= 2)
        invitations.set_search("ana@")
        _wait(qtbot, lambda: _emails(invitations) == ["ana@example.org"])

        # Members: who Ada referred, searched.
        window.show_page("members")
        members = window.pages["members"]
        _wait(qtbot, lambda: members.model.rowCount() >= 3)
        members.set_search("rower")
        _wait(qtbot, lambda: _names(members) == ["Rita Rower"])

        # Applications: the two waiting, then the "All" filter.
        window.show_page("applications")
        applications = window.pages["applications"]
        _wait(qtbot, lambda: sorted(r.name for r in applications.visible_rows())
              == ["Pat Pending", "Zoë Martin"])
        applications.filter_buttons[StatusFilter.ALL].click()
        _wait(qtbot, lambda: len(applications.visible_rows()) >= 2)

        # Referrals: Ada leads the board, in any period.
        window.show_page("referrals")
        referrals = window.pages["referrals"]
        _wait(qtbot, lambda: referrals.leaderboard_model.rowCount() >= 1)
        referrals.set_period(Period(PeriodKind.ALL_TIME))
        _wait(qtbot, lambda: referrals.leaderboard_model.rowCount() >= 1)

        # Compose: check, queue and send a batch while the server is away.
        window.show_page("compose")
        compose = window.pages["compose"]
        _wait(qtbot, lambda: compose.check_button.isEnabled() or True)
        compose.set_input_mode(InputMode.PASTE)
        compose.paste_edit.setPlainText("cleo@example.org\ndan@example.org")
        _wait(qtbot, compose.check_button.isEnabled)
        compose.check_button.click()
        _wait(qtbot, lambda: compose.send_button.text() == "Send 2 invitations")
        with qtbot.waitSignal(compose.sending_finished, timeout=WAIT_MS) as finished:
            compose.send_button.click()
        assert finished.args[0].sent == 2
        assert smtp.recipient_counts() == {"cleo@example.org": 1, "dan@example.org": 1}
        _wait(qtbot, lambda: "changes waiting" in sync.label.text()
              or "change waiting" in sync.label.text())
        assert sync.label.text().startswith("Offline since ")
        assert _server_invitation(world, "cleo@example.org") is None  # not there yet

        # The server is back: a round pushes the batch; the server has it, sent.
        proxy.restore()
        window.sync.sync_now()
        _wait(qtbot, lambda: (_server_invitation(world, "dan@example.org") or {})
              .get("status") == "sent")
        _wait(qtbot, lambda: sync.label.text().startswith("Online · synced "))
        for email in ("cleo@example.org", "dan@example.org"):
            on_server = _server_invitation(world, email)
            assert on_server is not None and on_server["status"] == "sent"
            assert on_server["token_hash"] == _replica_invitation(context, email)["token_hash"]
        _wait(qtbot, lambda: "waiting" not in sync.label.text())
    finally:
        window.sync.stop()
        window.finish_background_work()
        window.close()

    # Secrets: only in the credential store (the keyring), never in a file the app wrote.
    path = replica_path(launcher.database_label, ADMIN_EMAIL)
    launcher.dispose()
    assert path.exists()
    db_password = str(world.server.url.password)
    folders = [Path(os.environ["INVITE_DESK_DATA_DIR"]), Path(os.environ["INVITE_DESK_CONFIG_DIR"])]
    files = [p for folder in folders if folder.exists() for p in folder.rglob("*") if p.is_file()]
    assert path in files and any(p.name == "config.json" for p in files)
    # (the test server's password is also the start of the test database's name: a password
    # is what is not followed by more of a name)
    leak = re.compile(re.escape(db_password.encode()) + rb"(?![A-Za-z0-9_])")
    for file in files:
        content = file.read_bytes()
        assert not leak.search(content), file
        assert SMTP_PASSWORD.encode() not in content, file
    remembered = (Path(os.environ["INVITE_DESK_CONFIG_DIR"]) / "config.json").read_text()
    assert str(world.server.url.database) in remembered  # the server, without its password


def _emails(page: Any) -> list[str]:
    model = page.model
    rows = [model.row_at(r) for r in range(model.rowCount())]
    return [r.email for r in rows if r is not None]


def _names(page: Any) -> list[str]:
    model = page.model
    rows = [model.row_at(r) for r in range(model.rowCount())]
    return [r.name for r in rows if r is not None]


def _server_invitation(world: SyncWorld, email: str) -> dict[str, Any] | None:
    with world.server.connect() as connection:
        row = connection.execute(select(Invitation.__table__).where(
            Invitation.__table__.c.email == email)).mappings().first()
    return dict(row) if row is not None else None


def _replica_invitation(context: app.AppContext, email: str) -> dict[str, Any]:
    with context.engine.connect() as connection:
        row = connection.execute(select(Invitation.__table__).where(
            Invitation.__table__.c.email == email)).mappings().first()
    assert row is not None
    return dict(row)


def test_the_sign_in_dialog_opens_the_replica_and_works_while_the_server_is_away(
        qtbot: QtBot, world: SyncWorld, proxy: TcpProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = proxied_url(world.server.url, proxy)

    def dialog_for(launcher: app.ReplicaLauncher) -> SignInDialog:
        dialog = SignInDialog(None, database_label=launcher.database_label,
                              sign_in=launcher.sign_in, runner=SynchronousRunner())
        qtbot.addWidget(dialog)
        dialog.email_edit.setText(ADMIN_EMAIL)
        dialog.password_edit.setText(PASSWORD)
        return dialog

    proxy.cut()  # never signed in on this computer, and the server is away
    launcher = app.replica_launcher(url, credentials=MemoryCredentialStore())
    dialog = dialog_for(launcher)
    dialog.submit()
    assert dialog.operator is None
    assert "The first sign-in on this computer needs the server" in dialog.error_text

    proxy.restore()
    dialog.submit()
    assert dialog.operator is not None and launcher.replica is not None
    launcher.dispose()

    proxy.cut()  # later: the desktop starts and signs in without the server
    launcher = app.replica_launcher(url, credentials=MemoryCredentialStore())
    try:
        dialog = dialog_for(launcher)
        dialog.password_edit.setText("not the password")
        dialog.submit()
        assert dialog.operator is None and dialog.error_text
        dialog.password_edit.setText(PASSWORD)
        dialog.submit()
        assert dialog.operator is not None and dialog.operator.email == ADMIN_EMAIL
        context = launcher.context()
        assert context.replica is launcher.replica
        assert context.database_label.endswith("(replica on this computer)")
        assert PASSWORD not in context.database_label
    finally:
        launcher.dispose()

    # `invite-desk --db URL` (a server) starts this replica mode, not the server directly.
    started: list[app.ReplicaLauncher] = []
    monkeypatch.setattr(app, "default_credentials", MemoryCredentialStore)
    monkeypatch.setattr("invite_desk.ui.main.run_gui_replica",
                        lambda launcher: started.append(launcher) or 0)
    assert cli.main(["--db", url]) == 0  # with the server away: nothing was opened yet
    assert len(started) == 1 and started[0].database_label == launcher.database_label
    assert cli.main([]) == 0  # later, without --db: the remembered server's replica again
    assert len(started) == 2 and started[1].database_label == launcher.database_label


def test_an_open_page_shows_a_change_made_on_the_server_without_a_refresh(
        qtbot: QtBot, world: SyncWorld, proxy: TcpProxy) -> None:
    queue(world.server_uow, world.admin, "ana@example.org")
    launcher = app.replica_launcher(proxied_url(world.server.url, proxy),
                                    credentials=MemoryCredentialStore())
    operator = launcher.sign_in(ADMIN_EMAIL, PASSWORD)
    window = MainWindow(launcher.context(), operator, remember_geometry=False)
    qtbot.addWidget(window)
    window.show()
    try:
        assert window.sync_status is not None
        _wait(qtbot, lambda: window.sync_status.label.text().startswith("Online · synced "))
        window.show_page("invitations")
        invitations = window.pages["invitations"]
        _wait(qtbot, lambda: _emails(invitations) == ["ana@example.org"])
        heard: list[frozenset[str]] = []
        window.hub.changed.connect(lambda changes: heard.append(changes.kinds))

        queue(world.server_uow, world.admin, "bruno@example.org")  # someone else, elsewhere
        _wait(qtbot, lambda: sorted(_emails(invitations))
              == ["ana@example.org", "bruno@example.org"])
        assert any("invitations" in kinds for kinds in heard)  # the round's broadcast
    finally:
        if window.sync is not None:
            window.sync.stop()
        window.finish_background_work()
        window.close()
        launcher.dispose()


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_a_new_server_is_set_up_first_and_a_server_away_is_not_asked(backend: str) -> None:
    with fresh_server_database(backend) as url:
        proxy = proxy_for(url)
        try:
            launcher = app.replica_launcher(proxied_url(url, proxy),
                                            credentials=MemoryCredentialStore())
            proxy.cut()
            assert launcher.server_setup_uow() is None  # away: straight to the sign-in
            proxy.restore()
            uow = launcher.server_setup_uow()  # an empty server: migrated, needs its setup
            assert uow is not None
            auth.setup_organization(
                uow, organization_name="Harbour Rowing Club", description="",
                admin_email=ADMIN_EMAIL, admin_first_name="Ada", admin_last_name="Admin",
                password=PASSWORD, registration_base_url="https://join.example.org")
            assert launcher.server_setup_uow() is None  # set up: the sign-in follows
            operator = launcher.sign_in(ADMIN_EMAIL, PASSWORD)  # makes the replica
            assert operator.email == ADMIN_EMAIL and launcher.replica is not None
            launcher.dispose()
            proxy.hold()  # a dead network: a computer with a replica there does not wait
            started = time.monotonic()
            assert launcher.server_setup_uow() is None
            assert time.monotonic() - started < 1
        finally:
            proxy.stop()


def test_a_one_time_password_is_replaced_on_the_first_sign_in_that_makes_the_replica(
        world: SyncWorld, proxy: TcpProxy) -> None:
    hugo = world.member(Role.HR_TENANT, "hugo@example.org", "Hugo")
    auth.set_password(world.server_uow, hugo.member_id, "one-time-Passw0rd")
    with world.server.begin() as connection:
        connection.execute(update(Member.__table__).where(Member.__table__.c.id == hugo.member_id)
                           .values(must_change_password=True))
    url = proxied_url(world.server.url, proxy)
    launcher = app.replica_launcher(url, credentials=MemoryCredentialStore())
    try:
        with pytest.raises(auth.PasswordChangeRequired):
            launcher.sign_in("hugo@example.org", "one-time-Passw0rd")
        assert launcher.replica is None
        operator = launcher.sign_in("hugo@example.org", "one-time-Passw0rd", "my own Passw0rd!")
        assert operator.email == "hugo@example.org" and launcher.replica is not None
    finally:
        launcher.dispose()
    proxy.cut()  # the new password works offline; the one-time one no longer does anywhere
    launcher = app.replica_launcher(url, credentials=MemoryCredentialStore())
    try:
        with pytest.raises(AuthenticationFailed):
            launcher.sign_in("hugo@example.org", "one-time-Passw0rd")
        assert launcher.sign_in("hugo@example.org", "my own Passw0rd!").role is Role.HR_TENANT
    finally:
        launcher.dispose()
    with pytest.raises(AuthenticationFailed):
        auth.sign_in(world.server_uow, "hugo@example.org", "one-time-Passw0rd")
