"""`python -m bench sync` on a small organization: the three lines the issue asks for, each
measured on what it names (timings are not asserted; CI does not judge speed)."""

from __future__ import annotations

import pytest

from bench import sync
from tests.db_servers import fresh_server_database


@pytest.mark.postgres
@pytest.mark.slow
def test_sync_bench_prints_initial_idle_and_commit_to_window() -> None:
    with fresh_server_database("postgresql") as url:
        rows = {row["name"]: row for row in sync.run(
            url=url.render_as_string(hide_password=False), size=2_000, window_runs=3)}
    assert list(rows) == ["initial", "idle", "commit_to_window"]
    initial, idle, window = rows["initial"], rows["idle"], rows["commit_to_window"]
    assert initial["replica_invitations"] == initial["invitations"] == 2_000
    assert initial["unit"] == "s" and initial["value"] > 0 and initial["baseline"] > 0
    assert idle["unit"] == "ms" and idle["runs"] == sync.IDLE_RUNS and idle["value"] > 0
    assert window["runs"] == 3 and 0 < window["median"] <= window["value"] <= window["max"]
    assert "Invitations window" in window["measured"]
