"""The members read model: a paged, searchable, sortable member list and one member's
referral activity (successful referrals, the status of their pending invitations, who
they referred), as the referral programme's "For Members" section lists it.

Scope, in every query: tenant-wide roles see the organization, local roles their unit
(and themselves), members only themselves. Searches match prefixes an index can answer:
the email, the last name (as typed, lower-case or Capitalized), or "first last".
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select, true
from sqlalchemy.orm import Session, aliased

from invite_desk.services.errors import NotFound
from invite_desk.services.models import (
    Member,
    MemberStatus,
    Referral,
    ReferralStatus,
    Unit,
    utcnow,
)
from invite_desk.services.operator import Operator, refreshed
from invite_desk.services.permissions import Action, ScopeLevel, Target, require, scope_of
from invite_desk.services.roles import Role
from invite_desk.services.tracking.query import Filters, InvitationQuery, search_needle
from invite_desk.services.tracking.read import (
    InvitationRow,
    case_variants,
    count_tabs,
    count_view,
    name_pairs,
    page_ids,
    prefix_match,
    rows_by_ids,
)
from invite_desk.services.tracking.status import Tab
from invite_desk.services.uow import UnitOfWork

PAGE_SIZE = 200
ACTIVITY_LIMIT = 100

Referrer = aliased(Member, name="referrer")


class MemberColumn(IntEnum):
    NAME = 0
    EMAIL = 1
    ROLE = 2
    UNIT = 3
    STATUS = 4
    REFERRED_BY = 5
    JOINED = 6

    @property
    def title(self) -> str:
        return {0: "Name", 1: "Email", 2: "Role", 3: "Unit", 4: "Status", 5: "Referred by",
                6: "Joined"}[self.value]


@dataclass(frozen=True)
class MemberQuery:
    search: str = ""
    role: Role | None = None
    unit_id: uuid.UUID | None = None
    status: MemberStatus | None = None
    sort: MemberColumn = MemberColumn.NAME
    descending: bool = False


@dataclass(frozen=True)
class MemberRow:
    id: uuid.UUID
    first_name: str
    last_name: str
    email: str
    role: Role
    unit_id: uuid.UUID | None
    unit_name: str
    status: str
    referred_by_id: uuid.UUID | None
    referred_by_name: str
    joined_at: datetime

    @property
    def name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip() or self.email


def member_scope_condition(operator: Operator, member: Any = Member) -> ColumnElement[bool]:
    """The members `operator` may see; `member` may be an alias of Member."""
    scope = scope_of(operator)
    if scope.level is ScopeLevel.ORGANIZATION:
        return true()
    if scope.level is ScopeLevel.UNIT and scope.unit_id is not None:
        return or_(member.unit_id == scope.unit_id, member.id == operator.member_id)
    return member.id == operator.member_id  # type: ignore[no-any-return]


def member_search_condition(organization_id: uuid.UUID, text: str) -> ColumnElement[bool]:
    """Email, last name, or "first last" starting with `text`; each alternative carries the
    organization so that SQLite answers it with one index range."""
    needle = search_needle(text)
    org = Member.organization_id == organization_id
    terms = [and_(org, prefix_match(Member.email_normalized, needle.lower()))]
    if "@" not in needle:
        terms += [and_(org, prefix_match(Member.last_name, v)) for v in case_variants(needle)]
        first, _, rest = needle.partition(" ")
        if rest:
            for given, last in name_pairs(first, rest):
                terms.append(and_(org, prefix_match(Member.last_name, last),
                                  Member.first_name == given))
    return or_(*terms)


def _conditions(operator: Operator, query: MemberQuery) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = [member_scope_condition(operator)]
    text = search_needle(query.search)
    if text:
        conditions.append(member_search_condition(operator.organization_id, text))
    else:
        conditions.insert(0, Member.organization_id == operator.organization_id)
    if query.role is not None:
        conditions.append(Member.role == query.role.name)
    if query.unit_id is not None:
        conditions.append(Member.unit_id == query.unit_id)
    if query.status is not None:
        conditions.append(Member.status == query.status.value)
    return conditions


def _sort_keys(sort: MemberColumn) -> list[Any]:
    if sort is MemberColumn.NAME:
        return [Member.last_name, Member.first_name]
    if sort is MemberColumn.EMAIL:
        return [Member.email_normalized]
    if sort is MemberColumn.ROLE:
        return [Member.role]
    if sort is MemberColumn.UNIT:
        return [Unit.name]
    if sort is MemberColumn.STATUS:
        return [Member.status]
    if sort is MemberColumn.REFERRED_BY:
        return [Referrer.last_name, Referrer.first_name]
    return [Member.joined_at]


def _ordered_ids(operator: Operator, query: MemberQuery, descending: bool) -> Any:
    keys = _sort_keys(query.sort)
    stmt = select(Member.id).where(*_conditions(operator, query))
    if query.sort is MemberColumn.UNIT:
        stmt = stmt.outerjoin(Unit, Unit.id == Member.unit_id)
    elif query.sort is MemberColumn.REFERRED_BY:
        stmt = stmt.outerjoin(Referrer, Referrer.id == Member.referred_by_id)
    return stmt.order_by(*[k.desc() if descending else k.asc() for k in [*keys, Member.id]])


def _count(session: Session, operator: Operator, query: MemberQuery) -> int:
    return int(session.scalar(select(func.count()).select_from(Member)
                              .where(*_conditions(operator, query))) or 0)


def _rows(session: Session, ids: Sequence[uuid.UUID]) -> list[MemberRow]:
    if not ids:
        return []
    stmt = (
        select(Member.id, Member.first_name, Member.last_name, Member.email, Member.role,
               Member.unit_id, Unit.name, Member.status, Member.referred_by_id,
               Referrer.first_name, Referrer.last_name, Referrer.email, Member.joined_at)
        .outerjoin(Unit, Unit.id == Member.unit_id)
        .outerjoin(Referrer, Referrer.id == Member.referred_by_id)
        .where(Member.id.in_(list(ids)))
    )
    found: dict[uuid.UUID, MemberRow] = {}
    for (mid, first, last, email, role, unit_id, unit_name, status, ref_id, ref_first,
         ref_last, ref_email, joined) in session.execute(stmt):
        referrer = f"{ref_first or ''} {ref_last or ''}".strip() or (ref_email or "")
        found[mid] = MemberRow(mid, first or "", last or "", email, Role.parse(role), unit_id,
                               unit_name or "", status, ref_id, referrer, joined)
    return [found[i] for i in ids if i in found]


def _page_ids(session: Session, operator: Operator, query: MemberQuery, offset: int,
              limit: int, total: int | None) -> list[uuid.UUID]:
    """Like the invitations table: a page past the middle is read from the other end."""
    if total is not None and offset + limit / 2 > total / 2:
        end = min(offset + limit, total)
        if end <= offset:
            return []
        stmt = _ordered_ids(operator, query, not query.descending)
        ids = list(session.scalars(stmt.limit(end - offset).offset(total - end)))
        ids.reverse()
        return ids
    stmt = _ordered_ids(operator, query, query.descending)
    return list(session.scalars(stmt.limit(limit).offset(offset)))


@dataclass(frozen=True)
class MemberPage:
    offset: int
    rows: tuple[MemberRow, ...]


@dataclass(frozen=True)
class MemberSnapshot:
    total: int
    first_page: MemberPage


def open_members(uow: UnitOfWork, operator: Operator, query: MemberQuery, *,
                 limit: int = PAGE_SIZE) -> MemberSnapshot:
    """The member list's count and first page."""
    with uow:
        session = uow.session
        operator = refreshed(session, operator)
        total = _count(session, operator, query)
        ids = _page_ids(session, operator, query, 0, limit, total)
        return MemberSnapshot(total, MemberPage(0, tuple(_rows(session, ids))))


