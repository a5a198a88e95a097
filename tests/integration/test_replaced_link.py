"""A link closed as a duplicate by a sync push: its page, and "Email me the current link"
queued for the notification sender, which mails the live invitation with a fresh link
(services/registration/replaced.py, services/invitations/current_link.py)."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from sqlalchemy import Engine, update

from invite_desk.services import mail_settings, organization, suppression
from invite_desk.services.admin import notifications
from invite_desk.services.admin.notifications import MailState, send_pending_notifications
from invite_desk.services.models import (
    Invitation,
    InvitationKind,
    InvitationStatus,
    OutgoingMail,
    utcnow,
)
from invite_desk.services.operator import Operator
from invite_desk.services.registration.joining import register_with_invitation
from invite_desk.services.registration.links import LinkState, open_link
from invite_desk.services.registration.replaced import (
    RESEND_INTERVAL,
    Current,
    RequestState,
    request_current_link,
)
from invite_desk.services.smtp.transport import SmtpTransport
from invite_desk.services.tracking.actions import revoke_invitations
from invite_desk.services.uow import UnitOfWork
from tests.registration_fixtures import (
    enable_confirmation_email,
    form,
    invite,
    mail_text,
    make_event,
)
from tests.replaced_link_fixtures import (
    ask_at_once,
    close_as_duplicate,
    link_emails,
    requests_audited,
)
from tests.smtp_server import LoopbackSmtpServer

ADDRESS = "zoe.martin@example.org"


def _deliver(uow: UnitOfWork, admin: Operator) -> notifications.NotificationRun:
    settings = mail_settings.get_mail_settings(uow, admin.organization_id)
    with SmtpTransport(settings.smtp_config(timeout=5), None) as transport:
        return send_pending_notifications(uow, transport)


def _set_status(uow: UnitOfWork, invitation_id: object, **values: object) -> None:
    with uow:
        uow.session.execute(update(Invitation).where(Invitation.id == invitation_id)
                            .values(**values))
        uow.commit()


def test_the_closed_link_says_it_was_replaced_and_offers_the_current_one(
        uow: UnitOfWork, admin: Operator) -> None:
    live = invite(uow, admin, ADDRESS)
    closed = close_as_duplicate(uow, admin, "Zoe.Martin@Example.org")
    view = open_link(uow, closed.token, organization_id=admin.organization_id)
    assert view.state is LinkState.REPLACED
    assert view.current == Current.PENDING and view.can_request_link
    assert view.email == "Zoe.Martin@Example.org"
    assert live.token not in repr(view)
    # The live link is untouched by all this.
    assert open_link(uow, live.token, organization_id=admin.organization_id).state \
        is LinkState.VALID


@pytest.mark.parametrize("what", ["accepted", "member", "queued", "expired", "revoked", "none"])
def test_the_page_says_what_became_of_the_other_invitation(
        uow: UnitOfWork, admin: Operator, what: str) -> None:
    live = invite(uow, admin, ADDRESS) if what != "none" else None
    closed = close_as_duplicate(uow, admin, ADDRESS)
    expected = {"accepted": Current.REGISTERED, "member": Current.REGISTERED,
                "queued": Current.ON_ITS_WAY, "expired": Current.CLOSED,
                "revoked": Current.CLOSED, "none": Current.CLOSED}[what]
    if what == "accepted" or what == "member":
        assert live is not None
        result = register_with_invitation(uow, live.token, form(),
                                          organization_id=admin.organization_id)
        assert result.registered
    elif what == "queued":
        _set_status(uow, live.id if live else None, status=InvitationStatus.QUEUED.value,
                    sent_at=None)
    elif what == "expired":
        _set_status(uow, live.id if live else None, expires_at=utcnow() - timedelta(hours=1))
    elif what == "revoked":
        assert live is not None
        revoke_invitations(uow, admin, [live.id])
    view = open_link(uow, closed.token, organization_id=admin.organization_id)
    assert view.state is LinkState.REPLACED
    assert view.current == expected
    assert view.can_request_link is False
    outcome = request_current_link(uow, closed.token, admin.organization_id)
    assert outcome.state is RequestState.UNAVAILABLE
    assert link_emails(uow) == [] and requests_audited(uow) == 0


def test_a_withdrawn_link_that_was_not_a_duplicate_keeps_the_revoked_page(
        uow: UnitOfWork, admin: Operator) -> None:
    invite(uow, admin, ADDRESS)
    other = invite(uow, admin, ADDRESS)
    revoke_invitations(uow, admin, [other.id])
    assert open_link(uow, other.token, organization_id=admin.organization_id).state \
        is LinkState.REVOKED
    assert request_current_link(uow, other.token, admin.organization_id).state \
        is RequestState.UNAVAILABLE
    assert link_emails(uow) == []


def test_an_event_duplicate_is_replaced_only_by_an_invitation_to_the_same_event(
        uow: UnitOfWork, admin: Operator) -> None:
    regatta = make_event(uow, admin, "Regatta")
    picnic = make_event(uow, admin, "Picnic")
    invite(uow, admin, ADDRESS, kind=InvitationKind.EVENT, event_id=picnic)
    invite(uow, admin, ADDRESS)  # a membership invitation does not replace it either
    closed = close_as_duplicate(uow, admin, ADDRESS, kind=InvitationKind.EVENT, event_id=regatta)
    assert open_link(uow, closed.token, organization_id=admin.organization_id).current \
        == Current.CLOSED
    live = invite(uow, admin, ADDRESS, kind=InvitationKind.EVENT, event_id=regatta)
    assert open_link(uow, closed.token, organization_id=admin.organization_id).current \
        == Current.PENDING
    request_current_link(uow, closed.token, admin.organization_id)
    assert [json.loads(m.context_json)["invitation_id"] for m in link_emails(uow)] \
        == [str(live.id)]


def test_a_request_queues_the_live_invitation_for_its_own_address_once_an_hour(
        uow: UnitOfWork, admin: Operator) -> None:
    live = invite(uow, admin, ADDRESS, name="Zoë Martin")
    closed = close_as_duplicate(uow, admin, ADDRESS)
    invite(uow, admin, "someone.else@example.org")
    now = utcnow()
    first = request_current_link(uow, closed.token, admin.organization_id, now=now)
    assert first.state is RequestState.QUEUED
    assert first.view.state is LinkState.REPLACED
    [queued] = link_emails(uow)
    assert (queued.to_email, queued.to_name, queued.status) == (ADDRESS, "Zoë Martin", "queued")
    assert json.loads(queued.context_json) == {"invitation_id": str(live.id)}  # no token
    assert requests_audited(uow) == 1

    replay = request_current_link(uow, closed.token, admin.organization_id,
                                  now=now + timedelta(minutes=59))
    assert replay.state is RequestState.ALREADY_REQUESTED
    assert 55 <= replay.retry_after <= 62
    assert len(link_emails(uow)) == 1 and requests_audited(uow) == 1

    later = request_current_link(uow, closed.token, admin.organization_id,
                                 now=now + RESEND_INTERVAL + timedelta(seconds=1))
    assert later.state is RequestState.QUEUED
    assert len(link_emails(uow)) == 2 and requests_audited(uow) == 2


@pytest.mark.parametrize("token", ["forged", "live", "other-organization", "garbage"])
def test_other_tokens_queue_nothing(uow: UnitOfWork, admin: Operator, token: str) -> None:
    live = invite(uow, admin, ADDRESS)
    close_as_duplicate(uow, admin, ADDRESS)
    used = {"forged": "A" * 43, "live": live.token, "garbage": "../../etc/passwd",
            "other-organization": close_as_duplicate(uow, admin, "x@example.org").token}[token]
    organization_id = admin.organization_id
    if token == "other-organization":
        import uuid

        organization_id = uuid.uuid4()
    outcome = request_current_link(uow, used, organization_id)
    assert outcome.state is RequestState.UNAVAILABLE
    assert link_emails(uow) == [] and requests_audited(uow) == 0


def test_two_requests_at_once_queue_one_email(engine: Engine, admin: Operator) -> None:
    uow = UnitOfWork(engine)
    invite(uow, admin, ADDRESS)
    closed = close_as_duplicate(uow, admin, ADDRESS)
    states = ask_at_once(engine, admin, closed.token)
    assert states == sorted([RequestState.QUEUED] + [RequestState.ALREADY_REQUESTED] * 3)
    assert len(link_emails(uow)) == 1 and requests_audited(uow) == 1


def test_the_sender_mails_the_live_invitation_with_a_fresh_link(
        uow: UnitOfWork, admin: Operator, smtp_server: LoopbackSmtpServer) -> None:
    enable_confirmation_email(uow, admin, smtp_server)
    live = invite(uow, admin, ADDRESS, name="Zoë Martin", message="See you on the water!")
    closed = close_as_duplicate(uow, admin, ADDRESS)
    request_current_link(uow, closed.token, admin.organization_id)
    run = _deliver(uow, admin)
    assert run.sent == 1
    assert [str(m.message["To"]) for m in smtp_server.messages] == ["Zoë Martin <zoe.martin@example.org>"]
    text = mail_text(smtp_server, ADDRESS)
    assert "See you on the water!" in text  # the invitation's own email
    found = re.search(r"/join/([A-Za-z0-9_-]+)", text)
    assert found is not None
    fresh = found.group(1)
    assert fresh not in (live.token, closed.token)
    assert open_link(uow, fresh, organization_id=admin.organization_id).state is LinkState.VALID
    # The live invitation's earlier link now says a newer one was sent; the closed one
    # still says it was replaced.
    assert open_link(uow, live.token, organization_id=admin.organization_id).state \
        is LinkState.SUPERSEDED
    assert open_link(uow, closed.token, organization_id=admin.organization_id).state \
        is LinkState.REPLACED
    [row] = link_emails(uow)
    assert row.status == MailState.SENT and row.message_id
    assert fresh not in row.context_json and live.token not in row.context_json
    assert register_with_invitation(uow, fresh, form(),
                                    organization_id=admin.organization_id).registered


def test_a_refused_email_gives_the_invitee_their_old_link_back(
        uow: UnitOfWork, admin: Operator, smtp_server: LoopbackSmtpServer) -> None:
    enable_confirmation_email(uow, admin, smtp_server)
    live = invite(uow, admin, ADDRESS)
    closed = close_as_duplicate(uow, admin, ADDRESS)
    request_current_link(uow, closed.token, admin.organization_id)
    smtp_server.fail_next("RCPT", 550, text="mailbox unavailable")
    run = _deliver(uow, admin)
    assert run.failed == 1
    assert open_link(uow, live.token, organization_id=admin.organization_id).state \
        is LinkState.VALID


@pytest.mark.parametrize("change", ["accepted", "suppressed"])
def test_nothing_is_sent_when_the_invitation_changed_before_the_sender_ran(
        uow: UnitOfWork, admin: Operator, smtp_server: LoopbackSmtpServer, change: str) -> None:
    enable_confirmation_email(uow, admin, smtp_server)
    live = invite(uow, admin, ADDRESS)
    closed = close_as_duplicate(uow, admin, ADDRESS)
    request_current_link(uow, closed.token, admin.organization_id)
    if change == "accepted":
        assert register_with_invitation(uow, live.token, form(),
                                        organization_id=admin.organization_id).registered
    else:
        suppression.add_suppression(uow, admin, ADDRESS, "asked not to be emailed")
    _deliver(uow, admin)  # (registering queues the inviter's "joined" email)
    assert smtp_server.count_for(ADDRESS) == 0
    [row] = link_emails(uow)
    assert row.status == MailState.SKIPPED


def test_the_request_is_always_on_whatever_the_notification_switches(
        uow: UnitOfWork, admin: Operator) -> None:
    from tests.registration_fixtures import set_policy

    set_policy(uow, admin, notify_application_decision=False, notify_invitee_joined=False,
               notify_operator_sign_in=False)
    invite(uow, admin, ADDRESS)
    closed = close_as_duplicate(uow, admin, ADDRESS)
    assert request_current_link(uow, closed.token, admin.organization_id).state \
        is RequestState.QUEUED
    assert len(link_emails(uow)) == 1


def test_no_registration_address_fails_the_email_and_keeps_the_old_link(
        uow: UnitOfWork, admin: Operator, smtp_server: LoopbackSmtpServer) -> None:
    enable_confirmation_email(uow, admin, smtp_server)
    organization.update_organization(uow, admin, {"registration_base_url": ""})
    live = invite(uow, admin, ADDRESS)
    closed = close_as_duplicate(uow, admin, ADDRESS)
    request_current_link(uow, closed.token, admin.organization_id)
    run = _deliver(uow, admin)
    assert run.sent == 0
    [row] = link_emails(uow)
    assert row.status == MailState.FAILED and "registration web address" in row.last_error
    assert open_link(uow, live.token, organization_id=admin.organization_id).state \
        is LinkState.VALID
    with uow:
        assert uow.session.get(OutgoingMail, row.id) is not None
