"""The portal's Flask application factory: configuration, security headers, error pages."""

from __future__ import annotations

import logging
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Any, Protocol

from flask import Flask, Response, render_template, request
from flask.sessions import SecureCookieSessionInterface
from jinja2 import StrictUndefined
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from invite_desk.app import AppContext
from invite_desk.portal.csrf import csrf_token
from invite_desk.portal.mailer import PortalMailer
from invite_desk.portal.request_log import AccessLog, redact
from invite_desk.resources_path import resource_path
from invite_desk.services.errors import DomainError
from invite_desk.services.registration.branding import (
    Branding,
    get_branding,
    portal_organization_id,
)
from invite_desk.services.registration.busy import SystemBusy, hash_gate, is_busy_error
from invite_desk.services.registration.limits import DatabaseRateLimiter, shared_secret
from invite_desk.services.uow import UnitOfWork

log = logging.getLogger(__name__)

EXTENSION = "invite_desk_portal"

# No scripts at all; styles and images from the portal itself; forms post only to it.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
# An uploaded SVG logo opened on its own must not run anything on the portal's origin.
LOGO_CONTENT_SECURITY_POLICY = "default-src 'none'; style-src 'unsafe-inline'; sandbox"


class Limiter(Protocol):
    limit: int

    def blocked(self, key: str) -> bool: ...
    def retry_after(self, key: str) -> int: ...
    def hit(self, key: str) -> int | None: ...


@dataclass
class PortalState:
    """What the views share: the unit of work, the limiters, and the organization served."""

    uow: UnitOfWork
    bad_tokens: Limiter
    registrations: Limiter
    mailer: PortalMailer
    busy_budget: float = 8.0
    _organization_id: uuid.UUID | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def organization_id(self) -> uuid.UUID | None:
        """The organization served (looked up until the database has one, then kept)."""
        if self._organization_id is None:
            found = portal_organization_id(self.uow)
            with self._lock:
                self._organization_id = found
        return self._organization_id

    def branding(self) -> Branding | None:
        org_id = self.organization_id
        return get_branding(self.uow, org_id) if org_id is not None else None


