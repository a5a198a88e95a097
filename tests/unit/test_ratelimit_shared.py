"""Issue 13: one RateLimiter shared by K sending threads (reserve/complete), on a fake clock
and, briefly, on the real one."""

from __future__ import annotations

import threading
import time

import pytest

from invite_desk.services.smtp.ratelimit import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


def test_a_send_counts_until_a_window_after_it_completed() -> None:
    clock = Clock()
    rate = RateLimiter(2, clock=clock, window=60)
    assert rate.reserve() == 0 and rate.reserve() == 0
    assert rate.reserve() == pytest.approx(0.05)  # both slots in flight: wait for one to end
    clock.now += 10
    rate.complete()  # the first ended at 510: its slot frees at 570
    clock.now += 5
    rate.complete()
    assert rate.reserve() == pytest.approx(55)
    clock.now = 570
    assert rate.reserve() == 0  # exactly one window after the first completion
    assert rate.reserve() == pytest.approx(5)


def test_a_released_reservation_frees_its_slot_without_counting() -> None:
    clock = Clock()
    rate = RateLimiter(1, clock=clock)
    assert rate.reserve() == 0
    assert rate.reserve() > 0
    rate.release()  # the claim failed: nothing was sent
    assert rate.reserve() == 0 and rate.wait_time() > 0


def test_seeding_counts_an_earlier_runs_recent_sends() -> None:
    clock = Clock()
    rate = RateLimiter(3, clock=clock, window=60)
    rate.seed([10, 20, 70])  # 70 s ago is outside the window
    assert rate.reserve() == 0
    assert rate.reserve() == pytest.approx(40)  # the send 20 s ago leaves in 40 s


def test_unlimited_is_free_for_every_thread() -> None:
    rate = RateLimiter(0)
    assert rate.reserve() == 0 and rate.wait_time() == 0
    rate.complete()
    rate.release()


def test_eight_threads_never_exceed_the_limit_in_any_window() -> None:
    """Real clock, short window: 8 threads x 4 sends at 6 per 0.4 s; each send 'arrives' at a
    random moment between its reservation and its completion (recorded as both ends)."""
    window, limit = 0.4, 6
    rate = RateLimiter(limit, window=window)
    spans: list[tuple[float, float]] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        for i in range(4):
            while (wait := rate.reserve()) > 0:
                time.sleep(wait)
            start = time.monotonic()
            time.sleep(0.01 * ((n + i) % 3))  # the server takes a while to answer
            end = time.monotonic()
            rate.complete()
            with lock:
                spans.append((start, end))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(spans) == 32
    # Whatever moment inside its span the provider counts a send at (its start, its end),
    # no window holds more than the limit.
    for moments in ([s for s, _ in spans], [e for _, e in spans]):
        moments.sort()
        for i, left in enumerate(moments):
            assert len([m for m in moments[i:] if m < left + window]) <= limit
    assert time.monotonic() - started >= (32 / limit - 1) * window
