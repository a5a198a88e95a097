"""A page for a part of the app that is not built yet: says plainly what it will do."""

from __future__ import annotations

import html
from collections.abc import Sequence

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QSizePolicy, QVBoxLayout, QWidget

from invite_desk.ui import theme
from invite_desk.ui.widgets import PlainLabel

NOT_BUILT_BADGE = "Not built yet · coming in a later release"


class PlaceholderPage(QWidget):
    def __init__(
        self,
        title: str,
        summary: str,
        plans: Sequence[str] = (),
        *,
        icon: QIcon | None = None,
        badge: str = NOT_BUILT_BADGE,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("PlaceholderPage")
        outer = QVBoxLayout(self)
        outer.setContentsMargins(40, 40, 40, 40)

        card = QFrame()
        theme.set_variant(card, "card")
        card.setMinimumWidth(380)
        card.setMaximumWidth(720)
        card.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        layout = QVBoxLayout(card)
        layout.setContentsMargins(32, 28, 32, 32)
        layout.setSpacing(12)

        top = QHBoxLayout()
        top.setSpacing(14)
        if icon is not None:
            picture = PlainLabel()
            picture.setPixmap(icon.pixmap(QSize(36, 36)))
            picture.setFixedSize(40, 40)
            top.addWidget(picture, 0, Qt.AlignmentFlag.AlignTop)
        self.title_label = PlainLabel(title)
        self.title_label.setObjectName("PlaceholderTitle")
        self.title_label.setWordWrap(True)
        theme.set_variant(self.title_label, "title")
        top.addWidget(self.title_label, 1)
        layout.addLayout(top)

        self.badge_label = PlainLabel(badge)
        theme.set_variant(self.badge_label, "badge")
        layout.addWidget(self.badge_label, 0, Qt.AlignmentFlag.AlignLeft)

        self.summary_label = PlainLabel(summary)
        self.summary_label.setWordWrap(True)
        layout.addSpacing(4)
        layout.addWidget(self.summary_label)

        if plans:
            heading = PlainLabel("What it will do")
            theme.set_variant(heading, "heading")
            layout.addSpacing(6)
            layout.addWidget(heading)
            self.plans_label = PlainLabel("".join(f"<p style='margin:3px 0'>•&nbsp; {html.escape(p)}</p>"
                                              for p in plans))
            self.plans_label.setTextFormat(Qt.TextFormat.RichText)
            self.plans_label.setWordWrap(True)
            theme.set_variant(self.plans_label, "muted")
            layout.addWidget(self.plans_label)

        # Stretches rather than alignment flags: an aligned widget gets its size hint, and
        # word-wrapped labels inside it would be cut off instead of growing taller.
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(card, 100)
        row.addStretch(1)
        outer.addLayout(row)
        outer.addStretch(1)

    def visible_text(self) -> str:
        """Everything the page says, for tests and accessibility checks."""
        return "\n".join(label.text() for label in self.findChildren(QLabel) if label.text())
