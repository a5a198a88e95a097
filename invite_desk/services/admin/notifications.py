"""Emails people expect, queued durably in the same transaction as what they announce.

- an applicant, when their application is approved or rejected (with HR's reason, if any);
- an inviter, when their invitee joins;
- a new operator, with their link to set a desktop password;
- an invitee who opened a link closed as a duplicate and asked for the current one: the live
  invitation's own email with a fresh link (invitations/current_link.py; always on).
Each kind but the last can be switched off in Settings (`notifications.*`). Rows in `outgoing_mail` go
queued -> sending -> sent / failed / uncertain, like invitations: a row is committed as
`sending` before its SMTP transaction, so a crash or a re-run never sends it twice (a row
left in `sending` by a run that died becomes `uncertain`, never resent automatically).

Templates: resources/email/notifications/<kind>.{subject,html,txt}.j2, rendered in Jinja's
SandboxedEnvironment with StrictUndefined; every value is data (escaped in the HTML part).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from typing import Any, Protocol

from jinja2 import FileSystemLoader, StrictUndefined, select_autoescape
from jinja2.sandbox import SandboxedEnvironment
from sqlalchemy import func, select, true, update
from sqlalchemy.orm import Session

from invite_desk.resources_path import resource_path
from invite_desk.services import settings as settings_service
from invite_desk.services.email.raw import build_raw_message
from invite_desk.services.email.templates import (
    DEFAULT_LOGO_CID,
    RenderedEmail,
    _nl2br,
    _quote_lines,
    _readable_text_on,
)
from invite_desk.services.invitations import current_link
from invite_desk.services.invitations.tokens import new_token
from invite_desk.services.mail_settings import MailSettings, load_mail_settings
from invite_desk.services.models import (
    Event,
    Invitation,
    Member,
    MemberStatus,
    Organization,
    OutgoingMail,
    SignInLink,
    utcnow,
)
from invite_desk.services.operator import Operator, refreshed
from invite_desk.services.permissions import Action, require
from invite_desk.services.settings_schema import PolicySettings
from invite_desk.services.smtp.transport import (
    PermanentFailure,
    RetryPolicy,
    SendResult,
    Sent,
    SmtpAuthError,
    SmtpConnectError,
    TemporaryFailure,
    Uncertain,
)
from invite_desk.services.uow import UnitOfWork


class NotificationKind(StrEnum):
    APPLICATION_APPROVED = "application_approved"
    APPLICATION_REJECTED = "application_rejected"
    INVITEE_JOINED = "invitee_joined"
    OPERATOR_SIGN_IN = "operator_sign_in"
    INVITATION_LINK = "invitation_link"  # asked for by the invitee: no switch


class MailState(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    UNCERTAIN = "uncertain"
    SKIPPED = "skipped"  # e.g. a sign-in link revoked or replaced before it was sent


# Which PolicySettings switch turns each kind off.
SWITCHES: dict[NotificationKind, str] = {
    NotificationKind.APPLICATION_APPROVED: "notify_application_decision",
    NotificationKind.APPLICATION_REJECTED: "notify_application_decision",
    NotificationKind.INVITEE_JOINED: "notify_invitee_joined",
    NotificationKind.OPERATOR_SIGN_IN: "notify_operator_sign_in",
}

# A row claimed longer ago than this by a run that never settled it is `uncertain`.
STALE_CLAIM = timedelta(minutes=10)
RETRY = RetryPolicy()


@dataclass(frozen=True)
class NotificationRun:
    sent: int
    failed: int
    uncertain: int
    remaining: int  # still queued (temporary failures waiting, or `limit` reached)


@dataclass(frozen=True)
class PendingCounts:
    queued: int
    failed: int
    uncertain: int


class Transport(Protocol):
    def send(self, message: bytes, to: str) -> SendResult: ...


def is_enabled(policy: PolicySettings, kind: NotificationKind) -> bool:
    return kind not in SWITCHES or bool(getattr(policy, SWITCHES[kind]))


def enqueue(
    session: Session,
    *,
    organization_id: uuid.UUID,
    kind: NotificationKind,
    to_email: str,
    to_name: str = "",
    context: Mapping[str, Any] | None = None,
    sign_in_link_id: uuid.UUID | None = None,
    policy: PolicySettings | None = None,
) -> OutgoingMail | None:
    """Queue one email in the caller's transaction (its commit makes both durable together).
    Returns None when the organization switched this kind off in Settings."""
    if policy is None:
        policy = settings_service.load(session, organization_id)
    if not is_enabled(policy, kind):
        return None
    row = OutgoingMail(
        organization_id=organization_id, kind=kind.value, to_email=to_email,
        to_name=to_name[:200], context_json=json.dumps(dict(context or {}), sort_keys=True),
        sign_in_link_id=sign_in_link_id, status=MailState.QUEUED.value, attempts=0,
        last_error="",
    )
    session.add(row)
    session.flush()
    return row


def notify_inviters(session: Session, *, organization_id: uuid.UUID, referee_id: uuid.UUID,
                    credits: list[tuple[uuid.UUID, uuid.UUID | None]]) -> int:
    """Tell each credited inviter (referrer id, invitation id) that their invitee joined;
    called where a referral becomes completed (registration without adhesion, or approval).
    Returns how many emails were queued."""
    policy = settings_service.load(session, organization_id)
    if not is_enabled(policy, NotificationKind.INVITEE_JOINED):
        return 0
    referee = session.get(Member, referee_id)
    if referee is None:
        return 0
    queued = 0
    for referrer_id, invitation_id in credits:
        referrer = session.get(Member, referrer_id)
        if referrer is None or referrer.status != MemberStatus.ACTIVE.value:
            continue
        event_name = ""
        invitation = session.get(Invitation, invitation_id) if invitation_id else None
        if invitation is not None and invitation.event_id is not None:
            event = session.get(Event, invitation.event_id)
            event_name = event.name if event is not None else ""
        enqueue(session, organization_id=organization_id, kind=NotificationKind.INVITEE_JOINED,
                to_email=referrer.email, to_name=referrer.display_name,
                context={"invitee_name": referee.display_name, "event_name": event_name},
                policy=policy)
        queued += 1
    return queued


def notify_application_decision(session: Session, member: Member, *, approved: bool,
                                reason: str = "", unit_name: str = "") -> OutgoingMail | None:
    """Tell an applicant their application was approved or rejected (with HR's reason)."""
    kind = (NotificationKind.APPLICATION_APPROVED if approved
            else NotificationKind.APPLICATION_REJECTED)
    return enqueue(session, organization_id=member.organization_id, kind=kind,
                   to_email=member.email, to_name=member.display_name,
                   context={"reason": reason, "unit_name": unit_name})


# -- rendering -------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _environment() -> SandboxedEnvironment:
    env = SandboxedEnvironment(
        loader=FileSystemLoader(str(resource_path("email", "notifications"))),
        autoescape=select_autoescape(enabled_extensions=("html", "html.j2"), default=False),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["nl2br"] = _nl2br
    env.filters["quote_lines"] = _quote_lines
    return env


def render_notification(kind: NotificationKind, org: Organization, to_email: str, to_name: str,
                        context: Mapping[str, Any]) -> RenderedEmail:
    """The three parts of one notification, branded with the organization's name, colour and
    logo. Every value is data: escaped in the HTML part, never template source."""
    env = _environment()
    variables: dict[str, Any] = {
        "organization_name": org.name,
        "organization_description": org.description,
        "accent_color": org.accent_color,
        "accent_text_color": _readable_text_on(org.accent_color),
        "has_logo": org.logo is not None,
        "logo_cid": DEFAULT_LOGO_CID,
        "recipient_name": to_name,
        "recipient_email": to_email,
        # Defaults every template may rely on.
        "reason": "", "unit_name": "", "invitee_name": "", "event_name": "",
        "admin_name": "", "role_label": "", "sign_in_link": "", "expires_at": "",
    }
    variables.update(context)
    subject = env.get_template(f"{kind.value}.subject.j2").render(variables)
    return RenderedEmail(
        subject=" ".join(subject.split()),
        html=env.get_template(f"{kind.value}.html.j2").render(variables),
        text=env.get_template(f"{kind.value}.txt.j2").render(variables),
    )


def set_password_link(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/set-password/{token}"


# -- delivery --------------------------------------------------------------------------------


def _mark_stale_uncertain(uow: UnitOfWork, now: datetime) -> None:
    with uow:
        uow.session.execute(
            update(OutgoingMail)
            .where(OutgoingMail.status == MailState.SENDING.value,
                   OutgoingMail.claimed_at < now - STALE_CLAIM)
            .values(status=MailState.UNCERTAIN.value,
                    last_error="The run sending this email stopped before it knew whether the "
                               "server accepted it; not resent automatically.",
                    version=OutgoingMail.version + 1, updated_at=now)
        )
        uow.commit()


def _claim(uow: UnitOfWork, now: datetime,
           skip: set[uuid.UUID]) -> tuple[uuid.UUID, bytes, str] | None | bool:
    """Claim the next due row: commit it as `sending` with its Message-ID (and, for a sign-in
    link, the hash of a freshly minted token) before any byte goes to the server.
    Returns (id, message, recipient), None when nothing is due, False when the row it looked
    at was settled without sending (skipped, failed to render, or claimed by another run)."""
    with uow:
        session = uow.session
        row = session.scalar(
            select(OutgoingMail)
            .where(OutgoingMail.status == MailState.QUEUED.value,
                   (OutgoingMail.next_attempt_at.is_(None)) | (OutgoingMail.next_attempt_at <= now),
                   OutgoingMail.id.not_in(skip) if skip else true())
            .order_by(OutgoingMail.created_at, OutgoingMail.id)
            .limit(1)
        )
        if row is None:
            return None
        claimed = session.execute(
            update(OutgoingMail)
            .where(OutgoingMail.id == row.id, OutgoingMail.status == MailState.QUEUED.value,
                   OutgoingMail.version == row.version)
            .values(status=MailState.SENDING.value, claimed_at=now,
                    version=OutgoingMail.version + 1, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            uow.rollback()
            return False
        kind = NotificationKind(row.kind)
        context: dict[str, Any] = json.loads(row.context_json or "{}")
        org = session.get(Organization, row.organization_id)
        mail = load_mail_settings(session, row.organization_id)
        reason = ""
        if org is None or not mail.configured:
            reason = ("The organization's outgoing email (Settings › Email) is not set up."
                      if org is not None else "The organization no longer exists.")
        if not reason and row.sign_in_link_id is not None:
            link = session.get(SignInLink, row.sign_in_link_id)
            if link is None or link.revoked_at is not None or link.used_at is not None \
                    or link.expires_at <= now:
                _settle_row(session, row.id, MailState.SKIPPED, now,
                            "The sign-in link was revoked, used or replaced before it was sent.")
                uow.commit()
                return False
            if not org or not org.registration_base_url.strip():
                reason = ("Set the organization's registration web address (Settings › "
                          "Organization): the sign-in link points there.")
            else:
                token, token_hash = new_token()
                link.token_hash = token_hash
                context["sign_in_link"] = set_password_link(org.registration_base_url, token)
                context["expires_at"] = link.expires_at.strftime("%d %B %Y, %H:%M UTC")
        if reason:
            _settle_row(session, row.id, MailState.FAILED, now, reason)
            uow.commit()
            return False
        assert org is not None
        if kind is NotificationKind.INVITATION_LINK:
            return _claim_invitation_link(uow, row, context, org, mail, now)
        try:
            rendered = render_notification(kind, org, row.to_email, row.to_name, context)
            message, message_id = build_raw_message(
                rendered, from_address=mail.from_address, from_name=mail.from_name or org.name,
                to_address=row.to_email, to_name=row.to_name,
                message_id_domain=mail.from_address.rpartition("@")[2] or "invite-desk.invalid",
                logo=org.logo, logo_mime=org.logo_mime,
            )
        except Exception as exc:  # a template or address that cannot be used: keep why
            _settle_row(session, row.id, MailState.FAILED, now,
                        f"Could not prepare the email: {exc}")
            uow.commit()
            return False
        session.execute(
            update(OutgoingMail).where(OutgoingMail.id == row.id)
            .values(message_id=message_id, attempts=OutgoingMail.attempts + 1)
            .execution_options(synchronize_session=False)
        )
        row_id, to_email = row.id, row.to_email
        uow.commit()
        return row_id, message, to_email


def _claim_invitation_link(uow: UnitOfWork, row: OutgoingMail, context: dict[str, Any],
                           org: Organization, mail: MailSettings, now: datetime
                           ) -> tuple[uuid.UUID, bytes, str] | bool:
    """The live invitation's own email with a fresh link, claimed with the new link's hash."""
    session = uow.session
    prepared = current_link.prepare(session, row.organization_id, row.to_email, context, org,
                                    mail, now)
    if isinstance(prepared, current_link.NotSent):
        _settle_row(session, row.id,
                    MailState.SKIPPED if prepared.skipped else MailState.FAILED, now,
                    prepared.reason)
        uow.commit()
        return False
    session.execute(
        update(OutgoingMail).where(OutgoingMail.id == row.id)
        .values(message_id=prepared.message_id, attempts=OutgoingMail.attempts + 1,
                context_json=json.dumps(prepared.context, sort_keys=True))
        .execution_options(synchronize_session=False)
    )
    row_id, to_email = row.id, row.to_email
    uow.commit()
    return row_id, prepared.message, to_email


def _release_link(session: Session, row_id: uuid.UUID) -> None:
    """An invitation link email that did not go out gives the invitee's old link back."""
    found = session.execute(select(OutgoingMail.kind, OutgoingMail.context_json)
                            .where(OutgoingMail.id == row_id)).first()
    if found is not None and found.kind == NotificationKind.INVITATION_LINK.value:
        current_link.release(session, json.loads(found.context_json or "{}"))


def _settle_row(session: Session, row_id: uuid.UUID, state: MailState, now: datetime,
                error: str = "", **values: Any) -> None:
    if state is MailState.SENT:
        values["sent_at"] = now
    elif state in (MailState.QUEUED, MailState.FAILED):
        _release_link(session, row_id)
    session.execute(
        update(OutgoingMail).where(OutgoingMail.id == row_id)
        .values(status=state.value, last_error=error[:2000], updated_at=now,
                version=OutgoingMail.version + 1, **values)
        .execution_options(synchronize_session=False)
    )


def _settle(uow: UnitOfWork, row_id: uuid.UUID, result: SendResult, now: datetime) -> MailState:
    with uow:
        session = uow.session
        if isinstance(result, Sent):
            state = MailState.SENT
            _settle_row(session, row_id, state, now)
        elif isinstance(result, TemporaryFailure):
            attempts = session.scalar(select(OutgoingMail.attempts)
                                      .where(OutgoingMail.id == row_id)) or 1
            error = f"{result.code or ''} {result.reply}".strip()
            if RETRY.should_retry(attempts):
                state = MailState.QUEUED
                _settle_row(session, row_id, state, now, error,
                            next_attempt_at=now + timedelta(seconds=RETRY.delay_for(attempts)))
            else:
                state = MailState.FAILED
                _settle_row(session, row_id, state, now, error)
        elif isinstance(result, PermanentFailure):
            state = MailState.FAILED
            _settle_row(session, row_id, state, now, f"{result.code or ''} {result.reply}".strip())
        elif isinstance(result, Uncertain):
            state = MailState.UNCERTAIN
            _settle_row(session, row_id, state, now, result.reason)
        else:  # pragma: no cover - SendResult is closed
            raise TypeError(f"unexpected send result {result!r}")
        uow.commit()
        return state


def send_pending_notifications(uow: UnitOfWork, transport: Transport, *,
                               limit: int | None = None,
                               now: datetime | None = None) -> NotificationRun:
    """Deliver queued notification emails over `transport` (an SmtpTransport, or anything
    with `send(message_bytes, to) -> SendResult`). Called by the desktop Outbox after a run
    and by `invite-desk notify` / the end of `invite-desk send`. Safe to run in two processes
    at once: a row is claimed by a conditional update, so only one of them sends it."""
    def clock() -> datetime:
        return now if now is not None else utcnow()

    _mark_stale_uncertain(uow, clock())
    counts = {MailState.SENT: 0, MailState.FAILED: 0, MailState.UNCERTAIN: 0}
    attempted = 0
    skip: set[uuid.UUID] = set()
    while limit is None or attempted < limit:
        claimed = _claim(uow, clock(), skip)
        if claimed is None:
            break
        if claimed is False:
            continue
        assert not isinstance(claimed, bool)
        row_id, message, to = claimed
        attempted += 1
        try:
            result = transport.send(message, to)
        except (SmtpConnectError, SmtpAuthError):
            # Nothing reached the server: the row waits for the next run, as it was.
            with uow:
                _release_link(uow.session, row_id)
                uow.session.execute(
                    update(OutgoingMail).where(OutgoingMail.id == row_id)
                    .values(status=MailState.QUEUED.value, attempts=OutgoingMail.attempts - 1,
                            version=OutgoingMail.version + 1, updated_at=clock())
                    .execution_options(synchronize_session=False))
                uow.commit()
            raise
        except Exception as exc:  # the connection is gone: the row may or may not be sent
            _settle(uow, row_id, Uncertain(f"The connection failed while sending: {exc}"),
                    clock())
            counts[MailState.UNCERTAIN] += 1
            raise
        state = _settle(uow, row_id, result, clock())
        if state is MailState.QUEUED:
            skip.add(row_id)  # retried by a later run, after its delay
        elif state in counts:
            counts[state] += 1
    with uow:
        remaining = uow.session.scalar(
            select(func.count()).select_from(OutgoingMail)
            .where(OutgoingMail.status == MailState.QUEUED.value)) or 0
    return NotificationRun(sent=counts[MailState.SENT], failed=counts[MailState.FAILED],
                           uncertain=counts[MailState.UNCERTAIN], remaining=remaining)


def has_pending(uow: UnitOfWork) -> bool:
    """Whether any notification email is due (the CLI skips connecting to SMTP otherwise)."""
    now = utcnow()
    with uow:
        return uow.session.scalar(
            select(OutgoingMail.id)
            .where(OutgoingMail.status == MailState.QUEUED.value,
                   (OutgoingMail.next_attempt_at.is_(None)) | (OutgoingMail.next_attempt_at <= now))
            .limit(1)) is not None


def pending_counts(uow: UnitOfWork, operator: Operator) -> PendingCounts:
    """How many notification emails wait, failed or are uncertain (HR_LOCAL and above)."""
    with uow:
        operator = refreshed(uow.session, operator)
        require(operator, Action.VIEW_PEOPLE)
        rows = dict(uow.session.execute(
            select(OutgoingMail.status, func.count())
            .where(OutgoingMail.organization_id == operator.organization_id)
            .group_by(OutgoingMail.status)).all())
        return PendingCounts(queued=rows.get(MailState.QUEUED.value, 0),
                             failed=rows.get(MailState.FAILED.value, 0),
                             uncertain=rows.get(MailState.UNCERTAIN.value, 0))
