"""The base of every page: a view of the operations hub.

    class MembersWindow(HubPage):
        def __init__(self, context, operator, parent=None, *, hub=None, runner=None):
            super().__init__(context, operator, parent, hub=hub, runner=runner)
            self.follow(MEMBERS, INVITATIONS)   # reload when these change elsewhere

A page gets the app's hub from the main window (alone, in tests, it makes its own and shuts it
down when closed). `follow(kinds)`: a broadcast touching those kinds, from anyone but this page,
reloads the page now if it is shown, else marks it stale and reloads it when it is shown
again. Pages that send follow the one outbox with `follow_outbox(requester)` and hear only
about the sends they started.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypedDict, Unpack

from PySide6.QtCore import QTimer
from PySide6.QtGui import QCloseEvent, QShowEvent
from PySide6.QtWidgets import QWidget

from invite_desk.services.invitations.sending import SendProgress, SendReport
from invite_desk.services.operator import Operator
from invite_desk.ui.hub import Changes, OperationsHub
from invite_desk.ui.outbox import Outbox, SendOutcome
from invite_desk.ui.password_prompt import AskPassword, SmtpPasswords

if TYPE_CHECKING:
    from invite_desk.services.smtp.transport import RetryPolicy
    from invite_desk.ui.context import PageContext
    from invite_desk.ui.tasks import TaskRunner


class HubPage(QWidget):
    outbox: Outbox
    requester = ""  # how the outbox names the sends this page starts ("" for none)

    def __init__(self, context: PageContext, operator: Operator, parent: QWidget | None = None,
                 *, hub: OperationsHub | None = None, runner: TaskRunner | None = None) -> None:
        super().__init__(parent)
        self._context = context
        self._operator = operator
        # The main window hands in the app's hub; alone (tests), the page has its own.
        self._owns_hub = hub is None
        self.hub = hub if hub is not None else OperationsHub(self, runner=runner)
        self._runner: TaskRunner = runner or self.hub.runner
        self._stale = False  # something this page shows changed while it was hidden
        self._followed: tuple[str, ...] = ()

    @property
    def operator(self) -> Operator:
        return self._operator

    # -- following changes made anywhere in the app ---------------------------------------
    def follow(self, *kinds: str) -> None:
        self._followed = kinds
        self.hub.changed.connect(self._changed_somewhere)

    def _changed_somewhere(self, changes: Changes) -> None:
        if changes.origin is self or not changes.touches(*self._followed):
            return
        if self.isVisible() and self.may_reload():
            self.reload()
        else:  # read again when shown, not while nobody looks
            self._stale = True

    def may_reload(self) -> bool:
        """False while reloading now would get in the way (an action is running)."""
        return True

    def reload(self) -> None:
        """Read what the page shows again (after a change elsewhere)."""
        raise NotImplementedError

    # -- the one outbox -----------------------------------------------------------------------
    def use_outbox(self, outbox: Outbox | None, retry: RetryPolicy | None = None) -> None:
        """The app's outbox (alone, the page has its own) and its signals, filtered to the
        sends this page started."""
        self.outbox = outbox if outbox is not None else Outbox(
            self._context.engine, self._operator.organization_id, self.hub, self, retry=retry,
            credentials=self._context.credentials)
        self.outbox.progressed.connect(self._outbox_progressed)
        self.outbox.finished.connect(self._outbox_finished)
        self.outbox.failed.connect(self._outbox_failed)
        self.outbox.running_changed.connect(lambda _running: self.outbox_running_changed())

    @property
    def sending(self) -> bool:
        """True while the outbox sends a batch this page started."""
        current = self.outbox.current
        return current is not None and current.requester == self.requester

    def _outbox_progressed(self, progress: SendProgress) -> None:
        if self.sending:
            self.send_progressed(progress)

    def _outbox_finished(self, outcome: SendOutcome) -> None:
        if outcome.requester == self.requester and outcome.report is not None:
            self.send_finished(outcome.report)

    def _outbox_failed(self, outcome: SendOutcome) -> None:
        if outcome.requester == self.requester:
            self.send_failed(outcome.message, outcome.settings_page)

    def send_progressed(self, progress: SendProgress) -> None:
        """A send this page started made progress."""

    def send_finished(self, report: SendReport) -> None:
        """A send this page started ended (done, cancelled or stopped)."""

    def send_failed(self, message: str, settings_page: str | None) -> None:
        """A send this page started could not go on."""

    def outbox_running_changed(self) -> None:
        """Some page's send started or ended (one send at a time, app-wide)."""

    # -- Qt overrides -----------------------------------------------------------------------
    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 (Qt override)
        super().showEvent(event)
        if self._stale and self.may_reload():
            self._stale = False
            self.reload()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt override)
        if self._owns_hub:  # in the main window, the window waits for the app's hub
            self.hub.shutdown(30_000)
        super().closeEvent(event)


class SendingOptions(TypedDict, total=False):
    """What a page that sends is handed: the app's hub and outbox (alone, in tests, the page
    makes its own), how its own hub runs work (tests: SynchronousRunner), how to ask for the
    SMTP password when the keyring has none, and the retry policy of its own outbox."""

    hub: OperationsHub | None
    outbox: Outbox | None
    runner: TaskRunner | None
    ask_password: AskPassword | None
    retry: RetryPolicy | None


class SendingPage(HubPage):
    """A page that sends through the one outbox (Compose, Invitations)."""

    def __init__(self, context: PageContext, operator: Operator, parent: QWidget | None = None,
                 **options: Unpack[SendingOptions]) -> None:
        super().__init__(context, operator, parent, hub=options.get("hub"),
                         runner=options.get("runner"))
        retry = options.get("retry")
        self._retry = retry
        self.use_outbox(options.get("outbox"), retry)
        self._passwords = SmtpPasswords(context.credentials, options.get("ask_password"))
        # Progress arrives after every message; the page redraws at most every 100 ms.
        self._last_progress: SendProgress | None = None
        self._progress_timer = QTimer(self)
        self._progress_timer.setSingleShot(True)
        self._progress_timer.setInterval(100)
        self._progress_timer.timeout.connect(self._render_progress)

    def send_progressed(self, progress: SendProgress) -> None:
        self._last_progress = progress
        self.progress_arrived(progress)
        if not self._progress_timer.isActive():
            self._progress_timer.start()

    def progress_arrived(self, progress: SendProgress) -> None:
        """Every progress report of a send this page started (before the redraw)."""

    def _render_progress(self) -> None:
        """Show `_last_progress` (at most every 100 ms, and on the page's own timers)."""
