"""Issue 9: pages are views of the operations hub. They start no threads of their own (the
import-linter contract in pyproject.toml forbids SQLAlchemy, the unit of work and
invite_desk.app; Qt's thread classes are names inside PySide6.QtCore, so they are checked
here), and the GUI-thread guard (tests/ui/conftest.py) catches database work on the GUI thread."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from pytestqt.qtbot import QtBot
from sqlalchemy import Engine

from invite_desk.app import AppContext
from invite_desk.services import settings
from invite_desk.services.credentials import MemoryCredentialStore
from invite_desk.services.operator import Operator
from invite_desk.services.uow import UnitOfWork
from invite_desk.ui.main_window import MainWindow
from invite_desk.ui.tasks import SynchronousRunner
from tests.ui.conftest import PAGE_PACKAGES, GuiThreadGuard

UI = Path(__file__).resolve().parents[2] / "invite_desk" / "ui"
THREADS = re.compile(r"\b(QThread|QThreadPool|QRunnable|threading|BackgroundTask|run_for|"
                     r"concurrent\.futures|ThreadPoolExecutor)\b")


@pytest.fixture
def context(engine: Engine, uow: UnitOfWork) -> AppContext:
    return AppContext(engine=engine, uow=uow, credentials=MemoryCredentialStore(),
                      database_label="test")


def page_sources() -> list[Path]:
    return sorted(path for name in PAGE_PACKAGES if (UI / name).is_dir()
                  for path in (UI / name).rglob("*.py"))


def test_page_packages_start_no_threads_of_their_own() -> None:
    sources = page_sources()
    assert len(sources) >= 10  # compose, invitations, applications, members, settings...
    offending = [
        f"{path.relative_to(UI.parent)}:{number}: {line.strip()}"
        for path in sources
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if THREADS.search(line.split("#")[0])
    ]
    assert offending == [], "pages hand their background work to the hub:\n" + "\n".join(
        offending)


def test_the_check_would_see_a_thread_class() -> None:
    assert THREADS.search("from PySide6.QtCore import QThreadPool, Signal")
    assert THREADS.search("import threading")
    assert not THREADS.search("self.hub.query(self, work, done)")


def run_as_page_code(source: str, namespace: dict[str, Any]) -> None:
    """Run `source` as if it were written in a page package (its frames say so)."""
    exec(compile(source, str(UI / "compose" / "imagined.py"), "exec"), namespace)  # noqa: S102


def test_the_guard_catches_a_page_reading_on_the_gui_thread(
    gui_thread_guard: GuiThreadGuard, context: AppContext, admin: Operator
) -> None:
    namespace = {"uow": context.uow, "org": admin.organization_id, "settings": settings}
    settings.get_settings(context.uow, admin.organization_id)  # the test's own read: fine
    assert gui_thread_guard.violations == []
    run_as_page_code("settings.get_settings(uow, org)", namespace)
    assert len(gui_thread_guard.violations) >= 1
    assert "a unit of work was opened on the GUI thread" in gui_thread_guard.violations[0]
    assert "compose/imagined.py" in gui_thread_guard.violations[0]
    gui_thread_guard.violations.clear()

    # The same read handed to the hub (here run in place by a SynchronousRunner) is fine.
    from invite_desk.ui.hub import OperationsHub

    hub = OperationsHub(runner=SynchronousRunner())
    namespace["hub"], namespace["got"] = hub, []
    run_as_page_code("hub.query(hub, lambda: settings.get_settings(uow, org), got.append)",
                     namespace)
    assert namespace["got"] and gui_thread_guard.violations == []


def test_the_guard_catches_app_code_on_the_gui_thread_once_the_main_window_shows(
    qtbot: QtBot, gui_thread_guard: GuiThreadGuard, context: AppContext, admin: Operator,
) -> None:
    window = MainWindow(context, admin, None, remember_geometry=False)  # reads before: fine
    qtbot.addWidget(window)
    assert gui_thread_guard.violations == [] and not gui_thread_guard.windows_shown
    window.show()
    assert gui_thread_guard.windows_shown == 1
    qtbot.wait(50)
    assert gui_thread_guard.violations == []  # every page read in the background

    # What the main window did before issue 9: re-read the policy on the GUI thread.
    uow, org = context.uow, admin.organization_id
    exec(compile("settings.get_settings(uow, org)",  # noqa: S102
                 str(UI / "main_window.py"), "exec"),
         {"settings": settings, "uow": uow, "org": org})
    assert any("a unit of work was opened" in v for v in gui_thread_guard.violations)
    assert any("a database connection was checked out" in v
               for v in gui_thread_guard.violations)
    gui_thread_guard.violations.clear()

    window.refresh()  # today: a hub query
    qtbot.waitUntil(lambda: window.hub.in_flight == 0, timeout=10_000)
    assert gui_thread_guard.violations == []
    assert window.finish_background_work(30_000)
