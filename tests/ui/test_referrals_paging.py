"""The Referrals page pages through a long leaderboard and conversion table (the services
return one page and the whole view's size), and exports a whole paged table to CSV in the
background, page by page, with progress."""

from __future__ import annotations

import csv
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QTableView
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


def _status_lines(page: ReferralsPage) -> list[str]:
    """Every text the status line shows from now on."""
    lines: list[str] = []
    original = page.status_label.setText
    page.status_label.setText = (  # type: ignore[method-assign]
        lambda text: (lines.append(text), original(text))[1])
    return lines


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
    progress = _status_lines(page)
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


def _pdf_text(path: Path) -> str:
    return subprocess.run(["pdftotext", "-layout", str(path), "-"], check=True,
                          capture_output=True, text=True).stdout


@pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="needs poppler-utils")
def test_pdf_export_holds_the_whole_paged_tables_with_progress(
        qtbot: QtBot, hub: OperationsHub, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(export_module, "EXPORT_PAGE", 60)
    source = FakeSource(board_size=250)
    page = _page(qtbot, hub, source)
    page.turn_page("leaderboard", 1)  # on the second page: the PDF still holds them all
    settle(qtbot, page)
    progress = _status_lines(page)
    page.ask_save_path = lambda *_a: tmp_path / "report.pdf"  # type: ignore[method-assign]
    with qtbot.waitSignal(page.exported, timeout=20_000):
        page.pdf_action.trigger()
        assert not page.cancel_export_button.isHidden()
        assert not page.pdf_action.isEnabled() and not page.csv_action.isEnabled()
    assert page.cancel_export_button.isHidden() and page.pdf_action.isEnabled()
    assert [p for p in source.pages if p[1] == 60] == [
        *[("leaderboard", 60, offset) for offset in range(0, 300, 60)],
        *[("conversion", 60, offset) for offset in range(0, 300, 60)]]
    assert "Exporting the leaderboard… 60 of 250 rows" in progress
    assert "Exporting the conversion… 240 of 250 rows" in progress
    pdf = tmp_path / "report.pdf"
    text = _pdf_text(pdf)
    for line in ("Referrer 00001", "Referrer 00250", "Inviter 00001", "Inviter 00250"):
        assert line in text
    assert "250 referrers ·" in text  # the whole board's summary, not a page's
    subprocess.run(["pdftoppm", "-r", "30", "-png", str(pdf), str(tmp_path / "page")],
                   check=True)
    assert len(list(tmp_path.glob("page-*.png"))) > 5  # the long tables run over pages
    listing = subprocess.run(["pdfdetach", "-list", str(pdf)], check=True,
                             capture_output=True, text=True).stdout
    number = next(line.split(":")[0] for line in listing.splitlines()
                  if line.endswith(" conversion.csv"))
    subprocess.run(["pdfdetach", "-save", number, "-o", str(tmp_path / "conversion.csv"),
                    str(pdf)], check=True)
    attached = list(csv.reader((tmp_path / "conversion.csv").read_text("utf-8").splitlines()))
    assert len(attached) == 251 and attached[-1][0] == "Inviter 00250"


def test_a_whole_table_export_can_be_cancelled(
        qtbot: QtBot, hub: OperationsHub, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(export_module, "EXPORT_PAGE", 40)
    source = FakeSource(board_size=250)
    page = _page(qtbot, hub, source)
    page.status_label.setText = (  # type: ignore[method-assign]
        lambda text, original=page.status_label.setText: (
            page.cancel_export_button.click() if text.startswith("Exporting… 80") else None,
            original(text))[1])
    page.ask_save_path = lambda *_a: tmp_path / "board.csv"  # type: ignore[method-assign]
    page.csv_action.trigger()
    qtbot.waitUntil(lambda: page.csv_action.isEnabled(), timeout=10_000)
    assert page.status_label.text() == "Export cancelled: nothing was written"
    assert not (tmp_path / "board.csv").exists()
    assert [p for p in source.pages if p[1] == 40] == [
        ("leaderboard", 40, offset) for offset in (0, 40, 80)]


def _click_header(qtbot: QtBot, table: QTableView, column: int) -> None:
    header = table.horizontalHeader()
    qtbot.mouseClick(header.viewport(), Qt.MouseButton.LeftButton,
                     pos=QPoint(header.sectionViewportPosition(column) + 8,
                                header.height() // 2))


def test_sorting_a_conversion_column_asks_the_service_for_that_order(
        qtbot: QtBot, hub: OperationsHub) -> None:
    source = FakeSource(board_size=250)
    page = _page(qtbot, hub, source)
    page.tabs.setCurrentIndex(2)
    table, header = page.conversion_table, page.conversion_table.horizontalHeader()
    assert (header.sortIndicatorSection(), header.sortIndicatorOrder()) == (
        1, Qt.SortOrder.DescendingOrder)

    _click_header(qtbot, table, 3)  # Acceptance: the highest rate first, of all 250 rows
    settle(qtbot, page)
    assert source.sorts[-1] == rp.ConversionSort(rp.ConversionColumn.RATE, True)
    assert source.pages[-1] == ("conversion", 100, 0)
    assert table_text(page, "conversion")[0][:3] == ["Inviter 00250", "1", "1"]
    assert (header.sortIndicatorSection(), header.sortIndicatorOrder()) == (
        3, Qt.SortOrder.DescendingOrder)
    assert page.order_combo.currentText() == "As the column sorted"
    _click_header(qtbot, table, 3)  # again: the other way
    settle(qtbot, page)
    assert source.sorts[-1] == rp.ConversionSort(rp.ConversionColumn.RATE, False)
    assert table_text(page, "conversion")[0][:2] == ["Inviter 00001", "250"]
    _, label, _, following = page.pagers["conversion"]
    following.click()  # the next page, in the same order
    settle(qtbot, page)
    assert (source.pages[-1], source.sorts[-1]) == (
        ("conversion", 100, 100), rp.ConversionSort(rp.ConversionColumn.RATE, False))
    assert table_text(page, "conversion")[0][0] == "Inviter 00101"

    asked = len(source.pages)
    _click_header(qtbot, table, 4)  # the median is not sorted by the service: nothing asked
    _click_header(qtbot, table, 0)
    qtbot.wait(50)
    assert len(source.pages) == asked
    assert header.sortIndicatorSection() == 3
    assert table_text(page, "conversion")[0][0] == "Inviter 00101"  # not re-sorted here

    _click_header(qtbot, table, 2)  # Accepted, most first: the order box follows
    settle(qtbot, page)
    assert source.sorts[-1] == rp.ConversionSort(rp.ConversionColumn.ACCEPTED, True)
    assert source.pages[-1] == ("conversion", 100, 0)
    assert page.order_combo.currentData() == "accepted"
    page.order_combo.setCurrentIndex(page.order_combo.findData("sent"))
    settle(qtbot, page)
    assert source.sorts[-1] == rp.ConversionSort(rp.ConversionColumn.SENT, True)
    assert header.sortIndicatorSection() == 1


def test_one_page_of_a_longer_leaderboard_stays_in_rank_order(
        qtbot: QtBot, hub: OperationsHub) -> None:
    page = _page(qtbot, hub, FakeSource(board_size=250))
    _click_header(qtbot, page.leaderboard_table, 1)  # Referrer: not sorted on a page
    assert [row[0] for row in table_text(page, "leaderboard")[:3]] == ["1", "2", "3"]
    assert not page.leaderboard_table.isSortingEnabled()
    short = _page(qtbot, hub, FakeSource())  # the whole board loaded: sorted here
    assert short.leaderboard_table.isSortingEnabled()
    _click_header(qtbot, short.leaderboard_table, 5)  # Completed, ascending
    assert [row[0] for row in table_text(short, "leaderboard")] == ["3", "1", "2"]
