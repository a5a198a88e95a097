"""The Referrals page pages through a long leaderboard and conversion table (the services
return one page and the whole view's size), and exports a whole paged table to CSV in the
background, page by page, with progress."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from invite_desk.services import referral_program as rp
from invite_desk.services.roles import Role
from invite_desk.ui.hub import OperationsHub
from invite_desk.ui.referrals import ReferralsPage
from invite_desk.ui.referrals import report_export as export_module
from tests.ui.referral_fakes import FakeSource
from tests.ui.test_referrals_page import operator, settle, table_text


@pytest.fixture
def hub(qtbot: QtBot) -> Iterator[OperationsHub]:
    hub = OperationsHub()
    yield hub
    hub.shutdown(10_000)


def _page(qtbot: QtBot, hub: OperationsHub, source: FakeSource) -> ReferralsPage:
    page = ReferralsPage(hub, operator(Role.ADMIN_TENANT), source=source)  # type: ignore[arg-type]
    qtbot.addWidget(page)
    page.resize(1200, 780)
    page.show()
    qtbot.waitUntil(lambda: page.idle and page.leaderboard is not None, timeout=10_000)
    return page


def test_leaderboard_and_conversion_are_read_and_shown_one_page_at_a_time(
        qtbot: QtBot, hub: OperationsHub) -> None:
    source = FakeSource(board_size=250)
    page = _page(qtbot, hub, source)
    assert ("leaderboard", 100, 0) in source.pages and ("conversion", 100, 0) in source.pages
    assert len(table_text(page, "leaderboard")) == 100
    box, label, previous, following = page.pagers["leaderboard"]
    assert not box.isHidden() and label.text() == "Ranks 1–100 of 250"
    assert not previous.isEnabled() and following.isEnabled()
    assert page.leaderboard_summary.text().startswith(
        "250 referrers; ranks 1–100 below. Ranked by quality score")

    following.click()
    settle(qtbot, page)
    assert source.pages[-1] == ("leaderboard", 100, 100)
    assert table_text(page, "leaderboard")[0][:2] == ["101", "Referrer 00101"]
    following.click()
    settle(qtbot, page)
    assert label.text() == "Ranks 201–250 of 250" and not following.isEnabled()
    assert len(table_text(page, "leaderboard")) == 50
    previous.click()
    settle(qtbot, page)
    assert label.text() == "Ranks 101–200 of 250"

    # another period starts again from the first page
    page.set_period(rp.Period(rp.PeriodKind.ALL_TIME))
    settle(qtbot, page)
    assert label.text() == "Ranks 1–100 of 250"

    page.tabs.setCurrentIndex(2)
    _, rows_label, _, next_rows = page.pagers["conversion"]
    next_rows.click()
    settle(qtbot, page)
    assert source.pages[-1] == ("conversion", 100, 100)
    assert rows_label.text() == "Rows 101–200 of 250"
    assert page.conversion is not None and page.conversion.order is rp.ConversionOrder.SENT
    page.order_combo.setCurrentIndex(page.order_combo.findData("accepted"))
    settle(qtbot, page)
    assert source.pages[-1] == ("conversion", 100, 0)  # a new order: its first page
    assert page.conversion.order is rp.ConversionOrder.ACCEPTED


def test_a_short_table_shows_no_pager(qtbot: QtBot, hub: OperationsHub) -> None:
    page = _page(qtbot, hub, FakeSource())
    assert page.pagers["leaderboard"][0].isHidden()
    assert page.pagers["conversion"][0].isHidden()
    assert page.leaderboard_summary.text().startswith("3 referrers ·")


def test_csv_export_of_a_paged_table_reads_every_page(
        qtbot: QtBot, hub: OperationsHub, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(export_module, "EXPORT_PAGE", 40)
    source = FakeSource(board_size=250)
    page = _page(qtbot, hub, source)
    progress: list[str] = []
    page.status_label.setText = (  # type: ignore[method-assign]
        lambda text, original=page.status_label.setText: (progress.append(text),
                                                          original(text))[1])
    page.ask_save_path = lambda *_a: tmp_path / "board.csv"  # type: ignore[method-assign]
    with qtbot.waitSignal(page.exported, timeout=10_000):
        page.csv_action.trigger()
    with (tmp_path / "board.csv").open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.reader(handle))
    assert len(rows) == 251 and rows[1][:2] == ["1", "Referrer 00001"]
    assert [r[0] for r in rows[1:]] == [str(n) for n in range(1, 251)]
    assert [p for p in source.pages if p[1] == 40] == [
        ("leaderboard", 40, offset) for offset in range(0, 280, 40)]
    assert "Exporting… 40 of 250 rows" in progress and progress[-1] == "Exported 250 rows"

    page.tabs.setCurrentIndex(2)
    page.ask_save_path = lambda *_a: tmp_path / "conversion.csv"  # type: ignore[method-assign]
    with qtbot.waitSignal(page.exported, timeout=10_000):
        page.csv_action.trigger()
    with (tmp_path / "conversion.csv").open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.reader(handle))
    assert len(rows) == 251 and rows[1][:2] == ["Inviter 00001", "250"]
