"""`invite-desk demo`: the demo organization has every role, state and kind, referrals over the
last year, and can be run again without duplicating anything."""

from __future__ import annotations

import re
import struct
import time
import uuid
import zlib
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from invite_desk.services import auth, settings
from invite_desk.services.demo import (
    DEMO_ADMIN_EMAIL,
    DEMO_ORGANIZATION_NAME,
    DEMO_PASSWORD,
    LIVE_BATCH_LABEL,
    DemoResult,
    create_or_top_up,
)
from invite_desk.services.errors import DomainError, ValidationFailed
from invite_desk.services.invitations.sending import OutboxSender
from invite_desk.services.models import (
    Batch,
    Event,
    Invitation,
    InvitationKind,
    InvitationStatus,
    Member,
    MemberStatus,
    Organization,
    Referral,
    ReferralStatus,
    Setting,
    Unit,
    utcnow,
)
from invite_desk.services.operator import Operator
from invite_desk.services.roles import Role
from invite_desk.services.settings_schema import SPECS
from invite_desk.services.smtp.transport import Sent
from invite_desk.services.uow import UnitOfWork

SIGN_IN_LINE = re.compile(r"^Sign in as (\S+@\S+) with password (\S+)\s+\(.*, (\w+)\)$", re.M)
HEX64 = re.compile(r"^[0-9a-f]{64}$")


# Every state but the two a send run would pick up (issue 8: a demo leaves nothing to send).
SHOWN_STATES = [s for s in InvitationStatus
                if s not in (InvitationStatus.QUEUED, InvitationStatus.SENDING)]


def table_counts(uow: UnitOfWork) -> dict[str, int]:
    with uow:
        return {
            model.__tablename__: uow.session.scalar(select(func.count()).select_from(model)) or 0
            for model in (Organization, Unit, Event, Member, Batch, Invitation, Referral, Setting)
        }


