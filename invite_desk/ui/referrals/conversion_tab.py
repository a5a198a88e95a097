"""The Referrals page's Conversion tab: invitations sent vs accepted and the time to accept, by
inviter, unit, batch or event, one page at a time, with the K-factor. A part of
`ReferralsPage`."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QVBoxLayout, QWidget

from invite_desk.services import referral_program as rp
from invite_desk.ui.charts import ChartData, ChartView, bar_series
from invite_desk.ui.referrals.common import (
    CHART_TOP,
    make_table,
    rate,
    set_widths,
    summary_label,
    tab_box,
)
from invite_desk.ui.referrals.tables import RowsModel, conversion_columns
from invite_desk.ui.widgets import PlainLabel

BY_COLUMN = "column"  # the order box's entry for an order a header click chose
# The conversion table's columns the service sorts by (the label and the median are not).
SORTABLE_COLUMNS = {1: rp.ConversionColumn.SENT, 2: rp.ConversionColumn.ACCEPTED,
                    3: rp.ConversionColumn.RATE}


class ConversionTab:
    """Mixed into ReferralsPage."""

    @property
    def by(self) -> rp.ConversionBy:
        return rp.ConversionBy(self.by_combo.currentData())

    @property
    def conversion_order(self) -> rp.ConversionOrder:
        data = self.order_combo.currentData()
        return rp.ConversionOrder(data) if data != BY_COLUMN else rp.ConversionOrder.SENT

    def _build_conversion(self) -> QWidget:
        self.by_combo = QComboBox()
        self.by_combo.setAccessibleName("Conversion by")
        for by in rp.ConversionBy:
            self.by_combo.addItem(f"By {by.value}", by.value)
        self.order_combo = QComboBox()
        self.order_combo.setAccessibleName("Conversion order")
        self.order_combo.addItem("Most sent first", rp.ConversionOrder.SENT.value)
        self.order_combo.addItem("Most accepted first", rp.ConversionOrder.ACCEPTED.value)
        self.order_combo.addItem("As the column sorted", BY_COLUMN)  # a header click chose
        choices = QWidget()
        line = QHBoxLayout(choices)
        line.setContentsMargins(0, 0, 0, 0)
        line.addWidget(self.by_combo)
        line.addWidget(self.order_combo)
        self.conversion_model: RowsModel[rp.ConversionRow] = RowsModel(
            conversion_columns(rp.ConversionBy.INVITER), parent=self)
        # Sorted by the service, not the proxy: a click on a sortable column asks for that
        # order (the table may be one page of thousands of rows).
        self.conversion_table = make_table(self.conversion_model, "Conversion", stretch=0,
                                           sortable=False)
        self.conversion_sort = rp.ConversionSort()
        header = self.conversion_table.horizontalHeader()
        header.setSectionsClickable(True)
        header.setSortIndicatorShown(True)
        header.sectionClicked.connect(self._conversion_header_clicked)
        self._show_conversion_sort()
        self.conversion_summary = summary_label()
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
        return tab_box(self.conversion_summary, self.conversion_table, box,
                         extra=choices, below=self._pager("conversion"))

    def _first_conversion_page(self) -> None:
        self.offsets["conversion"] = 0
        self._load_conversion()

    def _conversion_order_chosen(self) -> None:
        """"Most sent / accepted first": that column, most first."""
        if self.order_combo.currentData() == BY_COLUMN:
            return  # what a header click chose stays
        self.conversion_sort = rp.ConversionSort.of(self.conversion_order)
        self._show_conversion_sort()
        self._first_conversion_page()

    def sort_conversion(self, column: int) -> bool:
        """A click on the header of `column`: a sortable one (SORTABLE_COLUMNS) is asked of
        the service, most first, then the other way on a second click; True when it was."""
        wanted = SORTABLE_COLUMNS.get(column)
        if wanted is None:
            self._show_conversion_sort()  # the indicator stays on the order shown
            return False
        current = self.conversion_sort
        descending = not current.descending if current.column is wanted else True
        self.conversion_sort = rp.ConversionSort(wanted, descending)
        self._show_conversion_sort()
        self._first_conversion_page()
        return True

    def _conversion_header_clicked(self, column: int) -> None:
        self.sort_conversion(column)

    def _show_conversion_sort(self) -> None:
        """The header's indicator and the order box follow the order asked for."""
        sort = self.conversion_sort
        column = next(c for c, name in SORTABLE_COLUMNS.items() if name is sort.column)
        header = self.conversion_table.horizontalHeader()
        header.blockSignals(True)
        header.setSortIndicator(column, Qt.SortOrder.DescendingOrder if sort.descending
                                else Qt.SortOrder.AscendingOrder)
        header.blockSignals(False)
        plain = sort.descending and sort.column is not rp.ConversionColumn.RATE
        self.order_combo.blockSignals(True)
        self.order_combo.setCurrentIndex(self.order_combo.findData(
            sort.column.value if plain else BY_COLUMN))
        self.order_combo.blockSignals(False)

    def _load_conversion(self) -> None:
        source, operator, period, unit, now = (self._source, self._operator, self.period,
                                               self.unit_id, self._now())
        by, order, sort = self.by, self.conversion_order, self.conversion_sort
        limit, offset = self.page_size, self.offsets["conversion"]
        self._ask("conversion", lambda: source.conversion(operator, period, by, unit, now,
                                                          limit=limit, offset=offset,
                                                          order=order, sort=sort),
                  self._show_conversion)

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
            f"member × {rate(conversion.acceptance_rate)} accepted")
        self.k_factor_label.setToolTip(
            "New members each member brings in over the period (invitations per member × "
            "acceptance rate); above 1, the organization grows by referral alone.")
        self.conversion_summary.setText(
            f"{conversion.sent:,} invitation{'' if conversion.sent == 1 else 's'} sent, "
            f"{conversion.accepted:,} accepted ({rate(conversion.acceptance_rate)}), "
            f"{conversion.members:,} active member{'' if conversion.members == 1 else 's'} "
            "at the end of the period.")
        self.conversion_chart.set_data(self.conversion_chart_data())

    def conversion_chart_data(self, whole: Sequence[rp.ConversionRow] | None = None
                              ) -> ChartData:
        """The loaded page's rows with the most sent (or `whole`'s, a whole table read for an
        export)."""
        conversion = self.conversion
        shown = whole if whole is not None else conversion.rows if conversion else ()
        rows = sorted(shown, key=lambda r: -r.sent)[:CHART_TOP]
        by = conversion.by.value if conversion else "inviter"
        return ChartData(
            f"Sent and accepted, by {by}" + (f" (top {CHART_TOP} by sent)"
                                             if len(shown) > CHART_TOP else ""),
            (bar_series("Sent", [r.sent for r in rows], "#0072B2"),
             bar_series("Accepted", [r.accepted for r in rows], "#009E73")),
            categories=tuple(r.label for r in rows), dates=False, y_label="invitations")
