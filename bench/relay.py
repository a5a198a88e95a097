"""A relay across the internet: every reply of the SMTP sink waits 25 ms.

Sends a batch through Invite Desk's outbox over K connections (ParallelSender), and in the same
run the same prepared messages with bare smtplib over K connections (baseline) and over one
connection (sequential). One JSON line named "relay": value (messages/s), baseline, ratio,
sequential, speedup (value / sequential).

The sink runs in its own process (`python -m bench.relay --serve PORT`), so the client has the
GIL to itself. The sequential rate is measured on a slice of the batch (it is steady and a
full 2,000 at ~10/s would take minutes).
"""

from __future__ import annotations

import argparse
import asyncio
import smtplib
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.common import fresh_database, result
from invite_desk.services import mail_settings, organization
from invite_desk.services.invitations.importing import InviteeInput
from invite_desk.services.invitations.parallel import ParallelSender, smtp_lanes
from invite_desk.services.invitations.preflight import run_preflight
from invite_desk.services.invitations.queueing import queue_invitations
from invite_desk.services.invitations.rendering import InvitationContent, build_invitation_message
from invite_desk.services.models import utcnow

DELAY = 0.025
CONNECTIONS = 8


def run(quick: bool = False, *, count: int | None = None,
        connections: int = CONNECTIONS, delay: float = DELAY) -> list[dict[str, Any]]:
    count = count or (120 if quick else 2_000)
    sequential_count = max(20, count // 20)
    with tempfile.TemporaryDirectory() as folder, slow_sink(delay) as (host, port):
        uow, admin = fresh_database(f"sqlite:///{Path(folder) / 'relay.sqlite3'}")
        mail_settings.update_mail_settings(uow, admin, {
            "host": host, "port": port, "security": "none", "from_address": "bench@example.org",
            "from_name": "Bench Federation", "rate_per_minute": 0, "preset": "relay",
            "connections": connections,
        })
        rows = [InviteeInput(i + 1, f"relay{i:05d}@example.org", f"Invitee {i}")
                for i in range(count)]
        pre = run_preflight(uow, admin.organization_id, rows)
        queue_invitations(uow, admin, pre.ready, personal_message="See you on the water!",
                          source="csv")
        mail = mail_settings.get_mail_settings(uow, admin.organization_id)

        org = organization.get_organization(uow, admin.organization_id)
        templates = mail_settings.get_templates(uow, admin.organization_id)
        prepared = []
        for row in pre.ready:
            content = InvitationContent(row.email, row.name, admin.name,
                                        "See you on the water!", utcnow())
            message, _ = build_invitation_message(org, mail, templates, content, "x" * 43)
            prepared.append((row.email, message.as_bytes()))

        baseline = count / _bare(host, port, mail.from_address, prepared, connections)
        sequential = sequential_count / _bare(host, port, mail.from_address,
                                              prepared[:sequential_count], 1)

        started = time.perf_counter()
        report = ParallelSender(uow, smtp_lanes(mail, None),
                                organization_id=admin.organization_id).run()
        elapsed = time.perf_counter() - started
        assert report.sent == count and not report.error, report
        value = count / elapsed
        uow.engine.dispose()
    line = result("relay", value, "messages/s", baseline, messages=count,
                 connections=connections, reply_delay_ms=round(delay * 1000, 1),
                 sequential=round(sequential, 3), speedup=round(value / sequential, 3),
                 sequential_messages=sequential_count,
                 baseline_name=f"bare smtplib, same prepared messages, {connections} connections")
    return [line]


def _bare(host: str, port: int, sender: str, prepared: list[tuple[str, bytes]],
          connections: int) -> float:
    """Seconds bare smtplib takes for `prepared` over `connections` connections (threads
    taking the next message from a shared index)."""
    lock = threading.Lock()
    position = [0]

    def worker() -> None:
        with smtplib.SMTP(host, port, timeout=30) as smtp:
            while True:
                with lock:
                    index = position[0]
                    position[0] += 1
                if index >= len(prepared):
                    return
                to, raw = prepared[index]
                smtp.sendmail(sender, [to], raw)

    threads = [threading.Thread(target=worker) for _ in range(connections)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


@contextmanager
def slow_sink(delay: float) -> Iterator[tuple[str, int]]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.relay", "--serve", str(port), "--delay", str(delay)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.05)
        yield "127.0.0.1", port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def serve(port: int, delay: float) -> None:
    """An aiosmtpd sink whose every reply (greeting, EHLO, MAIL, RCPT, DATA, end) waits."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import SMTP

    class SlowSMTP(SMTP):
        async def push(self, status: Any) -> None:
            await asyncio.sleep(delay)
            await super().push(status)

    class Sink:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
            return "250 2.0.0 OK"

    class SlowController(Controller):
        def factory(self) -> SMTP:
            return SlowSMTP(self.handler, **self.SMTP_kwargs)

    controller = SlowController(Sink(), hostname="127.0.0.1", port=port, ready_timeout=20)
    controller.start()
    try:
        threading.Event().wait()
    finally:
        controller.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.relay")
    parser.add_argument("--serve", type=int, required=True)
    parser.add_argument("--delay", type=float, default=DELAY)
    args = parser.parse_args()
    serve(args.serve, args.delay)
