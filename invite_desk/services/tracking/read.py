"""The invitations read model: counts, pages of rows, one invitation, all in SQL.

A view (tab + search + filters + sort) is never loaded whole. The table asks for its row
count and then for pages of ~200 rows as they scroll into sight:

* Tabs are unions of disjoint *branches*, one per stored status (sent is split into live
  and overdue, see status.py). Without a search, a page is `branch UNION ALL branch ...
  ORDER BY key, id LIMIT n OFFSET m`: each branch walks an (organization_id, status, key,
  id, ...) index in order and SQLite merges them, so no sort runs however big the tab is.
* A page past the middle is read from the other end with every direction reversed, so the
  last page costs what the first one does.
* A page is two queries: the ids in order (index only), then the rows for those ids with
  the names of inviter, sender, unit, batch and event (primary-key lookups).
* Counts add up branch counts (index range counts).
* A search matches prefixes, which indexes can answer: the invitee's email, the invitee's
  name (as typed, lower-case or Capitalized) and the inviter's name or email.
* Scope (USER: own, LOCAL: unit's, TENANT: all) is part of every query.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    ColumnElement,
    and_,
    column,
    false,
    func,
    literal,
    null,
    or_,
    select,
    true,
    union_all,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.elements import Null
from sqlalchemy.sql.visitors import InternalTraversal

from invite_desk.services.errors import NotFound
from invite_desk.services.models import (
    Batch,
    Event,
    Invitation,
    InvitationKind,
    InvitationStatus,
    Member,
    Unit,
    utcnow,
)
from invite_desk.services.operator import Operator, refreshed
from invite_desk.services.permissions import Action, ScopeLevel, Target, require, scope_of
from invite_desk.services.tracking.query import Column, Filters, InvitationQuery, search_needle
from invite_desk.services.tracking.status import (
    Tab,
    effective_status,
    effective_status_sql,
    overdue_sql,
    tab_condition,
)
from invite_desk.services.uow import UnitOfWork

PAGE_SIZE = 200
MAX_SEARCH_INVITERS = 50

InviterAlias = aliased(Member, name="inviter")
SenderAlias = aliased(Member, name="sender")


@dataclass(frozen=True)
class InvitationRow:
    """One invitation as the table shows it; `status` is the effective status when read."""

    id: uuid.UUID
    email: str
    name: str
    kind: str
    event_id: uuid.UUID | None
    event_name: str
    inviter_id: uuid.UUID
    inviter_name: str
    sender_id: uuid.UUID
    sender_name: str
    unit_id: uuid.UUID | None
    unit_name: str
    batch_id: uuid.UUID | None
    batch_label: str
    created_at: datetime
    queued_at: datetime | None
    sent_at: datetime | None
    expires_at: datetime | None
    accepted_at: datetime | None
    revoked_at: datetime | None
    stored_status: InvitationStatus
    status: InvitationStatus
    last_error: str
    attempts: int
    message_id: str | None
    has_link: bool

    @property
    def invitee(self) -> str:
        """Email first (the column sorts by it), then the name."""
        return f"{self.email} ({self.name})" if self.name else self.email

    @property
    def kind_label(self) -> str:
        if self.kind == InvitationKind.EVENT.value:
            return f"Event: {self.event_name}" if self.event_name else "Event guest"
        return "Membership"

    @property
    def target(self) -> Target:
        return Target(unit_id=self.unit_id, owner_ids=(self.inviter_id, self.sender_id))


def _core(session: Session) -> Any:
    """The session's connection: these reads need no ORM (no entities, no identity map),
    and Core compiles and runs them at a fraction of the ORM's cost."""
    return session.connection()


# -- building blocks ----------------------------------------------------------------------

def scope_condition(operator: Operator) -> ColumnElement[bool]:
    """The rows `operator` may see, within their organization (the caller adds that)."""
    scope = scope_of(operator)
    if scope.level is ScopeLevel.ORGANIZATION:
        return true()
    own = or_(Invitation.inviter_id == operator.member_id,
              Invitation.sender_id == operator.member_id)
    if scope.level is ScopeLevel.UNIT and scope.unit_id is not None:
        return or_(Invitation.unit_id == scope.unit_id, own)
    return own


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def prefix_match(col: Any, text: str) -> ColumnElement[bool]:
    """`col` starts with `text`: a range an index can answer, checked again with LIKE
    (some collations put a few other strings inside the range)."""
    like = col.like(_escape_like(text) + "%", escape="\\")
    return and_(PrefixRange(col, text, _next_string(text)), like)


