"""The pre-flight table: one row per entered invitee with its status and the reason.

The model holds the immutable `Preflight` the services returned; `data()` only indexes
into it (no database access), so a 50,000-row CSV stays smooth. A proxy filters the
table down to the rows that need attention.
"""

from __future__ import annotations

from collections import Counter
from enum import IntEnum
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

from invite_desk.services.invitations.preflight import (
    SENDABLE,
    STATUS_LABELS,
    Preflight,
    PreflightRow,
    RowStatus,
)
from invite_desk.ui.widgets import plain_tooltip

Index = QModelIndex | QPersistentModelIndex


class PreflightRole(IntEnum):
    """Custom data roles: the whole row, its status, and a sort key."""

    ROW = Qt.ItemDataRole.UserRole + 1  # the PreflightRow
    STATUS = Qt.ItemDataRole.UserRole + 2  # RowStatus value ("ready", "invalid", ...)
    SORT = Qt.ItemDataRole.UserRole + 3  # a value that sorts naturally (ints for numbers)


class Column(IntEnum):
    ROW = 0
    EMAIL = 1
    NAME = 2
    STATUS = 3
    REASON = 4


HEADERS = {
    Column.ROW: "Row",
    Column.EMAIL: "Email",
    Column.NAME: "Name",
    Column.STATUS: "Status",
    Column.REASON: "Why",
}

_STATUS_TEXT = {
    RowStatus.READY: "Ready",
    RowStatus.INVALID: "Invalid",
    RowStatus.DUPLICATE: "Duplicate in batch",
    RowStatus.MEMBER: "Already a member",
    RowStatus.PENDING: "Already invited",
}


class _StatusText(dict[RowStatus, str]):
    """The status column's words: the desktop's short ones, else the services' STATUS_LABELS
    (pre-flight verdicts added later show their own label, never a KeyError)."""

    def __missing__(self, status: RowStatus) -> str:
        label = STATUS_LABELS.get(status)
        return label if label else str(status.value).replace("_", " ").capitalize()


STATUS_TEXT: dict[RowStatus, str] = _StatusText(_STATUS_TEXT)

# What happened to a row after Send: (status column text, text colour, background).
OUTCOME_TEXT = {
    "queued": ("Queued", "#284F8F", "#E8F0FC"),
    "sending": ("Sending…", "#284F8F", "#E8F0FC"),
    "sent": ("Sent", "#1E6B35", "#E6F4EA"),
    "failed": ("Failed", "#A21B12", "#FDECEA"),
    "uncertain": ("Uncertain", "#7A4A00", "#FFF4E0"),
    "skipped": ("Skipped", "#3D4A5C", "#EEF1F5"),
}

# (text, background): readable pairs; the status is also spelled out, never colour alone.
# Ready rows get no background, so the rows that need attention stand out.
_STATUS_COLOURS: dict[RowStatus, tuple[str, str | None]] = {
    RowStatus.READY: ("#1E6B35", None),
    RowStatus.INVALID: ("#A21B12", "#FDECEA"),
    RowStatus.DUPLICATE: ("#7A4A00", "#FFF4E0"),
    RowStatus.MEMBER: ("#3D4A5C", "#EEF1F5"),
    RowStatus.PENDING: ("#284F8F", "#E8F0FC"),
}
# A verdict this table does not know yet is not Ready: shown as a warning, never colourless.
UNKNOWN_COLOURS = ("#7A4A00", "#FFF4E0")


class _StatusColours(dict[RowStatus, tuple[str, str | None]]):
    def __missing__(self, status: RowStatus) -> tuple[str, str | None]:
        return UNKNOWN_COLOURS


STATUS_COLOURS: dict[RowStatus, tuple[str, str | None]] = _StatusColours(_STATUS_COLOURS)

