"""A coloured message line at the top of a referral page (plain text; hidden when empty)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QWidget

from invite_desk.ui.widgets import PlainLabel

STYLES = {
    "info": "background: #E8F1FD; color: #0B3D91; border: 1px solid #A8C7F0;",
    "success": "background: #E9F5EC; color: #1E5631; border: 1px solid #A9D5B5;",
    "warning": "background: #FFF4E5; color: #5F370E; border: 1px solid #F0B429;",
    "error": "background: #FDECEA; color: #8A1C1C; border: 1px solid #F1A9A0;",
}


class Banner(PlainLabel):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent=parent)
        self.setWordWrap(True)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.kind = ""
        self.hide()

    def show_message(self, text: str, kind: str = "info") -> None:
        self.kind = kind
        self.setText(text)
        self.setStyleSheet(f"QLabel {{ {STYLES[kind]} border-radius: 4px; padding: 6px 10px; }}")
        self.setAccessibleName(f"{kind} message")
        self.setVisible(bool(text))

    def clear_message(self) -> None:
        self.kind = ""
        self.setText("")
        self.hide()
