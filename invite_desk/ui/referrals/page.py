"""The Referrals page: leaderboard, trends, conversion, quality and flags for review.

A view of the operations hub: every figure is read by a function handed to `hub.query` (the
services aggregate in SQL, in the operator's scope), and the page follows `hub.changed` for
referrals, members, invitations, applications and settings: at once when shown, else when
shown again. Flag decisions go through `hub.mutate` after a confirmation.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TypeVar

from PySide6.QtCore import QDate, QSortFilterProxyModel, Qt, Signal
from PySide6.QtGui import QAction, QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDateEdit,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QMenu,
    QPushButton,
    QSizePolicy,
    QSplitter,
    QTableView,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from invite_desk.services import referral_program as rp
from invite_desk.services.operator import Operator
from invite_desk.services.organization import UnitInfo
from invite_desk.services.permissions import ScopeLevel, scope_of
from invite_desk.services.roles import Role
from invite_desk.ui import widgets
from invite_desk.ui.charts import (
    DAY,
    ChartData,
    ChartView,
    bar_series,
    line_series,
    timestamp,
)
from invite_desk.ui.hub import (
    APPLICATIONS,
    INVITATIONS,
    MEMBERS,
    REFERRALS,
    SETTINGS,
    Changes,
    OperationsHub,
)
from invite_desk.ui.referrals.banner import Banner
from invite_desk.ui.referrals.export import ReportSection, write_csv, write_pdf
from invite_desk.ui.referrals.source import ReferralSource
from invite_desk.ui.referrals.tables import (
    SORT_ROLE,
    Column,
    RetentionLine,
    RowsModel,
    conversion_columns,
    flag_columns,
    leaderboard_columns,
    percent,
    retention_columns,
    retention_lines,
    trend_columns,
)
from invite_desk.ui.theme import set_variant
from invite_desk.ui.widgets import PlainLabel

log = logging.getLogger(__name__)
T = TypeVar("T")
Clock = Callable[[], datetime]

ROW_HEIGHT = 26
CHART_TOP = 12  # referrers / groups shown in a category chart (the table has them all)
PAGE_SIZE = 100  # leaderboard ranks / conversion rows read and shown at a time
EXPORT_PAGE = 2_000  # rows read per step when a whole table is exported to CSV
CHANNEL_COLOURS = {rp.Channel.REFERRAL: "#0072B2", rp.Channel.PUBLIC: "#E69F00",
                   rp.Channel.EVENT_GUEST: "#009E73", rp.Channel.IMPORTED: "#8A919E"}
PERIOD_KINDS = (rp.PeriodKind.THIS_MONTH, rp.PeriodKind.THIS_QUARTER, rp.PeriodKind.THIS_YEAR,
                rp.PeriodKind.ALL_TIME, rp.PeriodKind.CUSTOM)
# The kinds of change that can move a referral figure.
WATCHED = (REFERRALS, MEMBERS, INVITATIONS, APPLICATIONS, SETTINGS)


def make_table(model: RowsModel[Any], name: str, *, stretch: int = 1, sort_column: int = 0,
               order: Qt.SortOrder = Qt.SortOrder.AscendingOrder,
               sortable: bool = True) -> QTableView:
    """A sortable, read-only table of `model`; column `stretch` takes the spare width."""
    proxy = QSortFilterProxyModel(model)
    proxy.setSourceModel(model)
    proxy.setSortRole(SORT_ROLE)
    table = QTableView()
    table.setObjectName(name)
    table.setAccessibleName(name)
    table.setModel(proxy)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setAlternatingRowColors(True)
    table.setWordWrap(False)
    horizontal = table.horizontalHeader()
    if sortable:
        horizontal.setSortIndicator(sort_column, order)  # before sorting is on: it sorts by it
        table.setSortingEnabled(True)
    vertical = table.verticalHeader()
    vertical.hide()
    vertical.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
    vertical.setDefaultSectionSize(ROW_HEIGHT)
    horizontal.setHighlightSections(False)
    horizontal.setStretchLastSection(False)
    metrics = horizontal.fontMetrics()
    for number, column in enumerate(model.columns):  # a title is never cut off
        table.setColumnWidth(number, max(column.width,
                                         metrics.horizontalAdvance(column.title) + 24))
    if 0 <= stretch < len(model.columns):
        horizontal.setSectionResizeMode(stretch, QHeaderView.ResizeMode.Stretch)
    return table


def set_widths(table: QTableView, columns: list[Column[Any]]) -> None:
    for number, column in enumerate(columns):
        if column.width:
            table.setColumnWidth(number, column.width)


def _rate(value: float | None) -> str:
    return percent(value)


class ReferralsPage(QWidget):
    """Referral reports for staff (HR and admins), within their scope.

    `refreshed` is emitted when every report of the last reload has answered."""

    refreshed = Signal()
    exported = Signal(object)  # the Path a background export (a whole paged table) wrote

    def __init__(self, hub: OperationsHub, operator: Operator, parent: QWidget | None = None,
                 *, source: ReferralSource, clock: Clock | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("ReferralsPage")
        self.setWindowTitle("Referrals")
        self.hub = hub
        self._operator = operator
        self._source = source
        self._clock = clock
        self._stale = False
        self._stale_facts = False  # what changed meanwhile needs a reconciliation first
        self._pending: set[str] = set()
        self._units_loaded = False
        self.is_admin = operator.role >= Role.ADMIN_LOCAL
        self.leaderboard: rp.Leaderboard | None = None
        self.trends: rp.Trends | None = None
        self.conversion: rp.Conversion | None = None
        self.retention: rp.Retention | None = None
        self.flags: list[rp.FlagRow] = []
        self.errors: dict[str, str] = {}  # view -> why it could not be read
        # The leaderboard and the conversion table are read one page at a time (an
        # organization can have tens of thousands of referrers).
        self.page_size = PAGE_SIZE
        self.offsets = {"leaderboard": 0, "conversion": 0}
        self._build()
        self._connect()
        self._load_units()
        # The first reading waits until the page is first shown (the main window builds
        # every page at start-up).
        self._stale = True
        self._stale_facts = True

    # ==================================================================== construction
    def _build(self) -> None:
        self.pagers: dict[str, tuple[QWidget, PlainLabel, QPushButton, QPushButton]] = {}
        title = PlainLabel("Referrals")
        set_variant(title, "title")
        level = scope_of(self._operator).level
        self.scope_label = PlainLabel(
            "Who brings people in, across the whole organization." if level is
            ScopeLevel.ORGANIZATION else
            f"Who brings people in to {self._operator.unit_name or 'your unit'}.")
        set_variant(self.scope_label, "muted")
        self.scope_label.setWordWrap(True)
        self.status_label = PlainLabel("")
        set_variant(self.status_label, "muted")
        # Never widens the page (a small window scrolls nothing sideways).
        self.status_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.status_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)

        self.period_combo = QComboBox()
        self.period_combo.setAccessibleName("Period")
        for kind in PERIOD_KINDS:
            self.period_combo.addItem(kind.label + ("…" if kind is rp.PeriodKind.CUSTOM else ""),
                                      kind.value)
        self.period_combo.setCurrentIndex(PERIOD_KINDS.index(rp.PeriodKind.THIS_YEAR))
        today = QDate.currentDate()
        self.start_edit = QDateEdit(QDate(today.year(), 1, 1))
        self.end_edit = QDateEdit(today)
        for edit, name in ((self.start_edit, "From"), (self.end_edit, "To")):
            edit.setCalendarPopup(True)
            edit.setDisplayFormat("d MMM yyyy")
            edit.setAccessibleName(f"{name} date")
            edit.setVisible(False)
        self.dash_label = PlainLabel("to")
        self.dash_label.setVisible(False)
        self.scope_combo = QComboBox()
        self.scope_combo.setAccessibleName("Scope")
        self.scope_combo.setMinimumContentsLength(12)
        if level is ScopeLevel.ORGANIZATION:
            self.scope_combo.addItem("Whole organization", None)
        else:
            self.scope_combo.addItem(self._operator.unit_name or "Your unit",
                                     str(self._operator.unit_id) if self._operator.unit_id
                                     else None)
            self.scope_combo.setEnabled(False)
            self.scope_combo.setToolTip("Your role sees your own unit.")

        self.export_button = QPushButton("Export")
        self.export_button.setToolTip("This table as CSV, a chart as PNG or SVG, or the whole "
                                      "report as PDF")
        self.export_menu = QMenu(self.export_button)
        self.export_button.setMenu(self.export_menu)
        self.csv_action = QAction("This table as CSV…", self)
        self.pdf_action = QAction("Whole report as PDF…", self)
        self.export_menu.aboutToShow.connect(self._fill_export_menu)
        self.reload_button = QPushButton("Reload")
        self.reload_button.setToolTip("Read the figures again")

        controls = QHBoxLayout()
        controls.setSpacing(8)
        controls.addWidget(PlainLabel("Period"))
        controls.addWidget(self.period_combo)
        controls.addWidget(self.start_edit)
        controls.addWidget(self.dash_label)
        controls.addWidget(self.end_edit)
        controls.addSpacing(12)
        controls.addWidget(PlainLabel("Scope"))
        controls.addWidget(self.scope_combo)
        controls.addWidget(self.status_label, 1)

        self.banner = Banner(self)

        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.tabs.addTab(self._build_leaderboard(), "Leaderboard")
        self.tabs.addTab(self._build_trends(), "Trends")
        self.tabs.addTab(self._build_conversion(), "Conversion")
        self.tabs.addTab(self._build_quality(), "Quality")
        self.flags_tab: QWidget | None = None
        if self.is_admin:
            self.flags_tab = self._build_flags()
            self.tabs.addTab(self.flags_tab, "Flags for review")

        header = QHBoxLayout()
        titles = QVBoxLayout()
        titles.setSpacing(0)
        titles.addWidget(title)
        titles.addWidget(self.scope_label)
        header.addLayout(titles, 1)
        header.addWidget(self.reload_button, 0, Qt.AlignmentFlag.AlignBottom)
        header.addWidget(self.export_button, 0, Qt.AlignmentFlag.AlignBottom)
        root = QVBoxLayout(self)
        root.setContentsMargins(20, 16, 20, 16)
        root.setSpacing(8)
        root.addLayout(header)
        root.addLayout(controls)
        root.addWidget(self.banner)
        root.addWidget(self.tabs, 1)

    def _pager(self, view: str) -> QWidget:
        """Previous / Next and where the shown rows are in the whole table."""
        box = QWidget()
        box.setObjectName(f"{view}-pager")
        layout = QHBoxLayout(box)
        layout.setContentsMargins(0, 0, 0, 0)
        previous, following = QPushButton("‹ Previous"), QPushButton("Next ›")
        previous.setAccessibleName(f"Previous {view} page")
        following.setAccessibleName(f"Next {view} page")
        label = PlainLabel("")
        set_variant(label, "muted")
        layout.addWidget(label, 1)
        layout.addWidget(previous)
        layout.addWidget(following)
        previous.clicked.connect(lambda: self.turn_page(view, -1))
        following.clicked.connect(lambda: self.turn_page(view, 1))
        self.pagers[view] = (box, label, previous, following)
        box.setVisible(False)  # until there is more than one page
        return box

    def _summary(self) -> PlainLabel:
        label = PlainLabel("")
        label.setWordWrap(True)
        return label

    def _build_leaderboard(self) -> QWidget:
        self.leaderboard_model: RowsModel[rp.LeaderboardRow] = RowsModel(
            leaderboard_columns(admin=self.is_admin), marked=lambda r: r.opted_out, parent=self)
        self.leaderboard_table = make_table(self.leaderboard_model, "Leaderboard", stretch=-1)
        self.leaderboard_summary = self._summary()
        self.leaderboard_chart = ChartView(empty_text="No referrals in this period.")
        return self._tab(self.leaderboard_summary, self.leaderboard_table,
                         self.leaderboard_chart, below=self._pager("leaderboard"))

    def _build_trends(self) -> QWidget:
        self.granularity_combo = QComboBox()
        self.granularity_combo.setAccessibleName("Trend granularity")
        self.granularity_combo.addItem("Per month", rp.Granularity.MONTH.value)
        self.granularity_combo.addItem("Per week", rp.Granularity.WEEK.value)
        self.trend_model: RowsModel[rp.TrendBucket] = RowsModel(trend_columns(), parent=self)
        self.trend_table = make_table(self.trend_model, "Trends", stretch=-1)
        self.trend_summary = self._summary()
        self.members_chart = ChartView(empty_text="Nobody joined in this period.")
        self.invitations_chart = ChartView(empty_text="No invitations in this period.")
        charts = QSplitter(Qt.Orientation.Horizontal)
        charts.addWidget(self.members_chart)
        charts.addWidget(self.invitations_chart)
        charts.setChildrenCollapsible(False)
        return self._tab(self.trend_summary, self.trend_table, charts,
                         extra=self.granularity_combo)

    def _build_conversion(self) -> QWidget:
        self.by_combo = QComboBox()
        self.by_combo.setAccessibleName("Conversion by")
        for by in rp.ConversionBy:
            self.by_combo.addItem(f"By {by.value}", by.value)
        self.order_combo = QComboBox()
        self.order_combo.setAccessibleName("Conversion order")
        self.order_combo.addItem("Most sent first", rp.ConversionOrder.SENT.value)
        self.order_combo.addItem("Most accepted first", rp.ConversionOrder.ACCEPTED.value)
        choices = QWidget()
        line = QHBoxLayout(choices)
        line.setContentsMargins(0, 0, 0, 0)
        line.addWidget(self.by_combo)
        line.addWidget(self.order_combo)
        self.conversion_model: RowsModel[rp.ConversionRow] = RowsModel(
            conversion_columns(rp.ConversionBy.INVITER), parent=self)
        self.conversion_table = make_table(self.conversion_model, "Conversion", stretch=0,
                                           sort_column=1, order=Qt.SortOrder.DescendingOrder)
        self.conversion_summary = self._summary()
        self.k_factor_label = PlainLabel("")
        self.k_factor_label.setObjectName("KFactor")
        self.k_factor_label.setStyleSheet("font-size: 12pt; font-weight: 600;")
        self.k_factor_label.setWordWrap(True)
        self.conversion_chart = ChartView(empty_text="No invitations in this period.")
        box = QWidget()
        layout = QVBoxLayout(box)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.k_factor_label)
        layout.addWidget(self.conversion_chart, 1)
        return self._tab(self.conversion_summary, self.conversion_table, box,
                         extra=choices, below=self._pager("conversion"))

    def _build_quality(self) -> QWidget:
        self.retention_model: RowsModel[RetentionLine] = RowsModel(
            retention_columns(), bold=lambda r: r.summary, parent=self)
        # Not sortable: the two summary rows stay on top.
        self.retention_table = make_table(self.retention_model, "Retention", stretch=0,
                                          sortable=False)
        self.quality_summary = self._summary()
        self.retention_chart = ChartView(empty_text="Nobody joined long enough ago.")
        return self._tab(self.quality_summary, self.retention_table, self.retention_chart)

    def _build_flags(self) -> QWidget:
        self.flag_model: RowsModel[rp.FlagRow] = RowsModel(flag_columns(), parent=self)
        self.flag_table = make_table(self.flag_model, "Flags", stretch=4,
                                     order=Qt.SortOrder.DescendingOrder)
        self.flag_summary = self._summary()
        self.clear_button = QPushButton("Clear (legitimate)")
        self.clear_button.setToolTip("The referral is genuine: its points vest as usual")
        self.reject_button = QPushButton("Reject (fake)")
        self.reject_button.setToolTip("The referral is fake: its points and badges are "
                                      "taken back")
        self.reject_button.setProperty("destructive", "true")
        for button in (self.clear_button, self.reject_button):
            button.setEnabled(False)
        buttons = QHBoxLayout()
        buttons.addWidget(self.flag_summary, 1)
        buttons.addWidget(self.clear_button)
        buttons.addWidget(self.reject_button)
        box = QWidget()
        layout = QVBoxLayout(box)
        layout.setContentsMargins(0, 8, 0, 0)
        layout.addLayout(buttons)
        layout.addWidget(self.flag_table, 1)
        return box

    def _tab(self, summary: QWidget, table: QTableView, chart: QWidget,
             extra: QWidget | None = None, below: QWidget | None = None) -> QWidget:
        box = QWidget()
        layout = QVBoxLayout(box)
        layout.setContentsMargins(0, 8, 0, 0)
        layout.setSpacing(6)
        line = QHBoxLayout()
        line.addWidget(summary, 1)
        if extra is not None:
            line.addWidget(extra, 0, Qt.AlignmentFlag.AlignTop)
        layout.addLayout(line)
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(chart)
        if below is None:
            splitter.addWidget(table)
        else:
            bottom = QWidget()
            column = QVBoxLayout(bottom)
            column.setContentsMargins(0, 0, 0, 0)
            column.setSpacing(4)
            column.addWidget(table, 1)
            column.addWidget(below)
            splitter.addWidget(bottom)
        splitter.setChildrenCollapsible(False)
        splitter.setStretchFactor(0, 1)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([330, 300])
        layout.addWidget(splitter, 1)
        return box

    def _connect(self) -> None:
        self.period_combo.currentIndexChanged.connect(self._period_changed)
        self.start_edit.dateChanged.connect(lambda _d: self._first_pages())
        self.end_edit.dateChanged.connect(lambda _d: self._first_pages())
        self.scope_combo.currentIndexChanged.connect(lambda _i: self._first_pages())
        self.granularity_combo.currentIndexChanged.connect(lambda _i: self._load_trends())
        self.by_combo.currentIndexChanged.connect(lambda _i: self._first_conversion_page())
        self.order_combo.currentIndexChanged.connect(lambda _i: self._first_conversion_page())
        self.reload_button.clicked.connect(self.refresh)
        self.csv_action.triggered.connect(self._ask_csv)
        self.pdf_action.triggered.connect(self._ask_pdf)
        if self.is_admin:
            self.flag_table.selectionModel().selectionChanged.connect(
                lambda *_a: self._update_flag_buttons())
            self.clear_button.clicked.connect(lambda: self.decide_selected(rp.FlagStatus.CLEARED))
            self.reject_button.clicked.connect(
                lambda: self.decide_selected(rp.FlagStatus.REJECTED))
        self.hub.changed.connect(self._hub_changed)

    # ==================================================================== controls
    @property
    def period(self) -> rp.Period:
        kind = rp.PeriodKind(self.period_combo.currentData())
        if kind is rp.PeriodKind.CUSTOM:
            start, end = self.start_edit.date().toPython(), self.end_edit.date().toPython()
            assert isinstance(start, date) and isinstance(end, date)
            return rp.Period.custom(min(start, end), max(start, end))
        return rp.Period(kind)

    @property
    def unit_id(self) -> uuid.UUID | None:
        data = self.scope_combo.currentData()
        return uuid.UUID(data) if data else None

    @property
    def conversion_order(self) -> rp.ConversionOrder:
        return rp.ConversionOrder(self.order_combo.currentData())

    @property
    def granularity(self) -> rp.Granularity:
        return rp.Granularity(self.granularity_combo.currentData())

    @property
    def by(self) -> rp.ConversionBy:
        return rp.ConversionBy(self.by_combo.currentData())

    def set_period(self, period: rp.Period) -> None:
        """Choose a period as a person would (tests, the command line's --period)."""
        if period.kind is rp.PeriodKind.CUSTOM:
            assert period.start is not None and period.end is not None
            for edit, day in ((self.start_edit, period.start), (self.end_edit, period.end)):
                edit.blockSignals(True)
                edit.setDate(QDate(day.year, day.month, day.day))
                edit.blockSignals(False)
        index = self.period_combo.findData(period.kind.value)
        if index == self.period_combo.currentIndex():
            self.reload()
        else:
            self.period_combo.setCurrentIndex(index)

    def set_unit(self, unit_id: uuid.UUID | None) -> None:
        index = self.scope_combo.findData(str(unit_id) if unit_id else None)
        if index < 0:
            raise ValueError(f"no such unit in scope: {unit_id}")
        self.scope_combo.setCurrentIndex(index)

    def _period_changed(self) -> None:
        custom = self.period_combo.currentData() == rp.PeriodKind.CUSTOM.value
        for widget in (self.start_edit, self.dash_label, self.end_edit):
            widget.setVisible(custom)
        self._first_pages()

    def _first_pages(self) -> None:
        """Another period or scope: the paged tables start again from their first page."""
        self.offsets = dict.fromkeys(self.offsets, 0)
        self.reload()

    def _first_conversion_page(self) -> None:
        self.offsets["conversion"] = 0
        self._load_conversion()

    def turn_page(self, view: str, step: int) -> None:
        """The next (step 1) or previous (-1) page of the leaderboard or conversion table."""
        total = self._total(view)
        offset = max(0, self.offsets[view] + step * self.page_size)
        if offset >= total and step > 0:
            return
        self.offsets[view] = offset
        if view == "leaderboard":
            self._load_leaderboard()
        else:
            self._load_conversion()

    def _total(self, view: str) -> int:
        if view == "leaderboard":
            return self.leaderboard.total if self.leaderboard is not None else 0
        return self.conversion.total_rows if self.conversion is not None else 0

    def _show_pager(self, view: str, offset: int, shown: int, total: int, what: str) -> None:
        box, label, previous, following = self.pagers[view]
        box.setVisible(total > self.page_size or offset > 0)
        label.setText(f"{what} {offset + 1:,}–{offset + shown:,} of {total:,}" if shown
                      else f"None of {total:,}")
        previous.setEnabled(offset > 0)
        following.setEnabled(offset + shown < total)

    def _load_units(self) -> None:
        if scope_of(self._operator).level is not ScopeLevel.ORGANIZATION:
            return
        source, operator = self._source, self._operator
        self.hub.query(self, lambda: source.units(operator), self._fill_units,
                       lambda error: log.warning("units: %s", error), key="units")

    def _fill_units(self, units: list[UnitInfo]) -> None:
        self.scope_combo.blockSignals(True)
        for unit in units:
            self.scope_combo.addItem(unit.name, str(unit.id))
        self.scope_combo.blockSignals(False)
        self._units_loaded = True

    # ==================================================================== reading
    @property
    def idle(self) -> bool:
        return not self._pending

    def _now(self) -> datetime | None:
        return self._clock() if self._clock is not None else None

    def _ask(self, key: str, work: Callable[[], T], done: Callable[[T], None]) -> None:
        self._pending.add(key)

        def finish(result: T) -> None:
            self.errors.pop(key, None)
            done(result)
            self._answered(key)

        def failed(error: BaseException) -> None:
            log.warning("referrals %s: %s", key, error)
            self.errors[key] = str(error)
            self._answered(key)

        if not self.hub.query(self, work, finish, failed, key=key):
            self._pending.discard(key)

    def _answered(self, key: str) -> None:
        self._pending.discard(key)
        if self._pending:
            return
        if self.errors:
            self.banner.show_message("\n".join(dict.fromkeys(self.errors.values())), "error")
        else:
            self.banner.clear_message()
        self.status_label.setText(f"{self.period.label} · as of {datetime.now():%H:%M}")
        self.refreshed.emit()

    def refresh(self) -> None:
        """Bring the points ledger and the flags up to date with the facts (members who
        lapsed, approvals, holds that ended), then read every
        report. Other views hear of it only when the reconciliation changed something."""
        self._stale = False
        self.status_label.setText("Updating points…")
        source, operator, now = self._source, self._operator, self._now()
        self._pending.add("reconcile")

        def reconciled(result: rp.ReconcileResult) -> None:
            self._pending.discard("reconcile")
            self.errors.pop("reconcile", None)
            if result != rp.ReconcileResult():
                self.hub.broadcast({REFERRALS}, self)
            self.reload()

        def failed(error: BaseException) -> None:
            log.warning("referrals: reconcile: %s", error)
            self._pending.discard("reconcile")
            self.errors["reconcile"] = str(error)
            self.reload()

        # Through `query`, not `mutate`: it only derives state the facts already decide, is
        # safe to interrupt (its transaction rolls back) and to repeat, so quitting simply
        # waits for it instead of asking about "a change being saved" nobody made.
        if not self.hub.query(self, lambda: source.reconcile(operator, now), reconciled,
                              failed, key="reconcile"):
            self._pending.discard("reconcile")

    def reload(self) -> None:
        """Read every report again for the chosen period and scope."""
        self._stale = False
        self.status_label.setText("Loading…")
        self._load_leaderboard()
        self._load_trends()
        self._load_conversion()
        self._load_retention()
        self._load_flags()

    def _load_leaderboard(self) -> None:
        source, operator, period, unit, now = (self._source, self._operator, self.period,
                                               self.unit_id, self._now())
        limit, offset = self.page_size, self.offsets["leaderboard"]
        self._ask("leaderboard", lambda: source.leaderboard(operator, period, unit, now,
                                                            limit=limit, offset=offset),
                  self._show_leaderboard)

    def _load_trends(self) -> None:
        source, operator, period, unit, now = (self._source, self._operator, self.period,
                                               self.unit_id, self._now())
        granularity = self.granularity
        self._ask("trends", lambda: source.trends(operator, period, granularity, unit, now),
                  self._show_trends)

    def _load_conversion(self) -> None:
        source, operator, period, unit, now = (self._source, self._operator, self.period,
                                               self.unit_id, self._now())
        by, order = self.by, self.conversion_order
        limit, offset = self.page_size, self.offsets["conversion"]
        self._ask("conversion", lambda: source.conversion(operator, period, by, unit, now,
                                                          limit=limit, offset=offset,
                                                          order=order),
                  self._show_conversion)

    def _load_retention(self) -> None:
        source, operator, unit, now = self._source, self._operator, self.unit_id, self._now()
        self._ask("retention", lambda: source.retention(operator, unit, now),
                  self._show_retention)

    def _load_flags(self) -> None:
        if not self.is_admin:
            return
        source, operator, unit = self._source, self._operator, self.unit_id
        self._ask("flags", lambda: source.flags(operator, unit), self._show_flags)

    # ==================================================================== showing
    def _show_leaderboard(self, board: rp.Leaderboard) -> None:
        if not board.rows and board.offset > 0 and board.total:  # the board got shorter
            self.offsets["leaderboard"] = (board.total - 1) // self.page_size * self.page_size
            self.leaderboard = board
            self._load_leaderboard()
            return
        self.leaderboard = board
        self.leaderboard_model.set_rows(board.rows)
        self._show_pager("leaderboard", board.offset, len(board.rows), board.total, "Ranks")
        completed = sum(r.completed for r in board.rows)
        active = sum(r.active for r in board.rows)
        hidden = sum(1 for r in board.rows if r.opted_out)
        text = (f"{len(board.rows):,} referrer{'' if len(board.rows) == 1 else 's'} · "
                f"{completed:,} completed referral{'' if completed == 1 else 's'}, "
                f"{active:,} still active. Ranked by quality score: {rp.ACTIVE_WEIGHT} points "
                f"per referee still active, {rp.INACTIVE_WEIGHT} per referee who is not; "
                "ties go to who got there first.")
        if hidden:
            text += (f" {hidden:,} opted out of the public leaderboard: shown to admins only, "
                     "in grey.")
        if board.total > len(board.rows):  # one page of a longer board: say which
            shown = f"{board.offset + 1:,}–{board.offset + len(board.rows):,}"
            text = f"{board.total:,} referrers; ranks {shown} below." + text[
                text.index(" Ranked"):]
        self.leaderboard_summary.setText(text)
        self.leaderboard_chart.set_data(self.leaderboard_chart_data())

    def leaderboard_chart_data(self) -> ChartData:
        rows = self.leaderboard.rows[:CHART_TOP] if self.leaderboard else ()
        return ChartData(
            f"Top referrers, {self.period.label.lower()}",
            (bar_series("Still active", [r.active for r in rows], "#009E73"),
             bar_series("No longer active", [r.completed - r.active for r in rows], "#B8BEC9"),
             bar_series("Pending", [r.pending for r in rows], "#E69F00")),
            categories=tuple(r.referrer_name for r in rows), dates=False, stacked=True,
            y_label="referrals")

    def _show_trends(self, trends: rp.Trends) -> None:
        now = self._now() or datetime.now(UTC)
        # "This year" reaches into months that have not begun: no figures to show there.
        trends = replace(trends, buckets=tuple(b for b in trends.buckets if b.start <= now))
        self.trends = trends
        self.trend_model.set_rows(trends.buckets)
        joined = sum(b.total_new_members for b in trends.buckets)
        referred = sum(b.new_members.get(rp.Channel.REFERRAL, 0) for b in trends.buckets)
        sent = sum(b.invitations_sent for b in trends.buckets)
        accepted = sum(b.invitations_accepted for b in trends.buckets)
        share = f" ({referred / joined:.0%} through a referral)" if joined else ""
        self.trend_summary.setText(
            f"{joined:,} new member{'' if joined == 1 else 's'}{share}; {sent:,} invitation"
            f"{'' if sent == 1 else 's'} sent, {accepted:,} accepted.")
        members, invitations = self.trend_chart_data()
        self.members_chart.set_data(members)
        self.invitations_chart.set_data(invitations)

    def trend_chart_data(self) -> tuple[ChartData, ChartData]:
        trends = self.trends
        buckets = trends.buckets if trends is not None else ()
        weekly = trends is not None and trends.granularity is rp.Granularity.WEEK
        xs = tuple(timestamp(b.start.date()) for b in buckets)
        width = 7 * DAY if weekly else 30.4 * DAY
        per = "week" if weekly else "month"
        labels = tuple((f"Week of {b.start:%d %b %Y}" if weekly else f"{b.start:%B %Y}")
                       for b in buckets)
        members = ChartData(
            f"New members per {per}, by channel",
            tuple(bar_series(channel.label, [b.new_members.get(channel, 0) for b in buckets],
                             CHANNEL_COLOURS[channel]) for channel in rp.Channel),
            x=xs, bucket_seconds=width, stacked=True, y_label="members",
            bucket_labels=labels)
        invitations = ChartData(
            f"Invitations sent and accepted per {per}",
            (line_series("Sent", [b.invitations_sent for b in buckets], "#0072B2"),
             line_series("Accepted", [b.invitations_accepted for b in buckets], "#009E73")),
            x=xs, bucket_seconds=width, y_label="invitations", bucket_labels=labels)
        return members, invitations

    def _show_conversion(self, conversion: rp.Conversion) -> None:
        if not conversion.rows and conversion.offset > 0 and conversion.total_rows:
            self.offsets["conversion"] = ((conversion.total_rows - 1) // self.page_size
                                          * self.page_size)
            self.conversion = conversion
            self._load_conversion()
            return
        self.conversion = conversion
        self._show_pager("conversion", conversion.offset, len(conversion.rows),
                         conversion.total_rows, "Rows")
        columns = conversion_columns(conversion.by)
        self.conversion_model.columns = columns
        self.conversion_model.set_rows(conversion.rows)
        self.conversion_model.headerDataChanged.emit(Qt.Orientation.Horizontal, 0,
                                                     len(columns) - 1)
        set_widths(self.conversion_table, columns)
        k = conversion.k_factor
        self.k_factor_label.setText(
            "K-factor: –" if k is None else
            f"K-factor {k:.2f} = {conversion.invitations_per_member or 0:.2f} invitations per "
            f"member × {_rate(conversion.acceptance_rate)} accepted")
        self.k_factor_label.setToolTip(
            "New members each member brings in over the period (invitations per member × "
            "acceptance rate); above 1, the organization grows by referral alone.")
        self.conversion_summary.setText(
            f"{conversion.sent:,} invitation{'' if conversion.sent == 1 else 's'} sent, "
            f"{conversion.accepted:,} accepted ({_rate(conversion.acceptance_rate)}), "
            f"{conversion.members:,} active member{'' if conversion.members == 1 else 's'} "
            "at the end of the period.")
        self.conversion_chart.set_data(self.conversion_chart_data())

    def conversion_chart_data(self) -> ChartData:
        conversion = self.conversion
        rows = sorted(conversion.rows, key=lambda r: -r.sent)[:CHART_TOP] if conversion else []
        by = conversion.by.value if conversion else "inviter"
        return ChartData(
            f"Sent and accepted, by {by}" + (f" (top {CHART_TOP} by sent)"
                                             if conversion and len(conversion.rows) > CHART_TOP
                                             else ""),
            (bar_series("Sent", [r.sent for r in rows], "#0072B2"),
             bar_series("Accepted", [r.accepted for r in rows], "#009E73")),
            categories=tuple(r.label for r in rows), dates=False, y_label="invitations")

    def _show_retention(self, retention: rp.Retention) -> None:
        self.retention = retention
        self.retention_model.set_rows(retention_lines(retention))
        self.quality_summary.setText(
            f"Still active members: referred {_rate(retention.referred_90.rate)} at 90 days and "
            f"{_rate(retention.referred_365.rate)} at 365 days; not referred "
            f"{_rate(retention.non_referred_90.rate)} and "
            f"{_rate(retention.non_referred_365.rate)}. Each cohort counts the members who "
            "joined at least that long ago.")
        self.retention_chart.set_data(self.retention_chart_data())

    def retention_chart_data(self) -> ChartData:
        r = self.retention

        def pct(figure: rp.RetentionFigure | None) -> float:
            return 0.0 if figure is None or figure.rate is None else figure.rate * 100

        return ChartData(
            "Still active, referred vs not referred",
            (bar_series("Referred", [pct(r.referred_90 if r else None),
                                     pct(r.referred_365 if r else None)], "#0072B2", "%"),
             bar_series("Not referred", [pct(r.non_referred_90 if r else None),
                                         pct(r.non_referred_365 if r else None)], "#B8BEC9",
                        "%")),
            categories=("After 90 days", "After 365 days"), dates=False, y_label="% active")

    def _show_flags(self, flags: list[rp.FlagRow]) -> None:
        self.flags = list(flags)
        self.flag_model.set_rows(self.flags)
        count = len(self.flags)
        self.flag_summary.setText(
            "Nothing awaits review." if not count else
            f"{count:,} flag{'' if count == 1 else 's'} awaiting review. A flagged referral's "
            "points stay on hold until you clear or reject it; nothing is decided "
            "automatically.")
        if self.flags_tab is not None:
            index = self.tabs.indexOf(self.flags_tab)
            self.tabs.setTabText(index, f"Flags for review ({count:,})" if count
                                 else "Flags for review")
        self._update_flag_buttons()

    # ==================================================================== flags
    def selected_flag(self) -> rp.FlagRow | None:
        if not self.is_admin:
            return None
        index = self.flag_table.currentIndex()
        if not index.isValid() or not self.flag_table.selectionModel().hasSelection():
            return None
        proxy = self.flag_table.model()
        assert isinstance(proxy, QSortFilterProxyModel)
        return self.flag_model.rows[proxy.mapToSource(index).row()]

    def select_flag(self, row: int) -> None:
        self.flag_table.selectRow(row)

    def _update_flag_buttons(self) -> None:
        chosen = self.selected_flag() is not None
        self.clear_button.setEnabled(chosen)
        self.reject_button.setEnabled(chosen)

    def decide_selected(self, decision: rp.FlagStatus) -> bool:
        """Clear or reject the selected flag, after asking. True when the decision was sent."""
        flag = self.selected_flag()
        if flag is None:
            return False
        who = flag.referee_name or flag.referrer_name
        if decision is rp.FlagStatus.REJECTED:
            asked = widgets.confirm(
                self, "Reject as fake",
                f"Reject the referral of {who} by {flag.referrer_name} as fake?",
                informative="Its points and any badge it earned are taken back; the ledger "
                            "and the audit log record your decision.",
                action="Reject")
        else:
            asked = widgets.confirm(
                self, "Clear flag",
                f"Clear the flag on {flag.referrer_name} ({flag.kind.label})?",
                informative="The referral counts as genuine: its held points vest as usual.",
                action="Clear")
        if not asked:
            return False
        source, operator = self._source, self._operator
        self.clear_button.setEnabled(False)
        self.reject_button.setEnabled(False)
        self.hub.mutate(self, lambda: source.decide_flag(operator, flag, decision),
                        changes={REFERRALS}, done=lambda _row: self.reload(),
                        error=self._decision_failed)
        return True

    def _decision_failed(self, error: BaseException) -> None:
        widgets.warn(self, "Flag not decided", str(error))
        self._load_flags()

    # ==================================================================== following changes
    def _hub_changed(self, changes: Changes) -> None:
        """Members, invitations, applications or settings changed elsewhere: reconcile and
        read again (now if shown, else when shown). A referrals-only change (a flag decided,
        another view's reconciliation) only needs reading. This page's own changes are
        followed up where they are made."""
        if changes.origin is self or not changes.touches(*WATCHED):
            return
        facts = changes.touches(MEMBERS, INVITATIONS, APPLICATIONS, SETTINGS)
        if not self.isVisible():
            self._stale = True
            self._stale_facts = self._stale_facts or facts
        elif facts:
            self.refresh()
        else:
            self.reload()

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802
        super().showEvent(event)
        if self._stale:
            if self._stale_facts:
                self.refresh()
            else:
                self.reload()
            self._stale_facts = False

    # ==================================================================== export
    def current_view(self) -> str:
        return ("leaderboard", "trends", "conversion", "quality", "flags")[
            self.tabs.currentIndex()]

    def _view_table(self, view: str) -> RowsModel[Any]:
        return {"leaderboard": self.leaderboard_model, "trends": self.trend_model,
                "conversion": self.conversion_model, "quality": self.retention_model,
                "flags": getattr(self, "flag_model", self.leaderboard_model)}[view]

    def charts(self, view: str | None = None) -> list[ChartView]:
        view = view or self.current_view()
        return {"leaderboard": [self.leaderboard_chart],
                "trends": [self.members_chart, self.invitations_chart],
                "conversion": [self.conversion_chart], "quality": [self.retention_chart],
                "flags": []}[view]

    def _fill_export_menu(self) -> None:
        self.export_menu.clear()
        self.export_menu.addAction(self.csv_action)
        for chart in self.charts():
            name = chart.data.title if chart.data is not None else "Chart"
            for fmt in ("png", "svg"):
                action = self.export_menu.addAction(f"Chart “{name}” as {fmt.upper()}…")
                action.triggered.connect(
                    lambda _c=False, c=chart, f=fmt: self._ask_chart(c, f))
        self.export_menu.addSeparator()
        self.export_menu.addAction(self.pdf_action)

    def ask_save_path(self, caption: str, suggested: str, filters: str) -> Path | None:
        """A file name from the person (tests answer in its place)."""
        path, _filter = QFileDialog.getSaveFileName(self, caption, suggested, filters)
        return Path(path) if path else None

    def _suggested(self, what: str, suffix: str) -> str:
        today = datetime.now()
        return str(Path.home() / f"referrals-{what}-{today:%Y-%m-%d}.{suffix}")

    def _ask_csv(self) -> None:
        view = self.current_view()
        path = self.ask_save_path("Export table", self._suggested(view, "csv"),
                                  "CSV files (*.csv)")
        if path is None:
            return
        if view in self.offsets and self._total(view) > len(self._view_table(view).rows):
            self.export_all_csv(path, view)  # every page, not only the one shown
        else:
            self._exported(lambda: self.export_csv(path))

    def export_all_csv(self, path: Path | str, view: str) -> None:
        """The whole leaderboard or conversion table as CSV, read page by page in the
        background (progress in the status line); `exported` is emitted with the path."""
        model = self._view_table(view)
        columns = list(model.columns)
        rows: list[Any] = []
        source, operator, period, unit, now = (self._source, self._operator, self.period,
                                               self.unit_id, self._now())
        by, order = self.by, self.conversion_order
        self.csv_action.setEnabled(False)

        def next_page() -> None:
            offset = len(rows)

            def work() -> tuple[tuple[Any, ...], int]:
                if view == "leaderboard":
                    board = source.leaderboard(operator, period, unit, now,
                                               limit=EXPORT_PAGE, offset=offset)
                    return board.rows, board.total
                table = source.conversion(operator, period, by, unit, now, limit=EXPORT_PAGE,
                                          offset=offset, order=order)
                return table.rows, table.total_rows

            if not self.hub.query(self, work, got, failed, key=f"export-{view}"):
                self.csv_action.setEnabled(True)

        def got(answer: tuple[tuple[Any, ...], int]) -> None:
            part, total = answer
            rows.extend(part)
            if part and len(rows) < total:
                self.status_label.setText(f"Exporting… {len(rows):,} of {total:,} rows")
                next_page()
                return
            self.csv_action.setEnabled(True)
            whole: RowsModel[Any] = RowsModel(columns, parent=self)
            whole.set_rows(rows)
            self.status_label.setText(f"Exported {len(rows):,} rows")
            self._exported(lambda: write_csv(path, whole.headers(), whole.csv_rows()))
            whole.deleteLater()
            self.exported.emit(Path(path))

        def failed(error: BaseException) -> None:
            self.csv_action.setEnabled(True)
            widgets.warn(self, "Export failed", f"The table could not be read: {error}")

        self.status_label.setText("Exporting…")
        next_page()

    def _ask_chart(self, chart: ChartView, fmt: str) -> None:
        path = self.ask_save_path("Export chart", self._suggested(self.current_view(), fmt),
                                  f"{fmt.upper()} images (*.{fmt})")
        if path is not None:
            self._exported(lambda: chart.export_png(path) if fmt == "png"
                           else chart.export_svg(path))

    def _ask_pdf(self) -> None:
        path = self.ask_save_path("Export report", self._suggested("report", "pdf"),
                                  "PDF documents (*.pdf)")
        if path is not None:
            self._exported(lambda: self.export_pdf(path))

    def _exported(self, work: Callable[[], object]) -> None:
        try:
            result = work()
        except OSError as exc:
            widgets.warn(self, "Export failed", f"The file could not be written: {exc}")
            return
        if isinstance(result, Path):
            self.banner.show_message(f"Saved {result}", "success")

    def export_csv(self, path: Path | str, view: str | None = None) -> Path:
        """The current view's table (or `view`'s) as CSV, with every row as shown."""
        model = self._view_table(view or self.current_view())
        return write_csv(path, model.headers(), model.csv_rows())

    def report_sections(self) -> list[ReportSection]:
        members, invitations = self.trend_chart_data()
        conversion = self.conversion
        sections = [
            ReportSection("Leaderboard", [self.leaderboard_summary.text()],
                          [self.leaderboard_chart_data()], self.leaderboard_model.headers(),
                          self.leaderboard_model.text_rows(), "leaderboard.csv",
                          self.leaderboard_model.csv_rows()),
            ReportSection("Trends", [self.trend_summary.text()], [members, invitations],
                          self.trend_model.headers(), self.trend_model.text_rows(),
                          "trends.csv",
                          self.trend_model.csv_rows()),
            ReportSection("Conversion" + (f" by {conversion.by.value}" if conversion else ""),
                          [self.k_factor_label.text(), self.conversion_summary.text()],
                          [self.conversion_chart_data()], self.conversion_model.headers(),
                          self.conversion_model.text_rows(), "conversion.csv",
                          self.conversion_model.csv_rows()),
            ReportSection("Quality: retention", [self.quality_summary.text()],
                          [self.retention_chart_data()], self.retention_model.headers(),
                          self.retention_model.text_rows(), "quality.csv",
                          self.retention_model.csv_rows()),
        ]
        if self.is_admin:
            sections.append(ReportSection("Flags for review", [self.flag_summary.text()],
                                          [], self.flag_model.headers(),
                                          self.flag_model.text_rows(), "flags.csv",
                          self.flag_model.csv_rows()))
        return sections

    def export_pdf(self, path: Path | str) -> Path:
        """The whole report: every view's chart (vectors) and table (text), CSVs attached."""
        scope = self.scope_combo.currentText()
        write_pdf(path, "Referral report",
                  f"{scope} · {self.period.label} · generated {datetime.now():%d %b %Y %H:%M}",
                  self.report_sections())
        return Path(path)
