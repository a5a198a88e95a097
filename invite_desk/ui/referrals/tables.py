"""Read-only table models for the referral reports: one generic model, columns per view.

Each column says how to show a row (text), how to sort it (a plain value) and how to export
it (CSV text). Views sort through a QSortFilterProxyModel on `SORT_ROLE`. Names and addresses
are DisplayRole text, which item views always paint as plain text.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QBrush, QColor, QFont

from invite_desk.services import referral_program as rp
from invite_desk.ui.widgets import plain_tooltip

R = TypeVar("R")
SORT_ROLE = Qt.ItemDataRole.UserRole + 1
ROW_ROLE = Qt.ItemDataRole.UserRole + 2
MUTED = QColor("#6B7280")

Index = QModelIndex | QPersistentModelIndex


def percent(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.0f}%"


def duration(seconds: float | None) -> str:
    """'3.5 days', '5 h', '–'."""
    if seconds is None:
        return "–"
    if seconds < 3600:
        return f"{max(seconds / 60, 0):.0f} min"
    if seconds < 2 * 86_400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86_400:.1f} days"


def badges_text(badges: Sequence[rp.Badge]) -> str:
    return ", ".join(str(b.milestone) for b in badges) if badges else "–"


def when(moment: datetime | None) -> str:
    return "–" if moment is None else f"{moment.astimezone():%d %b %Y %H:%M}"


@dataclass(frozen=True)
class Column(Generic[R]):
    title: str
    value: Callable[[R], Any]  # sort key and, unless `text` is given, what is shown
    text: Callable[[R], str] | None = None
    numeric: bool = False
    tooltip: str = ""
    width: int = 0

    def shown(self, row: R) -> str:
        if self.text is not None:
            return self.text(row)
        value = self.value(row)
        if value is None:
            return "–"
        if isinstance(value, int) and not isinstance(value, bool):
            return f"{value:,}"
        return str(value)


class RowsModel(QAbstractTableModel, Generic[R]):
    """Rows of one frozen dataclass, shown through `columns`. `marked(row)` rows are grey and
    italic (e.g. members who opted out of the public leaderboard); `bold(row)` rows are bold
    (summary rows)."""

    def __init__(self, columns: Sequence[Column[R]], *, marked: Callable[[R], bool] | None = None,
                 bold: Callable[[R], bool] | None = None, parent: Any = None) -> None:
        super().__init__(parent)
        self.columns = list(columns)
        self.rows: list[R] = []
        self._marked = marked
        self._bold = bold

    def set_rows(self, rows: Sequence[R]) -> None:
        self.beginResetModel()
        self.rows = list(rows)
        self.endResetModel()

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else len(self.columns)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        row = self.rows[index.row()]
        column = self.columns[index.column()]
        if role == Qt.ItemDataRole.DisplayRole:
            return column.shown(row)
        if role == SORT_ROLE:
            value = column.value(row)
            if value is None:
                return -1.0 if column.numeric else ""
            if isinstance(value, datetime):
                return value.timestamp()
            return value if column.numeric else str(value).casefold()
        if role == ROW_ROLE:
            return row
        if role == Qt.ItemDataRole.ToolTipRole:
            return plain_tooltip(column.shown(row))
        if role == Qt.ItemDataRole.TextAlignmentRole:
            horizontal = (Qt.AlignmentFlag.AlignRight if column.numeric
                          else Qt.AlignmentFlag.AlignLeft)
            return int(horizontal | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.ForegroundRole and self._marked is not None:
            return QBrush(MUTED) if self._marked(row) else None
        if role == Qt.ItemDataRole.FontRole:
            font = QFont()
            styled = False
            if self._marked is not None and self._marked(row):
                font.setItalic(True)
                styled = True
            if self._bold is not None and self._bold(row):
                font.setBold(True)
                styled = True
            return font if styled else None
        return None

    def headerData(self, section: int, orientation: Qt.Orientation,  # noqa: N802
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < len(self.columns):
            return None
        column = self.columns[section]
        if role == Qt.ItemDataRole.DisplayRole:
            return column.title
        if role == Qt.ItemDataRole.ToolTipRole and column.tooltip:
            return plain_tooltip(column.tooltip)
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return int((Qt.AlignmentFlag.AlignRight if column.numeric
                        else Qt.AlignmentFlag.AlignLeft) | Qt.AlignmentFlag.AlignVCenter)
        return None

    def headers(self) -> list[str]:
        return [c.title for c in self.columns]

    def text_rows(self) -> list[list[str]]:
        """Every row as the table shows it (the PDF)."""
        return [[c.shown(row) for c in self.columns] for row in self.rows]

    def csv_rows(self) -> list[list[str]]:
        """Every row for a spreadsheet: whole numbers without thousands separators, the
        rest as shown ("67%", "3.0 days", "–" for no value)."""
        def cell(column: Column[R], row: R) -> str:
            value = column.value(row)
            if isinstance(value, int) and not isinstance(value, bool) and column.numeric:
                return str(value)
            return column.shown(row)

        return [[cell(c, row) for c in self.columns] for row in self.rows]


# -- the columns of each view ---------------------------------------------------------------

def leaderboard_columns(*, admin: bool) -> list[Column[rp.LeaderboardRow]]:
    columns: list[Column[rp.LeaderboardRow]] = [
        Column("#", lambda r: r.rank, numeric=True, width=36),
        Column("Referrer", lambda r: r.referrer_name,
               lambda r: r.referrer_name + (" (opted out)" if r.opted_out else ""), width=170),
        Column("Email", lambda r: r.referrer_email, width=190),
        Column("Unit", lambda r: r.unit_name, lambda r: r.unit_name or "–", width=110),
        Column("Score", lambda r: r.score, numeric=True, width=60,
               tooltip=f"Quality-weighted: {rp.ACTIVE_WEIGHT} per referee still active, "
                       f"{rp.INACTIVE_WEIGHT} per referee no longer active; ties go to who "
                       "got there first"),
        Column("Completed", lambda r: r.completed, numeric=True, width=80,
               tooltip="Referrals completed in the period (the raw count)"),
        Column("Still active", lambda r: r.active, numeric=True, width=80,
               tooltip="Of the completed referrals, referees who are still active members"),
        Column("Pending", lambda r: r.pending, numeric=True, width=70,
               tooltip="Invitations of the period still open, plus referees whose "
                       "membership application awaits approval"),
        Column("Acceptance", lambda r: r.acceptance_rate, lambda r: percent(r.acceptance_rate),
               numeric=True, width=84, tooltip="Invitations accepted / sent in the period"),
        Column("Points", lambda r: r.points, numeric=True, width=60,
               tooltip="Vested points earned by the period's referrals"),
        Column("Held", lambda r: r.held_points, numeric=True, width=50,
               tooltip="Points awarded but not vested: waiting for the hold period or for "
                       "a flag review"),
        Column("Badges", lambda r: len(r.badges), lambda r: badges_text(r.badges), width=80,
               tooltip="Badge milestones reached (active referees)"),
    ]
    if admin:
        columns.append(Column("Flags", lambda r: r.open_flags, numeric=True, width=50,
                              tooltip="Open anti-gaming flags awaiting review"))
    return columns


def trend_columns() -> list[Column[rp.TrendBucket]]:
    columns: list[Column[rp.TrendBucket]] = [
        Column("Starting", lambda b: b.start, lambda b: f"{b.start:%d %b %Y}", width=100),
    ]
    def joined_by(channel: rp.Channel) -> Callable[[rp.TrendBucket], int]:
        return lambda bucket: bucket.new_members.get(channel, 0)

    for channel in rp.Channel:
        columns.append(Column(channel.label, joined_by(channel), numeric=True, width=110))
    columns += [
        Column("New members", lambda b: b.total_new_members, numeric=True, width=96),
        Column("Invitations sent", lambda b: b.invitations_sent, numeric=True, width=110),
        Column("Accepted", lambda b: b.invitations_accepted, numeric=True, width=80),
    ]
    return columns


BY_TITLES = {rp.ConversionBy.INVITER: "Inviter", rp.ConversionBy.UNIT: "Unit",
             rp.ConversionBy.BATCH: "Batch", rp.ConversionBy.EVENT: "Event"}


def conversion_columns(by: rp.ConversionBy) -> list[Column[rp.ConversionRow]]:
    return [
        Column(BY_TITLES[by], lambda r: r.label, width=220),
        Column("Sent", lambda r: r.sent, numeric=True, width=70),
        Column("Accepted", lambda r: r.accepted, numeric=True, width=80),
        Column("Acceptance", lambda r: r.rate, lambda r: percent(r.rate), numeric=True,
               width=84),
        Column("Median time to accept", lambda r: r.median_seconds_to_accept,
               lambda r: duration(r.median_seconds_to_accept), numeric=True, width=150),
    ]


@dataclass(frozen=True)
class RetentionLine:
    """A row of the quality table: the two summary groups, then each referrer."""

    label: str
    at_90: rp.RetentionFigure
    at_365: rp.RetentionFigure
    summary: bool = False


def retention_lines(retention: rp.Retention) -> list[RetentionLine]:
    lines = [
        RetentionLine("Referred members (all)", retention.referred_90, retention.referred_365,
                      True),
        RetentionLine("Not referred (all)", retention.non_referred_90,
                      retention.non_referred_365, True),
    ]
    lines += [RetentionLine(row.referrer_name, row.at_90, row.at_365)
              for row in retention.per_referrer]
    return lines


def retention_columns() -> list[Column[RetentionLine]]:
    return [
        Column("Members referred by", lambda r: r.label, width=220),
        Column("Joined ≥ 90 days ago", lambda r: r.at_90.cohort, numeric=True, width=150),
        Column("Active at 90", lambda r: r.at_90.retained, numeric=True, width=90),
        Column("Retention 90", lambda r: r.at_90.rate, lambda r: percent(r.at_90.rate),
               numeric=True, width=90),
        Column("Joined ≥ 365 days ago", lambda r: r.at_365.cohort, numeric=True, width=158),
        Column("Active at 365", lambda r: r.at_365.retained, numeric=True, width=96),
        Column("Retention 365", lambda r: r.at_365.rate, lambda r: percent(r.at_365.rate),
               numeric=True, width=96),
    ]


def flag_columns() -> list[Column[rp.FlagRow]]:
    return [
        Column("Raised", lambda f: f.created_at, lambda f: when(f.created_at), width=130),
        Column("Check", lambda f: f.kind.label, width=190),
        Column("Referrer", lambda f: f.referrer_name, width=160),
        Column("Referee", lambda f: f.referee_name, lambda f: f.referee_name or "–", width=160),
        Column("Detail", lambda f: f.detail, width=300),
    ]
