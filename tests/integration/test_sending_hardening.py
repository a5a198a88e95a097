"""Issue 8, sending: one bad row never stops a run, SMTPUTF8, the registration address, and
progress while the rate limit holds the next message. Real loopback SMTP server throughout."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from invite_desk.services import mail_settings, organization
from invite_desk.services.email.templates import default_templates
from invite_desk.services.errors import SettingsIncomplete
from invite_desk.services.invitations import sending
from invite_desk.services.invitations.importing import parse_pasted
from invite_desk.services.invitations.preflight import PreflightRow, RowStatus, run_preflight
from invite_desk.services.invitations.queueing import queue_invitations
from invite_desk.services.invitations.rendering import InvitationContent, build_test_message
from invite_desk.services.invitations.sending import OutboxSender, SendControl, SendProgress
from invite_desk.services.models import AuditLog, Invitation, utcnow
from invite_desk.services.operator import Operator
from invite_desk.services.settings import update_settings
from invite_desk.services.smtp.ratelimit import RateLimiter
from invite_desk.services.smtp.transport import (
    PermanentFailure,
    RetryPolicy,
    SendResult,
    Sent,
    SmtpConfig,
    SmtpTransport,
    TemporaryFailure,
)
from invite_desk.services.uow import UnitOfWork
from tests.integration.test_sending import configure, sender, statuses
from tests.smtp_server import LoopbackSmtpServer

POISON = "josé.müller@example.org"  # a non-ASCII local part: only SMTPUTF8 servers take it
IDN = "anna@bücher.example"  # an IDN domain: punycode on the wire, no SMTPUTF8 needed


def queue_rows(uow: UnitOfWork, admin: Operator, addresses: list[str]) -> uuid.UUID:
    """Queue `addresses` in this order, as pre-flight's Ready rows (whatever it says of them)."""
    rows = [PreflightRow(i + 1, a, "", "", RowStatus.READY) for i, a in enumerate(addresses)]
    return queue_invitations(uow, admin, rows, source="csv").batch_id


def row(uow: UnitOfWork, email: str) -> Invitation:
    with uow:
        found = uow.session.scalars(select(Invitation).where(Invitation.email == email)).one()
        uow.session.expunge(found)
        return found


@pytest.mark.parametrize("smtputf8", [False, True], ids=["server-without-smtputf8",
                                                        "server-with-smtputf8"])
def test_a_1000_batch_with_one_poison_address_sends_the_rest_and_the_next_batch(
    uow: UnitOfWork, admin: Operator, make_smtp_server: Callable[..., LoopbackSmtpServer],
    smtputf8: bool,
) -> None:
    server = make_smtp_server(smtputf8=smtputf8)
    configure(uow, admin, server)
    update_settings(uow, admin, {"daily_limit_per_inviter": 0})
    # The poison row is second: first in the queue after a row whose outcome must be kept.
    addresses = ["first@example.org", POISON, IDN] + [f"m{i:04d}@example.org" for i in range(997)]
    queue_rows(uow, admin, addresses)

    report = sender(uow, admin, server).run()

    counts = server.recipient_counts()
    states = statuses(uow)
    assert report.uncertain == 0 and states["first@example.org"] == "sent"
    assert counts["anna@xn--bcher-kva.example"] == 1 and states[IDN] == "sent"
    if smtputf8:
        assert report.sent == 1000 and report.failed == 0
        [poisoned] = [m for m in server.messages if m.rcpt_tos == (POISON,)]
        assert "SMTPUTF8" in poisoned.mail_options
        assert f"To: {POISON}\r\n".encode() in poisoned.raw  # RFC 6532: UTF-8 in the header
        assert states[POISON] == "sent"
    else:
        assert report.sent == 999 and report.failed == 1
        assert POISON not in counts and sum(counts.values()) == 999
        [(email, reason)] = report.failures
        assert email == POISON and "SMTPUTF8" in reason and "internationalized" in reason
        failed = row(uow, POISON)
        assert failed.status == "failed" and "SMTPUTF8" in failed.last_error
        with uow:
            actions = set(uow.session.scalars(
                select(AuditLog.action).where(AuditLog.entity_id == failed.id)))
        assert "invitation.failed" in actions
    assert {s for e, s in states.items() if e != POISON} == {"sent"}

    queue_rows(uow, admin, ["after1@example.org", "after2@example.org"])
    later = sender(uow, admin, server).run()
    assert later.sent == 2 and later.failed == 0
    assert server.count_for("after1@example.org") == server.count_for("after2@example.org") == 1


