"""The Referrals page: leaderboard, trends, conversion, quality and flags for review.

A view of the operations hub: every figure is read by a function handed to `hub.query` (the
services aggregate in SQL, in the operator's scope), and the page follows `hub.changed` for
referrals, members, invitations, applications and settings: at once when shown, else when
shown again. Flag decisions go through `hub.mutate` after a confirmation.

This module holds the controls (period, scope), the reading and the following of changes;
each tab is a part mixed into the page, in its own module: leaderboard_tab, trends_tab,
conversion_tab, quality_tab, flags_tab, and report_export (CSV, PNG/SVG, PDF); what the
referral pages share is in common.py.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import date, datetime
from typing import TypeVar

from PySide6.QtCore import QDate, Qt, Signal
from PySide6.QtGui import QAction, QShowEvent
from PySide6.QtWidgets import (
    QComboBox,
    QDateEdit,
    QHBoxLayout,
    QMenu,
    QPushButton,
    QSizePolicy,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from invite_desk.services import referral_program as rp
from invite_desk.services.operator import Operator
from invite_desk.services.organization import UnitInfo
from invite_desk.services.permissions import ScopeLevel, scope_of
from invite_desk.services.roles import Role
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
from invite_desk.ui.referrals.common import PAGE_SIZE, PERIOD_KINDS, WATCHED
from invite_desk.ui.referrals.conversion_tab import ConversionTab
from invite_desk.ui.referrals.flags_tab import FlagsTab
from invite_desk.ui.referrals.leaderboard_tab import LeaderboardTab
from invite_desk.ui.referrals.quality_tab import QualityTab
from invite_desk.ui.referrals.report_export import ReportExport
from invite_desk.ui.referrals.source import ReferralSource
from invite_desk.ui.referrals.trends_tab import TrendsTab
from invite_desk.ui.theme import set_variant
from invite_desk.ui.widgets import PlainLabel

log = logging.getLogger(__name__)
T = TypeVar("T")
Clock = Callable[[], datetime]

class ReferralsPage(LeaderboardTab, TrendsTab, ConversionTab, QualityTab, FlagsTab,
                    ReportExport, QWidget):
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
        self._export_cancelled = False
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
        self.cancel_export_button = QPushButton("Cancel export")
        self.cancel_export_button.setToolTip("Stop reading the whole table; nothing is written")
        self.cancel_export_button.setVisible(False)  # while a whole table is being read
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
        header.addWidget(self.cancel_export_button, 0, Qt.AlignmentFlag.AlignBottom)
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

    def _connect(self) -> None:
        self.period_combo.currentIndexChanged.connect(self._period_changed)
        self.start_edit.dateChanged.connect(lambda _d: self._first_pages())
        self.end_edit.dateChanged.connect(lambda _d: self._first_pages())
        self.scope_combo.currentIndexChanged.connect(lambda _i: self._first_pages())
        self.granularity_combo.currentIndexChanged.connect(lambda _i: self._load_trends())
        self.by_combo.currentIndexChanged.connect(lambda _i: self._first_conversion_page())
        self.order_combo.currentIndexChanged.connect(lambda _i: self._conversion_order_chosen())
        self.reload_button.clicked.connect(self.refresh)
        self.cancel_export_button.clicked.connect(self.cancel_export)
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
