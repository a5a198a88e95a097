"""The audit log query (services/admin/audit_log.py) at 1,000,000 rows on SQLite: the first
page, each filter's first page, a page far down, and the filter pickers. Target: < 200 ms.

    python -m bench.audit_query [--size N]     # one JSON object per line
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from bench.audit_data import SIZE, audit_database
from bench.common import result
from invite_desk.services.admin import audit_log
from invite_desk.services.admin.audit_log import AuditQuery
from invite_desk.services.models import AuditLog, Member, utcnow

TARGET_MS = 200.0


def _best_ms(fn: Callable[[], object], repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best * 1000


def run(quick: bool = False, size: int | None = None) -> Iterator[dict[str, Any]]:
    size = size or (20_000 if quick else SIZE)
    uow, admin, _url = audit_database(size)
    with uow:
        busy_actor = uow.session.scalar(
            select(Member.id).where(Member.email == "operator0@bench.example"))
        rare_actor = uow.session.scalar(
            select(Member.id).where(Member.email == "operator299@bench.example"))
        some_object = uow.session.scalar(
            select(AuditLog.entity_id).where(AuditLog.entity_type == "member").limit(1))
    now = utcnow()
    page = audit_log.fetch_audit_page(uow, admin, AuditQuery())
    cursor = page.next_cursor
    for _ in range(49):  # 50 pages down
        assert cursor is not None
        cursor = audit_log.fetch_audit_page(uow, admin, AuditQuery(), cursor).next_cursor
    cases: list[tuple[str, Callable[[], object]]] = [
        ("first page", lambda: audit_log.fetch_audit_page(uow, admin, AuditQuery())),
        ("page 51", lambda: audit_log.fetch_audit_page(uow, admin, AuditQuery(), cursor)),
        ("filter action (common)", lambda: audit_log.fetch_audit_page(
            uow, admin, AuditQuery(action="invitation.sent"))),
        ("filter action (rare)", lambda: audit_log.fetch_audit_page(
            uow, admin, AuditQuery(action="member.sign_in_revoked"))),
        ("filter action prefix", lambda: audit_log.fetch_audit_page(
            uow, admin, AuditQuery(action="member."))),
        ("filter person (busy)", lambda: audit_log.fetch_audit_page(
            uow, admin, AuditQuery(actor_id=busy_actor))),
        ("filter person (rare)", lambda: audit_log.fetch_audit_page(
            uow, admin, AuditQuery(actor_id=rare_actor))),
        ("filter object", lambda: audit_log.fetch_audit_page(
            uow, admin, AuditQuery(entity_type="member", entity_id=some_object))),
        ("filter last 30 days", lambda: audit_log.fetch_audit_page(
            uow, admin, AuditQuery(since=now - timedelta(days=30)))),
        ("filter a year ago, one week", lambda: audit_log.fetch_audit_page(
            uow, admin, AuditQuery(since=now - timedelta(days=365),
                                   until=now - timedelta(days=358)))),
        ("action + person + dates", lambda: audit_log.fetch_audit_page(
            uow, admin, AuditQuery(action="invitation.sent", actor_id=busy_actor,
                                   since=now - timedelta(days=400)))),
        ("search text (common)", lambda: audit_log.fetch_audit_page(
            uow, admin, AuditQuery(text="accepted"))),
        ("history of the settings", lambda: audit_log.history_for(
            uow, admin, "settings", limit=200)),
        ("history of one setting", lambda: audit_log.history_for(
            uow, admin, "settings", setting_key="userInvitations.dailyLimitPerInviter",
            limit=200)),
        ("filter pickers", lambda: audit_log.audit_choices(uow, admin)),
    ]
    for name, fn in cases:
        ms = _best_ms(fn)
        yield result(f"audit query: {name}", ms, "ms", TARGET_MS, rows=size,
                     ok=ms < TARGET_MS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.audit_query")
    parser.add_argument("--size", type=int, default=SIZE)
    args = parser.parse_args(argv)
    for row in run(size=args.size):
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
