"""The page of a link closed as a duplicate, and its "Email me the current link" button,
through the real portal server and an HTTP client that reads forms like a browser; the email
then goes out through the notification sender and loopback SMTP."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from datetime import timedelta

import pytest
from flask import Flask
from sqlalchemy import Engine

from invite_desk.services import mail_settings
from invite_desk.services.admin.notifications import send_pending_notifications
from invite_desk.services.models import utcnow
from invite_desk.services.operator import Operator
from invite_desk.services.smtp.transport import SmtpTransport
from invite_desk.services.uow import UnitOfWork
from tests.portal_client import HttpClient, csrf_from, portal_app, running_portal
from tests.registration_fixtures import enable_confirmation_email, invite, mail_text
from tests.replaced_link_fixtures import close_as_duplicate, link_emails, requests_audited
from tests.smtp_server import LoopbackSmtpServer

ADDRESS = "zoe.martin@example.org"


@pytest.fixture
def portal(engine: Engine, uow: UnitOfWork, admin: Operator) -> Iterator[str]:
    with running_portal(portal_app(engine, uow)) as url:
        yield url


def _text(page: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def _button_action(page: str) -> str:
    found = re.search(r'<form method="post" action="([^"]+)"', page)
    assert found, page
    return html.unescape(found.group(1))


def test_the_closed_link_explains_and_emails_the_current_one(
        portal: str, uow: UnitOfWork, admin: Operator, smtp_server: LoopbackSmtpServer) -> None:
    enable_confirmation_email(uow, admin, smtp_server, base_url=portal)
    live = invite(uow, admin, ADDRESS, message="Welcome aboard")
    closed = close_as_duplicate(uow, admin, ADDRESS)
    browser = HttpClient()
    page = browser.get(f"{portal}/join/{closed.token}")
    assert page.status == 410
    text = _text(page.text)
    assert "This link was replaced by another invitation" in text
    assert "use the link in the most recent email" in text
    assert "Email me the current link" in text
    assert live.token not in page.text  # the page never shows the live link
    action = _button_action(page.text)
    assert action == f"/join/{closed.token}/current-link"

    sent = browser.post(portal + action, {"csrf_token": csrf_from(page.text)})
    assert sent.status == 202
    assert "Your current invitation is on its way" in _text(sent.text)
    assert ADDRESS in _text(sent.text)
    assert len(link_emails(uow)) == 1 and requests_audited(uow) == 1

    replay = browser.post(portal + action, {"csrf_token": csrf_from(page.text)})
    assert replay.status == 429 and int(replay.headers["Retry-After"]) > 3500
    assert "already requested" in _text(replay.text)
    assert len(link_emails(uow)) == 1

    settings = mail_settings.get_mail_settings(uow, admin.organization_id)
    with SmtpTransport(settings.smtp_config(timeout=5), None) as transport:
        assert send_pending_notifications(uow, transport).sent == 1
    found = re.search(re.escape(portal) + r"/join/[A-Za-z0-9_-]+", mail_text(smtp_server, ADDRESS))
    assert found, mail_text(smtp_server, ADDRESS)
    join = HttpClient().get(found.group(0))
    assert join.status == 200 and "Welcome aboard" in join.text
    assert "A newer invitation was sent to you" in _text(HttpClient().get(
        f"{portal}/join/{live.token}").text)


def test_the_button_needs_the_form_s_csrf_token(
        portal: str, uow: UnitOfWork, admin: Operator) -> None:
    invite(uow, admin, ADDRESS)
    closed = close_as_duplicate(uow, admin, ADDRESS)
    browser = HttpClient()
    browser.get(f"{portal}/join/{closed.token}")  # a session with a token of its own
    url = f"{portal}/join/{closed.token}/current-link"
    for fields in ({}, {"csrf_token": "forged"}):
        refused = browser.post(url, fields)
        assert refused.status == 400 and "This form has expired" in refused.text
    stranger = HttpClient().post(url, {"csrf_token": "forged"})  # a cross-site POST
    assert stranger.status == 400
    assert link_emails(uow) == [] and requests_audited(uow) == 0
    assert HttpClient().get(url).status == 405  # a link opened never sends anything


def test_forged_live_and_withdrawn_tokens_send_nothing(
        portal: str, uow: UnitOfWork, admin: Operator) -> None:
    from invite_desk.services.tracking.actions import revoke_invitations

    live = invite(uow, admin, ADDRESS)
    withdrawn = invite(uow, admin, "yann@example.org")
    revoke_invitations(uow, admin, [withdrawn.id])
    closed = close_as_duplicate(uow, admin, ADDRESS)
    browser = HttpClient()
    csrf = csrf_from(browser.get(f"{portal}/join/{closed.token}").text)

    forged = browser.post(f"{portal}/join/{'B' * 43}/current-link", {"csrf_token": csrf})
    assert forged.status == 404 and "This link doesn't work" in _text(forged.text)
    to_live = browser.post(f"{portal}/join/{live.token}/current-link", {"csrf_token": csrf},
                           follow=False)
    assert to_live.status == 303 and to_live.headers["Location"].endswith(f"/join/{live.token}")
    gone = browser.post(f"{portal}/join/{withdrawn.token}/current-link", {"csrf_token": csrf})
    assert gone.status == 410 and "This invitation was withdrawn" in _text(gone.text)
    expired = invite(uow, admin, "xavier@example.org", expires_at=utcnow() - timedelta(days=1))
    late = browser.post(f"{portal}/join/{expired.token}/current-link", {"csrf_token": csrf})
    assert late.status == 410 and "This invitation has expired" in _text(late.text)
    assert link_emails(uow) == [] and requests_audited(uow) == 0


def test_no_button_once_the_other_invitation_expired(
        portal: str, uow: UnitOfWork, admin: Operator) -> None:
    invite(uow, admin, ADDRESS, expires_at=utcnow() - timedelta(minutes=1))
    closed = close_as_duplicate(uow, admin, ADDRESS)
    browser = HttpClient()
    page = browser.get(f"{portal}/join/{closed.token}")
    assert page.status == 410 and "Email me the current link" not in page.text
    assert "no longer valid either" in _text(page.text)
    invite(uow, admin, "yann@example.org")  # a page with the form, for a session token
    csrf = csrf_from(browser.get(
        f"{portal}/join/{close_as_duplicate(uow, admin, 'yann@example.org').token}").text)
    asked = browser.post(f"{portal}/join/{closed.token}/current-link", {"csrf_token": csrf})
    assert asked.status == 410 and "no longer valid either" in _text(asked.text)
    assert link_emails(uow) == [] and requests_audited(uow) == 0


def test_forged_tokens_count_towards_the_bad_token_limit(
        engine: Engine, uow: UnitOfWork, admin: Operator) -> None:
    app: Flask = portal_app(engine, uow, bad_token_limit=2)
    invite(uow, admin, ADDRESS)
    closed = close_as_duplicate(uow, admin, ADDRESS)
    with running_portal(app) as portal:
        browser = HttpClient()
        csrf = csrf_from(browser.get(f"{portal}/join/{closed.token}").text)
        for i in range(2):
            assert browser.post(f"{portal}/join/{str(i) * 43}/current-link",
                                {"csrf_token": csrf}).status == 404
        blocked = browser.post(f"{portal}/join/{closed.token}/current-link",
                               {"csrf_token": csrf})
        assert blocked.status == 429
    assert link_emails(uow) == []


def test_requests_count_towards_the_client_s_registration_limit(
        engine: Engine, uow: UnitOfWork, admin: Operator) -> None:
    """Each closed link may be asked for once an hour; one client asking for many is held
    by the portal's per-client limit on attempts that send email."""
    app = portal_app(engine, uow, registration_limit=2)
    links = []
    for i in range(3):
        address = f"person{i}@example.org"
        invite(uow, admin, address)
        links.append(close_as_duplicate(uow, admin, address))
    with running_portal(app) as portal:
        browser = HttpClient()
        csrf = csrf_from(browser.get(f"{portal}/join/{links[0].token}").text)
        codes = [browser.post(f"{portal}/join/{link.token}/current-link",
                              {"csrf_token": csrf}).status for link in links]
    assert codes == [202, 202, 429]
    assert len(link_emails(uow)) == 2
