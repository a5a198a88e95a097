"""The Settings window and its pages (Invitations, Referrals, Organization, Email (SMTP),
Email template)."""

from invite_desk.ui.settings.invitations_page import InvitationsPage
from invite_desk.ui.settings.organization_page import OrganizationPage
from invite_desk.ui.settings.page import SettingsPage
from invite_desk.ui.settings.referrals_page import ReferralsPage
from invite_desk.ui.settings.smtp_page import SmtpPage
from invite_desk.ui.settings.template_page import TemplatePage
from invite_desk.ui.settings.window import PAGE_CLASSES, SettingsWindow, read_only_reason

__all__ = [
    "PAGE_CLASSES",
    "InvitationsPage",
    "OrganizationPage",
    "ReferralsPage",
    "SettingsPage",
    "SettingsWindow",
    "SmtpPage",
    "TemplatePage",
    "read_only_reason",
]
