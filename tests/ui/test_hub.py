"""The operations hub: newest query wins, closed pages get nothing, mutations broadcast what
changed, and shutdown waits for the work in flight."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from PySide6.QtWidgets import QWidget
from pytestqt.qtbot import QtBot

from invite_desk.services.errors import Conflict
from invite_desk.ui.hub import INVITATIONS, MEMBERS, Changes, OperationsHub


@pytest.fixture
def hub() -> Iterator[OperationsHub]:
    hub = OperationsHub()
    yield hub
    hub.shutdown(10_000)


def test_query_runs_off_the_gui_thread_and_delivers_on_it(qtbot: QtBot,
                                                         hub: OperationsHub) -> None:
    owner = QWidget()
    qtbot.addWidget(owner)
    seen: dict[str, object] = {}

    def work() -> int:
        seen["worker"] = threading.current_thread()
        return 7

    hub.query(owner, work, lambda value: seen.update(value=value,
                                                     gui=threading.current_thread()))
    qtbot.waitUntil(lambda: "value" in seen, timeout=5_000)
    assert seen["value"] == 7
    assert seen["gui"] is threading.main_thread()
    assert seen["worker"] is not threading.main_thread()
    qtbot.waitUntil(lambda: hub.in_flight == 0, timeout=5_000)


def test_newest_query_per_owner_and_key_wins(qtbot: QtBot, hub: OperationsHub) -> None:
    owner = QWidget()
    qtbot.addWidget(owner)
    slow_release = threading.Event()
    results: list[str] = []
    other: list[str] = []

    def slow() -> str:
        slow_release.wait(5)
        return "old"

    hub.query(owner, slow, results.append, key="rows")
    hub.query(owner, lambda: "new", results.append, key="rows")
    hub.query(owner, lambda: "counts", other.append, key="counts")  # another key: kept
    qtbot.waitUntil(lambda: results == ["new"] and other == ["counts"], timeout=5_000)
    slow_release.set()
    qtbot.waitUntil(lambda: hub.in_flight == 0, timeout=5_000)
    assert results == ["new"]  # the older answer arrived last and was dropped


def test_results_and_errors_for_a_deleted_owner_are_dropped(qtbot: QtBot,
                                                           hub: OperationsHub) -> None:
    owner = QWidget()
    release = threading.Event()
    delivered: list[object] = []

    def work() -> int:
        release.wait(5)
        return 1

    def broken() -> int:
        release.wait(5)
        raise Conflict("nope")

    hub.query(owner, work, delivered.append, delivered.append, key="a")
    hub.query(owner, broken, delivered.append, delivered.append, key="b")
    owner.deleteLater()
    qtbot.waitUntil(lambda: not hub._watched, timeout=5_000)  # the page is gone
    release.set()
    qtbot.waitUntil(lambda: hub.in_flight == 0, timeout=5_000)
    assert delivered == []


def test_mutation_broadcasts_its_changes_and_origin_then_calls_done(
        qtbot: QtBot, hub: OperationsHub) -> None:
    owner = QWidget()
    qtbot.addWidget(owner)
    order: list[object] = []
    hub.changed.connect(lambda changes: order.append(changes))
    with qtbot.waitSignal(hub.changed, timeout=5_000) as signal:
        hub.mutate(owner, lambda: "done", {INVITATIONS, MEMBERS}, order.append)
    changes = signal.args[0]
    assert isinstance(changes, Changes)
    assert changes.kinds == frozenset({INVITATIONS, MEMBERS}) and changes.origin is owner
    assert changes.touches(MEMBERS) and not changes.touches("applications")
    qtbot.waitUntil(lambda: len(order) == 2, timeout=5_000)
    assert order[1] == "done"  # views were told before the page that asked


def test_a_failed_mutation_broadcasts_nothing_and_reports_the_error(
        qtbot: QtBot, hub: OperationsHub) -> None:
    owner = QWidget()
    qtbot.addWidget(owner)
    broadcasts: list[Changes] = []
    errors: list[BaseException] = []
    hub.changed.connect(broadcasts.append)

    def fail() -> None:
        raise Conflict("Someone else changed it first.")

    hub.mutate(owner, fail, {INVITATIONS}, error=errors.append)
    qtbot.waitUntil(lambda: bool(errors), timeout=5_000)
    assert broadcasts == [] and str(errors[0]) == "Someone else changed it first."


def test_a_mutation_whose_page_closed_still_tells_the_other_views(
        qtbot: QtBot, hub: OperationsHub) -> None:
    owner = QWidget()
    release = threading.Event()
    broadcasts: list[Changes] = []
    done: list[object] = []
    hub.changed.connect(broadcasts.append)
    hub.mutate(owner, lambda: release.wait(5), {MEMBERS}, done.append)
    owner.deleteLater()
    qtbot.waitUntil(lambda: not hub._watched, timeout=5_000)
    release.set()
    qtbot.waitUntil(lambda: bool(broadcasts), timeout=5_000)
    assert broadcasts[0].kinds == frozenset({MEMBERS}) and done == []


def test_unknown_kinds_are_refused_before_any_work() -> None:
    hub = OperationsHub()
    ran: list[int] = []
    with pytest.raises(ValueError, match="membres"):
        hub.mutate(None, lambda: ran.append(1), {"membres"})
    assert ran == [] and hub.in_flight == 0


def test_shutdown_waits_for_work_in_flight_and_refuses_new_work(qtbot: QtBot) -> None:
    hub = OperationsHub()
    owner = QWidget()
    qtbot.addWidget(owner)
    started = threading.Event()
    results: list[str] = []
    counts: list[int] = []
    hub.in_flight_changed.connect(counts.append)

    def work() -> str:
        started.set()
        threading.Event().wait(0.3)
        return "finished"

    hub.mutate(owner, work, {INVITATIONS}, results.append)
    assert started.wait(5) and hub.in_flight == 1 and hub.writes_in_flight == 1
    assert hub.shutdown(10_000)
    assert results == ["finished"] and hub.in_flight == 0 and counts == [1, 0]
    assert hub.writes_in_flight == 0
    assert not hub.query(owner, lambda: 1, results.append)
    assert not hub.mutate(owner, lambda: 1, {MEMBERS}, results.append)
    assert hub.in_flight == 0 and results == ["finished"]


def test_a_query_without_a_key_delivers_every_result(qtbot: QtBot, hub: OperationsHub) -> None:
    owner = QWidget()
    qtbot.addWidget(owner)
    results: list[int] = []
    for n in range(3):
        hub.query(owner, lambda n=n: n, results.append, key=None)
    qtbot.waitUntil(lambda: len(results) == 3, timeout=5_000)
    assert sorted(results) == [0, 1, 2]


def test_a_mutation_may_say_what_changed_from_its_result(qtbot: QtBot, hub: OperationsHub) -> None:
    """E.g. the expiry sweep: a broadcast only when something expired."""
    owner = QWidget()
    qtbot.addWidget(owner)
    broadcasts: list[Changes] = []
    results: list[int] = []
    hub.changed.connect(broadcasts.append)

    def kinds(count: int) -> set[str]:
        return {INVITATIONS, MEMBERS} if count else set()

    hub.mutate(owner, lambda: 0, kinds, results.append)
    qtbot.waitUntil(lambda: results == [0], timeout=5_000)
    assert broadcasts == [] and hub.writes_in_flight == 0
    hub.mutate(owner, lambda: 3, kinds, results.append)
    qtbot.waitUntil(lambda: results == [0, 3], timeout=5_000)
    assert [b.kinds for b in broadcasts] == [frozenset({INVITATIONS, MEMBERS})]
    assert broadcasts[0].origin is owner
