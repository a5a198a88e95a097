"""Issue 13: `invite-desk send` over K connections killed with SIGKILL at random points.

Every kill leaves at most K invitations in `sending` (one per lane), the next run marks them
uncertain and never resends them, and nobody is ever mailed twice.
"""

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

BATCH = 600
KILLS = 5
K = 4


@pytest.mark.slow
def test_sigkill_with_k_connections_leaves_at_most_k_uncertain_and_no_duplicate(
    uow: UnitOfWork, admin: Operator, sqlite_url: str, tmp_path: Path,
) -> None:
    update_settings(uow, admin, {"daily_limit_per_inviter": 0})
    # A small delay on every reply keeps all K lanes in the middle of a transaction at once.
    with LoopbackSmtpServer(reply_delay=0.004) as server:
        mail_settings.update_mail_settings(uow, admin, {
            "host": server.host, "port": server.port, "security": "none",
            "from_address": "invitations@rowing.example", "from_name": "Rowing",
            "rate_per_minute": 0, "connections": K})
        addresses = [f"lane{i:04d}@example.org" for i in range(BATCH)]
        pre = run_preflight(uow, admin.organization_id,
                            [InviteeInput(i + 1, a) for i, a in enumerate(addresses)])
        queue_invitations(uow, admin, pre.ready, source="csv")

        command = [sys.executable, "-m", "invite_desk", "--db", sqlite_url, "send",
                   "--operator", ADMIN_EMAIL]
        env = {**os.environ, "INVITE_DESK_OPERATOR_PASSWORD": ADMIN_PASSWORD,
               "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        seed = random.randrange(1 << 30)
        rng = random.Random(seed)
        kills, left_sending = 0, []
        log = tmp_path / "runs.log"
        with log.open("w") as out:
            for _attempt in range(KILLS):
                proc = subprocess.Popen(command, env=env, stdout=out, stderr=out)
                before = len(server.messages)
                deadline = time.monotonic() + 60
                while len(server.messages) < before + K and proc.poll() is None:
                    assert time.monotonic() < deadline, log.read_text()
                    time.sleep(0.005)
                time.sleep(rng.uniform(0.0, 0.3))
                if proc.poll() is None:
                    proc.send_signal(signal.SIGKILL)
                    kills += 1
                proc.wait(timeout=30)
                with uow:  # what the kill left behind, before the next run recovers it
                    left_sending.append(len(uow.session.scalars(select(Invitation.id).where(
                        Invitation.status == "sending")).all()))
            final = subprocess.run(command, env=env, stdout=out, stderr=out, timeout=120,
                                   check=False)
        text = log.read_text()
        assert kills >= 3, "the batch finished before it could be killed; make it larger"
        assert final.returncode in (0, 1), (seed, text[-2000:])
        assert max(left_sending) <= K, (seed, left_sending)
        assert server.max_concurrent == K  # the lanes really ran in parallel

        counts = server.recipient_counts()
    assert max(counts.values()) == 1, (seed, [a for a, n in counts.items() if n > 1])
    with uow:
        states = {i.email: i.status for i in uow.session.scalars(select(Invitation))}
    uncertain = {a for a, s in states.items() if s == "uncertain"}
    assert set(states.values()) <= {"sent", "uncertain"}, seed
    assert len(uncertain) <= K * kills and len(uncertain) == sum(left_sending)
    for address in addresses:
        if address in uncertain:
            assert counts.get(address, 0) <= 1
        else:
            assert counts.get(address) == 1, (seed, address)
    if uncertain:
        assert "uncertain:" in text
