"""Two people changing the same thing at once: what the database says, as a Conflict.

The unit of work already turns a stale ORM update at commit into a Conflict. A race can also
surface earlier (an autoflush inside a query raises StaleDataError), or as two first saves
inserting the same unique key (IntegrityError), or as a lock the database gave up on. Wrap a
write in `changed_meanwhile()` so that each reaches the person as the same message.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm.exc import StaleDataError

from invite_desk.services.errors import Conflict

CHANGED_MEANWHILE = (
    "Someone else changed this at the same time. Reload (Revert) to see the latest values, "
    "then make your change again."
)

# Unique violations, deadlocks and lock timeouts, by backend.
_POSTGRES_STATES = {"23505", "40001", "40P01", "55P03"}
_MYSQL_CODES = {1062, 1213, 1205, 1020}  # duplicate key, deadlock, lock wait, record changed
_SQLITE_TEXT = ("unique constraint failed", "database is locked")


def is_race(error: DBAPIError) -> bool:
    """Whether the database refused the statement because of another transaction."""
    original = error.orig
    state = getattr(original, "sqlstate", None) or getattr(original, "pgcode", None)
    if state in _POSTGRES_STATES:
        return True
    args = getattr(original, "args", ())
    if args and isinstance(args[0], int) and args[0] in _MYSQL_CODES:
        return True
    text = str(original).lower()
    return any(fragment in text for fragment in _SQLITE_TEXT)


@contextmanager
def changed_meanwhile(message: str = CHANGED_MEANWHILE) -> Iterator[None]:
    """Raise Conflict(message) for a write another transaction got to first; the caller's
    `with uow:` rolls the session back on the way out."""
    try:
        yield
    except StaleDataError:
        raise Conflict(message) from None
    except (IntegrityError, OperationalError) as exc:
        if is_race(exc):
            raise Conflict(message) from None
        raise
