"""The whole story on real PostgreSQL and MariaDB: two desktops invite the same address
offline and both emails go out; the push closes the later one as a duplicate; its link, on
the portal running against the server, says it was replaced and emails the current link,
which the server's notification sender mails with a fresh link that registers."""

from __future__ import annotations

import re

from invite_desk.services import mail_settings, organization
from invite_desk.services.admin.notifications import send_pending_notifications
from invite_desk.services.invitations.sending import OutboxSender
from invite_desk.services.models import InvitationStatus
from invite_desk.services.operator import Operator
from invite_desk.services.registration.replaced import RequestState
from invite_desk.services.roles import Role
from invite_desk.services.smtp.transport import SmtpTransport
from invite_desk.services.sync import push
from invite_desk.services.uow import UnitOfWork
from tests.portal_client import HttpClient, csrf_from, portal_app, running_portal
from tests.replaced_link_fixtures import ask_at_once, link_emails, requests_audited
from tests.smtp_server import LoopbackSmtpServer
from tests.sync_push_support import SyncWorld, queue, rows_of

ADDRESS = "zoe.martin@example.org"
_LINK = re.compile(r"/join/([A-Za-z0-9_-]+)")


def _send_from(uow: UnitOfWork, operator: Operator, batch_id: object) -> None:
    settings = mail_settings.get_mail_settings(uow, operator.organization_id)
    report = OutboxSender(uow, SmtpTransport(settings.smtp_config(timeout=5), None),
                          organization_id=operator.organization_id,
                          batch_id=batch_id).run()  # type: ignore[arg-type]
    assert report.sent == 1, report


def _tokens(smtp: LoopbackSmtpServer) -> list[str]:
    out = []
    for received in smtp.messages:
        body = received.message.get_body(("plain",))
        assert body is not None
        found = _LINK.search(str(body.get_content()))
        assert found is not None
        out.append(found.group(1))
    return out


def test_the_link_a_push_closed_as_duplicate_leads_to_the_current_one(
        world: SyncWorld, smtp_server: LoopbackSmtpServer) -> None:
    app = portal_app(world.server, world.server_uow)
    with running_portal(app) as portal:
        organization.update_organization(world.server_uow, world.admin,
                                         {"registration_base_url": portal})
        mail_settings.update_mail_settings(world.server_uow, world.admin, {
            "host": smtp_server.host, "port": smtp_server.port, "security": "none",
            "from_address": "office@rowing.example", "from_name": "Harbour Rowing Club",
            "rate_per_minute": 0})
        hr = world.member(Role.HR_TENANT, "hana.hr@example.org", "Hana")
        first, second = world.replica(world.admin), world.replica(hr)
        for replica, operator in ((first, world.admin), (second, hr)):  # both offline
            uow = UnitOfWork(replica)
            _send_from(uow, operator, queue(uow, operator, ADDRESS).batch_id)
        first_token, second_token = _tokens(smtp_server)
        assert push.push_pending(world.server, first).rejected == 0
        assert push.push_pending(world.server, second).rejected == 0
        statuses = {r["sender_id"]: r["status"]
                    for r in rows_of(world.server, "invitation", email_normalized=ADDRESS)}
        assert statuses == {world.admin.member_id: InvitationStatus.SENT,
                            hr.member_id: InvitationStatus.REVOKED}

        browser = HttpClient()
        closed_page = browser.get(f"{portal}/join/{second_token}")
        assert closed_page.status == 410
        assert "This link was replaced by another invitation" in closed_page.text
        assert first_token not in closed_page.text
        assert browser.get(f"{portal}/join/{first_token}").status == 200

        asked = browser.post(f"{portal}/join/{second_token}/current-link",
                             {"csrf_token": csrf_from(closed_page.text)})
        assert asked.status == 202
        settings = mail_settings.get_mail_settings(world.server_uow, world.admin.organization_id)
        with SmtpTransport(settings.smtp_config(timeout=5), None) as transport:
            assert send_pending_notifications(world.server_uow, transport).sent == 1
        fresh = _tokens(smtp_server)[-1]
        assert fresh not in (first_token, second_token)
        assert smtp_server.count_for(ADDRESS) == 3  # the two invitations, then the current
        join = HttpClient().get(f"{portal}/join/{fresh}")
        assert join.status == 200 and "invited you to join" in join.text
        register = HttpClient()
        page = register.get(f"{portal}/join/{fresh}")
        done = register.post(f"{portal}/join/{fresh}", {
            "csrf_token": csrf_from(page.text), "first_name": "Zoë", "last_name": "Martin",
            "password": "a long enough password",
            "password_confirmation": "a long enough password"})
        assert done.status == 200 and "/welcome" in done.url


def test_requests_at_once_on_a_server_queue_one_email(world: SyncWorld) -> None:
    from tests.registration_fixtures import invite
    from tests.replaced_link_fixtures import close_as_duplicate

    invite(world.server_uow, world.admin, ADDRESS)
    closed = close_as_duplicate(world.server_uow, world.admin, ADDRESS)
    states = ask_at_once(world.server, world.admin, closed.token)
    assert states == sorted([RequestState.QUEUED] + [RequestState.ALREADY_REQUESTED] * 3)
    assert len(link_emails(world.server_uow)) == 1 and requests_audited(world.server_uow) == 1
