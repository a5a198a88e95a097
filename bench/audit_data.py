"""A SQLite database with 1,000,000 audit rows (issue 11), built once and cached.

Realistic shape: ~3 years of history, 25 actions over 8 object types, 300 operators (a few
do most of the work), before/after JSON of a few fields. Shared by the audit log query bench
(bench/audit_query.py) and the window's bench (`python -m bench audit`)."""

from __future__ import annotations

import json
import os
import random
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert

from bench.bigdb import cache_dir
from bench.common import fresh_database
from invite_desk.services import auth, db
from invite_desk.services.models import AuditLog, Member
from invite_desk.services.operator import Operator
from invite_desk.services.uow import UnitOfWork

SIZE = 1_000_000
CHUNK = 25_000
ACTIONS = [
    ("invitation.sent", "invitation", 30), ("invitation.accepted", "invitation", 12),
    ("invitation.revoked", "invitation", 3), ("invitation.resent", "invitation", 4),
    ("invitation.extended", "invitation", 2), ("invitation.expired", "invitation", 8),
    ("batch.queued", "batch", 3), ("batch.done", "batch", 3),
    ("referral.recorded", "referral", 10), ("referral.completed", "referral", 4),
    ("adhesion.approved", "member", 4), ("adhesion.rejected", "member", 1),
    ("member.update", "member", 3), ("member.bulk_update", "member", 1),
    ("member.sign_in_link", "member", 1), ("member.password_set", "member", 1),
    ("member.one_time_password", "member", 1), ("member.sign_in_revoked", "member", 1),
    ("settings.update", "settings", 1), ("smtp.update", "settings", 1),
    ("templates.update", "settings", 1), ("organization.update", "organization", 1),
    ("unit.create", "unit", 1), ("event.create", "event", 1), ("event.update", "event", 1),
]
OPERATORS = 300


def _id_at(at: datetime, rng: random.Random) -> uuid.UUID:
    """A UUIDv7 for `at`, as models.new_id makes at that moment."""
    millis = int(at.timestamp() * 1000)
    value = (millis & ((1 << 48) - 1)) << 80 | 0x7 << 76 | rng.getrandbits(12) << 64
    value |= 0b10 << 62 | rng.getrandbits(62)
    return uuid.UUID(int=value)


def audit_database(size: int = SIZE) -> tuple[UnitOfWork, Operator, str]:
    """(uow, admin, url) of the cached database, building it when missing."""
    path = cache_dir() / f"audit-v2-{size}.sqlite3"
    url = f"sqlite:///{path}"
    if path.exists():
        engine = db.make_engine(url)
        db.upgrade_to_head(engine)
        uow = UnitOfWork(engine)
        return uow, auth.sign_in(uow, "bench@example.org", "bench-password-1"), url
    tmp = path.with_suffix(".building")
    for leftover in tmp.parent.glob(tmp.name + "*"):
        leftover.unlink()
    uow, admin = fresh_database(f"sqlite:///{tmp}")
    _fill(uow, admin, size)
    with uow.engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE")
    uow.engine.dispose()
    os.replace(tmp, path)
    return audit_database(size)


def _fill(uow: UnitOfWork, admin: Operator, size: int) -> None:
    rng = random.Random(11)
    now = datetime.now(UTC)
    org = admin.organization_id
    operator_ids: list[uuid.UUID] = []
    with uow.engine.begin() as conn:
        rows = []
        for i in range(OPERATORS):
            member_id = uuid.uuid4()
            operator_ids.append(member_id)
            rows.append({
                "id": member_id, "version": 1, "created_at": now, "updated_at": now,
                "organization_id": org, "email": f"operator{i}@bench.example",
                "email_normalized": f"operator{i}@bench.example", "first_name": f"Op{i}",
                "last_name": f"Erator{i}", "role": "HR_LOCAL", "status": "active",
                "adhesion_reason": "", "joined_at": now, "must_change_password": False,
            })
        conn.execute(insert(Member), rows)
    weights = [w for *_, w in ACTIONS]
    actor_weights = [1.0 / (i + 1) for i in range(OPERATORS)]  # a few do most of the work
    span = timedelta(days=3 * 365).total_seconds()
    objects = [uuid.uuid4() for _ in range(50_000)]
    # Appended oldest first, as a real log is: the table's row order follows time.
    offsets = sorted((rng.random() * span for _ in range(size)), reverse=True)
    with uow.engine.begin() as conn:
        for start in range(0, size, CHUNK):
            count = min(size, start + CHUNK) - start
            picks = rng.choices(ACTIONS, weights, k=count)
            actors = rng.choices(operator_ids, actor_weights, k=count)
            batch = []
            for offset, (action, entity_type, _), actor in zip(
                    offsets[start:start + count], picks, actors, strict=True):
                at = now - timedelta(seconds=offset)
                entity = rng.choice(objects) if entity_type not in ("settings",) else None
                batch.append({
                    "id": _id_at(at, rng), "version": 1, "created_at": at, "updated_at": at,
                    "organization_id": org, "actor_id": actor, "action": action,
                    "entity_type": entity_type, "entity_id": entity,
                    "before_json": json.dumps({"status": "sent", "note": f"n{rng.randrange(10**6)}"}),
                    "after_json": json.dumps({"status": action.rsplit(".", 1)[1],
                                              "note": f"n{rng.randrange(10**6)}"}),
                    "at": at,
                })
            conn.execute(insert(AuditLog), batch)
