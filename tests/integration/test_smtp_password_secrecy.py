"""The SMTP password lives in the OS keyring only: never in a database row, a file or a log."""

from __future__ import annotations

import logging
import os
import uuid
from pathlib import Path

import pytest
from sqlalchemy import MetaData, select

from invite_desk.services import mail_settings
from invite_desk.services.credentials import (
    CredentialStore,
    KeyringCredentialStore,
    MemoryCredentialStore,
)
from invite_desk.services.invitations.importing import parse_pasted
from invite_desk.services.invitations.preflight import run_preflight
from invite_desk.services.invitations.queueing import queue_invitations
from invite_desk.services.invitations.sending import OutboxSender
from invite_desk.services.operator import Operator
from invite_desk.services.smtp.transport import SmtpTransport
from invite_desk.services.uow import UnitOfWork
from tests.smtp_server import LoopbackSmtpServer


def _real_keyring_or_skip() -> CredentialStore:
    if os.environ.get("INVITE_DESK_TEST_KEYRING") != "secretservice":
        if os.environ.get("INVITE_DESK_REQUIRE_SERVERS") == "1":
            pytest.fail("INVITE_DESK_TEST_KEYRING=secretservice is not set: the real keyring "
                        "test must run in CI (scripts/test.sh starts gnome-keyring).")
        pytest.skip("no Secret Service keyring in this session")
    import keyring
    from keyring.backends import SecretService

    backend = keyring.get_keyring()
    backends = getattr(backend, "backends", [backend])
    assert any(isinstance(b, SecretService.Keyring) for b in backends), backend
    return KeyringCredentialStore(service=f"invite-desk-test-{uuid.uuid4().hex[:8]}")


def _send_with_stored_password(uow: UnitOfWork, admin: Operator, store: CredentialStore,
                               server: LoopbackSmtpServer, password: str) -> None:
    saved = mail_settings.update_mail_settings(uow, admin, {
        "host": server.host, "port": server.port, "security": "starttls", "username": "mailer",
        "from_address": "invitations@rowing.example", "from_name": "Rowing", "rate_per_minute": 0,
    }, password=password, credentials=store)
    pre = run_preflight(uow, admin.organization_id, parse_pasted("x@example.org\ny@example.org").rows)
    queue_invitations(uow, admin, pre.ready)
    secret = store.get(saved.password_key())
    assert secret == password
    transport = SmtpTransport(saved.smtp_config(timeout=5), secret,
                              ssl_context=server.client_ssl_context())
    report = OutboxSender(uow, transport, organization_id=admin.organization_id).run()
    assert report.sent == 2, report


def _assert_nowhere(password: str, uow: UnitOfWork, folders: list[Path], log_text: str) -> None:
    needle = password.encode()
    with uow:
        metadata = MetaData()
        metadata.reflect(uow.session.get_bind())
        for table in metadata.sorted_tables:
            for row in uow.session.execute(select(table)):
                assert password not in repr(tuple(row)), f"password found in table {table.name}"
    for folder in folders:
        for path in folder.rglob("*"):
            if path.is_file():
                assert needle not in path.read_bytes(), f"password found in {path}"
    assert password not in log_text


@pytest.mark.keyring
def test_real_keyring_holds_the_smtp_password_and_nothing_else_does(
    uow: UnitOfWork, admin: Operator, make_smtp_server: object, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = _real_keyring_or_skip()
    password = f"S3cret-{uuid.uuid4().hex}"
    server = make_smtp_server(auth=("mailer", password), tls="starttls")  # type: ignore[operator]
    caplog.set_level(logging.DEBUG)
    try:
        _send_with_stored_password(uow, admin, store, server, password)
        # A fresh store object (as on the next start) reads it back from the keyring.
        key = mail_settings.get_mail_settings(uow, admin.organization_id).password_key()
        assert KeyringCredentialStore(service=store.service).get(key) == password  # type: ignore[attr-defined]
    finally:
        store.delete(mail_settings.get_mail_settings(uow, admin.organization_id).password_key())
    folders = [tmp_path, Path(os.environ["INVITE_DESK_DATA_DIR"]).parent]
    _assert_nowhere(password, uow, folders, caplog.text)


def test_password_stays_out_of_database_files_and_logs_with_any_store(
    uow: UnitOfWork, admin: Operator, make_smtp_server: object, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    password = f"S3cret-{uuid.uuid4().hex}"
    server = make_smtp_server(auth=("mailer", password), tls="starttls")  # type: ignore[operator]
    caplog.set_level(logging.DEBUG)
    _send_with_stored_password(uow, admin, MemoryCredentialStore(), server, password)
    _assert_nowhere(password, uow, [tmp_path, Path(os.environ["INVITE_DESK_DATA_DIR"]).parent],
                    caplog.text)
