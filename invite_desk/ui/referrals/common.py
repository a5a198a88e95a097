"""What the Referrals pages share: the paged tables' sizes, the changes they follow, a read-
only sortable table, and the summary-chart-table layout of a tab."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QSortFilterProxyModel, Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QSplitter,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from invite_desk.services import referral_program as rp
from invite_desk.ui.hub import APPLICATIONS, INVITATIONS, MEMBERS, REFERRALS, SETTINGS
from invite_desk.ui.referrals.tables import SORT_ROLE, Column, RowsModel, percent
from invite_desk.ui.widgets import PlainLabel

ROW_HEIGHT = 26
CHART_TOP = 12  # referrers / groups shown in a category chart (the table has them all)
PAGE_SIZE = 100  # leaderboard ranks / conversion rows read and shown at a time
EXPORT_PAGE = 2_000  # rows read per step when a whole table is exported to CSV
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


def rate(value: float | None) -> str:
    return percent(value)



def summary_label() -> PlainLabel:
    label = PlainLabel("")
    label.setWordWrap(True)
    return label

def tab_box(summary: QWidget, table: QTableView, chart: QWidget,
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
