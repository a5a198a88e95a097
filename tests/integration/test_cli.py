"""The command line as a user runs it: `invite-desk demo`, and starting twice on one database."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import Engine, func, inspect, select, text

from invite_desk import app, cli
from invite_desk.services import auth, db
from invite_desk.services.credentials import MemoryCredentialStore
from invite_desk.services.demo import DEMO_ADMIN_EMAIL, DEMO_PASSWORD
from invite_desk.services.models import Base, Member
from invite_desk.services.roles import Role
from invite_desk.services.uow import UnitOfWork

SIGN_IN_LINE = re.compile(r"^Sign in as (\S+@\S+) with password (\S+)\s+\(.*, (\w+)\)$", re.M)


@pytest.fixture(autouse=True)
def _no_real_keyring(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI would put server passwords in the user's keyring; tests keep them in memory."""
    monkeypatch.setattr(app, "default_credentials", MemoryCredentialStore)


def database_state(engine: Engine) -> dict[str, Any]:
    """Schema (tables, columns, indexes), revision and the number of rows in every table."""
    inspector = inspect(engine)
    state: dict[str, Any] = {"revision": db.current_revision(engine)}
    with engine.connect() as connection:
        for table in sorted(inspector.get_table_names()):
            state[table] = (
                [(c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(table)],
                sorted((i["name"], tuple(i["column_names"])) for i in inspector.get_indexes(table)),
                connection.scalar(select(func.count()).select_from(text(table))),
            )
    return state


def test_demo_prints_how_to_sign_in(sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--db", sqlite_url, "demo"]) == 0

    out = capsys.readouterr().out
    assert f"Sign in as {DEMO_ADMIN_EMAIL} with password {DEMO_PASSWORD}" in out
    lines = SIGN_IN_LINE.findall(out)
    assert {role for _, _, role in lines} == {role.name for role in Role}
    assert "created" in out and "(300 members added)" in out
    assert sqlite_url in out  # which database it went to

    engine = db.make_engine(sqlite_url)
    try:
        uow = UnitOfWork(engine)
        operator = auth.sign_in(uow, lines[0][0], lines[0][1])
        assert operator.role is Role[lines[0][2]]
        with uow:
            assert uow.session.scalar(select(func.count()).select_from(Member)) == 300
    finally:
        engine.dispose()


def test_demo_accepts_db_after_the_subcommand_and_a_member_count(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["demo", "--db", sqlite_url, "--members", "60"]) == 0
    assert "60 members" in capsys.readouterr().out

    assert cli.main(["demo", "--db", sqlite_url, "--members", "75"]) == 0
    out = capsys.readouterr().out
    assert "topped up" in out and "(15 members added)" in out and "75 members" in out


def test_a_second_demo_run_changes_nothing(sqlite_url: str,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--db", sqlite_url, "demo", "--members", "80"]) == 0
    engine = db.make_engine(sqlite_url)
    try:
        before = database_state(engine)
        capsys.readouterr()

        assert cli.main(["--db", sqlite_url, "demo", "--members", "80"]) == 0

        out = capsys.readouterr().out
        assert "(0 members added)" in out
        assert f"Sign in as {DEMO_ADMIN_EMAIL}" in out
        after = database_state(engine)
    finally:
        engine.dispose()
    assert after == before


def test_a_second_start_on_a_migrated_database_changes_nothing(any_db_url: str) -> None:
    """What `invite-desk --db URL` does before opening a window: connect and upgrade."""
    first = app.build(any_db_url, create=True)
    try:
        tables = set(inspect(first.engine).get_table_names())
        assert tables == set(Base.metadata.tables) | {"alembic_version"}
        auth.setup_organization(
            first.uow, organization_name="Second Start Club", admin_email="a@second.example",
            admin_first_name="A", admin_last_name="Admin", password="long enough pw",
        )
        before = database_state(first.engine)
    finally:
        first.dispose()

    second = app.build(any_db_url)
    try:
        assert db.upgrade_to_head(second.engine) is False
        assert database_state(second.engine) == before
        assert not auth.needs_setup(second.uow)
    finally:
        second.dispose()


def test_demo_on_every_backend(any_db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--db", any_db_url, "demo", "--members", "120"]) == 0
    out = capsys.readouterr().out
    assert "120 members" in out
    [(email, password, role)] = [line for line in SIGN_IN_LINE.findall(out)
                                 if line[2] == "HR_LOCAL"]
    context = app.build(any_db_url)
    try:
        assert auth.sign_in(context.uow, email, password).role is Role.HR_LOCAL
    finally:
        context.dispose()


def test_a_server_password_given_on_the_command_line_is_not_printed(
    server_db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from sqlalchemy.engine import make_url

    password = make_url(server_db_url).password
    assert cli.main(["--db", server_db_url, "demo", "--members", "30"]) == 0
    captured = capsys.readouterr()
    assert f":{password}@" not in captured.out + captured.err
    assert "Sign in as" in captured.out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.startswith("invite-desk ")
