"""The composer's state: the policy, branding and events read from the services, the
inputs, who is credited, the pre-flight check, the preview and the test email."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QFileDialog,
)

from invite_desk.services.compose_view import ComposeState, compose_state
from invite_desk.services.email.templates import InvitationTemplates
from invite_desk.services.errors import DomainError, SettingsIncomplete
from invite_desk.services.events import EventInfo
from invite_desk.services.invitations.importing import (
    ImportFailed,
    ImportResult,
    InviteeInput,
    clean_message,
    clean_name,
    email_cell,
    parse_csv,
    parse_pasted,
)
from invite_desk.services.invitations.preflight import (
    SENDABLE,
    Preflight,
    PreflightRow,
    RowStatus,
    run_preflight,
)
from invite_desk.services.invitations.queueing import (
    UnsentBatch,
    unsent_batches,
)
from invite_desk.services.invitations.rendering import (
    InvitationContent,
    build_test_message,
    render_invitation,
)
from invite_desk.services.invitations.sending import SendProgress, SendReport, recover_interrupted
from invite_desk.services.mail_settings import MailSettings
from invite_desk.services.members_lookup import MemberChoice, search_members
from invite_desk.services.models import InvitationKind, utcnow
from invite_desk.services.organization import OrganizationInfo
from invite_desk.services.permissions import Action, Decision, decide
from invite_desk.services.settings_schema import PolicySettings
from invite_desk.services.smtp import oauth
from invite_desk.services.smtp.transport import (
    PermanentFailure,
    SendResult,
    Sent,
    SmtpAuthError,
    TemporaryFailure,
)
from invite_desk.ui.compose.layout import (
    MAX_CSV_BYTES,
    REQUESTER,
    ComposeLayout,
    InputMode,
    denied_text,
    send_test_message,
)
from invite_desk.ui.compose.preflight_model import (
    STATUS_TEXT,
    PreflightRole,
)
from invite_desk.ui.compose.preview import PREVIEW_TOKEN, PreviewDialog, PreviewEmail
from invite_desk.ui.hub import INVITATIONS
from invite_desk.ui.theme import set_variant
from invite_desk.ui.widgets import plural

log = logging.getLogger(__name__)
T = TypeVar("T")


class ComposeView(ComposeLayout):
    """What the composer knows and shows (sending is in ComposeWindow)."""

    email_settings_requested = Signal()
    settings_requested = Signal(str)  # a settings page name ("organization", "email", ...)

    def _init_state(self) -> None:
        self._policy = PolicySettings()
        self._org: OrganizationInfo | None = None
        self._events: list[EventInfo] = []
        self._send_decision = Decision(False, self._operator.role)
        self._behalf_decision = Decision(False, self._operator.role)
        self._preflight: Preflight | None = None
        self._stale = False
        self._consumed = False
        self._check_generation = 0
        self._csv: ImportResult | None = None
        self._csv_name = ""
        self._busy = ""
        self._batch_id: uuid.UUID | None = None
        self._batch_total = 0
        self._last_progress: SendProgress | None = None
        self._uncertain: list[str] = []
        # What earlier runs of the same batch did (after a cancel, "Send the rest" goes on).
        self._batch_report = SendReport()
        self._member_choices: dict[str, MemberChoice] = {}
        self._inviter: MemberChoice | None = None
        self._recovered: list[str] = []
        self._preview: PreviewDialog | None = None
        self._rate = 0
        self._state: ComposeState | None = None
        self._unsent: list[UnsentBatch] = []
        self._offer_pending = False
        self._check_pending = False


    def resume_batch(self, batch: UnsentBatch) -> None:
        """Send what an earlier session left queued in `batch` (ComposeWindow sends)."""
        raise NotImplementedError

    # ==================================================================== state from the services
    def refresh(self) -> None:
        """Re-read the policy, branding, events, templates and mail settings in the background
        (e.g. after an admin changed settings); the page follows when the answer comes."""
        uow = self._context.uow
        operator = self._operator
        self.hub.query(self, lambda: compose_state(uow, operator), self._state_read,
                       self._state_failed, key="state")

    def _state_read(self, state: ComposeState) -> None:
        self._state = state
        self._policy = state.policy
        self._org = state.organization
        self._events = list(state.events)
        self._apply_policy()

    def _state_failed(self, error: BaseException) -> None:
        self.message_banner.show_message(str(error), "error")
        self._apply_policy()

    def _apply_policy(self) -> None:
        self._send_decision = decide(self._operator, Action.SEND_INVITATIONS, settings=self._policy)
        self._behalf_decision = decide(self._operator, Action.SEND_ON_BEHALF, settings=self._policy)
        if self._send_decision.allowed:
            self.permission_banner.clear_message()
        else:
            self.permission_banner.show_message(
                denied_text(self._send_decision, self._operator), "warning"
            )
        self.content.setEnabled(self._send_decision.allowed)
        self._fill_events()
        self._update_behalf()
        self._update_actions()
        if self._offer_pending:
            self._offer_pending = False
            self._offer_unsent()
        if self._check_pending:
            self._check_pending = False
            self.check()

    def _fill_events(self) -> None:
        current = self.event_combo.currentData()
        self.event_combo.blockSignals(True)
        self.event_combo.clear()
        for event in self._events:
            self.event_combo.addItem(event.label, str(event.id))
        if not self._events:
            self.event_combo.addItem("No events yet: add one before inviting guests", None)
        index = self.event_combo.findData(current) if current else -1
        self.event_combo.setCurrentIndex(max(index, 0))
        self.event_combo.blockSignals(False)
        self.guest_radio.setEnabled(bool(self._events))
        self.guest_radio.setToolTip("" if self._events else "There are no events to invite guests to.")
        if not self._events and self.guest_radio.isChecked():
            self.membership_radio.setChecked(True)
        self.event_combo.setEnabled(self.guest_radio.isChecked() and bool(self._events))

    def _update_behalf(self) -> None:
        allowed = self._behalf_decision.allowed
        self.behalf_check.setEnabled(allowed)
        if not allowed:
            self.behalf_check.setChecked(False)
            needed = self._behalf_decision.needed
            self.behalf_hint.setText(
                f"Sending on behalf of another member needs the {needed.label} role or higher."
            )
        else:
            self._show_credited()
        self.member_edit.setEnabled(allowed and self.behalf_check.isChecked())

    def _show_credited(self) -> None:
        if self.behalf_check.isChecked():
            if self._inviter is not None:
                text = f"Credited to {self._inviter.label}; you are recorded as the sender."
            else:
                text = "Pick the member to credit from the list."
        else:
            text = f"Credited to you ({self._operator.name})."
        self.behalf_hint.setText(text)

    def _recover_interrupted(self) -> None:
        """Once per window: invitations a stopped program left `sending` become `uncertain`."""
        uow = self._context.uow
        org_id = self._operator.organization_id
        # Bookkeeping, not a change the person asked for: quitting need not ask about it, so
        # it runs as a query and says what changed only when it changed something.
        self.hub.query(self, lambda: recover_interrupted(uow, org_id), self._recovered_read,
                       self._recovery_failed, key="recover")

    @staticmethod
    def _recovery_failed(error: BaseException) -> None:
        # The composer must work even if this bookkeeping fails.
        log.error("could not recover interrupted invitations", exc_info=error)

    def _recovered_read(self, recovered: list[str]) -> None:
        self._recovered = recovered
        if not self._recovered:
            return
        self.hub.broadcast({INVITATIONS}, self)
        shown = ", ".join(self._recovered[:5])
        more = f" and {len(self._recovered) - 5} more" if len(self._recovered) > 5 else ""
        count = len(self._recovered)
        self.recovery_banner.show_message(
            f"{plural(count, 'invitation was', 'invitations were')} being sent when Invite Desk "
            f"stopped last time: {shown}{more}. The server may have received "
            f"{'it' if count == 1 else 'them'}, so {'it is' if count == 1 else 'they are'} "
            "marked uncertain and will not be resent automatically. Check with "
            f"{'this person' if count == 1 else 'these people'} before resending.",
            "warning",
        )

    def _look_up_unsent(self) -> None:
        """Invitations still queued from an earlier session (cancelled, stopped or crashed)."""
        uow = self._context.uow
        operator = self._operator
        self.hub.query(self, lambda: unsent_batches(uow, operator), self._unsent_read,
                       self._unsent_failed, key="unsent")

    @staticmethod
    def _unsent_failed(error: BaseException) -> None:
        # The composer must work even if this lookup fails.
        log.error("could not look up unsent batches", exc_info=error)

    def _unsent_read(self, unsent: list[UnsentBatch]) -> None:
        self._unsent = unsent
        if self._state is None:  # the offer waits until the policy is known
            self._offer_pending = True
            return
        self._offer_unsent()

    def _offer_unsent(self) -> None:
        """Offer to send the newest batch an earlier session left queued, instead of leaving
        it forgotten."""
        if not self._unsent or not self._send_decision.allowed:
            return
        newest = self._unsent[0]
        others = sum(b.queued for b in self._unsent[1:])
        label = f" ({newest.label})" if newest.label else ""
        extra = (f" {plural(others, 'more invitation is', 'more invitations are')} queued in "
                 "older batches." if others else "")
        self.message_banner.show_message(
            f"{plural(newest.queued, 'invitation')} from a batch of "
            f"{newest.created_at:%d %b %Y %H:%M}{label} {'was' if newest.queued == 1 else 'were'}"
            f" never sent.{extra}",
            "info",
            action=("Send them now", lambda: self.resume_batch(newest)),
        )

    @property
    def recovered(self) -> list[str]:
        """Emails marked uncertain when this window opened."""
        return list(self._recovered)

    # ==================================================================== inputs
    @property
    def input_mode(self) -> InputMode:
        return InputMode(self.input_tabs.currentIndex())

    def set_input_mode(self, mode: InputMode) -> None:
        self.input_tabs.setCurrentIndex(int(mode))

    def _paste_changed(self) -> None:
        text = self.paste_edit.toPlainText()
        lines = sum(1 for line in text.splitlines() if line.strip())
        self.paste_count.setText(plural(lines, "line") if lines else "")
        self._inputs_changed()

    def _kind_changed(self, _id: int = 0, _checked: bool = True) -> None:
        self.event_combo.setEnabled(self.guest_radio.isChecked() and bool(self._events))
        self._inputs_changed()

    def _inputs_changed(self, *_args: object) -> None:
        """Anything that changes which rows would be ready makes the last check stale."""
        if self._preflight is not None and not self._consumed:
            self._stale = True
            self.stale_label.setText(
                "The list changed since this check. Press Check addresses again before sending."
            )
            self.stale_label.show()
        self._update_actions()

    def _has_input(self) -> bool:
        mode = self.input_mode
        if mode is InputMode.ONE:
            return bool(self.email_edit.text().strip())
        if mode is InputMode.PASTE:
            return bool(self.paste_edit.toPlainText().strip())
        return self._csv is not None

    def _kind(self) -> InvitationKind:
        return InvitationKind.EVENT if self.guest_radio.isChecked() else InvitationKind.MEMBERSHIP

    def _event(self) -> EventInfo | None:
        if self._kind() is not InvitationKind.EVENT:
            return None
        data = self.event_combo.currentData()
        return next((e for e in self._events if str(e.id) == data), None)

    def _collect_inputs(self) -> tuple[InviteeInput, ...]:
        mode = self.input_mode
        if mode is InputMode.ONE:
            # Read as a CSV email cell: `Ann Lee <ann@x.org>` or `mailto:…` as mail programs
            # copy it is the address (the Name field, when filled, wins); two addresses are
            # both shown with the problem.
            return tuple(email_cell(1, self.email_edit.text(), clean_name(self.name_edit.text()),
                                    ""))
        if mode is InputMode.PASTE:
            return parse_pasted(self.paste_edit.toPlainText()).rows
        return self._csv.rows if self._csv is not None else ()

    def _source_and_label(self) -> tuple[str, str]:
        mode = self.input_mode
        if mode is InputMode.ONE:
            return "single", self.email_edit.text().strip()
        if mode is InputMode.PASTE:
            return "paste", "Pasted list"
        return "csv", self._csv_name

    # -- CSV ---------------------------------------------------------------------------------
    def choose_csv(self) -> None:
        path, _filter = QFileDialog.getOpenFileName(
            self, "Import invitees from a CSV file", "", "CSV files (*.csv *.txt);;All files (*)"
        )
        if path:
            self.import_csv(Path(path))

    def import_csv(self, path: Path) -> None:
        """Read and parse the file in the background, then check it."""
        self.set_input_mode(InputMode.CSV)
        self.csv_error.clear_message()
        self._set_busy("Reading the file…")

        def work() -> ImportResult:
            try:
                size = path.stat().st_size
                if size > MAX_CSV_BYTES:
                    raise ImportFailed(
                        f"{path.name} is {size / 1024 / 1024:.0f} MB; split it into files under "
                        f"{MAX_CSV_BYTES // 1024 // 1024} MB."
                    )
                data = path.read_bytes()
            except OSError as exc:
                raise ImportFailed(f"Could not read {path.name}: {exc.strerror or exc}.") from None
            return parse_csv(data)

        self._run(work, lambda result: self._csv_imported(path, result), self._csv_failed)

    def _csv_imported(self, path: Path, result: ImportResult) -> None:
        self._set_busy("")
        self._csv = result
        self._csv_name = path.name
        self.csv_file_label.setText(f"{path.name}: {plural(len(result.rows), 'row')}")
        self.csv_notes.setText("\n".join(result.notes))
        self.csv_notes.setVisible(bool(result.notes))
        set_variant(self.csv_notes, "badge" if any("Latin-1" in n for n in result.notes) else "small")
        self._inputs_changed()
        if result.rows:
            self.check()

    def _csv_failed(self, error: BaseException) -> None:
        self._set_busy("")
        self._csv = None
        self._csv_name = ""
        self.csv_file_label.setText("No file imported")
        self.csv_notes.hide()
        if isinstance(error, DomainError):
            self.csv_error.show_message(f"The file was not imported. {error}", "error")
        else:
            log.error("CSV import failed", exc_info=error)
            self.csv_error.show_message(f"The file was not imported: {error}", "error")
        self._inputs_changed()

    # -- on behalf ---------------------------------------------------------------------------
    def _behalf_toggled(self, on: bool) -> None:
        self.member_edit.setEnabled(on and self._behalf_decision.allowed)
        if not on:
            self._inviter = None
            self.member_edit.clear()
        else:
            self.member_edit.setFocus()
            self._search_timer.start()
        self._show_credited()
        self._refresh_preview()
        self._update_actions()

    def _member_text_edited(self, text: str) -> None:
        self._inviter = self._member_choices.get(text)
        self._show_credited()
        self._search_timer.start()
        self._update_actions()

    def _search_members(self) -> None:
        uow = self._context.uow
        operator = self._operator
        text = self.member_edit.text()
        self.hub.query(self, lambda: search_members(uow, operator, text), self._members_found,
                       lambda error: self.behalf_hint.setText(str(error)), key="members")

    def _members_found(self, found: list[MemberChoice]) -> None:
        self._member_choices = {m.label: m for m in found}
        self._member_model.setStringList(list(self._member_choices))
        if self.member_edit.hasFocus() and found and self._inviter is None:
            self.member_completer.complete()

    def _member_chosen(self, label: str) -> None:
        self._inviter = self._member_choices.get(label)
        self._show_credited()
        self._refresh_preview()
        self._update_actions()

    def choose_inviter(self, member: MemberChoice) -> None:
        """Credit `member` as the inviter (what picking from the completer does)."""
        self.behalf_check.setChecked(True)
        self._member_choices[member.label] = member
        self.member_edit.setText(member.label)
        self._member_chosen(member.label)

    # ==================================================================== pre-flight
    def check(self) -> None:
        """Run the pre-flight for the current inputs in the background."""
        if self._state is None:  # the policy is still being read: check once it is known
            self._check_pending = True
            return
        if not self._send_decision.allowed or self._busy or self.sending:
            return
        inputs = self._collect_inputs()
        if not inputs:
            self.message_banner.show_message("Enter at least one email address first.", "info")
            return
        kind = self._kind()
        event = self._event()
        if kind is InvitationKind.EVENT and event is None:
            self.message_banner.show_message("Choose the event the guests are invited to.", "info")
            return
        self.message_banner.clear_message()
        self._check_generation += 1
        generation = self._check_generation
        uow = self._context.uow
        org_id = self._operator.organization_id
        event_id = event.id if event else None
        inviter_id = (self._inviter.id if self.behalf_check.isChecked() and self._inviter
                      else self._operator.member_id)  # invite-only N >= 2: sponsor k of N
        self._set_busy(f"Checking {plural(len(inputs), 'address', 'addresses')}…")
        self._run(
            lambda: run_preflight(uow, org_id, inputs, kind=kind, event_id=event_id,
                                  inviter_id=inviter_id),
            lambda result: self._checked(generation, result),
            self._check_failed,
        )

    def _checked(self, generation: int, result: Preflight) -> None:
        self._set_busy("")
        if generation != self._check_generation:
            return
        self._preflight = result
        self._stale = False
        self._consumed = False
        self.stale_label.hide()
        self.model.set_preflight(result)
        self.table_stack.setCurrentWidget(self.table)
        self.counts_label.setText(self.model.summary())
        self._select_first_row()
        self._update_actions()

    def _check_failed(self, error: BaseException) -> None:
        self._set_busy("")
        self._show_error("The check did not run", error)

    def _select_first_row(self) -> None:
        if self.proxy.rowCount() == 0:
            return
        first_ready = next(
            (r for r in range(self.proxy.rowCount())
             if self.proxy.index(r, 0).data(PreflightRole.STATUS) == RowStatus.READY.value),
            0,
        )
        self.table.selectRow(first_ready)

    @property
    def loaded(self) -> bool:
        """True once the policy, branding and mail settings have been read."""
        return self._state is not None

    @property
    def preflight(self) -> Preflight | None:
        return self._preflight

    def selected_row(self) -> PreflightRow | None:
        index = self.table.currentIndex()
        if index.isValid():
            row = self.proxy.data(index, PreflightRole.ROW)
            if isinstance(row, PreflightRow):
                return row
        if self._preflight and self._preflight.rows:
            return (self._preflight.ready or self._preflight.rows)[0]
        return None

    # ==================================================================== preview and test
    def _inviter_name(self) -> str:
        if self.behalf_check.isChecked() and self._inviter is not None:
            return self._inviter.name
        return self._operator.name

    def _content_for(self, row: PreflightRow, *, email: str | None = None) -> InvitationContent:
        event = self._event()
        return InvitationContent(
            email=email or row.email,
            name=row.name,
            inviter_name=self._inviter_name(),
            personal_message=row.message or clean_message(self.message_edit.toPlainText()),
            expires_at=utcnow() + timedelta(days=self._policy.invitation_expiry_days),
            event_name=event.name if event else "",
        )

    def _templates_and_mail(self) -> tuple[OrganizationInfo, InvitationTemplates, MailSettings]:
        """As last read by `refresh` (on showing the page and after every settings change)."""
        if self._state is None:
            raise DomainError("The organization's settings are still being read: try again in "
                              "a moment.")
        return self._state.organization, self._state.templates, self._state.mail

    def preview_email(self, row: PreflightRow | None = None) -> PreviewEmail:
        """The selected row's email, rendered by the services with a placeholder link."""
        row = row or self.selected_row()
        if row is None:
            raise DomainError("Check the addresses first: the preview shows one row of the list.")
        org, templates, mail = self._templates_and_mail()
        rendered = render_invitation(org, templates, self._content_for(row), PREVIEW_TOKEN)
        sender = mail.from_name or org.name
        if mail.from_address:
            sender = f"{sender} <{mail.from_address}>"
        else:
            sender = f"{sender} (no sender address yet: see Settings › Email)"
        to = f"{row.name} <{row.email}>" if row.name else row.email
        link_note = "The link in a preview is a placeholder and does not work."
        if row.status in SENDABLE:
            note = f"Row {row.row}. {link_note}"
        else:
            note = f"Row {row.row} will not be sent ({STATUS_TEXT[row.status].lower()}). {link_note}"
        return PreviewEmail(rendered, sender, to, org.logo, note)

    def show_preview(self) -> None:
        if self._preview is None:
            self._preview = PreviewDialog(self)
            self._preview.test_requested.connect(self.send_test)
        self._render_preview()
        if self._preview.isVisible():  # already open, perhaps behind the main window
            self._preview.raise_()
        else:
            self._preview.show()

    @property
    def preview_dialog(self) -> PreviewDialog | None:
        return self._preview

    def _refresh_preview(self, *_args: object) -> None:
        """Follow the selection, the message and the inviter while the preview is open."""
        if self._preview is None or not self._preview.isVisible():
            return
        self._render_preview()

    def _render_preview(self) -> None:
        assert self._preview is not None
        try:
            self._preview.pane.show_email(self.preview_email())
        except DomainError as exc:
            self._preview.pane.show_nothing(str(exc))

    def send_test(self) -> None:
        """Send the selected row's email to the operator's own address (not an invitation)."""
        if self._busy or self.sending:
            return
        row = self.selected_row()
        if row is None:
            self.message_banner.show_message("Check the addresses first, then send a test.", "info")
            return
        try:
            org, templates, mail = self._templates_and_mail()
            if not self._mail_ready(mail):
                return
            message, _message_id = build_test_message(  # the batch builder (issue 8)
                org, mail, templates, self._content_for(row, email=self._operator.email),
                PREVIEW_TOKEN,
            )
        except DomainError as exc:
            self._show_error("The test email could not be prepared", exc)
            return
        go_on, password = self._password_for(mail)
        if not go_on:
            return
        to = self._operator.email
        credentials = self._context.credentials
        self._set_busy(f"Sending a test to {to}…")
        self._run(
            lambda: send_test_message(mail, password, message, to,
                                      oauth.for_settings(mail, credentials)),
            lambda result: self._test_sent(to, result),
            lambda error: self._test_failed(error),
        )

    def _test_sent(self, to: str, result: SendResult) -> None:
        self._set_busy("")
        if isinstance(result, Sent):
            self.message_banner.show_message(
                f"A test email was sent to {to}. Check your inbox (and the spam folder).", "success"
            )
        elif isinstance(result, PermanentFailure | TemporaryFailure):
            code = f"{result.code} " if result.code else ""
            self.message_banner.show_message(
                f"The server refused the test email to {to}: {code}{result.reply}", "error"
            )
        else:
            self.message_banner.show_message(
                f"The test email to {to} may or may not have arrived: {result.reason}", "warning"
            )

    def _test_failed(self, error: BaseException) -> None:
        self._set_busy("")
        self._show_error("The test email was not sent", error)

    def _outbox_busy(self) -> bool:
        """True (and says so) when the outbox is sending for another page."""
        if not self.outbox.running:
            return False
        self.message_banner.show_message(self.outbox.busy_message(REQUESTER), "warning")
        return True

    def _mail_ready(self, mail: MailSettings) -> bool:
        if mail.configured:
            return True
        self.message_banner.show_message(
            "Sending needs the organization's SMTP server: it is not set up yet. An organization "
            "admin can enter it in Settings › Email.",
            "error",
            action=("Open Settings › Email", self.email_settings_requested.emit),
        )
        return False

    def _password_for(self, mail: MailSettings) -> tuple[bool, str | None]:
        """(go on, password): the password is None when the server needs no sign-in."""
        outcome = self._passwords.password_for(self, mail)
        if not outcome.go_on:
            self.message_banner.show_message(
                "Nothing was sent: the SMTP password is needed to send.", "info"
            )
        elif outcome.warning:
            self.message_banner.show_message(outcome.warning, "warning")
        return outcome.go_on, outcome.password

    # ==================================================================== helpers
    def _run(
        self,
        work: Callable[[], T],
        on_done: Callable[[T], None],
        on_failed: Callable[[BaseException], None],
    ) -> None:
        self.hub.query(self, work, on_done, on_failed, key=None)

    def _set_busy(self, text: str) -> None:
        self._busy = text
        if text:
            self.counts_label.setText(text)
        elif self._preflight is not None:
            self.counts_label.setText(self.model.summary())
        else:
            self.counts_label.setText("")
        self._update_actions()

    def _show_error(self, what: str, error: BaseException) -> None:
        if isinstance(error, SmtpAuthError):
            self.message_banner.show_message(
                f"{what}. {error}", "error",
                action=("Open Settings › Email", self.email_settings_requested.emit))
        elif isinstance(error, SettingsIncomplete):
            page = error.settings_page
            self.message_banner.show_message(
                f"{what}. {error}", "error",
                action=("Open settings", lambda: self.settings_requested.emit(page)))
        elif isinstance(error, DomainError):
            self.message_banner.show_message(f"{what}. {error}", "error")
        else:
            log.error("%s", what, exc_info=error)
            self.message_banner.show_message(
                f"{what}: an unexpected error happened ({type(error).__name__}: {error}).", "error")

    def _update_actions(self) -> None:
        allowed = self._send_decision.allowed
        sending = self.sending
        idle = allowed and not sending and not self._busy
        has_rows = self._preflight is not None and bool(self._preflight.rows)
        ready = len(self._preflight.ready) if self._preflight is not None else 0
        for widget in (self.input_tabs, self.message_edit, self.membership_radio,
                       self.guest_radio, self.behalf_check):
            widget.setEnabled(allowed and not sending and not self._busy)
        self.guest_radio.setEnabled(self.guest_radio.isEnabled() and bool(self._events))
        self.behalf_check.setEnabled(self.behalf_check.isEnabled() and self._behalf_decision.allowed)
        self.event_combo.setEnabled(self.guest_radio.isEnabled() and self.guest_radio.isChecked())
        self.member_edit.setEnabled(self.behalf_check.isEnabled() and self.behalf_check.isChecked())
        self.check_button.setEnabled(idle and self._has_input())
        can_send = idle and has_rows and ready > 0 and not self._stale and not self._consumed
        elsewhere = self.outbox.running and not sending  # one send at a time, app-wide
        self.send_button.setEnabled(can_send and not elsewhere)
        self.send_button.setToolTip(self.outbox.busy_message(REQUESTER) if elsewhere else
                                    "Only ready rows are sent; the others are skipped.")
        self.send_button.setText(f"Send {plural(ready, 'invitation')}" if ready and not
                                 self._consumed else "Send invitations")
        self.preview_button.setEnabled(allowed and has_rows)
        self.test_button.setEnabled(idle and has_rows)
        self.problems_check.setEnabled(has_rows)
