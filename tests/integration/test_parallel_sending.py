"""Issue 13: the outbox over K connections to a real loopback SMTP server.

Each lane claims its own row durably; the per-minute and daily caps are shared by all lanes.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from invite_desk.services import mail_settings
from invite_desk.services.invitations.importing import InviteeInput
from invite_desk.services.invitations.pacing import estimate_duration
from invite_desk.services.invitations.parallel import ParallelSender, smtp_lanes
from invite_desk.services.invitations.preflight import run_preflight
from invite_desk.services.invitations.queueing import queue_invitations
from invite_desk.services.invitations.sending import SendControl, SendProgress, describe
from invite_desk.services.mail_settings import MailSettings
from invite_desk.services.models import AuditLog, Invitation, utcnow
from invite_desk.services.operator import Operator
from invite_desk.services.settings import update_settings
from invite_desk.services.smtp.ratelimit import RateLimiter
from invite_desk.services.uow import UnitOfWork
from tests.smtp_server import LoopbackSmtpServer


def configure(uow: UnitOfWork, admin: Operator, server: LoopbackSmtpServer,
              **extra: object) -> MailSettings:
    update_settings(uow, admin, {"daily_limit_per_inviter": 0})
    values: dict[str, object] = {
        "host": server.host, "port": server.port, "security": "none",
        "from_address": "invitations@rowing.example", "from_name": "Rowing",
        "rate_per_minute": 0}
    values.update(extra)
    return mail_settings.update_mail_settings(uow, admin, values)


def queue(uow: UnitOfWork, admin: Operator, count: int, prefix: str = "m") -> list[str]:
    addresses = [f"{prefix}{i:04d}@example.org" for i in range(count)]
    pre = run_preflight(uow, admin.organization_id,
                        [InviteeInput(i + 1, a) for i, a in enumerate(addresses)])
    queue_invitations(uow, admin, pre.ready, source="csv")
    return addresses


def statuses(uow: UnitOfWork) -> dict[str, str]:
    with uow:
        return {i.email: i.status for i in uow.session.scalars(select(Invitation))}


def test_k_connections_send_everything_once_and_in_parallel(
    uow: UnitOfWork, admin: Operator, make_smtp_server: object,
) -> None:
    server = make_smtp_server(reply_delay=0.01)  # type: ignore[operator]
    mail = configure(uow, admin, server, connections=4)
    addresses = queue(uow, admin, 60)
    progress: list[SendProgress] = []
    sender = ParallelSender(uow, smtp_lanes(mail, None, timeout=5),
                            organization_id=admin.organization_id,
                            on_progress=progress.append)
    report = sender.run()

    assert (report.sent, report.failed, report.uncertain, report.error) == (60, 0, 0, "")
    assert not report.cancelled
    assert sender.lanes_started == 4 == mail.connection_count
    counts = server.recipient_counts()
    assert sorted(counts) == addresses and set(counts.values()) == {1}
    assert server.max_concurrent == 4  # the lanes really overlapped
    assert len({m.connection for m in server.messages}) == 4
    assert set(statuses(uow).values()) == {"sent"}
    with uow:  # one audit row per sent invitation, as with one connection
        assert len(list(uow.session.scalars(
            select(AuditLog).where(AuditLog.action == "invitation.sent")))) == 60
    assert progress[-1].sent == 60 and progress[-1].remaining == 0
    assert {p.last_email for p in progress if p.last_email} == set(addresses)


def test_rejections_and_retries_are_settled_per_row_across_lanes(
    uow: UnitOfWork, admin: Operator, smtp_server: LoopbackSmtpServer,
) -> None:
    mail = configure(uow, admin, smtp_server, connections=3)
    queue(uow, admin, 12)
    smtp_server.fail_recipient("m0003@example.org", 550)
    smtp_server.fail_recipient("m0007@example.org", 450, times=1)
    from invite_desk.services.smtp.transport import RetryPolicy
    report = ParallelSender(uow, smtp_lanes(mail, None, timeout=5),
                            organization_id=admin.organization_id,
                            retry=RetryPolicy(base_delay=0.05)).run()
    assert (report.sent, report.failed, report.retried) == (11, 1, 1)
    states = statuses(uow)
    assert states["m0003@example.org"] == "failed"
    assert states["m0007@example.org"] == "sent"
    assert smtp_server.count_for("m0007@example.org") == 1


def test_the_shared_per_minute_limit_holds_over_every_window(
    uow: UnitOfWork, admin: Operator, smtp_server: LoopbackSmtpServer,
) -> None:
    """A short window (1.5 s standing for a minute) so the measurement is quick: across 4
    lanes, no window of that length ever holds more than the limit, measured at the server."""
    mail = configure(uow, admin, smtp_server, connections=4)
    queue(uow, admin, 25)
    arrivals: list[float] = []
    lock = threading.Lock()
    original = smtp_server._store

    def timed(envelope, connection):  # type: ignore[no-untyped-def]
        with lock:
            arrivals.append(time.monotonic())
        return original(envelope, connection)

    smtp_server._store = timed  # type: ignore[method-assign]
    window, limit = 1.5, 10
    limiter = RateLimiter(limit, window=window)
    started = time.monotonic()
    report = ParallelSender(uow, smtp_lanes(mail, None, timeout=5),
                            organization_id=admin.organization_id, limiter=limiter).run()
    elapsed = time.monotonic() - started
    assert report.sent == 25
    arrivals.sort()
    for i, first in enumerate(arrivals):
        inside = [t for t in arrivals[i:] if t < first + window - 0.05]
        assert len(inside) <= limit, (i, len(inside))
    assert elapsed >= 2 * window - 0.1  # 25 at 10 per window needs two full waits
    assert elapsed < 2 * window + 2.0  # and the lanes did not wait needlessly


def test_the_daily_cap_stops_the_run_and_says_when_it_resumes(
    uow: UnitOfWork, admin: Operator, smtp_server: LoopbackSmtpServer,
) -> None:
    mail = configure(uow, admin, smtp_server, connections=3, per_day=10)
    first = queue(uow, admin, 4, prefix="early")
    report = ParallelSender(uow, smtp_lanes(mail, None, timeout=5),
                            organization_id=admin.organization_id).run()
    assert report.sent == 4 and report.deferred == 0
    # The earlier run was 20 hours ago: its four still count against the rolling day.
    earlier = utcnow() - timedelta(hours=20)
    with uow:
        uow.session.execute(update(Invitation).where(Invitation.email.in_(first))
                            .values(sent_at=earlier))
        uow.commit()
    queue(uow, admin, 9, prefix="late")
    report = ParallelSender(uow, smtp_lanes(mail, None, timeout=5),
                            organization_id=admin.organization_id).run()
    assert report.sent == 6 and report.deferred == 3 and report.daily_limit == 10
    assert report.resumes_at is not None
    assert abs((report.resumes_at - (earlier + timedelta(hours=24))).total_seconds()) < 1
    assert len(smtp_server.messages) == 10  # never more than the cap in 24 hours
    assert sorted(statuses(uow).values()).count("queued") == 3
    text = describe(report)
    assert "3 stay queued" in text and "daily limit of 10" in text
    local = report.resumes_at.astimezone()
    assert f"at {local:%H:%M}" in text
    # A third run the same day sends nothing and says the same.
    opened = smtp_server.connections
    again = ParallelSender(uow, smtp_lanes(mail, None, timeout=5),
                           organization_id=admin.organization_id).run()
    assert again.sent == 0 and again.deferred == 3 and len(smtp_server.messages) == 10
    assert smtp_server.connections == opened  # the capped run did not even connect


def test_a_new_run_counts_the_last_minute_of_the_previous_one(
    uow: UnitOfWork, admin: Operator, smtp_server: LoopbackSmtpServer,
) -> None:
    """Restarting does not burst past the per-minute limit: the sends of the last window,
    read from the database, fill the new run's limiter."""
    mail = configure(uow, admin, smtp_server, connections=2)
    queue(uow, admin, 5)
    ParallelSender(uow, smtp_lanes(mail, None, timeout=5),
                   organization_id=admin.organization_id).run()
    limiter = RateLimiter(5, window=30)
    ParallelSender(uow, smtp_lanes(mail, None, timeout=5), organization_id=admin.organization_id,
                   limiter=limiter).run()  # nothing left to send: only the seeding happens
    assert 25 < limiter.wait_time() <= 30
    assert RateLimiter(6, window=30).reserve() == 0.0


