"""Invitation tracking services on real databases: tabs and counts under the effective-status
rule, paging from both ends, sorting on every column, search, filters, scope per role, the
row actions (with their audit rows), the expiry sweep, the CSV export and the history."""

from __future__ import annotations

import csv
import io
import uuid
from dataclasses import dataclass
from datetime import timedelta
from email.message import EmailMessage
from typing import Any

import pytest
from sqlalchemy import func, select

from invite_desk import cli
from invite_desk.services import auth, mail_settings, settings
from invite_desk.services.errors import NotFound, PermissionDenied, ValidationFailed
from invite_desk.services.invitations.sending import OutboxSender
from invite_desk.services.invitations.tokens import hash_token
from invite_desk.services.models import AuditLog, Batch, Invitation, InvitationKind
from invite_desk.services.operator import Operator
from invite_desk.services.registration.links import LinkState, open_link
from invite_desk.services.roles import Role
from invite_desk.services.smtp.transport import SendResult, Sent
from invite_desk.services.tracking import (
    Column,
    Filters,
    InvitationQuery,
    RowAction,
    Tab,
    count_invitations,
    count_tabs,
    effective_status,
    expire_overdue,
    export_csv,
    extend_invitations,
    fetch_page,
    get_invitation,
    invitation_detail,
    issue_fresh_links,
    open_view,
    resend_invitations,
    revoke_invitations,
)
from invite_desk.services.tracking.read import branches, page_ids
from invite_desk.services.tracking.status import tab_of
from invite_desk.services.uow import UnitOfWork
from tests.tracking_data import NOW, S, Seeder

PASSWORD = "a long enough password"


# ------------------------------------------------------------------------------ fixtures
def make_admin(uow: UnitOfWork) -> Operator:
    return auth.setup_organization(
        uow, organization_name="Harbour Rowing Club", admin_email="ada@example.org",
        admin_first_name="Ada", admin_last_name="Admin", password=PASSWORD,
        registration_base_url="https://join.example.org")


@pytest.fixture
def seeder(uow: UnitOfWork, admin: Operator) -> Seeder:
    return Seeder(uow, admin.organization_id)


def every_state(seeder: Seeder, inviter: uuid.UUID) -> dict[str, Any]:
    """One or more invitations in each stored status, plus sent ones past their expiry."""
    added = {
        "draft": seeder.add(S.DRAFT, inviter=inviter),
        "queued": seeder.add(S.QUEUED, inviter=inviter),
        "sending": seeder.add(S.SENDING, inviter=inviter),
        "live": seeder.add(S.SENT, inviter=inviter, token=True),
        "live2": seeder.add(S.SENT, inviter=inviter, sent_days_ago=5),
        "overdue": seeder.add(S.SENT, inviter=inviter, sent_days_ago=20, expires_in_days=-6,
                              token=True),
        "expired": seeder.add(S.EXPIRED, inviter=inviter, sent_days_ago=30, expires_in_days=-16),
        "accepted": seeder.add(S.ACCEPTED, inviter=inviter),
        "revoked": seeder.add(S.REVOKED, inviter=inviter),
        "failed": seeder.add(S.FAILED, inviter=inviter, last_error="550 no such user"),
        "uncertain": seeder.add(S.UNCERTAIN, inviter=inviter, expires_in_days=3),
    }
    return added


def all_ids(uow: UnitOfWork, operator: Operator, query: InvitationQuery) -> list[uuid.UUID]:
    snapshot = open_view(uow, operator, query, limit=10_000, now=NOW)
    return [row.id for row in snapshot.first_page.rows]


