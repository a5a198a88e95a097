"""The Invite composer: who to invite, a pre-flight check, a preview, then sending with progress.

Flow: the operator enters one invitee, pastes a list or imports a CSV; "Check addresses"
runs the services' pre-flight in the background and shows every row with its status; only
ready rows go on. "Send" queues them as one batch (the services check permission and the
daily limit) and a SendWorker sends the batch off the GUI thread with pause, resume and
cancel. The services enforce every rule; this window mirrors them (disabled controls and
an explanation) so the operator knows before trying.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from typing import TypeVar, Unpack

from PySide6.QtCore import Signal
from PySide6.QtGui import QCloseEvent, QShowEvent
from PySide6.QtWidgets import (
    QWidget,
)

from invite_desk.services.errors import DomainError
from invite_desk.services.invitations.importing import (
    clean_message,
)
from invite_desk.services.invitations.pacing import estimate_duration
from invite_desk.services.invitations.preflight import (
    PreflightRow,
)
from invite_desk.services.invitations.queueing import (
    QueuedBatch,
    UnsentBatch,
    queue_invitations,
)
from invite_desk.services.invitations.sending import SendProgress, SendReport, deferred_text
from invite_desk.services.mail_settings import MailSettings
from invite_desk.services.operator import Operator
from invite_desk.ui import widgets
from invite_desk.ui.compose.layout import (
    REQUESTER,
    InputMode,
    format_time_left,
)
from invite_desk.ui.compose.view import ComposeView
from invite_desk.ui.context import PageContext
from invite_desk.ui.hub import INVITATIONS, SETTINGS
from invite_desk.ui.hub_page import SendingOptions
from invite_desk.ui.widgets import plural

__all__ = ["REQUESTER", "ComposeWindow", "InputMode"]

log = logging.getLogger(__name__)
T = TypeVar("T")


class ComposeWindow(ComposeView):
    """The Compose page: enter invitees, check them, preview, send, follow the progress.

    The main window embeds it and should call `stop_sending()` before quitting while
    `sending` is true; `email_settings_requested` asks it to open Settings › Email.
    `runner` (tests: SynchronousRunner), `ask_password` and `retry` are injectable.
    """

    batch_queued = Signal(QueuedBatch)
    sending_started = Signal(uuid.UUID)  # the batch id
    sending_finished = Signal(SendReport)  # the report of the run that just ended

    def __init__(self, context: PageContext, operator: Operator, parent: QWidget | None = None,
                 **options: Unpack[SendingOptions]) -> None:
        super().__init__(context, operator, parent, **options)
        self.setObjectName("ComposeWindow")
        self.setWindowTitle("Compose invitations")
        self._init_state()

        self._build()
        self._connect()
        self.follow(SETTINGS)  # who may send, the branding, the templates, the mail server
        self.refresh()
        self._recover_interrupted()
        self._look_up_unsent()
        self._update_actions()

    def _connect(self) -> None:
        self.input_tabs.currentChanged.connect(self._inputs_changed)
        self.email_edit.textChanged.connect(self._inputs_changed)
        self.name_edit.textChanged.connect(self._inputs_changed)
        self.paste_edit.textChanged.connect(self._paste_changed)
        self.email_edit.returnPressed.connect(self.check)
        self.csv_button.clicked.connect(self.choose_csv)
        self.kind_group.idToggled.connect(self._kind_changed)
        self.event_combo.currentIndexChanged.connect(self._inputs_changed)
        self.behalf_check.toggled.connect(self._behalf_toggled)
        self.member_edit.textEdited.connect(self._member_text_edited)
        self.member_completer.activated[str].connect(self._member_chosen)  # type: ignore[index]
        self._search_timer.timeout.connect(self._search_members)
        self.message_edit.textChanged.connect(self._refresh_preview)
        self.check_button.clicked.connect(self.check)
        self.problems_check.toggled.connect(self.proxy.set_problems_only)
        self.table.selectionModel().currentRowChanged.connect(self._refresh_preview)
        self.table.doubleClicked.connect(lambda _index: self.show_preview())
        self.preview_button.clicked.connect(self.show_preview)
        self.test_button.clicked.connect(self.send_test)
        self.send_button.clicked.connect(self.send)
        self.pause_button.clicked.connect(self.toggle_pause)
        self.cancel_button.clicked.connect(self.cancel_sending)
        self.resume_batch_button.clicked.connect(self.send_rest)
        self._countdown_timer.timeout.connect(self._render_progress)

    def send(self) -> None:
        """Queue the ready rows as one batch, then send it in the background."""
        preflight = self._preflight
        if (preflight is None or self._stale or self._consumed or self._busy or self.sending
                or not self._send_decision.allowed):
            return
        ready = preflight.ready
        if not ready:
            self.message_banner.show_message("No row is ready to send.", "info")
            return
        if self._outbox_busy():
            return
        if self.behalf_check.isChecked() and self._inviter is None:
            self.message_banner.show_message(
                "Pick the member to credit from the list, or untick \"Send on behalf of another "
                "member\".", "error")
            return
        try:
            _org, _templates, mail = self._templates_and_mail()
        except DomainError as exc:
            self._show_error("Nothing was sent", exc)
            return
        if not self._mail_ready(mail):
            return
        source, label = self._source_and_label()
        if not self._confirm_send(ready, label, mail):
            return
        go_on, password = self._password_for(mail)
        if not go_on:
            return
        self.message_banner.clear_message()
        uow = self._context.uow
        operator = self._operator
        inviter_id = self._inviter.id if self.behalf_check.isChecked() and self._inviter else None
        message = clean_message(self.message_edit.toPlainText())
        kind = self._kind()
        event = self._event()
        self._set_busy(f"Queuing {plural(len(ready), 'invitation')}…")
        self.hub.mutate(
            self,
            lambda: queue_invitations(
                uow, operator, ready, inviter_id=inviter_id,
                personal_message=message, kind=kind, event_id=event.id if event else None,
                source=source, label=label,
            ),
            {INVITATIONS},
            lambda queued: self._queued(queued, mail, password),
            self._queue_failed,
        )

    def _confirm_send(self, ready: Sequence[PreflightRow], label: str,
                      mail: MailSettings | None = None) -> bool:
        """One click must not send: say how many, to whom, as which batch and how long it
        takes at the provider's pace, Cancel default."""
        count = len(ready)
        event = self._event()
        what = f"guest invitations to {event.label}" if event else "membership invitations"
        text = f"Send {plural(count, 'invitation')} now?"
        details = [f"To: {widgets.summarize_people([r.email for r in ready])}",
                   f"As: {what}"]
        if label:
            details.append(f"Batch: {label}")
        if self.behalf_check.isChecked() and self._inviter is not None:
            details.append(f"On behalf of: {self._inviter.label}")
        if mail is not None:  # issue 13: K connections, per-minute and daily caps
            details.append(f"Takes: {estimate_duration(count, mail).text}")
        return widgets.confirm(self, "Send invitations", text, informative="\n".join(details),
                               action=f"Send {plural(count, 'invitation')}")

    def _queued(self, queued: QueuedBatch, mail: MailSettings, password: str | None) -> None:
        self._set_busy("")
        self._consumed = True
        self.model.mark_ready_rows("queued")
        for row in queued.skipped:
            self.model.set_outcome(row.email, "skipped", "Became a member or was invited since "
                                   "the check: not queued.")
        self.stale_label.setText(
            "These addresses were queued. To invite more people, change the list and check again."
        )
        self.stale_label.show()
        self.batch_queued.emit(queued)
        if queued.skipped:
            emails = ", ".join(r.email for r in queued.skipped[:5])
            self.message_banner.show_message(
                f"{plural(len(queued.skipped), 'address was', 'addresses were')} skipped because "
                f"they became members or were invited since the check: {emails}.", "info")
        if queued.queued == 0:
            self._update_actions()
            return
        self._batch_id = queued.batch_id
        # A resumed batch holds the rows a stopped run queued too.
        self._batch_total = max(queued.queued, queued.total)
        self._batch_report = SendReport()
        self._uncertain = []
        self._start_sending(mail, password)

    def _queue_failed(self, error: BaseException) -> None:
        self._set_busy("")
        self._show_error("Nothing was queued or sent", error)

    def send_rest(self) -> None:
        """Send what is still queued in the last batch (after a cancel or a stop)."""
        if self._batch_id is None or self.sending or self._busy or self._outbox_busy():
            return
        try:
            _org, _templates, mail = self._templates_and_mail()
        except DomainError as exc:
            self._show_error("Nothing was sent", exc)
            return
        if not self._mail_ready(mail):
            return
        go_on, password = self._password_for(mail)
        if not go_on:
            return
        self.message_banner.clear_message()
        self._start_sending(mail, password)

    def _start_sending(self, mail: MailSettings, password: str | None) -> None:
        assert self._batch_id is not None
        # The outbox reads the mail settings again, on its thread, when it connects.
        refusal = self.outbox.send(self._batch_id, password, requester=REQUESTER,
                                   total=self._batch_total)
        if refusal is not None:  # another page started a send meanwhile: this batch waits
            self.message_banner.show_message(refusal.message, "warning")
            self.resume_batch_button.setText("Send the rest")
            self.resume_batch_button.show()
            self._update_actions()
            return
        self._rate = mail.rate_per_minute
        self._last_progress = None
        self.progress_panel.show()
        self.progress_title.setText(f"Sending {plural(self._batch_total, 'invitation')}")
        self.progress_bar.setRange(0, max(self._batch_total, 1))
        self.progress_bar.setValue(0)
        self.progress_counts.setText("Connecting to the mail server…")
        self.summary_label.hide()
        self.failures_view.hide()
        self.failures_view.clear()
        self.pause_button.setText("Pause")
        self.pause_button.show()
        self.pause_button.setEnabled(True)
        self.cancel_button.show()
        self.cancel_button.setEnabled(True)
        self.cancel_button.setText("Cancel")
        self.resume_batch_button.hide()
        self._progress_at = self._monotonic()
        self._countdown_timer.start()
        self.sending_started.emit(self._batch_id)
        self._update_actions()

    def toggle_pause(self) -> None:
        if not self.sending:
            return
        if self.outbox.paused:
            self.outbox.resume()
            self.pause_button.setText("Pause")
        else:
            self.outbox.pause()
            self.pause_button.setText("Resume")
        self._render_progress()

    def cancel_sending(self) -> None:
        if not self.sending:
            return
        self.outbox.cancel()
        self.cancel_button.setEnabled(False)
        self.cancel_button.setText("Cancelling…")
        self.pause_button.setEnabled(False)
        self.progress_counts.setText(
            "Cancelling after the message being sent now; the rest stay queued."
        )

    def progress_arrived(self, progress: SendProgress) -> None:
        self._progress_at = self._monotonic()
        if progress.last_email and progress.last_outcome:
            self.model.set_outcome(progress.last_email, progress.last_outcome)
        if progress.last_outcome == "uncertain" and progress.last_email:
            self._uncertain.append(progress.last_email)

    def _render_progress(self) -> None:
        progress = self._last_progress
        if progress is None or not self.sending:
            return
        done = progress.total - progress.remaining
        self.progress_bar.setRange(0, max(progress.total, 1))
        self.progress_bar.setValue(done)
        seconds = progress.seconds_left
        if self._rate and progress.remaining:
            seconds = max(seconds or 0.0, progress.remaining * 60 / self._rate)
        if seconds is not None and not self.outbox.paused:
            # Count down between two reports (a rate-limit wait reports rarely).
            seconds = max(seconds - (self._monotonic() - self._progress_at), 0.0)
        if self.outbox.paused:
            tail = "paused: nothing is being sent"
        elif progress.remaining:
            tail = format_time_left(seconds)
        else:
            tail = "finishing…"
        if self.cancel_button.isEnabled() or not self.sending:
            self.progress_counts.setText(f"{self._counts_text(progress)} · {tail}")

    def _counts_text(self, progress: SendProgress) -> str:
        """Counts for the whole batch: earlier runs plus this one."""
        before = self._batch_report
        return (f"{before.sent + progress.sent:,} sent · {before.failed + progress.failed:,} "
                f"failed · {before.uncertain + progress.uncertain:,} uncertain · "
                f"{progress.remaining:,} remaining")

    def _end_job(self) -> None:
        self._progress_timer.stop()
        self._countdown_timer.stop()

    def outbox_running_changed(self) -> None:
        self._update_actions()

    def send_finished(self, report: SendReport) -> None:
        """The run ended (done, cancelled or stopped): summarize the whole batch so far."""
        self._end_job()
        progress = self._last_progress
        remaining = progress.remaining if progress is not None else 0
        before = self._batch_report
        self._batch_report = SendReport(
            sent=before.sent + report.sent, failed=before.failed + report.failed,
            uncertain=before.uncertain + report.uncertain, retried=before.retried + report.retried,
            cancelled=report.cancelled, error=report.error,
            failures=[*before.failures, *report.failures],
            elsewhere=before.elsewhere + report.elsewhere,
            waiting_server=report.waiting_server,
        )
        for email, reason in report.failures:
            self.model.set_outcome(email, "failed", reason)
        for email in self._uncertain:
            self.model.set_outcome(email, "uncertain", "May have been received; not resent "
                                   "automatically.")
        self._show_summary(self._batch_report, remaining)
        self.sending_finished.emit(report)
        self._update_actions()

    def send_failed(self, message: str, page: str | None = None) -> None:
        self._end_job()
        self.progress_title.setText("Sending stopped")
        self.progress_counts.setText(message)
        self.pause_button.hide()
        self.cancel_button.hide()
        self.resume_batch_button.setText("Try again")
        self.resume_batch_button.setVisible(self._batch_id is not None)
        self.message_banner.show_message(
            f"Sending stopped: {message} Invitations not sent yet stay queued.", "error",
            action=(("Open settings", lambda: self.settings_requested.emit(page))
                    if page else None))
        self._update_actions()

    def _show_summary(self, report: SendReport, remaining: int) -> None:
        parts = [f"{report.sent:,} sent"]
        if report.failed:
            parts.append(f"{report.failed:,} failed")
        if report.uncertain:
            parts.append(f"{report.uncertain:,} uncertain")
        if report.elsewhere:
            parts.append(f"{report.elsewhere:,} already sent elsewhere")
        if report.waiting_server:
            parts.append(f"{report.waiting_server:,} waiting for the server")
            remaining = max(0, remaining - report.waiting_server)
        if remaining:
            parts.append(f"{remaining:,} not sent yet")
        headline = ", ".join(parts)
        if report.error:
            title = "Sending stopped"
        elif report.cancelled:
            title = "Sending cancelled"
        else:
            title = "Sending finished"
        self.progress_title.setText(f"{title}: {headline}")
        self.progress_counts.setText(headline)
        done = report.sent + report.failed + report.uncertain + report.elsewhere
        self.progress_bar.setRange(0, max(done + remaining + report.waiting_server, 1))
        self.progress_bar.setValue(done)
        lines: list[str] = []
        if report.error:
            hint = (" Check the user name and password in Settings › Email."
                    if "password" in report.error or "sign" in report.error else "")
            lines.append(f"Stopped: {report.error}{hint}")
        if report.waiting_server:
            lines.append(
                f"{plural(report.waiting_server, 'invitation waits', 'invitations wait')} for "
                "the server: it may be sending them from elsewhere too, so they go out (once) "
                "by themselves when it answers again.")
        if report.elsewhere:
            lines.append(
                f"{plural(report.elsewhere, 'invitation was', 'invitations were')} already "
                "sent from elsewhere (the server or another computer); not sent again.")
        if remaining:
            lines.append(
                f"{plural(remaining, 'invitation is', 'invitations are')} still queued and nothing "
                "was lost: press Send the rest to continue."
            )
        if report.failed:
            one = report.failed == 1
            lines.append(
                f"{plural(report.failed, 'invitation')} failed: the server refused "
                f"{'it' if one else 'them'} (reply below). {'It is' if one else 'They are'} "
                "not retried."
            )
        if report.uncertain:
            lines.append(
                f"{plural(report.uncertain, 'invitation is', 'invitations are')} uncertain: the "
                "connection broke after the message went out, so it may have been received. "
                "Not resent automatically; check with the invitee before resending."
            )
        if report.retried and not report.failed:
            lines.append(f"{plural(report.retried, 'temporary refusal')} retried.")
        if report.deferred:  # the provider's daily cap: the rest waits for the next day
            lines.append(deferred_text(report) + ".")
        self.summary_label.setText("\n".join(lines))
        self.summary_label.setVisible(bool(lines))
        details = [f"{email} — {reason}" for email, reason in report.failures]
        details += [f"{email} — uncertain: may have been received; not resent automatically"
                    for email in self._uncertain]
        self.failures_view.setPlainText("\n".join(details))
        self.failures_view.setVisible(bool(details))
        self.pause_button.hide()
        self.cancel_button.hide()
        self.resume_batch_button.setText(f"Send the rest ({remaining:,})")
        self.resume_batch_button.setVisible(remaining > 0)
        kind = "error" if report.error or report.failed else (
            "warning" if report.uncertain or remaining or report.waiting_server else "success")
        self.message_banner.show_message(f"{title}: {headline}.", kind)

    def stop_sending(self, wait_ms: int = 60_000) -> bool:
        """Cancel a running batch and wait for it (the main window calls this before quitting)."""
        if not self.sending:
            return True
        return self.outbox.stop(wait_ms)

    # ==================================================================== Qt overrides
    def may_reload(self) -> bool:
        return not self.sending and not self._busy

    def reload(self) -> None:
        self.refresh()

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 (Qt override)
        self._stale = True  # the composer reads its state again whenever it is shown
        super().showEvent(event)

    def closeEvent(self, event: QCloseEvent) -> None:
        self.stop_sending()
        self._end_job()
        if self._preview is not None:
            self._preview.close()
        super().closeEvent(event)  # (alone, the page's own hub waits for its work)

    def resume_batch(self, batch: UnsentBatch) -> None:
        """Send what an earlier session left queued in `batch`."""
        if self.sending or self._busy:
            return
        self._batch_id = batch.batch_id
        self._batch_total = batch.queued
        self._batch_report = SendReport()
        self._uncertain = []
        self.send_rest()
