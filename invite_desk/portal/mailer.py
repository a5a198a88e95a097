"""The portal's outgoing email (registration confirmations) through the organization's SMTP
server, configured on the desktop (Settings › Email). The password comes from the keyring
entry the desktop stores, or from $INVITE_DESK_SMTP_PASSWORD (as for `invite-desk send`).
When the settings use OAuth2 (Microsoft 365, Google), the access token comes from the same
token source as the desktop's (services/smtp/oauth.py), refreshed with the refresh token in
the portal's credential store and kept in memory between emails."""

from __future__ import annotations

import logging
import threading
import uuid
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid
from typing import Any

from invite_desk.services.credentials import CredentialStore
from invite_desk.services.errors import DomainError
from invite_desk.services.mail_settings import MailSettings, get_mail_settings
from invite_desk.services.models import utcnow
from invite_desk.services.registration.confirmation import ConfirmationEmail
from invite_desk.services.smtp import oauth
from invite_desk.services.smtp.transport import PermanentFailure, Sent, SmtpAuthError, SmtpTransport
from invite_desk.services.uow import UnitOfWork

log = logging.getLogger(__name__)

SMTP_TIMEOUT = 20.0

REFUSED_INTERNATIONAL = (
    "Our mail server cannot send to addresses with accented or non-Latin letters before "
    "the @. Please use another email address.")
REFUSED_ADDRESS = "Our mail server refused to send to this address. Please check it, or use another one."


@dataclass(frozen=True)
class MailOutcome:
    """Whether the email went out; `refused` says why when submitting again cannot help
    (the server will never take this address). Truthy when sent."""

    sent: bool
    refused: str = ""

    def __bool__(self) -> bool:
        return self.sent


class PortalMailer:
    def __init__(
        self, uow: UnitOfWork, credentials: CredentialStore, password: str | None = None,
        *, oauth_http: Any = None,
    ) -> None:
        self.uow = uow
        self.credentials = credentials
        self.password = password
        self._oauth_http = oauth_http  # tests: a fake at msal's / google-auth's HTTP boundary
        self._tokens_lock = threading.Lock()
        self._tokens: tuple[tuple[str, ...], oauth.TokenSource] | None = None

    def _token_source(self, settings: MailSettings) -> oauth.TokenSource | None:
        """One token source per OAuth2 configuration, shared by the portal's threads, so an
        access token is refreshed once an hour, not once an email; a new one when an admin
        changes the provider, account or application."""
        if not settings.uses_oauth:
            return None
        identity = (settings.auth, settings.username, settings.oauth_client_id,
                    settings.oauth_tenant)
        with self._tokens_lock:
            if self._tokens is None or self._tokens[0] != identity:
                source = oauth.for_settings(settings, self.credentials, http=self._oauth_http)
                assert source is not None
                self._tokens = (identity, source)
            return self._tokens[1]

    def send(self, organization_id: uuid.UUID, email: ConfirmationEmail) -> MailOutcome:
        """Send one email now; falsy (and a log line without the address) when it failed."""
        settings = get_mail_settings(self.uow, organization_id)
        if not settings.configured:
            return MailOutcome(False)
        tokens = self._token_source(settings)
        password = None if tokens is not None else (
            self.password or self.credentials.get(settings.password_key()))
        message = EmailMessage()
        message["From"] = formataddr((settings.from_name, settings.from_address))
        message["To"] = email.to
        message["Subject"] = email.subject
        message["Date"] = format_datetime(utcnow())
        message["Message-ID"] = make_msgid(domain=settings.from_address.rpartition("@")[2])
        message["Auto-Submitted"] = "auto-generated"
        message.set_content(email.text)
        try:
            with SmtpTransport(settings.smtp_config(timeout=SMTP_TIMEOUT), password,
                               access_token=tokens) as smtp:
                result = smtp.send(message, email.to)
        except (DomainError, OSError) as exc:
            if tokens is not None and isinstance(exc, SmtpAuthError) and not isinstance(
                    exc, oauth.SignInNeeded):
                tokens.forget()  # a refused access token: refresh it for the next email
            log.warning("could not send a registration email through %s: %s",
                        settings.smtp_config().address, exc)
            return MailOutcome(False)
        if not isinstance(result, Sent):
            log.warning("the SMTP server did not take a registration email (%s)",
                        getattr(result, "code", None))
            if isinstance(result, PermanentFailure):
                # No code: refused before MAIL FROM (SMTPUTF8 needed but not offered).
                return MailOutcome(False, REFUSED_ADDRESS if result.code else REFUSED_INTERNATIONAL)
            return MailOutcome(False)
        return MailOutcome(True)
