"""Runs the replica's sync rounds on the operations hub (replica mode, issue 12).

A round every second while the server answers (an idle round is one indexed query), every
30 seconds while it does not, at once after "Sync now" and again at once when a round left
work for the next one. A round that brought changes broadcasts their kinds on the hub, so
every open view reloads as it does after a local change. Rounds run as hub queries (they are
bookkeeping, not a person's change: quitting does not ask about them) and never two at once.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any, Protocol

from PySide6.QtCore import QObject, QTimer, Signal

from invite_desk.services.sync.journal import RejectedCommand
from invite_desk.services.sync.replica import RoundReport, SyncStatus
from invite_desk.ui.hub import KINDS, Changes, OperationsHub

log = logging.getLogger(__name__)

ONLINE_INTERVAL_MS = 1_000
OFFLINE_INTERVAL_MS = 30_000


class SyncSource(Protocol):
    """What the controller needs of a Replica (services/sync/replica.py)."""

    def round(self) -> RoundReport: ...
    def status(self) -> SyncStatus: ...
    def rejected(self) -> list[RejectedCommand]: ...
    def dismiss(self, command_id: uuid.UUID) -> None: ...


class SyncController(QObject):
    round_finished = Signal(object)  # RoundReport
    status_changed = Signal(object)  # SyncStatus
    running_changed = Signal(bool)

    def __init__(self, replica: SyncSource, hub: OperationsHub, parent: QObject | None = None,
                 *, online_interval_ms: int = ONLINE_INTERVAL_MS,
                 offline_interval_ms: int = OFFLINE_INTERVAL_MS) -> None:
        super().__init__(parent)
        self.setObjectName("SyncController")
        self.replica = replica
        self.hub = hub
        self.online_interval_ms = online_interval_ms
        self.offline_interval_ms = offline_interval_ms
        self.status: SyncStatus | None = None
        self.last_report: RoundReport | None = None
        self._running = False
        self._again = False
        self._stopped = False
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.sync_now)
        hub.changed.connect(self._hub_changed)

    # -- control --------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._running

    @property
    def next_round_in_ms(self) -> int:
        """Milliseconds until the next scheduled round (-1: none scheduled)."""
        return self._timer.remainingTime() if self._timer.isActive() else -1

    def start(self) -> None:
        """The first round now, then on the schedule."""
        self._stopped = False
        self.sync_now()

    def stop(self) -> None:
        """No more rounds (the window is closing); a round running finishes."""
        self._stopped = True
        self._timer.stop()

    def sync_now(self) -> None:
        """Run a round now (after the running one, if a round is running)."""
        if self._stopped:
            return
        self._timer.stop()
        if self._running:
            self._again = True
            return
        replica = self.replica

        def work() -> tuple[RoundReport, SyncStatus]:
            report = replica.round()
            return report, replica.status()

        self._set_running(True)  # before: a synchronous runner finishes inside query()
        if not self.hub.query(self, work, self._finished, self._failed, key="round"):
            self._set_running(False)  # the hub is shut down

    def refresh_status(self) -> None:
        """Read the status again (commands waiting after a local change)."""
        self.hub.query(self, self.replica.status, self._status_read, self._status_failed,
                       key="status")

    def load_rejected(self, done: Callable[[list[RejectedCommand]], Any],
                      error: Callable[[BaseException], Any] | None = None) -> None:
        self.hub.query(self, self.replica.rejected, done, error, key="rejected")

    def dismiss(self, command_ids: list[uuid.UUID], done: Callable[[object], Any]) -> None:
        replica = self.replica

        def work() -> None:
            for command_id in command_ids:
                replica.dismiss(command_id)

        def dismissed(result: object) -> None:
            done(result)
            self.refresh_status()

        # Dismissing changes no data a view shows: it broadcasts nothing, then re-reads.
        self.hub.mutate(self, work, set(), dismissed)

    # -- results ---------------------------------------------------------------------------

    def _set_running(self, running: bool) -> None:
        if running != self._running:
            self._running = running
            self.running_changed.emit(running)

    def _finished(self, result: tuple[RoundReport, SyncStatus]) -> None:
        report, status = result
        self._set_running(False)
        self.last_report = report
        kinds = frozenset(report.kinds) & KINDS
        if kinds:
            self.hub.broadcast(kinds, self)
        self._publish(status)
        self.round_finished.emit(report)
        if self._again or (report.online and not report.error and report.more):
            self._again = False
            self._schedule(0)
        elif report.online and not report.error:
            self._schedule(self.online_interval_ms)
        else:
            self._schedule(self.offline_interval_ms)

    def _failed(self, error: BaseException) -> None:  # round() does not raise; status() may
        log.warning("sync round failed: %s", error)
        self._set_running(False)
        self._again = False
        self._schedule(self.offline_interval_ms)

    def _schedule(self, milliseconds: int) -> None:
        if not self._stopped and not self.hub.closed:
            self._timer.start(max(0, milliseconds))

    def _status_read(self, status: SyncStatus) -> None:
        self._publish(status)

    def _status_failed(self, error: BaseException) -> None:
        log.warning("could not read the sync status: %s", error)

    def _publish(self, status: SyncStatus) -> None:
        self.status = status
        self.status_changed.emit(status)

    def _hub_changed(self, changes: Changes) -> None:
        if changes.origin is self or self._stopped:
            return
        # A change made here: it waits to be pushed. Say so now, and push it soon.
        self.refresh_status()
        if not self._running and self.status is not None and self.status.online:
            self._schedule(min(self.next_round_in_ms, 200) if self.next_round_in_ms >= 0
                           else 200)
