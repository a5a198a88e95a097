"""The base of every settings page: load, check, changes, save (the Picard options-page shape).

A page shows one group of settings, loads them through the services, checks what the user
entered without touching the database, and saves through the services, which stay the final
authority (their ValidationFailed errors are mapped back onto the fields).
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from PySide6.QtCore import Qt, Signal, SignalInstance
from PySide6.QtGui import QFont, QPalette
from PySide6.QtWidgets import (
    QAbstractButton,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QVBoxLayout,
    QWidget,
)

from invite_desk.services import settings as settings_service
from invite_desk.services.operator import Operator
from invite_desk.services.settings_schema import PolicySettings
from invite_desk.ui.hub import OperationsHub
from invite_desk.ui.tasks import SynchronousRunner
from invite_desk.ui.widgets import PlainLabel, plain_tooltip

if TYPE_CHECKING:
    from invite_desk.ui.context import UnitOfWork

Writer = Callable[[], object]

ERROR_COLOUR = "#B42318"

EDITOR_STYLES = f"""
QLineEdit[readOnly="true"], QPlainTextEdit[readOnly="true"] {{ background: palette(window); }}
QLineEdit[invalid="true"], QPlainTextEdit[invalid="true"] {{ border: 1px solid {ERROR_COLOUR}; }}
"""

# Fixed colours (not palette roles): each box sets its own background, so it reads the same
# whatever the palette.
BANNER_STYLES = {
    "info": "background: #E8F1FD; color: #0B3D91; border: 1px solid #A8C7F0;",
    "success": "background: #E9F5EC; color: #1E5631; border: 1px solid #A9D5B5;",
    "warning": "background: #FFF4E5; color: #5F370E; border: 1px solid #F0B429;",
    "error": "background: #FDECEA; color: #8A1C1C; border: 1px solid #F1A9A0;",
}


def emit_signal(signal: SignalInstance, *args: Any) -> None:
    """Emit `signal`, working around PySide6 6.12.0, whose `SignalInstance.emit()` returns
    Py_True without a new reference: every emit lowers True's reference count by one and a
    long session (or even a test run) dies with "Fatal Python error: bool_dealloc".
    Taking the missing reference back is harmless on versions without the bug."""
    result: object = signal.emit(*args)  # type: ignore[func-returns-value]
    if result is True or result is False:
        ctypes.pythonapi.Py_IncRef(ctypes.py_object(result))


class Banner(PlainLabel):
    """A coloured, word-wrapped message box at the top of a page or window; hidden when empty."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent=parent)
        self.setWordWrap(True)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.kind = ""
        self._reserved = False
        self.hide()

    def reserve_space(self, lines: int = 2) -> None:
        """Keep the banner's place, at a fixed height, while it is hidden: a message that
        appears or goes never moves the fields under the pointer (the whole text is in the
        tooltip when it is longer than `lines`)."""
        self._reserved = True
        policy = self.sizePolicy()
        policy.setRetainSizeWhenHidden(True)
        self.setSizePolicy(policy)
        self.setFixedHeight(self.fontMetrics().lineSpacing() * lines + 2 * 8 + 2)

    def show_message(self, text: str, kind: str = "info") -> None:
        self.kind = kind
        self.setText(text)
        if self._reserved:
            self.setToolTip(plain_tooltip(text))
        self.setStyleSheet(f"QLabel {{ {BANNER_STYLES[kind]} border-radius: 4px; padding: 8px 10px; }}")
        self.setAccessibleName(f"{kind} message")
        self.setVisible(bool(text))

    def clear_message(self) -> None:
        self.kind = ""
        self.setText("")
        self.hide()


def _muted(label: QLabel, variant: str) -> None:
    """Grey secondary text: the app theme's QSS variant when a theme is applied (its QSS
    colours every QLabel), else a palette grey so the page also reads well on its own."""
    label.setProperty("variant", variant)
    palette = label.palette()
    grey = palette.color(QPalette.ColorRole.PlaceholderText)
    palette.setColor(QPalette.ColorRole.WindowText, grey)
    palette.setColor(QPalette.ColorRole.Text, grey)
    label.setPalette(palette)


def field_name_label(name: str) -> QLabel:
    """The field name users know from the product documents, small, grey and copyable."""
    label = PlainLabel(name)
    font = QFont("monospace")
    font.setStyleHint(QFont.StyleHint.Monospace)
    font.setPointSizeF(max(7.0, label.font().pointSizeF() * 0.85))
    label.setFont(font)
    _muted(label, "small")
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    label.setToolTip(f"Field name in the product documentation: {name}")
    return label


def help_label(text: str) -> QLabel:
    label = PlainLabel(text)
    label.setWordWrap(True)
    _muted(label, "muted")
    return label


@dataclass
class FieldRow:
    """One setting on a page: its editors and the red error line beneath them."""

    field_id: str
    editors: list[QWidget]
    error: QLabel
    container: QWidget


