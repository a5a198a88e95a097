"""Charts for the desktop's reports, drawn with pyqtgraph (QtCharts is deprecated since Qt 6.10).

A `ChartView` shows one `ChartData`: bars (stacked or side by side) and lines over dates
(a pyqtgraph DateAxisItem, buckets at UTC midnight) or over named categories (inviters, units).
It has a legend, shows the values under the pointer (`hover_text`), and exports itself to PNG
and SVG (pyqtgraph.exporters) or paints itself as vectors into any QPainter (`render_into`,
which the PDF report uses).

pyqtgraph (and numpy under it) is imported when the first chart is built, not at start-up;
matplotlib is never imported.
"""

from __future__ import annotations

import datetime as dt
import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QPainter
from PySide6.QtWidgets import QVBoxLayout, QWidget

from invite_desk.ui.widgets import PlainLabel

# Colour-blind-safe (Okabe-Ito) colours, in the order series use them when they name none.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442",
           "#000000")
DAY = 86_400.0


def timestamp(day: dt.date | dt.datetime) -> float:
    """Seconds since the epoch of `day` at 00:00 UTC (a datetime: that instant)."""
    if isinstance(day, dt.datetime):
        moment = day if day.tzinfo is not None else day.replace(tzinfo=dt.UTC)
        return moment.timestamp()
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp()


@dataclass(frozen=True)
class Series:
    """One named row of values, one per x position of its chart."""

    name: str
    values: tuple[float, ...]
    colour: str = ""
    kind: str = "bar"  # "bar" or "line"
    unit: str = ""  # shown after the value on hover, e.g. "%" or " days"


@dataclass(frozen=True)
class ChartData:
    """What a chart shows. With `dates`, `x` holds the start of each bucket (`timestamp`) and
    `bucket_seconds` its length; otherwise `categories` names each position 0, 1, 2, ..."""

    title: str
    series: tuple[Series, ...]
    x: tuple[float, ...] = ()
    categories: tuple[str, ...] = ()
    dates: bool = True
    bucket_seconds: float = 7 * DAY
    stacked: bool = False
    y_label: str = ""
    bucket_labels: tuple[str, ...] = field(default=())  # on hover; default: the date

    @property
    def size(self) -> int:
        return len(self.x) if self.dates else len(self.categories)

    def positions(self) -> list[float]:
        """The centre of each bucket / category on the x axis."""
        if self.dates:
            return [x + self.bucket_seconds / 2 for x in self.x]
        return [float(i) for i in range(len(self.categories))]

    def label_at(self, index: int) -> str:
        if self.bucket_labels:
            return self.bucket_labels[index]
        if self.dates:
            day = dt.datetime.fromtimestamp(self.x[index], dt.UTC).date()
            return f"{day:%d %b %Y}"
        return self.categories[index]

    def hover_text(self, index: int) -> str:
        """The values at one position, as the chart shows them under the pointer."""
        lines = [self.label_at(index)]
        for series in self.series:
            value = series.values[index] if index < len(series.values) else 0.0
            shown = f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"
            lines.append(f"{series.name}: {shown}{series.unit}")
        return "\n".join(lines)

    def colour(self, position: int) -> str:
        series = self.series[position]
        return series.colour or PALETTE[position % len(PALETTE)]


