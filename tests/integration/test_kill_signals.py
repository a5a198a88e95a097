"""`invite-desk send --csv FILE` stopped by SIGTERM or Ctrl+C (SIGINT) and run again: nobody
gets two messages, the stopped run says what it left, and the re-run says what was done."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from invite_desk.services import mail_settings
from invite_desk.services.models import Invitation
from invite_desk.services.operator import Operator
from invite_desk.services.settings import update_settings
from invite_desk.services.uow import UnitOfWork
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD
from tests.smtp_server import LoopbackSmtpServer

BATCH = 400

pytestmark = pytest.mark.slow  # every test runs the CLI twice on a batch: 20-35 s under load


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("source", ["--csv", "--list"])
def test_a_stopped_send_run_again_mails_nobody_twice_and_says_so(
    uow: UnitOfWork, admin: Operator, smtp_server: LoopbackSmtpServer, sqlite_url: str,
    tmp_path: Path, sig: signal.Signals, source: str,
) -> None:
    update_settings(uow, admin, {"daily_limit_per_inviter": 0})
    mail_settings.update_mail_settings(uow, admin, {
        "host": smtp_server.host, "port": smtp_server.port, "security": "none",
        "from_address": "invitations@rowing.example", "from_name": "Rowing", "rate_per_minute": 0,
    })
    addresses = [f"sig{i:04d}@example.org" for i in range(BATCH)]
    path = tmp_path / ("invitees.csv" if source == "--csv" else "invitees.txt")
    if source == "--csv":
        path.write_text("email,name\n" + "".join(f"{a},Member {i}\n" for i, a in enumerate(addresses)))
    else:
        path.write_text("".join(f"Member {i} <{a}>\n" for i, a in enumerate(addresses)))
    command = [sys.executable, "-m", "invite_desk", "--db", sqlite_url, "send", "--operator",
               ADMIN_EMAIL, source, str(path)]
    env = {**os.environ, "INVITE_DESK_OPERATOR_PASSWORD": ADMIN_PASSWORD,
           "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 60
    while len(smtp_server.messages) < 20 and proc.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.005)
    proc.send_signal(sig)
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    assert proc.returncode != 0, out
    assert "Traceback" not in err, err
    if sig is signal.SIGINT:
        assert "stopped" in (out + err).lower(), (out, err)
        assert proc.returncode == 130

    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120,
                           check=False)
    assert again.returncode in (0, 1), again.stderr
    counts = smtp_server.recipient_counts()
    assert max(counts.values()) == 1
    with uow:
        states = {i.email: i.status for i in uow.session.scalars(select(Invitation))}
    assert len(states) == BATCH
    assert set(states.values()) <= {"sent", "uncertain"}
    uncertain = [a for a, s in states.items() if s == "uncertain"]
    assert len(uncertain) <= 1
    for address in uncertain:
        assert address in again.stdout + out
    assert again.returncode == (1 if uncertain else 0)
    assert "already" in again.stdout.lower()

    third = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120,
                           check=False)
    assert max(smtp_server.recipient_counts().values()) == 1
    assert "queued 0" in third.stdout, third.stdout
    assert third.returncode == (1 if uncertain else 0), third.stdout


def test_a_re_run_with_nothing_new_makes_no_empty_batch(
    uow: UnitOfWork, admin: Operator, smtp_server: LoopbackSmtpServer, sqlite_url: str,
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    from invite_desk import app, cli
    from invite_desk.services.credentials import MemoryCredentialStore
    from invite_desk.services.models import Batch
    from tests.integration.test_sending import configure

    monkeypatch.setattr(app, "default_credentials", MemoryCredentialStore)
    monkeypatch.setenv("INVITE_DESK_OPERATOR_PASSWORD", ADMIN_PASSWORD)
    configure(uow, admin, smtp_server)
    csv = tmp_path / "in.csv"
    csv.write_text("email\nann@example.org\nbo@example.org\n")
    command = ["--db", sqlite_url, "send", "--operator", ADMIN_EMAIL, "--csv", str(csv)]
    for _ in range(3):
        assert cli.main(command) == 0
    assert "already handled" in capsys.readouterr().out
    with uow:
        assert len(uow.session.scalars(select(Batch)).all()) == 1
    assert max(smtp_server.recipient_counts().values()) == 1


def test_two_runs_of_the_same_command_at_once_mail_everyone_once(
    uow: UnitOfWork, admin: Operator, smtp_server: LoopbackSmtpServer, sqlite_url: str,
    tmp_path: Path,
) -> None:
    """A scheduled `send --csv` and a person running the same command: before, both found
    every address free, queued it, and everyone got two messages (or one run failed with
    'Someone else changed this' from signing in at the same moment)."""
    update_settings(uow, admin, {"daily_limit_per_inviter": 0})
    mail_settings.update_mail_settings(uow, admin, {
        "host": smtp_server.host, "port": smtp_server.port, "security": "none",
        "from_address": "invitations@rowing.example", "from_name": "Rowing", "rate_per_minute": 0,
    })
    rows = 1500
    path = tmp_path / "invitees.csv"
    path.write_text("email,name\n" + "".join(f"two{i}@example.org,M {i}\n" for i in range(rows)))
    command = [sys.executable, "-m", "invite_desk", "--db", sqlite_url, "send", "--operator",
               ADMIN_EMAIL, "--csv", str(path)]
    env = {**os.environ, "INVITE_DESK_OPERATOR_PASSWORD": ADMIN_PASSWORD,
           "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    runs = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True) for _ in range(2)]
    results = [(run.communicate(timeout=120), run.returncode) for run in runs]
    for (_out, err), code in results:
        assert code == 0, err
    counts = smtp_server.recipient_counts()
    assert len(counts) == rows and max(counts.values()) == 1
    with uow:
        assert len(uow.session.scalars(select(Invitation)).all()) == rows
