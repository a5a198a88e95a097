"""A range's partial edges are aggregated once per call: the threshold ranking, the board's
size, the page's figures and the totals answer from the per-referrer figures read the first
time (they read the raw rows again for each, at 1,000,000 referrals a second a call), and
the conversion table reads no rewards."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
from sqlalchemy import event

from invite_desk.services import referral_program as rp
from invite_desk.services.referral_program import Period
from tests.integration.referral_program_data import NOW, World
from tests.integration.test_referral_program_ranges import random_world  # noqa: F401

RANGE = Period.custom(date(2026, 1, 15), date(2026, 5, 20))  # two partial edges


@pytest.fixture
def statements(random_world: World) -> Iterator[list[str]]:  # noqa: F811
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    engine = random_world.uow.engine
    event.listen(engine, "before_cursor_execute", record)
    yield seen
    event.remove(engine, "before_cursor_execute", record)


def _reads(seen: list[str], table: str) -> int:
    """The edges' per-referrer aggregates of the raw rows of `table` (by a time range)."""
    time = {"referral_reward": "completed_at", "invitation": "sent_at"}[table]
    return sum(1 for s in seen if s.startswith(f"SELECT {table}.")
               and f"{table}.{time} >=" in s and " AS k, " in s and "GROUP BY" in s)


@pytest.mark.parametrize("limit", [1, 3, 100])
def test_a_leaderboard_page_reads_each_edge_once(random_world: World,  # noqa: F811
                                                 statements: list[str], limit: int) -> None:
    board = rp.leaderboard(random_world.uow, random_world.admin, RANGE, limit=limit, now=NOW)
    assert board.rows and board.total >= len(board.rows)
    # one aggregate per edge of the rewards and of the invitations, whatever the page
    assert _reads(statements, "referral_reward") == 2
    assert _reads(statements, "invitation") == 2


@pytest.mark.parametrize("order", list(rp.ConversionOrder))
def test_a_conversion_page_reads_each_edge_once_and_no_rewards(
        random_world: World, statements: list[str],  # noqa: F811
        order: rp.ConversionOrder) -> None:
    page = rp.conversion(random_world.uow, random_world.admin, RANGE, now=NOW, order=order,
                         limit=2)
    assert page.rows and page.total_rows >= len(page.rows)
    assert _reads(statements, "referral_reward") == 0
    assert _reads(statements, "invitation") == 2
