"""Engines for the three supported databases, and the schema upgrade run at start-up."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import ConnectionPoolEntry

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"

SUPPORTED_BACKENDS = ("sqlite", "postgresql", "mysql", "mariadb")


class UnsupportedDatabase(ValueError):
    pass


def normalize_url(url: str | URL) -> URL:
    """Pick the drivers we ship (psycopg 3, PyMySQL) when the URL names only the backend."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend not in SUPPORTED_BACKENDS:
        raise UnsupportedDatabase(
            f"Unsupported database {backend!r}: use sqlite, postgresql or mariadb/mysql URLs."
        )
    driver = parsed.get_driver_name()
    if backend == "postgresql" and driver in ("", "psycopg2"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    elif backend in ("mysql", "mariadb") and driver in ("", "mysqldb"):
        parsed = parsed.set(drivername=f"{backend}+pymysql")
    if parsed.get_backend_name() in ("mysql", "mariadb") and "charset" not in parsed.query:
        parsed = parsed.update_query_dict({"charset": "utf8mb4"})
    return parsed


def _unicode_lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def _sqlite_pragmas(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()
    # SQLite's built-in lower() folds ASCII only ('Émile' stays 'Émile'); PostgreSQL and
    # MariaDB fold every letter. Searches compare lower(column) with Python's str.lower().
    dbapi_connection.create_function("lower", 1, _unicode_lower, deterministic=True)


def make_engine(url: str | URL, *, echo: bool = False) -> Engine:
    """An engine with per-backend settings; SQLite files get WAL and foreign keys."""
    parsed = normalize_url(url)
    # hide_parameters: a failing statement's error (and its log line) never shows the values
    # bound to it: addresses, names, password hashes, token hashes.
    kwargs: dict[str, Any] = {"echo": echo, "future": True, "hide_parameters": True}
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 10}
    else:
        kwargs["pool_pre_ping"] = True
        kwargs["pool_recycle"] = 1800
    engine = create_engine(parsed, **kwargs)
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        _install_sync_hooks(engine)
    return engine


def _install_sync_hooks(engine: Engine) -> None:
    """MariaDB/MySQL: every writer stamps its changes with the sync commit clock (issue 12)."""
    if engine.dialect.name in ("mysql", "mariadb"):
        from invite_desk.services.sync.capture import install_commit_clock

        install_commit_clock(engine)


def _alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["engine"] = engine
    return cfg


def head_revision() -> str:
    script = ScriptDirectory(str(MIGRATIONS_DIR))
    head = script.get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade_to_head(engine: Engine) -> bool:
    """Bring the schema to the newest revision. Returns True when anything was applied."""
    if current_revision(engine) == head_revision():
        return False
    command.upgrade(_alembic_config(engine), "head")
    return True
