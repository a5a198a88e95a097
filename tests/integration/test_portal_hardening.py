"""Issue 8 on the portal: confirmed public registration (no squatting, no enumeration),
revoked and replaced links, redacted logs, no Server header, hidden SQL parameters, and a
busy database that never loses a submitted form."""

from __future__ import annotations

import sqlite3
import threading
import time
from datetime import datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, func, select, text
from sqlalchemy.exc import IntegrityError

from invite_desk.portal.request_log import loggable_target, redact
from invite_desk.services import db
from invite_desk.services.models import (
    AcceptedVia,
    InvitationStatus,
    MemberStatus,
    PendingRegistration,
    RateLimitCounter,
    utcnow,
)
from invite_desk.services.operator import Operator
from invite_desk.services.registration.confirmation import request_registration
from invite_desk.services.tracking.actions import resend_invitations, revoke_invitations
from invite_desk.services.uow import UnitOfWork
from tests.portal_client import HttpClient, csrf_from, portal_app, running_portal
from tests.registration_fixtures import (
    PASSWORD,
    confirmation_token,
    enable_confirmation_email,
    form,
    invitation,
    invite,
    member_by_email,
    members_with_email,
)
from tests.smtp_server import LoopbackSmtpServer

ZOE = "zoe@example.org"
TOKEN = "T0ken-That-Must-Not-Be-Logged_0123456789abcd"


@pytest.fixture
def app(engine: Engine, uow: UnitOfWork, admin: Operator) -> Flask:
    return portal_app(engine, uow)


def page(response: object) -> str:
    return response.get_data(as_text=True)  # type: ignore[attr-defined, no-any-return]


def post_register(client: FlaskClient, email: str, **extra: str) -> object:
    csrf = csrf_from(page(client.get("/register")))
    fields = {"csrf_token": csrf, "email": email, "first_name": "Mallory", "last_name": "Squat",
              "password": PASSWORD, "password_confirmation": PASSWORD, **extra}
    return client.post("/register", data=fields)


def confirm(client: FlaskClient, token: str) -> object:
    shown = client.get(f"/confirm/{token}")
    assert shown.status_code == 200, page(shown)
    return client.post(f"/confirm/{token}", data={"csrf_token": csrf_from(page(shown))})


# ----------------------------------------------------------- item 7: confirmed registration


def test_a_squatter_cannot_take_an_invited_address(
    uow: UnitOfWork, admin: Operator, app: Flask, smtp_server: LoopbackSmtpServer
) -> None:
    enable_confirmation_email(uow, admin, smtp_server)
    sent = invite(uow, admin, ZOE)
    squatter = app.test_client()
    assert post_register(squatter, ZOE).status_code == 303  # "check your inbox", as for anyone
    assert member_by_email(uow, ZOE) is None  # nothing before the emailed link is followed
    assert invitation(uow, sent.id).status == InvitationStatus.SENT.value
    # The real invitee's link still works, and their inviter is credited.
    invitee = app.test_client()
    join_page = page(invitee.get(f"/join/{sent.token}"))
    joined = invitee.post(f"/join/{sent.token}", data={
        "csrf_token": csrf_from(join_page), "first_name": "Zoë", "last_name": "Martin",
        "password": PASSWORD, "password_confirmation": PASSWORD})
    assert joined.status_code == 303
    member = member_by_email(uow, ZOE)
    assert member is not None and member.first_name == "Zoë"
    assert member.referred_by_id == admin.member_id
    # The confirmation link (in Zoë's mailbox, never the squatter's) changes nothing now.
    token = confirmation_token(smtp_server, ZOE)
    late = invitee.post(f"/confirm/{token}", data={"csrf_token": csrf_from(join_page)})
    assert "already registered" in page(late)
    member = member_by_email(uow, ZOE)
    assert member is not None and member.first_name == "Zoë"
    assert members_with_email(uow, ZOE) == 1


