"""Issue 8: an operator deactivated (or demoted) after signing in is refused by every service
entry point at once, reads included: each one re-reads the operator from the database."""

from __future__ import annotations

import importlib
import inspect
import io
import pkgutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select

import invite_desk.services
from invite_desk.services import (
    adhesion,
    applications_view,
    compose_view,
    mail_settings,
    members_lookup,
    members_view,
    organization,
    scheduling,
    settings,
    suppression,
)
from invite_desk.services import referral_program as rp
from invite_desk.services.admin import audit_log as admin_audit
from invite_desk.services.admin import events as admin_events
from invite_desk.services.admin import notifications as admin_notifications
from invite_desk.services.admin import people as admin_people
from invite_desk.services.admin import units as admin_units
from invite_desk.services.bounces import mailbox
from invite_desk.services.credentials import MemoryCredentialStore
from invite_desk.services.errors import PermissionDenied
from invite_desk.services.invitations import queueing, send_scope
from invite_desk.services.invitations.importing import parse_pasted
from invite_desk.services.invitations.preflight import run_preflight
from invite_desk.services.models import AdhesionStatus, AuditLog, Member, MemberStatus
from invite_desk.services.operator import Operator
from invite_desk.services.roles import Role
from invite_desk.services.sync import replica as sync_replica
from invite_desk.services.tracking import actions, choices, export, history, read
from invite_desk.services.tracking.query import InvitationQuery
from invite_desk.services.uow import UnitOfWork
from tests.tracking_data import NOW, S, Seeder


@dataclass(frozen=True)
class World:
    applicant: uuid.UUID
    member: uuid.UUID
    sent: uuid.UUID
    revoked: uuid.UUID
    ready: Any  # preflight rows ready to queue
    application: Any  # the applicant's ApplicationRow, as an admin sees it


Call = Callable[[UnitOfWork, Operator, World], object]