# ------------------------------------------------------------------------------ tabs and counts
def test_each_tab_holds_the_invitations_the_effective_status_puts_there(
    uow: UnitOfWork, admin: Operator, seeder: Seeder
) -> None:
    added = every_state(seeder, admin.member_id)

    def emails(tab: Tab) -> set[str]:
        return {row.email for row in open_view(uow, admin, InvitationQuery(tab=tab),
                                               now=NOW).first_page.rows}

    def of(*keys: str) -> set[str]:
        return {added[k].email for k in keys}

    assert emails(Tab.PENDING) == of("queued", "sending", "live", "live2")
    assert emails(Tab.EXPIRED) == of("overdue", "expired")  # overdue: expired before any sweep
    assert emails(Tab.ACCEPTED) == of("accepted")
    assert emails(Tab.FAILED) == of("failed")
    assert emails(Tab.UNCERTAIN) == of("uncertain")
    assert emails(Tab.REVOKED) == of("revoked")
    assert emails(Tab.ALL) == of(*added)  # drafts only appear under All
    counts = count_tabs(uow, admin, InvitationQuery(), NOW)
    assert counts == {Tab.PENDING: 4, Tab.ACCEPTED: 1, Tab.EXPIRED: 2, Tab.FAILED: 1,
                      Tab.UNCERTAIN: 1, Tab.REVOKED: 1, Tab.BOUNCED: 0,
                      Tab.SUPPRESSED: 0, Tab.ALL: 11}
    for tab in Tab:
        assert count_invitations(uow, admin, InvitationQuery(tab=tab), NOW) == counts[tab]
    overdue = get_invitation(uow, admin, added["overdue"].id, NOW)
    assert (overdue.stored_status, overdue.status) == (S.SENT, S.EXPIRED)


def test_a_sent_invitation_moves_from_pending_to_expired_the_moment_its_expiry_passes(
    uow: UnitOfWork, admin: Operator, seeder: Seeder
) -> None:
    row = seeder.add(S.SENT, inviter=admin.member_id, expires_in_days=1, token=True)
    expiry = NOW + timedelta(days=1)
    before, after = expiry - timedelta(microseconds=1), expiry

    assert count_tabs(uow, admin, InvitationQuery(), before)[Tab.PENDING] == 1
    assert count_tabs(uow, admin, InvitationQuery(), after)[Tab.EXPIRED] == 1
    assert get_invitation(uow, admin, row.id, after).status is S.EXPIRED
    # The portal refuses the link by the same rule.
    assert row.token is not None
    assert open_link(uow, row.token, now=before).state is LinkState.VALID
    assert open_link(uow, row.token, now=after).state is LinkState.EXPIRED


# ------------------------------------------------------------------------------ paging and sorting
@pytest.fixture
def any_admin(any_uow: UnitOfWork) -> Operator:
    return make_admin(any_uow)


def many(seeder: Seeder, inviter: uuid.UUID, units: list[uuid.UUID]) -> None:
    """37 invitations across statuses, units and dates, with ties on purpose."""
    statuses = [S.SENT, S.SENT, S.QUEUED, S.ACCEPTED, S.EXPIRED, S.FAILED, S.REVOKED, S.SENT,
                S.UNCERTAIN, S.DRAFT]
    for i in range(37):
        status = statuses[i % len(statuses)]
        overdue = status is S.SENT and i % 3 == 0
        seeder.add(status, inviter=inviter, unit_id=units[i % len(units)],
                   email=f"{'abcxyz'[i % 6]}{i:02d}@example.{'org' if i % 2 else 'net'}",
                   name=f"Person {i % 7}", sent_days_ago=(i % 9) + 1 if status not in (
                       S.QUEUED, S.DRAFT, S.FAILED, S.UNCERTAIN) else None,
                   expires_in_days=-1 if overdue else 5 + (i % 4),
                   last_error="550 refused" if status is S.FAILED else "",
                   queued_days_ago=(i % 5) + 1)


@pytest.mark.parametrize("tab", [Tab.PENDING, Tab.EXPIRED, Tab.ALL, Tab.ACCEPTED])
def test_pages_from_either_end_put_together_the_same_sorted_view_on_every_backend(
    any_uow: UnitOfWork, any_admin: Operator, tab: Tab
) -> None:
    seeder = Seeder(any_uow, any_admin.organization_id)
    units = [seeder.unit("North"), seeder.unit("South")]
    inviters = [any_admin.member_id, seeder.member("Zed", "Zulu").member_id,
                seeder.member("amy", "alpha").member_id]
    for index, inviter in enumerate(inviters):
        seeder.now = NOW - timedelta(hours=index)
        many(seeder, inviter, units)
    for column in Column:
        for descending in (False, True):
            query = InvitationQuery(tab=tab, sort=column, descending=descending)
            full = all_ids(any_uow, any_admin, query)
            total = count_invitations(any_uow, any_admin, query, NOW)
            assert len(full) == total == len(set(full)), (column, descending)
            pieced: list[uuid.UUID] = []
            for offset in range(0, total, 7):  # the second half is read from the end
                pieced += [r.id for r in fetch_page(any_uow, any_admin, query, offset, 7,
                                                     total=total, now=NOW).rows]
            assert pieced == full, (column, descending)
            rows = fetch_page(any_uow, any_admin, query, 0, total, now=NOW).rows
            assert all(tab is Tab.ALL or tab_of(r.status) is tab for r in rows)
            keys = [sort_value(r, column) for r in rows]
            present = [k for k in keys if k is not None and k != ""]
            expected = sorted(present, reverse=descending)
            assert present == expected, (column, descending)


