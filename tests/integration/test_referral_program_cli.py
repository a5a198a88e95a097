"""`invite-desk report referrals`: the leaderboard as CSV or JSON lines, with the operator's
rights (a member gets their own row, a local admin their unit, an organization admin all)."""

from __future__ import annotations

import csv
import io
import json

import pytest

from invite_desk import app, cli
from invite_desk.services import auth
from invite_desk.services.credentials import MemoryCredentialStore
from invite_desk.services.models import Member
from invite_desk.services.operator import Operator
from invite_desk.services.roles import Role
from invite_desk.services.uow import UnitOfWork
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD
from tests.integration.referral_program_data import World, build

PASSWORD = "a long member password"


@pytest.fixture(autouse=True)
def _no_real_keyring(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app, "default_credentials", MemoryCredentialStore)


@pytest.fixture
def world(uow: UnitOfWork, admin: Operator) -> World:
    world = build(uow, admin)
    with uow:
        for name in ("Rita", "Sam"):
            member = uow.session.get(Member, world.ids[name])
            assert member is not None
            member.password_hash = auth.hash_password(PASSWORD)
        uow.commit()
    return world


def report(sqlite_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
           email: str, password: str, *extra: str) -> tuple[int, str, str]:
    monkeypatch.setenv("INVITE_DESK_OPERATOR_PASSWORD", password)
    code = cli.main(["--db", sqlite_url, "report", "referrals", "--operator", email, *extra])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_an_admin_gets_the_whole_leaderboard_as_json_lines(
        world: World, sqlite_url: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = report(sqlite_url, monkeypatch, capsys, ADMIN_EMAIL, ADMIN_PASSWORD,
                            "--period", "all", "--format", "json")
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["referrer_name"] for r in rows] == ["Rita Test", "Sam Test", "Tom Test", "Uma Test"]
    rita = rows[0]
    assert {k: rita[k] for k in ("referrer_email", "completed", "active", "acceptance_rate",
                                 "points", "badges")} == {
        "referrer_email": "rita@example.org", "completed": 3, "active": 2,
        "acceptance_rate": 0.5, "points": 20, "badges": [1]}
    assert rows[3]["opted_out"] is True
    assert rows[1]["pending"] == 0 and rita["pending"] >= 1


def test_csv_for_a_unit_and_a_custom_period(
        world: World, sqlite_url: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = report(sqlite_url, monkeypatch, capsys, ADMIN_EMAIL, ADMIN_PASSWORD,
                            "--period", "2026-04-01..2026-06-30", "--unit", "south")
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(r["referrer_name"], r["completed"], r["points"]) for r in rows] == [
        ("Uma Test", "1", "10")]
    assert rows[0]["opted_out"] == "yes"


def test_a_member_gets_only_their_own_row(
        world: World, sqlite_url: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = report(sqlite_url, monkeypatch, capsys, "rita@example.org", PASSWORD,
                            "--period", "all", "--format", "json")
    assert code == 0, err
    assert [json.loads(line)["referrer_name"] for line in out.splitlines()] == ["Rita Test"]


def test_a_local_admin_cannot_ask_for_another_unit(
        world: World, sqlite_url: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    world.operator("Sam", Role.ADMIN_LOCAL)
    code, out, err = report(sqlite_url, monkeypatch, capsys, "sam@example.org", PASSWORD,
                            "--unit", "South")
    assert code == 2 and out == ""
    assert "You cannot see another unit's referrals" in err
    code, out, err = report(sqlite_url, monkeypatch, capsys, "sam@example.org", PASSWORD,
                            "--period", "all")
    assert code == 0
    names = [row["referrer_name"] for row in csv.DictReader(io.StringIO(out))]
    assert names == ["Rita Test", "Sam Test"]


def test_bad_input_is_refused_with_a_reason(
        world: World, sqlite_url: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = report(sqlite_url, monkeypatch, capsys, ADMIN_EMAIL, ADMIN_PASSWORD,
                          "--period", "fortnight")
    assert code == 2 and "use month, quarter, year, all" in err
    code, _, err = report(sqlite_url, monkeypatch, capsys, ADMIN_EMAIL, ADMIN_PASSWORD,
                          "--unit", "Atlantis")
    assert code == 2 and "There is no unit 'Atlantis'" in err and "North" in err
    code, _, err = report(sqlite_url, monkeypatch, capsys, ADMIN_EMAIL, "wrong password")
    assert code == 2 and "incorrect" in err
