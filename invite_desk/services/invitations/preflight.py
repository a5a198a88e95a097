"""Pre-flight: before anything is queued, say for each row whether it is ready and why not."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import select
from sqlalchemy.orm import Session

from invite_desk.services.invitations.importing import InviteeInput
from invite_desk.services.models import (
    OPEN_INVITATION_STATES,
    Invitation,
    InvitationKind,
    Member,
    MemberStatus,
    utcnow,
)
from invite_desk.services.uow import UnitOfWork

CHUNK = 500


class RowStatus(StrEnum):
    READY = "ready"
    INVALID = "invalid"
    DUPLICATE = "duplicate"
    MEMBER = "member"
    PENDING = "pending"


STATUS_LABELS = {
    RowStatus.READY: "Ready",
    RowStatus.INVALID: "Invalid",
    RowStatus.DUPLICATE: "Duplicate in this batch",
    RowStatus.MEMBER: "Already a member",
    RowStatus.PENDING: "Already invited (pending)",
}


@dataclass(frozen=True)
class PreflightRow:
    row: int
    email: str  # as validated (domain lower-cased), or as entered when invalid
    name: str
    message: str
    status: RowStatus
    reason: str = ""

    @property
    def key(self) -> str:
        return self.email.lower()


@dataclass(frozen=True)
class Preflight:
    rows: tuple[PreflightRow, ...]

    @property
    def ready(self) -> tuple[PreflightRow, ...]:
        return tuple(r for r in self.rows if r.status is RowStatus.READY)

    def count(self, status: RowStatus) -> int:
        return sum(1 for r in self.rows if r.status is status)

    def summary(self) -> str:
        parts = [f"{self.count(s)} {STATUS_LABELS[s].lower()}" for s in RowStatus if self.count(s)]
        return ", ".join(parts) or "no rows"


def check_address(text: str) -> tuple[str | None, str]:
    """(normalized address, "") or (None, reason). No DNS lookups."""
    candidate = text.strip()
    if not candidate:
        return None, "The email address is empty."
    try:
        return validate_email(candidate, check_deliverability=False).normalized, ""
    except EmailNotValidError as exc:
        return None, str(exc)


def _chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


def existing_members(session: Session, organization_id: uuid.UUID, keys: Sequence[str]) -> set[str]:
    found: set[str] = set()
    for chunk in _chunks(keys):
        found.update(
            session.scalars(
                select(Member.email_normalized).where(
                    Member.organization_id == organization_id,
                    Member.email_normalized.in_(chunk),
                    Member.status != MemberStatus.DEACTIVATED.value,
                )
            )
        )
    return found


def pending_invitations(
    session: Session,
    organization_id: uuid.UUID,
    keys: Sequence[str],
    *,
    kind: InvitationKind = InvitationKind.MEMBERSHIP,
    event_id: uuid.UUID | None = None,
    now: datetime | None = None,
) -> set[str]:
    """Addresses that already hold a live invitation of the same kind (and event).

    Looks rows up by address only and filters the few it finds here: given a status filter,
    planners prefer the (status, ...) indexes and scan every open invitation instead.
    """
    moment = now or utcnow()
    open_states = {s.value for s in OPEN_INVITATION_STATES} | {"uncertain"}  # issue 8 (send)
    found: set[str] = set()
    for chunk in _chunks(keys):
        rows = session.execute(
            select(Invitation.email_normalized, Invitation.status, Invitation.expires_at,
                   Invitation.kind, Invitation.event_id)
            .where(Invitation.organization_id == organization_id,
                   Invitation.email_normalized.in_(chunk))
        )
        for email, status, expires_at, row_kind, row_event in rows:
            if (
                status in open_states
                and (expires_at is None or expires_at > moment)
                and row_kind == kind.value
                and (event_id is None or row_event == event_id)
            ):
                found.add(email)
    return found


def classify(
    session: Session,
    organization_id: uuid.UUID,
    inputs: Sequence[InviteeInput],
    *,
    kind: InvitationKind = InvitationKind.MEMBERSHIP,
    event_id: uuid.UUID | None = None,
    now: datetime | None = None,
) -> Preflight:
    """Validate, dedupe, and check every address against members and live invitations."""
    checked: list[tuple[InviteeInput, str | None, str]] = []
    for item in inputs:
        address, reason = check_address(item.email)
        checked.append((item, address, reason))
    keys = sorted({a.lower() for _, a, _ in checked if a})
    members = existing_members(session, organization_id, keys) if kind is InvitationKind.MEMBERSHIP else set()
    pending = pending_invitations(session, organization_id, keys, kind=kind, event_id=event_id, now=now)
    seen: dict[str, int] = {}
    rows: list[PreflightRow] = []
    for item, address, reason in checked:
        if address is None:
            rows.append(PreflightRow(item.row, item.email.strip(), item.name, item.message,
                                     RowStatus.INVALID, reason))
            continue
        key = address.lower()
        if key in seen:
            rows.append(PreflightRow(item.row, address, item.name, item.message,
                                     RowStatus.DUPLICATE, f"Same address as row {seen[key]}."))
            continue
        seen[key] = item.row
        if key in members:
            rows.append(PreflightRow(item.row, address, item.name, item.message,
                                     RowStatus.MEMBER, "This person is already a member."))
        elif key in pending:
            rows.append(PreflightRow(item.row, address, item.name, item.message, RowStatus.PENDING,
                                     "An invitation to this address is still pending."))
        else:
            rows.append(PreflightRow(item.row, address, item.name, item.message, RowStatus.READY))
    return Preflight(tuple(rows))


def run_preflight(
    uow: UnitOfWork,
    organization_id: uuid.UUID,
    inputs: Sequence[InviteeInput],
    *,
    kind: InvitationKind = InvitationKind.MEMBERSHIP,
    event_id: uuid.UUID | None = None,
) -> Preflight:
    with uow:
        return classify(uow.session, organization_id, inputs, kind=kind, event_id=event_id)
