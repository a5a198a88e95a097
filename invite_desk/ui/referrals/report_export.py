"""The Referrals page's exports: the current table as CSV (a paged table read whole, page by
page in the background), a chart as PNG or SVG, the whole report as PDF. A part of
`ReferralsPage`."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from PySide6.QtWidgets import QFileDialog

from invite_desk.ui import widgets
from invite_desk.ui.charts import ChartView
from invite_desk.ui.referrals.common import EXPORT_PAGE
from invite_desk.ui.referrals.export import ReportSection, write_csv, write_pdf
from invite_desk.ui.referrals.leaderboard_tab import leaderboard_text
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
        if view in self._partly_loaded():
            self.export_all_csv(path, view)  # every page, not only the one shown
        else:
            self._exported(lambda: self.export_csv(path))

    def _partly_loaded(self) -> list[str]:
        """The paged tables of which only a page is loaded."""
        return [view for view in self.offsets
                if self._total(view) > len(self._view_table(view).rows)]

    def export_all_csv(self, path: Path | str, view: str) -> None:
        """The whole leaderboard or conversion table as CSV, read page by page in the
        background (progress in the status line, Cancel between two pages); `exported` is
        emitted with the path."""
        columns = list(self._view_table(view).columns)

        def write(whole_rows: dict[str, list[Any]]) -> None:
            rows = whole_rows[view]
            whole: RowsModel[Any] = RowsModel(columns, parent=self)
            whole.set_rows(rows)
            self.status_label.setText(f"Exported {len(rows):,} rows")
            self._exported(lambda: write_csv(path, whole.headers(), whole.csv_rows()))
            whole.deleteLater()
            self.exported.emit(Path(path))

        self._read_whole([view], write)

    def _read_whole(self, views: list[str], done: Callable[[dict[str, list[Any]]], None]
                    ) -> None:
        """Every row of the paged `views` (leaderboard, conversion), read EXPORT_PAGE rows at
        a time through the hub, in the period, scope and order shown; `done` gets them.
        Progress goes to the status line; `cancel_export` stops it between two pages."""
        rows: dict[str, list[Any]] = {view: [] for view in views}
        waiting = list(views)
        source, operator, period, unit, now = (self._source, self._operator, self.period,
                                               self.unit_id, self._now())
        by, order, sort = self.by, self.conversion_order, self.conversion_sort
        self._export_cancelled = False
        self._exporting(True)

        def next_page() -> None:
            view, offset = waiting[0], len(rows[waiting[0]])

            def work() -> tuple[tuple[Any, ...], int]:
                if view == "leaderboard":
                    board = source.leaderboard(operator, period, unit, now,
                                               limit=EXPORT_PAGE, offset=offset)
                    return board.rows, board.total
                table = source.conversion(operator, period, by, unit, now, limit=EXPORT_PAGE,
                                          offset=offset, order=order, sort=sort)
                return table.rows, table.total_rows

            if not self.hub.query(self, work, got, failed, key=f"export-{view}"):
                self._exporting(False)

        def got(answer: tuple[tuple[Any, ...], int]) -> None:
            part, total = answer
            view = waiting[0]
            rows[view].extend(part)
            if self._export_cancelled:
                self._exporting(False)
                self.status_label.setText("Export cancelled: nothing was written")
                return
            if part and len(rows[view]) < total:
                what = "" if len(views) == 1 else f" the {view}"
                self.status_label.setText(
                    f"Exporting{what}… {len(rows[view]):,} of {total:,} rows")
                next_page()
                return
            waiting.pop(0)
            if waiting:
                next_page()
                return
            self._exporting(False)
            done(rows)

        def failed(error: BaseException) -> None:
            self._exporting(False)
            self.status_label.setText("")
            widgets.warn(self, "Export failed", f"The table could not be read: {error}")

        self.status_label.setText("Exporting…")
        next_page()

    def _exporting(self, running: bool) -> None:
        """While a whole table is read: no second export, and Cancel is offered."""
        self.csv_action.setEnabled(not running)
        self.pdf_action.setEnabled(not running)
        self.cancel_export_button.setVisible(running)

    def cancel_export(self) -> None:
        """Stop a whole-table export after the page being read; nothing is written."""
        self._export_cancelled = True
        self.cancel_export_button.setVisible(False)

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
            self.export_whole_pdf(path)

    def export_whole_pdf(self, path: Path | str) -> None:
        """The whole report as PDF: the leaderboard and conversion tables with every row
        (read page by page in the background, as the CSV export does, when only a page of
        them is loaded); `exported` is emitted with the path."""
        def write(whole: dict[str, list[Any]]) -> None:
            self._exported(lambda: self.export_pdf(path, whole))
            total = sum(len(rows) for rows in whole.values())
            self.status_label.setText(f"Exported the report ({total:,} rows read)" if whole
                                      else "Exported the report")
            self.exported.emit(Path(path))

        partial = self._partly_loaded()
        if partial:
            self._read_whole(partial, write)
        else:
            write({})

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

    def report_sections(self, whole: dict[str, list[Any]] | None = None
                        ) -> list[ReportSection]:
        """Every view as a section; `whole`: every row of the paged tables (else the loaded
        page)."""
        whole = whole or {}
        members, invitations = self.trend_chart_data()
        conversion = self.conversion
        leaders = self._rows_model(self.leaderboard_model, whole.get("leaderboard"))
        board_text = self.leaderboard_summary.text()
        if "leaderboard" in whole and self.leaderboard is not None:
            board_text = leaderboard_text(replace(
                self.leaderboard, rows=tuple(whole["leaderboard"]), offset=0,
                total=len(whole["leaderboard"])))
        converted = self._rows_model(self.conversion_model, whole.get("conversion"))
        sections = [
            ReportSection("Leaderboard", [board_text],
                          [self.leaderboard_chart_data(whole.get("leaderboard"))],
                          leaders.headers(), leaders.text_rows(), "leaderboard.csv",
                          leaders.csv_rows()),
            ReportSection("Trends", [self.trend_summary.text()], [members, invitations],
                          self.trend_model.headers(), self.trend_model.text_rows(),
                          "trends.csv",
                          self.trend_model.csv_rows()),
            ReportSection("Conversion" + (f" by {conversion.by.value}" if conversion else ""),
                          [self.k_factor_label.text(), self.conversion_summary.text()],
                          [self.conversion_chart_data(whole.get("conversion"))],
                          converted.headers(), converted.text_rows(), "conversion.csv",
                          converted.csv_rows()),
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
        for model in (leaders, converted):
            if model not in (self.leaderboard_model, self.conversion_model):
                model.deleteLater()
        return sections

    def _rows_model(self, shown: RowsModel[Any], rows: list[Any] | None) -> RowsModel[Any]:
        """`shown`, or a model of the same columns holding `rows` (a whole table)."""
        if rows is None:
            return shown
        model: RowsModel[Any] = RowsModel(shown.columns, marked=shown._marked, parent=self)
        model.set_rows(rows)
        return model

    def export_pdf(self, path: Path | str, whole: dict[str, list[Any]] | None = None) -> Path:
        """The report: every view's chart (vectors) and table (text), CSVs attached; the
        paged tables as loaded, or `whole`'s rows (export_whole_pdf reads them)."""
        scope = self.scope_combo.currentText()
        write_pdf(path, "Referral report",
                  f"{scope} · {self.period.label} · generated {datetime.now():%d %b %Y %H:%M}",
                  self.report_sections(whole))
        return Path(path)
