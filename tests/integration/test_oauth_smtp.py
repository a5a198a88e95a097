"""Issue 13: OAuth2 (XOAUTH2) sign-in for SMTP.

The loopback server checks the SASL string byte for byte; msal and google-auth are faked at
their HTTP boundary (msal's http_client, google-auth's transport Request), so the token
refresh logic runs for real without the network.
"""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs

import pytest
from sqlalchemy import select

from invite_desk.services import mail_settings
from invite_desk.services.credentials import MemoryCredentialStore
from invite_desk.services.errors import ValidationFailed
from invite_desk.services.invitations.importing import InviteeInput
from invite_desk.services.invitations.parallel import ParallelSender, smtp_lanes
from invite_desk.services.invitations.preflight import run_preflight
from invite_desk.services.invitations.queueing import queue_invitations
from invite_desk.services.models import Invitation, utcnow
from invite_desk.services.operator import Operator
from invite_desk.services.settings import update_settings
from invite_desk.services.smtp import oauth
from invite_desk.services.smtp.transport import (
    SmtpAuthError,
    SmtpConfig,
    SmtpTransport,
    xoauth2_string,
)
from invite_desk.services.smtp.transport import (
    test_connection as connection_test,
)
from invite_desk.services.uow import UnitOfWork
from tests.smtp_server import LoopbackSmtpServer

USER = "invitations@rowing.example"


def config(server: LoopbackSmtpServer, **kw: Any) -> SmtpConfig:
    values: dict[str, Any] = {"host": server.host, "port": server.port, "security": "none",
                              "username": USER, "from_address": USER, "from_name": "Rowing",
                              "timeout": 5, "auth": "xoauth2"}
    values.update(kw)
    return SmtpConfig(**values)


# -- the SASL exchange against the loopback server -------------------------------------------
def test_xoauth2_string_is_the_documented_format() -> None:
    text = xoauth2_string("someone@example.com", "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg")
    assert text == ("user=someone@example.com\x01auth=Bearer "
                    "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg\x01\x01")
    # Google's documented example, base64 of the same string
    assert base64.b64encode(text.encode()).decode().startswith("dXNlcj1zb21lb25lQGV4YW1wbGUuY29tAWF1dGg9")


def test_sends_with_xoauth2_and_the_server_checks_the_sasl_string(
    make_smtp_server: Any,
) -> None:
    server = make_smtp_server(xoauth2={USER: "access-1"}, tls="starttls")
    tokens = iter(["access-1"])
    with SmtpTransport(config(server, security="starttls"), None,
                       ssl_context=server.client_ssl_context(),
                       access_token=lambda: next(tokens)) as transport:
        result = transport.send(b"Subject: hi\r\n\r\nhello\r\n", "a@example.org")
    assert type(result).__name__ == "Sent"
    assert server.xoauth2_attempts == [f"user={USER}\x01auth=Bearer access-1\x01\x01"]
    assert server.count_for("a@example.org") == 1


def test_a_refused_token_says_to_sign_in_again(make_smtp_server: Any) -> None:
    server = make_smtp_server(xoauth2={USER: "the-right-one"})
    with pytest.raises(SmtpAuthError, match="Sign in again in Settings > Email"):
        connection_test(config(server), None, access_token=lambda: "stale")
    assert server.auth_failures == 1 and server.messages == []


def test_a_server_without_xoauth2_is_named(make_smtp_server: Any) -> None:
    server = make_smtp_server(auth=("u", "p"))
    with pytest.raises(SmtpAuthError, match="does not offer OAuth2 sign-in"):
        connection_test(config(server), None, access_token=lambda: "x")


def test_no_sign_in_yet_is_said_before_connecting_to_send(make_smtp_server: Any) -> None:
    server = make_smtp_server(xoauth2={USER: "t"})
    with pytest.raises(SmtpAuthError, match="nobody has signed in"):
        connection_test(config(server), None)


# -- msal at its HTTP boundary ---------------------------------------------------------------
class _Response:
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        self.status_code = status
        self.text = json.dumps(body)
        self.headers: dict[str, str] = {}

    def raise_for_status(self) -> None:
        if self.status_code >= 400:
            raise RuntimeError(self.status_code)


