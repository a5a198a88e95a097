"""Small dialogs the administration pages share: ask for a name, pick one of a list.

Every text that can carry a name someone typed is shown plainly (PlainLabel)."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QLineEdit,
    QVBoxLayout,
    QWidget,
)

from invite_desk.ui.widgets import PlainLabel


class TextDialog(QDialog):
    def __init__(self, parent: QWidget | None, title: str, prompt: str, text: str = "",
                 *, action: str = "OK") -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self.prompt = PlainLabel(prompt)
        self.prompt.setWordWrap(True)
        self.edit = QLineEdit(text)
        self.edit.setAccessibleName(title)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.ok = self.buttons.addButton(action, QDialogButtonBox.ButtonRole.AcceptRole)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        self.edit.textChanged.connect(lambda t: self.ok.setEnabled(bool(t.strip())))
        self.ok.setEnabled(bool(text.strip()))
        layout = QVBoxLayout(self)
        layout.addWidget(self.prompt)
        layout.addWidget(self.edit)
        layout.addWidget(self.buttons)
        self.setMinimumWidth(380)


class ChoiceDialog(QDialog):
    """Pick one of `choices` ((text, value) pairs)."""

    def __init__(self, parent: QWidget | None, title: str, prompt: str,
                 choices: Sequence[tuple[str, object]], *, action: str = "OK") -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self.prompt = PlainLabel(prompt)
        self.prompt.setWordWrap(True)
        self.combo = QComboBox()
        self.combo.setAccessibleName(title)
        for text, value in choices:
            self.combo.addItem(text, value)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.ok = self.buttons.addButton(action, QDialogButtonBox.ButtonRole.AcceptRole)
        self.ok.setEnabled(bool(choices))
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.prompt)
        layout.addWidget(self.combo)
        layout.addWidget(self.buttons)
        self.setMinimumWidth(380)

    @property
    def value(self) -> object:
        return self.combo.currentData()


# Tests answer these in place of a person (like widgets.confirm): monkeypatch `ask_text` /
# `ask_choice` in this module.
def ask_text(parent: QWidget | None, title: str, prompt: str, text: str = "", *,
             action: str = "OK") -> str | None:
    dialog = TextDialog(parent, title, prompt, text, action=action)
    return dialog.edit.text().strip() if dialog.exec() == QDialog.DialogCode.Accepted else None


def ask_choice(parent: QWidget | None, title: str, prompt: str,
               choices: Sequence[tuple[str, object]], *, action: str = "OK") -> object | None:
    dialog = ChoiceDialog(parent, title, prompt, choices, action=action)
    return dialog.value if dialog.exec() == QDialog.DialogCode.Accepted else None
