"""Fresh databases on real PostgreSQL and MariaDB servers, one per test.

The servers come from two environment variables and nothing else:

    INVITE_DESK_TEST_POSTGRES_URL  postgresql+psycopg://user:pass@127.0.0.1:5432/db
    INVITE_DESK_TEST_MARIADB_URL   mysql+pymysql://user:pass@127.0.0.1:3306/db?charset=utf8mb4

The database named in the URL is only used to connect: every test gets its own uniquely named,
empty database (created through that connection, dropped afterwards), so the user needs
CREATEDB (PostgreSQL) or CREATE/DROP privileges (MariaDB). When a URL is unset the test is
skipped, unless INVITE_DESK_REQUIRE_SERVERS=1 (as in CI): then it fails, saying what to set.

Names carry the process id and a random part, so parallel pytest-xdist workers never share a
database. A test that wants a database at head (`any_migrated_engine`, `any_uow`) gets a copy
of a template its worker migrated once (ServerTemplates): PostgreSQL copies it with
`CREATE DATABASE ... TEMPLATE`, MariaDB replays the template's tables, rows and triggers. That
is what running every migration gives (tests/integration/test_test_databases.py proves it),
only without the several seconds MariaDB takes per migration run.

conftest.py loads this module through `pytest_plugins`.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import NoReturn

import pytest
from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.pool import NullPool

from invite_desk.services import db
from invite_desk.services.uow import UnitOfWork

POSTGRES_ENV = "INVITE_DESK_TEST_POSTGRES_URL"
MARIADB_ENV = "INVITE_DESK_TEST_MARIADB_URL"
REQUIRE_ENV = "INVITE_DESK_REQUIRE_SERVERS"

SERVER_ENVS = {"postgresql": POSTGRES_ENV, "mariadb": MARIADB_ENV}
DATABASE_PREFIX = "invite_desk_test_"


def servers_required() -> bool:
    return os.environ.get(REQUIRE_ENV, "").strip().lower() in ("1", "true", "yes")


def skip_or_fail(reason: str) -> NoReturn:
    """Skip the test, or fail it when INVITE_DESK_REQUIRE_SERVERS=1 (nothing may be skipped)."""
    if servers_required():
        pytest.fail(f"{reason} ({REQUIRE_ENV}=1 forbids skipping it)", pytrace=False)
    pytest.skip(reason)


def server_url(backend: str) -> URL:
    """The configured server URL for "postgresql" or "mariadb"; skips or fails when unset."""
    env = SERVER_ENVS[backend]
    raw = os.environ.get(env, "").strip()
    if not raw:
        skip_or_fail(f"{env} is not set: no {backend} server to test against")
    return db.normalize_url(raw)


def _admin_engine(url: URL) -> Engine:
    return create_engine(url, isolation_level="AUTOCOMMIT", poolclass=NullPool)


@contextmanager
def fresh_server_database(backend: str, *, template: str = "") -> Iterator[URL]:
    """Create an empty, uniquely named database on the server; drop it on the way out.
    `template` (PostgreSQL only): a copy of that database instead of an empty one.

    Yields its URL (password included). Engines on it must be disposed before leaving.
    """
    base = server_url(backend)
    name = f"{DATABASE_PREFIX}{os.getpid()}_{uuid.uuid4().hex[:10]}"
    admin = _admin_engine(base)
    problem = ""
    try:
        with admin.connect() as connection:
            if backend == "postgresql" and template:
                _create_from_template(connection, name, template)
            elif backend == "postgresql":
                connection.execute(
                    text(f"CREATE DATABASE \"{name}\" ENCODING 'UTF8' "
                         "LC_COLLATE 'C.UTF-8' LC_CTYPE 'C.UTF-8' TEMPLATE template0")
                )
            else:
                connection.execute(text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
    except OperationalError as exc:
        problem = str(exc.orig).strip()
    if problem:  # failed outside the except block: one clear line, no chained traceback
        admin.dispose()
        pytest.fail(
            f"Cannot create a test database on the {backend} server named by "
            f"{SERVER_ENVS[backend]} ({base.render_as_string(hide_password=True)}): {problem}",
            pytrace=False,
        )
    try:
        yield base.set(database=name)
    finally:
        _drop(admin, backend, name)
        admin.dispose()


def _create_from_template(connection: Connection, name: str, template: str) -> None:
    """CREATE DATABASE ... TEMPLATE needs the template free of other sessions; an autovacuum
    worker may visit it for a moment: try again shortly instead of failing the test."""
    deadline = time.monotonic() + 30
    while True:
        try:
            connection.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
            return
        except OperationalError as exc:
            if "is being accessed by other users" not in str(exc.orig) \
                    or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _drop(admin: Engine, backend: str, name: str) -> None:
    """Drop the test database. On PostgreSQL, `WITH (FORCE)` must terminate every session on
    it, and an autovacuum worker (after a test that wrote a lot) is not the test user's to
    terminate: wait for it to finish (seconds) instead of failing the test that just passed."""
    deadline = time.monotonic() + 60
    while True:
        try:
            with admin.connect() as connection:
                if backend == "postgresql":
                    connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                else:
                    connection.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
            return
        except ProgrammingError as exc:
            if "pg_signal_backend" not in str(exc.orig) or time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _url_string(url: URL) -> str:
    return url.render_as_string(hide_password=False)


BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    pytest.param("mariadb", id="mariadb", marks=pytest.mark.mariadb),
]
SERVER_BACKENDS = BACKENDS[1:]


class ServerTemplates:
    """This worker's migrated template database on each server, made on first use; copies of
    it are fresh databases at head. Dropped at the end of the session."""

    def __init__(self) -> None:
        self._stack = ExitStack()
        self._templates: dict[str, URL] = {}
        self._mariadb_script: list[str] | None = None

    def close(self) -> None:
        self._stack.close()

    def template(self, backend: str) -> URL:
        if backend not in self._templates:
            url = self._stack.enter_context(fresh_server_database(backend))
            engine = db.make_engine(_url_string(url))
            try:
                db.upgrade_to_head(engine)
            finally:
                engine.dispose()
            self._templates[backend] = url
        return self._templates[backend]

    @contextmanager
    def fresh_migrated(self, backend: str) -> Iterator[URL]:
        """A new database at head, a copy of the template; dropped on the way out."""
        template = self.template(backend)
        assert template.database
        if backend == "postgresql":
            with fresh_server_database(backend, template=template.database) as url:
                yield url
            return
        script = self._mariadb_clone_script(template)
        with fresh_server_database(backend) as url:
            engine = create_engine(url, poolclass=NullPool)
            try:
                with engine.begin() as connection:
                    for statement in script:
                        connection.exec_driver_sql(statement)
            finally:
                engine.dispose()
            yield url

    def _mariadb_clone_script(self, template: URL) -> list[str]:
        """Statements that rebuild the template in the current database: its tables (with
        their AUTO_INCREMENT counters), its rows, its triggers. Anything else a migration could
        make (views, sequences, routines, events) is refused here, so that this copy can
        never silently differ from a migrated database."""
        if self._mariadb_script is not None:
            return self._mariadb_script
        name = template.database
        engine = create_engine(template, poolclass=NullPool)
        script = ["SET FOREIGN_KEY_CHECKS = 0"]
        try:
            with engine.connect() as connection:
                kinds = connection.execute(text(
                    "SELECT table_name, table_type FROM information_schema.tables "
                    "WHERE table_schema = :db ORDER BY table_name"), {"db": name}).all()
                others = connection.execute(text(
                    "SELECT (SELECT COUNT(*) FROM information_schema.routines "
                    "        WHERE routine_schema = :db) "
                    "     + (SELECT COUNT(*) FROM information_schema.events "
                    "        WHERE event_schema = :db)"), {"db": name}).scalar_one()
                odd = [f"{t} ({kind})" for t, kind in kinds if kind != "BASE TABLE"]
                if odd or others:
                    raise RuntimeError(
                        "tests/db_servers.py cannot copy the migrated MariaDB template: it holds "
                        f"{', '.join(odd) or ''} {others} routines/events; teach "
                        "ServerTemplates._mariadb_clone_script to copy them")
                tables = [t for t, _ in kinds]
                for table in tables:
                    script.append(connection.exec_driver_sql(
                        f"SHOW CREATE TABLE `{name}`.`{table}`").one()[1])
                for table in tables:
                    if connection.exec_driver_sql(
                            f"SELECT 1 FROM `{name}`.`{table}` LIMIT 1").first():
                        script.append(f"INSERT INTO `{table}` SELECT * FROM `{name}`.`{table}`")
                triggers = connection.execute(text(
                    "SELECT trigger_name FROM information_schema.triggers "
                    "WHERE trigger_schema = :db ORDER BY action_order, trigger_name"),
                    {"db": name}).scalars().all()
                for trigger in triggers:
                    row = connection.exec_driver_sql(
                        f"SHOW CREATE TRIGGER `{name}`.`{trigger}`").one()
                    script.append(f"SET SESSION sql_mode = '{row[1]}'")
                    script.append(row[2])
        finally:
            engine.dispose()
        script.append("SET FOREIGN_KEY_CHECKS = 1")
        self._mariadb_script = script
        return script


@pytest.fixture(scope="session")
def server_templates() -> Iterator[ServerTemplates]:
    templates = ServerTemplates()
    yield templates
    templates.close()


@pytest.fixture(params=BACKENDS)
def any_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a fresh, empty database: a SQLite file, or a new database on each server."""
    backend: str = request.param
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'any-db.sqlite3'}"
        return
    with fresh_server_database(backend) as url:
        yield _url_string(url)