class FakeEntra:
    """Answers msal's requests like login.microsoftonline.com: discovery, device code, token."""

    def __init__(self) -> None:
        self.refresh_tokens = {"rt-1": "rt-2"}  # valid refresh token -> the rotated one
        self.posts: list[dict[str, Any]] = []
        self.access = 0
        self.expires_in = 3600

    def get(self, url: str, **kw: Any) -> _Response:
        base = "https://login.microsoftonline.com/contoso"
        return _Response(200, {
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
            "issuer": f"{base}/v2.0"})

    def post(self, url: str, params: Any = None, data: Any = None, headers: Any = None,
             **kw: Any) -> _Response:
        form = data if isinstance(data, dict) else {k: v[0] for k, v in parse_qs(data).items()}
        self.posts.append(form)
        if url.endswith("/devicecode"):
            return _Response(200, {"user_code": "F7K2-Q9", "device_code": "dev-1",
                                   "verification_uri": "https://microsoft.com/devicelogin",
                                   "message": "To sign in, open https://microsoft.com/devicelogin "
                                              "and enter the code F7K2-Q9.",
                                   "interval": 0, "expires_in": 900})
        if form.get("grant_type") == "refresh_token":
            rotated = self.refresh_tokens.pop(form["refresh_token"], None)
            if rotated is None:
                return _Response(400, {"error": "invalid_grant", "error_description":
                                       "AADSTS700082: The refresh token has expired due to "
                                       "inactivity.\nTrace ID: x"})
            self.refresh_tokens[rotated] = rotated + "+"
            return self._tokens(rotated)
        return self._tokens("rt-1")  # the device code was redeemed

    def _tokens(self, refresh: str) -> _Response:
        self.access += 1
        return _Response(200, {"access_token": f"at-{self.access}", "refresh_token": refresh,
                               "expires_in": self.expires_in, "token_type": "Bearer",
                               "scope": " ".join(oauth.MICROSOFT_SCOPES)})

    def close(self) -> None:
        pass


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_device_code_sign_in_keeps_only_the_refresh_token() -> None:
    entra, store, shown = FakeEntra(), MemoryCredentialStore(), []
    message = oauth.sign_in_microsoft("client-1", "contoso", USER, store, "oauth:k",
                                      show=shown.append, http_client=entra)
    assert "Signed in with Microsoft 365" in message
    assert shown and "F7K2-Q9" in shown[0]
    assert store._secrets == {"oauth:k": "rt-1"}  # no access token anywhere
    scope = entra.posts[0]["scope"].split()
    assert "https://outlook.office.com/SMTP.Send" in scope and "offline_access" in scope


def test_access_tokens_are_cached_refreshed_before_expiry_and_rotations_saved() -> None:
    entra, store, clock = FakeEntra(), MemoryCredentialStore(), Clock()
    store.set("oauth:k", "rt-1")
    source = oauth.TokenSource(oauth.MICROSOFT, USER, store, "oauth:k",
                               oauth.microsoft_refresher("client-1", "contoso", USER,
                                                         http_client=entra), clock=clock)
    assert source() == "at-1" and source() == "at-1"  # one refresh, then from memory
    assert source.refreshes == 1 and store.get("oauth:k") == "rt-2"  # rotated and saved
    clock.now += 3600 - oauth.EARLY + 1  # about to expire: refreshed ahead of time
    assert source() == "at-2" and store.get("oauth:k") == "rt-2+"
    assert "at-" not in repr(source) and "rt-" not in repr(source)


def test_an_expired_refresh_token_names_the_action() -> None:
    entra, store = FakeEntra(), MemoryCredentialStore()
    store.set("oauth:k", "revoked")
    source = oauth.TokenSource(oauth.MICROSOFT, USER, store, "oauth:k",
                               oauth.microsoft_refresher("c", "contoso", USER,
                                                         http_client=entra))
    with pytest.raises(oauth.SignInNeeded) as caught:
        source()
    text = str(caught.value)
    assert "Sign in again with Microsoft 365" in text and "Settings > Email" in text
    assert "invalid_grant" in text and "Trace ID" not in text


def test_nobody_signed_in_names_the_action() -> None:
    source = oauth.TokenSource(oauth.GOOGLE, USER, MemoryCredentialStore(), "oauth:k",
                               lambda rt: oauth.Grant("x", 60))
    with pytest.raises(oauth.SignInNeeded, match="Sign in with Google"):
        source()


@pytest.mark.parametrize("size, fits", [(2560, True), (2561, False), (1800, True)])
def test_a_refresh_token_must_fit_one_keyring_entry(size: int, fits: bool) -> None:
    store = MemoryCredentialStore()
    if fits:
        oauth.save_refresh_token(store, "k", "r" * size)
        assert store.get("k") == "r" * size
    else:
        with pytest.raises(oauth.TokenTooLarge, match="2,561 bytes.*2,560"):
            oauth.save_refresh_token(store, "k", "r" * size)
        assert store.get("k") is None