def test_any_error_preparing_one_invitation_fails_it_alone(
    uow: UnitOfWork, admin: Operator, smtp_server: LoopbackSmtpServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    configure(uow, admin, smtp_server)
    queue_rows(uow, admin, ["a@example.org", "broken@example.org", "c@example.org"])
    real = sending.build_invitation_raw

    def build(*args: object, **kwargs: object) -> tuple[bytes, str]:
        if args[3].email == "broken@example.org":  # type: ignore[attr-defined]
            raise RuntimeError("the renderer fell over")
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(sending, "build_invitation_raw", build)
    report = sender(uow, admin, smtp_server).run()

    assert report.sent == 2 and report.failed == 1 and report.uncertain == 0
    assert statuses(uow) == {"a@example.org": "sent", "broken@example.org": "failed",
                             "c@example.org": "sent"}
    broken = row(uow, "broken@example.org")
    assert "RuntimeError: the renderer fell over" in broken.last_error
    assert broken.token_hash is None and broken.sending_owner is None
    assert report.failures == [("broken@example.org", broken.last_error)]
    # A second run has nothing left to send and marks nothing uncertain.
    again = sender(uow, admin, smtp_server).run()
    assert (again.sent, again.failed, again.uncertain) == (0, 0, 0)
    assert smtp_server.recipient_counts() == {"a@example.org": 1, "c@example.org": 1}


def test_an_unexpected_transport_error_after_a_claim_does_not_lose_the_previous_outcome(
    uow: UnitOfWork, admin: Operator, smtp_server: LoopbackSmtpServer,
) -> None:
    """A crash in the loop (not in one invitation) keeps what is known: the previous row sent,
    the claimed but unsent one back in the queue, never uncertain."""
    configure(uow, admin, smtp_server)
    queue_rows(uow, admin, ["a@example.org", "b@example.org", "c@example.org"])
    loop_sender = sender(uow, admin, smtp_server)
    calls = {"n": 0}
    real_claim = loop_sender._claim

    def claim(*args: object) -> bytes | None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # e.g. Ctrl+C in the CLI, between two messages
        return real_claim(*args)  # type: ignore[arg-type]

    loop_sender._claim = claim  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        loop_sender.run()
    states = statuses(uow)
    assert sorted(states.values()) == ["queued", "queued", "sent"]
    assert [m.rcpt_tos[0] for m in smtp_server.messages] == [
        email for email, status in states.items() if status == "sent"]
    report = sender(uow, admin, smtp_server).run()
    assert report.sent == 2 and report.uncertain == 0
    assert smtp_server.recipient_counts() == {
        "a@example.org": 1, "b@example.org": 1, "c@example.org": 1}


def test_sending_refuses_an_empty_registration_address(
    uow: UnitOfWork, admin: Operator, smtp_server: LoopbackSmtpServer,
) -> None:
    configure(uow, admin, smtp_server)
    organization.update_organization(uow, admin, {"registration_base_url": ""})
    pre = run_preflight(uow, admin.organization_id, parse_pasted("a@example.org\n").rows)
    queue_invitations(uow, admin, pre.ready, source="paste")

    with pytest.raises(SettingsIncomplete) as refused:
        sender(uow, admin, smtp_server).run()

    assert refused.value.settings_page == "organization"
    assert "registration web address" in str(refused.value)
    assert "Settings › Organization" in str(refused.value)
    assert smtp_server.messages == [] and statuses(uow) == {"a@example.org": "queued"}


class _FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)


