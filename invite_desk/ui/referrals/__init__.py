"""The Referrals page of the main window: reports for staff, "My referrals" for members."""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import QWidget

from invite_desk.services.operator import Operator
from invite_desk.services.permissions import ScopeLevel, scope_of
from invite_desk.ui.hub import OperationsHub
from invite_desk.ui.referrals.mine import MyReferralsPage
from invite_desk.ui.referrals.page import ReferralsPage
from invite_desk.ui.referrals.source import ReferralSource

__all__ = ["MyReferralsPage", "ReferralSource", "ReferralsPage", "referrals_page"]


def referrals_page(context: Any, operator: Operator, *, hub: OperationsHub) -> QWidget:
    """What the main window shows under Referrals: a member (USER) sees only their own
    referrals; HR and admins the reports for their scope. `context` is the app's context:
    only its unit of work is used, inside the source's calls (off the GUI thread)."""
    source = ReferralSource(context.uow)
    if scope_of(operator).level is ScopeLevel.OWN:
        return MyReferralsPage(hub, operator, source=source)
    return ReferralsPage(hub, operator, source=source)