def test_multibyte_tokens_are_measured_in_bytes() -> None:
    with pytest.raises(oauth.TokenTooLarge):
        oauth.save_refresh_token(MemoryCredentialStore(), "k", "é" * 1281)


# -- google-auth at its transport boundary ---------------------------------------------------
class _GoogleResponse:
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        self.status = status
        self.headers = {"content-type": "application/json"}
        self.data = json.dumps(body).encode()


class FakeGoogle:
    """A google.auth.transport.Request: answers the token endpoint."""

    def __init__(self, valid: set[str]) -> None:
        self.valid = valid
        self.bodies: list[dict[str, list[str]]] = []

    def __call__(self, url: str, method: str = "GET", body: Any = None, headers: Any = None,
                 timeout: Any = None, **kw: Any) -> _GoogleResponse:
        assert url == oauth.GOOGLE_TOKEN_URI and method == "POST"
        form = parse_qs(body.decode() if isinstance(body, bytes) else body)
        self.bodies.append(form)
        if form["refresh_token"][0] not in self.valid:
            return _GoogleResponse(400, {"error": "invalid_grant",
                                         "error_description": "Token has been expired or revoked."})
        return _GoogleResponse(200, {"access_token": "ya29.fresh", "expires_in": 3599,
                                     "scope": "https://mail.google.com/", "token_type": "Bearer"})


def test_google_refresh_and_revocation() -> None:
    store = MemoryCredentialStore()
    store.set("g", "1//good")
    fake = FakeGoogle({"1//good"})
    source = oauth.TokenSource(oauth.GOOGLE, USER, store, "g",
                               oauth.google_refresher("cid.apps.googleusercontent.com", "sec",
                                                      USER, request=fake))
    assert source() == "ya29.fresh" and source() == "ya29.fresh"
    assert len(fake.bodies) == 1 and fake.bodies[0]["client_id"] == ["cid.apps.googleusercontent.com"]
    assert store.get("g") == "1//good"  # Google does not rotate it
    store.set("g", "1//revoked")
    source.forget()
    with pytest.raises(oauth.SignInNeeded, match="Sign in again with Google"):
        source()


def test_google_loopback_sign_in_saves_the_refresh_token() -> None:
    store = MemoryCredentialStore()
    seen: list[Any] = []

    class Creds:
        refresh_token = "1//from-google"

    def run(flow: Any) -> Creds:
        seen.append(flow)
        return Creds()

    text = oauth.sign_in_google("cid", "sec", USER, store, "g", run=run)
    assert "Signed in with Google" in text and store.get("g") == "1//from-google"
    assert seen[0].oauth2session.scope == ["https://mail.google.com/"]
    assert store.get(oauth.google_client_key("cid")) == "sec"


# -- a batch checks the sign-in first --------------------------------------------------------
def _settings(uow: UnitOfWork, admin: Operator, server: LoopbackSmtpServer) -> Any:
    update_settings(uow, admin, {"daily_limit_per_inviter": 0})
    return mail_settings.update_mail_settings(uow, admin, {
        "host": server.host, "port": server.port, "security": "none", "username": USER,
        "from_address": USER, "from_name": "Rowing", "rate_per_minute": 0,
        "preset": "microsoft365", "auth": "oauth-microsoft", "oauth_client_id": "client-1",
        "oauth_tenant": "contoso", "connections": 3})


def test_a_batch_over_xoauth2_signs_in_once_per_connection_with_one_refresh(
    uow: UnitOfWork, admin: Operator, make_smtp_server: Any,
) -> None:
    entra, store = FakeEntra(), MemoryCredentialStore()
    server = make_smtp_server(xoauth2={USER: "at-1"})
    mail = _settings(uow, admin, server)
    assert mail.preset == "microsoft365" and mail.refresh_token_key() == f"oauth:oauth-microsoft:{USER}"
    store.set(mail.refresh_token_key(), "rt-1")
    pre = run_preflight(uow, admin.organization_id,
                        [InviteeInput(i + 1, f"o{i}@example.org") for i in range(9)])
    queue_invitations(uow, admin, pre.ready, source="csv")
    source = oauth.for_settings(mail, store, http=entra)
    assert source is not None
    report = ParallelSender(uow, smtp_lanes(mail, None, access_token=source, timeout=5),
                            organization_id=admin.organization_id, per_day=0).run()
    assert report.sent == 9 and report.error == ""
    assert source.refreshes == 1 and len(server.xoauth2_attempts) == 3


