"""Render one invitation into a ready-to-send message (used by sending, preview and test sends)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from email.message import EmailMessage
from typing import Any

from invite_desk.services.email.message import build_message
from invite_desk.services.email.raw import build_raw_message
from invite_desk.services.email.templates import (
    EmailContext,
    InvitationTemplates,
    RenderedEmail,
    render,
)
from invite_desk.services.errors import SettingsIncomplete
from invite_desk.services.invitations.tokens import registration_link
from invite_desk.services.mail_settings import MailSettings
from invite_desk.services.organization import OrganizationInfo


@dataclass(frozen=True)
class InvitationContent:
    """What varies per invitation."""

    email: str
    name: str
    inviter_name: str
    personal_message: str
    expires_at: datetime
    event_name: str = ""


def fallback_base_url(org: OrganizationInfo) -> str:
    """The registration address, or a local one for previews before it is set (sending
    refuses an empty one: see require_registration_address)."""
    return org.registration_base_url or "http://127.0.0.1:8080"


def require_registration_address(org: OrganizationInfo) -> None:
    """Refuse to send while the registration web address is empty: every link would point to
    this computer instead of the portal."""
    if not org.registration_base_url.strip():
        raise SettingsIncomplete(
            "Set the organization's registration web address (Settings › Organization) before "
            "sending: the link in every invitation points there, and without it invitees would "
            "get a link to this computer.",
            settings_page="organization",
        )


def render_invitation(
    org: OrganizationInfo,
    templates: InvitationTemplates,
    content: InvitationContent,
    token: str,
) -> RenderedEmail:
    context = EmailContext(
        organization_name=org.name,
        organization_description=org.description,
        accent_color=org.accent_color,
        has_logo=org.logo is not None,
        inviter_name=content.inviter_name,
        registration_link=registration_link(fallback_base_url(org), token),
        expires_at=content.expires_at.strftime("%d %B %Y"),
        invitee_name=content.name,
        personal_message=content.personal_message,
        event_name=content.event_name,
    )
    return render(templates, context)


INVITATION_HEADER = "X-Invite-Desk-Invitation"


def unsubscribe_link(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/unsubscribe/{token}"


def deliverability_headers(
    org: OrganizationInfo, invitation_id: uuid.UUID | None, unsubscribe_token: str | None
) -> tuple[tuple[str, str], ...]:
    """The header that matches a bounce to its invitation, and RFC 8058's one-click
    unsubscribe (List-Unsubscribe + List-Unsubscribe-Post), each written on one line."""
    headers: list[tuple[str, str]] = []
    if invitation_id is not None:
        headers.append((INVITATION_HEADER, str(invitation_id)))
    if unsubscribe_token:
        link = unsubscribe_link(fallback_base_url(org), unsubscribe_token)
        headers.append(("List-Unsubscribe", f"<{link}>"))
        headers.append(("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"))
    return tuple(headers)


def _message_fields(
    org: OrganizationInfo, mail: MailSettings, content: InvitationContent,
    invitation_id: uuid.UUID | None = None, unsubscribe_token: str | None = None,
) -> dict[str, Any]:
    """The envelope and branding both message builders take."""
    return {
        "extra_headers": deliverability_headers(org, invitation_id, unsubscribe_token),
        "from_address": mail.from_address,
        "from_name": mail.from_name or org.name,
        "to_address": content.email,
        "to_name": content.name,
        "message_id_domain": mail.from_address.rpartition("@")[2] or "invite-desk.invalid",
        "logo": org.logo,
        "logo_mime": org.logo_mime,
    }


def build_invitation_message(
    org: OrganizationInfo,
    mail: MailSettings,
    templates: InvitationTemplates,
    content: InvitationContent,
    token: str,
    *,
    invitation_id: uuid.UUID | None = None,
    unsubscribe_token: str | None = None,
) -> tuple[EmailMessage, str]:
    """The MIME message and its Message-ID (preview, test sends)."""
    rendered = render_invitation(org, templates, content, token)
    return build_message(rendered, **_message_fields(org, mail, content, invitation_id,
                                                     unsubscribe_token))


def build_test_message(
    org: OrganizationInfo,
    mail: MailSettings,
    templates: InvitationTemplates,
    content: InvitationContent,
    token: str,
) -> tuple[bytes, str]:
    """The "send a test to myself" message: the batch builder's bytes with "[Test]" before the
    subject, addressed to `content.email`. Refuses when the registration address is empty."""
    require_registration_address(org)
    rendered = render_invitation(org, templates, content, token)
    rendered = replace(rendered, subject=f"[Test] {rendered.subject}")
    return build_raw_message(rendered, **_message_fields(org, mail, content))


def build_invitation_raw(
    org: OrganizationInfo,
    mail: MailSettings,
    templates: InvitationTemplates,
    content: InvitationContent,
    token: str,
    *,
    invitation_id: uuid.UUID | None = None,
    unsubscribe_token: str | None = None,
    subject_prefix: str = "",
) -> tuple[bytes, str]:
    """The same message as `build_invitation_message`, as SMTP-ready bytes (the batch path).
    With `invitation_id` it carries the header bounces are matched by; with
    `unsubscribe_token` the one-click unsubscribe headers; `subject_prefix` ("Reminder: ")
    goes before the subject."""
    rendered = render_invitation(org, templates, content, token)
    if subject_prefix:
        rendered = replace(rendered, subject=f"{subject_prefix}{rendered.subject}")
    return build_raw_message(rendered, **_message_fields(org, mail, content, invitation_id,
                                                         unsubscribe_token))
