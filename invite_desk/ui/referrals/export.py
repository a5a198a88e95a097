"""Exports of the referral reports: a table to CSV, and the whole report to PDF.

The PDF is written with Qt's QPdfWriter: every section on its own page(s), its chart painted
as vectors from the plot's QGraphicsScene, its table as text (the header repeated on every
page), and each section's CSV attached to the file (pdfdetach lists them).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import QMarginsF, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QPageLayout, QPageSize, QPainter, QPdfWriter

from invite_desk.ui.charts import ChartData, ChartView

# Formula characters a spreadsheet would evaluate: such cells get a leading apostrophe
# (OWASP "CSV injection"), names are data typed by other people.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(text: str) -> str:
    if text.startswith(_FORMULA_START) and not _is_number(text):
        return "'" + text
    return text


def _is_number(text: str) -> bool:
    try:
        float(text.replace(",", ""))
    except ValueError:
        return False
    return True


def csv_text(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(headers)
    for row in rows:
        writer.writerow([csv_cell(cell) for cell in row])
    return out.getvalue()


def write_csv(path: Path | str, headers: Sequence[str], rows: Sequence[Sequence[str]]) -> Path:
    """UTF-8 with a byte order mark, so spreadsheet programs read accents right."""
    target = Path(path)
    target.write_text(csv_text(headers, rows), encoding="utf-8-sig", newline="")
    return target


@dataclass
class ReportSection:
    title: str
    lines: list[str] = field(default_factory=list)  # summary sentences under the title
    charts: list[ChartData] = field(default_factory=list)
    headers: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)  # as shown
    csv_name: str = ""  # the attachment's file name; "" attaches nothing
    csv_rows: list[list[str]] | None = None  # for the attachment; default: `rows`


RESOLUTION = 96  # device pixels per inch: fonts and the charts' geometry at screen scale
MARGIN_MM = 15.0
CHART_HEIGHT = 280.0
ROW_PADDING = 4.0


class _Pages:
    """A painter on a QPdfWriter that knows where the next line goes."""

    def __init__(self, writer: QPdfWriter, painter: QPainter) -> None:
        self.writer = writer
        self.painter = painter
        layout = writer.pageLayout()
        paint = layout.paintRectPixels(RESOLUTION)
        self.width = float(paint.width())
        self.height = float(paint.height())
        self.y = 0.0
        self.pages = 1

    def new_page(self) -> None:
        self.writer.newPage()
        self.pages += 1
        self.y = 0.0

    def room(self, height: float) -> None:
        if self.y + height > self.height and self.y > 0:
            self.new_page()

    def text(self, text: str, font: QFont, colour: str = "#1F2430", gap: float = 4.0) -> None:
        self.painter.setFont(font)
        metrics = QFontMetricsF(self.painter.fontMetrics())
        flags = int(Qt.TextFlag.TextWordWrap)
        bounds = metrics.boundingRect(QRectF(0, 0, self.width, 10_000), flags, text)
        self.room(bounds.height())
        self.painter.setPen(QColor(colour))
        self.painter.drawText(QRectF(0, self.y, self.width, bounds.height()), flags, text)
        self.y += bounds.height() + gap


def _fonts() -> tuple[QFont, QFont, QFont, QFont]:
    title = QFont()
    title.setPointSizeF(18)
    title.setBold(True)
    heading = QFont()
    heading.setPointSizeF(13)
    heading.setBold(True)
    body = QFont()
    body.setPointSizeF(9.5)
    cell = QFont()
    cell.setPointSizeF(8)
    return title, heading, body, cell


def _column_widths(headers: Sequence[str], rows: Sequence[Sequence[str]], total: float,
                   metrics: QFontMetricsF, header_metrics: QFontMetricsF) -> list[float]:
    """Each column as wide as its widest cell (first 200 rows) or the longest word of its
    title (titles wrap), shrunk to fit the page."""
    wanted = []
    for column, header in enumerate(headers):
        words = max((header_metrics.horizontalAdvance(w) for w in header.split()), default=0.0)
        cells = [row[column] for row in rows[:200] if column < len(row)]
        widest = max([words] + [metrics.horizontalAdvance(c) for c in cells])
        wanted.append(min(widest, total / 2) + 12)
    scale = min(1.0, total / sum(wanted)) if wanted else 1.0
    return [w * scale for w in wanted]


def _table(pages: _Pages, headers: Sequence[str], rows: Sequence[Sequence[str]],
           font: QFont) -> None:
    if not headers:
        return
    painter = pages.painter
    bold = QFont(font)
    bold.setBold(True)
    # Measured as the painter will draw (its font resolution is the PDF's, not the screen's).
    painter.setFont(bold)
    bold_metrics = QFontMetricsF(painter.fontMetrics())
    painter.setFont(font)
    metrics = QFontMetricsF(painter.fontMetrics())
    widths = _column_widths(headers, rows, pages.width, metrics, bold_metrics)
    height = metrics.height() + 2 * ROW_PADDING
    wrap = int(Qt.TextFlag.TextWordWrap)
    header_height = max(  # long titles wrap onto as many lines as they need
        bold_metrics.boundingRect(QRectF(0, 0, max(w - 8, 1), 1000), wrap, h).height()
        for w, h in zip(widths, headers, strict=True)) + 2 * ROW_PADDING

    def draw_row(cells: Sequence[str], header: bool, shaded: bool) -> None:
        tall = header_height if header else height
        if header:
            painter.fillRect(QRectF(0, pages.y, pages.width, tall), QColor("#E8EBF0"))
        elif shaded:
            painter.fillRect(QRectF(0, pages.y, pages.width, tall), QColor("#F6F7F9"))
        painter.setFont(bold if header else font)
        painter.setPen(QColor("#1F2430"))
        x = 0.0
        for width, cell in zip(widths, cells, strict=False):
            box = QRectF(x + 4, pages.y, width - 8, tall)
            if header:
                painter.drawText(box, int(Qt.AlignmentFlag.AlignVCenter
                                          | Qt.AlignmentFlag.AlignLeft
                                          | Qt.TextFlag.TextWordWrap), cell)
            else:
                shown = metrics.elidedText(cell, Qt.TextElideMode.ElideRight, width - 8)
                painter.drawText(box, int(Qt.AlignmentFlag.AlignVCenter
                                          | Qt.AlignmentFlag.AlignLeft), shown)
            x += width
        pages.y += tall

    pages.room(header_height + height)
    draw_row(headers, True, False)
    for number, row in enumerate(rows):
        if pages.y + height > pages.height:
            pages.new_page()  # the header again on every page
            draw_row(headers, True, False)
        draw_row(row, False, number % 2 == 1)
    pages.y += 10


def print_chart(data: ChartData, painter: QPainter, target: QRectF) -> None:
    """Paint `data` as vectors into `target`: drawn by a chart of exactly that size, shown
    off-screen (the page's own charts may be hidden or any size)."""
    view = ChartView()
    view.setAttribute(Qt.WidgetAttribute.WA_DontShowOnScreen)
    view.resize(int(target.width()), int(target.height()) + view.title_label.sizeHint().height())
    view.set_data(data)  # before show: the axes are in place when the geometry is applied
    view.show()  # applies the size: the plot's scene takes its geometry
    try:
        view.plot.getPlotItem().layout.activate()
        view.render_into(painter, target)
    finally:
        view.hide()
        view.deleteLater()


def write_pdf(path: Path | str, title: str, subtitle: str,
              sections: Sequence[ReportSection]) -> int:
    """Write the report; returns the number of pages."""
    writer = QPdfWriter(str(path))
    writer.setResolution(RESOLUTION)
    writer.setTitle(title)
    writer.setCreator("Invite Desk")
    writer.setPageLayout(QPageLayout(QPageSize(QPageSize.PageSizeId.A4),
                                     QPageLayout.Orientation.Landscape,
                                     QMarginsF(MARGIN_MM, MARGIN_MM, MARGIN_MM, MARGIN_MM),
                                     QPageLayout.Unit.Millimeter))
    for section in sections:
        if section.csv_name:
            writer.addFileAttachment(section.csv_name,
                                     csv_text(section.headers, section.rows if section.csv_rows is None
                                              else section.csv_rows).encode("utf-8"),
                                     "text/csv")
    title_font, heading_font, body_font, cell_font = _fonts()
    painter = QPainter()
    if not painter.begin(writer):
        raise OSError(f"could not write {path}")
    try:
        pages = _Pages(writer, painter)
        pages.text(title, title_font)
        pages.text(subtitle, body_font, "#5B6270", gap=14)
        for number, section in enumerate(sections):
            if number:
                pages.new_page()
            pages.text(section.title, heading_font, gap=6)
            for line in section.lines:
                pages.text(line, body_font, gap=3)
            pages.y += 6
            if section.charts:  # side by side, each with its title above it
                pages.room(CHART_HEIGHT + 30)
                gap = 16.0
                width = (pages.width - gap * (len(section.charts) - 1)) / len(section.charts)
                title_height = QFontMetricsF(body_font, writer).height() + 4
                for number, chart in enumerate(section.charts):
                    x = number * (width + gap)
                    painter.setFont(body_font)
                    painter.setPen(QColor("#1F2430"))
                    painter.drawText(QRectF(x, pages.y, width, title_height),
                                     int(Qt.AlignmentFlag.AlignLeft), chart.title)
                    print_chart(chart, painter, QRectF(x, pages.y + title_height, width,
                                                       CHART_HEIGHT))
                pages.y += title_height + CHART_HEIGHT + 12
            _table(pages, section.headers, section.rows, cell_font)
            if section.csv_name:
                pages.text(f"The table is attached to this PDF as {section.csv_name}.",
                           cell_font, "#5B6270")
        return pages.pages
    finally:
        painter.end()
