"""A link closed as a duplicate, as the sync push leaves it (services/sync/push.py
`_close_if_duplicate`: revoked, the reason in last_error, an `invitation.closed_duplicate`
audit row), for the portal and service tests of registration/replaced.py."""

from __future__ import annotations

import threading

from sqlalchemy import Engine, func, select

from invite_desk.services import audit
from invite_desk.services.admin.notifications import NotificationKind
from invite_desk.services.models import (
    AuditLog,
    Invitation,
    InvitationKind,
    InvitationStatus,
    OutgoingMail,
    utcnow,
)
from invite_desk.services.operator import Operator
from invite_desk.services.registration.replaced import RequestState, request_current_link
from invite_desk.services.uow import UnitOfWork
from tests.registration_fixtures import Sent, invite


def close_as_duplicate(uow: UnitOfWork, operator: Operator, email: str, *,
                       kind: InvitationKind = InvitationKind.MEMBERSHIP,
                       event_id: object = None) -> Sent:
    """An invitation to `email` whose email went out (its link is `.token`) and that a push
    then closed as a duplicate of another one to the same address."""
    sent = invite(uow, operator, email, kind=kind, event_id=event_id)  # type: ignore[arg-type]
    text = ("Closed as a duplicate when it reached the server: another invitation to this "
            "address reached the server first; that one is the valid one.")
    with uow:
        row = uow.session.get(Invitation, sent.id)
        assert row is not None
        before = row.status
        row.status = InvitationStatus.REVOKED.value
        row.revoked_at = utcnow()
        row.last_error = text
        audit.record(uow.session, organization_id=row.organization_id,
                     actor_id=operator.member_id, action="invitation.closed_duplicate",
                     entity_type="invitation", entity_id=row.id, before={"status": before},
                     after={"status": InvitationStatus.REVOKED.value, "reason": text})
        uow.commit()
    return sent


def link_emails(uow: UnitOfWork) -> list[OutgoingMail]:
    """The queued "current link" emails, oldest first."""
    with uow:
        rows = list(uow.session.scalars(
            select(OutgoingMail).where(OutgoingMail.kind == NotificationKind.INVITATION_LINK.value)
            .order_by(OutgoingMail.created_at)))
        for row in rows:
            uow.session.expunge(row)
        return rows


def requests_audited(uow: UnitOfWork) -> int:
    with uow:
        return int(uow.session.scalar(
            select(func.count()).select_from(AuditLog)
            .where(AuditLog.action == "invitation.current_link_requested")) or 0)


def ask_at_once(engine: Engine, operator: Operator, token: str, times: int = 4
                ) -> list[RequestState]:
    """`times` visitors press "Email me the current link" for `token` at the same moment."""
    start = threading.Barrier(times)
    states: list[RequestState] = []

    def ask() -> None:
        start.wait()
        states.append(request_current_link(UnitOfWork(engine), token,
                                           operator.organization_id).state)

    threads = [threading.Thread(target=ask) for _ in range(times)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return sorted(states)
