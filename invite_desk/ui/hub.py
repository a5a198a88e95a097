"""The operations hub: one owner for the desktop's background work.

In the spirit of Anki's QueryOp/CollectionOp (with its `operation_did_execute` broadcast) and
Frescobaldi's job manager. The main window creates one hub and hands it to every page:

    hub.query(self, lambda: list_members(uow, op, q), self._show, self._failed, key="rows")
    hub.mutate(self, lambda: revoke(uow, op, ids), changes={INVITATIONS}, done=self._revoked)

* `query` reads in the background. Per (owner, key) the newest request wins: the result of an
  older one is dropped. Nothing is delivered to an owner that was deleted meanwhile.
* `mutate` writes in the background, then broadcasts `changed(Changes)`: the kinds of data
  that changed and who started it, so every open view can follow (whether or not the owner
  still exists: the write happened).
* `in_flight` counts the operations whose callbacks have not run yet; `shutdown()` refuses new
  work (query/mutate return False) and waits for what runs, so the process never exits under a worker.

Functions run on the hub's own QThreadPool (tests pass a `SynchronousRunner`) and must not
touch widgets; callbacks run on the GUI thread.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import shiboken6
from PySide6.QtCore import QCoreApplication, QEventLoop, QObject, QThreadPool, Signal

from invite_desk.ui.tasks import BackgroundTask, TaskRunner, ThreadPoolRunner

log = logging.getLogger(__name__)

T = TypeVar("T")

# The kinds of data a mutation can change (what `Changes.kinds` holds).
INVITATIONS = "invitations"
MEMBERS = "members"
APPLICATIONS = "applications"
SETTINGS = "settings"
REFERRALS = "referrals"
SUPPRESSION = "suppression"  # the suppression list (issue 13)
KINDS = frozenset({INVITATIONS, MEMBERS, APPLICATIONS, SETTINGS, REFERRALS, SUPPRESSION})


@dataclass(frozen=True)
class Changes:
    """What a finished mutation changed, and who started it (a page, the outbox, ...)."""

    kinds: frozenset[str]
    origin: object | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        unknown = set(self.kinds) - KINDS
        if unknown:
            raise ValueError(f"unknown kinds of change: {', '.join(sorted(unknown))}")

    def touches(self, *kinds: str) -> bool:
        return any(kind in self.kinds for kind in kinds)


class OperationsHub(QObject):
    changed = Signal(object)  # Changes, after a mutation (or a broadcast)
    in_flight_changed = Signal(int)

    def __init__(self, parent: QObject | None = None, *, runner: TaskRunner | None = None,
                 max_threads: int = 4) -> None:
        super().__init__(parent)
        self.setObjectName("OperationsHub")
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(max_threads)
        self.runner: TaskRunner = runner or ThreadPoolRunner(self.pool)
        self._generations: dict[tuple[int, Hashable], int] = {}
        self._watched: set[int] = set()
        self._in_flight = 0
        self._writes_in_flight = 0
        self._closed = False

    # -- state ----------------------------------------------------------------------------
    @property
    def in_flight(self) -> int:
        """Operations started whose callbacks have not run yet."""
        return self._in_flight

    @property
    def writes_in_flight(self) -> int:
        """Mutations started whose callbacks have not run yet (quitting asks about these;
        reads are simply waited for)."""
        return self._writes_in_flight

    @property
    def closed(self) -> bool:
        return self._closed

    # -- work -----------------------------------------------------------------------------
    def query(
        self,
        owner: QObject,
        fn: Callable[[], T],
        done: Callable[[T], Any],
        error: Callable[[BaseException], Any] | None = None,
        *,
        key: Hashable | None = "",
    ) -> bool:
        """Read in the background; `done(result)` on the GUI thread, unless a newer query of
        the same (owner, key) was started since, or `owner` was deleted. With `key=None`
        every result is delivered (work whose every answer matters, e.g. an export).
        False when the hub is shut down and the work was not started."""
        if self._closed:
            log.info("not started: the hub is shut down")
            return False
        generation = 0 if key is None else self._next_generation(owner, key)

        def current() -> bool:
            if not shiboken6.isValid(owner):
                return False
            return key is None or self._generations.get((id(owner), key)) == generation

        self._start(fn, lambda result: done(result) if current() else None,
                    lambda exc: self._fail(exc, error) if current() else None)
        return True

    def mutate(
        self,
        owner: QObject | None,
        fn: Callable[[], T],
        changes: Iterable[str] | Callable[[T], Iterable[str]],
        done: Callable[[T], Any] | None = None,
        error: Callable[[BaseException], Any] | None = None,
    ) -> bool:
        """Write in the background; on success broadcast `changes` (from `owner`), then call
        `done(result)` if the owner still exists. A failed write broadcasts nothing.
        `changes` may be a function of the result (e.g. nothing when nothing expired): an
        empty set broadcasts nothing.
        False when the hub is shut down and the work was not started."""
        if callable(changes):
            say = changes
            kinds = None
        else:  # checks the kinds before any work starts
            kinds = Changes(frozenset(changes), owner)
        if self._closed:
            log.info("not started: the hub is shut down")
            return False

        def succeeded(result: T) -> None:
            self._writes_in_flight -= 1
            said = kinds if kinds is not None else Changes(frozenset(say(result)), owner)
            if said.kinds:
                self.changed.emit(said)
            if done is not None and (owner is None or shiboken6.isValid(owner)):
                done(result)

        def failed(exc: BaseException) -> None:
            self._writes_in_flight -= 1
            if owner is None or shiboken6.isValid(owner):
                self._fail(exc, error)
            else:
                log.warning("background change failed after its page closed: %s", exc)

        self._writes_in_flight += 1
        self._start(fn, succeeded, failed)
        return True

    def broadcast(self, changes: Iterable[str], origin: object | None = None) -> None:
        """Say that `changes` happened (for work that ran elsewhere, e.g. the outbox)."""
        self.changed.emit(Changes(frozenset(changes), origin))

    def shutdown(self, timeout_ms: int = 30_000) -> bool:
        """Refuse new work, wait for the running work and deliver its results; True when
        nothing is left in flight."""
        self._closed = True
        deadline = time.monotonic() + timeout_ms / 1000
        finished = self.pool.waitForDone(max(timeout_ms, 0))
        # Results are posted to the GUI thread: deliver them now, not after the window is gone.
        while self._in_flight and time.monotonic() < deadline:
            QCoreApplication.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
        return finished and self._in_flight == 0

    # -- internals ------------------------------------------------------------------------
    def _next_generation(self, owner: QObject, key: Hashable) -> int:
        slot = (id(owner), key)
        generation = self._generations.get(slot, 0) + 1
        self._generations[slot] = generation
        if id(owner) not in self._watched:
            self._watched.add(id(owner))
            owner_id = id(owner)
            owner.destroyed.connect(lambda *_: self._forget(owner_id))
        return generation

    def _forget(self, owner_id: int) -> None:
        """The owner is gone: its id may be reused, so its generations must go too."""
        if not shiboken6.isValid(self):
            return
        self._watched.discard(owner_id)
        for slot in [s for s in self._generations if s[0] == owner_id]:
            del self._generations[slot]

    def _start(self, fn: Callable[[], T], on_done: Callable[[T], Any],
               on_failed: Callable[[BaseException], Any]) -> None:
        self._in_flight += 1
        self.in_flight_changed.emit(self._in_flight)
        task = BackgroundTask(fn).on_success(on_done).on_failure(on_failed)
        task.finished.connect(self._ended)
        task.run_in_background(self.runner)

    def _ended(self) -> None:
        self._in_flight -= 1
        self.in_flight_changed.emit(self._in_flight)

    @staticmethod
    def _fail(exc: BaseException, error: Callable[[BaseException], Any] | None) -> None:
        if error is not None:
            error(exc)
        else:
            log.error("background work failed", exc_info=exc)
