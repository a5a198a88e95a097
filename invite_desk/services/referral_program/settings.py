"""Gamification settings and the organization time zone, stored as `Setting` rows under
`referralProgram.*` (the policy settings loader ignores keys it does not know)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from invite_desk.services.operator import Operator
from invite_desk.services.referral_program.types import GamificationSettings
from invite_desk.services.uow import UnitOfWork


def get_settings(uow: UnitOfWork, operator: Operator) -> GamificationSettings:
    """The programme's settings (any signed-in member may read them)."""
    raise NotImplementedError


def save_settings(uow: UnitOfWork, operator: Operator,
                  changes: Mapping[str, Any]) -> GamificationSettings:
    """Apply changes (GamificationSettings field -> value); ADMIN_TENANT; audited;
    ValidationFailed lists every bad field."""
    raise NotImplementedError


def set_leaderboard_opt_out(uow: UnitOfWork, operator: Operator, member_id: uuid.UUID,
                            opted_out: bool) -> bool:
    """A member opts out of (or back into) the public leaderboard: themself, or an admin for
    a member in scope. Audited. Returns the new value."""
    raise NotImplementedError