class _RateLimitedTransport:
    """Accepts every message at once, under a real RateLimiter on a fake clock."""

    def __init__(self, per_minute: int, clock: _FakeTime) -> None:
        self.limiter = RateLimiter(per_minute, clock=clock.monotonic, sleep=clock.sleep)
        self.sent: list[str] = []

    def send(self, message: object, to: str) -> SendResult:
        self.limiter.acquire()
        self.sent.append(to)
        return Sent("250 OK")

    def close(self) -> None:
        pass


class _FakeSleepControl(SendControl):
    def __init__(self, clock: _FakeTime) -> None:
        super().__init__()
        self.clock = clock

    def sleep(self, seconds: float) -> None:
        self.clock.sleep(seconds)


def test_progress_keeps_counting_down_while_the_rate_limit_waits(
    uow: UnitOfWork, admin: Operator, smtp_server: LoopbackSmtpServer,
) -> None:
    configure(uow, admin, smtp_server)
    queue_rows(uow, admin, [f"r{i}@example.org" for i in range(5)])
    clock = _FakeTime()
    transport = _RateLimitedTransport(2, clock)  # 2 a minute: 30 s apart on average
    seen: list[tuple[float, SendProgress]] = []
    outbox = OutboxSender(
        uow, transport, organization_id=admin.organization_id,
        control=_FakeSleepControl(clock),
        on_progress=lambda p: seen.append((clock.now, p)),
    )
    report = outbox.run()

    assert report.sent == 5 and len(transport.sent) == 5
    waiting = [(t, p) for t, p in seen if not p.last_email and p.remaining and p.sent]
    # Two waits of ~60 s each, reported about once a second, each counting down.
    assert len(waiting) >= 100
    for (t1, p1), (t2, p2) in zip(waiting, waiting[1:], strict=False):
        assert t2 - t1 <= 1.0 + 1e-6 or p2.sent != p1.sent
        if p2.sent == p1.sent:
            assert p2.seconds_left is not None and p1.seconds_left is not None
            assert p2.seconds_left < p1.seconds_left
    # The estimate comes from the rate: with 3 left while the window is full, about 60 s of
    # waiting plus 2 x 30 s, not the near-zero pace of the first two instant sends.
    first_wait = next(p for _, p in waiting if p.remaining == 3)
    assert first_wait.seconds_left is not None and 100 <= first_wait.seconds_left <= 120


def test_the_test_to_myself_message_uses_the_batch_builder_and_resists_header_injection(
    uow: UnitOfWork, admin: Operator, smtp_server: LoopbackSmtpServer,
) -> None:
    configure(uow, admin, smtp_server)
    mail = mail_settings.get_mail_settings(uow, admin.organization_id)
    org = organization.get_organization(uow, admin.organization_id)
    injected = "Eve\r\nBcc: evil@x.example\r\n\r\nbody"
    mail = replace(mail, from_name="Club\nBcc: evil@x.example")
    templates = replace(default_templates(),
                        subject="{{ invitee_name }}\r\nX-Injected: yes\rBcc: evil@x.example")
    content = InvitationContent(email=admin.email, name=injected, inviter_name="Ada\r\nCc: a@x.example",
                                personal_message="hi", expires_at=datetime(2030, 1, 1, tzinfo=UTC))

    message, message_id = build_test_message(org, mail, templates, content, "token")
    assert isinstance(message, bytes)
    with SmtpTransport(mail.smtp_config(timeout=5), None) as transport:
        result = transport.send(message, admin.email)
    assert isinstance(result, Sent)

    [received] = smtp_server.messages
    assert received.rcpt_tos == (admin.email,)
    parsed = received.message
    assert parsed["Bcc"] is None and parsed["Cc"] is None and parsed["X-Injected"] is None
    assert parsed["Subject"] == "[Test] Eve Bcc: evil@x.example body X-Injected: yes Bcc: evil@x.example"
    assert parsed["To"].addresses[0].display_name == "Eve Bcc: evil@x.example body"
    assert parsed["From"].addresses[0].display_name == "Club Bcc: evil@x.example"
    assert parsed["Message-ID"] == message_id

    with pytest.raises(SettingsIncomplete) as refused:
        build_test_message(replace(org, registration_base_url=""), mail, templates, content, "t")
    assert refused.value.settings_page == "organization"


