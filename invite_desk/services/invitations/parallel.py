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
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    and_,
    bindparam,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.exc import DBAPIError

from invite_desk.services import suppression
from invite_desk.services.invitations.pacing import (
    DAY,
    count_sent_since,
    daily_limit,
    per_minute_limit,
    sent_since,
)
from invite_desk.services.invitations.send_scope import SendScope
from invite_desk.services.invitations.sending import (
    _CLAIM,
    _FAIL_UNSENT,
    _RELEASE,
    INVITATION,
    MIRRORED_COLUMNS,
    PROGRESS_EVERY,
    SENT_ELSEWHERE,
    SERVER,
    UNCERTAIN_REASON,
    OutboxSender,
    SendControl,
    SendProgress,
    SendReport,
    ServerLink,
    Transport,
    _Candidate,
    _Outcome,
    _Prepared,
    _unpreparable,
    recover_interrupted,
    run_ended,
    scheduled_later_sql,
    unpushed_sql,
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
from invite_desk.services.sync import journal

__all__ = ["UNCERTAIN_REASON", "ParallelSender", "ServerLink", "smtp_lanes"]
from invite_desk.services.uow import UnitOfWork

TransportFactory = Callable[[], Transport]
T = TypeVar("T")

# The local copy of a server-side claim or outcome (written under journal.applying: the
# server already has it, so it is never pushed as a delivery fact).
_MIRROR = (
    update(INVITATION).where(INVITATION.c.id == bindparam("row_id"))
    .values({c: bindparam(f"m_{c}") for c in MIRRORED_COLUMNS})
)


class _ServerGone(Exception):
    """The server stopped answering in the middle of a replica's send."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass
class _LaneLink:
    """A lane's connection to the server (replica mode), and what it wrote there that is
    not committed yet: rows to mirror locally, outcomes to keep if the server goes away."""

    server: Connection | None = None
    touched: set[uuid.UUID] = field(default_factory=set)
    unsaved: list[tuple[_Candidate, _Outcome]] = field(default_factory=list)


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
        link: ServerLink | None = None,
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
        # Replica mode (issue 12): rows the server knows are claimed there, see _claim.
        self.link = link
        self._server: Engine | None = None  # the server, when this run reached it
        self._lanes = threading.local()
        self._passed: set[uuid.UUID] = set()  # rows this run cannot claim (left queued)
        self._passed_lock = threading.Lock()
        self._elsewhere: set[uuid.UUID] = set()  # rows another sender had (counted once)

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
        if self.link is not None:
            self._reach_server(self.link)
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
            if not any(thread.is_alive() for thread in threads):
                run_ended(self.identity)  # what it left `sending` is recovered next time
        if self._lane_errors and not self._lanes_done_normally and not self.report.error:
            self.report.error = self._lane_errors[0]
        if self.control.cancelled and not self._halt.is_set():
            self.report.cancelled = True
        if self._capped or self._day_left == 0:
            self._defer()
        if self.link is not None:
            self.report.waiting_server = self._waiting_for_server()
        self._finish_batches()
        self._emit()
        return self.report

    def _total_queued(self) -> int:
        done = self.report.sent + self.report.failed + self.report.uncertain \
            + self.report.elsewhere
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
            with self.uow.engine.connect() as conn, ExitStack() as stack:
                self._lanes.link = _LaneLink(self._open_server(stack))
                try:
                    ended_normally = self._lane_loop(conn, transport, flight, org, mail,
                                                     expiry_days)
                except _ServerGone as gone:
                    self._server_lost(conn, flight, gone)
                except BaseException:
                    # Keep what is known: a known outcome is saved; a claimed row that never
                    # reached the server goes back to the queue; one the server may have
                    # goes to `uncertain`.
                    self._rollback(conn)
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
            self._commit(conn)
        except Exception:  # the database itself failed; the original error says why
            self._rollback(conn)

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
                self._commit(conn)
            flight.clear()
            self._emit(row.email, status)

        try:
            while True:
                if self._stopping():
                    return True
                taken = self._take(conn, org, mail, expiry_days)
                self._commit(conn)
                if taken is None:
                    flush()
                    retry_at = self._earliest_retry(conn)
                    self._commit(conn)
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
                    self._commit(conn)
                    flush()
                    with self._write_lock:
                        failed = self._fail_unsent(conn, candidate, _unpreparable(exc))
                        self._commit(conn)
                    self._unreserve(sent=False)
                    if failed:
                        self._emit(candidate.email, InvitationStatus.FAILED.value)
                    continue
                self._commit(conn)  # the name lookups must not hold a read transaction
                settled: tuple[str, str] | None = None
                with self._write_lock:
                    if flight.row is not None and flight.result is not None:
                        status = self._settle(conn, flight.row, flight.result, self.clock())
                        settled = (flight.row.email, status)
                    message = self._claim(conn, candidate, prepared)
                    self._commit(conn)
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
            self._commit(conn)
        flight.clear()

    # -- replica mode: claims on the server ------------------------------------------------
    # A replica's rows are the server's rows: a send that only claimed them on the replica
    # could also be made by `invite-desk send` (or another desktop) on the server before the
    # replica's delivery facts arrive. So while the server answers, each lane claims a row
    # the server knows ON THE SERVER (the same `UPDATE ... WHERE status = 'queued'` as the
    # server's own sender), commits the outcome there with its next claim, and mirrors both on
    # the replica without journaling them. A row only this replica knows (created here, not
    # pushed yet) is claimed here, under the link's exclusive lock (no push runs meanwhile,
    # so the push carries the claim). Offline, only those rows are sent; the others wait.

    def _reach_server(self, link: ServerLink) -> None:
        """Before sending: push what waits (so rows queued here are claimed on the server),
        and recover the server's rows left `sending` by a stopped sender."""
        online = link.push() if link.push is not None else True
        server = link.engine() if online else None
        if server is not None:
            try:
                recover_interrupted(UnitOfWork(server), self.organization_id)
            except (DBAPIError, OSError):
                server = None
        self._server = server

    def _open_server(self, stack: ExitStack) -> Connection | None:
        if self._server is None:
            return None
        try:
            return stack.enter_context(self._server.connect())
        except (DBAPIError, OSError):
            return None  # this lane sends only what the replica alone knows

    def _lane_link(self) -> _LaneLink:
        link = getattr(self._lanes, "link", None)
        if link is None:
            link = self._lanes.link = _LaneLink()
        return link

    def _on_server(self, run: Callable[[Connection], T]) -> T:
        server = self._lane_link().server
        assert server is not None
        try:
            return run(server)
        except (DBAPIError, OSError) as exc:
            raise _ServerGone(exc) from exc

    def _sendable(self) -> list[ColumnElement[bool]]:
        if self.link is None:
            return []
        mine = unpushed_sql(INVITATION.c.id, inserted=True)
        conditions = [or_(mine, ~unpushed_sql(INVITATION.c.id))
                      if self._server is not None else mine]
        with self._passed_lock:
            passed = list(self._passed)
        if passed:
            conditions.append(INVITATION.c.id.not_in(passed))
        return conditions

    def _pass(self, row_id: uuid.UUID) -> None:
        with self._passed_lock:
            self._passed.add(row_id)

    def _only_here(self, conn: Connection, row_id: uuid.UUID) -> bool:
        """The row was created on this replica and the server does not know it yet."""
        return bool(conn.execute(select(unpushed_sql(row_id, inserted=True))).scalar())

    def _claim(self, conn: Connection, row: _Candidate, prepared: _Prepared) -> bytes | None:
        if self.link is None:
            return super()._claim(conn, row, prepared)
        if self._only_here(conn, row.id):
            self._commit(conn)  # nothing uncommitted while waiting for the lock
            with self.link.exclusive():
                if self._only_here(conn, row.id):
                    message = super()._claim(conn, row, prepared)
                    conn.commit()  # journaled: any later push carries the claim
                    return message
                conn.commit()
            # a push took it to the server meanwhile: claim it there
        if self._lane_link().server is None:
            self._pass(row.id)  # the server knows it: it waits for the server
            return None
        claimed = self._on_server(lambda server: server.execute(_CLAIM, {
            "row_id": row.id, "owner": self.identity, "token_hash": prepared.token_hash,
            "expires": prepared.expires, "message_id": prepared.message_id, "now": utcnow(),
            "unsubscribe_hash": prepared.unsubscribe_hash or None,
        }).rowcount)
        if claimed != 1:
            self._passed_over(row)
            return None
        row.home = SERVER
        row.attempts += 1
        row.message_id = prepared.message_id
        self._lane_link().touched.add(row.id)
        return prepared.message

    def _passed_over(self, row: _Candidate) -> None:
        """The server would not let this lane claim the row: another sender claimed or sent
        it (counted as sent elsewhere, and mirrored here), or it changed there (mirrored)."""
        status = self._on_server(lambda server: server.execute(
            select(INVITATION.c.status).where(INVITATION.c.id == row.id)).scalar())
        if status is None or status == InvitationStatus.QUEUED.value:
            self._pass(row.id)  # not there yet (a push in doubt), or locked: not this run
            return
        if status in SENT_ELSEWHERE:
            with self._passed_lock:  # once: a lane may meet it again before it is mirrored
                if row.id not in self._elsewhere:
                    self._elsewhere.add(row.id)
                    self.report.elsewhere += 1
        self._lane_link().touched.add(row.id)

    def _settle(self, conn: Connection, row: _Candidate, result: SendResult,
                now: datetime) -> str:
        if row.home != SERVER:
            return super()._settle(conn, row, result, now)
        outcome = self._outcome(row, result, now)
        link = self._lane_link()
        link.unsaved.append((row, outcome))
        self._on_server(lambda server: self._write_outcome(server, row, outcome))
        link.touched.add(row.id)
        return outcome.status.value

    def _release(self, conn: Connection, row: _Candidate, error: str) -> None:
        if row.home != SERVER:
            super()._release(conn, row, error)
            return
        self._on_server(lambda server: server.execute(_RELEASE, {
            "row_id": row.id, "last_error": error, "now": utcnow()}))
        self._lane_link().touched.add(row.id)

    def _fail_unsent(self, conn: Connection, row: _Candidate, reason: str) -> bool:
        if self.link is None or self._only_here(conn, row.id):
            return super()._fail_unsent(conn, row, reason)
        if self._lane_link().server is None:
            self._pass(row.id)
            return False
        failed = self._on_server(lambda server: server.execute(_FAIL_UNSENT, {
            "row_id": row.id, "last_error": reason, "now": utcnow()}).rowcount)
        if failed != 1:
            self._passed_over(row)
            return False
        self.report.failed += 1
        self.report.failures.append((row.email, reason))
        self._on_server(lambda server: self._audit(
            server, row, "invitation.failed", {"status": "queued"},
            {"status": "failed", "error": reason}))
        self._lane_link().touched.add(row.id)
        return True

    def _commit(self, conn: Connection) -> None:
        """The server's part first; then its rows, as the server has them now, are copied
        here without journaling, with this lane's local writes."""
        link = self._lane_link()
        server = link.server
        if server is not None and server.in_transaction():
            touched = list(link.touched)

            def commit(server: Connection) -> list[dict[str, Any]]:
                rows = [dict(r) for r in server.execute(
                    select(INVITATION.c.id, *(INVITATION.c[c] for c in MIRRORED_COLUMNS))
                    .where(INVITATION.c.id.in_(touched))).mappings()] if touched else []
                server.commit()
                return rows

            rows = self._on_server(commit)
            link.touched.clear()
            link.unsaved.clear()
            if rows:
                with journal.applying(conn):
                    conn.execute(_MIRROR, [
                        {"row_id": r["id"], **{f"m_{c}": r[c] for c in MIRRORED_COLUMNS}}
                        for r in rows])
        conn.commit()

    def _rollback(self, conn: Connection) -> None:
        link = self._lane_link()
        if link.server is not None:
            with suppress(DBAPIError, OSError):
                link.server.rollback()
        link.touched.clear()
        link.unsaved.clear()
        conn.rollback()

    def _server_lost(self, conn: Connection, flight: _Flight, gone: _ServerGone) -> None:
        """The server stopped answering: this lane stops. Outcomes it could not commit there
        are kept here as delivery facts (pushed when the server answers again); a claim
        whose commit was lost is never sent (the server's lease recovers it as uncertain)."""
        link = self._lane_link()
        unsaved = list(link.unsaved)
        saved = {row.id for row, _ in unsaved}
        if flight.row is not None and flight.result is not None \
                and flight.row.id not in saved:
            unsaved.append((flight.row, self._outcome(flight.row, flight.result, self.clock())))
        self._rollback(conn)
        link.server = None
        self._server = None  # the rest of this run takes only rows the replica alone knows
        with self._write_lock:
            try:
                for row, outcome in unsaved:
                    self._write_outcome(conn, row, outcome)
                conn.commit()
            except Exception:
                conn.rollback()
        for row, outcome in unsaved:
            self._emit(row.email, outcome.status.value)
        flight.clear()
        text = f"The server stopped answering ({_one_line(gone.error)})"
        with self._budget_lock:
            self._lane_errors.append(text)
            if not self.report.error:
                self.report.error = (f"{text}; the invitations not sent yet wait for it and "
                                     "are sent once it answers again.")

    def _waiting_for_server(self) -> int:
        """Queued invitations of this run's scope that wait for the server to answer."""
        now = self.clock()
        try:
            with self.uow.engine.connect() as conn:
                return int(conn.execute(select(func.count()).select_from(INVITATION).where(
                    *self._scope(), INVITATION.c.status == InvitationStatus.QUEUED.value,
                    or_(INVITATION.c.next_attempt_at.is_(None),
                        INVITATION.c.next_attempt_at <= now),
                    ~suppression.is_suppressed_sql(self.organization_id,
                                                   INVITATION.c.email_normalized),
                    ~scheduled_later_sql(INVITATION.c.batch_id, now),
                    ~and_(*self._sendable()))).scalar() or 0)
        except DBAPIError:
            return 0


def _one_line(error: BaseException) -> str:
    text = " ".join(str(getattr(error, "orig", None) or error).split())
    return text[:200]


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
