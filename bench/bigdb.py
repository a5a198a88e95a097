"""A SQLite database with 1,000,000 members and 1,000,000 invitations, built once and cached."""

from __future__ import annotations

import os
import random
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert, select

from bench.common import fresh_database
from invite_desk.services import db
from invite_desk.services.models import Invitation, InvitationStatus, Member, Unit
from invite_desk.services.operator import Operator
from invite_desk.services.uow import UnitOfWork

SIZE = 1_000_000
CHUNK = 20_000
STATUS_MIX = [
    (InvitationStatus.SENT, 0.45), (InvitationStatus.ACCEPTED, 0.25),
    (InvitationStatus.EXPIRED, 0.15), (InvitationStatus.REVOKED, 0.05),
    (InvitationStatus.FAILED, 0.05), (InvitationStatus.QUEUED, 0.04),
    (InvitationStatus.UNCERTAIN, 0.01),
]


def cache_dir() -> Path:
    base = Path(os.environ.get("INVITE_DESK_BENCH_CACHE", Path.home() / ".cache" / "invite-desk-bench"))
    base.mkdir(parents=True, exist_ok=True)
    return base


def big_database(size: int = SIZE) -> tuple[UnitOfWork, Operator, str]:
    """(uow, admin, url) of the cached database, building it when missing."""
    path = cache_dir() / f"members-invitations-{size}.sqlite3"
    url = f"sqlite:///{path}"
    if path.exists():
        from invite_desk.services import auth

        engine = db.make_engine(url)
        db.upgrade_to_head(engine)
        uow = UnitOfWork(engine)
        return uow, auth.sign_in(uow, "bench@example.org", "bench-password-1"), url
    tmp = path.with_suffix(".building")
    for leftover in tmp.parent.glob(tmp.name + "*"):
        leftover.unlink()
    uow, admin = fresh_database(f"sqlite:///{tmp}")
    _fill(uow, admin, size)
    uow.engine.dispose()
    tmp.rename(path)
    return big_database(size)


def _fill(uow: UnitOfWork, admin: Operator, size: int) -> None:
    rng = random.Random(1)
    now = datetime.now(UTC)
    with uow:
        units = [Unit(organization_id=admin.organization_id, name=f"Chapter {i}") for i in range(8)]
        uow.session.add_all(units)
        uow.commit()
        unit_ids = [u.id for u in units]
    member_ids: list[uuid.UUID] = []
    with uow.engine.begin() as conn:
        for start in range(0, size, CHUNK):
            rows = []
            for i in range(start, min(size, start + CHUNK)):
                member_id = uuid.uuid4()
                if i < 2000:
                    member_ids.append(member_id)
                joined = now - timedelta(days=rng.randint(0, 3650))
                rows.append({
                    "id": member_id, "version": 1, "created_at": joined, "updated_at": joined,
                    "organization_id": admin.organization_id, "email": f"member{i}@bench.example",
                    "email_normalized": f"member{i}@bench.example", "first_name": f"First{i}",
                    "last_name": f"Last{i % 5000}", "role": "USER", "unit_id": rng.choice(unit_ids),
                    "status": "active", "adhesion_reason": "", "joined_at": joined,
                })
            conn.execute(insert(Member), rows)
        statuses = [s for s, _ in STATUS_MIX]
        weights = [w for _, w in STATUS_MIX]
        for start in range(0, size, CHUNK):
            rows = []
            for i in range(start, min(size, start + CHUNK)):
                status = rng.choices(statuses, weights)[0]
                created = now - timedelta(days=rng.randint(0, 720), seconds=rng.randint(0, 86400))
                sent = created + timedelta(minutes=5) if status not in (InvitationStatus.QUEUED,) else None
                rows.append({
                    "id": uuid.uuid4(), "version": 1, "created_at": created, "updated_at": created,
                    "organization_id": admin.organization_id, "email": f"invitee{i}@bench.example",
                    "email_normalized": f"invitee{i}@bench.example", "name": f"Invitee {i}",
                    "kind": "membership", "inviter_id": rng.choice(member_ids),
                    "sender_id": admin.member_id, "unit_id": rng.choice(unit_ids),
                    "personal_message": "", "status": status.value, "queued_at": created,
                    "sent_at": sent,
                    "expires_at": (sent or created) + timedelta(days=14)
                    if status is not InvitationStatus.EXPIRED else created + timedelta(days=1),
                    "accepted_at": sent + timedelta(days=2) if status is InvitationStatus.ACCEPTED and sent else None,
                    "attempts": 1, "last_error": "550 5.1.1 unknown user" if status is InvitationStatus.FAILED else "",
                })
            conn.execute(insert(Invitation), rows)
    with uow:
        assert uow.session.scalar(select(Member.id).limit(1)) is not None
