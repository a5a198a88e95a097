"""The portal as deployed: `invite-desk portal` processes (waitress) in their own processes.

A burst of 100 registrations stays within bounded memory with every attempt counted; two
processes on one PostgreSQL or MariaDB database share the bad-token limit and the sessions."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import urllib.parse
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import func, select

from invite_desk.services import auth, db
from invite_desk.services.models import RateLimitCounter
from invite_desk.services.operator import Operator
from invite_desk.services.uow import UnitOfWork
from tests.portal_client import HttpClient, csrf_from
from tests.registration_fixtures import PASSWORD, enable_confirmation_email, invite, member_by_email
from tests.smtp_server import LoopbackSmtpServer

SOURCE_ROOT = str(Path(__file__).resolve().parents[2])
READY = re.compile(r"Registration portal on (http://127\.0\.0\.1:\d+)/")
RSS_LIMIT_MB = 300


@contextmanager
def portal_process(db_url: str, cwd: Path, *extra: str) -> Iterator[tuple[str, int]]:
    """`invite-desk portal` on a free port; yields its base URL and process id."""
    process = subprocess.Popen(
        [sys.executable, "-m", "invite_desk", "portal", "--db", db_url, "--port", "0", *extra],
        cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": SOURCE_ROOT},
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        ready = READY.search(line)
        assert ready, line + (process.stderr.read() if process.stderr else "")
        yield ready.group(1), process.pid
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()


def _status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(field)


@pytest.mark.slow
def test_a_burst_of_registrations_stays_in_bounded_memory_and_is_counted(
    sqlite_url: str, uow: UnitOfWork, admin: Operator, smtp_server: LoopbackSmtpServer,
    tmp_path: Path,
) -> None:
    enable_confirmation_email(uow, admin, smtp_server)
    with portal_process(sqlite_url, tmp_path, "--proxy-hops", "1") as (base, pid):
        browser = HttpClient()
        csrf = csrf_from(browser.get(f"{base}/register").text)
        cookie = "; ".join(f"{c.name}={c.value}" for c in browser.cookies)
        before_mb = _status_kb(pid, "VmRSS") / 1024

        def post(i: int) -> int:
            data = urllib.parse.urlencode({
                "csrf_token": csrf, "email": f"burst{i}@example.org", "first_name": "B",
                "password": PASSWORD, "password_confirmation": PASSWORD}).encode()
            request = urllib.request.Request(f"{base}/register", data=data, method="POST")
            request.add_header("Cookie", cookie)
            # A botnet: every request from its own address, so the per-client limit does not
            # stop them before the hash.
            request.add_header("X-Forwarded-For", f"198.51.{i // 250}.{i % 250 + 1}")
            opener = urllib.request.build_opener(_NoRedirect())
            try:
                # Generous: on a loaded machine the burst queues behind two hash slots.
                with opener.open(request, timeout=180) as response:
                    return int(response.status)
            except urllib.error.HTTPError as error:
                return int(error.code)

        with ThreadPoolExecutor(max_workers=100) as pool:
            statuses = list(pool.map(post, range(100)))
        peak_mb = _status_kb(pid, "VmHWM") / 1024
    print(f"portal RSS before {before_mb:.0f} MB, peak {peak_mb:.0f} MB; statuses "
          f"{sorted(set(statuses))}")
    assert peak_mb < RSS_LIMIT_MB
    assert set(statuses) <= {303, 503}, statuses  # accepted, or "busy, submit again"
    with uow:
        counted = uow.session.scalar(select(func.sum(RateLimitCounter.hits)).where(
            RateLimitCounter.key.like("register:%")))
    assert counted == 100


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


@pytest.mark.slow
def test_two_portal_processes_on_one_server_database_count_and_sign_as_one(
    server_db_url: str, tmp_path: Path
) -> None:
    engine = db.make_engine(server_db_url)
    db.upgrade_to_head(engine)
    uow = UnitOfWork(engine)
    admin = auth.setup_organization(
        uow, organization_name="Harbour Rowing Club", description="",
        admin_email="ada.admin@example.org", admin_first_name="Ada", admin_last_name="Admin",
        password="an admin password", registration_base_url="https://join.example.org")
    sent = invite(uow, admin, "zoe@example.org")
    try:
        with portal_process(server_db_url, tmp_path) as (first, _), \
                portal_process(server_db_url, tmp_path) as (second, _):
            client = HttpClient()
            # A form from process A is accepted by process B (one session key).
            page = client.get(f"{first}/join/{sent.token}")
            assert page.status == 200
            done = client.post(f"{second}/join/{sent.token}", {
                "csrf_token": csrf_from(page.text), "first_name": "Zoë", "last_name": "M",
                "password": PASSWORD, "password_confirmation": PASSWORD})
            assert done.status == 200 and "Welcome" in done.text, done.text
            # The bad-token limit (10) counts across both processes.
            for i in range(10):
                base = first if i % 2 else second
                assert client.get(f"{base}/join/guess{i:040d}").status == 404
            assert client.get(f"{first}/join/guess-eleven-xxxxxxxxxxxxxxx").status == 429
            assert client.get(f"{second}/join/guess-eleven-xxxxxxxxxxxxxxx").status == 429
        member = member_by_email(uow, "zoe@example.org")
        assert member is not None and member.referred_by_id == admin.member_id
    finally:
        engine.dispose()

