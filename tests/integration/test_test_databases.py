"""The fixtures' copies of a migrated template are what running every migration gives: same
tables, columns, indexes, constraints, triggers and rows, on every backend. (The fixtures copy
a template instead of migrating per test only to save time: tests/db_servers.py.)"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, inspect, text

from invite_desk.services import db
from invite_desk.services.models import Organization
from invite_desk.services.uow import UnitOfWork
from tests.db_servers import _url_string, fresh_server_database
from tests.integration.test_migrations import snapshot


def _triggers(engine: Engine) -> list[tuple[str, ...]]:
    with engine.connect() as connection:
        backend = engine.dialect.name
        if backend == "sqlite":
            rows = connection.execute(text(
                "SELECT name, tbl_name, sql FROM sqlite_master WHERE type = 'trigger'"))
        elif backend == "postgresql":
            rows = connection.execute(text(
                "SELECT tgname, tgrelid::regclass::text, pg_get_triggerdef(oid) "
                "FROM pg_trigger WHERE NOT tgisinternal"))
        else:
            rows = connection.execute(text(
                "SELECT trigger_name, event_object_table, action_timing, event_manipulation, "
                "action_statement, sql_mode FROM information_schema.triggers "
                "WHERE trigger_schema = DATABASE()"))
        return sorted(tuple(str(v) for v in row) for row in rows)


def _rows(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    with engine.connect() as connection:
        return {table: sorted(tuple(map(str, row)) for row in connection.execute(
                    text(f"SELECT * FROM {engine.dialect.identifier_preparer.quote(table)}")))
                for table in inspect(engine).get_table_names()}


def _picture(engine: Engine) -> dict[str, Any]:
    return {"schema": snapshot(engine), "triggers": _triggers(engine), "rows": _rows(engine)}


@pytest.fixture
def migrated_reference(any_migrated_engine: Engine, tmp_path: Path) -> Iterator[Engine]:
    """A database of the copy's backend, brought to head by running the migrations."""
    backend = {"sqlite": "sqlite", "postgresql": "postgresql"}.get(
        any_migrated_engine.dialect.name, "mariadb")
    if backend == "sqlite":
        engine = db.make_engine(f"sqlite:///{tmp_path / 'reference.sqlite3'}")
        db.upgrade_to_head(engine)
        yield engine
        engine.dispose()
        return
    with fresh_server_database(backend) as url:
        engine = db.make_engine(_url_string(url))
        db.upgrade_to_head(engine)
        yield engine
        engine.dispose()


def test_a_copy_of_the_template_is_a_freshly_migrated_database(
    any_migrated_engine: Engine, migrated_reference: Engine,
) -> None:
    assert db.current_revision(any_migrated_engine) == db.head_revision()
    copy, reference = _picture(any_migrated_engine), _picture(migrated_reference)
    assert copy["schema"] and reference["rows"]["alembic_version"]
    assert copy == reference


def test_copies_are_independent_of_each_other_and_of_the_template(any_uow: UnitOfWork) -> None:
    """Writes to one test's database are not in the next test's copy."""
    with any_uow:
        assert any_uow.session.query(Organization).count() == 0
        any_uow.session.add(Organization(name=f"Pid {os.getpid()}"))
        any_uow.commit()
    with any_uow:
        assert any_uow.session.query(Organization).count() == 1


def test_and_again_the_next_copy_is_empty(any_uow: UnitOfWork) -> None:
    with any_uow:
        assert any_uow.session.query(Organization).count() == 0
