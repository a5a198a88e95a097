"""The organization's SMTP server and email templates. The SMTP password is never here:
it lives in each desktop's OS keyring (see services/credentials.py)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from invite_desk.services import audit
from invite_desk.services.concurrency import changed_meanwhile
from invite_desk.services.credentials import CredentialStore, oauth_key, smtp_key
from invite_desk.services.email.templates import (
    InvitationTemplates,
    default_templates,
    validate_templates,
)
from invite_desk.services.errors import ValidationFailed
from invite_desk.services.models import Setting
from invite_desk.services.operator import Operator, refreshed
from invite_desk.services.permissions import Action, require
from invite_desk.services.smtp.presets import AUTH_METHODS, MAX_CONNECTIONS, PRESETS, preset
from invite_desk.services.smtp.transport import SmtpConfig
from invite_desk.services.uow import UnitOfWork

SMTP_KEY = "smtp.config"
TEMPLATES_KEY = "emailTemplates.invitation"
SECURITY_CHOICES = ("ssl", "starttls", "none")


@dataclass(frozen=True)
class MailSettings:
    host: str = ""
    port: int = 587
    security: str = "starttls"
    username: str = ""
    from_address: str = ""
    from_name: str = ""
    rate_per_minute: int = 30
    # Issue 13: a provider preset (smtp/presets.py), its daily cap, parallel connections
    # (0: the preset's default) and how to sign in (a password or an OAuth2 sign-in).
    preset: str = ""
    per_day: int = 0
    connections: int = 0
    auth: str = "password"
    oauth_client_id: str = ""
    oauth_tenant: str = ""

    @property
    def configured(self) -> bool:
        return bool(self.host and self.from_address)

    @property
    def uses_oauth(self) -> bool:
        return self.auth in ("oauth-microsoft", "oauth-google")

    @property
    def connection_count(self) -> int:
        """How many SMTP connections a send run opens: the setting, else the preset's."""
        count = self.connections or preset(self.preset).connections
        return max(1, min(MAX_CONNECTIONS, count))

    def smtp_config(self, timeout: float = 30.0) -> SmtpConfig:
        security = self.security if self.security in SECURITY_CHOICES else "starttls"
        return SmtpConfig(
            host=self.host,
            port=self.port,
            security=security,  # type: ignore[arg-type]
            username=self.username or None,
            from_address=self.from_address,
            from_name=self.from_name,
            rate_per_minute=self.rate_per_minute,
            timeout=timeout,
            auth="xoauth2" if self.uses_oauth else "password",
        )

    def password_key(self) -> str:
        return smtp_key(self.host, self.port, self.username)

    def refresh_token_key(self) -> str:
        """The keyring entry holding the OAuth2 refresh token (never the database)."""
        return oauth_key(self.auth, self.username)


def _row(session: Session, organization_id: Any, key: str) -> Setting | None:
    return session.scalar(
        select(Setting).where(Setting.organization_id == organization_id, Setting.key == key)
    )


def load_mail_settings(session: Session, organization_id: Any) -> MailSettings:
    row = _row(session, organization_id, SMTP_KEY)
    if row is None:
        return MailSettings()
    try:
        stored = json.loads(row.value_json)
        known = {k: v for k, v in stored.items() if k in MailSettings.__dataclass_fields__}
        return replace(MailSettings(), **known)
    except (ValueError, TypeError, AttributeError):
        return MailSettings()


def get_mail_settings(uow: UnitOfWork, organization_id: Any) -> MailSettings:
    with uow:
        return load_mail_settings(uow.session, organization_id)


