"""Telling a busy database from a broken one, on every backend, and retrying within a budget."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import IntegrityError, OperationalError

from invite_desk.services.registration.busy import (
    HashGate,
    SystemBusy,
    is_busy_error,
    retry_when_busy,
)


class _PgError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(f"error {sqlstate}")
        self.sqlstate = sqlstate


def _wrapped(orig: Exception) -> OperationalError:
    return OperationalError("UPDATE x", {}, orig)


@pytest.mark.parametrize("orig", [
    Exception("database is locked"),  # SQLite
    _PgError("40001"),  # PostgreSQL serialization failure
    _PgError("40P01"),  # PostgreSQL deadlock
    Exception(1213, "Deadlock found when trying to get lock; try restarting transaction"),
    Exception(1205, "Lock wait timeout exceeded; try restarting transaction"),
])
def test_locks_deadlocks_and_serialization_failures_are_busy(orig: Exception) -> None:
    assert is_busy_error(_wrapped(orig))


@pytest.mark.parametrize("error", [
    _wrapped(Exception("no such table: member")),
    _wrapped(_PgError("42P01")),
    IntegrityError("INSERT", {}, Exception("UNIQUE constraint failed")),
    ValueError("database is locked"),
])
def test_other_errors_are_not_busy(error: Exception) -> None:
    assert not is_busy_error(error)


def test_retry_until_the_database_is_free_then_give_up_after_the_budget() -> None:
    now = [0.0]
    calls: list[int] = []

    def sleep(seconds: float) -> None:
        now[0] += seconds

    def locked_twice() -> str:
        calls.append(1)
        if len(calls) <= 2:
            raise _wrapped(Exception("database is locked"))
        return "done"

    assert retry_when_busy(locked_twice, budget=5, clock=lambda: now[0], sleep=sleep) == "done"

    def always_locked() -> str:
        raise _wrapped(Exception("database is locked"))

    now[0] = 0.0
    with pytest.raises(SystemBusy, match="submit the form again"):
        retry_when_busy(always_locked, budget=5, clock=lambda: now[0], sleep=sleep)
    assert 5 <= now[0] < 7


def test_a_broken_database_is_not_retried() -> None:
    calls: list[int] = []

    def broken() -> None:
        calls.append(1)
        raise _wrapped(Exception("no such table: member"))

    with pytest.raises(OperationalError):
        retry_when_busy(broken, budget=5, sleep=lambda _: None)
    assert calls == [1]


def test_the_hash_gate_bounds_concurrent_hashes() -> None:
    gate = HashGate(slots=1, wait=0.05)
    with gate.slot(), pytest.raises(SystemBusy, match="registering just now"), gate.slot():
        pass
    with gate.slot():  # released again
        pass
