"""A sliding-window rate limit in messages per minute, with an injectable clock and sleep.

One limiter may be shared by several sending threads (one per SMTP connection): every
decision is taken under a lock, so the limit holds for all connections together.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable

WINDOW_SECONDS = 60.0


class RateLimiter:
    """No window of `window` seconds (60) ever holds more than `per_minute` sends; 0 means
    unlimited.

    A sliding window (not a token bucket, whose full bucket plus refill would allow almost
    twice the limit in one minute) matches how providers count, e.g. Microsoft 365's 30/min.

    Shared by several connections, a send is `reserve()`d before it starts and `complete()`d
    when the server has answered; it counts from the reservation until a window after its
    completion. Whatever moment inside that span the provider counts it at, no window of
    the provider's ever sees more than the limit (a message arriving late on a slow
    connection cannot bunch up with the next window's first ones).
    """

    def __init__(
        self,
        per_minute: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        window: float = WINDOW_SECONDS,
    ) -> None:
        if per_minute < 0:
            raise ValueError("per_minute must be 0 (unlimited) or more")
        if window <= 0:
            raise ValueError("the window must be longer than 0 seconds")
        self.per_minute = per_minute
        self.window = window
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._recent: deque[float] = deque()  # completions, oldest first
        self._in_flight = 0

    def seed(self, ages: Iterable[float]) -> None:
        """Count sends completed `ages` seconds ago (by an earlier run) as if this limiter
        made them, so a restart does not burst past the limit."""
        if self.per_minute == 0:
            return
        now = self._clock()
        with self._lock:
            stamps = sorted(now - age for age in ages if 0 <= age < self.window)
            merged = sorted([*self._recent, *stamps])[-self.per_minute:]
            self._recent.clear()
            self._recent.extend(merged)

    def _wait(self, now: float) -> float:
        """Seconds until a send fits (0: now). Called under the lock."""
        recent = self._recent
        while recent and recent[0] + self.window <= now:
            recent.popleft()
        if len(recent) + self._in_flight < self.per_minute:
            return 0.0
        if recent:
            return recent[0] + self.window - now
        return 0.05  # every slot is a send still in flight: its completion frees one

    def reserve(self) -> float:
        """Count one send as started now if it fits and return 0; otherwise count nothing and
        return the seconds until one may fit. Never sleeps. Follow with complete() (or
        release() when the send did not happen)."""
        if self.per_minute == 0:
            return 0.0
        with self._lock:
            wait = self._wait(self._clock())
            if wait <= 0:
                self._in_flight += 1
            return wait

    def complete(self) -> None:
        """The reserved send has ended (whatever its outcome): it counts from now."""
        if self.per_minute == 0:
            return
        with self._lock:
            self._in_flight = max(0, self._in_flight - 1)
            self._recent.append(self._clock())

    def release(self) -> None:
        """The reserved send did not happen: free its slot."""
        if self.per_minute == 0:
            return
        with self._lock:
            self._in_flight = max(0, self._in_flight - 1)

    def acquire(self) -> float:
        """Wait until one more send fits in the window, record it, and return the seconds slept."""
        slept = 0.0
        while (wait := self.reserve()) > 0:
            self._sleep(wait)
            slept += wait
        self.complete()
        return slept

    def wait_time(self) -> float:
        """Seconds the next acquire() would sleep now (for progress estimates)."""
        if self.per_minute == 0:
            return 0.0
        with self._lock:
            return max(0.0, self._wait(self._clock()))

    @property
    def interval(self) -> float:
        """Seconds between sends on average at the limit (0 when unlimited)."""
        return self.window / self.per_minute if self.per_minute else 0.0