def test_a_batch_with_a_revoked_sign_in_sends_nothing_and_says_so(
    uow: UnitOfWork, admin: Operator, make_smtp_server: Any,
) -> None:
    entra, store = FakeEntra(), MemoryCredentialStore()
    server = make_smtp_server(xoauth2={USER: "at-1"})
    mail = _settings(uow, admin, server)
    store.set(mail.refresh_token_key(), "revoked")
    pre = run_preflight(uow, admin.organization_id, [InviteeInput(1, "x@example.org")])
    queue_invitations(uow, admin, pre.ready, source="csv")
    with pytest.raises(oauth.SignInNeeded, match="Sign in again"):
        oauth.check_sign_in(mail, store, http=entra)
    report = ParallelSender(uow, smtp_lanes(mail, None, access_token=oauth.for_settings(
        mail, store, http=entra), timeout=5), organization_id=admin.organization_id).run()
    assert report.sent == 0 and "Sign in again" in report.error
    assert server.connections <= 1 and server.messages == []
    with uow:
        assert uow.session.scalars(select(Invitation.status)).all() == ["queued"]


def test_oauth_settings_need_the_mailbox_and_the_client_id() -> None:
    with pytest.raises(ValidationFailed) as caught:
        mail_settings.validate_mail_settings({
            "host": "smtp.office365.com", "port": 587, "security": "starttls",
            "from_address": USER, "auth": "oauth-microsoft"})
    assert set(caught.value.errors) >= {"username", "oauth_client_id"}