class ChartView(QWidget):
    """One pyqtgraph plot with a legend, date or category axis, and hover read-out."""

    def __init__(self, parent: QWidget | None = None, *, empty_text: str = "Nothing to show yet.",
                 ) -> None:
        super().__init__(parent)
        import pyqtgraph as pg  # lazily: numpy and pyqtgraph only when a chart is built

        self._pg = pg
        self.data: ChartData | None = None
        self.hovered: int | None = None
        self._empty_text = empty_text
        self.title_label = PlainLabel("")
        self.title_label.setStyleSheet("font-weight: 600;")
        self.date_axis = pg.DateAxisItem(orientation="bottom", utcOffset=0)
        self.plot = pg.PlotWidget(background="w", axisItems={"bottom": self.date_axis})
        self.plot.setObjectName("Chart")
        self.plot.setMinimumSize(120, 110)
        self.plot.setMenuEnabled(False)
        self.plot.hideButtons()
        item = self.plot.getPlotItem()
        item.showGrid(x=False, y=True, alpha=0.25)
        for name in ("left", "bottom"):
            axis = item.getAxis(name)
            axis.setPen(pg.mkPen("#8A919E"))
            axis.setTextPen(pg.mkPen("#3B4150"))
        self.legend = item.addLegend(offset=(10, 4), labelTextColor="#3B4150",
                                     brush=pg.mkBrush(255, 255, 255, 220),
                                     pen=pg.mkPen("#D5D9E0"), colCount=4)
        self.category_axis = pg.AxisItem(orientation="bottom")
        self.category_axis.setPen(pg.mkPen("#8A919E"))
        self.category_axis.setTextPen(pg.mkPen("#3B4150"))
        self.crosshair = pg.InfiniteLine(
            angle=90, movable=False,
            pen=pg.mkPen("#8A919E", width=1, style=Qt.PenStyle.DashLine))
        self.crosshair.setZValue(20)
        self.readout = pg.TextItem("", color="#1F2430", fill=pg.mkBrush(255, 255, 255, 235),
                                   border=pg.mkPen("#B8BEC9"), anchor=(0, 0))
        self.readout.setZValue(30)
        self.empty = pg.TextItem(empty_text, color="#5B6270", anchor=(0.5, 0.5))
        self._items: list[Any] = []
        self._loading_text = "Loading…"
        self.plot.scene().sigMouseMoved.connect(self._mouse_moved)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addWidget(self.title_label)
        layout.addWidget(self.plot, 1)
        self.set_data(ChartData("", ()))  # "Loading…" until the first figures arrive
        self.data = None

    # -- data -----------------------------------------------------------------------------
    def set_data(self, data: ChartData) -> None:
        pg = self._pg
        item = self.plot.getPlotItem()
        self.data = data
        self.hovered = None
        self.title_label.setText(data.title)
        for old in self._items:
            item.removeItem(old)
        self._items = []
        self.legend.clear()
        for extra in (self.crosshair, self.readout, self.empty):
            if extra.scene() is not None:
                item.removeItem(extra)
        item.setAxisItems({"bottom": self.date_axis if data.dates else self.category_axis})
        item.getAxis("left").setLabel(data.y_label, color="#3B4150")
        positions = data.positions()
        empty = not data.size or not data.series
        for side in ("left", "bottom"):
            item.showAxis(side, not empty)
        if empty:
            self.empty.setText(data.title and self._empty_text or self._loading_text)
            item.addItem(self.empty, ignoreBounds=True)
            self.empty.setPos(0.5, 0.5)
            item.setXRange(0, 1, padding=0)
            item.setYRange(0, 1, padding=0)
            return
        span = data.bucket_seconds if data.dates else 1.0
        bars = [i for i, s in enumerate(data.series) if s.kind == "bar"]
        width = span * (0.8 if data.dates else 0.6)
        base = [0.0] * data.size
        for order, position in enumerate(bars):
            series = data.series[position]
            values = [float(v) for v in series.values[:data.size]]
            values += [0.0] * (data.size - len(values))
            colour = QColor(data.colour(position))
            # The plot adds every named item to the legend, whose LabelItem renders HTML.
            legend_name = html.escape(series.name)
            if data.stacked:
                bar = pg.BarGraphItem(x=positions, height=values, y0=list(base), width=width,
                                      brush=colour, pen=pg.mkPen(colour.darker(115)),
                                      name=legend_name)
                base = [b + v for b, v in zip(base, values, strict=True)]
            else:
                each = width / len(bars)
                shifted = [x - width / 2 + each * (order + 0.5) for x in positions]
                bar = pg.BarGraphItem(x=shifted, height=values, width=each * 0.92,
                                      brush=colour, pen=pg.mkPen(colour.darker(115)),
                                      name=legend_name)
            item.addItem(bar)
            self._items.append(bar)
        for position, series in enumerate(data.series):
            if series.kind != "line":
                continue
            values = [float(v) for v in series.values[:data.size]]
            colour = QColor(data.colour(position))
            line = pg.PlotDataItem(positions[:len(values)], values, name=html.escape(series.name),
                                   pen=pg.mkPen(colour, width=2), symbol="o", symbolSize=6,
                                   symbolBrush=colour, symbolPen=pg.mkPen(colour))
            item.addItem(line)
            self._items.append(line)
        self._apply_ticks()
        top = max([max(base, default=0.0)]
                  + [max((float(v) for v in s.values), default=0.0) for s in data.series])
        low, high = positions[0] - span / 2, positions[-1] + span / 2
        if not data.dates and data.size < 5:  # a few categories: bars stay bar-shaped
            low, high = low - (5 - data.size) / 2, high + (5 - data.size) / 2
        item.setXRange(low, high, padding=0.02)
        item.setYRange(0, max(top, 1.0) * 1.22, padding=0)  # room for the legend's row
        item.setLimits(xMin=low - span, xMax=high + span, yMin=0)
        item.addItem(self.crosshair, ignoreBounds=True)
        item.addItem(self.readout, ignoreBounds=True)
        self.crosshair.hide()
        self.readout.hide()

    def _apply_ticks(self) -> None:
        """Category names under their bars, shortened to the room each bar has; dates under
        the middle of their bucket (the axis's own ticks fell on bucket edges, between two
        bars, and the first month had none)."""
        data = self.data
        if data is None:
            return
        if data.dates:
            self.date_axis.setTicks([date_ticks(data, self.plot.width()), []] if data.size
                                    else None)
            return
        if not data.categories:
            return
        room = max(self.plot.width() - 60, 100) / max(len(data.categories), 1)
        char = max(self.fontMetrics().averageCharWidth(), 1) * 1.3  # names run wider
        limit = max(4, int(room / char) - 1)
        ticks = [(float(i), _short(name, limit)) for i, name in enumerate(data.categories)]
        self.category_axis.setTicks([ticks, []])

    def resizeEvent(self, event: Any) -> None:  # noqa: N802
        super().resizeEvent(event)
        self._apply_ticks()

    # -- hover ----------------------------------------------------------------------------
    def index_at(self, x: float) -> int | None:
        """The bucket / category under view x-coordinate `x`, or None outside the data."""
        data = self.data
        if data is None or not data.size:
            return None
        positions = data.positions()
        span = data.bucket_seconds if data.dates else 1.0
        nearest = min(range(len(positions)), key=lambda i: abs(positions[i] - x))
        return nearest if abs(positions[nearest] - x) <= span / 2 else None

    def hover_index(self, index: int | None) -> str:
        """Show the read-out for one position (what moving the pointer there does)."""
        data = self.data
        self.hovered = index
        if data is None or index is None or not data.size:
            self.crosshair.hide()
            self.readout.hide()
            return ""
        text = data.hover_text(index)
        x = data.positions()[index]
        self.crosshair.setPos(x)
        self.crosshair.show()
        view = self.plot.getPlotItem().getViewBox()
        (x_low, x_high), (_y_low, y_high) = view.viewRange()
        anchor_right = x > (x_low + x_high) / 2
        self.readout.setAnchor((1, 0) if anchor_right else (0, 0))
        self.readout.setHtml(
            "<div style='font-size:9pt'>"
            + "<br>".join(html.escape(line) for line in text.split("\n")) + "</div>")
        self.readout.setPos(x, y_high)
        self.readout.show()
        return text

    def hover_text(self) -> str:
        if self.data is None or self.hovered is None:
            return ""
        return self.data.hover_text(self.hovered)

    def _mouse_moved(self, scene_pos: Any) -> None:
        view = self.plot.getPlotItem().getViewBox()
        if not view.sceneBoundingRect().contains(scene_pos):
            self.hover_index(None)
            return
        point = view.mapSceneToView(scene_pos)
        index = self.index_at(point.x())
        if index != self.hovered:
            self.hover_index(index)

    # -- export ---------------------------------------------------------------------------
    def _exportable(self) -> Any:
        self.hover_index(None)  # no read-out in a file
        return self.plot.getPlotItem()

    def export_png(self, path: Path | str, width: int = 1200) -> Path:
        from pyqtgraph.exporters import ImageExporter

        exporter = ImageExporter(self._exportable())
        exporter.parameters()["width"] = width
        exporter.parameters()["background"] = QColor("white")
        exporter.export(str(path))
        return Path(path)

    def export_svg(self, path: Path | str) -> Path:
        from pyqtgraph.exporters import SVGExporter

        exporter = SVGExporter(self._exportable())
        try:
            exporter.export(str(path))
        except ValueError:
            # pyqtgraph 0.14's SVG exporter cannot parse the closing "Z" that Qt 6.11's
            # QSvgGenerator writes for the view box: paint the same scene through Qt's own
            # SVG generator instead (still vectors, text as text).
            self._export_svg_with_qt(Path(path))
        return Path(path)

    def _export_svg_with_qt(self, path: Path) -> None:
        from PySide6.QtSvg import QSvgGenerator

        source = self.plot.getPlotItem().sceneBoundingRect()
        generator = QSvgGenerator()
        generator.setFileName(str(path))
        generator.setSize(source.size().toSize())
        generator.setViewBox(QRectF(0, 0, source.width(), source.height()))
        generator.setTitle(self.data.title if self.data is not None else "Chart")
        painter = QPainter(generator)
        try:
            painter.fillRect(QRectF(0, 0, source.width(), source.height()), QColor("white"))
            self.render_into(painter, QRectF(0, 0, source.width(), source.height()))
        finally:
            painter.end()

    def render_into(self, painter: QPainter, target: QRectF) -> None:
        """Paint the chart (plot and legend, as vectors) into `target` of any painter."""
        self._exportable()
        scene = self.plot.scene()
        source = self.plot.getPlotItem().sceneBoundingRect()
        scene.render(painter, target, source, Qt.AspectRatioMode.KeepAspectRatio)

    def series_names(self) -> list[str]:
        return [s.name for s in self.data.series] if self.data is not None else []

    def legend_names(self) -> list[str]:
        return [html.unescape(label.text) for _sample, label in self.legend.items]


