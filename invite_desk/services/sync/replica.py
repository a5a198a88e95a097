"""A replica: this computer's SQLite copy of one organization's server, for one operator.

`Replica.open` makes it the first time (the server must answer and the operator sign in
there: the snapshot is what *they* may see) and later opens it without the server, so the
desktop starts and works offline. `round()` pushes the commands made here, then pulls what
changed on the server; a server that does not answer is a status ("offline since 10:42"),
not an error. docs/architecture.md, "Offline replica and sync", is the contract.
"""

from __future__ import annotations

import logging
import re
import threading
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Engine, delete, event, insert, select, update
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from invite_desk.services import audit, auth, db, local_config
from invite_desk.services.auth import _DUMMY_HASH
from invite_desk.services.credentials import CredentialStore, resolve_database_url
from invite_desk.services.errors import AuthenticationFailed, DomainError, PermissionDenied
from invite_desk.services.invitations.sending import ServerLink
from invite_desk.services.models import Base, Member, MemberStatus, utcnow
from invite_desk.services.operator import Operator, operator_for, refreshed
from invite_desk.services.roles import Role
from invite_desk.services.sync import capture, journal, pull, push
from invite_desk.services.sync.journal import (
    SYNC_STATE,  # the sync tables, defined once
    RejectedCommand,
)
from invite_desk.services.sync.pull import PullReport
from invite_desk.services.sync.push import PushReport
from invite_desk.services.uow import UnitOfWork

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 3  # seconds: an unreachable server is reported quickly, not after minutes
READ_TIMEOUT = 60  # MariaDB: a server that stops answering mid-round (PostgreSQL: keepalives)
MAX_BATCHES = 10  # push and pull batches per round; the rest waits for the next round


class ReplicaUnavailable(DomainError):
    """The replica cannot be made or opened (the first open needs the server)."""


@dataclass(frozen=True)
class RoundReport:
    pulled: PullReport | None
    pushed: PushReport | None
    online: bool
    error: str = ""
    kinds: frozenset[str] = frozenset()  # hub kinds the pull changed (views to reload)

    @property
    def more(self) -> bool:
        """Work was left for the next round (a round is bounded)."""
        return bool((self.pulled and self.pulled.more) or (self.pushed and self.pushed.more))


@dataclass(frozen=True)
class SyncStatus:
    online: bool  # the last round reached the server
    last_sync: datetime | None  # when a round last succeeded (UTC)
    waiting: int  # commands made here, not yet answered by the server
    rejected: int  # refused commands not yet dismissed
    error: str = ""  # why the last round failed ("" when it did not)
    offline_since: datetime | None = None  # the last moment the server was known reachable
    notes: int = 0  # applied commands with a note (closed as a duplicate, replaced settings)
    checked: bool = True  # a round has run since the replica was opened


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._@+-]+", "_", text).strip("_") or "_"


def replica_path(remote_label: str, operator_email: str) -> Path:
    """`<user data dir>/replicas/<host>-<database>-<operator>.sqlite3` (the port joins the
    host when the URL names one, so two servers on one host keep two files)."""
    url = make_url(remote_label)
    host = url.host or "localhost"
    if url.port:
        host = f"{host}_{url.port}"
    name = f"{_safe(host)}-{_safe(url.database or 'db')}-{_safe(auth.normalize_email(operator_email))}"
    return local_config.data_dir() / "replicas" / f"{name}.sqlite3"


def replicas_of(remote_label: str) -> list[Path]:
    """The replica files this computer holds for the server `remote_label` (any operator)."""
    sample = replica_path(remote_label, "x@x")
    prefix = sample.name[:-len("x@x.sqlite3")]
    return sorted(p for p in sample.parent.glob("*.sqlite3") if p.name.startswith(prefix))


