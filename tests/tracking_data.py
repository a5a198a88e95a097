"""Invitations in every state, written straight into the database, for the tracking tests.

`Seeder.add(...)` inserts one invitation (and, with `token=True`, gives it a working link
whose token is returned), so a test can lay out exactly the rows it needs.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from invite_desk.services import auth
from invite_desk.services.invitations.tokens import new_token
from invite_desk.services.models import (
    Batch,
    Event,
    Invitation,
    InvitationKind,
    InvitationStatus,
    Member,
    MemberStatus,
    Unit,
)
from invite_desk.services.operator import Operator
from invite_desk.services.roles import Role
from invite_desk.services.uow import UnitOfWork

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
S = InvitationStatus


@dataclass
class Added:
    id: uuid.UUID
    email: str
    token: str | None = None


@dataclass
class Seeder:
    uow: UnitOfWork
    organization_id: uuid.UUID
    now: datetime = NOW
    counter: int = 0
    tokens: dict[uuid.UUID, str] = field(default_factory=dict)

    def unit(self, name: str) -> uuid.UUID:
        with self.uow:
            unit = Unit(organization_id=self.organization_id, name=name)
            self.uow.session.add(unit)
            self.uow.commit()
            return unit.id

    def member(self, first: str, last: str, *, role: Role = Role.USER,
               unit_id: uuid.UUID | None = None, email: str | None = None,
               referred_by: uuid.UUID | None = None,
               status: MemberStatus = MemberStatus.ACTIVE) -> Operator:
        address = email or f"{first}.{last}@example.org".lower()
        with self.uow:
            member = Member(organization_id=self.organization_id, email=address,
                            email_normalized=auth.normalize_email(address), first_name=first,
                            last_name=last, role=role.name, unit_id=unit_id, status=status.value,
                            referred_by_id=referred_by)
            self.uow.session.add(member)
            self.uow.session.flush()
            operator = auth.operator_for(self.uow.session, member)
            self.uow.commit()
            return operator

    def batch(self, by: uuid.UUID, label: str = "", *, kind: InvitationKind = InvitationKind.MEMBERSHIP,
              event_id: uuid.UUID | None = None) -> uuid.UUID:
        with self.uow:
            batch = Batch(organization_id=self.organization_id, created_by_id=by, inviter_id=by,
                          label=label, source="paste", kind=kind.value, event_id=event_id,
                          status="done")
            self.uow.session.add(batch)
            self.uow.commit()
            return batch.id

    def event(self, name: str) -> uuid.UUID:
        with self.uow:
            event = Event(organization_id=self.organization_id, name=name)
            self.uow.session.add(event)
            self.uow.commit()
            return event.id

    def add(self, status: InvitationStatus, *, inviter: uuid.UUID,
            sender: uuid.UUID | None = None, unit_id: uuid.UUID | None = None,
            email: str | None = None, name: str = "", sent_days_ago: float | None = None,
            expires_in_days: float | None = None, batch_id: uuid.UUID | None = None,
            event_id: uuid.UUID | None = None, token: bool = False, last_error: str = "",
            queued_days_ago: float | None = None, message: str = "") -> Added:
        """One invitation. Sent-like statuses get sent_at/expires_at (defaults: sent 2 days
        ago, expiring in 12 days); `token=True` stores a link's hash and returns its token."""
        self.counter += 1
        address = email or f"invitee{self.counter:04d}@example.net"
        sent_like = status in (S.SENT, S.ACCEPTED, S.EXPIRED, S.REVOKED)
        sent_at = expires_at = None
        if sent_like or sent_days_ago is not None:
            ago = 2.0 if sent_days_ago is None else sent_days_ago
            sent_at = self.now - timedelta(days=ago, seconds=self.counter)
            expires_at = self.now + timedelta(days=12 if expires_in_days is None else expires_in_days)
        elif expires_in_days is not None:
            expires_at = self.now + timedelta(days=expires_in_days)
        queued = self.now - timedelta(days=queued_days_ago if queued_days_ago is not None
                                      else (sent_days_ago or 2.0) + 0.01, seconds=self.counter)
        raw_token = token_hash = None
        if token:
            raw_token, token_hash = new_token()
        values: dict[str, Any] = dict(
            organization_id=self.organization_id, email=address,
            email_normalized=address.lower(), name=name,
            kind=(InvitationKind.EVENT if event_id else InvitationKind.MEMBERSHIP).value,
            event_id=event_id, inviter_id=inviter, sender_id=sender or inviter,
            unit_id=unit_id, batch_id=batch_id, personal_message=message,
            status=status.value, token_hash=token_hash, expires_at=expires_at,
            queued_at=queued, sent_at=sent_at,
            accepted_at=(sent_at + timedelta(hours=5)) if status is S.ACCEPTED and sent_at else None,
            revoked_at=(sent_at + timedelta(hours=6)) if status is S.REVOKED and sent_at else None,
            message_id=f"<m{self.counter}@example.org>" if sent_at else None,
            attempts=1 if sent_at else 0, last_error=last_error,
            created_at=queued, updated_at=queued,
        )
        with self.uow:
            row = Invitation(**values)
            self.uow.session.add(row)
            self.uow.commit()
            if raw_token:
                self.tokens[row.id] = raw_token
            return Added(row.id, address, raw_token)


def statuses(uow: UnitOfWork) -> dict[str, str]:
    """email -> stored status."""
    from sqlalchemy import select

    with uow:
        return {row.email: row.status for row in uow.session.scalars(select(Invitation))}