def count_members(uow: UnitOfWork, operator: Operator, query: MemberQuery) -> int:
    with uow:
        operator = refreshed(uow.session, operator)
        return _count(uow.session, operator, query)


def fetch_members(uow: UnitOfWork, operator: Operator, query: MemberQuery, offset: int,
                  limit: int = PAGE_SIZE, *, total: int | None = None) -> MemberPage:
    """Rows [offset, offset + limit) of the member list."""
    with uow:
        session = uow.session
        operator = refreshed(session, operator)
        ids = _page_ids(session, operator, query, offset, limit, total)
        return MemberPage(offset, tuple(_rows(session, ids)))


def find_members(uow: UnitOfWork, operator: Operator, text: str,
                 limit: int = 20) -> list[MemberRow]:
    """Members in scope whose email, last name or "first last" starts with `text`."""
    if not text.strip():
        with uow:
            refreshed(uow.session, operator)  # refused alike, even with nothing to find
        return []
    return list(fetch_members(uow, operator, MemberQuery(search=text), 0, limit).rows)


# -- one member's referral activity -------------------------------------------------------

@dataclass(frozen=True)
class ReferredMember:
    member_id: uuid.UUID
    name: str
    email: str
    referral_status: ReferralStatus
    member_status: str
    referred_at: datetime
    completed_at: datetime | None