def sort_value(row: Any, column: Column) -> Any:
    """The value the SQL sort orders by, as Python sees it (None for NULL)."""
    return {
        Column.INVITEE: row.email.lower(),
        Column.INVITER: None,  # names: checked by test_sorting_by_a_name_column
        Column.SENDER: None,
        Column.UNIT: row.unit_name or None,
        Column.KIND: None,
        Column.BATCH: None,
        Column.SENT: None,  # sent, or queued when never sent: checked separately
        Column.EXPIRES: row.expires_at,
        Column.ACCEPTED: row.accepted_at,
        Column.STATUS: row.status.value,
        Column.LAST_ERROR: row.last_error or None,
    }[column]


def test_sorting_by_sent_puts_never_sent_rows_by_when_they_were_queued(
    uow: UnitOfWork, admin: Operator, seeder: Seeder
) -> None:
    old = seeder.add(S.SENT, inviter=admin.member_id, sent_days_ago=9)
    queued = seeder.add(S.QUEUED, inviter=admin.member_id, queued_days_ago=5)
    new = seeder.add(S.SENT, inviter=admin.member_id, sent_days_ago=1)
    query = InvitationQuery(tab=Tab.PENDING, sort=Column.SENT, descending=True)

    assert all_ids(uow, admin, query) == [new.id, queued.id, old.id]
    # The same order when a search makes it one SELECT instead of a union of statuses.
    assert all_ids(uow, admin, InvitationQuery(tab=Tab.PENDING, search="invitee",
                                              sort=Column.SENT)) == [new.id, queued.id, old.id]


def test_sorting_by_a_name_column_follows_the_names_shown(
    uow: UnitOfWork, admin: Operator, seeder: Seeder
) -> None:
    zoe = seeder.member("Zoë", "Adams")
    bob = seeder.member("bob", "Young")
    north, south = seeder.unit("North"), seeder.unit("South")
    a = seeder.add(S.SENT, inviter=zoe.member_id, unit_id=south)
    b = seeder.add(S.SENT, inviter=bob.member_id, unit_id=north)
    c = seeder.add(S.SENT, inviter=admin.member_id)  # Ada Admin, no unit

    def order(column: Column, descending: bool = False) -> list[uuid.UUID]:
        return all_ids(uow, admin, InvitationQuery(tab=Tab.PENDING, sort=column,
                                                  descending=descending))

    assert order(Column.INVITER) == [c.id, b.id, a.id]  # ada, bob, zoë (case-insensitive)
    assert order(Column.INVITER, True) == [a.id, b.id, c.id]
    assert order(Column.SENDER) == [c.id, b.id, a.id]
    assert order(Column.UNIT)[1:] == [b.id, a.id]  # no unit first or last, by backend
    assert order(Column.UNIT)[0] == c.id or order(Column.UNIT)[-1] == c.id


def test_a_page_is_two_index_queries_not_a_sort_of_the_whole_tab(
    uow: UnitOfWork, admin: Operator, seeder: Seeder
) -> None:
    """SQLite answers the default view by merging per-status index walks (no temp B-tree)."""
    from sqlalchemy import text

    from invite_desk.services.tracking.read import ordered_ids, view_parts, view_sql

    every_state(seeder, admin.member_id)
    for tab in (Tab.PENDING, Tab.EXPIRED, Tab.ALL, Tab.ACCEPTED):
        for column in (Column.SENT, Column.EXPIRES, Column.INVITEE, Column.STATUS,
                       Column.ACCEPTED):
            query = InvitationQuery(tab=tab, sort=column)
            with uow:
                view = view_sql(uow.session, admin, query, NOW)
                for part in view_parts(view, query):
                    stmt = ordered_ids(part.view, part.query, NOW, descending=True).limit(200)
                    sql = str(stmt.compile(uow.engine, compile_kwargs={"literal_binds": True}))
                    plan = [r[3] for r in uow.session.execute(text("EXPLAIN QUERY PLAN " + sql))]
                    assert not any("TEMP B-TREE" in step for step in plan), (tab, column, plan)
                    assert not any(step.startswith("SCAN") for step in plan), (tab, column, plan)


