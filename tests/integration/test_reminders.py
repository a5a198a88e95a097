"""Reminders at a real loopback SMTP server: once, N days before the link expires, never for
revoked, accepted, expired, bounced or suppressed invitations, and never twice whatever
crashes or re-runs happen. Scheduled batches: not sent before their time."""

from __future__ import annotations

import re
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from invite_desk import app, cli
from invite_desk.services import reminders, suppression
from invite_desk.services import settings as settings_service
from invite_desk.services.credentials import MemoryCredentialStore
from invite_desk.services.errors import PermissionDenied, ValidationFailed
from invite_desk.services.invitations.send_scope import SendScope, sendable_scope
from invite_desk.services.invitations.tokens import hash_token
from invite_desk.services.mail_settings import get_mail_settings
from invite_desk.services.models import AuditLog, Batch, Invitation, InvitationStatus, utcnow
from invite_desk.services.operator import Operator
from invite_desk.services.registration.links import LinkState, open_link
from invite_desk.services.roles import Role
from invite_desk.services.scheduling import schedule_batch, scheduled_later
from invite_desk.services.smtp.transport import SmtpTransport
from invite_desk.services.uow import UnitOfWork
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, MakeOperator
from tests.integration.test_sending import configure, queue, sender
from tests.smtp_server import LoopbackSmtpServer

DAY = timedelta(days=1)


@pytest.fixture(autouse=True)
def _no_real_keyring(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app, "default_credentials", MemoryCredentialStore)


def _transport(uow: UnitOfWork, admin: Operator) -> SmtpTransport:
    return SmtpTransport(get_mail_settings(uow, admin.organization_id).smtp_config(timeout=5),
                         None)


def _send_all(uow: UnitOfWork, admin: Operator, smtp: LoopbackSmtpServer,
              *addresses: str) -> dict[str, uuid.UUID]:
    configure(uow, admin, smtp)
    queue(uow, admin, "\n".join(addresses))
    assert sender(uow, admin, smtp).run().sent == len(addresses)
    with uow:
        return {r.email: r.id for r in uow.session.scalars(select(Invitation))}


def _set(uow: UnitOfWork, address: str, **values: object) -> None:
    with uow:
        uow.session.execute(update(Invitation).where(Invitation.email == address).values(
            **values).execution_options(synchronize_session=False))
        uow.commit()


def _row(uow: UnitOfWork, address: str) -> Invitation:
    with uow:
        row = uow.session.scalars(select(Invitation).where(Invitation.email == address)).one()
        uow.session.expunge(row)
        return row


def _reminders_to(smtp: LoopbackSmtpServer) -> list[str]:
    return sorted(m.rcpt_tos[0] for m in smtp.messages
                  if str(m.message["Subject"]).startswith("Reminder: "))


def test_one_reminder_n_days_before_expiry_and_only_for_live_unanswered_invitations(
    uow: UnitOfWork, admin: Operator, smtp_server: LoopbackSmtpServer,
) -> None:
    settings_service.update_settings(uow, admin, {"reminder_days_before": 3})
    people = ["due@example.org", "later@example.org", "revoked@example.org",
              "accepted@example.org", "expired@example.org", "bounced@example.org",
              "suppressed@example.org", "uncertain@example.org"]
    _send_all(uow, admin, smtp_server, *people)
    now = utcnow()
    for address in people:  # sent 12 days ago with a 14-day link: 2 days left
        _set(uow, address, sent_at=now - 12 * DAY, expires_at=now + 2 * DAY)
    _set(uow, "later@example.org", expires_at=now + 5 * DAY)  # not due yet
    _set(uow, "revoked@example.org", status=InvitationStatus.REVOKED.value, token_hash=None)
    _set(uow, "accepted@example.org", status=InvitationStatus.ACCEPTED.value)
    _set(uow, "expired@example.org", expires_at=now - DAY)  # overdue: effectively expired
    _set(uow, "bounced@example.org", status=InvitationStatus.BOUNCED.value)
    _set(uow, "uncertain@example.org", status=InvitationStatus.UNCERTAIN.value)
    suppression.add_suppression(uow, admin, "suppressed@example.org", "opted out by phone")
    before = len(smtp_server.messages)

    scope = sendable_scope(uow, admin, everything=True)
    report = reminders.send_reminders(uow, scope, _transport(uow, admin),
                                      actor_id=admin.member_id)
    assert (report.due, report.sent, report.failed) == (1, 1, 0)
    assert _reminders_to(smtp_server) == ["due@example.org"]
    assert len(smtp_server.messages) == before + 1
    message = smtp_server.messages[-1].message
    text = message.get_body(("plain",)).get_content()
    assert "A reminder: this invitation expires on" in text
    # A fresh link that works, the same expiry; the old link says a newer one was sent.
    row = _row(uow, "due@example.org")
    link = re.search(r"https://join\.example\.org/join/([A-Za-z0-9_-]+)", text)
    assert link and row.token_hash == hash_token(link.group(1))
    assert row.reminder_sent_at is not None and row.reminder_owner is None
    assert open_link(uow, link.group(1)).state is LinkState.VALID
    # The same one-click unsubscribe link as the invitation itself.
    first = next(m for m in smtp_server.messages if m.rcpt_tos == ("due@example.org",))
    assert first.message["List-Unsubscribe"] == message["List-Unsubscribe"]
    assert message["X-Invite-Desk-Invitation"] == str(row.id)

    # A re-run sends nothing: one reminder per invitation.
    again = reminders.send_reminders(uow, scope, _transport(uow, admin))
    assert (again.due, again.sent) == (0, 0)
    assert _reminders_to(smtp_server) == ["due@example.org"]
    with uow:
        audited = list(uow.session.scalars(select(AuditLog.actor_id).where(
            AuditLog.action == "invitation.reminded")))
    assert audited == [admin.member_id]


