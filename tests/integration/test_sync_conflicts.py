"""The conflict rules of pushed commands, each on real PostgreSQL and MariaDB
(docs/architecture.md, "Conflicts"): what the server keeps, and what the operator is told."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import delete, update

from invite_desk.services import adhesion
from invite_desk.services import settings as settings_service
from invite_desk.services.admin.people import revoke_sign_in, update_person
from invite_desk.services.invitations.sending import OutboxSender
from invite_desk.services.invitations.tokens import hash_token
from invite_desk.services.models import (
    Invitation,
    InvitationStatus,
    Member,
    MemberStatus,
    SyncCommandState,
    utcnow,
)
from invite_desk.services.registration.joining import register_with_invitation
from invite_desk.services.roles import Role
from invite_desk.services.smtp.transport import SmtpTransport
from invite_desk.services.sync import journal, pull, push
from invite_desk.services.tracking.actions import (
    extend_invitations,
    resend_invitations,
    revoke_invitations,
)
from invite_desk.services.tracking.expiry import expire_overdue
from invite_desk.services.uow import UnitOfWork
from tests.registration_fixtures import form, invite
from tests.smtp_server import LoopbackSmtpServer
from tests.sync_push_support import (
    SyncWorld,
    answers,
    commands,
    count,
    queue,
    rows_of,
)


@pytest.mark.parametrize("action", ["revoke", "resend", "extend"])
def test_an_acceptance_on_the_server_beats_an_offline_action_and_the_operator_is_told(
        world: SyncWorld, action: str) -> None:
    sent = invite(world.server_uow, world.admin, "zoe@example.org", name="Zoë Martin")
    replica = world.replica(world.admin)
    uow = UnitOfWork(replica)
    if action == "revoke":
        revoke_invitations(uow, world.admin, [sent.id])
    elif action == "resend":
        resend_invitations(uow, world.admin, [sent.id])
    else:
        extend_invitations(uow, world.admin, [sent.id], 5)
    joined = register_with_invitation(world.server_uow, sent.token, form("Zoë", "Martin"))
    assert joined.member_id is not None
    before = rows_of(world.server, "invitation", id=sent.id)[0]

    report = push.push_pending(world.server, replica)

    assert report.rejected == 1
    after = rows_of(world.server, "invitation", id=sent.id)[0]
    assert after == before  # nothing of the offline action reached the server
    assert after["status"] == InvitationStatus.ACCEPTED
    told = journal.rejected(replica)
    assert len(told) == 1 and not told[0].applied
    assert "Zoë Martin accepted on" in told[0].reason
    assert "stays accepted" in told[0].reason
    assert told[0].summary.endswith("zoe@example.org")
    assert [a["outcome"] for a in answers(world.server)] == ["rejected"]
    # The replica fetches the server's row again instead of keeping the refused change.
    with replica.connect() as connection:
        assert sent.id in journal.refetch_rows(connection)["invitation"]
    pull.pull_round(world.server, replica)
    local = rows_of(replica, "invitation", id=sent.id)[0]
    assert local["status"] == InvitationStatus.ACCEPTED
    assert local["version"] == after["version"]
    with replica.connect() as connection:
        assert journal.refetch_rows(connection) == {}
    assert journal.rejected(replica)[0].reason == told[0].reason  # shown until dismissed


def test_two_desktops_inviting_the_same_address_offline_leave_one_live_invitation(
        world: SyncWorld) -> None:
    hr = world.member(Role.HR_TENANT, "hana.hr@example.org", "Hana")
    first = world.replica(world.admin)
    second = world.replica(hr)
    queue(UnitOfWork(first), world.admin, "Zoe@Example.org", "yann@example.org")
    queue(UnitOfWork(second), hr, "zoe@example.org", "xavier@example.org")

    assert push.push_pending(world.server, first).rejected == 0
    report = push.push_pending(world.server, second)

    assert report.rejected == 0  # applied, with its duplicate closed
    zoe = rows_of(world.server, "invitation", email_normalized="zoe@example.org")
    assert len(zoe) == 2
    live = [r for r in zoe if r["status"] == InvitationStatus.QUEUED]
    closed = [r for r in zoe if r["status"] == InvitationStatus.REVOKED]
    assert len(live) == 1 and len(closed) == 1
    assert live[0]["sender_id"] == world.admin.member_id
    assert closed[0]["sender_id"] == hr.member_id
    assert "duplicate" in closed[0]["last_error"]
    assert count(world.server, "invitation", status=InvitationStatus.QUEUED.value) == 3
    assert count(world.server, "audit_log", action="invitation.closed_duplicate") == 1
    told = journal.rejected(second)
    assert len(told) == 1 and told[0].applied
    assert "zoe@example.org was closed as a duplicate" in told[0].reason
    assert journal.rejected(first) == []


def test_an_offline_edit_of_a_duplicate_closed_before_the_pull_brought_it_is_refused(
        world: SyncWorld) -> None:
    """Found by the convergence test (seed 208): the second desk's copy of its invitation
    still looks live until the pull brings the closing; an edit made in between (here a
    revoke-and-resend's first half, an extension) was based on version 1, which the server's
    closed row also had, and reopened it: two live invitations to one address."""
    hr = world.member(Role.HR_TENANT, "hana.hr@example.org", "Hana")
    first = world.replica(world.admin)
    second = world.replica(hr)
    queue(UnitOfWork(first), world.admin, "zoe@example.org")
    queue(UnitOfWork(second), hr, "zoe@example.org")
    assert push.push_pending(world.server, first).rejected == 0
    assert push.push_pending(world.server, second).rejected == 0  # inserted closed
    mine = rows_of(second, "invitation", email_normalized="zoe@example.org")[0]
    assert mine["status"] == InvitationStatus.QUEUED  # the pull has not brought it yet
    with second.begin() as connection:  # an offline edit of the row as the replica has it
        connection.execute(update(Invitation.__table__).where(Invitation.id == mine["id"])
                           .values(status=InvitationStatus.QUEUED.value, name="Zoe Z",
                                   version=Invitation.version + 1))

    report = push.push_pending(world.server, second)

    assert report.rejected == 1
    zoe = rows_of(world.server, "invitation", email_normalized="zoe@example.org")
    assert sorted(r["status"] for r in zoe) == ["queued", "revoked"]


def test_settings_last_writer_wins_and_the_replaced_value_is_in_the_audit(
        world: SyncWorld) -> None:
    other_admin = world.member(Role.ADMIN_TENANT, "omar.admin@example.org", "Omar")
    mine = world.replica(world.admin)
    theirs = world.replica(other_admin)
    settings_service.update_settings(UnitOfWork(theirs), other_admin,
                                     {"invitation_expiry_days": 10})
    settings_service.update_settings(UnitOfWork(mine), world.admin,
                                     {"invitation_expiry_days": 21})
    assert commands(mine)[0]["kind"] == "settings.save"

    first = push.push_pending(world.server, theirs)
    assert (first.applied, first.reasons) == (1, ())
    second = push.push_pending(world.server, mine)

    assert (second.applied, second.rejected) == (1, 0)
    with world.server_uow as uow:
        policy = settings_service.load(uow.session, world.admin.organization_id)
    assert policy.invitation_expiry_days == 21  # the later arrival
    conflicts = rows_of(world.server, "audit_log", action="sync.conflict")
    assert len(conflicts) == 1
    before, after = json.loads(conflicts[0]["before_json"]), json.loads(conflicts[0]["after_json"])
    key = "userInvitations.invitationExpiryDays"
    assert before[key] == "10"
    assert before["set_by"] == "Omar Tester"
    assert after[key] == "21"
    assert conflicts[0]["actor_id"] == world.admin.member_id
    assert conflicts[0]["entity_type"] == "setting"
    told = journal.rejected(mine)
    assert len(told) == 1 and told[0].applied
    assert "Omar Tester" in told[0].reason and "10" in told[0].reason


def test_a_role_lowered_while_offline_rejects_the_command(world: SyncWorld) -> None:
    hr = world.member(Role.HR_TENANT, "hana.hr@example.org", "Hana")
    sent = invite(world.server_uow, world.admin, "zoe@example.org")
    replica = world.replica(hr)
    revoke_invitations(UnitOfWork(replica), hr, [sent.id])
    update_person(world.server_uow, world.admin, hr.member_id, role=Role.USER)
    before = rows_of(world.server, "invitation", id=sent.id)[0]

    report = push.push_pending(world.server, replica)

    assert report.rejected == 1
    assert rows_of(world.server, "invitation", id=sent.id)[0] == before
    told = journal.rejected(replica)
    assert "You cannot resend, revoke or extend this invitation" in told[0].reason
    assert commands(replica)[0]["state"] == SyncCommandState.REJECTED


def test_an_operator_who_left_meanwhile_is_rejected(world: SyncWorld) -> None:
    hr = world.member(Role.HR_TENANT, "hana.hr@example.org", "Hana")
    replica = world.replica(hr)
    queue(UnitOfWork(replica), hr, "zoe@example.org")
    update_person(world.server_uow, world.admin, hr.member_id,
                  status=MemberStatus.RESIGNED.value)

    report = push.push_pending(world.server, replica)

    assert report.applied == 0 and report.rejected == len(commands(replica))
    assert count(world.server, "invitation") == 0
    assert "no longer active" in report.reasons[0]


def test_a_row_changed_on_the_server_meanwhile_wins_and_names_who_changed_it(
        world: SyncWorld) -> None:
    sent = invite(world.server_uow, world.admin, "zoe@example.org")
    hr = world.member(Role.HR_TENANT, "hana.hr@example.org", "Hana")
    replica = world.replica(hr)
    revoke_invitations(UnitOfWork(replica), hr, [sent.id])
    extend_invitations(world.server_uow, world.admin, [sent.id], 3)
    before = rows_of(world.server, "invitation", id=sent.id)[0]

    report = push.push_pending(world.server, replica)

    assert report.rejected == 1
    assert rows_of(world.server, "invitation", id=sent.id)[0] == before
    reason = journal.rejected(replica)[0].reason
    assert "The invitation to zoe@example.org was changed on the server by Ada Admin" in reason
    assert "the server's version was kept" in reason


def test_delivery_facts_are_never_rejected(world: SyncWorld, smtp_server: LoopbackSmtpServer
                                           ) -> None:
    """An invitation sent from the replica while the server revoked it: the send's facts
    (sent time, message id, token hash) reach the server; its status stays revoked."""
    from invite_desk.services import mail_settings

    mail_settings.update_mail_settings(world.server_uow, world.admin, {
        "host": smtp_server.host, "port": smtp_server.port, "security": "none",
        "from_address": "office@rowing.example", "from_name": "Harbour Rowing Club",
        "rate_per_minute": 0})
    batch = queue(world.server_uow, world.admin, "zoe@example.org")
    replica = world.replica(world.admin)
    uow = UnitOfWork(replica)
    settings = mail_settings.get_mail_settings(uow, world.admin.organization_id)
    OutboxSender(uow, SmtpTransport(settings.smtp_config(timeout=5), None),
                 organization_id=world.admin.organization_id, batch_id=batch.batch_id).run()
    assert len(smtp_server.messages) == 1
    sent_local = rows_of(replica, "invitation", email_normalized="zoe@example.org")[0]
    assert sent_local["status"] == InvitationStatus.SENT
    assert {c["kind"] for c in commands(replica)} == {"delivery"}
    revoke_invitations(world.server_uow, world.admin, [sent_local["id"]])

    report = push.push_pending(world.server, replica)

    assert report.rejected == 0
    server = rows_of(world.server, "invitation", id=sent_local["id"])[0]
    assert server["status"] == InvitationStatus.REVOKED
    assert server["sent_at"] == sent_local["sent_at"]
    assert server["message_id"] == sent_local["message_id"]
    assert server["token_hash"] == sent_local["token_hash"]
    body = smtp_server.messages[0].message.get_body(("plain",))
    assert body is not None
    token = str(body.get_content()).split("/join/")[1].split()[0]
    assert hash_token(token) == server["token_hash"]


def test_a_link_mailed_offline_opens_on_the_portal_once_synced(
        world: SyncWorld, smtp_server: LoopbackSmtpServer) -> None:
    from invite_desk.services import mail_settings

    mail_settings.update_mail_settings(world.server_uow, world.admin, {
        "host": smtp_server.host, "port": smtp_server.port, "security": "none",
        "from_address": "office@rowing.example", "from_name": "Harbour Rowing Club",
        "rate_per_minute": 0})
    replica = world.replica(world.admin)
    uow = UnitOfWork(replica)
    batch = queue(uow, world.admin, "zoe@example.org")
    settings = mail_settings.get_mail_settings(uow, world.admin.organization_id)
    OutboxSender(uow, SmtpTransport(settings.smtp_config(timeout=5), None),
                 organization_id=world.admin.organization_id, batch_id=batch.batch_id).run()
    body = smtp_server.messages[0].message.get_body(("plain",))
    assert body is not None
    token = str(body.get_content()).split("/join/")[1].split()[0]

    assert push.push_pending(world.server, replica).rejected == 0

    joined = register_with_invitation(world.server_uow, token, form("Zoë", "Martin"))
    assert joined.member_id is not None
    assert count(world.server, "invitation", status=InvitationStatus.ACCEPTED.value) == 1


def test_the_expiry_sweep_of_a_replica_is_checked_again_on_the_server(world: SyncWorld) -> None:
    """An invitation extended on the server meanwhile stays live there; one that is overdue
    on the server too is recorded expired, with its audit row."""
    overdue = invite(world.server_uow, world.admin, "old@example.org",
                     expires_at=utcnow() - timedelta(hours=1))
    extended = invite(world.server_uow, world.admin, "zoe@example.org",
                      expires_at=utcnow() - timedelta(hours=1))
    replica = world.replica(world.admin)
    assert expire_overdue(UnitOfWork(replica)) == 2
    assert {c["kind"] for c in commands(replica)} == {"invitation.expire"}
    extend_invitations(world.server_uow, world.admin, [extended.id], 7)

    report = push.push_pending(world.server, replica)

    assert (report.rejected, report.reasons) == (0, ())
    assert rows_of(world.server, "invitation", id=overdue.id)[0]["status"] == "expired"
    assert rows_of(world.server, "invitation", id=extended.id)[0]["status"] == "sent"
    assert count(world.server, "audit_log", action="invitation.expired",
                 entity_id=overdue.id) == 1
    assert count(world.server, "audit_log", action="invitation.expired",
                 entity_id=extended.id) == 0


def test_signing_in_offline_is_not_a_conflict_with_a_change_of_ones_member_row(
        world: SyncWorld) -> None:
    hr = world.member(Role.HR_TENANT, "hana.hr@example.org", "Hana")
    replica = world.replica(hr)
    moment = utcnow()
    with replica.begin() as connection:  # what signing in on the replica writes
        connection.execute(update(Member.__table__).where(Member.id == hr.member_id)
                           .values(last_sign_in_at=moment, version=Member.version + 1))
    update_person(world.server_uow, world.admin, hr.member_id, role=Role.HR_LOCAL)

    report = push.push_pending(world.server, replica)

    assert (report.applied, report.rejected) == (1, 0)
    server = rows_of(world.server, "member", id=hr.member_id)[0]
    assert server["last_sign_in_at"] == moment and server["role"] == "HR_LOCAL"


def _applicant(world: SyncWorld, email: str) -> uuid.UUID:
    """Someone invited by the admin registers on the portal while adhesion is required."""
    settings_service.update_settings(world.server_uow, world.admin, {"adhesion_required": True})
    sent = invite(world.server_uow, world.admin, email)
    result = register_with_invitation(world.server_uow, sent.token,
                                      form(email.split("@")[0].title()))
    assert result.application_pending and result.member_id is not None
    return result.member_id


def test_an_application_approved_offline_is_approved_on_the_server(world: SyncWorld) -> None:
    applicant = _applicant(world, "zoe@example.org")
    hr = world.member(Role.HR_TENANT, "hana.hr@example.org", "Hana")
    replica = world.replica(hr)
    adhesion.approve(UnitOfWork(replica), hr, applicant)
    assert [c["kind"] for c in commands(replica)] == ["application.decide"]

    report = push.push_pending(world.server, replica)

    assert (report.applied, report.rejected) == (1, 0)
    member = rows_of(world.server, "member", id=applicant)[0]
    assert (member["status"], member["adhesion_status"]) == ("active", "approved")
    assert [r["status"] for r in rows_of(world.server, "referral", referee_id=applicant)] == [
        "completed"]
    assert count(world.server, "audit_log", action="adhesion.approved") == 1
    assert count(world.server, "outgoing_mail", to_email="zoe@example.org") == 1


def test_an_application_decided_on_the_server_meanwhile_wins(world: SyncWorld) -> None:
    applicant = _applicant(world, "zoe@example.org")
    hr = world.member(Role.HR_TENANT, "hana.hr@example.org", "Hana")
    replica = world.replica(hr)
    adhesion.approve(UnitOfWork(replica), hr, applicant)
    adhesion.reject(world.server_uow, world.admin, applicant, "Not a rower.")

    report = push.push_pending(world.server, replica)

    assert report.rejected == 1
    member = rows_of(world.server, "member", id=applicant)[0]
    assert (member["status"], member["adhesion_status"]) == ("rejected", "rejected")
    assert count(world.server, "audit_log", action="adhesion.approved") == 0
    assert count(world.server, "outgoing_mail", to_email="zoe@example.org") == 1  # rejection
    assert "changed on the server by Ada Admin" in journal.rejected(replica)[0].reason


def test_with_invite_only_sponsors_two_offline_invitations_from_different_members_stay_live(
        world: SyncWorld) -> None:
    """The duplicate rule is the queueing rule: when invite-only needs two sponsors, a second
    member's invitation to the same address is not a duplicate; the same member's (from a
    second laptop) is."""
    settings_service.update_settings(world.server_uow, world.admin,
                                     {"number_of_referrals_needed_for_signup": 2})
    hr = world.member(Role.HR_TENANT, "hana.hr@example.org", "Hana")
    first, second = world.replica(world.admin), world.replica(hr)
    queue(UnitOfWork(first), world.admin, "zoe@example.org")
    queue(UnitOfWork(second), hr, "zoe@example.org")
    assert push.push_pending(world.server, first).rejected == 0
    assert push.push_pending(world.server, second).rejected == 0
    zoe = rows_of(world.server, "invitation", email_normalized="zoe@example.org")
    live = sorted(r["inviter_id"] for r in zoe if r["status"] == InvitationStatus.QUEUED)
    assert live == sorted([world.admin.member_id, hr.member_id])
    assert len(zoe) == 2 and journal.rejected(second) == []
    laptop = world.replica(world.admin)  # as if copied before the invitations were made:
    with laptop.begin() as connection, journal.applying(connection):
        connection.execute(delete(Invitation.__table__))
    queue(UnitOfWork(laptop), world.admin, "zoe@example.org")
    assert push.push_pending(world.server, laptop).rejected == 0
    zoe = rows_of(world.server, "invitation", email_normalized="zoe@example.org")
    assert len([r for r in zoe if r["status"] == InvitationStatus.REVOKED]) == 1
    assert journal.rejected(laptop)[0].applied


def test_a_sign_in_revoked_after_an_offline_change_rejects_it(world: SyncWorld) -> None:
    hr = world.member(Role.HR_TENANT, "hana.hr@example.org", "Hana")
    sent = invite(world.server_uow, world.admin, "zoe@example.org")
    replica = world.replica(hr)
    revoke_invitations(UnitOfWork(replica), hr, [sent.id])
    revoke_sign_in(world.server_uow, world.admin, hr.member_id)

    report = push.push_pending(world.server, replica)

    assert report.rejected == 1
    assert "sign-in was revoked" in report.reasons[0]
    assert rows_of(world.server, "invitation", id=sent.id)[0]["status"] == "sent"


def test_a_send_by_an_operator_who_left_meanwhile_is_still_recorded(
        world: SyncWorld, smtp_server: LoopbackSmtpServer) -> None:
    from invite_desk.services import mail_settings

    mail_settings.update_mail_settings(world.server_uow, world.admin, {
        "host": smtp_server.host, "port": smtp_server.port, "security": "none",
        "from_address": "office@rowing.example", "from_name": "Harbour Rowing Club",
        "rate_per_minute": 0})
    hr = world.member(Role.HR_TENANT, "hana.hr@example.org", "Hana")
    batch = queue(world.server_uow, hr, "zoe@example.org")
    replica = world.replica(hr)
    uow = UnitOfWork(replica)
    settings = mail_settings.get_mail_settings(uow, world.admin.organization_id)
    OutboxSender(uow, SmtpTransport(settings.smtp_config(timeout=5), None),
                 organization_id=world.admin.organization_id, batch_id=batch.batch_id).run()
    update_person(world.server_uow, world.admin, hr.member_id,
                  status=MemberStatus.RESIGNED.value)

    report = push.push_pending(world.server, replica)

    assert report.rejected == 0
    server = rows_of(world.server, "invitation", email_normalized="zoe@example.org")[0]
    assert server["status"] == InvitationStatus.SENT and server["message_id"]


@pytest.mark.parametrize("pushes", [1, 2])
def test_a_delivery_over_a_changed_row_does_not_hide_that_change_from_a_later_revoke(
        world: SyncWorld, pushes: int) -> None:
    """Found by the convergence test: a delivery fact goes in over someone else's change of
    the row; the operator's next offline edit of that row must still be rejected for it,
    not take the delivery's version as its base."""
    sent = invite(world.server_uow, world.admin, "zoe@example.org")
    hr = world.member(Role.HR_TENANT, "hana.hr@example.org", "Hana")
    replica = world.replica(hr)
    with replica.begin() as connection:  # what the outbox writes (a delivery fact)
        connection.execute(update(Invitation.__table__).where(Invitation.id == sent.id)
                           .values(last_error="4.2.1 try later", version=Invitation.version + 1))
    revoke_invitations(UnitOfWork(replica), hr, [sent.id])
    assert [c["kind"] for c in commands(replica)] == ["delivery", "invitation.revoke"]
    extend_invitations(world.server_uow, world.admin, [sent.id], 3)

    if pushes == 1:  # both in one server transaction
        assert push.push_pending(world.server, replica).rejected == 1
    else:  # the delivery first, the revoke in the next push
        assert push.push_pending(world.server, replica, limit=1).applied == 1
        assert push.push_pending(world.server, replica).rejected == 1
    server = rows_of(world.server, "invitation", id=sent.id)[0]
    assert server["status"] == "sent" and server["last_error"] == "4.2.1 try later"
    assert "changed on the server by Ada Admin" in journal.rejected(replica)[0].reason


def test_a_replica_marking_a_send_uncertain_never_undoes_a_sent_on_the_server(
        world: SyncWorld) -> None:
    """A replica's recovery of a send it believes interrupted (`uncertain`) arrives after the
    desktop that really sent it recorded `sent`: the server keeps `sent` and its facts."""
    batch = queue(world.server_uow, world.admin, "zoe@example.org")
    row_id = rows_of(world.server, "invitation", batch_id=batch.batch_id)[0]["id"]
    with world.server.begin() as connection:
        connection.execute(update(Invitation).where(Invitation.id == row_id).values(
            status=InvitationStatus.SENDING.value, sending_owner="other-desk:1"))
    replica = world.replica(world.admin)
    sent_at = utcnow()
    with world.server.begin() as connection:
        connection.execute(update(Invitation).where(Invitation.id == row_id).values(
            status=InvitationStatus.SENT.value, sending_owner=None, sent_at=sent_at,
            message_id="<sent@other-desk>", version=Invitation.version + 1))
    with replica.begin() as connection:  # what recover_interrupted writes
        connection.execute(update(Invitation).where(Invitation.id == row_id).values(
            status=InvitationStatus.UNCERTAIN.value, sending_owner=None,
            version=Invitation.version + 1))
    assert {c["kind"] for c in commands(replica)} == {"delivery"}

    report = push.push_pending(world.server, replica)

    assert report.rejected == 0
    server = rows_of(world.server, "invitation", id=row_id)[0]
    assert server["status"] == InvitationStatus.SENT
    assert server["message_id"] == "<sent@other-desk>"
    assert server["sent_at"] is not None


@pytest.mark.parametrize("pushes", [1, 2])
def test_an_edit_made_on_top_of_a_refused_one_is_refused_even_when_versions_match_by_chance(
        world: SyncWorld, pushes: int) -> None:
    """Found by the convergence test (seed 201, MariaDB): two offline edits of a row while
    another desk revoked it on the server. The first is refused; the second's local base
    (one local edit on) equalled the server's version (one edit there) by coincidence, and it
    went in over the revoke. It is built on a change the server never took: refused too."""
    sent = invite(world.server_uow, world.admin, "zoe@example.org")
    hr = world.member(Role.HR_TENANT, "hana.hr@example.org", "Hana")
    replica = world.replica(hr)
    extend_invitations(UnitOfWork(replica), hr, [sent.id], 3)
    revoke_invitations(world.server_uow, world.admin, [sent.id])
    extend_invitations(UnitOfWork(replica), hr, [sent.id], 5)
    kinds = [c["kind"] for c in commands(replica)]
    assert kinds == ["invitation.extend", "invitation.extend"]
    before = rows_of(world.server, "invitation", id=sent.id)[0]
    assert before["status"] == "revoked"

    if pushes == 1:  # both in one server transaction
        report = push.push_pending(world.server, replica)
        assert (report.applied, report.rejected) == (0, 2)
    else:  # the first answered, the second in the next push
        assert push.push_pending(world.server, replica, limit=1).rejected == 1
        assert push.push_pending(world.server, replica).rejected == 1
    assert rows_of(world.server, "invitation", id=sent.id)[0] == before
    assert all("changed on the server by Ada Admin" in r.reason
               for r in journal.rejected(replica))
