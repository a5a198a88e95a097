"""Preview of one invitation as the invitee will see it: sender, subject, HTML and plain text.

The HTML is the services' own rendering (sandboxed, autoescaped); the browser shows it as
a document and never follows links or loads anything remote. The logo the email carries as
a CID part is served to the browser from memory.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import Qt, QUrl, Signal
from PySide6.QtGui import QFont, QFontDatabase, QImage, QTextDocument
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QPlainTextEdit,
    QPushButton,
    QTabWidget,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from invite_desk.services.email.templates import DEFAULT_LOGO_CID, RenderedEmail
from invite_desk.ui.widgets import PlainLabel

PREVIEW_TOKEN = "PREVIEW-TOKEN"

# Mail clients hide the preheader (the line shown next to the subject in the inbox);
# Qt's rich text does not know `display:none`, so the preview drops it.
_HIDDEN_BLOCK = re.compile(
    r"<div[^>]*style=\"[^\"]*display\s*:\s*none[^\"]*\"[^>]*>.*?</div>", re.IGNORECASE | re.DOTALL
)


@dataclass(frozen=True)
class PreviewEmail:
    """What the preview shows: the rendered parts and the envelope as the invitee sees it."""

    rendered: RenderedEmail
    from_label: str
    to_label: str
    logo: bytes | None = None
    note: str = ""  # e.g. "Row 3 · the link in a preview does not work"


class EmailBrowser(QTextBrowser):
    """A QTextBrowser that shows an email body: cid: images from memory, nothing remote."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setOpenLinks(False)
        self.setOpenExternalLinks(False)
        self._images: dict[str, QImage] = {}

    def set_email_html(self, html: str, images: dict[str, bytes] | None = None) -> None:
        self._images = {}
        for cid, data in (images or {}).items():
            image = QImage.fromData(data)
            if not image.isNull():
                self._images[cid] = image
        self.setHtml(_HIDDEN_BLOCK.sub("", html))

    def loadResource(self, type: int, name: QUrl | str) -> Any:  # noqa: A002 (Qt's signature)
        url = QUrl(name) if isinstance(name, str) else name
        if type == QTextDocument.ResourceType.ImageResource and url.scheme() == "cid":
            return self._images.get(url.path())
        return None  # never local files, never the network


class PreviewPane(QWidget):
    """The envelope lines above tabs with the HTML email and its plain-text part."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.from_label = PlainLabel()
        self.to_label = PlainLabel()
        self.subject_label = PlainLabel()
        self.subject_label.setWordWrap(True)
        font = QFont(self.subject_label.font())
        font.setBold(True)
        self.subject_label.setFont(font)
        self.note_label = PlainLabel()
        self.note_label.setWordWrap(True)
        self.note_label.setProperty("variant", "small")
        for label in (self.from_label, self.to_label, self.subject_label):
            label.setTextFormat(Qt.TextFormat.PlainText)
        envelope = QFormLayout()
        envelope.setContentsMargins(0, 0, 0, 0)
        envelope.addRow("From:", self.from_label)
        envelope.addRow("To:", self.to_label)
        envelope.addRow("Subject:", self.subject_label)

        self.html_view = EmailBrowser()
        self.html_view.setAccessibleName("Email as the invitee sees it")
        self.text_view = QPlainTextEdit()
        self.text_view.setReadOnly(True)
        self.text_view.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.text_view.setAccessibleName("Plain-text part of the email")
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.tabs.addTab(self.html_view, "Email")
        self.tabs.addTab(self.text_view, "Plain text")

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(envelope)
        layout.addWidget(self.note_label)
        layout.addWidget(self.tabs, 1)
        self.show_nothing("Select a row to see its email.")

    def show_email(self, email: PreviewEmail) -> None:
        self.from_label.setText(email.from_label)
        self.to_label.setText(email.to_label)
        self.subject_label.setText(email.rendered.subject)
        self.note_label.setText(email.note)
        self.note_label.setVisible(bool(email.note))
        images = {DEFAULT_LOGO_CID: email.logo} if email.logo else {}
        self.html_view.set_email_html(email.rendered.html, images)
        self.text_view.setPlainText(email.rendered.text)

    def show_nothing(self, message: str) -> None:
        for label in (self.from_label, self.to_label, self.subject_label):
            label.setText("")
        self.note_label.setText(message)
        self.note_label.setVisible(bool(message))
        self.html_view.set_email_html("")
        self.text_view.setPlainText("")

    @property
    def subject(self) -> str:
        return self.subject_label.text()

    @property
    def html_text(self) -> str:
        """What the HTML view shows, as plain text (for tests and accessibility)."""
        return self.html_view.toPlainText()


class PreviewDialog(QDialog):
    """A non-modal window with the preview; it follows the composer's selected row."""

    test_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Preview invitation")
        self.resize(760, 720)
        self.pane = PreviewPane()
        self.test_button = QPushButton("Send a test to myself")
        self.test_button.setToolTip(
            "Sends this email to your own address through the SMTP settings. "
            "It is not recorded as an invitation and its link does not work."
        )
        self.test_button.clicked.connect(self.test_requested)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.addButton(self.test_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.pane, 1)
        layout.addWidget(buttons)
