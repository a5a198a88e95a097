"""The outbox: the one place the desktop sends from.

Compose (a new batch, "Send the rest") and Invitations (a resend) both ask the outbox; it runs
one `SendWorker` on one QThread at a time (it sends over the K connections the mail settings
ask for, paced together).
A second request while a send runs is refused (`send` returns a `Refusal` saying who is
sending), never queued behind it: the page says so and the invitations stay queued.

The mail settings are read once, in the worker, when the connection opens; the page only
supplies the password (from the keyring, or asked). After every run the outbox broadcasts
Changes(invitations, members) through the hub, so every open view follows.

Signals (on the GUI thread): `started(SendStart)`, `progressed(SendProgress)`,
`finished(SendOutcome)`, `failed(SendOutcome)`, `running_changed(bool)`, `paused_changed(bool)`.

Notification emails (an application approved or rejected, an invitee joined, a sign-in link)
are queued by the services; the outbox delivers them (`drain_notifications`) after a change
that may have queued one (members, applications), after each send, and every few minutes
while idle. A drain never runs beside a send: a send stops it after its current message.
`notifications_sent(NotificationRun)` reports each drain.

In replica mode (issue 12) the notification queue is claimed and sent only on the SERVER:
`notify_target` (the Replica's `notification_engine`) gives the server's engine while the last
sync round reached it, and None while offline, when the drain waits. The claim is then atomic
with every other drainer (`invite-desk notify`, the end of `invite-desk send`, other desktops),
the drain's writes are not journaled (they are not made on the replica), and a row queued
offline goes out after sync has pushed it: `sync_round` drains after a round that pushed
something or that reached the server after a drain had to wait.

Invitations in replica mode (`send_link`, the Replica's `send_link`): the worker claims each
invitation the server knows ON THE SERVER before SMTP (exactly once beside `invite-desk send`
and other desktops); offline only those created on this replica go out, and the report counts
the others as waiting for the server. A run that left some waiting is started again (same
batch, same requester) by the first round that reaches the server after it, and after a
round that pushed something: they then go out once.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from PySide6.QtCore import QCoreApplication, QObject, QTimer, Signal
from sqlalchemy import Engine

from invite_desk.services.credentials import CredentialStore, CredentialStoreError
from invite_desk.services.invitations.sending import (
    SendProgress,
    SendReport,
    ServerLink,
    Transport,
)
from invite_desk.services.mail_settings import get_mail_settings
from invite_desk.services.smtp import oauth
from invite_desk.services.smtp.transport import RetryPolicy, SmtpTransport
from invite_desk.services.sync.replica import RoundReport
from invite_desk.services.uow import UnitOfWork
from invite_desk.ui.hub import APPLICATIONS, INVITATIONS, MEMBERS, Changes, OperationsHub
from invite_desk.ui.notify_worker import NotifyJob, NotifyWorker
from invite_desk.ui.send_worker import SendJob, SendWorker

log = logging.getLogger(__name__)

# (engine, organization id, password) -> transport; called on the sending thread, once per
# connection (the mail settings say how many).
TransportMaker = Callable[[Engine, uuid.UUID, str | None], Transport]


def smtp_transport(engine: Engine, organization_id: uuid.UUID, password: str | None, *,
                   credentials: CredentialStore | None = None,
                   shared: dict[str, Any] | None = None) -> Transport:
    """The organization's SMTP server, as its settings say now (read on the sending thread).

    The connections of one run share the OAuth2 token source (`shared`), so the access token
    is refreshed once; the rate limit is kept by the sender for all connections together."""
    mail = get_mail_settings(UnitOfWork(engine), organization_id)
    tokens = None
    if mail.uses_oauth and credentials is not None:
        cache = shared if shared is not None else {}
        tokens = cache.get("tokens") or cache.setdefault(
            "tokens", oauth.for_settings(mail, credentials))
    config = replace(mail.smtp_config(), rate_per_minute=0)
    return SmtpTransport(config, password, access_token=tokens)


@dataclass(frozen=True)
class SendStart:
    batch_id: uuid.UUID | None
    requester: str  # who asked: "compose", "invitations", ...
    total: int


@dataclass(frozen=True)
class SendOutcome:
    """How a run ended: `report` when it ran to its end (done, cancelled or stopped by the
    server), else `message` (and `settings_page` when a setting is missing)."""

    batch_id: uuid.UUID | None
    requester: str
    report: SendReport | None = None
    message: str = ""
    settings_page: str | None = None


@dataclass(frozen=True)
class Refusal:
    """Why a send did not start: another one is running."""

    requester: str  # who is sending now
    message: str


REQUESTER_NAMES = {"compose": "Compose", "invitations": "Invitations"}

# (engine, organization id) -> the SMTP password (e.g. from the keyring); on the worker thread.
PasswordSource = Callable[[Engine, uuid.UUID], str | None]
# () -> the engine to drain notifications on, or None: wait (replica mode while offline).
NotifyTarget = Callable[[], Engine | None]
# () -> how the sender reaches the server (replica mode; services/invitations/sending.py).
SendLinkSource = Callable[[], ServerLink]
NOTIFY_IDLE_MS = 5 * 60_000  # drain the notification queue this often while idle


def keyring_password(credentials: CredentialStore) -> PasswordSource:
    """The SMTP password from the keyring (or None: the server needs none, or it is not
    stored yet; then the password of the last send is used). Read on the worker thread."""

    def read(engine: Engine, organization_id: uuid.UUID) -> str | None:
        mail = get_mail_settings(UnitOfWork(engine), organization_id)
        if not mail.username:
            return None
        try:
            return credentials.get(mail.password_key())
        except CredentialStoreError as exc:
            log.warning("keyring unavailable for the notification emails: %s", exc)
            return None

    return read


class Outbox(QObject):
    started = Signal(object)  # SendStart
    progressed = Signal(SendProgress)
    finished = Signal(object)  # SendOutcome with its report
    failed = Signal(object)  # SendOutcome with its message
    running_changed = Signal(bool)
    paused_changed = Signal(bool)
    notifications_sent = Signal(object)  # NotificationRun

    def __init__(
        self,
        engine: Engine,
        organization_id: uuid.UUID,
        hub: OperationsHub,
        parent: QObject | None = None,
        *,
        retry: RetryPolicy | None = None,
        make_transport: TransportMaker = smtp_transport,
        credentials: CredentialStore | None = None,
        password_source: PasswordSource | None = None,
        notify_idle_ms: int = NOTIFY_IDLE_MS,
        notify_target: NotifyTarget | None = None,
        send_link: SendLinkSource | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("Outbox")
        self._engine = engine
        self._organization_id = organization_id
        self._hub = hub
        self.retry = retry
        self._make_transport = make_transport
        self._credentials = credentials  # the OAuth2 refresh token is read from it
        self._job: SendJob | None = None
        self._start: SendStart | None = None
        self._stuck: list[SendJob] = []
        self.last_progress: SendProgress | None = None
        self._password_source = password_source
        self._last_password: str | None = None
        self._notify: NotifyJob | None = None
        self._notify_again = False
        self._notify_target = notify_target
        self.notify_waiting = False  # a drain was due while the server was away
        self._send_link = send_link
        # A run that left invitations waiting for the server: (batch, requester), sent again
        # by sync_round; `_retry_fresh`: no round has answered since that run ended.
        self.send_waiting: tuple[uuid.UUID | None, str] | None = None
        self._retry_fresh = False
        self._retrying = False  # the running send is sync_round's retry
        self._last_round_online = True
        hub.changed.connect(self._hub_changed)
        self._notify_timer = QTimer(self)
        self._notify_timer.setInterval(max(notify_idle_ms, 1))
        self._notify_timer.timeout.connect(self.drain_notifications)
        if notify_idle_ms > 0:
            self._notify_timer.start()

    # -- state ----------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._job is not None and self._job.running

    @property
    def paused(self) -> bool:
        return self._job is not None and self._job.worker.paused

    @property
    def current(self) -> SendStart | None:
        """The send running now (None when idle)."""
        return self._start if self._job is not None else None

    def busy_message(self, asking: str = "") -> str:
        """What to tell a page that wants to send while another send runs."""
        start = self.current
        if start is None:
            return ""
        who = REQUESTER_NAMES.get(start.requester, start.requester)
        where = "this page" if start.requester == asking else who
        return (f"Another send is running (started from {where}); only one runs at a time. "
                "Nothing new was sent: press again when it has finished. The invitations "
                "stay queued.")

    # -- control --------------------------------------------------------------------------
    def send(self, batch_id: uuid.UUID | None, password: str | None, *, requester: str,
             total: int = 0) -> Refusal | None:
        """Start sending what is queued in `batch_id` (None: everything queued in the
        organization). Returns None when it started, a Refusal when a send already runs."""
        if self._job is not None:
            return Refusal(self._start.requester if self._start else "", self.busy_message(
                requester))
        self._stop_notifications()  # one SMTP connection at a time
        if password:
            self._last_password = password
        make, engine, org = self._make_transport, self._engine, self._organization_id
        if make is smtp_transport:
            make = functools.partial(smtp_transport, credentials=self._credentials, shared={})
        self.send_waiting = None
        worker = SendWorker(engine, lambda: make(engine, org, password),
                            organization_id=org, batch_id=batch_id, retry=self.retry,
                            link=self._send_link() if self._send_link is not None else None)
        worker.progressed.connect(self._progressed)
        worker.finished.connect(self._finished)
        worker.failed.connect(self._failed)
        self._start = SendStart(batch_id, requester, total)
        self.last_progress = None
        self._job = SendJob(worker, self)
        self._job.start()
        self.started.emit(self._start)
        self.running_changed.emit(True)
        return None

    def pause(self) -> None:
        if self._job is not None and not self._job.worker.paused:
            self._job.worker.pause()
            self.paused_changed.emit(True)

    def resume(self) -> None:
        if self._job is not None and self._job.worker.paused:
            self._job.worker.resume()
            self.paused_changed.emit(False)

    def cancel(self) -> None:
        """Stop after the message being sent now; the rest stays queued."""
        if self._job is not None:
            self._job.worker.cancel()

    def stop(self, wait_ms: int = 60_000) -> bool:
        """Cancel and wait for the sending thread to end (before quitting); True when it has.

        The worker's own report then arrives as usual (`finished`), so pages and views update.
        """
        self._notify_timer.stop()
        self._stop_notifications(wait_ms)
        if self._job is None:
            return True
        job = self._job
        stopped = job.stop(wait_ms)
        if stopped:
            # Deliver the worker's queued report now, while the pages still exist.
            QCoreApplication.sendPostedEvents()
        if self._job is job:  # the report did not come (a stuck thread): release it anyway
            self._end()
        return stopped and not any(j.running for j in self._stuck)

    # -- the worker's reports ---------------------------------------------------------------
    def _progressed(self, progress: SendProgress) -> None:
        self.last_progress = progress
        self.progressed.emit(progress)

    def _finished(self, report: SendReport) -> None:
        start = self._end()
        if report.waiting_server and not report.cancelled:
            # One retry by the next round that answers, unless this run was that retry
            # (then only a push or a reconnection starts another: never a loop).
            self._retry_fresh = not self._retrying
            self.send_waiting = (start.batch_id, start.requester)
        self._retrying = False
        self.finished.emit(SendOutcome(start.batch_id, start.requester, report=report))
        self._hub.broadcast({INVITATIONS, MEMBERS}, self)
        self.drain_notifications()

    def _failed(self, message: str) -> None:
        page = self._job.worker.settings_page if self._job is not None else None
        self._retrying = False
        start = self._end()
        self.failed.emit(SendOutcome(start.batch_id, start.requester, message=message,
                                     settings_page=page))
        self._hub.broadcast({INVITATIONS, MEMBERS}, self)

    def _end(self) -> SendStart:
        job, self._job = self._job, None
        start = self._start or SendStart(None, "", 0)
        if job is not None and job.join():
            job.deleteLater()
        elif job is not None:  # never destroy a running thread: keep it until it ends
            log.error("the sending thread did not end; keeping it alive")
            self._stuck.append(job)
        self.running_changed.emit(False)
        return start

    # -- notification emails --------------------------------------------------------------
    @property
    def notifying(self) -> bool:
        return self._notify is not None

    def _hub_changed(self, changes: Changes) -> None:
        if changes.origin is not self and changes.touches(MEMBERS, APPLICATIONS):
            self.drain_notifications()  # an approval, a sign-in link... may have queued mail

    def drain_notifications(self) -> bool:
        """Deliver the queued notification emails on the outbox's own thread; False when it
        cannot start now (a send runs: it drains when it ends; or quitting)."""
        if self._job is not None or self._hub.closed:
            return False
        if self._notify is not None:
            self._notify_again = True  # something new may have been queued meanwhile
            return True
        make, engine, org = self._make_transport, self._engine, self._organization_id
        if self._notify_target is not None:  # replica mode: only ever on the server
            server = self._notify_target()
            if server is None:
                self.notify_waiting = True  # offline: drained by the next round that answers
                return False
            engine = server
        self.notify_waiting = False
        source, remembered = self._password_source, self._last_password
        if make is smtp_transport:  # OAuth2 settings: the refresh token is read from the keyring
            make = functools.partial(smtp_transport, credentials=self._credentials, shared={})

        def transport() -> Transport:
            password = source(engine, org) if source is not None else None
            return make(engine, org, password or remembered)

        worker = NotifyWorker(engine, transport)
        worker.finished.connect(self._notified)
        worker.failed.connect(self._notify_failed)
        self._notify = NotifyJob(worker, self)
        self._notify.start()
        return True

    def sync_round(self, report: RoundReport) -> None:
        """After a sync round (replica mode): drain when it pushed commands (an approval made
        offline brings its queued email to the server with it) or when the server answers
        again after a drain had to wait."""
        pushed = report.pushed is not None and report.pushed.applied > 0
        back = report.online and not self._last_round_online
        self._last_round_online = report.online
        if report.online and self.send_waiting is not None and self._job is None \
                and not self._hub.closed and (pushed or back or self._retry_fresh):
            # Invitations waited for the server: it answers now (or took what they waited
            # for), so they go out, claimed there. Once per such round: never a loop.
            batch_id, requester = self.send_waiting
            self._retry_fresh = False
            if self.send(batch_id, self._last_password, requester=requester) is None:
                self._retrying = True
                return  # the send drains the notifications when it ends
        if report.online and (pushed or self.notify_waiting):
            self.drain_notifications()

    def _notified(self, run: object) -> None:
        self._end_notify()
        self.notifications_sent.emit(run)
        if self._notify_again:
            self._notify_again = False
            self.drain_notifications()

    def _notify_failed(self, message: str) -> None:
        self._end_notify()
        self._notify_again = False
        log.info("notification emails wait: %s", message)

    def _end_notify(self) -> None:
        job, self._notify = self._notify, None
        if job is not None and job.stop(10_000):
            job.deleteLater()

    def _stop_notifications(self, wait_ms: int = 60_000) -> None:
        job, self._notify = self._notify, None
        if job is not None and job.stop(wait_ms):
            job.deleteLater()