def _next_string(text: str) -> str | None:
    """The smallest string above every string that starts with `text` (its last character
    plus one, stepping over the surrogates no database can store), or None past U+10FFFF."""
    while text:
        code = ord(text[-1]) + 1
        if 0xD800 <= code <= 0xDFFF:
            code = 0xE000
        if code <= 0x10FFFF:
            return text[:-1] + chr(code)
        text = text[:-1]
    return None


class PrefixRange(ColumnElement[bool]):
    """`lower <= col < upper`, the index range of a prefix search, for binary orderings
    (SQLite, PostgreSQL). MariaDB/MySQL compare names accent- and case-insensitively, where
    "Josê" is not above "José Núñez" (nor one emoji above another); there the LIKE beside it
    is the range (their optimizer reads a constant LIKE prefix as one)."""

    __visit_name__ = "prefix_range"
    inherit_cache = True
    type = Boolean()
    _traverse_internals = [
        ("col", InternalTraversal.dp_clauseelement),
        ("lower", InternalTraversal.dp_clauseelement),
        ("upper", InternalTraversal.dp_clauseelement),
    ]

    def __init__(self, col: Any, lower: str, upper: str | None) -> None:
        self.col = col
        self.lower = literal(lower, col.type)
        self.upper = literal(upper, col.type) if upper is not None else null()


@compiles(PrefixRange)
def _prefix_range(element: PrefixRange, compiler: Any, **kw: Any) -> str:
    condition = element.col >= element.lower
    if not isinstance(element.upper, Null):
        condition = and_(condition, element.col < element.upper)
    return str(compiler.process(condition, **kw))


@compiles(PrefixRange, "mysql")
@compiles(PrefixRange, "mariadb")
def _prefix_range_mysql(element: PrefixRange, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(element.col >= element.lower, **kw))


_SPELLINGS = (str, str.lower, str.capitalize, str.title, str.upper)


def case_variants(text: str) -> list[str]:
    """The spellings a prefix search tries on case-sensitive columns."""
    return list(dict.fromkeys(spell(text) for spell in _SPELLINGS))


def name_pairs(first: str, rest: str) -> list[tuple[str, str]]:
    """(first name, last name prefix) spellings for a "first last" search."""
    return list(dict.fromkeys((spell(first), spell(rest)) for spell in _SPELLINGS))


def matching_member_ids(session: Session, organization_id: uuid.UUID, text: str,
                        limit: int = MAX_SEARCH_INVITERS) -> list[uuid.UUID]:
    """Members whose email or last name starts with `text` ("first last" also matches),
    through the (organization, email) and (organization, last name, first name) indexes."""
    needle = search_needle(text)
    if not needle:
        return []
    terms: list[ColumnElement[bool]] = [prefix_match(Member.email_normalized, needle.lower())]
    if "@" not in needle:
        terms += [prefix_match(Member.last_name, v) for v in case_variants(needle)]
        first, _, rest = needle.partition(" ")
        if rest:
            terms += [and_(prefix_match(Member.last_name, last), Member.first_name == given)
                      for given, last in name_pairs(first, rest)]
    found: list[uuid.UUID] = []
    for term in terms:  # one index range each; an OR of them would scan
        if len(found) >= limit:
            break
        found += session.scalars(
            select(Member.id)
            .where(Member.organization_id == organization_id, term, Member.id.not_in(found))
            .limit(limit - len(found))
        )
    return found


def search_condition(session: Session, organization_id: uuid.UUID,
                     text: str) -> ColumnElement[bool]:
    """Invitee email or name, or inviter, starting with `text`. Each alternative carries the
    organization so that SQLite answers the OR with one index range per alternative."""
    needle = search_needle(text)
    org = Invitation.organization_id == organization_id
    terms: list[ColumnElement[bool]] = [
        and_(org, prefix_match(Invitation.email_normalized, needle.lower()))]
    if "@" not in needle:
        terms += [and_(org, prefix_match(Invitation.name, v)) for v in case_variants(needle)]
    inviters = matching_member_ids(session, organization_id, needle)
    if inviters:
        terms.append(Invitation.inviter_id.in_(inviters))
    return or_(*terms)


