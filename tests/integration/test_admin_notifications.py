"""Issue 11: the emails people expect, received at the real loopback SMTP server: approval and
rejection (with the reason), "your invitee joined", the operator's set-password link (used
through the real portal). Queued with the event, sent exactly once, each switchable off."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from invite_desk.services import adhesion, auth, mail_settings
from invite_desk.services.admin import notifications, people
from invite_desk.services.admin.notifications import MailState, send_pending_notifications
from invite_desk.services.auth import SignInLinkInvalid
from invite_desk.services.errors import Conflict, ValidationFailed
from invite_desk.services.invitations.tokens import hash_token
from invite_desk.services.models import (
    AdhesionStatus,
    Member,
    MemberStatus,
    OutgoingMail,
    SignInLink,
    utcnow,
)
from invite_desk.services.operator import Operator
from invite_desk.services.registration.joining import register_with_invitation
from invite_desk.services.roles import Role
from invite_desk.services.smtp.transport import SmtpTransport, TemporaryFailure
from invite_desk.services.uow import UnitOfWork
from tests.conftest import MakeOperator, MakeUnit
from tests.portal_client import HttpClient, csrf_from, portal_app, running_portal
from tests.registration_fixtures import (
    enable_confirmation_email,
    form,
    invite,
    mail_text,
    member_by_email,
    set_policy,
)
from tests.smtp_server import LoopbackSmtpServer


def deliver(uow: UnitOfWork, admin: Operator, **kw: object) -> notifications.NotificationRun:
    settings = mail_settings.get_mail_settings(uow, admin.organization_id)
    with SmtpTransport(settings.smtp_config(timeout=5), None) as transport:
        return send_pending_notifications(uow, transport, **kw)  # type: ignore[arg-type]


def applicant(uow: UnitOfWork, admin: Operator, email: str, unit: uuid.UUID | None = None,
              first: str = "Zoë", last: str = "<b>Martin</b>") -> uuid.UUID:
    with uow:
        member = Member(organization_id=admin.organization_id, email=email,
                        email_normalized=email.lower(), first_name=first, last_name=last,
                        unit_id=unit, status=MemberStatus.APPLICANT.value,
                        adhesion_status=AdhesionStatus.PENDING.value)
        uow.session.add(member)
        uow.commit()
        return member.id


def test_approval_and_rejection_emails_arrive_once_with_the_reason(
        uow: UnitOfWork, admin: Operator, smtp_server: LoopbackSmtpServer,
        make_unit: MakeUnit) -> None:
    enable_confirmation_email(uow, admin, smtp_server)
    north = make_unit("North <Coast>")
    yes = applicant(uow, admin, "yes@example.org", north)
    no = applicant(uow, admin, "no@example.org")
    adhesion.approve(uow, admin, yes)
    adhesion.reject(uow, admin, no, "Membership is for residents.\n<script>x</script>")
    with uow:
        assert uow.session.scalar(select(OutgoingMail.status)
                                  .where(OutgoingMail.to_email == "yes@example.org")) == "queued"
    run = deliver(uow, admin)
    assert (run.sent, run.failed, run.uncertain, run.remaining) == (2, 0, 0, 0)
    approved = mail_text(smtp_server, "yes@example.org")
    assert "was approved" in approved and "North <Coast>" in approved
    rejected = mail_text(smtp_server, "no@example.org")
    assert "not approved" in rejected and "> Membership is for residents." in rejected
    # The HTML part escapes what people typed.
    html = [m for m in smtp_server.messages if "no@example.org" in m.rcpt_tos][0] \
        .message.get_body(("html",))
    assert html is not None
    content = html.get_content()
    assert "&lt;script&gt;" in content and "<script>" not in content
    assert "&lt;b&gt;Martin&lt;/b&gt;" in content
    subject = smtp_server.messages[0].message["Subject"]
    assert "Harbour Rowing Club" in subject
    # A re-run sends nothing twice.
    assert deliver(uow, admin).sent == 0
    assert smtp_server.count_for("yes@example.org") == 1


def test_each_kind_can_be_switched_off(uow: UnitOfWork, admin: Operator,
                                       smtp_server: LoopbackSmtpServer,
                                       make_operator: MakeOperator) -> None:
    enable_confirmation_email(uow, admin, smtp_server)
    set_policy(uow, admin, notify_application_decision=False, notify_operator_sign_in=False)
    adhesion.approve(uow, admin, applicant(uow, admin, "quiet@example.org"))
    member = make_operator(Role.HR_LOCAL)
    with pytest.raises(Conflict, match="one-time password"):
        people.issue_sign_in_link(uow, admin, member.member_id)
    assert deliver(uow, admin).sent == 0
    assert smtp_server.messages == []


def test_the_inviter_is_told_when_their_invitee_joins(
        uow: UnitOfWork, admin: Operator, smtp_server: LoopbackSmtpServer,
        make_operator: MakeOperator) -> None:
    enable_confirmation_email(uow, admin, smtp_server)
    inviter = make_operator(Role.USER, email="inviter@example.org")
    sent = invite(uow, inviter, "newbie@example.org")
    result = register_with_invitation(uow, sent.token, form("Nina", "Newbie"))
    assert result.registered
    deliver(uow, admin)
    text = mail_text(smtp_server, "inviter@example.org")
    assert "Nina Newbie joined Harbour Rowing Club through your invitation" in text


def test_with_adhesion_the_inviter_is_told_at_approval_not_at_registration(
        uow: UnitOfWork, admin: Operator, smtp_server: LoopbackSmtpServer,
        make_operator: MakeOperator) -> None:
    enable_confirmation_email(uow, admin, smtp_server)
    set_policy(uow, admin, adhesion_required=True)
    inviter = make_operator(Role.USER, email="inviter@example.org")
    sent = invite(uow, inviter, "later@example.org")
    register_with_invitation(uow, sent.token, form("Lou", "Later"))
    deliver(uow, admin)
    assert smtp_server.count_for("inviter@example.org") == 0
    member = member_by_email(uow, "later@example.org")
    assert member is not None
    adhesion.approve(uow, admin, member.id)
    deliver(uow, admin)
    assert smtp_server.count_for("inviter@example.org") == 1
    assert smtp_server.count_for("later@example.org") == 1  # their approval


def test_a_temporary_failure_is_retried_later_and_a_crash_is_never_resent(
        uow: UnitOfWork, admin: Operator, smtp_server: LoopbackSmtpServer) -> None:
    enable_confirmation_email(uow, admin, smtp_server)
    adhesion.approve(uow, admin, applicant(uow, admin, "retry@example.org"))
    smtp_server.fail_next("DATA", 451)
    run = deliver(uow, admin)
    assert (run.sent, run.remaining) == (0, 1)
    assert deliver(uow, admin).sent == 0  # not due yet
    run = deliver(uow, admin, now=utcnow() + timedelta(minutes=5))
    assert run.sent == 1 and smtp_server.count_for("retry@example.org") == 1
    # A row a dead run left in `sending` becomes uncertain, never resent.
    adhesion.approve(uow, admin, applicant(uow, admin, "crash@example.org"))
    with uow:
        uow.session.execute(update(OutgoingMail).where(OutgoingMail.to_email == "crash@example.org")
                            .values(status="sending", claimed_at=utcnow() - timedelta(hours=1)))
        uow.commit()
    run = deliver(uow, admin)
    assert run.sent == 0 and smtp_server.count_for("crash@example.org") == 0
    with uow:
        assert uow.session.scalar(select(OutgoingMail.status).where(
            OutgoingMail.to_email == "crash@example.org")) == MailState.UNCERTAIN.value


def test_two_runs_at_once_send_each_email_once(
        uow: UnitOfWork, admin: Operator, smtp_server: LoopbackSmtpServer) -> None:
    import threading

    enable_confirmation_email(uow, admin, smtp_server)
    for i in range(8):
        adhesion.approve(uow, admin, applicant(uow, admin, f"p{i}@example.org"))
    threads = [threading.Thread(target=deliver, args=(uow, admin)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(smtp_server.recipient_counts().values()) == [1] * 8


class _Flaky:
    def send(self, message: bytes, to: str) -> TemporaryFailure:
        return TemporaryFailure(421, "try later")


def test_temporary_failures_give_up_after_the_retry_policy(
        uow: UnitOfWork, admin: Operator, smtp_server: LoopbackSmtpServer) -> None:
    enable_confirmation_email(uow, admin, smtp_server)
    adhesion.approve(uow, admin, applicant(uow, admin, "never@example.org"))
    at = utcnow()
    for _ in range(notifications.RETRY.max_attempts):
        at += timedelta(hours=1)
        send_pending_notifications(uow, _Flaky(), now=at)
    with uow:
        row = uow.session.scalars(select(OutgoingMail)).one()
        assert (row.status, row.attempts) == ("failed", notifications.RETRY.max_attempts)
        assert "try later" in row.last_error


def _sign_in_link(smtp: LoopbackSmtpServer, to: str, base: str) -> str:
    found = re.search(re.escape(base) + r"/set-password/([A-Za-z0-9_-]+)", mail_text(smtp, to))
    assert found, mail_text(smtp, to)
    return found.group(0)


def test_a_new_operator_sets_a_password_through_the_real_portal_then_signs_in(
        uow: UnitOfWork, admin: Operator, engine, smtp_server: LoopbackSmtpServer,  # type: ignore[no-untyped-def]
        make_operator: MakeOperator) -> None:
    member = make_operator(Role.HR_LOCAL, email="new.op@example.org")
    app = portal_app(engine, uow)
    with running_portal(app) as base:
        enable_confirmation_email(uow, admin, smtp_server, base_url=base)
        people.issue_sign_in_link(uow, admin, member.member_id)
        assert deliver(uow, admin).sent == 1
        link = _sign_in_link(smtp_server, "new.op@example.org", base)
        token = link.rsplit("/", 1)[1]
        text = mail_text(smtp_server, "new.op@example.org")
        assert "Ada Admin gave you a sign-in" in text and "Local HR" in text
        with uow:  # only the hash is stored, nowhere the token itself
            stored = uow.session.scalars(select(SignInLink)).one()
            assert stored.token_hash == hash_token(token)
            mail = uow.session.scalars(select(OutgoingMail)).one()
            assert token not in mail.context_json
        client = HttpClient()
        page = client.get(link)
        assert page.status == 200 and "new.op@example.org" in page.text
        # Opening it changed nothing.
        assert auth.check_sign_in_link(uow, token) == "new.op@example.org"
        short = client.post(link, {"csrf_token": csrf_from(page.text), "password": "short",
                                   "password_confirmation": "short"})
        assert short.status == 400 and "at least 10" in short.text
        done = client.post(link, {"csrf_token": csrf_from(short.text),
                                  "password": "my chosen password",
                                  "password_confirmation": "my chosen password"})
        assert done.status == 200 and "Your password is set" in done.text
        operator = auth.sign_in(uow, "new.op@example.org", "my chosen password")
        assert operator.role is Role.HR_LOCAL
        again = client.get(link)
        assert again.status == 410 and "already used" in again.text
        assert client.get(base + "/set-password/not-a-real-token").status == 404


def test_a_sign_in_link_expires_and_is_withdrawn_by_a_newer_one(
        uow: UnitOfWork, admin: Operator, smtp_server: LoopbackSmtpServer,
        make_operator: MakeOperator) -> None:
    enable_confirmation_email(uow, admin, smtp_server)
    member = make_operator(Role.HR_LOCAL, email="late@example.org")
    people.issue_sign_in_link(uow, admin, member.member_id)
    deliver(uow, admin)
    token = _sign_in_link(smtp_server, "late@example.org",
                          "https://join.rowing.example").rsplit("/", 1)[1]
    later = utcnow() + timedelta(days=people.SIGN_IN_LINK_DAYS, minutes=1)
    with pytest.raises(SignInLinkInvalid, match="expired"):
        auth.set_password_from_link(uow, token, "a good password", now=later)
    with pytest.raises(ValidationFailed):
        auth.set_password_from_link(uow, token, "short")
    people.issue_sign_in_link(uow, admin, member.member_id)
    with pytest.raises(SignInLinkInvalid, match="withdrawn"):
        auth.set_password_from_link(uow, token, "a good password")
    # The newer link's email is sent; the superseded one is never minted again.
    deliver(uow, admin)
    newer = _sign_in_link(smtp_server, "late@example.org",
                          "https://join.rowing.example").rsplit("/", 1)[1]
    assert newer != token
    assert auth.set_password_from_link(uow, newer, "a good password") == "late@example.org"
    with pytest.raises(SignInLinkInvalid, match="already used"):
        auth.set_password_from_link(uow, newer, "another password")


def test_a_link_revoked_before_sending_is_skipped(
        uow: UnitOfWork, admin: Operator, smtp_server: LoopbackSmtpServer,
        make_operator: MakeOperator) -> None:
    enable_confirmation_email(uow, admin, smtp_server)
    member = make_operator(Role.HR_LOCAL, email="gone@example.org")
    people.issue_sign_in_link(uow, admin, member.member_id)
    people.revoke_sign_in(uow, admin, member.member_id)
    deliver(uow, admin)
    assert smtp_server.count_for("gone@example.org") == 0
    with uow:
        assert uow.session.scalars(select(OutgoingMail.status)).one() == "skipped"


def test_set_password_links_are_never_logged() -> None:
    from invite_desk.portal.request_log import loggable_target, redact

    assert redact("GET /set-password/short-token HTTP/1.1") == \
        "GET /set-password/<redacted> HTTP/1.1"
    assert "abc" not in loggable_target("/SET-PASSWORD/abc", "")