def validate_mail_settings(values: Mapping[str, Any]) -> MailSettings:
    errors: dict[str, str] = {}
    clean: dict[str, Any] = {}
    for field in MailSettings.__dataclass_fields__:
        if field in values:
            clean[field] = values[field]
    host = str(clean.get("host", "")).strip()
    if not host or any(c.isspace() for c in host):
        errors["host"] = "SMTP server is required (for example smtp.office365.com)"
    try:
        port = int(clean.get("port", 587))
        if not 1 <= port <= 65535:
            raise ValueError
    except (TypeError, ValueError):
        errors["port"] = "Port must be a number between 1 and 65535"
        port = 587
    security = str(clean.get("security", "starttls"))
    if security not in SECURITY_CHOICES:
        errors["security"] = "Security must be SSL/TLS, STARTTLS or none"
    from_address = str(clean.get("from_address", "")).strip()
    if "@" not in from_address or any(c in from_address for c in "\r\n<> "):
        errors["from_address"] = "From address must be an email address"
    from_name = " ".join(str(clean.get("from_name", "")).split())
    try:
        rate = int(clean.get("rate_per_minute", 30))
        if not 0 <= rate <= 100_000:
            raise ValueError
    except (TypeError, ValueError):
        errors["rate_per_minute"] = "Rate limit must be 0 (none) or a positive number per minute"
        rate = 30
    chosen = str(clean.get("preset", ""))
    if chosen not in PRESETS:
        errors["preset"] = "Choose a provider from the list (or Custom)"
    per_day = _whole(clean, "per_day", 0, 0, 10_000_000, errors,
                     "Daily limit must be 0 (none) or a positive number of messages")
    connections = _whole(clean, "connections", 0, 0, MAX_CONNECTIONS, errors,
                         f"Connections must be between 1 and {MAX_CONNECTIONS} (0: the provider's)")
    auth = str(clean.get("auth", "password"))
    if auth not in AUTH_METHODS:
        errors["auth"] = "Sign-in must be a password, Microsoft 365 or Google"
    username = str(clean.get("username", "")).strip()
    if auth != "password" and not username:
        errors["username"] = "Signing in with Microsoft or Google needs the mailbox's address"
    client_id = str(clean.get("oauth_client_id", "")).strip()
    if auth != "password" and not client_id:
        errors["oauth_client_id"] = (
            "The application (client) ID registered for Invite Desk is required for OAuth2")
    tenant = str(clean.get("oauth_tenant", "")).strip()
    if any(c.isspace() or c in "/?#" for c in tenant + client_id):
        errors["oauth_tenant"] = "The tenant and client IDs contain no spaces or slashes"
    if errors:
        raise ValidationFailed(errors)
    return MailSettings(
        host=host, port=port, security=security, username=username,
        from_address=from_address, from_name=from_name, rate_per_minute=rate,
        preset=chosen, per_day=per_day, connections=connections, auth=auth,
        oauth_client_id=client_id if auth != "password" else "",
        oauth_tenant=tenant if auth == "oauth-microsoft" else "",
    )


_ISSUE_13_FIELDS = ("preset", "per_day", "connections", "auth", "oauth_client_id",
                    "oauth_tenant")


def _audited(mail: MailSettings) -> dict[str, Any]:
    """The settings as the audit log shows them: the sending-through-providers fields only
    when set (an unchanged password-only server reads as before)."""
    values = asdict(mail)
    default = MailSettings()
    for name in _ISSUE_13_FIELDS:
        if values[name] == getattr(default, name):
            del values[name]
    return values


def _whole(values: Mapping[str, Any], key: str, default: int, low: int, high: int,
           errors: dict[str, str], message: str) -> int:
    try:
        number = int(values.get(key, default))
        if not low <= number <= high:
            raise ValueError
    except (TypeError, ValueError):
        errors[key] = message
        return default
    return number


def _store(session: Session, organization_id: Any, key: str, value: Any,
           row: Setting | None) -> Setting:
    """Write `value` into `row`, the one read before (None: insert). Reading it again here
    would quietly overwrite a row someone else inserted meanwhile; with the row read before,
    that race ends in a unique-key or stale-version error, which becomes a Conflict."""
    encoded = json.dumps(value, sort_keys=True)
    if row is None:
        row = Setting(organization_id=organization_id, key=key, value_json=encoded)
        session.add(row)
    else:
        row.value_json = encoded
    return row