class SettingsPage(QWidget):
    """One page of the Settings window.

    Subclasses set NAME (stable id, used by `SettingsWindow.show_page`) and TITLE, build their
    fields with `add_field`, and implement `load`, `check`, `changes` and `save`.
    """

    NAME: ClassVar[str] = ""
    TITLE: ClassVar[str] = ""
    INTRO: ClassVar[str] = ""

    edited = Signal()
    """The user changed a value on this page (not emitted while loading)."""

    def __init__(self, uow: UnitOfWork, operator: Operator, parent: QWidget | None = None,
                 *, hub: OperationsHub | None = None) -> None:
        super().__init__(parent)
        self.uow = uow  # reached only in `fetch` and in the writers, on the hub's threads
        self.operator = operator
        # The settings window hands in the app's hub; alone (tests), a page reads in place.
        self.hub = hub if hub is not None else OperationsHub(self, runner=SynchronousRunner())
        self._rows: dict[str, FieldRow] = {}
        self._loading = False
        self._read_only_reason = ""
        self.setObjectName(f"settings-page-{self.NAME}")
        self.setStyleSheet(EDITOR_STYLES)

        outer = QVBoxLayout(self)
        outer.setContentsMargins(24, 20, 24, 20)
        outer.setSpacing(14)

        title = PlainLabel(self.TITLE)
        title_font = title.font()
        title_font.setPointSizeF(title_font.pointSizeF() * 1.5)
        title_font.setBold(True)
        title.setFont(title_font)
        outer.addWidget(title)
        if self.INTRO:
            outer.addWidget(help_label(self.INTRO))

        self.banner = Banner(self)

        self.form = QVBoxLayout()
        self.form.setSpacing(14)
        outer.addLayout(self.form)
        # Below the fields: a message appearing after Save never moves them.
        outer.addWidget(self.banner)
        outer.addStretch(1)

    # ---- building blocks for subclasses -------------------------------------------------

    def add_field(
        self,
        field_id: str,
        *,
        editors: Iterable[QWidget],
        title: str | None = None,
        field_name: str | None = None,
        help_text: str = "",
        header: QWidget | None = None,
        body: QWidget | None = None,
    ) -> FieldRow:
        """Add a setting: a title line (title or `header`, then the grey field name), the
        editor line (`body`, or the editors side by side), a red error line (hidden while
        there is no error) and the help text."""
        editor_list = list(editors)
        container = QWidget(self)
        box = QVBoxLayout(container)
        box.setContentsMargins(0, 0, 0, 0)
        box.setSpacing(5)

        title_line = QHBoxLayout()
        title_line.setSpacing(10)
        if header is not None:
            title_line.addWidget(header)
        elif title is not None:
            heading = PlainLabel(title)
            font = heading.font()
            font.setBold(True)
            heading.setFont(font)
            if editor_list:
                heading.setBuddy(editor_list[0])
            title_line.addWidget(heading)
        if field_name:
            title_line.addWidget(field_name_label(field_name))
        title_line.addStretch(1)
        box.addLayout(title_line)

        if body is not None:
            box.addWidget(body)
        elif header is None:
            line = QHBoxLayout()
            line.setSpacing(8)
            for editor in editor_list:
                line.addWidget(editor)
            line.addStretch(1)
            box.addLayout(line)

        error = PlainLabel(parent=container)
        error.setWordWrap(True)
        error.setProperty("variant", "fieldError")
        error.setStyleSheet(f"QLabel {{ color: {ERROR_COLOUR}; }}")
        error.setObjectName(f"error-{field_id}")
        error.hide()
        box.addWidget(error)

        if help_text:
            box.addWidget(help_label(help_text))

        self.form.addWidget(container)
        row = FieldRow(field_id, editor_list, error, container)
        self._rows[field_id] = row
        for editor in editor_list:
            self._watch(editor)
        return row

    def _watch(self, editor: QWidget) -> None:
        if isinstance(editor, QLineEdit | QPlainTextEdit):
            editor.textChanged.connect(self._on_edited)
        elif isinstance(editor, QAbstractButton) and editor.isCheckable():
            editor.toggled.connect(self._on_edited)

    def _on_edited(self, *_: Any) -> None:
        if self._loading:
            return
        self.update_dependent_controls()
        # Live feedback: show (or clear) the errors for what is on the page now.
        self.show_errors(self.check())
        emit_signal(self.edited)

    def begin_loading(self) -> None:
        self._loading = True

    def end_loading(self) -> None:
        self._loading = False
        self.show_errors({})
        self.update_dependent_controls()

    # ---- the page contract ----------------------------------------------------------------

    def fetch(self) -> Any:
        """Read the stored values through the services. Runs on the hub's thread: it must use
        only `self.uow`, `self.operator` and the like, never a widget."""
        raise NotImplementedError

    def show_loaded(self, data: Any) -> None:
        """Show what `fetch` read (on the GUI thread)."""
        raise NotImplementedError

    def load(self, failed: Callable[[BaseException], Any] | None = None,
             loaded: Callable[[], Any] | None = None) -> None:
        """Read the stored values in the background (`fetch`), then show them; then
        `loaded()` (or `failed(exc)`)."""
        def show(data: Any) -> None:
            self.show_loaded(data)
            if loaded is not None:
                loaded()

        self.hub.query(self, self.fetch, show,
                       failed or (lambda exc: self.banner.show_message(str(exc), "error")),
                       key="load")

    def check(self) -> dict[str, str]:
        """Field -> reason for every value that cannot be saved; empty when all is fine.
        Never touches the database."""
        return {}

    def changes(self) -> dict[str, Any]:
        """The edited values that differ from the loaded ones, keyed by the service's field names."""
        return {}

    def change_count(self) -> int:
        """How many settings the user changed (what the save confirmation counts)."""
        return len(self.changes())

    def writer(self) -> Writer:
        """Take the edited values now (GUI thread) and return the function that writes them
        through the services on the hub's thread; it raises their domain errors unchanged."""
        raise NotImplementedError

    def written(self, result: object) -> None:
        """What the writer returned, back on the GUI thread (before the page is reloaded)."""

    def update_dependent_controls(self) -> None:
        """Enable or disable controls that depend on others (and on read-only mode)."""

    # ---- errors and read-only mode -------------------------------------------------------------

    def show_errors(self, errors: Mapping[str, str]) -> None:
        """Show each error in red next to its field; clear the others. Errors for fields this
        page does not have are shown in the page banner so that none is lost."""
        for field_id, row in self._rows.items():
            message = errors.get(field_id, "")
            row.error.setText(message)
            row.error.setVisible(bool(message))
            flag = "true" if message else "false"  # a string, as the app theme's QSS expects
            for editor in row.editors:
                if (isinstance(editor, QLineEdit | QPlainTextEdit)
                        and editor.property("invalid") != flag):
                    editor.setProperty("invalid", flag)
                    _repolish(editor)
        unknown = [f"{k}: {v}" for k, v in errors.items() if k not in self._rows]
        if unknown:
            self.banner.show_message("\n".join(unknown), "error")
        elif self.banner.kind == "error":
            self._restore_banner()

    def visible_errors(self) -> dict[str, str]:
        """The errors a user currently sees next to the fields."""
        return {f: r.error.text() for f, r in self._rows.items() if not r.error.isHidden()}

    def row(self, field_id: str) -> FieldRow:
        return self._rows[field_id]

    def set_read_only(self, reason: str) -> None:
        """Show the values but allow no edits; the banner says why."""
        self._read_only_reason = reason
        self._restore_banner()
        self.update_dependent_controls()

    def is_read_only(self) -> bool:
        return bool(self._read_only_reason)

    @property
    def read_only_reason(self) -> str:
        return self._read_only_reason

    def _restore_banner(self) -> None:
        if self._read_only_reason:
            self.banner.show_message(self._read_only_reason, "warning")
        else:
            self.banner.clear_message()

    def editable(self) -> bool:
        return not self._read_only_reason