def test_cancel_stops_every_lane_at_its_safe_point(
    uow: UnitOfWork, admin: Operator, make_smtp_server: object,
) -> None:
    server = make_smtp_server(reply_delay=0.01)  # type: ignore[operator]
    mail = configure(uow, admin, server, connections=4)
    queue(uow, admin, 200)
    control = SendControl()

    def progress(p: SendProgress) -> None:
        if p.sent >= 20:
            control.cancel()

    report = ParallelSender(uow, smtp_lanes(mail, None, timeout=5),
                            organization_id=admin.organization_id, control=control,
                            on_progress=progress).run()
    assert report.cancelled and 20 <= report.sent < 200
    states = statuses(uow)
    assert "sending" not in states.values() and "uncertain" not in states.values()
    assert list(states.values()).count("sent") == report.sent == len(server.messages)


def test_pause_holds_every_lane_until_resume(
    uow: UnitOfWork, admin: Operator, smtp_server: LoopbackSmtpServer,
) -> None:
    mail = configure(uow, admin, smtp_server, connections=3)
    queue(uow, admin, 30)
    control = SendControl()
    paused_at: list[int] = []

    def progress(p: SendProgress) -> None:
        if p.sent >= 5 and not paused_at:
            control.pause()
            paused_at.append(p.sent)

    holder: list[int] = []
    thread = threading.Thread(target=lambda: holder.append(ParallelSender(
        uow, smtp_lanes(mail, None, timeout=5), organization_id=admin.organization_id,
        control=control, on_progress=progress).run().sent))
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not paused_at and time.monotonic() < deadline:
            time.sleep(0.01)
        assert paused_at, "the batch never reached 5 sent"
        # The lanes finish the message each had in flight: wait until nothing arrives for
        # 0.3 s (however busy the machine; the test resumes, not a timer racing the lanes).
        during, quiet_since = len(smtp_server.messages), time.monotonic()
        while time.monotonic() - quiet_since < 0.3 and time.monotonic() < deadline:
            time.sleep(0.01)
            if len(smtp_server.messages) != during:
                during, quiet_since = len(smtp_server.messages), time.monotonic()
        # At most what each lane had in flight, plus outcomes not reported yet (a lane
        # reports an outcome with its next claim, or before it waits).
        assert during <= paused_at[0] + 2 * 3
        time.sleep(0.5)
        assert len(smtp_server.messages) == during  # paused: every lane holds
        assert control.paused
    finally:
        control.resume()
        thread.join(30)
    assert holder == [30]


