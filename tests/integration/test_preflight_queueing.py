"""Pre-flight verdicts and queueing (issue 8): international addresses, re-runs after a crash,
invite-only sponsors, and a large batch written in short chunks that a re-run resumes."""

from __future__ import annotations

import re
import sqlite3
import threading
import time
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select, update

from invite_desk.services import mail_settings, organization
from invite_desk.services.email.message import build_message
from invite_desk.services.email.raw import _address_header
from invite_desk.services.email.templates import RenderedEmail
from invite_desk.services.errors import PermissionDenied
from invite_desk.services.invitations.importing import InviteeInput, parse_pasted
from invite_desk.services.invitations.preflight import (
    STATUS_LABELS,
    PreflightRow,
    RowStatus,
    check_address,
    needs_smtputf8,
    run_preflight,
)
from invite_desk.services.invitations.queueing import (
    QUEUING,
    DailyLimitReached,
    queue_invitations,
)
from invite_desk.services.invitations.sending import OutboxSender
from invite_desk.services.models import Batch, Invitation, InvitationStatus, Member, MemberStatus
from invite_desk.services.operator import Operator
from invite_desk.services.roles import Role
from invite_desk.services.smtp.transport import SmtpTransport
from invite_desk.services.uow import UnitOfWork
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, MakeOperator
from tests.portal_client import LOGO, HttpClient, csrf_from, portal_app, running_portal
from tests.registration_fixtures import PASSWORD, invite, member_by_email, set_policy
from tests.smtp_server import LoopbackSmtpServer


def check(uow: UnitOfWork, admin: Operator, text: str, inviter_id: uuid.UUID | None = None):  # type: ignore[no-untyped-def]
    return run_preflight(uow, admin.organization_id, parse_pasted(text).rows, inviter_id=inviter_id)


def invitations(uow: UnitOfWork) -> list[tuple[str, str]]:
    with uow:
        return sorted((i.email, i.status) for i in uow.session.scalars(select(Invitation)))


# -- item 2: an address only an SMTPUTF8 server takes ------------------------------------------

def test_a_non_ascii_local_part_gets_its_own_verdict_and_is_queued_with_the_ready(
    uow: UnitOfWork, admin: Operator
) -> None:
    pre = check(uow, admin, "josé@example.org\nann@bücher.example.org\nbo@example.org\n")
    assert [r.status for r in pre.rows] == [RowStatus.NEEDS_SMTPUTF8, RowStatus.READY, RowStatus.READY]
    row = pre.rows[0]
    assert STATUS_LABELS[row.status] == "Ready if the mail server accepts international addresses"
    assert "SMTPUTF8" in row.reason and "fails" in row.reason
    assert len(pre.ready) == 3
    batch = queue_invitations(uow, admin, pre.rows, source="paste")
    assert batch.queued == 3
    assert ("josé@example.org", "queued") in invitations(uow)


@pytest.mark.parametrize(
    ("address", "status", "why"),
    [
        ('"john doe"@example.org', RowStatus.INVALID, "Quoting"),
        ("ann@[192.0.2.1]", RowStatus.INVALID, "bracketed IP"),
        ("ann@bücher.example.org", RowStatus.READY, ""),  # IDN domain: goes as punycode
        ("ANN@EXAMPLE.ORG", RowStatus.READY, ""),
        ("x" * 64 + "@example.org", RowStatus.READY, ""),
        ("x" * 65 + "@example.org", RowStatus.INVALID, "at most 64"),
        ("é" * 33 + "@example.org", RowStatus.INVALID, "at most 64"),  # 66 bytes
        ("a@" + ".".join(["b" * 63] * 4) + ".org", RowStatus.INVALID, "too long"),
        ("ann@localhost", RowStatus.INVALID, "period"),
        ("ann@example.test", RowStatus.INVALID, "special-use"),
        ("zoë@exämple.org", RowStatus.NEEDS_SMTPUTF8, "SMTPUTF8"),
    ],
)
def test_each_class_of_address_gets_a_decided_verdict(
    uow: UnitOfWork, admin: Operator, address: str, status: RowStatus, why: str
) -> None:
    [row] = run_preflight(uow, admin.organization_id, [InviteeInput(1, address)]).rows
    assert row.status is status, row.reason
    assert why in row.reason


