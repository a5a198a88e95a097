"""The expiry sweep: record `sent -> expired` for invitations past their expiry.

Nothing waits for the sweep: the effective-status rule (status.py) already shows those
invitations as expired everywhere and their links are refused. The sweep writes the
transition down with an audit row each, so the status column and the history agree.
`invite-desk expire` runs it once; the Invitations window runs it every minute.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime

from sqlalchemy import insert, select, update

from invite_desk.services.models import (
    AuditLog,
    Invitation,
    InvitationStatus,
    Organization,
    new_id,
    utcnow,
)
from invite_desk.services.sync import journal
from invite_desk.services.tracking.status import overdue_sql
from invite_desk.services.uow import UnitOfWork

CHUNK = 1000


# On a replica, the sweep's commits are commands the server re-checks (sync/push.py).
EXPIRE_COMMAND = "invitation.expire"


def expire_overdue(uow: UnitOfWork, now: datetime | None = None, *,
                   organization_id: uuid.UUID | None = None, chunk: int = CHUNK) -> int:
    """Mark sent invitations whose expiry is at or before `now` as expired; returns how many.

    Works in short transactions of `chunk` rows, so a large backlog never holds the database
    for long. Each transaction starts with its UPDATE (no read first), so SQLite never has
    to upgrade a stale read snapshot to a write.
    """
    moment = now or utcnow()
    if organization_id is None:
        with uow:
            organizations = list(uow.session.scalars(select(Organization.id)))
    else:
        organizations = [organization_id]
    return sum(_expire_organization(uow, org, moment, chunk) for org in organizations)


def _expire_organization(uow: UnitOfWork, organization_id: uuid.UUID, moment: datetime,
                         chunk: int) -> int:
    total = 0
    overdue = [Invitation.organization_id == organization_id, overdue_sql(moment)]
    while True:
        with uow:
            ids = list(uow.session.scalars(select(Invitation.id).where(*overdue).limit(chunk)))
        if not ids:
            return total
        with uow:
            session = uow.session
            stamp = utcnow()
            session.execute(
                update(Invitation)
                .where(Invitation.id.in_(ids), *overdue)
                .values(status=InvitationStatus.EXPIRED.value, version=Invitation.version + 1,
                        updated_at=stamp)
                .execution_options(synchronize_session=False)
            )
            # Exactly the rows this UPDATE changed (another writer may have extended or
            # revoked some of them since the ids were read).
            changed = session.execute(
                select(Invitation.id, Invitation.expires_at).where(
                    Invitation.id.in_(ids),
                    Invitation.status == InvitationStatus.EXPIRED.value,
                    Invitation.updated_at == stamp,
                )
            ).all()
            if changed:
                session.execute(insert(AuditLog), [
                    {
                        "id": new_id(), "version": 1, "created_at": stamp,
                        "updated_at": stamp, "organization_id": organization_id,
                        "actor_id": None, "action": "invitation.expired",
                        "entity_type": "invitation", "entity_id": invitation_id,
                        "before_json": json.dumps({"expires_at": expires_at.isoformat()
                                                   if expires_at else None, "status": "sent"},
                                                  sort_keys=True),
                        "after_json": json.dumps({"status": "expired"}),
                        "at": stamp,
                    }
                    for invitation_id, expires_at in changed
                ])
            with journal.command(EXPIRE_COMMAND, f"Record {len(changed)} expired invitations"):
                uow.commit()
            total += len(changed)
        if len(ids) < chunk:
            return total
