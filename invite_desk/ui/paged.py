"""A table model over a database view that is never loaded whole (in the manner of Anki's
browser table): it knows the row count, keeps pages of rows it has fetched, and fetches the
pages that come into sight in the background.

- `data()` never queries: it answers from the page cache, or shows a placeholder and asks
  for the page; the page arrives from a worker thread and the rows are repainted.
- Opening a view (a new query, a sort) reads the count and the first page together, off
  the GUI thread; the rows appear when both are in.
- `refresh()` marks every cached page stale: stale rows stay on screen (no flicker, the
  selection stays) and are fetched again as they are painted; a changed count adds or
  removes rows at the end.
- Only a bounded number of pages stay cached (least recently used go first), so scrolling
  through a million rows keeps memory flat.

Every read goes through the app's operations hub (`hub.query`), so it runs off the GUI
thread and counts in the hub's in-flight work. Subclasses say how to read (`source`) and how
to show a row (`display`). Every page's table (Invitations, Members, ...) uses this model.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

import shiboken6
from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
    QTimer,
    Signal,
)

from invite_desk.ui.tasks import error_message

if TYPE_CHECKING:
    from invite_desk.ui.hub import OperationsHub

R = TypeVar("R")
Q = TypeVar("Q")
R_co = TypeVar("R_co", covariant=True)
Q_contra = TypeVar("Q_contra", contravariant=True)
Index = QModelIndex | QPersistentModelIndex

LOADING_TEXT = "Loading…"


class PageSource(Protocol[Q_contra, R_co]):
    """Reads a view; called on worker threads, so it must only use thread-safe services."""

    def open(self, query: Q_contra) -> tuple[int, Sequence[R_co]]:
        """The view's row count and its first page."""
        ...

    def page(self, query: Q_contra, offset: int, limit: int, total: int) -> Sequence[R_co]:
        """Rows [offset, offset + limit)."""
        ...


