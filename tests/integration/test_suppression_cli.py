"""`invite-desk suppression list|add|remove` and `invite-desk bounces configure|fetch` (the
latter against the real dovecot bounce mailbox)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from invite_desk import app, cli
from invite_desk.services import suppression
from invite_desk.services.credentials import MemoryCredentialStore
from invite_desk.services.models import Invitation, InvitationStatus
from invite_desk.services.operator import Operator
from invite_desk.services.roles import Role
from invite_desk.services.uow import UnitOfWork
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, MakeOperator
from tests.imap_fixtures import BounceMailbox, corpus_message
from tests.integration.test_sending import configure, queue, sender
from tests.smtp_server import LoopbackSmtpServer


@pytest.fixture(autouse=True)
def _no_real_keyring(monkeypatch: pytest.MonkeyPatch) -> None:
    store = MemoryCredentialStore()  # one "keyring" shared by this test's CLI runs
    monkeypatch.setattr(app, "default_credentials", lambda: store)
    monkeypatch.setenv("INVITE_DESK_OPERATOR_PASSWORD", ADMIN_PASSWORD)


def run(sqlite_url: str, *args: str) -> int:
    return cli.main(["--db", sqlite_url, *args])


def test_add_list_remove(
    uow: UnitOfWork, admin: Operator, sqlite_url: str, capsys: pytest.CaptureFixture[str],
) -> None:
    assert run(sqlite_url, "suppression", "add", "--operator", ADMIN_EMAIL, "Ann@Example.org",
               "--note", "asked by letter") == 0
    assert "suppressed: Ann@example.org" in capsys.readouterr().out  # as typed, domain folded
    assert run(sqlite_url, "suppression", "add", "--operator", ADMIN_EMAIL,
               "ann@example.org") == 2
    assert "already on the suppression list" in capsys.readouterr().err
    assert run(sqlite_url, "suppression", "list", "--operator", ADMIN_EMAIL) == 0
    listed = capsys.readouterr()
    assert "Ann@example.org\tAdded by an admin" in listed.out and "asked by letter" in listed.out
    assert "1 address" in listed.err
    assert run(sqlite_url, "suppression", "remove", "--operator", ADMIN_EMAIL,
               "ann@example.org") == 0
    assert "no longer suppressed: Ann@example.org" in capsys.readouterr().out
    assert suppression.list_suppressions(uow, admin) == ()
    assert run(sqlite_url, "suppression", "list", "--operator", ADMIN_EMAIL, "--all") == 0
    assert "[undone " in capsys.readouterr().out


def test_a_member_is_refused_with_the_reason(
    sqlite_url: str, make_operator: MakeOperator, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    user = make_operator(Role.USER, password="a long user password")
    monkeypatch.setenv("INVITE_DESK_OPERATOR_PASSWORD", "a long user password")
    assert run(sqlite_url, "suppression", "list", "--operator", user.email) == 2
    assert "HR_TENANT" in capsys.readouterr().err


def test_bounces_configure_then_fetch_through_the_cli(
    uow: UnitOfWork, admin: Operator, smtp_server: LoopbackSmtpServer,
    bounce_mailbox: BounceMailbox, sqlite_url: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure(uow, admin, smtp_server)
    queue(uow, admin, "gone@example.net\naway@example.net")
    sender(uow, admin, smtp_server).run()
    with uow:
        rows = {r.email: (r.id, r.message_id) for r in uow.session.scalars(select(Invitation))}
    for name, address in (("postfix_5.1.1.eml", "gone@example.net"),
                          ("vacation_out_of_office.eml", "away@example.net")):
        invitation_id, message_id = rows[address]
        bounce_mailbox.append(corpus_message(name, recipient=address,
                                             invitation_id=invitation_id,
                                             message_id=message_id or ""))
    # Without a password anywhere: said, nothing read.
    assert run(sqlite_url, "bounces", "configure", "--operator", ADMIN_EMAIL, "--host",
               bounce_mailbox.host, "--port", str(bounce_mailbox.port), "--security", "none",
               "--user", bounce_mailbox.username) == 0
    assert run(sqlite_url, "bounces", "fetch", "--operator", ADMIN_EMAIL) == 2
    assert "No password for the bounce mailbox" in capsys.readouterr().err
    # The password given once goes to the keyring; later runs need nothing else.
    monkeypatch.setenv("INVITE_DESK_IMAP_PASSWORD", bounce_mailbox.password)
    assert run(sqlite_url, "bounces", "configure", "--operator", ADMIN_EMAIL, "--host",
               bounce_mailbox.host, "--port", str(bounce_mailbox.port), "--security", "none",
               "--user", bounce_mailbox.username) == 0
    monkeypatch.delenv("INVITE_DESK_IMAP_PASSWORD")
    capsys.readouterr()
    assert run(sqlite_url, "bounces", "fetch", "--operator", ADMIN_EMAIL) == 0
    out = capsys.readouterr().out
    assert "suppressed: gone@example.net (5.1.1" in out
    assert "2 messages read, 1 hard bounce, 0 soft, 1 auto-reply ignored" in out
    with uow:
        statuses = {r.email: r.status for r in uow.session.scalars(select(Invitation))}
    assert statuses == {"gone@example.net": InvitationStatus.BOUNCED,
                        "away@example.net": InvitationStatus.SENT}
    assert run(sqlite_url, "bounces", "fetch", "--operator", ADMIN_EMAIL) == 0
    assert "0 messages read" in capsys.readouterr().out