def _repolish(widget: QWidget) -> None:
    """Re-apply the style sheet after a property its selectors use has changed."""
    widget.style().unpolish(widget)
    widget.style().polish(widget)


def _own_tooltip(widget: QWidget) -> str:
    if widget.property("ownToolTip") is None:
        widget.setProperty("ownToolTip", widget.toolTip())
    return str(widget.property("ownToolTip"))


def set_enabled(widgets: Iterable[QWidget], enabled: bool, reason: str = "") -> None:
    """Enable or disable `widgets` (for controls that depend on another); while disabled
    their tooltip says why."""
    for widget in widgets:
        own = _own_tooltip(widget)
        widget.setEnabled(enabled)
        widget.setToolTip(plain_tooltip(reason if not enabled and reason else own))


def set_editable(widgets: Iterable[QWidget], editable: bool, reason: str = "") -> None:
    """Read-only mode: text stays readable and copyable (read-only editors); buttons,
    check boxes and radio buttons are disabled. Tooltips say why."""
    for widget in widgets:
        own = _own_tooltip(widget)
        if isinstance(widget, QLineEdit | QPlainTextEdit):
            widget.setEnabled(True)
            if widget.isReadOnly() == editable:
                widget.setReadOnly(not editable)
                _repolish(widget)
        else:
            widget.setEnabled(editable)
        widget.setToolTip(plain_tooltip(reason if not editable and reason else own))


def parse_whole_number(text: str) -> int | str | None:
    """The integer in `text`, None when empty, or the stripped text itself when it is not one
    (so that the services' validation reports it with the field's name)."""
    stripped = text.strip()
    if not stripped:
        return None
    try:
        return int(stripped)
    except ValueError:
        return stripped


class PolicySettingsPage(SettingsPage):
    """A page of the organization's policy settings (services/settings.py): `loaded` holds
    the stored PolicySettings and `_entered()` the values on screen, by field name."""

    loaded: PolicySettings

    def _entered(self) -> dict[str, Any]:
        raise NotImplementedError

    def changes(self) -> dict[str, Any]:
        return {
            field: value
            for field, value in self._entered().items()
            if value != getattr(self.loaded, field)
        }

    def fetch(self) -> PolicySettings:
        return settings_service.get_settings(self.uow, self.operator.organization_id)

    def writer(self) -> Writer:
        changes, uow, operator = self.changes(), self.uow, self.operator
        return lambda: settings_service.update_settings(uow, operator, changes) if changes else None
