"""The sending rate limit and the retry backoff, on a fake clock (nothing really sleeps)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from invite_desk.services.smtp import RateLimiter, RetryPolicy


class FakeClock:
    """A monotonic clock that only moves when the code under test sleeps or the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.sleeps.append(seconds)
        self.now += seconds


def limiter(per_minute: int, clock: FakeClock) -> RateLimiter:
    return RateLimiter(per_minute, clock=clock, sleep=clock.sleep)


def test_unlimited_never_waits() -> None:
    clock = FakeClock()
    rate = limiter(0, clock)
    assert all(rate.acquire() == 0.0 for _ in range(10_000))
    assert clock.sleeps == [] and rate.wait_time() == 0.0


def test_waits_only_for_the_oldest_send_to_leave_the_window() -> None:
    clock = FakeClock()
    rate = limiter(3, clock)
    for _ in range(3):
        assert rate.acquire() == 0.0
        clock.now += 10  # three sends at 1000, 1010, 1020
    assert rate.wait_time() == pytest.approx(30.0)  # now 1030; the first leaves at 1060
    assert rate.acquire() == pytest.approx(30.0)
    assert clock.now == pytest.approx(1060.0)
    assert rate.wait_time() == pytest.approx(10.0)  # the send at 1010 leaves at 1070
    clock.now += 100
    assert rate.acquire() == 0.0  # idle long enough: no wait at all
    assert clock.sleeps == [pytest.approx(30.0)]


def test_thirty_per_minute_takes_one_minute_per_thirty_after_the_first_burst() -> None:
    clock = FakeClock()
    rate = limiter(30, clock)
    start = clock.now
    for _ in range(90):
        rate.acquire()
    assert clock.now - start == pytest.approx(120.0)  # bursts at 0 s, 60 s and 120 s


def test_negative_rate_is_refused() -> None:
    with pytest.raises(ValueError):
        RateLimiter(-1)


@settings(max_examples=300, deadline=None, database=None)
@given(
    per_minute=st.integers(min_value=1, max_value=40),
    gaps=st.lists(st.floats(min_value=0, max_value=45, allow_nan=False), max_size=150),
)
def test_no_sixty_second_window_holds_more_than_the_limit(
    per_minute: int, gaps: list[float]
) -> None:
    clock = FakeClock()
    rate = limiter(per_minute, clock)
    sends: list[float] = []
    for gap in gaps:
        clock.now += gap  # the time spent rendering and sending between two acquires
        before = clock.now
        slept = rate.acquire()
        sends.append(clock.now)
        if slept:  # it slept exactly until the send `per_minute` earlier left the window
            assert clock.now == pytest.approx(sends[-1 - per_minute] + 60.0)
            assert before < sends[-1 - per_minute] + 60.0
        else:
            assert len(sends) <= per_minute or sends[-1] >= sends[-1 - per_minute] + 60.0
    for i in range(len(sends) - per_minute):  # the send N later is at least a minute later
        assert sends[i + per_minute] >= sends[i] + 60.0


def test_retry_delays_grow_exponentially_up_to_the_cap() -> None:
    policy = RetryPolicy(max_attempts=6, base_delay=30.0, factor=2.0, max_delay=300.0)
    assert [policy.delay_for(n) for n in range(1, 7)] == [30.0, 60.0, 120.0, 240.0, 300.0, 300.0]
    assert [policy.should_retry(n) for n in (1, 5, 6, 7)] == [True, True, False, False]
    with pytest.raises(ValueError):
        policy.delay_for(0)


def test_default_retry_policy_is_patient_enough_for_greylisting() -> None:
    policy = RetryPolicy()
    total = sum(policy.delay_for(n) for n in range(1, policy.max_attempts))
    assert total >= 5 * 60  # greylisting servers typically want a retry after a few minutes
