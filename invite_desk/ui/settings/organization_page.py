"""Settings → Organization: name, description, logo, accent colour, registration base URL."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QByteArray, QSize, Qt
from PySide6.QtGui import QColor, QImage, QPixmap
from PySide6.QtWidgets import (
    QColorDialog,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from invite_desk.services import organization as organization_service
from invite_desk.services.errors import ValidationFailed
from invite_desk.services.operator import Operator
from invite_desk.services.organization import HEX_COLOUR, MAX_LOGO_BYTES, OrganizationInfo
from invite_desk.ui.hub import OperationsHub
from invite_desk.ui.settings.page import (
    SettingsPage,
    Writer,
    help_label,
    set_editable,
    set_enabled,
)
from invite_desk.ui.widgets import PlainLabel

if TYPE_CHECKING:
    from invite_desk.ui.context import UnitOfWork

LOGO_FILE_FILTER = "Images (*.png *.jpg *.jpeg *.svg)"
LOGO_FORMATS = {"image/png": "PNG", "image/jpeg": "JPEG", "image/svg+xml": "SVG"}
DEFAULT_ACCENT = "#2F6FEB"
PREVIEW_SIZE = QSize(200, 80)


def sniff_image_type(data: bytes) -> str | None:
    """The MIME type of a PNG, JPEG or SVG file from its first bytes, else None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    head = data[:4096].lstrip().lower()
    if head.startswith((b"<?xml", b"<svg", b"<!--")) and b"<svg" in head:
        return "image/svg+xml"
    return None


def _size_text(size: int) -> str:
    return f"{size / 1024:.0f} KB" if size >= 1024 else f"{size} bytes"


def _pixmap(data: bytes) -> QPixmap | None:
    image = QImage.fromData(QByteArray(data))
    if image.isNull():
        return None
    return QPixmap.fromImage(image)