def test_registration_is_confirmed_through_the_emailed_link(
    uow: UnitOfWork, admin: Operator, app: Flask, smtp_server: LoopbackSmtpServer
) -> None:
    enable_confirmation_email(uow, admin, smtp_server)
    client = app.test_client()
    posted = post_register(client, "Walk.In@example.org")
    assert posted.status_code == 303
    assert "Check your inbox" in page(client.get(posted.headers["Location"]))  # type: ignore[attr-defined]
    token = confirmation_token(smtp_server, "walk.in@example.org")
    assert f"https://join.rowing.example/confirm/{token}" in smtp_server.messages[-1].message \
        .get_body(("plain",)).get_content()  # type: ignore[union-attr]
    with uow:  # only the hash is stored
        stored = uow.session.scalars(select(PendingRegistration.token_hash)).all()
    assert token not in stored and len(stored) == 1
    # Opening the link (a mail scanner does) registers nobody; the button does.
    assert client.get(f"/confirm/{token}").status_code == 200
    assert member_by_email(uow, "walk.in@example.org") is None
    done = confirm(client, token)
    assert done.status_code == 303  # type: ignore[attr-defined]
    assert "Welcome to Harbour Rowing Club, Mallory" in page(client.get("/welcome"))
    member = member_by_email(uow, "walk.in@example.org")
    assert member is not None and member.status == MemberStatus.ACTIVE.value
    # Single use.
    again = client.get(f"/confirm/{token}")
    assert again.status_code == 410 and "already been used" in page(again)


def test_confirming_an_invited_address_accepts_the_invitation_and_credits_the_inviter(
    uow: UnitOfWork, admin: Operator, app: Flask, smtp_server: LoopbackSmtpServer
) -> None:
    enable_confirmation_email(uow, admin, smtp_server)
    sent = invite(uow, admin, ZOE)
    client = app.test_client()
    post_register(client, ZOE)
    assert confirm(client, confirmation_token(smtp_server, ZOE)).status_code == 303  # type: ignore[attr-defined]
    member = member_by_email(uow, ZOE)
    assert member is not None and member.referred_by_id == admin.member_id
    row = invitation(uow, sent.id)
    assert row.status == InvitationStatus.ACCEPTED.value
    assert row.accepted_via == AcceptedVia.PUBLIC_REGISTRATION.value


def test_expired_and_unknown_confirmation_links(
    uow: UnitOfWork, admin: Operator, engine: Engine, smtp_server: LoopbackSmtpServer
) -> None:
    enable_confirmation_email(uow, admin, smtp_server)
    old = request_registration(uow, admin.organization_id, form(email="late@example.org"),
                               now=utcnow() - timedelta(hours=49))
    assert old.email is not None
    token = old.email.text.split("/confirm/")[1].split()[0]
    client = portal_app(engine, uow, bad_token_limit=3).test_client()
    expired = client.get(f"/confirm/{token}")
    assert expired.status_code == 410 and "expired" in page(expired)
    assert client.post(f"/confirm/{token}", data={
        "csrf_token": csrf_from(page(client.get("/register")))}).status_code == 410
    assert member_by_email(uow, "late@example.org") is None
    for i in range(3):
        assert client.get(f"/confirm/unknown{i:030d}").status_code == 404
    assert client.get("/confirm/unknown-number-four-xxxxxxxx").status_code == 429


def test_without_smtp_public_registration_is_unavailable_and_creates_nothing(
    uow: UnitOfWork, admin: Operator, app: Flask
) -> None:
    client = app.test_client()
    shown = client.get("/register")
    assert shown.status_code == 503
    assert "registration by email confirmation is unavailable" in page(shown)
    posted = client.post("/register", data={"email": "x@example.org", "first_name": "X",
                                            "password": PASSWORD,
                                            "password_confirmation": PASSWORD})
    assert posted.status_code == 503
    assert member_by_email(uow, "x@example.org") is None
    with uow:
        assert uow.session.scalar(select(func.count()).select_from(PendingRegistration)) == 0


# --------------------------------------------------------------- item 10: link pages, logs