class PagedTableModel(QAbstractTableModel, Generic[Q, R]):
    opening = Signal()  # a view started loading (a new query, a sort, a refresh)
    opened = Signal(int)  # the view's count and first page are in (the row count)
    failed = Signal(str)  # reading failed; the message says why
    page_arrived = Signal(int)  # the offset of a page that was just stored

    def __init__(
        self,
        source: PageSource[Q, R],
        query: Q,
        *,
        hub: OperationsHub,
        page_size: int = 200,
        max_pages: int = 60,
        parent: QObject | None = None,
    ) -> None:
        """`source.open` may return fewer rows than a page (enough to fill the screen
        quickly); the rest of that page is fetched when it is looked at."""
        super().__init__(parent)
        self._source = source
        self._query = query
        self._hub = hub
        self.page_size = page_size
        self.max_pages = max_pages
        self._total = 0
        self._pages: OrderedDict[int, tuple[R, ...]] = OrderedDict()  # page number -> rows
        self._stale: set[int] = set()
        self._in_flight: set[int] = set()
        self._wanted: OrderedDict[int, None] = OrderedDict()  # most recently wanted last
        self._generation = 0
        self._opening = False
        self._has_opened = False
        self._dispatch_timer = QTimer(self)
        self._dispatch_timer.setSingleShot(True)
        self._dispatch_timer.setInterval(0)
        self._dispatch_timer.timeout.connect(self._dispatch)

    # -- for subclasses -------------------------------------------------------------------
    def display(self, row: R, column: int, role: int) -> Any:
        """What cell (row, column) shows for `role` (DisplayRole, ToolTipRole, ...)."""
        raise NotImplementedError

    def headers(self) -> Sequence[str]:
        raise NotImplementedError

    def with_sort(self, query: Q, column: int, descending: bool) -> Q:
        """`query` sorted on `column`; the view calls sort() when a header is clicked."""
        raise NotImplementedError

    def sort_of(self, query: Q) -> tuple[int, bool]:
        """The (column, descending) `query` is sorted by."""
        raise NotImplementedError

    # -- the view's state -----------------------------------------------------------------
    @property
    def query(self) -> Q:
        return self._query

    @property
    def total(self) -> int:
        return self._total

    @property
    def is_opening(self) -> bool:
        return self._opening

    @property
    def has_opened(self) -> bool:
        return self._has_opened

    def cached_rows(self) -> int:
        return sum(len(rows) for rows in self._pages.values())

    def row_at(self, row: int) -> R | None:
        """The row if its page is cached (possibly stale), else None (and the page is asked for)."""
        if not 0 <= row < self._total:
            return None
        number = row // self.page_size
        rows = self._pages.get(number)
        if self._needs(number):
            self._want(number)
        if rows is None:
            return None
        self._pages.move_to_end(number)
        offset = row - number * self.page_size
        return rows[offset] if offset < len(rows) else None

    def _needs(self, number: int) -> bool:
        """Whether page `number` should be read: missing, stale, or the short first page of
        an opening."""
        rows = self._pages.get(number)
        return rows is None or number in self._stale or (
            len(rows) < self.page_size and number * self.page_size + len(rows) < self._total)

    def loaded_rows(self) -> list[tuple[int, R]]:
        """(row number, row) of every cached row, in row order."""
        found: list[tuple[int, R]] = []
        for number in sorted(self._pages):
            base = number * self.page_size
            found.extend((base + i, row) for i, row in enumerate(self._pages[number])
                         if base + i < self._total)
        return found

    # -- opening and refreshing -----------------------------------------------------------
    def set_query(self, query: Q) -> None:
        """Show another view: its count and first page load in the background."""
        self._query = query
        self._open(keep_rows=False)

    def refresh(self) -> None:
        """Read the view again: cached rows stay on screen, marked stale, until fetched anew."""
        self._open(keep_rows=True)

    def _open(self, *, keep_rows: bool) -> None:
        self._generation += 1
        generation = self._generation
        self._opening = True
        self._wanted.clear()
        self._in_flight.clear()
        self.opening.emit()
        source, query = self._source, self._query

        def work() -> tuple[int, Sequence[R]]:
            return source.open(query)

        def done(result: tuple[int, Sequence[R]]) -> None:
            if generation == self._generation:
                self._opened(result[0], tuple(result[1]), keep_rows=keep_rows)

        def failed(error: BaseException) -> None:
            if generation == self._generation:
                self._opening = False
                self.failed.emit(error_message(error))

        self._run(work, done, failed)

    def _opened(self, total: int, first: tuple[R, ...], *, keep_rows: bool) -> None:
        self._opening = False
        self._has_opened = True
        if not keep_rows:
            self.beginResetModel()
            self._total = total
            self._pages.clear()
            self._stale.clear()
            self._pages[0] = first
            self.endResetModel()
        else:
            old = self._total
            if total > old:
                self.beginInsertRows(QModelIndex(), old, total - 1)
                self._total = total
                self.endInsertRows()
            elif total < old:
                self.beginRemoveRows(QModelIndex(), total, old - 1)
                self._total = total
                self.endRemoveRows()
            self._stale = set(self._pages) - {0}
            self._pages[0] = first
            self._pages.move_to_end(0)
            self._evict()
            if self._total and self.columnCount():
                self.dataChanged.emit(self.index(0, 0),
                                      self.index(self._total - 1, self.columnCount() - 1))
        self.opened.emit(self._total)

    # -- fetching pages -------------------------------------------------------------------
    def _want(self, number: int) -> None:
        if number in self._in_flight or self._opening:
            return
        self._wanted.pop(number, None)
        self._wanted[number] = None
        if not self._dispatch_timer.isActive():
            self._dispatch_timer.start()

    def _dispatch(self) -> None:
        """Fetch the most recently wanted pages (what is on screen now); a page scrolled past
        before its turn is dropped, and asked for again if it is painted again."""
        if self._opening or not shiboken6.isValid(self):
            return
        while self._wanted and len(self._in_flight) < 2:
            number, _ = self._wanted.popitem(last=True)
            if not self._needs(number):
                continue
            self._fetch(number)
        if len(self._wanted) > 4:
            for number in list(self._wanted)[:-4]:
                del self._wanted[number]

    def _fetch(self, number: int) -> None:
        generation = self._generation
        self._in_flight.add(number)
        source, query, total = self._source, self._query, self._total
        offset, limit = number * self.page_size, self.page_size

        def work() -> Sequence[R]:
            return source.page(query, offset, limit, total)

        def done(rows: Sequence[R]) -> None:
            self._in_flight.discard(number)
            if generation == self._generation:
                self._store(number, tuple(rows))
            self._dispatch()

        def failed(error: BaseException) -> None:
            self._in_flight.discard(number)
            if generation == self._generation:
                self.failed.emit(error_message(error))

        self._run(work, done, failed)

    def _store(self, number: int, rows: tuple[R, ...]) -> None:
        self._pages[number] = rows
        self._pages.move_to_end(number)
        self._stale.discard(number)
        self._evict()
        first = number * self.page_size
        last = min(first + self.page_size, self._total) - 1
        if last >= first and self.columnCount():
            self.dataChanged.emit(self.index(first, 0), self.index(last, self.columnCount() - 1))
        self.page_arrived.emit(first)

    def _evict(self) -> None:
        while len(self._pages) > self.max_pages:
            number, _ = self._pages.popitem(last=False)
            self._stale.discard(number)

    def _run(self, work: Callable[[], Any], done: Callable[[Any], None],
             failed: Callable[[BaseException], None]) -> None:
        # The model keeps its own generations (a page of an older view is dropped), so every
        # answer is delivered: key=None.
        self._hub.query(self, work, done, failed, key=None)

    # -- Qt model interface ---------------------------------------------------------------
    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else self._total

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(self.headers())

    def headerData(self, section: int, orientation: Qt.Orientation,  # noqa: N802
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation is Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            headers = self.headers()
            if 0 <= section < len(headers):
                return headers[section]
        return None

    # Roles `display` answers; the view asks for a dozen more per cell and those are answered
    # without looking at the row at all (painting stays cheap).
    answered_roles: frozenset[int] = frozenset({
        Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole, Qt.ItemDataRole.ForegroundRole,
    })

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if role not in self.answered_roles and role < Qt.ItemDataRole.UserRole:
            return None
        if not index.isValid() or index.row() >= self._total:
            return None
        row = self.row_at(index.row())
        if row is None:
            if role == Qt.ItemDataRole.DisplayRole and index.column() == 0:
                return LOADING_TEXT
            return None
        return self.display(row, index.column(), role)

    def flags(self, index: Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        if not 0 <= column < self.columnCount():
            return
        descending = order == Qt.SortOrder.DescendingOrder
        if self.sort_of(self._query) == (column, descending):
            return  # (a view turning sorting on says what the query already says)
        self.set_query(self.with_sort(self._query, column, descending))
