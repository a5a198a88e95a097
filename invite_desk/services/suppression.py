"""The suppression list: addresses no invitation or reminder may reach, with why.

An address joins it by a hard bounce (with the DSN status and diagnostic as evidence), by
too many soft bounces, by the invitee's one-click unsubscribe (RFC 8058, through the portal),
or by an admin. Every path that sends checks it: pre-flight (compose, CLI), resend, the
outbox (an address suppressed after it was queued), reminders. An admin can see why and undo
it; undoing keeps the row (`undone_at`) for the record, and everything is audited.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, Connection, exists, select, update
from sqlalchemy.orm import Session

from invite_desk.services import audit
from invite_desk.services.errors import Conflict, NotFound, ValidationFailed
from invite_desk.services.models import (
    Invitation,
    InvitationStatus,
    Member,
    Suppression,
    SuppressionReason,
    utcnow,
)
from invite_desk.services.operator import Operator, refreshed
from invite_desk.services.permissions import Action, require
from invite_desk.services.uow import UnitOfWork

CHUNK = 500

REASON_LABELS = {
    SuppressionReason.HARD_BOUNCE.value: "Hard bounce",
    SuppressionReason.SOFT_BOUNCES.value: "Repeated soft bounces",
    SuppressionReason.UNSUBSCRIBED.value: "Unsubscribed",
    SuppressionReason.MANUAL.value: "Added by an admin",
}


def normalize(address: str) -> str:
    """The key an address is suppressed under: as pre-flight stores it (validated, domain
    lower-cased, NFC), lower-cased; an address the validator refuses is trimmed and
    lower-cased, so it still matches itself."""
    from invite_desk.services.invitations.preflight import check_address

    normalized, _ = check_address(address)
    return (normalized or address.strip()).lower()


@dataclass(frozen=True)
class SuppressionEntry:
    id: uuid.UUID
    address: str
    reason: str
    evidence: str
    source: str
    created_at: datetime
    created_by: str  # a member's name, or "" when the system added it (bounce, opt-out)
    undone_at: datetime | None
    undone_by: str

    @property
    def reason_label(self) -> str:
        return REASON_LABELS.get(self.reason, self.reason)

    @property
    def active(self) -> bool:
        return self.undone_at is None

    @property
    def why(self) -> str:
        """One sentence a person can act on."""
        return describe(self.reason, self.evidence, self.created_at)


def describe(reason: str, evidence: str, at: datetime | None = None) -> str:
    """Why an address is suppressed, and what to do about it."""
    when = f" on {at:%d %b %Y}" if at is not None else ""
    if reason == SuppressionReason.UNSUBSCRIBED.value:
        text = f"This address unsubscribed{when} (one-click opt-out)."
    elif reason == SuppressionReason.HARD_BOUNCE.value:
        text = f"Mail to this address bounced{when}: {evidence or 'permanent failure'}."
    elif reason == SuppressionReason.SOFT_BOUNCES.value:
        text = f"Mail to this address kept bouncing{when}: {evidence or 'temporary failures'}."
    else:
        text = f"An admin put this address on the suppression list{when}" + (
            f": {evidence}." if evidence else ".")
    return (f"{text} It is on the suppression list; an organization admin can undo that on "
            "the Suppression page.")


def _active(organization_id: uuid.UUID) -> list[ColumnElement[bool]]:
    return [Suppression.organization_id == organization_id, Suppression.undone_at.is_(None)]


def suppressed_reasons(
    db: Session | Connection, organization_id: uuid.UUID, keys: Iterable[str]
) -> dict[str, str]:
    """{normalized address: why} for the given normalized addresses that are suppressed."""
    wanted = sorted(set(keys))
    found: dict[str, str] = {}
    for start in range(0, len(wanted), CHUNK):
        rows = db.execute(
            select(Suppression.address_normalized, Suppression.reason, Suppression.evidence,
                   Suppression.created_at)
            .where(*_active(organization_id),
                   Suppression.address_normalized.in_(wanted[start:start + CHUNK]))
            .order_by(Suppression.created_at)
        )
        for key, reason, evidence, at in rows:
            found[key] = describe(reason, evidence, at)
    return found


def is_suppressed_sql(organization_id: uuid.UUID, column: Any) -> ColumnElement[bool]:
    """SQL: the address in `column` (a normalized address) is suppressed now."""
    return exists().where(*_active(organization_id), Suppression.address_normalized == column)


def hold_suppressed_queued(db: Session | Connection, organization_id: uuid.UUID,
                           extra: Sequence[ColumnElement[bool]] = ()) -> int:
    """Queued invitations whose address is suppressed become `suppressed` (never sent; the
    row keeps why in last_error). Returns how many; the caller commits."""
    rows = list(db.execute(
        select(Invitation.id, Invitation.email_normalized).where(
            Invitation.organization_id == organization_id,
            Invitation.status == InvitationStatus.QUEUED.value,
            is_suppressed_sql(organization_id, Invitation.email_normalized), *extra)))
    if not rows:
        return 0
    reasons = suppressed_reasons(db, organization_id, {key for _, key in rows})
    now = utcnow()
    held = 0
    for invitation_id, key in rows:
        held += _hold(db, invitation_id, reasons.get(key, ""), now)
    return held


def _hold(db: Session | Connection, invitation_id: uuid.UUID, why: str, now: datetime) -> int:
    result = db.execute(
        update(Invitation)
        .where(Invitation.id == invitation_id,
               Invitation.status == InvitationStatus.QUEUED.value)
        .values(status=InvitationStatus.SUPPRESSED.value, token_hash=None,
                last_error=f"Not sent: {why}", version=Invitation.version + 1, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def suppress(
    session: Session,
    organization_id: uuid.UUID,
    address: str,
    reason: SuppressionReason,
    *,
    evidence: str = "",
    source: str = "",
    invitation_id: uuid.UUID | None = None,
    actor_id: uuid.UUID | None = None,
) -> Suppression | None:
    """Put `address` on the list (audited) and hold its queued invitations; None when it is
    on the list already (nothing changes: a re-run or a second click counts once). The
    caller commits."""
    key = normalize(address)
    existing = session.scalars(select(Suppression).where(
        *_active(organization_id), Suppression.address_normalized == key)).first()
    if existing is not None:
        return None
    row = Suppression(organization_id=organization_id, address=address.strip()[:320],
                      address_normalized=key, reason=reason.value, evidence=evidence[:4000],
                      source=source[:300], invitation_id=invitation_id, created_by_id=actor_id)
    session.add(row)
    session.flush()
    audit.record(session, organization_id=organization_id, actor_id=actor_id,
                 action="suppression.added", entity_type="suppression", entity_id=row.id,
                 after={"address": key, "reason": reason.value, "evidence": evidence[:500],
                        "source": source, "invitation_id": invitation_id})
    hold_suppressed_queued(session, organization_id, [Invitation.email_normalized == key])
    return row


def _names(session: Session, ids: Iterable[uuid.UUID | None]) -> dict[uuid.UUID, str]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    return {m.id: m.display_name for m in session.scalars(select(Member).where(
        Member.id.in_(wanted)))}


def _entry(row: Suppression, names: dict[uuid.UUID, str]) -> SuppressionEntry:
    return SuppressionEntry(
        id=row.id, address=row.address, reason=row.reason, evidence=row.evidence,
        source=row.source, created_at=row.created_at,
        created_by=names.get(row.created_by_id, "") if row.created_by_id else "",
        undone_at=row.undone_at,
        undone_by=names.get(row.undone_by_id, "") if row.undone_by_id else "",
    )


def list_suppressions(uow: UnitOfWork, operator: Operator, *, search: str = "",
                      include_undone: bool = False, limit: int = 1000
                      ) -> tuple[SuppressionEntry, ...]:
    """The list, newest first (HR_TENANT and above); `search` matches the address's start."""
    with uow:
        session = uow.session
        operator = refreshed(session, operator)
        require(operator, Action.VIEW_SUPPRESSION)
        stmt = select(Suppression).where(Suppression.organization_id == operator.organization_id)
        if not include_undone:
            stmt = stmt.where(Suppression.undone_at.is_(None))
        needle = " ".join(search.split()).lower()
        if needle:
            escaped = needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            stmt = stmt.where(Suppression.address_normalized.like(f"{escaped}%", escape="\\"))
        rows = list(session.scalars(stmt.order_by(Suppression.created_at.desc(),
                                                  Suppression.id.desc()).limit(limit)))
        names = _names(session, [r.created_by_id for r in rows] + [r.undone_by_id for r in rows])
        return tuple(_entry(row, names) for row in rows)