def with_timeouts(url: URL) -> URL:
    """The server URL with short connect timeouts and dead-peer detection, so a round against
    a server that went away fails in seconds instead of hanging a background thread."""
    url = db.normalize_url(url)
    if url.get_backend_name() == "postgresql":
        extra = {"connect_timeout": str(CONNECT_TIMEOUT), "keepalives": "1",
                 "keepalives_idle": "10", "keepalives_interval": "3", "keepalives_count": "3",
                 "tcp_user_timeout": str(READ_TIMEOUT * 1000)}
    else:
        # PyMySQL's connect_timeout covers the TCP connect only: the greeting and the sign-in
        # are reads, so reads start with the short timeout too (a dead network fails in
        # seconds) and get the long one once connected (_longer_reads).
        extra = {"connect_timeout": str(CONNECT_TIMEOUT), "read_timeout": str(CONNECT_TIMEOUT),
                 "write_timeout": str(READ_TIMEOUT)}
    return url.update_query_dict({k: v for k, v in extra.items() if k not in url.query})


def _longer_reads(dbapi_connection: Any, _record: object) -> None:
    """MariaDB: once connected, a query may take longer than a handshake."""
    if hasattr(dbapi_connection, "_read_timeout"):
        dbapi_connection._read_timeout = READ_TIMEOUT


def one_line(error: BaseException) -> str:
    """An error as one line a person can read (never the statement's bound values: the
    engines hide them)."""
    if isinstance(error, DomainError):
        return error.message
    text = re.sub(r"\s+", " ", str(getattr(error, "orig", None) or error)).strip()
    text = re.sub(r"\(Background on this error at: [^)]*\)", "", text).strip()
    return text[:300] + ("…" if len(text) > 300 else "")


def is_offline_error(error: BaseException) -> bool:
    """The server could not be reached or the connection dropped (not the server's answer)."""
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return True
    return isinstance(error, (OperationalError, InterfaceError, OSError, TimeoutError))