class _SessionInterface(SecureCookieSessionInterface):
    """Marks the session cookie Secure whenever the request came over HTTPS (directly, or
    through a trusted proxy), so one configuration serves loopback and production."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config["SESSION_COOKIE_SECURE"]) or request.is_secure


class PortalFlask(Flask):
    def log_exception(
        self,
        exc_info: tuple[type, BaseException, TracebackType] | tuple[None, None, None],
    ) -> None:
        """Flask logs the request path with an exception; never the token in it."""
        self.logger.error(
            "Exception on %s [%s]", redact(request.path), request.method, exc_info=exc_info
        )


def portal_state(app: Flask) -> PortalState:
    state: PortalState = app.extensions[EXTENSION]
    return state


def create_app(
    context: AppContext,
    *,
    secret_key: str | bytes | None = None,
    bad_token_limit: int = 10,
    bad_token_window: float = 600.0,
    registration_limit: int = 20,
    registration_window: float = 3600.0,
    proxy_hops: int = 0,
    hash_concurrency: int = 2,
    hash_wait: float = 10.0,
    busy_budget: float = 8.0,
    smtp_password: str | None = None,
) -> Flask:
    """The registration portal on `context`'s database.

    secret_key: signs the session cookie (it holds only the CSRF token); None uses the key
    stored in the database, the same for every portal process on it. bad_token_limit per
    bad_token_window seconds: unknown links one client may try before it is answered 429.
    registration_limit: public registration attempts per client per registration_window
    (counted before the password is hashed). Both are counted in the database, so several
    processes count as one.
    hash_concurrency: password hashes computed at once (argon2 takes 64 MiB each); a request
    waits up to hash_wait seconds for a slot, then gets "busy, submit again" (503).
    busy_budget: seconds a registration retries while the database is locked.
    smtp_password: for the organization's SMTP server (else the keyring entry).
    proxy_hops: how many reverse proxies in front to trust for the client address and scheme
    (X-Forwarded-For / -Proto); 0 when the portal is reached directly.
    """
    app = PortalFlask(
        __name__,
        template_folder=str(resource_path("portal", "templates")),
        static_folder=str(resource_path("portal", "static")),
        static_url_path="/static",
    )
    app.config.update(
        SECRET_KEY=secret_key or shared_secret(context.uow),
        SESSION_COOKIE_NAME="invite_desk_portal",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=False,
        MAX_CONTENT_LENGTH=64 * 1024,
        MAX_FORM_MEMORY_SIZE=16 * 1024,
        SEND_FILE_MAX_AGE_DEFAULT=3600,
        TEMPLATES_AUTO_RELOAD=False,
    )
    app.session_interface = _SessionInterface()
    app.jinja_env.autoescape = True  # every template, whatever its file name
    app.jinja_env.undefined = StrictUndefined
    app.extensions[EXTENSION] = PortalState(
        uow=context.uow,
        bad_tokens=DatabaseRateLimiter(context.uow, "bad-token", bad_token_limit,
                                       bad_token_window, busy_budget=busy_budget),
        registrations=DatabaseRateLimiter(context.uow, "register", registration_limit,
                                          registration_window, busy_budget=busy_budget),
        mailer=PortalMailer(context.uow, context.credentials, smtp_password),
        busy_budget=busy_budget,
    )
    hash_gate.configure(hash_concurrency, hash_wait)
    # One redacted access-log line per request (waitress writes none); inside ProxyFix, so
    # it logs the client's address, not the proxy's.
    app.wsgi_app = AccessLog(app.wsgi_app)  # type: ignore[method-assign]
    if proxy_hops:
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=proxy_hops, x_proto=proxy_hops, x_host=proxy_hops
        )

    from invite_desk.portal.views import bp

    app.register_blueprint(bp)

    @app.context_processor
    def _globals() -> dict[str, Any]:
        return {"csrf_token": csrf_token}

    @app.template_filter("long_date")
    def _long_date(moment: datetime) -> str:
        """7 December 2026 (the same on every platform, unlike strftime's %-d)."""
        return f"{moment.day} {moment:%B %Y}"

    @app.after_request
    def _security_headers(response: Response) -> Response:
        headers = response.headers
        headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        headers["X-Frame-Options"] = "DENY"
        headers["X-Content-Type-Options"] = "nosniff"
        headers["Referrer-Policy"] = "no-referrer"  # the token is in the URL: never pass it on
        headers["Cross-Origin-Opener-Policy"] = "same-origin"
        headers["Cross-Origin-Resource-Policy"] = "same-origin"
        headers["Permissions-Policy"] = "camera=(), microphone=(), geolocation=()"
        if request.is_secure:
            headers["Strict-Transport-Security"] = "max-age=31536000"
        if request.endpoint != "static":
            # Pages carry personal details and the link itself: keep them out of caches.
            headers["Cache-Control"] = "no-store"
        return response

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> tuple[str, int, dict[str, str]]:
        code = exc.code or 500
        # The exception's own headers that say what to do next (a 405's Allow, a
        # Retry-After); not its Content-Type, the page is HTML.
        kept = {k: v for k, v in exc.get_headers() if k.lower() in ("allow", "retry-after")}
        return render_template(
            "message.html",
            branding=_safe_branding(app),
            title=exc.name,
            heading=_ERROR_HEADINGS.get(code, exc.name),
            lines=[_ERROR_TEXTS.get(code, "Please go back and try again.")],
        ), code, kept

    @app.errorhandler(SystemBusy)
    def _busy(exc: SystemBusy) -> tuple[str, int, dict[str, str]]:
        return _busy_page(app, exc.message)

    @app.errorhandler(DomainError)
    def _domain_error(exc: DomainError) -> tuple[str, int]:
        # E.g. a registration that kept colliding with concurrent ones: say so, and what to do.
        return render_template(
            "message.html",
            branding=_safe_branding(app),
            title="Please try again",
            heading="Please try again",
            lines=[exc.message],
        ), 409

    @app.errorhandler(Exception)
    def _server_error(exc: Exception) -> tuple[str, int] | tuple[str, int, dict[str, str]]:
        if is_busy_error(exc):  # the database stayed locked: busy, not broken
            return _busy_page(app, SystemBusy().message)
        app.log_exception((type(exc), exc, exc.__traceback__))  # type: ignore[arg-type]
        return render_template(
            "message.html",
            branding=None,
            title="Something went wrong",
            heading="Something went wrong",
            lines=["The page could not be shown just now. Please try again in a few minutes."],
        ), 500

    return app


def _busy_page(app: Flask, message: str) -> tuple[str, int, dict[str, str]]:
    return render_template(
        "message.html", branding=None, title="The system is busy",
        heading="The system is busy", lines=[message],
    ), 503, {"Retry-After": "5"}


def _safe_branding(app: Flask) -> Branding | None:
    try:
        return portal_state(app).branding()
    except Exception:  # the error page must render even when the database is down
        log.exception("could not load the branding for an error page")
        return None


_ERROR_HEADINGS = {
    404: "Page not found",
    405: "This page cannot be used that way",
    413: "That was too much to send",
}
_ERROR_TEXTS = {
    404: "Check the address, or open the link from your invitation email again.",
    405: "Go back and use the form on the page.",
    413: "The form was larger than expected. Go back and try again.",
}
