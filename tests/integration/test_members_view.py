"""The members read model: scope per role, search, filters, sorting, paging, and a member's
referral activity (successful referrals, pending invitations with their status, who they
referred)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import insert

from invite_desk.services.errors import PermissionDenied
from invite_desk.services.members_view import (
    MemberColumn,
    MemberQuery,
    count_members,
    fetch_members,
    find_members,
    member_activity,
    open_members,
)
from invite_desk.services.models import MemberStatus, Referral, ReferralStatus
from invite_desk.services.operator import Operator
from invite_desk.services.roles import Role
from invite_desk.services.tracking import Tab
from invite_desk.services.uow import UnitOfWork
from tests.tracking_data import NOW, S, Seeder


@pytest.fixture
def club(uow: UnitOfWork, admin: Operator) -> dict[str, Any]:
    seeder = Seeder(uow, admin.organization_id)
    north, south = seeder.unit("North"), seeder.unit("South")
    uma = seeder.member("Uma", "Underwood", unit_id=north)
    hal = seeder.member("Hal", "Hughes", role=Role.HR_LOCAL, unit_id=north)
    olga = seeder.member("Olga", "Olsen", unit_id=south)
    bea = seeder.member("bea", "baker", unit_id=north, referred_by=uma.member_id)
    cal = seeder.member("Cal", "Carter", unit_id=south, referred_by=uma.member_id,
                        status=MemberStatus.APPLICANT)
    with uow:
        uow.session.execute(insert(Referral), [
            dict(id=uuid.uuid4(), version=1, created_at=NOW, updated_at=NOW,
                 organization_id=admin.organization_id, referrer_id=uma.member_id,
                 referee_id=bea.member_id, status=ReferralStatus.COMPLETED.value,
                 referred_at=NOW - timedelta(days=3), completed_at=NOW - timedelta(days=2)),
            dict(id=uuid.uuid4(), version=1, created_at=NOW, updated_at=NOW,
                 organization_id=admin.organization_id, referrer_id=uma.member_id,
                 referee_id=cal.member_id, status=ReferralStatus.PENDING.value,
                 referred_at=NOW - timedelta(days=1), completed_at=None),
        ])
        uow.commit()
    pending = seeder.add(S.SENT, inviter=uma.member_id, unit_id=north, email="pat@example.org")
    queued = seeder.add(S.QUEUED, inviter=uma.member_id, unit_id=north, email="quinn@example.org")
    seeder.add(S.SENT, inviter=uma.member_id, unit_id=north, email="old@example.org",
               sent_days_ago=30, expires_in_days=-5)  # expired before the sweep
    seeder.add(S.ACCEPTED, inviter=uma.member_id, unit_id=north, email="bea.baker@example.org")
    return {"admin": admin, "uma": uma, "hal": hal, "olga": olga, "bea": bea, "cal": cal,
            "north": north, "south": south, "pending": pending, "queued": queued}


def names(rows: Any) -> list[str]:
    return [row.name for row in rows]


@pytest.mark.parametrize(("who", "sees"), [
    ("uma", {"Uma Underwood"}),
    ("hal", {"Uma Underwood", "Hal Hughes", "bea baker"}),
    ("admin", {"Ada Admin", "Uma Underwood", "Hal Hughes", "Olga Olsen", "bea baker",
               "Cal Carter"}),
])
def test_each_role_lists_its_scope(uow: UnitOfWork, club: dict[str, Any], who: str,
                                   sees: set[str]) -> None:
    operator = club[who]
    snapshot = open_members(uow, operator, MemberQuery())
    assert set(names(snapshot.first_page.rows)) == sees
    assert snapshot.total == count_members(uow, operator, MemberQuery()) == len(sees)


def test_search_filters_and_sorting(uow: UnitOfWork, club: dict[str, Any]) -> None:
    admin = club["admin"]

    def listed(**query: Any) -> list[str]:
        return names(open_members(uow, admin, MemberQuery(**query)).first_page.rows)

    assert listed(search="BAK") == ["bea baker"]  # last name, any capitalization
    assert listed(search="uma und") == ["Uma Underwood"]  # first and last name
    assert listed(search="olga.olsen@") == ["Olga Olsen"]  # email
    assert listed(role=Role.HR_LOCAL) == ["Hal Hughes"]
    assert set(listed(unit_id=club["south"])) == {"Olga Olsen", "Cal Carter"}
    assert listed(status=MemberStatus.APPLICANT) == ["Cal Carter"]
    by_name = listed()
    assert by_name == ["Ada Admin", "Cal Carter", "Hal Hughes", "Olga Olsen", "Uma Underwood",
                       "bea baker"]  # by last name, then first name (byte order)
    assert listed(sort=MemberColumn.NAME, descending=True) == list(reversed(by_name))
    assert listed(sort=MemberColumn.REFERRED_BY, descending=True)[:2] in (
        ["bea baker", "Cal Carter"], ["Cal Carter", "bea baker"])
    rows = open_members(uow, admin, MemberQuery(search="baker")).first_page.rows
    assert rows[0].referred_by_name == "Uma Underwood"
    assert [m.name for m in find_members(uow, club["hal"], "o")] == []  # Olga is not in scope


def test_pages_from_either_end_agree(uow: UnitOfWork, club: dict[str, Any]) -> None:
    admin = club["admin"]
    query = MemberQuery(sort=MemberColumn.EMAIL)
    full = [r.id for r in fetch_members(uow, admin, query, 0, 100).rows]
    total = len(full)
    pieced = [r.id for offset in range(0, total, 2)
              for r in fetch_members(uow, admin, query, offset, 2, total=total).rows]
    assert pieced == full


def test_a_members_referral_activity(uow: UnitOfWork, club: dict[str, Any]) -> None:
    activity = member_activity(uow, club["admin"], club["uma"].member_id, NOW)

    assert (activity.successful_referrals, activity.pending_referrals) == (1, 1)
    assert activity.referred_total == 2
    assert [(p.name, p.referral_status) for p in activity.referred] == [
        ("Cal Carter", ReferralStatus.PENDING), ("bea baker", ReferralStatus.COMPLETED)]
    activity = member_activity(uow, club["hal"], club["uma"].member_id, NOW)
    pending = {row.email: row.status for row in activity.pending_invitations}
    assert pending == {"pat@example.org": S.SENT, "quinn@example.org": S.QUEUED}
    counts = activity.invitation_counts
    assert (counts[Tab.PENDING], counts[Tab.EXPIRED], counts[Tab.ACCEPTED], counts[Tab.ALL]) == (
        2, 1, 1, 4)


@pytest.mark.parametrize(("role", "in_unit", "sees"), [
    (Role.HR_LOCAL, "north", ["bea baker"]),
    (Role.ADMIN_LOCAL, "north", ["bea baker"]),
    (Role.HR_LOCAL, "south", None),  # Uma herself is outside a southern scope
    (Role.HR_TENANT, None, ["Cal Carter", "bea baker"]),
    (Role.ADMIN_TENANT, None, ["Cal Carter", "bea baker"]),
])
def test_who_a_member_referred_lists_only_referees_in_the_viewers_scope(
    uow: UnitOfWork, club: dict[str, Any], make_operator: Any, role: Role,
    in_unit: str | None, sees: list[str] | None,
) -> None:
    viewer = make_operator(role, club[in_unit] if in_unit else None)
    if sees is None:
        with pytest.raises(PermissionDenied):
            member_activity(uow, viewer, club["uma"].member_id, NOW)
        return
    activity = member_activity(uow, viewer, club["uma"].member_id, NOW)
    assert [p.name for p in activity.referred] == sees
    assert activity.referred_total == len(sees)
    # Her own figures stay whole: they name no one.
    assert (activity.successful_referrals, activity.pending_referrals) == (1, 1)


def test_a_member_sees_everyone_they_referred(uow: UnitOfWork, club: dict[str, Any]) -> None:
    uma = club["uma"]
    activity = member_activity(uow, uma, uma.member_id, NOW)
    assert [p.name for p in activity.referred] == ["Cal Carter", "bea baker"]


def test_a_member_sees_their_own_page_and_no_one_elses(
    uow: UnitOfWork, club: dict[str, Any]
) -> None:
    uma = club["uma"]
    assert member_activity(uow, uma, uma.member_id, NOW).successful_referrals == 1
    with pytest.raises(PermissionDenied):
        member_activity(uow, uma, club["bea"].member_id, NOW)
    with pytest.raises(PermissionDenied):
        member_activity(uow, club["hal"], club["olga"].member_id, NOW)
