"""The audit log window: who did what, when, with the values before and after.

Filters (person, action, object, dates, free text) go to the services' keyset-paged query, so
the window is as quick on a million rows as on a hundred; the table loads older pages as it
is scrolled. The selected entry's before/after values are shown side by side, changed fields
first. "Export CSV…" writes every matching row (not only the loaded ones) in the background,
with progress and Cancel. ADMIN_TENANT reads the whole log (the services decide); the
history of one invitation, member or setting opens here filtered to that object.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from PySide6.QtCore import QDate, Qt, QTimer, Signal
from PySide6.QtGui import QBrush, QColor, QFont, QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDateEdit,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLineEdit,
    QProgressDialog,
    QPushButton,
    QSplitter,
    QTableView,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from invite_desk.services.admin.audit_log import (
    AuditChoices,
    AuditQuery,
    AuditRow,
    audit_choices,
    export_audit_csv,
)
from invite_desk.services.operator import Operator
from invite_desk.services.roles import Role
from invite_desk.ui.admin.audit_model import (
    ROW_ROLE,
    AuditColumn,
    AuditTableModel,
    PageFetcher,
    _fetch,
    object_text,
    value_text,
)
from invite_desk.ui.hub import Changes, OperationsHub
from invite_desk.ui.invitations.table_model import format_full
from invite_desk.ui.theme import set_variant
from invite_desk.ui.widgets import PlainLabel, plain_tooltip, warn

ANY_DATE = QDate(2000, 1, 1)
COLUMN_WIDTHS = {AuditColumn.WHEN: 140, AuditColumn.WHO: 130, AuditColumn.ACTION: 150,
                 AuditColumn.OBJECT: 130}
CHANGED_BACKGROUND = QColor("#FFF4D6")


class ExportCancelled(Exception):
    """The person pressed Cancel while the CSV was being written."""


class _CountingWriter:
    """Wraps the CSV file: stops the export at once when cancelled; `rows` is the count the
    export reports as it goes (a value may span lines, so lines are not counted)."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self.rows = 0
        self.cancelled = False  # set on the GUI thread, read by the export between writes

    def write(self, text: str) -> int:
        if self.cancelled:
            raise ExportCancelled()
        return self._out.write(text)

    def cancel(self) -> None:
        self.cancelled = True

    def progressed(self, rows: int) -> None:
        self.rows = rows


def local_start(day: date) -> datetime:
    """Local midnight at the start of `day`, as an aware datetime."""
    return datetime(day.year, day.month, day.day).astimezone()