@dataclass(frozen=True)
class MemberActivity:
    member: MemberRow
    successful_referrals: int  # completed referrals
    pending_referrals: int  # referees whose adhesion application awaits approval
    invitation_counts: dict[Tab, int]  # invitations credited to the member, by tab
    pending_invitations: tuple[InvitationRow, ...]  # the newest pending ones, with status
    referred: tuple[ReferredMember, ...]  # the newest referees first
    referred_total: int


def member_activity(uow: UnitOfWork, operator: Operator, member_id: uuid.UUID,
                    now: datetime | None = None) -> MemberActivity:
    """A member's referral activity; PermissionDenied outside the operator's scope."""
    moment = now or utcnow()
    with uow:
        session = uow.session
        operator = refreshed(session, operator)
        member = session.get(Member, member_id)
        if member is None or member.organization_id != operator.organization_id:
            raise NotFound("That member no longer exists.")
        require(operator, Action.VIEW_MEMBER,
                target=Target(unit_id=member.unit_id, owner_ids=(member.id,)))
        row = _rows(session, [member_id])[0]
        counts = dict(session.execute(
            select(Referral.status, func.count()).where(Referral.referrer_id == member_id)
            .group_by(Referral.status)).all())
        referee = aliased(Member, name="referee")
        # The referees listed are the ones the operator may see (a local role: its unit), or
        # the operator's own referrals; the counts above are the member's own figures.
        visible = or_(member_scope_condition(operator, referee),
                      Referral.referrer_id == operator.member_id)
        referred_total = int(session.scalar(
            select(func.count()).select_from(Referral)
            .join(referee, referee.id == Referral.referee_id)
            .where(Referral.referrer_id == member_id, visible)) or 0)
        referred = [
            ReferredMember(mid, f"{first} {last}".strip() or email, email,
                           ReferralStatus(status), member_status, referred_at, completed_at)
            for mid, first, last, email, status, member_status, referred_at, completed_at
            in session.execute(
                select(referee.id, referee.first_name, referee.last_name, referee.email,
                       Referral.status, referee.status, Referral.referred_at,
                       Referral.completed_at)
                .join(referee, referee.id == Referral.referee_id)
                .where(Referral.referrer_id == member_id, visible)
                .order_by(Referral.referred_at.desc(), Referral.id.desc())
                .limit(ACTIVITY_LIMIT))
        ]
        pending_query = InvitationQuery(tab=Tab.PENDING, filters=Filters(inviter_id=member_id))
        total = count_view(session, operator, pending_query, moment)
        ids = page_ids(session, operator, pending_query, moment, 0, ACTIVITY_LIMIT, total)
        pending = tuple(rows_by_ids(session, ids, moment))
    tabs = count_tabs(uow, operator, InvitationQuery(filters=Filters(inviter_id=member_id)),
                      moment)
    return MemberActivity(
        member=row,
        successful_referrals=int(counts.get(ReferralStatus.COMPLETED.value, 0)),
        pending_referrals=int(counts.get(ReferralStatus.PENDING.value, 0)),
        invitation_counts=tabs,
        pending_invitations=pending,
        referred=tuple(referred),
        referred_total=referred_total,
    )

