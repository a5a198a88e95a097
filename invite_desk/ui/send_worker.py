"""Sending a batch off the GUI thread: the services' OutboxSender in a QThread.

`SendWorker` is a QObject moved to its own QThread. It never touches widgets: it reports
through signals that queued connections deliver on the GUI thread. Pause, resume and
cancel go through the services' thread-safe `SendControl`, so they work while the worker
is busy. `SendJob` owns the thread and makes sure it is stopped and joined before it goes.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable

from PySide6.QtCore import QCoreApplication, QObject, Qt, QThread, Signal, Slot
from sqlalchemy import Engine

from invite_desk.services.errors import DomainError, SettingsIncomplete
from invite_desk.services.invitations.parallel import ParallelSender
from invite_desk.services.invitations.sending import (
    SendControl,
    SendProgress,
    SendReport,
    ServerLink,
    Transport,
)
from invite_desk.services.smtp.transport import RetryPolicy
from invite_desk.services.uow import UnitOfWork

log = logging.getLogger(__name__)

TransportFactory = Callable[[], Transport]


class SendWorker(QObject):
    """Sends the queued invitations of one batch (or of the organization) and reports."""

    progressed = Signal(SendProgress)
    finished = Signal(SendReport)
    failed = Signal(str)

    def __init__(
        self,
        engine: Engine,
        make_transport: TransportFactory,
        *,
        organization_id: uuid.UUID,
        batch_id: uuid.UUID | None = None,
        retry: RetryPolicy | None = None,
        control: SendControl | None = None,
        link: ServerLink | None = None,
    ) -> None:
        super().__init__()
        self._engine = engine
        self._link = link  # replica mode: claims on the server (services/invitations/parallel)
        self._make_transport = make_transport
        self.organization_id = organization_id
        self.batch_id = batch_id
        self._retry = retry
        self.control = control or SendControl()
        # Set before `failed` when a setting is missing: the page that sets it ("organization").
        self.settings_page: str | None = None

    def pause(self) -> None:
        self.control.pause()

    def resume(self) -> None:
        self.control.resume()

    def cancel(self) -> None:
        self.control.cancel()

    @property
    def paused(self) -> bool:
        return self.control.paused

    @Slot()
    def run(self) -> None:
        """The thread's entry point: runs the outbox to the end, then hands itself back."""
        try:
            # Its own unit of work: a UnitOfWork keeps the open session on itself, so one
            # instance must never be used by two threads at the same time. K connections
            # (the mail settings say how many), each lane with a transport of its own.
            sender = ParallelSender(
                UnitOfWork(self._engine),
                self._make_transport,
                organization_id=self.organization_id,
                batch_id=self.batch_id,
                retry=self._retry,
                control=self.control,
                on_progress=self.progressed.emit,
                link=self._link,
            )
            report = sender.run()
        except DomainError as exc:
            if isinstance(exc, SettingsIncomplete):
                self.settings_page = exc.settings_page
            self._hand_back()
            self.failed.emit(str(exc))
            return
        except Exception as exc:  # a bug or a database outage: say so, keep the window alive
            log.exception("sending stopped unexpectedly")
            self._hand_back()
            self.failed.emit(f"Sending stopped unexpectedly ({type(exc).__name__}: {exc}).")
            return
        self._hand_back()
        self.finished.emit(report)

    def _hand_back(self) -> None:
        """Move back to the GUI thread so the worker can be released from there."""
        app = QCoreApplication.instance()
        if app is not None:
            self.moveToThread(app.thread())


class SendJob(QObject):
    """Owns one QThread running one SendWorker; `stop()` cancels and joins it."""

    def __init__(self, worker: SendWorker, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.worker = worker
        self.qthread = QThread(self)
        self.qthread.setObjectName("invite-desk-sender")
        worker.moveToThread(self.qthread)
        self.qthread.started.connect(worker.run)
        # Direct: quit() is thread-safe, and a GUI thread blocked in stop() could not run a
        # queued call, so the thread would never end.
        worker.finished.connect(self.qthread.quit, Qt.ConnectionType.DirectConnection)
        worker.failed.connect(self.qthread.quit, Qt.ConnectionType.DirectConnection)

    def start(self) -> None:
        self.qthread.start()

    @property
    def running(self) -> bool:
        return self.qthread.isRunning()

    def join(self, wait_ms: int = 10_000) -> bool:
        """After the worker reported: end the thread's event loop and wait for the thread."""
        self.qthread.quit()
        return self.qthread.wait(wait_ms)

    def stop(self, wait_ms: int = 60_000) -> bool:
        """Cancel and wait for the thread to end; True when it has ended.

        Cancel takes effect between two messages (or at once while waiting for the rate
        limit or a retry), so this waits at most for one SMTP exchange to finish.
        """
        if not self.qthread.isRunning():
            return True
        self.worker.cancel()
        return self.qthread.wait(wait_ms)
