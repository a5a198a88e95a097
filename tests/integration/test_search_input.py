"""Every search box takes any text (issue 8, item 10): lone surrogates, NUL and other control
characters, LIKE wildcards, emoji, combining marks, the last code points and very long text
neither crash nor widen a search, on every backend."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from invite_desk.services import auth
from invite_desk.services.members_lookup import search_members
from invite_desk.services.members_view import (
    MemberQuery,
    count_members,
    fetch_members,
    find_members,
)
from invite_desk.services.models import InvitationStatus, Member, MemberStatus
from invite_desk.services.operator import Operator
from invite_desk.services.roles import Role
from invite_desk.services.tracking.query import InvitationQuery, search_needle
from invite_desk.services.tracking.read import count_invitations, count_tabs, fetch_page
from invite_desk.services.tracking.status import Tab
from invite_desk.services.uow import UnitOfWork
from tests.registration_fixtures import invite

HOSTILE = [
    "\ud800", "zo\udfff", "\udc80\ud800", "\x00", "zo\x00", "\x01\x1f\x7f", "%", "_", "\\",
    "%_\\", "'; --", "😀", "e\u0301", "\U0010ffff", "zo\U0010ffff", "\ud7ff", "a\ud7ff",
    "\uffff", "\u2028", "x" * 5_000, "😀" * 3_000, " ", "",
]

INVITEES = [
    ("zoe@example.org", "Zoë Martin"),
    ("pct@example.org", "%Percent Sign"),
    ("under@example.org", "_Under Score"),
    ("back@example.org", "\\Back Slash"),
    ("smile@example.org", "😀 Smiley"),
    ("jose@example.org", "José Núñez"),
    ("other@example.org", "Other Person"),
]


@pytest.fixture
def org(any_uow: UnitOfWork) -> Operator:
    admin = auth.setup_organization(
        any_uow, organization_name="Club", description="", admin_email="ada@example.org",
        admin_first_name="Ada", admin_last_name="Admin", password="correct horse battery",
        registration_base_url="https://join.example.org")
    for email, name in INVITEES:
        invite(any_uow, admin, email, name=name, status=InvitationStatus.SENT)
    with any_uow:
        for email, name in INVITEES:
            any_uow.session.add(Member(  # member searches match the last name
                organization_id=admin.organization_id, email=f"m.{email}",
                email_normalized=f"m.{email}", first_name="Pat", last_name=name,
                role=Role.USER.name, status=MemberStatus.ACTIVE.value))
        any_uow.commit()
    return admin


def _everything(uow: UnitOfWork, admin: Operator, text: str) -> tuple[set[str], set[str], set[str]]:
    query = InvitationQuery(tab=Tab.ALL, search=text)
    invited = {r.email for r in fetch_page(uow, admin, query, 0, 100).rows}
    assert count_invitations(uow, admin, query) == len(invited)
    count_tabs(uow, admin, query)
    members = {r.email for r in fetch_members(uow, admin, MemberQuery(search=text), 0, 100).rows}
    assert count_members(uow, admin, MemberQuery(search=text)) == len(members)
    find_members(uow, admin, text)
    looked_up = {m.email for m in search_members(uow, admin, text)}
    return invited, members, looked_up


def test_hostile_searches_neither_crash_nor_widen(any_uow: UnitOfWork, org: Operator) -> None:
    everyone = len(INVITEES)
    for text in HOSTILE:
        invited, members, _ = _everything(any_uow, org, text)
        if search_needle(text):
            assert len(invited) < everyone, text
            assert len(members) < everyone, text


@pytest.mark.parametrize(
    ("text", "invitee"),
    [
        ("%", "pct@example.org"), ("_", "under@example.org"), ("\\", "back@example.org"),
        ("😀", "smile@example.org"), ("Jose\u0301", "jose@example.org"),
        ("zo\x00", "zoe@example.org"), ("zo\ud800", "zoe@example.org"),
        ("Zoe\u0308", "zoe@example.org"),
    ],
)
def test_a_search_finds_exactly_what_it_names(any_uow: UnitOfWork, org: Operator, text: str,
                                              invitee: str) -> None:
    invited, members, looked_up = _everything(any_uow, org, text)
    assert invited == {invitee}
    assert members == {f"m.{invitee}"}
    assert looked_up == {f"m.{invitee}"}


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.text(max_size=12))
def test_any_text_is_a_search_on_sqlite(uow: UnitOfWork, admin: Operator, text: str) -> None:
    _everything(uow, admin, text)
    _everything(uow, admin, "a" + text)
