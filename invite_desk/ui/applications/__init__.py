"""The Applications page: HR and admins approve or reject membership applications."""

from invite_desk.ui.applications.page import ApplicationsPage

__all__ = ["ApplicationsPage"]