class Replica:
    """One replica file and the server it mirrors. `engine` / `uow` are the replica's: what
    the desktop works on. Thread-safe: rounds are serialized; status() may run beside one."""

    def __init__(self, *, path: Path, engine: Engine, remote_url: URL, remote_label: str,
                 operator_email: str) -> None:
        self.path = path
        self.engine = engine
        self.uow = UnitOfWork(engine)
        self.remote_label = remote_label
        self.operator_email = operator_email
        self._remote_url = remote_url  # password included: never shown, never logged
        self._remote: Engine | None = None
        self._round_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._online: bool | None = None  # None: no round yet since opening
        self._server_checked = False
        self.first_snapshot: PullReport | None = None  # made by this open()

    def __repr__(self) -> str:  # no password, ever
        return f"Replica({self.remote_label!r}, {self.operator_email!r}, {str(self.path)!r})"

    # -- opening --------------------------------------------------------------------------

    @classmethod
    def open(cls, remote_url: str | URL, operator_email: str, credentials: CredentialStore,
             *, password: str | None = None, new_password: str | None = None) -> Replica:
        """This operator's replica of the server at `remote_url`.

        The first time (no replica file, or its first snapshot never finished) the server
        must answer and `password` must sign the operator in there; the replica is then made
        at head with its journal and filled with a snapshot of what the operator may see.
        Later opens touch neither the server nor the password: sign in with `sign_in()`
        against the replica's copy of the operator's member row."""
        connect_url, public_url = resolve_database_url(remote_url, credentials)
        if connect_url.get_backend_name() not in ("postgresql", "mysql", "mariadb"):
            raise ReplicaUnavailable("A replica mirrors a PostgreSQL or MariaDB server; "
                                     f"{public_url.get_backend_name()} is not one.")
        label = public_url.render_as_string(hide_password=True)
        path = replica_path(label, operator_email)
        engine = db.make_engine(f"sqlite:///{path}")
        replica = cls(path=path, engine=engine, remote_url=with_timeouts(connect_url),
                      remote_label=label, operator_email=auth.normalize_email(operator_email))
        made = not path.exists()
        try:
            db.upgrade_to_head(engine)
            journal.install_journal(engine)
            if not replica._snapshot_done():
                replica._first_fill(password, new_password)
        except BaseException:
            replica.close()
            if made:  # no half-made copy stays behind (a wrong password copies nothing)
                for leftover in (path, path.with_name(path.name + "-wal"),
                                 path.with_name(path.name + "-shm")):
                    leftover.unlink(missing_ok=True)
            raise
        return replica

    def _snapshot_done(self) -> bool:
        with self.engine.connect() as connection:
            row = connection.execute(select(SYNC_STATE.c.snapshot_done, SYNC_STATE.c.operator_id)
                                     .where(SYNC_STATE.c.id == 1)).first()
        return row is not None and bool(row.snapshot_done) and row.operator_id is not None

    def _first_fill(self, password: str | None, new_password: str | None) -> None:
        if not password:
            raise ReplicaUnavailable(
                "This computer has no copy of the organization's data for "
                f"{self.operator_email} yet: sign in once while the server answers.")
        remote = self.remote()
        try:
            db.upgrade_to_head(remote)
            server_uow = UnitOfWork(remote)
            if new_password:
                operator = auth.sign_in_with_new_password(server_uow, self.operator_email,
                                                          password, new_password)
            else:
                operator = auth.sign_in(server_uow, self.operator_email, password)
        except DomainError:
            raise
        except Exception as exc:
            if not is_offline_error(exc):
                raise
            self._forget_connections()
            raise ReplicaUnavailable(
                f"Cannot reach the server {self.remote_label} ({one_line(exc)}). The first "
                "sign-in on this computer needs the server; later ones work offline.") \
                from None
        self._server_checked = True
        with self.engine.begin() as connection:
            connection.execute(delete(SYNC_STATE))
            connection.execute(insert(SYNC_STATE).values(
                id=1, replica_id=uuid.uuid4(), remote_label=self.remote_label,
                operator_id=operator.member_id, cursor="", snapshot_done=False,
                last_error=""))
        try:
            self.first_snapshot = pull.snapshot(remote, self.engine)
        except Exception as exc:
            if not is_offline_error(exc):
                raise
            self._forget_connections()
            raise ReplicaUnavailable(
                f"The server {self.remote_label} stopped answering while this computer's copy "
                f"was being made ({one_line(exc)}). Sign in again when it answers.") from None
        self._record(error="", now=utcnow())
        self._online = True

    def sign_in(self, password: str, new_password: str | None = None) -> Operator:
        """Sign the replica's operator in against its own member row (works offline). A
        password changed elsewhere since the last sync is checked on the server when it
        answers, and a round then brings the new one here."""
        def attempt() -> Operator:
            if new_password:
                return auth.sign_in_with_new_password(self.uow, self.operator_email, password,
                                                      new_password)
            return auth.sign_in(self.uow, self.operator_email, password)

        try:
            return attempt()
        except AuthenticationFailed:
            if new_password or not self._password_changed_on_server(password):
                raise
        return attempt()

    def check_password(self, password: str) -> Operator:
        """The replica's operator if `password` is theirs, without writing anything (a
        headless round must not make a sign-in command of its own each time); a password
        changed elsewhere is checked on the server, as in sign_in."""
        try:
            return self._check_password(password)
        except AuthenticationFailed:
            if not self._password_changed_on_server(password):
                raise
        return self._check_password(password)

    def _password_changed_on_server(self, password: str) -> bool:
        """Whether `password` signs the operator in on the server (then a round has brought
        their member row here); False when it does not, or the server does not answer."""
        try:
            auth.sign_in(UnitOfWork(self.remote()), self.operator_email, password)
        except DomainError:
            return False
        except Exception as exc:
            if not is_offline_error(exc):
                raise
            self._forget_connections()
            return False
        # The server's hash is copied now rather than waiting for a round to bring the row
        # (on PostgreSQL another database's open transaction can hold the pull back): the
        # copy is not journaled, and the row's next pull carries the same values.
        member = Base.metadata.tables[Member.__tablename__]
        wanted = (member.c.password_hash, member.c.must_change_password, member.c.status)
        try:
            with self.remote().connect() as server:
                row = server.execute(select(member.c.id, *wanted).where(
                    member.c.email_normalized == self.operator_email)).first()
        except Exception as exc:
            if not is_offline_error(exc):
                raise
            return False
        if row is None:
            return False
        with self.engine.begin() as connection, journal.applying(connection):
            connection.execute(update(member).where(member.c.id == row.id).values(
                password_hash=row.password_hash, must_change_password=row.must_change_password,
                status=row.status))
        return True

    def _check_password(self, password: str) -> Operator:
        with self.uow as uow:
            member = uow.session.scalar(select(Member).where(
                Member.email_normalized == self.operator_email).limit(1))
            stored = member.password_hash if member is not None \
                and member.status == MemberStatus.ACTIVE.value else None
            try:
                PasswordHasher().verify(stored or _DUMMY_HASH, password)
            except (VerificationError, InvalidHashError):
                raise AuthenticationFailed() from None
            if member is None or stored is None:
                raise AuthenticationFailed()
            return operator_for(uow.session, member)

    # -- the server ---------------------------------------------------------------------

    def remote(self) -> Engine:
        """The engine on the server (made lazily; connecting happens in a round)."""
        with self._state_lock:
            if self._remote is None:
                self._remote = db.make_engine(self._remote_url)
                if self._remote.dialect.name in ("mysql", "mariadb"):
                    event.listen(self._remote, "connect", _longer_reads)
            return self._remote

    def remote_uow(self) -> UnitOfWork:
        """A unit of work on the server itself (headless commands that act there)."""
        return UnitOfWork(self.remote())

    def notification_engine(self) -> Engine | None:
        """Where the notification emails are claimed and sent: the server, while the last
        round reached it; None when it did not (or no round ran yet), and the queue waits.
        Never the replica: its copy of a queued row is also on the server, where
        `invite-desk notify`, `invite-desk send` and other desktops drain it. No connection is
        made here (safe on the GUI thread)."""
        with self._state_lock:
            online = self._online
        return self.remote() if online else None

    def send_link(self) -> ServerLink:
        """How the outbox's sender claims invitations on the server (exactly once beside
        `invite-desk send` and other desktops): the server while the last round reached it,
        the round lock (no push runs while a row only this replica knows is claimed here),
        and a push before sending."""
        return ServerLink(engine=self.notification_engine, exclusive=lambda: self._round_lock,
                          push=self.push_now)

    def push_now(self) -> bool:
        """Push the waiting commands now (before a send); False when the server did not
        answer (then the status says offline, as after a round)."""
        with self._round_lock:
            try:
                remote = self.remote()
                if not self._server_checked:
                    db.upgrade_to_head(remote)
                    self._server_checked = True
                self._push_all(remote)
            except Exception as exc:
                if not is_offline_error(exc):
                    raise
                self._forget_connections()
                self._online = False
                return False
            self._online = True
            return True

    def _forget_connections(self) -> None:
        """Drop pooled server connections: after an outage they are dead."""
        with self._state_lock:
            if self._remote is not None:
                self._remote.dispose()

    # -- rounds -------------------------------------------------------------------------

    def round(self) -> RoundReport:
        """Push the commands made here, then pull what changed on the server (each loops
        while more is waiting, bounded). Never raises for a server that cannot be reached:
        the report says offline, and the sync state records the attempt and its error."""
        with self._round_lock:
            now = utcnow()
            pushed: PushReport | None = None
            pulled: PullReport | None = None
            try:
                remote = self.remote()
                if not self._server_checked:
                    db.upgrade_to_head(remote)
                    self._server_checked = True
                pushed = self._push_all(remote)
                pulled = self._pull_all(remote)
            except Exception as exc:
                offline = is_offline_error(exc)
                if offline:
                    self._forget_connections()
                    message = f"Cannot reach the server: {one_line(exc)}"
                else:
                    if not isinstance(exc, DomainError):
                        log.exception("sync round failed")
                    message = one_line(exc)
                self._record(error=message, now=now)
                self._online = not offline
                kinds = pulled.kinds if pulled is not None else frozenset()
                return RoundReport(pulled, pushed, online=not offline, error=message,
                                   kinds=kinds)
            self._record(error="", now=now)
            self._online = True
            return RoundReport(pulled, pushed, online=True, kinds=pulled.kinds)

    def _push_all(self, remote: Engine) -> PushReport:
        total = PushReport(0, 0, (), False)
        for _ in range(MAX_BATCHES):
            report = push.push_pending(remote, self.engine)
            total = PushReport(total.applied + report.applied, total.rejected + report.rejected,
                               total.reasons + report.reasons, report.more)
            if not report.more:
                break
        return total

    def _pull_all(self, remote: Engine) -> PullReport:
        total: PullReport | None = None
        for _ in range(MAX_BATCHES):
            report = pull.pull_round(remote, self.engine)
            total = report if total is None else _merged(total, report)
            if not report.more:
                break
        assert total is not None
        return total

    def _record(self, *, error: str, now: datetime) -> None:
        values: dict[str, object] = {"last_attempt_at": now, "last_error": error}
        if not error:
            values["last_pull_at"] = now  # the replica was in step with the server then
        with self.engine.begin() as connection:
            connection.execute(update(SYNC_STATE).where(SYNC_STATE.c.id == 1).values(**values))

    # -- status -------------------------------------------------------------------------

    def status(self) -> SyncStatus:
        """What the status bar shows: online or since when offline, commands waiting,
        commands refused (until dismissed)."""
        with self.engine.connect() as connection:
            row = connection.execute(select(
                SYNC_STATE.c.last_pull_at, SYNC_STATE.c.last_attempt_at,
                SYNC_STATE.c.last_error).where(SYNC_STATE.c.id == 1)).first()
        waiting = journal.pending_count(self.engine)
        answers = journal.rejected(self.engine)
        refused = sum(1 for a in answers if not a.applied)
        error = (row.last_error or "") if row is not None else ""
        last_sync = row.last_pull_at if row is not None else None
        online = self._online if self._online is not None else not error
        return SyncStatus(online=online, last_sync=last_sync, waiting=waiting, rejected=refused,
                          error=error, offline_since=None if online else last_sync,
                          notes=len(answers) - refused, checked=self._online is not None)

    def rejected(self) -> list[RejectedCommand]:
        return journal.rejected(self.engine)

    def dismiss(self, command_id: uuid.UUID) -> None:
        journal.dismiss(self.engine, command_id)

    def close(self) -> None:
        self._forget_connections()
        self.engine.dispose()