# ------------------------------------------------------------------------------ search and filters
def test_search_matches_email_name_and_inviter_prefixes(
    uow: UnitOfWork, admin: Operator, seeder: Seeder
) -> None:
    grace = seeder.member("Grace", "Hopper")
    a = seeder.add(S.SENT, inviter=admin.member_id, email="lovelace@analytical.org",
                   name="Ada Lovelace")
    b = seeder.add(S.SENT, inviter=grace.member_id, email="turing@bletchley.uk", name="Alan Turing")
    c = seeder.add(S.ACCEPTED, inviter=admin.member_id, email="alan.kay@parc.com", name="alan kay")

    def found(text: str, tab: Tab = Tab.ALL) -> set[uuid.UUID]:
        return set(all_ids(uow, admin, InvitationQuery(tab=tab, search=text)))

    assert found("LOVE") == {a.id}  # email, case-insensitive
    assert found("alan") == {b.id, c.id}  # names, however they are capitalized
    assert found("hopper") == {b.id}  # the inviter's last name
    assert found("Grace Hop") == {b.id}  # the inviter's "first last"
    assert found("grace@") == set()
    assert found("alan", Tab.PENDING) == {b.id}
    assert found("100%_x") == set()  # LIKE wildcards are taken literally
    counts = count_tabs(uow, admin, InvitationQuery(search="alan"), NOW)
    assert (counts[Tab.PENDING], counts[Tab.ACCEPTED], counts[Tab.ALL]) == (1, 1, 2)


def test_filters_narrow_by_unit_inviter_batch_event_kind_and_sent_dates(
    uow: UnitOfWork, admin: Operator, seeder: Seeder
) -> None:
    north = seeder.unit("North")
    bea = seeder.member("Bea", "Baker", unit_id=north)
    batch = seeder.batch(admin.member_id, "Spring open day")
    ride = seeder.event("Sunday ride")
    in_north = seeder.add(S.SENT, inviter=bea.member_id, unit_id=north, sent_days_ago=1)
    in_batch = seeder.add(S.SENT, inviter=admin.member_id, batch_id=batch, sent_days_ago=3)
    guest = seeder.add(S.SENT, inviter=admin.member_id, event_id=ride, sent_days_ago=8)

    def found(**filters: Any) -> set[uuid.UUID]:
        return set(all_ids(uow, admin, InvitationQuery(filters=Filters(**filters))))

    assert found(unit_id=north) == {in_north.id}
    assert found(inviter_id=bea.member_id) == {in_north.id}
    assert found(batch_id=batch) == {in_batch.id}
    assert found(event_id=ride) == {guest.id}
    assert found(kind=InvitationKind.EVENT) == {guest.id}
    assert found(kind=InvitationKind.MEMBERSHIP) == {in_north.id, in_batch.id}
    assert found(sent_from=NOW - timedelta(days=4), sent_to=NOW - timedelta(days=2)) == {in_batch.id}


# ------------------------------------------------------------------------------ scope
@pytest.fixture
def scoped(uow: UnitOfWork, admin: Operator, seeder: Seeder) -> dict[str, Any]:
    north, south = seeder.unit("North"), seeder.unit("South")
    user = seeder.member("Uma", "User", unit_id=north)
    helper = seeder.member("Hal", "Helper", role=Role.HR_LOCAL, unit_id=north)
    other = seeder.member("Olga", "Other", unit_id=south)
    rows = {
        "user_own": seeder.add(S.SENT, inviter=user.member_id, unit_id=north),
        "user_sent_for_other": seeder.add(S.SENT, inviter=other.member_id,
                                          sender=user.member_id, unit_id=south),
        "north": seeder.add(S.SENT, inviter=helper.member_id, unit_id=north),
        "south": seeder.add(S.SENT, inviter=other.member_id, unit_id=south),
        "helper_in_south": seeder.add(S.SENT, inviter=other.member_id, sender=helper.member_id,
                                      unit_id=south),
    }
    return {"user": user, "helper": helper, "rows": rows,
            "tenant_hr": seeder.member("Tess", "Tenant", role=Role.HR_TENANT)}


