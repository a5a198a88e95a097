"""The registration portal for tests: an app on the test database, the real server in a thread,
and a small HTTP client (urllib with cookies) that reads forms the way a browser would."""

from __future__ import annotations

import html
import http.cookiejar
import re
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import Message

from flask import Flask
from sqlalchemy import Engine

from invite_desk.app import AppContext
from invite_desk.portal import create_app
from invite_desk.portal.server import make_portal_server
from invite_desk.services import mail_settings, organization
from invite_desk.services.credentials import MemoryCredentialStore
from invite_desk.services.invitations.importing import parse_pasted
from invite_desk.services.invitations.preflight import run_preflight
from invite_desk.services.invitations.queueing import queue_invitations
from invite_desk.services.invitations.sending import OutboxSender
from invite_desk.services.operator import Operator
from invite_desk.services.smtp.transport import SmtpTransport
from invite_desk.services.uow import UnitOfWork
from tests.images import PNG_LOGO
from tests.smtp_server import LoopbackSmtpServer

LOGO = PNG_LOGO  # a real image: the services refuse a bare PNG signature
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def portal_context(engine: Engine, uow: UnitOfWork) -> AppContext:
    return AppContext(engine=engine, uow=uow, credentials=MemoryCredentialStore(),
                      database_label="test database")


def portal_app(engine: Engine, uow: UnitOfWork, **options: object) -> Flask:
    return create_app(portal_context(engine, uow), secret_key="test secret key", **options)  # type: ignore[arg-type]


def csrf_from(page: str) -> str:
    found = _CSRF.search(page)
    assert found, "no CSRF field on the page"
    return html.unescape(found.group(1))


@contextmanager
def running_portal(app: Flask) -> Iterator[str]:
    """Serve `app` with the portal's real server on 127.0.0.1 and a free port; yields the base URL."""
    server = make_portal_server(app, "127.0.0.1", 0)
    thread = threading.Thread(target=server.run, name="portal", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.stop()
        thread.join(timeout=10)


@dataclass(frozen=True)
class Reply:
    status: int
    url: str
    headers: Message
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


class HttpClient:
    """A browser-like client: keeps cookies; follows redirects unless told not to."""

    def __init__(self) -> None:
        self.cookies = http.cookiejar.CookieJar()
        cookie_handler = urllib.request.HTTPCookieProcessor(self.cookies)
        self._follow = urllib.request.build_opener(cookie_handler)
        self._stay = urllib.request.build_opener(cookie_handler, _NoRedirect())

    def _open(self, request: urllib.request.Request, follow: bool) -> Reply:
        opener = self._follow if follow else self._stay
        try:
            with opener.open(request, timeout=30) as response:
                return Reply(response.status, response.url, response.headers, response.read())
        except urllib.error.HTTPError as error:
            with error:
                return Reply(error.code, error.url or request.full_url, error.headers, error.read())

    def get(self, url: str, *, follow: bool = True) -> Reply:
        return self._open(urllib.request.Request(url), follow)

    def post(self, url: str, fields: dict[str, str], *, follow: bool = True) -> Reply:
        data = urllib.parse.urlencode(fields).encode("utf-8")
        request = urllib.request.Request(url, data=data, method="POST")
        request.add_header("Content-Type", "application/x-www-form-urlencoded")
        return self._open(request, follow)


def send_invitation(
    uow: UnitOfWork, admin: Operator, smtp: LoopbackSmtpServer, portal_url: str, line: str,
    message: str, *, logo: bytes = LOGO, logo_mime: str = "image/png",
    accent_color: str = "#0B7A75",
) -> str:
    """Brand the organization, point its registration URL at the portal, then queue and send
    one invitation the way the desktop does; returns the link the received email carries."""
    organization.update_organization(uow, admin, {
        "registration_base_url": portal_url, "logo": logo, "logo_mime": logo_mime,
        "accent_color": accent_color})
    mail_settings.update_mail_settings(uow, admin, {
        "host": smtp.host, "port": smtp.port, "security": "none",
        "from_address": "invitations@rowing.example", "from_name": "Harbour Rowing Club",
        "rate_per_minute": 0})
    preflight = run_preflight(uow, admin.organization_id, parse_pasted(line).rows)
    queue_invitations(uow, admin, preflight.ready, personal_message=message, source="paste")
    settings = mail_settings.get_mail_settings(uow, admin.organization_id)
    report = OutboxSender(uow, SmtpTransport(settings.smtp_config(timeout=5), None),
                          organization_id=admin.organization_id).run()
    assert report.sent == 1, report
    body = smtp.messages[-1].message.get_body(("plain",))
    assert body is not None
    found = re.search(re.escape(portal_url) + r"/join/[A-Za-z0-9_-]+", body.get_content())
    assert found, body.get_content()
    return found.group(0)