def test_reminders_are_off_by_default(
    uow: UnitOfWork, admin: Operator, smtp_server: LoopbackSmtpServer,
) -> None:
    _send_all(uow, admin, smtp_server, "x@example.org")
    _set(uow, "x@example.org", expires_at=utcnow() + DAY, sent_at=utcnow() - 13 * DAY)
    report = reminders.send_reminders(uow, SendScope.organization(admin.organization_id),
                                      _transport(uow, admin))
    assert report.sent == 0 and _reminders_to(smtp_server) == []


class _CrashingTransport:
    """Sends through the real transport, then 'crashes' (the process dies after the server
    accepted the message, before the outcome is written)."""

    def __init__(self, inner: SmtpTransport) -> None:
        self.inner = inner

    def send(self, message: object, to: str) -> object:
        self.inner.send(message, to)  # type: ignore[arg-type]
        raise SystemExit("killed")

    def close(self) -> None:
        self.inner.close()


def test_a_crash_mid_send_never_leads_to_a_second_reminder(
    uow: UnitOfWork, admin: Operator, smtp_server: LoopbackSmtpServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings_service.update_settings(uow, admin, {"reminder_days_before": 3})
    _send_all(uow, admin, smtp_server, "a@example.org", "b@example.org")
    for address in ("a@example.org", "b@example.org"):
        _set(uow, address, sent_at=utcnow() - 12 * DAY, expires_at=utcnow() + 2 * DAY)
    scope = SendScope.organization(admin.organization_id)
    with pytest.raises(SystemExit):
        reminders.send_reminders(uow, scope, _CrashingTransport(_transport(uow, admin)))
    assert len(_reminders_to(smtp_server)) == 1
    # The claim survived the crash. Pretend its process is gone, then run again.
    monkeypatch.setattr(reminders, "_owner_is_gone", lambda *a: True)
    report = reminders.send_reminders(uow, scope, _transport(uow, admin))
    assert (report.uncertain, report.sent) == (1, 1)
    counts = {a: _reminders_to(smtp_server).count(a) for a in ("a@example.org", "b@example.org")}
    assert sorted(counts.values()) == [1, 1]  # each exactly once
    third = reminders.send_reminders(uow, scope, _transport(uow, admin))
    assert (third.due, third.sent, third.uncertain) == (0, 0, 0)


def test_concurrent_runs_send_each_reminder_once(
    uow: UnitOfWork, admin: Operator, smtp_server: LoopbackSmtpServer,
) -> None:
    settings_service.update_settings(uow, admin, {"reminder_days_before": 3})
    people = [f"p{i}@example.org" for i in range(8)]
    _send_all(uow, admin, smtp_server, *people)
    for address in people:
        _set(uow, address, sent_at=utcnow() - 12 * DAY, expires_at=utcnow() + 2 * DAY)
    scope = SendScope.organization(admin.organization_id)
    reports: list[reminders.ReminderReport] = []

    def run() -> None:
        reports.append(reminders.send_reminders(uow, scope, _transport(uow, admin)))

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sum(r.sent for r in reports) == len(people)
    assert _reminders_to(smtp_server) == sorted(people)


def test_a_refused_reminder_keeps_the_old_link_and_is_not_retried(
    uow: UnitOfWork, admin: Operator, smtp_server: LoopbackSmtpServer,
) -> None:
    settings_service.update_settings(uow, admin, {"reminder_days_before": 3})
    _send_all(uow, admin, smtp_server, "full@example.org")
    _set(uow, "full@example.org", sent_at=utcnow() - 12 * DAY, expires_at=utcnow() + 2 * DAY)
    old_hash = _row(uow, "full@example.org").token_hash
    smtp_server.fail_recipient("full@example.org", 550, text="5.2.1 mailbox disabled")
    report = reminders.send_reminders(uow, SendScope.organization(admin.organization_id),
                                      _transport(uow, admin))
    assert report.failed == 1 and "mailbox disabled" in report.failures[0][1]
    row = _row(uow, "full@example.org")
    assert row.token_hash == old_hash and row.reminder_owner == reminders.FAILED
    assert row.status == InvitationStatus.SENT
    assert reminders.send_reminders(uow, SendScope.organization(admin.organization_id),
                                    _transport(uow, admin)).due == 0


def test_reminders_cli_sends_through_smtp_and_says_what_it_did(
    uow: UnitOfWork, admin: Operator, smtp_server: LoopbackSmtpServer, sqlite_url: str,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    make_operator: MakeOperator,
) -> None:
    _send_all(uow, admin, smtp_server, "cli@example.org")
    _set(uow, "cli@example.org", sent_at=utcnow() - 12 * DAY, expires_at=utcnow() + DAY)
    monkeypatch.setenv("INVITE_DESK_OPERATOR_PASSWORD", ADMIN_PASSWORD)
    # Switched off (the default): said so, not "0 reminders sent".
    assert cli.main(["--db", sqlite_url, "reminders", "send", "--operator", ADMIN_EMAIL,
                     "--all"]) == 0
    assert "Reminders are off" in capsys.readouterr().out
    assert _reminders_to(smtp_server) == []
    settings_service.update_settings(uow, admin, {"reminder_days_before": 2})
    code = cli.main(["--db", sqlite_url, "reminders", "send", "--operator", ADMIN_EMAIL,
                     "--all"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "reminded: cli@example.org" in out and "1 reminder sent" in out
    assert _reminders_to(smtp_server) == ["cli@example.org"]
    # A member without the right to send on others' behalf is refused --all.
    user = make_operator(Role.USER, password="a long user password")
    monkeypatch.setenv("INVITE_DESK_OPERATOR_PASSWORD", "a long user password")
    assert cli.main(["--db", sqlite_url, "reminders", "send", "--operator", user.email,
                     "--all"]) == 2
    assert "on behalf of another member" in capsys.readouterr().err


# -- scheduling ------------------------------------------------------------------------------


def test_a_scheduled_batch_is_not_sent_before_its_time(
    uow: UnitOfWork, admin: Operator, smtp_server: LoopbackSmtpServer,
) -> None:
    configure(uow, admin, smtp_server)
    queue(uow, admin, "early@example.org")
    with uow:
        batch_id = uow.session.scalars(select(Batch.id)).one()
    at = utcnow() + timedelta(hours=2)
    result = schedule_batch(uow, admin, batch_id, at)
    assert result.queued == 1 and "scheduled for" in result.describe()
    assert sender(uow, admin, smtp_server).run().sent == 0
    assert smtp_server.messages == []
    waiting = scheduled_later(uow, SendScope.organization(admin.organization_id))
    assert [(w.batch_id, w.scheduled_at) for w in waiting] == [(batch_id, at)]
    # At (or after) its time the outbox sends it.
    report = sender(uow, admin, smtp_server, clock=lambda: at + timedelta(seconds=1)).run()
    assert report.sent == 1 and smtp_server.count_for("early@example.org") == 1
    with pytest.raises(ValidationFailed):
        schedule_batch(uow, admin, batch_id, datetime(2030, 1, 1))  # naive: refused


def test_scheduling_needs_the_right_to_send_the_batch(
    uow: UnitOfWork, admin: Operator, make_operator: MakeOperator,
    smtp_server: LoopbackSmtpServer,
) -> None:
    configure(uow, admin, smtp_server)
    queue(uow, admin, "someone@example.org")
    with uow:
        batch_id = uow.session.scalars(select(Batch.id)).one()
    with pytest.raises(PermissionDenied):
        schedule_batch(uow, make_operator(Role.USER), batch_id, utcnow() + DAY)


def test_send_at_via_the_cli_says_when_it_will_run(
    uow: UnitOfWork, admin: Operator, smtp_server: LoopbackSmtpServer, sqlite_url: str,
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    configure(uow, admin, smtp_server)
    csv = tmp_path / "later.csv"
    csv.write_text("email,name\nlater@example.org,Later\n", encoding="utf-8")
    monkeypatch.setenv("INVITE_DESK_OPERATOR_PASSWORD", ADMIN_PASSWORD)
    assert cli.main(["--db", sqlite_url, "send", "--operator", ADMIN_EMAIL, "--csv", str(csv),
                     "--at", "2099-06-01T09:00+02:00"]) == 0
    out = capsys.readouterr().out
    assert "scheduled for 2099-06-01" in out and "not yet: batch" in out
    assert "estimate:" not in out  # nothing will be sent by this run: no estimate of it
    assert smtp_server.messages == []
    with uow:
        scheduled = uow.session.scalars(select(Batch.scheduled_at)).one()
    assert scheduled == datetime(2099, 6, 1, 7, 0, tzinfo=UTC)
    # A plain re-run before its time sends nothing and says when it will run.
    now_csv = tmp_path / "now.csv"
    now_csv.write_text("email\nnow@example.org\n", encoding="utf-8")
    assert cli.main(["--db", sqlite_url, "send", "--operator", ADMIN_EMAIL,
                     "--csv", str(now_csv)]) == 0
    out = capsys.readouterr().out
    assert "estimate: 1 invitation: a few seconds" in out  # the scheduled one not counted
    assert "not yet: batch" in out
    assert smtp_server.count_for("now@example.org") == 1
    assert smtp_server.count_for("later@example.org") == 0


def test_a_bad_time_is_refused_by_the_parser(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["send", "--operator", ADMIN_EMAIL, "--at", "tomorrow morning"])
    assert exited.value.code == 2
    assert "is not a time" in capsys.readouterr().err