def add_suppression(uow: UnitOfWork, operator: Operator, address: str,
                    note: str = "") -> SuppressionEntry:
    """An admin suppresses an address by hand (ADMIN_TENANT; audited)."""
    from invite_desk.services.invitations.preflight import check_address

    normalized, problem = check_address(address)
    if normalized is None:
        raise ValidationFailed({"address": problem})
    with uow:
        session = uow.session
        operator = refreshed(session, operator)
        require(operator, Action.MANAGE_SUPPRESSION)
        row = suppress(session, operator.organization_id, normalized, SuppressionReason.MANUAL,
                       evidence=" ".join(note.split()), source=f"admin {operator.email}",
                       actor_id=operator.member_id)
        if row is None:
            raise Conflict(f"{normalized} is already on the suppression list.")
        uow.commit()
        return _entry(row, _names(session, [row.created_by_id]))


def undo_suppression(uow: UnitOfWork, operator: Operator,
                     suppression_id: uuid.UUID) -> SuppressionEntry:
    """Take an address off the list (ADMIN_TENANT; audited). Invitations held as
    `suppressed` stay so; send a new one."""
    with uow:
        session = uow.session
        operator = refreshed(session, operator)
        require(operator, Action.MANAGE_SUPPRESSION)
        row = session.get(Suppression, suppression_id)
        if row is None or row.organization_id != operator.organization_id:
            raise NotFound("That suppression no longer exists.")
        if row.undone_at is not None:
            raise Conflict(f"{row.address} was already taken off the suppression list.")
        before = {"address": row.address_normalized, "reason": row.reason,
                  "evidence": row.evidence[:500]}
        row.undone_at = utcnow()
        row.undone_by_id = operator.member_id
        audit.record(session, organization_id=row.organization_id, actor_id=operator.member_id,
                     action="suppression.undone", entity_type="suppression", entity_id=row.id,
                     before=before, after={"undone": True})
        uow.commit()
        return _entry(row, _names(session, [row.created_by_id, row.undone_by_id]))


