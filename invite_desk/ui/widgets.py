"""Small widgets and helpers that show data typed by other people literally.

Qt guesses rich text in QLabel (AutoText), QMessageBox and tooltips: a registrant named
`<img src="/dev/zero">` would be rendered, not shown (and that one reads /dev/zero until the
app runs out of memory). Every label in invite_desk/ui is a PlainLabel unless it is explicitly
RichText with escaped data; every tooltip and message box that can carry data goes through
`plain_tooltip` / `message_box`.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

from PySide6 import QtGui
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QMessageBox, QWidget


class PlainLabel(QLabel):
    """A QLabel whose text is always shown as typed (Qt.TextFormat.PlainText).

    The format is set before the text: QLabel parses rich text as soon as it is given."""

    def __init__(self, text: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setTextFormat(Qt.TextFormat.PlainText)
        if text:
            self.setText(text)


def rich_label(html_text: str = "", parent: QWidget | None = None) -> QLabel:
    """A label that renders HTML the code composed; every piece of data in it must already be
    escaped with `html.escape` (or `escaped`)."""
    label = QLabel(parent)
    label.setTextFormat(Qt.TextFormat.RichText)
    if html_text:
        label.setText(html_text)
    return label


def escaped(text: str) -> str:
    """`text` as HTML that shows it literally, line breaks kept."""
    return html.escape(text).replace("\n", "<br>")


def plain_tooltip(text: str) -> str:
    """A tooltip string that Qt shows literally.

    Qt renders a tooltip as rich text when it looks like HTML (Qt.mightBeRichText): such text
    is escaped and wrapped in a paragraph that keeps its line breaks."""
    if "<" not in text:
        return text
    return f"<p style='white-space:pre-wrap'>{html.escape(text)}</p>"


def tooltip_text(tooltip: str) -> str:
    """What a person reads in `tooltip` (the inverse of plain_tooltip; tests, status bar)."""
    if not QtGui.Qt.mightBeRichText(tooltip):
        return tooltip
    doc = QtGui.QTextDocument()
    doc.setHtml(tooltip)
    return doc.toPlainText()


def message_box(parent: QWidget | None, icon: QMessageBox.Icon, title: str, text: str, *,
                informative: str = "",
                buttons: QMessageBox.StandardButton = QMessageBox.StandardButton.Ok,
                default: QMessageBox.StandardButton = QMessageBox.StandardButton.NoButton,
                ) -> QMessageBox:
    """A QMessageBox whose texts are plain (QMessageBox's static helpers guess rich text)."""
    box = QMessageBox(icon, title, "", buttons, parent)
    box.setTextFormat(Qt.TextFormat.PlainText)
    box.setText(text)
    if informative:
        box.setInformativeText(informative)
        for label in box.findChildren(QLabel):
            label.setTextFormat(Qt.TextFormat.PlainText)
    if default != QMessageBox.StandardButton.NoButton:
        box.setDefaultButton(default)
    return box


def warn(parent: QWidget | None, title: str, text: str) -> None:
    """QMessageBox.warning with plain text."""
    message_box(parent, QMessageBox.Icon.Warning, title, text).exec()


def ask(parent: QWidget | None, title: str, text: str, *, informative: str = "",
        buttons: QMessageBox.StandardButton = (QMessageBox.StandardButton.Yes
                                               | QMessageBox.StandardButton.Cancel),
        default: QMessageBox.StandardButton = QMessageBox.StandardButton.Cancel,
        ) -> QMessageBox.StandardButton:
    """QMessageBox.question with plain text; Cancel is the default button."""
    box = message_box(parent, QMessageBox.Icon.Question, title, text, informative=informative,
                      buttons=buttons, default=default)
    return QMessageBox.StandardButton(box.exec())


def summarize_people(addresses: Sequence[str], *, shown: int = 5) -> str:
    """'a@x, b@y, c@z and 37 more': the first few of a list, for confirmations."""
    first = list(addresses[:shown])
    rest = len(addresses) - len(first)
    text = ", ".join(first)
    return f"{text} and {rest:,} more" if rest > 0 else text


def confirm(parent: QWidget | None, title: str, text: str, *, informative: str = "",
            action: str = "OK") -> bool:
    """Ask before an action that changes or sends something: `action` names the button that
    goes ahead; Cancel is the default, so Enter or Escape does nothing. Plain text throughout.

    Windows call it as `widgets.confirm(...)`, so tests can answer in place of a person."""
    box = message_box(parent, QMessageBox.Icon.Question, title, text, informative=informative,
                      buttons=QMessageBox.StandardButton.Cancel,
                      default=QMessageBox.StandardButton.Cancel)
    go = box.addButton(action, QMessageBox.ButtonRole.AcceptRole)
    box.setDefaultButton(QMessageBox.StandardButton.Cancel)
    box.setEscapeButton(QMessageBox.StandardButton.Cancel)
    box.exec()
    return box.clickedButton() is go