def _merged(a: PullReport, b: PullReport) -> PullReport:
    tables = dict(a.tables)
    for name, count in b.tables.items():
        tables[name] = tables.get(name, 0) + count
    return replace(b, applied=a.applied + b.applied, deleted=a.deleted + b.deleted,
                   tables=tables, kinds=a.kinds | b.kinds, snapshot=a.snapshot or b.snapshot)


# -- the server's change log ---------------------------------------------------------------

DEFAULT_PRUNE_DAYS = 30


@dataclass(frozen=True)
class PruneResult:
    deleted: int
    older_than: datetime


def prune_change_log(uow: UnitOfWork, operator: Operator, days: int = DEFAULT_PRUNE_DAYS, *,
                     now: datetime | None = None) -> PruneResult:
    """Delete the server's change-log entries older than `days` (organization admins). A
    replica whose cursor is older than what is left starts over with a fresh snapshot."""
    if days < 1:
        raise DomainError("Keep at least one day of the change log (--prune 1 or more).")
    moment = (now or utcnow()) - timedelta(days=days)
    with uow:
        session = uow.session
        current = refreshed(session, operator)
        if current.role < Role.ADMIN_TENANT:
            raise PermissionDenied("prune the sync change log", Role.ADMIN_TENANT.name)
        if uow.backend == "sqlite":
            raise DomainError("A SQLite database has no sync change log to prune.")
        deleted = capture.prune(session.connection(), moment)
        audit.record(session, organization_id=current.organization_id,
                     actor_id=current.member_id, action="sync.prune", entity_type="sync_change",
                     after={"older_than": moment.isoformat(), "deleted": deleted})
        uow.commit()
    return PruneResult(deleted=deleted, older_than=moment)
