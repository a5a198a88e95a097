"""Pre-flight: before anything is queued, say for each row whether it is ready and why not."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from invite_desk.services import settings as settings_service
from invite_desk.services import suppression
from invite_desk.services.invitations.importing import InviteeInput
from invite_desk.services.models import (
    OPEN_INVITATION_STATES,
    Event,
    EventGuest,
    Invitation,
    InvitationKind,
    InvitationStatus,
    Member,
    MemberStatus,
    utcnow,
)
from invite_desk.services.uow import UnitOfWork

CHUNK = 500
LOCAL_PART_MAX = 64  # octets (RFC 5321); longer ones are refused by many servers


class RowStatus(StrEnum):
    READY = "ready"
    NEEDS_SMTPUTF8 = "needs_smtputf8"
    INVALID = "invalid"
    DUPLICATE = "duplicate"
    MEMBER = "member"
    PENDING = "pending"
    QUEUED = "queued"
    UNCERTAIN = "uncertain"
    SUPPRESSED = "suppressed"
    # Guests to an event: the event allows no guests, or its places are taken.
    NO_GUESTS = "no_guests"
    EVENT_FULL = "event_full"


# Rows that are queued: ready ones, and international addresses the sender tries (it fails
# them with the reason when the server does not offer SMTPUTF8).
SENDABLE = frozenset({RowStatus.READY, RowStatus.NEEDS_SMTPUTF8})

STATUS_LABELS = {
    RowStatus.READY: "Ready",
    RowStatus.NEEDS_SMTPUTF8: "Ready if the mail server accepts international addresses",
    RowStatus.INVALID: "Invalid",
    RowStatus.DUPLICATE: "Duplicate in this batch",
    RowStatus.MEMBER: "Already a member",
    RowStatus.PENDING: "Already invited (pending)",
    RowStatus.QUEUED: "Already queued",
    RowStatus.UNCERTAIN: "Delivery uncertain",
    RowStatus.SUPPRESSED: "Suppressed (bounced or unsubscribed)",
    RowStatus.NO_GUESTS: "Event takes no guests",
    RowStatus.EVENT_FULL: "Event full",
}

SMTPUTF8_REASON = (
    "The part before the @ has non-ASCII characters: only mail servers that offer SMTPUTF8 "
    "accept it. It is queued with the others; if the server does not offer SMTPUTF8, the "
    "invitation fails with that reason. Ask the person for an ASCII address if they have one."
)
UNCERTAIN_REASON = (
    "Delivery uncertain: the last run stopped while sending to this address; check with the "
    "invitee, then resend from Invitations."
)
QUEUED_REASON = (
    "An invitation to this address is already queued or being sent; it goes out with its "
    "batch (send it, or revoke it in Invitations)."
)
PENDING_REASON = "An invitation to this address is still pending."


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

    @property
    def sendable(self) -> bool:
        return self.status in SENDABLE


@dataclass(frozen=True)
class Preflight:
    rows: tuple[PreflightRow, ...]

    @property
    def ready(self) -> tuple[PreflightRow, ...]:
        """The rows that will be queued (ready, and international addresses)."""
        return tuple(r for r in self.rows if r.status in SENDABLE)

    def count(self, status: RowStatus) -> int:
        return sum(1 for r in self.rows if r.status is status)

    def summary(self) -> str:
        parts = [f"{self.count(s)} {STATUS_LABELS[s].lower()}" for s in RowStatus if self.count(s)]
        return ", ".join(parts) or "no rows"


def check_address(text: str) -> tuple[str | None, str]:
    """(normalized address, "") or (None, reason). No DNS lookups.

    The same rules as the message builder (email_validator's defaults: no quoted local
    parts, no IP-literal domains, IDN domains allowed), plus RFC 5321's 64-octet local part.
    """
    candidate = text.strip()
    if not candidate:
        return None, "The email address is empty."
    try:
        validated = validate_email(candidate, check_deliverability=False)
    except EmailNotValidError as exc:
        return None, str(exc)
    local = validated.local_part.encode("utf-8")
    if len(local) > LOCAL_PART_MAX:
        return None, (f"The part before the @-sign is {len(local)} bytes long; mail servers "
                      f"accept at most {LOCAL_PART_MAX}.")
    return validated.normalized, ""


def needs_smtputf8(address: str) -> bool:
    """Whether the address can only travel through a server that offers SMTPUTF8 (a
    non-ASCII local part; a non-ASCII domain goes as punycode)."""
    return not address.rpartition("@")[0].isascii()


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


@dataclass(frozen=True)
class Hold:
    """An invitation an address already holds that may stop another one."""

    status: str
    inviter_id: uuid.UUID


_QUEUED_STATES = frozenset({InvitationStatus.DRAFT.value, InvitationStatus.QUEUED.value,
                            InvitationStatus.SENDING.value})
_HOLD_STATES = frozenset({s.value for s in OPEN_INVITATION_STATES} | {InvitationStatus.UNCERTAIN.value})


def invitation_holds(
    session: Session,
    organization_id: uuid.UUID,
    keys: Sequence[str],
    *,
    kind: InvitationKind = InvitationKind.MEMBERSHIP,
    event_id: uuid.UUID | None = None,
    now: datetime | None = None,
) -> dict[str, list[Hold]]:
    """Per address, its invitations of the same kind (and event) that are queued, being
    sent, sent and live, or uncertain (the last run stopped while sending it).

    Looks rows up by address only and filters the few it finds here: given a status filter,
    planners prefer the (status, ...) indexes and scan every open invitation instead.
    """
    moment = now or utcnow()
    found: dict[str, list[Hold]] = {}
    for chunk in _chunks(keys):
        rows = session.execute(
            select(Invitation.email_normalized, Invitation.status, Invitation.expires_at,
                   Invitation.kind, Invitation.event_id, Invitation.inviter_id)
            .where(Invitation.organization_id == organization_id,
                   Invitation.email_normalized.in_(chunk))
        )
        for email, status, expires_at, row_kind, row_event, inviter in rows:
            if (
                status in _HOLD_STATES
                and (expires_at is None or expires_at > moment)
                and row_kind == kind.value
                and (event_id is None or row_event == event_id)
            ):
                found.setdefault(email, []).append(Hold(status, inviter))
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
    """Addresses that already hold a live, queued or uncertain invitation of the same kind."""
    return set(invitation_holds(session, organization_id, keys, kind=kind, event_id=event_id,
                                now=now))


def sponsors_needed(session: Session, organization_id: uuid.UUID) -> int:
    """N of invite-only mode (numberOfReferralsNeededForSignup), 0 when registration is open."""
    return settings_service.load(session, organization_id).number_of_referrals_needed_for_signup or 0


def hold_verdict(
    holds: Sequence[Hold], *, inviter_id: uuid.UUID | None, needed: int, kind: InvitationKind
) -> tuple[RowStatus, str]:
    """What the invitations an address holds mean for one more from `inviter_id`.

    With invite-only N >= 2 a person needs N distinct members' invitations, so one from a
    different member does not block: it is "sponsor k of N". Unknown inviter: any blocks.
    """
    counts_sponsors = needed >= 2 and kind is InvitationKind.MEMBERSHIP and inviter_id is not None
    own = [h for h in holds if h.inviter_id == inviter_id] if counts_sponsors else list(holds)
    statuses = {h.status for h in own}
    if InvitationStatus.UNCERTAIN.value in statuses:
        return RowStatus.UNCERTAIN, UNCERTAIN_REASON
    if statuses & _QUEUED_STATES:
        return RowStatus.QUEUED, QUEUED_REASON
    if statuses:
        return RowStatus.PENDING, (
            "This member already invited this address; the invitation is still pending."
            if counts_sponsors else PENDING_REASON)
    if not counts_sponsors:
        return RowStatus.READY, ""
    sponsors = {h.inviter_id for h in holds}
    if len(sponsors) >= needed:
        return RowStatus.PENDING, (
            f"{len(sponsors)} members already invited this address, enough to register "
            f"(invite-only needs {needed}).")
    k = len(sponsors) + 1
    more = needed - k
    tail = (f"{more} more member{'s' if more != 1 else ''} must invite this person before they "
            "can register." if more else "with this invitation the person can register.")
    return RowStatus.READY, f"Sponsor {k} of {needed}: {tail}"


def classify(
    session: Session,
    organization_id: uuid.UUID,
    inputs: Sequence[InviteeInput],
    *,
    kind: InvitationKind = InvitationKind.MEMBERSHIP,
    event_id: uuid.UUID | None = None,
    inviter_id: uuid.UUID | None = None,
    now: datetime | None = None,
) -> Preflight:
    """Validate, dedupe, and check every address against members and the invitations it
    already holds. `inviter_id` is the member to be credited: with invite-only N >= 2 an
    invitation from another member does not stop this one."""
    checked: list[tuple[InviteeInput, str | None, str]] = []
    for item in inputs:
        address, reason = check_address(item.email)
        checked.append((item, address, reason))
    keys = sorted({a.lower() for _, a, _ in checked if a})
    members = existing_members(session, organization_id, keys) if kind is InvitationKind.MEMBERSHIP else set()
    holds = invitation_holds(session, organization_id, keys, kind=kind, event_id=event_id, now=now)
    needed = sponsors_needed(session, organization_id) if inviter_id is not None else 0
    suppressed = suppression.suppressed_reasons(session, organization_id, keys)
    seen: dict[str, int] = {}
    rows: list[PreflightRow] = []
    for item, address, reason in checked:
        if address is None or item.problem:
            rows.append(PreflightRow(item.row, address or item.email.strip(), item.name,
                                     item.message, RowStatus.INVALID, item.problem or reason))
            continue
        key = address.lower()
        if key in seen:
            rows.append(PreflightRow(item.row, address, item.name, item.message,
                                     RowStatus.DUPLICATE, f"Same address as row {seen[key]}."))
            continue
        seen[key] = item.row
        if key in members:
            status, why = RowStatus.MEMBER, "This person is already a member."
        elif key in suppressed:
            status, why = RowStatus.SUPPRESSED, suppressed[key]
        else:
            status, why = hold_verdict(holds.get(key, ()), inviter_id=inviter_id, needed=needed,
                                       kind=kind)
        if status is RowStatus.READY and needs_smtputf8(address):
            status, why = RowStatus.NEEDS_SMTPUTF8, f"{SMTPUTF8_REASON} {why}".strip()
        rows.append(PreflightRow(item.row, address, item.name, item.message, status, why))
    if kind is InvitationKind.EVENT and event_id is not None:
        rows = _event_places(session, organization_id, event_id, rows, now or utcnow())
    return Preflight(tuple(rows))


def event_places_taken(session: Session, organization_id: uuid.UUID, event_id: uuid.UUID,
                       now: datetime) -> int:
    """Guests who hold a place at an event: registered guests, plus live guest invitations
    (queued, being sent, sent and not expired, or uncertain) whose invitee has not
    registered yet; an invitation that was accepted is counted once, as its guest."""
    registered = session.scalar(
        select(func.count()).select_from(EventGuest)
        .where(EventGuest.organization_id == organization_id, EventGuest.event_id == event_id)
    ) or 0
    invited = session.scalar(
        select(func.count()).select_from(Invitation)
        .where(Invitation.organization_id == organization_id,
               Invitation.event_id == event_id,
               Invitation.kind == InvitationKind.EVENT.value,
               Invitation.status.in_(sorted(_HOLD_STATES)),
               or_(Invitation.expires_at.is_(None), Invitation.expires_at > now),
               ~Invitation.email_normalized.in_(
                   select(EventGuest.email_normalized).where(EventGuest.event_id == event_id)))
    ) or 0
    return int(registered) + int(invited)


def _event_places(session: Session, organization_id: uuid.UUID, event_id: uuid.UUID,
                  rows: list[PreflightRow], now: datetime) -> list[PreflightRow]:
    """Refuse the sendable rows an event cannot take: all of them when it allows no guests,
    those beyond its free places (in row order) when it has a capacity."""
    event = session.get(Event, event_id)
    if event is None or event.organization_id != organization_id:
        return rows
    if not event.guests_allowed or event.archived:
        why = (f"The event \"{event.name}\" was archived: it takes no more guests."
               if event.archived else
               f"The event \"{event.name}\" does not allow guests to be invited; an admin can "
               "change that in Events.")
        return [replace(r, status=RowStatus.NO_GUESTS, reason=why) if r.status in SENDABLE
                else r for r in rows]
    if event.capacity is None:
        return rows
    taken = event_places_taken(session, organization_id, event_id, now)
    free = max(event.capacity - taken, 0)
    why = (f"The event \"{event.name}\" is full: {event.capacity} places, {taken} taken by "
           "guests invited or registered" + (f", and the first {free} ready rows of this list "
                                               "take the rest." if free else "."))
    out: list[PreflightRow] = []
    for r in rows:
        if r.status in SENDABLE:
            if free <= 0:
                r = replace(r, status=RowStatus.EVENT_FULL, reason=why)
            else:
                free -= 1
        out.append(r)
    return out


def run_preflight(
    uow: UnitOfWork,
    organization_id: uuid.UUID,
    inputs: Sequence[InviteeInput],
    *,
    kind: InvitationKind = InvitationKind.MEMBERSHIP,
    event_id: uuid.UUID | None = None,
    inviter_id: uuid.UUID | None = None,
) -> Preflight:
    """Pre-flight in one read. Pass the member to be credited (`inviter_id`) so that invite-only
    mode with N >= 2 can count them as one more sponsor."""
    with uow:
        return classify(uow.session, organization_id, inputs, kind=kind, event_id=event_id,
                        inviter_id=inviter_id)
