"""`invite-desk send` applies the window's policy: who may send, and only what is in scope."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from invite_desk import app, cli
from invite_desk.services import organization
from invite_desk.services.credentials import MemoryCredentialStore
from invite_desk.services.invitations.preflight import PreflightRow, RowStatus
from invite_desk.services.invitations.queueing import queue_invitations
from invite_desk.services.operator import Operator
from invite_desk.services.roles import Role
from invite_desk.services.settings import update_settings
from invite_desk.services.uow import UnitOfWork
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, MakeOperator, MakeUnit
from tests.integration.test_sending import configure, statuses
from tests.smtp_server import LoopbackSmtpServer

PASSWORD = "a long operator password"


@pytest.fixture(autouse=True)
def _no_real_keyring(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app, "default_credentials", MemoryCredentialStore)


def queue(uow: UnitOfWork, operator: Operator, *addresses: str) -> uuid.UUID:
    rows = [PreflightRow(i + 1, a, "", "", RowStatus.READY) for i, a in enumerate(addresses)]
    return queue_invitations(uow, operator, rows, source="paste").batch_id


def send(sqlite_url: str, monkeypatch: pytest.MonkeyPatch, email: str, password: str,
         *extra: str) -> int:
    monkeypatch.setenv("INVITE_DESK_OPERATOR_PASSWORD", password)
    return cli.main(["--db", sqlite_url, "send", "--operator", email, *extra])


@pytest.fixture
def world(uow: UnitOfWork, admin: Operator, smtp_server: LoopbackSmtpServer,
          make_unit: MakeUnit, make_operator: MakeOperator) -> dict[str, Operator]:
    """A USER and an HR_LOCAL in unit North, an HR_LOCAL in unit South, each with a batch."""
    configure(uow, admin, smtp_server)
    north, south = make_unit("North"), make_unit("South")
    people = {
        "user": make_operator(Role.USER, north, password=PASSWORD),
        "hr_north": make_operator(Role.HR_LOCAL, north, password=PASSWORD),
        "hr_south": make_operator(Role.HR_LOCAL, south, password=PASSWORD),
        "admin": admin,
    }
    queue(uow, people["user"], "u1@example.org", "u2@example.org")
    queue(uow, people["hr_north"], "n1@example.org")
    queue(uow, people["hr_south"], "s1@example.org")
    return people


def test_a_user_sends_only_their_own_batch(
    uow: UnitOfWork, world: dict[str, Operator], smtp_server: LoopbackSmtpServer,
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    csv = tmp_path / "friends.csv"
    csv.write_text("email,name\nfriend@example.org,Friend\n", encoding="utf-8")
    assert send(sqlite_url, monkeypatch, world["user"].email, PASSWORD, "--csv", str(csv)) == 0
    # This batch and the user's earlier one; nobody else's.
    assert set(smtp_server.recipient_counts()) == {
        "friend@example.org", "u1@example.org", "u2@example.org"}
    queue(uow, world["user"], "u3@example.org")
    assert send(sqlite_url, monkeypatch, world["user"].email, PASSWORD) == 0  # their queue
    assert set(smtp_server.recipient_counts()) == {
        "friend@example.org", "u1@example.org", "u2@example.org", "u3@example.org"}
    states = statuses(uow)
    assert states["n1@example.org"] == states["s1@example.org"] == "queued"
    capsys.readouterr()

    assert send(sqlite_url, monkeypatch, world["user"].email, PASSWORD, "--all") == 2
    err = capsys.readouterr().err
    assert "You cannot send invitations on behalf of another member" in err
    assert "HR_LOCAL" in err


def test_invitations_off_refuses_and_sends_nothing(
    uow: UnitOfWork, admin: Operator, world: dict[str, Operator],
    smtp_server: LoopbackSmtpServer, sqlite_url: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    update_settings(uow, admin, {"has_user_invitation": False})
    for who in ("user", "hr_north"):
        assert send(sqlite_url, monkeypatch, world[who].email, PASSWORD) == 2
        assert "Invitations are turned off" in capsys.readouterr().err
    assert send(sqlite_url, monkeypatch, ADMIN_EMAIL, ADMIN_PASSWORD, "--all") == 2
    assert smtp_server.messages == []
    assert set(statuses(uow).values()) == {"queued"}


def test_a_role_below_who_can_send_is_refused(
    uow: UnitOfWork, admin: Operator, world: dict[str, Operator],
    smtp_server: LoopbackSmtpServer, sqlite_url: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    update_settings(uow, admin, {"who_can_send_user_invitation": Role.HR_LOCAL.name})
    assert send(sqlite_url, monkeypatch, world["user"].email, PASSWORD) == 2
    assert "this needs the HR_LOCAL role or higher" in capsys.readouterr().err
    assert smtp_server.messages == []


def test_local_hr_sends_its_unit_not_another_units_batch(
    uow: UnitOfWork, world: dict[str, Operator], smtp_server: LoopbackSmtpServer,
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    south_batch = queue(uow, world["hr_south"], "s2@example.org")
    hr = world["hr_north"].email
    assert send(sqlite_url, monkeypatch, hr, PASSWORD, "--batch", str(south_batch)) == 2
    assert "You cannot send batch" in capsys.readouterr().err
    assert smtp_server.messages == []

    assert send(sqlite_url, monkeypatch, hr, PASSWORD, "--all") == 0
    assert set(smtp_server.recipient_counts()) == {
        "u1@example.org", "u2@example.org", "n1@example.org"}  # unit North only
    states = statuses(uow)
    assert states["s1@example.org"] == states["s2@example.org"] == "queued"


def test_an_organization_admin_sends_one_batch_or_everything(
    uow: UnitOfWork, world: dict[str, Operator], smtp_server: LoopbackSmtpServer,
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    south_batch = queue(uow, world["hr_south"], "s2@example.org")
    assert send(sqlite_url, monkeypatch, ADMIN_EMAIL, ADMIN_PASSWORD,
                "--batch", str(south_batch)) == 0
    assert set(smtp_server.recipient_counts()) == {"s2@example.org"}
    assert send(sqlite_url, monkeypatch, ADMIN_EMAIL, ADMIN_PASSWORD, "--all") == 0
    assert set(statuses(uow).values()) == {"sent"}
    assert max(smtp_server.recipient_counts().values()) == 1


def test_an_empty_registration_address_stops_the_command(
    uow: UnitOfWork, admin: Operator, world: dict[str, Operator],
    smtp_server: LoopbackSmtpServer, sqlite_url: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    organization.update_organization(uow, admin, {"registration_base_url": ""})
    assert send(sqlite_url, monkeypatch, ADMIN_EMAIL, ADMIN_PASSWORD, "--all") == 2
    assert "registration web address" in capsys.readouterr().err
    assert smtp_server.messages == []


def test_a_dry_run_is_refused_too_when_the_operator_may_not_send(
    uow: UnitOfWork, admin: Operator, world: dict[str, Operator], sqlite_url: str,
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    update_settings(uow, admin, {"has_user_invitation": False})
    csv = tmp_path / "friends.csv"
    csv.write_text("email\nfriend@example.org\n", encoding="utf-8")
    assert send(sqlite_url, monkeypatch, world["user"].email, PASSWORD,
                "--csv", str(csv), "--dry-run") == 2
    assert "Invitations are turned off" in capsys.readouterr().err


def test_a_list_file_in_windows_1252_keeps_its_accented_names(
    uow: UnitOfWork, admin: Operator, smtp_server: LoopbackSmtpServer, sqlite_url: str,
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    configure(uow, admin, smtp_server)
    listing = tmp_path / "list.txt"
    listing.write_bytes("José Núñez <jose@example.org>\r\nRené “Ren” Roy <rene@example.org>\r\n"
                        .encode("cp1252"))
    assert send(sqlite_url, monkeypatch, ADMIN_EMAIL, ADMIN_PASSWORD, "--list", str(listing)) == 0
    assert "Latin-1" in capsys.readouterr().out
    names = sorted(str(m.message["To"]) for m in smtp_server.messages)
    assert names == ["José Núñez <jose@example.org>", "René “Ren” Roy <rene@example.org>"]


@pytest.mark.parametrize("missing", ["smtp", "registration address"])
def test_send_with_a_file_queues_nothing_when_it_cannot_send(
    uow: UnitOfWork, admin: Operator, smtp_server: LoopbackSmtpServer, sqlite_url: str,
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    missing: str,
) -> None:
    if missing == "smtp":
        organization.update_organization(uow, admin, {"registration_base_url": "https://j.example"})
        expected = "SMTP is not configured"
    else:
        configure(uow, admin, smtp_server)
        organization.update_organization(uow, admin, {"registration_base_url": ""})
        expected = "registration web address"
    csv = tmp_path / "friends.csv"
    csv.write_text("email\nfriend@example.org\n", encoding="utf-8")
    assert send(sqlite_url, monkeypatch, ADMIN_EMAIL, ADMIN_PASSWORD, "--csv", str(csv)) == 2
    err = capsys.readouterr().err
    assert expected in err and "Nothing was queued" in err
    assert statuses(uow) == {}
    # --no-send still queues (for a later send), and --dry-run checks
    assert send(sqlite_url, monkeypatch, ADMIN_EMAIL, ADMIN_PASSWORD, "--csv", str(csv),
                "--dry-run") == 0
    assert send(sqlite_url, monkeypatch, ADMIN_EMAIL, ADMIN_PASSWORD, "--csv", str(csv),
                "--no-send") == 0
    assert statuses(uow) == {"friend@example.org": "queued"}


def test_a_missing_file_is_one_line_naming_it(
    uow: UnitOfWork, admin: Operator, smtp_server: LoopbackSmtpServer, sqlite_url: str,
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    configure(uow, admin, smtp_server)
    missing = tmp_path / "no such.csv"
    assert send(sqlite_url, monkeypatch, ADMIN_EMAIL, ADMIN_PASSWORD, "--csv", str(missing)) == 2
    err = capsys.readouterr().err
    assert err == f"error: cannot read {missing}: No such file or directory. Nothing was queued.\n"
    assert statuses(uow) == {}


def test_a_file_with_an_invalid_row_sends_the_rest_names_the_row_and_exits_1(
    uow: UnitOfWork, admin: Operator, smtp_server: LoopbackSmtpServer, sqlite_url: str,
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    configure(uow, admin, smtp_server)
    csv = tmp_path / "friends.csv"
    csv.write_text("email,name\nann@example.org,Ann\nbob at example.org,Bob\n"
                   "cy@example.org,Cy\n", encoding="utf-8")
    assert send(sqlite_url, monkeypatch, ADMIN_EMAIL, ADMIN_PASSWORD, "--csv", str(csv)) == 1
    captured = capsys.readouterr()
    assert "row 3: bob at example.org: Invalid" in captured.out
    assert "not queued: 1 invalid row" in captured.out
    assert "1 invalid row not queued" in captured.err
    assert smtp_server.recipient_counts() == {"ann@example.org": 1, "cy@example.org": 1}
    # The same command again: nothing is sent twice, and the bad row is still reported.
    assert send(sqlite_url, monkeypatch, ADMIN_EMAIL, ADMIN_PASSWORD, "--csv", str(csv)) == 1
    assert "row 3: bob at example.org: Invalid" in capsys.readouterr().out
    assert smtp_server.recipient_counts() == {"ann@example.org": 1, "cy@example.org": 1}
    # A dry run of a file with a bad row says so by its status too.
    assert send(sqlite_url, monkeypatch, ADMIN_EMAIL, ADMIN_PASSWORD, "--csv", str(csv),
                "--dry-run") == 1
