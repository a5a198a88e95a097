"""The Referrals page and My referrals against a recorded stand-in for the services: what they
ask for (period, scope, granularity), how they show it (plain text, marks, hover values), the
flag review with its confirmation, following the hub, and the exports (CSV, PNG, SVG, PDF
checked page by page). The real services on a real database: test_referrals_data.py."""

from __future__ import annotations

import csv
import shutil
import subprocess
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage
from pytestqt.qtbot import QtBot

from invite_desk.services import referral_program as rp
from invite_desk.services.operator import Operator
from invite_desk.services.roles import Role
from invite_desk.ui.charts import DAY, ChartData, bar_series, date_ticks, timestamp
from invite_desk.ui.hub import MEMBERS, REFERRALS, SETTINGS, OperationsHub
from invite_desk.ui.referrals import MyReferralsPage, ReferralsPage
from invite_desk.ui.referrals.tables import SORT_ROLE
from tests.ui.referral_fakes import SOUTH, FakeSource, flag


def operator(role: Role, name: str = "Ann Admin") -> Operator:
    unit = None if role.is_tenant_wide or role is Role.USER else uuid.UUID(int=101)
    return Operator(uuid.uuid4(), uuid.uuid4(), "ann@example.org", name, role, unit,
                    "North" if unit else "")


@pytest.fixture
def hub(qtbot: QtBot) -> Iterator[OperationsHub]:
    hub = OperationsHub()  # a real thread pool: the pages read off the GUI thread
    yield hub
    hub.shutdown(10_000)


MakePage = Callable[..., ReferralsPage]


@pytest.fixture
def make_page(qtbot: QtBot, hub: OperationsHub) -> MakePage:
    def make(source: FakeSource, role: Role = Role.ADMIN_TENANT) -> ReferralsPage:
        page = ReferralsPage(hub, operator(role), source=source)  # type: ignore[arg-type]
        qtbot.addWidget(page)
        page.resize(1200, 780)
        page.show()
        qtbot.waitUntil(lambda: page.idle and page.leaderboard is not None, timeout=10_000)
        return page
    return make


def table_text(page: ReferralsPage, view: str) -> list[list[str]]:
    table = {"leaderboard": page.leaderboard_table, "conversion": page.conversion_table,
             "trends": page.trend_table, "quality": page.retention_table,
             "flags": page.flag_table}[view]
    model = table.model()
    return [[model.index(r, c).data() for c in range(model.columnCount())]
            for r in range(model.rowCount())]


def settle(qtbot: QtBot, page: ReferralsPage | MyReferralsPage) -> None:
    qtbot.wait(1)
    qtbot.waitUntil(lambda: page.idle, timeout=10_000)


def test_leaderboard_shows_the_figures_ranked_with_the_raw_count_beside(
        make_page: MakePage) -> None:
    page = make_page(FakeSource())
    rows = table_text(page, "leaderboard")
    headers = page.leaderboard_model.headers()
    first = dict(zip(headers, rows[0], strict=True))
    assert first["#"] == "1" and first["Referrer"] == "Ada Lovelace"
    assert (first["Score"], first["Completed"], first["Still active"], first["Pending"],
            first["Acceptance"], first["Points"], first["Badges"]) == (
        "26", "6", "5", "1", "67%", "50", "1, 5")
    # A name that looks like markup is shown as typed; 20 inactive referrals rank below 5 active.
    second = dict(zip(headers, rows[1], strict=True))
    assert second["Referrer"] == "<b>Bold</b> Bob" and second["Completed"] == "20"
    assert second["Held"] == "5" and second["Flags"] == "1"
    third = dict(zip(headers, rows[2], strict=True))
    assert third["Referrer"] == "Quiet Quinn (opted out)"
    font = page.leaderboard_model.index(2, 1).data(Qt.ItemDataRole.FontRole)
    assert font is not None and font.italic()
    assert "opted out" in page.leaderboard_summary.text()


