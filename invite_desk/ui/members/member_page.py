"""A member's page: who they are, who referred them, and their referral activity as the
referral programme lists it: successful referrals, the status of their pending invitations,
and who they have referred."""

from __future__ import annotations

import html

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from invite_desk.services.members_view import MemberActivity
from invite_desk.services.models import ReferralStatus
from invite_desk.services.referral_program import ReferralActivity
from invite_desk.services.tracking import Tab
from invite_desk.ui.invitations.table_model import STATUS_COLOURS, STATUS_TEXT, format_when
from invite_desk.ui.members.table_model import MEMBER_STATUS_TEXT
from invite_desk.ui.referrals.texts import activity_summary
from invite_desk.ui.theme import set_variant
from invite_desk.ui.widgets import PlainLabel

EMPTY_TEXT = "Select a member to see their referral activity."


def _stat(value: str, caption: str) -> QWidget:
    box = QFrame()
    box.setObjectName("MemberStat")
    box.setStyleSheet("QFrame#MemberStat { background: #F6F7F9; border-radius: 8px; }")
    layout = QVBoxLayout(box)
    layout.setContentsMargins(12, 8, 12, 8)
    layout.setSpacing(0)
    number = PlainLabel(value)
    number.setObjectName("StatValue")
    number.setStyleSheet("font-size: 16pt; font-weight: 600;")
    text = PlainLabel(caption)
    text.setWordWrap(True)
    set_variant(text, "small")
    box.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
    layout.addWidget(number)
    layout.addWidget(text)
    return box


