"""The conversion table sorted and paged at the source: by inviter, unit, batch and event,
by invitations sent, accepted or the acceptance rate, either way, every page equals that slice
of the whole raw view sorted the same way (ties to the label, then the id), with the whole
view's size and totals, whichever path answers (the period summary, the running totals of
whole months, the raw rows' groups)."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import date

import pytest
from sqlalchemy import select

from invite_desk.services import referral_program as rp
from invite_desk.services.models import Batch, Event, Invitation
from invite_desk.services.referral_program import Period, reports
from invite_desk.services.uow import UnitOfWork
from tests.integration.referral_program_data import NOW, World
from tests.integration.test_referral_program_periods import _crowd, _raw
from tests.integration.test_referral_program_ranges import _world
from tests.integration.test_referral_program_speed import _random_changes

PERIODS = (Period(rp.PeriodKind.THIS_YEAR),  # one calendar period
           Period.custom(date(2026, 2, 1), date(2026, 5, 31)),  # whole months
           Period.custom(date(2026, 3, 12), date(2026, 6, 3)))  # days
SORTS = [rp.ConversionSort(column, descending) for column in rp.ConversionColumn
         for descending in (True, False)]
PAGES = ((0, 3), (2, 4), (40, 10))


@pytest.fixture
def world(uow: UnitOfWork) -> Iterator[World]:
    world = _world(uow, "UTC")
    rng = random.Random(23)
    _crowd(world, 30, rng)
    _random_changes(world, rng, 60, [0])
    with world.uow:  # batches and events (labels alike: ties to the id), and none
        session = world.uow.session
        org, admin = world.admin.organization_id, world.admin.member_id
        batches = [Batch(organization_id=org, source="paste", label=f"Batch {n % 3}",
                         created_by_id=admin, inviter_id=admin) for n in range(4)]
        events = [Event(organization_id=org, name=f"Event {n % 2}") for n in range(3)]
        session.add_all([*batches, *events])
        session.flush()
        for number, invitation in enumerate(session.scalars(select(Invitation).order_by(
                Invitation.email))):
            invitation.batch_id = batches[number % 5].id if number % 5 < 4 else None
            invitation.event_id = events[number % 4].id if number % 4 < 3 else None
        world.uow.commit()
    rp.reconcile(uow, world.admin, now=NOW)
    yield world


def _sorted(rows: tuple[rp.ConversionRow, ...], sort: rp.ConversionSort
            ) -> list[rp.ConversionRow]:
    def value(row: rp.ConversionRow) -> float:
        figure = {rp.ConversionColumn.SENT: row.sent, rp.ConversionColumn.ACCEPTED: row.accepted,
                  rp.ConversionColumn.RATE: row.accepted / row.sent}[sort.column]
        return -figure if sort.descending else figure

    return sorted(rows, key=lambda r: (value(r), r.label.casefold(),
                                       str(r.key) if r.key is not None else ""))


def test_every_page_of_every_sort_equals_the_raw_view_sorted(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    paths: list[str] = []
    original = reports._grouped

    def spy(*args: object, **kwargs: object) -> object:
        found = original(*args, **kwargs)  # type: ignore[arg-type]
        paths.append(type(found[0].get_final_froms()[0]).__name__)
        return found

    monkeypatch.setattr(reports, "_grouped", spy)
    for period in PERIODS:
        for by in rp.ConversionBy:
            with pytest.MonkeyPatch.context() as patch:
                _raw(patch)
                raw = rp.conversion(world.uow, world.admin, period, by, now=NOW)
            assert len(raw.rows) >= 3, (period, by)
            for sort in SORTS:
                expected = _sorted(raw.rows, sort)
                for offset, limit in PAGES:
                    page = rp.conversion(world.uow, world.admin, period, by, now=NOW,
                                         sort=sort, limit=limit, offset=offset)
                    assert list(page.rows) == expected[offset:offset + limit], (
                        period, by, sort, offset)
                    assert (page.total_rows, page.sent, page.accepted) == (
                        len(raw.rows), raw.sent, raw.accepted)
                    assert page.sort == sort
    assert {"Table", "Subquery"} <= set(paths)  # summaries and raw rows both answered


def test_the_default_order_is_most_sent_first_and_the_old_order_argument_still_works(
        world: World) -> None:
    year = Period(rp.PeriodKind.THIS_YEAR)
    by_sent = rp.conversion(world.uow, world.admin, year, rp.ConversionBy.UNIT, now=NOW,
                            limit=2)
    assert by_sent.sort == rp.ConversionSort(rp.ConversionColumn.SENT, True)
    by_accepted = rp.conversion(world.uow, world.admin, year, now=NOW, limit=3,
                                order=rp.ConversionOrder.ACCEPTED)
    assert by_accepted.sort == rp.ConversionSort(rp.ConversionColumn.ACCEPTED, True)
    assert [r.accepted for r in by_accepted.rows] == sorted(
        (r.accepted for r in by_accepted.rows), reverse=True)
    assert all(isinstance(r.key, uuid.UUID | None) for r in by_sent.rows)
