"""The replica's sync status in the status bar: online, offline since, changes waiting,
rejected commands (dialog, Dismiss), Sync now, and the controller's schedule and broadcast.

Most tests drive the controller with a scripted replica (no database); the last ones run a
real replica of a real PostgreSQL/MariaDB server that the TCP proxy takes away."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QPushButton
from pytestqt.qtbot import QtBot

from invite_desk.services.sync.journal import RejectedCommand
from invite_desk.services.sync.pull import PullReport
from invite_desk.services.sync.push import PushReport
from invite_desk.services.sync.replica import RoundReport, SyncStatus
from invite_desk.ui.hub import INVITATIONS, MEMBERS, Changes, OperationsHub
from invite_desk.ui.sync_controller import SyncController
from invite_desk.ui.sync_status import (
    RejectedDialog,
    SyncStatusWidget,
    rejected_text,
    status_text,
)
from invite_desk.ui.tasks import SynchronousRunner
from invite_desk.ui.widgets import PlainLabel

NOW = datetime(2026, 3, 12, 9, 42, 30, tzinfo=UTC)
ONLINE = SyncStatus(online=True, last_sync=NOW - timedelta(seconds=12), waiting=0, rejected=0)


def _local_clock(moment: datetime) -> str:
    return f"{moment.astimezone():%H:%M}"


def test_the_words_for_online_offline_waiting_and_rejected() -> None:
    assert status_text(None) == "Connecting to the server…"
    assert status_text(ONLINE, NOW) == "Online · synced 12 s ago"
    assert status_text(replace(ONLINE, last_sync=NOW - timedelta(minutes=5)), NOW) \
        == "Online · synced 5 min ago"
    offline = SyncStatus(online=False, last_sync=NOW - timedelta(minutes=20), waiting=3,
                         rejected=0, error="Cannot reach the server: refused",
                         offline_since=NOW - timedelta(minutes=20))
    assert status_text(offline, NOW) == \
        f"Offline since {_local_clock(NOW - timedelta(minutes=20))} · 3 changes waiting"
    assert status_text(replace(offline, waiting=1), NOW).endswith(" · 1 change waiting")
    days_ago = NOW - timedelta(days=3)
    assert status_text(replace(offline, offline_since=days_ago), NOW).startswith(
        f"Offline since {days_ago.astimezone():%d %b %H:%M}")
    assert status_text(replace(offline, offline_since=None), NOW).startswith("Offline · ")
    assert status_text(replace(ONLINE, error="Your account is no longer active"), NOW) \
        == "Sync failed: Your account is no longer active"
    assert rejected_text(ONLINE) == ""
    assert rejected_text(replace(ONLINE, rejected=2)) == "2 rejected"
    assert rejected_text(replace(ONLINE, rejected=1, notes=1)) == "1 rejected · 1 note"


class ScriptedReplica:
    """A replica whose rounds say what the test scripts (no database)."""

    def __init__(self) -> None:
        self.online = True
        self.waiting = 0
        self.kinds: frozenset[str] = frozenset()
        self.more = False
        self.rounds = 0
        self.commands: list[RejectedCommand] = []
        self.dismissed: list[uuid.UUID] = []
        self.last_sync = NOW

    def round(self) -> RoundReport:
        self.rounds += 1
        if not self.online:
            return RoundReport(None, None, online=False, error="Cannot reach the server: no")
        self.last_sync = datetime.now(UTC)
        pulled = PullReport(applied=len(self.kinds), kinds=self.kinds, more=self.more)
        kinds, self.kinds, self.more = self.kinds, frozenset(), False
        return RoundReport(pulled, PushReport(0, len(self.commands), (), False), online=True,
                           kinds=kinds)

    def status(self) -> SyncStatus:
        live = [c for c in self.commands if c.command_id not in self.dismissed]
        return SyncStatus(online=self.online, last_sync=self.last_sync, waiting=self.waiting,
                          rejected=len(live), error="" if self.online else "Cannot reach",
                          offline_since=None if self.online else self.last_sync)

    def rejected(self) -> list[RejectedCommand]:
        return [c for c in self.commands if c.command_id not in self.dismissed]

    def dismiss(self, command_id: uuid.UUID) -> None:
        self.dismissed.append(command_id)


@pytest.fixture
def scripted() -> ScriptedReplica:
    return ScriptedReplica()


@pytest.fixture
def hub(qtbot: QtBot) -> Iterator[OperationsHub]:
    made = OperationsHub(runner=SynchronousRunner())
    yield made
    made.shutdown(1000)


@pytest.fixture
def widget(qtbot: QtBot, scripted: ScriptedReplica, hub: OperationsHub) -> SyncStatusWidget:
    controller = SyncController(scripted, hub, online_interval_ms=60_000,
                                offline_interval_ms=120_000)
    shown = SyncStatusWidget(controller)
    qtbot.addWidget(shown)
    shown.show()
    return shown


def test_online_then_offline_with_changes_waiting_then_online_again(
        widget: SyncStatusWidget, scripted: ScriptedReplica) -> None:
    controller = widget.controller
    assert widget.label.text() == "Connecting to the server…"
    controller.start()
    assert widget.label.text().startswith("Online · synced ")
    assert 55_000 < controller.next_round_in_ms <= 63_000  # every "second" while online
    assert widget.rejected_button.isHidden()

    assert widget.label.property("syncState") == "online"
    scripted.online, scripted.waiting = False, 3
    controller.sync_now()
    assert widget.label.property("syncState") == "offline"
    assert widget.label.text() == \
        f"Offline since {_local_clock(scripted.last_sync)} · 3 changes waiting"
    assert "Cannot reach" in widget.label.toolTip()
    assert 110_000 < controller.next_round_in_ms <= 126_000  # backs off while offline

    scripted.online, scripted.waiting = True, 0
    widget.sync_button.click()  # Sync now
    assert widget.label.text().startswith("Online · synced ")
    assert scripted.rounds == 3


def test_a_round_that_brought_changes_broadcasts_their_kinds_and_more_runs_at_once(
        widget: SyncStatusWidget, scripted: ScriptedReplica, hub: OperationsHub,
        qtbot: QtBot) -> None:
    heard: list[Changes] = []
    hub.changed.connect(heard.append)
    controller = widget.controller
    controller.start()
    assert heard == []  # nothing new: no view reloads
    scripted.kinds, scripted.more = frozenset({INVITATIONS, MEMBERS}), True
    controller.sync_now()
    assert [c.kinds for c in heard] == [frozenset({INVITATIONS, MEMBERS})]
    assert heard[0].origin is controller
    assert 0 <= controller.next_round_in_ms <= 5  # the rest of the batch: at once
    qtbot.waitUntil(lambda: scripted.rounds == 3, timeout=2000)


def test_a_local_change_updates_the_waiting_count_at_once(
        widget: SyncStatusWidget, scripted: ScriptedReplica, hub: OperationsHub) -> None:
    widget.controller.start()
    scripted.waiting = 2
    hub.broadcast({INVITATIONS}, origin=object())  # a page queued something
    assert widget.label.text().endswith(" · 2 changes waiting")
    assert 0 <= widget.controller.next_round_in_ms <= 250  # and it is pushed soon


def test_rejected_commands_are_listed_with_their_reasons_as_plain_text_and_dismissed(
        widget: SyncStatusWidget, scripted: ScriptedReplica, qtbot: QtBot) -> None:
    made = NOW - timedelta(hours=1)
    scripted.commands = [
        RejectedCommand(uuid.uuid4(), "invitation.revoke", "Revoke 1 invitation",
                        "Ana <b>Lima</b> accepted on 12 March before your revoke reached the "
                        "server; the invitation stays accepted.", made, NOW),
        RejectedCommand(uuid.uuid4(), "settings.save", "Save the settings",
                        "You cannot change the organization's settings.", made, NOW),
    ]
    widget.controller.start()
    assert widget.rejected_button.isVisible()
    assert widget.rejected_button.text() == "2 rejected"
    qtbot.mouseClick(widget.rejected_button, Qt.MouseButton.LeftButton)
    dialog = widget.dialog
    assert isinstance(dialog, RejectedDialog) and dialog.isVisible()
    qtbot.addWidget(dialog)
    reasons = [label.text() for label in dialog.findChildren(PlainLabel, "reason")]
    assert reasons == [c.reason for c in scripted.commands]
    for label in dialog.findChildren(PlainLabel):
        assert label.textFormat().name == "PlainText"  # "<b>Lima</b>" shown as typed
    first = scripted.commands[0].command_id
    dialog.findChild(QPushButton, f"dismiss_{first}").click()
    assert scripted.dismissed == [first]
    qtbot.waitUntil(lambda: len(dialog.commands) == 1)
    assert widget.rejected_button.text() == "1 rejected"
    dialog.dismiss_all_button.click()
    qtbot.waitUntil(lambda: not dialog.commands)
    assert widget.rejected_button.isHidden()
    assert "Nothing to review" in dialog.intro.text()


def test_a_long_refusal_is_elided_in_the_bar_and_whole_in_the_tooltip(
        widget: SyncStatusWidget) -> None:
    reason = "Your account is no longer active on the server; sign in again. " * 6
    widget.show_status(SyncStatus(online=True, last_sync=NOW, waiting=0, rejected=0,
                                  error=reason))
    assert widget.label.text().startswith("Sync failed: Your account")
    assert widget.label.text().endswith("…")
    assert widget.label.sizeHint().width() <= 430
    assert reason.strip() in widget.label.toolTip()


def test_sync_now_while_a_round_runs_runs_one_more_after_it(
        widget: SyncStatusWidget, scripted: ScriptedReplica) -> None:
    controller = widget.controller
    controller._running = True  # a round is on its way (threads are synchronous here)
    controller.sync_now()
    assert scripted.rounds == 0
    controller._running = False
    controller._finished((scripted.round(), scripted.status()))
    assert 0 <= controller.next_round_in_ms <= 5


def test_stopping_schedules_no_more_rounds(widget: SyncStatusWidget,
                                           scripted: ScriptedReplica) -> None:
    controller = widget.controller
    controller.start()
    controller.stop()
    assert controller.next_round_in_ms == -1
    controller.sync_now()
    assert scripted.rounds == 1

