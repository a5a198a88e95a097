"""A sliding-window rate limit in messages per minute, with an injectable clock and sleep."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

WINDOW_SECONDS = 60.0


class RateLimiter:
    """No 60-second window ever holds more than `per_minute` sends; 0 means unlimited.

    A sliding window (not a token bucket, whose full bucket plus refill would allow almost
    twice the limit in one minute) matches how providers count, e.g. Microsoft 365's 30/min.
    """

    def __init__(
        self,
        per_minute: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if per_minute < 0:
            raise ValueError("per_minute must be 0 (unlimited) or more")
        self.per_minute = per_minute
        self._clock = clock
        self._sleep = sleep
        self._recent: deque[float] = deque(maxlen=per_minute or None)

    def acquire(self) -> float:
        """Wait until one more send fits in the window, record it, and return the seconds slept."""
        if self.per_minute == 0:
            return 0.0
        slept = 0.0
        if len(self._recent) == self.per_minute:
            ready_at = self._recent[0] + WINDOW_SECONDS
            while (wait := ready_at - self._clock()) > 0:
                self._sleep(wait)
                slept += wait
        self._recent.append(self._clock())
        return slept

    def wait_time(self) -> float:
        """Seconds the next acquire() would sleep now (for progress estimates)."""
        if self.per_minute == 0 or len(self._recent) < self.per_minute:
            return 0.0
        return max(0.0, self._recent[0] + WINDOW_SECONDS - self._clock())
