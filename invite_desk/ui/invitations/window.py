"""The Invitations window: every invitation in the operator's scope, by tab, searchable,
filterable and sortable on every column, with actions on one or many rows and a detail pane
with each invitation's history.

The table never loads a whole view (InvitationTableModel fetches the pages in sight). Tab
counts, the view, page fetches, actions, exports and the expiry sweep all run off the GUI
thread. The services decide every permission; this window mirrors them (a disabled action
says which role it needs).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, Unpack

from PySide6.QtCore import (
    QTimer,
    Signal,
)
from PySide6.QtGui import QCloseEvent, QGuiApplication, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QFileDialog,
    QWidget,
)

from invite_desk.services.errors import DomainError, SettingsIncomplete
from invite_desk.services.invitations.sending import SendReport, describe
from invite_desk.services.mail_settings import MailSettings, get_mail_settings
from invite_desk.services.members_view import MemberRow
from invite_desk.services.models import utcnow
from invite_desk.services.operator import Operator
from invite_desk.services.settings_schema import PolicySettings
from invite_desk.services.tracking import (
    ActionResult,
    InvitationQuery,
    Tab,
    expire_overdue,
    export_csv,
    extend_invitations,
    issue_fresh_links,
    resend_invitations,
    revoke_invitations,
)
from invite_desk.services.tracking.actions import (
    MAX_ROWS_PER_ACTION,
    restore_revoked,
)
from invite_desk.services.tracking.choices import FilterChoices
from invite_desk.ui import widgets
from invite_desk.ui.context import PageContext
from invite_desk.ui.hub import INVITATIONS, MEMBERS
from invite_desk.ui.hub_page import SendingOptions
from invite_desk.ui.invitations.layout import (
    REQUESTER,
    SWEEP_INTERVAL_MS,
)
from invite_desk.ui.invitations.table_model import (
    Clock,
    InvitationSource,
    InvitationTableModel,
)
from invite_desk.ui.invitations.view import InvitationsView
from invite_desk.ui.tasks import error_message
from invite_desk.ui.widgets import plural

__all__ = ["SWEEP_INTERVAL_MS", "UNDO_SECONDS", "InvitationsWindow"]

# Undo of a revoke while the link is unused; a module attribute so tests can take it away.
_restore_revoked: Callable[..., Any] | None = restore_revoked

UNDO_SECONDS = 30  # how long "Undo" stays offered after a revoke

log = logging.getLogger(__name__)
T = TypeVar("T")


class InvitationsWindow(InvitationsView):
    """The Invitations page.

    `runner` runs background work (tests: SynchronousRunner); `clock` gives "now" to every
    query (tests move it forward); `ask_password` asks for the SMTP password when the keyring
    has none; `sweep_interval_ms` (0: off) is how often the expiry sweep runs (it broadcasts
    when something expired). `hub` and `outbox` are the app's (the main window's); without
    them the page makes its own. The view reloads on the hub's broadcasts, not on a timer.
    """

    invitations_changed = Signal()  # an action changed invitations (also broadcast on the hub)
    settings_requested = Signal(str)  # a settings page name ("organization", "email", ...)
    email_settings_requested = Signal()

    def __init__(self, context: PageContext, operator: Operator, parent: QWidget | None = None,
                 *, clock: Clock | None = None, sweep_interval_ms: int = SWEEP_INTERVAL_MS,
                 **options: Unpack[SendingOptions]) -> None:
        super().__init__(context, operator, parent, **options)
        self.setObjectName("InvitationsWindow")
        self.setWindowTitle("Invitations")
        self._clock: Clock = clock or utcnow
        self._policy = PolicySettings()
        self._choices = FilterChoices((), (), ())
        self._counts: dict[Tab, int] = {}
        self._counts_generation = 0
        self._detail_generation = 0
        self._busy = ""
        self._undo_ids: tuple[uuid.UUID, ...] = ()
        self._undo_timer = QTimer(self)
        self._undo_timer.setSingleShot(True)
        self._undo_timer.setInterval(UNDO_SECONDS * 1000)
        self._undo_timer.timeout.connect(self._undo_expired)
        self._inviter_choices: dict[str, MemberRow] = {}
        self._inviter_id: uuid.UUID | None = None
        self._sweeping = False
        self.last_links: tuple[str, ...] = ()

        self.source = InvitationSource(context.uow, operator, self._clock)
        self.model = InvitationTableModel(self.source, InvitationQuery(), hub=self.hub,
                                          parent=self)
        self._build()
        self._connect()
        self._load_policy()
        self._choices_loaded = False
        # (Reading starts after the widgets are built: started earlier, the two would only
        # take turns on the GIL and the window would appear later.)
        self.model.set_query(self._query_from_controls())
        self._sweep_timer = QTimer(self)
        self._sweep_timer.setInterval(sweep_interval_ms)
        self._sweep_timer.timeout.connect(self.sweep)
        if sweep_interval_ms > 0:
            self._sweep_timer.start()
        self._update_actions()

    def _connect(self) -> None:
        self.tabs.currentChanged.connect(lambda _i: self.apply_query())
        self.search_edit.textChanged.connect(lambda _t: self._search_timer.start())
        self.search_edit.returnPressed.connect(self.apply_query)
        self._search_timer.timeout.connect(self.apply_query)
        self.unit_combo.currentIndexChanged.connect(lambda _i: self.apply_query())
        self.kind_combo.currentIndexChanged.connect(lambda _i: self.apply_query())
        self.batch_combo.currentIndexChanged.connect(lambda _i: self.apply_query())
        self.dates_check.toggled.connect(self._dates_toggled)
        self.from_date.dateChanged.connect(lambda _d: self._dates_changed())
        self.to_date.dateChanged.connect(lambda _d: self._dates_changed())
        self.inviter_edit.textEdited.connect(self._inviter_edited)
        self._inviter_timer.timeout.connect(self._search_inviters)
        self.inviter_completer.activated[str].connect(self._inviter_chosen)  # type: ignore[index]
        self.clear_filters_button.clicked.connect(self.clear_filters)
        self.refresh_button.clicked.connect(self.refresh)
        QShortcut(QKeySequence(QKeySequence.StandardKey.Refresh), self, self.refresh)
        self.model.opening.connect(self._view_opening)
        self.model.opened.connect(self._view_opened)
        self.model.failed.connect(self._view_failed)
        self.model.page_arrived.connect(lambda _offset: self._update_actions())
        selection = self.table.selectionModel()
        selection.selectionChanged.connect(lambda *_a: self._selection_changed())
        selection.currentRowChanged.connect(lambda *_a: self._selection_changed())
        self._detail_timer.timeout.connect(self._load_detail)
        self.resend_button.clicked.connect(self.resend_selected)
        self.revoke_button.clicked.connect(self.revoke_selected)
        self.extend_button.clicked.connect(lambda: self.extend_selected(self.extend_days.value()))
        self.link_button.clicked.connect(self.copy_fresh_links)
        self.export_button.clicked.connect(self.choose_export_file)
        # Invitations sent, revoked or expired anywhere: the view follows (now or when shown).
        self.follow(INVITATIONS, MEMBERS)

    # ================================================================ actions
    def _ids_then(self, work: Callable[[list[uuid.UUID]], T], done: Callable[[T], None],
                  busy: str) -> None:
        """Collect the selected invitations' ids (reading pages not loaded yet in the
        background), run `work` with them off the GUI thread, then `done` on it."""
        numbers = self._selected_row_numbers()
        if not numbers or len(numbers) > MAX_ROWS_PER_ACTION:
            return
        loaded = {n: self.model.row_at(n) for n in numbers}
        missing_pages = sorted({n // self.model.page_size for n, r in loaded.items() if r is None})
        source, query, total, size = (self.source, self.model.query, self.model.total,
                                      self.model.page_size)

        def collect_and_work() -> T:
            found = {n: r for n, r in loaded.items() if r is not None}
            for page in missing_pages:
                rows = source.page(query, page * size, size, total)
                for i, row in enumerate(rows):
                    if page * size + i in loaded:
                        found[page * size + i] = row
            return work([found[n].id for n in sorted(found)])

        def finished(result: T) -> None:
            self._set_busy("")
            done(result)

        self._set_busy(busy)
        self._write(collect_and_work, finished, self._action_failed)

    def _action_failed(self, error: BaseException) -> None:
        self._set_busy("")
        if isinstance(error, SettingsIncomplete):
            page = error.settings_page
            self.banner.show_message(str(error), "error", action=(
                "Open settings", lambda: self.settings_requested.emit(page)))
        elif isinstance(error, DomainError):
            self.banner.show_message(str(error), "error")
        else:
            log.error("invitation action failed", exc_info=error)
            self.banner.show_message(
                f"Nothing was changed: an unexpected error happened ({type(error).__name__}: "
                f"{error}).", "error")
        self.refresh()

    def _acted(self, result: ActionResult) -> None:
        kind = "success" if result.done and not result.skipped else (
            "warning" if result.done else "info")
        self.banner.show_message(result.summary, kind)
        if result.done:
            self._changed()
        self.refresh()

    def _confirm(self, verb: str, consequence: str) -> bool:
        """Ask before revoke or resend: how many, to whom, which batch; Cancel is the default."""
        numbers = self._selected_row_numbers()
        if not numbers:
            return False
        count = len(numbers)
        rows = self.selected_rows()
        emails = [row.email for row in rows]
        shown = widgets.summarize_people(emails)
        if count > len(emails):  # rows whose page is not loaded yet
            shown = (f"{', '.join(emails[:5])} and {count - min(len(emails), 5):,} more"
                     if emails else f"{count:,} invitations")
        batches = sorted({row.batch_label for row in rows if row.batch_label})
        details = [f"To: {shown}"]
        if batches:
            details.append(f"Batch: {widgets.summarize_people(batches, shown=3)}")
        details.append(consequence)
        noun = plural(count, "invitation")
        return widgets.confirm(self, f"{verb} invitations", f"{verb} {noun}?",
                               informative="\n".join(details), action=f"{verb} {noun}")

    def revoke_selected(self) -> None:
        if self._busy or not self._confirm(
                "Revoke", "Their links stop working at once."
                + (f" You can undo this for {UNDO_SECONDS} s, while a link is unused."
                   if _restore_revoked is not None else "")):
            return
        uow, operator, now = self._context.uow, self._operator, self._clock()
        self._ids_then(lambda ids: revoke_invitations(uow, operator, ids, now=now),
                       self._revoked, "Revoking…")

    def _revoked(self, result: ActionResult) -> None:
        self._acted(result)
        if _restore_revoked is None or not result.done:
            return
        self._undo_ids = tuple(result.done)
        kind = "success" if not result.skipped else "warning"
        self.banner.show_message(result.summary, kind, action=("Undo", self.undo_revoke))
        self._undo_timer.start()

    @property
    def can_undo(self) -> bool:
        return bool(self._undo_ids)

    def _undo_expired(self) -> None:
        if self._undo_ids:
            self._undo_ids = ()
            if self.banner.kind:  # the same message, without the button
                self.banner.show_message(self.banner.text, self.banner.kind)

    def undo_revoke(self) -> None:
        """Restore the invitations the last revoke changed, while their links are unused."""
        ids, self._undo_ids = self._undo_ids, ()
        self._undo_timer.stop()
        restore = _restore_revoked
        if not ids or restore is None:
            return
        uow, operator = self._context.uow, self._operator

        def work() -> tuple[int, list[str]]:
            restored, refused = 0, []
            for invitation_id in ids:
                try:
                    restore(uow, operator, invitation_id)
                    restored += 1
                except DomainError as exc:
                    refused.append(str(exc))
            return restored, refused

        def done(outcome: tuple[int, list[str]]) -> None:
            self._set_busy("")
            restored, refused = outcome
            text = f"Revoke undone: {plural(restored, 'invitation')} restored."
            if refused:
                text += f" {plural(len(refused), 'was', 'were')} not: {refused[0]}"
            self.banner.show_message(text, "warning" if refused else "success")
            if restored:
                self._changed()
            self.refresh()

        self._set_busy("Undoing the revoke…")
        self._write(work, done, self._action_failed)

    def extend_selected(self, days: int) -> None:
        uow, operator, now = self._context.uow, self._operator, self._clock()
        self._ids_then(lambda ids: extend_invitations(uow, operator, ids, days, now=now),
                       self._acted, "Extending…")

    def copy_fresh_links(self) -> None:
        uow, operator, now = self._context.uow, self._operator, self._clock()

        def done(result: ActionResult) -> None:
            links = result.links
            self.last_links = tuple(link.link for link in links)
            if len(links) == 1:
                text = links[0].link
            else:
                text = "\n".join(f"{link.email}\t{link.link}" for link in links)
            if links:
                QGuiApplication.clipboard().setText(text)
            self._acted(result)
            if links:
                self.banner.show_message(
                    f"{result.summary} {'The link was' if len(links) == 1 else 'The links were'} "
                    f"copied to the clipboard; {'it works' if len(links) == 1 else 'they work'} "
                    f"until {links[0].expires_at.astimezone():%d %b %Y}. Any earlier link no "
                    "longer works.", "success" if not result.skipped else "warning")

        self._ids_then(lambda ids: issue_fresh_links(uow, operator, ids, now=now), done,
                       "Issuing fresh links…")

    # -- resend: re-queue, then the sending worker sends the new batch ---------------------
    def resend_selected(self) -> None:
        if self.sending or self._busy:
            return
        if self.outbox.running:  # one send at a time, app-wide: nothing is re-queued
            self.banner.show_message(self.outbox.busy_message(REQUESTER), "warning")
            return
        uow, org_id = self._context.uow, self._operator.organization_id
        self.hub.query(self, lambda: get_mail_settings(uow, org_id), self._resend_with,
                       self._resend_refused, key="mail")

    def _resend_refused(self, exc: BaseException) -> None:
        page = exc.settings_page if isinstance(exc, SettingsIncomplete) else None
        self.banner.show_message(
            f"Nothing was resent. {error_message(exc)}", "error",
            action=(("Open settings", lambda: self.settings_requested.emit(page))
                    if page else None))

    def _resend_with(self, mail: MailSettings) -> None:
        if self.sending or self._busy or self.outbox.running:
            return
        if not mail.configured:
            self.banner.show_message(
                "Resending needs the organization's SMTP server: it is not set up yet. An "
                "organization admin can enter it in Settings › Email.", "error",
                action=("Open Settings › Email", self.email_settings_requested.emit))
            return
        if not self._confirm("Resend", "Each gets a new email with a new link; the old link "
                             "stops working."):
            return
        go_on, password = self._password_for(mail)
        if not go_on:
            return
        uow, operator, now = self._context.uow, self._operator, self._clock()

        def done(result: ActionResult) -> None:
            self.banner.show_message(result.summary, "info" if result.done else "warning")
            if result.done:
                self._changed()
            self.refresh()
            if result.batch_id is not None:
                self._start_sending(result.batch_id, len(result.done), password)

        self._ids_then(lambda ids: resend_invitations(uow, operator, ids, now=now), done,
                       "Queuing the resend…")

    def _password_for(self, mail: MailSettings) -> tuple[bool, str | None]:
        """(go on, password): from the session, the keyring, or asked once."""
        outcome = self._passwords.password_for(self, mail)
        if not outcome.go_on:
            self.banner.show_message("Nothing was resent: the SMTP password is needed to send.",
                                     "info")
        return outcome.go_on, outcome.password

    def _start_sending(self, batch_id: uuid.UUID, count: int, password: str | None) -> None:
        # The outbox reads the mail settings again, on its thread, when it connects.
        refusal = self.outbox.send(batch_id, password, requester=REQUESTER, total=count)
        if refusal is not None:  # another page started a send meanwhile
            self.banner.show_message(f"{refusal.message} The resend is queued and goes out "
                                     "with the next send.", "warning")
            self._update_actions()
            return
        self._sending_total = count
        self.banner.show_message(f"Resending {plural(count, 'invitation')}: connecting to the "
                                 "mail server…", "info")
        self._update_actions()

    def _render_progress(self) -> None:
        progress = self._last_progress
        if progress is None or not self.sending:
            return
        self.banner.show_message(
            f"Resending: {progress.sent:,} sent, {progress.failed:,} failed, "
            f"{progress.remaining:,} to go.", "info")

    def send_finished(self, report: SendReport) -> None:
        # (The outbox's broadcast, right after, reloads the view.)
        self._progress_timer.stop()
        kind = "error" if report.error or report.failed else (
            "warning" if report.uncertain or report.cancelled else "success")
        self.banner.show_message(f"Resend finished: {describe(report)}.", kind)
        self.invitations_changed.emit()
        self._update_actions()

    def send_failed(self, message: str, page: str | None = None) -> None:
        self._progress_timer.stop()
        self.banner.show_message(f"Resending stopped: {message} The invitations not sent yet "
                                 "stay queued.", "error",
                                 action=(("Open settings", lambda: self.settings_requested.emit(page))
                                         if page else None))
        self._update_actions()

    def stop(self, wait_ms: int = 60_000) -> bool:
        """Stop a resend in progress and the timers; True when nothing is left running."""
        self._sweep_timer.stop()
        if not self.sending:
            return True
        return self.outbox.stop(wait_ms)

    # -- following changes made anywhere in the app ------------------------------------------
    def _changed(self) -> None:
        """This page changed invitations (its hub mutation told the other views; it refreshes
        itself)."""
        self.invitations_changed.emit()

    # -- export ----------------------------------------------------------------------------
    def choose_export_file(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Export invitations", str(Path.home() / f"invitations-{self.current_tab}.csv"),
            "CSV files (*.csv)")
        if path:
            self.export_to(Path(path))

    def export_to(self, path: Path) -> None:
        """Write the current view to `path` in the background (streamed, never whole in memory)."""
        uow, operator, query, now = (self._context.uow, self._operator, self.model.query,
                                     self._clock())

        def work() -> int:
            with path.open("w", newline="", encoding="utf-8-sig") as out:
                return export_csv(uow, operator, query, out, now=now)

        def done(count: int) -> None:
            self._set_busy("")
            self.banner.show_message(f"Exported {plural(count, 'invitation')} to {path}.",
                                     "success")

        def failed(error: BaseException) -> None:
            self._set_busy("")
            self.banner.show_message(f"The export failed: {error}", "error")

        self._set_busy("Exporting…")
        self._run(work, done, failed)

    # -- expiry sweep ------------------------------------------------------------------------
    def sweep(self) -> None:
        """Record expired invitations (the services' sweep), then refresh the view."""
        if self._sweeping:
            return
        self._sweeping = True
        uow, org, now = self._context.uow, self._operator.organization_id, self._clock()

        def done(count: int) -> None:
            self._sweeping = False
            if count:  # every view follows; this one reads again now or when shown
                self.hub.broadcast({INVITATIONS, MEMBERS}, self.hub)

        def failed(error: BaseException) -> None:
            self._sweeping = False
            log.warning("expiry sweep: %s", error)

        # Bookkeeping on a timer, not a change the person asked for (quitting does not ask
        # about it): a query that broadcasts only when something actually expired.
        self.hub.query(self, lambda: expire_overdue(uow, now, organization_id=org), done, failed,
                       key="sweep")

    def may_reload(self) -> bool:
        return self.model.has_opened and not self._busy

    def reload(self) -> None:
        self.refresh()

    def outbox_running_changed(self) -> None:
        self._update_actions()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        self.stop()
        super().closeEvent(event)  # (alone, the page's own hub waits for its work)