class MemberPage(QFrame):
    """Shows a MemberActivity. `invitations_requested(member_id)` asks to list all their
    invitations (the main window switches to the Invitations page, filtered)."""

    invitations_requested = Signal(object)  # uuid.UUID of the member

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("MemberPage")
        set_variant(self, "card")
        self.setMinimumWidth(320)
        self.activity: MemberActivity | None = None

        self.message_label = PlainLabel(EMPTY_TEXT)
        self.message_label.setWordWrap(True)
        self.message_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.message_label.setMargin(24)
        set_variant(self.message_label, "muted")

        content = QWidget()
        self._layout = QVBoxLayout(content)
        self._layout.setContentsMargins(16, 14, 16, 14)
        self._layout.setSpacing(6)
        self.name_label = PlainLabel()
        self.name_label.setStyleSheet("font-size: 13pt; font-weight: 600;")
        self.name_label.setWordWrap(True)
        self.facts_label = PlainLabel()
        self.facts_label.setWordWrap(True)
        self.facts_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        set_variant(self.facts_label, "muted")
        self._layout.addWidget(self.name_label)
        self._layout.addWidget(self.facts_label)

        heading = PlainLabel("Referral activity")
        set_variant(heading, "heading")
        self._layout.addSpacing(6)
        self._layout.addWidget(heading)
        self.stats_row = QHBoxLayout()
        self.stats_row.setSpacing(8)
        self._layout.addLayout(self.stats_row)
        self.invitations_label = PlainLabel()
        self.invitations_label.setWordWrap(True)
        self.invitations_label.setSizePolicy(QSizePolicy.Policy.Ignored,
                                             QSizePolicy.Policy.Preferred)
        set_variant(self.invitations_label, "small")
        self._layout.addWidget(self.invitations_label)
        # Points and badges from the referral programme (read separately: may come later).
        self.rewards_label = PlainLabel()
        self.rewards_label.setObjectName("ReferralRewards")
        self.rewards_label.setWordWrap(True)
        self.rewards_label.setSizePolicy(QSizePolicy.Policy.Ignored,
                                         QSizePolicy.Policy.Preferred)
        self.rewards_label.hide()
        self._layout.addWidget(self.rewards_label)

        pending_heading = PlainLabel("Pending invitations")
        set_variant(pending_heading, "heading")
        self._layout.addSpacing(6)
        self._layout.addWidget(pending_heading)
        self.pending_label = PlainLabel()
        self.pending_label.setObjectName("PendingInvitations")
        self.pending_label.setTextFormat(Qt.TextFormat.RichText)
        self.pending_label.setWordWrap(True)
        self.pending_label.setSizePolicy(QSizePolicy.Policy.Ignored,
                                         QSizePolicy.Policy.Preferred)
        self._layout.addWidget(self.pending_label)

        referred_heading = PlainLabel("Who they referred")
        set_variant(referred_heading, "heading")
        self._layout.addSpacing(6)
        self._layout.addWidget(referred_heading)
        self.referred_label = PlainLabel()
        self.referred_label.setObjectName("ReferredMembers")
        self.referred_label.setTextFormat(Qt.TextFormat.RichText)
        self.referred_label.setWordWrap(True)
        self.referred_label.setSizePolicy(QSizePolicy.Policy.Ignored,
                                          QSizePolicy.Policy.Preferred)
        self._layout.addWidget(self.referred_label)
        self.invitations_button = QPushButton("Show all their invitations")
        self.invitations_button.clicked.connect(self._ask_for_invitations)
        self._layout.addSpacing(6)
        self._layout.addWidget(self.invitations_button, 0, Qt.AlignmentFlag.AlignLeft)
        self._layout.addStretch(1)

        scroll = QScrollArea()
        scroll.setObjectName("MemberScroll")
        scroll.setWidget(content)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setStyleSheet("QScrollArea#MemberScroll, QScrollArea#MemberScroll > QWidget > "
                             "QWidget { background: transparent; }")
        self.stack = QStackedWidget()
        self.stack.addWidget(self.message_label)
        self.stack.addWidget(scroll)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(self.stack)

    def show_rewards(self, rewards: ReferralActivity | None) -> None:
        """The member's points and badges (None: not available, e.g. the read failed)."""
        if rewards is None or self.activity is None or rewards.member_id != self.activity.member.id:
            self.rewards_label.hide()
            return
        self.rewards_label.setText(activity_summary(rewards))
        self.rewards_label.show()

    def show_message(self, text: str = EMPTY_TEXT) -> None:
        self.activity = None
        self.rewards_label.hide()
        self.message_label.setText(text)
        self.stack.setCurrentIndex(0)

    def show_activity(self, activity: MemberActivity) -> None:
        if self.activity is None or self.activity.member.id != activity.member.id:
            self.rewards_label.hide()  # the previous member's points are not theirs
        self.activity = activity
        member = activity.member
        self.name_label.setText(member.name)
        facts = [member.email, f"{member.role.label} ({member.role.name})",
                 member.unit_name or "no unit",
                 MEMBER_STATUS_TEXT.get(member.status, member.status),
                 f"joined {member.joined_at.astimezone():%d %b %Y}"]
        facts.append(f"referred by {member.referred_by_name}" if member.referred_by_name
                     else "not referred by a member")
        self.facts_label.setText(" · ".join(facts))
        while self.stats_row.count():
            item = self.stats_row.takeAt(0)
            widget = item.widget() if item is not None else None
            if widget is not None:
                widget.hide()
                widget.deleteLater()
        counts = activity.invitation_counts
        for value, caption in (
            (activity.successful_referrals, "successful referrals"),
            (activity.pending_referrals, "awaiting approval"),
            (counts.get(Tab.PENDING, 0), "pending invitations"),
        ):
            self.stats_row.addWidget(_stat(f"{value:,}", caption), 1)
        sent = counts.get(Tab.ALL, 0)
        parts = [f"{counts.get(tab, 0):,} {tab.label.lower()}" for tab in
                 (Tab.ACCEPTED, Tab.EXPIRED, Tab.FAILED, Tab.UNCERTAIN, Tab.REVOKED)
                 if counts.get(tab, 0)]
        self.invitations_label.setText(
            f"{sent:,} invitation{'' if sent == 1 else 's'} credited to them"
            + (f": {', '.join(parts)}." if parts else "."))
        self.pending_label.setText(self._pending_html(activity))
        self.referred_label.setText(self._referred_html(activity))
        self.stack.setCurrentIndex(1)

    @staticmethod
    def _pending_html(activity: MemberActivity) -> str:
        if not activity.pending_invitations:
            return "<span style='color:#5B6270'>None right now.</span>"
        lines = []
        for row in activity.pending_invitations:
            status = STATUS_TEXT[row.status]
            when = (f"link valid until {format_when(row.expires_at)}" if row.expires_at
                    and row.sent_at else "not sent yet")
            lines.append(
                f"<p style='margin:0 0 6px 0'>{html.escape(row.email)} — "
                f"<span style='color:{STATUS_COLOURS[row.status]}; font-weight:600'>{status}"
                f"</span> <span style='color:#5B6270'>({when})</span></p>")
        more = activity.invitation_counts.get(Tab.PENDING, 0) - len(lines)
        if more > 0:
            lines.append(f"<p style='margin:0; color:#5B6270'>and {more:,} more</p>")
        return "".join(lines)

    @staticmethod
    def _referred_html(activity: MemberActivity) -> str:
        if not activity.referred:
            return "<span style='color:#5B6270'>Nobody yet.</span>"
        lines = []
        for person in activity.referred:
            done = person.referral_status is ReferralStatus.COMPLETED
            state = ("<span style='color:#1E6B35'>completed</span>" if done
                     else "<span style='color:#7A4A00'>pending approval</span>")
            lines.append(f"<p style='margin:0 0 6px 0'>{html.escape(person.name)} "
                         f"<span style='color:#5B6270'>&lt;{html.escape(person.email)}&gt;"
                         f"</span> — {state}, {person.referred_at.astimezone():%d %b %Y}</p>")
        more = activity.referred_total - len(lines)
        if more > 0:
            lines.append(f"<p style='margin:0; color:#5B6270'>and {more:,} more</p>")
        return "".join(lines)

    def _ask_for_invitations(self) -> None:
        if self.activity is not None:
            self.invitations_requested.emit(self.activity.member.id)

    def visible_text(self) -> str:
        """Everything the page says (tests, accessibility)."""
        from PySide6.QtGui import QTextDocument

        texts = []
        for label in self.findChildren(QLabel):
            doc = QTextDocument()
            doc.setHtml(label.text())
            texts.append(doc.toPlainText())
        return "\n".join(t for t in texts if t)
