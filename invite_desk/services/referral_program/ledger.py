"""The append-only points ledger and its reconciliation (see the package docstring)."""

from __future__ import annotations

from datetime import datetime

from invite_desk.services.operator import Operator
from invite_desk.services.referral_program.types import ReconcileResult
from invite_desk.services.uow import UnitOfWork


def reconcile(uow: UnitOfWork, operator: Operator,
              now: datetime | None = None) -> ReconcileResult:
    """Bring the ledger, reward states and anti-gaming flags up to date for the organization."""
    raise NotImplementedError