# Every public service function that takes (uow, operator), and how to call it.
ENTRY_POINTS: dict[str, Call] = {
    "adhesion.list_applications": lambda u, o, w: adhesion.list_applications(u, o),
    "adhesion.count_open_applications": lambda u, o, w: adhesion.count_open_applications(u, o),
    "adhesion.get_application": lambda u, o, w: adhesion.get_application(u, o, w.applicant),
    "adhesion.approve": lambda u, o, w: adhesion.approve(u, o, w.applicant),
    "adhesion.reject": lambda u, o, w: adhesion.reject(u, o, w.applicant, "Not eligible"),
    "adhesion.return_to_draft": lambda u, o, w: adhesion.return_to_draft(
        u, o, w.applicant, "Add your address"),
    "adhesion.resubmit": lambda u, o, w: adhesion.resubmit(u, o, w.applicant),
    "applications_view.applications_snapshot": lambda u, o, w: (
        applications_view.applications_snapshot(u, o)),
    "applications_view.application_details": lambda u, o, w: (
        applications_view.application_details(u, o, w.applicant)),
    "applications_view.decide_applications": lambda u, o, w: (
        applications_view.decide_applications(u, o, applications_view.Verdict.APPROVE,
                                              [w.application])),
    "compose_view.compose_state": lambda u, o, w: compose_view.compose_state(u, o),
    "invitations.queueing.queue_invitations": lambda u, o, w: queueing.queue_invitations(
        u, o, w.ready),
    "invitations.queueing.unsent_batches": lambda u, o, w: queueing.unsent_batches(u, o),
    "invitations.send_scope.sendable_scope": lambda u, o, w: send_scope.sendable_scope(u, o),
    "mail_settings.update_mail_settings": lambda u, o, w: mail_settings.update_mail_settings(
        u, o, {"host": "smtp.example.org", "port": 587, "security": "starttls",
               "from_address": "invitations@example.org", "rate_per_minute": 30}),
    "mail_settings.update_templates": lambda u, o, w: mail_settings.update_templates(u, o, None),
    "mail_settings.sign_in_smtp": lambda u, o, w: mail_settings.sign_in_smtp(
        u, o, MemoryCredentialStore(), show=print),
    "members_lookup.search_members": lambda u, o, w: members_lookup.search_members(u, o, "a"),
    "members_view.open_members": lambda u, o, w: members_view.open_members(
        u, o, members_view.MemberQuery()),
    "members_view.count_members": lambda u, o, w: members_view.count_members(
        u, o, members_view.MemberQuery()),
    "members_view.fetch_members": lambda u, o, w: members_view.fetch_members(
        u, o, members_view.MemberQuery(), 0),
    "members_view.find_members": lambda u, o, w: members_view.find_members(u, o, "Uma"),
    "members_view.member_activity": lambda u, o, w: members_view.member_activity(
        u, o, w.member, NOW),
    "organization.update_organization": lambda u, o, w: organization.update_organization(
        u, o, {"description": "Changed by someone who left."}),
    "referral_program.activity.member_activity": lambda u, o, w: rp.member_activity(
        u, o, w.member, NOW),
    "referral_program.flags.list_flags": lambda u, o, w: rp.list_flags(u, o),
    "referral_program.flags.decide_flag": lambda u, o, w: rp.decide_flag(
        u, o, uuid.uuid4(), rp.FlagStatus.CLEARED),
    "referral_program.ledger.reconcile": lambda u, o, w: rp.reconcile(u, o, NOW),
    "referral_program.reports.leaderboard": lambda u, o, w: rp.leaderboard(
        u, o, rp.Period(), now=NOW),
    "referral_program.reports.leaderboard_standing": lambda u, o, w:
        rp.leaderboard_standing(u, o, rp.Period(), now=NOW),
    "referral_program.reports.trends": lambda u, o, w: rp.trends(u, o, rp.Period(), now=NOW),
    "referral_program.reports.conversion": lambda u, o, w: rp.conversion(
        u, o, rp.Period(), now=NOW),
    "referral_program.reports.retention": lambda u, o, w: rp.retention(u, o, now=NOW),
    "referral_program.settings.get_settings": lambda u, o, w: rp.get_settings(u, o),
    "referral_program.settings.save_settings": lambda u, o, w: rp.save_settings(
        u, o, {"points_per_referral": 5}),
    "referral_program.settings.leaderboard_opt_out": lambda u, o, w:
        rp.leaderboard_opt_out(u, o, w.member),
    "referral_program.settings.set_leaderboard_opt_out": lambda u, o, w:
        rp.set_leaderboard_opt_out(u, o, w.member, True),
    "settings.update_settings": lambda u, o, w: settings.update_settings(
        u, o, {"has_user_invitation": False}),
    "tracking.actions.resend_invitations": lambda u, o, w: actions.resend_invitations(
        u, o, [w.sent], now=NOW),
    "tracking.actions.revoke_invitations": lambda u, o, w: actions.revoke_invitations(
        u, o, [w.sent], now=NOW),
    "tracking.actions.extend_invitations": lambda u, o, w: actions.extend_invitations(
        u, o, [w.sent], 3, now=NOW),
    "tracking.actions.issue_fresh_links": lambda u, o, w: actions.issue_fresh_links(
        u, o, [w.sent], now=NOW),
    "tracking.actions.restore_revoked": lambda u, o, w: actions.restore_revoked(
        u, o, w.revoked, now=NOW),
    "tracking.choices.recent_batches": lambda u, o, w: choices.recent_batches(u, o),
    "tracking.choices.filter_choices": lambda u, o, w: choices.filter_choices(u, o),
    "tracking.export.export_csv": lambda u, o, w: export.export_csv(
        u, o, InvitationQuery(), io.StringIO(), now=NOW),
    "tracking.history.invitation_detail": lambda u, o, w: history.invitation_detail(
        u, o, w.sent, NOW),
    "tracking.read.count_invitations": lambda u, o, w: read.count_invitations(
        u, o, InvitationQuery(), NOW),
    "tracking.read.count_tabs": lambda u, o, w: read.count_tabs(u, o, InvitationQuery(), NOW),
    "tracking.read.fetch_page": lambda u, o, w: read.fetch_page(
        u, o, InvitationQuery(), 0, now=NOW),
    "tracking.read.open_view": lambda u, o, w: read.open_view(u, o, InvitationQuery(), now=NOW),
    "tracking.read.get_invitations": lambda u, o, w: read.get_invitations(u, o, [w.sent], NOW),
    "tracking.read.get_invitation": lambda u, o, w: read.get_invitation(u, o, w.sent, NOW),
    # Issue 11: administration.
    "admin.people.list_people": lambda u, o, w: admin_people.list_people(u, o),
    "admin.people.get_person": lambda u, o, w: admin_people.get_person(u, o, w.member),
    "admin.people.edit_policy": lambda u, o, w: admin_people.edit_policy(u, o, w.member),
    "admin.people.update_person": lambda u, o, w: admin_people.update_person(
        u, o, w.member, role=Role.HR_LOCAL),
    "admin.people.bulk_update": lambda u, o, w: admin_people.bulk_update(
        u, o, [w.member], role=Role.HR_LOCAL),
    "admin.people.issue_sign_in_link": lambda u, o, w: admin_people.issue_sign_in_link(
        u, o, w.member),
    "admin.people.issue_one_time_password": lambda u, o, w:
        admin_people.issue_one_time_password(u, o, w.member),
    "admin.people.revoke_sign_in": lambda u, o, w: admin_people.revoke_sign_in(u, o, w.member),
    "admin.units.list_units": lambda u, o, w: admin_units.list_units(u, o),
    "admin.units.create_unit": lambda u, o, w: admin_units.create_unit(u, o, "South"),
    "admin.units.rename_unit": lambda u, o, w: admin_units.rename_unit(
        u, o, uuid.uuid4(), "South"),
    "admin.units.merge_units": lambda u, o, w: admin_units.merge_units(
        u, o, uuid.uuid4(), uuid.uuid4()),
    "admin.units.archive_unit": lambda u, o, w: admin_units.archive_unit(u, o, uuid.uuid4()),
    "admin.units.move_members": lambda u, o, w: admin_units.move_members(
        u, o, [w.member], None),
    "admin.events.list_events": lambda u, o, w: admin_events.list_events(u, o),
    "admin.events.get_event": lambda u, o, w: admin_events.get_event(u, o, uuid.uuid4()),
    "admin.events.create_event": lambda u, o, w: admin_events.create_event(
        u, o, admin_events.EventDraft("Gala", None, "UTC")),
    "admin.events.update_event": lambda u, o, w: admin_events.update_event(
        u, o, uuid.uuid4(), admin_events.EventDraft("Gala", None, "UTC")),
    "admin.events.archive_event": lambda u, o, w: admin_events.archive_event(
        u, o, uuid.uuid4()),
    "admin.events.event_guests": lambda u, o, w: admin_events.event_guests(u, o, uuid.uuid4()),
    "admin.audit_log.fetch_audit_page": lambda u, o, w: admin_audit.fetch_audit_page(
        u, o, admin_audit.AuditQuery()),
    "admin.audit_log.audit_choices": lambda u, o, w: admin_audit.audit_choices(u, o),
    "admin.audit_log.export_audit_csv": lambda u, o, w: admin_audit.export_audit_csv(
        u, o, admin_audit.AuditQuery(), io.StringIO()),
    "admin.audit_log.history_for": lambda u, o, w: admin_audit.history_for(
        u, o, "member", w.member),
    "admin.notifications.pending_counts": lambda u, o, w: admin_notifications.pending_counts(
        u, o),
    # Deliverability (issue 13).
    "suppression.list_suppressions": lambda u, o, w: suppression.list_suppressions(u, o),
    "suppression.add_suppression": lambda u, o, w: suppression.add_suppression(
        u, o, "someone@example.org"),
    "suppression.undo_suppression": lambda u, o, w: suppression.undo_suppression(
        u, o, uuid.uuid4()),
    "suppression.undo_address": lambda u, o, w: suppression.undo_address(
        u, o, "someone@example.org"),
    "bounces.mailbox.save_imap_settings": lambda u, o, w: mailbox.save_imap_settings(
        u, o, {"host": "imap.example.org", "username": "bounces"}),
    "bounces.mailbox.fetch_bounces": lambda u, o, w: mailbox.fetch_bounces(
        u, o, mailbox.ImapSettings("127.0.0.1", 9, "none", "bounces"), "pw"),
    "scheduling.schedule_batch": lambda u, o, w: scheduling.schedule_batch(
        u, o, uuid.uuid4(), NOW),
    "sync.replica.prune_change_log": lambda u, o, w: sync_replica.prune_change_log(u, o, 30),
}


