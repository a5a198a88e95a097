"""Shared rate-limit counters on every backend, and a full password-hash gate or a locked
database answered with the form kept (503), never an error page."""

from __future__ import annotations

import threading

import pytest
from flask import Flask
from sqlalchemy import Engine, func, select

from invite_desk.services.models import RateLimitCounter
from invite_desk.services.operator import Operator
from invite_desk.services.registration.busy import hash_gate
from invite_desk.services.registration.limits import DatabaseRateLimiter, shared_secret
from invite_desk.services.uow import UnitOfWork
from tests.integration.test_portal_hardening import _hold_write_lock
from tests.portal_client import csrf_from, portal_app
from tests.registration_fixtures import (
    PASSWORD,
    enable_confirmation_email,
    invite,
    member_by_email,
)
from tests.smtp_server import LoopbackSmtpServer


def test_fixed_window_counters_are_shared_and_pruned(any_uow: UnitOfWork) -> None:
    now = [1_000_000.0]
    first = DatabaseRateLimiter(any_uow, "t", 3, 60, clock=lambda: now[0])
    second = DatabaseRateLimiter(any_uow, "t", 3, 60, clock=lambda: now[0])  # another process
    assert [first.hit("1.2.3.4"), second.hit("1.2.3.4"), first.hit("1.2.3.4")] == [1, 2, 3]
    assert first.blocked("1.2.3.4") and second.blocked("1.2.3.4")
    assert 0 < second.retry_after("1.2.3.4") <= 60
    assert not first.blocked("5.6.7.8")
    now[0] += 60  # the next window
    assert not second.blocked("1.2.3.4") and second.hit("1.2.3.4") == 1
    assert first.prune() >= 0
    with any_uow:
        windows = any_uow.session.scalar(select(func.count()).select_from(RateLimitCounter))
    assert windows is not None and windows <= 2


def test_pruning_uses_the_limiters_clock_not_the_wall_clock(
    any_uow: UnitOfWork, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The opportunistic prune (one hit in PRUNE_EVERY) once deleted the current window of a
    limiter whose clock differs from the wall clock, so a blocked key came unblocked."""
    from invite_desk.services.registration import limits

    monkeypatch.setattr(limits.random, "randrange", lambda n: 0)  # prune on every hit
    now = [1_000_000.0]
    limiter = DatabaseRateLimiter(any_uow, "p", 3, 60, clock=lambda: now[0])
    assert [limiter.hit("9.9.9.9") for _ in range(3)] == [1, 2, 3]
    assert limiter.blocked("9.9.9.9")


def test_the_session_secret_is_made_once(any_uow: UnitOfWork) -> None:
    assert shared_secret(any_uow) == shared_secret(any_uow)
    assert len(shared_secret(any_uow)) >= 32


def test_a_full_hash_gate_answers_busy_and_keeps_the_form(
    engine: Engine, uow: UnitOfWork, admin: Operator, smtp_server: LoopbackSmtpServer
) -> None:
    enable_confirmation_email(uow, admin, smtp_server)
    client = portal_app(engine, uow, hash_concurrency=1, hash_wait=0.2).test_client()
    csrf = csrf_from(client.get("/register").get_data(as_text=True))
    with hash_gate.slot():  # another registration is hashing
        posted = client.post("/register", data={
            "csrf_token": csrf, "email": "pat@example.org", "first_name": "Pat",
            "last_name": "Busy", "password": PASSWORD, "password_confirmation": PASSWORD})
    body = posted.get_data(as_text=True)
    assert posted.status_code == 503 and posted.headers["Retry-After"]
    assert "registering just now" in body
    assert 'value="pat@example.org"' in body and 'value="Busy"' in body
    assert PASSWORD not in body
    with uow:  # the attempt was counted before the hash
        assert uow.session.scalar(select(func.sum(RateLimitCounter.hits))) == 1


@pytest.mark.slow
def test_an_invitation_form_on_a_locked_database_comes_back_with_503(
    sqlite_url: str, engine: Engine, uow: UnitOfWork, admin: Operator
) -> None:
    sent = invite(uow, admin, "zoe@example.org")
    app: Flask = portal_app(engine, uow, busy_budget=1.0)
    client = app.test_client()
    csrf = csrf_from(client.get(f"/join/{sent.token}").get_data(as_text=True))
    started = threading.Event()
    holder = threading.Thread(target=_hold_write_lock,
                              args=(sqlite_url.removeprefix("sqlite:///"), 14.0, started))
    holder.start()
    assert started.wait(5)
    try:
        posted = client.post(f"/join/{sent.token}", data={
            "csrf_token": csrf, "first_name": "Zoë", "last_name": "Patient",
            "password": PASSWORD, "password_confirmation": PASSWORD})
        answered_while_locked = holder.is_alive()
    finally:
        holder.join()
    body = posted.get_data(as_text=True)
    assert posted.status_code == 503, body
    assert answered_while_locked  # it did not wait for the lock to go
    assert "busy" in body and 'value="Patient"' in body and PASSWORD not in body
    assert member_by_email(uow, "zoe@example.org") is None
    # Once the lock is gone the same form goes through.
    again = client.post(f"/join/{sent.token}", data={
        "csrf_token": csrf, "first_name": "Zoë", "last_name": "Patient",
        "password": PASSWORD, "password_confirmation": PASSWORD})
    assert again.status_code == 303