def filter_conditions(filters: Filters) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if filters.sent_from is not None:
        conditions.append(Invitation.sent_at >= filters.sent_from)
    if filters.sent_to is not None:
        conditions.append(Invitation.sent_at < filters.sent_to)
    if filters.unit_id is not None:
        conditions.append(Invitation.unit_id == filters.unit_id)
    if filters.inviter_id is not None:
        conditions.append(Invitation.inviter_id == filters.inviter_id)
    if filters.batch_id is not None:
        conditions.append(Invitation.batch_id == filters.batch_id)
    if filters.event_id is not None:
        conditions.append(Invitation.event_id == filters.event_id)
    if filters.kind is not None:
        conditions.append(Invitation.kind == filters.kind.value)
    return conditions


@dataclass(frozen=True)
class Branch:
    """A disjoint part of a tab whose effective status is one value.

    `condition` selects its rows; `count_parts` are disjoint conditions that add up to the
    same rows, each one index range (an OR inside one count would make SQLite walk more).
    """

    condition: ColumnElement[bool]
    effective: InvitationStatus
    count_parts: tuple[ColumnElement[bool], ...] = ()
    stored: InvitationStatus | None = None  # the stored status (None: the effective one)

    @property
    def never_sent(self) -> bool:
        return (self.stored or self.effective) in UNSENT_STATES

    @property
    def counted_by(self) -> tuple[ColumnElement[bool], ...]:
        return self.count_parts or (self.condition,)


def branches(tab: Tab, now: datetime, *,
             live_sent_floor: datetime | None | bool = False) -> list[Branch]:
    """The branches of `tab` at `now`. `live_sent_floor`, when given (None: there is no live
    sent row), is the earliest sent_at of a live sent invitation: a bound the data implies,
    which lets a walk in sent order skip the older, overdue rows the sweep has not recorded."""
    S = InvitationStatus
    sent = Invitation.status == S.SENT.value
    parts: dict[InvitationStatus, list[Branch]] = {
        status: [Branch(Invitation.status == status.value, status)] for status in S}
    still_live = or_(Invitation.expires_at > now, Invitation.expires_at.is_(None))
    live_condition = and_(sent, still_live)
    if live_sent_floor is None:
        live_condition = and_(sent, false())
    elif live_sent_floor is not False:
        assert isinstance(live_sent_floor, datetime)
        live_condition = and_(sent, still_live, Invitation.sent_at >= live_sent_floor)
    live = Branch(live_condition, S.SENT, (and_(sent, Invitation.expires_at > now),
                                           and_(sent, Invitation.expires_at.is_(None))))
    overdue = Branch(overdue_sql(now), S.EXPIRED, stored=S.SENT)
    parts[S.SENT] = [live, overdue]
    if tab is Tab.ALL:
        return [b for status in S for b in parts[status]]
    if tab is Tab.PENDING:
        return [*parts[S.QUEUED], *parts[S.SENDING], live]
    if tab is Tab.EXPIRED:
        return [*parts[S.EXPIRED], overdue]
    return parts[S(tab.value)]


def live_sent_floor(session: Session, organization_id: uuid.UUID,
                    now: datetime) -> datetime | None:
    """The earliest sent_at among live sent invitations (None when there are none): two
    covering index ranges over the live rows only."""
    # min() of an expression: a bare min(sent_at) makes SQLite walk the sent_at index from
    # the oldest row (overdue ones first) instead of reading the live range.
    earliest = func.min(func.coalesce(Invitation.sent_at, Invitation.sent_at))
    floors = [
        _core(session).scalar(select(earliest).where(
            Invitation.organization_id == organization_id,
            Invitation.status == InvitationStatus.SENT.value, condition))
        for condition in (Invitation.expires_at > now, Invitation.expires_at.is_(None))
    ]
    found = [f for f in floors if f is not None]
    return min(found) if found else None


# Statuses whose rows have no sent_at: the Sent column sorts them by when they were queued.
UNSENT_STATES = frozenset({InvitationStatus.DRAFT, InvitationStatus.QUEUED,
                           InvitationStatus.SENDING, InvitationStatus.FAILED,
                           InvitationStatus.UNCERTAIN, InvitationStatus.SUPPRESSED})


