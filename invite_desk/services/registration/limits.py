"""What every portal process shares through the database: fixed-window rate-limit counters
and the session-signing secret.

Counters are (key, window number) rows bumped with one upsert (INSERT ... ON CONFLICT on
SQLite and PostgreSQL, ON DUPLICATE KEY UPDATE on MariaDB/MySQL), so two processes counting
the same key count as one. Windows that ended are pruned now and then.
"""

from __future__ import annotations

import random
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import cast

from sqlalchemy import Table, delete, select
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from invite_desk.services.models import PortalSecret, RateLimitCounter
from invite_desk.services.registration.busy import retry_when_busy
from invite_desk.services.uow import UnitOfWork

KEY_MAX = 200
PRUNE_EVERY = 50  # on average one hit in this many also deletes ended windows


class DatabaseRateLimiter:
    """At most `limit` hits per fixed window of `window` seconds per key, counted in the
    database. `name` keeps limiters apart (e.g. "bad-token", "register")."""

    def __init__(
        self,
        uow: UnitOfWork,
        name: str,
        limit: int,
        window: float,
        *,
        clock: Callable[[], float] = time.time,
        busy_budget: float = 8.0,
    ) -> None:
        self.uow = uow
        self.name = name
        self.limit = limit
        self.window = max(1, int(window))
        self._clock = clock
        self.busy_budget = busy_budget

    def _now(self) -> datetime:
        """The limiter's clock as a datetime: windows end by this clock, so prune by it too."""
        return datetime.fromtimestamp(self._clock(), UTC)

    def _key(self, key: str) -> str:
        return f"{self.name}:{key}"[:KEY_MAX]

    def _window(self) -> tuple[int, float]:
        now = self._clock()
        number = int(now // self.window)
        return number, (number + 1) * self.window - now

    def count(self, key: str) -> int:
        """Hits for `key` in the current window."""
        number, _ = self._window()
        with self.uow:
            hits = self.uow.session.scalar(
                select(RateLimitCounter.hits).where(
                    RateLimitCounter.key == self._key(key), RateLimitCounter.window == number)
            )
        return int(hits or 0)

    def blocked(self, key: str) -> bool:
        """Whether `key` has used up its hits in the current window."""
        return self.count(key) >= self.limit

    def retry_after(self, key: str) -> int:
        """Seconds until `key` may try again (0 when it may now)."""
        if not self.blocked(key):
            return 0
        return max(1, int(self._window()[1] + 0.999))

    def hit(self, key: str) -> int:
        """Count one hit for `key` now; returns the hits in this window, this one included."""
        return retry_when_busy(lambda: self._hit(key), budget=self.busy_budget)

    def _hit(self, key: str) -> int:
        number, _ = self._window()
        full_key = self._key(key)
        expires = datetime.fromtimestamp((number + 1) * self.window, UTC)
        with self.uow:
            session = self.uow.session
            table = cast(Table, RateLimitCounter.__table__)
            backend = self.uow.backend
            values = {"key": full_key, "window": number, "hits": 1, "expires_at": expires}
            if backend in ("mysql", "mariadb"):
                mysql_stmt = mysql.insert(table).values(values)
                session.execute(mysql_stmt.on_duplicate_key_update(hits=table.c.hits + 1))
            elif backend == "postgresql":
                pg_stmt = postgresql.insert(table).values(values)
                session.execute(pg_stmt.on_conflict_do_update(
                    index_elements=[table.c.key, table.c.window],
                    set_={"hits": table.c.hits + 1}))
            else:
                lite_stmt = sqlite.insert(table).values(values)
                session.execute(lite_stmt.on_conflict_do_update(
                    index_elements=[table.c.key, table.c.window],
                    set_={"hits": table.c.hits + 1}))
            hits = session.scalar(
                select(RateLimitCounter.hits).where(
                    RateLimitCounter.key == full_key, RateLimitCounter.window == number)
            )
            if random.randrange(PRUNE_EVERY) == 0:  # noqa: S311 (not a secret)
                session.execute(delete(RateLimitCounter).where(
                    RateLimitCounter.expires_at < self._now()))
            self.uow.commit()
        return int(hits or 0)

    def prune(self) -> int:
        """Delete the counters of windows that ended; returns how many."""
        with self.uow:
            result = self.uow.session.execute(
                delete(RateLimitCounter).where(RateLimitCounter.expires_at < self._now()))
            self.uow.commit()
        return int(getattr(result, "rowcount", 0) or 0)


SESSION_SECRET = "portal.session"


def shared_secret(uow: UnitOfWork, name: str = SESSION_SECRET) -> str:
    """The secret called `name`, made on first use and then the same for every process."""
    with uow:
        found = uow.session.scalar(select(PortalSecret.value).where(PortalSecret.name == name))
        if found:
            return found
    try:
        with uow:
            uow.session.add(PortalSecret(name=name, value=secrets.token_urlsafe(48)))
            uow.commit()
    except IntegrityError:
        pass  # another process made it first: use theirs
    with uow:
        value = uow.session.scalar(select(PortalSecret.value).where(PortalSecret.name == name))
    if not value:  # pragma: no cover - the row was just written
        raise RuntimeError("the portal secret could not be stored")
    return value
