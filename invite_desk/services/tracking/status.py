"""The one rule for an invitation's status as people see it, in Python and in SQL.

A `sent` invitation whose `expires_at` has passed *is* expired, from that very moment, in
every table, count, filter, action and link check, whether or not the expiry sweep
(`expire_overdue`, the `invite-desk expire` command, the window's timer) has recorded the
transition yet. The sweep only writes down what this rule already says.

Tabs group effective statuses:
    Pending    queued, sending, and sent but not yet expired (on its way or waiting for the invitee)
    Accepted   accepted
    Expired    expired, and sent rows past their expiry
    Failed     failed (a permanent refusal, or too many temporary ones)
    Uncertain  uncertain (the program stopped while the server may have had the message)
    Revoked    revoked
    Bounced    bounced (the address bounced hard; it is on the suppression list)
    Suppressed suppressed (not sent: the address is on the suppression list)
    All        every invitation, drafts included (drafts appear in no other tab)

A link is live while its invitation is sent or uncertain (the invitee may well have the email)
and not past its expiry; it is dead once accepted (single use), revoked, expired, resent or
replaced by a fresh link (each of which replaces or clears the token hash).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ColumnElement, and_, case, literal, or_, true

from invite_desk.services.models import Invitation, InvitationStatus


class Tab(StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    EXPIRED = "expired"
    FAILED = "failed"
    UNCERTAIN = "uncertain"
    REVOKED = "revoked"
    BOUNCED = "bounced"
    SUPPRESSED = "suppressed"
    ALL = "all"

    @property
    def label(self) -> str:
        return self.value.capitalize()


# Stored statuses that are always pending; `sent` is pending only until it expires.
PENDING_STATES = frozenset({InvitationStatus.QUEUED, InvitationStatus.SENDING})
LIVE_LINK_STATES = frozenset({InvitationStatus.SENT, InvitationStatus.UNCERTAIN})

_SINGLE_STATUS_TABS = {
    Tab.ACCEPTED: InvitationStatus.ACCEPTED,
    Tab.FAILED: InvitationStatus.FAILED,
    Tab.UNCERTAIN: InvitationStatus.UNCERTAIN,
    Tab.REVOKED: InvitationStatus.REVOKED,
    Tab.BOUNCED: InvitationStatus.BOUNCED,
    Tab.SUPPRESSED: InvitationStatus.SUPPRESSED,
}


def is_overdue(status: str, expires_at: datetime | None, now: datetime) -> bool:
    """A sent invitation past its expiry, whether or not the sweep has recorded it yet."""
    return status == InvitationStatus.SENT and expires_at is not None and expires_at <= now


def effective_status(status: str, expires_at: datetime | None, now: datetime) -> InvitationStatus:
    """The status people see at `now`: sent-and-overdue reads as expired."""
    if is_overdue(status, expires_at, now):
        return InvitationStatus.EXPIRED
    return InvitationStatus(status)


def link_is_live(status: str, expires_at: datetime | None, now: datetime) -> bool:
    """Whether the invitation's current link may still be used at `now`."""
    return status in LIVE_LINK_STATES and (expires_at is None or expires_at > now)


def tab_of(status: InvitationStatus) -> Tab | None:
    """The tab (other than All) an effective status is listed under; None for drafts."""
    if status in PENDING_STATES or status is InvitationStatus.SENT:
        return Tab.PENDING
    if status is InvitationStatus.EXPIRED:
        return Tab.EXPIRED
    for tab, single in _SINGLE_STATUS_TABS.items():
        if single is status:
            return tab
    return None


# -- the same rule in SQL -----------------------------------------------------------------

def overdue_sql(now: datetime) -> ColumnElement[bool]:
    return and_(Invitation.status == InvitationStatus.SENT.value, Invitation.expires_at <= now)


def effective_status_sql(now: datetime) -> ColumnElement[str]:
    """`effective_status` as a SQL expression (for GROUP BY, ORDER BY and exports)."""
    return case(
        (overdue_sql(now), literal(InvitationStatus.EXPIRED.value)), else_=Invitation.status
    )


def tab_condition(tab: Tab, now: datetime) -> ColumnElement[bool]:
    """The WHERE condition that selects `tab`'s invitations at `now`."""
    if tab is Tab.ALL:
        return true()
    if tab is Tab.PENDING:
        return or_(
            Invitation.status.in_(sorted(s.value for s in PENDING_STATES)),
            and_(Invitation.status == InvitationStatus.SENT.value,
                 or_(Invitation.expires_at.is_(None), Invitation.expires_at > now)),
        )
    if tab is Tab.EXPIRED:
        return or_(Invitation.status == InvitationStatus.EXPIRED.value, overdue_sql(now))
    return Invitation.status == _SINGLE_STATUS_TABS[tab].value


def live_link_sql(now: datetime) -> ColumnElement[bool]:
    return and_(Invitation.status.in_(sorted(s.value for s in LIVE_LINK_STATES)),
                or_(Invitation.expires_at.is_(None), Invitation.expires_at > now))
