"""Export a view of the invitations table to CSV, streamed: rows are written as they are
read, a few hundred at a time, so a million-row export uses no more memory than a page."""

from __future__ import annotations

import csv
from collections.abc import Callable
from datetime import datetime
from typing import TextIO

from invite_desk.services.models import utcnow
from invite_desk.services.operator import Operator, refreshed
from invite_desk.services.tracking.query import InvitationQuery
from invite_desk.services.tracking.read import InvitationRow, iter_view
from invite_desk.services.uow import UnitOfWork

CSV_HEADER = ("email", "name", "inviter", "sender", "unit", "kind", "event", "batch",
              "sent_at", "expires_at", "accepted_at", "status", "last_error")


def _iso(value: datetime | None) -> str:
    return value.isoformat(timespec="seconds") if value is not None else ""


def _defuse(text: str) -> str:
    """Keep spreadsheet programs from running a cell as a formula (CSV injection)."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def csv_fields(row: InvitationRow) -> list[str]:
    return [_defuse(value) for value in (
        row.email, row.name, row.inviter_name, row.sender_name, row.unit_name, row.kind,
        row.event_name, row.batch_label)] + [
        _iso(row.sent_at), _iso(row.expires_at), _iso(row.accepted_at), row.status.value,
        _defuse(row.last_error)]


def export_csv(uow: UnitOfWork, operator: Operator, query: InvitationQuery, out: TextIO, *,
               now: datetime | None = None,
               on_progress: Callable[[int], None] | None = None,
               cancelled: Callable[[], bool] | None = None) -> int:
    """Write the view (same tab, search, filters and order as the table) to `out` as CSV;
    returns the number of rows written. `on_progress` hears the running count every 1,000
    rows; `cancelled` is checked as often, and stops the export early when it returns True."""
    moment = now or utcnow()
    writer = csv.writer(out)
    writer.writerow(CSV_HEADER)
    written = 0
    with uow:
        session = uow.session
        operator = refreshed(session, operator)
        for row in iter_view(session, operator, query, moment):
            writer.writerow(csv_fields(row))
            written += 1
            if written % 1000 == 0:
                if on_progress is not None:
                    on_progress(written)
                if cancelled is not None and cancelled():
                    break
    return written
