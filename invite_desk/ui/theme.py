"""The look: Fusion with a light palette, the QSS in resources/styles, icons and the accent colour."""

from __future__ import annotations

from functools import cache

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QFont, QGuiApplication, QIcon, QPainter, QPalette, QPixmap
from PySide6.QtWidgets import QApplication, QWidget

from invite_desk.ui.resources import resource_path

DEFAULT_ACCENT = "#2F6FEB"
TEXT = "#1F2328"
MUTED = "#5B6270"
# Offscreen and minimal platforms have no desktop font settings: use a font that is known
# to be installed (Debian's fonts-dejavu-core) rather than whatever "Sans Serif" maps to.
_HEADLESS_PLATFORMS = {"offscreen", "minimal"}


@cache
def _read_style(name: str) -> str:
    return resource_path("styles", name).read_text(encoding="utf-8")


def _mix(colour: QColor, other: QColor, amount: float) -> QColor:
    """`colour` moved `amount` (0..1) of the way towards `other`."""
    return QColor.fromRgbF(
        colour.redF() + (other.redF() - colour.redF()) * amount,
        colour.greenF() + (other.greenF() - colour.greenF()) * amount,
        colour.blueF() + (other.blueF() - colour.blueF()) * amount,
    )


def _luminance(colour: QColor) -> float:
    def channel(value: float) -> float:
        return value / 12.92 if value <= 0.03928 else ((value + 0.055) / 1.055) ** 2.4

    return (0.2126 * channel(colour.redF()) + 0.7152 * channel(colour.greenF())
            + 0.0722 * channel(colour.blueF()))


def accent_colour(accent: str | None) -> QColor:
    colour = QColor(accent or DEFAULT_ACCENT)
    return colour if colour.isValid() else QColor(DEFAULT_ACCENT)


def accent_palette(accent: str | None) -> dict[str, str]:
    """The accent and the colours derived from it, readable whatever colour an admin picks."""
    base = accent_colour(accent)
    white, black = QColor("#FFFFFF"), QColor("#000000")
    on_accent = "#FFFFFF" if _luminance(base) < 0.45 else TEXT
    text = base
    # Darken the accent until it is readable on its own light tint (WCAG-ish 4.5:1).
    soft = _mix(base, white, 0.86)
    for _ in range(10):
        if (_luminance(soft) + 0.05) / (_luminance(text) + 0.05) >= 4.5:
            break
        text = _mix(text, black, 0.2)
    return {
        "accent": base.name(),
        "accent_hover": _mix(base, black, 0.12).name(),
        "accent_soft": soft.name(),
        "accent_text": text.name(),
        "on_accent": on_accent,
    }


def accent_stylesheet(accent: str | None) -> str:
    """Only the rules that follow the accent colour (a window applies these for its organization)."""
    text = _read_style("accent.qss")
    for key, value in accent_palette(accent).items():
        text = text.replace(f"@{key}@", value)
    return text


def stylesheet(accent: str | None = None) -> str:
    """The whole QSS: the base rules (with icon paths filled in) and the accent rules."""
    icons = resource_path("icons").as_posix()
    return _read_style("app.qss").replace("@icons@", icons) + "\n" + accent_stylesheet(accent)


def icon(name: str) -> QIcon:
    return QIcon(str(resource_path("icons", f"{name}.svg")))


def app_icon() -> QIcon:
    return icon("app")


def _palette(accent: QColor) -> QPalette:
    palette = QPalette()
    roles = {
        QPalette.ColorRole.Window: "#F6F7F9",
        QPalette.ColorRole.WindowText: TEXT,
        QPalette.ColorRole.Base: "#FFFFFF",
        QPalette.ColorRole.AlternateBase: "#F3F5F8",
        QPalette.ColorRole.Text: TEXT,
        QPalette.ColorRole.Button: "#FFFFFF",
        QPalette.ColorRole.ButtonText: TEXT,
        QPalette.ColorRole.ToolTipBase: TEXT,
        QPalette.ColorRole.ToolTipText: "#FFFFFF",
        QPalette.ColorRole.PlaceholderText: "#8A919C",
        QPalette.ColorRole.Link: accent.name(),
    }
    for role, value in roles.items():
        palette.setColor(role, QColor(value))
    palette.setColor(QPalette.ColorRole.Highlight, accent)
    palette.setColor(QPalette.ColorRole.HighlightedText, QColor("#FFFFFF"))
    for role in (QPalette.ColorRole.WindowText, QPalette.ColorRole.Text,
                 QPalette.ColorRole.ButtonText):
        palette.setColor(QPalette.ColorGroup.Disabled, role, QColor("#9AA1AC"))
    return palette


def apply_theme(app: QApplication) -> None:
    """Fusion, a light palette (our QSS assumes one) and the stylesheet with the default accent."""
    app.setStyle("Fusion")
    app.setPalette(_palette(accent_colour(DEFAULT_ACCENT)))
    if QGuiApplication.platformName() in _HEADLESS_PLATFORMS:
        app.setFont(QFont("DejaVu Sans", 10))
    app.setStyleSheet(stylesheet())


def set_variant(widget: QWidget, variant: str) -> None:
    """Tag a widget for the QSS (`QLabel[variant="muted"]`)."""
    widget.setProperty("variant", variant)
    repolish(widget)


def set_flag(widget: QWidget, name: str, on: bool) -> None:
    """Set a boolean QSS property such as `invalid` or `primary`, and restyle the widget."""
    widget.setProperty(name, "true" if on else "false")
    repolish(widget)


def repolish(widget: QWidget) -> None:
    style = widget.style()
    style.unpolish(widget)
    style.polish(widget)


def monogram(text: str, accent: str | None, size: int = 44) -> QPixmap:
    """A rounded square in the accent colour with the organization's initials: the default logo."""
    initials = "".join(word[0] for word in text.split()[:2] if word).upper() or "?"
    palette = accent_palette(accent)
    screen = QGuiApplication.primaryScreen()
    ratio = screen.devicePixelRatio() if screen is not None else 1.0
    pixmap = QPixmap(int(size * ratio), int(size * ratio))
    pixmap.setDevicePixelRatio(ratio)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(QColor(palette["accent"]))
    painter.drawRoundedRect(QRectF(0, 0, size, size), size * 0.22, size * 0.22)
    font = QFont(QApplication.font())
    font.setPixelSize(int(size * 0.4))
    font.setBold(True)
    painter.setFont(font)
    painter.setPen(QColor(palette["on_accent"]))
    painter.drawText(QRectF(0, 0, size, size), Qt.AlignmentFlag.AlignCenter, initials)
    painter.end()
    return pixmap


def logo_pixmap(data: bytes | None, name: str, accent: str | None, size: int = 44) -> QPixmap:
    """The organization's logo scaled to `size` high, or its monogram when it has none."""
    if data:
        pixmap = QPixmap()
        if pixmap.loadFromData(data) and not pixmap.isNull():
            return pixmap.scaled(size * 4, size, Qt.AspectRatioMode.KeepAspectRatio,
                                 Qt.TransformationMode.SmoothTransformation)
    return monogram(name, accent, size)