def update_mail_settings(
    uow: UnitOfWork,
    operator: Operator,
    values: Mapping[str, Any],
    *,
    password: str | None = None,
    credentials: CredentialStore | None = None,
) -> MailSettings:
    """Save the SMTP settings (audited). A password given here goes to the keyring only."""
    require(operator, Action.CHANGE_SETTINGS)
    new = validate_mail_settings(values)
    # Two first saves both insert the setting row: the second is told, not shown an
    # IntegrityError.
    with uow, changed_meanwhile():
        require(refreshed(uow.session, operator), Action.CHANGE_SETTINGS)
        row = _row(uow.session, operator.organization_id, SMTP_KEY)
        old = load_mail_settings(uow.session, operator.organization_id)
        if new != old:
            _store(uow.session, operator.organization_id, SMTP_KEY, asdict(new), row)
            audit.record(
                uow.session, organization_id=operator.organization_id,
                actor_id=operator.member_id, action="smtp.update", entity_type="settings",
                before=_audited(old), after=_audited(new),
            )
            uow.commit()
    if password is not None and credentials is not None:
        credentials.set(new.password_key(), password)
    return new


def sign_in_smtp(
    uow: UnitOfWork,
    operator: Operator,
    credentials: CredentialStore,
    *,
    show: Callable[[str], None],
    client_secret: str = "",
    http: Any = None,
) -> str:
    """Sign this computer in to the organization's mailbox with OAuth2 (Microsoft: device
    code, `show` gets the code to type; Google: the browser opens). Only the refresh token is
    kept, in `credentials` (the keyring). Audited (without any token)."""
    from invite_desk.services.smtp import oauth

    require(operator, Action.CHANGE_SETTINGS)
    with uow:
        require(refreshed(uow.session, operator), Action.CHANGE_SETTINGS)
        mail = load_mail_settings(uow.session, operator.organization_id)
    if not mail.uses_oauth:
        raise ValidationFailed({"auth": "The SMTP settings sign in with a password, not with "
                                        "Microsoft 365 or Google: choose it in Settings > Email"})
    key = mail.refresh_token_key()
    if mail.auth == oauth.MICROSOFT:
        message = oauth.sign_in_microsoft(mail.oauth_client_id, mail.oauth_tenant,
                                          mail.username, credentials, key, show=show,
                                          http_client=http)
    else:
        secret = client_secret or credentials.get(oauth.google_client_key(
            mail.oauth_client_id)) or ""
        if not secret:
            raise ValidationFailed({"oauth_client_id": "Google also needs the client secret "
                                                       "of the app registered for Invite Desk"})
        show("Your browser opens Google's sign-in; come back here when it says so.")
        message = oauth.sign_in_google(mail.oauth_client_id, secret, mail.username,
                                       credentials, key)
    with uow:
        audit.record(uow.session, organization_id=operator.organization_id,
                     actor_id=operator.member_id, action="smtp.oauth_sign_in",
                     entity_type="settings", after={"provider": mail.auth,
                                                    "mailbox": mail.username})
        uow.commit()
    return message


def load_templates(session: Session, organization_id: Any) -> InvitationTemplates:
    row = _row(session, organization_id, TEMPLATES_KEY)
    if row is not None:
        try:
            stored = json.loads(row.value_json)
            return InvitationTemplates(stored["subject"], stored["html"], stored["text"])
        except (ValueError, KeyError, TypeError):
            pass
    return default_templates()


def get_templates(uow: UnitOfWork, organization_id: Any) -> InvitationTemplates:
    with uow:
        return load_templates(uow.session, organization_id)


def update_templates(
    uow: UnitOfWork, operator: Operator, templates: InvitationTemplates | None
) -> InvitationTemplates:
    """Save edited templates after validating them (None restores the defaults)."""
    require(operator, Action.CHANGE_SETTINGS)
    new = templates or default_templates()
    validate_templates(new)
    with uow, changed_meanwhile():
        require(refreshed(uow.session, operator), Action.CHANGE_SETTINGS)
        row = _row(uow.session, operator.organization_id, TEMPLATES_KEY)
        old = load_templates(uow.session, operator.organization_id)
        if new != old:
            _store(uow.session, operator.organization_id, TEMPLATES_KEY, asdict(new), row)
            audit.record(
                uow.session, organization_id=operator.organization_id,
                actor_id=operator.member_id, action="templates.update", entity_type="settings",
                before=asdict(old), after=asdict(new),
            )
            uow.commit()
    return new
