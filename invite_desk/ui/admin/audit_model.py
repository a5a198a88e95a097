"""The audit log table: newest first, read a page at a time through the hub.

The services page the log by keyset on (at, id), so every page costs what the first one costs,
however deep: the model shows the pages read so far and asks for the next one when the view
scrolls near the end (Qt's canFetchMore/fetchMore). Going far back in time is a date filter
("Until"), not a scrollbar dragged across a million rows.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from enum import IntEnum
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
    Signal,
)

from invite_desk.services.admin.audit_log import (
    AuditCursor,
    AuditPage,
    AuditQuery,
    AuditRow,
    fetch_audit_page,
)
from invite_desk.services.operator import Operator
from invite_desk.ui.hub import OperationsHub
from invite_desk.ui.invitations.table_model import format_when
from invite_desk.ui.widgets import plain_tooltip

Index = QModelIndex | QPersistentModelIndex
# Rows per read: a few screenfuls. Each page costs the services about as much per row as it
# holds (names, before/after values), so a smaller page paints the first screen sooner.
PAGE_SIZE = 100
FIRST_PAGE = 40  # about one screen: the first read is the one a person waits for


class AuditColumn(IntEnum):
    WHEN = 0
    WHO = 1
    ACTION = 2
    OBJECT = 3
    CHANGES = 4


HEADERS = {AuditColumn.WHEN: "When", AuditColumn.WHO: "Who", AuditColumn.ACTION: "Action",
           AuditColumn.OBJECT: "Object", AuditColumn.CHANGES: "Changed"}

ROW_ROLE = Qt.ItemDataRole.UserRole + 1


def short_id(value: object) -> str:
    text = str(value) if value is not None else ""
    return text[:8]


def object_text(row: AuditRow) -> str:
    """The object as a person reads it: "member Uma Ulm", else its kind and a short id."""
    kind = row.entity_type.replace("_", " ")
    return f"{kind} {row.name_of(row.entity_id) or short_id(row.entity_id)}".strip()


def changes_text(row: AuditRow) -> str:
    fields = row.changed_fields
    if not fields:
        return ""
    shown = ", ".join(fields[:4])
    return shown + (f" and {len(fields) - 4} more" if len(fields) > 4 else "")


def value_text(value: Any, row: AuditRow | None = None) -> str:
    """A before/after value as a person reads it (plain text; never markup): the name of
    the member, unit or event an id refers to when the row knows it."""
    if value is None:
        return "—"
    name = row.name_of(value) if row is not None and isinstance(value, str) else None
    if name is not None:
        return name
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


# (uow, operator, query, after, limit) -> AuditPage; tests and the bench may pass another.
PageFetcher = Callable[[Any, Operator, AuditQuery, AuditCursor | None, int], AuditPage]


def _fetch(uow: Any, operator: Operator, query: AuditQuery, after: AuditCursor | None,
           limit: int) -> AuditPage:
    return fetch_audit_page(uow, operator, query, after, limit=limit)


class AuditTableModel(QAbstractTableModel):
    opening = Signal()
    opened = Signal(int)  # rows shown after the first page
    grew = Signal(int)  # rows shown after another page
    failed = Signal(str)

    def __init__(self, hub: OperationsHub, operator: Operator, uow: Any, *,
                 page_size: int = PAGE_SIZE, fetcher: PageFetcher = _fetch,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._hub = hub
        self._operator = operator
        self._uow = uow
        self._fetcher = fetcher
        self.page_size = page_size
        self._query = AuditQuery()
        self._rows: list[AuditRow] = []
        self._next: AuditCursor | None = None
        self._loading = False
        self._has_opened = False

    # -- state ----------------------------------------------------------------------------
    @property
    def query(self) -> AuditQuery:
        return self._query

    @property
    def has_opened(self) -> bool:
        return self._has_opened

    @property
    def loading(self) -> bool:
        return self._loading

    @property
    def complete(self) -> bool:
        """Every matching row is loaded (no older page)."""
        return self._has_opened and self._next is None

    def row_at(self, row: int) -> AuditRow | None:
        return self._rows[row] if 0 <= row < len(self._rows) else None

    # -- reading --------------------------------------------------------------------------
    def set_query(self, query: AuditQuery) -> None:
        self._query = query
        self.refresh()

    def refresh(self) -> None:
        """Read the first page again (a new filter, or new rows were written)."""
        self._loading = True
        self.opening.emit()
        uow, operator, query, fetch = self._uow, self._operator, self._query, self._fetcher
        size = min(self.page_size, FIRST_PAGE)
        self._hub.query(self, lambda: fetch(uow, operator, query, None, size), self._opened,
                        self._failed, key="page")

    def _opened(self, page: AuditPage) -> None:
        self._loading = False
        self._has_opened = True
        self.beginResetModel()
        self._rows = list(page.rows)
        self._next = page.next_cursor
        self.endResetModel()
        self.opened.emit(len(self._rows))

    def canFetchMore(self, parent: Index = QModelIndex()) -> bool:  # noqa: B008, N802
        return not parent.isValid() and self._next is not None and not self._loading

    def fetchMore(self, parent: Index = QModelIndex()) -> None:  # noqa: B008, N802
        if not self.canFetchMore(parent):
            return
        self._loading = True
        after = self._next
        uow, operator, query, fetch, size = (self._uow, self._operator, self._query,
                                             self._fetcher, self.page_size)
        self._hub.query(self, lambda: fetch(uow, operator, query, after, size), self._more,
                        self._failed, key="page")

    def _more(self, page: AuditPage) -> None:
        self._loading = False
        if not page.rows:
            self._next = None
            return
        first = len(self._rows)
        self.beginInsertRows(QModelIndex(), first, first + len(page.rows) - 1)
        self._rows.extend(page.rows)
        self._next = page.next_cursor
        self.endInsertRows()
        self.grew.emit(len(self._rows))

    def _failed(self, error: BaseException) -> None:
        self._loading = False
        self.failed.emit(str(error) or type(error).__name__)

    # -- Qt model interface ---------------------------------------------------------------
    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(AuditColumn)

    def headerData(self, section: int, orientation: Qt.Orientation,  # noqa: N802
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation is Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return HEADERS.get(AuditColumn(section)) if 0 <= section < len(AuditColumn) else None
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        row = self.row_at(index.row())
        if row is None:
            return None
        if role == ROW_ROLE:
            return row
        column = AuditColumn(index.column())
        if role == Qt.ItemDataRole.DisplayRole:
            return self._display(row, column)
        if role == Qt.ItemDataRole.ToolTipRole:
            if column is AuditColumn.OBJECT:
                return plain_tooltip(f"{row.entity_type} {row.entity_id or ''}".strip())
            if column is AuditColumn.WHEN:
                return row.at.isoformat()
            text = self._display(row, column)
            return plain_tooltip(text) if text else None
        return None

    @staticmethod
    def _display(row: AuditRow, column: AuditColumn) -> str:
        if column is AuditColumn.WHEN:
            return format_when(row.at)
        if column is AuditColumn.WHO:
            return row.actor
        if column is AuditColumn.ACTION:
            return row.action
        if column is AuditColumn.OBJECT:
            return object_text(row)
        return changes_text(row)

    def flags(self, index: Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