@pytest.fixture(params=SERVER_BACKENDS)
def server_db_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """The URL of a fresh, empty database on PostgreSQL and on MariaDB."""
    with fresh_server_database(request.param) as url:
        yield _url_string(url)


@pytest.fixture
def any_engine(any_db_url: str) -> Iterator[Engine]:
    """An engine on an empty (unmigrated) database of each backend."""
    engine = db.make_engine(any_db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def server_engine(server_db_url: str) -> Iterator[Engine]:
    """An engine on an empty (unmigrated) database on each server."""
    engine = db.make_engine(server_db_url)
    yield engine
    engine.dispose()


@pytest.fixture(params=BACKENDS)
def any_migrated_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a fresh database at head on each backend: a copy of this worker's migrated
    template (the SQLite one from conftest, or ServerTemplates on the servers)."""
    backend: str = request.param
    if backend == "sqlite":
        from tests.conftest import copy_sqlite

        target = tmp_path / "any-db.sqlite3"
        copy_sqlite(request.getfixturevalue("migrated_sqlite_template"), target)
        yield f"sqlite:///{target}"
        return
    server_url(backend)  # skip or fail before making a template when there is no server
    templates: ServerTemplates = request.getfixturevalue("server_templates")
    with templates.fresh_migrated(backend) as url:
        yield _url_string(url)


@pytest.fixture
def any_migrated_engine(any_migrated_db_url: str) -> Iterator[Engine]:
    """An engine on a fresh database at the newest schema, on each backend."""
    engine = db.make_engine(any_migrated_db_url)
    db.upgrade_to_head(engine)  # a no-op at head; a stale template could never be used
    yield engine
    engine.dispose()


@pytest.fixture
def any_uow(any_migrated_engine: Engine) -> UnitOfWork:
    """A unit of work on a migrated database of each backend."""
    return UnitOfWork(any_migrated_engine)
