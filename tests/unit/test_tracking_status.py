"""The effective-status rule and the other pure parts of tracking (no database, no Qt)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from invite_desk.services.models import InvitationStatus as S
from invite_desk.services.tracking import ActionResult, RowAction, Skipped, why_not
from invite_desk.services.tracking.export import csv_fields
from invite_desk.services.tracking.history import describe
from invite_desk.services.tracking.read import InvitationRow, batch_label, case_variants, name_pairs
from invite_desk.services.tracking.status import (
    Tab,
    effective_status,
    is_overdue,
    link_is_live,
    tab_of,
)

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
BEFORE, AFTER = NOW - timedelta(seconds=1), NOW + timedelta(seconds=1)


@pytest.mark.parametrize(("status", "expires", "expected"), [
    (S.SENT, AFTER, S.SENT),
    (S.SENT, NOW, S.EXPIRED),  # the very moment it passes
    (S.SENT, BEFORE, S.EXPIRED),
    (S.SENT, None, S.SENT),
    (S.UNCERTAIN, BEFORE, S.UNCERTAIN),  # only sent invitations expire
    (S.QUEUED, BEFORE, S.QUEUED),
    (S.ACCEPTED, BEFORE, S.ACCEPTED),
    (S.EXPIRED, AFTER, S.EXPIRED),
])
def test_a_sent_invitation_is_expired_the_moment_its_expiry_passes(
    status: S, expires: datetime | None, expected: S
) -> None:
    assert effective_status(status.value, expires, NOW) is expected
    assert is_overdue(status.value, expires, NOW) == (status is S.SENT and expected is S.EXPIRED)


@pytest.mark.parametrize(("status", "expires", "live"), [
    (S.SENT, AFTER, True), (S.SENT, NOW, False), (S.UNCERTAIN, AFTER, True),
    (S.UNCERTAIN, BEFORE, False), (S.ACCEPTED, AFTER, False), (S.REVOKED, AFTER, False),
    (S.QUEUED, AFTER, False), (S.EXPIRED, AFTER, False), (S.SENT, None, True),
])
def test_a_link_is_live_while_sent_or_uncertain_and_not_expired(
    status: S, expires: datetime | None, live: bool
) -> None:
    assert link_is_live(status.value, expires, NOW) is live


def test_every_status_but_draft_has_a_tab() -> None:
    assert {status: tab_of(status) for status in S} == {
        S.DRAFT: None, S.QUEUED: Tab.PENDING, S.SENDING: Tab.PENDING, S.SENT: Tab.PENDING,
        S.ACCEPTED: Tab.ACCEPTED, S.EXPIRED: Tab.EXPIRED, S.REVOKED: Tab.REVOKED,
        S.FAILED: Tab.FAILED, S.UNCERTAIN: Tab.UNCERTAIN, S.BOUNCED: Tab.BOUNCED,
        S.SUPPRESSED: Tab.SUPPRESSED,
    }


def test_which_actions_apply_to_which_status() -> None:
    applies = {action: {s for s in S if why_not(action, s) is None} for action in RowAction}
    # Bounced and suppressed (issue 13): resending is refused while the address is
    # suppressed (with the reason); after an admin's undo it goes through.
    assert applies[RowAction.RESEND] == {S.DRAFT, S.SENT, S.EXPIRED, S.FAILED, S.UNCERTAIN,
                                         S.BOUNCED, S.SUPPRESSED}
    assert applies[RowAction.REVOKE] == {S.DRAFT, S.QUEUED, S.SENT, S.EXPIRED, S.FAILED,
                                         S.UNCERTAIN, S.BOUNCED, S.SUPPRESSED}
    assert applies[RowAction.EXTEND] == {S.SENT, S.EXPIRED, S.UNCERTAIN}
    assert applies[RowAction.FRESH_LINK] == applies[RowAction.RESEND]
    assert why_not(RowAction.REVOKE, S.ACCEPTED) == "it was accepted"
    assert why_not(RowAction.RESEND, S.REVOKED) == (
        "it was revoked; invite the person again from Compose")


def test_an_action_result_sums_up_what_happened() -> None:
    one = uuid.uuid4()
    assert ActionResult(RowAction.REVOKE, (one,)).summary == "1 invitation revoked."
    result = ActionResult(RowAction.EXTEND, (one, uuid.uuid4()),
                          (Skipped(uuid.uuid4(), "a@example.org", "it was accepted"),
                           Skipped(uuid.uuid4(), "b@example.org", "it was accepted")))
    assert result.summary == ("2 invitations extended; 2 skipped (a@example.org: it was "
                              "accepted, …).")


def test_search_spellings() -> None:
    assert case_variants("mcd") == ["mcd", "Mcd", "MCD"]
    assert case_variants("Ada") == ["Ada", "ada", "ADA"]
    assert name_pairs("ada", "lov") == [("ada", "lov"), ("Ada", "Lov"), ("ADA", "LOV")]


def test_history_lines_say_what_happened() -> None:
    assert describe("invitation.sent", {}, {"message_id": "<m1@x>", "reply": "250 OK"}) == (
        "Sent", "Message-ID <m1@x>; server: 250 OK")
    title, detail = describe("invitation.retry", {}, {"error": "451 greylisted", "attempt": 1,
                                                      "retry_in_s": 60})
    assert title == "Temporarily refused, will retry" and "retrying in 60 s" in detail
    assert describe("invitation.something_new", {}, {}) == ("Something new", "")


def test_batch_labels_and_csv_cells() -> None:
    assert batch_label("Spring day", "csv", NOW) == "Spring day"
    assert batch_label("", "resend", NOW) == "Resend, 01 Jun 2026 12:00"
    assert batch_label(None, None, None) == ""
    row = InvitationRow(
        id=uuid.uuid4(), email="a@example.org", name="@SUM(A1)", kind="membership",
        event_id=None, event_name="", inviter_id=uuid.uuid4(), inviter_name="-1",
        sender_id=uuid.uuid4(), sender_name="Bo", unit_id=None, unit_name="", batch_id=None,
        batch_label="", created_at=NOW, queued_at=NOW, sent_at=NOW, expires_at=AFTER,
        accepted_at=None, revoked_at=None, stored_status=S.SENT, status=S.SENT,
        last_error="=cmd", attempts=1, message_id=None, has_link=True)
    fields = csv_fields(row)
    assert fields[1] == "'@SUM(A1)" and fields[2] == "'-1" and fields[-1] == "'=cmd"
    assert fields[8] == "2026-06-01T12:00:00+00:00" and fields[11] == "sent"
    assert row.invitee == "a@example.org (@SUM(A1))" and row.kind_label == "Membership"