def test_revoked_and_resent_links_say_so_and_unknown_links_stay_generic(
    uow: UnitOfWork, admin: Operator, app: Flask, smtp_server: LoopbackSmtpServer
) -> None:
    enable_confirmation_email(uow, admin, smtp_server)
    revoked = invite(uow, admin, ZOE)
    resent = invite(uow, admin, "bob@example.org")
    revoke_invitations(uow, admin, [revoked.id])
    resend_invitations(uow, admin, [resent.id])
    client = app.test_client()
    gone = client.get(f"/join/{revoked.token}")
    assert gone.status_code == 410
    assert "withdrawn by Harbour Rowing Club" in page(gone)
    assert "Ada Admin" in page(gone) and "office@rowing.example" in page(gone)
    assert "some email programs break" not in page(gone)
    newer = client.get(f"/join/{resent.token}")
    assert newer.status_code == 410 and "A newer invitation was sent to you" in page(newer)
    assert "the link in the most recent email" in page(newer)
    unknown_a = client.get("/join/unknown-token-aaaaaaaaaaaaaaaaaa")
    unknown_b = client.get("/join/unknown-token-bbbbbbbbbbbbbbbbbb")
    assert unknown_a.status_code == unknown_b.status_code == 404
    assert page(unknown_a) == page(unknown_b)
    assert "withdrawn" not in page(unknown_a) and "newer" not in page(unknown_a)


@pytest.mark.parametrize("target", [
    f"/join/{TOKEN}",
    f"/join%2F{TOKEN}",
    f"/join%2f{TOKEN}",
    f"/join%252F{TOKEN}",
    f"/join%25252f{TOKEN}",
    f"/JOIN/{TOKEN}",
    f"//join/{TOKEN}",
    f"/join/{TOKEN}/extra",
    f"/join/{TOKEN}?utm=1",
    f"/%6Aoin/{TOKEN}",
    f"/register?token={TOKEN}",
    f"/confirm/{TOKEN}",
    f"/confirm%2F{TOKEN}",
    f"/{TOKEN}",  # a token out of its place: a mistyped or broken link
    f"/joinx/{TOKEN}",
    f"/welcome/{TOKEN}",
    f"/j%6Fin-now/{TOKEN}",
    f"/register/%{TOKEN.encode().hex().upper()[:2]}{TOKEN[1:]}",
])
def test_the_access_log_never_holds_a_token(target: str) -> None:
    logged = loggable_target(target)
    assert TOKEN not in logged and TOKEN[:12] not in logged
    assert "<redacted>" in logged
    assert TOKEN not in redact(target.partition("?")[0]) or "?" in target


def test_served_pages_have_no_server_header_and_a_redacted_access_log(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="invite_desk.portal.access")
    with running_portal(app) as url:
        client = HttpClient()
        for path in (f"/join%2F{TOKEN}", f"/join%252f{TOKEN}?x={TOKEN}", f"//join/{TOKEN}/x",
                     f"/join/{TOKEN}"):
            reply = client.get(url + path)
            assert "Server" not in reply.headers, reply.headers
    assert TOKEN not in caplog.text
    assert caplog.text.count("<redacted>") >= 4


def test_database_errors_hold_no_parameter_values(any_db_url: str) -> None:
    engine = db.make_engine(any_db_url)
    db.upgrade_to_head(engine)
    secret = "s3cret-value-that-must-not-appear"
    insert = text("INSERT INTO portal_secret (name, value, created_at) VALUES (:n, :v, :c)")
    values = {"n": "k", "v": secret, "c": datetime(2026, 1, 1)}
    try:
        with engine.begin() as connection:
            connection.execute(insert, values)
        with pytest.raises(IntegrityError) as failure, engine.begin() as connection:
            connection.execute(insert, values)  # the same key again
    finally:
        engine.dispose()
    assert secret not in str(failure.value) and secret not in repr(failure.value)
    assert "parameters hidden" in str(failure.value)


# ------------------------------------------------------------------ item 9: a busy database


def _hold_write_lock(path: str, seconds: float, started: threading.Event,
                     release: threading.Event | None = None) -> None:
    """Hold SQLite's write lock for `seconds`, or until `release` is set (if given)."""
    connection = sqlite3.connect(path, timeout=1, isolation_level=None)
    try:
        connection.execute("BEGIN IMMEDIATE")
        connection.execute("UPDATE organization SET description = description")
        started.set()
        if release is None:
            time.sleep(seconds)
        else:
            release.wait(seconds)
        connection.execute("COMMIT")
    finally:
        connection.close()


