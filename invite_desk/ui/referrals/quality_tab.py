"""The Referrals page's Quality tab: retention of referred vs non-referred members. A part of
`ReferralsPage`."""

from __future__ import annotations

from PySide6.QtWidgets import QWidget

from invite_desk.services import referral_program as rp
from invite_desk.ui.charts import ChartData, ChartView, bar_series
from invite_desk.ui.referrals.common import make_table, rate, summary_label, tab_box
from invite_desk.ui.referrals.tables import (
    RetentionLine,
    RowsModel,
    retention_columns,
    retention_lines,
)


class QualityTab:
    """Mixed into ReferralsPage."""

    def _build_quality(self) -> QWidget:
        self.retention_model: RowsModel[RetentionLine] = RowsModel(
            retention_columns(), bold=lambda r: r.summary, parent=self)
        # Not sortable: the two summary rows stay on top.
        self.retention_table = make_table(self.retention_model, "Retention", stretch=0,
                                          sortable=False)
        self.quality_summary = summary_label()
        self.retention_chart = ChartView(empty_text="Nobody joined long enough ago.")
        return tab_box(self.quality_summary, self.retention_table, self.retention_chart)

    def _load_retention(self) -> None:
        source, operator, unit, now = self._source, self._operator, self.unit_id, self._now()
        self._ask("retention", lambda: source.retention(operator, unit, now),
                  self._show_retention)

    def _show_retention(self, retention: rp.Retention) -> None:
        self.retention = retention
        self.retention_model.set_rows(retention_lines(retention))
        self.quality_summary.setText(
            f"Still active members: referred {rate(retention.referred_90.rate)} at 90 days and "
            f"{rate(retention.referred_365.rate)} at 365 days; not referred "
            f"{rate(retention.non_referred_90.rate)} and "
            f"{rate(retention.non_referred_365.rate)}. Each cohort counts the members who "
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
