"""Settings → Email template: the subject, HTML and plain-text templates, with a live preview.

The preview renders what is being typed (debounced) with the organization's real branding and
sample values, through the same sandboxed renderer that sends. A template that does not
render is shown with its part, line and reason, and is never saved: `check()` refuses it here
and `update_templates` validates it again.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QSize, Qt, QTimer
from PySide6.QtGui import QFont, QFontDatabase, QShowEvent
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QTabWidget,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from invite_desk.resources_path import resource_path
from invite_desk.services import mail_settings as mail_service
from invite_desk.services import organization as organization_service
from invite_desk.services import settings as settings_service
from invite_desk.services.email.templates import (
    DEFAULT_LOGO_CID,
    EmailContext,
    InvalidEmailContext,
    InvitationTemplates,
    RenderedEmail,
    TemplateError,
    default_templates,
    render,
    validate_templates,
)
from invite_desk.services.invitations.rendering import fallback_base_url
from invite_desk.services.invitations.tokens import registration_link
from invite_desk.services.mail_settings import MailSettings
from invite_desk.services.operator import Operator
from invite_desk.services.organization import OrganizationInfo
from invite_desk.ui.compose.preview import PREVIEW_TOKEN, EmailBrowser
from invite_desk.ui.hub import OperationsHub
from invite_desk.ui.settings.page import (
    Banner,
    SettingsPage,
    Writer,
    emit_signal,
    help_label,
    set_editable,
)
from invite_desk.ui.widgets import PlainLabel

if TYPE_CHECKING:
    from invite_desk.ui.context import UnitOfWork

PREVIEW_DELAY_MS = 300
PARTS = ("subject", "html", "text")
# TemplateError.part -> the field that shows it.
PART_FIELDS = {"Subject template": "subject", "HTML template": "html", "Text template": "text"}
EDITOR_TABS = {"html": "HTML", "text": "Plain text"}

SAMPLE_INVITEE = "Sam Taylor"
SAMPLE_INVITEE_EMAIL = "sam.taylor@example.org"
SAMPLE_EVENT = "Open day"
SAMPLE_MESSAGE = "Hi Sam, I think you would enjoy it here.\nHope to see you on Saturday!"
PREVIEW_KINDS = ("Membership invitation", "Guest invitation to an event")
STALE_PREVIEW = "The preview is not updated while a template has an error (marked in red above)."


def sample_context(
    org: OrganizationInfo, inviter_name: str, expiry_days: int, *, event: bool
) -> EmailContext:
    """The organization's real branding with a sample inviter, invitee and personal message."""
    return EmailContext(
        organization_name=org.name,
        organization_description=org.description,
        accent_color=org.accent_color,
        has_logo=org.logo is not None,
        inviter_name=inviter_name or "A member",
        registration_link=registration_link(fallback_base_url(org), PREVIEW_TOKEN),
        expires_at=(date.today() + timedelta(days=expiry_days)).strftime("%d %B %Y"),
        invitee_name=SAMPLE_INVITEE,
        personal_message=SAMPLE_MESSAGE,
        event_name=SAMPLE_EVENT if event else "",
    )


def variables_help() -> str:
    """The Variables and Filters sections of resources/email/README.md, as Markdown."""
    try:
        readme = resource_path("email", "README.md").read_text(encoding="utf-8")
    except OSError:
        readme = ""
    sections = re.findall(r"^## (?:Variables|Filters)\n.*?(?=^## |\Z)", readme, re.M | re.S)
    if sections:
        text = "\n".join(sections).replace("\n## ", "\n#### ")
        text = "#### " + text.removeprefix("## ")
        # Qt's Markdown shows `\|` inside a code span literally; outside one, &#124; is a
        # pipe that does not end the table cell.
        return re.sub(r"`([^`]*\\\|[^`]*)`",
                      lambda m: m.group(1).replace("\\|", "&#124;"), text)
    names = ", ".join(f"`{name}`" for name in EmailContext.__dataclass_fields__)
    return f"## Variables\n\n{names}, `accent_text_color`\n"


def _one_line(text: str) -> str:
    """The subject for a one-line editor (the rendered subject is one line anyway)."""
    return " ".join(text.splitlines())


def _code_font() -> QFont:
    font = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
    font.setStyleHint(QFont.StyleHint.Monospace)
    return font


def _code_editor(name: str) -> QPlainTextEdit:
    editor = QPlainTextEdit()
    editor.setAccessibleName(name)
    editor.setFont(_code_font())
    editor.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)  # error lines are source lines
    editor.setTabStopDistance(editor.fontMetrics().horizontalAdvance(" ") * 4)
    editor.setMinimumHeight(120)
    return editor


