"""The pre-flight table model and its problems-only filter (no database: rows are built here)."""

from __future__ import annotations

from collections import Counter

import pytest
from PySide6.QtCore import QModelIndex, Qt
from PySide6.QtGui import QBrush

from invite_desk.services.invitations.preflight import Preflight, PreflightRow, RowStatus
from invite_desk.ui.compose.preflight_model import (
    STATUS_COLOURS,
    Column,
    PreflightModel,
    PreflightRole,
    ProblemFilter,
    describe_counts,
)

ROWS = (
    PreflightRow(1, "ada@example.org", "Ada Lovelace", "", RowStatus.READY),
    PreflightRow(2, "not-an-address", "", "", RowStatus.INVALID,
                 "An email address must have an @-sign."),
    PreflightRow(3, "ADA@example.org", "", "", RowStatus.DUPLICATE, "Same address as row 1."),
    PreflightRow(4, "member@example.org", "Bo", "", RowStatus.MEMBER,
                 "This person is already a member."),
    PreflightRow(5, "pending@example.org", "", "", RowStatus.PENDING,
                 "An invitation to this address is still pending."),
    *(PreflightRow(n, f"p{n}@example.org", f"Person {n}", "", RowStatus.READY)
      for n in range(6, 13)),
)


@pytest.fixture
def model() -> PreflightModel:
    m = PreflightModel()
    m.set_preflight(Preflight(ROWS))
    return m


def test_model_passes_the_model_tester(qtmodeltester, model: PreflightModel) -> None:
    qtmodeltester.check(model)
    model.clear()
    qtmodeltester.check(model)


def test_proxy_passes_the_model_tester_filtered_and_sorted(qtmodeltester, model: PreflightModel) -> None:
    proxy = ProblemFilter()
    proxy.setSourceModel(model)
    proxy.sort(Column.EMAIL, Qt.SortOrder.DescendingOrder)
    proxy.set_problems_only(True)
    qtmodeltester.check(proxy)


def test_cells_show_the_row_email_name_status_and_reason(model: PreflightModel) -> None:
    assert model.rowCount() == len(ROWS) and model.columnCount() == 5
    headers = [model.headerData(c, Qt.Orientation.Horizontal) for c in range(5)]
    assert headers == ["Row", "Email", "Name", "Status", "Why"]
    second = [model.index(1, c).data() for c in range(5)]
    assert second == [2, "not-an-address", "", "Invalid", "An email address must have an @-sign."]
    statuses = [model.index(r, Column.STATUS).data() for r in range(5)]
    assert statuses == ["Ready", "Invalid", "Duplicate in batch", "Already a member",
                        "Already invited"]
    assert model.index(2, Column.STATUS).data(Qt.ItemDataRole.ToolTipRole) == (
        "Duplicate in batch: Same address as row 1.")


def test_custom_roles_give_the_row_and_its_status(model: PreflightModel) -> None:
    index = model.index(3, Column.EMAIL)
    assert index.data(PreflightRole.ROW) is ROWS[3]
    assert index.data(PreflightRole.STATUS) == "member"
    assert model.index(11, Column.ROW).data(PreflightRole.SORT) == 12
    assert Qt.ItemDataRole.UserRole < PreflightRole.ROW


def test_the_status_cell_is_coloured_by_status_and_other_cells_are_not(model: PreflightModel) -> None:
    for row, status in ((1, RowStatus.INVALID), (2, RowStatus.DUPLICATE), (3, RowStatus.MEMBER)):
        text, background = STATUS_COLOURS[status]
        fg = model.index(row, Column.STATUS).data(Qt.ItemDataRole.ForegroundRole)
        bg = model.index(row, Column.STATUS).data(Qt.ItemDataRole.BackgroundRole)
        assert isinstance(fg, QBrush) and fg.color().name().upper() == text.upper()
        assert isinstance(bg, QBrush) and bg.color().name().upper() == str(background).upper()
    # Ready rows: green text, no tint, so problems stand out.
    ready = model.index(0, Column.STATUS)
    assert ready.data(Qt.ItemDataRole.ForegroundRole).color().name().upper() == "#1E6B35"
    assert ready.data(Qt.ItemDataRole.BackgroundRole) is None
    assert model.index(1, Column.EMAIL).data(Qt.ItemDataRole.BackgroundRole) is None
    # Colour is never the only signal: the status is spelled out for screen readers too.
    assert model.index(1, Column.STATUS).data(Qt.ItemDataRole.AccessibleTextRole).startswith("Invalid.")


def test_counts_and_summary(model: PreflightModel) -> None:
    assert model.counts() == Counter({RowStatus.READY: 8, RowStatus.INVALID: 1,
                                      RowStatus.DUPLICATE: 1, RowStatus.MEMBER: 1,
                                      RowStatus.PENDING: 1})
    assert model.summary() == ("8 ready, 1 invalid, 1 duplicate, 1 already a member, "
                               "1 already invited")
    assert describe_counts(Counter({RowStatus.READY: 48, RowStatus.INVALID: 1,
                                    RowStatus.DUPLICATE: 1})) == "48 ready, 1 invalid, 1 duplicate"
    assert describe_counts(Counter({RowStatus.INVALID: 2, RowStatus.DUPLICATE: 3})) == (
        "0 ready, 2 invalid, 3 duplicates")
    empty = PreflightModel()
    assert empty.summary() == "" and empty.rowCount() == 0