class AuditLogWindow(QWidget):
    """The audit log. `show_history(entity_type, entity_id, title)` filters to one object."""

    export_finished = Signal(int)  # rows written
    export_failed = Signal(str)

    def __init__(self, hub: OperationsHub, operator: Operator, parent: QWidget | None = None,
                 *, uow: Any, fetcher: PageFetcher = _fetch) -> None:
        super().__init__(parent)
        self.setObjectName("AuditLogWindow")
        self.setWindowTitle("Audit log")
        self.hub = hub
        self._operator = operator
        self._uow = uow
        self._stale = False
        self._entity: tuple[str, uuid.UUID | None] | None = None
        self.export_writer: _CountingWriter | None = None
        self.last_export: Path | None = None
        self.model = AuditTableModel(hub, operator, uow, fetcher=fetcher, parent=self)
        self._build()
        self._connect()
        self.allowed = operator.role >= Role.ADMIN_TENANT
        if self.allowed:
            self.model.opened.connect(self._first_opened)
            self.apply_filters()  # the first screen first; the pickers' values after it
        else:
            self.summary_label.setText("The audit log is for organization admins.")

    # -- building -------------------------------------------------------------------------
    def _build(self) -> None:
        title = PlainLabel("Audit log")
        set_variant(title, "title")
        self.summary_label = PlainLabel("")
        set_variant(self.summary_label, "muted")
        self.search_edit = QLineEdit()
        self.search_edit.setPlaceholderText("Search actions, objects and values")
        self.search_edit.setClearButtonEnabled(True)
        self.search_edit.setAccessibleName("Search the audit log")
        self.person_combo = QComboBox()
        self.person_combo.setAccessibleName("Person")
        self.person_combo.addItem("Anyone", None)
        self.person_combo.setMinimumContentsLength(12)
        self.action_combo = QComboBox()
        self.action_combo.setAccessibleName("Action")
        self.action_combo.addItem("Any action", "")
        self.action_combo.setMinimumContentsLength(14)
        self.object_combo = QComboBox()
        self.object_combo.setAccessibleName("Object type")
        self.object_combo.addItem("Any object", "")
        self.from_edit = self._date_edit("From")
        self.until_edit = self._date_edit("Until")
        self.export_button = QPushButton("Export CSV…")
        self.export_button.setToolTip("Write every entry that matches the filters to a CSV file")

        search_row = QHBoxLayout()
        search_row.setSpacing(6)
        search_row.addWidget(self.search_edit, 1)
        search_row.addWidget(PlainLabel("From"))
        search_row.addWidget(self.from_edit)
        search_row.addWidget(PlainLabel("Until"))
        search_row.addWidget(self.until_edit)
        filters = QHBoxLayout()
        filters.setSpacing(6)
        filters.addWidget(self.person_combo, 1)
        filters.addWidget(self.action_combo, 1)
        filters.addWidget(self.object_combo, 1)

        self.entity_label = PlainLabel("")
        self.entity_label.setObjectName("AuditEntityFilter")
        self.entity_label.setWordWrap(True)
        self.clear_entity_button = QPushButton("Show every object")
        entity_row = QHBoxLayout()
        entity_row.addWidget(self.entity_label, 1)
        entity_row.addWidget(self.clear_entity_button)
        self.entity_bar = QWidget()
        self.entity_bar.setLayout(entity_row)
        entity_row.setContentsMargins(0, 0, 0, 0)
        self.entity_bar.hide()

        self.table = QTableView()
        self.table.setObjectName("AuditTable")
        self.table.setAccessibleName("Audit log entries")
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        vertical = self.table.verticalHeader()
        vertical.hide()
        vertical.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        vertical.setDefaultSectionSize(26)
        horizontal = self.table.horizontalHeader()
        horizontal.setHighlightSections(False)
        horizontal.setStretchLastSection(True)
        for column, width in COLUMN_WIDTHS.items():
            self.table.setColumnWidth(column, width)

        self.detail_title = PlainLabel("Select an entry to see what it changed.")
        self.detail_title.setObjectName("AuditDetailTitle")
        self.detail_title.setWordWrap(True)
        self.detail_meta = PlainLabel("")
        self.detail_meta.setWordWrap(True)
        set_variant(self.detail_meta, "small")
        self.diff = QTableWidget(0, 3)
        self.diff.setObjectName("AuditDiff")
        self.diff.setAccessibleName("Values before and after")
        self.diff.setHorizontalHeaderLabels(["Field", "Before", "After"])
        self.diff.verticalHeader().hide()
        self.diff.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.diff.setWordWrap(True)
        diff_header = self.diff.horizontalHeader()
        diff_header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        diff_header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        diff_header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        detail = QWidget()
        detail_layout = QVBoxLayout(detail)
        detail_layout.setContentsMargins(8, 0, 0, 0)
        detail_layout.addWidget(self.detail_title)
        detail_layout.addWidget(self.detail_meta)
        detail_layout.addWidget(self.diff, 1)

        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(self.table)
        self.splitter.addWidget(detail)
        self.splitter.setChildrenCollapsible(False)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)
        self.splitter.setSizes([680, 420])

        header = QHBoxLayout()
        header.addWidget(title)
        header.addStretch(1)
        header.addWidget(self.summary_label, 0, Qt.AlignmentFlag.AlignBottom)
        header.addWidget(self.export_button)
        root = QVBoxLayout(self)
        root.setContentsMargins(20, 16, 20, 16)
        root.setSpacing(8)
        root.addLayout(header)
        root.addLayout(search_row)
        root.addLayout(filters)
        root.addWidget(self.entity_bar)
        root.addWidget(self.splitter, 1)

        self._search_timer = QTimer(self)
        self._search_timer.setSingleShot(True)
        self._search_timer.setInterval(300)

    @staticmethod
    def _date_edit(name: str) -> QDateEdit:
        edit = QDateEdit()
        edit.setAccessibleName(name)
        edit.setCalendarPopup(True)
        edit.setDisplayFormat("dd MMM yyyy")
        edit.setMinimumDate(ANY_DATE)
        edit.setSpecialValueText("Any date")
        edit.setDate(ANY_DATE)
        return edit

    def _connect(self) -> None:
        self.search_edit.textChanged.connect(lambda _t: self._search_timer.start())
        self.search_edit.returnPressed.connect(self.apply_filters)
        self._search_timer.timeout.connect(self.apply_filters)
        for combo in (self.person_combo, self.action_combo, self.object_combo):
            combo.currentIndexChanged.connect(lambda _i: self.apply_filters())
        for edit in (self.from_edit, self.until_edit):
            edit.dateChanged.connect(lambda _d: self.apply_filters())
        self.clear_entity_button.clicked.connect(self.clear_entity)
        self.export_button.clicked.connect(self.export_csv)
        self.model.opening.connect(lambda: self.summary_label.setText("Loading…"))
        self.model.opened.connect(self._counted)
        self.model.grew.connect(self._counted)
        self.model.failed.connect(self._failed)
        self.model.modelReset.connect(lambda: self.show_entry(None))
        self.table.selectionModel().currentRowChanged.connect(
            lambda current, _previous: self.show_entry(
                current.data(ROW_ROLE) if current.isValid() else None))
        self.hub.changed.connect(self._hub_changed)
        self.table.verticalScrollBar().valueChanged.connect(self._scrolled)

    # -- filters --------------------------------------------------------------------------
    def _first_opened(self, _rows: int) -> None:
        self.model.opened.disconnect(self._first_opened)
        self._load_choices()

    def _load_choices(self) -> None:
        uow, operator = self._uow, self._operator
        self.hub.query(self, lambda: audit_choices(uow, operator), self._fill_choices,
                       lambda error: self._failed(str(error)), key="choices")

    def _fill_choices(self, choices: AuditChoices) -> None:
        def fill(combo: QComboBox, items: Sequence[tuple[str, object]]) -> None:
            current = combo.currentData()
            combo.blockSignals(True)
            while combo.count() > 1:
                combo.removeItem(1)
            for text, value in items:
                combo.addItem(text, value)
            found = combo.findData(current)
            combo.setCurrentIndex(max(found, 0))
            combo.blockSignals(False)

        fill(self.person_combo, [(name, str(member_id)) for member_id, name in choices.actors])
        groups = sorted({action.split(".")[0] + "." for action in choices.actions
                         if "." in action})
        fill(self.action_combo, [(f"{group[:-1]}: any", group) for group in groups]
             + [(action, action) for action in choices.actions])
        fill(self.object_combo, [(kind.replace("_", " "), kind)
                                 for kind in choices.entity_types])

    def current_query(self) -> AuditQuery:
        person = self.person_combo.currentData()
        since = until = None
        if self.from_edit.date() != ANY_DATE:
            since = local_start(self.from_edit.date().toPython())  # type: ignore[arg-type]
        if self.until_edit.date() != ANY_DATE:
            day: date = self.until_edit.date().toPython()  # type: ignore[assignment]
            until = local_start(day + timedelta(days=1))
        entity_type = self.object_combo.currentData() or ""
        entity_id = None
        if self._entity is not None:
            entity_type, entity_id = self._entity
        return AuditQuery(actor_id=uuid.UUID(person) if person else None,
                          action=self.action_combo.currentData() or "",
                          entity_type=entity_type, entity_id=entity_id, since=since,
                          until=until, text=self.search_edit.text().strip())

    def apply_filters(self) -> None:
        self._search_timer.stop()
        if not self.allowed:
            return
        query = self.current_query()
        if query != self.model.query or not self.model.has_opened:
            self.model.set_query(query)

    def show_history(self, entity_type: str, entity_id: uuid.UUID | None, title: str) -> None:
        """Only the entries about one object (an invitation, a member, the settings)."""
        self._entity = (entity_type, entity_id)
        self.entity_label.setText(f"History of {title}")
        self.entity_bar.show()
        self.object_combo.setEnabled(False)
        self.apply_filters()

    def clear_entity(self) -> None:
        self._entity = None
        self.entity_bar.hide()
        self.object_combo.setEnabled(True)
        self.apply_filters()

    def set_search(self, text: str) -> None:
        self.search_edit.setText(text)
        self.apply_filters()

    # -- following changes ----------------------------------------------------------------
    def _hub_changed(self, _changes: Changes) -> None:
        """Every change writes an audit row: reload the first page (now, or when shown)."""
        if not self.allowed:
            return
        if not self.isVisible():
            self._stale = True
        elif self.table.verticalScrollBar().value() > 0:
            # Reading older entries: do not pull the rows away; refresh at the top.
            self._stale = True
            self.summary_label.setText("New entries were recorded: scroll to the top to "
                                       "see them.")
        else:
            self.refresh()

    def _scrolled(self, value: int) -> None:
        if value == 0 and self._stale and self.isVisible():
            self._stale = False
            self.refresh()

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802
        super().showEvent(event)
        if self._stale:
            self._stale = False
            self.refresh()

    def refresh(self) -> None:
        self.model.refresh()
        self._load_choices()

    def _counted(self, rows: int) -> None:
        more = "" if self.model.complete else " (scroll for older)"
        self.summary_label.setText(
            f"{rows:,} entr{'y' if rows == 1 else 'ies'} shown{more}")

    def _failed(self, message: str) -> None:
        self.summary_label.setText(message)

    # -- one entry ------------------------------------------------------------------------
    def visible_rows(self) -> list[AuditRow]:
        return [row for row in (self.model.row_at(i) for i in range(self.model.rowCount()))
                if row is not None]

    def select_row(self, row: int) -> None:
        self.table.selectRow(row)

    def show_entry(self, row: AuditRow | None) -> None:
        self.diff.setRowCount(0)
        if row is None:
            self.detail_title.setText("Select an entry to see what it changed.")
            self.detail_meta.setText("")
            return
        self.detail_title.setText(f"{row.action} · {object_text(row)}")
        self.detail_meta.setText(f"{format_full(row.at)} · by {row.actor}"
                                 + (f" · object id {row.entity_id}" if row.entity_id else ""))
        changed = set(row.changed_fields)
        keys = sorted(set(row.before) | set(row.after), key=lambda k: (k not in changed, k))
        bold = QFont()
        bold.setBold(True)
        self.diff.setRowCount(len(keys))
        for number, key in enumerate(keys):
            cells = (key, value_text(row.before.get(key), row) if key in row.before else "",
                     value_text(row.after.get(key), row) if key in row.after else "")
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)  # QTableWidgetItem text is always plain
                item.setToolTip(plain_tooltip(text))
                if key in changed:
                    item.setBackground(QBrush(CHANGED_BACKGROUND))
                    if column == 0:
                        item.setFont(bold)
                self.diff.setItem(number, column, item)
        self.diff.resizeRowsToContents()

    def diff_rows(self) -> list[tuple[str, str, str]]:
        """The diff view as text (tests)."""
        found = []
        for row in range(self.diff.rowCount()):
            cells = [self.diff.item(row, column) for column in range(3)]
            found.append(tuple(cell.text() if cell else "" for cell in cells))
        return found  # type: ignore[return-value]

    # -- export ---------------------------------------------------------------------------
    def export_csv(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export the audit log", "audit-log.csv",
                                              "CSV files (*.csv)")
        if path:
            self.export_to(Path(path))

    def export_to(self, path: Path) -> bool:
        """Write every row matching the filters to `path` in the background, with a progress
        dialog (rows written; Cancel stops and removes the partial file)."""
        if self.export_writer is not None or not self.allowed:
            return False
        uow, operator, query = self._uow, self._operator, self.current_query()
        handle = path.open("w", encoding="utf-8", newline="")
        writer = _CountingWriter(handle)
        self.export_writer = writer
        progress = QProgressDialog("Writing the audit log…", "Cancel", 0, 0, self)
        progress.setWindowTitle("Export CSV")
        progress.setMinimumDuration(400)
        progress.canceled.connect(writer.cancel)
        timer = QTimer(progress)
        timer.setInterval(150)
        timer.timeout.connect(lambda: progress.setLabelText(f"{writer.rows:,} rows written…"))
        timer.start()
        self.export_button.setEnabled(False)

        def work() -> int:
            try:
                return export_audit_csv(uow, operator, query, writer,  # type: ignore[arg-type]
                                        on_progress=writer.progressed)
            finally:
                handle.close()

        def finish() -> None:
            timer.stop()
            progress.reset()
            progress.deleteLater()
            self.export_writer = None
            self.export_button.setEnabled(True)

        def done(rows: int) -> None:
            finish()
            self.last_export = path
            self.summary_label.setText(f"Exported {rows:,} entries to {path.name}")
            self.export_finished.emit(rows)

        def failed(error: BaseException) -> None:
            finish()
            path.unlink(missing_ok=True)
            if isinstance(error, ExportCancelled):
                self.summary_label.setText("Export cancelled; no file was kept.")
                self.export_failed.emit("cancelled")
                return
            self.export_failed.emit(str(error))
            warn(self, "Export failed", f"The audit log could not be exported: {error}")

        self.hub.query(self, work, done, failed, key=None)
        return True
