"""The Referrals page's Trends tab: new members per week or month by channel, and invitations
sent vs accepted. A part of `ReferralsPage`."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QSplitter, QWidget

from invite_desk.services import referral_program as rp
from invite_desk.ui.charts import DAY, ChartData, ChartView, bar_series, line_series, timestamp
from invite_desk.ui.referrals.common import make_table, summary_label, tab_box
from invite_desk.ui.referrals.tables import RowsModel, trend_columns

CHANNEL_COLOURS = {rp.Channel.REFERRAL: "#0072B2", rp.Channel.PUBLIC: "#E69F00",
                   rp.Channel.EVENT_GUEST: "#009E73", rp.Channel.IMPORTED: "#8A919E"}


class TrendsTab:
    """Mixed into ReferralsPage."""

    @property
    def granularity(self) -> rp.Granularity:
        return rp.Granularity(self.granularity_combo.currentData())

    def _build_trends(self) -> QWidget:
        self.granularity_combo = QComboBox()
        self.granularity_combo.setAccessibleName("Trend granularity")
        self.granularity_combo.addItem("Per month", rp.Granularity.MONTH.value)
        self.granularity_combo.addItem("Per week", rp.Granularity.WEEK.value)
        self.trend_model: RowsModel[rp.TrendBucket] = RowsModel(trend_columns(), parent=self)
        self.trend_table = make_table(self.trend_model, "Trends", stretch=-1)
        self.trend_summary = summary_label()
        self.members_chart = ChartView(empty_text="Nobody joined in this period.")
        self.invitations_chart = ChartView(empty_text="No invitations in this period.")
        charts = QSplitter(Qt.Orientation.Horizontal)
        charts.addWidget(self.members_chart)
        charts.addWidget(self.invitations_chart)
        charts.setChildrenCollapsible(False)
        return tab_box(self.trend_summary, self.trend_table, charts,
                         extra=self.granularity_combo)

    def _load_trends(self) -> None:
        source, operator, period, unit, now = (self._source, self._operator, self.period,
                                               self.unit_id, self._now())
        granularity = self.granularity
        self._ask("trends", lambda: source.trends(operator, period, granularity, unit, now),
                  self._show_trends)

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
