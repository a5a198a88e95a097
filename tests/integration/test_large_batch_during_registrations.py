"""Issue 8, class 9: a 200,000-row batch is queued while 50 invitees register on the portal.

Before, queueing was one long SQLite transaction and every registration during it failed with
HTTP 500 "database is locked", losing the form. Now the batch is written in short chunks and
the portal waits and retries on a busy database, so every registration goes through.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from flask import Flask
from sqlalchemy import Engine, func, select

from invite_desk.services import settings as settings_service
from invite_desk.services.invitations.preflight import PreflightRow, RowStatus
from invite_desk.services.invitations.queueing import queue_invitations
from invite_desk.services.models import Invitation, InvitationStatus, Member
from invite_desk.services.operator import Operator
from invite_desk.services.uow import UnitOfWork
from tests.portal_client import HttpClient, csrf_from, portal_app, running_portal
from tests.registration_fixtures import PASSWORD, invite

BATCH = 200_000
REGISTRANTS = 50


@pytest.fixture
def app(engine: Engine, uow: UnitOfWork) -> Flask:
    return portal_app(engine, uow)


@pytest.mark.slow
def test_registrations_during_a_200000_row_batch_all_go_through(
    uow: UnitOfWork, admin: Operator, app: Flask
) -> None:
    settings_service.update_settings(uow, admin, {"daily_limit_per_inviter": 0})
    links = [invite(uow, admin, f"joiner{i:02d}@example.net") for i in range(REGISTRANTS)]
    rows = [PreflightRow(i + 1, f"bulk{i:06d}@example.com", "", "", RowStatus.READY)
            for i in range(BATCH)]
    queued: dict[str, object] = {}
    queue_started = threading.Event()

    def queue() -> None:
        def progress(done: int, total: int) -> None:
            queue_started.set()

        started = time.monotonic()
        queued["batch"] = queue_invitations(uow, admin, rows, source="csv", label="bulk",
                                            progress=progress)
        queued["seconds"] = time.monotonic() - started

    def register(index: int) -> tuple[int, int]:
        client = HttpClient()
        url = f"{base}/join/{links[index].token}"
        shown = client.get(url)
        fields = {"csrf_token": csrf_from(shown.text), "first_name": f"Joiner{index}",
                  "last_name": "Test", "password": PASSWORD, "password_confirmation": PASSWORD}
        posted = client.post(url, fields, follow=False)
        return shown.status, posted.status

    with running_portal(app) as base:
        queuer = threading.Thread(target=queue, name="queue-200k")
        queuer.start()
        assert queue_started.wait(120), "queueing never started"
        # Registrations arrive while the batch is being written, a few at a time.
        with ThreadPoolExecutor(max_workers=8) as pool:
            answers = list(pool.map(register, range(REGISTRANTS)))
        still_queueing = queuer.is_alive()
        queuer.join(timeout=600)
    assert not queuer.is_alive()
    assert still_queueing, "the registrations did not overlap the queueing; make the batch larger"
    assert all(shown == 200 for shown, _ in answers), answers
    assert all(posted == 303 for _, posted in answers), answers  # 0 errors, 0 lost forms
    with uow:
        joined = uow.session.scalar(select(func.count()).select_from(Member).where(
            Member.email_normalized.like("joiner%@example.net")))
        accepted = uow.session.scalar(select(func.count()).select_from(Invitation).where(
            Invitation.status == InvitationStatus.ACCEPTED.value))
        in_outbox = uow.session.scalar(select(func.count()).select_from(Invitation).where(
            Invitation.status == InvitationStatus.QUEUED.value))
    assert joined == REGISTRANTS and accepted == REGISTRANTS
    assert in_outbox == BATCH
    batch = queued["batch"]
    assert getattr(batch, "queued") == BATCH  # noqa: B009 - a dataclass from another thread
