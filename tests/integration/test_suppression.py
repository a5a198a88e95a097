"""The suppression list and the one-click opt-out (RFC 8058) through the real portal.

Every path that sends refuses a suppressed address with the reason: pre-flight (compose and
the CLI), resend, and the outbox for invitations queued before the address was suppressed.
An admin sees why and can undo it (audited)."""

from __future__ import annotations

import re
import urllib.request
import uuid

import pytest
from sqlalchemy import Engine, select

from invite_desk.services import suppression
from invite_desk.services.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from invite_desk.services.invitations.importing import parse_pasted
from invite_desk.services.invitations.preflight import RowStatus, run_preflight
from invite_desk.services.models import (
    AuditLog,
    Invitation,
    InvitationStatus,
    SuppressionReason,
)
from invite_desk.services.operator import Operator
from invite_desk.services.roles import Role
from invite_desk.services.tracking.actions import resend_invitations, revoke_invitations
from invite_desk.services.tracking.query import InvitationQuery
from invite_desk.services.tracking.read import count_tabs
from invite_desk.services.tracking.status import Tab
from invite_desk.services.uow import UnitOfWork
from tests.conftest import MakeOperator
from tests.integration.test_sending import configure, queue, sender
from tests.portal_client import HttpClient, portal_app, running_portal, send_invitation
from tests.smtp_server import LoopbackSmtpServer

_UNSUBSCRIBE_LINE = re.compile(rb"^List-Unsubscribe: <([^>\r\n]+)>\r$", re.MULTILINE)


def _status(uow: UnitOfWork, address: str) -> Invitation:
    with uow:
        row = uow.session.scalars(select(Invitation).where(Invitation.email == address)
                                  .order_by(Invitation.created_at.desc())).first()
        assert row is not None
        uow.session.expunge(row)
        return row


def _one_click(url: str, body: bytes = b"List-Unsubscribe=One-Click",
               content_type: str = "application/x-www-form-urlencoded") -> int:
    """A mail provider's RFC 8058 POST: no cookies, no CSRF token, nothing but the body."""
    request = urllib.request.Request(url, data=body, method="POST")
    request.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        with error:
            return int(error.code)


def test_one_click_opt_out_through_the_portal_reaches_no_one_again(
    engine: Engine, uow: UnitOfWork, admin: Operator, smtp_server: LoopbackSmtpServer,
) -> None:
    app = portal_app(engine, uow)
    with running_portal(app) as portal_url:
        send_invitation(uow, admin, smtp_server, portal_url, "Zoë <zoe@example.org>", "Hi")
        raw = smtp_server.messages[-1].raw
        # Each header on one unfolded line, the URL on the portal, the POST header beside it.
        found = _UNSUBSCRIBE_LINE.search(raw)
        assert found, raw[:2000]
        link = found.group(1).decode("ascii")
        assert link.startswith(f"{portal_url}/unsubscribe/")
        assert re.search(rb"^List-Unsubscribe-Post: List-Unsubscribe=One-Click\r$", raw,
                         re.MULTILINE)
        assert _status(uow, "zoe@example.org").unsubscribe_token_hash is not None

        # Opening the link (a person, or a mail scanner) changes nothing: a page with a button.
        page = HttpClient().get(link)
        assert page.status == 200
        assert 'name="List-Unsubscribe" value="One-Click"' in page.text
        assert "z…@example.org" in page.text and "zoe@example.org" not in page.text
        assert suppression.list_suppressions(uow, admin) == ()
        check = run_preflight(uow, admin.organization_id, parse_pasted("zoe@example.org").rows)
        assert check.rows[0].status is not RowStatus.SUPPRESSED

        # Revoked (the unsubscribe link keeps working), then invited again and queued before
        # the opt-out.
        revoke_invitations(uow, admin, [_status(uow, "zoe@example.org").id])
        queue(uow, admin, "zoe@example.org")
        assert _status(uow, "zoe@example.org").status == InvitationStatus.QUEUED

        # The provider's one-click POST: no session, no CSRF token (RFC 8058 §3.2).
        assert _one_click(link) == 200
        assert _one_click(link, b'--b\r\nContent-Disposition: form-data; name="List-'
                          b'Unsubscribe"\r\n\r\nOne-Click\r\n--b--\r\n',
                          "multipart/form-data; boundary=b") == 200  # the other encoding
        done = HttpClient().get(link)
        assert done.status == 200 and "unsubscribed" in done.text

    check = run_preflight(uow, admin.organization_id, parse_pasted("ZOE@example.org").rows)
    assert check.rows[0].status is RowStatus.SUPPRESSED
    assert "unsubscribed" in check.rows[0].reason
    entries = suppression.list_suppressions(uow, admin)
    assert [(e.address, e.reason) for e in entries] == [
        ("zoe@example.org", SuppressionReason.UNSUBSCRIBED.value)]  # one row for two POSTs

    # The invitation queued earlier is held by the outbox: nothing reaches the address.
    before = len(smtp_server.messages)
    report = sender(uow, admin, smtp_server).run()
    assert report.sent == 0 and len(smtp_server.messages) == before
    held = _status(uow, "zoe@example.org")
    assert held.status == InvitationStatus.SUPPRESSED
    assert "unsubscribed" in held.last_error


