"""The applications table: one row per membership application in the operator's scope.

The model holds the immutable `ApplicationRow`s the services returned; `data()` only indexes
into them (no database access). A proxy narrows the table to one filter (Open, Approved,
Rejected, All) and sorts by a per-column key, oldest submission first by default.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime
from enum import IntEnum, StrEnum
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
)
from PySide6.QtGui import QBrush, QColor

from invite_desk.services.adhesion import OPEN_STATUSES, ApplicationRow
from invite_desk.services.models import AdhesionStatus
from invite_desk.ui.widgets import plain_tooltip

Index = QModelIndex | QPersistentModelIndex


class ApplicationRole(IntEnum):
    """Custom data roles: the whole row, its member id, its status, and a sort key."""

    ROW = Qt.ItemDataRole.UserRole + 1  # the ApplicationRow
    MEMBER_ID = Qt.ItemDataRole.UserRole + 2  # str(member_id)
    STATUS = Qt.ItemDataRole.UserRole + 3  # AdhesionStatus value ("pending", ...)
    SORT = Qt.ItemDataRole.UserRole + 4  # a value that sorts naturally


class Column(IntEnum):
    NAME = 0
    EMAIL = 1
    UNIT = 2
    REFERRED_BY = 3
    STATUS = 4
    SUBMITTED = 5
    REASON = 6


HEADERS = {
    Column.NAME: "Name",
    Column.EMAIL: "Email",
    Column.UNIT: "Unit",
    Column.REFERRED_BY: "Referred by",
    Column.STATUS: "Status",
    Column.SUBMITTED: "Submitted",
    Column.REASON: "Reason",
}

STATUS_TEXT = {
    AdhesionStatus.NEW: "New",
    AdhesionStatus.PENDING: "Pending",
    AdhesionStatus.DRAFT: "Back to draft",
    AdhesionStatus.APPROVED: "Approved",
    AdhesionStatus.REJECTED: "Rejected",
}

# (text, background): readable pairs; the status is always spelled out, never colour alone.
STATUS_COLOURS: dict[AdhesionStatus, tuple[str, str | None]] = {
    AdhesionStatus.NEW: ("#284F8F", "#E8F0FC"),
    AdhesionStatus.PENDING: ("#284F8F", "#E8F0FC"),
    AdhesionStatus.DRAFT: ("#7A4A00", "#FFF4E0"),
    AdhesionStatus.APPROVED: ("#1E6B35", "#E9F5EC"),
    AdhesionStatus.REJECTED: ("#A21B12", "#FDECEA"),
}

# The order statuses sort in: open first (as they were submitted), then decided.
STATUS_ORDER = {status: rank for rank, status in enumerate(
    (AdhesionStatus.NEW, AdhesionStatus.PENDING, AdhesionStatus.DRAFT,
     AdhesionStatus.APPROVED, AdhesionStatus.REJECTED))}


class StatusFilter(StrEnum):
    """The filter buttons above the table."""

    OPEN = "open"
    APPROVED = "approved"
    REJECTED = "rejected"
    ALL = "all"

    @property
    def label(self) -> str:
        return FILTER_LABELS[self]

    @property
    def statuses(self) -> frozenset[AdhesionStatus] | None:
        """The statuses this filter shows; None for every status."""
        return FILTER_STATUSES[self]


FILTER_LABELS = {
    StatusFilter.OPEN: "Open",
    StatusFilter.APPROVED: "Approved",
    StatusFilter.REJECTED: "Rejected",
    StatusFilter.ALL: "All",
}

FILTER_STATUSES: dict[StatusFilter, frozenset[AdhesionStatus] | None] = {
    StatusFilter.OPEN: frozenset(OPEN_STATUSES),
    StatusFilter.APPROVED: frozenset({AdhesionStatus.APPROVED}),
    StatusFilter.REJECTED: frozenset({AdhesionStatus.REJECTED}),
    StatusFilter.ALL: None,
}


def local_time(moment: datetime) -> datetime:
    """A stored (aware UTC) time in the computer's time zone."""
    return moment.astimezone()


def format_date(moment: datetime) -> str:
    return f"{local_time(moment):%Y-%m-%d}"


def format_datetime(moment: datetime) -> str:
    return f"{local_time(moment):%Y-%m-%d %H:%M}"


def one_line(text: str) -> str:
    """A reason on one table line (the full text is in the tooltip and the detail panel)."""
    return " ".join(text.split())