def test_a_registration_waits_for_a_locked_database(
    sqlite_url: str, uow: UnitOfWork, admin: Operator, app: Flask,
    smtp_server: LoopbackSmtpServer,
) -> None:
    enable_confirmation_email(uow, admin, smtp_server)
    client = app.test_client()
    csrf = csrf_from(page(client.get("/register")))
    started = threading.Event()
    holder = threading.Thread(target=_hold_write_lock,
                              args=(sqlite_url.removeprefix("sqlite:///"), 3.0, started))
    holder.start()
    assert started.wait(5)
    posted = client.post("/register", data={
        "csrf_token": csrf, "email": "patient@example.org", "first_name": "Pat",
        "password": PASSWORD, "password_confirmation": PASSWORD})
    holder.join()
    assert posted.status_code == 303, page(posted)
    assert smtp_server.count_for("patient@example.org") == 1


@pytest.mark.slow
def test_a_database_locked_past_the_retry_budget_keeps_the_form(
    sqlite_url: str, engine: Engine, uow: UnitOfWork, admin: Operator,
    smtp_server: LoopbackSmtpServer,
) -> None:
    enable_confirmation_email(uow, admin, smtp_server)
    client = portal_app(engine, uow, busy_budget=1.0).test_client()
    csrf = csrf_from(page(client.get("/register")))
    started, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=_hold_write_lock,
                              args=(sqlite_url.removeprefix("sqlite:///"), 14.0, started,
                                    release))
    holder.start()
    assert started.wait(5)
    try:
        posted = client.post("/register", data={
            "csrf_token": csrf, "email": "patient@example.org", "first_name": "Pat",
            "last_name": "Ience", "password": PASSWORD, "password_confirmation": PASSWORD})
        assert holder.is_alive()  # the answer came while the database was still locked
    finally:
        release.set()  # the lock has done its part: no need to sit out the rest of 14 s
        holder.join()
    body = page(posted)
    assert posted.status_code == 503, body
    assert "busy" in body and "submit" in body
    assert 'value="patient@example.org"' in body and 'value="Pat"' in body
    assert 'value="Ience"' in body and PASSWORD not in body
    with uow:
        assert uow.session.scalar(select(func.count()).select_from(RateLimitCounter)) <= 1


@pytest.mark.parametrize("smtputf8", [False, True])
def test_an_international_address_the_server_cannot_take_is_told_not_to_retry(
    uow: UnitOfWork, admin: Operator, app: Flask, make_smtp_server: object, smtputf8: bool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    smtp = make_smtp_server(smtputf8=smtputf8)  # type: ignore[operator]
    enable_confirmation_email(uow, admin, smtp)
    client = app.test_client()
    for address in ("josé@example.org", "用户@例子.广告"):
        posted = post_register(client, address)
        if smtputf8:
            assert posted.status_code == 303  # type: ignore[attr-defined]
            continue
        # Before: 503 "submit again in a few minutes", which could never work.
        assert posted.status_code == 422, page(posted)  # type: ignore[attr-defined]
        text = page(posted)
        assert "accented or non-Latin letters" in text and "again in a few minutes" not in text
        assert address.split("@")[0] in text  # the form keeps what was typed
        assert address not in caplog.text and address.split("@")[0] not in caplog.text
    assert len(smtp.messages) == (2 if smtputf8 else 0)


def test_a_recipient_the_server_refuses_is_told_to_check_the_address(
    uow: UnitOfWork, admin: Operator, app: Flask, smtp_server: LoopbackSmtpServer,
) -> None:
    enable_confirmation_email(uow, admin, smtp_server)
    smtp_server.fail_recipient("nobody@example.org", 550)
    posted = post_register(app.test_client(), "nobody@example.org")
    assert posted.status_code == 422  # type: ignore[attr-defined]
    assert "refused to send to this address" in page(posted)


def test_a_method_a_page_does_not_take_is_405_with_allow_and_the_portal_headers(
    app: Flask,
) -> None:
    client = app.test_client()
    for path in (f"/join/{TOKEN}", "/register", f"/confirm/{TOKEN}", f"/unsubscribe/{TOKEN}",
                 "/welcome", "/logo"):
        for method in ("PUT", "DELETE", "PATCH", "TRACE"):
            response = client.open(path, method=method)
            assert response.status_code == 405, (method, path)
            allowed = {m.strip() for m in response.headers.get("Allow", "").split(",")}
            assert "GET" in allowed and method not in allowed  # RFC 9110: a 405 names them
            assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
            assert response.headers["Cache-Control"] == "no-store"
            assert TOKEN not in page(response)
