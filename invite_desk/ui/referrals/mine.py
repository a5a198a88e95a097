"""'My referrals': a signed-in member's own referral activity, and nobody else's.

What the referral programme promises a member: their successful referrals, their pending
invitations, whom they referred, their points (vested and held) and badges, and the points
ledger with its reasons. The leaderboard is shown only when the organization makes it
visible to members (the services then hide members who opted out). All reads go through the
hub; the services check that a USER asks only for their own activity.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QShowEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QFrame,
    QHBoxLayout,
    QSizePolicy,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from invite_desk.services import referral_program as rp
from invite_desk.services.operator import Operator
from invite_desk.ui.hub import (
    APPLICATIONS,
    INVITATIONS,
    MEMBERS,
    REFERRALS,
    SETTINGS,
    Changes,
    OperationsHub,
)
from invite_desk.ui.referrals.banner import Banner
from invite_desk.ui.referrals.common import WATCHED, make_table
from invite_desk.ui.referrals.source import ReferralSource
from invite_desk.ui.referrals.tables import Column, RowsModel, badges_text, percent, when
from invite_desk.ui.referrals.texts import next_badge_text
from invite_desk.ui.theme import set_variant
from invite_desk.ui.widgets import PlainLabel

log = logging.getLogger(__name__)
Clock = Callable[[], datetime]
BOARD_TOP = 10  # leaderboard rows shown to a member, beside their own

REWARD_TEXT = {"": "–", "held": "held", "vested": "vested", "revoked": "taken back"}
LEDGER_TEXT = {rp.LedgerKind.AWARD: "Awarded", rp.LedgerKind.VEST: "Vested",
               rp.LedgerKind.REVOKE: "Taken back"}
REASON_TEXT = {
    rp.LedgerReason.REFEREE_ACTIVE: "the person you referred became an active member",
    rp.LedgerReason.HOLD_ELAPSED: "the hold period is over",
    rp.LedgerReason.REFEREE_LAPSED: "the person you referred is no longer an active member",
    rp.LedgerReason.APPLICATION_REJECTED: "their membership application was rejected",
    rp.LedgerReason.FLAGGED_FAKE: "an admin found the referral was not genuine",
}


def _stat(caption: str) -> tuple[QFrame, PlainLabel]:
    box = QFrame()
    box.setObjectName("ReferralStat")
    box.setStyleSheet("QFrame#ReferralStat { background: #F6F7F9; border-radius: 8px; }")
    layout = QVBoxLayout(box)
    layout.setContentsMargins(12, 8, 12, 8)
    layout.setSpacing(0)
    number = PlainLabel("–")
    number.setStyleSheet("font-size: 16pt; font-weight: 600;")
    text = PlainLabel(caption)
    text.setWordWrap(True)
    set_variant(text, "small")
    box.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
    layout.addWidget(number)
    layout.addWidget(text)
    return box, number


def referee_columns() -> list[Column[rp.RefereeRow]]:
    return [
        Column("Name", lambda r: r.name, width=170),
        Column("Email", lambda r: r.email, width=200),
        Column("Referral", lambda r: r.referral_status, width=90),
        Column("Membership", lambda r: r.member_status, width=90),
        Column("Referred", lambda r: r.referred_at, lambda r: f"{r.referred_at.astimezone():%d %b %Y}",
               width=100),
        Column("Points", lambda r: r.reward_state,
               lambda r: REWARD_TEXT.get(r.reward_state, r.reward_state)
               + (" (under review)" if r.flagged else ""), width=130),
    ]


def ledger_columns() -> list[Column[rp.LedgerEntry]]:
    return [
        Column("When", lambda e: e.at, lambda e: when(e.at), width=130),
        Column("What", lambda e: LEDGER_TEXT.get(e.kind, e.kind.value), width=90),
        Column("Points", lambda e: e.points, lambda e: f"{e.points:+,}", numeric=True, width=60),
        Column("Referee", lambda e: e.referee_name, width=170),
        Column("Why", lambda e: REASON_TEXT.get(e.reason, e.reason.value), width=320),
    ]


def board_columns() -> list[Column[rp.LeaderboardRow]]:
    return [
        Column("#", lambda r: r.rank, numeric=True, width=36),
        Column("Member", lambda r: r.referrer_name, width=180),
        Column("Completed", lambda r: r.completed, numeric=True, width=80),
        Column("Still active", lambda r: r.active, numeric=True, width=80),
        Column("Acceptance", lambda r: r.acceptance_rate, lambda r: percent(r.acceptance_rate),
               numeric=True, width=84),
        Column("Points", lambda r: r.points, numeric=True, width=60),
        Column("Badges", lambda r: len(r.badges), lambda r: badges_text(r.badges), width=80),
    ]


class MyReferralsPage(QWidget):
    """The signed-in member's own referrals. `refreshed` after each complete reload."""

    refreshed = Signal()

    def __init__(self, hub: OperationsHub, operator: Operator, parent: QWidget | None = None,
                 *, source: ReferralSource, clock: Clock | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("MyReferralsPage")
        self.setWindowTitle("My referrals")
        self.hub = hub
        self._operator = operator
        self._source = source
        self._clock = clock
        self._stale = False
        self._pending: set[str] = set()
        self.activity: rp.ReferralActivity | None = None
        self.settings: rp.GamificationSettings | None = None
        self.board: rp.Leaderboard | None = None  # the top of it (BOARD_TOP rows)
        self.standing: rp.LeaderboardRow | None = None  # the member's own row and rank
        self._stale_facts = False
        self._build()
        self.hub.changed.connect(self._hub_changed)
        # The first reading waits until the page is first shown (the main window builds
        # every page at start-up).
        self._stale = True
        self._stale_facts = True

    def _build(self) -> None:
        title = PlainLabel("My referrals")
        set_variant(title, "title")
        subtitle = PlainLabel("The people you brought in, and the points and badges they "
                              "earned you. Points count once the person you referred is an "
                              "active member, and are taken back if they lapse.")
        subtitle.setWordWrap(True)
        set_variant(subtitle, "muted")
        self.banner = Banner(self)
        stats = QHBoxLayout()
        stats.setSpacing(8)
        self.stat_labels: dict[str, PlainLabel] = {}
        for key, caption in (("successful", "successful referrals"),
                             ("active", "of them still active"),
                             ("pending", "pending invitations"),
                             ("points", "points vested"),
                             ("badges", "badges")):
            box, number = _stat(caption)
            number.setObjectName(f"stat-{key}")
            self.stat_labels[key] = number
            stats.addWidget(box, 1)
        self.badge_label = PlainLabel("")
        self.badge_label.setWordWrap(True)
        self.referee_model: RowsModel[rp.RefereeRow] = RowsModel(
            referee_columns(), marked=lambda r: r.reward_state == "revoked", parent=self)
        self.referee_table = make_table(self.referee_model, "My referees")
        self.ledger_model: RowsModel[rp.LedgerEntry] = RowsModel(ledger_columns(), parent=self)
        self.ledger_table = make_table(self.ledger_model, "Points history", stretch=4,
                                       order=Qt.SortOrder.DescendingOrder)
        self.board_label = PlainLabel("")
        self.board_label.setWordWrap(True)
        set_variant(self.board_label, "muted")
        self.board_model: RowsModel[rp.LeaderboardRow] = RowsModel(
            board_columns(), bold=lambda r: r.referrer_id == self._operator.member_id,
            parent=self)
        self.board_table = make_table(self.board_model, "Leaderboard")
        self.board_table.hide()
        self.opt_out = QCheckBox("Leave me off the leaderboard other members see")
        self.opt_out.setObjectName("leaderboard-opt-out")
        self.opt_out.setToolTip("Your referrals, points and badges still count, and admins "
                                "still see them; other members will not see your name in "
                                "the leaderboard.")
        self.opt_out.setEnabled(False)  # until the current choice has been read
        self.opt_out.toggled.connect(self._opt_out_toggled)

        root = QVBoxLayout(self)
        root.setContentsMargins(20, 16, 20, 16)
        root.setSpacing(8)
        root.addWidget(title)
        root.addWidget(subtitle)
        root.addWidget(self.banner)
        root.addLayout(stats)
        root.addWidget(self.badge_label)
        for caption, table in (("Who you referred", self.referee_table),
                               ("Points history", self.ledger_table)):
            label = PlainLabel(caption)
            set_variant(label, "heading")
            root.addWidget(label)
            root.addWidget(table, 1)
        heading = PlainLabel("Leaderboard, this year")
        set_variant(heading, "heading")
        root.addWidget(heading)
        root.addWidget(self.board_label)
        root.addWidget(self.opt_out)
        root.addWidget(self.board_table, 1)

    @property
    def idle(self) -> bool:
        return not self._pending

    def _ask(self, key: str, work: Callable[[], Any], done: Callable[[Any], None]) -> None:
        self._pending.add(key)

        def finish(result: Any) -> None:
            done(result)
            self._answered(key)

        def failed(error: BaseException) -> None:
            log.warning("my referrals %s: %s", key, error)
            self.banner.show_message(str(error), "error")
            self._answered(key)

        if not self.hub.query(self, work, finish, failed, key=key):
            self._pending.discard(key)

    def _answered(self, key: str) -> None:
        self._pending.discard(key)
        if not self._pending:
            self.refreshed.emit()

    def refresh(self) -> None:
        """Bring the points ledger up to date (a write, through the hub; the leaderboard reads
        what it holds), then read."""
        self._stale = False
        source, operator = self._source, self._operator
        now = self._clock() if self._clock is not None else None
        self._pending.add("reconcile")

        def reconciled(result: rp.ReconcileResult) -> None:
            self._pending.discard("reconcile")
            if result != rp.ReconcileResult():
                self.hub.broadcast({REFERRALS}, self)
            self.reload()

        def failed(error: BaseException) -> None:
            log.warning("my referrals: reconcile: %s", error)
            self._pending.discard("reconcile")
            self.reload()

        # Through `query`, not `mutate`: it only derives state the facts already decide, is
        # safe to interrupt (its transaction rolls back) and to repeat, so quitting simply
        # waits for it instead of asking about "a change being saved" nobody made.
        if not self.hub.query(self, lambda: source.reconcile(operator, now), reconciled,
                              failed, key="reconcile"):
            self._pending.discard("reconcile")

    def reload(self) -> None:
        self._stale = False
        self.banner.clear_message()
        source, operator = self._source, self._operator
        now = self._clock() if self._clock is not None else None
        self._ask("activity", lambda: source.activity(operator, operator.member_id, now),
                  self._show_activity)

        def board() -> tuple[rp.GamificationSettings, rp.Leaderboard | None,
                             rp.LeaderboardRow | None]:
            settings = source.settings(operator)
            if not settings.leaderboard_visible_to_members:
                return settings, None, None
            # The top of the board and the member's own row with its rank: never the whole
            # board (tens of thousands of referrers in a big organization).
            year = rp.Period(rp.PeriodKind.THIS_YEAR)
            return (settings, source.leaderboard(operator, year, None, now, limit=BOARD_TOP),
                    source.standing(operator, year, now))

        self._ask("board", board, self._show_board)
        self._ask("opt-out", lambda: source.opted_out(operator, operator.member_id),
                  self._show_opt_out)

    def _show_opt_out(self, opted_out: bool) -> None:
        self.opt_out.blockSignals(True)
        self.opt_out.setChecked(opted_out)
        self.opt_out.blockSignals(False)
        self.opt_out.setEnabled(True)

    def _opt_out_toggled(self, checked: bool) -> None:
        """Save the member's choice through the hub; the box stays disabled until it is
        saved, and goes back to the saved value if saving failed."""
        source, operator = self._source, self._operator
        self.opt_out.setEnabled(False)
        self._pending.add("save-opt-out")

        def saved(value: bool) -> None:
            self._pending.discard("save-opt-out")
            self._show_opt_out(value)
            self.reload()  # clears the banner: the message comes after
            self.banner.show_message(
                "You are no longer listed on the leaderboard other members see." if value
                else "You are listed on the leaderboard again.", "info")

        def failed(error: BaseException) -> None:
            log.warning("my referrals: leaderboard opt-out: %s", error)
            self._pending.discard("save-opt-out")
            self._show_opt_out(not checked)
            self.banner.show_message(str(error), "error")
            if not self._pending:
                self.refreshed.emit()

        if not self.hub.mutate(self, lambda: source.set_opted_out(operator,
                                                                   operator.member_id, checked),
                               {REFERRALS}, saved, failed):
            self._pending.discard("save-opt-out")

    def _show_activity(self, activity: rp.ReferralActivity) -> None:
        self.activity = activity
        values = {"successful": f"{activity.successful_referrals:,}",
                  "active": f"{activity.active_referees:,}",
                  "pending": f"{activity.pending_invitations:,}",
                  "points": f"{activity.points:,}",
                  "badges": f"{len(activity.badges):,}"}
        for key, value in values.items():
            self.stat_labels[key].setText(value)
        badges = ", ".join(b.label for b in activity.badges)
        held = (f"{activity.held_points:,} more points are on hold (they vest after the hold "
                "period, or once an admin has reviewed a flagged referral). "
                if activity.held_points else "")
        self.badge_label.setText(
            held + (f"Your badges: {badges}. " if badges else "No badge yet. ")
            + next_badge_text(activity)
            + (f" {activity.pending_referrals:,} of the people you referred await approval."
               if activity.pending_referrals else ""))
        self.referee_model.set_rows(activity.referred)
        self.ledger_model.set_rows(activity.ledger)

    def _show_board(self, answer: tuple[rp.GamificationSettings, rp.Leaderboard | None,
                                        rp.LeaderboardRow | None]) -> None:
        self.settings, self.board, self.standing = answer
        if self.board is None:
            self.board_label.setText("Your organization keeps its leaderboard private.")
            self.board_model.set_rows([])
            self.board_table.hide()
            return
        rows = list(self.board.rows)
        mine = self.standing
        if mine is not None and all(r.referrer_id != mine.referrer_id for r in rows):
            rows.append(mine)  # below the top, with its own rank
        where = ("You have no completed referral this year yet." if mine is None else
                 f"You are ranked {mine.rank:,} of {self.board.total:,}.")
        top = (f" The top {len(self.board.rows):,} and your own row are shown."
               if self.board.total > len(self.board.rows) else "")
        self.board_label.setText(f"{where}{top} Ranked by quality: referees who are still "
                                 "active count most. Members who opted out are not listed.")
        self.board_model.set_rows(rows)
        self.board_table.show()

    def _hub_changed(self, changes: Changes) -> None:
        if changes.origin is self or not changes.touches(*WATCHED):
            return
        facts = changes.touches(MEMBERS, INVITATIONS, APPLICATIONS, SETTINGS)
        if not self.isVisible():
            self._stale = True
            self._stale_facts = self._stale_facts or facts
        elif facts:
            self.refresh()
        else:
            self.reload()

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802
        super().showEvent(event)
        if self._stale:
            if self._stale_facts:
                self.refresh()
            else:
                self.reload()
            self._stale_facts = False

    def visible_text(self) -> str:
        """What the page says and lists (tests)."""
        texts = [label.text() for label in self.findChildren(PlainLabel) if label.text()]
        for table in self.findChildren(QTableView):
            if table.isHidden():
                continue
            model = table.model()
            for row in range(model.rowCount()):
                texts.append(" | ".join(
                    str(model.index(row, column).data(Qt.ItemDataRole.DisplayRole))
                    for column in range(model.columnCount())))
        return "\n".join(texts)