def sent_key(branch: Branch | None) -> Any:
    """The Sent column's sort key: when it was sent, or queued if it never was. Per branch
    it is one plain column (an index answers it); across statuses it is a COALESCE."""
    if branch is None:
        return func.coalesce(Invitation.sent_at, Invitation.queued_at)
    return Invitation.queued_at if branch.never_sent else Invitation.sent_at


# Sorts that an (organization_id, status, key, id, ...) index answers branch by branch.
INDEXED_SORTS = frozenset({Column.INVITEE, Column.SENT, Column.EXPIRES, Column.ACCEPTED,
                           Column.STATUS})


def sort_keys(sort: Column, now: datetime, branch: Branch | None = None, *,
              effective: InvitationStatus | None = None) -> list[Any]:
    """The ORDER BY keys for `sort` (the id is added last as the tie-break); `branch` when
    the keys are for one branch of a union, `effective` when all rows have that status."""
    if sort is Column.INVITEE:
        return [Invitation.email_normalized]
    if sort is Column.SENT:
        return [sent_key(branch)]
    if sort is Column.EXPIRES:
        return [Invitation.expires_at]
    if sort is Column.ACCEPTED:
        return [Invitation.accepted_at]
    if sort is Column.STATUS:
        known = branch.effective if branch is not None else effective
        status = literal(known.value) if known is not None else effective_status_sql(now)
        return [status, sent_key(branch)]
    if sort is Column.KIND:
        return [Invitation.kind, sent_key(branch)]
    if sort is Column.LAST_ERROR:
        return [Invitation.last_error]
    if sort is Column.INVITER:
        return [func.lower(InviterAlias.first_name), func.lower(InviterAlias.last_name),
                InviterAlias.email_normalized]
    if sort is Column.SENDER:
        return [func.lower(SenderAlias.first_name), func.lower(SenderAlias.last_name),
                SenderAlias.email_normalized]
    if sort is Column.UNIT:
        return [Unit.name]
    return [Batch.created_at]  # Column.BATCH: batches in the order they were sent


# SQLAlchemy 2.1 types a SELECT by its column types; these helpers take any SELECT.
AnySelect = Any


def _join_for_sort(stmt: AnySelect, sort: Column) -> AnySelect:
    if sort is Column.INVITER:
        return stmt.join(InviterAlias, InviterAlias.id == Invitation.inviter_id)
    if sort is Column.SENDER:
        return stmt.join(SenderAlias, SenderAlias.id == Invitation.sender_id)
    if sort is Column.UNIT:
        return stmt.outerjoin(Unit, Unit.id == Invitation.unit_id)
    if sort is Column.BATCH:
        return stmt.outerjoin(Batch, Batch.id == Invitation.batch_id)
    return stmt


@dataclass(frozen=True)
class Arm:
    """One SELECT of a view.

    `branch` is the status branch it reads: its effective status is one value, so its sort
    keys are plain columns an index walks in order. An arm without a branch spans statuses
    (its keys are expressions and SQLite sorts it), so it is only used for small sets: a
    search, or an operator's own invitations. `counts` are disjoint WHERE lists whose counts
    add up to the arm, each one index range.
    """

    conditions: tuple[ColumnElement[bool], ...]
    branch: Branch | None
    counts: tuple[tuple[ColumnElement[bool], ...], ...]
    effective: InvitationStatus | None = None  # set on status-spanning arms of a status part


@dataclass(frozen=True)
class ViewSql:
    """One view, resolved for one session and moment: its arms, read as one UNION ALL in the
    sort order."""

    arms: tuple[Arm, ...]


def unindexed(col: Any) -> Any:
    """`col` as an expression no index offers (the same value): it steers the planner to the
    index we mean, and is still read from that index when it covers the column."""
    return func.coalesce(col, col)


def own_condition(operator: Operator) -> ColumnElement[bool]:
    """Invitations the operator is credited with or sent: one index lookup per alternative
    ((inviter_id, created_at), (sender_id, created_at)). The organization is checked on the
    rows found (it is implied: inviters and senders are members of the organization)."""
    return and_(or_(Invitation.inviter_id == operator.member_id,
                    Invitation.sender_id == operator.member_id),
                unindexed(Invitation.organization_id) == operator.organization_id)


def _single(conditions: tuple[ColumnElement[bool], ...]) -> ViewSql:
    return ViewSql((Arm(conditions, None, (conditions,)),))


