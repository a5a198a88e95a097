"""The background task helper: results and errors come back on the GUI thread."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from PySide6.QtCore import QThreadPool
from PySide6.QtWidgets import QPushButton
from pytestqt.qtbot import QtBot

from invite_desk.services.errors import Conflict
from invite_desk.ui.tasks import BackgroundTask, SynchronousRunner, ThreadPoolRunner, error_message


@pytest.fixture
def pool() -> Iterator[QThreadPool]:
    pool = QThreadPool()
    yield pool
    pool.waitForDone()


def test_work_runs_on_a_pool_thread_and_the_result_arrives_on_the_gui_thread(
    qtbot: QtBot, pool: QThreadPool
) -> None:
    button = QPushButton("Send")
    qtbot.addWidget(button)
    release = threading.Event()
    seen: dict[str, object] = {}

    def work() -> int:
        seen["worker"] = threading.current_thread()
        release.wait(5)
        return 42

    def done(value: int) -> None:
        seen["callback"] = threading.current_thread()
        seen["value"] = value
        seen["enabled_in_callback"] = button.isEnabled()

    task = BackgroundTask(work, widget=button).on_success(done)
    with qtbot.waitSignal(task.finished, timeout=5000):
        task.run_in_background(ThreadPoolRunner(pool))
        assert not button.isEnabled()  # disabled while the work runs
        release.set()

    assert seen["value"] == 42
    assert seen["worker"] is not threading.main_thread()
    assert seen["callback"] is threading.main_thread()
    assert seen["enabled_in_callback"] is True
    assert button.isEnabled()


def test_an_error_comes_back_to_the_failure_callback(qtbot: QtBot, pool: QThreadPool) -> None:
    errors: list[BaseException] = []

    def work() -> None:
        raise Conflict("The invitation was revoked meanwhile.")

    task = BackgroundTask(work).on_failure(errors.append)
    with qtbot.waitSignal(task.failed, timeout=5000) as failed:
        task.run_in_background(ThreadPoolRunner(pool))
    assert failed.args[0] is errors[0]
    assert error_message(errors[0]) == "The invitation was revoked meanwhile."


def test_the_synchronous_runner_finishes_inside_the_call(qtbot: QtBot) -> None:
    results: list[str] = []
    BackgroundTask(lambda: "done").on_success(results.append).run_in_background(
        SynchronousRunner()
    )
    assert results == ["done"]


def test_a_task_runs_only_once() -> None:
    task = BackgroundTask(lambda: None)
    task.run_in_background(SynchronousRunner())
    with pytest.raises(RuntimeError):
        task.run_in_background(SynchronousRunner())


def test_unexpected_errors_get_a_generic_message() -> None:
    assert error_message(ZeroDivisionError("division by zero")) == (
        "Something went wrong: division by zero"
    )
