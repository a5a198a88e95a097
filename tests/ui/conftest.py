"""UI test setup. Shared fixtures (database, operators) are in tests/conftest.py."""

from __future__ import annotations

import contextlib
import gc
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QCoreApplication, QEvent
from PySide6.QtGui import QHideEvent, QShowEvent

from invite_desk.ui.tasks import in_background_work

# The offscreen platform warns on every top-level show(); harmless, but qt_log_level_fail would
# fail every test that shows a window. (Better placed in pyproject's `qt_log_ignore`.)
HEADLESS_NOISE = r"^This plugin does not support propagateSizeHints\(\)$"

_HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in Path(item.path).resolve().parents:
            item.add_marker(pytest.mark.qt_log_ignore(HEADLESS_NOISE))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Iterator[None]:
    """After every fixture of a UI test is torn down, free the windows it left behind.

    Windows are held in reference cycles (signals connected to their own methods), so Python
    frees them only when its collector happens to run: hundreds of dead top-level widgets
    (a main window is ~70) piled up in a worker, and every stylesheet or palette change
    restyled them all (the run_gui test took 20-60 s after a few dozen others, 5 s alone).
    Freeing them here needs care: a window owning a QThread that is still running (a sender
    that was told to quit but has not ended yet) aborts the process when it is freed, so
    every job is stopped and every thread joined first.

    What survives the collection is still referenced (modules, caches, session fixtures):
    `gc.freeze()` moves it out of the collector's sight, so the next test's collection
    (and search for threads) looks only at what that test made: 0.5-2 s per test before,
    a few tens of ms after."""
    result = yield
    free_what_tests_left()
    return result


def free_what_tests_left() -> None:
    """Join the threads, then free the unreachable windows (and everything else unreachable)."""
    _join_background_threads()
    gc.collect()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    gc.freeze()


@pytest.fixture
def free_left_behind() -> Callable[[], None]:
    """What every UI test's teardown runs (tests/ui/test_widget_lifetime.py)."""
    return free_what_tests_left


def _join_background_threads() -> None:
    """Stop the send/notify jobs and hubs a test left running, then wait for every QThread:
    freeing a QObject whose QThread still runs is a fatal error in Qt."""
    from PySide6.QtCore import QThread, QThreadPool

    from invite_desk.ui.hub import OperationsHub
    from invite_desk.ui.notify_worker import NotifyJob
    from invite_desk.ui.send_worker import SendJob

    objects = gc.get_objects()
    jobs = [o for o in objects if isinstance(o, (SendJob, NotifyJob))]
    hubs = [o for o in objects if isinstance(o, OperationsHub)]
    threads = [o for o in objects if isinstance(o, QThread)]
    del objects
    for job in jobs:
        with contextlib.suppress(RuntimeError):  # its C++ object is already gone
            job.stop(30_000)
    for hub in hubs:
        with contextlib.suppress(RuntimeError):
            hub.pool.waitForDone(30_000)
    QThreadPool.globalInstance().waitForDone(30_000)
    for thread in threads:
        with contextlib.suppress(RuntimeError):
            if thread.isRunning() and thread is not QThread.currentThread():
                thread.quit()
                thread.wait(30_000)


class Confirmations:
    """Stands in for the person answering `widgets.confirm`: records each question, answers
    `answer` (True: the action button, False: Cancel)."""

    def __init__(self) -> None:
        self.answer = True
        self.asked: list[dict[str, str]] = []

    def __call__(self, parent: object, title: str, text: str, *, informative: str = "",
                 action: str = "OK") -> bool:
        self.asked.append({"title": title, "text": text, "informative": informative,
                           "action": action})
        return self.answer


@pytest.fixture(autouse=True)
def confirmations(monkeypatch: pytest.MonkeyPatch) -> Confirmations:
    """No test blocks on a confirmation box: every one is answered (yes unless told)."""
    from invite_desk.ui import widgets

    answers = Confirmations()
    monkeypatch.setattr(widgets, "confirm", answers)
    return answers


