"""Single use under concurrent clicks: two (or more) requests with one token make one member,
on SQLite, PostgreSQL and MariaDB. Threads start together at a barrier."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from invite_desk.services import auth
from invite_desk.services.models import Invitation, InvitationStatus, Member, Referral
from invite_desk.services.operator import Operator
from invite_desk.services.registration import joining
from invite_desk.services.registration.joining import JoinResult, register_with_invitation
from invite_desk.services.registration.links import LinkState
from invite_desk.services.roles import Role
from invite_desk.services.uow import UnitOfWork
from tests.registration_fixtures import form, invite

ZOE = "zoe@example.org"
THREADS = 4


@pytest.fixture
def org_admin(any_uow: UnitOfWork) -> Operator:
    return auth.setup_organization(
        any_uow, organization_name="Race Club", admin_email="ada@example.org",
        admin_first_name="Ada", admin_last_name="Admin", password="correct horse battery",
    )


def _race(calls: list[Callable[[], JoinResult]], monkeypatch: pytest.MonkeyPatch) -> list[JoinResult]:
    """Run the calls in threads together; every thread passes the registration's own check of
    the link before any of them claims it, so the claim (not the check) must keep it single use."""
    barrier = threading.Barrier(len(calls))
    checked = threading.Barrier(len(calls))
    local = threading.local()
    original = joining.evaluate

    def evaluate_then_wait(*args: object, **kwargs: object) -> object:
        result = original(*args, **kwargs)  # type: ignore[arg-type]
        if not getattr(local, "waited", False):
            local.waited = True
            checked.wait(timeout=30)
        return result

    monkeypatch.setattr(joining, "evaluate", evaluate_then_wait)

    def run(call: Callable[[], JoinResult]) -> JoinResult:
        barrier.wait(timeout=30)
        return call()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return [f.result(timeout=120) for f in [pool.submit(run, c) for c in calls]]


def _count(uow: UnitOfWork, model: type[Member] | type[Referral]) -> int:
    with uow:
        return int(uow.session.scalar(select(func.count()).select_from(model)) or 0)


def test_one_token_clicked_at_once_makes_one_member(
    any_uow: UnitOfWork, org_admin: Operator, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent = invite(any_uow, org_admin, ZOE)
    results = _race([
        (lambda i=i: register_with_invitation(any_uow, sent.token, form(f"Zoë{i}")))  # type: ignore[misc]
        for i in range(THREADS)
    ], monkeypatch)

    states = Counter(r.state for r in results)
    assert states == {LinkState.VALID: 1, LinkState.USED: THREADS - 1}
    winner = next(r for r in results if r.registered)
    with any_uow:
        members = any_uow.session.scalars(
            select(Member).where(Member.email_normalized == ZOE)).all()
        assert [m.id for m in members] == [winner.member_id]
        row = any_uow.session.get(Invitation, sent.id)
        assert row is not None and row.status == InvitationStatus.ACCEPTED.value
        assert row.accepted_member_id == winner.member_id
    assert _count(any_uow, Member) == 2  # the admin and Zoë
    assert _count(any_uow, Referral) == 1


def test_two_invitations_to_one_address_used_at_once_make_one_member(
    any_uow: UnitOfWork, org_admin: Operator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two different tokens: the claim cannot serialize them; the unique key on the member's
    address (and closing the other invitation) does."""
    with any_uow:
        bob = Member(organization_id=org_admin.organization_id, email="bob@example.org",
                     email_normalized="bob@example.org", first_name="Bob", role=Role.USER.name)
        any_uow.session.add(bob)
        any_uow.session.flush()
        bob_operator = auth.operator_for(any_uow.session, bob)
        any_uow.commit()
    first = invite(any_uow, org_admin, ZOE)
    second = invite(any_uow, bob_operator, ZOE)

    results = _race([
        lambda: register_with_invitation(any_uow, first.token, form("First")),
        lambda: register_with_invitation(any_uow, second.token, form("Second")),
    ], monkeypatch)

    assert sum(r.registered for r in results) == 1
    loser = next(r for r in results if not r.registered)
    assert loser.state in (LinkState.USED, LinkState.ALREADY_MEMBER)
    with any_uow:
        assert len(any_uow.session.scalars(
            select(Member.id).where(Member.email_normalized == ZOE)).all()) == 1
        statuses = set(any_uow.session.scalars(
            select(Invitation.status).where(Invitation.email_normalized == ZOE)))
    assert statuses == {InvitationStatus.ACCEPTED.value}
    assert _count(any_uow, Referral) == 1