_RENDERED = RenderedEmail(subject="Join us", text="Hello", html="<p>Hello</p>")


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.emails(), st.text(max_size=40).map(lambda t: t + "@example.org"),
                 st.from_regex(r"[a-zA-Zéüß.+_-]{1,70}@[a-zäö-]{1,20}\.(org|de|com)", fullmatch=True)))
def test_every_address_preflight_accepts_is_one_the_message_builder_accepts(text: str) -> None:
    """Ready means the builder takes it as it is; a non-ASCII local part is the separate
    NEEDS_SMTPUTF8 verdict (only a server offering SMTPUTF8 takes it)."""
    address, _ = check_address(text)
    if address is None or needs_smtputf8(address):
        return
    message, _ = build_message(_RENDERED, from_address="invitations@rowing.example",
                               from_name="Club", to_address=address, to_name="Invitee",
                               message_id_domain="rowing.example")
    assert message["To"]
    assert _address_header("Invitee", address)


# -- item 3: uncertain, sending and queued invitations are already invited ---------------------

@pytest.mark.parametrize(
    ("status", "verdict", "words"),
    [
        (InvitationStatus.UNCERTAIN, RowStatus.UNCERTAIN, "check with the invitee, then resend"),
        (InvitationStatus.SENDING, RowStatus.QUEUED, "already queued"),
        (InvitationStatus.QUEUED, RowStatus.QUEUED, "already queued"),
        (InvitationStatus.SENT, RowStatus.PENDING, "pending"),
    ],
)
def test_an_address_with_an_unfinished_invitation_is_not_queued_again(
    uow: UnitOfWork, admin: Operator, status: InvitationStatus, verdict: RowStatus, words: str
) -> None:
    invite(uow, admin, "zoe@example.org", status=status)
    pre = check(uow, admin, "zoe@example.org\nsam@example.org\n")
    assert [r.status for r in pre.rows] == [verdict, RowStatus.READY]
    assert words in pre.rows[0].reason
    # Even rows handed to queueing as ready are re-checked and skipped.
    forced = [r.__class__(r.row, r.email, r.name, r.message, RowStatus.READY) for r in pre.rows]
    batch = queue_invitations(uow, admin, forced, source="paste")
    assert batch.queued == 1 and [r.status for r in batch.skipped] == [verdict]
    with uow:
        assert uow.session.scalar(select(func.count()).select_from(Invitation)
                                  .where(Invitation.email_normalized == "zoe@example.org")) == 1