def test_the_cli_signs_a_server_in_with_the_device_code_and_audits_it(
    uow: UnitOfWork, admin: Operator, make_smtp_server: Any, sqlite_url: str,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    from invite_desk import app, cli
    from invite_desk.services.models import AuditLog
    from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD

    entra, store = FakeEntra(), MemoryCredentialStore()
    real_app = oauth.microsoft_app
    monkeypatch.setattr(oauth, "microsoft_app",
                        lambda cid, tenant, http_client=None: real_app(cid, tenant,
                                                                       http_client=entra))
    monkeypatch.setattr(app, "default_credentials", lambda: store)
    server = make_smtp_server(xoauth2={USER: "at-2"})
    mail = _settings(uow, admin, server)
    monkeypatch.setenv("INVITE_DESK_OPERATOR_PASSWORD", ADMIN_PASSWORD)
    assert cli.main(["--db", sqlite_url, "send", "--operator", ADMIN_EMAIL, "--sign-in"]) == 0
    out = capsys.readouterr().out
    assert "enter the code F7K2-Q9" in out and "Signed in with Microsoft 365" in out
    assert store.get(mail.refresh_token_key()) == "rt-1"
    with uow:
        [row] = uow.session.scalars(select(AuditLog).where(
            AuditLog.action == "smtp.oauth_sign_in")).all()
        assert "rt-" not in row.after_json and "at-" not in row.after_json
    # Then a send uses it: one refresh, XOAUTH2 on every connection.
    pre = run_preflight(uow, admin.organization_id,
                        [InviteeInput(i + 1, f"c{i}@example.org") for i in range(4)])
    queue_invitations(uow, admin, pre.ready, source="csv")
    assert cli.main(["--db", sqlite_url, "send", "--operator", ADMIN_EMAIL]) == 0
    assert len(server.messages) == 4
    assert set(server.xoauth2_attempts) == {f"user={USER}\x01auth=Bearer at-2\x01\x01"}


# -- the portal's own mailer (registration confirmations) ------------------------------------
def test_the_portal_mailer_signs_in_with_xoauth2_and_refreshes_once(
    uow: UnitOfWork, admin: Operator, make_smtp_server: Any,
) -> None:
    from invite_desk.portal.mailer import PortalMailer
    from invite_desk.services.registration.confirmation import ConfirmationEmail, EmailKind

    entra, store = FakeEntra(), MemoryCredentialStore()
    server = make_smtp_server(xoauth2={USER: "at-1"})
    mail = _settings(uow, admin, server)
    store.set(mail.refresh_token_key(), "rt-1")
    mailer = PortalMailer(uow, store, None, oauth_http=entra)
    kind = next(iter(EmailKind))
    for i in range(3):
        email = ConfirmationEmail(f"applicant{i}@example.org", "Please confirm", "Hello", kind)
        assert mailer.send(admin.organization_id, email)
    assert server.count_for("applicant2@example.org") == 1 and len(server.messages) == 3
    # One refresh for the three emails (the access token is kept in memory), rotated and saved.
    assert entra.access == 1 and store.get(mail.refresh_token_key()) == "rt-2"
    assert server.xoauth2_attempts == [f"user={USER}\x01auth=Bearer at-1\x01\x01"] * 3


def test_the_portal_mailer_without_a_sign_in_sends_nothing_and_logs_no_secret(
    uow: UnitOfWork, admin: Operator, make_smtp_server: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from invite_desk.portal.mailer import PortalMailer
    from invite_desk.services.registration.confirmation import ConfirmationEmail, EmailKind

    server = make_smtp_server(xoauth2={USER: "at-1"})
    mail = _settings(uow, admin, server)
    store = MemoryCredentialStore()
    store.set(mail.password_key(), "an-old-password")  # a password must not be tried instead
    mailer = PortalMailer(uow, store, "env-password", oauth_http=FakeEntra())
    email = ConfirmationEmail("a@example.org", "Please confirm", "Hello", next(iter(EmailKind)))
    with caplog.at_level("WARNING"):
        assert not mailer.send(admin.organization_id, email)
    assert server.messages == [] and server.auth_failures == 0
    assert "Sign in again with Microsoft 365" in caplog.text
    assert "an-old-password" not in caplog.text and "env-password" not in caplog.text
    # After an admin signs in, the next email goes out.
    store.set(mail.refresh_token_key(), "rt-1")
    assert mailer.send(admin.organization_id, email)
    assert server.count_for("a@example.org") == 1


def test_notify_and_send_deliver_notifications_over_xoauth2(
    uow: UnitOfWork, admin: Operator, make_smtp_server: Any, sqlite_url: str,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    from invite_desk import app, cli
    from invite_desk.services import adhesion
    from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD
    from tests.integration.test_admin_notifications import applicant

    entra, store = FakeEntra(), MemoryCredentialStore()
    real_app = oauth.microsoft_app
    monkeypatch.setattr(oauth, "microsoft_app",
                        lambda cid, tenant, http_client=None: real_app(cid, tenant,
                                                                       http_client=entra))
    monkeypatch.setattr(app, "default_credentials", lambda: store)
    monkeypatch.setenv("INVITE_DESK_OPERATOR_PASSWORD", ADMIN_PASSWORD)
    server = make_smtp_server(xoauth2={USER: "at-1"})
    mail = _settings(uow, admin, server)
    store.set(mail.refresh_token_key(), "rt-1")
    adhesion.approve(uow, admin, applicant(uow, admin, "first@example.org"))
    assert cli.main(["--db", sqlite_url, "notify", "--operator", ADMIN_EMAIL]) == 0
    assert "1 sent" in capsys.readouterr().out
    assert server.count_for("first@example.org") == 1
    adhesion.approve(uow, admin, applicant(uow, admin, "second@example.org"))
    server.xoauth2 = {USER: "at-2"}  # the next run refreshes: the rotated refresh token
    assert cli.main(["--db", sqlite_url, "send", "--all", "--operator", ADMIN_EMAIL]) == 0
    assert "notification emails: 1 sent" in capsys.readouterr().out
    assert server.count_for("second@example.org") == 1
    # Reminders go out over XOAUTH2 too.
    pre = run_preflight(uow, admin.organization_id, [InviteeInput(1, "guest@example.org")])
    queue_invitations(uow, admin, pre.ready, source="csv")
    server.xoauth2 = {USER: "at-3"}  # each run refreshes once
    assert cli.main(["--db", sqlite_url, "send", "--all", "--operator", ADMIN_EMAIL]) == 0
    update_settings(uow, admin, {"reminder_days_before": 2})
    server.xoauth2 = {USER: "at-4"}
    with uow:
        row = uow.session.scalars(select(Invitation).where(
            Invitation.email == "guest@example.org")).one()
        row.sent_at = utcnow() - timedelta(days=12)
        row.expires_at = utcnow() + timedelta(days=1)
        uow.commit()
    capsys.readouterr()
    assert cli.main(["--db", sqlite_url, "reminders", "send", "--all", "--operator",
                     ADMIN_EMAIL]) == 0, capsys.readouterr()
    assert "1 reminder sent" in capsys.readouterr().out
    assert server.count_for("guest@example.org") == 2  # the invitation, then its reminder