def view_sql(session: Session, operator: Operator, query: InvitationQuery, now: datetime, *,
             paging: bool = True) -> ViewSql:
    """The view's SQL. `paging=False` when only counting (no sort-order helpers needed)."""
    filters = tuple(filter_conditions(query.filters))
    tab = tab_condition(query.tab, now)
    org = Invitation.organization_id == operator.organization_id
    scope = scope_of(operator)
    text = query.search_text
    if text:
        # No separate organization term: each alternative of the search carries it, and
        # SQLite would rather scan the organization's rows than use one index per alternative.
        search = search_condition(session, operator.organization_id, text)
        return _single((scope_condition(operator), *filters, search, tab))
    unit = scope.unit_id if scope.level is ScopeLevel.UNIT else None
    if scope.level is ScopeLevel.OWN or (scope.level is ScopeLevel.UNIT and unit is None):
        return _single((own_condition(operator), *filters, tab))
    floor: datetime | None | bool = False
    if paging and query.sort in (Column.SENT, Column.STATUS) and query.tab in (Tab.PENDING,
                                                                                Tab.ALL):
        floor = live_sent_floor(session, operator.organization_id, now)
    # The unit is read from the end of the (organization, status, key, id, ..., unit) index
    # being walked, not looked up in its own index (which would mean sorting the unit's rows).
    within = (org,) if unit is None else (org, unindexed(Invitation.unit_id) == unit)
    arms = [Arm((*within, *filters, b.condition), b,
                tuple((*within, *filters, part) for part in b.counted_by))
            for b in branches(query.tab, now, live_sent_floor=floor)]
    if unit is not None:
        # A local role also sees its own invitations in other units: few, so one sorted arm.
        outside = and_(own_condition(operator),
                       or_(Invitation.unit_id != unit, Invitation.unit_id.is_(None)))
        extra = (outside, *filters, tab)
        arms.append(Arm(extra, None, (extra,)))
    return ViewSql(tuple(arms))


def _directed(expr: Any, descending: bool) -> Any:
    return expr.desc() if descending else expr.asc()


def ordered_ids(view: ViewSql, query: InvitationQuery, now: datetime, *,
                descending: bool) -> AnySelect:
    """The view's ids (first column) in order, with the sort keys as further columns.
    (A status sort is read status by status: see `view_parts`.)

    With an index per arm (INDEXED_SORTS) SQLite merges the arms without sorting. Other sorts
    (names from other tables, kind, last error) are sorted, but still read arm by arm: each
    arm is an index range of the tab's rows, never a walk over the whole organization."""
    indexed = query.sort in INDEXED_SORTS
    selects = []
    keys: list[Any] = []
    for arm in view.arms:
        keys = (sort_keys(query.sort, now, arm.branch, effective=arm.effective) if indexed
                else sort_keys(query.sort, now))
        arm_select = (select(Invitation.id.label("id"),
                             *[k.label(f"k{i}") for i, k in enumerate(keys)])
                      .where(*arm.conditions))
        selects.append(arm_select if indexed else _join_for_sort(arm_select, query.sort))
    names = [f"k{i}" for i in range(len(keys))]
    order = [_directed(column(n), descending) for n in [*names, "id"]]
    if len(selects) == 1:
        return selects[0].order_by(*order)
    return union_all(*selects).order_by(*order)


@dataclass(frozen=True)
class ViewPart:
    """A run of consecutive rows of a view, read with its own ORDER BY."""

    view: ViewSql
    query: InvitationQuery


def view_parts(view: ViewSql, query: InvitationQuery) -> list[ViewPart]:
    """The view as consecutive parts. Sorted by status, each effective status is one part
    (its arms merged in Sent order): SQLite cannot merge arms on a constant key without
    sorting them, but it can read them one after the other."""
    branch_arms = [arm for arm in view.arms if arm.branch is not None]
    if query.sort is not Column.STATUS or not branch_arms:
        return [ViewPart(view, query)]
    groups: dict[InvitationStatus, list[Arm]] = {}
    for arm in branch_arms:
        assert arm.branch is not None
        groups.setdefault(arm.branch.effective, []).append(arm)
    spanning = [arm for arm in view.arms if arm.branch is None]
    by_sent = replace(query, sort=Column.SENT)
    parts = []
    for status in sorted(groups, key=lambda s: s.value, reverse=query.descending):
        arms = list(groups[status])
        of_status = or_(*[arm.branch.condition for arm in arms if arm.branch is not None])
        for arm in spanning:  # the same arm, narrowed to this status
            narrowed = (*arm.conditions, of_status)
            arms.append(Arm(narrowed, None, (narrowed,), effective=status))
        parts.append(ViewPart(ViewSql(tuple(arms)), by_sent))
    return parts