# ------------------------------------------------------------------ the GUI-thread guard
# No database work on the GUI thread once the main window is shown (issue 9): a remote
# PostgreSQL or MariaDB server would freeze the window. Pages hand their reads and writes to
# the operations hub; the hub runs them on its threads (or, under a SynchronousRunner, inside
# a task, which `in_background_work()` recognizes).
_UI_DIR = Path(__file__).resolve().parents[2] / "invite_desk" / "ui"
PAGE_PACKAGES = ("compose", "invitations", "applications", "members", "settings", "referrals",
                 "admin", "units", "events", "audit")


def _app_frames() -> list[str]:
    """The invite_desk/ui frames on the calling stack, innermost first ("file:line fn")."""
    frames = []
    frame = sys._getframe(2)
    while frame is not None:
        path = Path(frame.f_code.co_filename)
        if _UI_DIR in path.parents:
            frames.append(f"{path.relative_to(_UI_DIR.parent)}:{frame.f_lineno} "
                          f"{frame.f_code.co_name}")
        frame = frame.f_back
    return frames


class GuiThreadGuard:
    """Records every unit of work opened and every connection checked out on the GUI thread
    by the app's code (not by the test's own set-up and assertions), outside hub work,
    while a main window is shown, or at any time from a page package. (A main window reads
    its first state in its constructor, before it is shown; signing out and in again builds
    a new one after the old one closed.)"""

    def __init__(self) -> None:
        self.windows_shown = 0
        self.ever_shown = False
        self.violations: list[str] = []
        self.allowed = 0

    def check(self, what: str) -> None:
        if (self.allowed or threading.current_thread() is not threading.main_thread()
                or in_background_work()):
            return
        frames = _app_frames()
        if not frames:  # the test itself (seeding before or asserting after)
            return
        from_page = any(frame.split("/")[1] in PAGE_PACKAGES for frame in frames
                        if frame.count("/") >= 2)
        if self.windows_shown or from_page:
            self.violations.append(f"{what} on the GUI thread, from:\n    "
                                   + "\n    ".join(frames[:6]))

    @contextlib.contextmanager
    def allow(self) -> Iterator[None]:
        """For a test that checks the guard itself."""
        self.allowed += 1
        try:
            yield
        finally:
            self.allowed -= 1


@pytest.fixture(autouse=True)
def gui_thread_guard(monkeypatch: pytest.MonkeyPatch) -> Iterator[GuiThreadGuard]:
    """Fails the test (at its end, with where it happened) when the app opened a unit of work
    or checked out a database connection on the GUI thread while a main window is shown,
    or from a page at any time. Work built by the test before showing is fine."""
    from sqlalchemy import event
    from sqlalchemy.pool import Pool

    from invite_desk.services.uow import UnitOfWork
    from invite_desk.ui.main_window import MainWindow

    guard = GuiThreadGuard()
    enter = UnitOfWork.__enter__
    shown = MainWindow.showEvent
    hidden = MainWindow.hideEvent

    def guarded_enter(self: UnitOfWork) -> UnitOfWork:
        guard.check("a unit of work was opened")
        return enter(self)

    def on_checkout(*_args: object) -> None:
        guard.check("a database connection was checked out")

    def show_event(self: MainWindow, event_: QShowEvent) -> None:
        if not event_.spontaneous():
            guard.windows_shown += 1
            guard.ever_shown = True
        shown(self, event_)

    def hide_event(self: MainWindow, event_: QHideEvent) -> None:
        if not event_.spontaneous():
            guard.windows_shown = max(guard.windows_shown - 1, 0)
        hidden(self, event_)

    monkeypatch.setattr(UnitOfWork, "__enter__", guarded_enter)
    monkeypatch.setattr(MainWindow, "showEvent", show_event)
    monkeypatch.setattr(MainWindow, "hideEvent", hide_event)
    event.listen(Pool, "checkout", on_checkout)
    try:
        yield guard
    finally:
        event.remove(Pool, "checkout", on_checkout)
    if guard.violations:
        unique = list(dict.fromkeys(guard.violations))
        pytest.fail("Database work on the GUI thread (hand it to the hub):\n"
                    + "\n".join(unique[:5]), pytrace=False)
