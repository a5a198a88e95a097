"""Sending end to end: queue a batch, send it to a real loopback SMTP server, read what arrived."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from invite_desk.services import mail_settings, organization
from invite_desk.services.invitations.importing import parse_pasted
from invite_desk.services.invitations.preflight import RowStatus, run_preflight
from invite_desk.services.invitations.queueing import queue_invitations
from invite_desk.services.invitations.sending import OutboxSender, SendControl
from invite_desk.services.invitations.tokens import hash_token
from invite_desk.services.models import AuditLog, Invitation, InvitationStatus
from invite_desk.services.operator import Operator
from invite_desk.services.smtp.transport import RetryPolicy, SmtpTransport
from invite_desk.services.uow import UnitOfWork
from tests.images import PNG_LOGO
from tests.smtp_server import LoopbackSmtpServer

LOGO = PNG_LOGO  # a real image: the services refuse a bare PNG signature


def configure(uow: UnitOfWork, admin: Operator, server: LoopbackSmtpServer, **extra: object) -> None:
    values = {"host": server.host, "port": server.port, "security": "none",
              "from_address": "invitations@rowing.example", "from_name": "Harbour Rowing Club",
              "rate_per_minute": 0}
    values.update(extra)
    mail_settings.update_mail_settings(uow, admin, values)
    organization.update_organization(uow, admin, {"logo": LOGO, "logo_mime": "image/png",
                                                  "accent_color": "#0B7A75"})


def queue(uow: UnitOfWork, admin: Operator, text: str, message: str = "") -> None:
    pre = run_preflight(uow, admin.organization_id, parse_pasted(text).rows)
    queue_invitations(uow, admin, pre.ready, personal_message=message, source="paste")


def sender(uow: UnitOfWork, admin: Operator, server: LoopbackSmtpServer, **kw: object) -> OutboxSender:
    settings = mail_settings.get_mail_settings(uow, admin.organization_id)
    transport = SmtpTransport(settings.smtp_config(timeout=5), None)
    return OutboxSender(uow, transport, organization_id=admin.organization_id, **kw)  # type: ignore[arg-type]


def statuses(uow: UnitOfWork) -> dict[str, str]:
    with uow:
        return {i.email: i.status for i in uow.session.scalars(select(Invitation))}


def test_batch_arrives_branded_with_a_link_matching_the_stored_hash(
    uow: UnitOfWork, admin: Operator, smtp_server: LoopbackSmtpServer
) -> None:
    configure(uow, admin, smtp_server)
    queue(uow, admin, "Zoë Martin <zoe@example.org>\nsam@example.org\n",
          message="Come row with us! <b>{{ 7*7 }}</b>")
    report = sender(uow, admin, smtp_server).run()

    assert report.sent == 2 and report.failed == 0
    assert sorted(m.rcpt_tos[0] for m in smtp_server.messages) == ["sam@example.org", "zoe@example.org"]
    received = next(m for m in smtp_server.messages if m.rcpt_tos == ("zoe@example.org",))
    msg = received.message
    for header in ("From", "To", "Subject", "Message-ID", "Date"):
        assert msg[header], header
    assert "Harbour Rowing Club" in msg["From"]
    assert "Ada Admin" in msg["Subject"]
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    assert "{{ 7*7 }}" in text and "49" not in text
    assert "&lt;b&gt;{{ 7*7 }}&lt;/b&gt;" in html  # escaped, never executed
    assert "#0B7A75" in html.upper() and "cid:" in html
    assert any(p.get_content_type() == "image/png" for p in msg.walk())
    link = re.search(r"https://join\.example\.org/join/([A-Za-z0-9_-]+)", text)
    assert link, text
    with uow:
        inv = uow.session.scalars(select(Invitation).where(Invitation.email == "zoe@example.org")).one()
        assert inv.status == InvitationStatus.SENT
        assert inv.token_hash == hash_token(link.group(1))
        assert inv.message_id == msg["Message-ID"]
        assert inv.expires_at is not None and inv.sent_at is not None
        actions = set(uow.session.scalars(select(AuditLog.action).where(AuditLog.entity_id == inv.id)))
        assert {"invitation.queued", "invitation.sent"} <= actions


def test_temporary_failures_are_retried_then_sent(
    uow: UnitOfWork, admin: Operator, smtp_server: LoopbackSmtpServer
) -> None:
    configure(uow, admin, smtp_server)
    queue(uow, admin, "a@example.org\nb@example.org\n")
    smtp_server.fail_next("RCPT", 450, times=1)
    smtp_server.fail_next("MAIL", 421, times=1)
    report = sender(uow, admin, smtp_server,
                    retry=RetryPolicy(max_attempts=4, base_delay=0.05, max_delay=0.1)).run()
    assert report.sent == 2 and report.retried >= 2
    assert smtp_server.recipient_counts() == {"a@example.org": 1, "b@example.org": 1}
    assert set(statuses(uow).values()) == {"sent"}


def test_permanent_failure_keeps_the_reply_and_the_rest_is_sent(
    uow: UnitOfWork, admin: Operator, smtp_server: LoopbackSmtpServer
) -> None:
    configure(uow, admin, smtp_server)
    queue(uow, admin, "a@example.org\ngone@example.org\nc@example.org\n")
    smtp_server.fail_recipient("gone@example.org", 550)
    report = sender(uow, admin, smtp_server).run()
    assert report.sent == 2 and report.failed == 1
    assert report.failures[0][0] == "gone@example.org"
    with uow:
        failed = uow.session.scalars(select(Invitation).where(Invitation.status == "failed")).one()
        assert failed.last_error.startswith("550") and "no such user" in failed.last_error
        assert failed.token_hash is None
    assert smtp_server.count_for("gone@example.org") == 0


def test_dropped_connection_reconnects_and_finishes(
    uow: UnitOfWork, admin: Operator, smtp_server: LoopbackSmtpServer
) -> None:
    configure(uow, admin, smtp_server)
    addresses = [f"m{i}@example.org" for i in range(12)]
    queue(uow, admin, "\n".join(addresses))
    smtp_server.drop_connection_after(5)
    report = sender(uow, admin, smtp_server).run()
    assert report.sent == 12
    assert smtp_server.connections >= 2
    assert all(smtp_server.count_for(a) == 1 for a in addresses)


def test_cancel_leaves_the_rest_queued_and_nothing_is_lost(
    uow: UnitOfWork, admin: Operator, smtp_server: LoopbackSmtpServer
) -> None:
    configure(uow, admin, smtp_server)
    queue(uow, admin, "\n".join(f"c{i}@example.org" for i in range(10)))
    control = SendControl()
    seen: list[int] = []

    def progress(p: object) -> None:
        seen.append(1)
        if len(seen) == 4:
            control.cancel()

    report = sender(uow, admin, smtp_server, control=control, on_progress=progress).run()
    assert report.cancelled
    states = statuses(uow)
    assert len(states) == 10
    assert set(states.values()) <= {"sent", "queued"}
    assert sum(1 for s in states.values() if s == "sent") == len(smtp_server.messages)
    # Resuming later sends the rest exactly once.
    sender(uow, admin, smtp_server).run()
    assert set(statuses(uow).values()) == {"sent"}
    assert len(smtp_server.messages) == 10


@pytest.mark.parametrize("n", [3])
def test_preflight_rows(uow: UnitOfWork, admin: Operator, n: int) -> None:
    pre = run_preflight(uow, admin.organization_id, parse_pasted(
        "ok@example.org\nOK@example.org\nnot-an-address\nada.admin@example.org\n").rows)
    assert [r.status for r in pre.rows] == [RowStatus.READY, RowStatus.DUPLICATE, RowStatus.INVALID,
                                            RowStatus.MEMBER]
    assert "row 1" in pre.rows[1].reason