def test_period_and_scope_switching_ask_the_services_again(make_page: MakePage,
                                                          qtbot: QtBot) -> None:
    source = FakeSource()
    page = make_page(source)
    assert source.calls[-5:][0][0] in {"leaderboard", "trends", "conversion", "retention",
                                        "flags"}
    last = [c for c in source.calls if c[0] == "leaderboard"][-1]
    assert last[1] == (rp.Period(rp.PeriodKind.THIS_YEAR), None)

    page.set_period(rp.Period(rp.PeriodKind.THIS_MONTH))
    settle(qtbot, page)
    assert [c for c in source.calls if c[0] == "leaderboard"][-1][1][0] == rp.Period(
        rp.PeriodKind.THIS_MONTH)
    assert [r[1] for r in table_text(page, "leaderboard")] == ["Ada Lovelace"]
    assert page.start_edit.isHidden()  # only for a custom range
    page.set_period(rp.Period.custom(date(2026, 2, 1), date(2026, 3, 31)))
    settle(qtbot, page)
    assert not page.start_edit.isHidden() and not page.end_edit.isHidden()
    trend_call = [c for c in source.calls if c[0] == "trends"][-1][1]
    assert trend_call[0] == rp.Period.custom(date(2026, 2, 1), date(2026, 3, 31))

    qtbot.waitUntil(lambda: page.scope_combo.count() == 3)
    page.set_unit(SOUTH.id)
    settle(qtbot, page)
    assert [c for c in source.calls if c[0] == "leaderboard"][-1][1][1] == SOUTH.id
    assert [c for c in source.calls if c[0] == "retention"][-1][1] == SOUTH.id
    assert [r[1] for r in table_text(page, "leaderboard")] == ["Quiet Quinn (opted out)"]

    page.granularity_combo.setCurrentIndex(page.granularity_combo.findData("week"))
    settle(qtbot, page)
    assert page.trends is not None and page.trends.granularity is rp.Granularity.WEEK
    assert page.members_chart.data is not None
    assert page.members_chart.data.title == "New members per week, by channel"
    page.by_combo.setCurrentIndex(page.by_combo.findData("event"))
    settle(qtbot, page)
    assert page.conversion_model.headers()[0] == "Event"
    assert table_text(page, "conversion")[0][0] == "event one"


def test_custom_period_controls_appear_only_for_custom(make_page: MakePage) -> None:
    page = make_page(FakeSource())
    assert page.start_edit.isHidden()
    page.period_combo.setCurrentIndex(page.period_combo.findData("custom"))
    assert not page.start_edit.isHidden()
    page.period_combo.setCurrentIndex(page.period_combo.findData("all"))
    assert page.start_edit.isHidden()


def test_trends_conversion_and_quality_views(make_page: MakePage) -> None:
    page = make_page(FakeSource())
    assert "36 new members (42% through a referral)" in page.trend_summary.text()
    assert page.members_chart.legend_names() == [c.label for c in rp.Channel]
    assert page.invitations_chart.legend_names() == ["Sent", "Accepted"]
    assert page.k_factor_label.text().startswith("K-factor 0.20 = 0.75 invitations per member")
    assert table_text(page, "conversion")[0] == ["inviter one", "10", "4", "40%", "3.0 days"]
    quality = table_text(page, "quality")
    assert quality[0][:4] == ["Referred members (all)", "10", "8", "80%"]
    assert quality[1][4:] == ["8", "2", "25%"]
    assert quality[2][0] == "Ada Lovelace"