@pytest.mark.parametrize(("who", "sees"), [
    ("user", {"user_own", "user_sent_for_other"}),
    ("helper", {"user_own", "north", "helper_in_south"}),
    ("tenant_hr", {"user_own", "user_sent_for_other", "north", "south", "helper_in_south"}),
])
def test_each_role_lists_and_counts_only_its_scope(
    uow: UnitOfWork, scoped: dict[str, Any], who: str, sees: set[str]
) -> None:
    operator = scoped[who]
    rows = scoped["rows"]
    expected = {rows[k].id for k in sees}
    assert set(all_ids(uow, operator, InvitationQuery())) == expected
    assert count_tabs(uow, operator, InvitationQuery(), NOW)[Tab.ALL] == len(expected)
    assert set(all_ids(uow, operator, InvitationQuery(search="invitee"))) == expected
    outside = [r.id for k, r in rows.items() if k not in sees]
    for invitation_id in outside:
        with pytest.raises(PermissionDenied):
            get_invitation(uow, operator, invitation_id, NOW)


@pytest.mark.parametrize(("who", "allowed", "denied"), [
    ("user", "user_own", "north"),
    ("helper", "north", "south"),
])
def test_actions_outside_the_scope_are_refused_and_change_nothing(
    uow: UnitOfWork, scoped: dict[str, Any], who: str, allowed: str, denied: str
) -> None:
    operator = scoped[who]
    rows = scoped["rows"]
    with pytest.raises(PermissionDenied) as raised:
        revoke_invitations(uow, operator, [rows[allowed].id, rows[denied].id], now=NOW)
    assert "needs the" in str(raised.value)
    with uow:
        assert uow.session.get(Invitation, rows[allowed].id).status == S.SENT.value
        assert uow.session.scalar(select(func.count()).select_from(AuditLog).where(
            AuditLog.action == "invitation.revoked")) == 0
    assert revoke_invitations(uow, operator, [rows[allowed].id], now=NOW).done == (rows[allowed].id,)


# ------------------------------------------------------------------------------ actions
@dataclass(frozen=True)
class Entry:
    entity_id: uuid.UUID | None
    actor_id: uuid.UUID | None
    before_json: str
    after_json: str


def audit_rows(uow: UnitOfWork, action: str) -> list[Entry]:
    with uow:
        return [Entry(r.entity_id, r.actor_id, r.before_json, r.after_json)
                for r in uow.session.scalars(select(AuditLog).where(AuditLog.action == action))]


def test_revoke_kills_the_link_at_once_and_skips_what_cannot_be_revoked(
    uow: UnitOfWork, admin: Operator, seeder: Seeder
) -> None:
    live = seeder.add(S.SENT, inviter=admin.member_id, token=True)
    accepted = seeder.add(S.ACCEPTED, inviter=admin.member_id)
    result = revoke_invitations(uow, admin, [live.id, accepted.id], now=NOW)

    assert result.done == (live.id,)
    assert [(s.invitation_id, s.reason) for s in result.skipped] == [(accepted.id, "it was accepted")]
    assert "1 invitation revoked; 1 skipped" in result.summary
    with uow:
        row = uow.session.get(Invitation, live.id)
        # The hash stays so that the revoke can be undone; the status alone kills the link.
        assert (row.status, row.revoked_at) == (S.REVOKED.value, NOW)
    assert live.token is not None
    assert open_link(uow, live.token, now=NOW).state is LinkState.REVOKED  # dead, and says so
    [entry] = audit_rows(uow, "invitation.revoked")
    assert (entry.entity_id, entry.actor_id) == (live.id, admin.member_id)


def configure_mail(uow: UnitOfWork, admin: Operator) -> None:
    mail_settings.update_mail_settings(uow, admin, {
        "host": "127.0.0.1", "port": 2525, "security": "none",
        "from_address": "invitations@rowing.example", "from_name": "Harbour Rowing Club",
        "rate_per_minute": 0})


class FakeTransport:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []

    def send(self, message: EmailMessage | bytes, to: str) -> SendResult:
        assert isinstance(message, bytes)
        self.sent.append((to, message))
        return Sent("250 OK")

    def close(self) -> None:
        pass


