"""An in-memory per-key sliding-window counter.

The portal no longer uses it: its limits are counted in the database so that several portal
processes count as one (services/registration/limits.py). Kept for callers that need a
process-local limit.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable


class SlidingWindowLimiter:
    """At most `limit` hits per `window` seconds per key. Remembers at most `max_keys` keys
    (the least recently seen are forgotten first), so a flood of addresses cannot exhaust memory."""

    def __init__(
        self,
        limit: int,
        window: float,
        *,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window = window
        self.max_keys = max_keys
        self._clock = clock
        self._hits: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float] | None:
        hits = self._hits.get(key)
        if hits is None:
            return None
        while hits and hits[0] <= now - self.window:
            hits.popleft()
        if not hits:
            del self._hits[key]
            return None
        return hits

    def blocked(self, key: str) -> bool:
        """Whether `key` has used up its hits in the current window."""
        with self._lock:
            hits = self._recent(key, self._clock())
            return hits is not None and len(hits) >= self.limit

    def retry_after(self, key: str) -> int:
        """Seconds until `key` may try again (0 when it may now)."""
        with self._lock:
            now = self._clock()
            hits = self._recent(key, now)
            if hits is None or len(hits) < self.limit:
                return 0
            return max(1, int(hits[len(hits) - self.limit] + self.window - now + 0.999))

    def hit(self, key: str) -> None:
        with self._lock:
            now = self._clock()
            hits = self._recent(key, now)
            if hits is None:
                hits = self._hits[key] = deque()
            hits.append(now)
            self._hits.move_to_end(key)
            while len(self._hits) > self.max_keys:
                self._hits.popitem(last=False)