def test_chart_hover_shows_the_values_under_the_pointer(make_page: MakePage) -> None:
    page = make_page(FakeSource())
    page.tabs.setCurrentIndex(1)
    chart = page.members_chart
    assert chart.data is not None
    x = chart.data.positions()[2]
    assert chart.index_at(x) == 2
    text = chart.hover_index(2)
    assert text.splitlines() == ["March 2026", "Referral: 2", "Public registration: 2",
                                 "Event guest who joined: 0", "Imported: 1"]
    assert chart.readout.isVisible()
    assert chart.index_at(chart.data.positions()[-1] + 400 * 86_400) is None
    # A real pointer move over the plot shows the bucket under it.
    view = chart.plot.getPlotItem().getViewBox()
    scene_point = view.mapViewToScene(view.mapToView(view.boundingRect().center()))
    chart._mouse_moved(scene_point)
    assert chart.hovered is not None and chart.hover_text()


def test_month_labels_sit_under_their_bars_and_the_first_month_has_one(
        make_page: MakePage) -> None:
    page = make_page(FakeSource())
    page.tabs.setCurrentIndex(1)
    chart = page.members_chart
    assert chart.data is not None and chart.data.size >= 3
    ticks = chart.date_axis._tickLevels[0]  # what the axis draws (its explicit ticks)
    centres = chart.data.positions()
    assert ticks[0] == (centres[0], "Jan 2026")  # the first bucket, with its year
    assert all(position in centres for position, _ in ticks)  # never on an edge between bars
    labels = [label for _, label in ticks]
    assert labels[1:3] == ["Feb", "Mar"] or len(ticks) < chart.data.size  # thinned to fit
    # Weekly buckets are labelled by their first day, thinned to the width they have.
    weeks = ChartData("w", (bar_series("n", [1.0] * 52),),
                      x=tuple(timestamp(date(2026, 1, 5)) + i * 7 * DAY for i in range(52)),
                      bucket_seconds=7 * DAY)
    wide, narrow = date_ticks(weeks, 4000), date_ticks(weeks, 600)
    assert wide[0] == (weeks.positions()[0], "05 Jan") and len(wide) == 52
    assert 4 <= len(narrow) < 15 and all(p in weeks.positions() for p, _ in narrow)


def test_non_admins_see_no_flags_and_unit_staff_only_their_unit(make_page: MakePage) -> None:
    page = make_page(FakeSource(), Role.HR_LOCAL)
    assert page.flags_tab is None
    assert "Flags" not in page.leaderboard_model.headers()
    assert not page.scope_combo.isEnabled() and page.scope_combo.currentText() == "North"
    assert page.unit_id == uuid.UUID(int=101)


def test_flag_review_asks_first_then_decides_and_refreshes(make_page: MakePage, qtbot: QtBot,
                                                           confirmations: Any) -> None:
    source = FakeSource(flags_open=[flag(), flag(referrer="Ada Lovelace")])
    page = make_page(source)
    assert page.tabs.tabText(4) == "Flags for review (2)"
    assert not page.reject_button.isEnabled()
    page.select_flag(0)
    assert page.reject_button.isEnabled()
    chosen = page.selected_flag()
    assert chosen is not None

    confirmations.answer = False
    assert not page.decide_selected(rp.FlagStatus.REJECTED)
    assert source.decided == []
    assert confirmations.asked[-1]["action"] == "Reject"
    assert chosen.referrer_name in confirmations.asked[-1]["text"]

    confirmations.answer = True
    with qtbot.waitSignal(page.hub.changed, timeout=10_000) as changed:
        assert page.decide_selected(rp.FlagStatus.REJECTED)
    assert changed.args[0].touches(REFERRALS)
    assert source.decided == [(chosen.id, rp.FlagStatus.REJECTED)]
    qtbot.waitUntil(lambda: len(page.flags) == 1, timeout=10_000)
    assert page.tabs.tabText(4) == "Flags for review (1)"