def test_a_refused_password_stops_the_batch_after_one_attempt(
    uow: UnitOfWork, admin: Operator, make_smtp_server: object,
) -> None:
    server = make_smtp_server(auth=("sender", "right"))  # type: ignore[operator]
    mail = configure(uow, admin, server, connections=4, username="sender")
    queue(uow, admin, 10)
    report = ParallelSender(uow, smtp_lanes(mail, "wrong", timeout=5),
                            organization_id=admin.organization_id).run()
    assert report.sent == 0 and "refused the user name or password" in report.error
    assert server.auth_failures == 1  # not one per connection (account lockouts)
    assert set(statuses(uow).values()) == {"queued"}


def test_estimate_duration_follows_connections_and_caps() -> None:
    relay = MailSettings(host="relay", from_address="a@b.org", rate_per_minute=0, preset="relay")
    m365 = MailSettings(host="smtp.office365.com", from_address="a@b.org", rate_per_minute=0,
                        preset="microsoft365")
    google = MailSettings(host="smtp.gmail.com", from_address="a@b.org", rate_per_minute=0,
                          preset="google")
    fast = estimate_duration(10_000, relay)
    assert fast.connections == 4 and fast.later == 0
    assert estimate_duration(10_000, MailSettings(host="r", from_address="a@b.org",
                                                  rate_per_minute=0, preset="relay",
                                                  connections=8)).seconds < fast.seconds
    slow = estimate_duration(3_000, m365)
    assert slow.per_minute == 30 and 98 * 60 <= slow.seconds <= 100 * 60
    assert "1 hour 40 minutes" in slow.text or "1 hour 39 minutes" in slow.text
    capped = estimate_duration(5_000, google, sent_last_24h=500)
    assert (capped.today, capped.later, capped.days) == (1_500, 3_500, 2)
    assert "3,500 stay queued" in capped.text
    assert estimate_duration(0, relay).seconds == 0