def undo_address(uow: UnitOfWork, operator: Operator, address: str) -> SuppressionEntry:
    """`undo_suppression` by address (the CLI's `suppression remove`)."""
    key = normalize(address)
    with uow:
        operator = refreshed(uow.session, operator)
        require(operator, Action.MANAGE_SUPPRESSION)
        found = uow.session.scalars(select(Suppression.id).where(
            *_active(operator.organization_id), Suppression.address_normalized == key)).first()
    if found is None:
        raise NotFound(f"{key} is not on the suppression list.")
    return undo_suppression(uow, operator, found)


# -- one-click unsubscribe (RFC 8058), for the portal -------------------------------------


class UnsubscribeState(StrEnum):
    READY = "ready"  # a valid link; the address is not suppressed yet
    DONE = "done"  # the address is on the list (just now, or already)
    INVALID = "invalid"  # no invitation carries this token


@dataclass(frozen=True)
class UnsubscribeView:
    state: UnsubscribeState
    address: str = ""  # masked: "a…@example.org" (the page never shows a whole address)


UNSUBSCRIBE_SECRET = "unsubscribe-key"


def unsubscribe_key(uow: UnitOfWork) -> bytes:
    """The key unsubscribe tokens are derived with (made once, shared by every process)."""
    from invite_desk.services.registration.limits import shared_secret

    return shared_secret(uow, UNSUBSCRIBE_SECRET).encode("ascii")


def unsubscribe_token(key: bytes, invitation_id: uuid.UUID) -> str:
    """The invitation's one-click unsubscribe token: the same in every email about it (the
    invitation, a resend, a reminder), so an older email's link keeps working; only its
    SHA-256 is stored (`invitation.unsubscribe_token_hash`)."""
    digest = hmac.new(key, b"unsubscribe:" + invitation_id.bytes, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _mask(address: str) -> str:
    local, _, domain = address.rpartition("@")
    return f"{local[:1]}…@{domain}" if local else address


def _by_token(session: Session, token: str,
              organization_id: uuid.UUID | None) -> Invitation | None:
    from invite_desk.services.invitations.tokens import hash_token

    if not token or len(token) > 200:
        return None
    stmt = select(Invitation).where(Invitation.unsubscribe_token_hash == hash_token(token))
    if organization_id is not None:
        stmt = stmt.where(Invitation.organization_id == organization_id)
    return session.scalars(stmt).first()


def check_unsubscribe(uow: UnitOfWork, token: str,
                      organization_id: uuid.UUID | None) -> UnsubscribeView:
    """What the unsubscribe link's page shows; opening it changes nothing (mail scanners
    open links), a POST does."""
    with uow:
        row = _by_token(uow.session, token, organization_id)
        if row is None:
            return UnsubscribeView(UnsubscribeState.INVALID)
        done = bool(suppressed_reasons(uow.session, row.organization_id,
                                       [row.email_normalized]))
        return UnsubscribeView(UnsubscribeState.DONE if done else UnsubscribeState.READY,
                               _mask(row.email))


def unsubscribe(uow: UnitOfWork, token: str, organization_id: uuid.UUID | None, *,
                client: str = "") -> UnsubscribeView:
    """The invitee's one-click opt-out: the address joins the suppression list (once; a
    second POST changes nothing), its queued invitations are held, none reaches it again."""
    with uow:
        session = uow.session
        row = _by_token(session, token, organization_id)
        if row is None:
            return UnsubscribeView(UnsubscribeState.INVALID)
        suppress(session, row.organization_id, row.email, SuppressionReason.UNSUBSCRIBED,
                 evidence="One-click unsubscribe from the invitation email.",
                 source=f"portal {client}".strip(), invitation_id=row.id)
        view = UnsubscribeView(UnsubscribeState.DONE, _mask(row.email))
        uow.commit()
        return view
