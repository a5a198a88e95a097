"""The Applications page's use cases: what it shows (the list, the policy, the branding
accent), one application's details (its referrers and status history) and the decisions
(approve, reject, return to draft) taken on several applications at once.

Plain values and a UnitOfWork in, frozen dataclasses out; the scope and permission checks are
those of services/adhesion.py, which every function goes through.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from invite_desk.services import adhesion, audit, organization, referrals, settings
from invite_desk.services.adhesion import ApplicationRow
from invite_desk.services.models import ReferralStatus
from invite_desk.services.operator import Operator, refreshed
from invite_desk.services.referrals import ReferralRecord
from invite_desk.services.uow import UnitOfWork

# Status changes worth showing in the side panel, from the audit log of the member row.
HISTORY_TEXT = {
    "member.registered": "Registered",
    "member.rejoined": "Registered again",
    "adhesion.submitted": "Application submitted",
    "adhesion.approved": "Approved",
    "adhesion.rejected": "Rejected",
    "adhesion.returned_to_draft": "Returned to draft",
    "adhesion.resubmitted": "Resubmitted",
}
HISTORY_LIMIT = 100


class Verdict(StrEnum):
    """The decisions the page offers."""

    APPROVE = "approve"
    REJECT = "reject"
    DRAFT = "draft"


@dataclass(frozen=True)
class Snapshot:
    """What the page shows, read in one go off the GUI thread."""

    rows: tuple[ApplicationRow, ...]
    adhesion_required: bool
    accent: str


@dataclass(frozen=True)
class HistoryLine:
    at: datetime
    text: str


@dataclass(frozen=True)
class ApplicationDetails:
    """The side panel's content for one application."""

    row: ApplicationRow
    referrals: tuple[ReferralRecord, ...]
    history: tuple[HistoryLine, ...]  # oldest first


@dataclass(frozen=True)
class Decided:
    row: ApplicationRow  # as it is after the decision
    completed_by: tuple[str, ...]  # referrers whose referral is now completed (approvals)


@dataclass(frozen=True)
class DecisionOutcome:
    verdict: Verdict
    decided: tuple[Decided, ...]
    failed: tuple[tuple[str, BaseException], ...]  # (applicant's name, error), one per row


def applications_snapshot(uow: UnitOfWork, operator: Operator) -> Snapshot:
    """The applications in the operator's scope, whether adhesion is required and the accent
    colour; refused (PermissionDenied) to whom may not review applications."""
    rows = adhesion.list_applications(uow, operator)
    policy = settings.get_settings(uow, operator.organization_id)
    org = organization.get_organization(uow, operator.organization_id)
    return Snapshot(tuple(rows), policy.adhesion_required, org.accent_color)


def _history_text(entry: audit.AuditEntry) -> str | None:
    label = HISTORY_TEXT.get(entry.action)
    if label is None:
        return None
    if entry.action == "member.registered":
        via = str(entry.after.get("via", ""))
        if "invitation" in via:
            label = "Registered through an invitation"
        elif "public" in via:
            label = "Registered on the public page"
    by_applicant = entry.action in ("member.registered", "member.rejoined", "adhesion.submitted")
    if not by_applicant and entry.actor:
        label = f"{label} by {entry.actor}"
    reason = str(entry.after.get("reason") or "").strip()
    if reason and entry.action in ("adhesion.rejected", "adhesion.returned_to_draft"):
        label = f"{label}: “{' '.join(reason.split())}”"
    return label


def application_details(
    uow: UnitOfWork, operator: Operator, member_id: uuid.UUID
) -> ApplicationDetails:
    """The application (scope checked by the services), its referrers and its status history."""
    row = adhesion.get_application(uow, operator, member_id)
    records = referrals.referrals_of(uow, member_id)
    with uow:
        entries = audit.entries(uow.session, operator.organization_id, entity_type="member",
                                entity_id=member_id, limit=HISTORY_LIMIT)
    history = []
    for entry in reversed(entries):  # oldest first
        text = _history_text(entry)
        if text is not None:
            history.append(HistoryLine(entry.at, text))
    return ApplicationDetails(row, tuple(records), tuple(history))


def decide_applications(
    uow: UnitOfWork,
    operator: Operator,
    verdict: Verdict,
    rows: Sequence[ApplicationRow],
    reason: str = "",
) -> DecisionOutcome:
    """One decision per row, each in its own transaction, refused on a stale row
    (`expected_version`); one row's failure does not stop the others."""
    with uow:  # a deactivated operator is refused before any row is tried
        refreshed(uow.session, operator)
    decided: list[Decided] = []
    failed: list[tuple[str, BaseException]] = []
    for row in rows:
        try:
            if verdict is Verdict.APPROVE:
                after = adhesion.approve(uow, operator, row.member_id,
                                         expected_version=row.version)
                completed = tuple(
                    record.referrer_name for record in referrals.referrals_of(uow, row.member_id)
                    if record.status is ReferralStatus.COMPLETED
                )
            elif verdict is Verdict.REJECT:
                after = adhesion.reject(uow, operator, row.member_id, reason,
                                        expected_version=row.version)
                completed = ()
            else:
                after = adhesion.return_to_draft(uow, operator, row.member_id, reason,
                                                 expected_version=row.version)
                completed = ()
        except Exception as exc:  # reported per row on the GUI thread
            failed.append((row.name, exc))
        else:
            decided.append(Decided(after, completed))
    return DecisionOutcome(verdict, tuple(decided), tuple(failed))