# -- counting -----------------------------------------------------------------------------

def _count(session: Session, conditions: Sequence[ColumnElement[bool]]) -> int:
    return int(_core(session).scalar(
        select(func.count()).select_from(Invitation).where(*conditions)) or 0)


def _count_arms(session: Session, view: ViewSql) -> int:
    return sum(_count(session, part) for arm in view.arms for part in arm.counts)


def count_view(session: Session, operator: Operator, query: InvitationQuery,
               now: datetime) -> int:
    return _count_arms(session, view_sql(session, operator, query, now, paging=False))


def count_invitations(uow: UnitOfWork, operator: Operator, query: InvitationQuery,
                      now: datetime | None = None) -> int:
    """How many invitations the view holds."""
    with uow:
        operator = refreshed(uow.session, operator)
        return count_view(uow.session, operator, query, now or utcnow())


def count_tabs(uow: UnitOfWork, operator: Operator, query: InvitationQuery,
               now: datetime | None = None) -> dict[Tab, int]:
    """Each tab's count for the query's search and filters (its own tab is ignored)."""
    moment = now or utcnow()
    with uow:
        session = uow.session
        operator = refreshed(session, operator)
        view = view_sql(session, operator, replace(query, tab=Tab.ALL), moment, paging=False)
        by_status: dict[InvitationStatus, int] = dict.fromkeys(InvitationStatus, 0)
        effective = effective_status_sql(moment)
        for arm in view.arms:
            if arm.branch is not None:
                by_status[arm.branch.effective] += sum(_count(session, p) for p in arm.counts)
                continue
            for status, number in session.execute(
                    select(effective, func.count()).where(*arm.conditions).group_by(effective)):
                by_status[InvitationStatus(status)] += int(number)
    S = InvitationStatus
    return {
        Tab.PENDING: by_status[S.QUEUED] + by_status[S.SENDING] + by_status[S.SENT],
        Tab.ACCEPTED: by_status[S.ACCEPTED],
        Tab.EXPIRED: by_status[S.EXPIRED],
        Tab.FAILED: by_status[S.FAILED],
        Tab.UNCERTAIN: by_status[S.UNCERTAIN],
        Tab.REVOKED: by_status[S.REVOKED],
        Tab.BOUNCED: by_status[S.BOUNCED],
        Tab.SUPPRESSED: by_status[S.SUPPRESSED],
        Tab.ALL: sum(by_status.values()),
    }


# -- rows ---------------------------------------------------------------------------------

def _display_name(first: str | None, last: str | None, email: str | None) -> str:
    name = f"{first or ''} {last or ''}".strip()
    return name or (email or "")


def _row_columns() -> list[Any]:
    return [
        Invitation.id, Invitation.email, Invitation.name, Invitation.kind, Invitation.event_id,
        Event.name, Invitation.inviter_id, InviterAlias.first_name, InviterAlias.last_name,
        InviterAlias.email, Invitation.sender_id, SenderAlias.first_name, SenderAlias.last_name,
        SenderAlias.email, Invitation.unit_id, Unit.name, Invitation.batch_id, Batch.label,
        Batch.source, Batch.created_at, Invitation.created_at, Invitation.queued_at,
        Invitation.sent_at, Invitation.expires_at, Invitation.accepted_at,
        Invitation.revoked_at, Invitation.status, Invitation.last_error, Invitation.attempts,
        Invitation.message_id, Invitation.token_hash.is_not(None),
    ]


def _with_names(stmt: AnySelect) -> AnySelect:
    return (stmt
            .join(InviterAlias, InviterAlias.id == Invitation.inviter_id)
            .join(SenderAlias, SenderAlias.id == Invitation.sender_id)
            .outerjoin(Unit, Unit.id == Invitation.unit_id)
            .outerjoin(Batch, Batch.id == Invitation.batch_id)
            .outerjoin(Event, Event.id == Invitation.event_id))


def batch_label(label: str | None, source: str | None, created_at: datetime | None) -> str:
    """What the Batch column says: the label, else how and when it was sent."""
    if label:
        return label
    if created_at is None:
        return ""
    how = {"single": "Single", "paste": "Pasted list", "csv": "CSV import", "cli": "Command line",
           "resend": "Resend"}.get(source or "", "Batch")
    return f"{how}, {created_at:%d %b %Y %H:%M}"


