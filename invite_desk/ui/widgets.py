"""Small widgets and helpers that show data typed by other people literally.

Qt guesses rich text in QLabel (AutoText), QMessageBox and tooltips: a registrant named
`<img src="/dev/zero">` would be rendered, not shown (and that one reads /dev/zero until the
app runs out of memory). Every label in invite_desk/ui is a PlainLabel unless it is explicitly
RichText with escaped data; every tooltip and message box that can carry data goes through
`plain_tooltip` / `message_box`.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from PySide6 import QtGui
from PySide6.QtCore import QAbstractItemModel, Qt, QTimer
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QSizePolicy,
    QSplitter,
    QTableView,
    QWidget,
)


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


# ------------------------------------------------------------------ shared by every page
def plural(count: int, singular: str, plural_form: str | None = None) -> str:
    """"1 invitation", "2,000 invitations", "3 addresses" (with `plural_form`)."""
    return f"{count:,} {singular if count == 1 else (plural_form or singular + 's')}"


# Fixed colours (not palette roles) so the boxes read the same on light and dark themes.
BANNER_COLOURS = {  # background, text, border
    "info": ("#E8F1FD", "#0B3D91", "#A8C7F0"),
    "success": ("#E9F5EC", "#1E5631", "#A9D5B5"),
    "warning": ("#FFF4E5", "#5F370E", "#F0B429"),
    "error": ("#FDECEA", "#8A1C1C", "#F1A9A0"),
}


class Banner(QFrame):
    """A coloured, word-wrapped message with an optional action button; hidden when empty."""

    def __init__(self, name: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName(name)
        self.kind = ""
        self.label = PlainLabel()
        self.label.setWordWrap(True)
        self.label.setTextFormat(Qt.TextFormat.PlainText)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.label.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Minimum)
        self.button = QPushButton()
        self.button.hide()
        self._action: Callable[[], None] | None = None
        self.button.clicked.connect(self._run_action)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 6, 8, 6)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.button, 0, Qt.AlignmentFlag.AlignVCenter)
        self._reserved = False
        self.hide()

    def reserve_space(self, lines: int = 2) -> None:
        """Keep the banner's place, at a fixed height, while it is hidden: a message that
        appears or goes never moves the controls under the pointer. Text longer than `lines`
        is clipped; the whole text is in the tooltip."""
        self._reserved = True
        policy = self.sizePolicy()
        policy.setRetainSizeWhenHidden(True)
        self.setSizePolicy(policy)
        layout = self.layout()
        vertical = 0
        if layout is not None:
            margins = layout.contentsMargins()
            vertical = margins.top() + margins.bottom()
        text_height = self.label.fontMetrics().lineSpacing() * lines
        self.setFixedHeight(max(text_height, self.button.sizeHint().height()) + vertical + 2)

    def show_message(
        self,
        text: str,
        kind: str = "info",
        *,
        action: tuple[str, Callable[[], None]] | None = None,
    ) -> None:
        self.kind = kind
        self.label.setText(text)
        background, text_colour, border = BANNER_COLOURS[kind]
        name = self.objectName()
        self.setStyleSheet(
            f"QFrame#{name} {{ background: {background}; border: 1px solid {border};"
            f" border-radius: 6px; }}"
            f" QFrame#{name} > QLabel {{ background: transparent; color: {text_colour}; }}"
        )
        self.setAccessibleName(f"{kind} message")
        self._action = action[1] if action else None
        self.button.setText(action[0] if action else "")
        self.button.setVisible(action is not None)
        if self._reserved:
            self.setToolTip(plain_tooltip(text))
        self.setVisible(bool(text))

    def clear_message(self) -> None:
        self.kind = ""
        self.label.setText("")
        self.setToolTip("")
        self._action = None
        self.hide()

    @property
    def text(self) -> str:
        """The message shown ("" when hidden)."""
        return self.label.text() if self.kind else ""

    def _run_action(self) -> None:
        if self._action is not None:
            self._action()


# ------------------------------------------------------------------ table-page scaffolding
# The pages that list records (Invitations, Members, Applications, ...) share one shape: a
# search box and filters above a table of rows, a detail pane beside it.
def search_box(placeholder: str, accessible_name: str) -> QLineEdit:
    """The search line of a table page: a clear button, a placeholder that says what it finds."""
    edit = QLineEdit()
    edit.setPlaceholderText(placeholder)
    edit.setClearButtonEnabled(True)
    edit.setAccessibleName(accessible_name)
    return edit


def debounce(parent: QWidget, milliseconds: int, action: Callable[[], object] | None = None
             ) -> QTimer:
    """A single-shot timer (typing in the search box waits for a pause before reading)."""
    timer = QTimer(parent)
    timer.setSingleShot(True)
    timer.setInterval(milliseconds)
    if action is not None:
        timer.timeout.connect(action)
    return timer


def record_table(name: str, accessible_name: str, model: QAbstractItemModel, *,
                 row_height: int, multi_select: bool = False,
                 widths: Mapping[Any, int] | None = None,  # column (an IntEnum) -> px
                 order: Sequence[int] = ()) -> QTableView:
    """A read-only table of rows: whole rows selected, fixed row height, alternating colours,
    no word wrap, no row numbers, the last column stretched; columns `widths` wide, shown in
    `order` (the model's own order stays; the person may drag columns around)."""
    table = QTableView()
    table.setObjectName(name)
    table.setAccessibleName(accessible_name)
    table.setModel(model)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection if multi_select
                           else QAbstractItemView.SelectionMode.SingleSelection)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setAlternatingRowColors(True)
    table.setWordWrap(False)
    vertical = table.verticalHeader()
    vertical.hide()
    vertical.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
    vertical.setDefaultSectionSize(row_height)
    horizontal = table.horizontalHeader()
    horizontal.setHighlightSections(False)
    horizontal.setStretchLastSection(True)
    horizontal.setSectionsMovable(True)
    for column, width in (widths or {}).items():
        table.setColumnWidth(column, width)
    for visual, column in enumerate(order):
        horizontal.moveSection(horizontal.visualIndex(column), visual)
    return table


def table_and_detail(table: QWidget, detail: QWidget, sizes: tuple[int, int]) -> QSplitter:
    """The table on the left, the selected row's detail pane on the right."""
    splitter = QSplitter(Qt.Orientation.Horizontal)
    splitter.addWidget(table)
    splitter.addWidget(detail)
    splitter.setChildrenCollapsible(False)
    splitter.setStretchFactor(0, 1)
    splitter.setSizes(list(sizes))
    return splitter
