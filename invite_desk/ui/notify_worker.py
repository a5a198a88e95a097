"""Delivering the queued notification emails (approved, rejected, joined, sign-in links) off
the GUI thread, for the Outbox.

The Outbox starts a `NotifyJob` only while no batch is sending, and stops it (after the
message being sent) before a batch starts, so the app still opens one SMTP connection at a
time. The services' `send_pending_notifications` claims each row before sending it, so a
crash or a second process never sends one twice.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from PySide6.QtCore import QCoreApplication, QObject, Qt, QThread, Signal, Slot
from sqlalchemy import Engine

from invite_desk.services.admin.notifications import NotificationRun, send_pending_notifications
from invite_desk.services.invitations.sending import Transport
from invite_desk.services.uow import UnitOfWork

log = logging.getLogger(__name__)

CHUNK = 5  # messages per call: a stop request waits for at most this many


class LazyTransport:
    """Connects on the first message: a drain with nothing queued opens no connection."""

    def __init__(self, make: Callable[[], Transport]) -> None:
        self._make = make
        self._transport: Transport | None = None

    def send(self, message: object, to: str) -> object:
        if self._transport is None:
            self._transport = self._make()
        return self._transport.send(message, to)  # type: ignore[arg-type]

    def close(self) -> None:
        close = getattr(self._transport, "close", None)
        if close is not None:
            close()


class NotifyWorker(QObject):
    finished = Signal(object)  # NotificationRun (summed over the chunks)
    failed = Signal(str)

    def __init__(self, engine: Engine, make_transport: Callable[[], Transport]) -> None:
        super().__init__()
        self._engine = engine
        self._make_transport = make_transport
        self.stop_requested = threading.Event()

    @Slot()
    def run(self) -> None:
        sent = failed = uncertain = 0
        remaining = 0
        try:
            transport = LazyTransport(self._make_transport)
            try:
                uow = UnitOfWork(self._engine)
                while not self.stop_requested.is_set():
                    run = send_pending_notifications(uow, transport,  # type: ignore[arg-type]
                                                     limit=CHUNK)
                    sent, failed = sent + run.sent, failed + run.failed
                    uncertain += run.uncertain
                    remaining = run.remaining
                    if run.sent + run.failed + run.uncertain == 0 or not run.remaining:
                        break
            finally:
                transport.close()
        except Exception as exc:  # the server is unreachable, a setting is missing...
            log.warning("notification emails not sent: %s", exc)
            self._hand_back()
            self.failed.emit(str(exc))
            return
        self._hand_back()
        self.finished.emit(NotificationRun(sent=sent, failed=failed, uncertain=uncertain,
                                           remaining=remaining))

    def _hand_back(self) -> None:
        app = QCoreApplication.instance()
        if app is not None:
            self.moveToThread(app.thread())


class NotifyJob(QObject):
    def __init__(self, worker: NotifyWorker, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.worker = worker
        self.qthread = QThread(self)
        self.qthread.setObjectName("invite-desk-notifier")
        worker.moveToThread(self.qthread)
        self.qthread.started.connect(worker.run)
        worker.finished.connect(self.qthread.quit, Qt.ConnectionType.DirectConnection)
        worker.failed.connect(self.qthread.quit, Qt.ConnectionType.DirectConnection)

    def start(self) -> None:
        self.qthread.start()

    @property
    def running(self) -> bool:
        return self.qthread.isRunning()

    def stop(self, wait_ms: int = 60_000) -> bool:
        """Stop after the current chunk and wait for the thread; True when it has ended."""
        self.worker.stop_requested.set()
        return self.qthread.wait(wait_ms)