def test_follows_hub_changes_now_when_shown_later_when_hidden(make_page: MakePage,
                                                              qtbot: QtBot) -> None:
    source = FakeSource()
    page = make_page(source)
    count = len([c for c in source.calls if c[0] == "leaderboard"])
    page.hub.broadcast({MEMBERS}, None)
    settle(qtbot, page)
    assert len([c for c in source.calls if c[0] == "leaderboard"]) == count + 1
    page.hide()
    page.hub.broadcast({SETTINGS}, None)
    qtbot.wait(20)
    assert len([c for c in source.calls if c[0] == "leaderboard"]) == count + 1
    page.show()
    settle(qtbot, page)
    assert len([c for c in source.calls if c[0] == "leaderboard"]) == count + 2


def test_csv_export_of_the_current_view(make_page: MakePage, tmp_path: Path) -> None:
    page = make_page(FakeSource())
    path = page.export_csv(tmp_path / "board.csv")
    with path.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0][:6] == ["#", "Referrer", "Email", "Unit", "Score", "Completed"]
    assert rows[1][:6] == ["1", "Ada Lovelace", "ada@example.org", "North", "26", "6"]
    assert rows[2][1] == "<b>Bold</b> Bob"
    assert len(rows) == 4

    page.tabs.setCurrentIndex(2)  # Conversion, through the menu's path
    page.ask_save_path = lambda *_a: tmp_path / "conversion.csv"  # type: ignore[method-assign]
    page.csv_action.trigger()
    with (tmp_path / "conversion.csv").open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["Inviter", "Sent", "Accepted", "Acceptance", "Median time to accept"]
    # A cell a spreadsheet would evaluate is defused.
    assert rows[2][0] == "'=HYPERLINK(\"x\")"


def test_chart_exports_to_png_and_svg(make_page: MakePage, tmp_path: Path) -> None:
    page = make_page(FakeSource())
    chart = page.charts("trends")[0]
    png = chart.export_png(tmp_path / "chart.png", width=900)
    image = QImage(str(png))
    assert image.width() == 900 and image.height() > 100
    svg = chart.export_svg(tmp_path / "chart.svg")
    root = ET.parse(svg).getroot()
    assert root.tag.endswith("svg")
    text = "".join(root.itertext())
    assert "Referral" in text and "Imported" in text
    # The menu offers each chart of the view in both formats.
    page.tabs.setCurrentIndex(1)
    page._fill_export_menu()
    titles = [a.text() for a in page.export_menu.actions() if a.text()]
    assert "Chart “New members per month, by channel” as PNG…" in titles
    assert "Chart “Invitations sent and accepted per month” as SVG…" in titles


def _pdf_text(path: Path, page: int) -> str:
    return subprocess.run(["pdftotext", "-layout", "-f", str(page), "-l", str(page), str(path),
                           "-"], check=True, capture_output=True, text=True).stdout


@pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="needs poppler-utils")
def test_pdf_report_page_by_page(make_page: MakePage, tmp_path: Path) -> None:
    page = make_page(FakeSource(flags_open=[flag()]))
    pdf = page.export_pdf(tmp_path / "report.pdf")
    subprocess.run(["pdftoppm", "-r", "40", "-png", str(pdf), str(tmp_path / "page")],
                   check=True)
    pages = sorted(tmp_path.glob("page-*.png"))
    assert len(pages) == 5  # one section per page: leaderboard, trends, conversion, quality, flags
    expected = [("Leaderboard", "Ada Lovelace"), ("Trends", "Event guest who joined"),
                ("Conversion by inviter", "K-factor 0.20"), ("Quality: retention",
                                                            "Referred members (all)"),
                ("Flags for review", "Same address and browser")]
    for number, (image_path, (heading, content)) in enumerate(zip(pages, expected,
                                                                 strict=True), 1):
        text = _pdf_text(pdf, number)
        assert heading in text and content in text, (number, text)
        image = QImage(str(image_path))
        inked = sum(1 for y in range(0, image.height(), 4) for x in range(0, image.width(), 4)
                    if image.pixelColor(x, y).lightness() < 200)
        assert inked > 40, f"page {number} looks blank"
    # The charts are vectors: their axis and legend text is text in the PDF.
    assert "Still active" in _pdf_text(pdf, 1)
    assert "Public registration" in _pdf_text(pdf, 2)
    listing = subprocess.run(["pdfdetach", "-list", str(pdf)], check=True,
                             capture_output=True, text=True).stdout
    for name in ("leaderboard.csv", "trends.csv", "conversion.csv", "quality.csv", "flags.csv"):
        assert name in listing
    number = next(line.split(":")[0] for line in listing.splitlines()
                  if line.endswith(" leaderboard.csv"))
    subprocess.run(["pdfdetach", "-save", number, "-o", str(tmp_path / "attached.csv"),
                    str(pdf)], check=True)
    attached = list(csv.reader((tmp_path / "attached.csv").read_text("utf-8").splitlines()))
    assert attached[1][:2] == ["1", "Ada Lovelace"]