class _InterruptedTransport:
    """Accepts the first message, then the program is interrupted while sending the second."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def send(self, message: object, to: str) -> SendResult:
        if self.sent:
            raise KeyboardInterrupt
        self.sent.append(to)
        return Sent("250 OK")

    def close(self) -> None:
        pass


def test_an_interrupt_during_a_send_leaves_that_row_uncertain_and_the_rest_queued(
    uow: UnitOfWork, admin: Operator, smtp_server: LoopbackSmtpServer,
) -> None:
    configure(uow, admin, smtp_server)
    queue_rows(uow, admin, ["a@example.org", "b@example.org", "c@example.org"])
    transport = _InterruptedTransport()
    outbox = OutboxSender(uow, transport, organization_id=admin.organization_id)
    with pytest.raises(KeyboardInterrupt):
        outbox.run()
    states = statuses(uow)
    assert sorted(states.values()) == ["queued", "sent", "uncertain"]
    assert states[transport.sent[0]] == "sent"
    [interrupted] = [email for email, status in states.items() if status == "uncertain"]
    assert row(uow, interrupted).sending_owner is None


class _GreylistingTransport:
    """Answers 451 to the first attempt for each address, then accepts."""

    def __init__(self) -> None:
        self.attempts: dict[str, int] = {}

    def send(self, message: object, to: str) -> SendResult:
        self.attempts[to] = self.attempts.get(to, 0) + 1
        if self.attempts[to] == 1:
            return TemporaryFailure(451, "4.7.1 Greylisted, try again in 300 seconds")
        return Sent("250 OK")

    def close(self) -> None:
        pass


def test_progress_counts_down_to_the_retry_while_waiting_for_it(
    uow: UnitOfWork, admin: Operator, smtp_server: LoopbackSmtpServer,
) -> None:
    configure(uow, admin, smtp_server)
    queue_rows(uow, admin, ["g@example.org"])
    now = {"at": utcnow()}

    class Control(SendControl):
        def sleep(self, seconds: float) -> None:
            now["at"] += timedelta(seconds=max(0.0, seconds))

    seen: list[SendProgress] = []
    report = OutboxSender(
        uow, _GreylistingTransport(), organization_id=admin.organization_id,
        retry=RetryPolicy(base_delay=30), control=Control(), on_progress=seen.append,
        clock=lambda: now["at"],
    ).run()

    assert report.sent == 1 and report.retried == 1
    waiting = [p for p in seen if p.waiting_retry]
    assert len(waiting) >= 25  # about once a second for 30 s
    lefts = [p.seconds_left for p in waiting]
    assert all(a is not None and b is not None and b < a for a, b in zip(lefts, lefts[1:],
                                                                        strict=False))
    assert lefts[0] is not None and 29 <= lefts[0] <= 30


def test_the_transport_answers_for_one_message_and_keeps_the_connection(
    make_smtp_server: Callable[..., LoopbackSmtpServer],
) -> None:
    server = make_smtp_server()  # no SMTPUTF8
    config = SmtpConfig(server.host, server.port, "none", None, "inv@club.example", "Club",
                        timeout=5)
    message = b"Subject: x\r\n\r\nx\r\n"
    with SmtpTransport(config, None) as transport:
        refused = transport.send(message, POISON)
        assert isinstance(refused, PermanentFailure) and "SMTPUTF8" in refused.reply
        invalid = transport.send(message, "not an address")
        assert isinstance(invalid, PermanentFailure) and "not a usable email address" in invalid.reply
        assert isinstance(transport.send(message, IDN), Sent)
        assert isinstance(transport.send(message, "ok@example.org"), Sent)
    assert [m.rcpt_tos for m in server.messages] == [("anna@xn--bcher-kva.example",),
                                                     ("ok@example.org",)]
    assert server.connections == 1
