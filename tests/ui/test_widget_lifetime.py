"""The UI tests' teardown (tests/ui/conftest.py) frees the windows a test left behind, even
when they sit in a reference cycle and own a QThread that is still running. Before, they piled
up in the worker (hundreds of top-level widgets) until Python's collector happened to run, and
every stylesheet change restyled them all."""

from __future__ import annotations

import weakref
from collections.abc import Callable

from PySide6.QtCore import QThread
from PySide6.QtWidgets import QApplication, QMainWindow, QPushButton


class _Window(QMainWindow):
    """A window in a reference cycle, like the app's pages (which hold views that hold them
    back), owning a running thread, like the outbox's sender. (A lambda that captures the
    window, connected to one of its children's signals, would keep it alive for good: Qt holds
    that lambda, out of Python's collector's sight. The app's windows connect bound methods,
    which Qt does not keep alive.)"""

    def __init__(self) -> None:
        super().__init__()
        self.setObjectName("left-behind")
        button = QPushButton("Go", self)
        self.setCentralWidget(button)
        button.clicked.connect(self.close)
        self.cycle = self
        self.worker_thread = QThread(self)  # an event loop that runs until quit()
        self.worker_thread.start()


def _left_behind() -> list[object]:
    return [w for w in QApplication.topLevelWidgets() if w.objectName() == "left-behind"]


def test_a_window_left_in_a_cycle_with_its_thread_running_is_joined_and_freed(
    qapp: QApplication, free_left_behind: Callable[[], None],
) -> None:
    """Freeing a QThread that still runs aborts the process ("QThread: Destroyed while
    thread is still running"): the thread is joined before the window is freed."""
    window = _Window()
    window.show()
    thread = window.worker_thread
    assert thread.isRunning()
    ref = weakref.ref(window)
    del window, thread
    assert ref() is not None and _left_behind()  # only the collector can free a cycle

    free_left_behind()

    assert ref() is None
    assert _left_behind() == []


def test_what_is_still_referenced_stays(
    qapp: QApplication, free_left_behind: Callable[[], None],
) -> None:
    window = _Window()
    free_left_behind()
    assert not window.worker_thread.isRunning()  # joined: the test is over
    window.setWindowTitle("still usable")
    assert window.windowTitle() == "still usable"
    window.close()
