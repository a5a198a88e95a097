"""Find active members by name or email prefix: the "send on behalf of" picker.

A read model: it returns plain rows and never a whole table, so it stays quick on an
organization with a million members. Scope follows the operator: tenant-wide roles see the
whole organization, local roles their own unit, members only themselves.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Select, and_, func, or_, select

from invite_desk.services.models import Member, MemberStatus
from invite_desk.services.operator import Operator, refreshed
from invite_desk.services.permissions import ScopeLevel, scope_of
from invite_desk.services.tracking.query import search_needle
from invite_desk.services.uow import UnitOfWork

DEFAULT_LIMIT = 20


@dataclass(frozen=True)
class MemberChoice:
    id: uuid.UUID
    name: str
    email: str
    unit_id: uuid.UUID | None

    @property
    def label(self) -> str:
        return f"{self.name} <{self.email}>" if self.name and self.name != self.email else self.email


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def search_members(
    uow: UnitOfWork, operator: Operator, text: str, *, limit: int = DEFAULT_LIMIT
) -> list[MemberChoice]:
    """Active members in the operator's scope whose email, first or last name starts with `text`."""
    needle = search_needle(text).lower()
    with uow:
        # The scope as the database says now: a deactivated or demoted operator is refused.
        operator = refreshed(uow.session, operator)
        return [
            MemberChoice(m.id, m.display_name, m.email, m.unit_id)
            for m in uow.session.scalars(_search_statement(operator, needle, limit))
        ]


def _search_statement(operator: Operator, needle: str, limit: int) -> Select[Member]:
    scope = scope_of(operator)
    stmt = select(Member).where(
        Member.organization_id == operator.organization_id,
        Member.status == MemberStatus.ACTIVE.value,
    )
    if scope.level is ScopeLevel.UNIT:
        if scope.unit_id is None:
            stmt = stmt.where(Member.id == operator.member_id)
        else:
            stmt = stmt.where(Member.unit_id == scope.unit_id)
    elif scope.level is ScopeLevel.OWN:
        stmt = stmt.where(Member.id == operator.member_id)
    if needle:
        pattern = _escape_like(needle) + "%"
        conditions: list[ColumnElement[bool]] = [
            Member.email_normalized.like(pattern, escape="\\"),
            func.lower(Member.first_name).like(pattern, escape="\\"),
            func.lower(Member.last_name).like(pattern, escape="\\"),
        ]
        first, _, rest = needle.partition(" ")
        if rest:  # "ada lov" matches Ada Lovelace
            conditions.append(
                and_(func.lower(Member.first_name) == first,
                     func.lower(Member.last_name).like(_escape_like(rest) + "%", escape="\\"))
            )
        stmt = stmt.where(or_(*conditions))
    return stmt.order_by(Member.last_name, Member.first_name, Member.email_normalized).limit(limit)
