"""The whole loop over real sockets: the desktop services send an invitation through the loopback
SMTP server, the link in the received email is followed against the running portal with a real
HTTP client, the invitee registers, and the services show the result. The server's logs never
contain the token."""

from __future__ import annotations

import logging
import socket
import urllib.parse

import pytest
from flask import Flask
from sqlalchemy import Engine, select

from invite_desk.portal import views
from invite_desk.services.models import AcceptedVia, Invitation, InvitationStatus, ReferralStatus
from invite_desk.services.operator import Operator
from invite_desk.services.referrals import referrals_of
from invite_desk.services.uow import UnitOfWork
from tests.portal_client import (
    HttpClient,
    csrf_from,
    portal_app,
    running_portal,
    send_invitation,
)
from tests.registration_fixtures import PASSWORD, member_by_email
from tests.smtp_server import LoopbackSmtpServer


@pytest.fixture
def app(engine: Engine, uow: UnitOfWork, admin: Operator) -> Flask:
    return portal_app(engine, uow)


def test_sent_by_email_followed_registered_and_tracked(
    app: Flask, uow: UnitOfWork, admin: Operator, smtp_server: LoopbackSmtpServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    with running_portal(app) as portal_url:
        link = send_invitation(uow, admin, smtp_server, portal_url,
                               "Zoë Martin <zoe@example.org>", "See you on the water, Zoë!")
        token = link.rsplit("/", 1)[1]
        browser = HttpClient()

        page = browser.get(link)
        assert page.status == 200
        assert "Ada Admin invited you to join Harbour Rowing Club" in page.text
        assert "See you on the water, Zoë!" in page.text
        assert 'value="zoe@example.org" readonly' in page.text
        assert page.headers["Referrer-Policy"] == "no-referrer"
        logo = browser.get(f"{portal_url}/logo")
        assert logo.status == 200 and logo.headers["Content-Type"] == "image/png"
        assert "#0B7A75" in browser.get(f"{portal_url}/brand.css").text

        fields = {"csrf_token": csrf_from(page.text), "first_name": "Zoë", "last_name": "Martin",
                  "password": PASSWORD, "password_confirmation": PASSWORD}
        done = browser.post(link, fields)
        assert done.status == 200 and done.url == f"{portal_url}/welcome"
        assert "Welcome to Harbour Rowing Club, Zoë!" in done.text

        again = browser.post(link, {**fields, "first_name": "Twice"})
        assert again.status == 410 and "already been used" in again.text

    member = member_by_email(uow, "zoe@example.org")
    assert member is not None and member.first_name == "Zoë"
    assert member.referred_by_id == admin.member_id and member.status == "active"
    with uow:
        sent = uow.session.scalars(select(Invitation)).one()
        assert sent.status == InvitationStatus.ACCEPTED.value
        assert sent.accepted_member_id == member.id
        assert sent.accepted_via == AcceptedVia.LINK.value
        sent_id = sent.id
    referral = referrals_of(uow, member.id)
    assert [(r.referrer_name, r.status, r.invitation_id) for r in referral] == [
        ("Ada Admin", ReferralStatus.COMPLETED, sent_id)]

    # The access log has every request, and never the token.
    assert token not in caplog.text
    assert urllib.parse.quote(token) not in caplog.text
    assert caplog.text.count("/join/<redacted>") >= 3


def test_a_failing_page_and_a_broken_request_log_no_token(
    app: Flask, uow: UnitOfWork, admin: Operator, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    token = "T0ken-That-Must-Not-Be-Logged_0123456789abcd"

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("database went away")

    monkeypatch.setattr(views, "open_link", broken)
    with running_portal(app) as portal_url:
        reply = HttpClient().get(f"{portal_url}/join/{token}?utm=1")
        assert reply.status == 500 and "Something went wrong" in reply.text
        assert token not in reply.text
        host, port = portal_url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as raw:
            raw.sendall(f"GET /join/{token} HTTP/9.9\r\n\r\n".encode())
            assert raw.recv(4096).startswith(b"HTTP/")
    assert "database went away" in caplog.text  # the error itself is logged ...
    assert "Exception on /join/<redacted> [GET]" in caplog.text
    assert token not in caplog.text  # ... but not the token, in any line
