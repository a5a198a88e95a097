"""The portal's pages through Flask's test client: what each link state shows, the forms,
CSRF, the bad-token limit, security headers, branding, and no leak about who is a member."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine
from werkzeug.test import TestResponse

from invite_desk.services import organization
from invite_desk.services.models import (
    InvitationKind,
    InvitationStatus,
    MemberStatus,
    Organization,
    utcnow,
)
from invite_desk.services.operator import Operator
from invite_desk.services.roles import Role
from invite_desk.services.uow import UnitOfWork
from tests.conftest import MakeOperator
from tests.images import PNG_LOGO
from tests.portal_client import csrf_from, portal_app
from tests.registration_fixtures import (
    PASSWORD,
    confirmation_token,
    enable_confirmation_email,
    invitation,
    invite,
    mail_text,
    make_event,
    member_by_email,
    members_with_email,
    set_policy,
)
from tests.smtp_server import LoopbackSmtpServer

ZOE = "zoe@example.org"


@pytest.fixture
def app(engine: Engine, uow: UnitOfWork, admin: Operator) -> Flask:
    return portal_app(engine, uow)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def text(response: TestResponse) -> str:
    return response.get_data(as_text=True)


def registration_fields(page: str, **overrides: str) -> dict[str, str]:
    fields = {"csrf_token": csrf_from(page), "first_name": "Zoë", "last_name": "Martin",
              "password": PASSWORD, "password_confirmation": PASSWORD}
    fields.update(overrides)
    return fields


# ------------------------------------------------------------------------------ join page


def test_the_join_page_is_branded_and_names_the_inviter(
    uow: UnitOfWork, admin: Operator, client: FlaskClient
) -> None:
    sent = invite(uow, admin, ZOE, name="Zoë Martin",
                  message="Come row with us!\n<script>alert('x')</script>")
    response = client.get(f"/join/{sent.token}")
    page = text(response)
    assert response.status_code == 200
    assert "Harbour Rowing Club" in page and "Ada Admin invited you to join" in page
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page  # escaped, never run
    assert "<script" not in page
    assert re.search(rf'<input id="email" type="email" value="{ZOE}" readonly', page)
    assert 'name="email"' not in page  # the address is the invitation's, never posted
    assert 'value="Zoë"' in page and 'value="Martin"' in page
    assert 'type="password"' in page and 'name="csrf_token"' in page
    assert "A rowing club with chapters along the coast." in page
    assert "/brand.css" in page


def test_security_headers(
    uow: UnitOfWork, admin: Operator, client: FlaskClient, app: Flask
) -> None:
    sent = invite(uow, admin, ZOE)
    for path in (f"/join/{sent.token}", "/register", "/join/unknown-token-xxxxxxxxxxxx"):
        headers = client.get(path).headers
        csp = headers["Content-Security-Policy"]
        assert "default-src 'none'" in csp and "script-src" not in csp
        assert "frame-ancestors 'none'" in csp and "form-action 'self'" in csp
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["Referrer-Policy"] == "no-referrer"
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Cache-Control"] == "no-store"
    cookie = app.test_client().get(f"/join/{sent.token}").headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    over_https = app.test_client().get(f"/join/{sent.token}", base_url="https://join.example.org")
    assert "Secure" in over_https.headers["Set-Cookie"]
    assert over_https.headers["Strict-Transport-Security"].startswith("max-age=")


def test_registering_through_the_page(
    uow: UnitOfWork, admin: Operator, client: FlaskClient
) -> None:
    sent = invite(uow, admin, ZOE)
    page = text(client.get(f"/join/{sent.token}"))
    response = client.post(f"/join/{sent.token}", data=registration_fields(page))
    assert response.status_code == 303 and response.headers["Location"].endswith("/welcome")
    welcome = client.get("/welcome")
    assert welcome.status_code == 200
    assert "Welcome to Harbour Rowing Club, Zoë!" in text(welcome)
    # Shown once: the next person at a shared computer does not see who registered.
    assert client.get("/welcome").status_code == 302
    member = member_by_email(uow, ZOE)
    assert member is not None and member.referred_by_id == admin.member_id
    assert invitation(uow, sent.id).status == InvitationStatus.ACCEPTED.value
    # The link is used up: the same page now says so.
    again = client.get(f"/join/{sent.token}")
    assert again.status_code == 410 and "already been used" in text(again)


def test_form_errors_keep_the_names_but_never_the_password(
    uow: UnitOfWork, admin: Operator, client: FlaskClient
) -> None:
    sent = invite(uow, admin, ZOE)
    page = text(client.get(f"/join/{sent.token}"))
    response = client.post(f"/join/{sent.token}", data=registration_fields(
        page, first_name="Zoë <b>", password="short-pw", password_confirmation="short-pw"))
    body = text(response)
    assert response.status_code == 422
    assert "Password must be at least 10 characters." in body
    assert 'value="Zoë &lt;b&gt;"' in body and "short-pw" not in body
    assert 'aria-invalid="true"' in body
    assert member_by_email(uow, ZOE) is None


def test_a_post_without_the_csrf_token_is_refused(
    uow: UnitOfWork, admin: Operator, client: FlaskClient, app: Flask
) -> None:
    sent = invite(uow, admin, ZOE)
    page = text(client.get(f"/join/{sent.token}"))
    fields = registration_fields(page)
    for bad in ({**fields, "csrf_token": ""}, {**fields, "csrf_token": "forged" + fields["csrf_token"]},
                {k: v for k, v in fields.items() if k != "csrf_token"}):
        response = client.post(f"/join/{sent.token}", data=bad)
        assert response.status_code == 400 and "This form has expired" in text(response)
    # Another browser (no session cookie) cannot reuse this browser's token either.
    stranger = app.test_client()
    assert stranger.post(f"/join/{sent.token}", data=fields).status_code == 400
    with LoopbackSmtpServer() as smtp:
        enable_confirmation_email(uow, admin, smtp)
        refused = stranger.post("/register", data={**fields, "email": "x@example.org"})
    assert refused.status_code == 400
    assert member_by_email(uow, ZOE) is None and member_by_email(uow, "x@example.org") is None
    assert client.post(f"/join/{sent.token}", data=fields).status_code == 303


# ----------------------------------------------------------------------- link state pages


@pytest.mark.parametrize(
    ("status", "expires_in", "code", "heading"),
    [
        (InvitationStatus.SENT, -timedelta(minutes=1), 410, "This invitation has expired"),
        (InvitationStatus.EXPIRED, -timedelta(days=2), 410, "This invitation has expired"),
        (InvitationStatus.ACCEPTED, timedelta(days=2), 410, "This invitation has already been used"),
        (InvitationStatus.REVOKED, timedelta(days=2), 410, "This invitation was withdrawn"),
        (InvitationStatus.FAILED, timedelta(days=2), 404, "This link doesn"),
        (InvitationStatus.UNCERTAIN, timedelta(days=2), 200, "Ada Admin invited you to join"),
        (InvitationStatus.SENDING, timedelta(days=2), 503, "Your invitation is on its way"),
    ],
)
def test_each_link_state_has_a_clear_page(
    uow: UnitOfWork, admin: Operator, client: FlaskClient, status: InvitationStatus,
    expires_in: timedelta, code: int, heading: str,
) -> None:
    sent = invite(uow, admin, ZOE, status=status, expires_at=utcnow() + expires_in,
                  message="secret plans")
    response = client.get(f"/join/{sent.token}")
    page = text(response)
    assert response.status_code == code
    assert heading in page
    if code != 200:
        assert "secret plans" not in page and ZOE not in page
        if status is not InvitationStatus.REVOKED:  # a withdrawn link says whom to ask
            assert "Ada Admin" not in page
        assert "<form" not in page
    if status is InvitationStatus.REVOKED:
        assert "ask ada admin" in page.lower()
    elif code in (404, 410):
        assert "ask the person who invited you" in page.lower()
    if code == 503:
        assert response.headers["Retry-After"] == "60"


def test_unknown_and_failed_links_get_the_very_same_page(
    uow: UnitOfWork, admin: Operator, client: FlaskClient
) -> None:
    """A link that never worked reveals nothing; a revoked one says so (its holder knew it)."""
    failed = invite(uow, admin, ZOE, status=InvitationStatus.FAILED)
    revoked = invite(uow, admin, "yves@example.org", status=InvitationStatus.REVOKED)
    unknown = "Q" * 43
    a, b = client.get(f"/join/{failed.token}"), client.get(f"/join/{unknown}")
    assert a.status_code == b.status_code == 404
    assert text(a) == text(b)
    withdrawn = client.get(f"/join/{revoked.token}")
    assert withdrawn.status_code == 410 and "withdrawn" in text(withdrawn)
    assert "email program" not in text(withdrawn).replace("Nothing is wrong with your email program", "")


def test_already_a_member_is_said_only_to_the_link_holder(
    uow: UnitOfWork, admin: Operator, client: FlaskClient
) -> None:
    sent = invite(uow, admin, "ada.admin@example.org")
    response = client.get(f"/join/{sent.token}")
    assert response.status_code == 200 and "already registered" in text(response)
    assert "<form" not in text(response)


# --------------------------------------------------------------------------- bad-token limit


def test_too_many_bad_tokens_from_one_client_get_429(
    engine: Engine, uow: UnitOfWork, admin: Operator
) -> None:
    app = portal_app(engine, uow, bad_token_limit=10, bad_token_window=600)
    client = app.test_client()
    good = invite(uow, admin, ZOE)
    attacker = {"REMOTE_ADDR": "203.0.113.9"}
    for i in range(10):
        response = client.get(f"/join/guess{i:040d}", environ_base=attacker)
        assert response.status_code == 404
    blocked = client.get("/join/guess-number-eleven-xxxxxxxxxx", environ_base=attacker)
    assert blocked.status_code == 429
    assert 0 < int(blocked.headers["Retry-After"]) <= 600
    assert "Too many attempts" in text(blocked)
    # Blocked for every link (a valid token cannot be told apart), POSTs included.
    assert client.get(f"/join/{good.token}", environ_base=attacker).status_code == 429
    assert client.post(f"/join/{good.token}", data={}, environ_base=attacker).status_code == 429
    # Other clients are not affected.
    assert client.get(f"/join/{good.token}", environ_base={"REMOTE_ADDR": "198.51.100.7"}
                      ).status_code == 200


def test_expired_and_used_links_do_not_count_as_bad_tokens(
    engine: Engine, uow: UnitOfWork, admin: Operator
) -> None:
    client = portal_app(engine, uow, bad_token_limit=2).test_client()
    expired = invite(uow, admin, ZOE, expires_at=utcnow() - timedelta(days=1))
    used = invite(uow, admin, "sam@example.org", status=InvitationStatus.ACCEPTED)
    for _ in range(5):
        assert client.get(f"/join/{expired.token}").status_code == 410
        assert client.get(f"/join/{used.token}").status_code == 410


def test_the_limit_trusts_forwarded_addresses_only_behind_a_configured_proxy(
    engine: Engine, uow: UnitOfWork, admin: Operator
) -> None:
    direct = portal_app(engine, uow, bad_token_limit=1).test_client()
    direct.get("/join/bad-token-number-one-xxxxxx", headers={"X-Forwarded-For": "1.1.1.1"})
    spoofed = direct.get("/join/bad-token-number-two-xxxxxx", headers={"X-Forwarded-For": "2.2.2.2"})
    assert spoofed.status_code == 429  # the header is ignored: same client
    proxied = portal_app(engine, uow, bad_token_limit=1, proxy_hops=1).test_client()
    proxied.get("/join/bad-token-number-one-xxxxxx", headers={"X-Forwarded-For": "1.1.1.1"})
    other = proxied.get("/join/bad-token-number-two-xxxxxx", headers={"X-Forwarded-For": "2.2.2.2"})
    assert other.status_code == 404


# --------------------------------------------------------------------------- invite-only


def test_the_invite_only_notice(uow: UnitOfWork, admin: Operator, client: FlaskClient) -> None:
    set_policy(uow, admin, number_of_referrals_needed_for_signup=1)
    response = client.get("/register")
    page = text(response)
    assert response.status_code == 200
    assert "Registration is by invitation only" in page
    assert "Public registration is disabled" in page
    assert "must receive an invitation from an existing member" in page
    assert "Invited people can register normally" in page
    assert "<form" not in page
    posted = client.post("/register", data={"email": "walk.in@example.org", "first_name": "W",
                                            "password": PASSWORD,
                                            "password_confirmation": PASSWORD})
    assert "Registration is by invitation only" in text(posted)
    assert member_by_email(uow, "walk.in@example.org") is None


def test_with_two_needed_the_page_says_how_many_more_without_naming_anyone(
    uow: UnitOfWork, admin: Operator, client: FlaskClient, make_operator: MakeOperator
) -> None:
    set_policy(uow, admin, number_of_referrals_needed_for_signup=3)
    bob = make_operator(Role.USER, email="bob.secret@example.org")
    sent = invite(uow, admin, ZOE)
    invite(uow, bob, ZOE)
    page = text(client.get(f"/join/{sent.token}"))
    assert "invitations from 3 different members" in page
    assert "So far 2 members have invited you" in page and "1 more member needs to invite" in page
    assert "Role User" not in page and "Tester" not in page and "bob.secret" not in page
    assert "<form" not in page
    notice = text(client.get("/register"))
    assert "from 3 different members" in notice
    # A form posted anyway (opened before the policy changed) gets the same explanation.
    with client.session_transaction() as browser_session:
        browser_session["csrf"] = "token-from-an-older-page"
    posted = client.post(f"/join/{sent.token}", data=registration_fields(
        '<input name="csrf_token" value="token-from-an-older-page">'))
    assert posted.status_code == 200 and "1 more member needs to invite" in text(posted)
    assert member_by_email(uow, ZOE) is None


# ------------------------------------------------------------------- public registration


def register_publicly(client: FlaskClient, email: str, **overrides: str) -> TestResponse:
    page = text(client.get("/register"))
    return client.post("/register", data=registration_fields(page, email=email, **overrides))


def test_public_registration_answers_the_same_for_new_known_and_invited_addresses(
    uow: UnitOfWork, admin: Operator, app: Flask, smtp_server: LoopbackSmtpServer
) -> None:
    enable_confirmation_email(uow, admin, smtp_server)
    invited = invite(uow, admin, ZOE)
    replies = []
    for email in ("walk.in@example.org", "ADA.ADMIN@example.org", ZOE):
        browser = app.test_client()
        posted = register_publicly(browser, email, first_name="Mallory")
        replies.append((posted.status_code, posted.headers["Location"],
                        text(browser.get(posted.headers["Location"]))))
    assert len(set(replies)) == 1  # nothing tells a member, an invitee and a new address apart
    assert replies[0][0] == 303 and "Check your inbox" in replies[0][2]
    # Nobody is registered before the link is followed; the known member is unchanged.
    assert member_by_email(uow, "walk.in@example.org") is None and member_by_email(uow, ZOE) is None
    admin_row = member_by_email(uow, "ada.admin@example.org")
    assert admin_row is not None and admin_row.first_name == "Ada"
    assert members_with_email(uow, "ada.admin@example.org") == 1
    # Only the emails differ, and only the owner of each address reads them.
    assert "/confirm/" in mail_text(smtp_server, "walk.in@example.org")
    assert "already have an account" in mail_text(smtp_server, "ada.admin@example.org")
    assert "/confirm/" not in mail_text(smtp_server, "ada.admin@example.org")
    invited_mail = mail_text(smtp_server, ZOE)
    assert "invitation from Ada Admin" in invited_mail and "/confirm/" in invited_mail
    assert invitation(uow, invited.id).status == "sent"
    assert confirmation_token(smtp_server, "walk.in@example.org")


def test_public_registration_errors(
    uow: UnitOfWork, admin: Operator, client: FlaskClient, smtp_server: LoopbackSmtpServer
) -> None:
    enable_confirmation_email(uow, admin, smtp_server)
    response = register_publicly(client, "not-an-address", password_confirmation="different!!")
    body = text(response)
    assert response.status_code == 422
    assert "Please enter a valid email address" in body and "do not match" in body
    assert 'value="not-an-address"' in body


def test_public_registrations_per_client_are_limited(
    engine: Engine, uow: UnitOfWork, admin: Operator, smtp_server: LoopbackSmtpServer
) -> None:
    enable_confirmation_email(uow, admin, smtp_server)
    client = portal_app(engine, uow, registration_limit=2).test_client()
    assert register_publicly(client, "one@example.org").status_code == 303
    assert register_publicly(client, "two@example.org").status_code == 303
    assert register_publicly(client, "three@example.org").status_code == 429
    assert smtp_server.count_for("three@example.org") == 0


def test_the_root_leads_to_registration(client: FlaskClient) -> None:
    response = client.get("/")
    assert response.status_code == 302 and response.headers["Location"].endswith("/register")


# -------------------------------------------------------------------- adhesion and guests


def test_with_adhesion_the_pages_speak_of_an_application(
    uow: UnitOfWork, admin: Operator, client: FlaskClient
) -> None:
    set_policy(uow, admin, adhesion_required=True)
    sent = invite(uow, admin, ZOE)
    page = text(client.get(f"/join/{sent.token}"))
    assert "reviews every membership application" in page and "Send my application" in page
    client.post(f"/join/{sent.token}", data=registration_fields(page))
    welcome = text(client.get("/welcome"))
    assert "Your membership application has been sent to Harbour Rowing Club" in welcome
    member = member_by_email(uow, ZOE)
    assert member is not None and member.status == MemberStatus.APPLICANT.value


def test_an_event_guest_page(uow: UnitOfWork, admin: Operator, client: FlaskClient) -> None:
    event_id = make_event(uow, admin, "Autumn Regatta")
    sent = invite(uow, admin, ZOE, kind=InvitationKind.EVENT, event_id=event_id)
    page = text(client.get(f"/join/{sent.token}"))
    assert "invited you to Autumn Regatta" in page and "Harbour" in page
    assert 'type="password"' not in page and "Register as a guest" in page
    response = client.post(f"/join/{sent.token}", data={"csrf_token": csrf_from(page),
                                                        "first_name": "Zoë", "last_name": "M"})
    assert response.status_code == 303
    assert "You're on the guest list, Zoë" in text(client.get("/welcome"))
    assert member_by_email(uow, ZOE) is None


def test_without_the_password_setting_the_form_has_no_password(
    uow: UnitOfWork, admin: Operator, client: FlaskClient
) -> None:
    set_policy(uow, admin, registration_asks_password=False)
    sent = invite(uow, admin, ZOE)
    page = text(client.get(f"/join/{sent.token}"))
    assert 'type="password"' not in page
    assert 'type="password"' not in text(client.get("/register"))
    response = client.post(f"/join/{sent.token}", data={"csrf_token": csrf_from(page),
                                                        "first_name": "Zoë", "last_name": ""})
    assert response.status_code == 303


# ------------------------------------------------------------------------------ branding


def test_logo_and_accent_colour(uow: UnitOfWork, admin: Operator, client: FlaskClient) -> None:
    assert client.get("/logo").status_code == 404
    assert "--accent: #2F6FEB" in text(client.get("/brand.css"))
    organization.update_organization(uow, admin, {"logo": PNG_LOGO, "accent_color": "#F5C518"})
    logo = client.get("/logo")
    assert logo.status_code == 200 and logo.data == PNG_LOGO
    assert logo.headers["Content-Type"].startswith("image/png")
    assert "sandbox" in logo.headers["Content-Security-Policy"]
    brand = text(client.get("/brand.css"))
    assert "--accent: #F5C518" in brand
    assert "--accent-text: #111111" in brand  # dark text on a light accent
    assert 'src="/logo"' in text(client.get("/register"))


def test_an_svg_logo_stored_by_an_older_version_is_not_served(
    uow: UnitOfWork, admin: Operator, client: FlaskClient
) -> None:
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    with uow:  # the services refuse SVG now; an older version may have stored one
        org = uow.session.get(Organization, admin.organization_id)
        assert org is not None
        org.logo, org.logo_mime = svg, "image/svg+xml"
        uow.commit()
    assert client.get("/logo").status_code == 404