# Count words for the line above the table: "48 ready, 1 invalid, 1 duplicate".
_COUNT_WORDS = {
    RowStatus.READY: ("ready", "ready"),
    RowStatus.INVALID: ("invalid", "invalid"),
    RowStatus.DUPLICATE: ("duplicate", "duplicates"),
    RowStatus.MEMBER: ("already a member", "already members"),
    RowStatus.PENDING: ("already invited", "already invited"),
}


class _CountWords(dict[RowStatus, tuple[str, str]]):
    def __missing__(self, status: RowStatus) -> tuple[str, str]:
        word = STATUS_TEXT[status].lower()
        return word, word


COUNT_WORDS: dict[RowStatus, tuple[str, str]] = _CountWords(_COUNT_WORDS)


def describe_counts(counts: Counter[RowStatus]) -> str:
    """The line above the table, e.g. 48 ready, 1 invalid, 1 duplicate (ready always shown)."""
    parts = []
    for status in RowStatus:
        count = counts.get(status, 0)
        if count or status is RowStatus.READY:
            singular, plural = COUNT_WORDS[status]
            parts.append(f"{count:,} {singular if count == 1 else plural}")
    return ", ".join(parts)


class PreflightModel(QAbstractTableModel):
    """A read-only table over one pre-flight result."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._rows: tuple[PreflightRow, ...] = ()
        self._counts: Counter[RowStatus] = Counter()
        self._brushes = {
            status: (QBrush(QColor(text)), QBrush(QColor(background)) if background else None)
            for status, (text, background) in ((s, STATUS_COLOURS[s]) for s in RowStatus)
        }
        self._unknown_brushes = (QBrush(QColor(UNKNOWN_COLOURS[0])),
                                 QBrush(QColor(UNKNOWN_COLOURS[1])))
        self._outcome_brushes = {
            outcome: (QBrush(QColor(text)), QBrush(QColor(background)))
            for outcome, (_label, text, background) in OUTCOME_TEXT.items()
        }
        # After Send: what happened to each ready row, by its email (sent, failed, ...).
        self._outcomes: dict[str, tuple[str, str]] = {}

    # -- content ---------------------------------------------------------------------------
    def set_preflight(self, preflight: Preflight | None) -> None:
        self.beginResetModel()
        self._rows = preflight.rows if preflight is not None else ()
        self._counts = Counter(row.status for row in self._rows)
        self._outcomes = {}
        self.endResetModel()

    def set_outcome(self, email: str, outcome: str, reason: str = "") -> None:
        """Show what sending did to the ready row(s) with `email`: sent, failed, uncertain..."""
        key = email.casefold()
        if self._outcomes.get(key) == (outcome, reason):
            return
        self._outcomes[key] = (outcome, reason)
        for number, row in enumerate(self._rows):
            if row.status in SENDABLE and row.email.casefold() == key:
                self.dataChanged.emit(self.index(number, Column.STATUS),
                                      self.index(number, Column.REASON))

    def mark_ready_rows(self, outcome: str) -> None:
        """Every ready row without an outcome yet gets `outcome` (e.g. queued)."""
        for row in self._rows:
            if row.status in SENDABLE and row.email.casefold() not in self._outcomes:
                self._outcomes[row.email.casefold()] = (outcome, "")
        if self._rows:
            self.dataChanged.emit(self.index(0, Column.STATUS),
                                  self.index(len(self._rows) - 1, Column.REASON))

    def outcome_of(self, item: PreflightRow) -> tuple[str, str] | None:
        if item.status not in SENDABLE:
            return None
        return self._outcomes.get(item.email.casefold())

    def outcome_counts(self) -> Counter[str]:
        return Counter(outcome for outcome, _reason in self._outcomes.values())

    def clear(self) -> None:
        self.set_preflight(None)

    def row_at(self, row: int) -> PreflightRow:
        return self._rows[row]

    @property
    def rows(self) -> tuple[PreflightRow, ...]:
        return self._rows

    def counts(self) -> Counter[RowStatus]:
        return Counter(self._counts)

    def summary(self) -> str:
        return describe_counts(self._counts) if self._rows else ""

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
            if role == Qt.ItemDataRole.TextAlignmentRole and section == Column.ROW:
                return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def flags(self, index: Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        item = self._rows[index.row()]
        column = Column(index.column())
        outcome = self.outcome_of(item)
        if outcome is not None and column in (Column.STATUS, Column.REASON):
            return self._outcome_data(outcome, column, role)
        if role == Qt.ItemDataRole.DisplayRole:
            return self._display(item, column)
        if role == PreflightRole.ROW:
            return item
        if role == PreflightRole.STATUS:
            return item.status.value
        if role == PreflightRole.SORT:
            if column is Column.ROW:
                return item.row
            if column is Column.STATUS:
                order = list(RowStatus)
                return order.index(item.status) if item.status in order else len(order)
            return str(self._display(item, column)).casefold()
        if role == Qt.ItemDataRole.ToolTipRole:
            if item.reason:
                return plain_tooltip(f"{STATUS_TEXT[item.status]}: {item.reason}")
            return STATUS_TEXT[item.status]
        if column is Column.STATUS:
            text, background = self._brushes.get(item.status) or self._unknown_brushes
            if role == Qt.ItemDataRole.ForegroundRole:
                return text
            if role == Qt.ItemDataRole.BackgroundRole:
                return background
        if role == Qt.ItemDataRole.TextAlignmentRole and column is Column.ROW:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.AccessibleTextRole and column is Column.STATUS:
            return f"{STATUS_TEXT[item.status]}. {item.reason}".strip()
        return None

    def _outcome_data(self, outcome: tuple[str, str], column: Column, role: int) -> Any:
        name, reason = outcome
        label = OUTCOME_TEXT.get(name, (name.capitalize(), "", ""))[0]
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.AccessibleTextRole):
            return label if column is Column.STATUS else reason
        if role == Qt.ItemDataRole.ToolTipRole:
            return plain_tooltip(f"{label}: {reason}" if reason else label)
        if role == PreflightRole.SORT:  # after every pre-flight verdict, in outcome order
            if column is Column.STATUS:
                order = list(OUTCOME_TEXT)
                return len(RowStatus) + (order.index(name) if name in order else len(order))
            return reason.casefold()
        if column is Column.STATUS and name in self._outcome_brushes:
            text, background = self._outcome_brushes[name]
            if role == Qt.ItemDataRole.ForegroundRole:
                return text
            if role == Qt.ItemDataRole.BackgroundRole:
                return background
        return None

    @staticmethod
    def _display(item: PreflightRow, column: Column) -> str | int:
        if column is Column.ROW:
            return item.row
        if column is Column.EMAIL:
            return item.email
        if column is Column.NAME:
            return item.name
        if column is Column.STATUS:
            return STATUS_TEXT[item.status]
        return item.reason


class ProblemFilter(QSortFilterProxyModel):
    """Shows every row, or only the rows that will not be sent; sorts by PreflightRole.SORT."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._problems_only = False
        self.setSortRole(PreflightRole.SORT)

    @property
    def problems_only(self) -> bool:
        return self._problems_only

    def set_problems_only(self, on: bool) -> None:
        if on == self._problems_only:
            return
        if hasattr(self, "endFilterChange"):  # Qt 6.10+; invalidateFilter() is going away
            self.beginFilterChange()
            self._problems_only = on
            self.endFilterChange(QSortFilterProxyModel.Direction.Rows)
        else:  # pragma: no cover - older Qt
            self._problems_only = on
            self.invalidateFilter()

    def filterAcceptsRow(self, source_row: int, source_parent: Index) -> bool:
        if not self._problems_only:
            return True
        model = self.sourceModel()
        status = model.data(model.index(source_row, 0, source_parent), PreflightRole.STATUS)
        return bool(status != RowStatus.READY.value)
