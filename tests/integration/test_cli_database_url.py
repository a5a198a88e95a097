"""Issue 8: a wrong `--db` is one clear line and exit status 2, never a traceback; a SQLite
path that does not exist is refused unless it is the default database, `--create` is given,
or the command is `demo` (which fills the database it names, so it creates it by design)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from invite_desk import app, cli
from invite_desk.services import local_config
from invite_desk.services.credentials import MemoryCredentialStore, database_key
from tests.db_servers import server_url

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`invite-desk ARGS` in a fresh process, on this worktree's source."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "QT_QPA_PLATFORM": "offscreen"}
    return subprocess.run([sys.executable, "-m", "invite_desk", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60, check=False)


def assert_refused(result: subprocess.CompletedProcess[str], *fragments: str) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    [line] = lines
    assert line.startswith("invite-desk: error: ")
    for fragment in fragments:
        assert fragment in line, line
    return line


@pytest.mark.parametrize(("url", "fragments"), [
    ("notaurl", ["cannot be read", "sqlite:///", "postgresql://"]),
    ("postgresql://invite@db.example.org:port/invitedesk", ["cannot be read"]),
    ("oracle://scott:tiger@db.example.org/orcl", ["Unsupported database 'oracle'"]),
    ("postgresql+nodriver://invite@db.example.org/invitedesk", ["driver is not available"]),
    ("postgresql://invite:SECRET@127.0.0.1:1/invitedesk",
     ["Cannot open the database postgresql://invite@127.0.0.1:1/invitedesk", "refused"]),
    ("mariadb://invite:SECRET@127.0.0.1:1/invitedesk", ["Cannot open the database", "refused"]),
])
def test_a_bad_database_url_is_one_line_and_exit_status_2(
    tmp_path: Path, url: str, fragments: list[str]
) -> None:
    line = assert_refused(run_cli("--db", url, "expire", cwd=tmp_path), *fragments)
    assert "SECRET" not in line and "tiger" not in line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("where", ["typo.db", "no-such-folder/typo.db"])
@pytest.mark.parametrize("command", [[], ["expire"], ["portal"]])
def test_a_mistyped_sqlite_path_is_refused_not_created(
    tmp_path: Path, where: str, command: list[str]
) -> None:
    path = tmp_path / where
    line = assert_refused(run_cli("--db", f"sqlite:///{path}", *command, cwd=tmp_path),
                          f"There is no database at {path}", "--create")
    assert ("does not exist" in line) == ("/" in where)
    assert list(tmp_path.iterdir()) == []


def test_a_relative_sqlite_path_is_named_in_full(tmp_path: Path) -> None:
    assert_refused(run_cli("--db", "sqlite:///typo.db", cwd=tmp_path),
                   f"There is no database at {tmp_path / 'typo.db'}")


def test_create_makes_the_new_database(tmp_path: Path) -> None:
    path = tmp_path / "new" / "club.sqlite3"
    result = run_cli("--db", f"sqlite:///{path}", "--create", "expire", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "0 invitations marked as expired." in result.stdout
    assert path.exists()
    # Once it exists, no --create is needed.
    assert run_cli("--db", f"sqlite:///{path}", "expire", cwd=tmp_path).returncode == 0


def test_demo_creates_the_database_it_names(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "demo.sqlite3"
    assert cli.main(["--db", f"sqlite:///{path}", "demo", "--members", "20"]) == 0
    assert path.exists() and "Sign in as" in capsys.readouterr().out


def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("shopping list\n" * 200)
    assert_refused(run_cli("--db", f"sqlite:///{path}", "expire", cwd=tmp_path),
                   "not a database")


# ------------------------------------------------------------------ the function that opens it
def test_the_desktop_start_refuses_a_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "typo.db"
    with pytest.raises(app.DatabaseUnavailable, match="There is no database at"):
        app.build(f"sqlite:///{path}", credentials=MemoryCredentialStore())
    assert not path.exists()
    context = app.build(f"sqlite:///{path}", credentials=MemoryCredentialStore(), create=True)
    context.dispose()
    assert path.exists()


def test_the_default_database_is_created_on_first_start() -> None:
    default = Path(make_url(local_config.default_database_url()).database or "")
    assert not default.exists()
    context = app.build(None, credentials=MemoryCredentialStore())
    context.dispose()
    assert default.exists()


@pytest.mark.postgres
def test_a_wrong_server_password_is_refused_and_never_kept(tmp_path: Path) -> None:
    url = server_url("postgresql").set(password="certainly-wrong")
    store = MemoryCredentialStore()
    with pytest.raises(app.DatabaseUnavailable, match="password authentication failed") as err:
        app.build(url, credentials=store)
    assert "certainly-wrong" not in str(err.value)
    assert store.get(database_key(url)) is None
    line = assert_refused(run_cli("--db", url.render_as_string(hide_password=False), "expire",
                                  cwd=tmp_path), "password authentication failed")
    assert "certainly-wrong" not in line


@pytest.mark.mariadb
def test_a_wrong_mariadb_password_is_refused(tmp_path: Path) -> None:
    url = server_url("mariadb").set(password="certainly-wrong")
    with pytest.raises(app.DatabaseUnavailable, match="Access denied"):
        app.build(url, credentials=MemoryCredentialStore())


def test_create_where_no_folder_can_be_made_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert_refused(run_cli("--db", f"sqlite:///{blocker}/club.sqlite3", "--create", "expire",
                           cwd=tmp_path), "Cannot create the database",
                   f"the folder {blocker} cannot be made")