def test_rerunning_the_same_send_command_after_a_crash_mails_nobody_twice(
    uow: UnitOfWork, admin: Operator, smtp_server: LoopbackSmtpServer, sqlite_url: str,
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    """The reported case: `invite-desk send --csv FILE` run again after a kill."""
    from invite_desk import cli

    set_policy(uow, admin, daily_limit_per_inviter=0)
    mail_settings.update_mail_settings(uow, admin, {
        "host": smtp_server.host, "port": smtp_server.port, "security": "none",
        "from_address": "invitations@rowing.example", "from_name": "Rowing", "rate_per_minute": 0})
    csv_file = tmp_path / "invitees.csv"
    csv_file.write_text("email,name\nzoe@example.org,Zoë\nsam@example.org,Sam\n"
                        "kim@example.org,Kim\n", encoding="utf-8")
    command = ["--db", sqlite_url, "send", "--operator", ADMIN_EMAIL, "--csv", str(csv_file)]
    monkeypatch.setenv("INVITE_DESK_OPERATOR_PASSWORD", ADMIN_PASSWORD)
    assert cli.main(command) == 0
    # The kill: Zoë's message was in flight when the run stopped (the server had it).
    with uow:
        uow.session.execute(update(Invitation).where(Invitation.email == "zoe@example.org")
                            .values(status=InvitationStatus.UNCERTAIN.value))
        uow.commit()
    before = smtp_server.recipient_counts()
    capsys.readouterr()

    cli.main(command)

    out = capsys.readouterr().out
    assert "zoe@example.org: Delivery uncertain" in out and "check with the invitee" in out
    assert "kim@example.org: Already invited" in out
    after = smtp_server.recipient_counts()
    assert after == before
    assert set(after.values()) == {1} and len(after) == 3
    assert invitations(uow).count(("zoe@example.org", "uncertain")) == 1


def test_rerunning_the_same_list_queues_nothing_twice(uow: UnitOfWork, admin: Operator) -> None:
    text = "zoe@example.org\nsam@example.org\n"
    queue_invitations(uow, admin, check(uow, admin, text).rows, source="paste")
    again = check(uow, admin, text)
    assert [r.status for r in again.rows] == [RowStatus.QUEUED, RowStatus.QUEUED]
    assert again.ready == ()


# -- item 5: invite-only with N >= 2 -----------------------------------------------------------

def _configure(uow: UnitOfWork, admin: Operator, smtp: LoopbackSmtpServer, portal_url: str) -> None:
    organization.update_organization(uow, admin, {
        "registration_base_url": portal_url, "logo": LOGO, "logo_mime": "image/png"})
    mail_settings.update_mail_settings(uow, admin, {
        "host": smtp.host, "port": smtp.port, "security": "none",
        "from_address": "invitations@rowing.example", "from_name": "Harbour Rowing Club",
        "rate_per_minute": 0})


def _send_all(uow: UnitOfWork, admin: Operator) -> None:
    settings_ = mail_settings.get_mail_settings(uow, admin.organization_id)
    report = OutboxSender(uow, SmtpTransport(settings_.smtp_config(timeout=5), None),
                          organization_id=admin.organization_id).run()
    assert report.failed == 0


def _links(smtp: LoopbackSmtpServer, portal_url: str) -> list[str]:
    found = []
    for received in smtp.messages:
        body = received.message.get_body(("plain",))
        assert body is not None
        match = re.search(re.escape(portal_url) + r"/join/[A-Za-z0-9_-]+", body.get_content())
        if match:
            found.append(match.group(0))
    return found


def test_a_second_member_is_sponsor_2_of_2_and_the_invitee_registers_through_the_portal(
    engine: Engine, uow: UnitOfWork, admin: Operator, make_operator: MakeOperator,
    smtp_server: LoopbackSmtpServer,
) -> None:
    set_policy(uow, admin, number_of_referrals_needed_for_signup=2)
    bob = make_operator(Role.ADMIN_TENANT)
    line = "Zoë Martin <zoe@example.org>"
    with running_portal(portal_app(engine, uow)) as portal_url:
        _configure(uow, admin, smtp_server, portal_url)
        first = check(uow, admin, line, inviter_id=admin.member_id)
        assert first.rows[0].status is RowStatus.READY
        assert first.rows[0].reason.startswith("Sponsor 1 of 2")
        queue_invitations(uow, admin, first.ready, source="paste")
        _send_all(uow, admin)
        [link] = _links(smtp_server, portal_url)
        browser = HttpClient()
        page = browser.get(link)
        assert "1 more member needs to invite zoe@example.org" in page.text
        assert 'name="password"' not in page.text

        # The same member again is still "already invited"; another member is sponsor 2 of 2.
        same = check(uow, admin, line, inviter_id=admin.member_id)
        assert same.rows[0].status is RowStatus.PENDING
        second = check(uow, admin, line, inviter_id=bob.member_id)
        assert second.rows[0].status is RowStatus.READY
        assert second.rows[0].reason.startswith("Sponsor 2 of 2")
        batch = queue_invitations(uow, bob, second.ready, source="paste")
        assert batch.queued == 1
        _send_all(uow, admin)
        assert len(_links(smtp_server, portal_url)) == 2

        page = browser.get(link)
        assert page.status == 200 and 'name="password"' in page.text
        done = browser.post(link, {"csrf_token": csrf_from(page.text), "first_name": "Zoë",
                                   "last_name": "Martin", "password": PASSWORD,
                                   "password_confirmation": PASSWORD})
        assert done.status == 200 and done.url == f"{portal_url}/welcome"
    member = member_by_email(uow, "zoe@example.org")
    assert member is not None and member.status == MemberStatus.ACTIVE.value
    # A third member now finds a member, not a sponsor slot.
    carol = make_operator(Role.ADMIN_TENANT)
    assert check(uow, admin, line, inviter_id=carol.member_id).rows[0].status is RowStatus.MEMBER


def test_enough_sponsors_already_is_pending_and_queueing_rechecks_for_the_credited_member(
    uow: UnitOfWork, admin: Operator, make_operator: MakeOperator
) -> None:
    set_policy(uow, admin, number_of_referrals_needed_for_signup=2)
    bob, carol = make_operator(Role.ADMIN_TENANT), make_operator(Role.ADMIN_TENANT)
    invite(uow, admin, "zoe@example.org")
    invite(uow, bob, "zoe@example.org")
    row = check(uow, admin, "zoe@example.org", inviter_id=carol.member_id).rows[0]
    assert row.status is RowStatus.PENDING and "enough to register" in row.reason
    # Checked for Carol, queued on behalf of Admin, who already invited: skipped.
    sam = check(uow, admin, "sam@example.org", inviter_id=carol.member_id).rows[0]
    invite(uow, admin, "sam@example.org")
    assert sam.status is RowStatus.READY
    batch = queue_invitations(uow, carol, [sam], inviter_id=admin.member_id, source="paste")
    assert batch.queued == 0 and batch.skipped[0].status is RowStatus.PENDING
    batch = queue_invitations(uow, carol, [sam], source="paste")
    assert batch.queued == 1


def test_without_invite_only_any_live_invitation_blocks(
    uow: UnitOfWork, admin: Operator, make_operator: MakeOperator
) -> None:
    bob = make_operator(Role.ADMIN_TENANT)
    invite(uow, admin, "zoe@example.org")
    row = check(uow, admin, "zoe@example.org", inviter_id=bob.member_id).rows[0]
    assert row.status is RowStatus.PENDING


# -- item 9: a large batch in short chunks, resumable ------------------------------------------

def _rows(uow: UnitOfWork, admin: Operator, n: int, tag: str = "p") -> list:  # type: ignore[type-arg]
    set_policy(uow, admin, daily_limit_per_inviter=0)  # no limit (tested on its own below)
    text = "\n".join(f"{tag}{i}@example.org" for i in range(n))
    return list(check(uow, admin, text).rows)


class Crash(Exception):
    pass


def test_a_chunked_queue_stopped_part_way_resumes_into_the_same_batch(
    uow: UnitOfWork, admin: Operator
) -> None:
    rows = _rows(uow, admin, 10_000)
    seen: list[int] = []

    def crash_after_seven(done: int, total: int) -> None:
        seen.append(done)
        if len(seen) == 7:
            raise Crash

    with pytest.raises(Crash):
        queue_invitations(uow, admin, rows, source="csv", label="big.csv", chunk_size=500,
                          progress=crash_after_seven)
    with uow:
        [batch] = uow.session.scalars(select(Batch)).all()
        assert batch.status == QUEUING and batch.total == 3_500
        batch_id = batch.id
        assert uow.session.scalar(select(func.count()).select_from(Invitation)) == 3_500

    again = run_preflight(uow, admin.organization_id,
                          [InviteeInput(r.row, r.email) for r in rows])
    assert again.count(RowStatus.QUEUED) == 3_500 and len(again.ready) == 6_500
    result = queue_invitations(uow, admin, again.rows, source="csv", label="big.csv",
                               chunk_size=500)
    assert result.resumed and result.batch_id == batch_id
    assert (result.queued, result.total) == (6_500, 10_000)
    with uow:
        [finished] = uow.session.scalars(select(Batch)).all()
        assert (finished.status, finished.total) == ("open", 10_000)
        emails = uow.session.scalars(select(Invitation.email_normalized)).all()
        assert len(emails) == len(set(emails)) == 10_000


def test_a_writer_on_another_connection_waits_at_most_one_chunk(
    uow: UnitOfWork, admin: Operator, sqlite_url: str
) -> None:
    rows = _rows(uow, admin, 10_000)
    path = sqlite_url.removeprefix("sqlite:///")
    between: list[float] = []

    def write_between_chunks(done: int, total: int) -> None:
        # No busy timeout: this fails at once if a transaction still held the write lock.
        other = sqlite3.connect(path, timeout=0)
        try:
            started = time.perf_counter()
            other.execute("UPDATE organization SET description = ?", (f"{done} of {total}",))
            other.commit()
            between.append(time.perf_counter() - started)
        finally:
            other.close()

    queue_invitations(uow, admin, rows, source="csv", chunk_size=1_000,
                      progress=write_between_chunks)
    assert len(between) == 10

    # And while chunks are being written: a writer waits for one chunk, not the batch.
    more = _rows(uow, admin, 10_000, tag="q")
    waits: list[float] = []
    worker = threading.Thread(target=lambda: queue_invitations(
        uow, admin, more, source="csv", chunk_size=500))
    started = time.perf_counter()
    worker.start()
    other = sqlite3.connect(path, timeout=30)
    while worker.is_alive():
        before = time.perf_counter()
        other.execute("UPDATE organization SET description = 'x'")
        other.commit()
        waits.append(time.perf_counter() - before)
        time.sleep(0.005)
    worker.join()
    whole = time.perf_counter() - started
    other.close()
    print(f"queued 10,000 in {whole:.2f}s; {len(waits)} concurrent writes, longest wait "
          f"{max(waits, default=0) * 1000:.0f} ms")
    assert len(waits) >= 3
    assert max(waits) < max(0.5, whole / 3)


def test_the_daily_limit_and_the_operator_are_checked_again_for_each_chunk(
    uow: UnitOfWork, admin: Operator, make_operator: MakeOperator, engine: Engine
) -> None:
    rows = _rows(uow, admin, 800)
    set_policy(uow, admin, daily_limit_per_inviter=1_000)

    def someone_else_uses_the_limit(done: int, total: int) -> None:
        if done == 200:
            for i in range(500):
                invite(uow, admin, f"elsewhere{i}@example.org")

    with pytest.raises(DailyLimitReached, match="400 invitations of this batch were queued"):
        queue_invitations(uow, admin, rows, source="csv", chunk_size=200,
                          progress=someone_else_uses_the_limit)
    with uow:
        batch = uow.session.scalars(select(Batch)).one()
        assert (batch.status, batch.total) == ("open", 400)  # 200 + 200, then 700 + 200 > 1,000

    hr = make_operator(Role.ADMIN_TENANT)
    more = _rows(uow, admin, 600, tag="r")  # (and no limit again)

    def deactivated(done: int, total: int) -> None:
        with engine.begin() as connection:
            connection.execute(update(Member).where(Member.id == hr.member_id)
                               .values(status=MemberStatus.DEACTIVATED.value))

    with pytest.raises(PermissionDenied):
        queue_invitations(uow, hr, more, source="csv", chunk_size=200, progress=deactivated)
    with uow:
        assert uow.session.scalar(select(func.count()).select_from(Invitation)
                                  .where(Invitation.sender_id == hr.member_id)) == 200


def test_two_queueings_of_the_same_rows_at_once_queue_each_address_once(
    any_uow: UnitOfWork,
) -> None:
    """Two runs of the same `send --csv` at the same moment (issue 8 review): both found
    every address free and queued it, so everyone was mailed twice. On every backend."""
    from invite_desk.services import auth

    admin = auth.setup_organization(
        any_uow, organization_name="Club", description="", admin_email="ada@example.org",
        admin_first_name="Ada", admin_last_name="Admin", password="a long admin password",
        registration_base_url="https://join.example.org")
    set_policy(any_uow, admin, daily_limit_per_inviter=0)
    rows = [PreflightRow(i + 1, f"both{i}@example.org", "", "", RowStatus.READY)
            for i in range(1_200)]
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait()
            queue_invitations(any_uow, admin, rows, source="cli", label="same.csv",
                              chunk_size=300)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    workers = [threading.Thread(target=run) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert not errors, errors
    with any_uow:
        addresses = any_uow.session.scalars(select(Invitation.email_normalized)).all()
    assert len(addresses) == len(set(addresses)) == 1_200
