"""The replica's sync status in the main window's status bar (replica mode, issue 12).

"Online · synced 12 s ago", "Offline since 10:42 · 3 changes waiting", a "2 rejected" button
that lists the commands the server refused with its reasons (Dismiss), and "Sync now". The
texts come from `status_text` so tests and screenshots read the same words."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFrame,
    QHBoxLayout,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from invite_desk.services.sync.journal import RejectedCommand
from invite_desk.services.sync.replica import RoundReport, SyncStatus
from invite_desk.ui.sync_controller import SyncController
from invite_desk.ui.widgets import PlainLabel, plain_tooltip, plural

TICK_MS = 5_000  # how often "synced 12 s ago" is re-worded (no database read)
LABEL_MAX_WIDTH = 420  # pixels
STATE_STYLES = {  # fixed colours, readable on light and dark themes alike
    "unknown": "",
    "online": "color: #1E6B35;",
    "offline": "color: #8A5300; font-weight: 600;",
    "failed": "color: #A4262C; font-weight: 600;",
}


def _local(moment: datetime) -> datetime:
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return aware.astimezone()


def ago(moment: datetime, now: datetime) -> str:
    seconds = max(0, int((_aware(now) - _aware(moment)).total_seconds()))
    if seconds < 60:
        return f"{seconds} s ago"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    if seconds < 86400:
        return f"{seconds // 3600} h ago"
    return f"on {_local(moment):%d %b %H:%M}"


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def clock(moment: datetime, now: datetime) -> str:
    """10:42 today, else 12 Mar 10:42."""
    local, today = _local(moment), _local(now)
    return f"{local:%H:%M}" if local.date() == today.date() else f"{local:%d %b %H:%M}"


def status_text(status: SyncStatus | None, now: datetime | None = None) -> str:
    """The status bar's words for `status`."""
    now = now or datetime.now(UTC)
    if status is None or not status.checked and status.online:
        head = "Connecting to the server…"
    elif status.online and status.error:
        head = f"Sync failed: {status.error}"  # the server answered, and refused (elided)
    elif status.online:
        head = "Online · synced " + (ago(status.last_sync, now) if status.last_sync else "now")
    elif status.offline_since is not None:
        head = f"Offline since {clock(status.offline_since, now)}"
    else:
        head = "Offline"
    if status is not None and status.waiting:
        head += f" · {plural(status.waiting, 'change')} waiting"
    return head


def rejected_text(status: SyncStatus | None) -> str:
    """The button's words ("2 rejected", "1 rejected · 1 note"), "" when nothing to show."""
    if status is None:
        return ""
    parts = []
    if status.rejected:
        parts.append(f"{status.rejected} rejected")
    if status.notes:
        parts.append(plural(status.notes, "note"))
    return " · ".join(parts)