def date_ticks(data: ChartData, width: float) -> list[tuple[float, str]]:
    """(position, label) under the middle of each bucket, every k-th one so that labels fit
    `width` pixels: a month as "Jan" ("Jan 2026" for the first shown and each January), a
    week or day as "05 Jan"."""
    monthly = data.bucket_seconds >= 28 * DAY
    starts = [dt.datetime.fromtimestamp(x, dt.UTC).date() for x in data.x]
    room = 70.0 if monthly else 56.0  # pixels a label needs
    step = max(1, math.ceil(len(starts) * room / max(width - 60.0, 100.0)))
    ticks: list[tuple[float, str]] = []
    for index in range(0, len(starts), step):
        day = starts[index]
        if monthly:
            label = f"{day:%b %Y}" if index == 0 or day.month == 1 else f"{day:%b}"
        else:
            label = f"{day:%d %b}"
        ticks.append((data.x[index] + data.bucket_seconds / 2, label))
    return ticks


def _short(name: str, limit: int = 16) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "…"


def bar_series(name: str, values: Sequence[float], colour: str = "", unit: str = "") -> Series:
    return Series(name, tuple(float(v) for v in values), colour, "bar", unit)


def line_series(name: str, values: Sequence[float], colour: str = "", unit: str = "") -> Series:
    return Series(name, tuple(float(v) for v in values), colour, "line", unit)
