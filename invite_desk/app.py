"""The one composition root: builds the engine, unit of work and credential store, and hands
them to the windows, the portal and the command line."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DatabaseError, NoSuchModuleError, OperationalError

from invite_desk.services import db, local_config
from invite_desk.services.credentials import (
    CredentialStore,
    CredentialStoreError,
    KeyringCredentialStore,
    MemoryCredentialStore,
    resolve_database_url,
    without_password,
)
from invite_desk.services.uow import UnitOfWork

if TYPE_CHECKING:
    from invite_desk.services.operator import Operator
    from invite_desk.services.sync.replica import Replica

log = logging.getLogger(__name__)

URL_EXAMPLES = ("sqlite:///PATH/TO/FILE.sqlite3, postgresql://USER@HOST/DBNAME or "
                "mariadb://USER@HOST/DBNAME")


class DatabaseUnavailable(Exception):
    """The database cannot be opened: a malformed URL, an unsupported backend, a server that
    does not answer or refuses the login, or a SQLite file that does not exist (and may not be
    created). The message is one line a person can act on; it never carries a password."""


@dataclass
class AppContext:
    engine: Engine
    uow: UnitOfWork
    credentials: CredentialStore
    database_label: str  # the URL without its password, for the status bar and logs
    # Replica mode (the desktop on a PostgreSQL/MariaDB server): engine and uow are the
    # replica's, and this is the replica the sync controller runs rounds of.
    replica: Replica | None = None

    def dispose(self) -> None:
        if self.replica is not None:
            self.replica.close()
        self.engine.dispose()


REMOTE_BACKENDS = ("postgresql", "mysql", "mariadb")


def is_remote(database_url: str | URL | None) -> bool:
    """Whether `database_url` names a PostgreSQL or MariaDB server (replica mode for the
    desktop), as opposed to a SQLite file or the default."""
    if not database_url:
        return False
    return _parsed(database_url).get_backend_name() in REMOTE_BACKENDS


def remembered_remote() -> str | None:
    """The server the desktop was last started on with --db (config.json, no password), if
    it is a PostgreSQL/MariaDB server: a plain `invite-desk` opens its replica again."""
    url = local_config.read_config().get("database_url")
    if not isinstance(url, str):
        return None
    try:
        return url if is_remote(url) else None
    except DatabaseUnavailable:
        return None


@dataclass
class ReplicaLauncher:
    """The desktop on a server, before anyone signed in: which replica to open depends on who
    signs in. `sign_in` opens (the first time: makes) that operator's replica and signs them
    in against it; `context()` is then the AppContext the windows work on."""

    remote_url: URL  # as given; its password (if any) goes to the keyring on first use
    database_label: str
    credentials: CredentialStore
    replica: Replica | None = None
    _opened: dict[str, Replica] = field(default_factory=dict)
    _setup_engine: Engine | None = None

    def sign_in(self, email: str, password: str, new_password: str | None = None) -> Operator:
        from invite_desk.services import auth
        from invite_desk.services.sync.replica import Replica

        key = auth.normalize_email(email)
        replica = self._opened.get(key)
        if replica is None:
            replica = Replica.open(self.remote_url, email, self.credentials, password=password,
                                   new_password=new_password)
            self._opened[key] = replica
            if replica.first_snapshot is not None and new_password:
                password, new_password = new_password, None  # changed on the server already
        operator = replica.sign_in(password, new_password)
        self.replica = replica
        return operator

    def server_setup_uow(self) -> UnitOfWork | None:
        """A unit of work on the server when it answers and holds no organization yet (the
        desktop's first start on a new server shows the setup dialog there); else None."""
        from invite_desk.services import auth
        from invite_desk.services.sync.replica import (
            is_offline_error,
            replicas_of,
            with_timeouts,
        )

        if replicas_of(self.database_label):  # this computer has signed in there before
            return None
        connect_url, _ = resolve_database_url(self.remote_url, self.credentials)
        engine = db.make_engine(with_timeouts(db.normalize_url(connect_url)))
        try:
            db.upgrade_to_head(engine)
            uow = UnitOfWork(engine)
            if auth.needs_setup(uow):
                self._setup_engine = engine
                return uow
        except Exception as exc:
            if not is_offline_error(exc):
                raise
            log.info("the server does not answer: %s", _one_line(exc))
        engine.dispose()
        return None

    def context(self) -> AppContext:
        replica = self.replica
        if replica is None:
            raise RuntimeError("sign in first")
        return AppContext(engine=replica.engine, uow=replica.uow, credentials=self.credentials,
                          database_label=f"{self.database_label} (replica on this computer)",
                          replica=replica)

    def dispose(self) -> None:
        if self._setup_engine is not None:
            self._setup_engine.dispose()
            self._setup_engine = None
        for replica in self._opened.values():
            replica.close()
        self._opened.clear()
        self.replica = None


def replica_launcher(database_url: str | URL, *, credentials: CredentialStore | None = None,
                     remember: bool = False) -> ReplicaLauncher:
    """Replica mode for the desktop on the server `database_url`: nothing is opened yet (the
    server may be away; a replica made before works without it). The remote password stays
    in the keyring only (resolve_database_url moves a password given in the URL there)."""
    store = credentials if credentials is not None else default_credentials()
    parsed = _parsed(database_url)
    _, public_url = resolve_database_url(parsed, store)
    label = public_url.render_as_string(hide_password=True)
    if remember:
        local_config.write_config({"database_url": label})
    return ReplicaLauncher(remote_url=public_url, database_label=label, credentials=store)


class _KeyringOrMemory:
    """The OS keyring, falling back to this session's memory the first time it fails, so that
    a machine without a keyring still works on SQLite. One warning, when a password is first
    kept in memory only (a failed look-up alone loses nothing, so it is not worth a warning
    in front of, say, a command line's error message)."""

    def __init__(self) -> None:
        self._store: CredentialStore = KeyringCredentialStore()
        self._problem: CredentialStoreError | None = None
        self._warned = False

    def _fallback(self, exc: CredentialStoreError) -> None:
        log.info("%s; falling back to this session's memory.", exc)
        self._problem = exc
        self._store = MemoryCredentialStore()

    def get(self, key: str) -> str | None:
        try:
            return self._store.get(key)
        except CredentialStoreError as exc:
            self._fallback(exc)
            return None

    def set(self, key: str, secret: str) -> None:
        try:
            self._store.set(key, secret)
        except CredentialStoreError as exc:
            self._fallback(exc)
            self._store.set(key, secret)
        if self._problem is not None and not self._warned:
            self._warned = True
            log.warning("%s; passwords will be kept for this session only.", self._problem)

    def delete(self, key: str) -> None:
        try:
            self._store.delete(key)
        except CredentialStoreError as exc:
            self._fallback(exc)


def default_credentials() -> CredentialStore:
    return _KeyringOrMemory()


def _parsed(url: str | URL) -> URL:
    try:
        parsed = make_url(url)
        db.normalize_url(parsed)
    except db.UnsupportedDatabase as exc:
        raise DatabaseUnavailable(f"{exc} For example: {URL_EXAMPLES}.") from None
    except (ArgumentError, ValueError):
        raise DatabaseUnavailable(
            f"The database URL cannot be read; write it like {URL_EXAMPLES}.") from None
    return parsed


def parsed_url(url: str | URL) -> URL:
    """A database URL checked and with our drivers, or DatabaseUnavailable in one line."""
    return _parsed(url)


def sqlite_file(url: URL) -> Path | None:
    """The file a SQLite URL names (None: in memory, or not SQLite)."""
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(url.database).expanduser().absolute()


def _check_sqlite_file(url: URL, *, create: bool) -> None:
    path = sqlite_file(url)
    if path is None or create or path.exists():
        return
    folder = "" if path.parent.is_dir() else f" (and the folder {path.parent} does not exist)"
    raise DatabaseUnavailable(
        f"There is no database at {path}{folder}. Check the path, or add --create to make a "
        "new, empty database there.")


def _one_line(error: BaseException) -> str:
    text = re.sub(r"\s+", " ", str(getattr(error, "orig", None) or error)).strip()
    return text[:300] + ("…" if len(text) > 300 else "")


def build(
    database_url: str | URL | None = None,
    *,
    credentials: CredentialStore | None = None,
    migrate: bool = True,
    remember: bool = False,
    create: bool = False,
) -> AppContext:
    """Connect to the database (default: the embedded SQLite file) and upgrade it to head.

    A SQLite file that does not exist is created only for the default database (the first
    start) or with `create=True` (`--create`, and `demo`): a mistyped path is refused with
    DatabaseUnavailable instead of silently becoming a new, empty database. So are malformed
    URLs, unsupported backends and servers that cannot be reached or refuse the login.
    """
    store = credentials if credentials is not None else default_credentials()
    url = database_url or local_config.default_database_url()
    parsed = _parsed(url)
    _check_sqlite_file(parsed, create=create or not database_url)
    if parsed.password and parsed.get_backend_name() != "sqlite":
        # Tried first; moved to the keyring once it has opened the database (below).
        connect_url, public_url = parsed, without_password(parsed)
    else:
        connect_url, public_url = resolve_database_url(parsed, store)
    label = public_url.render_as_string(hide_password=True)
    try:
        engine = db.make_engine(connect_url)
    except (NoSuchModuleError, ImportError) as exc:
        raise DatabaseUnavailable(f"Cannot use {label}: its driver is not available "
                                  f"({_one_line(exc)}).") from None
    except OSError as exc:  # the SQLite file's folder cannot be made
        path = sqlite_file(parsed)
        where = f"the folder {path.parent} cannot be made" if path else "its folder"
        raise DatabaseUnavailable(f"Cannot create the database {label}: {where} "
                                  f"({exc.strerror or exc}).") from None
    if migrate:
        try:
            db.upgrade_to_head(engine)
        except OperationalError as exc:
            engine.dispose()
            raise DatabaseUnavailable(f"Cannot open the database {label}: {_one_line(exc)}") \
                from None
        except DatabaseError as exc:
            if parsed.get_backend_name() != "sqlite":
                raise
            engine.dispose()  # e.g. "file is not a database"
            raise DatabaseUnavailable(f"Cannot open the database {label}: {_one_line(exc)}") \
                from None
    if connect_url is parsed:
        resolve_database_url(parsed, store)  # the password works: into the keyring with it
    if remember and database_url:
        local_config.write_config({"database_url": label})
    return AppContext(engine=engine, uow=UnitOfWork(engine), credentials=store,
                      database_label=label)
