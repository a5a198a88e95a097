"""`invite-desk portal` as a user runs it: a separate process serving the pages, its access log
on stderr without tokens, and Ctrl+C stopping it cleanly."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from invite_desk.services.operator import Operator
from invite_desk.services.uow import UnitOfWork
from tests.portal_client import HttpClient, csrf_from
from tests.registration_fixtures import PASSWORD, invite, member_by_email

# The subprocess imports this checkout's package (not another installed copy).
SOURCE_ROOT = str(Path(__file__).resolve().parents[2])
ENV = {**os.environ, "PYTHONPATH": SOURCE_ROOT}

READY = re.compile(r"Registration portal on (http://127\.0\.0\.1:\d+)/")


def test_the_portal_command_serves_the_pages_until_interrupted(
    sqlite_url: str, uow: UnitOfWork, admin: Operator, tmp_path: Path
) -> None:
    sent = invite(uow, admin, "zoe@example.org")
    process = subprocess.Popen(
        [sys.executable, "-m", "invite_desk", "portal", "--db", sqlite_url, "--port", "0"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
    )
    try:
        assert process.stdout is not None
        first_line = process.stdout.readline()
        ready = READY.search(first_line)
        assert ready, first_line
        base = ready.group(1)
        assert sqlite_url in first_line  # which database it serves
        client = HttpClient()
        # No SMTP server set up: public registration says it cannot confirm addresses.
        unavailable = client.get(f"{base}/register")
        assert unavailable.status == 503 and "registration by email confirmation is unavailable" \
            in unavailable.text
        page = client.get(f"{base}/join/{sent.token}")
        assert page.status == 200
        done = client.post(f"{base}/join/{sent.token}", {
            "csrf_token": csrf_from(page.text), "first_name": "Zoë", "last_name": "Martin",
            "password": PASSWORD, "password_confirmation": PASSWORD})
        assert done.status == 200 and "Welcome to Harbour Rowing Club" in done.text
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "GET /join/<redacted>" in err and "POST /join/<redacted>" in err
    assert sent.token not in err and sent.token not in out
    member = member_by_email(uow, "zoe@example.org")
    assert member is not None and member.referred_by_id == admin.member_id


def test_a_port_in_use_is_a_clear_error(sqlite_url: str, admin: Operator, tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "invite_desk", "portal", "--db", sqlite_url,
             "--port", str(port)],
            cwd=tmp_path, capture_output=True, text=True, timeout=60, env=ENV,
        )
    assert result.returncode == 1
    assert f"Port {port} is in use by another program" in result.stderr
