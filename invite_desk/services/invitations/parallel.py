"""The outbox over K SMTP connections: one thread and one connection per lane.

Every lane claims its own invitation durably (committed as `sending` with the run's lease
host:pid:run before the SMTP transaction starts, exactly as the one-connection sender does),
so a crash leaves at most K invitations in `sending` (recovered as `uncertain`, never resent)
and never a duplicate: the claim is an UPDATE ... WHERE status = 'queued', so two lanes (or two
desktops) can never both own a row.

The caps are shared: one sliding-window RateLimiter (messages per minute) under a lock for all
lanes, seeded with the sends of the last minute, and a daily budget counted from the database
(`sent_at` in the last 24 hours) at the start of the run. Rows beyond the daily budget stay
queued and the report says when sending can resume. Two desktops sending at the same moment
each keep the per-minute limit for themselves (the database budget is read at start).

Writes (claim, outcome, audit) are committed under one lock: SQLite has one writer anyway, and
a lane never waits for the lock while holding an uncommitted write (no lock-order deadlock).
Pause, resume and cancel act at each lane's safe point: between two messages.
"""

from __future__ import annotations

import itertools
import ssl
import sys
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import Connection

from invite_desk.services.invitations.pacing import (
    DAY,
    count_sent_since,
    daily_limit,
    per_minute_limit,
    sent_since,
)
from invite_desk.services.invitations.send_scope import SendScope
from invite_desk.services.invitations.sending import (
    PROGRESS_EVERY,
    UNCERTAIN_REASON,
    OutboxSender,
    SendControl,
    SendProgress,
    SendReport,
    Transport,
    _Candidate,
    _Prepared,
    _unpreparable,
)
from invite_desk.services.mail_settings import MailSettings
from invite_desk.services.models import InvitationStatus, utcnow
from invite_desk.services.organization import OrganizationInfo
from invite_desk.services.smtp.ratelimit import RateLimiter
from invite_desk.services.smtp.transport import (
    AccessToken,
    RetryPolicy,
    SendResult,
    SmtpAuthError,
    SmtpConnectError,
    SmtpTransport,
    Uncertain,
)

__all__ = ["UNCERTAIN_REASON", "ParallelSender", "smtp_lanes"]
from invite_desk.services.uow import UnitOfWork

TransportFactory = Callable[[], Transport]


class _NoTransport:
    """The base class's single transport; the lanes have their own."""

    def send(self, message: object, to: str) -> SendResult:
        raise AssertionError("the parallel sender sends through its lanes")

    def close(self) -> None:
        pass


