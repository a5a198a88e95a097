"""The Referrals page's exports: the current table as CSV (a paged table read whole, page by
page in the background), a chart as PNG or SVG, the whole report as PDF. A part of
`ReferralsPage`."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from PySide6.QtWidgets import QFileDialog

from invite_desk.ui import widgets
from invite_desk.ui.charts import ChartView
from invite_desk.ui.referrals.common import EXPORT_PAGE
from invite_desk.ui.referrals.export import ReportSection, write_csv, write_pdf
from invite_desk.ui.referrals.tables import RowsModel

log = logging.getLogger(__name__)


class ReportExport:
    """Mixed into ReferralsPage."""

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
