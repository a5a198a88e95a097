"""The Referrals page's Flags tab (admins): anti-gaming flags to clear or reject, after asking.
A part of `ReferralsPage`."""

from __future__ import annotations

from PySide6.QtCore import QSortFilterProxyModel, Qt
from PySide6.QtWidgets import QHBoxLayout, QPushButton, QVBoxLayout, QWidget

from invite_desk.services import referral_program as rp
from invite_desk.ui import widgets
from invite_desk.ui.hub import REFERRALS
from invite_desk.ui.referrals.common import make_table, summary_label
from invite_desk.ui.referrals.tables import RowsModel, flag_columns


class FlagsTab:
    """Mixed into ReferralsPage."""

    def _build_flags(self) -> QWidget:
        self.flag_model: RowsModel[rp.FlagRow] = RowsModel(flag_columns(), parent=self)
        self.flag_table = make_table(self.flag_model, "Flags", stretch=4,
                                     order=Qt.SortOrder.DescendingOrder)
        self.flag_summary = summary_label()
        self.clear_button = QPushButton("Clear (legitimate)")
        self.clear_button.setToolTip("The referral is genuine: its points vest as usual")
        self.reject_button = QPushButton("Reject (fake)")
        self.reject_button.setToolTip("The referral is fake: its points and badges are "
                                      "taken back")
        self.reject_button.setProperty("destructive", "true")
        for button in (self.clear_button, self.reject_button):
            button.setEnabled(False)
        buttons = QHBoxLayout()
        buttons.addWidget(self.flag_summary, 1)
        buttons.addWidget(self.clear_button)
        buttons.addWidget(self.reject_button)
        box = QWidget()
        layout = QVBoxLayout(box)
        layout.setContentsMargins(0, 8, 0, 0)
        layout.addLayout(buttons)
        layout.addWidget(self.flag_table, 1)
        return box

    def _load_flags(self) -> None:
        if not self.is_admin:
            return
        source, operator, unit = self._source, self._operator, self.unit_id
        self._ask("flags", lambda: source.flags(operator, unit), self._show_flags)

    def _show_flags(self, flags: list[rp.FlagRow]) -> None:
        self.flags = list(flags)
        self.flag_model.set_rows(self.flags)
        count = len(self.flags)
        self.flag_summary.setText(
            "Nothing awaits review." if not count else
            f"{count:,} flag{'' if count == 1 else 's'} awaiting review. A flagged referral's "
            "points stay on hold until you clear or reject it; nothing is decided "
            "automatically.")
        if self.flags_tab is not None:
            index = self.tabs.indexOf(self.flags_tab)
            self.tabs.setTabText(index, f"Flags for review ({count:,})" if count
                                 else "Flags for review")
        self._update_flag_buttons()

    def selected_flag(self) -> rp.FlagRow | None:
        if not self.is_admin:
            return None
        index = self.flag_table.currentIndex()
        if not index.isValid() or not self.flag_table.selectionModel().hasSelection():
            return None
        proxy = self.flag_table.model()
        assert isinstance(proxy, QSortFilterProxyModel)
        return self.flag_model.rows[proxy.mapToSource(index).row()]

    def select_flag(self, row: int) -> None:
        self.flag_table.selectRow(row)

    def _update_flag_buttons(self) -> None:
        chosen = self.selected_flag() is not None
        self.clear_button.setEnabled(chosen)
        self.reject_button.setEnabled(chosen)

    def decide_selected(self, decision: rp.FlagStatus) -> bool:
        """Clear or reject the selected flag, after asking. True when the decision was sent."""
        flag = self.selected_flag()
        if flag is None:
            return False
        who = flag.referee_name or flag.referrer_name
        if decision is rp.FlagStatus.REJECTED:
            asked = widgets.confirm(
                self, "Reject as fake",
                f"Reject the referral of {who} by {flag.referrer_name} as fake?",
                informative="Its points and any badge it earned are taken back; the ledger "
                            "and the audit log record your decision.",
                action="Reject")
        else:
            asked = widgets.confirm(
                self, "Clear flag",
                f"Clear the flag on {flag.referrer_name} ({flag.kind.label})?",
                informative="The referral counts as genuine: its held points vest as usual.",
                action="Clear")
        if not asked:
            return False
        source, operator = self._source, self._operator
        self.clear_button.setEnabled(False)
        self.reject_button.setEnabled(False)
        self.hub.mutate(self, lambda: source.decide_flag(operator, flag, decision),
                        changes={REFERRALS}, done=lambda _row: self.reload(),
                        error=self._decision_failed)
        return True

    def _decision_failed(self, error: BaseException) -> None:
        widgets.warn(self, "Flag not decided", str(error))
        self._load_flags()
