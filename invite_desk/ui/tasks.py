"""Background work for windows, in the manner of Anki's QueryOp.

    BackgroundTask(lambda: invitations.send(uow, ...), widget=self.send_button)
        .on_success(self._show_result)
        .on_failure(self._show_error)
        .run_in_background(runner)

The function runs on a QThreadPool thread and must not touch widgets; its result or exception
comes back on the GUI thread. The widget that started the work is disabled meanwhile.
Tests pass a `SynchronousRunner` so everything happens inside the call.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, Generic, Protocol, Self, TypeVar

import shiboken6
from PySide6.QtCore import QObject, QThreadPool, Signal, Slot
from PySide6.QtWidgets import QWidget

from invite_desk.services.errors import DomainError

log = logging.getLogger(__name__)

T = TypeVar("T")


_background = threading.local()


def in_background_work() -> bool:
    """True while the calling thread runs a task's function: on a pool thread, or on the GUI
    thread itself under a `SynchronousRunner` (tests). The GUI-thread guard of the UI tests
    accepts database work only there."""
    return getattr(_background, "depth", 0) > 0


def error_message(exc: BaseException) -> str:
    """What to tell a person about `exc`: a domain error's own message, else a generic line."""
    if isinstance(exc, DomainError):
        return exc.message
    return f"Something went wrong: {exc}"


class TaskRunner(Protocol):
    def start(self, task: BackgroundTask[Any]) -> None: ...


class _Outcome:
    __slots__ = ("error", "value")

    def __init__(self, value: object = None, error: BaseException | None = None) -> None:
        self.value = value
        self.error = error


class BackgroundTask(QObject, Generic[T]):
    """One piece of work; each instance runs once."""

    succeeded = Signal(object)  # the function's result
    failed = Signal(object)  # the exception
    finished = Signal()  # after either, once the callbacks have run

    _completed = Signal(object)  # private: worker thread -> GUI thread
    _alive: set[BackgroundTask[Any]] = set()  # running tasks, kept from garbage collection

    def __init__(self, fn: Callable[[], T], *, widget: QWidget | None = None) -> None:
        super().__init__()
        self._fn = fn
        self._widget = widget
        self._on_success: Callable[[T], None] | None = None
        self._on_failure: Callable[[BaseException], None] | None = None
        self._started = False
        # The task lives on the GUI thread, so this connection is queued when the worker emits.
        self._completed.connect(self._deliver)

    def on_success(self, callback: Callable[[T], None]) -> Self:
        self._on_success = callback
        return self

    def on_failure(self, callback: Callable[[BaseException], None]) -> Self:
        self._on_failure = callback
        return self

    def run_in_background(self, runner: TaskRunner | None = None) -> None:
        if self._started:
            raise RuntimeError("a BackgroundTask runs only once")
        self._started = True
        BackgroundTask._alive.add(self)
        if self._widget is not None:
            self._widget.setEnabled(False)
        (runner or ThreadPoolRunner()).start(self)

    def execute(self) -> None:
        """Run the function (on whatever thread calls this) and report back on the GUI thread."""
        _background.depth = getattr(_background, "depth", 0) + 1
        try:
            outcome = _Outcome(value=self._fn())
        except Exception as exc:  # reported to the GUI thread, never raised into Qt
            outcome = _Outcome(error=exc)
        finally:
            _background.depth -= 1
        self._completed.emit(outcome)

    @Slot(object)
    def _deliver(self, outcome: _Outcome) -> None:
        BackgroundTask._alive.discard(self)
        widget = self._widget
        if widget is not None and shiboken6.isValid(widget):
            widget.setEnabled(True)
        try:
            if outcome.error is None:
                if self._on_success is not None:
                    self._on_success(outcome.value)  # type: ignore[arg-type]
                self.succeeded.emit(outcome.value)
            else:
                self._report_failure(outcome.error)
                self.failed.emit(outcome.error)
        finally:
            self.finished.emit()

    def _report_failure(self, error: BaseException) -> None:
        if self._on_failure is not None:
            self._on_failure(error)
            return
        if not isinstance(error, DomainError):
            log.error("Background task failed", exc_info=error)
        widget = self._widget
        if widget is not None and shiboken6.isValid(widget):
            from invite_desk.ui.widgets import warn

            warn(widget.window(), "Invite Desk", error_message(error))


class ThreadPoolRunner:
    """Runs tasks on a QThreadPool (the global one unless given)."""

    def __init__(self, pool: QThreadPool | None = None) -> None:
        self.pool = pool or QThreadPool.globalInstance()

    def start(self, task: BackgroundTask[Any]) -> None:
        self.pool.start(task.execute)


class SynchronousRunner:
    """Runs tasks immediately on the calling thread: for tests and command-line tools."""

    def start(self, task: BackgroundTask[Any]) -> None:
        task.execute()


def run_for(
    owner: QObject,
    work: Callable[[], T],
    on_done: Callable[[T], Any],
    on_failed: Callable[[BaseException], None],
    runner: TaskRunner | None = None,
) -> None:
    """Run `work` off the GUI thread for `owner` (a page or window): the callbacks run on the
    GUI thread, and not at all if `owner` was deleted meanwhile (the user closed it)."""

    def done(result: T) -> None:
        if shiboken6.isValid(owner):
            on_done(result)

    def failed(error: BaseException) -> None:
        if shiboken6.isValid(owner):
            on_failed(error)

    BackgroundTask(work).on_success(done).on_failure(failed).run_in_background(runner)
