"""Helpers for the registration, portal and adhesion tests: invitations in any state with a
known token, policy changes, and what the database says afterwards."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from invite_desk.services import mail_settings, organization
from invite_desk.services import settings as settings_service
from invite_desk.services.auth import normalize_email
from invite_desk.services.invitations.tokens import new_token
from invite_desk.services.models import (
    Event,
    Invitation,
    InvitationKind,
    InvitationStatus,
    Member,
    Referral,
    utcnow,
)
from invite_desk.services.operator import Operator
from invite_desk.services.registration.form import RegistrationForm
from invite_desk.services.uow import UnitOfWork
from tests.smtp_server import LoopbackSmtpServer

PASSWORD = "a long enough password"


@dataclass(frozen=True)
class Sent:
    """An invitation the test made, and the token its email would carry."""

    id: uuid.UUID
    token: str
    email: str


def invite(
    uow: UnitOfWork,
    inviter: Operator,
    email: str,
    *,
    status: InvitationStatus = InvitationStatus.SENT,
    expires_at: datetime | None = None,
    name: str = "",
    message: str = "",
    kind: InvitationKind = InvitationKind.MEMBERSHIP,
    event_id: uuid.UUID | None = None,
    unit_id: uuid.UUID | None = None,
) -> Sent:
    """An invitation from `inviter` as the sender leaves it: token hash, expiry, status."""
    token, token_hash = new_token()
    now = utcnow()
    with uow:
        row = Invitation(
            organization_id=inviter.organization_id,
            email=email,
            email_normalized=normalize_email(email),
            name=name,
            kind=kind.value,
            event_id=event_id,
            inviter_id=inviter.member_id,
            sender_id=inviter.member_id,
            unit_id=unit_id if unit_id is not None else inviter.unit_id,
            personal_message=message,
            status=status.value,
            token_hash=token_hash,
            expires_at=expires_at if expires_at is not None else now + timedelta(days=14),
            queued_at=now,
            sent_at=now,
            attempts=1,
        )
        uow.session.add(row)
        uow.commit()
        return Sent(row.id, token, email)


def set_policy(uow: UnitOfWork, admin: Operator, **changes: Any) -> None:
    settings_service.update_settings(uow, admin, changes)


def make_event(uow: UnitOfWork, admin: Operator, name: str = "Summer Regatta") -> uuid.UUID:
    with uow:
        event = Event(organization_id=admin.organization_id, name=name, location="Harbour",
                      starts_at=utcnow() + timedelta(days=30))
        uow.session.add(event)
        uow.commit()
        return event.id


def form(first: str = "Zoë", last: str = "Martin", *, password: str = PASSWORD,
         confirmation: str | None = None, email: str = "") -> RegistrationForm:
    return RegistrationForm(
        first_name=first, last_name=last, password=password,
        password_confirmation=password if confirmation is None else confirmation, email=email,
    )


def invitation(uow: UnitOfWork, invitation_id: uuid.UUID) -> Invitation:
    with uow:
        row = uow.session.get(Invitation, invitation_id)
        assert row is not None
        uow.session.expunge(row)
        return row


def member_by_email(uow: UnitOfWork, email: str) -> Member | None:
    with uow:
        row = uow.session.scalar(select(Member).where(Member.email_normalized == email.lower()))
        if row is not None:
            uow.session.expunge(row)
        return row


def members_with_email(uow: UnitOfWork, email: str) -> int:
    with uow:
        return len(uow.session.scalars(
            select(Member.id).where(Member.email_normalized == email.lower())).all())


def referral_rows(uow: UnitOfWork, referee_id: uuid.UUID) -> list[Referral]:
    with uow:
        rows = list(uow.session.scalars(
            select(Referral).where(Referral.referee_id == referee_id).order_by(Referral.referred_at)))
        for row in rows:
            uow.session.expunge(row)
        return rows


PORTAL_BASE = "https://join.rowing.example"


def enable_confirmation_email(uow: UnitOfWork, admin: Operator, smtp: LoopbackSmtpServer,
                              base_url: str = PORTAL_BASE) -> None:
    """What public registration needs: the organization's SMTP server (the loopback one) and
    the portal's web address, used in the confirmation links."""
    organization.update_organization(uow, admin, {"registration_base_url": base_url})
    mail_settings.update_mail_settings(uow, admin, {
        "host": smtp.host, "port": smtp.port, "security": "none",
        "from_address": "office@rowing.example", "from_name": "Harbour Rowing Club",
        "rate_per_minute": 0})


def mail_text(smtp: LoopbackSmtpServer, to: str) -> str:
    """The plain text of the last email `smtp` received for `to`."""
    for received in reversed(smtp.messages):
        if to.lower() in str(received.message["To"]).lower():
            body = received.message.get_body(("plain",))
            assert body is not None
            return str(body.get_content())
    raise AssertionError(f"no email to {to}")


def confirmation_token(smtp: LoopbackSmtpServer, to: str) -> str:
    found = re.search(r"/confirm/([A-Za-z0-9_-]+)", mail_text(smtp, to))
    assert found, mail_text(smtp, to)
    return found.group(1)