def _corner(*widgets: QWidget) -> QWidget:
    """Widgets for a tab bar's corner, on one line."""
    corner = QWidget()
    line = QHBoxLayout(corner)
    line.setContentsMargins(8, 0, 4, 4)
    line.setSpacing(8)
    for widget in widgets:
        line.addWidget(widget)
    return corner


class _FillingSplitter(QSplitter):
    """A splitter that asks only for its minimum and grows into whatever room there is.

    The Settings window's scroll area sizes a page by its preferred height; a preferred
    height made of the editors' and browsers' generous size hints would make this page
    scroll instead of fitting the window."""

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt's name)
        return self.minimumSizeHint()


class TemplatePreview(QWidget):
    """The rendered sample: sender and subject, then tabs with the HTML email (EmailBrowser,
    the logo served from memory), its plain-text part, and the variables the templates know."""

    def __init__(self, kind_choice: QWidget, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.envelope_label = help_label("")
        self.envelope_label.setTextFormat(Qt.TextFormat.PlainText)
        self.envelope_label.setObjectName("template-preview-envelope")
        self.subject_label = PlainLabel()
        self.subject_label.setTextFormat(Qt.TextFormat.PlainText)
        self.subject_label.setWordWrap(True)
        self.subject_label.setAccessibleName("Subject as the invitee sees it")
        font = self.subject_label.font()
        font.setBold(True)
        font.setPointSizeF(font.pointSizeF() * 1.1)
        self.subject_label.setFont(font)
        self.html_view = EmailBrowser()
        self.html_view.setAccessibleName("Email as the invitee sees it")
        self.html_view.setMinimumHeight(120)
        self.text_view = QPlainTextEdit()
        self.text_view.setReadOnly(True)
        self.text_view.setFont(_code_font())
        self.text_view.setAccessibleName("Plain-text part of the email")
        self.variables_view = QTextBrowser()
        self.variables_view.setOpenLinks(False)
        self.variables_view.setAccessibleName("Template variables")
        self.variables_view.setMarkdown(variables_help())
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.tabs.addTab(self.html_view, "Email")
        self.tabs.addTab(self.text_view, "Plain text")
        self.tabs.addTab(self.variables_view, "Variables")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        head = QHBoxLayout()
        head.setSpacing(8)
        head.addWidget(self.subject_label, 1)
        head.addWidget(PlainLabel("Preview as"))
        head.addWidget(kind_choice)
        layout.addLayout(head)
        layout.addWidget(self.envelope_label)
        layout.addSpacing(4)
        layout.addWidget(self.tabs, 1)

    def show_email(self, rendered: RenderedEmail, envelope: str, logo: bytes | None) -> None:
        self.subject_label.setText(rendered.subject)
        self.envelope_label.setText(envelope)
        images = {DEFAULT_LOGO_CID: logo} if logo else {}
        self.html_view.set_email_html(rendered.html, images)
        self.text_view.setPlainText(rendered.text)

    def show_nothing(self) -> None:
        self.subject_label.setText("")
        self.envelope_label.setText("")
        self.html_view.set_email_html("")
        self.text_view.setPlainText("")

    @property
    def subject(self) -> str:
        return self.subject_label.text()

    @property
    def html_text(self) -> str:
        """What the email view shows, as plain text."""
        return self.html_view.toPlainText()


class TemplatePage(SettingsPage):
    """The invitation email's three templates, a live preview and "Restore defaults"."""

    NAME = "email-template"
    TITLE = "Email template"
    INTRO = (
        # No-break spaces keep each bit of template syntax on one line.
        "The invitation email, written as Jinja templates: {{\u00a0name\u00a0}} inserts a "
        "value (the Variables tab lists them) and {%\u00a0if\u00a0name\u00a0%}…"
        "{%\u00a0endif\u00a0%} a condition. The preview uses your organization's branding "
        "with a sample invitee."
    )

    def __init__(self, uow: UnitOfWork, operator: Operator, parent: QWidget | None = None,
                 *, hub: OperationsHub | None = None) -> None:
        super().__init__(uow, operator, parent, hub=hub)
        self.loaded = InvitationTemplates("", "", "")
        self._defaults = default_templates()
        self._organization: OrganizationInfo | None = None
        self._mail = MailSettings()
        self._expiry_days = 14
        self._checked: tuple[InvitationTemplates, dict[str, str]] | None = None
        self._has_preview = False

        self.preview_timer = QTimer(self)
        self.preview_timer.setSingleShot(True)
        self.preview_timer.setInterval(PREVIEW_DELAY_MS)
        self.preview_timer.timeout.connect(self.refresh_preview)

        self.subject_edit = QLineEdit()
        self.subject_edit.setAccessibleName("Subject template")
        self.subject_edit.setFont(_code_font())
        subject_title = PlainLabel("Subject")
        subject_font = subject_title.font()
        subject_font.setBold(True)
        subject_title.setFont(subject_font)
        subject_title.setBuddy(self.subject_edit)
        subject_line = QWidget()
        subject_box = QHBoxLayout(subject_line)
        subject_box.setContentsMargins(0, 0, 0, 0)
        subject_box.setSpacing(10)
        subject_box.addWidget(subject_title)
        subject_box.addWidget(self.subject_edit, 1)
        self.restore_button = QPushButton("Restore defaults")
        self.restore_button.setToolTip(
            "Put the templates Invite Desk ships back in the editors (saved only with Save)"
        )
        self.restore_button.clicked.connect(self.restore_defaults)
        subject_box.addSpacing(6)
        subject_box.addWidget(self.restore_button)
        self.add_field("subject", editors=[self.subject_edit], body=subject_line)

        self.html_edit = _code_editor("HTML template")
        self.text_edit = _code_editor("Plain-text template")
        self.editor_tabs = QTabWidget()
        self.editor_tabs.setDocumentMode(True)
        self.editor_tabs.setAccessibleName("Template parts")
        for field, editor in (("html", self.html_edit), ("text", self.text_edit)):
            row = self.add_field(field, editors=[editor], body=editor)
            self.form.removeWidget(row.container)
            self.editor_tabs.addTab(row.container, EDITOR_TABS[field])
            editor.cursorPositionChanged.connect(self._show_cursor_position)
        self.editor_tabs.currentChanged.connect(self._show_cursor_position)

        self.cursor_label = help_label("")
        self.cursor_label.setObjectName("template-cursor-position")
        self.editor_tabs.setCornerWidget(_corner(self.cursor_label), Qt.Corner.TopRightCorner)

        self.preview_kind = QComboBox()
        self.preview_kind.addItems(PREVIEW_KINDS)
        self.preview_kind.setAccessibleName("Preview as")
        self.preview_kind.currentIndexChanged.connect(self.refresh_preview)
        self.preview_status = Banner(self)
        self.preview_status.setObjectName("template-preview-status")
        self.preview = TemplatePreview(self.preview_kind)
        preview = QWidget()
        preview_box = QVBoxLayout(preview)
        preview_box.setContentsMargins(0, 8, 0, 0)
        preview_box.setSpacing(6)
        preview_box.addWidget(self.preview_status)
        preview_box.addWidget(self.preview, 1)

        self.splitter = _FillingSplitter(Qt.Orientation.Vertical)
        self.splitter.setChildrenCollapsible(False)
        self.splitter.addWidget(self.editor_tabs)
        self.splitter.addWidget(preview)
        self.splitter.setStretchFactor(0, 2)
        self.splitter.setStretchFactor(1, 3)
        self.form.addWidget(self.splitter, 1)
        # Let the editors and the preview take the page's height (the base ends with a stretch).
        outer = self.layout()
        if isinstance(outer, QVBoxLayout):
            outer.setStretchFactor(self.form, 1)
            outer.setStretch(outer.count() - 1, 0)

    # ---- contract ---------------------------------------------------------------------------

    def fetch(self) -> tuple[InvitationTemplates, OrganizationInfo, MailSettings, int]:
        """The templates and what the preview needs besides: branding, sender, link expiry."""
        organization_id = self.operator.organization_id
        return (mail_service.get_templates(self.uow, organization_id),
                organization_service.get_organization(self.uow, organization_id),
                mail_service.get_mail_settings(self.uow, organization_id),
                settings_service.get_settings(self.uow, organization_id).invitation_expiry_days)

    def show_loaded(
        self, data: tuple[InvitationTemplates, OrganizationInfo, MailSettings, int]
    ) -> None:
        self.loaded, self._organization, self._mail, self._expiry_days = data
        self.begin_loading()
        try:
            self._show_templates(self.loaded)
        finally:
            self.end_loading()
        self.preview_timer.stop()
        self.refresh_preview()

    def _show_templates(self, templates: InvitationTemplates) -> None:
        self.subject_edit.setText(_one_line(templates.subject))
        self.subject_edit.setCursorPosition(0)  # show where it begins
        self.html_edit.setPlainText(templates.html)
        self.text_edit.setPlainText(templates.text)

    def entered(self) -> InvitationTemplates:
        return InvitationTemplates(
            subject=self._subject_source(),
            html=self.html_edit.toPlainText(),
            text=self.text_edit.toPlainText(),
        )

    def _subject_source(self) -> str:
        """The subject as typed; an untouched subject keeps its exact source (the shipped one
        ends with a line break, which a one-line editor cannot show)."""
        typed = self.subject_edit.text()
        for source in (self.loaded.subject, self._defaults.subject):
            if typed == _one_line(source):
                return source
        return typed

    def check(self) -> dict[str, str]:
        if not self.changes():
            return {}
        return self._errors_for(self.entered())

    def _errors_for(self, templates: InvitationTemplates) -> dict[str, str]:
        """The services' validation (parse, names, sample renders), as field -> message."""
        if self._checked is not None and self._checked[0] == templates:
            return dict(self._checked[1])
        try:
            validate_templates(templates)
            errors: dict[str, str] = {}
        except TemplateError as exc:
            errors = {PART_FIELDS.get(exc.part, "html"): str(exc)}
        self._checked = (templates, errors)
        return dict(errors)

    def changes(self) -> dict[str, Any]:
        entered = self.entered()
        return {
            part: getattr(entered, part)
            for part in PARTS
            if getattr(entered, part) != getattr(self.loaded, part)
        }

    def writer(self) -> Writer:
        if not self.changes():
            return lambda: None
        entered, uow, operator = self.entered(), self.uow, self.operator
        return lambda: mail_service.update_templates(uow, operator, entered)

    def restore_defaults(self) -> None:
        """Show the shipped templates in the editors; Save stores them."""
        if self.editable():
            self._show_templates(self._defaults)

    # ---- live preview ---------------------------------------------------------------------------

    def _on_edited(self, *_: Any) -> None:
        # Unlike the other pages, errors are not re-checked on every key: half-typed
        # `{{ name` is always an error. The debounced preview checks and shows them.
        if self._loading:
            return
        self.preview_timer.start()
        emit_signal(self.edited)

    def refresh_preview(self) -> None:
        """Check the templates as they are now; show their errors, or render the preview."""
        self.preview_timer.stop()
        templates = self.entered()
        errors = self._errors_for(templates)
        self.show_errors(errors)
        if errors:
            self._preview_problem(STALE_PREVIEW, "warning")
            return
        if self._organization is None:
            return
        try:
            context = sample_context(
                self._organization, self.operator.name, self._expiry_days,
                event=self.preview_kind.currentIndex() == 1,
            )
            rendered = render(templates, context)
        except (TemplateError, InvalidEmailContext) as exc:
            self._preview_problem(f"The preview cannot be shown: {exc}", "error")
            return
        org = self._organization
        sender = self._mail.from_name or org.name
        if self._mail.from_address:
            sender = f"{sender} <{self._mail.from_address}>"
        envelope = (f"From {sender} to {SAMPLE_INVITEE} <{SAMPLE_INVITEE_EMAIL}>, a sample "
                    f"invitee invited by {context.inviter_name}. The link does not work.")
        self.preview.show_email(rendered, envelope, org.logo)
        self._has_preview = True
        self.preview_status.clear_message()

    def _preview_problem(self, message: str, kind: str) -> None:
        if not self._has_preview:
            self.preview.show_nothing()
        self.preview_status.show_message(message, kind)

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 (Qt's name)
        """Branding saved on the Organization page shows in the preview when this page opens."""
        super().showEvent(event)
        if self._organization is None:
            return
        uow, organization_id = self.uow, self.operator.organization_id

        def fetch_context() -> tuple[OrganizationInfo, MailSettings, int]:
            return (organization_service.get_organization(uow, organization_id),
                    mail_service.get_mail_settings(uow, organization_id),
                    settings_service.get_settings(uow, organization_id).invitation_expiry_days)

        self.hub.query(self, fetch_context, self._context_read, lambda _exc: None,
                       key="context")

    def _context_read(self, context: tuple[OrganizationInfo, MailSettings, int]) -> None:
        if context != (self._organization, self._mail, self._expiry_days):
            self._organization, self._mail, self._expiry_days = context
            self.refresh_preview()

    # ---- errors and controls --------------------------------------------------------------------

    def show_errors(self, errors: Mapping[str, str]) -> None:
        super().show_errors(errors)
        for index, field in enumerate(EDITOR_TABS):
            marked = field in errors
            self.editor_tabs.setTabText(index, EDITOR_TABS[field] + (" ⚠" if marked else ""))
            self.editor_tabs.setTabToolTip(index, "This part has an error" if marked else "")

    def update_dependent_controls(self) -> None:
        set_editable(
            [self.subject_edit, self.html_edit, self.text_edit, self.restore_button],
            self.editable(),
            self.read_only_reason,
        )

    def _show_cursor_position(self, *_: Any) -> None:
        editor = self.html_edit if self.editor_tabs.currentIndex() == 0 else self.text_edit
        cursor = editor.textCursor()
        self.cursor_label.setText(
            f"Line {cursor.blockNumber() + 1}, column {cursor.positionInBlock() + 1}"
        )