def public_entry_points() -> set[str]:
    """Public functions of invite_desk.services whose first parameters are (uow, operator)."""
    found: set[str] = set()
    prefix = invite_desk.services.__name__ + "."
    for info in pkgutil.walk_packages(invite_desk.services.__path__, prefix):
        module = importlib.import_module(info.name)
        for name, function in inspect.getmembers(module, inspect.isfunction):
            if name.startswith("_") or function.__module__ != module.__name__:
                continue
            params = list(inspect.signature(function).parameters)
            if params[:2] == ["uow", "operator"]:
                found.add(f"{module.__name__.removeprefix(prefix)}.{name}")
    return found


def test_the_list_covers_every_entry_point_that_takes_an_operator() -> None:
    assert public_entry_points() == set(ENTRY_POINTS)


@pytest.fixture
def world(uow: UnitOfWork, admin: Operator) -> World:
    seeder = Seeder(uow, admin.organization_id)
    unit = seeder.unit("North")
    uma = seeder.member("Uma", "Underwood", unit_id=unit)
    applicant = seeder.member("Cal", "Carter", unit_id=unit, status=MemberStatus.APPLICANT)
    with uow:
        row = uow.session.get(Member, applicant.member_id)
        assert row is not None
        row.adhesion_status = AdhesionStatus.PENDING.value
        uow.commit()
    sent = seeder.add(S.SENT, inviter=uma.member_id, unit_id=unit, token=True)
    revoked = seeder.add(S.SENT, inviter=uma.member_id, unit_id=unit, token=True)
    actions.revoke_invitations(uow, admin, [revoked.id], now=NOW)
    ready = run_preflight(uow, admin.organization_id,
                          parse_pasted("new.person@example.org").rows).ready
    application = adhesion.get_application(uow, admin, applicant.member_id)
    return World(applicant.member_id, uma.member_id, sent.id, revoked.id, ready, application)


