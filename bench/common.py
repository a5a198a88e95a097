"""Shared set-up for benchmarks: a throwaway organization, a sink SMTP server in another process."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from invite_desk.services import auth, db, mail_settings, settings
from invite_desk.services.operator import Operator
from invite_desk.services.uow import UnitOfWork


def result(name: str, value: float, unit: str, baseline: float | None = None,
           **extra: Any) -> dict[str, Any]:
    row: dict[str, Any] = {"name": name, "value": round(value, 3), "unit": unit,
                           "baseline": None if baseline is None else round(baseline, 3),
                           "ratio": None if not baseline else round(value / baseline, 3)}
    row.update(extra)
    return row


def fresh_database(url: str) -> tuple[UnitOfWork, Operator]:
    engine = db.make_engine(url)
    db.upgrade_to_head(engine)
    uow = UnitOfWork(engine)
    admin = auth.setup_organization(
        uow, organization_name="Bench Federation", admin_email="bench@example.org",
        admin_first_name="Bench", admin_last_name="Admin", password="bench-password-1",
        registration_base_url="https://join.example.org",
    )
    settings.update_settings(uow, admin, {"daily_limit_per_inviter": 0})
    return uow, admin


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def sink_smtp_server() -> Iterator[tuple[str, int]]:
    """aiosmtpd's Sink handler in its own process, so the client has the GIL to itself."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{port}",
         "-c", "aiosmtpd.handlers.Sink"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield "127.0.0.1", port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def configure_smtp(uow: UnitOfWork, admin: Operator, host: str, port: int) -> None:
    mail_settings.update_mail_settings(uow, admin, {
        "host": host, "port": port, "security": "none", "from_address": "bench@example.org",
        "from_name": "Bench Federation", "rate_per_minute": 0,
    })