class ApplicationsModel(QAbstractTableModel):
    """A read-only table over the applications the services listed."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._rows: tuple[ApplicationRow, ...] = ()
        self._counts: Counter[AdhesionStatus] = Counter()
        self._brushes = {
            status: (QBrush(QColor(text)), QBrush(QColor(background)) if background else None)
            for status, (text, background) in STATUS_COLOURS.items()
        }

    # -- content ---------------------------------------------------------------------------
    def set_rows(self, rows: Sequence[ApplicationRow]) -> None:
        self.beginResetModel()
        self._rows = tuple(rows)
        self._counts = Counter(row.status for row in self._rows)
        self.endResetModel()

    @property
    def rows(self) -> tuple[ApplicationRow, ...]:
        return self._rows

    def row_at(self, row: int) -> ApplicationRow:
        return self._rows[row]

    def count(self, status_filter: StatusFilter) -> int:
        """How many loaded applications `status_filter` shows."""
        statuses = status_filter.statuses
        if statuses is None:
            return len(self._rows)
        return sum(self._counts.get(status, 0) for status in statuses)

    def rows_for(self, member_ids: Iterable[object]) -> list[int]:
        """Source rows of the given member ids (those still loaded), in table order."""
        wanted = set(member_ids)
        return [i for i, row in enumerate(self._rows) if row.member_id in wanted]

    # -- Qt overrides ----------------------------------------------------------------------
    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008 (Qt's signature)
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(Column)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation == Qt.Orientation.Horizontal and 0 <= section < len(Column):
            if role == Qt.ItemDataRole.DisplayRole:
                return HEADERS[Column(section)]
            if role == Qt.ItemDataRole.ToolTipRole and section == Column.SUBMITTED:
                return "When the person registered and their application was submitted"
        return None

    def flags(self, index: Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        if not 0 <= index.column() < len(Column):
            return None
        item = self._rows[index.row()]
        column = Column(index.column())
        if role == Qt.ItemDataRole.DisplayRole:
            return self._display(item, column)
        if role == ApplicationRole.ROW:
            return item
        if role == ApplicationRole.MEMBER_ID:
            return str(item.member_id)
        if role == ApplicationRole.STATUS:
            return item.status.value
        if role == ApplicationRole.SORT:
            return self._sort_key(item, column)
        if role == Qt.ItemDataRole.ToolTipRole:
            tip = self._tooltip(item, column)
            return plain_tooltip(tip) if isinstance(tip, str) else tip
        if column is Column.STATUS:
            text, background = self._brushes[item.status]
            if role == Qt.ItemDataRole.ForegroundRole:
                return text
            if role == Qt.ItemDataRole.BackgroundRole:
                return background
        if role == Qt.ItemDataRole.AccessibleTextRole and column is Column.STATUS:
            return f"{STATUS_TEXT[item.status]}. {item.reason}".strip()
        return None

    @staticmethod
    def _display(item: ApplicationRow, column: Column) -> str:
        if column is Column.NAME:
            return item.name
        if column is Column.EMAIL:
            return item.email
        if column is Column.UNIT:
            return item.unit_name or "No unit"
        if column is Column.REFERRED_BY:
            return item.referred_by_name or "—"
        if column is Column.STATUS:
            return STATUS_TEXT[item.status]
        if column is Column.SUBMITTED:
            return format_date(item.submitted_at)
        return one_line(item.reason)

    def _sort_key(self, item: ApplicationRow, column: Column) -> Any:
        if column is Column.SUBMITTED:
            return item.submitted_at.timestamp()
        if column is Column.STATUS:
            return STATUS_ORDER[item.status]
        if column in (Column.UNIT, Column.REFERRED_BY):
            # Empty values ("No unit", "—") after the named ones.
            value = item.unit_name if column is Column.UNIT else item.referred_by_name
            return f"1{value.casefold()}" if value else "2"
        return str(self._display(item, column)).casefold()

    @staticmethod
    def _tooltip(item: ApplicationRow, column: Column) -> str | None:
        if column is Column.REASON and item.reason:
            return item.reason
        if column is Column.SUBMITTED:
            return f"Registered {format_datetime(item.submitted_at)}"
        if column is Column.STATUS:
            status = STATUS_TEXT[item.status]
            return f"{status}: {item.reason}" if item.reason else status
        if column is Column.UNIT and not item.unit_name:
            return "Registered on the public page: organization HR and admins review it."
        if column in (Column.NAME, Column.EMAIL, Column.UNIT, Column.REFERRED_BY):
            return ApplicationsModel._display(item, column)  # the full text of an elided cell
        return None


class ApplicationFilter(QSortFilterProxyModel):
    """Shows the rows of one StatusFilter; sorts by ApplicationRole.SORT."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._filter = StatusFilter.OPEN
        self.setSortRole(ApplicationRole.SORT)

    @property
    def status_filter(self) -> StatusFilter:
        return self._filter

    def set_status_filter(self, status_filter: StatusFilter) -> None:
        if status_filter == self._filter:
            return
        if hasattr(self, "endFilterChange"):  # Qt 6.10+; invalidateFilter() is going away
            self.beginFilterChange()
            self._filter = status_filter
            self.endFilterChange(QSortFilterProxyModel.Direction.Rows)
        else:  # pragma: no cover - older Qt
            self._filter = status_filter
            self.invalidateFilter()

    def filterAcceptsRow(self, source_row: int, source_parent: Index) -> bool:
        statuses = self._filter.statuses
        if statuses is None:
            return True
        model = self.sourceModel()
        value = model.data(model.index(source_row, 0, source_parent), ApplicationRole.STATUS)
        return value is not None and AdhesionStatus(value) in statuses

    def row_at(self, proxy_row: int) -> ApplicationRow:
        return self.index(proxy_row, 0).data(ApplicationRole.ROW)  # type: ignore[no-any-return]
