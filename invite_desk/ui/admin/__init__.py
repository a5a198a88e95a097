"""Administration pages: units and events, and the audit log (issue 11).

Pages take (hub, operator, parent, *, uow): the unit of work is only used inside the
functions handed to the hub. The main window builds them through the factories below,
which take the app context it passes to every page."""

from __future__ import annotations

from typing import Any

from invite_desk.services.operator import Operator
from invite_desk.ui.admin.audit_window import AuditLogWindow
from invite_desk.ui.admin.page import UnitsEventsPage
from invite_desk.ui.hub import OperationsHub


def units_events_page(context: Any, operator: Operator, *,
                      hub: OperationsHub | None = None) -> UnitsEventsPage:
    """(Without the main window's hub, e.g. alone in a test, the page gets its own.)"""
    return UnitsEventsPage(hub or OperationsHub(), operator, uow=context.uow)


def audit_log_page(context: Any, operator: Operator, *,
                   hub: OperationsHub | None = None) -> AuditLogWindow:
    return AuditLogWindow(hub or OperationsHub(), operator, uow=context.uow)


__all__ = ["AuditLogWindow", "UnitsEventsPage", "audit_log_page", "units_events_page"]
