"""Invitation tracking: the read model behind the Invitations window (counts, pages, search,
filters, sorting, one invitation's history), the row actions (resend, revoke, extend, fresh
link), the CSV export and the expiry sweep. The effective-status rule is in `status`."""

from invite_desk.services.tracking.actions import (
    ActionResult,
    IssuedLink,
    RowAction,
    Skipped,
    extend_invitations,
    issue_fresh_links,
    resend_invitations,
    revoke_invitations,
    why_not,
)
from invite_desk.services.tracking.expiry import expire_overdue
from invite_desk.services.tracking.export import export_csv
from invite_desk.services.tracking.history import HistoryEntry, InvitationDetail, invitation_detail
from invite_desk.services.tracking.query import Column, Filters, InvitationQuery
from invite_desk.services.tracking.read import (
    PAGE_SIZE,
    InvitationRow,
    Page,
    ViewSnapshot,
    count_invitations,
    count_tabs,
    fetch_page,
    get_invitation,
    get_invitations,
    open_view,
)
from invite_desk.services.tracking.status import (
    Tab,
    effective_status,
    effective_status_sql,
    link_is_live,
    tab_condition,
)

__all__ = [
    "PAGE_SIZE", "ActionResult", "Column", "Filters", "HistoryEntry", "InvitationDetail",
    "InvitationQuery", "InvitationRow", "IssuedLink", "Page", "RowAction", "Skipped", "Tab",
    "ViewSnapshot", "count_invitations", "count_tabs", "effective_status",
    "effective_status_sql", "expire_overdue", "export_csv", "extend_invitations",
    "fetch_page", "get_invitation", "get_invitations", "invitation_detail",
    "issue_fresh_links", "link_is_live", "open_view", "resend_invitations",
    "revoke_invitations", "tab_condition", "why_not",
]