def set_member(uow: UnitOfWork, member_id: uuid.UUID, **values: Any) -> None:
    with uow:
        member = uow.session.get(Member, member_id)
        assert member is not None
        for field, value in values.items():
            setattr(member, field, value)
        uow.commit()


def audit_count(uow: UnitOfWork) -> int:
    with uow:
        return len(list(uow.session.scalars(select(AuditLog.id))))


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
def test_a_deactivated_operator_is_refused_everywhere(
    uow: UnitOfWork, admin: Operator, make_operator: Any, world: World, entry: str
) -> None:
    boss = make_operator(Role.ADMIN_TENANT)  # signed in with every right
    set_member(uow, boss.member_id, status=MemberStatus.DEACTIVATED.value)
    audits = audit_count(uow)
    with pytest.raises(PermissionDenied, match="no longer active"):
        ENTRY_POINTS[entry](uow, boss, world)
    assert audit_count(uow) == audits  # nothing was written


def test_a_deactivated_operator_is_refused_even_a_search_for_nothing(
    uow: UnitOfWork, make_operator: Any
) -> None:
    boss = make_operator(Role.ADMIN_TENANT)
    set_member(uow, boss.member_id, status=MemberStatus.DEACTIVATED.value)
    for search in (members_view.find_members, members_lookup.search_members):
        with pytest.raises(PermissionDenied, match="no longer active"):
            search(uow, boss, " ")


WRITES = [e for e in ENTRY_POINTS if e.startswith((
    "adhesion.approve", "adhesion.reject", "adhesion.return", "adhesion.resubmit",
    "invitations.queueing.queue", "mail_settings.update", "organization.update",
    "settings.update", "tracking.actions.", "admin.people.update", "admin.people.bulk",
    "admin.people.issue", "admin.people.revoke", "admin.units.create", "admin.units.move",
    "admin.events.create", "referral_program.settings.save",
    "referral_program.settings.set_", "referral_program.flags.decide",
    "suppression.add", "suppression.undo_address", "bounces.mailbox.save"))]


@pytest.mark.parametrize("entry", sorted(WRITES))
def test_a_demoted_operator_loses_the_right_at_once(
    uow: UnitOfWork, admin: Operator, make_operator: Any, world: World, entry: str
) -> None:
    settings.update_settings(uow, admin, {"who_can_send_user_invitation": Role.HR_LOCAL})
    boss = make_operator(Role.ADMIN_TENANT)
    set_member(uow, boss.member_id, role=Role.USER.name)  # demoted while signed in
    audits = audit_count(uow)
    with pytest.raises(PermissionDenied):
        ENTRY_POINTS[entry](uow, boss, world)
    assert audit_count(uow) == audits


@pytest.mark.parametrize("entry", ["adhesion.count_open_applications",
                                   "members_lookup.search_members",
                                   "invitations.queueing.unsent_batches"])
def test_the_three_reads_that_trusted_the_signed_in_operator_now_re_read_it(
    uow: UnitOfWork, admin: Operator, make_operator: Any, world: World, entry: str
) -> None:
    boss = make_operator(Role.ADMIN_TENANT)
    assert ENTRY_POINTS[entry](uow, boss, world) is not None  # works while active
    set_member(uow, boss.member_id, status=MemberStatus.DEACTIVATED.value)
    with pytest.raises(PermissionDenied, match="sign in again"):
        ENTRY_POINTS[entry](uow, boss, world)
