"""One member's own referral activity: "My referrals" and the member page."""

from __future__ import annotations

import uuid
from datetime import datetime

from invite_desk.services.operator import Operator
from invite_desk.services.referral_program.types import ReferralActivity
from invite_desk.services.uow import UnitOfWork


def member_activity(uow: UnitOfWork, operator: Operator, member_id: uuid.UUID,
                    now: datetime | None = None) -> ReferralActivity:
    """Successful referrals, pending invitations, whom they referred, points, badges and the
    ledger. A USER may ask only for their own; local roles for their unit."""
    raise NotImplementedError
