"""The suppression list, bounce recording and reminders' claims on every backend (SQLite,
PostgreSQL, MariaDB): byte-exact addresses, the processed-bounce key, the version check."""

from __future__ import annotations

from sqlalchemy import func, select, update

from invite_desk.services import auth, suppression
from invite_desk.services.bounces.processing import process_bounce
from invite_desk.services.invitations.importing import parse_pasted
from invite_desk.services.invitations.preflight import RowStatus, run_preflight
from invite_desk.services.invitations.queueing import queue_invitations
from invite_desk.services.models import Invitation, InvitationStatus, ProcessedBounce, utcnow
from invite_desk.services.uow import UnitOfWork
from tests.imap_fixtures import corpus_message

SETUP = dict(organization_name="Harbour Rowing Club", description="", admin_email="ada@example.org",
             admin_first_name="Ada", admin_last_name="Admin", password="correct horse battery",
             registration_base_url="https://join.example.org")


def test_suppression_and_bounces_on_every_backend(any_uow: UnitOfWork) -> None:
    uow = any_uow
    admin = auth.setup_organization(uow, **SETUP)  # type: ignore[arg-type]
    pre = run_preflight(uow, admin.organization_id,
                        parse_pasted("zoe@example.org\nzoë@example.org").rows)
    queue_invitations(uow, admin, pre.ready, source="paste")
    with uow:  # as if sent
        uow.session.execute(update(Invitation).values(
            status=InvitationStatus.SENT.value, sent_at=utcnow()))
        uow.commit()
        ids = {r.email: r.id for r in uow.session.scalars(select(Invitation))}

    raw = corpus_message("postfix_5.1.1.eml", recipient="zoe@example.org",
                         invitation_id=ids["zoe@example.org"])
    first = process_bounce(uow, admin.organization_id, raw)
    again = process_bounce(uow, admin.organization_id, raw)
    assert first.suppressed and not first.already_processed
    assert again.already_processed and not again.suppressed
    with uow:
        assert uow.session.scalar(select(func.count()).select_from(ProcessedBounce)) == 1
        statuses = {r.email: r.status for r in uow.session.scalars(select(Invitation))}
    assert statuses == {"zoe@example.org": "bounced", "zoë@example.org": "sent"}

    # 'zoe' and 'zoë' are different addresses on every backend (MariaDB's default collation
    # would fold them together).
    check = run_preflight(uow, admin.organization_id,
                          parse_pasted("ZOE@example.org\nzoë@example.org\nnew@example.org").rows)
    assert [r.status for r in check.rows] == [RowStatus.SUPPRESSED, RowStatus.PENDING,
                                              RowStatus.READY]
    entries = suppression.list_suppressions(uow, admin)
    assert [(e.address, e.reason) for e in entries] == [("zoe@example.org", "hard_bounce")]
    suppression.undo_suppression(uow, admin, entries[0].id)
    assert suppression.list_suppressions(uow, admin) == ()
