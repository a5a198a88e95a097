"""The Settings window: a page list, the pages, and Save / Revert (the Picard options dialog shape).

Save checks every page before it saves any, so one bad value anywhere saves nothing.
Only ADMIN_TENANT may change settings: for anyone else the pages are read-only and the
banner says why; the services enforce the same rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import TYPE_CHECKING

from PySide6.QtCore import QItemSelectionModel, QModelIndex, Qt, Signal
from PySide6.QtGui import QFont, QKeySequence, QShortcut, QStandardItem, QStandardItemModel
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFrame,
    QHBoxLayout,
    QListView,
    QPushButton,
    QScrollArea,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from invite_desk.services.credentials import CredentialStore
from invite_desk.services.errors import DomainError, PermissionDenied, ValidationFailed
from invite_desk.services.operator import Operator
from invite_desk.services.permissions import Action, decide
from invite_desk.services.roles import Role
from invite_desk.ui.hub import REFERRALS, SETTINGS, OperationsHub
from invite_desk.ui.settings.gamification_page import GamificationPage
from invite_desk.ui.settings.invitations_page import InvitationsPage
from invite_desk.ui.settings.organization_page import OrganizationPage
from invite_desk.ui.settings.page import Banner, SettingsPage, emit_signal
from invite_desk.ui.settings.referrals_page import ReferralsPage
from invite_desk.ui.settings.smtp_page import SmtpPage
from invite_desk.ui.settings.template_page import TemplatePage
from invite_desk.ui.tasks import SynchronousRunner, error_message
from invite_desk.ui.widgets import PlainLabel, plain_tooltip, plural

if TYPE_CHECKING:
    from invite_desk.ui.context import UnitOfWork

PAGE_CLASSES: tuple[type[SettingsPage], ...] = (
    InvitationsPage, ReferralsPage, GamificationPage, OrganizationPage, SmtpPage, TemplatePage,
)

UNSAVED_MARK = " •"


class PageRole(IntEnum):
    """Custom data roles of the page list model."""

    NAME = Qt.ItemDataRole.UserRole + 1


def read_only_reason(operator: Operator) -> str:
    """Why `operator` may not change settings, or "" when they may (mirrors the services)."""
    decision = decide(operator, Action.CHANGE_SETTINGS)
    if decision.allowed:
        return ""
    needed: Role = decision.needed
    return (
        f"Only {needed.label.lower()}s ({needed.name}) can change settings; you are signed in "
        f"as {operator.role.label} ({operator.role.name})."
    )


@dataclass
class SaveOutcome:
    """What a save wrote (built on the hub's thread, read on the GUI thread)."""

    saved: list[SettingsPage] = field(default_factory=list)
    results: list[object] = field(default_factory=list)  # each saved page's writer's answer
    count: int = 0
    refused: SettingsPage | None = None
    error: DomainError | None = None


class SettingsWindow(QWidget):
    """All settings pages with one Save and one Revert. Embeddable, or a window of its own."""

    settings_saved = Signal()
    history_requested = Signal(str, object, str)  # the audit log, filtered to the settings
    """Emitted after a save wrote at least one change (the main window refreshes from it)."""

    def __init__(
        self,
        uow: UnitOfWork,
        operator: Operator,
        parent: QWidget | None = None,
        *,
        credentials: CredentialStore | None = None,
        hub: OperationsHub | None = None,
    ) -> None:
        super().__init__(parent)
        # The main window hands in the app's hub (reads and saves run on its threads and
        # every view hears of a save); alone (tests, screenshots), the window reads in place.
        self.hub = hub if hub is not None else OperationsHub(self, runner=SynchronousRunner())
        self.uow = uow
        self.operator = operator
        self.credentials = credentials
        self._saving = False  # a save is being written on the hub's thread
        self._loading = 0  # pages still being read on the hub's thread
        self._save_result: bool | None = None
        """The OS keyring for pages that keep secrets (SMTP password); without one, those
        pages say so and leave the secret alone."""
        self.setWindowTitle("Invite Desk — Settings[*]")
        self.setObjectName("settings-window")

        self.pages: list[SettingsPage] = [
            cls(uow, operator, credentials=credentials, hub=self.hub)  # type: ignore[call-arg]
            if getattr(cls, "NEEDS_CREDENTIALS", False) else cls(uow, operator, hub=self.hub)
            for cls in PAGE_CLASSES
        ]

        self.page_model = QStandardItemModel(self)
        self.page_list = QListView()
        self.page_list.setObjectName("settings-page-list")
        self.page_list.setAccessibleName("Settings pages")
        self.page_list.setModel(self.page_model)
        self.page_list.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.page_list.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.page_list.setFixedWidth(190)
        self.page_list.setStyleSheet(
            "QListView { outline: 0; } QListView::item { padding: 6px 10px; }"
        )
        self.stack = QStackedWidget()
        for page in self.pages:
            item = QStandardItem(page.TITLE)
            item.setEditable(False)
            item.setData(page.NAME, PageRole.NAME)
            item.setToolTip(page.TITLE)
            self.page_model.appendRow(item)
            scroller = QScrollArea()
            scroller.setWidgetResizable(True)
            scroller.setFrameShape(QFrame.Shape.NoFrame)
            scroller.setWidget(page)
            self.stack.addWidget(scroller)
            page.edited.connect(self._on_page_edited)
        self.page_list.selectionModel().currentChanged.connect(self._on_current_changed)

        self.banner = Banner()
        self.banner.setObjectName("settings-window-banner")
        self.banner.reserve_space()
        self.unsaved_label = PlainLabel()
        self.unsaved_label.setObjectName("unsaved-changes")
        italic = QFont(self.unsaved_label.font())
        italic.setItalic(True)
        self.unsaved_label.setFont(italic)
        self.revert_button = QPushButton("Revert")
        self.revert_button.setToolTip("Discard the changes on every page and show the stored values")
        self.revert_button.clicked.connect(self.revert)
        self.save_button = QPushButton("Save")
        self.save_button.setToolTip("Check every page, then save them all (Ctrl+S)")
        self.save_button.clicked.connect(self.save)

        self.history_button = QPushButton("History")
        self.history_button.setToolTip("Every change to the settings, in the audit log")
        self.history_button.clicked.connect(
            lambda: self.history_requested.emit("settings", None, "the settings"))
        buttons = QHBoxLayout()
        buttons.setContentsMargins(24, 0, 24, 0)
        buttons.addWidget(self.history_button)
        buttons.addWidget(self.unsaved_label, 1)
        buttons.addWidget(self.revert_button)
        buttons.addWidget(self.save_button)
        right = QVBoxLayout()
        right.setContentsMargins(0, 0, 0, 12)
        right.setSpacing(8)
        banner_box = QHBoxLayout()
        banner_box.setContentsMargins(24, 0, 24, 0)
        banner_box.addWidget(self.banner)
        # Messages (saved, errors) show above the buttons that caused them, in a place kept
        # for them: nothing on the page moves when one appears or goes.
        right.addWidget(self.stack, 1)
        right.addLayout(banner_box)
        right.addLayout(buttons)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.page_list)
        layout.addLayout(right, 1)

        save_shortcut = QShortcut(QKeySequence.StandardKey.Save, self)
        save_shortcut.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        save_shortcut.activated.connect(self.save)

        self._read_only_reason = read_only_reason(operator)
        self._load_pages(self.pages)
        if self._read_only_reason:
            for page in self.pages:
                page.set_read_only(self._read_only_reason)
        self.show_page(self.pages[0].NAME)
        self._cross_page_notes()
        self._refresh_state()

    # ---- navigation (also used by the screenshot command) ------------------------------------

    def page_names(self) -> list[str]:
        return [page.NAME for page in self.pages]

    def page(self, name: str) -> SettingsPage:
        by_name = {page.NAME: page for page in self.pages}
        if name in by_name:
            return by_name[name]
        raise KeyError(f"No settings page {name!r}; the pages are {', '.join(self.page_names())}")

    def show_page(self, name: str) -> None:
        index = self.pages.index(self.page(name))
        self.page_list.selectionModel().setCurrentIndex(
            self.page_model.index(index, 0), QItemSelectionModel.SelectionFlag.ClearAndSelect
        )
        self.stack.setCurrentIndex(index)

    def current_page(self) -> SettingsPage:
        return self.pages[self.stack.currentIndex()]

    def _on_current_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if current.isValid():
            self.stack.setCurrentIndex(current.row())

    # ---- state -----------------------------------------------------------------------------

    def is_read_only(self) -> bool:
        return bool(self._read_only_reason)

    def has_unsaved_changes(self) -> bool:
        return not self._loading and any(page.changes() for page in self.pages)

    def _cross_page_notes(self) -> None:
        """Pages stay independent; the window tells one page what another currently says."""
        invitations = self.page(InvitationsPage.NAME)
        referrals = self.page(ReferralsPage.NAME)
        if isinstance(invitations, InvitationsPage) and isinstance(referrals, ReferralsPage):
            referrals.set_invitations_enabled(invitations.enabled_box.isChecked())

    def _on_page_edited(self) -> None:
        self._cross_page_notes()
        # A new edit makes the last save confirmation (or error summary) stale.
        stale = self.banner.kind in ("success", "info") or (
            self.banner.kind == "error" and not any(p.visible_errors() for p in self.pages)
        )
        if stale:
            self.banner.clear_message()
        self._refresh_state()

    def _refresh_state(self) -> None:
        # (While pages are read, what they show is not what is stored yet: nothing changed.)
        changed = [page for page in self.pages if page.changes()] if not self._loading else []
        for row, page in enumerate(self.pages):
            item = self.page_model.item(row)
            dirty = page in changed
            text = page.TITLE + (UNSAVED_MARK if dirty else "")
            if item.text() != text:
                item.setText(text)
                font = QFont(self.page_list.font())
                font.setItalic(dirty)
                item.setFont(font)
                item.setToolTip(f"{page.TITLE}: unsaved changes" if dirty else page.TITLE)
        if changed:
            titles = ", ".join(page.TITLE for page in changed)
            self.unsaved_label.setText(f"Unsaved changes on {titles}.")
        elif self._read_only_reason:
            self.unsaved_label.setText("Read-only.")
        else:
            self.unsaved_label.setText("")
        allowed = not self._read_only_reason
        can_save = allowed and bool(changed) and not self._saving and not self._loading
        if self.save_button.property("primary") != ("true" if can_save else "false"):
            # The app theme shows a primary button in the accent colour: a cue that there is
            # something to save. Disabled, it looks like any disabled button.
            self.save_button.setProperty("primary", "true" if can_save else "false")
            self.save_button.style().unpolish(self.save_button)
            self.save_button.style().polish(self.save_button)
        self.save_button.setEnabled(can_save)
        self.revert_button.setEnabled(allowed and bool(changed))
        if not allowed:
            self.save_button.setToolTip(plain_tooltip(self._read_only_reason))
            self.revert_button.setToolTip(plain_tooltip(self._read_only_reason))
        self.setWindowModified(bool(changed))

    def _load_pages(self, pages: list[SettingsPage]) -> None:
        """Read `pages` on the hub; Save and Revert wait until every one is shown."""
        self._loading += len(pages)
        for page in pages:
            page.load(failed=self._load_failed, loaded=self._page_loaded)
        self._refresh_state()

    def _page_loaded(self) -> None:
        self._loading -= 1
        self._cross_page_notes()
        self._refresh_state()

    def _load_failed(self, exc: BaseException) -> None:
        self._loading -= 1
        self._make_read_only(f"The settings could not be loaded: {error_message(exc)}")
        self.banner.show_message(self._read_only_reason, "error")
        self._refresh_state()

    def _make_read_only(self, reason: str) -> None:
        self._read_only_reason = reason
        for page in self.pages:
            page.set_read_only(reason)

    # ---- save and revert -------------------------------------------------------------------

    def revert(self) -> None:
        """Show the stored values again on every page, dropping all edits."""
        self.banner.clear_message()
        self._load_pages(self.pages)
        self._cross_page_notes()
        self._refresh_state()

    def save(self) -> bool:
        """Check every page; only when all pass, save each changed page through the services.
        Returns True when everything was saved."""
        if self._read_only_reason:
            self.banner.show_message(self._read_only_reason, "warning")
            return False
        if self._saving or self._loading:
            return False
        failing: list[SettingsPage] = []
        for page in self.pages:
            errors = page.check()
            page.show_errors(errors)
            if errors:
                failing.append(page)
        if failing:
            titles = ", ".join(page.TITLE for page in failing)
            self.banner.show_message(
                f"Nothing was saved. Please correct the fields marked in red on: {titles}.",
                "error",
            )
            if self.current_page() not in failing:
                self.show_page(failing[0].NAME)
            return False

        changed = [page for page in self.pages if page.changes()]
        if not changed:
            self.banner.show_message("There are no changes to save.", "info")
            self._refresh_state()
            return True
        # Take every page's values now; write them one page after another on the hub's
        # thread, stopping at the first refusal (the pages saved before it stay saved).
        writers = [(page, page.change_count(), page.writer()) for page in changed]

        def write_all() -> SaveOutcome:
            outcome = SaveOutcome()
            for page, page_count, write in writers:
                try:
                    outcome.results.append(write())
                except DomainError as exc:
                    outcome.refused, outcome.error = page, exc
                    break
                outcome.saved.append(page)
                outcome.count += page_count
            return outcome

        self._saving = True
        self._refresh_state()
        self._save_result = None
        self.hub.mutate(self, write_all,
                        lambda outcome: {SETTINGS, REFERRALS} if outcome.saved else set(),
                        self._saved, self._save_crashed)
        # With the hub of a window on its own the save has finished here.
        return self._save_result if self._save_result is not None else True

    def _saved(self, outcome: SaveOutcome) -> None:
        self._saving = False
        for saved, result in zip(outcome.saved, outcome.results, strict=True):
            saved.written(result)
        error, page = outcome.error, outcome.refused
        self._save_result = page is None
        if page is None:
            self._load_pages(outcome.saved)
            self.banner.show_message(
                f"Saved. {plural(outcome.count, 'change')} recorded in the audit log.",
                "success")
            self._refresh_state()
            emit_signal(self.settings_saved)
        elif isinstance(error, PermissionDenied):
            self._make_read_only(read_only_reason(self.operator) or str(error))
            self._report_failure(outcome.saved, page, str(error))
        elif isinstance(error, ValidationFailed):
            page.show_errors(error.errors)
            self.show_page(page.NAME)
            self._report_failure(outcome.saved, page, "please correct the fields marked in red.")
        else:
            self._report_failure(outcome.saved, page, str(error))

    def _save_crashed(self, error: BaseException) -> None:
        self._saving = False
        self._save_result = False
        self.banner.show_message(f"Nothing was saved: {error_message(error)}", "error")
        self._refresh_state()

    def _report_failure(self, saved: list[SettingsPage], page: SettingsPage, reason: str) -> None:
        if saved:
            self._load_pages(saved)
            done = ", ".join(p.TITLE for p in saved)
            message = f"{done} saved, but {page.TITLE} was not: {reason}"
            emit_signal(self.settings_saved)
        else:
            message = f"Nothing was saved. {page.TITLE}: {reason}"
        self.banner.show_message(message, "error")
        self._refresh_state()