def png_size(data: bytes) -> tuple[int, int]:
    """Check a PNG's structure (signature, chunk CRCs, pixel data) and return its size."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks, idat = 8, [], b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        tag, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert zlib.crc32(tag + body) & 0xFFFFFFFF == crc, tag
        chunks.append(tag)
        if tag == b"IDAT":
            idat += body
        pos += 12 + length
    assert chunks[0] == b"IHDR" and chunks[-1] == b"IEND"
    width, height, depth, colour = struct.unpack(">IIBB", data[16:26])
    assert (depth, colour) == (8, 6)  # 8-bit RGBA
    assert len(zlib.decompress(idat)) == height * (1 + 4 * width)
    return width, height


@pytest.fixture
def demo(uow: UnitOfWork) -> DemoResult:
    return create_or_top_up(uow)


def test_demo_on_an_empty_database_has_every_role_state_and_kind(any_uow: UnitOfWork) -> None:
    now = datetime.now(UTC)
    result = create_or_top_up(any_uow, members=300)

    with any_uow:
        s = any_uow.session
        org = s.scalars(select(Organization)).one()
        assert org.id == result.organization_id and org.name == DEMO_ORGANIZATION_NAME
        assert org.description and org.accent_color.startswith("#")
        assert org.registration_base_url == "http://127.0.0.1:8080"
        assert org.logo is not None and org.logo_mime == "image/png"
        assert png_size(org.logo) == (96, 96)

        units = s.scalars(select(Unit.id)).all()
        assert 4 <= len(units) <= 5
        members = s.execute(select(Member.role, Member.unit_id, Member.status,
                                   Member.password_hash, Member.first_name,
                                   Member.last_name)).all()
        assert len(members) == 300
        assert {m.role for m in members} == {role.name for role in Role}
        assert {m.unit_id for m in members} >= set(units)  # every chapter has members
        assert {m.status for m in members} >= {MemberStatus.ACTIVE.value,
                                               MemberStatus.APPLICANT.value}
        assert sum(1 for m in members if m.password_hash) == 5
        assert any(not (m.first_name + m.last_name).isascii() for m in members)

        invitations = s.scalars(select(Invitation)).all()
        assert len(invitations) >= 700
        assert {i.status for i in invitations} == {status.value for status in SHOWN_STATES}
        assert {i.kind for i in invitations} == {kind.value for kind in InvitationKind}
        events = set(s.scalars(select(Event.id)))
        assert len(events) >= 2
        for invitation in invitations:
            status = InvitationStatus(invitation.status)
            assert invitation.batch_id is not None
            assert (invitation.event_id in events) is (invitation.kind == "event")
            if status in (InvitationStatus.SENT, InvitationStatus.ACCEPTED,
                          InvitationStatus.EXPIRED, InvitationStatus.REVOKED,
                          InvitationStatus.UNCERTAIN, InvitationStatus.BOUNCED):
                assert invitation.token_hash and HEX64.match(invitation.token_hash)
            else:
                assert invitation.token_hash is None
            if status is InvitationStatus.SENT:
                assert invitation.sent_at and invitation.expires_at
                assert invitation.sent_at <= now < invitation.expires_at
            if status is InvitationStatus.EXPIRED:
                assert invitation.expires_at is not None and invitation.expires_at <= now
            if status is InvitationStatus.FAILED:
                assert re.match(r"^5\d\d 5\.\d\.\d <.+@.+>: ", invitation.last_error)
                assert invitation.email in invitation.last_error
            if status is InvitationStatus.REVOKED:
                assert invitation.revoked_at is not None
            if status is InvitationStatus.ACCEPTED:
                assert invitation.accepted_member_id is not None
        hashes = [i.token_hash for i in invitations if i.token_hash]
        assert len(hashes) == len(set(hashes))
        assert any(i.last_error.startswith("550 5.1.1 <") and "Recipient address rejected"
                   in i.last_error for i in invitations)

        batch_totals = dict(s.execute(select(Batch.id, Batch.total)).all())
        in_batch = dict(s.execute(select(Invitation.batch_id, func.count())
                                  .group_by(Invitation.batch_id)).all())
        assert batch_totals == in_batch

        referrals = s.execute(
            select(Referral, Member, Invitation)
            .join(Member, Member.id == Referral.referee_id)
            .join(Invitation, Invitation.id == Referral.invitation_id)
        ).all()
        assert {r.status for r, _, _ in referrals} == {s.value for s in ReferralStatus}
        for referral, referee, invitation in referrals:
            assert referee.referred_by_id == referral.referrer_id == invitation.inviter_id
            assert invitation.accepted_member_id == referee.id
            assert invitation.email_normalized == referee.email_normalized
            assert now - timedelta(days=366) <= referral.referred_at <= now
            pending = referral.status == ReferralStatus.PENDING.value
            assert (referee.status == MemberStatus.APPLICANT.value) is pending
            completed = referral.status == ReferralStatus.COMPLETED.value
            assert (referral.completed_at is not None) is completed
            if referral.status == ReferralStatus.DECLINED.value:  # application rejected
                assert referee.status == MemberStatus.REJECTED.value
        months = {(r.referred_at.year, r.referred_at.month) for r, _, _ in referrals}
        assert len(months) >= 10

        stored_keys = set(s.scalars(select(Setting.key)))
        assert {spec.key for spec in SPECS} <= stored_keys
    assert settings.get_settings(any_uow, result.organization_id).adhesion_required is True
    assert result.counts["members"] == 300
    assert result.counts["invitations"] == len(invitations)
    assert result.counts["referrals"] == len(referrals)


def test_referrals_grow_over_the_year(demo: DemoResult, uow: UnitOfWork) -> None:
    """The trend the reports will show: the last six months bring more than the six before."""
    now = datetime.now(UTC)
    with uow:
        dates = uow.session.scalars(select(Referral.referred_at)).all()
    recent = sum(1 for d in dates if d > now - timedelta(days=182))
    assert recent > len(dates) - recent


def test_running_twice_adds_nothing_and_topping_up_adds_only_members(
    demo: DemoResult, uow: UnitOfWork
) -> None:
    first = table_counts(uow)

    again = create_or_top_up(uow)

    assert demo.added["members"] == 300  # the five operators included
    assert table_counts(uow) == first
    assert set(again.added.values()) == {0}
    assert again.created is False and demo.created is True
    assert again.organization_id == demo.organization_id
    assert again.counts == demo.counts

    more = create_or_top_up(uow, members=340)

    after = table_counts(uow)
    assert more.added["members"] == 40
    assert after["member"] == 340
    for table in ("organization", "unit", "event", "setting"):
        assert after[table] == first[table], table
    assert after["invitation"] > first["invitation"]
    with uow:
        operators = uow.session.scalar(
            select(func.count()).select_from(Member).where(Member.password_hash.is_not(None)))
        emails = uow.session.scalars(select(Member.email_normalized)).all()
    assert operators == 5
    assert len(emails) == len(set(emails))


def test_asking_for_fewer_members_removes_nothing(demo: DemoResult, uow: UnitOfWork) -> None:
    before = table_counts(uow)
    result = create_or_top_up(uow, members=50)
    assert table_counts(uow) == before
    assert result.counts["members"] == 300


def test_the_summary_says_how_to_sign_in(demo: DemoResult) -> None:
    text = demo.summary("sqlite:////tmp/demo.sqlite3")

    assert "sqlite:////tmp/demo.sqlite3" in text
    assert f"Sign in as {DEMO_ADMIN_EMAIL} with password {DEMO_PASSWORD}" in text
    lines = SIGN_IN_LINE.findall(text)
    assert {role for _, _, role in lines} == {role.name for role in Role}
    assert {email for email, _, _ in lines} == set(demo.operators.values())
    assert "300 members" in text
    for status in InvitationStatus:
        assert f"{status.value} {demo.counts[f'invitations_{status.value}']}" in text
    assert demo.sample_link is not None
    assert demo.sample_link.startswith("http://127.0.0.1:8080/join/")
    assert demo.sample_link in text


def test_every_printed_sign_in_works_with_its_role(demo: DemoResult, uow: UnitOfWork) -> None:
    for email, password, role_name in SIGN_IN_LINE.findall(demo.summary("db")):
        operator = auth.sign_in(uow, email, password)
        assert operator.role is Role[role_name]
        assert operator.organization_id == demo.organization_id
        if operator.role.is_local:
            assert operator.unit_name  # local roles belong to a chapter


def test_the_sample_link_points_at_a_live_invitation(demo: DemoResult, uow: UnitOfWork) -> None:
    from invite_desk.services.invitations.tokens import hash_token

    assert demo.sample_link is not None
    token = demo.sample_link.rsplit("/", 1)[1]
    with uow:
        invitation = uow.session.scalars(
            select(Invitation).where(Invitation.token_hash == hash_token(token))).one()
        assert invitation.status == InvitationStatus.SENT.value


def test_a_second_run_makes_the_demo_sign_in_work_again(demo: DemoResult, uow: UnitOfWork) -> None:
    with uow:
        admin = uow.session.scalars(
            select(Member).where(Member.email_normalized == DEMO_ADMIN_EMAIL)).one()
        admin_id = admin.id
        admin.status = MemberStatus.DEACTIVATED.value
        uow.commit()
    auth.set_password(uow, admin_id, "somebody changed it")

    result = create_or_top_up(uow)

    assert result.added["operators_reset"] == 1 and result.added["members"] == 0
    assert auth.sign_in(uow, DEMO_ADMIN_EMAIL, DEMO_PASSWORD).member_id == admin_id


def test_another_organization_is_left_alone(uow: UnitOfWork, admin: Operator) -> None:
    before = table_counts(uow)
    with pytest.raises(DomainError) as refused:
        create_or_top_up(uow)
    assert "Harbour Rowing Club" in str(refused.value)
    assert "empty database" in str(refused.value)
    assert table_counts(uow) == before


def test_bad_arguments_are_refused(uow: UnitOfWork) -> None:
    with pytest.raises(ValidationFailed) as failed:
        create_or_top_up(uow, members=-1)
    assert list(failed.value.errors) == ["members"]
    with pytest.raises(ValueError, match="timezone-aware"):
        create_or_top_up(uow, now=datetime(2026, 1, 1))
    assert auth.needs_setup(uow)


def test_a_small_demo_still_shows_every_state(uow: UnitOfWork) -> None:
    result = create_or_top_up(uow, members=40, now=datetime(2026, 3, 1, 12, tzinfo=UTC))
    assert result.counts["members"] == 40
    for status in SHOWN_STATES:
        assert result.counts[f"invitations_{status.value}"] >= 1, status
    for status in (InvitationStatus.QUEUED, InvitationStatus.SENDING):
        assert result.counts[f"invitations_{status.value}"] == 0, status
    for role in Role:
        assert result.counts[f"members_{role.name}"] >= 1, role


class _RecordingTransport:
    def __init__(self) -> None:
        self.sent: list[str] = []

    def send(self, message: object, to: str) -> Sent:
        self.sent.append(to)
        return Sent("250 OK")

    def close(self) -> None:
        pass


def _send_everything(uow: UnitOfWork, organization_id: uuid.UUID) -> tuple[list[str], float]:
    transport = _RecordingTransport()
    started = time.monotonic()
    report = OutboxSender(uow, transport, organization_id=organization_id).run()
    assert (report.sent, report.failed, report.uncertain, report.retried) == (0, 0, 0, 0)
    return transport.sent, time.monotonic() - started


def test_after_demo_a_send_run_has_nothing_to_send(uow: UnitOfWork) -> None:
    result = create_or_top_up(uow, members=40)
    sent, took = _send_everything(uow, result.organization_id)
    assert sent == [] and took < 5


def test_a_top_up_settles_what_an_older_demo_left_queued(uow: UnitOfWork) -> None:
    """Demo databases made before the fix had the live batch queued (some rows waiting for a
    greylisting retry) and one row in `sending`; `demo` again leaves nothing to send."""
    result = create_or_top_up(uow, members=40)
    with uow:
        rows = list(uow.session.scalars(select(Invitation).join(Batch).where(
            Batch.label == LIVE_BATCH_LABEL).order_by(Invitation.created_at, Invitation.id)))
        assert rows
        for index, row in enumerate(rows):
            if row.status == InvitationStatus.DRAFT.value:
                row.status, row.queued_at = InvitationStatus.QUEUED.value, utcnow()
                if index % 2:
                    row.next_attempt_at = utcnow() + timedelta(minutes=4)
            elif row.status == InvitationStatus.UNCERTAIN.value:
                row.status = InvitationStatus.SENDING.value
        uow.session.scalars(select(Batch).where(Batch.label == LIVE_BATCH_LABEL)).one().status = "open"
        uow.commit()

    create_or_top_up(uow, members=40)

    with uow:
        states = set(uow.session.scalars(select(Invitation.status)))
    assert not states & {InvitationStatus.QUEUED.value, InvitationStatus.SENDING.value}
    sent, took = _send_everything(uow, result.organization_id)
    assert sent == [] and took < 5