def test_resend_requeues_in_a_new_batch_and_the_sending_worker_issues_a_new_link(
    uow: UnitOfWork, admin: Operator, seeder: Seeder
) -> None:
    expired = seeder.add(S.SENT, inviter=admin.member_id, sent_days_ago=20, expires_in_days=-3,
                         token=True)
    failed = seeder.add(S.FAILED, inviter=admin.member_id, last_error="450 try later")
    queued = seeder.add(S.QUEUED, inviter=admin.member_id)
    old_hash = hash_token(expired.token or "")
    configure_mail(uow, admin)

    result = resend_invitations(uow, admin, [expired.id, failed.id, queued.id], now=NOW)

    assert set(result.done) == {expired.id, failed.id} and result.batch_id is not None
    assert [s.invitation_id for s in result.skipped] == [queued.id]
    with uow:
        rows = {i: uow.session.get(Invitation, i) for i in result.done}
        assert all(r.status == S.QUEUED.value and r.token_hash is None
                   and r.batch_id == result.batch_id for r in rows.values())
        batch = uow.session.get(Batch, result.batch_id)
        assert (batch.source, batch.total, batch.status) == ("resend", 2, "open")
    assert expired.token is not None
    assert open_link(uow, expired.token, now=NOW).state is LinkState.SUPERSEDED  # dead at once
    assert len(audit_rows(uow, "invitation.resent")) == 2

    transport = FakeTransport()
    report = OutboxSender(uow, transport, organization_id=admin.organization_id,
                          batch_id=result.batch_id, clock=lambda: NOW).run()
    assert report.sent == 2
    assert sorted(to for to, _ in transport.sent) == sorted([expired.email, failed.email])
    with uow:
        row = uow.session.get(Invitation, expired.id)
        assert row.status == S.SENT.value and row.token_hash not in (None, old_hash)
        assert row.expires_at is not None and row.expires_at > NOW + timedelta(days=13)
        assert uow.session.get(Invitation, queued.id).status == S.QUEUED.value  # not in the batch


def test_resending_needs_the_right_to_send(
    uow: UnitOfWork, admin: Operator, seeder: Seeder
) -> None:
    user = seeder.member("Uma", "User")
    mine = seeder.add(S.FAILED, inviter=user.member_id)
    settings.update_settings(uow, admin, {"who_can_send_user_invitation": Role.HR_LOCAL})
    with pytest.raises(PermissionDenied, match="HR_LOCAL"):
        resend_invitations(uow, user, [mine.id], now=NOW)
    with pytest.raises(PermissionDenied, match="HR_LOCAL"):
        issue_fresh_links(uow, user, [mine.id], now=NOW)
    # Revoking their own invitation is still theirs to do.
    assert revoke_invitations(uow, user, [mine.id], now=NOW).done == (mine.id,)
    settings.update_settings(uow, admin, {"has_user_invitation": False})
    with pytest.raises(PermissionDenied, match="turned off"):
        resend_invitations(uow, admin, [mine.id], now=NOW)


def test_extend_revives_an_expired_link_and_moves_a_live_expiry(
    uow: UnitOfWork, admin: Operator, seeder: Seeder
) -> None:
    swept = seeder.add(S.EXPIRED, inviter=admin.member_id, sent_days_ago=30, expires_in_days=-2,
                       token=True)
    live = seeder.add(S.SENT, inviter=admin.member_id, expires_in_days=3)
    result = extend_invitations(uow, admin, [swept.id, live.id], 7, now=NOW)

    assert set(result.done) == {swept.id, live.id}
    with uow:
        revived = uow.session.get(Invitation, swept.id)
        assert (revived.status, revived.expires_at) == (S.SENT.value, NOW + timedelta(days=7))
        assert uow.session.get(Invitation, live.id).expires_at == NOW + timedelta(days=10)
    assert swept.token is not None
    assert open_link(uow, swept.token, now=NOW).state is LinkState.VALID
    entry = [e for e in audit_rows(uow, "invitation.extended") if e.entity_id == swept.id][0]
    assert '"status": "expired"' in entry.before_json and '"days": 7' in entry.after_json
    with pytest.raises(ValidationFailed):
        extend_invitations(uow, admin, [live.id], 0, now=NOW)


def test_a_fresh_link_works_and_the_old_one_dies(
    uow: UnitOfWork, admin: Operator, seeder: Seeder
) -> None:
    live = seeder.add(S.SENT, inviter=admin.member_id, token=True)
    result = issue_fresh_links(uow, admin, [live.id], now=NOW)

    [link] = result.links
    assert link.link.startswith("https://join.example.org/join/")
    token = link.link.rsplit("/", 1)[1]
    with uow:
        assert uow.session.get(Invitation, live.id).token_hash == hash_token(token)
    assert open_link(uow, token, now=NOW).state is LinkState.VALID
    assert live.token is not None
    assert open_link(uow, live.token, now=NOW).state is LinkState.SUPERSEDED
    [entry] = audit_rows(uow, "invitation.link_issued")
    assert token not in entry.after_json and token not in entry.before_json