class ParallelSender(OutboxSender):
    """Sends every due queued invitation of an organization (or batch) over K connections."""

    def __init__(
        self,
        uow: UnitOfWork,
        make_transport: TransportFactory,
        *,
        organization_id: uuid.UUID,
        connections: int | None = None,
        batch_id: uuid.UUID | None = None,
        scope: SendScope | None = None,
        retry: RetryPolicy | None = None,
        control: SendControl | None = None,
        on_progress: Callable[[SendProgress], None] | None = None,
        clock: Callable[[], datetime] = utcnow,
        limiter: RateLimiter | None = None,
        per_day: int | None = None,
    ) -> None:
        super().__init__(uow, _NoTransport(), organization_id=organization_id,
                         batch_id=batch_id, scope=scope, retry=retry, control=control,
                         on_progress=on_progress, clock=clock)
        self.make_transport = make_transport
        self.connections = connections  # None: the mail settings say
        self.limiter = limiter  # None: from the mail settings
        self.per_day = per_day  # None: from the mail settings (and the preset)
        self._page_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._budget_lock = threading.Lock()
        self._emit_lock = threading.Lock()
        self._halt = threading.Event()  # the server refused the sign-in: every lane stops
        self._day_left: int | None = None
        self._capped = False  # the daily budget ran out: the rest waits for tomorrow
        self._lane_errors: list[str] = []
        self._lanes_done_normally = 0
        self.lanes_started = 0
        self._rendered: dict[uuid.UUID, Future[_Prepared]] = {}
        self._lookahead = 2

    # -- shared pacing ---------------------------------------------------------------------
    def _rate_wait(self) -> float:
        return self.limiter.wait_time() if self.limiter is not None else 0.0

    def _send_interval(self) -> float:
        return self.limiter.interval if self.limiter is not None else 0.0

    def _emit(self, last_email: str = "", last_outcome: str = "", *,
              retry_in: float | None = None) -> None:
        with self._emit_lock:
            super()._emit(last_email, last_outcome, retry_in=retry_in)

    def _stopping(self) -> bool:
        return self.control.cancelled or self._halt.is_set() or self._capped

    def _take_slot(self, before_wait: Callable[[], None]) -> bool:
        """Wait while paused and for the shared rate limit, then count one send against the
        minute and the day. False when the run must stop instead (cancel, halt, daily cap).
        `before_wait` saves the lane's last outcome first: nothing waits unsaved."""
        while True:
            if self._stopping():
                return False
            if self.control.paused:
                before_wait()
                self.control.wait_while_paused()
                continue
            with self._budget_lock:
                if self._day_left == 0:
                    self._capped = True
                    return False
                wait = self.limiter.reserve() if self.limiter is not None else 0.0
                if wait <= 0:
                    if self._day_left is not None:
                        self._day_left -= 1
                    return True
            before_wait()
            self.control.sleep(min(wait, PROGRESS_EVERY))
            self._emit()

    def _unreserve(self, *, sent: bool) -> None:
        """End a slot taken by _take_slot: a send that happened counts from now; one that
        did not frees its minute slot and its place in the daily budget."""
        if self.limiter is not None:
            (self.limiter.complete if sent else self.limiter.release)()
        if not sent and self._day_left is not None:
            with self._budget_lock:
                self._day_left += 1

    def _take(self, conn: Connection, org: OrganizationInfo, mail: MailSettings,
              expiry_days: int) -> tuple[_Candidate, Future[_Prepared]] | None:
        """The next due invitation and its message, rendered ahead: while the lanes wait for
        the server, the render thread prepares the next 2K messages, so no lane waits for
        rendering (nothing is written: the claim stores the token's hash)."""
        with self._page_lock:
            now = self.clock()
            candidate = self._next_due(conn, now)
            if candidate is None:
                return None
            ahead = self._rendered.pop(candidate.id, None)
            if ahead is None:
                ahead = self._prepare(conn, candidate, org, mail, expiry_days, now)
            for following in itertools.islice(self._page, self._lookahead):
                if following.id not in self._rendered:
                    self._rendered[following.id] = self._prepare(
                        conn, following, org, mail, expiry_days, now)
            return candidate, ahead

    # -- the run ---------------------------------------------------------------------------
    def run(self) -> SendReport:
        """Send until nothing is due (waiting for retries), the daily cap, or a cancel."""
        org, mail, expiry_days = self._setup()
        count = self.connections or mail.connection_count
        now = self.clock()
        with self.uow.engine.connect() as conn:
            if self.limiter is None:
                self.limiter = RateLimiter(per_minute_limit(mail))
            if self.limiter.per_minute:
                window = self.limiter.window
                self.limiter.seed((now - at).total_seconds() for at in sent_since(
                    conn, self.organization_id, now - _seconds(window)))
            cap = daily_limit(mail) if self.per_day is None else self.per_day
            if cap:
                self.report.daily_limit = cap
                self._day_left = max(0, cap - count_sent_since(
                    conn, self.organization_id, now - DAY))
        self._started = time.monotonic()
        self._emit()
        first = self.make_transport()
        try:
            # Sign in once before opening the others: a refused password or an expired
            # OAuth2 sign-in stops the batch with one failed attempt, not K.
            connect = getattr(first, "connect", None)
            if callable(connect) and self._total_queued() and self._day_left != 0:
                connect()
        except (SmtpConnectError, SmtpAuthError) as exc:
            first.close()
            self.report.error = str(exc)
            self._renderer.shutdown(wait=True, cancel_futures=True)
            self._emit()
            return self.report
        self._lookahead = 2 * count
        lanes = [first] + [self.make_transport() for _ in range(count - 1)]
        threads = [
            threading.Thread(target=self._lane, args=(transport, org, mail, expiry_days),
                             name=f"invite-desk-send-{n + 1}", daemon=True)
            for n, transport in enumerate(lanes)
        ]
        self.lanes_started = len(threads)
        try:
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        except BaseException:
            # A second Ctrl+C lands here while lanes still run: stop them at their safe point
            # (daemon threads; rows left `sending` are recovered as uncertain next time).
            self.control.cancel()
            raise
        finally:
            self._renderer.shutdown(wait=False, cancel_futures=True)
        if self._lane_errors and not self._lanes_done_normally and not self.report.error:
            self.report.error = self._lane_errors[0]
        if self.control.cancelled and not self._halt.is_set():
            self.report.cancelled = True
        if self._capped or self._day_left == 0:
            self._defer()
        self._finish_batches()
        self._emit()
        return self.report

    def _total_queued(self) -> int:
        done = self.report.sent + self.report.failed + self.report.uncertain
        return max(0, self._total - self._done_before - done)

    def _defer(self) -> None:
        """The daily cap stopped the run: say how many wait, and until when."""
        with self.uow:
            counts = self._counts(self.uow.session)
        self.report.deferred = counts.get(InvitationStatus.QUEUED.value, 0)
        if not self.report.deferred:
            return
        with self.uow.engine.connect() as conn:
            window = sent_since(conn, self.organization_id, self.clock() - DAY)
        self.report.resumes_at = (window[0] + DAY) if window else self.clock()

    def _lane(self, transport: Transport, org: OrganizationInfo, mail: MailSettings,
              expiry_days: int) -> None:
        flight = _Flight()
        ended_normally = False
        try:
            with self.uow.engine.connect() as conn:
                try:
                    ended_normally = self._lane_loop(conn, transport, flight, org, mail,
                                                     expiry_days)
                except BaseException:
                    # Keep what is known: a known outcome is saved; a claimed row that never
                    # reached the server goes back to the queue; one the server may have
                    # goes to `uncertain`.
                    conn.rollback()
                    with self._write_lock:
                        if flight.row is not None and flight.result is not None:
                            self._save_outcome(conn, flight)
                        else:
                            self._save_on_error(conn, flight.row, handed=flight.handed)
                    raise
        finally:
            transport.close()
            if ended_normally:
                with self._budget_lock:
                    self._lanes_done_normally += 1

    def _save_outcome(self, conn: Connection, flight: _Flight) -> None:
        try:
            assert flight.row is not None and flight.result is not None
            self._settle(conn, flight.row, flight.result, self.clock())
            conn.commit()
        except Exception:  # the database itself failed; the original error says why
            conn.rollback()

    def _lane_loop(self, conn: Connection, transport: Transport, flight: _Flight,
                   org: OrganizationInfo, mail: MailSettings, expiry_days: int) -> bool:
        """One lane: claim, send, settle, until nothing is due. True when the queue ran dry
        (or the run was cancelled / capped), False when this lane's connection failed.

        The outcome of a send is committed together with the claim of the lane's next
        invitation (one transaction a message, as the one-connection sender does), so a
        lane never holds more than one row in `sending`; before any wait it is saved alone.
        """

        def flush() -> None:
            """Save the last outcome now (before waiting or stopping)."""
            if flight.row is None or flight.result is None:
                return
            row = flight.row
            with self._write_lock:
                status = self._settle(conn, row, flight.result, self.clock())
                conn.commit()
            flight.clear()
            self._emit(row.email, status)

        try:
            while True:
                if self._stopping():
                    return True
                taken = self._take(conn, org, mail, expiry_days)
                conn.commit()
                if taken is None:
                    flush()
                    retry_at = self._earliest_retry(conn)
                    conn.commit()
                    if retry_at is None:
                        return True
                    self._wait_for_retry(retry_at)
                    continue
                candidate, rendering = taken
                if not self._take_slot(flush):
                    return True  # the candidate was never claimed: it stays queued
                try:
                    prepared = rendering.result()
                except Exception as exc:  # this invitation only: fail it, go on
                    conn.commit()
                    flush()
                    with self._write_lock:
                        failed = self._fail_unsent(conn, candidate, _unpreparable(exc))
                        conn.commit()
                    self._unreserve(sent=False)
                    if failed:
                        self._emit(candidate.email, InvitationStatus.FAILED.value)
                    continue
                conn.commit()  # the name lookups must not hold a read transaction
                settled: tuple[str, str] | None = None
                with self._write_lock:
                    if flight.row is not None and flight.result is not None:
                        status = self._settle(conn, flight.row, flight.result, self.clock())
                        settled = (flight.row.email, status)
                    message = self._claim(conn, candidate, prepared)
                    conn.commit()
                flight.clear()
                if settled is not None:
                    self._emit(*settled)
                if message is None:
                    self._unreserve(sent=False)
                    continue  # revoked meanwhile, or another sender has it
                flight.row, flight.handed = candidate, True
                try:
                    result = transport.send(message, candidate.email)
                except SmtpAuthError as exc:
                    self._unreserve(sent=False)
                    self._give_back(conn, flight, str(exc))
                    self.report.error = str(exc)
                    self._halt.set()
                    return True
                except SmtpConnectError as exc:
                    self._unreserve(sent=False)
                    self._give_back(conn, flight, str(exc))
                    with self._budget_lock:
                        self._lane_errors.append(str(exc))
                    return False
                except Exception as exc:  # the transport could not say: not resent
                    result = Uncertain(
                        f"Sending stopped unexpectedly ({type(exc).__name__}: {exc}); "
                        "the server may have received it.")
                self._unreserve(sent=True)
                flight.result = result
        finally:
            if not sys.exc_info()[0]:
                flush()

    def _give_back(self, conn: Connection, flight: _Flight, error: str) -> None:
        """Put a claimed row the server never got back in the queue."""
        assert flight.row is not None
        with self._write_lock:
            self._release(conn, flight.row, error)
            conn.commit()
        flight.clear()


@dataclass
class _Flight:
    """The invitation a lane has claimed, and whether it was handed to the server."""

    row: _Candidate | None = None
    handed: bool = False
    result: SendResult | None = None  # known once the server answered, until saved

    def clear(self) -> None:
        self.row, self.handed, self.result = None, False, None


def _seconds(seconds: float) -> timedelta:
    return timedelta(seconds=seconds)


def smtp_lanes(
    mail: MailSettings, password: str | None, *, access_token: AccessToken | None = None,
    ssl_context: ssl.SSLContext | None = None, timeout: float = 30.0,
) -> TransportFactory:
    """Makes one SmtpTransport per lane. Their own rate limits are off: the ParallelSender
    paces all lanes together with one shared limiter."""
    config = replace(mail.smtp_config(timeout=timeout), rate_per_minute=0)

    def make() -> Transport:
        return SmtpTransport(config, password, ssl_context=ssl_context,
                             access_token=access_token)

    return make
