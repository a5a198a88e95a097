"""The members table: a PagedTableModel over the members read model."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from enum import IntEnum
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Qt

from invite_desk.services.members_view import (
    PAGE_SIZE,
    MemberColumn,
    MemberQuery,
    MemberRow,
    fetch_members,
    open_members,
)
from invite_desk.services.models import MemberStatus
from invite_desk.services.operator import Operator
from invite_desk.ui.paged import PagedTableModel
from invite_desk.ui.widgets import plain_tooltip

if TYPE_CHECKING:
    from invite_desk.ui.context import UnitOfWork
    from invite_desk.ui.hub import OperationsHub


class MemberRole(IntEnum):
    ROW = Qt.ItemDataRole.UserRole + 1  # the MemberRow
    ID = Qt.ItemDataRole.UserRole + 2  # its uuid.UUID


MEMBER_STATUS_TEXT = {
    MemberStatus.ACTIVE.value: "Active",
    MemberStatus.APPLICANT.value: "Applicant",
    MemberStatus.REJECTED.value: "Rejected",
    MemberStatus.DEACTIVATED.value: "Deactivated",
    MemberStatus.LAPSED.value: "Lapsed",
    MemberStatus.RESIGNED.value: "Resigned",
}


class MemberSource:
    def __init__(self, uow: UnitOfWork, operator: Operator) -> None:
        self.uow = uow
        self.operator = operator

    def open(self, query: MemberQuery) -> tuple[int, Sequence[MemberRow]]:
        snapshot = open_members(self.uow, self.operator, query)
        return snapshot.total, snapshot.first_page.rows

    def page(self, query: MemberQuery, offset: int, limit: int,
             total: int) -> Sequence[MemberRow]:
        return fetch_members(self.uow, self.operator, query, offset, limit, total=total).rows


class MemberTableModel(PagedTableModel[MemberQuery, MemberRow]):
    def __init__(self, source: MemberSource, query: MemberQuery | None = None, *,
                 hub: OperationsHub, parent: QObject | None = None) -> None:
        super().__init__(source, query or MemberQuery(), hub=hub, page_size=PAGE_SIZE,
                         parent=parent)

    def headers(self) -> Sequence[str]:
        return [column.title for column in MemberColumn]

    def with_sort(self, query: MemberQuery, column: int, descending: bool) -> MemberQuery:
        return replace(query, sort=MemberColumn(column), descending=descending)

    def sort_of(self, query: MemberQuery) -> tuple[int, bool]:
        return int(query.sort), query.descending

    def display(self, row: MemberRow, column: int, role: int) -> Any:
        if role == MemberRole.ROW:
            return row
        if role == MemberRole.ID:
            return row.id
        if role != Qt.ItemDataRole.DisplayRole and role != Qt.ItemDataRole.ToolTipRole:
            return None
        col = MemberColumn(column)
        if role == Qt.ItemDataRole.ToolTipRole:
            return (plain_tooltip(f"{row.role.label} ({row.role.name})")
                    if col is MemberColumn.ROLE else None)
        if col is MemberColumn.NAME:
            return row.name
        if col is MemberColumn.EMAIL:
            return row.email
        if col is MemberColumn.ROLE:
            return row.role.label
        if col is MemberColumn.UNIT:
            return row.unit_name
        if col is MemberColumn.STATUS:
            return MEMBER_STATUS_TEXT.get(row.status, row.status)
        if col is MemberColumn.REFERRED_BY:
            return row.referred_by_name
        return row.joined_at.astimezone().strftime("%d %b %Y")