class SyncStatusWidget(QWidget):
    """The status bar part: state, rejected commands, Sync now."""

    def __init__(self, controller: SyncController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("SyncStatus")
        self.controller = controller
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(6)
        self.label = PlainLabel(status_text(None))
        self.label.setObjectName("sync_state")
        self.label.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
        self.label.setMaximumWidth(LABEL_MAX_WIDTH + 24)
        layout.addWidget(self.label)
        self.rejected_button = QToolButton()
        self.rejected_button.setObjectName("sync_rejected")
        self.rejected_button.setAutoRaise(True)
        self.rejected_button.setStyleSheet("color: #A4262C; font-weight: 600;")
        self.rejected_button.setToolTip(plain_tooltip(
            "Changes the server refused, with its reasons"))
        self.rejected_button.clicked.connect(self.show_rejected)
        self.rejected_button.hide()
        layout.addWidget(self.rejected_button)
        self.sync_button = QToolButton()
        self.sync_button.setObjectName("sync_now")
        self.sync_button.setText("Sync now")
        self.sync_button.setAutoRaise(True)
        self.sync_button.setToolTip(plain_tooltip(
            "Send the changes made here and fetch the server's now"))
        self.sync_button.clicked.connect(controller.sync_now)
        layout.addWidget(self.sync_button)
        self.dialog: RejectedDialog | None = None
        controller.status_changed.connect(self.show_status)
        controller.running_changed.connect(self._running)
        controller.round_finished.connect(self._round_finished)
        self._ticker = QTimer(self)
        self._ticker.setInterval(TICK_MS)
        self._ticker.timeout.connect(lambda: self.show_status(self.controller.status))
        self._ticker.start()

    def show_status(self, status: SyncStatus | None) -> None:
        words = status_text(status)
        state = "unknown" if status is None or (not status.checked and status.online) else (
            "failed" if status.online and status.error else
            "online" if status.online else "offline")
        self.label.setProperty("syncState", state)
        self.label.setStyleSheet(STATE_STYLES[state])
        self.label.ensurePolished()  # the bold font of the style measures the text below
        # A long refusal must not widen the window: elided here, whole in the tooltip.
        self.label.setText(self.label.fontMetrics().elidedText(
            words, Qt.TextElideMode.ElideRight, LABEL_MAX_WIDTH))
        tip = ""
        if status is not None and status.error:
            tip = status.error
        if status is not None and status.last_sync is not None:
            when = f"Last synced {_local(status.last_sync):%d %b %Y %H:%M:%S}"
            tip = f"{tip}\n{when}" if tip else when
        self.label.setToolTip(plain_tooltip(tip) if tip else "")
        refused = rejected_text(status)
        self.rejected_button.setText(refused)
        self.rejected_button.setVisible(bool(refused))

    def _running(self, running: bool) -> None:
        self.sync_button.setEnabled(not running)
        self.sync_button.setText("Syncing…" if running else "Sync now")

    def _round_finished(self, report: RoundReport) -> None:
        if self.dialog is not None and self.dialog.isVisible() and report.pushed \
                and report.pushed.rejected:
            self.dialog.reload()  # open: list the new refusals too

    def show_rejected(self) -> None:
        """The dialog listing the refused commands (read in the background)."""
        if self.dialog is None:
            self.dialog = RejectedDialog(self.controller, self.window())
        self.dialog.reload()
        if self.dialog.isVisible():  # already open, perhaps behind the main window
            self.dialog.raise_()
        else:
            self.dialog.show()


class RejectedDialog(QDialog):
    """The commands the server refused (and applied ones with a note), with the reasons;
    Dismiss hides one once read."""

    def __init__(self, controller: SyncController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("RejectedDialog")
        self.setWindowTitle("Changes the server did not take · Invite Desk")
        self.controller = controller
        self.commands: list[RejectedCommand] = []
        self.resize(560, 360)
        layout = QVBoxLayout(self)
        self.intro = PlainLabel(
            "The server refused these changes made on this computer; its version stays. "
            "Read why, then dismiss them.")
        self.intro.setWordWrap(True)
        layout.addWidget(self.intro)
        self.rows = QWidget()
        self.rows_layout = QVBoxLayout(self.rows)
        self.rows_layout.setContentsMargins(0, 0, 0, 0)
        self.rows_layout.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(self.rows)
        layout.addWidget(scroll, 1)
        buttons = QDialogButtonBox()
        self.dismiss_all_button = buttons.addButton("Dismiss all",
                                                    QDialogButtonBox.ButtonRole.ActionRole)
        self.dismiss_all_button.clicked.connect(
            lambda: self.dismiss([c.command_id for c in self.commands]))
        close = buttons.addButton(QDialogButtonBox.StandardButton.Close)
        close.clicked.connect(self.close)
        layout.addWidget(buttons)

    def reload(self) -> None:
        self.controller.load_rejected(self.show_commands)

    def show_commands(self, commands: list[RejectedCommand]) -> None:
        self.commands = list(commands)
        while self.rows_layout.count() > 1:
            item = self.rows_layout.takeAt(0)
            widget = item.widget() if item is not None else None
            if widget is not None:
                widget.deleteLater()
        for index, command in enumerate(self.commands):
            self.rows_layout.insertWidget(index, self._row(command))
        self.dismiss_all_button.setEnabled(bool(self.commands))
        if not self.commands:
            self.intro.setText("Nothing to review: the server took every change made here.")

    def _row(self, command: RejectedCommand) -> QWidget:
        frame = QFrame()
        frame.setObjectName("RejectedCommand")
        frame.setFrameShape(QFrame.Shape.StyledPanel)
        row = QHBoxLayout(frame)
        text = QVBoxLayout()
        verdict = "Applied with a note" if command.applied else "Rejected"
        when = _local(command.created_at).strftime("%d %b %H:%M")
        title = PlainLabel(f"{verdict}: {command.summary or command.kind}")
        title.setStyleSheet("font-weight: 600;")
        title.setWordWrap(True)
        text.addWidget(title)
        reason = PlainLabel(command.reason or "No reason was given.")
        reason.setObjectName("reason")
        reason.setWordWrap(True)
        text.addWidget(reason)
        made = PlainLabel(f"Made on this computer {when}")
        made.setStyleSheet("color: #5B6675;")
        text.addWidget(made)
        row.addLayout(text, 1)
        dismiss = QPushButton("Dismiss")
        dismiss.setObjectName(f"dismiss_{command.command_id}")
        dismiss.clicked.connect(
            lambda _checked=False, cid=command.command_id: self.dismiss([cid]))
        row.addWidget(dismiss, 0, Qt.AlignmentFlag.AlignTop)
        return frame

    def dismiss(self, command_ids: list[uuid.UUID]) -> None:
        if command_ids:
            self.controller.dismiss(command_ids, lambda _result: self.reload())
