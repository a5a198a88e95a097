"""Row ids are time-ordered UUIDs (version 7): batches append to indexes instead of scattering."""

from __future__ import annotations

import time
import uuid

from invite_desk.services.models import new_id


def test_version_variant_and_time_prefix() -> None:
    before = time.time_ns() // 1_000_000
    value = new_id()
    after = time.time_ns() // 1_000_000
    assert value.version == 7 and value.variant == uuid.RFC_4122
    assert before <= value.int >> 80 <= after


def test_ids_from_later_milliseconds_sort_later_and_never_repeat() -> None:
    first = new_id()
    time.sleep(0.002)
    second = new_id()
    assert first.hex < second.hex  # SQLite and MySQL store the hex; PostgreSQL the bytes
    assert len({new_id() for _ in range(10_000)}) == 10_000