def test_actions_refuse_ids_that_do_not_exist_and_empty_selections(
    uow: UnitOfWork, admin: Operator
) -> None:
    with pytest.raises(NotFound):
        revoke_invitations(uow, admin, [uuid.uuid4()], now=NOW)
    with pytest.raises(ValidationFailed):
        revoke_invitations(uow, admin, [], now=NOW)


def test_why_not_explains_each_refusal() -> None:
    from invite_desk.services.tracking import why_not

    assert why_not(RowAction.RESEND, S.SENDING) == "it is being sent right now; try again in a moment"
    assert why_not(RowAction.EXTEND, S.EXPIRED, has_link=False) == "its link is gone; resend it instead"
    assert why_not(RowAction.REVOKE, S.EXPIRED) is None


# ------------------------------------------------------------------------------ expiry sweep
def test_the_sweep_records_sent_to_expired_once_with_an_audit_row_each(
    any_uow: UnitOfWork, any_admin: Operator
) -> None:
    seeder = Seeder(any_uow, any_admin.organization_id)
    overdue = [seeder.add(S.SENT, inviter=any_admin.member_id, sent_days_ago=20,
                          expires_in_days=-1) for _ in range(5)]
    live = seeder.add(S.SENT, inviter=any_admin.member_id)
    uncertain = seeder.add(S.UNCERTAIN, inviter=any_admin.member_id, expires_in_days=-1)

    assert expire_overdue(any_uow, NOW, chunk=2) == 5
    assert expire_overdue(any_uow, NOW) == 0
    with any_uow:
        got = {r.id: r.status for r in any_uow.session.scalars(select(Invitation))}
    entries = audit_rows(any_uow, "invitation.expired")
    assert {got[r.id] for r in overdue} == {S.EXPIRED.value}
    assert (got[live.id], got[uncertain.id]) == (S.SENT.value, S.UNCERTAIN.value)
    assert sorted(e.entity_id for e in entries) == sorted(r.id for r in overdue)
    assert all(e.actor_id is None and '"status": "sent"' in e.before_json for e in entries)
    # What the tables show did not change: it was expired before the sweep too.
    assert count_tabs(any_uow, any_admin, InvitationQuery(), NOW)[Tab.EXPIRED] == 5