def _row(values: Sequence[object], now: datetime) -> InvitationRow:
    (iid, email, name, kind, event_id, event_name, inviter_id, inv_first, inv_last, inv_email,
     sender_id, snd_first, snd_last, snd_email, unit_id, unit_name, batch_id, label, source,
     batch_at, created_at, queued_at, sent_at, expires_at, accepted_at, revoked_at, status,
     last_error, attempts, message_id, has_link) = values
    stored = InvitationStatus(str(status))
    return InvitationRow(
        id=iid,  # type: ignore[arg-type]
        email=str(email), name=str(name or ""), kind=str(kind),
        event_id=event_id,  # type: ignore[arg-type]
        event_name=str(event_name or ""),
        inviter_id=inviter_id,  # type: ignore[arg-type]
        inviter_name=_display_name(inv_first, inv_last, inv_email),  # type: ignore[arg-type]
        sender_id=sender_id,  # type: ignore[arg-type]
        sender_name=_display_name(snd_first, snd_last, snd_email),  # type: ignore[arg-type]
        unit_id=unit_id,  # type: ignore[arg-type]
        unit_name=str(unit_name or ""),
        batch_id=batch_id,  # type: ignore[arg-type]
        batch_label=batch_label(label, source, batch_at),  # type: ignore[arg-type]
        created_at=created_at,  # type: ignore[arg-type]
        queued_at=queued_at,  # type: ignore[arg-type]
        sent_at=sent_at,  # type: ignore[arg-type]
        expires_at=expires_at,  # type: ignore[arg-type]
        accepted_at=accepted_at,  # type: ignore[arg-type]
        revoked_at=revoked_at,  # type: ignore[arg-type]
        stored_status=stored,
        status=effective_status(stored, expires_at, now),  # type: ignore[arg-type]
        last_error=str(last_error or ""),
        attempts=int(attempts or 0),  # type: ignore[call-overload]
        message_id=message_id,  # type: ignore[arg-type]
        has_link=bool(has_link),
    )


def rows_by_ids(session: Session, ids: Sequence[uuid.UUID], now: datetime) -> list[InvitationRow]:
    """The rows for `ids`, in the order given (ids not found are left out)."""
    if not ids:
        return []
    found: dict[uuid.UUID, InvitationRow] = {}
    for start in range(0, len(ids), 500):
        chunk = list(ids[start:start + 500])
        stmt = _with_names(select(*_row_columns())).where(Invitation.id.in_(chunk))
        for values in _core(session).execute(stmt):
            row = _row(tuple(values), now)
            found[row.id] = row
    return [found[i] for i in ids if i in found]


def _part_count(session: Session, part: ViewPart) -> int:
    return _count_arms(session, part.view)


def _read_part(session: Session, part: ViewPart, now: datetime, offset: int, limit: int,
               total: int | None) -> list[uuid.UUID]:
    """Ids [offset, offset + limit) of one part; past its middle, read from its end."""
    if limit <= 0 or offset < 0:
        return []
    descending = part.query.descending
    if total is not None and offset + limit / 2 > total / 2:
        end = min(offset + limit, total)
        if end <= offset:
            return []
        stmt = ordered_ids(part.view, part.query, now, descending=not descending)
        ids = list(_core(session).scalars(stmt.limit(end - offset).offset(total - end)))
        ids.reverse()
        return ids
    stmt = ordered_ids(part.view, part.query, now, descending=descending)
    return list(_core(session).scalars(stmt.limit(limit).offset(offset)))


def page_ids(session: Session, operator: Operator, query: InvitationQuery, now: datetime,
             offset: int, limit: int, total: int | None = None) -> list[uuid.UUID]:
    """The ids of rows [offset, offset + limit) of the view. With `total`, a page in the second
    half is read from the end (every direction reversed), so OFFSET never walks past the middle."""
    if limit <= 0 or offset < 0:
        return []
    parts = view_parts(view_sql(session, operator, query, now), query)
    if len(parts) == 1:
        return _read_part(session, parts[0], now, offset, limit, total)
    ids: list[uuid.UUID] = []
    start = 0
    for part in parts:  # each part's size is an index count; stop once the page is full
        size = _part_count(session, part)
        if start + size > offset:
            first = max(offset - start, 0)
            ids += _read_part(session, part, now, first, min(limit - len(ids), size - first),
                              size)
            if len(ids) >= limit:
                break
        start += size
    return ids


