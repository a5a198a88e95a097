"""Invitation emails: templates rendered in a sandbox, and MIME messages built from them."""

from invite_desk.services.email.message import InvalidAddress, build_message, normalize_address
from invite_desk.services.email.templates import (
    DEFAULT_LOGO_CID,
    EmailContext,
    InvalidEmailContext,
    InvitationTemplates,
    RenderedEmail,
    TemplateError,
    default_templates,
    render,
    validate_templates,
)

__all__ = [
    "DEFAULT_LOGO_CID",
    "EmailContext",
    "InvalidAddress",
    "InvalidEmailContext",
    "InvitationTemplates",
    "RenderedEmail",
    "TemplateError",
    "build_message",
    "default_templates",
    "normalize_address",
    "render",
    "validate_templates",
]
