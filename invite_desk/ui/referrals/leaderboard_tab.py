"""The Referrals page's Leaderboard tab: referrers ranked by quality score, one page at a time,
with a chart of the top of the page. A part of `ReferralsPage`."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import QSortFilterProxyModel
from PySide6.QtWidgets import QWidget

from invite_desk.services import referral_program as rp
from invite_desk.ui.charts import ChartData, ChartView, bar_series
from invite_desk.ui.referrals.common import CHART_TOP, make_table, summary_label, tab_box
from invite_desk.ui.referrals.tables import RowsModel, leaderboard_columns


def leaderboard_text(board: rp.Leaderboard) -> str:
    """What the rows of `board` hold, and which ranks of the whole board they are."""
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
    return text


class LeaderboardTab:
    """Mixed into ReferralsPage."""

    def _build_leaderboard(self) -> QWidget:
        self.leaderboard_model: RowsModel[rp.LeaderboardRow] = RowsModel(
            leaderboard_columns(admin=self.is_admin), marked=lambda r: r.opted_out, parent=self)
        self.leaderboard_table = make_table(self.leaderboard_model, "Leaderboard", stretch=-1)
        self.leaderboard_summary = summary_label()
        self.leaderboard_chart = ChartView(empty_text="No referrals in this period.")
        return tab_box(self.leaderboard_summary, self.leaderboard_table,
                         self.leaderboard_chart, below=self._pager("leaderboard"))

    def _load_leaderboard(self) -> None:
        source, operator, period, unit, now = (self._source, self._operator, self.period,
                                               self.unit_id, self._now())
        limit, offset = self.page_size, self.offsets["leaderboard"]
        self._ask("leaderboard", lambda: source.leaderboard(operator, period, unit, now,
                                                            limit=limit, offset=offset),
                  self._show_leaderboard)

    def _show_leaderboard(self, board: rp.Leaderboard) -> None:
        if not board.rows and board.offset > 0 and board.total:  # the board got shorter
            self.offsets["leaderboard"] = (board.total - 1) // self.page_size * self.page_size
            self.leaderboard = board
            self._load_leaderboard()
            return
        self.leaderboard = board
        self.leaderboard_model.set_rows(board.rows)
        self._sort_leaderboard_locally(board.total <= len(board.rows))
        self._show_pager("leaderboard", board.offset, len(board.rows), board.total, "Ranks")
        text = leaderboard_text(board)
        self.leaderboard_summary.setText(text)
        self.leaderboard_chart.set_data(self.leaderboard_chart_data())

    def _sort_leaderboard_locally(self, whole: bool) -> None:
        """The whole board loaded: its columns sort here. One page of a longer board: it
        stays in rank order, as the service ranked it (sorting a page alone would mislead),
        and the header says so."""
        table = self.leaderboard_table
        header = table.horizontalHeader()
        if whole:
            header.setSortIndicatorShown(True)
            table.setSortingEnabled(True)
            header.setToolTip("")
            return
        table.setSortingEnabled(False)
        proxy = table.model()
        assert isinstance(proxy, QSortFilterProxyModel)
        proxy.sort(-1)  # the rows as read: by rank
        header.setSortIndicatorShown(False)
        header.setToolTip("In rank order: one page of a longer board is not sorted by "
                          "another column. Export it to CSV to sort every row.")

    def leaderboard_chart_data(self, rows: Sequence[rp.LeaderboardRow] | None = None
                               ) -> ChartData:
        """The top of the loaded page (or of `rows`, a whole board read for an export)."""
        if rows is None:
            rows = self.leaderboard.rows if self.leaderboard else ()
        rows = rows[:CHART_TOP]
        return ChartData(
            f"Top referrers, {self.period.label.lower()}",
            (bar_series("Still active", [r.active for r in rows], "#009E73"),
             bar_series("No longer active", [r.completed - r.active for r in rows], "#B8BEC9"),
             bar_series("Pending", [r.pending for r in rows], "#E69F00")),
            categories=tuple(r.referrer_name for r in rows), dates=False, stacked=True,
            y_label="referrals")