@dataclass(frozen=True)
class Page:
    offset: int
    rows: tuple[InvitationRow, ...]
    read_at: datetime


def fetch_page(uow: UnitOfWork, operator: Operator, query: InvitationQuery, offset: int,
               limit: int = PAGE_SIZE, *, total: int | None = None,
               now: datetime | None = None) -> Page:
    """Rows [offset, offset + limit) of the view, with names, as plain frozen rows."""
    moment = now or utcnow()
    with uow:
        session = uow.session
        operator = refreshed(session, operator)
        ids = page_ids(session, operator, query, moment, offset, limit, total)
        return Page(offset, tuple(rows_by_ids(session, ids, moment)), moment)


@dataclass(frozen=True)
class ViewSnapshot:
    """What a table needs to show a view: its count and its first page."""

    total: int
    first_page: Page


def open_view(uow: UnitOfWork, operator: Operator, query: InvitationQuery, *,
              limit: int = PAGE_SIZE, now: datetime | None = None) -> ViewSnapshot:
    """The view's count and first page, read in one session at one moment."""
    moment = now or utcnow()
    with uow:
        session = uow.session
        operator = refreshed(session, operator)
        total = count_view(session, operator, query, moment)
        ids = page_ids(session, operator, query, moment, 0, limit, total)
        return ViewSnapshot(total, Page(0, tuple(rows_by_ids(session, ids, moment)), moment))


def rows_in_scope(session: Session, operator: Operator, ids: Sequence[uuid.UUID],
                  now: datetime) -> list[InvitationRow]:
    """Rows for `ids` that belong to the operator's organization and scope."""
    allowed = set(session.scalars(
        select(Invitation.id).where(
            Invitation.id.in_(list(ids)),
            Invitation.organization_id == operator.organization_id,
            scope_condition(operator),
        )
    )) if len(ids) <= 500 else {
        i for start in range(0, len(ids), 500) for i in session.scalars(
            select(Invitation.id).where(
                Invitation.id.in_(list(ids[start:start + 500])),
                Invitation.organization_id == operator.organization_id,
                scope_condition(operator)))}
    return rows_by_ids(session, [i for i in ids if i in allowed], now)


def get_invitations(uow: UnitOfWork, operator: Operator, ids: Sequence[uuid.UUID],
                    now: datetime | None = None) -> list[InvitationRow]:
    """The given invitations as rows (those outside the operator's scope are left out)."""
    with uow:
        operator = refreshed(uow.session, operator)
        return rows_in_scope(uow.session, operator, ids, now or utcnow())


def get_invitation(uow: UnitOfWork, operator: Operator, invitation_id: uuid.UUID,
                   now: datetime | None = None) -> InvitationRow:
    """One invitation; NotFound when it does not exist, PermissionDenied outside the scope."""
    moment = now or utcnow()
    with uow:
        session = uow.session
        operator = refreshed(session, operator)
        rows = rows_by_ids(session, [invitation_id], moment)
        invitation = session.get(Invitation, invitation_id)
        if not rows or invitation is None or (
                invitation.organization_id != operator.organization_id):
            raise NotFound("That invitation no longer exists.")
        require(operator, Action.VIEW_INVITATION, target=rows[0].target)
        return rows[0]


def iter_view(session: Session, operator: Operator, query: InvitationQuery, now: datetime,
              *, chunk: int = 500) -> Iterator[InvitationRow]:
    """Every row of the view in order, streamed: ids come from one cursor, rows are read
    `chunk` at a time, so memory stays flat however many rows there are."""
    view = view_sql(session, operator, query, now)
    # A second connection reads the rows: a streaming cursor keeps the first one busy on
    # some drivers (MySQL's unbuffered cursors).
    with Session(bind=session.get_bind()) as reader:
        for part in view_parts(view, query):
            stmt = ordered_ids(part.view, part.query, now, descending=part.query.descending)
            result = session.execute(stmt, execution_options={"stream_results": True,
                                                              "yield_per": chunk})
            for partition in result.partitions(chunk):
                ids = [values[0] for values in partition]
                yield from rows_by_ids(reader, ids, now)
