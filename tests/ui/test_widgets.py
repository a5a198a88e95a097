"""ui/widgets.py: plain labels, tooltips and message boxes; the confirmation box's defaults."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QApplication, QLabel, QMessageBox, QPushButton
from pytestqt.qtbot import QtBot

from invite_desk.ui import widgets
from invite_desk.ui.widgets import confirm as real_confirm  # before the autouse stand-in

HOSTILE = '<img src="/dev/zero"><b>Eve</b> & <script>x</script>'


def test_a_plain_label_shows_html_as_typed(qtbot: QtBot) -> None:
    label = widgets.PlainLabel(HOSTILE)
    qtbot.addWidget(label)
    assert label.textFormat() == Qt.TextFormat.PlainText and label.text() == HOSTILE
    label.setText("<b>again</b>")
    assert label.textFormat() == Qt.TextFormat.PlainText


@pytest.mark.parametrize("text", [HOSTILE, "<b>bold</b>", "line one\n<i>two</i>", "a < b",
                                  "no markup at all", "Tom & Jerry"])
def test_a_tooltip_reads_as_typed(text: str) -> None:
    assert widgets.tooltip_text(widgets.plain_tooltip(text)) == text


def test_a_message_box_is_plain_text_with_its_informative_text(qtbot: QtBot) -> None:
    box = widgets.message_box(None, QMessageBox.Icon.Warning, "Invite Desk", HOSTILE,
                              informative=HOSTILE)
    qtbot.addWidget(box)
    box.show()
    labels = [label for label in box.findChildren(QLabel) if label.text() == HOSTILE]
    assert len(labels) == 2
    assert all(label.textFormat() == Qt.TextFormat.PlainText for label in labels)


def test_summarize_people_names_the_first_few_and_counts_the_rest() -> None:
    emails = [f"p{i}@example.org" for i in range(42)]
    assert widgets.summarize_people(emails) == ("p0@example.org, p1@example.org, p2@example.org, "
                                               "p3@example.org, p4@example.org and 37 more")
    assert widgets.summarize_people(emails[:2]) == "p0@example.org, p1@example.org"


def _answer(qtbot: QtBot, act: str) -> list[str]:
    """Answer the confirmation box once it is up: press Enter, Escape, or click its button."""
    seen: list[str] = []

    def answer() -> None:
        box = QApplication.activeModalWidget()
        if not isinstance(box, QMessageBox):
            QTimer.singleShot(20, answer)
            return
        seen.append(box.text())
        seen.append(box.informativeText())
        seen.append(box.defaultButton().text() if box.defaultButton() else "")
        if act == "click":
            [go] = [b for b in box.findChildren(QPushButton) if b.text() == "Revoke 3"]
            go.click()
        else:
            key = Qt.Key.Key_Return if act == "enter" else Qt.Key.Key_Escape
            qtbot.keyClick(box, key)

    QTimer.singleShot(20, answer)
    return seen


@pytest.mark.parametrize("act, expected", [("enter", False), ("escape", False),
                                           ("click", True)])
def test_the_confirmation_defaults_to_cancel(qtbot: QtBot, act: str, expected: bool) -> None:
    seen = _answer(qtbot, act)
    answer = real_confirm(None, "Revoke invitations", "Revoke 3 invitations?",
                          informative=f"To: {HOSTILE}", action="Revoke 3")
    assert answer is expected
    text, informative, default = seen
    assert text == "Revoke 3 invitations?" and informative == f"To: {HOSTILE}"
    assert default == "Cancel"
