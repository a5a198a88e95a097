"""The invitations table: a PagedTableModel over the tracking read model."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from enum import IntEnum
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QBrush, QColor

from invite_desk.services.models import InvitationStatus, utcnow
from invite_desk.services.operator import Operator
from invite_desk.services.tracking import (
    PAGE_SIZE,
    Column,
    InvitationQuery,
    InvitationRow,
    fetch_page,
    open_view,
)
from invite_desk.ui.paged import PagedTableModel
from invite_desk.ui.widgets import plain_tooltip

if TYPE_CHECKING:
    from invite_desk.ui.context import UnitOfWork
    from invite_desk.ui.hub import OperationsHub

Clock = Callable[[], datetime]


class InvitationRole(IntEnum):
    """Custom data roles."""

    ROW = Qt.ItemDataRole.UserRole + 1  # the InvitationRow
    ID = Qt.ItemDataRole.UserRole + 2  # its uuid.UUID
    STATUS = Qt.ItemDataRole.UserRole + 3  # the effective status value ("sent", "expired", ...)


STATUS_TEXT: dict[InvitationStatus, str] = {
    InvitationStatus.DRAFT: "Draft",
    InvitationStatus.QUEUED: "Queued",
    InvitationStatus.SENDING: "Sending",
    InvitationStatus.SENT: "Sent",
    InvitationStatus.ACCEPTED: "Accepted",
    InvitationStatus.EXPIRED: "Expired",
    InvitationStatus.REVOKED: "Revoked",
    InvitationStatus.FAILED: "Failed",
    InvitationStatus.UNCERTAIN: "Uncertain",
    InvitationStatus.BOUNCED: "Bounced",
    InvitationStatus.SUPPRESSED: "Suppressed",
}

# Readable text colours; the status is always spelled out too, never colour alone.
STATUS_COLOURS: dict[InvitationStatus, str] = {
    InvitationStatus.DRAFT: "#5B6270",
    InvitationStatus.QUEUED: "#284F8F",
    InvitationStatus.SENDING: "#284F8F",
    InvitationStatus.SENT: "#1F2328",
    InvitationStatus.ACCEPTED: "#1E6B35",
    InvitationStatus.EXPIRED: "#7A4A00",
    InvitationStatus.REVOKED: "#5B6270",
    InvitationStatus.FAILED: "#A21B12",
    InvitationStatus.UNCERTAIN: "#8A4B00",
    InvitationStatus.BOUNCED: "#A21B12",
    InvitationStatus.SUPPRESSED: "#5B6270",
}


def format_when(value: datetime | None) -> str:
    """A date in the table: local time, minutes."""
    if value is None:
        return ""
    return value.astimezone().strftime("%d %b %Y %H:%M")


def format_full(value: datetime | None) -> str:
    if value is None:
        return ""
    local = value.astimezone()
    return f"{local:%A %d %B %Y, %H:%M} ({value.astimezone(UTC):%H:%M} UTC)"


class InvitationSource:
    """Reads views through the tracking services; safe to call from worker threads."""

    def __init__(self, uow: UnitOfWork, operator: Operator, clock: Clock = utcnow) -> None:
        self.uow = uow
        self.operator = operator
        self.clock = clock

    first_page = 60  # a screenful and then some: the first paint waits for these only

    def open(self, query: InvitationQuery) -> tuple[int, Sequence[InvitationRow]]:
        snapshot = open_view(self.uow, self.operator, query, limit=self.first_page,
                             now=self.clock())
        return snapshot.total, snapshot.first_page.rows

    def page(self, query: InvitationQuery, offset: int, limit: int,
             total: int) -> Sequence[InvitationRow]:
        return fetch_page(self.uow, self.operator, query, offset, limit, total=total,
                          now=self.clock()).rows


class InvitationTableModel(PagedTableModel[InvitationQuery, InvitationRow]):
    """Columns as in `Column`; sorting on any column re-reads the view sorted in SQL."""

    def __init__(self, source: InvitationSource, query: InvitationQuery | None = None, *,
                 hub: OperationsHub, parent: QObject | None = None) -> None:
        super().__init__(source, query or InvitationQuery(), hub=hub,
                         page_size=PAGE_SIZE, parent=parent)

    def headers(self) -> Sequence[str]:
        return [column.title for column in Column]

    def with_sort(self, query: InvitationQuery, column: int,
                  descending: bool) -> InvitationQuery:
        return replace(query, sort=Column(column), descending=descending)

    def sort_of(self, query: InvitationQuery) -> tuple[int, bool]:
        return int(query.sort), query.descending

    def display(self, row: InvitationRow, column: int, role: int) -> Any:
        if role == InvitationRole.ROW:
            return row
        if role == InvitationRole.ID:
            return row.id
        if role == InvitationRole.STATUS:
            return row.status.value
        col = Column(column)
        if role == Qt.ItemDataRole.DisplayRole:
            return self._text(row, col)
        if role == Qt.ItemDataRole.ToolTipRole:
            tip = self._tooltip(row, col)
            return plain_tooltip(tip) if isinstance(tip, str) else tip
        if role == Qt.ItemDataRole.ForegroundRole and col is Column.STATUS:
            return QBrush(QColor(STATUS_COLOURS[row.status]))
        if role == Qt.ItemDataRole.ForegroundRole and col is Column.LAST_ERROR:
            return QBrush(QColor("#A21B12"))
        if role == Qt.ItemDataRole.ForegroundRole and col is Column.SENT and row.sent_at is None:
            return QBrush(QColor("#7A818C"))
        return None

    @staticmethod
    def _text(row: InvitationRow, col: Column) -> str:
        if col is Column.INVITEE:
            return row.invitee
        if col is Column.INVITER:
            return row.inviter_name
        if col is Column.SENDER:
            return row.sender_name
        if col is Column.UNIT:
            return row.unit_name
        if col is Column.KIND:
            return row.kind_label
        if col is Column.BATCH:
            return row.batch_label
        if col is Column.SENT:
            if row.sent_at is None and row.queued_at is not None:
                return f"queued {row.queued_at.astimezone():%d %b %Y}"
            return format_when(row.sent_at)
        if col is Column.EXPIRES:
            return format_when(row.expires_at)
        if col is Column.ACCEPTED:
            return format_when(row.accepted_at)
        if col is Column.STATUS:
            return STATUS_TEXT[row.status]
        return " ".join(row.last_error.split())

    @staticmethod
    def _tooltip(row: InvitationRow, col: Column) -> str | None:
        if col is Column.SENT:
            if row.sent_at is None:
                queued = format_full(row.queued_at)
                return f"Not sent (queued {queued})" if queued else "Not sent"
            return format_full(row.sent_at)
        if col is Column.EXPIRES:
            return format_full(row.expires_at) or None
        if col is Column.ACCEPTED:
            return format_full(row.accepted_at) or None
        if col is Column.STATUS and row.status is not row.stored_status:
            return (f"{STATUS_TEXT[row.status]}: the link expired on "
                    f"{format_full(row.expires_at)}.")
        if col is Column.LAST_ERROR and row.last_error:
            return row.last_error
        if col is Column.INVITEE:
            return row.invitee
        return None