def test_problems_only_hides_ready_rows_and_back(model: PreflightModel) -> None:
    proxy = ProblemFilter()
    proxy.setSourceModel(model)
    assert proxy.rowCount() == len(ROWS)
    proxy.set_problems_only(True)
    shown = {proxy.index(r, Column.EMAIL).data() for r in range(proxy.rowCount())}
    assert shown == {"not-an-address", "ADA@example.org", "member@example.org",
                     "pending@example.org"}
    proxy.set_problems_only(False)
    assert proxy.rowCount() == len(ROWS)


def test_rows_sort_by_number_not_by_text(model: PreflightModel) -> None:
    proxy = ProblemFilter()
    proxy.setSourceModel(model)
    proxy.sort(Column.ROW, Qt.SortOrder.AscendingOrder)
    numbers = [proxy.index(r, Column.ROW).data() for r in range(proxy.rowCount())]
    assert numbers == sorted(numbers) == list(range(1, 13))  # 10 after 9, not after 1


def test_a_new_preflight_resets_the_model(qtbot, model: PreflightModel) -> None:
    with qtbot.waitSignals([model.modelAboutToBeReset, model.modelReset]):
        model.set_preflight(Preflight(ROWS[:2]))
    assert model.rowCount() == 2
    assert model.rowCount(model.index(0, 0)) == 0  # a table: no children
    assert model.data(QModelIndex()) is None


def test_statuses_the_table_has_no_words_for_show_the_services_label(qtmodeltester) -> None:
    """New pre-flight verdicts (issue 8) show up with their label instead of failing."""
    rows = (
        PreflightRow(1, "josé@example.org", "", "", RowStatus.NEEDS_SMTPUTF8, "Needs SMTPUTF8."),
        PreflightRow(2, "zoe@example.org", "", "", RowStatus.UNCERTAIN, "Delivery uncertain."),
        PreflightRow(3, "sam@example.org", "", "", RowStatus.QUEUED, "Already queued."),
    )
    model = PreflightModel()
    model.set_preflight(Preflight(rows))
    qtmodeltester.check(model)
    statuses = [model.index(r, Column.STATUS).data() for r in range(3)]
    assert statuses == ["Ready if the mail server accepts international addresses",
                        "Delivery uncertain", "Already queued"]
    assert isinstance(model.index(1, Column.STATUS).data(Qt.ItemDataRole.BackgroundRole), QBrush)
    assert "1 delivery uncertain" in model.summary() and "1 already queued" in model.summary()


# ----------------------------------------------------- verdicts the services add later
def test_a_verdict_this_table_does_not_know_shows_the_services_label_and_a_colour(
    qtmodeltester: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """New pre-flight verdicts (NEEDS_SMTPUTF8, "already queued", "sponsor 1 of 2"...) come
    from the services with their label in preflight.STATUS_LABELS."""
    from enum import StrEnum

    from invite_desk.services.invitations import preflight

    class Later(StrEnum):
        NEEDS_SMTPUTF8 = "needs_smtputf8"
        UNLABELLED_VERDICT = "unlabelled_verdict"

    monkeypatch.setitem(preflight.STATUS_LABELS, Later.NEEDS_SMTPUTF8,  # type: ignore[index]
                        "Needs an SMTPUTF8 server")
    rows = (
        PreflightRow(1, "ada@example.org", "", "", RowStatus.READY),
        PreflightRow(2, "zoë@exämple.org", "", "", Later.NEEDS_SMTPUTF8,  # type: ignore[arg-type]
                     "The server must accept international addresses."),
        PreflightRow(3, "b@example.org", "", "", Later.UNLABELLED_VERDICT),  # type: ignore[arg-type]
    )
    model = PreflightModel()
    model.set_preflight(Preflight(rows))
    qtmodeltester.check(model)  # type: ignore[attr-defined]

    status = model.index(1, Column.STATUS)
    assert status.data() == "Needs an SMTPUTF8 server"
    assert "international addresses" in status.data(Qt.ItemDataRole.ToolTipRole)
    assert model.index(2, Column.STATUS).data() == "Unlabelled verdict"
    for row in (1, 2):
        index = model.index(row, Column.STATUS)
        foreground = index.data(Qt.ItemDataRole.ForegroundRole)
        background = index.data(Qt.ItemDataRole.BackgroundRole)
        assert isinstance(foreground, QBrush) and isinstance(background, QBrush)
        # Not the colour of Ready: a row that will not be sent stands out.
        assert foreground.color().name() != STATUS_COLOURS[RowStatus.READY][0].lower()
    proxy = ProblemFilter()
    proxy.setSourceModel(model)
    proxy.sort(Column.STATUS)
    proxy.set_problems_only(True)
    assert proxy.rowCount() == 2


def test_after_sending_ready_rows_show_their_outcome(qtmodeltester: object) -> None:
    model = PreflightModel()
    model.set_preflight(Preflight(ROWS[:5]))
    model.mark_ready_rows("queued")
    assert model.index(0, Column.STATUS).data() == "Queued"
    assert model.index(1, Column.STATUS).data() == "Invalid"  # not sent: its verdict stays
    model.set_outcome("ADA@example.org", "failed", "550 no such user")
    assert model.index(0, Column.STATUS).data() == "Failed"
    assert model.index(0, Column.REASON).data() == "550 no such user"
    assert model.index(2, Column.STATUS).data() == "Duplicate in batch"
    model.set_outcome("ada@example.org", "sent")
    assert model.index(0, Column.STATUS).data() == "Sent"
    assert model.outcome_counts() == Counter({"sent": 1})
    qtmodeltester.check(model)  # type: ignore[attr-defined]
    model.set_preflight(Preflight(ROWS[:5]))  # a new check: outcomes are gone
    assert model.index(0, Column.STATUS).data() == "Ready"
