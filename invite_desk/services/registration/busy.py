"""A busy system is told apart from a broken one: the database is locked (SQLite), a
deadlock or serialization failure (PostgreSQL, MariaDB) is retried with backoff for several
seconds, and the password hashes computed at once are bounded (argon2 takes 64 MiB each).
When that is not enough the caller gets `SystemBusy`, a message a person can act on
("submit again"), never a crash."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from sqlalchemy.exc import DBAPIError, OperationalError

from invite_desk.services.errors import DomainError

T = TypeVar("T")

BUSY_MESSAGE = "The system is busy just now. Please submit the form again in a moment."

# Message fragments and codes of errors that mean "try again", per backend.
_BUSY_TEXTS = (
    "database is locked",  # SQLite
    "database table is locked",
    "deadlock",  # PostgreSQL 40P01, MariaDB 1213
    "could not serialize",  # PostgreSQL 40001
    "serialization failure",
    "lock wait timeout",  # MariaDB 1205
    "could not obtain lock",
)
_BUSY_SQLSTATES = {"40001", "40P01", "55P03"}
_BUSY_MYSQL_CODES = {1205, 1213}


class SystemBusy(DomainError):
    """The database or the server is too busy to take this now; the same request may succeed
    in a moment."""

    def __init__(self, message: str = BUSY_MESSAGE) -> None:
        super().__init__(message)


def is_busy_error(error: BaseException) -> bool:
    """Whether `error` is a lock, deadlock or serialization failure worth retrying."""
    if not isinstance(error, (OperationalError, DBAPIError)):
        return False
    original = getattr(error, "orig", None)
    sqlstate = getattr(original, "sqlstate", None) or getattr(original, "pgcode", None)
    if sqlstate in _BUSY_SQLSTATES:
        return True
    args = getattr(original, "args", ())
    if args and isinstance(args[0], int) and args[0] in _BUSY_MYSQL_CODES:
        return True
    text = str(original if original is not None else error).lower()
    return any(fragment in text for fragment in _BUSY_TEXTS)


def retry_when_busy(
    work: Callable[[], T],
    *,
    budget: float = 8.0,
    first_delay: float = 0.05,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run `work` (one whole transaction) again while it fails because the database is busy,
    with jittered exponential backoff, for up to `budget` seconds; then raise SystemBusy."""
    deadline = clock() + budget
    delay = first_delay
    while True:
        try:
            return work()
        except (OperationalError, DBAPIError) as error:
            if not is_busy_error(error):
                raise
            left = deadline - clock()
            if left <= 0:
                raise SystemBusy() from error
            sleep(min(left, delay * (0.5 + random.random())))  # noqa: S311 (jitter)
            delay = min(delay * 2, 1.0)


class HashGate:
    """At most `slots` password hashes at once; a caller waits up to `wait` seconds for a slot
    and is then told the system is busy (SystemBusy)."""

    def __init__(self, slots: int = 2, wait: float = 10.0) -> None:
        self.configure(slots, wait)

    def configure(self, slots: int, wait: float) -> None:
        self.slots = max(1, slots)
        self.wait = wait
        self._semaphore = threading.BoundedSemaphore(self.slots)

    @contextmanager
    def slot(self) -> Iterator[None]:
        semaphore = self._semaphore
        if not semaphore.acquire(timeout=self.wait):
            raise SystemBusy(
                "Many people are registering just now. Please submit the form again in a "
                "moment."
            )
        try:
            yield
        finally:
            semaphore.release()


# Shared by every registration in this process (the portal sets its size at start).
hash_gate = HashGate()