@pytest.mark.parametrize("k", [1, 2])
def test_one_or_two_connections_work_like_the_single_sender(
    uow: UnitOfWork, admin: Operator, smtp_server: LoopbackSmtpServer, k: int,
) -> None:
    mail = configure(uow, admin, smtp_server, connections=k)
    queue(uow, admin, 7)
    report = ParallelSender(uow, smtp_lanes(mail, None, timeout=5),
                            organization_id=admin.organization_id).run()
    assert report.sent == 7 and smtp_server.connections == k


def test_two_senders_with_k_lanes_each_on_one_database_never_send_twice(
    any_uow: UnitOfWork, make_smtp_server: Any,
) -> None:
    """Two desktops (two ParallelSenders, 3 lanes each) on the same SQLite, PostgreSQL or
    MariaDB database: the claim (UPDATE ... WHERE status = 'queued') gives each row to one."""
    from invite_desk.services import auth
    from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD

    admin = auth.setup_organization(
        any_uow, organization_name="Harbour Rowing Club", admin_email=ADMIN_EMAIL,
        admin_first_name="Ada", admin_last_name="Admin", password=ADMIN_PASSWORD,
        registration_base_url="https://join.example.org")
    server = make_smtp_server(reply_delay=0.003)
    mail = configure(any_uow, admin, server, connections=3)
    addresses = queue(any_uow, admin, 80, prefix="both")
    reports: list[Any] = []

    def desktop() -> None:
        reports.append(ParallelSender(UnitOfWork(any_uow.engine), smtp_lanes(mail, None, timeout=5),
                                      organization_id=admin.organization_id).run())

    threads = [threading.Thread(target=desktop) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sum(r.sent for r in reports) == 80 and all(not r.error for r in reports)
    assert sorted(server.recipient_counts()) == addresses
    assert set(server.recipient_counts().values()) == {1}
    assert set(statuses(any_uow).values()) == {"sent"}
    assert server.max_concurrent <= 6


def test_the_cli_says_the_estimate_and_sends_over_the_connections_asked_for(
    uow: UnitOfWork, admin: Operator, make_smtp_server: Any, sqlite_url: str,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    from invite_desk import app, cli
    from invite_desk.services.credentials import MemoryCredentialStore
    from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD

    monkeypatch.setattr(app, "default_credentials", MemoryCredentialStore)
    server = make_smtp_server(reply_delay=0.003)
    configure(uow, admin, server, preset="microsoft365", rate_per_minute=0)
    queue(uow, admin, 12, prefix="cli")
    monkeypatch.setenv("INVITE_DESK_OPERATOR_PASSWORD", ADMIN_PASSWORD)
    code = cli.main(["--db", sqlite_url, "send", "--operator", ADMIN_EMAIL, "--connections", "2"])
    out = capsys.readouterr().out
    assert code == 0, out
    # Microsoft 365's 30 a minute holds even though the form's own limit is 0 (none).
    assert "estimate: 12 invitations: a few seconds at 30 a minute over 2 connections." in out
    assert out.count("sent: cli") == 12 and server.max_concurrent == 2
    with pytest.raises(SystemExit):
        cli.main(["--db", sqlite_url, "send", "--operator", ADMIN_EMAIL, "--connections", "99"])