def test_my_referrals_shows_only_the_members_own(qtbot: QtBot, hub: OperationsHub) -> None:
    source = FakeSource(visible_to_members=False)
    uma = operator(Role.USER, "Uma User")
    page = MyReferralsPage(hub, uma, source=source)  # type: ignore[arg-type]
    qtbot.addWidget(page)
    page.show()
    qtbot.waitUntil(lambda: page.idle and page.activity is not None, timeout=10_000)
    asked = [c for c in source.calls if c[0] in ("activity", "leaderboard")]
    assert asked == [("activity", uma.member_id)]
    assert page.stat_labels["successful"].text() == "3"
    assert page.stat_labels["points"].text() == "20"
    text = page.visible_text()
    assert "10 more points are on hold" in text
    assert "3 more active referees to the “5 active referees” badge." in text
    assert "keeps its leaderboard private" in text
    assert page.board_table.isHidden()
    assert not [c for c in source.calls if c[0] == "leaderboard"]

    source.visible_to_members = True
    source.board_size = 250  # a big organization: the top and the member's own row only
    page.reload()
    qtbot.waitUntil(lambda: page.idle and page.board is not None, timeout=10_000)
    assert not page.board_table.isHidden()
    assert ("leaderboard", 10, 0) in source.pages
    assert all(limit == 10 for view, limit, _ in source.pages if view == "leaderboard")
    assert ("standing", rp.Period(rp.PeriodKind.THIS_YEAR)) in source.calls
    assert page.board_model.rowCount() == 11
    last = page.board_model.rows[-1]
    assert (last.rank, last.referrer_name, last.referrer_id) == (57, "Uma User", uma.member_id)
    bold = page.board_model.index(10, 1).data(Qt.ItemDataRole.FontRole)
    assert bold is not None and bold.bold()
    assert "You are ranked 57 of 250. The top 10 and your own row are shown." in \
        page.visible_text()

    source.standing_rank = None  # nothing completed this year
    page.reload()
    qtbot.waitUntil(lambda: page.idle and page.standing is None, timeout=10_000)
    assert page.board_model.rowCount() == 10
    assert "You have no completed referral this year yet." in page.visible_text()


def test_sort_role_sorts_numbers_as_numbers(make_page: MakePage) -> None:
    page = make_page(FakeSource())
    model = page.leaderboard_model
    completed = model.headers().index("Completed")
    page.leaderboard_table.sortByColumn(completed, Qt.SortOrder.DescendingOrder)
    assert [r[completed] for r in table_text(page, "leaderboard")] == ["20", "6", "3"]
    assert isinstance(model.index(0, completed).data(SORT_ROLE), int)


def test_no_matplotlib_and_pyqtgraph_only_when_a_chart_is_built() -> None:
    import sys

    code = ("import sys; import invite_desk.ui.main_window, invite_desk.ui.referrals, "
            "invite_desk.ui.charts; print('pyqtgraph' in sys.modules, "
            "'matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True, cwd=Path(__file__).resolve().parents[2]).stdout.split()
    assert out == ["False", "False"]
    assert "matplotlib" not in sys.modules  # building charts (the tests above) needs none
