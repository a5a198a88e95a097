"""Fresh databases on real PostgreSQL and MariaDB servers, one per test.

The servers come from two environment variables and nothing else:

    INVITE_DESK_TEST_POSTGRES_URL  postgresql+psycopg://user:pass@127.0.0.1:5432/db
    INVITE_DESK_TEST_MARIADB_URL   mysql+pymysql://user:pass@127.0.0.1:3306/db?charset=utf8mb4

The database named in the URL is only used to connect: every test gets its own uniquely named,
empty database (created through that connection, dropped afterwards), so the user needs
CREATEDB (PostgreSQL) or CREATE/DROP privileges (MariaDB). When a URL is unset the test is
skipped, unless INVITE_DESK_REQUIRE_SERVERS=1 (as in CI): then it fails, saying what to set.

conftest.py loads this module through `pytest_plugins`.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import pytest
from sqlalchemy import Engine, create_engine, text
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
def fresh_server_database(backend: str) -> Iterator[URL]:
    """Create an empty, uniquely named database on the server; drop it on the way out.

    Yields its URL (password included). Engines on it must be disposed before leaving.
    """
    base = server_url(backend)
    name = f"{DATABASE_PREFIX}{os.getpid()}_{uuid.uuid4().hex[:10]}"
    admin = _admin_engine(base)
    problem = ""
    try:
        with admin.connect() as connection:
            if backend == "postgresql":
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


@pytest.fixture
def any_migrated_engine(any_engine: Engine) -> Engine:
    """`any_engine`, upgraded to the newest schema."""
    db.upgrade_to_head(any_engine)
    return any_engine


@pytest.fixture
def any_uow(any_migrated_engine: Engine) -> UnitOfWork:
    """A unit of work on a migrated database of each backend."""
    return UnitOfWork(any_migrated_engine)