def test_the_portal_refuses_a_post_without_the_one_click_body_and_unknown_tokens(
    engine: Engine, uow: UnitOfWork, admin: Operator,
) -> None:
    app = portal_app(engine, uow, bad_token_limit=3)
    with running_portal(app) as portal_url:
        url = f"{portal_url}/unsubscribe/{'x' * 43}"
        assert _one_click(url, b"something=else") == 400
        statuses = [_one_click(url) for _ in range(4)]
        assert statuses[:3] == [404, 404, 404] and statuses[3] == 429  # rate-limited
    assert suppression.list_suppressions(uow, admin) == ()


def test_the_unsubscribe_token_is_stable_and_its_link_is_never_logged(
    engine: Engine, uow: UnitOfWork, admin: Operator, smtp_server: LoopbackSmtpServer,
) -> None:
    from invite_desk.portal.request_log import redact

    key = suppression.unsubscribe_key(uow)
    invitation_id = uuid.uuid4()
    token = suppression.unsubscribe_token(key, invitation_id)
    assert token == suppression.unsubscribe_token(suppression.unsubscribe_key(uow), invitation_id)
    assert token != suppression.unsubscribe_token(key, uuid.uuid4()) and len(token) >= 43
    assert token not in redact(f"/unsubscribe/{token}")


def test_outbox_holds_invitations_to_addresses_suppressed_after_queueing(
    uow: UnitOfWork, admin: Operator, smtp_server: LoopbackSmtpServer,
) -> None:
    configure(uow, admin, smtp_server)
    queue(uow, admin, "keep@example.org\nblock@example.org\nalso-blocked@example.org")
    suppression.add_suppression(uow, admin, "Block@Example.org", "asked by phone")
    suppression.add_suppression(uow, admin, "also-blocked@example.org")
    report = sender(uow, admin, smtp_server).run()
    assert report.sent == 1
    assert [m.rcpt_tos for m in smtp_server.messages] == [("keep@example.org",)]
    assert _status(uow, "block@example.org").status == InvitationStatus.SUPPRESSED
    assert "asked by phone" in _status(uow, "block@example.org").last_error
    counts = count_tabs(uow, admin, InvitationQuery())
    assert counts[Tab.SUPPRESSED] == 2 and counts[Tab.PENDING] == 1


def test_resend_skips_suppressed_addresses_with_the_reason(
    uow: UnitOfWork, admin: Operator, smtp_server: LoopbackSmtpServer,
) -> None:
    configure(uow, admin, smtp_server)
    queue(uow, admin, "gone@example.org\nfine@example.org")
    sender(uow, admin, smtp_server).run()
    suppression.add_suppression(uow, admin, "gone@example.org", "mailbox closed")
    ids = [_status(uow, "gone@example.org").id, _status(uow, "fine@example.org").id]
    result = resend_invitations(uow, admin, ids)
    assert result.done == (ids[1],)
    assert [(s.email, "mailbox closed" in s.reason) for s in result.skipped] == [
        ("gone@example.org", True)]


def test_admin_sees_why_and_undoes_it_audited(
    uow: UnitOfWork, admin: Operator, make_operator: MakeOperator,
) -> None:
    entry = suppression.add_suppression(uow, admin, "ann@example.org", "typo in the domain")
    assert entry.reason_label == "Added by an admin" and "typo in the domain" in entry.why
    with pytest.raises(Conflict):
        suppression.add_suppression(uow, admin, "ANN@example.org")
    with pytest.raises(ValidationFailed):
        suppression.add_suppression(uow, admin, "not an address")

    hr = make_operator(Role.HR_TENANT)
    assert [e.address for e in suppression.list_suppressions(uow, hr)] == ["ann@example.org"]
    with pytest.raises(PermissionDenied):
        suppression.undo_suppression(uow, hr, entry.id)
    with pytest.raises(PermissionDenied):
        suppression.list_suppressions(uow, make_operator(Role.USER))

    undone = suppression.undo_suppression(uow, admin, entry.id)
    assert undone.undone_at is not None and undone.undone_by == admin.name
    with pytest.raises(Conflict):
        suppression.undo_suppression(uow, admin, entry.id)
    assert suppression.list_suppressions(uow, admin) == ()
    assert len(suppression.list_suppressions(uow, admin, include_undone=True)) == 1
    check = run_preflight(uow, admin.organization_id, parse_pasted("ann@example.org").rows)
    assert check.rows[0].status is RowStatus.READY
    # Suppressed again later: a new row; undo by address.
    suppression.add_suppression(uow, admin, "ann@example.org")
    suppression.undo_address(uow, admin, "Ann@Example.org")
    with pytest.raises(NotFound):
        suppression.undo_address(uow, admin, "ann@example.org")
    with uow:
        actions = [a.action for a in uow.session.scalars(
            select(AuditLog).where(AuditLog.entity_type == "suppression")
            .order_by(AuditLog.at))]
    assert actions == ["suppression.added", "suppression.undone",
                       "suppression.added", "suppression.undone"]


def test_search_lists_by_address_prefix(uow: UnitOfWork, admin: Operator) -> None:
    for address in ("amy@example.org", "bob@example.org", "amos@example.org"):
        suppression.add_suppression(uow, admin, address)
    found = suppression.list_suppressions(uow, admin, search=" AM ")
    assert sorted(e.address for e in found) == ["amos@example.org", "amy@example.org"]
    assert suppression.list_suppressions(uow, admin, search="%") == ()