class OrganizationPage(SettingsPage):
    """The organization's identity and branding, as invitation emails and the portal show it."""

    NAME = "organization"
    TITLE = "Organization"
    INTRO = "What invitation emails and the registration pages show about the organization."

    def __init__(self, uow: UnitOfWork, operator: Operator, parent: QWidget | None = None,
                 *, hub: OperationsHub | None = None) -> None:
        super().__init__(uow, operator, parent, hub=hub)
        self.loaded: OrganizationInfo | None = None
        self.logo_bytes: bytes | None = None
        self.logo_mime: str | None = None
        self._logo_problem = ""

        self.name_edit = QLineEdit()
        self.name_edit.setAccessibleName("Name")
        self.name_edit.setMinimumWidth(380)
        self.add_field("name", editors=[self.name_edit], title="Name")

        self.description_edit = QPlainTextEdit()
        self.description_edit.setAccessibleName("Description")
        self.description_edit.setTabChangesFocus(True)
        self.description_edit.setFixedHeight(66)
        self.description_edit.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.add_field(
            "description",
            editors=[self.description_edit],
            title="Description",
            body=self.description_edit,
            help_text="Shown at the end of every invitation email and on the registration page.",
        )

        self.logo_preview = PlainLabel()
        self.logo_preview.setObjectName("logo-preview")
        self.logo_preview.setFixedSize(PREVIEW_SIZE)
        self.logo_preview.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.logo_preview.setFrameShape(QFrame.Shape.StyledPanel)
        self.logo_preview.setAccessibleName("Logo preview")
        self.logo_info = help_label("")
        self.choose_logo_button = QPushButton("Choose file…")
        self.choose_logo_button.setToolTip("A PNG, JPEG or SVG image of at most 512 KB")
        self.choose_logo_button.clicked.connect(self.choose_logo)
        self.remove_logo_button = QPushButton("Remove")
        self.remove_logo_button.clicked.connect(self.remove_logo)
        logo_body = QWidget()
        logo_line = QHBoxLayout(logo_body)
        logo_line.setContentsMargins(0, 0, 0, 0)
        logo_line.setSpacing(12)
        logo_line.addWidget(self.logo_preview)
        logo_side = QVBoxLayout()
        logo_side.setSpacing(6)
        logo_side.addWidget(self.logo_info)
        buttons = QHBoxLayout()
        buttons.addWidget(self.choose_logo_button)
        buttons.addWidget(self.remove_logo_button)
        buttons.addStretch(1)
        logo_side.addLayout(buttons)
        logo_side.addWidget(
            help_label("PNG, JPEG or SVG, at most 512 KB. Sent inline with every invitation email.")
        )
        logo_side.addStretch(1)
        logo_line.addLayout(logo_side, 1)
        self.add_field(
            "logo",
            editors=[self.choose_logo_button, self.remove_logo_button],
            title="Logo",
            body=logo_body,
        )

        self.accent_swatch = PlainLabel()
        self.accent_swatch.setObjectName("accent-swatch")
        self.accent_swatch.setFixedSize(28, 28)
        self.accent_swatch.setAccessibleName("Accent colour swatch")
        self.accent_edit = QLineEdit()
        self.accent_edit.setAccessibleName("Accent colour")
        self.accent_edit.setPlaceholderText(DEFAULT_ACCENT)
        self.accent_edit.setMaximumWidth(110)
        self.accent_edit.textChanged.connect(self._update_swatch)
        self.accent_button = QPushButton("Choose colour…")
        self.accent_button.clicked.connect(self.choose_colour)
        self.add_field(
            "accent_color",
            editors=[self.accent_swatch, self.accent_edit, self.accent_button],
            title="Accent colour",
            help_text="Buttons and headings in the email and on the registration page, as #RRGGBB.",
        )

        self.url_edit = QLineEdit()
        self.url_edit.setAccessibleName("Registration base URL")
        self.url_edit.setPlaceholderText("https://join.example.org")
        self.url_edit.setMinimumWidth(380)
        self.add_field(
            "registration_base_url",
            editors=[self.url_edit],
            title="Registration base URL",
            help_text=(
                "Where invitees register: the address of the registration portal "
                "(invite-desk portal). Every invitation link starts with it."
            ),
        )

    # ---- logo and colour --------------------------------------------------------------------

    def choose_logo(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose a logo", "", LOGO_FILE_FILTER)
        if path:
            self.set_logo_file(path)

    def set_logo_file(self, path: str | Path) -> None:
        """Take the logo from an image file; a file that cannot be used is reported next to
        the field and leaves the current logo in place."""
        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            self._reject_logo(f"Logo: cannot read {path.name} ({exc.strerror or exc}).")
            return
        mime = sniff_image_type(data)
        if mime is None:
            self._reject_logo(f"Logo must be a PNG, JPEG or SVG image; {path.name} is not one.")
            return
        if len(data) > MAX_LOGO_BYTES:
            self._reject_logo(
                f"Logo must be at most 512 KB; {path.name} is {_size_text(len(data))}."
            )
            return
        if _pixmap(data) is None:
            self._reject_logo(f"Logo: {path.name} could not be read as an image.")
            return
        self._logo_problem = ""
        self._set_logo(data, mime)
        self._on_edited()

    def _reject_logo(self, problem: str) -> None:
        self._logo_problem = problem
        self._on_edited()

    def remove_logo(self) -> None:
        self._logo_problem = ""
        self._set_logo(None, None)
        self._on_edited()

    def _set_logo(self, data: bytes | None, mime: str | None) -> None:
        self.logo_bytes = data
        self.logo_mime = mime
        pixmap = _pixmap(data) if data else None
        if pixmap is None:
            self.logo_preview.setPixmap(QPixmap())
            self.logo_preview.setText("No logo" if data is None else "Cannot show this logo")
            self.logo_info.setText("No logo: emails and pages show the organization name only.")
        else:
            inner = PREVIEW_SIZE - QSize(8, 8)
            self.logo_preview.setPixmap(
                pixmap.scaled(inner, Qt.AspectRatioMode.KeepAspectRatio,
                              Qt.TransformationMode.SmoothTransformation)
            )
            kind = LOGO_FORMATS.get(mime or "", mime or "image")
            self.logo_info.setText(
                f"{kind}, {_size_text(len(data or b''))}, {pixmap.width()} × {pixmap.height()} px"
            )
        self.update_dependent_controls()

    def choose_colour(self) -> None:
        current = QColor(self.accent_edit.text().strip())
        if not current.isValid():
            current = QColor(DEFAULT_ACCENT)
        colour = QColorDialog.getColor(current, self, "Accent colour")
        if colour.isValid():
            self.accent_edit.setText(colour.name().upper())

    def _update_swatch(self, text: str) -> None:
        text = text.strip()
        if HEX_COLOUR.match(text):
            style = f"background: {text}; border: 1px solid #808080; border-radius: 4px;"
        else:
            # An invalid colour: an empty, dashed box rather than a guess.
            style = "background: transparent; border: 1px dashed #808080; border-radius: 4px;"
        self.accent_swatch.setStyleSheet(f"QLabel {{ {style} }}")

    # ---- contract ---------------------------------------------------------------------------

    def fetch(self) -> OrganizationInfo:
        return organization_service.get_organization(self.uow, self.operator.organization_id)

    def show_loaded(self, info: OrganizationInfo) -> None:
        self.loaded = info
        self.begin_loading()
        try:
            self.name_edit.setText(info.name)
            self.description_edit.setPlainText(info.description)
            self._logo_problem = ""
            self._set_logo(info.logo, info.logo_mime)
            self.accent_edit.setText(info.accent_color)
            self._update_swatch(info.accent_color)
            self.url_edit.setText(info.registration_base_url)
        finally:
            self.end_loading()

    def _entered(self) -> dict[str, Any]:
        return {
            "name": self.name_edit.text().strip(),
            "description": self.description_edit.toPlainText().strip(),
            "logo": self.logo_bytes,
            "logo_mime": self.logo_mime,
            "accent_color": self.accent_edit.text().strip().upper(),
            "registration_base_url": self.url_edit.text().strip().rstrip("/"),
        }

    def check(self) -> dict[str, str]:
        errors: dict[str, str] = {}
        try:
            organization_service.validate(self._entered())
        except ValidationFailed as exc:
            errors.update(exc.errors)
        if self._logo_problem:
            errors["logo"] = self._logo_problem
        return errors

    def changes(self) -> dict[str, Any]:
        if self.loaded is None:
            return {}
        entered = self._entered()
        changes = {
            field: value
            for field, value in entered.items()
            if field not in ("logo", "logo_mime") and value != getattr(self.loaded, field)
        }
        if entered["logo"] != self.loaded.logo:
            changes["logo"] = entered["logo"]
            changes["logo_mime"] = entered["logo_mime"]
        return changes

    def change_count(self) -> int:
        # The logo and its type are one change to the user.
        return len([field for field in self.changes() if field != "logo_mime"])

    def writer(self) -> Writer:
        changes, uow, operator = self.changes(), self.uow, self.operator
        return (lambda: organization_service.update_organization(uow, operator, changes)
                if changes else None)

    def show_errors(self, errors: Mapping[str, str]) -> None:
        errors = dict(errors)
        if "logo_mime" in errors:
            errors.setdefault("logo", errors["logo_mime"])
            del errors["logo_mime"]
        super().show_errors(errors)

    def update_dependent_controls(self) -> None:
        editable = self.editable()
        reason = self.read_only_reason
        set_editable(
            [self.name_edit, self.description_edit, self.accent_edit, self.accent_button,
             self.url_edit, self.choose_logo_button, self.remove_logo_button],
            editable,
            reason,
        )
        if editable:
            set_enabled([self.remove_logo_button], self.logo_bytes is not None,
                        "There is no logo to remove.")
