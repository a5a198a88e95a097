"""A batch killed with SIGKILL at random moments and restarted never sends an invitation twice."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from invite_desk.services import mail_settings
from invite_desk.services.invitations.importing import InviteeInput
from invite_desk.services.invitations.preflight import run_preflight
from invite_desk.services.invitations.queueing import queue_invitations
from invite_desk.services.models import Invitation
from invite_desk.services.operator import Operator
from invite_desk.services.settings import update_settings
from invite_desk.services.uow import UnitOfWork
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD
from tests.smtp_server import LoopbackSmtpServer

BATCH = 1000
KILLS = 6

pytestmark = pytest.mark.slow  # a batch sent by a dozen processes: ~1 min under load


def _send_command(sqlite_url: str) -> list[str]:
    return [sys.executable, "-m", "invite_desk", "--db", sqlite_url, "send", "--operator", ADMIN_EMAIL]


def test_sigkill_at_random_points_never_sends_twice(
    uow: UnitOfWork, admin: Operator, smtp_server: LoopbackSmtpServer, sqlite_url: str,
    tmp_path: Path,
) -> None:
    update_settings(uow, admin, {"daily_limit_per_inviter": 0})
    mail_settings.update_mail_settings(uow, admin, {
        "host": smtp_server.host, "port": smtp_server.port, "security": "none",
        "from_address": "invitations@rowing.example", "from_name": "Rowing", "rate_per_minute": 0,
    })
    addresses = [f"member{i:04d}@example.org" for i in range(BATCH)]
    pre = run_preflight(uow, admin.organization_id,
                        [InviteeInput(i + 1, a) for i, a in enumerate(addresses)])
    queue_invitations(uow, admin, pre.ready, source="csv")

    env = {**os.environ, "INVITE_DESK_OPERATOR_PASSWORD": ADMIN_PASSWORD,
           "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    rng = random.Random(20261123)
    kills = 0
    log = tmp_path / "runs.log"
    with log.open("w") as out:
        for _attempt in range(KILLS):
            proc = subprocess.Popen(_send_command(sqlite_url), env=env, stdout=out, stderr=out)
            # Wait until this run has sent something, then kill it a random moment later.
            before = len(smtp_server.messages)
            deadline = time.monotonic() + 60
            while len(smtp_server.messages) == before and proc.poll() is None:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 0.25))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
            proc.wait(timeout=30)
        final = subprocess.run(_send_command(sqlite_url), env=env, stdout=out, stderr=out,
                               timeout=300, check=False)
    assert kills >= 3, "the batch finished before it could be killed; make it larger"
    assert final.returncode in (0, 1), log.read_text()[-2000:]

    counts = smtp_server.recipient_counts()
    assert max(counts.values()) == 1, [a for a, n in counts.items() if n > 1]
    with uow:
        states = {i.email: i.status for i in uow.session.scalars(select(Invitation))}
    uncertain = {a for a, s in states.items() if s == "uncertain"}
    assert {s for s in states.values()} <= {"sent", "uncertain"}
    assert len(uncertain) <= kills  # at most the one in flight per kill
    for address in addresses:
        if address in uncertain:
            assert counts.get(address, 0) <= 1
        else:
            assert counts.get(address) == 1, address
    assert "uncertain:" in log.read_text()


def test_rerunning_the_same_csv_command_after_sigkill_never_mails_anyone_twice(
    uow: UnitOfWork, admin: Operator, smtp_server: LoopbackSmtpServer, sqlite_url: str,
    tmp_path: Path,
) -> None:
    """Issue 8: kill `invite-desk send --csv FILE` while it sends, run the same command again:
    the uncertain rows count as already invited (not queued again), the rest is resumed."""
    update_settings(uow, admin, {"daily_limit_per_inviter": 0})
    mail_settings.update_mail_settings(uow, admin, {
        "host": smtp_server.host, "port": smtp_server.port, "security": "none",
        "from_address": "invitations@rowing.example", "from_name": "Rowing", "rate_per_minute": 0,
    })
    addresses = [f"csv{i:04d}@example.org" for i in range(BATCH)]
    csv = tmp_path / "invitees.csv"
    csv.write_text("email,name\n" + "".join(f"{a},Member {i}\n" for i, a in enumerate(addresses)),
                   encoding="utf-8")
    command = [*_send_command(sqlite_url), "--csv", str(csv)]
    env = {**os.environ, "INVITE_DESK_OPERATOR_PASSWORD": ADMIN_PASSWORD,
           "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    rng = random.Random()  # a random moment each run; the seed is in the failure message
    seed = rng.randrange(1 << 30)
    rng.seed(seed)
    kills = 0
    log = tmp_path / "runs.log"
    with log.open("w") as out:
        for _attempt in range(3):
            proc = subprocess.Popen(command, env=env, stdout=out, stderr=out)
            before = len(smtp_server.messages)
            deadline = time.monotonic() + 60
            while len(smtp_server.messages) == before and proc.poll() is None:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 0.2))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
            proc.wait(timeout=30)
        final = subprocess.run(command, env=env, stdout=out, stderr=out, timeout=300,
                               check=False)
    text = log.read_text()
    assert kills >= 1, "the batch finished before it could be killed; make it larger"
    assert final.returncode in (0, 1), (seed, text[-2000:])

    counts = smtp_server.recipient_counts()
    assert max(counts.values()) == 1, (seed, [a for a, n in counts.items() if n > 1])
    with uow:
        rows = [(i.email, i.status) for i in uow.session.scalars(select(Invitation))]
    states = dict(rows)
    # One invitation per address: an uncertain one was not queued (and mailed) again.
    assert len(rows) == len(states) == BATCH, (seed, len(rows), kills)
    uncertain = {a for a, s in states.items() if s == "uncertain"}
    assert set(states.values()) <= {"sent", "uncertain"}, seed
    assert len(uncertain) <= kills
    for address in addresses:
        if address in uncertain:
            assert counts.get(address, 0) <= 1
        else:
            assert counts.get(address) == 1, (seed, address)
    if uncertain:
        assert "already" in text.lower() or "uncertain" in text.lower()
