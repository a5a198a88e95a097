"""What the composer shows before anything is checked: the policy, the branding, the events,
the templates and the mail settings, read together in one go (off the GUI thread)."""

from __future__ import annotations

from dataclasses import dataclass

from invite_desk.services.email.templates import InvitationTemplates
from invite_desk.services.events import EventInfo, list_events
from invite_desk.services.mail_settings import MailSettings, get_mail_settings, get_templates
from invite_desk.services.operator import Operator, refreshed
from invite_desk.services.organization import OrganizationInfo, get_organization
from invite_desk.services.settings import get_settings
from invite_desk.services.settings_schema import PolicySettings
from invite_desk.services.uow import UnitOfWork


@dataclass(frozen=True)
class ComposeState:
    operator: Operator  # as the database says now (role, unit, still active)
    policy: PolicySettings
    organization: OrganizationInfo
    events: tuple[EventInfo, ...]
    templates: InvitationTemplates
    mail: MailSettings


def compose_state(uow: UnitOfWork, operator: Operator) -> ComposeState:
    """Everything the composer needs to decide, preview and send; a deactivated operator is
    refused (PermissionDenied)."""
    with uow:
        operator = refreshed(uow.session, operator)
    org_id = operator.organization_id
    return ComposeState(
        operator=operator,
        policy=get_settings(uow, org_id),
        organization=get_organization(uow, org_id),
        events=tuple(list_events(uow, org_id)),
        templates=get_templates(uow, org_id),
        mail=get_mail_settings(uow, org_id),
    )