def test_invite_desk_expire_runs_the_sweep(
    sqlite_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from invite_desk import app
    from invite_desk.services import db
    from invite_desk.services.credentials import MemoryCredentialStore
    from invite_desk.services.models import utcnow

    monkeypatch.setattr(app, "default_credentials", MemoryCredentialStore)
    engine = db.make_engine(sqlite_url)
    db.upgrade_to_head(engine)
    uow = UnitOfWork(engine)
    admin = make_admin(uow)
    seeder = Seeder(uow, admin.organization_id, now=utcnow())
    seeder.add(S.SENT, inviter=admin.member_id, sent_days_ago=20, expires_in_days=-1)
    seeder.add(S.SENT, inviter=admin.member_id, sent_days_ago=21, expires_in_days=-2)
    engine.dispose()

    assert cli.main(["expire", "--db", sqlite_url]) == 0
    assert "2 invitations marked as expired." in capsys.readouterr().out
    assert cli.main(["expire", "--db", sqlite_url]) == 0
    assert "0 invitations marked as expired." in capsys.readouterr().out


# ------------------------------------------------------------------------------ export
def test_export_writes_the_view_in_order_and_defuses_formulas(
    uow: UnitOfWork, admin: Operator, seeder: Seeder
) -> None:
    seeder.add(S.SENT, inviter=admin.member_id, email="b@example.org", name="=HYPERLINK(1)")
    seeder.add(S.SENT, inviter=admin.member_id, email="a@example.org", name="Ann")
    seeder.add(S.ACCEPTED, inviter=admin.member_id, email="c@example.org")
    out = io.StringIO()
    query = InvitationQuery(tab=Tab.PENDING, sort=Column.INVITEE, descending=False)
    progress: list[int] = []

    assert export_csv(uow, admin, query, out, now=NOW, on_progress=progress.append) == 2

    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [r["email"] for r in rows] == ["a@example.org", "b@example.org"]
    assert rows[1]["name"] == "'=HYPERLINK(1)"
    assert rows[0]["status"] == "sent" and rows[0]["inviter"] == "Ada Admin"


def test_export_streams_in_chunks(uow: UnitOfWork, admin: Operator, seeder: Seeder,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from invite_desk.services.tracking import read

    for _ in range(1203):
        seeder.counter += 1
    with uow:  # 1,203 rows quickly
        from sqlalchemy import insert

        uow.session.execute(insert(Invitation), [dict(
            id=uuid.uuid4(), organization_id=admin.organization_id, email=f"p{i}@example.org",
            email_normalized=f"p{i}@example.org", name="", kind="membership",
            inviter_id=admin.member_id, sender_id=admin.member_id, personal_message="",
            status="sent", sent_at=NOW - timedelta(minutes=i), expires_at=NOW + timedelta(days=3),
            attempts=1, last_error="", version=1, created_at=NOW, updated_at=NOW)
            for i in range(1203)])
        uow.commit()
    sizes: list[int] = []
    real = read.rows_by_ids

    def spy(session: Any, ids: Any, now: Any) -> Any:
        sizes.append(len(ids))
        return real(session, ids, now)

    monkeypatch.setattr(read, "rows_by_ids", spy)
    assert export_csv(uow, admin, InvitationQuery(), io.StringIO(), now=NOW) == 1203
    assert max(sizes) <= 500 and sum(sizes) == 1203


# ------------------------------------------------------------------------------ history
def test_the_history_tells_the_story_from_the_audit_log(
    uow: UnitOfWork, admin: Operator, seeder: Seeder
) -> None:
    from invite_desk.services.invitations.importing import parse_pasted
    from invite_desk.services.invitations.preflight import run_preflight
    from invite_desk.services.invitations.queueing import queue_invitations

    configure_mail(uow, admin)
    pre = run_preflight(uow, admin.organization_id, parse_pasted("grace@example.org").rows)
    batch = queue_invitations(uow, admin, pre.ready, now=NOW)
    OutboxSender(uow, FakeTransport(), organization_id=admin.organization_id,
                 batch_id=batch.batch_id, clock=lambda: NOW + timedelta(minutes=1)).run()
    with uow:
        invitation_id, message_id = uow.session.execute(
            select(Invitation.id, Invitation.message_id)).one()
    extend_invitations(uow, admin, [invitation_id], 5, now=NOW + timedelta(hours=1))
    revoke_invitations(uow, admin, [invitation_id], now=NOW + timedelta(hours=2))

    detail = invitation_detail(uow, admin, invitation_id, NOW + timedelta(hours=3))

    assert detail.from_audit
    titles = [e.title for e in detail.history]
    assert titles == ["Queued for sending", "Sent", "Expiry extended", "Revoked"]
    sent = detail.history[1]
    assert message_id and message_id in sent.detail and sent.actor == "Ada Admin"


def test_an_overdue_invitation_says_so_in_its_history(
    uow: UnitOfWork, admin: Operator, seeder: Seeder
) -> None:
    row = seeder.add(S.SENT, inviter=admin.member_id, sent_days_ago=20, expires_in_days=-1)
    detail = invitation_detail(uow, admin, row.id, NOW)
    assert not detail.from_audit  # seeded without audit rows: pieced from its dates
    assert [e.title for e in detail.history] == ["Queued for sending", "Sent", "Expired"]
    assert "not recorded it yet" in detail.history[-1].detail


# ------------------------------------------------------------------------------ internals
def test_branches_of_a_tab_are_disjoint_and_cover_it(
    uow: UnitOfWork, admin: Operator, seeder: Seeder
) -> None:
    every_state(seeder, admin.member_id)
    with uow:
        for tab in Tab:
            seen: list[uuid.UUID] = []
            for branch in branches(tab, NOW):
                seen += uow.session.scalars(select(Invitation.id).where(branch.condition))
            assert len(seen) == len(set(seen)) == count_invitations(
                uow, admin, InvitationQuery(tab=tab), NOW)


def test_a_page_past_the_end_is_empty(uow: UnitOfWork, admin: Operator, seeder: Seeder) -> None:
    seeder.add(S.SENT, inviter=admin.member_id)
    with uow:
        assert page_ids(uow.session, admin, InvitationQuery(), NOW, 5, 10, total=1) == []
    assert effective_status("sent", None, NOW) is S.SENT

