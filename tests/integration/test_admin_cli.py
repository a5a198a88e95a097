"""Issue 11: `invite-desk members|units|events|audit|notify` check the operator like the
windows do, print one-line errors and exit 0 / 1 / 2."""

from __future__ import annotations

import csv
import io

import pytest

from invite_desk import app, cli
from invite_desk.services import adhesion
from invite_desk.services.admin import events, people, units
from invite_desk.services.credentials import MemoryCredentialStore
from invite_desk.services.operator import Operator
from invite_desk.services.roles import Role
from invite_desk.services.uow import UnitOfWork
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, MakeOperator, MakeUnit
from tests.integration.test_admin_notifications import applicant
from tests.registration_fixtures import enable_confirmation_email
from tests.smtp_server import LoopbackSmtpServer

PASSWORD = "a long operator password"


@pytest.fixture(autouse=True)
def _no_real_keyring(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app, "default_credentials", MemoryCredentialStore)


def run(sqlite_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        *argv: str, operator: str = ADMIN_EMAIL,
        password: str = ADMIN_PASSWORD) -> tuple[int, str, str]:
    monkeypatch.setenv("INVITE_DESK_OPERATOR_PASSWORD", password)
    code = cli.main(["--db", sqlite_url, *argv, "--operator", operator])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_members_set_role_and_list(sqlite_url: str, uow: UnitOfWork, admin: Operator,
                                   make_unit: MakeUnit, make_operator: MakeOperator,
                                   monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    make_unit("North")
    member = make_operator(Role.USER, email="uma@example.org")
    code, out, err = run(sqlite_url, monkeypatch, capsys, "members", "set-role",
                         "UMA@example.org", "hr_local", "--unit", "north")
    assert (code, err) == (0, "")
    assert "uma@example.org: HR_LOCAL, unit North" in out
    view = people.get_person(uow, admin, member.member_id)
    assert view.role is Role.HR_LOCAL and view.unit_name == "North"
    code, out, _ = run(sqlite_url, monkeypatch, capsys, "members", "list", "--unit", "North")
    assert code == 0 and out.splitlines()[0].startswith("uma@example.org\t")
    code, out, err = run(sqlite_url, monkeypatch, capsys, "members", "set-role",
                         "nobody@example.org", "USER")
    assert code == 2 and "No member nobody@example.org" in err and len(err.splitlines()) == 1
    code, _, err = run(sqlite_url, monkeypatch, capsys, "members", "set-role",
                       "uma@example.org", "KING")
    assert code == 2 and "Unknown role" in err


def test_the_cli_refuses_what_the_policy_refuses(
        sqlite_url: str, uow: UnitOfWork, admin: Operator, make_unit: MakeUnit,
        make_operator: MakeOperator, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    north = make_unit("North")
    local = make_operator(Role.ADMIN_LOCAL, north, email="local@example.org", password=PASSWORD)
    make_operator(Role.USER, north, email="mine@example.org")
    code, _, err = run(sqlite_url, monkeypatch, capsys, "members", "set-role",
                       "mine@example.org", "ADMIN_TENANT", operator=local.email,
                       password=PASSWORD)
    assert code == 2 and "cannot grant ADMIN_TENANT" in err
    code, _, err = run(sqlite_url, monkeypatch, capsys, "members", "set-role", ADMIN_EMAIL,
                       "USER")
    assert code == 2 and "last active organization admin" in err
    code, _, err = run(sqlite_url, monkeypatch, capsys, "units", "create", "South",
                       operator=local.email, password=PASSWORD)
    assert code == 2 and "ADMIN_TENANT" in err
    code, _, err = run(sqlite_url, monkeypatch, capsys, "audit", operator=local.email,
                       password=PASSWORD)
    assert code == 2 and "audit log" in err
    code, _, err = run(sqlite_url, monkeypatch, capsys, "units", "list", password="wrong!")
    assert code == 2 and "incorrect" in err


def test_units_create_rename_merge_archive(
        sqlite_url: str, uow: UnitOfWork, admin: Operator, make_operator: MakeOperator,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(sqlite_url, monkeypatch, capsys, "units", "create", "North")[0] == 0
    assert run(sqlite_url, monkeypatch, capsys, "units", "create", "South")[0] == 0
    code, _, err = run(sqlite_url, monkeypatch, capsys, "units", "create", "north")
    assert code == 2 and "already exists" in err
    assert run(sqlite_url, monkeypatch, capsys, "units", "rename", "South", "Southside")[0] == 0
    north = next(u for u in units.list_units(uow, admin) if u.name == "North")
    make_operator(Role.USER, north.id)
    code, _, err = run(sqlite_url, monkeypatch, capsys, "units", "archive", "North")
    assert code == 2 and "1 active member" in err
    code, out, _ = run(sqlite_url, monkeypatch, capsys, "units", "merge", "North", "Southside")
    assert code == 0 and "1 members" in out
    code, out, _ = run(sqlite_url, monkeypatch, capsys, "units", "list", "--all")
    assert "North (archived)" in out and "Southside\t1 active of 1 members" in out


def test_events_create_list_archive(
        sqlite_url: str, uow: UnitOfWork, admin: Operator, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(sqlite_url, monkeypatch, capsys, "events", "create", "Gala",
                         "--start", "2030-07-01 19:30", "--tz", "Europe/Paris",
                         "--place", "Town hall", "--capacity", "80")
    assert code == 0, err
    [event] = events.list_events(uow, admin)
    assert event.starts_at is not None and event.starts_at.hour == 17  # 19:30 CEST
    code, out, _ = run(sqlite_url, monkeypatch, capsys, "events", "list")
    assert "Gala\t2030-07-01 19:30 Europe/Paris\tTown hall\t0 guests, 0 joined (80 places)" in out
    assert run(sqlite_url, monkeypatch, capsys, "events", "create", "AGM", "--no-guests")[0] == 0
    code, out, _ = run(sqlite_url, monkeypatch, capsys, "events", "list")
    assert "AGM\tno date\t-\t0 guests, 0 joined (no guests may be invited)" in out
    assert run(sqlite_url, monkeypatch, capsys, "events", "archive", "agm")[0] == 0
    code, _, err = run(sqlite_url, monkeypatch, capsys, "events", "create", "Bad",
                       "--tz", "Mars/Olympus")
    assert code == 2 and "time_zone" in err
    assert run(sqlite_url, monkeypatch, capsys, "events", "archive", "gala")[0] == 0
    assert events.list_events(uow, admin) == []


def test_audit_text_and_csv(sqlite_url: str, uow: UnitOfWork, admin: Operator,
                            make_operator: MakeOperator, monkeypatch: pytest.MonkeyPatch,
                            capsys: pytest.CaptureFixture[str]) -> None:
    member = make_operator(Role.USER, email="uma@example.org")
    people.update_person(uow, admin, member.member_id, role=Role.HR_TENANT)
    units.create_unit(uow, admin, "=HYPERLINK(evil)")
    code, out, _ = run(sqlite_url, monkeypatch, capsys, "audit", "--action", "member.")
    assert code == 0
    assert "member.update" in out and "role: USER -> HR_TENANT" in out
    assert "unit.create" not in out
    code, out, _ = run(sqlite_url, monkeypatch, capsys, "audit", "--format", "csv",
                       "--since", "2000-01-01")
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0][:4] == ["at", "actor", "actor_id", "action"]
    actions = [r[3] for r in rows[1:]]
    assert {"member.update", "unit.create", "organization.create"} <= set(actions)
    unit_row = next(r for r in rows if r[3] == "unit.create")
    assert unit_row[8].startswith("{")  # JSON, and the formula is inside, not at the start
    code, out, _ = run(sqlite_url, monkeypatch, capsys, "audit", "--since", "2999-01-01")
    assert code == 0 and out == ""
    with pytest.raises(SystemExit) as exited:
        run(sqlite_url, monkeypatch, capsys, "audit", "--since", "yesterday")
    assert exited.value.code == 2
    assert "not a date like" in capsys.readouterr().err


def test_notify_sends_queued_emails(sqlite_url: str, uow: UnitOfWork, admin: Operator,
                                    smtp_server: LoopbackSmtpServer,
                                    monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    enable_confirmation_email(uow, admin, smtp_server)
    adhesion.approve(uow, admin, applicant(uow, admin, "ok@example.org"))
    code, out, _ = run(sqlite_url, monkeypatch, capsys, "notify")
    assert code == 0 and "1 sent" in out
    assert smtp_server.count_for("ok@example.org") == 1
    code, out, _ = run(sqlite_url, monkeypatch, capsys, "notify")
    assert code == 0 and "no notification emails" in out
    assert smtp_server.count_for("ok@example.org") == 1


def test_send_all_also_delivers_queued_notification_emails(
        sqlite_url: str, uow: UnitOfWork, admin: Operator, smtp_server: LoopbackSmtpServer,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """A scheduled `send --all` job delivers approvals too, on the same SMTP settings."""
    enable_confirmation_email(uow, admin, smtp_server)
    adhesion.approve(uow, admin, applicant(uow, admin, "approved@example.org"))
    code, out, err = run(sqlite_url, monkeypatch, capsys, "send", "--all")
    assert (code, err) == (0, ""), out
    assert "notification emails: 1 sent, 0 failed" in out
    assert smtp_server.count_for("approved@example.org") == 1
    code, out, _ = run(sqlite_url, monkeypatch, capsys, "send", "--all")
    assert code == 0 and "notification emails" not in out  # nothing queued: no line
    assert smtp_server.count_for("approved@example.org") == 1


def test_audit_csv_refused_prints_no_header_and_a_limited_csv_is_defused(
        sqlite_url: str, uow: UnitOfWork, admin: Operator, make_operator: MakeOperator,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from invite_desk.services.models import Member

    make_operator(Role.USER, email="uma@example.org", password=PASSWORD)
    code, out, err = run(sqlite_url, monkeypatch, capsys, "audit", "--format", "csv",
                         operator="uma@example.org", password=PASSWORD)
    assert code == 2 and out == "" and "ADMIN_TENANT" in err  # not even the header
    with uow:
        member = uow.session.get(Member, admin.member_id)
        assert member is not None
        member.first_name, member.last_name = "=HYPERLINK(1)", "+x"
        uow.commit()
    units.create_unit(uow, admin, "North")  # an audit row by the admin, named like a formula
    for extra in ((), ("--limit", "5")):
        code, out, _ = run(sqlite_url, monkeypatch, capsys, "audit", "--format", "csv", *extra)
        rows = list(csv.reader(io.StringIO(out)))
        assert code == 0 and len(rows[0]) == 9 and rows[0][:4] == ["at", "actor", "actor_id",
                                                                   "action"]
        unit_row = next(r for r in rows if r[3] == "unit.create")
        assert unit_row[1].startswith("'=HYPERLINK(1)")  # a spreadsheet shows it as text
        assert len(unit_row) == 9
